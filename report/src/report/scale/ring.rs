//! The hot-potato ring at scale: `n` tasklets in a ring of `n` channels pass a token, each
//! receiving from its own channel and sending to the next one's, for at least 100 rounds
//! (and at least a million hops, so that a small ring is timed over enough of them). The
//! ring is spawned and blocked before the clock starts; the time is from the first send to
//! the end of the last tasklet, per hop.

use std::cell::RefCell;
use std::time::Instant;

use microthread::channel::Channel;
use microthread::scheduler::{self, spawn};
use microthread::Tasklet;

/// The fewest rounds the token makes.
pub const MIN_ROUNDS: u64 = 100;
/// The fewest hops a ring is timed over.
const MIN_HOPS: u64 = 1_000_000;

/// Rounds of a ring of `n` tasklets: at least [`MIN_ROUNDS`], at least a million hops.
pub fn rounds(n: u64) -> u64 {
    MIN_ROUNDS.max(MIN_HOPS.div_ceil(n.max(1)))
}

thread_local! {
    static CACHE: RefCell<Vec<(u64, f64)>> = const { RefCell::new(Vec::new()) };
}

/// ns per hop of a ring of `n` tasklets ([`rounds`] rounds), measured once per process and `n`.
pub fn ns_per_hop(n: u64) -> f64 {
    if let Some(&(_, ns)) = CACHE
        .with(|c| c.borrow().iter().find(|e| e.0 == n).copied())
        .as_ref()
    {
        return ns;
    }
    let ns = run_ring(n as usize, rounds(n));
    CACHE.with(|c| c.borrow_mut().push((n, ns)));
    ns
}

/// Runs the ring once: `n` tasklets, `rounds` rounds; returns ns per hop.
///
/// Tasklet `i` receives `rounds` times and forwards each token to tasklet `i + 1`, except the
/// last tasklet's last one: the token ends there, every tasklet has received `rounds` times,
/// and all finish. Main's first send is hop one, so the ring makes `n * rounds` hops.
fn run_ring(n: usize, rounds: u64) -> f64 {
    assert!(n >= 2, "a ring of at least two tasklets");
    let chans: Vec<Channel<u64>> = (0..n).map(|_| Channel::new()).collect();
    let ring: Vec<Tasklet> = (0..n)
        .map(|i| {
            let inp = chans[i].clone();
            let out = chans[(i + 1) % n].clone();
            spawn(move || {
                let mut last = 0;
                for r in 0..rounds {
                    last = inp.receive().expect("a token");
                    if i == n - 1 && r == rounds - 1 {
                        break;
                    }
                    out.send(last + 1).expect("the next tasklet waits");
                }
                last
            })
            .expect("a stack for every tasklet of the ring")
        })
        .collect();
    scheduler::run().expect("every tasklet blocks in receive");
    let hops = n as u64 * rounds;
    let start = Instant::now();
    chans[0].send(1).expect("the first tasklet waits");
    scheduler::run().expect("the ring runs to its end");
    let elapsed = start.elapsed();
    assert_eq!(
        ring[n - 1].result::<u64>(),
        Some(hops),
        "the token made every hop"
    );
    assert!(ring.iter().all(|t| !t.alive()));
    elapsed.as_nanos() as f64 / hops as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_ring_makes_every_hop() {
        assert_eq!(rounds(1_000_000), 100);
        assert_eq!(rounds(10), 100_000);
        // run_ring asserts the hop count the last tasklet saw.
        assert!(run_ring(3, 5) > 0.0);
        let ns = ns_per_hop(1000);
        assert!(ns > 0.0);
        assert_eq!(ns_per_hop(1000), ns, "measured once");
    }
}
