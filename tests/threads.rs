//! Tasklets on several OS threads talking through shared channels: delivery exactly once and
//! in order under load, sleeping instead of spinning (after a brief bounded spin), no lost
//! wake-up between spin and sleep, and deadlock detection across threads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use microthread::scheduler::{self, spawn};
use microthread::{spawn_thread, Channel, Error};

const THREADS: usize = 4;
const SENDERS_PER_THREAD: usize = 2;
/// At least a million messages in release builds; a tenth in debug builds, which the
/// cross-architecture CI runs under emulation.
const MESSAGES: usize = if cfg!(debug_assertions) {
    120_000
} else {
    1_200_000
};

/// [`MESSAGES`] divided by `MICROTHREAD_TEST_SCALE` if that is set to a number above 1:
/// ci/valgrind.sh sets it, since valgrind runs threads one at a time and 30-50x slower.
fn messages() -> usize {
    let divisor = std::env::var("MICROTHREAD_TEST_SCALE")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|&d| d > 1)
        .unwrap_or(1);
    (MESSAGES / divisor).max(THREADS * SENDERS_PER_THREAD * (THREADS - 1))
}

#[path = "common/cpu.rs"]
mod cpu;
use cpu::thread_cpu;

/// CPU time of the whole process.
fn process_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[test]
fn a_million_messages_between_four_threads_arrive_exactly_once_and_in_order() {
    // One inbox channel per thread; each thread's senders send (sender, seq) to the other
    // threads' inboxes in turn, and one receiver per thread checks what arrives.
    let inboxes: Vec<Channel<(usize, u64)>> = (0..THREADS).map(|_| Channel::new()).collect();
    let per_sender = messages() / (THREADS * SENDERS_PER_THREAD);
    let per_receiver = per_sender * SENDERS_PER_THREAD * (THREADS - 1) / (THREADS - 1);
    // Each sender sends to the THREADS-1 other inboxes round-robin; make the count divisible.
    let per_sender = per_sender - per_sender % (THREADS - 1);
    let per_receiver = {
        let _ = per_receiver;
        per_sender / (THREADS - 1) * SENDERS_PER_THREAD * (THREADS - 1)
    };
    let received_total = Arc::new(AtomicU64::new(0));
    let start_cpu = process_cpu_time();
    let start = Instant::now();
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|me| {
            let inboxes = inboxes.clone();
            let total = received_total.clone();
            let barrier = barrier.clone();
            spawn_thread(move || {
                barrier.wait();
                // Every tasklet of this thread reports here when it is done.
                let done: Channel<()> = Channel::new();
                for k in 0..SENDERS_PER_THREAD {
                    let (inboxes, done) = (inboxes.clone(), done.clone());
                    let sender = me * SENDERS_PER_THREAD + k;
                    spawn(move || {
                        let others: Vec<usize> = (0..THREADS).filter(|&t| t != me).collect();
                        for seq in 0..per_sender as u64 {
                            let to = others[seq as usize % others.len()];
                            inboxes[to].send((sender, seq)).unwrap();
                        }
                        done.send(()).unwrap();
                    })
                    .unwrap();
                }
                let (inbox, done_rx) = (inboxes[me].clone(), done.clone());
                let receiver = spawn(move || {
                    // The next sequence number expected from each sender (None: none yet).
                    let mut next: Vec<Option<u64>> = vec![None; THREADS * SENDERS_PER_THREAD];
                    let mut count = 0usize;
                    for _ in 0..per_receiver {
                        let (sender, seq) = inbox.receive().unwrap();
                        assert_ne!(sender / SENDERS_PER_THREAD, me, "a message to oneself");
                        // A sender sends to each of the other threads in turn, so this inbox
                        // sees every (THREADS-1)-th of its numbers, in increasing order.
                        match next[sender] {
                            None => assert!(
                                seq < THREADS as u64 - 1,
                                "sender {sender} started at {seq}"
                            ),
                            Some(n) => assert_eq!(seq, n, "sender {sender}: out of order or lost"),
                        }
                        next[sender] = Some(seq + (THREADS as u64 - 1));
                        count += 1;
                    }
                    done_rx.send(()).unwrap();
                    (
                        count,
                        next.into_iter()
                            .map(|n| n.unwrap_or(0))
                            .collect::<Vec<u64>>(),
                    )
                })
                .unwrap();
                // Main waits for all of its tasklets; while they all wait for other threads,
                // the thread sleeps.
                for _ in 0..=SENDERS_PER_THREAD {
                    done.receive().unwrap();
                }
                // The last one to report resumes after us (preference -1): let it return.
                scheduler::run().unwrap();
                let (count, next) = receiver.result::<(usize, Vec<u64>)>().unwrap();
                total.fetch_add(count as u64, Ordering::Relaxed);
                next
            })
        })
        .collect();
    let finals: Vec<Vec<u64>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let wall = start.elapsed();
    let cpu = process_cpu_time() - start_cpu;
    assert_eq!(
        received_total.load(Ordering::Relaxed) as usize,
        per_receiver * THREADS
    );
    // Every sender's last message reached every other thread.
    for (me, next) in finals.iter().enumerate() {
        for (sender, &seen) in next.iter().enumerate().take(THREADS * SENDERS_PER_THREAD) {
            if sender / SENDERS_PER_THREAD != me {
                assert!(
                    seen >= per_sender as u64,
                    "thread {me} missed the end of sender {sender}"
                );
            }
        }
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(THREADS);
    eprintln!(
        "{} messages in {wall:?}, cpu {cpu:?} on {cores} cores",
        per_receiver * THREADS
    );
    assert!(
        cpu <= wall * cores as u32 + Duration::from_millis(200),
        "cpu {cpu:?} wall {wall:?}"
    );
}

