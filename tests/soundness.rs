//! Regression tests for the soundness issue: each reproduces a way safe code could reach
//! undefined behaviour, lose a kill, or run user code while the scheduler's state was
//! half-changed, and checks that it no longer can.

use std::cell::{Cell, RefCell};
use std::panic;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use microthread::scheduler::{
    self, current, runcount, schedule, schedule_remove, set_schedule_callback, spawn, switch_trap,
};
use microthread::{channel, Channel, Error, Tasklet};

mod common;
use common::on_thread;

/// Waits (without switching tasklets) until `cond` holds; fails the test after 10 s.
fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Main blocks in `receive`; another thread's send completes it (posting a wake); before main
/// reads that mail, `interrupt` (run by a tasklet of main's thread) unblocks main another way.
/// The stale wake must not end main's next blocking episode, and the other thread's next
/// send must not write into a finished frame.
fn stale_wake(interrupt: fn(&Tasklet)) {
    on_thread(move || {
        scheduler::init_thread();
        let ch = Channel::<Box<u64>>::new();
        let first_sent = Arc::new(AtomicBool::new(false));
        let second_go = Arc::new(AtomicBool::new(false));
        let (tx, sent, go) = (ch.clone(), first_sent.clone(), second_go.clone());
        let sender = microthread::spawn_thread(move || {
            wait_until("main blocks", || tx.balance() == -1);
            tx.send(Box::new(1)).unwrap();
            sent.store(true, Ordering::SeqCst);
            wait_until("main's second receive is over", || {
                go.load(Ordering::SeqCst)
            });
            // Main waits in its third receive, or nobody: then this send blocks until it does.
            tx.send(Box::new(2)).unwrap();
        });
        let main = scheduler::main();
        let sent = first_sent.clone();
        spawn(move || {
            // No switch here: the wake mail stays unread until main runs again.
            wait_until("the other thread sent", || sent.load(Ordering::SeqCst));
            interrupt(&main);
        })
        .unwrap();
        let first = ch.receive();
        // Whatever the first receive returned, its episode is over: nothing may stay queued.
        let second = ch.receive();
        assert_eq!(ch.balance(), 0, "first {first:?}, second {second:?}");
        assert!(ch.queue().is_empty());
        second_go.store(true, Ordering::SeqCst);
        let mut got: Vec<u64> = Vec::new();
        for v in [first, second].into_iter().flatten() {
            got.push(*v);
        }
        if got.len() < 2 {
            got.push(*ch.receive().unwrap());
        }
        assert_eq!(got, [1, 2], "every value received once, in order");
        sender.join().unwrap();
    });
}

#[test]
fn a_cross_thread_wake_for_an_ended_blocking_episode_is_ignored_after_a_routed_panic() {
    stale_wake(|_| panic!("routed to main"));
}

#[test]
fn a_cross_thread_wake_for_an_ended_blocking_episode_is_ignored_after_a_throw() {
    stale_wake(|main| {
        main.throw_pending(Error::Thrown(Box::new("thrown")))
            .unwrap()
    });
}

/// A payload whose `Drop` calls back into the scheduler, and counts that it ran.
struct SchedulesOnDrop(Arc<AtomicUsize>);

impl Drop for SchedulesOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
        // Any scheduler call is fine here: the drop runs where every invariant holds.
        let _ = scheduler::runcount();
        let _ = schedule();
    }
}

#[test]
fn a_remote_throw_to_a_dead_tasklet_drops_its_payload_outside_the_scheduler() {
    on_thread(|| {
        scheduler::init_thread();
        let dropped = Arc::new(AtomicUsize::new(0));
        let (remote_tx, remote_rx) = std::sync::mpsc::channel();
        let (posted_tx, posted_rx) = std::sync::mpsc::channel::<()>();
        let wake = Channel::<()>::new();
        let w = wake.clone();
        let d = dropped.clone();
        let thrower = microthread::spawn_thread(move || {
            let remote: microthread::RemoteTasklet = remote_rx.recv().unwrap();
            // Ok: the tasklet is alive (running) now; it is dead when the mail is read.
            remote
                .throw(Error::Thrown(Box::new(SchedulesOnDrop(d))))
                .unwrap();
            posted_tx.send(()).unwrap();
            w.send(()).unwrap();
        });
        let t = spawn(move || {
            remote_tx.send(current().remote()).unwrap();
            // Ends once the throw is posted, without a switch in between: the ring is then
            // empty and main blocked, so the mail is read in the middle of this tasklet's end.
            posted_rx.recv().unwrap();
        })
        .unwrap();
        wake.receive().unwrap();
        assert!(!t.alive());
        // The payload's drop waited until the switch was over.
        assert_eq!(dropped.load(Ordering::SeqCst), 1);
        let other = spawn(|| 7).unwrap();
        scheduler::run().unwrap();
        assert_eq!(other.result::<i32>(), Some(7));
        assert_eq!(runcount(), 1);
        thrower.join().unwrap();
    });
}

