//! `tempval` and `schedule(retval)`: `schedule_with` / `schedule_remove_with` return what
//! another tasklet put in the caller's `tempval` while it was away, or the caller's own value;
//! the `tempval` is empty once a tasklet has ended, and what it held is dropped on the
//! tasklet's own thread, outside any switch.

mod common;

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use common::on_thread;
use microthread::scheduler::{
    self, current, main, schedule_remove_with, schedule_with, spawn, switch_trap,
};
use microthread::{Error, Tasklet};

fn as_i32(v: Box<dyn Any>) -> Option<i32> {
    v.downcast::<i32>().ok().map(|b| *b)
}

#[test]
fn schedule_with_returns_the_callers_own_value_when_nobody_touches_it() {
    on_thread(|| {
        // Alone: no switch, the value comes straight back.
        assert_eq!(as_i32(schedule_with(Box::new(1)).unwrap()), Some(1));
        // With another tasklet that does not touch it: a full round, same value.
        let other = spawn(|| ()).unwrap();
        assert_eq!(as_i32(schedule_with(Box::new(2)).unwrap()), Some(2));
        assert!(!other.alive());
        assert!(!main().has_tempval(), "taken by the call");
    });
}

#[test]
fn schedule_with_returns_what_another_tasklet_put_in_the_tempval() {
    on_thread(|| {
        let me = current();
        let saw = Rc::new(RefCell::new(None));
        let s = saw.clone();
        spawn(move || {
            // While main is away its tempval holds main's value.
            *s.borrow_mut() = me.take_tempval().and_then(as_i32);
            assert!(me.set_tempval(Box::new(20)).is_none());
        })
        .unwrap();
        assert_eq!(as_i32(schedule_with(Box::new(10)).unwrap()), Some(20));
        assert_eq!(*saw.borrow(), Some(10));
    });
}

#[test]
fn set_tempval_then_insert_returns_a_value_from_schedule_remove_with() {
    on_thread(|| {
        let got = Rc::new(RefCell::new(Vec::new()));
        let g = got.clone();
        let t = spawn(move || {
            for _ in 0..3 {
                let v = schedule_remove_with(Box::new(-1)).unwrap();
                g.borrow_mut().push(as_i32(v));
            }
        })
        .unwrap();
        scheduler::run().unwrap();
        for x in [7, 8] {
            assert_eq!(t.set_tempval(Box::new(x)).and_then(as_i32), Some(-1));
            t.insert().unwrap();
            scheduler::run().unwrap();
        }
        // Inserted without a new value: its own comes back.
        t.insert().unwrap();
        scheduler::run().unwrap();
        assert_eq!(*got.borrow(), [Some(7), Some(8), Some(-1)]);
        assert!(!t.alive());
    });
}

#[test]
fn a_tempval_taken_while_away_comes_back_as_unit() {
    on_thread(|| {
        let t = spawn(|| schedule_remove_with(Box::new(5)).unwrap().is::<()>()).unwrap();
        scheduler::run().unwrap();
        assert_eq!(t.take_tempval().and_then(as_i32), Some(5));
        t.insert().unwrap();
        scheduler::run().unwrap();
        assert_eq!(t.result::<bool>(), Some(true));
    });
}

#[test]
fn a_refused_schedule_with_leaves_the_value_in_the_tempval() {
    on_thread(|| {
        let _other = spawn(|| ()).unwrap();
        switch_trap(1);
        let r = schedule_with(Box::new(3));
        switch_trap(-1);
        assert!(matches!(r, Err(Error::SwitchTrap)));
        assert_eq!(current().take_tempval().and_then(as_i32), Some(3));
        scheduler::run().unwrap();
    });
}

#[test]
fn an_error_delivered_while_away_leaves_the_value_in_the_tempval() {
    on_thread(|| {
        let t = spawn(|| {
            let r = schedule_remove_with(Box::new(4));
            (r.is_err(), current().take_tempval().and_then(as_i32))
        })
        .unwrap();
        scheduler::run().unwrap();
        t.set_tempval(Box::new(40));
        t.throw(Error::Thrown(Box::new("stop"))).unwrap();
        assert_eq!(t.result::<(bool, Option<i32>)>(), Some((true, Some(40))));
    });
}

/// Counts its drops and checks that it is dropped on the thread that made it, where the
/// scheduler can be used (not in the middle of a switch).
struct Tracked {
    drops: Arc<AtomicUsize>,
    thread: std::thread::ThreadId,
}

impl Tracked {
    fn new(drops: &Arc<AtomicUsize>) -> Box<Tracked> {
        Box::new(Tracked {
            drops: drops.clone(),
            thread: std::thread::current().id(),
        })
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        assert_eq!(
            std::thread::current().id(),
            self.thread,
            "dropped on another thread"
        );
        // Any scheduler call is fine here: the drop runs where every invariant holds.
        let _ = scheduler::runcount();
        let _ = scheduler::schedule();
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn the_tempval_is_empty_once_the_tasklet_ends_and_dropped_outside_the_switch() {
    on_thread(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        let t = spawn(move || {
            current().set_tempval(Tracked::new(&d));
        })
        .unwrap();
        let bystander = spawn(|| 1).unwrap();
        scheduler::run().unwrap();
        assert!(
            !t.alive() && !t.has_tempval(),
            "Stackless: None after the end"
        );
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert_eq!(bystander.result::<i32>(), Some(1));
        assert_eq!(scheduler::runcount(), 1);
    });
}

#[test]
fn a_tempval_set_by_the_schedule_callback_of_a_dying_tasklet_is_dropped_too() {
    on_thread(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        let t = spawn(|| ()).unwrap();
        let id = t.id();
        let armed = Rc::new(Cell::new(true));
        let a = armed.clone();
        scheduler::set_schedule_callback(Some(Rc::new(move |prev: &Tasklet, _next: &Tasklet| {
            if prev.id() == id && !prev.alive() && a.replace(false) {
                prev.set_tempval(Tracked::new(&d));
            }
        })));
        drop(t); // nobody holds it: its allocation goes once it has ended
        scheduler::run().unwrap();
        scheduler::set_schedule_callback(None);
        scheduler::schedule().unwrap();
        assert!(!armed.get(), "the callback saw the dying tasklet");
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn a_tempval_set_on_a_dead_tasklet_is_dropped_on_its_thread_with_its_last_handle() {
    on_thread(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let t = spawn(|| ()).unwrap();
        scheduler::run().unwrap();
        t.set_tempval(Tracked::new(&drops));
        // Another thread holds the last counted reference: the value must not go with it.
        let remote = t.remote();
        let (tx, rx) = mpsc::channel();
        let holder = std::thread::spawn(move || {
            rx.recv().unwrap();
            drop(remote);
        });
        drop(t);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        tx.send(()).unwrap();
        holder.join().unwrap();
        // A paused tasklet that never ran, dropped with a value in its tempval.
        let p = Tasklet::new(|| ()).unwrap();
        p.set_tempval(Tracked::new(&drops));
        drop(p);
        assert_eq!(drops.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn set_tempval_returns_the_old_value_and_take_empties_it() {
    on_thread(|| {
        let t = Tasklet::new(|| ()).unwrap();
        assert!(!t.has_tempval() && t.take_tempval().is_none());
        assert!(t.set_tempval(Box::new(1)).is_none());
        assert!(t.has_tempval());
        assert_eq!(t.set_tempval(Box::new(2)).and_then(as_i32), Some(1));
        assert_eq!(t.take_tempval().and_then(as_i32), Some(2));
        assert!(!t.has_tempval());
    });
}
