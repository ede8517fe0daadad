//! Scenario tests of `BufferedChannel` with a buffer (capacity 0 runs the whole rendezvous
//! suite instead: `for_both_channel_kinds!` in tests/channel.rs and tests/channel_handles.rs):
//! FIFO order through the buffer and the blocked senders, sends that go on while there is
//! room and block when it is full, who runs when a receive frees a place, closing and
//! draining, errors sent in order, the channel callback's `will_block`, drops of buffered
//! values, kills and throws of blocked senders, and producers and consumers on several
//! threads.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use microthread::channel::{self, AnyChannel, BufferedChannel, ChannelEvent};
use microthread::scheduler::{self, spawn};
use microthread::{spawn_thread, Error, Tasklet};

mod common;
use common::{log, on_thread, push, taken, Log};

/// A tasklet that sends each of `values` on `ch`, logging `"<name> sent <v>"` after each.
fn sender(ch: &BufferedChannel<u32>, l: &Log, name: &'static str, values: &[u32]) -> Tasklet {
    let (c, l, values) = (ch.clone(), l.clone(), values.to_vec());
    spawn(move || {
        for v in values {
            c.send(v).unwrap();
            push(&l, format!("{name} sent {v}"));
        }
    })
    .unwrap()
}

#[test]
fn values_come_out_in_the_order_they_went_in() {
    on_thread(|| {
        let ch = BufferedChannel::with_capacity(3);
        for round in 0..4u32 {
            // Each round wraps the ring at another place.
            for v in 0..3 {
                ch.send(round * 10 + v).unwrap();
            }
            assert_eq!((ch.len(), ch.balance()), (3, 0));
            assert_eq!(ch.receive().unwrap(), round * 10);
            ch.send(round * 10 + 3).unwrap();
            let got: Vec<u32> = (0..3).map(|_| ch.receive().unwrap()).collect();
            assert_eq!(got, [round * 10 + 1, round * 10 + 2, round * 10 + 3]);
            assert!(ch.is_empty());
        }
    });
}

#[test]
fn a_send_with_room_goes_on_and_a_send_into_a_full_buffer_blocks() {
    on_thread(|| {
        let (ch, l) = (BufferedChannel::with_capacity(2), log());
        let s = sender(&ch, &l, "S", &[1, 2, 3]);
        scheduler::run().unwrap();
        // 1 and 2 went into the buffer without a receiver; 3 waits for room.
        assert_eq!(taken(&l), ["S sent 1", "S sent 2"]);
        assert!(s.alive() && s.blocked());
        assert_eq!((ch.len(), ch.balance(), ch.queue()), (2, 1, vec![s.id()]));
        assert_eq!(ch.receive().unwrap(), 1);
        // 3 moved into the buffer; the sender is runnable (preference -1: the receiver goes on).
        assert_eq!((ch.len(), ch.balance()), (2, 0));
        assert!(s.scheduled() && !s.blocked());
        assert!(taken(&l).is_empty());
        scheduler::run().unwrap();
        assert_eq!(taken(&l), ["S sent 3"]);
        assert!(!s.alive());
        assert_eq!([ch.receive().unwrap(), ch.receive().unwrap()], [2, 3]);
    });
}

#[test]
fn blocked_senders_follow_the_buffer_in_their_queue_order() {
    on_thread(|| {
        let (ch, l) = (BufferedChannel::with_capacity(2), log());
        ch.send_sequence([1, 2]).unwrap();
        let a = sender(&ch, &l, "A", &[3, 6]);
        let b = sender(&ch, &l, "B", &[4]);
        let c = sender(&ch, &l, "C", &[5]);
        scheduler::run().unwrap();
        assert_eq!(ch.queue(), [a.id(), b.id(), c.id()]);
        assert_eq!(ch.balance(), 3);
        // Each receive frees a place, which the head of the queue fills.
        assert_eq!(ch.receive().unwrap(), 1);
        assert_eq!(ch.queue(), [b.id(), c.id()]);
        assert_eq!(ch.receive().unwrap(), 2);
        // A sends 6 next: behind C, whose 5 is already buffered.
        scheduler::run().unwrap();
        assert_eq!(taken(&l), ["A sent 3", "B sent 4"]);
        assert_eq!(ch.queue(), [c.id(), a.id()]);
        let got: Vec<u32> = (0..4).map(|_| ch.receive().unwrap()).collect();
        assert_eq!(got, [3, 4, 5, 6]);
        scheduler::run().unwrap();
        assert_eq!(taken(&l), ["C sent 5", "A sent 6"]);
        assert_eq!((ch.len(), ch.balance()), (0, 0));
    });
}

