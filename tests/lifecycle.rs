//! Scenario tests for a tasklet's life: bound but not alive (Stackless `tasklet(f)`), `setup`,
//! `unbind` (Stackless `bind(None)`), their errors (reference Appendix A) and state
//! transitions (Appendix B), and the order in which a thread's leftover tasklets are killed
//! when it ends (reference §4: oldest first).

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use microthread::channel::Channel;
use microthread::scheduler::{
    self, runcount, schedule, schedule_remove, set_schedule_callback, spawn, TaskletBuilder,
};
use microthread::{Error, Tasklet};

mod common;
use common::{log, on_thread, push, taken, Log};

/// Keeps a tasklet handle past its thread's end without ever dropping it. A `mem::forget`
/// would do the same, but LeakSanitizer (the ASan leg) reports the record a forgotten handle
/// points to as leaked; parked in a global list, it stays reachable.
fn keep_forever<T: 'static>(handles: T) {
    static KEPT: Mutex<Vec<usize>> = Mutex::new(Vec::new());
    KEPT.lock().unwrap().push(Box::into_raw(Box::new(handles)) as usize);
}

/// Logs `name` into a log shared with the test's thread when dropped.
struct Logs(Arc<Mutex<Vec<String>>>, &'static str);

impl Drop for Logs {
    fn drop(&mut self) {
        self.0.lock().unwrap().push(self.1.to_string());
    }
}

#[test]
fn a_thread_kills_its_leftover_tasklets_oldest_first() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    on_thread(move || {
        // Started and scheduled, never run and paused, started and paused, never run and
        // scheduled, started and scheduled: in creation order.
        let a = Logs(l.clone(), "A");
        spawn(move || {
            let _a = a;
            loop {
                schedule().unwrap();
            }
        })
        .unwrap();
        let b = Logs(l.clone(), "B");
        // A handle kept past the thread's end: with none left, B would be discarded at once.
        keep_forever(Tasklet::new(move || drop(b)).unwrap());
        let c = Logs(l.clone(), "C");
        spawn(move || {
            let _c = c;
            schedule_remove().unwrap();
        })
        .unwrap();
        schedule().unwrap();
        let d = Logs(l.clone(), "D");
        let keep_d = spawn(move || drop(d)).unwrap();
        let e = Logs(l.clone(), "E");
        let keep_e = spawn(move || {
            let _e = e;
            loop {
                schedule().unwrap();
            }
        })
        .unwrap();
        // D has not run yet; E runs once, then main ends the thread with both scheduled.
        keep_e.run().unwrap();
        assert!(keep_d.alive() && !keep_d.started());
        assert!(keep_e.started());
        assert!(l.lock().unwrap().is_empty());
    });
    assert_eq!(*log.lock().unwrap(), ["A", "B", "C", "D", "E"]);
}

