//! Scenario tests for the error handler (Stackless `set_error_handler`, reference §1.1, §2.5,
//! §2.10) and for how an uncaught error of a tasklet is routed, including an error thrown into
//! a tasklet that never ran.

use std::cell::{Cell, RefCell};
use std::panic;
use std::rc::Rc;

use microthread::channel::Channel;
use microthread::error::{Payload, TaskletExit};
use microthread::scheduler::{
    self, current, error_handler, schedule, schedule_callback, schedule_remove, set_error_handler,
    set_schedule_callback, spawn, ErrorHandler, ScheduleCallback,
};
use microthread::{Error, Tasklet};

mod common;
use common::{log, on_thread, push, taken};

#[test]
fn an_error_thrown_into_a_tasklet_that_never_ran_is_routed_as_its_uncaught_error() {
    on_thread(|| {
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let t = Tasklet::new(move || r.set(true)).unwrap();
        let id = t.id();
        // Non-pending: the caller (main) switches to `t`, which ends at once; its uncaught
        // error comes back to main from the throw.
        let e = t.throw(Error::Thrown(Box::new("never ran"))).unwrap_err();
        match &e {
            Error::Panicked { tasklet, .. } => assert_eq!(*tasklet, id),
            other => panic!("expected Error::Panicked, got {other:?}"),
        }
        assert_eq!(e.payload_str(), Some("never ran"));
        assert_eq!(e.to_string(), format!("tasklet {id} panicked: never ran"));
        assert!(!t.alive() && !ran.get());
    });
}

#[test]
fn a_pending_error_thrown_into_a_tasklet_that_never_ran_reaches_run_as_its_uncaught_error() {
    on_thread(|| {
        let t = spawn(|| ()).unwrap();
        let id = t.id();
        t.throw_pending(Error::Thrown(Box::new(7u32))).unwrap();
        let e = scheduler::run().unwrap_err();
        match e {
            Error::Panicked { tasklet, payload } => {
                assert_eq!(tasklet, id);
                assert_eq!(payload.downcast_ref::<u32>(), Some(&7));
            }
            other => panic!("expected Error::Panicked, got {other:?}"),
        }
        assert!(!t.alive());
    });
}

#[test]
fn a_non_thrown_error_thrown_into_a_tasklet_that_never_ran_is_its_payload_boxed() {
    on_thread(|| {
        let t = spawn(|| ()).unwrap();
        let id = t.id();
        t.throw_pending(Error::Deadlock).unwrap();
        match scheduler::run().unwrap_err() {
            Error::Panicked { tasklet, payload } => {
                assert_eq!(tasklet, id);
                let inner = payload.downcast_ref::<Error>().expect("the error, boxed");
                assert!(matches!(inner, Error::Deadlock), "{inner:?}");
            }
            other => panic!("expected Error::Panicked, got {other:?}"),
        }
    });
}

/// The payload as a string, if it is one.
fn text(p: &Payload) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "?".into())
}

#[test]
fn the_handler_runs_in_the_dying_tasklet_and_swallows_its_panic() {
    on_thread(|| {
        let l = log();
        let l2 = l.clone();
        set_error_handler(Some(Rc::new(move |p| {
            let me = current();
            push(
                &l2,
                format!("handler in {} ({})", me.name().unwrap(), text(&p)),
            );
            assert!(me.alive() && me.scheduled() && !std::thread::panicking());
        })));
        let l3 = l.clone();
        let bad = spawn(|| panic!("bad")).unwrap();
        bad.set_name(Some("bad"));
        let other = spawn(move || {
            push(&l3, "other 1");
            schedule().unwrap();
            push(&l3, "other 2");
        })
        .unwrap();
        // Swallowed: nothing is routed to run().
        scheduler::run().unwrap();
        assert_eq!(taken(&l), ["handler in bad (bad)", "other 1", "other 2"]);
        assert!(!bad.alive() && !other.alive());
        assert!(bad.result::<()>().is_none());
        set_error_handler(None);
    });
}