#[test]
fn a_receive_that_frees_a_place_follows_the_preference() {
    on_thread(|| {
        let (ch, l) = (BufferedChannel::with_capacity(1), log());
        ch.send(1).unwrap();
        sender(&ch, &l, "S", &[2]);
        scheduler::run().unwrap();
        // +1: the woken sender runs at once, before the receiver goes on.
        ch.set_preference(1);
        assert_eq!(ch.receive().unwrap(), 1);
        push(&l, "main after receive");
        assert_eq!(taken(&l), ["S sent 2", "main after receive"]);
        // A receive without a waiting sender switches to nobody.
        spawn({
            let l = l.clone();
            move || push(&l, "B")
        })
        .unwrap();
        assert_eq!(ch.receive().unwrap(), 2);
        push(&l, "main after receive");
        scheduler::run().unwrap();
        assert_eq!(taken(&l), ["main after receive", "B"]);
    });
}

#[test]
fn a_waiting_receiver_is_served_directly_and_a_buffered_send_never_switches() {
    on_thread(|| {
        let (ch, l) = (BufferedChannel::<u32>::with_capacity(4), log());
        let (c, l2) = (ch.clone(), l.clone());
        let r = spawn(move || {
            let v = c.receive().unwrap();
            push(&l2, format!("R got {v}"));
        })
        .unwrap();
        scheduler::run().unwrap();
        assert_eq!(ch.balance(), -1);
        // The receiver waits: the value is handed over (preference -1: it runs at once).
        ch.send(7).unwrap();
        assert_eq!(taken(&l), ["R got 7"]);
        assert!(!r.alive());
        assert_eq!(ch.len(), 0);
        // Nobody waits: buffered, nobody runs, even with schedule_all.
        ch.set_schedule_all(true);
        spawn({
            let l = l.clone();
            move || push(&l, "B")
        })
        .unwrap();
        ch.send(8).unwrap();
        assert!(taken(&l).is_empty());
        assert_eq!(ch.len(), 1);
        scheduler::run().unwrap();
        assert_eq!(taken(&l), ["B"]);
        assert_eq!(ch.receive().unwrap(), 8);
    });
}

#[test]
fn capacity_zero_is_a_rendezvous() {
    on_thread(|| {
        let ch = BufferedChannel::<u32>::with_capacity(0);
        assert_eq!(ch.capacity(), 0);
        let failed = ch.send(1).unwrap_err();
        assert!(matches!(failed.error, Error::Deadlock));
        assert_eq!(failed.value, Some(1));
        let c = ch.clone();
        let t = spawn(move || c.send(2).unwrap()).unwrap();
        scheduler::run().unwrap();
        assert!(t.blocked());
        assert_eq!((ch.balance(), ch.len()), (1, 0));
        assert_eq!(ch.receive().unwrap(), 2);
    });
}

#[test]
fn closing_refuses_new_values_and_iteration_drains_the_buffer_then_the_senders() {
    on_thread(|| {
        let (ch, l) = (BufferedChannel::with_capacity(2), log());
        ch.send_sequence([1, 2]).unwrap();
        let s = sender(&ch, &l, "S", &[3]);
        scheduler::run().unwrap();
        ch.close();
        assert!(ch.closing() && !ch.closed());
        let got: Vec<u32> = ch.iter().map(|v| v.unwrap()).collect();
        assert_eq!(got, [1, 2, 3]);
        assert!(ch.closed());
        scheduler::run().unwrap();
        assert_eq!(taken(&l), ["S sent 3"]);
        assert!(!s.alive());
        // Closing: a send that finds no receiver fails even with room, and gives the value
        // back; the channel stays closed.
        let failed = ch.send(4).unwrap_err();
        assert!(matches!(failed.error, Error::ClosedChannel));
        assert_eq!(failed.value, Some(4));
        assert!(matches!(ch.receive(), Err(Error::ClosedChannel)));
        assert!(ch.closed() && ch.is_empty());
        ch.open();
        ch.send(5).unwrap();
        assert_eq!(ch.len(), 1);
        ch.close();
        assert!(!ch.closed()); // one value still buffered
        assert_eq!(ch.receive().unwrap(), 5);
        assert!(ch.closed());
    });
}

#[test]
fn a_thrown_error_travels_through_the_buffer_in_order() {
    on_thread(|| {
        let ch = BufferedChannel::<u32>::with_capacity(3);
        ch.send(1).unwrap();
        ch.send_throw(Box::new("stop")).unwrap();
        ch.send(2).unwrap();
        assert_eq!(ch.len(), 3);
        assert_eq!(ch.receive().unwrap(), 1);
        let e = ch.receive().unwrap_err();
        assert!(matches!(e, Error::Thrown(_)));
        assert_eq!(e.payload_str(), Some("stop"));
        assert_eq!(ch.receive().unwrap(), 2);
    });
}

