//! Scenario tests for channels: the §3.1 decision table, FIFO order, close/drain, iteration,
//! errors through channels, deadlocks, the channel callback, and channels between threads.
//!
//! The one-thread scenarios run on both kinds of channel: `for_both_channel_kinds!`
//! (tests/common/kinds.rs) expands them once in `shared` (with `Ch` = `Channel`) and once in
//! `local` (with `Ch` = `LocalChannel`), so a `LocalChannel` is held to exactly the same
//! behaviour. What is new with `LocalChannel` is in tests/channel_handles.rs.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use microthread::channel::{self, Channel};
use microthread::scheduler::{self, current, runcount, schedule, spawn};
use microthread::{Error, Tasklet};

mod common;
use common::{log, on_thread, push, taken, Log};

#[macro_use]
#[path = "common/kinds.rs"]
mod kinds;

for_both_channel_kinds! {
/// A receiver A blocked on `ch`, then B spawned (runnable): returns the log.
fn receiver_waiting_then_b(ch: &Ch<u32>, l: &Log) -> Tasklet {
    let (c, l2) = (ch.clone(), l.clone());
    let a = Tasklet::new(move || {
        let v = c.receive().unwrap();
        push(&l2, format!("A got {v}"));
        push(&l2, "A end");
    })
    .unwrap();
    a.run().unwrap();
    assert!(a.blocked());
    assert_eq!(ch.balance(), -1);
    let l3 = l.clone();
    spawn(move || push(&l3, "B")).unwrap();
    a
}

#[test]
fn default_preference_send_runs_the_receiver_at_once_and_the_sender_last() {
    on_thread(|| {
        let (ch, l) = (Ch::new(), log());
        receiver_waiting_then_b(&ch, &l);
        ch.send(42).unwrap();
        push(&l, "main after send");
        assert_eq!(taken(&l), ["A got 42", "A end", "B", "main after send"]);
        assert_eq!(ch.balance(), 0);
        assert_eq!(runcount(), 1);
    });
}

#[test]
fn preference_plus_one_send_continues_and_the_receiver_goes_last() {
    on_thread(|| {
        let (ch, l) = (Ch::new(), log());
        ch.set_preference(5);
        assert_eq!(ch.preference(), 1);
        receiver_waiting_then_b(&ch, &l);
        ch.send(7).unwrap();
        push(&l, "main after send");
        schedule().unwrap();
        assert_eq!(taken(&l), ["main after send", "B", "A got 7", "A end"]);
    });
}

#[test]
fn preference_zero_send_continues_too() {
    on_thread(|| {
        let (ch, l) = (Ch::new(), log());
        ch.set_preference(0);
        receiver_waiting_then_b(&ch, &l);
        ch.send(1).unwrap();
        push(&l, "main after send");
        schedule().unwrap();
        assert_eq!(taken(&l), ["main after send", "B", "A got 1", "A end"]);
    });
}

#[test]
fn schedule_all_makes_the_caller_yield_after_appending_the_partner() {
    on_thread(|| {
        let (ch, l) = (Ch::new(), log());
        ch.set_schedule_all(true);
        receiver_waiting_then_b(&ch, &l);
        ch.send(3).unwrap();
        push(&l, "main after send");
        assert_eq!(taken(&l), ["B", "A got 3", "A end", "main after send"]);
    });
}

/// A sender S blocked on `ch` with value 9, then B spawned.
fn sender_waiting_then_b(ch: &Ch<u32>, l: &Log) {
    let (c, l2) = (ch.clone(), l.clone());
    let s = Tasklet::new(move || {
        c.send(9).unwrap();
        push(&l2, "S after send");
    })
    .unwrap();
    s.run().unwrap();
    assert_eq!(ch.balance(), 1);
    let l3 = l.clone();
    spawn(move || push(&l3, "B")).unwrap();
}

#[test]
fn default_preference_receive_continues_and_the_sender_is_appended() {
    on_thread(|| {
        let (ch, l) = (Ch::new(), log());
        sender_waiting_then_b(&ch, &l);
        let v = ch.receive().unwrap();
        push(&l, format!("main got {v}"));
        schedule().unwrap();
        assert_eq!(taken(&l), ["main got 9", "B", "S after send"]);
    });
}

#[test]
fn preference_plus_one_receive_runs_the_sender_at_once() {
    on_thread(|| {
        let (ch, l) = (Ch::new(), log());
        ch.set_preference(1);
        sender_waiting_then_b(&ch, &l);
        let v = ch.receive().unwrap();
        push(&l, format!("main got {v}"));
        assert_eq!(taken(&l), ["S after send", "B", "main got 9"]);
    });
}

#[test]
fn schedule_all_on_receive_yields_too() {
    on_thread(|| {
        let (ch, l) = (Ch::new(), log());
        ch.set_schedule_all(true);
        sender_waiting_then_b(&ch, &l);
        let v = ch.receive().unwrap();
        push(&l, format!("main got {v}"));
        assert_eq!(taken(&l), ["B", "S after send", "main got 9"]);
    });
}

#[test]
fn blocked_receivers_and_senders_are_served_in_fifo_order() {
    on_thread(|| {
        let (ch, l) = (Ch::new(), log());
        let mut ids = Vec::new();
        for n in ["P", "Q", "R"] {
            let (c, l2) = (ch.clone(), l.clone());
            let t = spawn(move || {
                let v: u32 = c.receive().unwrap();
                push(&l2, format!("{n} {v}"));
            })
            .unwrap();
            ids.push(t.id());
        }
        scheduler::run().unwrap();
        assert_eq!(ch.balance(), -3);
        assert_eq!(ch.queue(), ids);
        ch.send_sequence([1, 2, 3]).unwrap();
        assert_eq!(taken(&l), ["P 1", "Q 2", "R 3"]);
        for v in [10, 20, 30] {
            let c = ch.clone();
            spawn(move || c.send(v).unwrap()).unwrap();
        }
        scheduler::run().unwrap();
        assert_eq!(ch.balance(), 3);
        let got: Vec<u32> = (0..3).map(|_| ch.receive().unwrap()).collect();
        assert_eq!(got, [10, 20, 30]);
        scheduler::run().unwrap();
    });
}

#[test]
fn close_lets_blocked_senders_drain_then_fails_blocking_operations() {
    on_thread(|| {
        let ch = Ch::new();
        for v in [1, 2] {
            let c = ch.clone();
            spawn(move || c.send(v).unwrap()).unwrap();
        }
        scheduler::run().unwrap();
        ch.close();
        assert!(ch.closing() && !ch.closed());
        assert_eq!(ch.receive().unwrap(), 1);
        assert_eq!(ch.receive().unwrap(), 2);
        assert!(ch.closed());
        let e = ch.receive().unwrap_err();
        assert_eq!(e.to_string(), "Send/receive operation on a closed channel");
        let e = ch.send(5).unwrap_err();
        assert_eq!(e.value, Some(5));
        assert!(matches!(e.error, Error::ClosedChannel));
        ch.open();
        assert!(!ch.closing());
        scheduler::run().unwrap();
    });
}

#[test]
fn iteration_drains_blocked_senders_then_ends_when_closing() {
    on_thread(|| {
        let ch = Ch::new();
        let senders: Vec<Tasklet> = (0..5u32)
            .map(|v| {
                let c = ch.clone();
                spawn(move || c.send(v).unwrap()).unwrap()
            })
            .collect();
        scheduler::run().unwrap();
        assert_eq!(ch.balance(), 5);
        ch.close();
        let got: Vec<u32> = ch.iter().map(|v| v.unwrap()).collect();
        assert_eq!(got, [0, 1, 2, 3, 4]);
        assert!(ch.closed());
        scheduler::run().unwrap();
        assert!(senders.iter().all(|t| !t.alive()));
        // A receiver still blocked when the last sender is gone is the Stackless error.
        ch.open();
        let c = ch.clone();
        spawn(move || c.send_sequence(0..3u32).unwrap()).unwrap();
        let mut got = Vec::new();
        let end = loop {
            match ch.receive() {
                Ok(v) => got.push(v),
                Err(e) => break e,
            }
        };
        assert_eq!(got, [0, 1, 2]);
        assert!(matches!(end, Error::MainReceivingWithoutSender));
    });
}

#[test]
fn an_error_sent_through_a_channel_arrives_at_the_receive() {
    on_thread(|| {
        let ch: Ch<u32> = Ch::new();
        let c = ch.clone();
        spawn(move || c.send_throw(Box::new("key error")).unwrap()).unwrap();
        scheduler::run().unwrap();
        assert_eq!(ch.balance(), 1);
        let e = ch.receive().unwrap_err();
        assert!(matches!(e, Error::Thrown(_)));
        assert_eq!(e.payload_str(), Some("key error"));
        scheduler::run().unwrap();
    });
}

#[test]
fn kill_and_throw_take_a_blocked_tasklet_out_of_its_channel() {
    on_thread(|| {
        let ch: Ch<u32> = Ch::new();
        let c = ch.clone();
        let r = spawn(move || c.receive()).unwrap();
        let c = ch.clone();
        let k = spawn(move || c.receive()).unwrap();
        scheduler::run().unwrap();
        assert_eq!(ch.balance(), -2);
        k.kill().unwrap();
        assert_eq!(ch.balance(), -1);
        r.throw(Error::Thrown(Box::new("stop"))).unwrap();
        assert_eq!(ch.balance(), 0);
        let res = r.result::<microthread::Result<u32>>().unwrap();
        assert_eq!(res.unwrap_err().payload_str(), Some("stop"));
    });
}

#[test]
fn block_trap_refuses_to_block() {
    on_thread(|| {
        let ch: Ch<u32> = Ch::new();
        current().set_block_trap(true);
        assert_eq!(
            ch.receive().unwrap_err().to_string(),
            "this tasklet does not like to be blocked."
        );
        current().set_block_trap(false);
    });
}

#[test]
fn the_last_runnable_tasklet_blocking_is_a_deadlock_error() {
    on_thread(|| {
        let ch: Ch<u32> = Ch::new();
        let e = ch.receive().unwrap_err();
        assert_eq!(
            e.to_string(),
            "Deadlock: the last runnable tasklet cannot be blocked."
        );
        assert_eq!(ch.balance(), 0);
        assert_eq!(runcount(), 1);
    });
}

#[test]
fn main_blocked_when_the_last_tasklet_ends_gets_the_stackless_error() {
    on_thread(|| {
        let ch: Ch<u32> = Ch::new();
        spawn(|| ()).unwrap();
        let e = ch.receive().unwrap_err();
        assert_eq!(
            e.to_string(),
            "the main tasklet is receiving without a sender available."
        );
        spawn(|| ()).unwrap();
        let e = ch.send(1).unwrap_err();
        assert_eq!(
            e.error.to_string(),
            "the main tasklet is sending without a receiver available."
        );
        assert_eq!(ch.balance(), 0);
    });
}

#[test]
fn a_blocked_tasklet_keeps_its_channel_alive() {
    on_thread(|| {
        let ch: Ch<String> = Ch::new();
        let weak_id = ch.id();
        let c = ch.clone();
        let t = spawn(move || c.receive().unwrap()).unwrap();
        scheduler::run().unwrap();
        drop(ch); // the tasklet's clone is on its stack; the queue holds it too
        assert!(t.blocked());
        t.kill().unwrap();
        assert!(!t.alive());
        let _ = weak_id;
    });
}

#[test]
fn the_channel_callback_sees_each_action_before_it_happens() {
    on_thread(|| {
        let seen: Rc<RefCell<Vec<(bool, bool, bool)>>> = Rc::default();
        let s = seen.clone();
        let ch: Ch<u32> = Ch::new();
        let c2 = ch.clone();
        channel::set_channel_callback(Some(Rc::new(move |ev: &channel::ChannelEvent<'_>| {
            s.borrow_mut()
                .push((ev.tasklet.is_main(), ev.sending, ev.will_block));
            assert_eq!(c2.balance(), c2.balance());
            assert_eq!(
                c2.send(1).unwrap_err().error.to_string(),
                "Recursive channel call due to callbacks!"
            );
        })));
        let c = ch.clone();
        spawn(move || c.receive().unwrap()).unwrap();
        scheduler::run().unwrap();
        ch.send(5).unwrap();
        channel::set_channel_callback(None);
        assert_eq!(*seen.borrow(), [(false, false, true), (true, true, false)]);
    });
}

