//! A random deterministic program (resumable tasklets running random scripts of sends,
//! receives, schedules and checkpoints over channels with random preferences and
//! `schedule_all`) is pickled at a random point, restored into a fresh thread and finished:
//! the trace before the pickle and the trace after the restore together equal the
//! uninterrupted run's, and the channels end alike (buffered values, queues, the values of
//! senders still blocked). Twice: over rendezvous channels only, and over buffered channels
//! of random capacities, 0 to 3, mixed with rendezvous ones, so that pickles hold values in
//! buffers and tasklets blocked on full and empty ones.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use microthread::pickle::{BufferedChannelRef, ChannelRef, Cx, Kind, PickleError, Registry, World};
use microthread::scheduler;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use common::on_thread;

thread_local! {
    static TRACE: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn take_trace() -> Vec<String> {
    TRACE.with(|t| std::mem::take(&mut *t.borrow_mut()))
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy)]
enum Step {
    Send(u8),
    Receive(u8),
    Schedule,
    Checkpoint,
}

/// A world channel of either kind.
#[derive(Serialize, Deserialize, Debug, Clone, Copy)]
enum Chan {
    Plain(ChannelRef<u64>),
    Buffered(BufferedChannelRef<u64>),
}

impl Chan {
    fn index(self) -> u32 {
        match self {
            Chan::Plain(r) => r.index(),
            Chan::Buffered(r) => r.index(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Script {
    name: u8,
    channels: Vec<Chan>,
    steps: Vec<Step>,
    pc: usize,
    acc: u64,
}

fn script(cx: &mut Cx<Script>) -> Result<(), PickleError> {
    while cx.state().pc < cx.state().steps.len() {
        let st = cx.state();
        let (name, step) = (st.name, st.steps[st.pc]);
        let ch = |i: u8| st.channels[i as usize % st.channels.len()];
        let line = match step {
            Step::Send(i) => {
                let (c, v) = (ch(i), st.acc * 10 + name as u64);
                match c {
                    Chan::Plain(r) => cx.send(r, v)?,
                    Chan::Buffered(r) => cx.send(r, v)?,
                }
                format!("t{name} sent {v} on {}", c.index())
            }
            Step::Receive(i) => {
                let c = ch(i);
                let v = match c {
                    Chan::Plain(r) => cx.receive(r)?,
                    Chan::Buffered(r) => cx.receive(r)?,
                };
                cx.state_mut().acc += v;
                format!("t{name} got {v} on {}", c.index())
            }
            Step::Schedule => {
                cx.schedule()?;
                format!("t{name} scheduled")
            }
            Step::Checkpoint => format!("t{name} checkpoint"),
        };
        cx.record(|| TRACE.with(|t| t.borrow_mut().push(line)))?;
        cx.state_mut().pc += 1;
        if matches!(step, Step::Checkpoint) {
            cx.checkpoint()?;
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
struct Program {
    /// Preference, `schedule_all`, and a capacity (`None`: a rendezvous channel).
    channels: Vec<(i8, bool, Option<usize>)>,
    scripts: Vec<Vec<Step>>,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0u8..4).prop_map(Step::Send),
        3 => (0u8..4).prop_map(Step::Receive),
        1 => Just(Step::Schedule),
        2 => Just(Step::Checkpoint),
    ]
}

/// A program over rendezvous channels only, or (`buffered`) over channels of which about
/// four in five are buffered.
fn program(buffered: bool) -> impl Strategy<Value = Program> {
    (
        proptest::collection::vec(
            (
                -1i8..=1,
                any::<bool>(),
                proptest::option::weighted(0.8, 0usize..4)
                    .prop_map(move |c| c.filter(|_| buffered)),
            ),
            1..4,
        ),
        proptest::collection::vec(proptest::collection::vec(step(), 0..12), 1..5),
    )
        .prop_map(|(channels, scripts)| Program { channels, scripts })
}

fn registry() -> (Rc<Registry>, Kind<Script>) {
    let mut r = Registry::new();
    let k = r.register("script", 1, script).unwrap();
    r.register_channel::<u64>("u64", 1).unwrap();
    (Rc::new(r), k)
}

fn build(p: &Program) -> World {
    let (reg, kind) = registry();
    let world = World::new(reg);
    let channels: Vec<Chan> = p
        .channels
        .iter()
        .map(|&(pref, all, capacity)| match capacity {
            None => {
                let r = world.channel::<u64>().unwrap();
                let c = world.get(r).unwrap();
                c.set_preference(pref as i32);
                c.set_schedule_all(all);
                Chan::Plain(r)
            }
            Some(n) => {
                let r = world.buffered_channel::<u64>(n).unwrap();
                let c = world.get_buffered(r).unwrap();
                c.set_preference(pref as i32);
                c.set_schedule_all(all);
                Chan::Buffered(r)
            }
        })
        .collect();
    for (i, steps) in p.scripts.iter().enumerate() {
        world
            .spawn(
                kind,
                Script {
                    name: i as u8,
                    channels: channels.clone(),
                    steps: steps.clone(),
                    pc: 0,
                    acc: 1,
                },
            )
            .unwrap();
    }
    world
}

/// Runs `p` whole, and again pickled after `stop` schedules of main and restored; fails if
/// the traces or the channels' ends differ.
fn pickled_run_matches_the_whole_run(p: &Program, stop: usize) -> Result<(), TestCaseError> {
    let q = p.clone();
    // The trace, and where the channels end: buffered values, queues, the values of
    // the senders still blocked.
    let (whole, whole_end) = on_thread(move || {
        let world = build(&q);
        scheduler::run().unwrap();
        (take_trace(), world.image().unwrap().channels)
    });
    let q = p.clone();
    let (mut before, bytes) = on_thread(move || {
        let world = build(&q);
        for _ in 0..stop {
            scheduler::schedule().unwrap();
        }
        let (image, bytes) = (world.image().unwrap(), world.pickle().unwrap());
        // The pickle is written straight from the records, the image copied out of
        // them: the payload is the image's postcard bytes all the same.
        let (reg, _) = registry();
        let payload = microthread::pickle::format::open(&bytes, reg.fingerprint()).unwrap();
        assert_eq!(payload, postcard::to_allocvec(&image).unwrap());
        (take_trace(), bytes)
    });
    let (after, after_end) = on_thread(move || {
        let (reg, _) = registry();
        let copy = World::restore(&reg, &bytes).unwrap();
        copy.insert_ring().unwrap();
        scheduler::run().unwrap();
        (take_trace(), copy.world.image().unwrap().channels)
    });
    before.extend(after);
    prop_assert_eq!(before, whole);
    prop_assert_eq!(after_end, whole_end);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn a_program_pickled_at_a_random_point_finishes_as_the_uninterrupted_run(
        p in program(false),
        stop in 0usize..30,
    ) {
        pickled_run_matches_the_whole_run(&p, stop)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn a_buffered_program_pickled_at_a_random_point_finishes_as_the_uninterrupted_run(
        p in program(true),
        stop in 0usize..30,
    ) {
        pickled_run_matches_the_whole_run(&p, stop)?;
    }
}