#[test]
fn a_panic_in_the_handler_is_routed_as_the_tasklets_uncaught_error() {
    on_thread(|| {
        set_error_handler(Some(Rc::new(|p| {
            panic!("handler saw {}", text(&p));
        })));
        let t = spawn(|| panic!("first")).unwrap();
        let e = scheduler::run().unwrap_err();
        match &e {
            Error::Panicked { tasklet, .. } => assert_eq!(*tasklet, t.id()),
            other => panic!("expected Error::Panicked, got {other:?}"),
        }
        assert_eq!(e.payload_str(), Some("handler saw first"));
        assert_eq!(
            e.to_string(),
            format!("tasklet {} panicked: handler saw first", t.id())
        );
    });
}

#[test]
fn the_handler_is_not_called_for_a_kill_nor_for_a_tasklet_that_returns() {
    on_thread(|| {
        let calls = Rc::new(Cell::new(0));
        let c = calls.clone();
        set_error_handler(Some(Rc::new(move |_| c.set(c.get() + 1))));
        let looping = spawn(|| loop {
            schedule().unwrap();
        })
        .unwrap();
        spawn(|| 5).unwrap();
        schedule().unwrap();
        looping.kill().unwrap();
        // A tasklet killed before it ran, and one that panics with TaskletExit itself.
        Tasklet::new(|| ()).unwrap().kill().unwrap();
        spawn(|| panic::panic_any(TaskletExit)).unwrap();
        scheduler::run().unwrap();
        assert!(!looping.alive());
        assert_eq!(calls.get(), 0);
    });
}

#[test]
fn the_handler_sees_an_error_thrown_into_a_tasklet_that_never_ran() {
    on_thread(|| {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = seen.clone();
        set_error_handler(Some(Rc::new(move |p| s.borrow_mut().push(text(&p)))));
        let t = Tasklet::new(|| unreachable!("never runs")).unwrap();
        // Swallowed by the handler: the throw returns Ok to its caller.
        t.throw(Error::Thrown(Box::new("early"))).unwrap();
        let u = spawn(|| ()).unwrap();
        u.throw_pending(Error::Thrown(Box::new("early, pending")))
            .unwrap();
        scheduler::run().unwrap();
        assert_eq!(*seen.borrow(), ["early", "early, pending"]);
        assert!(!t.alive() && !u.alive());
    });
}

#[test]
fn the_handler_may_switch_and_block_and_the_tasklet_ends_when_it_returns() {
    on_thread(|| {
        let l = log();
        let ch: Channel<u32> = Channel::new();
        let (l2, ch2) = (l.clone(), ch.clone());
        set_error_handler(Some(Rc::new(move |p| {
            push(&l2, format!("handler: {}", text(&p)));
            schedule().unwrap();
            push(&l2, "handler after schedule");
            let v = ch2.receive().unwrap();
            push(&l2, format!("handler received {v}"));
        })));
        let bad = spawn(|| panic!("bad")).unwrap();
        let (l3, ch3) = (l.clone(), ch.clone());
        spawn(move || {
            push(&l3, "other runs while the handler waits");
            schedule().unwrap();
            push(&l3, "other sends");
            ch3.send(9).unwrap();
            push(&l3, "other done");
        })
        .unwrap();
        scheduler::run().unwrap();
        assert_eq!(
            taken(&l),
            [
                "handler: bad",
                "other runs while the handler waits",
                "handler after schedule",
                "other sends",
                "handler received 9",
                "other done",
            ]
        );
        assert!(!bad.alive());
    });
}