/// Counts its drops.
struct Counted(Rc<Cell<u32>>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

fn flags(t: &Tasklet) -> (bool, bool, bool, bool) {
    (t.alive(), t.scheduled(), t.paused(), t.started())
}

#[test]
fn a_bound_tasklet_is_not_alive_until_setup_appends_it_to_the_run_queue() {
    on_thread(|| {
        let l = log();
        let (l1, l2) = (l.clone(), l.clone());
        let bound = Tasklet::bound(move || push(&l1, "bound")).unwrap();
        let built = TaskletBuilder::new()
            .stack_size(32 * 1024)
            .bind(|| "built")
            .unwrap();
        assert_eq!(flags(&bound), (false, false, false, false));
        assert_eq!(flags(&built), (false, false, false, false));
        assert!(!bound.blocked() && !bound.is_current() && !bound.is_main());
        assert_eq!(runcount(), 1);
        // Nothing runs it: run() has nothing to do.
        scheduler::run().unwrap();
        assert!(taken(&l).is_empty());
        spawn(move || push(&l2, "spawned first")).unwrap();
        bound.setup().unwrap();
        assert_eq!(flags(&bound), (true, true, false, false));
        assert_eq!(runcount(), 3);
        scheduler::run().unwrap();
        // Appended at the end of the queue: after the one spawned before.
        assert_eq!(taken(&l), ["spawned first", "bound"]);
        assert_eq!(flags(&bound), (false, false, false, true));
        built.setup().unwrap();
        scheduler::run().unwrap();
        assert_eq!(built.result::<&str>(), Some("built"));
    });
}

#[test]
fn a_bound_tasklet_cannot_be_run_or_thrown_into_and_a_kill_leaves_it_bound() {
    on_thread(|| {
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let t = Tasklet::bound(move || r.set(true)).unwrap();
        for e in [t.run(), t.insert(), t.switch()] {
            let e = e.unwrap_err();
            assert!(matches!(e, Error::RunDead), "{e:?}");
            assert_eq!(e.to_string(), "You cannot run an unbound(dead) tasklet");
        }
        for pending in [false, true] {
            let e = if pending {
                t.throw_pending(Error::Thrown(Box::new("x")))
            } else {
                t.throw(Error::Thrown(Box::new("x")))
            }
            .unwrap_err();
            assert!(matches!(e, Error::ThrowDead), "{e:?}");
            assert_eq!(e.to_string(), "You cannot throw to a dead tasklet");
        }
        // Not alive: kill and remove have nothing to do.
        t.kill().unwrap();
        t.kill_pending().unwrap();
        t.remove().unwrap();
        assert_eq!(flags(&t), (false, false, false, false));
        assert_eq!(runcount(), 1);
        // Still bound: set up, it runs normally.
        t.setup().unwrap();
        scheduler::run().unwrap();
        assert!(ran.get());
    });
}

#[test]
fn setup_of_an_alive_tasklet_or_one_without_a_function_is_refused() {
    on_thread(|| {
        let alive = |e: Error| {
            assert!(matches!(e, Error::TaskletAlive), "{e:?}");
            assert_eq!(e.to_string(), "tasklet is alive");
        };
        let paused = Tasklet::new(|| ()).unwrap();
        alive(paused.setup().unwrap_err());
        assert!(!paused.scheduled(), "a refused setup changes nothing");
        let scheduled = spawn(|| schedule_remove().unwrap()).unwrap();
        alive(scheduled.setup().unwrap_err());
        alive(scheduler::main().setup().unwrap_err());
        scheduler::run().unwrap();
        // Started and paused.
        alive(scheduled.setup().unwrap_err());
        assert!(scheduled.paused());
        let not_bound = |e: Error| {
            assert!(matches!(e, Error::NotBound), "{e:?}");
            assert_eq!(e.to_string(), "the tasklet was not bound to a function");
        };
        scheduled.kill().unwrap();
        not_bound(scheduled.setup().unwrap_err());
        let unbound = Tasklet::bound(|| ()).unwrap();
        unbound.unbind().unwrap();
        not_bound(unbound.setup().unwrap_err());
        // The current tasklet is alive.
        spawn(|| {
            let e = scheduler::current().setup().unwrap_err();
            assert!(matches!(e, Error::TaskletAlive));
        })
        .unwrap();
        scheduler::run().unwrap();
    });
}

#[test]
fn unbind_drops_the_closure_of_a_bound_or_never_run_tasklet_without_running_it() {
    on_thread(|| {
        let drops = Rc::new(Cell::new(0));
        let ran = Rc::new(Cell::new(false));
        let (c1, r1) = (Counted(drops.clone()), ran.clone());
        let bound = Tasklet::bound(move || {
            let _c = c1;
            r1.set(true);
        })
        .unwrap();
        bound.unbind().unwrap();
        assert_eq!(drops.get(), 1);
        // Dead: `started` as for any tasklet that ended.
        assert_eq!(flags(&bound), (false, false, false, true));
        // A never-run alive tasklet, also after it was inserted and removed again.
        let (c2, r2) = (Counted(drops.clone()), ran.clone());
        let paused = Tasklet::new(move || {
            let _c = c2;
            r2.set(true);
        })
        .unwrap();
        paused.insert().unwrap();
        paused.remove().unwrap();
        paused.unbind().unwrap();
        assert_eq!(drops.get(), 2);
        assert!(!paused.alive() && !paused.paused());
        // Unbinding what is not alive any more does nothing.
        paused.unbind().unwrap();
        bound.unbind().unwrap();
        assert_eq!(drops.get(), 2);
        for t in [&bound, &paused] {
            assert!(matches!(t.run(), Err(Error::RunDead)));
            assert!(matches!(t.setup(), Err(Error::NotBound)));
            t.kill().unwrap();
        }
        scheduler::run().unwrap();
        assert!(!ran.get());
        assert_eq!(runcount(), 1);
    });
}

#[test]
fn unbind_is_refused_by_stacklesss_preconditions_and_a_refusal_changes_nothing() {
    on_thread(|| {
        let check = |e: Error, what: &str| {
            assert_eq!(e.to_string(), what, "{e:?}");
        };
        // Current (main, from main; a tasklet, from itself).
        let e = scheduler::main().unbind().unwrap_err();
        assert!(matches!(e, Error::BindCurrent));
        check(e, "can't (re)bind the current tasklet");
        spawn(|| {
            let e = scheduler::current().unbind().unwrap_err();
            assert!(matches!(e, Error::BindCurrent));
            // Main, scheduled while this one runs.
            let e = scheduler::main().unbind().unwrap_err();
            assert!(matches!(e, Error::BindScheduled), "{e:?}");
        })
        .unwrap();
        schedule().unwrap();
        // Scheduled, never run.
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let scheduled = spawn(move || r.set(true)).unwrap();
        let e = scheduled.unbind().unwrap_err();
        assert!(matches!(e, Error::BindScheduled));
        check(e, "tasklet is scheduled");
        assert!(scheduled.scheduled());
        scheduler::run().unwrap();
        assert!(ran.get(), "the refused unbind left it to run");
        // Blocked on a channel.
        let ch: Channel<u32> = Channel::new();
        let rx = ch.clone();
        let blocked = spawn(move || rx.receive().unwrap()).unwrap();
        scheduler::run().unwrap();
        assert!(blocked.blocked());
        assert!(matches!(blocked.unbind(), Err(Error::BindScheduled)));
        assert_eq!(ch.balance(), -1);
        // Main, paused inside run() while a tasklet asks.
        spawn(|| {
            let e = scheduler::main().unbind().unwrap_err();
            assert!(matches!(e, Error::UnbindMain), "{e:?}");
            assert_eq!(e.to_string(), "can't unbind the main tasklet");
        })
        .unwrap();
        scheduler::run().unwrap();
        // Started, paused: it has native frames, which only a kill unwinds.
        let l = log();
        let l2 = l.clone();
        let started = spawn(move || {
            struct Fin(Log);
            impl Drop for Fin {
                fn drop(&mut self) {
                    push(&self.0, "unwound");
                }
            }
            let _f = Fin(l2);
            schedule_remove().unwrap();
            unreachable!("a killed tasklet resumed");
        })
        .unwrap();
        scheduler::run().unwrap();
        let e = started.unbind().unwrap_err();
        assert!(matches!(e, Error::HasCState));
        assert!(e
            .to_string()
            .starts_with("tasklet has C state on its stack"));
        assert!(e.to_string().contains("kill()"));
        assert!(started.alive() && started.paused());
        assert!(taken(&l).is_empty());
        started.kill().unwrap();
        assert_eq!(taken(&l), ["unwound"]);
        ch.send(1).unwrap();
    });
}

#[test]
fn setup_unbind_and_bind_inside_the_schedule_callback_are_refused() {
    on_thread(|| {
        let bound = Tasklet::bound(|| ()).unwrap();
        let paused = Tasklet::new(|| ()).unwrap();
        let seen = Rc::new(RefCell::new(Vec::new()));
        let (b, p, s) = (bound.clone(), paused.clone(), seen.clone());
        set_schedule_callback(Some(Rc::new(move |_, _| {
            s.borrow_mut()
                .push((b.setup().unwrap_err(), p.unbind().unwrap_err()));
            s.borrow_mut()
                .push((b.bind(|| ()).unwrap_err(), p.bind(|| ()).unwrap_err()));
        })));
        spawn(|| ()).unwrap();
        scheduler::run().unwrap();
        set_schedule_callback(None);
        let seen = seen.borrow();
        assert_eq!(seen.len(), 4, "two switches, two pairs each: {seen:?}");
        for (a, b) in seen.iter() {
            assert!(matches!(a, Error::RecursiveCallback), "{a:?}");
            assert!(matches!(b, Error::RecursiveCallback), "{b:?}");
        }
        assert!(!bound.alive() && paused.alive());
    });
}

#[test]
fn a_panic_in_the_closures_drop_continues_from_unbind_with_the_tasklet_dead() {
    on_thread(|| {
        struct Bomb(Log);
        impl Drop for Bomb {
            fn drop(&mut self) {
                // The scheduler is consistent while user code runs: it may schedule, and it
                // sees the tasklet dead already.
                schedule().unwrap();
                push(&self.0, "dropping");
                panic!("bomb");
            }
        }
        let l = log();
        let b = Bomb(l.clone());
        let t = Tasklet::bound(move || drop(b)).unwrap();
        let l2 = l.clone();
        spawn(move || push(&l2, "other ran during the drop")).unwrap();
        let p = panic::catch_unwind(AssertUnwindSafe(|| t.unbind())).unwrap_err();
        assert_eq!(p.downcast_ref::<&str>(), Some(&"bomb"));
        assert_eq!(taken(&l), ["other ran during the drop", "dropping"]);
        assert_eq!(flags(&t), (false, false, false, true));
        t.unbind().unwrap();
        assert_eq!(runcount(), 1);
        // The scheduler goes on as before.
        let u = spawn(|| 3).unwrap();
        scheduler::run().unwrap();
        assert_eq!(u.result::<i32>(), Some(3));
    });
}

#[test]
fn unbind_drops_what_a_pending_throw_left_in_a_never_run_tasklet() {
    on_thread(|| {
        let t = Tasklet::new(|| ()).unwrap();
        // A payload that is Send: count its drop through a static.
        static PAYLOAD_DROPS: AtomicU32 = AtomicU32::new(0);
        struct P;
        impl Drop for P {
            fn drop(&mut self) {
                PAYLOAD_DROPS.fetch_add(1, Ordering::SeqCst);
            }
        }
        t.throw_pending(Error::Thrown(Box::new(P))).unwrap();
        t.remove().unwrap();
        assert!(t.paused());
        t.unbind().unwrap();
        assert_eq!(PAYLOAD_DROPS.load(Ordering::SeqCst), 1);
        assert!(!t.alive());
    });
}

#[test]
fn a_bound_tasklet_whose_handles_are_all_dropped_is_discarded_at_once() {
    on_thread(|| {
        let drops = Rc::new(Cell::new(0));
        let c = Counted(drops.clone());
        let t = Tasklet::bound(move || drop(c)).unwrap();
        let t2 = t.clone();
        drop(t);
        assert_eq!(drops.get(), 0);
        drop(t2);
        assert_eq!(drops.get(), 1);
        // Many of them: no stack or closure is kept for them.
        for _ in 0..1000 {
            let c = Counted(drops.clone());
            Tasklet::bound(move || drop(c)).unwrap();
        }
        assert_eq!(drops.get(), 1001);
    });
}

#[test]
fn bound_tasklets_left_at_a_threads_end_have_their_closures_dropped_in_creation_order() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    on_thread(move || {
        let a = Logs(l.clone(), "A bound");
        let ta = Tasklet::bound(move || drop(a)).unwrap();
        let b = Logs(l.clone(), "B alive");
        let tb = spawn(move || {
            let _b = b;
            loop {
                schedule().unwrap();
            }
        })
        .unwrap();
        let c = Logs(l.clone(), "C bound, remote handle");
        let tc = Tasklet::bound(move || drop(c)).unwrap();
        schedule().unwrap();
        // A remote handle keeps C reachable (another thread could ask about it): it is not
        // discarded with its last local handle, but at the thread's end.
        let remote = tc.remote();
        drop(tc);
        keep_forever((ta, tb));
        assert!(l.lock().unwrap().is_empty());
        remote
    });
    assert_eq!(
        *log.lock().unwrap(),
        ["A bound", "B alive", "C bound, remote handle"]
    );
}