#[test]
fn an_error_replaced_by_a_routed_panic_is_dropped_after_the_switch() {
    on_thread(|| {
        let dropped = Arc::new(AtomicUsize::new(0));
        let d = dropped.clone();
        spawn(move || {
            let e = Error::Thrown(Box::new(SchedulesOnDrop(d)));
            scheduler::main().throw_pending(e).unwrap();
            // Routed to main, replacing the thrown error inside this tasklet's end.
            panic!("replaces the thrown error");
        })
        .unwrap();
        let r = scheduler::run();
        assert!(
            matches!(&r, Err(Error::Panicked { .. })),
            "the later error wins: {r:?}"
        );
        assert_eq!(dropped.load(Ordering::SeqCst), 1);
    });
}

/// A payload whose `Drop` panics.
struct PanicsOnDrop(Arc<AtomicUsize>);

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
        panic!("a payload that panics when dropped");
    }
}

#[test]
fn a_replaced_payload_that_panics_on_drop_does_not_escape_a_dying_tasklet() {
    on_thread(|| {
        let dropped = Arc::new(AtomicUsize::new(0));
        let d = dropped.clone();
        spawn(move || {
            let e = Error::Thrown(Box::new(PanicsOnDrop(d)));
            scheduler::main().throw_pending(e).unwrap();
            panic!("replaces it");
        })
        .unwrap();
        assert!(matches!(scheduler::run(), Err(Error::Panicked { .. })));
        assert_eq!(dropped.load(Ordering::SeqCst), 1);
        // The scheduler still works.
        let t = spawn(|| 1).unwrap();
        scheduler::run().unwrap();
        assert_eq!(t.result::<i32>(), Some(1));
    });
}

#[test]
fn the_closure_of_a_tasklet_killed_before_it_ran_may_panic_when_dropped() {
    on_thread(|| {
        let dropped = Arc::new(AtomicUsize::new(0));
        let guard = PanicsOnDrop(dropped.clone());
        let t = Tasklet::new(move || drop(guard)).unwrap();
        // The closure's drop panicking is the tasklet panicking: routed to the caller.
        let r = t.kill();
        assert!(matches!(r, Err(Error::Panicked { .. })), "{r:?}");
        assert!(!t.alive());
        assert_eq!(dropped.load(Ordering::SeqCst), 1);
    });
}

// ---------- item 6: a refused operation leaves no trace ----------

/// Runs `body` inside the schedule callback at the first switch from main to `t`, and
/// returns what it returned.
fn inside_callback<R: 'static>(body: impl FnOnce(&Tasklet) -> R + 'static) -> R {
    let out: Rc<RefCell<Option<R>>> = Rc::new(RefCell::new(None));
    let body = RefCell::new(Some(body));
    let o = out.clone();
    set_schedule_callback(Some(Rc::new(move |_prev: &Tasklet, next: &Tasklet| {
        if let Some(b) = body.borrow_mut().take() {
            *o.borrow_mut() = Some(b(next));
        }
    })));
    let t = spawn(|| ()).unwrap();
    scheduler::run().unwrap();
    set_schedule_callback(None);
    assert!(!t.alive(), "the switch the callback ran in went ahead");
    let r = out.borrow_mut().take().expect("the callback ran");
    r
}

