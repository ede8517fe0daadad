//! Channels between threads: microthread beside crossbeam-channel and std's mpsc, the same
//! loop for each, in one process, so the ratios can be reproduced on any machine:
//!
//! ```text
//! cargo bench --bench cross_thread                          # both groups
//! cargo bench --bench cross_thread -- cross_thread_ping_pong # one group
//! cargo test --bench cross_thread                           # each benchmark once, as a test
//! ```
//!
//! | group | what one iteration is |
//! |---|---|
//! | `cross_thread_ping_pong` | a send and the echo's receive between two threads: microthread `Channel` (a main tasklet on each thread), crossbeam `bounded(0)`, std `sync_channel(0)` |
//! | `worker_pool` | 20,000 tiny jobs through a pool of 4 worker threads (1 tasklet each for microthread), results back over a channel; criterion's throughput line gives jobs per second |
//!
//! The pools: microthread feeds from a tasklet of the main thread and collects in its main
//! tasklet (the shape of examples/worker_pool.rs); `microthread_queued100` has 100 feeder and
//! 100 collector tasklets on the main thread instead, so that a worker finds a partner queued
//! on either channel (Stackless's way to buffer a rendezvous channel); crossbeam `bounded(0)` and std
//! `sync_channel(0)` are the rendezvous peers (a feeder thread); std `mpsc` is the idiomatic
//! pool of the Rust book (unbounded channels, the job receiver behind an
//! `Arc<Mutex<Receiver>>`), which buffers every job and never blocks its sender.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

#[path = "cross_thread/loops.rs"]
mod loops;

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
}

fn cross_thread_ping_pong(c: &mut Criterion) {
    let mut g = c.benchmark_group("cross_thread_ping_pong");
    g.bench_function("microthread", |b| {
        b.iter_custom(loops::microthread_ping_pong)
    });
    g.bench_function("crossbeam_bounded0", |b| {
        b.iter_custom(loops::crossbeam_ping_pong)
    });
    g.bench_function("mpsc_sync_channel0", |b| {
        b.iter_custom(loops::mpsc_ping_pong)
    });
    g.finish();
}

/// One iteration is a whole pool run of `POOL_JOBS` jobs.
fn pool(iters: u64, run: fn(u64) -> Duration) -> Duration {
    (0..iters).map(|_| run(loops::POOL_JOBS)).sum()
}

fn worker_pool(c: &mut Criterion) {
    let mut g = c.benchmark_group("worker_pool");
    g.throughput(Throughput::Elements(loops::POOL_JOBS));
    g.sample_size(10);
    g.bench_function("microthread", |b| {
        b.iter_custom(|n| pool(n, loops::microthread_pool))
    });
    g.bench_function("microthread_queued100", |b| {
        b.iter_custom(|n| pool(n, |jobs| loops::microthread_pool_queued(jobs, 100)))
    });
    g.bench_function("crossbeam_bounded0", |b| {
        b.iter_custom(|n| pool(n, loops::crossbeam_pool))
    });
    g.bench_function("mpsc", |b| b.iter_custom(|n| pool(n, loops::mpsc_pool)));
    g.bench_function("mpsc_sync_channel0", |b| {
        b.iter_custom(|n| pool(n, loops::mpsc_rendezvous_pool))
    });
    g.finish();
}

criterion_group! {
    name = cross_thread;
    config = config();
    targets = cross_thread_ping_pong, worker_pool
}
criterion_main!(cross_thread);