#[test]
fn receive_timeout_takes_a_buffered_value_at_once() {
    on_thread(|| {
        let ch = BufferedChannel::with_capacity(1);
        ch.send(3u8).unwrap();
        assert_eq!(ch.receive_timeout(Duration::ZERO).unwrap(), 3);
        assert!(matches!(
            ch.receive_timeout(Duration::from_millis(1)),
            Err(Error::Timeout)
        ));
    });
}

#[test]
fn the_callback_says_will_block_as_the_buffer_decides() {
    on_thread(|| {
        let ch = BufferedChannel::<u32>::with_capacity(1);
        let seen: Rc<RefCell<Vec<(bool, bool, usize)>>> = Rc::default();
        let s = seen.clone();
        channel::set_channel_callback(Some(Rc::new(move |ev: &ChannelEvent<'_>| {
            assert_eq!(ev.channel.capacity(), 1);
            s.borrow_mut()
                .push((ev.sending, ev.will_block, ev.channel.len()));
        })));
        ch.send(1).unwrap(); // room
        assert!(ch.send(2).is_err()); // full: main would block (a deadlock)
        assert_eq!(ch.receive().unwrap(), 1); // a value is buffered
        assert!(ch.receive().is_err()); // empty: main would block
        ch.close();
        assert!(ch.send(3).is_err()); // closing: it fails as a block would
        channel::set_channel_callback(None);
        assert_eq!(
            *seen.borrow(),
            [
                (true, false, 0),
                (true, true, 1),
                (false, false, 1),
                (false, true, 0),
                (true, true, 0)
            ]
        );
        let any: &dyn AnyChannel = &ch;
        assert!(any.downcast_ref::<BufferedChannel<u32>>().is_some());
        assert_eq!(format!("{ch:?}"), format!("BufferedChannel {{ id: {}, balance: 0, preference: -1, schedule_all: false, closing: true, len: 0, capacity: 1 }}", ch.id()));
    });
}

/// Counts its drops.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn dropping_the_channel_drops_the_buffered_values() {
    on_thread(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let ch = BufferedChannel::with_capacity(4);
        for _ in 0..4 {
            ch.send(Counted(drops.clone())).unwrap();
        }
        // Two out and two more in: the ring wraps.
        drop(ch.receive().unwrap());
        drop(ch.receive().unwrap());
        assert_eq!(drops.load(Ordering::SeqCst), 2);
        ch.send(Counted(drops.clone())).unwrap();
        ch.send(Counted(drops.clone())).unwrap();
        let other = ch.clone();
        drop(ch);
        assert_eq!(drops.load(Ordering::SeqCst), 2); // another handle keeps them
        drop(other);
        assert_eq!(drops.load(Ordering::SeqCst), 6);
    });
}

#[test]
fn a_killed_or_thrown_into_blocked_sender_leaves_the_queue_with_its_value() {
    on_thread(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let ch = BufferedChannel::<Counted>::with_capacity(1);
        ch.send(Counted(drops.clone())).unwrap();
        let blocked = |ch: &BufferedChannel<Counted>| {
            let (c, d) = (ch.clone(), drops.clone());
            spawn(move || c.send(Counted(d)).map_err(|e| e.error)).unwrap()
        };
        let (k, t, k2, last) = (blocked(&ch), blocked(&ch), blocked(&ch), blocked(&ch));
        scheduler::run().unwrap();
        assert_eq!(ch.balance(), 4);
        k.kill().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 1); // its value, unwound with it
        t.throw(Error::Thrown(Box::new("no"))).unwrap();
        let thrown = t.result::<microthread::Result<()>>().unwrap();
        assert_eq!(thrown.unwrap_err().payload_str(), Some("no"));
        assert_eq!(drops.load(Ordering::SeqCst), 2); // given back in the error, dropped
        assert_eq!((ch.balance(), ch.len()), (2, 1));
        k2.kill().unwrap();
        assert_eq!((ch.balance(), ch.queue()), (1, vec![last.id()]));
        // The buffered value, then the last sender's, which moves in.
        drop(ch.receive().unwrap());
        assert_eq!((ch.balance(), ch.len()), (0, 1));
        scheduler::run().unwrap();
        assert!(matches!(
            last.result::<microthread::Result<()>>(),
            Some(Ok(()))
        ));
        drop(ch);
        assert_eq!(drops.load(Ordering::SeqCst), 5);
    });
}

