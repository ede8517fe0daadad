//! Stackless's tick watchdog (reference §2.6–2.7): `run_with(RunOptions)` budgets, hard and
//! soft interrupts, deferred interrupts, nested runs. Tick loops stand in for bytecode loops.
//! Each test runs on its own thread (the test harness's), so each has its own scheduler.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use microthread::scheduler::{
    self, atomic, current, run_with, set_schedule_callback, spawn, switch_trap, tick, ticks,
    RunOptions,
};
use microthread::{Channel, Error, Tasklet};

/// A tasklet that counts `n` ticks, recording how far it got before each one.
fn busy(n: u32, progress: &Rc<Cell<u32>>) -> Tasklet {
    let p = progress.clone();
    spawn(move || {
        for i in 1..=n {
            p.set(i);
            tick().unwrap();
        }
    })
    .unwrap()
}

#[test]
fn timeslice_cooperative_tasklets_finish_and_run_with_returns_none() {
    let done = Rc::new(Cell::new(0));
    for _ in 0..2 {
        let d = done.clone();
        spawn(move || {
            for _ in 0..50 {
                ticks(9).unwrap();
                scheduler::schedule().unwrap();
            }
            d.set(d.get() + 1);
        })
        .unwrap();
    }
    // Each slice is 9 ticks plus the schedule() call's own: never more than the budget.
    assert!(run_with(RunOptions::new().ticks(10)).unwrap().is_none());
    assert_eq!(done.get(), 2);
    assert_eq!(scheduler::runcount(), 1);
}

#[test]
fn timeslice_busy_tasklet_is_interrupted_after_exactly_its_budget() {
    let progress = Rc::new(Cell::new(0));
    let b = busy(1000, &progress);
    let victim = run_with(RunOptions::new().ticks(100)).unwrap();
    assert_eq!(victim, Some(b.clone()));
    // 100 ticks pass; the 101st interrupts, before it is counted.
    assert_eq!(progress.get(), 101);
    assert!(b.alive() && b.paused() && !b.scheduled());
    assert_eq!(scheduler::runcount(), 1, "the victim left the run queue");
    b.kill().unwrap();
}

#[test]
fn total_budget_covers_the_whole_call_even_when_tasklets_yield() {
    let finished = Rc::new(Cell::new(0));
    for _ in 0..2 {
        let f = finished.clone();
        spawn(move || {
            for _ in 0..50 {
                ticks(9).unwrap();
                scheduler::schedule().unwrap();
            }
            f.set(f.get() + 1);
        })
        .unwrap();
    }
    let victim = run_with(RunOptions::new().ticks(200).total(true)).unwrap();
    let victim = victim.expect("the total budget runs out before they finish");
    assert_eq!(finished.get(), 0);
    assert_eq!(scheduler::runcount(), 2, "main and the other tasklet");
    victim.insert().unwrap();
    scheduler::run().unwrap();
    assert_eq!(finished.get(), 2);
}

/// A computation whose locals live across many safe points.
fn checksum_work(safe_point: &dyn Fn()) -> u64 {
    let mut a: u64 = 1;
    let mut b: u64 = 7;
    let mut arr = [0u64; 16];
    for i in 0..2_000u64 {
        a = a.wrapping_mul(6364136223846793005).wrapping_add(i);
        b ^= a.rotate_left((i % 63) as u32);
        arr[(i % 16) as usize] = arr[(i % 16) as usize].wrapping_add(a ^ b);
        safe_point();
    }
    arr.iter().fold(a ^ b, |h, x| h.rotate_left(5) ^ x)
}

#[test]
fn hard_interrupted_tasklet_resumes_exactly_where_it_was_after_insert() {
    let expected = checksum_work(&|| ());
    let t = spawn(|| checksum_work(&|| tick().unwrap())).unwrap();
    let mut interrupts = 0;
    while let Some(v) = run_with(RunOptions::new().ticks(97)).unwrap() {
        assert_eq!(v, t);
        assert!(v.paused());
        interrupts += 1;
        v.insert().unwrap();
    }
    assert_eq!(interrupts, 2_000 / 98);
    assert_eq!(t.result::<u64>(), Some(expected), "its stack is intact");
}

