//! Scenario tests for the scheduler: ring order, run/switch/insert/remove, kill, throw,
//! error routing, nested run, deadlock and thread end (Stackless reference §2 and App. A–D).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use microthread::scheduler::{self, current, runcount, schedule, schedule_remove, spawn};
use microthread::{Error, Tasklet};

mod common;
use common::{log, on_thread, push, taken, PushOnDrop};

#[test]
fn new_tasklets_run_in_creation_order_round_robin() {
    on_thread(|| {
        let l = log();
        for n in ["A", "B", "C"] {
            let l = l.clone();
            spawn(move || {
                for i in 1..=2 {
                    push(&l, format!("{n}{i}"));
                    schedule().unwrap();
                }
            })
            .unwrap();
        }
        assert_eq!(runcount(), 4);
        scheduler::run().unwrap();
        assert_eq!(taken(&l), ["A1", "B1", "C1", "A2", "B2", "C2"]);
        assert_eq!(runcount(), 1);
    });
}

#[test]
fn schedule_from_main_is_round_robin_with_the_others() {
    on_thread(|| {
        let l = log();
        for n in ["A", "B"] {
            let l = l.clone();
            spawn(move || {
                push(&l, format!("{n}1"));
                schedule().unwrap();
                push(&l, format!("{n}2"));
            })
            .unwrap();
        }
        schedule().unwrap();
        push(&l, "main-back");
        schedule().unwrap();
        push(&l, "main-back2");
        assert_eq!(
            taken(&l),
            ["A1", "B1", "main-back", "A2", "B2", "main-back2"]
        );
    });
}

#[test]
fn run_jumps_to_its_target_and_the_ring_between_runs_first() {
    on_thread(|| {
        let l = log();
        let mk = |n: &'static str| {
            let l = l.clone();
            spawn(move || push(&l, n)).unwrap()
        };
        let _a = mk("A");
        let b = mk("B");
        let _c = mk("C");
        b.run().unwrap();
        push(&l, "main");
        assert_eq!(taken(&l), ["B", "C", "main"]);
        schedule().unwrap();
        assert_eq!(taken(&l), ["A"]);
    });
}

#[test]
fn run_of_a_paused_tasklet_comes_back_to_the_caller() {
    on_thread(|| {
        let l = log();
        let l2 = l.clone();
        let y = Tasklet::new(move || {
            push(&l2, "Y1");
            schedule().unwrap();
            push(&l2, "Y2");
        })
        .unwrap();
        let l3 = l.clone();
        spawn(move || push(&l3, "Z")).unwrap();
        assert!(y.paused());
        push(&l, "X1");
        y.run().unwrap();
        push(&l, "X2");
        schedule().unwrap();
        push(&l, "X3");
        assert_eq!(taken(&l), ["X1", "Y1", "X2", "Z", "Y2", "X3"]);
    });
}

#[test]
fn switch_pauses_the_caller() {
    on_thread(|| {
        let l = log();
        let main = current();
        let l2 = l.clone();
        let t = Tasklet::new(move || {
            push(&l2, "t");
            assert!(main.paused());
            main.switch().unwrap();
            push(&l2, "t again");
        })
        .unwrap();
        t.switch().unwrap();
        push(&l, "main");
        assert!(t.paused());
        assert_eq!(runcount(), 1);
        t.switch().unwrap();
        assert_eq!(taken(&l), ["t", "main", "t again"]);
        assert!(!t.alive());
        current().switch().unwrap(); // to oneself: a no-op
    });
}

#[test]
fn schedule_remove_pauses_and_insert_resumes() {
    on_thread(|| {
        let l = log();
        let l2 = l.clone();
        let t = spawn(move || {
            push(&l2, "a");
            schedule_remove().unwrap();
            push(&l2, "b");
        })
        .unwrap();
        scheduler::run().unwrap();
        assert!(t.alive() && t.paused() && !t.scheduled());
        t.insert().unwrap();
        assert!(t.scheduled());
        scheduler::run().unwrap();
        assert_eq!(taken(&l), ["a", "b"]);
        // Lone main: returns at once, main back in the ring.
        schedule_remove().unwrap();
        assert_eq!(runcount(), 1);
    });
}

