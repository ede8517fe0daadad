//! W scenarios of budgets and interrupts (reference §2.2, §2.7): who is interrupted, when,
//! and what the ring looks like afterwards.

use std::cell::Cell;
use std::rc::Rc;

use microthread::channel::{set_channel_callback, ChannelEvent};
use microthread::scheduler::{self, current, run_with, spawn, tick, ticks, RunOptions};
use microthread::{Channel, Tasklet};

use crate::common::{log, push, taken};

/// W3 (§2.7, Stackless test_miscell::TestWatchdog::lifecycle): a hard-interrupted tasklet is
/// `alive=True, scheduled=False, paused=True`, out of the ring; `insert()` makes it scheduled
/// again, at the end of the queue, and it then runs to its end.
#[test]
fn hard_interrupt_victim_is_alive_paused_and_unscheduled_until_inserted() {
    let progress = Rc::new(Cell::new(0u32));
    let p = progress.clone();
    let t = spawn(move || {
        for i in 1..=300 {
            p.set(i);
            tick().unwrap();
        }
    })
    .unwrap();
    let victim = run_with(RunOptions::new().ticks(100)).unwrap();
    assert_eq!(victim, Some(t.clone()));
    assert!(t.alive() && t.paused() && !t.scheduled() && !t.blocked());
    assert_eq!(t.next(), None, "out of the ring");
    assert_eq!(scheduler::runcount(), 1, "only main");
    assert_eq!(progress.get(), 101, "stopped at its 101st tick");

    t.insert().unwrap();
    assert!(t.alive() && t.scheduled() && !t.paused());
    assert_eq!(scheduler::runcount(), 2);
    assert_eq!(current().next(), Some(t.clone()));
    assert_eq!(progress.get(), 101, "insert does not run it");
    scheduler::run().unwrap();
    assert_eq!(progress.get(), 300);
    assert!(!t.alive());
}

/// W5 (§2.7): in soft mode a tasklet that never yields is not cut: it runs all its ticks,
/// and the `run` returns only at its next switch, here its end. That switch goes to the
/// watchdog instead of the tasklet that would have run next (B), which stays scheduled and
/// has not started.
#[test]
fn soft_run_waits_for_a_tasklet_that_never_yields_until_it_ends() {
    let l = log();
    let progress = Rc::new(Cell::new(0u32));
    let (p, la) = (progress.clone(), l.clone());
    let a = spawn(move || {
        for i in 1..=1_000 {
            p.set(i);
            tick().unwrap();
        }
        push(&la, "A end");
    })
    .unwrap();
    let lb = l.clone();
    let b = spawn(move || push(&lb, "B")).unwrap();
    assert_eq!(
        run_with(RunOptions::new().ticks(10).soft(true)).unwrap(),
        None
    );
    assert_eq!(progress.get(), 1_000, "never cut");
    assert_eq!(taken(&l), ["A end"]);
    assert!(!a.alive());
    assert!(b.scheduled() && !b.started(), "B is next, not yet run");
    assert_eq!(scheduler::runcount(), 2);
    assert_eq!(current().next(), Some(b.clone()));
    scheduler::run().unwrap();
    assert_eq!(taken(&l), ["B"]);
}

/// W8 (Appendix D, hard preemption): `spawn(A); spawn(B)`, `run(100)`: A is interrupted
/// after its budget and returned, the ring is `[main, B]`; `A.insert()` makes it
/// `[main, B, A]`, and `run()` finishes B, then A.
#[test]
fn hard_preemption_follows_the_ring_trace_of_appendix_d() {
    let l = log();
    let la = l.clone();
    let a = spawn(move || {
        push(&la, "A start");
        ticks(250).unwrap();
        push(&la, "A end");
    })
    .unwrap();
    let lb = l.clone();
    let b = spawn(move || {
        push(&lb, "B start");
        ticks(50).unwrap();
        push(&lb, "B end");
    })
    .unwrap();
    let victim = run_with(RunOptions::new().ticks(100)).unwrap();
    assert_eq!(victim, Some(a.clone()));
    assert_eq!(taken(&l), ["A start"], "B has not run yet");
    // Ring [*main, B].
    assert_eq!(scheduler::runcount(), 2);
    assert_eq!(current().next(), Some(b.clone()));
    assert_eq!(b.next(), Some(current()));
    a.insert().unwrap();
    // Ring [*main, B, A].
    assert_eq!(current().next(), Some(b.clone()));
    assert_eq!(b.next(), Some(a.clone()));
    assert_eq!(a.next(), Some(current()));
    scheduler::run().unwrap();
    assert_eq!(taken(&l), ["B start", "B end", "A end"]);
    assert_eq!(scheduler::runcount(), 1);
}