#[test]
fn scheduling_inside_the_schedule_callback_is_refused_before_anything_changes() {
    on_thread(|| {
        let r = inside_callback(|_| {
            let before = runcount();
            let r = schedule_remove();
            (r, before, runcount())
        });
        assert!(matches!(r.0, Err(Error::RecursiveCallback)), "{:?}", r.0);
        assert_eq!(r.1, r.2);

        let ch = Channel::<u8>::new();
        let c = ch.clone();
        let r = inside_callback(move |_| c.receive());
        assert!(matches!(r, Err(Error::RecursiveCallback)), "{r:?}");
        assert_eq!(ch.balance(), 0);
        assert!(ch.queue().is_empty());

        // Taking the chosen tasklet out of the ring would make the switch enter it outside.
        let r = inside_callback(|next| next.remove());
        assert!(matches!(r, Err(Error::RecursiveCallback)), "{r:?}");

        let paused = Tasklet::new(|| ()).unwrap();
        let p = paused.clone();
        let r = inside_callback(move |_| (p.switch(), p.run(), p.kill(), p.scheduled()));
        assert!(matches!(r.0, Err(Error::RecursiveCallback)));
        assert!(matches!(r.1, Err(Error::RecursiveCallback)));
        assert!(matches!(r.2, Err(Error::RecursiveCallback)));
        assert!(!r.3, "a refused switch or run inserted it");
        assert!(paused.alive() && paused.paused());
        paused.kill().unwrap();
    });
}

#[test]
fn operations_refused_by_a_switch_trap_leave_no_trace() {
    on_thread(|| {
        let ran = Rc::new(Cell::new(0));
        let r2 = ran.clone();
        let other = spawn(move || r2.set(r2.get() + 1)).unwrap();
        switch_trap(1);
        // run() would switch to `other`.
        assert!(matches!(scheduler::run(), Err(Error::SwitchTrap)));
        assert!(current().is_main() && scheduler::main().scheduled());
        assert_eq!(runcount(), 2);

        // A send that would block.
        let ch = Channel::<u32>::new();
        assert!(matches!(ch.send(1), Err(e) if matches!(e.error, Error::SwitchTrap)));
        assert_eq!(ch.balance(), 0);
        assert!(ch.queue().is_empty());

        // switch() and run() of a paused tasklet, throw and kill.
        let paused = Tasklet::new(|| "ran").unwrap();
        assert!(matches!(paused.switch(), Err(Error::SwitchTrap)));
        assert!(matches!(paused.run(), Err(Error::SwitchTrap)));
        assert!(!paused.scheduled());
        assert!(matches!(
            paused.throw(Error::Thrown(Box::new("no"))),
            Err(Error::SwitchTrap)
        ));
        assert!(matches!(paused.kill(), Err(Error::SwitchTrap)));
        switch_trap(-1);

        // Nothing was left pending: the paused tasklet runs its closure normally.
        scheduler::run().unwrap();
        assert_eq!(ran.get(), 1);
        assert!(!other.alive());
        paused.run().unwrap();
        assert_eq!(paused.result::<&str>(), Some("ran"));
    });
}

#[test]
fn a_switch_trap_level_that_would_overflow_is_a_panic_with_a_sentence_and_no_change() {
    on_thread(|| {
        switch_trap(i32::MAX);
        let e = panic::catch_unwind(|| switch_trap(1)).unwrap_err();
        let msg = e.downcast_ref::<String>().unwrap();
        assert!(msg.contains("would overflow"), "{msg}");
        assert_eq!(switch_trap(0), i32::MAX);
        switch_trap(-i32::MAX);
        assert_eq!(switch_trap(0), 0);
    });
}

// ---------- item 7: a !Send result is dropped on its own thread ----------

struct ThreadBound {
    _not_send: Rc<()>,
    dropped_on: Arc<Mutex<Option<std::thread::ThreadId>>>,
}

impl Drop for ThreadBound {
    fn drop(&mut self) {
        *self.dropped_on.lock().unwrap() = Some(std::thread::current().id());
    }
}

