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