/// The W10 scene: a sender whose channel callback runs the budget of 100 out (deferred,
/// Stackless's `schedlock`), then counts `mark` up to 300, one tick each. Preference +1: the
/// sender goes on after the send; the receiver it woke is scheduled.
pub(crate) fn channel_callback_scene() -> (Option<Tasklet>, Tasklet, Tasklet, Rc<Cell<u32>>) {
    let ch = Channel::<u32>::new();
    ch.set_preference(1);
    let rx = ch.clone();
    let receiver = spawn(move || rx.receive().unwrap()).unwrap();
    let mark = Rc::new(Cell::new(0));
    let m = mark.clone();
    let sender = spawn(move || {
        ch.send(7).unwrap();
        for i in 1..=300 {
            m.set(i);
            tick().unwrap();
        }
    })
    .unwrap();
    let sender_id = sender.id();
    set_channel_callback(Some(Rc::new(move |ev: &ChannelEvent<'_>| {
        if ev.sending && ev.tasklet.id() == sender_id {
            ticks(1_000).unwrap(); // the budget runs out here: deferred
        }
    })));
    let victim = run_with(RunOptions::new().ticks(100)).unwrap();
    set_channel_callback(None);
    assert!(
        receiver.scheduled() && receiver.started(),
        "woken, not yet run"
    );
    (victim, sender, receiver, mark)
}

/// W10 (§2.7, `schedlock`): the budget runs out inside the channel callback; the interrupt is
/// deferred, not lost: the sender is interrupted after the callback, within one budget (the
/// deferral restarts it), and handed back; the receiver stays scheduled and gets the value
/// when it runs. (It fires exactly when the restarted budget runs out, as in Stackless: see
/// `deferral`.)
#[test]
fn an_interrupt_due_in_the_channel_callback_is_deferred_and_fires_within_one_budget() {
    let (victim, sender, receiver, mark) = channel_callback_scene();
    assert_eq!(
        victim,
        Some(sender.clone()),
        "the tasklet whose callback it was"
    );
    assert!(
        (1..=101).contains(&mark.get()),
        "cut after the send, within one budget"
    );
    assert_eq!(scheduler::runcount(), 2, "main and the receiver");
    sender.insert().unwrap();
    scheduler::run().unwrap();
    assert_eq!(receiver.result::<u32>(), Some(7));
    assert!(!sender.alive());
    assert_eq!(mark.get(), 300);
}

/// W22 (§2.2 steps 6–7): the timeslice restarts at a real switch only. `schedule()` by the
/// only runnable tasklet switches to itself, which is no switch: no restart, so its ticks
/// add up across those calls and it is interrupted, as a tasklet that never yields is.
#[test]
fn schedule_with_nothing_else_runnable_does_not_restart_the_timeslice() {
    let rounds = Rc::new(Cell::new(0u32));
    let r = rounds.clone();
    let t = spawn(move || {
        for i in 0..100 {
            r.set(i);
            ticks(5).unwrap();
            scheduler::schedule().unwrap(); // alone in the ring (main waits in run)
        }
    })
    .unwrap();
    let victim = run_with(RunOptions::new().ticks(20)).unwrap();
    assert_eq!(victim, Some(t.clone()));
    // 6 ticks a round: rounds 0–2 use ticks 0–17; round 3's ticks(5) covers 18–22 and
    // passes the budget of 20.
    assert_eq!(rounds.get(), 3);
    t.kill().unwrap();
}

/// With nothing to run, `run_with` returns at once, and no budget is left behind.
#[test]
fn run_with_a_budget_and_nothing_to_run_returns_none_at_once() {
    assert_eq!(run_with(RunOptions::new().ticks(1)).unwrap(), None);
    // No watchdog is left installed: main's ticks are never interrupted.
    ticks(1_000).unwrap();
    for _ in 0..100 {
        tick().unwrap();
    }
    assert_eq!(scheduler::runcount(), 1);
}