#[test]
fn a_thread_waiting_for_another_sleeps_without_spinning_and_is_woken_by_its_send() {
    let ch: Channel<u64> = Channel::new();
    let c = ch.clone();
    let sender = spawn_thread(move || {
        std::thread::sleep(Duration::from_millis(300));
        c.send(99).unwrap();
    });
    let (got, cpu, wall) = std::thread::spawn(move || {
        let (cpu0, t0) = (thread_cpu(), Instant::now());
        let got = ch.receive().unwrap();
        (got, thread_cpu() - cpu0, t0.elapsed())
    })
    .join()
    .unwrap();
    sender.join().unwrap();
    assert_eq!(got, 99);
    assert!(
        wall >= Duration::from_millis(250),
        "woke too early: {wall:?}"
    );
    // Asleep, not polling: a few milliseconds of CPU at most over 300 ms of waiting.
    assert!(
        cpu < Duration::from_millis(60),
        "the waiting thread used {cpu:?} of CPU in {wall:?}"
    );
}

#[test]
fn a_thread_that_nobody_can_wake_gets_the_deadlock_error() {
    let result = std::thread::spawn(|| {
        let ch: Channel<u32> = Channel::new();
        let c = ch.clone();
        spawn(move || c.receive()).unwrap();
        // The tasklet blocks; then main blocks too, on another channel nobody else has.
        let other: Channel<u32> = Channel::new();
        scheduler::run().unwrap();
        other.receive()
    })
    .join()
    .unwrap();
    let e = result.unwrap_err();
    assert!(matches!(e, Error::Deadlock), "{e}");
}

#[test]
fn remote_handles_kill_and_throw_into_another_threads_tasklets() {
    scheduler::init_thread();
    let (tx, rx) = std::sync::mpsc::channel();
    let done: Channel<&'static str> = Channel::new();
    let d = done.clone();
    let worker = spawn_thread(move || {
        let gate: Channel<u32> = Channel::new();
        let (g1, g2) = (gate.clone(), gate.clone());
        let victim = spawn(move || {
            struct Report(Channel<&'static str>);
            impl Drop for Report {
                fn drop(&mut self) {
                    // Runs while the kill unwinds the victim's stack.
                    let _ = self.0.send("victim unwound");
                }
            }
            let _r = Report(d);
            g1.receive()
        })
        .unwrap();
        let thrown = spawn(move || g2.receive()).unwrap();
        scheduler::run().unwrap();
        tx.send((victim.remote(), thrown.remote())).unwrap();
        // Wait (asleep) until both have ended.
        while victim.alive() || thrown.alive() {
            let _ = gate.clone();
            scheduler::run().unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        thrown
            .result::<microthread::Result<u32>>()
            .unwrap()
            .unwrap_err()
            .payload_str()
            .map(str::to_owned)
    });
    let (victim, thrown) = rx.recv().unwrap();
    victim.kill().unwrap();
    assert_eq!(done.receive().unwrap(), "victim unwound");
    thrown.throw(Error::Thrown(Box::new("from afar"))).unwrap();
    assert_eq!(worker.join().unwrap().as_deref(), Some("from afar"));
    // The worker's thread has ended: its tasklets are gone.
    assert!(matches!(victim.insert(), Err(Error::NoThread)));
}

/// Runs `f` on its own thread and gives its result, or fails the test if it has not returned
/// after `limit` (the hung thread is left behind: the test has failed anyway).
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(_) => panic!("still running after {limit:?}: it hangs"),
    }
}