#[test]
fn a_sender_that_panics_after_a_throw_leaves_the_channel_consistent() {
    on_thread(|| {
        let ch = BufferedChannel::<u32>::with_capacity(1);
        ch.send(1).unwrap();
        let c = ch.clone();
        let p = spawn(move || c.send(2).expect("thrown into: panic")).unwrap();
        scheduler::run().unwrap();
        assert_eq!(ch.balance(), 1);
        // The sender runs at once and panics; the panic reaches main, the thrower. It left
        // the queue.
        let r = p.throw(Error::Thrown(Box::new("boom")));
        assert!(matches!(r, Err(Error::Panicked { .. })), "{r:?}");
        assert!(!p.alive());
        assert_eq!((ch.balance(), ch.len()), (0, 1));
        ch.send_throw(Box::new("after")).unwrap_err(); // full, main alone: a deadlock
        assert_eq!(ch.receive().unwrap(), 1);
        ch.send(3).unwrap();
        assert_eq!(ch.receive().unwrap(), 3);
    });
}

#[test]
fn workers_on_several_threads_take_every_job_once() {
    const JOBS: u64 = 20_000;
    const WORKERS: usize = 4;
    let jobs = BufferedChannel::<Option<u64>>::with_capacity(16);
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let jobs = jobs.clone();
            spawn_thread(move || {
                let (mut sum, mut n) = (0u64, 0u64);
                while let Some(job) = jobs.receive().unwrap() {
                    sum += job;
                    n += 1;
                }
                (sum, n)
            })
        })
        .collect();
    for job in 1..=JOBS {
        jobs.send(Some(job)).unwrap();
    }
    for _ in 0..WORKERS {
        jobs.send(None).unwrap();
    }
    let (sum, n) = workers
        .into_iter()
        .map(|w| w.join().unwrap())
        .fold((0, 0), |(s, n), (s2, n2)| (s + s2, n + n2));
    assert_eq!((sum, n), (JOBS * (JOBS + 1) / 2, JOBS));
    assert_eq!((jobs.len(), jobs.balance()), (0, 0));
}

#[test]
fn producers_on_several_threads_keep_each_ones_order() {
    const PER_PRODUCER: u32 = 5_000;
    const PRODUCERS: u32 = 3;
    let ch = BufferedChannel::<(u32, u32)>::with_capacity(8);
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let ch = ch.clone();
            spawn_thread(move || {
                for i in 0..PER_PRODUCER {
                    ch.send((p, i)).unwrap();
                }
            })
        })
        .collect();
    // The consumer: this thread's main and a tasklet, taking turns on one channel.
    let results = BufferedChannel::<Vec<(u32, u32)>>::with_capacity(1);
    let (c, r) = (ch.clone(), results.clone());
    let half = PER_PRODUCER * PRODUCERS / 2;
    spawn(move || {
        let got: Vec<_> = (0..half).map(|_| c.receive().unwrap()).collect();
        r.send(got).unwrap();
    })
    .unwrap();
    let mut mine: Vec<_> = (0..PER_PRODUCER * PRODUCERS - half)
        .map(|_| ch.receive().unwrap())
        .collect();
    let theirs = results.receive().unwrap();
    for p in producers {
        p.join().unwrap();
    }
    // Each consumer saw each producer's values in order; together they saw every one once.
    for seen in [&mine, &theirs] {
        for p in 0..PRODUCERS {
            let of_p: Vec<u32> = seen.iter().filter(|v| v.0 == p).map(|v| v.1).collect();
            assert!(
                of_p.windows(2).all(|w| w[0] < w[1]),
                "producer {p} out of order"
            );
        }
    }
    mine.extend(theirs);
    mine.sort_unstable();
    let all: Vec<_> = (0..PRODUCERS)
        .flat_map(|p| (0..PER_PRODUCER).map(move |i| (p, i)))
        .collect();
    assert_eq!(mine, all);
}

#[test]
fn a_sleeping_worker_is_woken_by_a_send_from_another_thread() {
    let ch = BufferedChannel::<u32>::with_capacity(4);
    let c = ch.clone();
    let worker = spawn_thread(move || c.receive().unwrap() + c.receive().unwrap());
    let start = std::time::Instant::now();
    while ch.balance() != -1 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the worker never blocked"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // Long enough for the worker to spin and go to sleep in its receive.
    std::thread::sleep(Duration::from_millis(50));
    ch.send(1).unwrap(); // handed over: the worker wakes
    std::thread::sleep(Duration::from_millis(50));
    ch.send(2).unwrap(); // handed over again, or buffered if the worker is not back yet
    assert_eq!(worker.join().unwrap(), 3);
}
