//! Lazy restore: `World::restore` builds the tasklets without touching their stacks or
//! running their bodies; each is laid out and replayed the first time it runs. What that
//! must not change: the queues and balances, the values in flight, kills and pickles of
//! tasklets that never ran since the restore; and what it must change: no page faults.

mod common;

use std::cell::Cell;
use std::rc::Rc;

use microthread::pickle::{inspect, ChannelRef, Cx, PickleError, Registry, Status, World};
use microthread::{scheduler, Error};
use serde::{Deserialize, Serialize};

use common::on_thread;

#[derive(Serialize, Deserialize)]
struct Summer {
    input: ChannelRef<u64>,
    output: ChannelRef<u64>,
    total: u64,
}

/// Receives, adds, sends its total, forever.
fn summer(cx: &mut Cx<Summer>) -> Result<(), PickleError> {
    loop {
        let Summer { input, output, .. } = *cx.state();
        let v = cx.receive(input)?;
        cx.state_mut().total += v;
        let total = cx.state().total;
        cx.send(output, total)?;
        cx.checkpoint()?;
    }
}

fn registry() -> (Rc<Registry>, microthread::pickle::Kind<Summer>) {
    let mut r = Registry::new();
    let k = r.register("summer", 1, summer).unwrap();
    r.register_channel::<u64>("u64", 1).unwrap();
    (Rc::new(r), k)
}

fn minor_faults() -> i64 {
    // SAFETY: getrusage writes the struct it is given.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_THREAD, &mut u), 0);
        u.ru_minflt
    }
}

/// N summers, each blocked receiving on one of `chans` input channels, all sending to one
/// output channel; and the world's pickle.
fn blocked_world(
    n: u64,
    chans: u64,
) -> (
    Rc<Registry>,
    World,
    Vec<ChannelRef<u64>>,
    ChannelRef<u64>,
    Vec<u8>,
) {
    let (reg, k) = registry();
    let world = World::new(reg.clone());
    let inputs: Vec<_> = (0..chans)
        .map(|_| world.channel::<u64>().unwrap())
        .collect();
    let output = world.channel::<u64>().unwrap();
    for i in 0..n {
        let input = inputs[(i % chans) as usize];
        world
            .spawn(
                k,
                Summer {
                    input,
                    output,
                    total: i,
                },
            )
            .unwrap();
    }
    scheduler::run().unwrap();
    let bytes = world.pickle().unwrap();
    (reg, world, inputs, output, bytes)
}

fn kill_all(world: &World) {
    for t in world.tasklets() {
        if t.alive() {
            t.kill().unwrap();
        }
    }
}

#[test]
fn restoring_blocked_tasklets_touches_no_stack_and_waking_them_finishes_each() {
    on_thread(|| {
        const N: u64 = 2_000;
        let (reg, world, inputs, output, bytes) = blocked_world(N, 10);
        kill_all(&world);
        drop(world);
        // Warm the allocator and the stack pool's bookkeeping outside the measure.
        let warm = World::restore(&reg, &bytes).unwrap();
        kill_all(&warm.world);
        drop(warm);
        let before = minor_faults();
        let copy = World::restore(&reg, &bytes).unwrap();
        let faults = minor_faults() - before;
        assert!(
            faults < (N / 10) as i64,
            "restoring {N} blocked tasklets took {faults} minor page faults"
        );
        for (i, t) in copy.tasklets.iter().enumerate() {
            assert!(t.blocked() && t.alive(), "tasklet {i}");
        }
        for (ci, &c) in inputs.iter().enumerate() {
            let ch = copy.world.get(c).unwrap();
            assert_eq!(ch.balance(), -((N / 10) as isize), "channel {ci}");
        }
        // Wake every one: each adds what it gets to its total and sends it.
        let out = copy.world.get(output).unwrap();
        let mut totals = Vec::new();
        for i in 0..N {
            let ch = copy.world.get(inputs[(i % 10) as usize]).unwrap();
            ch.send(1000).unwrap(); // the receiver runs now, replays, and blocks sending
            totals.push(out.receive().unwrap());
        }
        // The queue order is the original's (FIFO): the i-th woken is the i-th spawned.
        let want: Vec<u64> = (0..N).map(|i| i + 1000).collect();
        assert_eq!(totals, want);
        scheduler::run().unwrap(); // each goes back to its receive
        for (ci, &c) in inputs.iter().enumerate() {
            assert_eq!(
                copy.world.get(c).unwrap().balance(),
                -((N / 10) as isize),
                "{ci}"
            );
        }
        kill_all(&copy.world);
    });
}