/// A `fmt::Write` that asks the channel for its balance on every write, as a logging writer
/// that inspects the channel it reports on might.
struct ProbingWriter {
    channel: Channel<u32>,
    text: String,
    balances: Vec<isize>,
}

impl std::fmt::Write for ProbingWriter {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.balances.push(self.channel.balance());
        self.text.push_str(s);
        Ok(())
    }
}

fn format_into_probing_writer(ch: Channel<u32>) -> ProbingWriter {
    use std::fmt::Write;
    let mut w = ProbingWriter {
        channel: ch.clone(),
        text: String::new(),
        balances: Vec::new(),
    };
    write!(w, "{ch:?}").unwrap();
    w
}

#[test]
fn formatting_a_shared_channel_into_a_writer_that_uses_it_does_not_hang() {
    let ch: Channel<u32> = Channel::new();
    // Another thread's use ends the channel's bias: from now on every use takes the spin lock,
    // so a formatter holding it while it writes would spin forever on the writer's `balance`.
    let c = ch.clone();
    std::thread::spawn(move || c.balance()).join().unwrap();
    let w = within(Duration::from_secs(20), move || {
        format_into_probing_writer(ch)
    });
    assert!(w.text.starts_with("Channel { id: "), "{}", w.text);
    assert!(w.text.contains("balance: 0, preference: -1"), "{}", w.text);
    assert!(!w.balances.is_empty() && w.balances.iter().all(|&b| b == 0));
}

#[test]
fn formatting_a_channel_biased_to_this_thread_into_a_writer_that_uses_it_works() {
    // The biased fast path: the writer's `balance` re-enters the channel from the owning
    // thread, which must not happen while the formatter still holds its state.
    let text = within(Duration::from_secs(20), || {
        scheduler::init_thread();
        let ch: Channel<u32> = Channel::new();
        ch.set_preference(1);
        format_into_probing_writer(ch).text
    });
    assert!(
        text.contains("preference: 1, schedule_all: false, closing: false"),
        "{text}"
    );
}

/// Messages per waiter in the spin tests: each is a wait the spin cannot satisfy.
const SLOW_MESSAGES: u32 = 25;

/// Under valgrind (ci/valgrind.sh sets MICROTHREAD_TEST_SCALE), where a wake-up costs some
/// hundred microseconds of CPU, everything is 8 times longer.
fn valgrind_factor() -> u32 {
    if std::env::var_os("MICROTHREAD_TEST_SCALE").is_some() {
        8
    } else {
        1
    }
}

#[test]
fn threads_waiting_many_times_for_a_slow_partner_spin_briefly_then_sleep() {
    // Four waiting threads (on two cores, at most one may spin at a time), each receiving
    // SLOW_MESSAGES messages that come SLOW_GAP apart: every receive spins for nothing, then
    // sleeps. A spin that were not bounded, or a wait that polled, would use about the whole
    // 100 ms per thread; a bounded spin uses 20 µs per wait at most, 0.5 ms in all.
    let inboxes: Vec<Channel<u32>> = (0..4).map(|_| Channel::new()).collect();
    let outboxes = inboxes.clone();
    // Between two slow messages: far beyond any spin (20 µs at most).
    let gap = Duration::from_millis(4) * valgrind_factor();
    let sender = spawn_thread(move || {
        for i in 0..SLOW_MESSAGES {
            std::thread::sleep(gap);
            for ch in &outboxes {
                ch.send(i).unwrap();
            }
        }
    });
    let waiters: Vec<_> = inboxes
        .into_iter()
        .map(|ch| {
            spawn_thread(move || {
                let cpu0 = thread_cpu();
                for i in 0..SLOW_MESSAGES {
                    assert_eq!(ch.receive().unwrap(), i);
                }
                thread_cpu() - cpu0
            })
        })
        .collect();
    let cpus: Vec<Duration> = within(Duration::from_secs(60), move || {
        let cpus = waiters.into_iter().map(|w| w.join().unwrap()).collect();
        sender.join().unwrap();
        cpus
    });
    for cpu in &cpus {
        // 25 waits: wake-ups and bookkeeping take some CPU; spinning through the gaps would
        // take 100 ms (natively).
        assert!(
            *cpu < Duration::from_millis(40) * valgrind_factor(),
            "a waiting thread used {cpu:?} of CPU: {cpus:?}"
        );
    }
}

