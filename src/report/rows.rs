//! The rows of the report. To add one, write a measure function (setup untimed, then the
//! timed loop of `iterations` operations, returning [`per_op`]) and add a [`Row`] to [`ROWS`].
//!
//! The loops here are the ones `benches/peers.rs` runs for microthread, so the report and the
//! side-by-side benchmark measure the same thing.

use std::hint::black_box;
use std::time::Instant;

use microthread::coroutine::{Builder, Coroutine};

use super::{per_op, Row};

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
        key: "spawn_ns",
        label: "spawn + run to completion (pooled stack)",
        measure: spawn,
    },
];

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
