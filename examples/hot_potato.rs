//! The hot-potato ring, ported from Stackless: `N` tasklets sit in a ring of channels, each
//! receiving from its own channel and sending to the next one's. A counter goes round the
//! ring, one more at every hop, until it reaches `LIMIT`; the tasklet that brings it there
//! sends a stop message round the ring, and every tasklet ends.
//!
//! ```text
//! cargo run --release --example hot_potato [TASKLETS [LIMIT]]   # default 100 10000
//! ```
//!
//! Stackless:
//!
//! ```text
//! def potato(i, inp, out):
//!     hops = 0
//!     while True:
//!         msg = inp.receive()
//!         if msg[0] == "stop":
//!             if msg[1] != i: out.send(msg)
//!             return hops
//!         hops += 1
//!         if msg[1] + 1 == LIMIT:
//!             winner = i
//!             out.send(("stop", i))
//!         else:
//!             out.send(("count", msg[1] + 1))
//! chans = [stackless.channel() for _ in range(N)]
//! for i in range(N): stackless.tasklet(potato)(i, chans[i], chans[(i + 1) % N])
//! stackless.run()                 # all block in receive
//! chans[0].send(("count", 0))
//! stackless.run()
//! ```
//!
//! Running it is a test: it asserts who reached the limit, that the hops add up to it, and
//! that every tasklet ended and no channel has anyone waiting.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

use microthread::{scheduler, spawn, Channel, Tasklet};

/// What goes round the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Msg {
    /// The counter, as many hops as it has made.
    Count(u64),
    /// Stop; sent round the ring once by the tasklet that reached the limit.
    Stop { from: usize },
}

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .map(|a| a.parse().expect("arguments are numbers"))
        .unwrap_or(default)
}

fn main() -> std::io::Result<()> {
    let tasklets = arg(1, 100) as usize;
    let limit = arg(2, 10_000);
    // One tasklet alone would send to itself: nobody would ever receive.
    assert!(
        tasklets >= 2 && limit >= 1,
        "at least 2 tasklets and a limit of 1 or more"
    );
    let chans: Vec<Channel<Msg>> = (0..tasklets).map(|_| Channel::new()).collect();
    // Which tasklet brought the counter to the limit (all run on this thread: `Rc` is fine).
    let winner = Rc::new(Cell::new(None));

    let ring: Vec<Tasklet> = (0..tasklets)
        .map(|i| {
            let inp = chans[i].clone();
            let out = chans[(i + 1) % tasklets].clone();
            let winner = winner.clone();
            spawn(move || {
                let mut hops = 0u64;
                loop {
                    match inp.receive().expect("nothing is thrown into the ring") {
                        Msg::Stop { from } => {
                            if from != i {
                                out.send(Msg::Stop { from }).unwrap();
                            }
                            return hops;
                        }
                        Msg::Count(n) => {
                            hops += 1;
                            if n + 1 == limit {
                                winner.set(Some(i));
                                out.send(Msg::Stop { from: i }).unwrap();
                            } else {
                                out.send(Msg::Count(n + 1)).unwrap();
                            }
                        }
                    }
                }
            })
        })
        .collect::<std::io::Result<_>>()?;

    // Every tasklet runs up to its first receive and blocks there; run() returns.
    scheduler::run().expect("no tasklet panics");
    assert!(ring.iter().all(|t| t.blocked()), "the whole ring waits");
    assert_eq!(chans[0].balance(), -1, "one receiver waits on each channel");

    let started = Instant::now();
    chans[0].send(Msg::Count(0)).unwrap(); // the receiver runs at once
    scheduler::run().expect("no tasklet panics");
    let took = started.elapsed();

    let hops: Vec<u64> = ring
        .iter()
        .map(|t| t.result::<u64>().expect("every tasklet returned"))
        .collect();
    let total: u64 = hops.iter().sum();
    let expected_winner = ((limit - 1) % tasklets as u64) as usize;
    println!(
        "{tasklets} tasklets passed the counter {total} times in {took:?} \
         ({:.0} ns a hop); tasklet {} brought it to {limit}",
        took.as_nanos() as f64 / total as f64,
        winner.get().unwrap()
    );

    assert_eq!(total, limit, "one hop per count");
    assert_eq!(winner.get(), Some(expected_winner));
    for (i, &h) in hops.iter().enumerate() {
        // Tasklet i handles counts i, i + N, i + 2N, ... below the limit.
        let mine = limit / tasklets as u64 + u64::from((i as u64) < limit % tasklets as u64);
        assert_eq!(h, mine, "tasklet {i}'s hops");
    }
    assert!(ring.iter().all(|t| !t.alive()));
    assert!(
        chans.iter().all(|c| c.balance() == 0),
        "nobody waits any more"
    );
    assert_eq!(scheduler::runcount(), 1, "only main is left");
    println!("ok");
    Ok(())
}