struct Counted(Rc<Cell<u32>>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn kill_of_a_scheduled_tasklet_runs_its_destructors_then_the_ring_continues() {
    on_thread(|| {
        let l = log();
        let drops = Rc::new(Cell::new(0));
        let (l2, d) = (l.clone(), drops.clone());
        let v = spawn(move || {
            let _g = Counted(d);
            loop {
                schedule().unwrap();
            }
        })
        .unwrap();
        v.run().unwrap();
        let l3 = l.clone();
        spawn(move || push(&l3, "X")).unwrap();
        v.kill().unwrap();
        push(&l2, "main after kill");
        assert_eq!(taken(&l), ["X", "main after kill"]);
        assert_eq!(drops.get(), 1);
        assert!(!v.alive());
        v.kill().unwrap(); // dead: no-op
    });
}

#[test]
fn kill_of_a_floating_tasklet_runs_it_before_main() {
    on_thread(|| {
        let l = log();
        let l2 = l.clone();
        let v = spawn(move || {
            let _f = PushOnDrop(l2, "v finally");
            schedule_remove().unwrap();
        })
        .unwrap();
        v.run().unwrap();
        let l3 = l.clone();
        spawn(move || push(&l3, "X")).unwrap();
        v.kill().unwrap();
        push(&l, "main");
        schedule().unwrap();
        assert_eq!(taken(&l), ["v finally", "main", "X"]);
    });
}

#[test]
fn killing_a_tasklet_that_never_ran_discards_it() {
    on_thread(|| {
        let drops = Rc::new(Cell::new(0));
        let c = Counted(drops.clone());
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let t = spawn(move || {
            let _c = c;
            r.set(true);
        })
        .unwrap();
        t.kill().unwrap();
        assert!(!t.alive() && !t.scheduled());
        assert_eq!(drops.get(), 1);
        assert_eq!(runcount(), 1);
        scheduler::run().unwrap();
        assert!(!ran.get());
    });
}

#[test]
fn kill_pending_lets_the_caller_continue() {
    on_thread(|| {
        let l = log();
        let l2 = l.clone();
        let t = spawn(move || {
            let _f = PushOnDrop(l2, "unwound");
            schedule_remove().unwrap();
        })
        .unwrap();
        scheduler::run().unwrap();
        t.kill_pending().unwrap();
        push(&l, "caller continues");
        assert!(t.scheduled());
        scheduler::run().unwrap();
        assert_eq!(taken(&l), ["caller continues", "unwound"]);
    });
}

#[test]
fn throw_delivers_an_error_at_the_suspension_point() {
    on_thread(|| {
        let got = Rc::new(RefCell::new(None));
        let g = got.clone();
        let t = spawn(move || {
            let r = schedule_remove();
            *g.borrow_mut() = Some(r.unwrap_err().payload_str().unwrap().to_string());
        })
        .unwrap();
        scheduler::run().unwrap();
        t.throw(Error::Thrown(Box::new("bad"))).unwrap();
        assert_eq!(got.borrow().as_deref(), Some("bad"));
        assert!(!t.alive());
        assert_eq!(
            t.throw(Error::Thrown(Box::new(1))).unwrap_err().to_string(),
            "You cannot throw to a dead tasklet"
        );
        let e = current()
            .throw(Error::Thrown(Box::new("self")))
            .unwrap_err();
        assert_eq!(e.payload_str(), Some("self"));
    });
}

#[test]
fn a_panic_escaping_a_tasklet_goes_to_run_and_the_others_stay_scheduled() {
    on_thread(|| {
        let l = log();
        let l2 = l.clone();
        let looper = spawn(move || loop {
            push(&l2, "loop");
            schedule().unwrap();
        })
        .unwrap();
        let bad = spawn(|| panic!("bad tasklet")).unwrap();
        let e = scheduler::run().unwrap_err();
        match &e {
            Error::Panicked { tasklet, .. } => assert_eq!(*tasklet, bad.id()),
            other => panic!("unexpected {other}"),
        }
        assert_eq!(e.payload_str(), Some("bad tasklet"));
        assert!(looper.alive() && looper.scheduled());
        assert_eq!(runcount(), 2);
        looper.kill().unwrap();
    });
}

#[test]
fn nested_run_gets_the_error_of_its_own_tasklets() {
    on_thread(|| {
        let outer_result = Rc::new(RefCell::new(None));
        let o = outer_result.clone();
        spawn(move || {
            spawn(|| panic!("inner")).unwrap();
            let r = scheduler::run();
            *o.borrow_mut() = Some(r.unwrap_err().payload_str().unwrap().to_string());
        })
        .unwrap();
        scheduler::run().unwrap();
        assert_eq!(outer_result.borrow().as_deref(), Some("inner"));
    });
}

#[test]
fn results_are_kept_for_whoever_asks() {
    on_thread(|| {
        let t = spawn(|| String::from("value")).unwrap();
        assert_eq!(t.result::<String>(), None);
        scheduler::run().unwrap();
        assert_eq!(t.result::<u32>(), None);
        assert_eq!(t.result::<String>().as_deref(), Some("value"));
        assert_eq!(t.result::<String>(), None);
    });
}

#[test]
fn misuse_errors_carry_stackless_sentences() {
    on_thread(|| {
        let e = current().remove().unwrap_err();
        assert_eq!(e.to_string(), "The current tasklet cannot be removed.");
        let t = spawn(|| ()).unwrap();
        scheduler::run().unwrap();
        assert_eq!(
            t.insert().unwrap_err().to_string(),
            "You cannot run an unbound(dead) tasklet"
        );
        assert_eq!(
            t.run().unwrap_err().to_string(),
            "You cannot run an unbound(dead) tasklet"
        );
        let u = spawn(|| ()).unwrap();
        assert_eq!(scheduler::switch_trap(1), 0);
        assert_eq!(schedule().unwrap_err().to_string(), "switch_trap");
        assert_eq!(u.run().unwrap_err().to_string(), "switch_trap");
        u.insert().unwrap(); // no switch: allowed
        assert_eq!(scheduler::switch_trap(-1), 1);
        scheduler::run().unwrap();
    });
}

#[test]
fn the_schedule_callback_sees_every_switch() {
    on_thread(|| {
        let seen: Rc<RefCell<Vec<(bool, bool)>>> = Rc::default();
        let s = seen.clone();
        scheduler::set_schedule_callback(Some(Rc::new(move |prev, next| {
            s.borrow_mut().push((prev.is_main(), next.is_main()));
            assert_eq!(
                scheduler::schedule().unwrap_err().to_string(),
                "Recursive scheduler call due to callbacks!"
            );
        })));
        spawn(|| ()).unwrap();
        scheduler::run().unwrap();
        scheduler::set_schedule_callback(None);
        assert_eq!(*seen.borrow(), [(true, false), (false, true)]);
    });
}

#[test]
fn tasklets_still_alive_when_their_thread_ends_are_killed_with_destructors_run() {
    let drops = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let d = drops.clone();
    on_thread(move || {
        struct C(std::sync::Arc<std::sync::atomic::AtomicU32>);
        impl Drop for C {
            fn drop(&mut self) {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        for _ in 0..3 {
            let c = C(d.clone());
            spawn(move || {
                let _c = c;
                loop {
                    schedule().unwrap();
                }
            })
            .unwrap();
        }
        let c = C(d.clone());
        Tasklet::new(move || drop(c)).unwrap(); // never runs
        let c = C(d.clone());
        spawn(move || {
            let _c = c;
            schedule_remove().unwrap();
        })
        .unwrap();
        schedule().unwrap();
    });
    assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 5);
}