#[test]
fn soft_interrupt_returns_none_with_every_tasklet_still_scheduled() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let mut ts = Vec::new();
    for name in ["A", "B"] {
        let log = log.clone();
        ts.push(
            spawn(move || {
                for i in 0..10 {
                    ticks(100).unwrap(); // over budget, but not cut
                    log.borrow_mut().push(format!("{name}{i}"));
                    scheduler::schedule().unwrap();
                }
            })
            .unwrap(),
        );
    }
    assert_eq!(
        run_with(RunOptions::new().ticks(10).soft(true)).unwrap(),
        None
    );
    // A used up its budget; at its first switch the watchdog ran instead of B.
    assert_eq!(*log.borrow(), ["A0"]);
    assert_eq!(scheduler::runcount(), 3);
    assert!(ts.iter().all(|t| t.scheduled()));
    // B is next: the watchdog was put just before the one that would have run.
    assert_eq!(current().next(), Some(ts[1].clone()));
    scheduler::run().unwrap();
    assert_eq!(log.borrow().len(), 20);
}

#[test]
fn soft_interrupt_passes_on_through_a_channel_switch_to_a_chosen_partner() {
    // preference -1 (the default): a sender switches to the receiver it wakes. A pending
    // soft interrupt then passes on to the receiver, which delivers it at its next switch.
    let ch = Channel::<u32>::new();
    let log = Rc::new(RefCell::new(Vec::new()));
    let (rx, l) = (ch.clone(), log.clone());
    let receiver = spawn(move || {
        let v = rx.receive().unwrap();
        l.borrow_mut().push(format!("got {v}"));
        scheduler::schedule().unwrap();
        l.borrow_mut().push("receiver again".to_string());
    })
    .unwrap();
    let l = log.clone();
    let sender = spawn(move || {
        ticks(100).unwrap();
        ch.send(5).unwrap();
        l.borrow_mut().push("sender after send".to_string());
    })
    .unwrap();
    assert_eq!(
        run_with(RunOptions::new().ticks(10).soft(true)).unwrap(),
        None
    );
    assert_eq!(
        *log.borrow(),
        ["got 5"],
        "the receiver ran, then the watchdog"
    );
    assert!(receiver.scheduled() && sender.scheduled());
    scheduler::run().unwrap();
    assert_eq!(log.borrow().len(), 3);
}

#[test]
fn atomic_defers_the_interrupt_to_the_first_safe_point_after_the_section() {
    let progress = Rc::new(Cell::new(0));
    let p = progress.clone();
    let t = spawn(move || {
        atomic(|| {
            for i in 1..=500 {
                p.set(i);
                tick().unwrap();
            }
        });
        for i in 501..=1000 {
            p.set(i);
            tick().unwrap();
        }
    })
    .unwrap();
    assert_eq!(
        run_with(RunOptions::new().ticks(10)).unwrap(),
        Some(t.clone())
    );
    assert_eq!(progress.get(), 501);
    t.kill().unwrap();
}

#[test]
fn set_atomic_false_with_a_pending_interrupt_fires_at_the_next_safe_point() {
    let progress = Rc::new(Cell::new(0));
    let p = progress.clone();
    let t = spawn(move || {
        let me = current();
        me.set_atomic(true);
        for i in 1..=100 {
            p.set(i);
            tick().unwrap();
        }
        me.set_atomic(false);
        p.set(1000);
        tick().unwrap();
        p.set(2000);
    })
    .unwrap();
    assert_eq!(
        run_with(RunOptions::new().ticks(10)).unwrap(),
        Some(t.clone())
    );
    assert_eq!(progress.get(), 1000);
    t.insert().unwrap();
    scheduler::run().unwrap();
    assert_eq!(progress.get(), 2000);
}

#[test]
fn switch_trap_defers_the_interrupt_until_the_trap_is_lifted() {
    // (The exact tick, Stackless's: tests/w_scenarios/deferral.rs.)
    let progress = Rc::new(Cell::new(0));
    let p = progress.clone();
    let t = spawn(move || {
        switch_trap(1);
        for i in 1..=300 {
            p.set(i);
            tick().unwrap(); // never refused, never switches
        }
        switch_trap(-1);
        for i in 301..=400 {
            p.set(i);
            tick().unwrap();
        }
    })
    .unwrap();
    assert_eq!(
        run_with(RunOptions::new().ticks(10)).unwrap(),
        Some(t.clone())
    );
    let cut = progress.get();
    assert!(
        (301..=311).contains(&cut),
        "not cut inside the trap, and within one budget after it: at {cut}"
    );
    t.kill().unwrap();
}

