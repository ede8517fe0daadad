//! Stackless's `threadblock` (`RunOptions::threadblock`, reference §1.1 `run`, §2.4, §4):
//! with a timeout (a tick budget or a time slice), a `run_with` whose tasklets all wait on
//! other threads sleeps until one of them can run, instead of returning; without a timeout
//! the flag has no effect. The TH17 scenario, with and without a timeout, and around it.
//! Each test runs on its own thread (the harness's), so each has its own scheduler; they
//! hold `death::serial` because one of them forks.

#[path = "common/death.rs"]
mod death;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use microthread::scheduler::{self, run_with, spawn, tick, RunOptions};
use microthread::{spawn_thread, Channel, Tasklet};

const MS: Duration = Duration::from_millis(1);

#[path = "common/cpu.rs"]
mod cpu;
use cpu::thread_cpu;

/// A tasklet blocked in a receive on a channel that another thread (counted awake from the
/// start) feeds with 7 once `go` says so, after `delay`.
fn receiver_fed_by_another_thread(
    delay: Duration,
) -> (
    Tasklet,
    mpsc::Sender<()>,
    microthread::scheduler::JoinHandle<()>,
) {
    let ch = Channel::<u32>::new();
    let rx = ch.clone();
    let t = spawn(move || rx.receive().unwrap()).unwrap();
    scheduler::schedule().unwrap();
    assert!(t.blocked(), "it waits for the other thread");
    let (go_tx, go) = mpsc::channel::<()>();
    let feeder = spawn_thread(move || {
        go.recv().unwrap();
        std::thread::sleep(delay);
        ch.send(7).unwrap();
    });
    (t, go_tx, feeder)
}

#[test]
fn th17_without_a_timeout_threadblock_has_no_effect() {
    let _serial = death::serial();
    let (t, go, feeder) = receiver_fed_by_another_thread(Duration::ZERO);
    // Nothing has been sent (the feeder waits for `go`): run_with returns, as run() would.
    assert_eq!(run_with(RunOptions::new().threadblock(true)).unwrap(), None);
    assert!(t.blocked() && t.alive(), "still waiting");
    go.send(()).unwrap();
    feeder.join().unwrap();
    // The value arrived meanwhile (the receiver was woken by mail): run it to the end.
    scheduler::run().unwrap();
    assert_eq!(t.result::<u32>(), Some(7));
}

#[test]
fn th17_with_a_tick_timeout_the_thread_sleeps_until_the_other_thread_feeds_it() {
    let _serial = death::serial();
    let (t, go, feeder) = receiver_fed_by_another_thread(200 * MS);
    go.send(()).unwrap();
    let (cpu0, wall0) = (thread_cpu(), Instant::now());
    let o = RunOptions::new().ticks(10_000_000).threadblock(true);
    assert_eq!(run_with(o).unwrap(), None);
    let (cpu, wall) = (thread_cpu() - cpu0, wall0.elapsed());
    // It returned only once the receiver had its value and finished.
    assert!(!t.alive());
    assert_eq!(t.result::<u32>(), Some(7));
    // No busy wait: a spinning thread would use about the whole wall time.
    assert!(cpu < wall / 4, "cpu {cpu:?} over a wall time of {wall:?}");
    feeder.join().unwrap();
}

#[test]
fn th17_with_a_time_slice_as_the_timeout() {
    let _serial = death::serial();
    let (t, go, feeder) = receiver_fed_by_another_thread(100 * MS);
    go.send(()).unwrap();
    let o = RunOptions::new().slice(MS).threadblock(true);
    assert_eq!(run_with(o).unwrap(), None);
    assert_eq!(t.result::<u32>(), Some(7));
    feeder.join().unwrap();
}

#[test]
fn threadblock_also_waits_for_sleepers_and_cpu_bound_tasklets_share_the_thread_meanwhile() {
    let _serial = death::serial();
    let (waiter, go, feeder) = receiver_fed_by_another_thread(50 * MS);
    let sleeper = spawn(|| scheduler::sleep(30 * MS).unwrap()).unwrap();
    let busy: Vec<Tasklet> = (0..2)
        .map(|_| {
            spawn(|| {
                let start = Instant::now();
                while start.elapsed() < 20 * MS {
                    tick().unwrap();
                }
            })
            .unwrap()
        })
        .collect();
    go.send(()).unwrap();
    let o = RunOptions::new()
        .slice(MS)
        .round_robin(true)
        .threadblock(true);
    assert_eq!(run_with(o).unwrap(), None);
    assert!(!sleeper.alive() && busy.iter().all(|t| !t.alive()));
    assert_eq!(
        waiter.result::<u32>(),
        Some(7),
        "it waited for the other thread too"
    );
    feeder.join().unwrap();
}

#[test]
fn without_threadblock_a_timed_run_returns_while_the_other_thread_has_not_fed_it() {
    let _serial = death::serial();
    // The contrast to the TH17 tests above: same setup, no flag.
    let (t, go, feeder) = receiver_fed_by_another_thread(Duration::ZERO);
    assert_eq!(run_with(RunOptions::new().ticks(10_000_000)).unwrap(), None);
    assert!(t.blocked());
    go.send(()).unwrap();
    feeder.join().unwrap();
    scheduler::run().unwrap();
    assert_eq!(t.result::<u32>(), Some(7));
}

#[test]
fn with_no_other_thread_to_help_a_threadblocked_run_returns_as_without_the_flag() {
    let _serial = death::serial();
    // A forked child has one thread: nobody can ever feed the receiver.
    let death = death::in_child(|| {
        let ch = Channel::<u32>::new();
        let rx = ch.clone();
        let t = spawn(move || rx.receive()).unwrap();
        let o = RunOptions::new().ticks(1_000).threadblock(true);
        assert_eq!(run_with(o).unwrap(), None);
        assert!(t.blocked(), "still blocked, not failed with a deadlock");
        ch.send(1).unwrap();
        scheduler::run().unwrap();
        assert!(matches!(
            t.result::<microthread::Result<u32>>(),
            Some(Ok(1))
        ));
    });
    assert_eq!(death.exit_code(), Some(0), "{}", death.describe());
}
