//! Go beside the one-thread rows whose goals issue 13 gives against Go: tasklet spawn +
//! complete against `go f()` + wait, and the channel ping-pongs (two tasklets; main <-> an
//! echoing tasklet) against unbuffered Go channels, each with the goal ours / Go <= 0.1.
//!
//! `report/go/loops.go` runs the three loops in one process ([`super::go`]; `GOMAXPROCS=1`),
//! started while the first of these rows holds the report pinned to one CPU, so that its
//! threads inherit that CPU. Its runs are calibrated to the same target as ours (or do the
//! same fixed `--iterations`), as many as ours; they cannot interleave with ours (another
//! process), so they run in one burst, the three loops in turn. Each becomes one more
//! [`PeerResult`] of its row, after the row's in-process peers (in `--json` the row's
//! `_peer2`, `_ratio2`, `_goal2`); with no Go there is none, and the report's Go line
//! ([`super::go::status`]) says why.

use super::go::{self, GoRun};
use super::peered::{Peer, PeerResult};
use super::{Iterations, Measurement};

/// A row's Go peer.
pub struct GoPeering {
    /// Our row's key.
    pub key: &'static str,
    /// The loop's key in loops.go's output (`KEY_ns` and `KEY_iterations` lines).
    pub go_key: &'static str,
    /// The peer as the table shows it, with the goal.
    pub peer: Peer,
}

const fn go_peer(name: &'static str, goal: f64) -> Peer {
    Peer {
        name,
        measure: None,
        goal: Some(goal),
        // The host's Go beside an emulated build would compare two different machines.
        needs_real_cpu: true,
    }
}

/// The rows with a Go peer.
pub const GO_PEERINGS: &[GoPeering] = &[
    GoPeering {
        key: "tasklet_spawn_ns",
        go_key: "spawn_wait",
        peer: go_peer("Go go f() + WaitGroup.Wait", 0.1),
    },
    GoPeering {
        key: "channel_round_trip_ns",
        go_key: "chan_pingpong",
        peer: go_peer("Go unbuffered chan ping-pong", 0.1),
    },
    GoPeering {
        key: "channel_round_trip_asymmetric_ns",
        go_key: "chan_asymmetric",
        peer: go_peer("Go unbuffered chan, asymmetric", 0.1),
    },
];

/// loops.go's arguments for `runs` runs of `iterations`.
pub fn args(runs: usize, iterations: Iterations) -> Vec<String> {
    let count = match iterations {
        Iterations::Calibrated(target) => format!("-target-ns={}", target.as_nanos()),
        Iterations::Fixed(n) => format!("-iterations={n}"),
    };
    vec![format!("-runs={runs}"), count]
}

/// The Go peer of `peering` from loops.go's run; `None` without its numbers (no Go, or a
/// failed run).
pub fn result_from(peering: &GoPeering, run: &GoRun) -> Option<PeerResult> {
    let out = run.as_ref().ok()?;
    let runs = out.values.get(&format!("{}_ns", peering.go_key))?.clone();
    let iterations = out.first(&format!("{}_iterations", peering.go_key));
    Some(PeerResult {
        peer: peering.peer,
        measurement: Some(Measurement {
            runs,
            iterations: if iterations.is_finite() {
                iterations as u64
            } else {
                0
            },
        }),
    })
}

/// The Go peer of the row `key` (running loops.go on the first call for these `runs` and
/// `iterations`), or `None`: the row has none, or Go gave no numbers.
pub fn result_of(key: &str, runs: usize, iterations: Iterations) -> Option<PeerResult> {
    let peering = GO_PEERINGS.iter().find(|p| p.key == key)?;
    result_from(
        peering,
        &go::run(&go::program("loops.go"), &args(runs, iterations)),
    )
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;
    use std::time::Duration;

    use super::super::go::parse;
    use super::super::rows::ROWS;
    use super::*;

    fn ours(ns: f64) -> Measurement {
        Measurement {
            runs: vec![ns],
            iterations: 1,
        }
    }

    #[test]
    fn every_go_peering_names_a_row_and_has_the_issues_goal() {
        for p in GO_PEERINGS {
            assert!(ROWS.iter().any(|r| r.key == p.key), "no row {}", p.key);
            assert_eq!(p.peer.goal, Some(0.1));
            assert!(p.peer.name.starts_with("Go "));
        }
        assert!(result_of("switch_round_trip_ns", 1, Iterations::Fixed(10)).is_none());
        assert_eq!(
            args(9, Iterations::Calibrated(Duration::from_millis(60))),
            ["-runs=9", "-target-ns=60000000"]
        );
        assert_eq!(
            args(1, Iterations::Fixed(10_000)),
            ["-runs=1", "-iterations=10000"]
        );
    }

    /// Go's lines become the row's Go peer, with the ratio and the goal; no Go, or a run
    /// without the loop's lines, gives no peer (the row shows without Go).
    #[test]
    fn go_lines_give_a_peer_with_ratio_and_no_go_gives_none() {
        let out = parse(
            "go_version 1.19.8\nspawn_wait_iterations 1000\nspawn_wait_ns 650 640 660\n\
             chan_pingpong_iterations 2000\nchan_pingpong_ns 400 390 410\n",
        );
        let run: GoRun = Ok(Rc::new(out));
        let spawn = result_from(&GO_PEERINGS[0], &run).expect("its lines are there");
        let m = spawn.measurement.as_ref().unwrap();
        assert_eq!(
            (m.median(), m.min(), m.max(), m.iterations),
            (650.0, 640.0, 660.0, 1000)
        );
        assert_eq!(spawn.ratio(&ours(65.0)), 0.1);
        assert_eq!(spawn.goal_met(&ours(65.0)), Some(true));
        assert_eq!(spawn.goal_met(&ours(106.0)), Some(false));
        assert_eq!(spawn.missing(), None);
        let chan = result_from(&GO_PEERINGS[1], &run).expect("its lines are there");
        assert_eq!(chan.ratio(&ours(100.0)), 0.25);
        assert!(
            result_from(&GO_PEERINGS[2], &run).is_none(),
            "no chan_asymmetric lines"
        );
        let missing: GoRun = Err("Go: `go` not found".to_string());
        assert!(GO_PEERINGS
            .iter()
            .all(|p| result_from(p, &missing).is_none()));
    }

    /// With the machine's Go (when there is one: CI installs it), loops.go runs and gives
    /// every row's Go peer a time; without one, no peer and the Go line says why. Not under
    /// emulation (the host's Go) nor valgrind (the child would run unwatched and slow).
    #[test]
    fn loops_go_runs_with_the_machines_go() {
        if super::super::sysinfo::emulated()
            || std::env::var_os("MICROTHREAD_UNDER_VALGRIND").is_some()
        {
            return;
        }
        let results: Vec<Option<PeerResult>> = GO_PEERINGS
            .iter()
            .map(|p| result_of(p.key, 2, Iterations::Fixed(200)))
            .collect();
        let status = go::status().expect("loops.go was run");
        if status.contains("not found") {
            assert!(results.iter().all(Option::is_none));
            return;
        }
        assert!(status.starts_with("Go: go1."), "{status}");
        for (p, r) in GO_PEERINGS.iter().zip(results) {
            let m = r
                .and_then(|r| r.measurement)
                .unwrap_or_else(|| panic!("{}", p.key));
            assert_eq!((m.runs.len(), m.iterations), (2, 200), "{}", p.key);
            assert!(m.runs.iter().all(|ns| ns.is_finite() && *ns > 0.0), "{m:?}");
        }
    }
}
