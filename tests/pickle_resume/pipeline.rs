//! A producer, filter, consumer pipeline pickled at every point; the current tasklet.

use super::*;

const END: u32 = u32::MAX;

#[derive(Serialize, Deserialize)]
struct Producer {
    out: ChannelRef<u32>,
    next: u32,
    end: u32,
}

fn producer(cx: &mut Cx<Producer>) -> Result<(), PickleError> {
    loop {
        let (out, next, end) = (cx.state().out, cx.state().next, cx.state().end);
        if next == end {
            cx.send(out, END)?;
            cx.record(|| trace("producer done".into()))?;
            return Ok(());
        }
        cx.send(out, next)?;
        cx.record(|| trace(format!("sent {next}")))?;
        cx.state_mut().next += 1;
        cx.schedule()?;
        // Last in the round: a restore re-enters the loop's head with this state.
        cx.checkpoint()?;
    }
}

#[derive(Serialize, Deserialize)]
struct Filter {
    input: ChannelRef<u32>,
    output: ChannelRef<u32>,
    count: u32,
}

fn filter(cx: &mut Cx<Filter>) -> Result<(), PickleError> {
    loop {
        let (input, output) = (cx.state().input, cx.state().output);
        let v = cx.receive(input)?;
        if v == END {
            cx.send(output, END)?;
            return Ok(());
        }
        let w = v * 3 + cx.state().count;
        cx.record(|| trace(format!("filter {v} -> {w}")))?;
        cx.send(output, w)?;
        cx.state_mut().count += 1;
        // Every other round only: a restore replays up to two rounds of journal.
        if cx.state().count % 2 == 0 {
            cx.checkpoint()?;
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Consumer {
    input: ChannelRef<u32>,
    sum: u64,
}

fn consumer(cx: &mut Cx<Consumer>) -> Result<(), PickleError> {
    loop {
        let input = cx.state().input;
        let v = cx.receive(input)?;
        if v == END {
            let sum = cx.state().sum;
            cx.record(|| trace(format!("sum {sum}")))?;
            return Ok(());
        }
        cx.state_mut().sum += v as u64;
        cx.record(|| trace(format!("got {v}")))?;
        cx.checkpoint()?;
    }
}

struct Kinds {
    registry: Rc<Registry>,
    producer: Kind<Producer>,
    filter: Kind<Filter>,
    consumer: Kind<Consumer>,
}

fn kinds() -> Kinds {
    let mut r = Registry::new();
    let producer = r.register("producer", 1, producer).unwrap();
    let filter = r.register("filter", 1, filter).unwrap();
    let consumer = r.register("consumer", 1, consumer).unwrap();
    r.register_channel::<u32>("u32", 1).unwrap();
    Kinds {
        registry: Rc::new(r),
        producer,
        filter,
        consumer,
    }
}

/// producer → filter → consumer, over channels with preferences -1, +1 and `schedule_all`
/// (so that receivers are suspended holding values, and senders wait).
fn pipeline(k: &Kinds, n: u32) -> World {
    let world = World::new(k.registry.clone());
    let a = world.channel::<u32>().unwrap();
    let b = world.channel::<u32>().unwrap();
    world.get(a).unwrap().set_preference(1);
    world.get(b).unwrap().set_schedule_all(true);
    world
        .spawn(k.consumer, Consumer { input: b, sum: 0 })
        .unwrap();
    world
        .spawn(
            k.filter,
            Filter {
                input: a,
                output: b,
                count: 0,
            },
        )
        .unwrap();
    world
        .spawn(
            k.producer,
            Producer {
                out: a,
                next: 1,
                end: n + 1,
            },
        )
        .unwrap();
    world
}

fn uninterrupted(n: u32) -> Vec<String> {
    on_thread(move || {
        let k = kinds();
        let _world = pipeline(&k, n);
        scheduler::run().unwrap();
        take_trace()
    })
}

/// Runs the pipeline for `steps` schedules of main, pickles it, and returns the trace so
/// far with the pickle.
fn run_then_pickle(n: u32, steps: usize) -> (Vec<String>, Vec<u8>) {
    on_thread(move || {
        let k = kinds();
        let world = pipeline(&k, n);
        for _ in 0..steps {
            scheduler::schedule().unwrap();
        }
        let bytes = world.pickle().unwrap();
        (take_trace(), bytes)
    })
}

fn resume(bytes: Vec<u8>) -> Vec<String> {
    on_thread(move || {
        let k = kinds();
        let copy = World::restore(&k.registry, &bytes).unwrap();
        copy.insert_ring().unwrap();
        scheduler::run().unwrap();
        for t in &copy.tasklets {
            assert!(!t.alive(), "every tasklet finished");
        }
        take_trace()
    })
}

#[test]
fn a_pipeline_pickled_at_any_point_finishes_in_a_fresh_thread_with_the_same_trace() {
    let n = 6;
    let full = uninterrupted(n);
    assert_eq!(full.last().unwrap(), &format!("sum {}", full_sum(n)));
    for steps in 0..40 {
        let (mut before, bytes) = run_then_pickle(n, steps);
        let after = resume(bytes);
        before.extend(after);
        assert_eq!(before, full, "pickled after {steps} schedules");
    }
}

fn full_sum(n: u32) -> u64 {
    (1..=n)
        .enumerate()
        .map(|(i, v)| (v * 3 + i as u32) as u64)
        .sum()
}

#[test]
fn the_current_tasklet_cannot_be_pickled() {
    on_thread(|| {
        let reg = Rc::new(Registry::new());
        let world = World::new(reg);
        world.adopt(&scheduler::current());
        assert!(matches!(
            world.pickle(),
            Err(PickleError::CurrentTasklet { id }) if id == scheduler::current().id()
        ));
    });
}
