//! The peers measured beside the rows, and the measuring of a row with them: ours and each
//! peer calibrated separately, then their runs interleaved (ours, peer, ours, peer, ...), so
//! that a noisy moment of the machine hits both sides alike; the medians are compared.
//!
//! The one-thread rows run with the whole process pinned to one CPU ([`affinity`]); the
//! cross-thread rows, and those that need the time-slice timer thread, do not.

use std::time::Duration;

use microthread_report::peers::{coroutines, scheduler, threads};

use super::affinity::Pin;
use super::{calibrate, per_op, rows, Iterations, Measurement, Row};

/// A loop of a peer: `iterations` operations, how long they took.
type PeerLoop = fn(u64) -> Duration;

/// One peer of a row.
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    /// What the table says: the crate, its version and the loop.
    pub name: &'static str,
    /// The loop; `None` if this peer does not build for this target (context on riscv64).
    pub measure: Option<PeerLoop>,
    /// The goal for the ratio ours / peer (at most), if it gives one against this peer.
    pub goal: Option<f64>,
    /// may's loops hang under qemu-user: measured only on a real CPU.
    pub needs_real_cpu: bool,
}

/// The peers of one row.
pub struct Peering {
    /// The row's key.
    pub key: &'static str,
    /// Its peers, the first the one the ratio is mainly about.
    pub peers: &'static [Peer],
}

#[cfg(not(target_arch = "riscv64"))]
const CONTEXT_SWITCH: Option<PeerLoop> = Some(coroutines::context_switch_elapsed);
#[cfg(target_arch = "riscv64")]
const CONTEXT_SWITCH: Option<PeerLoop> = None;
#[cfg(not(target_arch = "riscv64"))]
const CONTEXT_SPAWN: Option<PeerLoop> = Some(coroutines::context_spawn_elapsed);
#[cfg(target_arch = "riscv64")]
const CONTEXT_SPAWN: Option<PeerLoop> = None;

const fn peer(name: &'static str, measure: PeerLoop, goal: Option<f64>) -> Peer {
    Peer {
        name,
        measure: Some(measure),
        goal,
        needs_real_cpu: false,
    }
}

const fn may(name: &'static str, measure: PeerLoop, goal: Option<f64>) -> Peer {
    Peer {
        needs_real_cpu: true,
        ..peer(name, measure, goal)
    }
}

/// The rows that have peers in this process. The goals are issue 13's; its goals for tasklet
/// spawn (<= 0.1) and the one-thread channels (<= 0.1) are against Go, whose loops run in a
/// process of their own ([`super::go_peers`]), so may's columns there have none.
pub const PEERINGS: &[Peering] = &[
    Peering {
        key: "switch_round_trip_ns",
        peers: &[
            peer(
                "corosensei 0.3 resume",
                coroutines::corosensei_switch_elapsed,
                Some(1.0),
            ),
            Peer {
                name: "context 3 resume",
                measure: CONTEXT_SWITCH,
                goal: None,
                needs_real_cpu: false,
            },
        ],
    },
    Peering {
        key: "switch_round_trip_64_ns",
        peers: &[peer(
            "corosensei 0.3, 64 in turn",
            coroutines::corosensei_switch_many_elapsed,
            None,
        )],
    },
    Peering {
        key: "spawn_ns",
        peers: &[
            peer(
                "corosensei 0.3, reused stack",
                coroutines::corosensei_spawn_elapsed,
                Some(1.0),
            ),
            Peer {
                name: "context 3, reused stack",
                measure: CONTEXT_SPAWN,
                goal: None,
                needs_real_cpu: false,
            },
        ],
    },
    Peering {
        key: "schedule_round_trip_ns",
        peers: &[may(
            "may 0.3 yield_now ping-pong",
            scheduler::yield_pingpong,
            Some(0.2),
        )],
    },
    Peering {
        key: "schedule_round_trip_asymmetric_ns",
        peers: &[may(
            "may 0.3 yield_now, asymmetric",
            scheduler::yield_pingpong_asymmetric,
            Some(0.2),
        )],
    },
    Peering {
        key: "tasklet_spawn_ns",
        peers: &[may("may 0.3 spawn + join", scheduler::spawn_join, None)],
    },
    Peering {
        key: "channel_round_trip_ns",
        peers: &[may(
            "may 0.3 mpsc ping-pong",
            scheduler::channel_pingpong,
            None,
        )],
    },
    Peering {
        key: "channel_round_trip_asymmetric_ns",
        peers: &[may(
            "may 0.3 mpsc, asymmetric",
            scheduler::channel_pingpong_asymmetric,
            None,
        )],
    },
    Peering {
        key: "channel_cross_thread_round_trip_ns",
        peers: &[peer(
            "crossbeam-channel bounded(0)",
            threads::crossbeam_pingpong,
            Some(1.0),
        )],
    },
    // The rendezvous pool has no goal: its like-for-like peer is sync_channel(0). Issue 13's
    // goal (within 2x of std's mpsc) is the buffered pool's.
    Peering {
        key: "worker_pool_job_ns",
        peers: &[
            peer("std mpsc, 4 threads", threads::mpsc_pool, None),
            peer(
                "std sync_channel(0), 4 threads",
                threads::sync_channel_pool,
                None,
            ),
        ],
    },
    Peering {
        key: "worker_pool_buffered_job_ns",
        peers: &[
            peer("std mpsc, 4 threads", threads::mpsc_pool, Some(2.0)),
            peer(
                "std sync_channel(256), 4 threads",
                threads::sync_channel_buffered_pool,
                None,
            ),
        ],
    },
];

