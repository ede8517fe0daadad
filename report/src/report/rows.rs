//! The rows of the report. To add one, write a measure function (setup untimed, then the
//! timed loop of `iterations` operations, returning [`per_op`]) and add a [`Row`] to [`ROWS`].
//!
//! The loops here are the ones `benches/peers.rs` (report/benches/) runs for microthread, so
//! the report and the side-by-side benchmark measure the same thing. The peers measured beside
//! them are in [`super::peered`].

use std::hint::black_box;
use std::time::Instant;

use microthread::channel::{BufferedChannel, Channel, LocalChannel};
use microthread::coroutine::{Builder, Coroutine};
use microthread::scheduler::{self, schedule, spawn as spawn_tasklet};

use microthread_report::peers::threads::{tiny_job, POOL_BUFFER, POOL_THREADS};

use super::{per_op, Row};

#[path = "time_slices.rs"]
mod time_slices;

/// Every row, in report order.
pub const ROWS: &[Row] = &[
    Row {
        key: "switch_round_trip_ns",
        label: "switch round trip (resume + suspend)",
        measure: switch_round_trip,
    },
    Row {
        key: "switch_round_trip_fpenv_ns",
        label: "switch round trip, preserve_fp_env(true)",
        measure: switch_round_trip_fpenv,
    },
    Row {
        key: "switch_round_trip_64_ns",
        label: "switch round trip, 64 coroutines in turn",
        measure: switch_round_trip_many,
    },
    Row {
        key: "spawn_ns",
        label: "spawn + run to completion (pooled stack)",
        measure: spawn,
    },
    Row {
        key: "schedule_round_trip_ns",
        label: "schedule() ping-pong between two tasklets",
        measure: schedule_round_trip,
    },
    Row {
        key: "schedule_round_trip_asymmetric_ns",
        label: "schedule() ping-pong, main <-> a tasklet (different loops)",
        measure: schedule_round_trip_asymmetric,
    },
    Row {
        key: "tasklet_spawn_ns",
        label: "tasklet spawn + run to completion (scheduler)",
        measure: tasklet_spawn,
    },
    Row {
        key: "channel_round_trip_ns",
        label: "channel ping-pong, two tasklets, one thread",
        measure: channel_round_trip::<Channel<u64>>,
    },
    Row {
        key: "local_channel_round_trip_ns",
        label: "LocalChannel ping-pong, two tasklets, one thread",
        measure: channel_round_trip::<LocalChannel<u64>>,
    },
    Row {
        key: "channel_round_trip_asymmetric_ns",
        label: "channel send + receive, main <-> an echoing tasklet",
        measure: channel_round_trip_asymmetric,
    },
    Row {
        key: "tick_ns",
        label: "scheduler::tick() safe point, no watchdog",
        measure: tick_no_watchdog,
    },
    Row {
        key: "tick_watchdog_ns",
        label: "scheduler::tick() under run_with(ticks), budget not used up",
        measure: tick_watchdog,
    },
    Row {
        key: "channel_cross_thread_round_trip_ns",
        label: "channel ping-pong between two threads (spin, then futex sleep/wake)",
        measure: channel_cross_thread_round_trip,
    },
    Row {
        key: "worker_pool_job_ns",
        label: "worker pool: 4 threads x 1 tasklet take tiny jobs from one channel, per job",
        measure: worker_pool::<Channel<Option<u64>>>,
    },
    Row {
        key: "worker_pool_buffered_job_ns",
        label: "the same pool on a BufferedChannel::with_capacity(256), per job",
        measure: worker_pool::<BufferedChannel<Option<u64>>>,
    },
    Row {
        key: "sleep_overshoot_p99_ns",
        label: "sleep(200 us): wake-up after the deadline, 99th percentile (not per op)",
        measure: sleep_overshoot_p99,
    },
    Row {
        key: "slice_overrun_us_p99",
        label: "1 ms time slice, tick() every ~1 us: preempted how long after the slice, \
                p99, in us (goal <= 100; not per op)",
        measure: time_slices::overrun_us_p99,
    },
    Row {
        key: "slice_fairness_min_pct",
        label: "4 CPU-bound tasklets, 1 ms slices, round robin: smallest share of the \
                ticks, % (goal >= 22; not per op)",
        measure: time_slices::fairness_min_pct,
    },
    Row {
        key: "slice_fairness_max_pct",
        label: "the same runs: largest share of the ticks, % (goal <= 28; not per op)",
        measure: time_slices::fairness_max_pct,
    },
    Row {
        key: "pickle_per_tasklet_ns",
        label: "World::pickle, 10,000 blocked resumable tasklets, per tasklet",
        measure: super::pickle::pickle_per_tasklet,
    },
    Row {
        key: "pickle_bytes_overhead_per_tasklet",
        label: "bytes of that pickle per tasklet beyond the user's own state (goal <= 32; \
                not a time)",
        measure: super::pickle::overhead_bytes_per_tasklet,
    },
    Row {
        key: "restore_per_tasklet_ns",
        label: "World::restore of that pickle (lazy: queued, not yet run), per tasklet",
        measure: super::pickle::restore_per_tasklet,
    },
    Row {
        key: "restore_and_first_run_per_tasklet_ns",
        label: "World::restore + the first run of every tasklet (laid out, replayed, blocked \
                again), per tasklet",
        measure: super::pickle::restore_and_first_run_per_tasklet,
    },
    Row {
        key: "spawn_blocked_per_tasklet_ns",
        label: "for comparison: spawn 10,000 tasklets that block receiving, per tasklet",
        measure: super::pickle::spawn_blocked_per_tasklet,
    },
];