#[test]
fn a_tasklet_killed_while_its_handler_waits_ends_silently() {
    on_thread(|| {
        let l = log();
        let l2 = l.clone();
        set_error_handler(Some(Rc::new(move |_| {
            push(&l2, "handler waits");
            let r = schedule_remove();
            push(&l2, format!("handler resumed: {r:?}"));
        })));
        let t = spawn(|| panic!("bad")).unwrap();
        scheduler::run().unwrap();
        assert!(t.alive() && t.paused());
        // The kill unwinds the handler with TaskletExit: no error is routed to main.
        t.kill().unwrap();
        assert!(!t.alive());
        assert_eq!(taken(&l), ["handler waits"]);
    });
}

#[test]
fn a_handler_may_replace_itself_and_the_call_in_progress_finishes() {
    on_thread(|| {
        let l = log();
        let (l2, l3) = (l.clone(), l.clone());
        let second: ErrorHandler = Rc::new(move |p| push(&l3, format!("second: {}", text(&p))));
        let s2 = second.clone();
        let first: ErrorHandler = Rc::new(move |p| {
            let old = set_error_handler(Some(s2.clone())).expect("the first was installed");
            drop(old);
            // Still running, with its own captured state, after it was replaced and dropped.
            push(&l2, format!("first: {}", text(&p)));
        });
        set_error_handler(Some(first.clone()));
        let weak = Rc::downgrade(&first);
        drop(first);
        spawn(|| panic!("one")).unwrap();
        spawn(|| panic!("two")).unwrap();
        scheduler::run().unwrap();
        assert_eq!(taken(&l), ["first: one", "second: two"]);
        assert!(weak.upgrade().is_none(), "the replaced handler was dropped");
        assert!(Rc::ptr_eq(&error_handler().unwrap(), &second));
        set_error_handler(None);
    });
}

#[test]
fn a_handler_that_panics_with_tasklet_exit_ends_the_tasklet_silently() {
    on_thread(|| {
        set_error_handler(Some(Rc::new(|_| panic::panic_any(TaskletExit))));
        let t = spawn(|| panic!("bad")).unwrap();
        scheduler::run().unwrap();
        assert!(!t.alive());
    });
}

#[test]
fn the_handler_is_per_thread_and_the_getters_return_what_was_set() {
    on_thread(|| {
        assert!(error_handler().is_none());
        assert!(schedule_callback().is_none());
        let h: ErrorHandler = Rc::new(|_| ());
        assert!(set_error_handler(Some(h.clone())).is_none());
        assert!(Rc::ptr_eq(&error_handler().unwrap(), &h));
        let cb: ScheduleCallback = Rc::new(|_, _| ());
        assert!(set_schedule_callback(Some(cb.clone())).is_none());
        assert!(Rc::ptr_eq(&schedule_callback().unwrap(), &cb));
        // Another thread has neither; a panic there is routed as usual.
        std::thread::spawn(|| {
            assert!(error_handler().is_none() && schedule_callback().is_none());
            spawn(|| panic!("there")).unwrap();
            assert!(matches!(scheduler::run(), Err(Error::Panicked { .. })));
        })
        .join()
        .unwrap();
        let old = set_error_handler(None).unwrap();
        assert!(Rc::ptr_eq(&old, &h));
        let old = set_schedule_callback(None).unwrap();
        assert!(Rc::ptr_eq(&old, &cb));
        assert!(error_handler().is_none() && schedule_callback().is_none());
    });
}

#[test]
fn a_schedule_callback_that_removes_itself_keeps_running_to_its_end() {
    on_thread(|| {
        let l = log();
        let l2 = l.clone();
        let cb: ScheduleCallback = Rc::new(move |_, _| {
            assert!(set_schedule_callback(None).is_some());
            push(&l2, "callback finished");
        });
        let weak = Rc::downgrade(&cb);
        set_schedule_callback(Some(cb));
        spawn(|| ()).unwrap();
        scheduler::run().unwrap();
        // Called once (main -> t), then gone: the switch back to main saw no callback.
        assert_eq!(taken(&l), ["callback finished"]);
        assert!(weak.upgrade().is_none());
    });
}