#[test]
fn a_result_released_during_its_tasklets_end_is_dropped_on_its_own_thread() {
    on_thread(|| {
        let dropped_on = Arc::new(Mutex::new(None));
        let d = dropped_on.clone();
        let t = spawn(move || ThreadBound {
            _not_send: Rc::new(()),
            dropped_on: d,
        })
        .unwrap();
        let remote = t.remote();
        let last_handle = Rc::new(RefCell::new(Some(t)));
        let l = last_handle.clone();
        set_schedule_callback(Some(Rc::new(move |prev: &Tasklet, _next: &Tasklet| {
            if !prev.alive() {
                // The dying tasklet's last handle goes during its end.
                l.borrow_mut().take();
            }
        })));
        scheduler::run().unwrap();
        set_schedule_callback(None);
        assert!(last_handle.borrow().is_none());
        std::thread::spawn(move || drop(remote)).join().unwrap();
        assert_eq!(
            *dropped_on.lock().unwrap(),
            Some(std::thread::current().id())
        );
    });
}

// ---------- item 8: no switch while a tasklet's stack unwinds ----------

#[test]
fn a_destructor_of_a_killed_tasklet_cannot_switch_but_can_hand_off_a_value() {
    on_thread(|| {
        let done = Channel::<&'static str>::new();
        let never = Channel::<u8>::new();
        let outcome: Rc<RefCell<Vec<String>>> = Rc::new(RefCell::new(Vec::new()));
        struct Finally {
            done: Channel<&'static str>,
            never: Channel<u8>,
            outcome: Rc<RefCell<Vec<String>>>,
        }
        impl Drop for Finally {
            fn drop(&mut self) {
                let mut o = self.outcome.borrow_mut();
                o.push(format!("schedule: {:?}", schedule()));
                o.push(format!("receive: {:?}", self.never.receive()));
                // A receiver waits: the value is handed over without a switch.
                o.push(format!(
                    "send: {:?}",
                    self.done.send("bye").map_err(|e| e.error)
                ));
                o.push(format!("panicking: {}", std::thread::panicking()));
            }
        }
        let f = Finally {
            done: done.clone(),
            never: never.clone(),
            outcome: outcome.clone(),
        };
        let victim = spawn(move || {
            let _f = f;
            loop {
                schedule().unwrap();
            }
        })
        .unwrap();
        let d = done.clone();
        let receiver = spawn(move || d.receive().unwrap()).unwrap();
        schedule().unwrap(); // the victim runs, the receiver blocks
        let lock = Mutex::new(0);
        {
            let _held = lock.lock().unwrap();
            victim.kill().unwrap();
            assert!(
                !std::thread::panicking(),
                "the victim's unwind leaked to main"
            );
        }
        assert!(!lock.is_poisoned());
        assert!(!victim.alive());
        let o = outcome.borrow().clone();
        assert!(o[0].contains("unwinding"), "{o:?}");
        assert!(o[1].contains("unwinding"), "{o:?}");
        assert_eq!(o[2], "send: Ok(())");
        assert_eq!(o[3], "panicking: true");
        assert_eq!(never.balance(), 0);
        scheduler::run().unwrap();
        assert_eq!(receiver.result::<&str>(), Some("bye"));
        // A coroutine resumed by main afterwards still works.
        let mut co = microthread::Coroutine::<(), u8, ()>::new(|y, ()| {
            y.suspend(1);
        })
        .unwrap();
        assert_eq!(co.resume(()), microthread::CoroutineResult::Yield(1));
    });
}

#[test]
fn a_thread_ends_cleanly_with_a_tasklet_whose_destructor_tries_to_block() {
    // The teardown kills the tasklet once; its destructor's blocking receive is refused.
    let refused = Arc::new(AtomicBool::new(false));
    let r = refused.clone();
    std::thread::spawn(move || {
        struct Blocks(Channel<u8>, Arc<AtomicBool>);
        impl Drop for Blocks {
            fn drop(&mut self) {
                if let Err(Error::Unwinding) = self.0.receive() {
                    self.1.store(true, Ordering::SeqCst);
                }
            }
        }
        let b = Blocks(Channel::new(), r);
        spawn(move || {
            let _b = b;
            schedule_remove().unwrap();
        })
        .unwrap();
        scheduler::run().unwrap();
    })
    .join()
    .unwrap();
    assert!(refused.load(Ordering::SeqCst));
}

// ---------- item 10: a kill is never lost ----------

