//! Unrun, paused, dead, closure, watchdog-interrupted and send_sequence tasklets; outsiders and non-deterministic bodies.

use super::*;

#[derive(Serialize, Deserialize)]
struct Steps {
    done: u32,
}

fn stepper(cx: &mut Cx<Steps>) -> Result<(), PickleError> {
    while cx.state().done < 4 {
        let d = cx.state().done;
        cx.record(|| trace(format!("step {d}")))?;
        cx.state_mut().done += 1;
        cx.schedule_remove()?;
        cx.checkpoint()?;
    }
    Ok(())
}

fn stepper_kind() -> (Rc<Registry>, Kind<Steps>) {
    let mut r = Registry::new();
    let k = r.register("stepper", 1, stepper).unwrap();
    (Rc::new(r), k)
}

#[test]
fn an_unrun_tasklet_runs_from_the_start_and_a_restored_one_is_paused_until_inserted() {
    on_thread(|| {
        let (reg, k) = stepper_kind();
        let world = World::new(reg.clone());
        let t = world.spawn(k, Steps { done: 0 }).unwrap();
        assert!(t.scheduled() && !t.started());
        let bytes = world.pickle().unwrap();
        let image = inspect(&reg, &bytes).unwrap();
        assert_eq!(image.tasklets[0].status, Status::Unrun);
        assert_eq!(image.ring, [0]);
        t.remove().unwrap(); // the original stays put
        let copy = World::restore(&reg, &bytes).unwrap();
        let t2 = &copy.tasklets[0];
        assert!(t2.alive() && t2.paused() && !t2.scheduled());
        scheduler::run().unwrap();
        assert!(take_trace().is_empty(), "not run before insert");
        copy.insert_ring().unwrap();
        scheduler::run().unwrap();
        assert_eq!(take_trace(), ["step 0"]); // from the start
        assert!(t2.paused()); // removed itself
    });
}

#[test]
fn a_tasklet_paused_by_schedule_remove_resumes_after_it() {
    on_thread(|| {
        let (reg, k) = stepper_kind();
        let world = World::new(reg.clone());
        let t = world.spawn(k, Steps { done: 0 }).unwrap();
        scheduler::run().unwrap();
        t.insert().unwrap();
        scheduler::run().unwrap();
        assert_eq!(take_trace(), ["step 0", "step 1"]);
        assert!(t.paused());
        let copy = World::restore(&reg, &world.pickle().unwrap()).unwrap();
        assert!(copy.ring.is_empty());
        let t2 = copy.tasklets[0].clone();
        assert!(t2.paused());
        while t2.alive() {
            t2.insert().unwrap();
            scheduler::run().unwrap();
        }
        assert_eq!(take_trace(), ["step 2", "step 3"]);
    });
}

#[test]
fn a_dead_tasklet_comes_back_not_alive() {
    on_thread(|| {
        let (reg, k) = stepper_kind();
        let world = World::new(reg.clone());
        let t = world.spawn(k, Steps { done: 4 }).unwrap();
        scheduler::run().unwrap();
        assert!(!t.alive());
        let bytes = world.pickle().unwrap();
        assert_eq!(
            inspect(&reg, &bytes).unwrap().tasklets[0].status,
            Status::Dead
        );
        let copy = World::restore(&reg, &bytes).unwrap();
        assert!(!copy.tasklets[0].alive());
        assert!(matches!(copy.tasklets[0].insert(), Err(Error::RunDead)));
    });
}

