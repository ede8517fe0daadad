//! The pickle world shared by the format tests (`tests/pickle_format.rs`) and the fuzz
//! crate (`fuzz/src/lib.rs`, which seeds its corpus with these pickles and loads with this
//! registry): one resumable kind, a receiver that also records and checkpoints, and sample
//! worlds with something of everything. Included by `#[path]` from both, so it names only
//! the library and serde.

use std::rc::Rc;

use microthread::pickle::{ChannelRef, Cx, Kind, PickleError, Registry, World};
use microthread::scheduler;
use serde::{Deserialize, Serialize};

/// The state of the one resumable kind: it receives forever and keeps what it got.
#[derive(Serialize, Deserialize)]
pub struct Receiver {
    input: ChannelRef<u32>,
    got: Vec<u32>,
}

pub fn receiver(cx: &mut Cx<Receiver>) -> Result<(), PickleError> {
    loop {
        let input = cx.state().input;
        let v = cx.receive(input)?;
        cx.state_mut().got.push(v);
        let n = cx.record(|| v.wrapping_mul(3))?;
        cx.state_mut().got.push(n);
        if v % 2 == 0 {
            cx.checkpoint()?;
        }
    }
}

fn registry_and_kind() -> (Rc<Registry>, Kind<Receiver>) {
    let mut r = Registry::new();
    let kind = r.register("receiver", 1, receiver).expect("one kind");
    r.register_channel::<u32>("u32", 1)
        .expect("one channel type");
    (Rc::new(r), kind)
}

/// The registry every target loads with (its fingerprint is in every seed).
pub fn registry() -> Rc<Registry> {
    registry_and_kind().0
}

/// Pickles of worlds with something of everything (the last one has every status: three
/// blocked, one unrun, one dead; channel 0's queue is `[1, 0]`, the first receiver was served
/// and queued again): blocked resumable tasklets with and
/// without a journal, an unrun one, a paused closure tasklet, a dead one, values in flight,
/// channels with a preference, `schedule_all` and closing set, a buffered channel holding two
/// values.
pub fn sample_pickles() -> Vec<Vec<u8>> {
    let (reg, kind) = registry_and_kind();
    let mut out = vec![World::new(reg.clone()).pickle().expect("an empty world")];
    let world = World::new(reg.clone());
    let a = world.channel::<u32>().expect("a channel");
    let b = world.channel::<u32>().expect("a channel");
    world.get(b).expect("b").set_preference(1);
    world.get(b).expect("b").set_schedule_all(true);
    for got in [vec![], vec![7]] {
        world
            .spawn(kind, Receiver { input: a, got })
            .expect("a tasklet");
    }
    scheduler::run().expect("run");
    world.send(a, 1).expect("a send");
    out.push(world.pickle().expect("a pickle"));
    world
        .spawn(
            kind,
            Receiver {
                input: b,
                got: vec![],
            },
        )
        .expect("a tasklet");
    let paused = microthread::Tasklet::new(|| ()).expect("a tasklet");
    paused.set_name(Some("closure"));
    world.adopt(&paused);
    let dead = scheduler::spawn(|| ()).expect("a tasklet");
    world.adopt(&dead);
    scheduler::schedule().expect("schedule");
    world.get(b).expect("b").close();
    // A buffered channel holding two values (format version 3), so that the fuzz seeds
    // have a buffer to mutate.
    let c = world
        .buffered_channel::<u32>(3)
        .expect("a buffered channel");
    world.send(c, 4).expect("a buffered send");
    world.send(c, 5).expect("a buffered send");
    out.push(world.pickle().expect("a pickle"));
    out
}