#[test]
fn a_pending_kill_is_not_replaced_by_a_later_throw() {
    on_thread(|| {
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let t = Tasklet::new(move || r.set(true)).unwrap();
        t.kill_pending().unwrap();
        t.throw_pending(Error::Thrown(Box::new("later"))).unwrap();
        scheduler::run().unwrap();
        assert!(!t.alive());
        assert!(!ran.get(), "the kill was replaced: the closure ran");
    });
}

#[test]
fn a_pending_kill_is_not_replaced_by_a_routed_panic() {
    on_thread(|| {
        let after_run = Rc::new(Cell::new(false));
        let a_r = after_run.clone();
        let a = spawn(move || {
            let _ = scheduler::run(); // `a` is now the innermost watchdog
            a_r.set(true);
        })
        .unwrap();
        let a2 = a.clone();
        // Runs inside a's run(): kills a (pending), then panics, which is routed to a.
        let killer = Tasklet::new(move || {
            a2.kill_pending().unwrap();
            panic!("routed to a");
        })
        .unwrap();
        schedule().unwrap(); // a runs and enters its run()
        killer.run().unwrap_or_else(|e| panic!("{e}"));
        scheduler::run().unwrap();
        assert!(!a.alive(), "a survived its kill");
        assert!(!after_run.get());
    });
}

// ---------- item 11: a kill inside the channel callback is not swallowed ----------

#[test]
fn a_kill_delivered_inside_the_channel_callback_ends_the_tasklet() {
    on_thread(|| {
        let target: Rc<Cell<u64>> = Rc::new(Cell::new(0));
        let t2 = target.clone();
        channel::set_channel_callback(Some(Rc::new(move |ev: &channel::ChannelEvent<'_>| {
            if ev.tasklet.id() == t2.get() {
                // Switch away inside the callback; the kill arrives here.
                let _ = schedule();
            }
        })));
        let ch = Channel::<u8>::new();
        let c = ch.clone();
        let went_on = Rc::new(Cell::new(false));
        let w = went_on.clone();
        let t = spawn(move || {
            let _ = c.send(1);
            w.set(true);
        })
        .unwrap();
        target.set(t.id());
        schedule().unwrap(); // t is inside the callback, switched out
        t.kill().unwrap();
        channel::set_channel_callback(None);
        assert!(!t.alive(), "the kill was swallowed by the callback");
        assert!(!went_on.get());
        assert_eq!(ch.balance(), 0);
    });
}

// ---------- item 17: an unstarted tasklet's closure does not wait for the thread's end ----------

#[test]
fn dropping_the_last_handle_of_an_unstarted_paused_tasklet_drops_its_closure() {
    on_thread(|| {
        let captured = Rc::new(());
        let c = captured.clone();
        let t = Tasklet::new(move || drop(c)).unwrap();
        assert_eq!(Rc::strong_count(&captured), 2);
        drop(t);
        assert_eq!(Rc::strong_count(&captured), 1);
        // A paused unstarted tasklet that another thread can still insert is kept.
        let c = captured.clone();
        let t = Tasklet::new(move || drop(c)).unwrap();
        let remote = t.remote();
        drop(t);
        assert_eq!(Rc::strong_count(&captured), 2);
        remote.insert().unwrap();
        scheduler::run().unwrap();
        assert_eq!(Rc::strong_count(&captured), 1);
    });
}

#[test]
fn a_rendezvous_refused_by_a_switch_trap_leaves_the_waiter_queued() {
    on_thread(|| {
        let ch = Channel::<String>::new();
        let rx = ch.clone();
        let receiver = spawn(move || rx.receive().unwrap()).unwrap();
        scheduler::run().unwrap();
        assert_eq!(ch.queue(), [receiver.id()]);
        switch_trap(1);
        // Preference -1: the send would switch to the receiver, which the trap refuses.
        let e = ch.send("kept".to_string()).unwrap_err();
        assert!(matches!(e.error, Error::SwitchTrap));
        assert_eq!(e.value.as_deref(), Some("kept"));
        assert_eq!(ch.balance(), -1);
        assert_eq!(ch.queue(), [receiver.id()]);
        assert!(receiver.blocked());
        switch_trap(-1);
        ch.send("delivered".to_string()).unwrap();
        assert_eq!(receiver.result::<String>().as_deref(), Some("delivered"));
    });
}