#[test]
fn no_wake_up_is_lost_wherever_the_partner_answers_in_the_spin_or_the_sleep() {
    // A ping-pong between two threads where the echo answers after a delay that walks from
    // nothing to well past the longest spin: the pinging thread sees its answer while it
    // spins, just as it gives up, while it goes to sleep, and asleep. A lost wake-up would
    // hang the ping-pong: `within` fails the test instead.
    let rounds: u32 = 3_000 / valgrind_factor();
    within(Duration::from_secs(120), move || {
        let (ping, pong) = (Channel::<u32>::new(), Channel::<u32>::new());
        let (rx, tx) = (ping.clone(), pong.clone());
        let echo = spawn_thread(move || {
            for i in 0..rounds {
                let v = rx.receive().unwrap();
                // 0 to 39 µs of work before the answer (a busy wait: std's sleep would add
                // its own tens of microseconds).
                let delay = Duration::from_micros(u64::from(i * 7 % 40));
                let t0 = Instant::now();
                while t0.elapsed() < delay {
                    std::hint::spin_loop();
                }
                tx.send(v + 1).unwrap();
            }
        });
        for i in 0..rounds {
            ping.send(i).unwrap();
            assert_eq!(pong.receive().unwrap(), i + 1);
        }
        echo.join().unwrap();
    });
}

#[test]
fn many_posts_to_one_sleeping_thread_all_arrive() {
    // Eight threads make tasklets of one sleeping thread runnable at once (the first post
    // wakes it, the others find it waking or awake): every one of them must run.
    const SENDERS: u32 = 8;
    const EACH: u32 = 500;
    within(Duration::from_secs(120), || {
        let ch = Channel::<u32>::new();
        let rx = ch.clone();
        let receiver = spawn_thread(move || {
            let done = Channel::<u32>::new();
            for _ in 0..SENDERS {
                let (rx, done) = (rx.clone(), done.clone());
                spawn(move || {
                    let mut sum = 0;
                    for _ in 0..EACH {
                        sum += rx.receive().unwrap();
                    }
                    done.send(sum).unwrap();
                })
                .unwrap();
            }
            (0..SENDERS).map(|_| done.receive().unwrap()).sum::<u32>()
        });
        let barrier = Arc::new(Barrier::new(SENDERS as usize));
        let senders: Vec<_> = (0..SENDERS)
            .map(|_| {
                let (tx, barrier) = (ch.clone(), barrier.clone());
                spawn_thread(move || {
                    barrier.wait();
                    for i in 0..EACH {
                        tx.send(i).unwrap();
                    }
                })
            })
            .collect();
        for s in senders {
            s.join().unwrap();
        }
        assert_eq!(receiver.join().unwrap(), SENDERS * (EACH * (EACH - 1) / 2));
    });
}

#[test]
fn a_pool_of_more_threads_than_cpus_waiting_200_ms_for_work_stops_yielding_and_sleeps() {
    // Four workers receive on one channel (the report's worker pool) and nothing comes for
    // 200 ms. Each first spins (at most one at a time on two cores) and yields its CPU (the
    // wait for a pool's next job), both bounded: then it sleeps. A run of yields that were
    // not bounded would keep every worker running through the 200 ms (yielding to the
    // others, so using its share of the CPUs: up to 100 ms each on two idle cores).
    // Each worker first takes one job, so that what is measured is a wait alone: not the
    // thread's start, nor the first run of the waiting code (under qemu-user the worker that
    // first runs it pays for its translation, 9 ms on aarch64).
    let jobs = Channel::<u32>::new();
    let warmed = Arc::new(Barrier::new(5));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (jobs, warmed) = (jobs.clone(), warmed.clone());
            spawn_thread(move || {
                let warm_up = jobs.receive().unwrap();
                warmed.wait(); // so that each worker takes exactly one warm-up job
                let cpu0 = thread_cpu();
                let job = jobs.receive().unwrap();
                (warm_up, job, thread_cpu() - cpu0)
            })
        })
        .collect();
    for job in 0..4 {
        jobs.send(100 + job).unwrap();
    }
    warmed.wait();
    std::thread::sleep(Duration::from_millis(200) * valgrind_factor());
    for job in 0..4 {
        jobs.send(job).unwrap();
    }
    let mut got: Vec<(u32, u32, Duration)> =
        workers.into_iter().map(|w| w.join().unwrap()).collect();
    got.sort();
    let mut jobs_taken: Vec<u32> = got.iter().flat_map(|g| [g.0, g.1]).collect();
    jobs_taken.sort();
    assert_eq!(jobs_taken, [0, 1, 2, 3, 100, 101, 102, 103]);
    for (_, _, cpu) in &got {
        // A spin (20 µs), a run of yields (50 µs) and a wake-up: well under a millisecond
        // (0.3 ms at most measured here); unbounded yields used 22 ms each on a loaded
        // 2-CPU machine.
        assert!(
            *cpu < Duration::from_millis(5) * valgrind_factor(),
            "an idle worker used {cpu:?} of CPU in 200 ms: {got:?}"
        );
    }
}
