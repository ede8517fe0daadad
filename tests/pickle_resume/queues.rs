//! Blocked tasklets re-queued in order, channel settings, blocked closure tasklets.

use super::*;

#[test]
fn blocked_tasklets_come_back_queued_in_order_and_the_copy_is_independent() {
    on_thread(|| {
        let (reg, k) = receiver_kind();
        let world = World::new(reg.clone());
        let ch = world.channel::<String>().unwrap();
        let a = spawn_receiver(&world, k, ch, "a");
        let b = spawn_receiver(&world, k, ch, "b");
        scheduler::run().unwrap();
        assert_eq!(world.get(ch).unwrap().queue(), [a.id(), b.id()]);
        let bytes = world.pickle().unwrap();
        let copy = World::restore(&reg, &bytes).unwrap();
        let (a2, b2) = (copy.copy_of(a.id()).unwrap(), copy.copy_of(b.id()).unwrap());
        let ch2 = copy.world.get(ch).unwrap();
        assert_eq!(ch2.balance(), -2);
        assert_eq!(ch2.queue(), [a2.id(), b2.id()]);
        assert!(a2.blocked() && b2.blocked());
        assert!(copy.world.restorable(a2));
        ch2.send("X".into()).unwrap();
        ch2.send("Y".into()).unwrap();
        assert_eq!(take_trace(), ["a got X", "b got Y"]);
        // The originals still wait, on the original channel.
        assert_eq!(world.get(ch).unwrap().balance(), -2);
        world.send(ch, "Z".into()).unwrap();
        assert_eq!(take_trace(), ["a got Z"]);
        assert!(!a.alive() && b.blocked());
        world.send(ch, "W".into()).unwrap();
    });
}

#[test]
fn channel_settings_come_back() {
    on_thread(|| {
        let (reg, k) = receiver_kind();
        let world = World::new(reg.clone());
        let plain = world.channel::<String>().unwrap();
        let set = world.channel::<String>().unwrap();
        {
            let c = world.get(set).unwrap();
            c.set_preference(1);
            c.set_schedule_all(true);
        }
        spawn_receiver(&world, k, set, "r");
        scheduler::run().unwrap(); // blocks on `set`
        world.get(set).unwrap().close(); // closing, but a receiver waits
        let copy = World::restore(&reg, &world.pickle().unwrap()).unwrap();
        let (p2, s2) = (copy.world.get(plain).unwrap(), copy.world.get(set).unwrap());
        assert_eq!(
            (p2.preference(), p2.schedule_all(), p2.closing()),
            (-1, false, false)
        );
        assert_eq!(
            (s2.preference(), s2.schedule_all(), s2.closing()),
            (1, true, true)
        );
        assert_eq!(s2.balance(), -1);
        assert!(!s2.closed());
        s2.send("last".into()).unwrap(); // finds the waiting receiver: allowed while closing
        scheduler::run().unwrap();
        assert!(s2.closed());
        assert_eq!(take_trace(), ["r got last"]);
        world.get(set).unwrap().send("orig".into()).unwrap();
        scheduler::run().unwrap();
        assert_eq!(take_trace(), ["r got orig"]);
    });
}

#[test]
fn a_blocked_closure_tasklet_comes_back_paused_not_queued_and_others_keep_their_order() {
    on_thread(|| {
        let (reg, k) = receiver_kind();
        let world = World::new(reg.clone());
        let ch = world.channel::<String>().unwrap();
        let a = spawn_receiver(&world, k, ch, "a");
        let rx = world.get(ch).unwrap();
        let c = scheduler::spawn(move || rx.receive().unwrap()).unwrap();
        world.adopt(&c);
        let b = spawn_receiver(&world, k, ch, "b");
        scheduler::run().unwrap();
        assert_eq!(world.get(ch).unwrap().queue(), [a.id(), c.id(), b.id()]);
        let bytes = world.pickle().unwrap();
        let image = inspect(&reg, &bytes).unwrap();
        assert_eq!(image.channels[0].queue, [0, 1, 2]); // inspection sees all three
        let copy = World::restore(&reg, &bytes).unwrap();
        let (a2, c2, b2) = (
            copy.copy_of(a.id()).unwrap(),
            copy.copy_of(c.id()).unwrap(),
            copy.copy_of(b.id()).unwrap(),
        );
        let ch2 = copy.world.get(ch).unwrap();
        assert_eq!(ch2.queue(), [a2.id(), b2.id()]);
        assert!(c2.paused() && !c2.blocked() && !copy.world.restorable(c2));
        ch2.send("1".into()).unwrap();
        ch2.send("2".into()).unwrap();
        assert_eq!(take_trace(), ["a got 1", "b got 2"]);
        for v in ["x", "y", "z"] {
            world.send(ch, v.into()).unwrap();
        }
        scheduler::run().unwrap();
        assert_eq!(take_trace(), ["a got x", "b got z"]);
        assert_eq!(c.result::<String>().as_deref(), Some("y"));
    });
}

