//! The peers' loops, one function per loop. Each does its untimed setup, then times
//! `iterations` operations and returns how long they took; the report divides by the count.
//!
//! | module | peers | loops |
//! |---|---|---|
//! | [`coroutines`] | corosensei 0.3, context 3 (not on riscv64) | switch round trip; spawn + complete on a reused stack |
//! | [`scheduler`] | may 0.3 (one worker thread) | `yield_now` ping-pong, symmetric and asymmetric; spawn + join; `mpsc` ping-pong, symmetric and asymmetric |
//! | [`threads`] | crossbeam-channel 0.5, `std::sync::mpsc` | `bounded(0)` ping-pong between two threads; a pool of 4 threads taking tiny jobs from one channel |
//!
//! context 3.0.0 has no riscv64 assembly (its build script panics there), so its loops exist
//! only off riscv64: [`CONTEXT_AVAILABLE`] says which.

use std::time::{Duration, Instant};

pub mod coroutines;
pub mod scheduler;
pub mod threads;

/// Whether this build has the context peer (everywhere but riscv64).
///
/// ```
/// assert_eq!(
///     microthread_report::peers::CONTEXT_AVAILABLE,
///     !cfg!(target_arch = "riscv64")
/// );
/// ```
pub const CONTEXT_AVAILABLE: bool = cfg!(not(target_arch = "riscv64"));

/// Runs `step` `iterations` times and returns how long that took (the setup that made `step`
/// is not timed).
///
/// ```
/// let mut n = 0u64;
/// let _elapsed = microthread_report::peers::time(|| n += 1, 10);
/// assert_eq!(n, 10);
/// ```
#[inline(always)]
pub fn time(mut step: impl FnMut(), iterations: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iterations {
        step();
    }
    start.elapsed()
}
