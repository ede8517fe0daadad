//! Channel references in a state, and values in flight between a sender and its receiver.

use super::*;

#[test]
fn restored_channel_references_name_the_restored_channels() {
    on_thread(|| {
        let (reg, k) = receiver_kind();
        let world = World::new(reg.clone());
        let _unused = world.channel::<String>().unwrap();
        let ch = world.channel::<String>().unwrap();
        spawn_receiver(&world, k, ch, "r");
        scheduler::run().unwrap();
        let copy = World::restore(&reg, &world.pickle().unwrap()).unwrap();
        let ch2 = copy.world.get(ch).unwrap();
        assert_ne!(ch2.id(), world.get(ch).unwrap().id());
        assert_eq!(ch2.balance(), -1);
        assert_eq!(copy.world.get(_unused).unwrap().balance(), 0);
        ch2.send("via the copy".into()).unwrap();
        assert_eq!(take_trace(), ["r got via the copy"]);
        world.send(ch, "orig".into()).unwrap();
        assert_eq!(take_trace(), ["r got orig"]);
    });
}

#[test]
fn a_receiver_holding_a_value_it_has_not_resumed_to_is_pickled_with_it() {
    on_thread(|| {
        let (reg, k) = receiver_kind();
        let world = World::new(reg.clone());
        let ch = world.channel::<String>().unwrap();
        world.get(ch).unwrap().set_preference(1); // the sender continues
        let r = spawn_receiver(&world, k, ch, "r");
        scheduler::run().unwrap();
        world.send(ch, "held".into()).unwrap();
        assert!(r.scheduled() && !r.blocked()); // has the value, not yet resumed
        let copy = World::restore(&reg, &world.pickle().unwrap()).unwrap();
        assert_eq!(copy.ring, [copy.tasklets[0].clone()]);
        copy.insert_ring().unwrap();
        scheduler::run().unwrap();
        assert_eq!(take_trace(), ["r got held", "r got held"]); // the original ran too

        // The same through a plain send: the value is out of the pickle layer's sight.
        let r = spawn_receiver(&world, k, ch, "s");
        scheduler::run().unwrap();
        world.get(ch).unwrap().send("unseen".into()).unwrap();
        assert!(matches!(
            world.pickle(),
            Err(PickleError::InTransit { tasklet }) if tasklet == r.id()
        ));
        scheduler::run().unwrap();
        assert_eq!(take_trace(), ["s got unseen"]);
        world.pickle().unwrap(); // resumed: picklable again
    });
}

#[test]
fn a_receiver_that_takes_a_waiting_senders_value_but_resumes_later_keeps_it() {
    on_thread(|| {
        let mut r = Registry::new();
        let recv = r.register("receiver", 1, receiver).unwrap();
        let seq = r.register("sequencer-s", 1, string_sender).unwrap();
        r.register_channel::<String>("string", 1).unwrap();
        let reg = Rc::new(r);
        let world = World::new(reg.clone());
        let ch = world.channel::<String>().unwrap();
        world.get(ch).unwrap().set_preference(1); // a receive runs the sender at once
        world.spawn(seq, SendOne { out: ch }).unwrap();
        scheduler::run().unwrap(); // the sender waits
        let rx = world
            .spawn(
                recv,
                Receiver {
                    input: ch,
                    tag: "r".into(),
                },
            )
            .unwrap();
        // main takes one schedule: rx receives, the sender runs at once and ends; rx is
        // back in the ring holding the value.
        scheduler::schedule().unwrap();
        assert!(rx.scheduled() && take_trace() == ["sender done"]);
        let copy = World::restore(&reg, &world.pickle().unwrap()).unwrap();
        copy.insert_ring().unwrap();
        scheduler::run().unwrap();
        let mut t = take_trace();
        t.sort();
        assert_eq!(t, ["r got hello", "r got hello"]);
    });
}

#[test]
fn a_value_main_sent_with_world_send_while_blocked_is_pickled_with_its_receiver() {
    on_thread(|| {
        let (reg, k) = receiver_kind();
        let world = World::new(reg.clone());
        let ch = world.channel::<String>().unwrap();
        world.get(ch).unwrap().set_preference(1); // a receive runs the waiting sender at once
        let r = spawn_receiver(&world, k, ch, "r");
        // main blocks sending; r takes the value, main runs at once, r waits in the ring.
        world.send(ch, "from main".into()).unwrap();
        assert!(r.scheduled() && !r.blocked());
        let copy = World::restore(&reg, &world.pickle().unwrap()).unwrap();
        copy.insert_ring().unwrap();
        scheduler::run().unwrap();
        assert_eq!(take_trace(), ["r got from main", "r got from main"]);
    });
}