/// The peers of the row `key` (none for most).
pub fn peers_of(key: &str) -> &'static [Peer] {
    PEERINGS
        .iter()
        .find(|p| p.key == key)
        .map_or(&[], |p| p.peers)
}

/// The rows that run unpinned: those with threads of their own (cross-thread), and those that
/// need the time-slice timer thread or the clock to wake a sleeping thread on time.
const UNPINNED: &[&str] = &[
    "channel_cross_thread_round_trip_ns",
    "worker_pool_job_ns",
    "worker_pool_buffered_job_ns",
    "sleep_overshoot_p99_ns",
    "slice_overrun_us_p99",
    "slice_fairness_min_pct",
    "slice_fairness_max_pct",
    // Not a time: the process need not be pinned.
    "pickle_bytes_overhead_per_tasklet",
];

/// Whether the row `key` runs with the process pinned to one CPU.
pub fn pinned(key: &str) -> bool {
    !UNPINNED.contains(&key)
}

/// What one peer gave.
#[derive(Clone, Debug)]
pub struct PeerResult {
    /// The peer.
    pub peer: Peer,
    /// Its runs; `None` when it was not measured ([`PeerResult::missing`] says why).
    pub measurement: Option<Measurement>,
}

impl PeerResult {
    /// Why a peer has no numbers: not built for this target, or emulated.
    pub fn missing(&self) -> Option<&'static str> {
        match (&self.measurement, self.peer.measure) {
            (Some(_), _) => None,
            (None, None) => Some("n/a on this target"),
            (None, Some(_)) => Some("n/a under emulation"),
        }
    }

    /// Ours / this peer, medians; NaN without the peer's numbers.
    pub fn ratio(&self, ours: &Measurement) -> f64 {
        self.measurement
            .as_ref()
            .map_or(f64::NAN, |m| ours.median() / m.median())
    }

    /// Whether the ratio meets the goal; `None` without a goal or a ratio.
    pub fn goal_met(&self, ours: &Measurement) -> Option<bool> {
        let goal = self.peer.goal?;
        let ratio = self.ratio(ours);
        ratio.is_finite().then_some(ratio <= goal)
    }
}

/// One row of the report with its peers.
#[derive(Clone)]
pub struct RowResult {
    /// The row.
    pub row: Row,
    /// Our runs.
    pub ours: Measurement,
    /// The peers, in [`PEERINGS`] order, then Go's if the row has one and Go gave it
    /// ([`super::go_peers`]); empty when the peers were not asked for.
    pub peers: Vec<PeerResult>,
    /// The CPU the process was pinned to while measuring it.
    pub pinned_cpu: Option<usize>,
}

/// A peer's loop as a time per operation.
fn per_op_of(measure: PeerLoop) -> impl Fn(u64) -> f64 {
    move |n| per_op(measure(n), n)
}