#[test]
fn a_channel_callback_leaves_who_runs_after_a_rendezvous_unchanged() {
    // With a callback installed, every channel operation takes the path that checks each
    // hook; the §3.1 order must be the one the fast path gives without it.
    on_thread(|| {
        let calls = Rc::new(std::cell::Cell::new(0));
        let c = calls.clone();
        channel::set_channel_callback(Some(Rc::new(move |_: &channel::ChannelEvent<'_>| {
            c.set(c.get() + 1);
        })));
        let (ch, l) = (Ch::new(), log());
        receiver_waiting_then_b(&ch, &l);
        ch.send(42).unwrap();
        push(&l, "main after send");
        assert_eq!(taken(&l), ["A got 42", "A end", "B", "main after send"]);
        let (ch, l) = (Ch::new(), log());
        sender_waiting_then_b(&ch, &l);
        let v = ch.receive().unwrap();
        push(&l, format!("main got {v}"));
        schedule().unwrap();
        assert_eq!(taken(&l), ["main got 9", "B", "S after send"]);
        channel::set_channel_callback(None);
        // Each of the two rendezvous: the blocked side's call and the caller's.
        assert_eq!(calls.get(), 4);
    });
}

#[test]
fn turning_schedule_all_off_gives_the_preference_back() {
    on_thread(|| {
        // schedule_all on, then off again: the default preference (-1) decides the send.
        let (ch, l) = (Ch::new(), log());
        ch.set_schedule_all(true);
        ch.set_schedule_all(false);
        assert!(!ch.schedule_all());
        receiver_waiting_then_b(&ch, &l);
        ch.send(42).unwrap();
        push(&l, "main after send");
        assert_eq!(taken(&l), ["A got 42", "A end", "B", "main after send"]);
        // Preference +1 set while schedule_all is on, which is then turned off: +1 decides
        // (the receive runs the sender at once).
        let (ch, l) = (Ch::new(), log());
        ch.set_schedule_all(true);
        ch.set_preference(1);
        ch.set_schedule_all(false);
        sender_waiting_then_b(&ch, &l);
        let v = ch.receive().unwrap();
        push(&l, format!("main got {v}"));
        assert_eq!(taken(&l), ["S after send", "B", "main got 9"]);
        // Preference 0 after +1: neither side switches.
        let (ch, l) = (Ch::new(), log());
        ch.set_preference(1);
        ch.set_preference(0);
        sender_waiting_then_b(&ch, &l);
        let v = ch.receive().unwrap();
        push(&l, format!("main got {v}"));
        schedule().unwrap();
        assert_eq!(taken(&l), ["main got 9", "B", "S after send"]);
    });
}
}