#[test]
fn bind_gives_a_dead_tasklet_a_new_function_and_keeps_its_identity() {
    on_thread(|| {
        let t = spawn(|| 1).unwrap();
        t.set_name(Some("worker"));
        let id = t.id();
        scheduler::run().unwrap();
        assert!(!t.alive());
        t.bind(|| 2).unwrap();
        assert_eq!(flags(&t), (false, false, false, false));
        assert!(t.result::<i32>().is_none(), "the old result was dropped");
        assert!(matches!(t.run(), Err(Error::RunDead)));
        t.setup().unwrap();
        scheduler::run().unwrap();
        assert_eq!(t.result::<i32>(), Some(2));
        assert_eq!((t.id(), t.name().as_deref()), (id, Some("worker")));
        // One that panicked, and one that was killed, can be bound again too.
        let p = spawn(|| panic!("first life")).unwrap();
        assert!(scheduler::run().is_err());
        p.bind(|| "second life").unwrap();
        p.setup().unwrap();
        scheduler::run().unwrap();
        assert_eq!(p.result::<&str>(), Some("second life"));
        let k = spawn(|| loop {
            schedule().unwrap();
        })
        .unwrap();
        schedule().unwrap();
        k.kill().unwrap();
        k.bind(|| 3).unwrap();
        k.setup().unwrap();
        scheduler::run().unwrap();
        assert_eq!(k.result::<i32>(), Some(3));
    });
}

