//! The scale rows: a million tasklets, each blocked on a channel receive with a guard page
//! below its stack, then every one woken and finished; the hot-potato ring ([`ring`]) of 10,
//! 10,000 and 1,000,000 tasklets; and beside each, Go's goroutines doing the same
//! (report/go/scale.go, run by [`go`] in the same process run, on one thread) and the ratio.
//! Opt-in (`--row spawn_1m`, which brings them all): the run takes a minute or two and about
//! 5 GB of memory, so the default report leaves it out.
//!
//! The million rows come from one run of [`million`] per process (cached), each ring from one
//! run, measured once, whatever `--runs` says. With `--iterations N` the run has N tasklets
//! instead of a million, and no ring is larger than N.

use std::cell::RefCell;
use std::hint::black_box;
use std::time::Instant;

use microthread::channel::Channel;
use microthread::scheduler::{self, spawn as spawn_tasklet};
use microthread::Tasklet;

use super::Row;

/// Tasklets in the scale run unless `--iterations` says otherwise.
pub const DEFAULT_TASKLETS: u64 = 1_000_000;

mod go;
mod ring;

/// The ring sizes of the hot-potato rows.
pub const RING_SIZES: [u64; 3] = [10, 10_000, 1_000_000];

/// The scale rows from one entry per quantity: `[ours; Go's; ratio]`, each part a key and a
/// label, ours and Go's with a measure function; the ratio's measures ours / Go's (an entry
/// without one has no ratio row). Rows after `then` come last, as they are.
macro_rules! beside_go {
    ($([$key:literal, $label:literal, $ours:expr;
        $go_key:literal, $go_label:literal, $go:expr
        $(; $ratio_key:literal, $ratio_label:literal)?]),* $(,)?
     then $($row:expr),* $(,)?) => {
        &[
            $(
                Row { key: $key, label: $label, measure: $ours },
                Row { key: $go_key, label: $go_label, measure: $go },
                $(Row {
                    key: $ratio_key,
                    label: $ratio_label,
                    measure: |i| ($ours)(i) / ($go)(i),
                },)?
            )*
            $($row,)*
        ]
    };
}

/// The opt-in rows, in report order: each of ours, then Go's, then ours over Go's. Their keys
/// are named by what they measure (not all are times).
pub const SCALE_ROWS: &[Row] = beside_go![
    [
        "spawn_1m_ns_per_tasklet",
        "1M tasklets: spawn + run until blocked in receive, per tasklet",
        spawn_per_tasklet;
        "go_spawn_1m_ns_per_goroutine",
        "Go: 1M goroutines, the same, per goroutine",
        |i| go_number(i, "spawn_ns");
        "spawn_1m_ratio_to_go",
        "ours / Go (ratio, not ns)"
    ],
    [
        "spawn_1m_cpu_ns_per_tasklet",
        "1M tasklets: the same, CPU time (user + system) per tasklet",
        |i| million(tasklets(i)).spawn_cpu_ns;
        "go_spawn_1m_cpu_ns_per_goroutine",
        "Go: the same, CPU time per goroutine",
        |i| go_number(i, "spawn_cpu_ns");
        "spawn_1m_cpu_ratio_to_go",
        "ours / Go (ratio)"
    ],
    [
        "rss_per_suspended_tasklet_bytes",
        "1M tasklets: RSS per blocked tasklet incl. channel (bytes, not ns)",
        rss_per_tasklet;
        "go_rss_per_blocked_goroutine_bytes",
        "Go: RSS per blocked goroutine incl. channel, no guard (bytes)",
        |i| go_number(i, "rss_bytes");
        "rss_ratio_to_go",
        "ours / Go (ratio)"
    ],
    [
        "page_tables_per_suspended_tasklet_bytes",
        "1M tasklets: page tables (VmPTE, not in RSS) per blocked tasklet (bytes)",
        page_tables_per_tasklet;
        "go_page_tables_per_blocked_goroutine_bytes",
        "Go: page tables per blocked goroutine (bytes)",
        |i| go_number(i, "page_table_bytes")
    ],
    [
        "wake_1m_ns_per_tasklet",
        "1M tasklets: send to each + run until all finished, per tasklet",
        wake_per_tasklet;
        "go_wake_1m_ns_per_goroutine",
        "Go: the same, per goroutine",
        |i| go_number(i, "wake_ns");
        "wake_1m_ratio_to_go",
        "ours / Go (ratio)"
    ],
    [
        "wake_1m_cpu_ns_per_tasklet",
        "1M tasklets: the same, CPU time (user + system) per tasklet",
        |i| million(tasklets(i)).wake_cpu_ns;
        "go_wake_1m_cpu_ns_per_goroutine",
        "Go: the same, CPU time per goroutine",
        |i| go_number(i, "wake_cpu_ns");
        "wake_1m_cpu_ratio_to_go",
        "ours / Go (ratio)"
    ],
    [
        "hot_potato_10_ns_per_hop",
        "hot potato, ring of 10 tasklets (10 channels, 100,000 rounds), per hop",
        |i| ring_ns(i, 0);
        "go_hot_potato_10_ns_per_hop",
        "Go: ring of 10 goroutines, per hop",
        |i| go_ring_ns(i, 0);
        "hot_potato_10_ratio_to_go",
        "ours / Go (ratio)"
    ],
    [
        "hot_potato_10k_ns_per_hop",
        "hot potato, ring of 10,000 tasklets (100 rounds), per hop",
        |i| ring_ns(i, 1);
        "go_hot_potato_10k_ns_per_hop",
        "Go: ring of 10,000 goroutines, per hop",
        |i| go_ring_ns(i, 1);
        "hot_potato_10k_ratio_to_go",
        "ours / Go (ratio)"
    ],
    [
        "hot_potato_1m_ns_per_hop",
        "hot potato, ring of 1,000,000 tasklets (100 rounds), per hop",
        |i| ring_ns(i, 2);
        "go_hot_potato_1m_ns_per_hop",
        "Go: ring of 1,000,000 goroutines, per hop",
        |i| go_ring_ns(i, 2);
        "hot_potato_1m_ratio_to_go",
        "ours / Go (ratio)"
    ],
    then Row {
        key: "hot_potato_1m_over_10k_ratio",
        label: "hot potato: ring of 1,000,000 over ring of 10,000, per hop (ratio; goal <= 3)",
        measure: |i| ring_ns(i, 2) / ring_ns(i, 1),
    },
];