/// The rows whose runs are not calibrated (their value is not a time per operation), with
/// their iterations per run, whatever `--iterations` says.
pub fn fixed_iterations(key: &str) -> Option<u64> {
    time_slices::FIXED_ITERATIONS
        .iter()
        .chain(super::pickle::FIXED_ITERATIONS)
        .find(|(k, _)| *k == key)
        .map(|&(_, n)| n)
}

/// How late a sleeping tasklet wakes after its deadline, at the 99th percentile over
/// `iterations` sleeps (between 200 and 2,000 of them) of 200 µs each, with the thread idle
/// meanwhile (it waits in the timed sleep of an empty run queue). Not a per-operation time:
/// the value is the overshoot itself, in nanoseconds.
fn sleep_overshoot_p99(iterations: u64) -> f64 {
    let n = iterations.clamp(200, 2000) as usize;
    let t = spawn_tasklet(move || {
        let mut late = Vec::with_capacity(n);
        for _ in 0..n {
            let deadline = Instant::now() + std::time::Duration::from_micros(200);
            scheduler::sleep_until(deadline).expect("sleep in the benchmark");
            late.push(
                Instant::now()
                    .saturating_duration_since(deadline)
                    .as_nanos() as f64,
            );
        }
        late
    })
    .expect("a stack");
    scheduler::run().expect("the benchmark tasklet does not fail");
    let mut late = t.result::<Vec<f64>>().expect("the overshoots");
    late.sort_by(f64::total_cmp);
    late[(late.len() * 99 / 100).min(late.len() - 1)]
}

/// Resume a suspended `Coroutine<(), (), ()>` that suspends straight back.
fn switch_round_trip(iterations: u64) -> f64 {
    round_trip(Builder::new(), iterations)
}

/// As [`switch_round_trip`], with the FP environment saved and restored on every switch.
fn switch_round_trip_fpenv(iterations: u64) -> f64 {
    round_trip(Builder::new().preserve_fp_env(true), iterations)
}

fn round_trip(builder: Builder, iterations: u64) -> f64 {
    let mut co: Coroutine<(), (), ()> = builder
        .build(|yielder, ()| loop {
            yielder.suspend(());
        })
        .expect("a stack for the benchmark coroutine");
    // Run it to its first suspension, so the loop times round trips only.
    black_box(co.resume(()));
    let start = Instant::now();
    for _ in 0..iterations {
        black_box(co.resume(()));
    }
    let elapsed = start.elapsed();
    drop(co);
    per_op(elapsed, iterations)
}

/// One round trip into each of 64 suspended coroutines in turn (the peers' loop, shared).
fn switch_round_trip_many(iterations: u64) -> f64 {
    let step = microthread_report::peers::coroutines::microthread_switch_many();
    per_op(
        microthread_report::peers::time(step, iterations),
        iterations,
    )
}

/// `Coroutine::new` of a trivial closure plus the one `resume` that runs it to completion,
/// on a stack from the thread's pool.
fn spawn(iterations: u64) -> f64 {
    // The first one may map the stack; every later one reuses it from the pool.
    spawn_one();
    let start = Instant::now();
    for _ in 0..iterations {
        spawn_one();
    }
    per_op(start.elapsed(), iterations)
}