#[test]
fn bind_replaces_the_closure_of_a_tasklet_that_never_ran_and_it_is_not_alive() {
    on_thread(|| {
        let drops = Rc::new(Cell::new(0));
        let c = Counted(drops.clone());
        let bound = Tasklet::bound(move || drop(c)).unwrap();
        bound.bind(|| "new").unwrap();
        assert_eq!(drops.get(), 1);
        assert_eq!(flags(&bound), (false, false, false, false));
        let c = Counted(drops.clone());
        let paused = Tasklet::new(move || drop(c)).unwrap();
        paused.bind(|| "new too").unwrap();
        assert_eq!(drops.get(), 2);
        assert_eq!(flags(&paused), (false, false, false, false));
        bound.setup().unwrap();
        paused.setup().unwrap();
        scheduler::run().unwrap();
        assert_eq!(bound.result::<&str>(), Some("new"));
        assert_eq!(paused.result::<&str>(), Some("new too"));
        // Bound again and forgotten: discarded with its last handle, no leak.
        let c = Counted(drops.clone());
        bound.bind(move || drop(c)).unwrap();
        drop(bound);
        assert_eq!(drops.get(), 3);
    });
}

#[test]
fn bind_is_refused_like_unbind_and_a_refusal_changes_nothing() {
    on_thread(|| {
        let e = scheduler::main().bind(|| ()).unwrap_err();
        assert!(matches!(e, Error::BindCurrent), "{e:?}");
        spawn(|| {
            let me = scheduler::current();
            assert!(matches!(me.bind(|| ()), Err(Error::BindCurrent)));
            let e = scheduler::main().bind(|| ()).unwrap_err();
            assert!(matches!(e, Error::BindScheduled), "{e:?}");
        })
        .unwrap();
        schedule().unwrap();
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let scheduled = spawn(move || r.set(true)).unwrap();
        assert!(matches!(scheduled.bind(|| ()), Err(Error::BindScheduled)));
        scheduler::run().unwrap();
        assert!(ran.get());
        spawn(|| {
            let e = scheduler::main().bind(|| ()).unwrap_err();
            assert!(matches!(e, Error::UnbindMain), "{e:?}");
        })
        .unwrap();
        scheduler::run().unwrap();
        let started = spawn(|| schedule_remove().unwrap()).unwrap();
        scheduler::run().unwrap();
        let e = started.bind(|| ()).unwrap_err();
        assert!(matches!(e, Error::HasCState), "{e:?}");
        assert!(started.alive() && started.paused() && started.started());
        started.run().unwrap();
        assert!(!started.alive());
    });
}

#[test]
fn a_panic_in_the_old_closures_drop_continues_from_bind_with_the_new_one_bound() {
    on_thread(|| {
        struct Bomb;
        impl Drop for Bomb {
            fn drop(&mut self) {
                panic!("old closure");
            }
        }
        let b = Bomb;
        let t = Tasklet::bound(move || drop(b)).unwrap();
        let p = panic::catch_unwind(AssertUnwindSafe(|| t.bind(|| 5))).unwrap_err();
        assert_eq!(p.downcast_ref::<&str>(), Some(&"old closure"));
        t.setup().unwrap();
        scheduler::run().unwrap();
        assert_eq!(t.result::<i32>(), Some(5));
    });
}
