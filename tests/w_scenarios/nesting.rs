//! W scenarios of the watchdog stack (reference §2.5–2.6): nested runs, who is woken, and
//! what `run` returns.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use microthread::scheduler::{self, run, run_with, spawn, tick, ticks, RunOptions};
use microthread::{Error, Tasklet};

use crate::common::{log, push, taken};

/// W13 (§2.6): `run()` called by a worker while main only `schedule()`s: main is an ordinary
/// tasklet in the ring; the worker's `run()` returns only when someone runs it (here main,
/// at the end), not while main and the others keep the ring non-empty.
#[test]
fn run_from_a_worker_waits_while_main_schedules_like_any_tasklet() {
    let l = log();
    let lw = l.clone();
    let w = spawn(move || {
        push(&lw, "W run");
        let r = run();
        push(&lw, format!("W back {}", r.is_ok()));
    })
    .unwrap();
    let lx = l.clone();
    spawn(move || {
        push(&lx, "X1");
        scheduler::schedule().unwrap();
        push(&lx, "X2");
    })
    .unwrap();
    push(&l, "main");
    scheduler::schedule().unwrap();
    push(&l, "main back");
    scheduler::schedule().unwrap();
    push(&l, "main back2");
    assert_eq!(
        taken(&l),
        ["main", "W run", "X1", "main back", "X2", "main back2"]
    );
    assert!(w.alive() && w.paused(), "W still waits inside run()");
    assert_eq!(scheduler::runcount(), 1);
    w.run().unwrap();
    assert_eq!(taken(&l), ["W back true"]);
    assert!(!w.alive());
}

/// W14 (§2.6): an inner `run()` (in W, under main's `run()`) completes first; inside its
/// continuation main is still paused, and the outer `run()` returns when the ring empties
/// again.
#[test]
fn the_inner_run_returns_first_and_the_outer_caller_stays_paused() {
    let l = log();
    let seen = Rc::new(Cell::new(None));
    let (lw, s) = (l.clone(), seen.clone());
    spawn(move || {
        let lx = lw.clone();
        spawn(move || push(&lx, "X")).unwrap();
        run().unwrap();
        push(&lw, "inner returned");
        let m = scheduler::main();
        s.set(Some((m.paused(), m.scheduled(), scheduler::runcount())));
    })
    .unwrap();
    run_with(RunOptions::new()).unwrap();
    push(&l, "outer returned");
    assert_eq!(taken(&l), ["X", "inner returned", "outer returned"]);
    assert_eq!(
        seen.get(),
        Some((true, false, 1)),
        "main paused, only W in the ring"
    );
}

/// W15 (§2.6): three nested `run()`s (main, W1, W2); as the ring empties the innermost
/// watchdog is woken first, then the next one out.
#[test]
fn nested_watchdogs_are_woken_innermost_first_as_the_ring_empties() {
    let l = log();
    let l1 = l.clone();
    spawn(move || {
        let l2 = l1.clone();
        spawn(move || {
            let ly = l2.clone();
            spawn(move || push(&ly, "Y")).unwrap();
            run().unwrap();
            push(&l2, "W2 back");
        })
        .unwrap();
        run().unwrap();
        push(&l1, "W1 back");
    })
    .unwrap();
    run().unwrap();
    push(&l, "main back");
    assert_eq!(taken(&l), ["Y", "W2 back", "W1 back", "main back"]);
}

/// W16 (§2.6, §8.1 item 1): run flags are installed only by the run that becomes the
/// interrupt watchdog. A nested `run_with(soft)` under main's hard budget does not make the
/// interrupt soft: the busy tasklet is cut and handed to main, and the nested run (popped by
/// main's) has not returned.
#[test]
fn a_nested_run_s_soft_flag_is_ignored_the_outer_hard_watchdog_interrupts() {
    let progress = Rc::new(Cell::new(0u32));
    let busy_slot: Rc<RefCell<Option<Tasklet>>> = Rc::default();
    let inner = Rc::new(Cell::new(None));
    let (p, bs, i) = (progress.clone(), busy_slot.clone(), inner.clone());
    let w = spawn(move || {
        *bs.borrow_mut() = Some(
            spawn(move || {
                for n in 1..=1_000 {
                    p.set(n);
                    tick().unwrap();
                }
            })
            .unwrap(),
        );
        let r = run_with(RunOptions::new().ticks(5).soft(true)).unwrap();
        i.set(Some(r.is_none()));
    })
    .unwrap();
    let victim = run_with(RunOptions::new().ticks(100)).unwrap();
    let b = busy_slot.borrow().clone().unwrap();
    assert_eq!(victim, Some(b.clone()), "hard: cut and returned to main");
    assert_eq!(progress.get(), 101, "main's budget of 100, not the inner 5");
    assert!(w.scheduled(), "popped by main's run: an ordinary tasklet");
    assert_eq!(inner.get(), None, "the nested run has not returned");
    b.kill().unwrap();
    run().unwrap();
    assert_eq!(inner.get(), Some(true));
}

/// W17 (§2.6 resume reason 5): a tasklet runs the waiting watchdog (`main.run()`):
/// `run(timeout)` returns None, the tasklet that did it stays scheduled, and the budget ends
/// with the run.
#[test]
fn a_tasklet_that_runs_the_watchdog_makes_run_return_none_and_stays_scheduled() {
    let l = log();
    let la = l.clone();
    let a = spawn(move || {
        push(&la, "A");
        scheduler::main().run().unwrap();
        push(&la, "A after");
    })
    .unwrap();
    assert_eq!(run_with(RunOptions::new().ticks(1_000)).unwrap(), None);
    assert_eq!(taken(&l), ["A"]);
    assert!(a.scheduled());
    assert_eq!(scheduler::runcount(), 2);
    // No budget any more: main's own ticks are never interrupted.
    ticks(10_000).unwrap();
    tick().unwrap();
    run().unwrap();
    assert_eq!(taken(&l), ["A after"]);
}

