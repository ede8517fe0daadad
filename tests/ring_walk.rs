//! Walking the run queue with `Tasklet::next` / `prev` (Stackless `t.next` / `t.prev`): from
//! `current()` it lists the run queue in the order it runs, `runcount()` tasklets, after
//! `run()` and `switch()` jumps too; tasklets outside the run queue have no neighbours.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::on_thread;
use microthread::scheduler::{self, current, main, runcount, spawn};
use microthread::{Channel, Tasklet};

/// The run queue from `current()` in the order it runs, by `next`.
fn walk() -> Vec<Tasklet> {
    let start = current();
    let mut order = vec![start.clone()];
    loop {
        let n = order
            .last()
            .unwrap()
            .next()
            .expect("a ring member has a next");
        if n == start {
            return order;
        }
        assert!(order.len() <= 64, "the ring does not close");
        order.push(n);
    }
}

/// The same by `prev`, reversed into running order.
fn walk_back() -> Vec<Tasklet> {
    let start = current();
    let mut back = vec![start.clone()];
    loop {
        let p = back
            .last()
            .unwrap()
            .prev()
            .expect("a ring member has a prev");
        if p == start {
            break;
        }
        assert!(back.len() <= 64, "the ring does not close");
        back.push(p);
    }
    back[1..].reverse();
    back
}

fn names(ts: &[Tasklet]) -> Vec<String> {
    ts.iter().map(|t| t.name().unwrap_or_default()).collect()
}

fn named(name: &str, f: impl FnOnce() + 'static) -> Tasklet {
    let t = spawn(f).unwrap();
    t.set_name(Some(name));
    t
}

#[test]
fn alone_main_is_its_own_neighbour() {
    on_thread(|| {
        let m = main();
        assert_eq!(m.next(), Some(m.clone()));
        assert_eq!(m.prev(), Some(m.clone()));
        assert_eq!(walk().len(), 1);
        assert_eq!(runcount(), 1);
    });
}

#[test]
fn from_main_the_walk_is_the_round_robin_order_and_runcount_long() {
    on_thread(|| {
        main().set_name(Some("main"));
        let _a = named("A", || ());
        let _b = named("B", || ());
        let _c = named("C", || ());
        assert_eq!(names(&walk()), ["main", "A", "B", "C"]);
        assert_eq!(names(&walk_back()), ["main", "A", "B", "C"]);
        assert_eq!(walk().len(), runcount());
        scheduler::run().unwrap();
    });
}

#[test]
fn inside_run_main_is_not_in_the_walk() {
    on_thread(|| {
        main().set_name(Some("main"));
        let seen = Rc::new(RefCell::new(Vec::new()));
        for name in ["A", "B", "C"] {
            let seen = seen.clone();
            named(name, move || {
                seen.borrow_mut().push((names(&walk()), runcount()));
            });
        }
        scheduler::run().unwrap();
        let seen = seen.borrow();
        // Each sees itself first, the ones after it, and not main (paused inside run()).
        assert_eq!(seen[0], (vec!["A".into(), "B".into(), "C".into()], 3));
        assert_eq!(seen[1], (vec!["B".into(), "C".into()], 2));
        assert_eq!(seen[2], (vec!["C".into()], 1));
        assert!(main().next().is_some(), "back in the ring after run()");
    });
}

#[test]
fn after_a_run_jump_the_walk_starts_at_the_target_and_keeps_the_ring() {
    on_thread(|| {
        main().set_name(Some("main"));
        let seen = Rc::new(RefCell::new(Vec::new()));
        let mut ts = Vec::new();
        for name in ["A", "B", "C"] {
            let seen = seen.clone();
            ts.push(named(name, move || {
                seen.borrow_mut().push(names(&walk()));
                scheduler::schedule_remove().unwrap();
            }));
        }
        // Queue main, A, B, C; main runs B: the cursor jumps without relinking.
        ts[1].run().unwrap();
        let seen = seen.borrow();
        assert_eq!(seen[0], ["B", "C", "main", "A"]);
        // B removed itself: C sees C, main, A.
        assert_eq!(seen[1], ["C", "main", "A"]);
        // Back in main: A still waits, B and C are paused.
        assert_eq!(names(&walk()), ["main", "A"]);
        assert!(ts[1].next().is_none() && ts[1].prev().is_none());
        assert_eq!(walk().len(), runcount());
    });
}

#[test]
fn after_a_switch_the_caller_is_out_of_the_walk() {
    on_thread(|| {
        main().set_name(Some("main"));
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = seen.clone();
        let a = named("A", || ());
        let b = named("B", move || {
            s.borrow_mut()
                .push((names(&walk()), runcount(), main().next().is_none()));
            main().insert().unwrap();
        });
        b.switch().unwrap();
        let seen = seen.borrow();
        // main left the ring where it was: B, then A (A's turn comes after B in ring order).
        assert_eq!(seen[0], (vec!["B".into(), "A".into()], 2, true));
        drop(a);
    });
}

#[test]
fn tasklets_outside_the_run_queue_have_no_neighbours() {
    on_thread(|| {
        let paused = Tasklet::new(|| ()).unwrap();
        assert!(paused.next().is_none() && paused.prev().is_none());
        let dead = spawn(|| ()).unwrap();
        scheduler::run().unwrap();
        assert!(!dead.alive());
        assert!(dead.next().is_none() && dead.prev().is_none());
        // Blocked: its channel's queue gives its order, not next/prev.
        let ch = Channel::<u8>::new();
        let (r1, r2) = (ch.clone(), ch.clone());
        let b1 = spawn(move || r1.receive().unwrap()).unwrap();
        let b2 = spawn(move || r2.receive().unwrap()).unwrap();
        scheduler::run().unwrap();
        assert!(b1.blocked() && b2.blocked());
        assert!(b1.next().is_none() && b2.prev().is_none());
        assert_eq!(ch.queue(), [b1.id(), b2.id()]);
        ch.send(1).unwrap();
        ch.send(2).unwrap();
        assert_eq!((b1.result::<u8>(), b2.result::<u8>()), (Some(1), Some(2)));
        assert_eq!(walk().len(), runcount());
    });
}

#[test]
fn neighbours_follow_inserts_and_removes() {
    on_thread(|| {
        main().set_name(Some("main"));
        let a = named("A", || ());
        let b = named("B", || ());
        let c = named("C", || ());
        b.remove().unwrap();
        assert_eq!(a.next(), Some(c.clone()));
        assert_eq!(c.prev(), Some(a.clone()));
        b.insert().unwrap();
        assert_eq!(names(&walk()), ["main", "A", "C", "B"]);
        assert_eq!(b.next(), Some(main()));
        assert_eq!(runcount(), 4);
        scheduler::run().unwrap();
    });
}