#[test]
fn a_sleeping_thread_is_woken_by_a_send_from_another_thread() {
    let ch: Channel<u32> = Channel::new();
    let c = ch.clone();
    let sender = microthread::spawn_thread(move || {
        std::thread::sleep(Duration::from_millis(100));
        c.send(77).unwrap();
        "sent"
    });
    let start = std::time::Instant::now();
    let got = on_thread(move || ch.receive().unwrap());
    assert_eq!(got, 77);
    assert!(start.elapsed() >= Duration::from_millis(90));
    assert_eq!(sender.join().unwrap(), "sent");
}

#[test]
fn cross_thread_rendezvous_lets_the_caller_continue() {
    // This thread will wake the other: it must count as awake before the other blocks,
    // or the other's last blocking call is (rightly) a deadlock.
    scheduler::init_thread();
    let ch: Channel<u32> = Channel::new();
    let c = ch.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let receiver = microthread::spawn_thread(move || {
        let done = Channel::new();
        let (c2, d) = (c.clone(), done.clone());
        spawn(move || d.send(c2.receive().unwrap() + 1).unwrap()).unwrap();
        scheduler::run().unwrap(); // the tasklet blocks in receive; run returns
        ready_tx.send(()).unwrap();
        done.receive().unwrap() // sleeps until the other thread's send wakes the tasklet
    });
    ready_rx.recv().unwrap();
    assert_eq!(ch.balance(), -1);
    ch.send(5).unwrap(); // the receiver is on another thread: we continue
    assert_eq!(ch.balance(), 0);
    assert_eq!(receiver.join().unwrap(), 6);
}