#[test]
fn an_interrupt_due_inside_the_schedule_callback_is_deferred_and_a_fresh_timeslice_forgets_it() {
    let mark = Rc::new(Cell::new(0));
    let m = mark.clone();
    let a = spawn(move || {
        m.set(1);
        scheduler::schedule().unwrap();
        m.set(2);
        tick().unwrap();
        m.set(3);
    })
    .unwrap();
    let b = spawn(|| {
        for _ in 0..5 {
            tick().unwrap();
        }
    })
    .unwrap();
    let a_id = a.id();
    set_schedule_callback(Some(Rc::new(move |prev: &Tasklet, _next: &Tasklet| {
        if prev.id() == a_id {
            // The budget runs out inside the callback: deferred.
            ticks(1_000).unwrap();
        }
    })));
    let victim = run_with(RunOptions::new().ticks(100)).unwrap();
    set_schedule_callback(None);
    // Stackless: deferred (pending_irq, the budget restarts); every switch restarts the
    // timeslice, and neither tasklet uses a whole one up again: nobody is interrupted.
    assert_eq!(victim, None);
    assert_eq!(mark.get(), 3);
    assert!(!a.alive() && !b.alive());
}

#[test]
fn nested_run_with_budget_behaves_like_run_and_the_outer_watchdog_wakes() {
    let progress = Rc::new(Cell::new(0));
    let p = progress.clone();
    let inner_victim = Rc::new(RefCell::new(None));
    let iv = inner_victim.clone();
    let b_slot: Rc<RefCell<Option<Tasklet>>> = Rc::new(RefCell::new(None));
    let bs = b_slot.clone();
    let w = spawn(move || {
        let p = p.clone();
        *bs.borrow_mut() = Some(busy(1000, &p));
        // Nested: main is the interrupt watchdog, so this budget is not used.
        let r = run_with(RunOptions::new().ticks(10)).unwrap();
        *iv.borrow_mut() = Some(r.map(|t| t.id()));
    })
    .unwrap();
    let victim = run_with(RunOptions::new().ticks(100)).unwrap();
    let b = b_slot.borrow().clone().unwrap();
    assert_eq!(
        victim,
        Some(b.clone()),
        "the outermost interrupt watchdog gets it"
    );
    assert_eq!(progress.get(), 101, "the outer budget applies");
    assert!(
        w.scheduled(),
        "popped with the outer run: an ordinary tasklet again"
    );
    assert!(
        inner_victim.borrow().is_none(),
        "the inner run has not returned yet"
    );
    b.kill().unwrap();
    scheduler::run().unwrap();
    assert_eq!(*inner_victim.borrow(), Some(None));
}

#[test]
fn run_with_from_a_non_main_tasklet() {
    let t = spawn(|| {
        let progress = Rc::new(Cell::new(0));
        let b = busy(1000, &progress);
        let v = run_with(RunOptions::new().ticks(50)).unwrap();
        let got = (v == Some(b.clone()), progress.get(), b.paused());
        b.kill().unwrap();
        got
    })
    .unwrap();
    scheduler::run().unwrap();
    assert_eq!(t.result::<(bool, u32, bool)>(), Some((true, 51, true)));
}

#[test]
fn errors_go_to_the_innermost_run() {
    let inner = Rc::new(RefCell::new(None));
    let i = inner.clone();
    let w = spawn(move || {
        let failing = spawn(|| -> () { panic!("boom") }).unwrap();
        let r = run_with(RunOptions::new());
        *i.borrow_mut() = Some(match r {
            Err(Error::Panicked { tasklet, .. }) => tasklet == failing.id(),
            _ => false,
        });
    })
    .unwrap();
    assert_eq!(run_with(RunOptions::new().ticks(1_000)).unwrap(), None);
    assert_eq!(*inner.borrow(), Some(true));
    assert!(!w.alive());
}

#[test]
fn no_watchdog_after_run_with_returns() {
    let progress = Rc::new(Cell::new(0));
    let b = busy(100, &progress);
    assert_eq!(
        run_with(RunOptions::new().ticks(10)).unwrap(),
        Some(b.clone())
    );
    b.insert().unwrap();
    // No budget now: the rest runs uninterrupted.
    scheduler::run().unwrap();
    assert_eq!(progress.get(), 100);
    assert!(!b.alive());
    for _ in 0..10_000 {
        tick().unwrap();
    }
}