/// Measures `row` in `runs` runs and, if `with_peers`, each of its peers that can run here,
/// interleaved with ours; pinned to one CPU if the row is a one-thread row. `emulated` leaves
/// out the peers that need a real CPU.
pub fn measure(
    row: &Row,
    runs: usize,
    iterations: Iterations,
    with_peers: bool,
    emulated: bool,
) -> RowResult {
    let pin = if pinned(row.key) {
        Pin::current_cpu()
    } else {
        None
    };
    let count = |measure: &dyn Fn(u64) -> f64| match (rows::fixed_iterations(row.key), iterations) {
        (Some(n), _) => n,
        (None, Iterations::Calibrated(target)) => calibrate(measure, target),
        (None, Iterations::Fixed(n)) => n,
    };
    let peers: &[Peer] = if with_peers { peers_of(row.key) } else { &[] };
    let runnable: Vec<Option<PeerLoop>> = peers
        .iter()
        .map(|p| p.measure.filter(|_| !(emulated && p.needs_real_cpu)))
        .collect();

    let ours_iterations = count(&row.measure);
    let peer_iterations: Vec<Option<u64>> = runnable
        .iter()
        .map(|m| m.map(|m| count(&per_op_of(m))))
        .collect();
    let mut ours = Vec::with_capacity(runs);
    let mut theirs: Vec<Vec<f64>> = vec![Vec::with_capacity(runs); peers.len()];
    for _ in 0..runs {
        ours.push((row.measure)(ours_iterations));
        for (i, m) in runnable.iter().enumerate() {
            if let (Some(m), Some(n)) = (m, peer_iterations[i]) {
                theirs[i].push(per_op(m(n), n));
            }
        }
    }
    // Go's loops run in a process of their own, started here so that it inherits the pin.
    let go = (with_peers && !emulated)
        .then(|| super::go_peers::result_of(row.key, runs, iterations))
        .flatten();
    let pinned_cpu = pin.as_ref().map(Pin::cpu);
    if let Some(pin) = pin {
        pin.release();
    }
    RowResult {
        row: *row,
        ours: Measurement {
            runs: ours,
            iterations: ours_iterations,
        },
        peers: peers
            .iter()
            .zip(theirs)
            .zip(peer_iterations)
            .map(|((&peer, runs), n)| PeerResult {
                peer,
                measurement: n.map(|iterations| Measurement { runs, iterations }),
            })
            .chain(go)
            .collect(),
        pinned_cpu,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_peering_names_a_row_and_every_goal_is_a_ratio() {
        for p in PEERINGS {
            assert!(
                rows::ROWS.iter().any(|r| r.key == p.key),
                "no row {}",
                p.key
            );
            assert!(!p.peers.is_empty());
            for peer in p.peers {
                assert!(peer.goal.map_or(true, |g| g > 0.0 && g.is_finite()));
            }
        }
        assert_eq!(peers_of("switch_round_trip_ns").len(), 2);
        assert!(peers_of("tick_ns").is_empty());
        assert_eq!(
            peers_of("switch_round_trip_ns")[1].measure.is_some(),
            cfg!(not(target_arch = "riscv64"))
        );
        assert!(!pinned("channel_cross_thread_round_trip_ns"));
        assert!(pinned("switch_round_trip_ns"));
        assert!(!pinned("worker_pool_buffered_job_ns"));
        // Issue 13's goal for the pool is the buffered row's; the rendezvous row has none.
        assert!(peers_of("worker_pool_job_ns")
            .iter()
            .all(|p| p.goal.is_none()));
        assert_eq!(peers_of("worker_pool_buffered_job_ns")[0].goal, Some(2.0));
    }

    #[test]
    fn ratio_and_goal() {
        let m = |v: f64| Measurement {
            runs: vec![v],
            iterations: 1,
        };
        let r = PeerResult {
            peer: peer("p", threads::crossbeam_pingpong, Some(0.5)),
            measurement: Some(m(4.0)),
        };
        assert_eq!(r.ratio(&m(1.0)), 0.25);
        assert_eq!(r.goal_met(&m(1.0)), Some(true));
        assert_eq!(r.goal_met(&m(3.0)), Some(false));
        assert_eq!(r.missing(), None);
        let none = PeerResult {
            measurement: None,
            ..r.clone()
        };
        assert!(none.ratio(&m(1.0)).is_nan());
        assert_eq!(none.goal_met(&m(1.0)), None);
        assert_eq!(none.missing(), Some("n/a under emulation"));
    }

    /// Every peer loop runs and gives a time (a few iterations; may's only on a real CPU).
    /// Not under ci/valgrind.sh: the coroutine peers switch stacks without telling valgrind,
    /// so its reports would be about them, not about us; nor under ASan (ci/asan.sh), which
    /// may's unannounced switches confuse.
    #[test]
    fn every_peer_measures() {
        if std::env::var_os("MICROTHREAD_UNDER_VALGRIND").is_some()
            || std::env::var_os("MICROTHREAD_UNDER_ASAN").is_some()
        {
            return;
        }
        let real_cpu = !super::super::sysinfo::emulated();
        for p in PEERINGS {
            for peer in p.peers {
                let Some(measure) = peer.measure else {
                    continue;
                };
                if peer.needs_real_cpu && !real_cpu {
                    continue;
                }
                let ns = per_op(measure(20), 20);
                assert!(ns.is_finite() && ns > 0.0, "{}: {ns}", peer.name);
            }
        }
    }
}