/// The member indices of `image`'s queue `c`, as tasklet ids.
fn queued_ids(image: &microthread::pickle::WorldImage, c: usize) -> Vec<u64> {
    let q = &image.channels[c].queue;
    q.iter().map(|&i| image.tasklets[i as usize].id).collect()
}

#[test]
fn the_pickled_queue_order_is_the_channels_after_kills_from_the_middle_and_later_blockers() {
    on_thread(|| {
        let (reg, k) = receiver_kind();
        let world = World::new(reg.clone());
        let ch = world.channel::<String>().unwrap();
        let other = world.channel::<String>().unwrap();
        // The first member and the oldest tasklet, but it queues after a to d: the order
        // is neither the world's nor the ids'.
        let rx = world.get(ch).unwrap();
        let late = scheduler::spawn(move || {
            scheduler::schedule().unwrap();
            scheduler::schedule().unwrap();
            rx.receive().unwrap()
        })
        .unwrap();
        world.adopt(&late);
        let a = spawn_receiver(&world, k, ch, "a");
        let b = spawn_receiver(&world, k, ch, "b");
        // Blocks on `other` between them: its episode is numbered between theirs.
        spawn_receiver(&world, k, other, "o");
        let c = spawn_receiver(&world, k, ch, "c");
        let d = spawn_receiver(&world, k, ch, "d");
        scheduler::run().unwrap();
        b.kill().unwrap(); // leaves from the middle
        world.send(ch, "x".into()).unwrap(); // `a`, the head, takes it and ends
        scheduler::run().unwrap();
        let rx = world.get(ch).unwrap();
        let e = scheduler::spawn(move || rx.receive().unwrap()).unwrap();
        world.adopt(&e); // a closure tasklet, queued last
        let f = spawn_receiver(&world, k, ch, "f");
        scheduler::run().unwrap();
        assert_eq!(take_trace(), ["a got x"]);
        assert!(!a.alive() && !b.alive());
        let queue = [c.id(), d.id(), late.id(), e.id(), f.id()];
        assert_eq!(world.get(ch).unwrap().queue(), queue);
        let image = world.image().unwrap();
        assert_eq!(queued_ids(&image, 0), queue);
        assert_eq!(image.channels[1].queue.len(), 1);
        let bytes = world.pickle().unwrap();
        assert_eq!(inspect(&reg, &bytes).unwrap(), image);
        let copy = World::restore(&reg, &bytes).unwrap();
        let ch2 = copy.world.get(ch).unwrap();
        let copies = [c.id(), d.id(), f.id()].map(|id| copy.copy_of(id).unwrap().id());
        assert_eq!(ch2.queue(), copies); // the closure tasklets come back paused
        for v in ["1", "2", "3"] {
            ch2.send(v.into()).unwrap();
        }
        assert_eq!(take_trace(), ["c got 1", "d got 2", "f got 3"]);
        for t in world.tasklets() {
            if t.alive() {
                t.kill().unwrap();
            }
        }
    });
}

#[test]
fn an_outsider_queued_between_members_is_named_and_without_it_their_order_holds() {
    on_thread(|| {
        let (reg, k) = receiver_kind();
        let world = World::new(reg.clone());
        let ch = world.channel::<String>().unwrap();
        let a = spawn_receiver(&world, k, ch, "a");
        let rx = world.get(ch).unwrap();
        let outsider = scheduler::spawn(move || rx.receive().unwrap()).unwrap();
        let b = spawn_receiver(&world, k, ch, "b");
        scheduler::run().unwrap();
        assert_eq!(
            world.get(ch).unwrap().queue(),
            [a.id(), outsider.id(), b.id()]
        );
        let e = world.pickle().unwrap_err();
        assert!(
            matches!(e, PickleError::Outsider { tasklet, channel: 0 } if tasklet == outsider.id()),
            "{e:?}"
        );
        assert!(e.to_string().contains("is not in the world"), "{e}");
        outsider.kill().unwrap();
        // Without it the world pickles, its queue in order.
        let image = world.image().unwrap();
        assert_eq!(queued_ids(&image, 0), [a.id(), b.id()]);
        a.kill().unwrap();
        b.kill().unwrap();
    });
}

#[test]
fn a_member_waiting_on_a_channel_outside_the_world_is_refused() {
    on_thread(|| {
        let (reg, _) = receiver_kind();
        let world = World::new(reg.clone());
        let outside = microthread::Channel::<String>::new();
        let rx = outside.clone();
        let t = scheduler::spawn(move || rx.receive().unwrap()).unwrap();
        world.adopt(&t);
        scheduler::run().unwrap();
        let e = world.pickle().unwrap_err();
        assert!(
            matches!(e, PickleError::Unpicklable { tasklet, why } if tasklet == t.id() && why.contains("outside its world")),
            "{e:?}"
        );
        t.kill().unwrap();
    });
}
