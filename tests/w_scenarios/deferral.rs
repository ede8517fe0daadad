//! The exact Stackless outcomes (reference §2.7 and Appendix C `interrupt()`) of a hard
//! interrupt deferred by a callback or a `switch_trap`: the deferral only restarts the budget
//! and sets `pending_irq`, which nothing but `set_atomic(false)` acts on early, so it fires
//! when the restarted budget runs out again (and not at all if the tasklet switches or ends
//! first). Both failed before the watchdog followed that rule (they were cut at their first
//! safe point after the section). For `atomic` see tests/watchdog.rs: `set_atomic(false)`
//! fires a pending interrupt at once.

use std::cell::Cell;
use std::rc::Rc;

use microthread::scheduler::{run_with, spawn, switch_trap, tick, ticks, RunOptions};

use crate::budget::channel_callback_scene;

/// W10, the exact Stackless outcome: deferred in the channel callback, the budget restarts
/// there (ticks after the callback's last: 100 more pass), so the sender is cut at its 101st
/// tick after the send.
#[test]
fn a_channel_callback_deferral_fires_when_the_restarted_budget_runs_out() {
    let (victim, sender, _receiver, mark) = channel_callback_scene();
    assert_eq!(victim, Some(sender.clone()));
    assert_eq!(mark.get(), 101);
    sender.kill().unwrap();
}

/// W11, the exact Stackless outcome: a `switch_trap` over the budget's end (budget 10,
/// `ticks(25)` under the trap: deferred, restarted to end after tick 35); once the trap is
/// lifted the tasklet runs on until that restarted budget runs out: cut at its 11th tick.
#[test]
fn a_switch_trap_deferral_fires_when_the_restarted_budget_runs_out() {
    let progress = Rc::new(Cell::new(0));
    let p = progress.clone();
    let t = spawn(move || {
        switch_trap(1);
        ticks(25).unwrap(); // ticks 0–24: past the budget of 10, deferred
        switch_trap(-1);
        for i in 1..=100 {
            p.set(i);
            tick().unwrap(); // ticks 25, 26, ...: the restarted budget ends after 34
        }
    })
    .unwrap();
    let victim = run_with(RunOptions::new().ticks(10)).unwrap();
    assert_eq!(victim, Some(t.clone()));
    assert_eq!(progress.get(), 11);
    t.kill().unwrap();
}