#[inline(always)]
fn spawn_one() {
    let mut co: Coroutine<(), (), u32> =
        Coroutine::new(|_, ()| black_box(1)).expect("a stack for the benchmark coroutine");
    black_box(co.resume(()));
}

/// One side of the schedule ping-pong: both tasklets run this same function, so both suspend
/// at the same place, as in a symmetric ping-pong.
fn yielder_loop(n: u64) -> impl FnOnce() {
    move || {
        for _ in 0..n {
            black_box(schedule()).expect("schedule in the benchmark");
        }
    }
}

/// Two tasklets call `schedule()` alternately, `iterations` round trips (two switches each).
fn schedule_round_trip(iterations: u64) -> f64 {
    spawn_tasklet(yielder_loop(iterations)).expect("a stack");
    spawn_tasklet(yielder_loop(iterations)).expect("a stack");
    let start = Instant::now();
    scheduler::run().expect("the benchmark tasklets do not fail");
    per_op(start.elapsed(), iterations)
}

/// Main's loop and a tasklet's loop call `schedule()` alternately: the two sides suspend at
/// different call sites, as in most real programs (each switch then returns somewhere else
/// than the last one did, which the return-address predictor sees).
fn schedule_round_trip_asymmetric(iterations: u64) -> f64 {
    spawn_tasklet(yielder_loop(iterations + 1)).expect("a stack");
    let start = Instant::now();
    for _ in 0..iterations {
        black_box(schedule()).expect("schedule in the benchmark");
    }
    let elapsed = start.elapsed();
    scheduler::run().expect("the benchmark tasklet does not fail");
    per_op(elapsed, iterations)
}

/// `spawn` of a trivial closure plus the `run()` that runs it to completion, on a pooled stack.
fn tasklet_spawn(iterations: u64) -> f64 {
    spawn_tasklet(|| ()).expect("a stack");
    scheduler::run().expect("no failure");
    let start = Instant::now();
    for _ in 0..iterations {
        let t = spawn_tasklet(|| black_box(())).expect("a stack");
        scheduler::run().expect("no failure");
        drop(t);
    }
    per_op(start.elapsed(), iterations)
}

/// The two channel types, for the rows that measure both.
trait EchoChannel: Clone + 'static {
    fn new() -> Self;
    fn send(&self, v: u64);
    fn receive(&self) -> u64;
}

/// Implements [`EchoChannel`] for a channel type of `u64`.
macro_rules! echo_channel {
    ($Ch:ident) => {
        impl EchoChannel for $Ch<u64> {
            fn new() -> Self {
                $Ch::new()
            }
            #[inline(always)]
            fn send(&self, v: u64) {
                $Ch::send(self, v).expect("a partner")
            }
            #[inline(always)]
            fn receive(&self) -> u64 {
                $Ch::receive(self).expect("a partner")
            }
        }
    };
}
echo_channel!(Channel);
echo_channel!(LocalChannel);

/// The echoing side of a channel ping-pong: receive on `a`, send back on `b`.
fn echo<C: EchoChannel>(a: C, b: C, n: u64) -> impl FnOnce() {
    move || {
        for _ in 0..n {
            let v = a.receive();
            b.send(v + 1);
        }
    }
}

/// Two tasklets of one thread: one sends on `a` and receives on `b`, the other echoes, over
/// channels of type `C`.
fn channel_round_trip<C: EchoChannel>(iterations: u64) -> f64 {
    // Both tasklets run the same echo loop (receive on one channel, send the value on the
    // other), so they suspend at the same place, as in a symmetric ping-pong; main starts the
    // ball rolling with one value and takes the last one back.
    let (a, b) = (C::new(), C::new());
    spawn_tasklet(echo(a.clone(), b.clone(), iterations)).expect("a stack");
    spawn_tasklet(echo(b.clone(), a.clone(), iterations)).expect("a stack");
    scheduler::run().expect("both block in receive");
    let start = Instant::now();
    a.send(0);
    scheduler::run().expect("the benchmark tasklets do not fail");
    let elapsed = start.elapsed();
    black_box(a.receive());
    per_op(elapsed, iterations)
}

/// Main sends on `a` and receives on `b`; a tasklet of the same thread echoes: the two sides
/// block at different places (a send and a receive), as in most real programs.
fn channel_round_trip_asymmetric(iterations: u64) -> f64 {
    let (a, b) = (Channel::<u64>::new(), Channel::<u64>::new());
    spawn_tasklet(echo(a.clone(), b.clone(), iterations)).expect("a stack");
    scheduler::run().expect("the echo blocks in receive");
    let start = Instant::now();
    for i in 0..iterations {
        a.send(i).expect("the ping");
        black_box(b.receive().expect("the pong"));
    }
    let elapsed = start.elapsed();
    per_op(elapsed, iterations)
}