/// The ring sizes for a run of `tasklets` tasklets: [`RING_SIZES`], none above `tasklets`.
fn ring_sizes(tasklets: u64) -> [u64; 3] {
    RING_SIZES.map(|n| n.min(tasklets))
}

/// ns per hop of ring `k` (of [`RING_SIZES`], capped at the run's tasklet count).
fn ring_ns(iterations: u64, k: usize) -> f64 {
    ring::ns_per_hop(ring_sizes(tasklets(iterations))[k])
}

/// Go's number `key` for the run's tasklet count.
fn go_number(iterations: u64, key: &str) -> f64 {
    let n = tasklets(iterations);
    go::number(n, &ring_sizes(n), key)
}

/// Go's ns per hop of ring `k`.
fn go_ring_ns(iterations: u64, k: usize) -> f64 {
    let n = tasklets(iterations);
    let sizes = ring_sizes(n);
    go::number(n, &sizes, &format!("ring_{}_ns", sizes[k]))
}

/// What one scale run measured.
#[derive(Clone, Copy, Debug)]
pub struct Million {
    /// Tasklets in the run.
    pub tasklets: u64,
    /// ns per tasklet to spawn all and run them until each blocks.
    pub spawn_ns: f64,
    /// The same in CPU time (user + system) of the process: what the machine's other load
    /// does not change.
    pub spawn_cpu_ns: f64,
    /// Growth of the resident set per blocked tasklet, bytes (with its channel and handle).
    pub rss_bytes: f64,
    /// Growth of the page tables per blocked tasklet, bytes (`VmPTE`; not in the RSS).
    pub page_table_bytes: f64,
    /// ns per tasklet to wake all with a send and run them to completion.
    pub wake_ns: f64,
    /// The same in CPU time (user + system).
    pub wake_cpu_ns: f64,
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

/// The CPU time (user + system) this process has used, ns.
fn cpu_time() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 * 1e9 + t.tv_nsec as f64
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
    let (start, cpu0) = (Instant::now(), cpu_time());
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
    let (spawned, spawned_cpu) = (start.elapsed(), cpu_time() - cpu0);
    let (rss1, pte1) = (rss(), page_tables());
    let (start, cpu0) = (Instant::now(), cpu_time());
    for ch in &channels {
        ch.send(1).expect("its tasklet waits");
    }
    scheduler::run().expect("every tasklet finishes");
    let (woken, woken_cpu) = (start.elapsed(), cpu_time() - cpu0);
    drop(tasklets);
    drop(channels);
    let m = Million {
        tasklets: n,
        spawn_ns: spawned.as_nanos() as f64 / n as f64,
        spawn_cpu_ns: spawned_cpu / n as f64,
        rss_bytes: rss1.saturating_sub(rss0) as f64 / n as f64,
        page_table_bytes: pte1.saturating_sub(pte0) as f64 / n as f64,
        wake_ns: woken.as_nanos() as f64 / n as f64,
        wake_cpu_ns: woken_cpu / n as f64,
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

    /// Each entry gives ours, Go's and (if named) the ratio row ours / Go, then the rows
    /// after `then`.
    #[test]
    fn beside_go_builds_each_triple_and_its_ratio() {
        fn two(_: u64) -> f64 {
            2.0
        }
        const ROWS: &[Row] = beside_go![
            ["a_ns", "a", two; "go_a_ns", "Go: a", |_| 8.0; "a_ratio", "ours / Go"],
            ["b_ns", "b", |i| i as f64; "go_b_ns", "Go: b", two],
            then Row { key: "c", label: "c", measure: two },
        ];
        let keys: Vec<&str> = ROWS.iter().map(|r| r.key).collect();
        assert_eq!(keys, ["a_ns", "go_a_ns", "a_ratio", "b_ns", "go_b_ns", "c"]);
        assert_eq!((ROWS[2].measure)(1), 0.25);
        assert_eq!((ROWS[3].measure)(7), 7.0);
        assert_eq!(ROWS[1].label, "Go: a");
    }

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