#[test]
fn a_closure_tasklet_is_pickled_for_inspection_and_its_copy_fails_naming_it() {
    on_thread(|| {
        let reg = Rc::new(Registry::new());
        let world = World::new(reg.clone());
        let t = scheduler::spawn(|| scheduler::schedule_remove().unwrap()).unwrap();
        t.set_name(Some("worker"));
        world.adopt(&t);
        scheduler::run().unwrap(); // it pauses itself
        let bytes = world.pickle().unwrap();
        let image = inspect(&reg, &bytes).unwrap();
        let ti = &image.tasklets[0];
        assert_eq!(
            (ti.id, ti.name.as_deref(), ti.status),
            (t.id(), Some("worker"), Status::Paused)
        );
        let copy = World::restore(&reg, &bytes).unwrap();
        let t2 = copy.tasklets[0].clone();
        assert!(!copy.world.restorable(&t2) && t2.paused());
        assert_eq!(t2.name().as_deref(), Some("worker"));
        let err = t2.run().unwrap_err();
        match err {
            Error::Panicked { payload, .. } => {
                let e = payload.downcast::<PickleError>().unwrap();
                assert!(
                    matches!(*e, PickleError::NotRestorable { tasklet, .. } if tasklet == t.id())
                );
                let sentence = e.to_string();
                assert!(sentence.contains(&t.id().to_string()) && sentence.contains("worker"));
            }
            other => panic!("expected the copy to fail, got {other:?}"),
        }
        assert!(!t2.alive());
        t.insert().unwrap();
        scheduler::run().unwrap();
    });
}

#[derive(Serialize, Deserialize)]
struct Counter {
    n: u64,
    limit: u64,
}

fn counter(cx: &mut Cx<Counter>) -> Result<(), PickleError> {
    while cx.state().n < cx.state().limit {
        cx.state_mut().n += 1;
        let n = cx.state().n;
        if n % 10 == 0 {
            cx.record(|| trace(format!("count {n}")))?;
        }
        cx.tick()?;
        if n % 10 == 0 {
            cx.checkpoint()?;
        }
    }
    Ok(())
}

#[test]
fn a_tasklet_interrupted_by_the_watchdog_resumes_where_it_was() {
    let full = on_thread(|| {
        let mut r = Registry::new();
        let k = r.register("counter", 1, counter).unwrap();
        let world = World::new(Rc::new(r));
        world.spawn(k, Counter { n: 0, limit: 50 }).unwrap();
        scheduler::run().unwrap();
        take_trace()
    });
    assert_eq!(full.len(), 5);
    let (before, bytes) = on_thread(|| {
        let mut r = Registry::new();
        let k = r.register("counter", 1, counter).unwrap();
        let world = World::new(Rc::new(r));
        let t = world.spawn(k, Counter { n: 0, limit: 50 }).unwrap();
        let victim = scheduler::run_with(RunOptions::new().ticks(25)).unwrap();
        assert_eq!(victim.as_ref(), Some(&t), "interrupted");
        assert!(t.paused() && t.alive());
        (take_trace(), world.pickle().unwrap())
    });
    assert!(!before.is_empty() && before.len() < 5, "{before:?}");
    let after = on_thread(move || {
        let mut r = Registry::new();
        r.register("counter", 1, counter).unwrap();
        let copy = World::restore(&Rc::new(r), &bytes).unwrap();
        assert!(copy.ring.is_empty() && copy.tasklets[0].paused());
        copy.tasklets[0].insert().unwrap();
        scheduler::run().unwrap();
        take_trace()
    });
    let mut joined = before;
    joined.extend(after);
    assert_eq!(joined, full);
}

#[derive(Serialize, Deserialize)]
struct Seq {
    out: ChannelRef<u32>,
}

fn sequencer(cx: &mut Cx<Seq>) -> Result<(), PickleError> {
    let out = cx.state().out;
    cx.send_sequence(out, [10, 20, 30])?;
    cx.record(|| trace("sequence sent".into()))?;
    Ok(())
}

