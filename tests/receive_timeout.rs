//! `receive_timeout` on both channel kinds (issue 9 item 4): the typed timeout, the channel
//! left as if the receive never happened, a later value reaching the next receiver, a kill
//! of a timed receiver, and senders on another thread racing with the deadline (never a lost
//! value). Timing margins are generous: these run under qemu too.

use std::time::{Duration, Instant};

use microthread::channel::{Channel, LocalChannel};
use microthread::scheduler::{self, spawn};
use microthread::Error;

macro_rules! both_kinds {
    ($($name:ident),* $(,)?) => {
        mod shared {
            $(#[test] fn $name() { super::$name::<microthread::channel::Channel<u32>>(); })*
        }
        mod local {
            $(#[test] fn $name() { super::$name::<microthread::channel::LocalChannel<u32>>(); })*
        }
    };
}

trait Ch: Clone + 'static {
    fn new() -> Self;
    fn send(&self, v: u32) -> bool;
    fn receive(&self) -> microthread::Result<u32>;
    fn receive_timeout(&self, d: Duration) -> microthread::Result<u32>;
    fn balance(&self) -> isize;
    fn queue(&self) -> Vec<u64>;
}

macro_rules! impl_ch {
    ($T:ty) => {
        impl Ch for $T {
            fn new() -> Self {
                <$T>::new()
            }
            fn send(&self, v: u32) -> bool {
                <$T>::send(self, v).is_ok()
            }
            fn receive(&self) -> microthread::Result<u32> {
                <$T>::receive(self)
            }
            fn receive_timeout(&self, d: Duration) -> microthread::Result<u32> {
                <$T>::receive_timeout(self, d)
            }
            fn balance(&self) -> isize {
                <$T>::balance(self)
            }
            fn queue(&self) -> Vec<u64> {
                <$T>::queue(self)
            }
        }
    };
}
impl_ch!(Channel<u32>);
impl_ch!(LocalChannel<u32>);

both_kinds!(
    a_timed_out_receive_leaves_balance_and_queue_as_before,
    a_value_sent_after_the_timeout_reaches_the_next_receiver,
    a_blocked_sender_after_the_timeout_is_received_next,
    a_receive_that_succeeds_leaves_no_deadline_behind,
    a_zero_timeout_takes_only_a_waiting_sender,
    a_killed_timed_receiver_leaves_the_channel,
);

fn a_timed_out_receive_leaves_balance_and_queue_as_before<C: Ch>() {
    let ch = C::new();
    // Another receiver waits first: balance -1, queue [it].
    let rx = ch.clone();
    let first = spawn(move || rx.receive().unwrap()).unwrap();
    scheduler::schedule().unwrap();
    let (balance, queue) = (ch.balance(), ch.queue());
    assert_eq!((balance, queue.clone()), (-1, vec![first.id()]));
    // A tasklet's timed receive, while main is busy elsewhere. (A deadline long enough to
    // be still ahead when the receive blocks, even on a loaded machine under qemu: a passed
    // one would time out before queueing, and the balance check below would fail.)
    let rx = ch.clone();
    let timed = spawn(move || rx.receive_timeout(Duration::from_millis(500))).unwrap();
    scheduler::schedule().unwrap();
    assert_eq!(
        ch.balance(),
        -2,
        "while it waits it is queued like any receiver"
    );
    assert!(timed.blocked() && !timed.sleeping());
    let start = Instant::now();
    while timed.alive() {
        scheduler::schedule().unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the deadline never came"
        );
    }
    assert!(matches!(
        timed.result::<microthread::Result<u32>>(),
        Some(Err(Error::Timeout))
    ));
    assert_eq!((ch.balance(), ch.queue()), (balance, queue));
    // And main's own timed receive, with nothing else runnable.
    assert!(matches!(
        ch.receive_timeout(Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    assert_eq!((ch.balance(), ch.queue()), (-1, vec![first.id()]));
    assert!(ch.send(9));
    assert_eq!(
        first.result::<u32>(),
        Some(9),
        "the first receiver is served"
    );
}

fn a_value_sent_after_the_timeout_reaches_the_next_receiver<C: Ch>() {
    let ch = C::new();
    let rx = ch.clone();
    let timed = spawn(move || rx.receive_timeout(Duration::from_millis(20))).unwrap();
    scheduler::run().unwrap(); // it times out; run waits for it
    assert!(matches!(
        timed.result::<microthread::Result<u32>>(),
        Some(Err(Error::Timeout))
    ));
    assert_eq!(ch.balance(), 0);
    let rx = ch.clone();
    let next = spawn(move || rx.receive().unwrap()).unwrap();
    scheduler::schedule().unwrap();
    assert!(ch.send(42));
    assert_eq!(next.result::<u32>(), Some(42));
}

fn a_blocked_sender_after_the_timeout_is_received_next<C: Ch>() {
    let ch = C::new();
    assert!(matches!(
        ch.receive_timeout(Duration::from_millis(10)),
        Err(Error::Timeout)
    ));
    let tx = ch.clone();
    let sender = spawn(move || tx.send(5)).unwrap();
    scheduler::schedule().unwrap();
    assert_eq!(ch.balance(), 1, "the sender finds nobody: it blocks");
    assert_eq!(ch.receive().unwrap(), 5);
    scheduler::run().unwrap();
    assert_eq!(sender.result::<bool>(), Some(true));
}

fn a_receive_that_succeeds_leaves_no_deadline_behind<C: Ch>() {
    let ch = C::new();
    let tx = ch.clone();
    spawn(move || {
        scheduler::sleep(Duration::from_millis(5)).unwrap();
        assert!(tx.send(3));
    })
    .unwrap();
    assert_eq!(ch.receive_timeout(Duration::from_secs(3600)).unwrap(), 3);
    // The hour-long deadline is stale: run() returns without waiting for it, and no
    // Timeout is pending for a later operation.
    let start = Instant::now();
    scheduler::run().unwrap();
    scheduler::schedule().unwrap();
    assert!(start.elapsed() < Duration::from_secs(600));
    assert!(matches!(
        ch.receive_timeout(Duration::from_millis(1)),
        Err(Error::Timeout)
    ));
}

fn a_zero_timeout_takes_only_a_waiting_sender<C: Ch>() {
    let ch = C::new();
    assert!(matches!(
        ch.receive_timeout(Duration::ZERO),
        Err(Error::Timeout)
    ));
    assert_eq!(ch.balance(), 0);
    let tx = ch.clone();
    spawn(move || tx.send(8)).unwrap();
    scheduler::schedule().unwrap();
    assert_eq!(ch.receive_timeout(Duration::ZERO).unwrap(), 8);
}

fn a_killed_timed_receiver_leaves_the_channel<C: Ch>() {
    let ch = C::new();
    let rx = ch.clone();
    let t = spawn(move || rx.receive_timeout(Duration::from_secs(3600))).unwrap();
    scheduler::schedule().unwrap();
    assert_eq!(ch.balance(), -1);
    t.kill().unwrap();
    assert_eq!((ch.balance(), ch.queue()), (0, vec![]));
    let start = Instant::now();
    scheduler::run().unwrap();
    assert!(start.elapsed() < Duration::from_secs(600));
}

#[test]
fn a_timeout_error_reads_as_a_sentence() {
    assert_eq!(
        Error::Timeout.to_string(),
        "the receive timed out: no sender came before its deadline"
    );
}

/// Senders on another thread race with the receiver's deadline: each value is either the
/// timed receive's result or, if that timed out, the next (blocking) receive's. None is lost
/// and none comes twice.
#[test]
fn a_cross_thread_sender_racing_with_the_timeout_never_loses_a_value() {
    // A tenth under valgrind (ci/valgrind.sh sets the scale), which runs one thread at a time.
    let scale = std::env::var("MICROTHREAD_TEST_SCALE")
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .filter(|&d| d > 1)
        .unwrap_or(1);
    let n: u32 = (300 / scale).max(30);
    // This thread counts as awake for deadlock detection from here: the sender's first send
    // may come before our first receive, and it must wait for it, not fail with a deadlock.
    // (Without this line the sender's first send failed once in about 60 runs under
    // qemu-user, and this loop, waiting for values nobody would send, spun forever.)
    scheduler::init_thread();
    let ch = Channel::<u32>::new();
    let tx = ch.clone();
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let sender = std::thread::spawn(move || {
        scheduler::init_thread();
        ready_tx.send(()).unwrap();
        for i in 0..n {
            // Delays around the receiver's timeout, so that both orders happen.
            std::thread::sleep(Duration::from_micros(((i * 37) % 400) as u64));
            tx.send(i).unwrap();
        }
    });
    ready.recv().unwrap();
    let mut sender = Some(sender);
    let (mut timeouts, mut got) = (0, Vec::new());
    while got.len() < n as usize {
        let timeout = Duration::from_micros(((got.len() as u64 * 53) % 300) + 1);
        match ch.receive_timeout(timeout) {
            Ok(v) => got.push(v),
            Err(Error::Timeout) => {
                timeouts += 1;
                assert!(ch.balance() >= 0, "a timed-out receiver stays queued");
                // A send returns only once its value is taken, so a sender that has ended
                // has either failed (its panic is re-raised here) or had all its values
                // received: one we do not have was lost.
                if sender.as_ref().is_some_and(|s| s.is_finished()) {
                    sender.take().unwrap().join().unwrap();
                    panic!("the sender ended but only {} of {n} values came", got.len());
                }
            }
            Err(e) => panic!("{e}"),
        }
    }
    sender.take().unwrap().join().unwrap();
    assert_eq!(got, (0..n).collect::<Vec<_>>());
    assert_eq!(ch.balance(), 0);
    eprintln!("{timeouts} timeouts over {n} values");
}
