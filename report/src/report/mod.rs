//! The switch-latency report of `cargo run --release`: a table of [`Row`]s, each timed in
//! several runs of a calibrated (or fixed) number of iterations, printed as a text table or
//! as one JSON object.
//!
//! To add a row, add one entry to [`rows::ROWS`]: a JSON key, a label and a measure function.

pub mod affinity;
pub mod clock;
pub mod go;
pub mod go_peers;
pub mod json;
pub mod peered;
pub mod pickle;
pub mod rows;
pub mod scale;
pub mod svg;
pub mod sysinfo;
pub mod table;

use std::time::Duration;

/// One line of the report.
#[derive(Clone, Copy)]
pub struct Row {
    /// The key of the median in the JSON object (and the name for `--row`); ends in `_ns`,
    /// except for the uncalibrated rows of [`rows::fixed_iterations`], whose key names their
    /// unit (`_us_`, `_pct`, `_bytes_`).
    /// `<key>_min`, `<key>_max` and `<key>_iterations` sit beside it.
    pub key: &'static str,
    /// What the text table says.
    pub label: &'static str,
    /// Performs the operation `iterations` times (after any setup of its own, which it does
    /// not time) and returns the nanoseconds per operation.
    pub measure: fn(iterations: u64) -> f64,
}

/// How many iterations each run of a row does.
#[derive(Clone, Copy, Debug)]
pub enum Iterations {
    /// Chosen per row so that one run takes about this long.
    Calibrated(Duration),
    /// Exactly this many (no calibration run): for callgrind and other instruction counters.
    Fixed(u64),
}

/// What measuring one row gave.
#[derive(Clone, Debug)]
pub struct Measurement {
    /// ns per operation of each run, in run order.
    pub runs: Vec<f64>,
    /// Iterations per run.
    pub iterations: u64,
}

impl Measurement {
    /// The median of the runs (the mean of the middle two for an even count).
    pub fn median(&self) -> f64 {
        let mut v = self.runs.clone();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n == 0 {
            f64::NAN
        } else if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    }

    /// The fastest run.
    pub fn min(&self) -> f64 {
        self.runs.iter().copied().fold(f64::INFINITY, f64::min)
    }

    /// The slowest run.
    pub fn max(&self) -> f64 {
        self.runs.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    }
}

/// The nanoseconds per operation of `iterations` operations that took `elapsed`.
pub fn per_op(elapsed: Duration, iterations: u64) -> f64 {
    elapsed.as_nanos() as f64 / iterations.max(1) as f64
}

/// The most iterations a calibrated run does, whatever the estimate says.
const MAX_CALIBRATED_ITERATIONS: u64 = 1 << 34;

/// Finds how many iterations of `measure` take about `target`: grows the count tenfold until a
/// trial run takes at least a twentieth of `target` (and at least 1 ms), then scales it to
/// `target`, and measures again nearer the estimate while it lies more than ten times beyond
/// the trial and the trial took under a quarter of `target`.
///
/// The second part is for loops with a fixed cost per run (the worker pools start and join
/// their threads in every run): a short trial overstates their cost per operation, so scaling
/// it alone ended the pool rows' runs after a few hundred jobs, mostly thread start-up, while
/// their peers, whose trial was cheap, ran a million (ratios 6 to 10 that were 1 to 1.2 in
/// runs of 500,000 jobs each).
fn calibrate(measure: &dyn Fn(u64) -> f64, target: Duration) -> u64 {
    let target_ns = target.as_nanos() as f64;
    let enough_ns = (target_ns / 20.0).max(1e6).min(target_ns);
    let mut iterations: u64 = 100;
    loop {
        let ns = measure(iterations);
        let total = ns * iterations as f64;
        if total >= enough_ns || iterations >= MAX_CALIBRATED_ITERATIONS {
            let estimate = if ns > 0.0 {
                (target_ns / ns).clamp(1.0, MAX_CALIBRATED_ITERATIONS as f64) as u64
            } else {
                MAX_CALIBRATED_ITERATIONS
            };
            if estimate / 10 > iterations && total < target_ns / 4.0 {
                // Closer: a quarter of the estimate (each step at least ten times the last
                // one's count and its time under the target, so this ends within a few steps).
                iterations = estimate / 4;
                continue;
            }
            return estimate;
        }
        iterations = iterations.saturating_mul(10);
    }
}

