//! The scale rows: a million tasklets, each blocked on a channel receive with a guard page
//! below its stack, then every one woken and finished. Opt-in (`--row spawn_1m`): the run
//! takes a few seconds and about 5 GB of memory, so the default report leaves it out.
//!
//! All three rows come from one run of [`million`] per process (cached), measured once,
//! whatever `--runs` says. With `--iterations N` the run has N tasklets instead of a million.

use std::cell::RefCell;
use std::hint::black_box;
use std::time::Instant;

use microthread::channel::Channel;
use microthread::scheduler::{self, spawn as spawn_tasklet};
use microthread::Tasklet;

use super::Row;

/// Tasklets in the scale run unless `--iterations` says otherwise.
pub const DEFAULT_TASKLETS: u64 = 1_000_000;

/// The opt-in rows, in report order. Their keys are named by what they measure (not all
/// are times).
pub const SCALE_ROWS: &[Row] = &[
    Row {
        key: "spawn_1m_ns_per_tasklet",
        label: "1M tasklets: spawn + run until blocked in receive, per tasklet",
        measure: spawn_per_tasklet,
    },
    Row {
        key: "rss_per_suspended_tasklet_bytes",
        label: "1M tasklets: RSS per blocked tasklet incl. channel (bytes, not ns)",
        measure: rss_per_tasklet,
    },
    Row {
        key: "page_tables_per_suspended_tasklet_bytes",
        label: "1M tasklets: page tables (VmPTE, not in RSS) per blocked tasklet (bytes)",
        measure: page_tables_per_tasklet,
    },
    Row {
        key: "wake_1m_ns_per_tasklet",
        label: "1M tasklets: send to each + run until all finished, per tasklet",
        measure: wake_per_tasklet,
    },
];

/// What one scale run measured.
#[derive(Clone, Copy, Debug)]
pub struct Million {
    /// Tasklets in the run.
    pub tasklets: u64,
    /// ns per tasklet to spawn all and run them until each blocks.
    pub spawn_ns: f64,
    /// Growth of the resident set per blocked tasklet, bytes (with its channel and handle).
    pub rss_bytes: f64,
    /// Growth of the page tables per blocked tasklet, bytes (`VmPTE`; not in the RSS).
    pub page_table_bytes: f64,
    /// ns per tasklet to wake all with a send and run them to completion.
    pub wake_ns: f64,
}

thread_local! {
    static CACHE: RefCell<Option<Million>> = const { RefCell::new(None) };
}

/// The process's resident set, bytes (`/proc/self/statm`).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * microthread::stack::page_size() as u64
}

/// `VmPTE` of `/proc/self/status`, bytes.
fn page_tables() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmPTE:"))?.to_string();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .unwrap_or(0)
        * 1024
}

/// Runs the scale measurement with `n` tasklets (once per process and `n`).
pub fn million(n: u64) -> Million {
    if let Some(m) = CACHE.with(|c| *c.borrow()).filter(|m| m.tasklets == n) {
        return m;
    }
    let count = n as usize;
    let mut channels: Vec<Channel<u32>> = Vec::with_capacity(count);
    let mut tasklets: Vec<Tasklet> = Vec::with_capacity(count);
    let (rss0, pte0) = (rss(), page_tables());
    let start = Instant::now();
    for _ in 0..count {
        let ch = Channel::new();
        let rx = ch.clone();
        tasklets.push(
            spawn_tasklet(move || black_box(rx.receive().expect("a wake-up")))
                .expect("a stack for every tasklet of the scale run"),
        );
        channels.push(ch);
    }
    scheduler::run().expect("every tasklet blocks in receive");
    let spawned = start.elapsed();
    let (rss1, pte1) = (rss(), page_tables());
    let start = Instant::now();
    for ch in &channels {
        ch.send(1).expect("its tasklet waits");
    }
    scheduler::run().expect("every tasklet finishes");
    let woken = start.elapsed();
    drop(tasklets);
    drop(channels);
    let m = Million {
        tasklets: n,
        spawn_ns: spawned.as_nanos() as f64 / n as f64,
        rss_bytes: rss1.saturating_sub(rss0) as f64 / n as f64,
        page_table_bytes: pte1.saturating_sub(pte0) as f64 / n as f64,
        wake_ns: woken.as_nanos() as f64 / n as f64,
    };
    CACHE.with(|c| *c.borrow_mut() = Some(m));
    m
}

/// The number of tasklets for a row's `iterations` (a calibration's small counts and the
/// default alike mean a million).
fn tasklets(iterations: u64) -> u64 {
    if iterations >= 1000 {
        iterations
    } else {
        DEFAULT_TASKLETS
    }
}

fn spawn_per_tasklet(iterations: u64) -> f64 {
    million(tasklets(iterations)).spawn_ns
}

fn rss_per_tasklet(iterations: u64) -> f64 {
    million(tasklets(iterations)).rss_bytes
}

fn page_tables_per_tasklet(iterations: u64) -> f64 {
    million(tasklets(iterations)).page_table_bytes
}

fn wake_per_tasklet(iterations: u64) -> f64 {
    million(tasklets(iterations)).wake_ns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_scale_run_measures_every_number() {
        let m = million(2000);
        assert_eq!(m.tasklets, 2000);
        assert!(m.spawn_ns > 0.0 && m.wake_ns > 0.0, "{m:?}");
        // A blocked tasklet holds at least the page its stack touched, and its cached run is
        // reused.
        assert!(m.rss_bytes > 1000.0, "{m:?}");
        assert_eq!(million(2000).spawn_ns, m.spawn_ns);
        // Opt-in rows: none is in the default table, and their keys are unique.
        for (i, r) in SCALE_ROWS.iter().enumerate() {
            assert!(super::super::rows::ROWS.iter().all(|d| d.key != r.key));
            assert!(SCALE_ROWS[..i].iter().all(|o| o.key != r.key));
        }
    }
}
