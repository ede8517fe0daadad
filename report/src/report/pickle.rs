//! The pickling rows: [`pickle::World::pickle`](microthread::pickle::World::pickle) and
//! [`World::restore`](microthread::pickle::World::restore) of a world of 10,000 suspended
//! resumable tasklets (each blocked receiving, on 100 channels), per tasklet.

use std::rc::Rc;
use std::time::{Duration, Instant};

use microthread::pickle::{ChannelRef, Cx, PickleError, Registry, World};
use microthread::scheduler;
use serde::{Deserialize, Serialize};

/// Tasklets in the world (the measure).
pub const TASKLETS: u64 = 10_000;
const CHANNELS: u64 = 100;

/// A small user state: a channel and a running total.
#[derive(Serialize, Deserialize)]
pub struct Summer {
    input: ChannelRef<u64>,
    total: u64,
}

fn summer(cx: &mut Cx<Summer>) -> Result<(), PickleError> {
    loop {
        let input = cx.state().input;
        let v = cx.receive(input)?;
        cx.state_mut().total += v;
        cx.checkpoint()?;
    }
}

fn registry() -> (Rc<Registry>, microthread::pickle::Kind<Summer>) {
    let mut r = Registry::new();
    let kind = r.register("summer", 1, summer).expect("one registration");
    r.register_channel::<u64>("u64", 1)
        .expect("one channel type");
    (Rc::new(r), kind)
}

/// A world of [`TASKLETS`] summers, each blocked in receive, and its pickle.
pub fn suspended_world() -> (Rc<Registry>, World, Vec<u8>) {
    let (reg, world, _, bytes) = suspended_world_and_channels();
    (reg, world, bytes)
}

/// [`suspended_world`], with its channels.
fn suspended_world_and_channels() -> (Rc<Registry>, World, Vec<ChannelRef<u64>>, Vec<u8>) {
    let (reg, kind) = registry();
    let world = World::new(reg.clone());
    let chans: Vec<_> = (0..CHANNELS)
        .map(|_| world.channel::<u64>().expect("a registered type"))
        .collect();
    for i in 0..TASKLETS {
        let input = chans[(i % CHANNELS) as usize];
        world
            .spawn(kind, Summer { input, total: i })
            .expect("a stack");
    }
    scheduler::run().expect("the summers block");
    let bytes = world.pickle().expect("a picklable world");
    (reg, world, chans, bytes)
}

/// Ends the world's tasklets (untimed teardown).
fn end(world: &World) {
    for t in world.tasklets() {
        if t.alive() {
            t.kill().expect("kill a blocked summer");
        }
    }
}

/// `World::pickle` of the suspended world, per tasklet.
pub fn pickle_per_tasklet(iterations: u64) -> f64 {
    let (_reg, world, _) = suspended_world();
    let rounds = iterations.div_ceil(TASKLETS).max(1);
    let start = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(world.pickle().expect("a picklable world"));
    }
    let elapsed = start.elapsed();
    end(&world);
    super::per_op(elapsed, rounds * TASKLETS)
}

/// `World::restore` of the suspended world's pickle, per tasklet. The restore is lazy:
/// every tasklet is queued on its channel again, but gets its stack and replays its journal
/// only when it first runs (see [`restore_and_first_run_per_tasklet`] for that part).
pub fn restore_per_tasklet(iterations: u64) -> f64 {
    let (reg, world, bytes) = suspended_world();
    time_restores(&reg, world, &bytes, iterations, |_| {})
}

/// `World::restore` of the suspended world's pickle and then the first run of every
/// tasklet (a value sent to each: it gets its stack, replays up to its receive, takes the
/// value, checkpoints and blocks receiving again), per tasklet: the cost the lazy restore
/// defers, included.
pub fn restore_and_first_run_per_tasklet(iterations: u64) -> f64 {
    let (reg, world, refs, bytes) = suspended_world_and_channels();
    time_restores(&reg, world, &bytes, iterations, |copy| {
        let chans: Vec<microthread::Channel<u64>> = refs
            .iter()
            .map(|&r| copy.world.get(r).expect("a world channel"))
            .collect();
        for i in 0..TASKLETS {
            // The receiver at the head runs now (preference -1) and queues again at the end.
            chans[(i % CHANNELS) as usize]
                .send(1)
                .expect("a restored receiver");
        }
    })
}

/// Ends `original`, then times enough rounds of restoring `bytes` and running `then` on the
/// copy (each copy ended untimed) for `iterations` tasklets: ns per tasklet.
fn time_restores(
    reg: &Rc<Registry>,
    original: World,
    bytes: &[u8],
    iterations: u64,
    mut then: impl FnMut(&microthread::pickle::Restored),
) -> f64 {
    end(&original);
    drop(original);
    let rounds = iterations.div_ceil(TASKLETS).max(1);
    let mut elapsed = Duration::ZERO;
    for _ in 0..rounds {
        let start = Instant::now();
        let copy = World::restore(reg, bytes).expect("a valid pickle");
        then(&copy);
        elapsed += start.elapsed();
        end(&copy.world);
    }
    super::per_op(elapsed, rounds * TASKLETS)
}

/// For comparison with [`restore_per_tasklet`]: spawning [`TASKLETS`] closure tasklets
/// that each block receiving on one of 100 channels (all alive at once, so each needs a
/// fresh stack, as the restored ones do), per tasklet.
pub fn spawn_blocked_per_tasklet(iterations: u64) -> f64 {
    let rounds = iterations.div_ceil(TASKLETS).max(1);
    let chans: Vec<microthread::Channel<u64>> =
        (0..CHANNELS).map(|_| microthread::Channel::new()).collect();
    let mut elapsed = Duration::ZERO;
    for _ in 0..rounds {
        let start = Instant::now();
        let ts: Vec<_> = (0..TASKLETS)
            .map(|i| {
                let rx = chans[(i % CHANNELS) as usize].clone();
                let t = microthread::Tasklet::new(move || rx.receive()).expect("a stack");
                t.run().expect("it blocks");
                t
            })
            .collect();
        elapsed += start.elapsed();
        for t in ts {
            t.kill().expect("kill a blocked receiver");
        }
    }
    super::per_op(elapsed, rounds * TASKLETS)
}

/// The iterations of the bytes row (not a time: one pickle gives its value).
pub const FIXED_ITERATIONS: &[(&str, u64)] = &[("pickle_bytes_overhead_per_tasklet", 1)];

/// Bytes of the suspended world's pickle per tasklet beyond the user's own state (its
/// postcard bytes): the header, the channels, the queues, and per tasklet its id, status,
/// kind and journal. Not a time; `_iterations` is ignored (the pickle is deterministic).
pub fn overhead_bytes_per_tasklet(_iterations: u64) -> f64 {
    let (_reg, world, bytes) = suspended_world();
    let image = world.image().expect("a picklable world");
    let state: usize = image
        .tasklets
        .iter()
        .map(|t| match &t.body {
            microthread::pickle::BodyImage::Resumable { checkpoint, .. } => checkpoint.len(),
            microthread::pickle::BodyImage::Closure => 0,
        })
        .sum();
    end(&world);
    (bytes.len() - state) as f64 / TASKLETS as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bound (pickle_bytes_overhead_per_tasklet ≤ 32): deterministic, so
    /// asserted.
    #[test]
    fn the_pickle_overhead_is_at_most_32_bytes_per_tasklet() {
        let bytes = overhead_bytes_per_tasklet(1);
        println!("pickle_bytes_overhead_per_tasklet {bytes:.2}");
        assert!(bytes <= 32.0, "{bytes}");
    }
}