/// W18 (§2.5–2.6; Stackless `[run]`: `loop` and `bad` under `run()`): a tasklet panics
/// under `run(timeout)`; `run` returns its error, the ring keeps main and `loop`, which is
/// still alive; a second run finishes it.
#[test]
fn a_panic_under_a_budget_is_returned_by_run_and_the_others_stay_scheduled() {
    let l = log();
    let ll = l.clone();
    let lp = spawn(move || {
        for i in 0..3 {
            push(&ll, format!("L{i}"));
            scheduler::schedule().unwrap();
        }
    })
    .unwrap();
    let bad = spawn(|| -> () { panic!("bad tasklet") }).unwrap();
    match run_with(RunOptions::new().ticks(1_000)) {
        Err(Error::Panicked { tasklet, .. }) => assert_eq!(tasklet, bad.id()),
        other => panic!("expected bad's panic, got {other:?}"),
    }
    assert_eq!(taken(&l), ["L0"]);
    assert_eq!(scheduler::runcount(), 2, "main and loop");
    assert!(lp.alive() && lp.scheduled());
    assert!(!bad.alive());
    assert_eq!(run_with(RunOptions::new().ticks(1_000)).unwrap(), None);
    assert_eq!(taken(&l), ["L1", "L2"]);
    assert!(!lp.alive());
}

/// An outer `run()` woken while an inner one waits above it (a tasklet runs main, the outer
/// caller): main's `run` returns and pops the inner caller W too, which goes back into the
/// ring (it continues as an ordinary tasklet) and returns from its own `run` when it next
/// runs, with nobody left waiting in `run()` in between, and leaves main's next `run()` alone.
#[test]
fn an_outer_run_woken_first_pops_the_inner_caller_which_returns_from_its_run_later() {
    let l = log();
    let (lw, lx) = (l.clone(), l.clone());
    let w = spawn(move || {
        let lx = lx.clone();
        spawn(move || {
            push(&lx, "X runs main");
            scheduler::main().run().unwrap();
            push(&lx, "X after");
        })
        .unwrap();
        run().unwrap(); // W waits here, above main
        push(&lw, "W's run returned");
        // Main waits in its second `run()`, untouched by W's: W is alone in the ring.
        scheduler::schedule().unwrap();
        push(&lw, "W ends");
    })
    .unwrap();
    run().unwrap();
    assert_eq!(taken(&l), ["X runs main"]);
    assert!(
        w.alive() && w.scheduled() && !w.paused(),
        "W popped and back in the ring"
    );
    assert!(
        !scheduler::dump()
            .tasklets
            .iter()
            .any(|t| t.state == scheduler::dump::DumpState::InRun),
        "nobody waits in run() any more"
    );
    assert_eq!(scheduler::runcount(), 3, "main, X and W");
    run().unwrap();
    assert_eq!(taken(&l), ["X after", "W's run returned", "W ends"]);
    assert!(!w.alive());
    assert_eq!(scheduler::runcount(), 1);
}

/// A value dropped as main resumes inside its `run()` (an error payload a second throw
/// replaced, dropped before the pop) calls `run()` again: main then has two nodes on the
/// watchdog stack, with Y's nested `run()` between them. Y's `run` returning pops main's
/// inner node and Y's; main's inner `run` then finds its node gone and leaves the outer one
/// alone (it is told apart by address, not by tasklet), which pops last, when the outer `run`
/// returns the second error.
#[test]
fn a_tasklet_with_two_nodes_pops_only_its_own() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    struct RunsOnDrop(Arc<AtomicBool>);
    impl Drop for RunsOnDrop {
        fn drop(&mut self) {
            run().unwrap();
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let dropped = Arc::new(AtomicBool::new(false));
    let l = log();
    let (ly, lk) = (l.clone(), l.clone());
    let y = spawn(move || {
        run().unwrap(); // nested under main's run
        push(&ly, "Y's run returned");
    })
    .unwrap();
    let d = dropped.clone();
    spawn(move || {
        let main = scheduler::main();
        main.throw_pending(Error::Thrown(Box::new(RunsOnDrop(d))))
            .unwrap();
        // Main resumes, drops the first payload, whose `run()` comes back here.
        main.throw(Error::Thrown(Box::new("second"))).unwrap();
        push(&lk, "K runs Y");
        y.run().unwrap();
        push(&lk, "K ends");
    })
    .unwrap();
    match run() {
        Err(Error::Thrown(p)) => assert_eq!(p.downcast_ref::<&str>(), Some(&"second")),
        other => panic!("expected the second error, got {other:?}"),
    }
    assert!(dropped.load(Ordering::Relaxed), "the inner run returned");
    assert_eq!(taken(&l), ["K runs Y", "Y's run returned", "K ends"]);
    assert_eq!(scheduler::runcount(), 1);
    // Nobody is left on the watchdog stack: a tasklet's end wakes main's next run.
    let t = spawn(|| 7).unwrap();
    run().unwrap();
    assert_eq!(t.result::<i32>(), Some(7));
}