/// Measures `row` in `runs` runs.
pub fn measure(row: &Row, runs: usize, iterations: Iterations) -> Measurement {
    let iterations = match (rows::fixed_iterations(row.key), iterations) {
        (Some(n), _) => n,
        (None, Iterations::Calibrated(target)) => calibrate(&row.measure, target),
        (None, Iterations::Fixed(n)) => n,
    };
    let runs = (0..runs).map(|_| (row.measure)(iterations)).collect();
    Measurement { runs, iterations }
}

/// A time in ns with as many decimals as are meaningful for its size.
pub fn format_ns(ns: f64) -> String {
    // Compare the rounded value, so that 9.999 shows as "10.0", not "10.00".
    if !ns.is_finite() {
        "-".to_string()
    } else if ns < 9.995 {
        format!("{ns:.2}")
    } else if ns < 999.95 {
        format!("{ns:.1}")
    } else {
        group_thousands(ns.round() as u64)
    }
}

/// `1234567` as `1,234,567`.
pub fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_min_max() {
        let m = Measurement {
            runs: vec![5.0, 1.0, 3.0, 9.0, 2.0],
            iterations: 1,
        };
        assert_eq!(m.median(), 3.0);
        assert_eq!(m.min(), 1.0);
        assert_eq!(m.max(), 9.0);
        let even = Measurement {
            runs: vec![4.0, 1.0, 3.0, 2.0],
            iterations: 1,
        };
        assert_eq!(even.median(), 2.5);
    }

    #[test]
    fn formatting() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1000), "1,000");
        assert_eq!(group_thousands(1234567), "1,234,567");
        assert_eq!(format_ns(4.123), "4.12");
        assert_eq!(format_ns(42.26), "42.3");
        assert_eq!(format_ns(10732.4), "10,732");
        assert_eq!(format_ns(9.999), "10.0");
        assert_eq!(format_ns(999.97), "1,000");
        assert_eq!(format_ns(f64::NAN), "-");
    }

    #[test]
    fn calibration_scales_to_the_target() {
        // 1 ns per iteration, pretended: 60 ms takes 60 million.
        fn fake(_: u64) -> f64 {
            1.0
        }
        assert_eq!(calibrate(&fake, Duration::from_millis(60)), 60_000_000);
    }

    #[test]
    fn calibration_sees_through_a_fixed_cost_per_run() {
        // 3 ms per run plus 80 ns per iteration: 60 ms is about 712,500 iterations. Scaling
        // the first trial that took 3 ms (100 iterations, 30 us each) would give 2,000.
        fn fixed_cost(n: u64) -> f64 {
            (3e6 + 80.0 * n as f64) / n as f64
        }
        let n = calibrate(&fixed_cost, Duration::from_millis(60));
        let took_ms = fixed_cost(n) * n as f64 / 1e6;
        assert!(
            (30.0..=120.0).contains(&took_ms),
            "{n} iterations take {took_ms} ms"
        );
    }

    #[test]
    fn every_row_key_is_unique_and_ends_in_ns() {
        let keys: Vec<&str> = rows::ROWS.iter().map(|r| r.key).collect();
        for (i, k) in keys.iter().enumerate() {
            // The uncalibrated rows are no time per operation: their key names their unit.
            let unit_named = rows::fixed_iterations(k).is_some()
                && ["_us_", "_pct", "_bytes_"].iter().any(|u| k.contains(u));
            assert!(k.ends_with("_ns") || unit_named, "{k}");
            assert!(!keys[..i].contains(k), "duplicate key {k}");
            assert!(
                k.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{k}"
            );
        }
    }

    #[test]
    fn every_row_measures() {
        for row in rows::ROWS {
            let ns = (row.measure)(10);
            assert!(ns.is_finite() && ns >= 0.0, "{}: {ns}", row.key);
        }
    }
}
