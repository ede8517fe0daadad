//! The time-slice rows: how late a 1 ms slice preempts a tick loop, and how evenly
//! round-robin slices share a thread between CPU-bound tasklets. Their values are not times
//! per operation, so their runs are not calibrated: [`FIXED_ITERATIONS`] says how much each
//! run does.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use microthread::scheduler::{self, run_with, spawn, RunOptions};

const SLICE: Duration = Duration::from_millis(1);
const TASKLETS: usize = 4;

/// Iterations per run: slices measured by the overrun row, milliseconds of round robin by
/// the fairness rows (the max row reuses the min row's runs when they came just before).
pub const FIXED_ITERATIONS: &[(&str, u64)] = &[
    ("slice_overrun_us_p99", 50),
    ("slice_fairness_min_pct", 100),
    ("slice_fairness_max_pct", 100),
];

/// A tasklet calls `tick()` about every microsecond (it spins on the clock in between);
/// main runs it under a 1 ms hard slice `slices` times, re-inserting it each time, and
/// notes how long past the slice each `run_with` returned. The 99th percentile, in µs.
pub fn overrun_us_p99(slices: u64) -> f64 {
    let t = spawn(|| loop {
        let start = Instant::now();
        while start.elapsed() < Duration::from_micros(1) {}
        scheduler::tick().expect("a safe point in the benchmark");
    })
    .expect("a stack");
    let mut late = Vec::with_capacity(slices as usize);
    for _ in 0..slices.max(1) {
        let start = Instant::now();
        let victim = run_with(RunOptions::new().slice(SLICE))
            .expect("the benchmark tasklet does not fail")
            .expect("a loop that never switches is preempted");
        late.push(start.elapsed().saturating_sub(SLICE).as_nanos() as f64 / 1e3);
        victim.insert().expect("the victim goes back");
    }
    t.kill().expect("the benchmark tasklet ends");
    late.sort_by(f64::total_cmp);
    late[(late.len() * 99 / 100).min(late.len() - 1)]
}

thread_local! {
    /// The largest shares of the min row's runs, for the max row to report.
    static MAX_SHARES: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

/// 4 tasklets that only tick (checking the clock every 1,024 ticks) for `ms` milliseconds
/// in all, under `run_with` with 1 ms slices in round-robin mode. Each one's share of all
/// ticks, in %.
fn shares(ms: u64) -> Vec<f64> {
    let end = Instant::now() + Duration::from_millis(ms);
    let counts: Vec<Rc<Cell<u64>>> = (0..TASKLETS).map(|_| Rc::new(Cell::new(0))).collect();
    for c in &counts {
        let c = c.clone();
        spawn(move || {
            let mut n = 0u64;
            while Instant::now() < end {
                for _ in 0..1024 {
                    n += 1;
                    scheduler::tick().expect("a safe point in the benchmark");
                }
                c.set(n);
            }
        })
        .expect("a stack");
    }
    let o = RunOptions::new().slice(SLICE).round_robin(true);
    assert!(run_with(o).expect("no failure").is_none());
    let total: u64 = counts.iter().map(|c| c.get()).sum();
    counts
        .iter()
        .map(|c| c.get() as f64 * 100.0 / total.max(1) as f64)
        .collect()
}

/// The smallest share of one run of [`shares`] (its largest is kept for the max row).
pub fn fairness_min_pct(ms: u64) -> f64 {
    let s = shares(ms);
    MAX_SHARES.with(|m| m.borrow_mut().push(s.iter().copied().fold(0.0, f64::max)));
    s.iter().copied().fold(f64::INFINITY, f64::min)
}

/// The largest share of a run of [`shares`]: one the min row made, if any is left, else a
/// new one.
pub fn fairness_max_pct(ms: u64) -> f64 {
    MAX_SHARES
        .with(|m| {
            let mut m = m.borrow_mut();
            (!m.is_empty()).then(|| m.remove(0))
        })
        .unwrap_or_else(|| shares(ms).iter().copied().fold(0.0, f64::max))
}