#[test]
fn a_tasklet_blocked_inside_send_sequence_is_resumable() {
    on_thread(|| {
        let mut r = Registry::new();
        let k = r.register("sequencer", 1, sequencer).unwrap();
        r.register_channel::<u32>("u32", 1).unwrap();
        let reg = Rc::new(r);
        let world = World::new(reg.clone());
        let out = world.channel::<u32>().unwrap();
        world.spawn(k, Seq { out }).unwrap();
        scheduler::run().unwrap(); // blocked sending 10
        assert_eq!(world.get(out).unwrap().receive().unwrap(), 10);
        scheduler::run().unwrap(); // blocked sending 20
        let copy = World::restore(&reg, &world.pickle().unwrap()).unwrap();
        let out2 = copy.world.get(out).unwrap();
        assert_eq!(out2.balance(), 1);
        assert_eq!(out2.receive().unwrap(), 20);
        assert_eq!(out2.receive().unwrap(), 30);
        scheduler::run().unwrap();
        assert_eq!(take_trace(), ["sequence sent"]);
        assert!(!copy.tasklets[0].alive());
        // The original still waits with 20.
        assert_eq!(world.get(out).unwrap().receive().unwrap(), 20);
        assert_eq!(world.get(out).unwrap().receive().unwrap(), 30);
        scheduler::run().unwrap();
        assert_eq!(take_trace(), ["sequence sent"]);
    });
}

#[test]
fn a_tasklet_outside_the_world_waiting_on_its_channel_is_refused() {
    on_thread(|| {
        let mut r = Registry::new();
        r.register_channel::<u32>("u32", 1).unwrap();
        let world = World::new(Rc::new(r));
        let ch = world.channel::<u32>().unwrap();
        let rx = world.get(ch).unwrap();
        let t = scheduler::spawn(move || rx.receive().unwrap()).unwrap();
        scheduler::run().unwrap();
        assert!(matches!(
            world.pickle(),
            Err(PickleError::Outsider { tasklet, channel: 0 }) if tasklet == t.id()
        ));
        world.adopt(&t);
        let image = world.image().unwrap();
        assert_eq!(image.tasklets[0].status, Status::Blocked);
        assert_eq!(image.channels[0].queue, [0]);
        world.send(ch, 1).unwrap();
    });
}

#[derive(Serialize, Deserialize)]
struct Wobbly {
    out: ChannelRef<u32>,
}

thread_local! {
    static FLIP: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Not deterministic: what it does first depends on a thread-local it does not record.
fn wobbly(cx: &mut Cx<Wobbly>) -> Result<(), PickleError> {
    let out = cx.state().out;
    if FLIP.with(|f| f.get()) {
        cx.schedule()?;
    }
    cx.send(out, 1)?;
    cx.send(out, 2)?;
    Ok(())
}

#[test]
fn a_body_that_is_not_deterministic_is_caught_on_replay() {
    on_thread(|| {
        let mut r = Registry::new();
        let k = r.register("wobbly", 1, wobbly).unwrap();
        r.register_channel::<u32>("u32", 1).unwrap();
        let reg = Rc::new(r);
        let world = World::new(reg.clone());
        let out = world.channel::<u32>().unwrap();
        world.spawn(k, Wobbly { out }).unwrap();
        scheduler::run().unwrap();
        assert_eq!(world.get(out).unwrap().receive().unwrap(), 1);
        scheduler::run().unwrap(); // blocked sending 2, journal: [send]
        let bytes = world.pickle().unwrap();
        FLIP.with(|f| f.set(true));
        // The restore is lazy: it queues the sender with its value (2) and replays nothing;
        // the divergence is found when the sender first runs, and ends it as a panic with
        // the error as its payload, delivered to the run() caller.
        let copy = World::restore(&reg, &bytes).expect("a lazy restore replays nothing");
        let t = copy.tasklets[0].clone();
        let out2 = copy.world.get(out).unwrap();
        assert_eq!((out2.balance(), out2.queue()), (1, vec![t.id()]));
        assert_eq!(out2.receive().unwrap(), 2); // the value it was restored with
        match scheduler::run() {
            Err(microthread::Error::Panicked { tasklet, payload }) => {
                assert_eq!(tasklet, t.id());
                let err = payload
                    .downcast_ref::<PickleError>()
                    .expect("a PickleError");
                assert!(matches!(err, PickleError::Diverged { .. }), "{err}");
                assert!(err.to_string().contains("not deterministic"), "{err}");
            }
            other => panic!("expected the replay to diverge: {other:?}"),
        }
        assert!(!t.alive());
        FLIP.with(|f| f.set(false));
        assert_eq!(world.get(out).unwrap().receive().unwrap(), 2);
    });
}
