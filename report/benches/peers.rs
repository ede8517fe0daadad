//! microthread and its peers, the same loop for each, in one process, so the ratios can be
//! reproduced on any machine:
//!
//! ```text
//! cargo bench --bench peers                      # all (about a minute)
//! cargo bench --bench peers -- switch_round_trip # one group
//! cargo test --benches                           # each benchmark once, as a test
//! ```
//!
//! | group | what one iteration is |
//! |---|---|
//! | `switch_round_trip` | resume a suspended coroutine that suspends straight back |
//! | `switch_round_trip_64` | the same, each time the next of 64 suspended coroutines in turn |
//! | `spawn_complete` | create a trivial coroutine on a reused stack and run it to completion |
//! | `scheduler_yield` | a round trip between two coroutines through a scheduler: microthread `schedule()`, may `yield_now` (both sides in the same loop, and in different loops) |
//! | `tasklet_spawn` | create a trivial tasklet through the scheduler and run it to completion (may: spawn + join) |
//! | `channel_round_trip` | send on one channel and receive the echo on another, two coroutines on one thread: microthread `Channel`, may `mpsc` (symmetric, and main <-> an echo) |
//!
//! The microthread loops are those of the report (`report/src/report/rows.rs`), the peers'
//! loops those of its peer columns (`microthread_report::peers`, report/src/peers/).
//! Criterion writes its HTML reports with plots to `target/criterion/report/index.html`.
//!
//! Peers per target: corosensei 0.3.4 and may 0.3 build on x86_64, aarch64 and riscv64;
//! context 3.0.0 has no riscv64 assembly (its build script panics), so it is a dependency
//! and a benchmark only where `target_arch` is not riscv64. The may benchmarks run on x86_64
//! only: under qemu-user (where the other targets are tested) may's ping-pong was seen to hang,
//! and emulated timings mean nothing anyway.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};

use microthread_report::peers::coroutines as peer_loops;
#[cfg(target_arch = "x86_64")]
use microthread_report::peers::scheduler;

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

// ---------------------------------------------------------------------------------------------
// Switch round trip, and spawn + run to completion on a reused stack

fn switch_round_trip(c: &mut Criterion) {
    let mut g = c.benchmark_group("switch_round_trip");
    g.bench_function("microthread", |b| {
        b.iter(peer_loops::microthread_switch(false))
    });
    g.bench_function("microthread_fpenv", |b| {
        b.iter(peer_loops::microthread_switch(true))
    });
    g.bench_function("corosensei", |b| b.iter(peer_loops::corosensei_switch()));
    #[cfg(not(target_arch = "riscv64"))]
    g.bench_function("context", |b| b.iter(peer_loops::context_switch()));
    g.finish();
    // The report's `switch_round_trip_64_ns`: 64 suspended coroutines resumed in turn.
    let mut g = c.benchmark_group("switch_round_trip_64");
    g.bench_function("microthread", |b| {
        b.iter(peer_loops::microthread_switch_many())
    });
    g.bench_function("corosensei", |b| {
        b.iter(peer_loops::corosensei_switch_many())
    });
    g.finish();
}

fn spawn_complete(c: &mut Criterion) {
    let mut g = c.benchmark_group("spawn_complete");
    g.bench_function("microthread_pooled", |b| {
        b.iter(peer_loops::microthread_spawn())
    });
    g.bench_function("corosensei_with_stack", |b| {
        b.iter(peer_loops::corosensei_spawn())
    });
    #[cfg(not(target_arch = "riscv64"))]
    g.bench_function("context_reused_stack", |b| {
        b.iter(peer_loops::context_spawn())
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// Scheduler round trip. may: one worker thread, so every coroutine runs on it in turn.

/// One side of microthread's schedule ping-pong (the report's loop).
fn microthread_yielder(n: u64) -> impl FnOnce() {
    move || {
        for _ in 0..n {
            black_box(microthread::schedule()).expect("schedule");
        }
    }
}

fn scheduler_yield(c: &mut Criterion) {
    let mut g = c.benchmark_group("scheduler_yield");

    // Two tasklets: A -> B -> A per iteration, through schedule().
    g.bench_function("microthread_schedule_pingpong", |b| {
        b.iter_custom(|iters| {
            microthread::spawn(microthread_yielder(iters)).expect("a stack");
            microthread::spawn(microthread_yielder(iters)).expect("a stack");
            let start = Instant::now();
            microthread::run().expect("no failure");
            start.elapsed()
        });
    });

    #[cfg(target_arch = "x86_64")]
    may_yield(&mut g);
    g.finish();
}

#[cfg(target_arch = "x86_64")]
fn may_yield(g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    g.bench_function("may_yield_now_pingpong", |b| {
        b.iter_custom(scheduler::yield_pingpong)
    });
    g.bench_function("may_yield_now_asymmetric", |b| {
        b.iter_custom(scheduler::yield_pingpong_asymmetric)
    });
}

// ---------------------------------------------------------------------------------------------
// Tasklet spawn through the scheduler

fn tasklet_spawn(c: &mut Criterion) {
    let mut g = c.benchmark_group("tasklet_spawn");
    g.bench_function("microthread_spawn_run", |b| {
        b.iter(|| {
            let t = microthread::spawn(|| black_box(())).expect("a stack");
            microthread::run().expect("no failure");
            t
        });
    });
    #[cfg(target_arch = "x86_64")]
    g.bench_function("may_spawn_join", |b| b.iter_custom(scheduler::spawn_join));
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// Channel ping-pong on one thread

fn microthread_echo(
    a: microthread::Channel<u64>,
    b: microthread::Channel<u64>,
    n: u64,
) -> impl FnOnce() {
    move || {
        for _ in 0..n {
            let v = a.receive().expect("ping");
            b.send(v + 1).expect("pong");
        }
    }
}

fn channel_round_trip(c: &mut Criterion) {
    let mut g = c.benchmark_group("channel_round_trip");
    // Both tasklets run the same echo loop, as in a symmetric ping-pong (the report's loop).
    g.bench_function("microthread_channel", |bench| {
        bench.iter_custom(|iters| {
            let (a, b) = (microthread::Channel::new(), microthread::Channel::new());
            microthread::spawn(microthread_echo(a.clone(), b.clone(), iters)).expect("a stack");
            microthread::spawn(microthread_echo(b.clone(), a.clone(), iters)).expect("a stack");
            microthread::run().expect("both block in receive");
            let start = Instant::now();
            a.send(0).expect("the first ping");
            microthread::run().expect("no failure");
            let elapsed = start.elapsed();
            black_box(a.receive().expect("the last pong"));
            elapsed
        });
    });

    #[cfg(target_arch = "x86_64")]
    g.bench_function("may_mpsc", |b| b.iter_custom(scheduler::channel_pingpong));
    #[cfg(target_arch = "x86_64")]
    g.bench_function("may_mpsc_asymmetric", |b| {
        b.iter_custom(scheduler::channel_pingpong_asymmetric)
    });
    g.finish();
}

criterion_group! {
    name = peers;
    config = config();
    targets = switch_round_trip, spawn_complete, scheduler_yield, tasklet_spawn, channel_round_trip
}
criterion_main!(peers);