/// This thread's main tasklet and another thread's ping-pong through two channels; a thread
/// with nothing to run sleeps on its condition variable until the other's send wakes it.
fn channel_cross_thread_round_trip(iterations: u64) -> f64 {
    scheduler::init_thread();
    let (a, b) = (Channel::<u64>::new(), Channel::<u64>::new());
    let other = microthread::spawn_thread(echo(a.clone(), b.clone(), iterations));
    let start = Instant::now();
    for i in 0..iterations {
        a.send(i).expect("the ping");
        black_box(b.receive().expect("the pong"));
    }
    let elapsed = start.elapsed();
    other.join().expect("the echo thread");
    per_op(elapsed, iterations)
}

/// The channels of the worker pool rows: a rendezvous `Channel`, and a `BufferedChannel` of
/// [`POOL_BUFFER`] jobs.
trait PoolChannel: Clone + Send + 'static {
    fn make() -> Self;
    fn send(&self, job: Option<u64>);
    fn receive(&self) -> Option<u64>;
}

/// Implements [`PoolChannel`] for the channel type `$Ch` of `Option<u64>`, made by `$make`.
macro_rules! pool_channel {
    ($Ch:ident, $make:expr) => {
        impl PoolChannel for $Ch<Option<u64>> {
            fn make() -> Self {
                $make
            }
            #[inline(always)]
            fn send(&self, job: Option<u64>) {
                $Ch::send(self, job).expect("a worker takes it")
            }
            #[inline(always)]
            fn receive(&self) -> Option<u64> {
                $Ch::receive(self).expect("a job or a stop")
            }
        }
    };
}
pool_channel!(Channel, Channel::new());
pool_channel!(BufferedChannel, BufferedChannel::with_capacity(POOL_BUFFER));

/// [`POOL_THREADS`] threads, each a worker in its main tasklet, take `jobs` tiny jobs
/// ([`tiny_job`]) from one channel of type `C` (`None` stops a worker) and sum their results;
/// main sends them all, then a stop for each, and joins. Timed from the first send to the last
/// join (the threads are started before), per job. The peers are the same pool of plain
/// threads on `std::sync::mpsc` ([`microthread_report::peers::threads::mpsc_pool`],
/// `sync_channel_pool`, `sync_channel_buffered_pool`).
fn worker_pool<C: PoolChannel>(jobs: u64) -> f64 {
    scheduler::init_thread();
    let ch = C::make();
    let workers: Vec<_> = (0..POOL_THREADS)
        .map(|_| {
            let ch = ch.clone();
            microthread::spawn_thread(move || {
                let mut sum = 0u64;
                while let Some(job) = ch.receive() {
                    sum = sum.wrapping_add(tiny_job(job));
                }
                sum
            })
        })
        .collect();
    let start = Instant::now();
    for job in 0..jobs {
        ch.send(Some(job));
    }
    for _ in 0..POOL_THREADS {
        ch.send(None);
    }
    let sum = workers
        .into_iter()
        .map(|w| w.join().expect("no worker panics"))
        .fold(0u64, u64::wrapping_add);
    let elapsed = start.elapsed();
    black_box(sum);
    per_op(elapsed, jobs)
}

/// `iterations` calls of the safe point `tick()` with no watchdog: a compare and an increment.
fn tick_no_watchdog(iterations: u64) -> f64 {
    let start = Instant::now();
    for _ in 0..iterations {
        if scheduler::tick().is_err() {
            unreachable!("no watchdog: never preempted");
        }
    }
    per_op(start.elapsed(), iterations)
}

/// `iterations` calls of `tick()` in a tasklet under a watchdog whose budget is never used
/// up (the same compare, against a real watermark).
fn tick_watchdog(iterations: u64) -> f64 {
    let t = spawn_tasklet(move || {
        let start = Instant::now();
        for _ in 0..iterations {
            if scheduler::tick().is_err() {
                unreachable!("the budget is never used up");
            }
        }
        start.elapsed()
    })
    .expect("a stack");
    let victim = scheduler::run_with(scheduler::RunOptions::new().ticks(1 << 62))
        .expect("the benchmark tasklet does not fail");
    assert!(victim.is_none(), "the budget is never used up");
    per_op(
        t.result::<std::time::Duration>().expect("it finished"),
        iterations,
    )
}