#[test]
fn a_victim_killed_while_paused_unwinds_from_its_tick() {
    let reached = Rc::new(Cell::new(false));
    let r = reached.clone();
    let t = spawn(move || {
        for _ in 0..1000 {
            if tick().is_err() {
                r.set(true);
                return;
            }
        }
    })
    .unwrap();
    assert_eq!(
        run_with(RunOptions::new().ticks(5)).unwrap(),
        Some(t.clone())
    );
    t.kill().unwrap();
    assert!(!t.alive());
    assert!(!reached.get(), "a kill unwinds: tick() does not return");
}

#[test]
fn total_budget_a_deferred_interrupt_does_not_cut_the_next_tasklet_short() {
    let mark = Rc::new(Cell::new(0));
    let m = mark.clone();
    let a = spawn(move || {
        atomic(|| {
            ticks(50).unwrap(); // the budget runs out here: deferred
            scheduler::schedule().unwrap();
        });
        m.set(1);
        tick().unwrap(); // the first safe point after the section
        m.set(2);
    })
    .unwrap();
    let b = spawn(|| ticks(5).unwrap()).unwrap();
    let victim = run_with(RunOptions::new().ticks(10).total(true)).unwrap();
    assert_eq!(victim, Some(a.clone()));
    assert_eq!(mark.get(), 1);
    assert!(
        !b.alive(),
        "b ran its 5 ticks on the budget restarted at the deferral"
    );
    a.kill().unwrap();
}

/// Stackless restarts the budget at *every* deferral, each time it runs out again
/// (reference §2.7 and Appendix C `interrupt()`: `tick_watermark = tick_counter + interval`),
/// not only at the first. A tasklet that stays `atomic` for 2.5 budgets under a total budget
/// leaves the next tasklet what is left of the budget restarted at its last deferral; it was
/// cut at its first tick (the budget had been restarted once only). Found by
/// tests/prop_watchdog.rs with `set_atomic` steps.
#[test]
fn total_budget_restarts_at_every_deferral_so_the_next_tasklet_is_not_cut_at_once() {
    let a = spawn(|| {
        // Atomic to the end: no `set_atomic(false)`, so no interrupt is due in it.
        current().set_atomic(true);
        for _ in 0..25 {
            tick().unwrap(); // ticks 10 and 21 run the budget out: deferred, restarted
        }
    })
    .unwrap();
    let progress = Rc::new(Cell::new(0));
    let b = busy(5, &progress); // ticks 25-29, within the budget restarted at tick 21
    let victim = run_with(RunOptions::new().ticks(10).total(true)).unwrap();
    assert_eq!(victim, None, "nobody was interrupted");
    assert_eq!(progress.get(), 5);
    assert!(!a.alive() && !b.alive());
}

/// An interrupt deferred by `atomic` dies with the section when the section ends where no
/// watchdog is active: Stackless's `set_atomic(False)` clears `pending_irq` (reference §2.7,
/// Appendix C `set_atomic`), and nothing can fire it then. It used to outlive its run and cut
/// the tasklet at its first safe point in a later run, on a fresh budget.
#[test]
fn a_deferred_interrupt_does_not_outlive_an_atomic_section_ended_without_a_watchdog() {
    let progress = Rc::new(Cell::new(0));
    let p = progress.clone();
    let t = spawn(move || {
        let me = current();
        me.set_atomic(true);
        ticks(20).unwrap(); // run 1's budget of 10 runs out: deferred
        scheduler::schedule_remove().unwrap(); // still atomic: run 1 ends
        me.set_atomic(false); // under a plain run: no watchdog, nothing fires
        scheduler::schedule_remove().unwrap();
        for i in 1..=5 {
            p.set(i);
            tick().unwrap(); // well within run 3's budget
        }
    })
    .unwrap();
    assert_eq!(run_with(RunOptions::new().ticks(10)).unwrap(), None);
    t.insert().unwrap();
    scheduler::run().unwrap();
    assert!(t.paused() && !t.atomic());
    t.insert().unwrap();
    let victim = run_with(RunOptions::new().ticks(10)).unwrap();
    assert_eq!(victim, None, "nothing was due in run 3");
    assert_eq!(progress.get(), 5);
    assert!(!t.alive());
}
