//! A pipeline of resumable tasklets, stopped mid-way, pickled to a file, and resumed in
//! another process exactly where it was (issue 10's two-process test).
//!
//! ```text
//! pickle_resume                 # in one process: the uninterrupted run equals save + resume
//! pickle_resume full            # print the uninterrupted run's lines
//! pickle_resume save FILE       # run part of the way, print those lines, write FILE
//! pickle_resume resume FILE     # restore FILE, print the rest of the lines
//! ```
//!
//! `ci/pickle-two-process.sh` checks that `save` followed by `resume` prints exactly what
//! `full` prints.
//!
//! The stages: a producer of work items, a squarer, and a printer that keeps a running
//! total. Each line is printed through `cx.record`, so a replay after a restore does not
//! print it again.

use std::rc::Rc;

use microthread::pickle::{ChannelRef, Cx, Kind, PickleError, Registry, World};
use microthread::scheduler;
use serde::{Deserialize, Serialize};

const ITEMS: u64 = 12;

thread_local! {
    /// The lines this thread printed, for the in-process check.
    static PRINTED: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn emit(line: String) {
    println!("{line}");
    PRINTED.with(|p| p.borrow_mut().push(line));
}

fn printed() -> Vec<String> {
    PRINTED.with(|p| std::mem::take(&mut *p.borrow_mut()))
}
/// How many schedules of main `save` lets the pipeline run before it pickles.
const SAVE_AFTER: usize = 9;

#[derive(Serialize, Deserialize)]
struct Producer {
    out: ChannelRef<Option<u64>>,
    next: u64,
}

fn producer(cx: &mut Cx<Producer>) -> Result<(), PickleError> {
    loop {
        let (out, next) = (cx.state().out, cx.state().next);
        if next > ITEMS {
            return cx.send(out, None);
        }
        cx.send(out, Some(next))?;
        cx.state_mut().next += 1;
        cx.schedule()?;
        cx.checkpoint()?;
    }
}

#[derive(Serialize, Deserialize)]
struct Squarer {
    input: ChannelRef<Option<u64>>,
    out: ChannelRef<Option<u64>>,
}

fn squarer(cx: &mut Cx<Squarer>) -> Result<(), PickleError> {
    loop {
        let (input, out) = (cx.state().input, cx.state().out);
        let item = cx.receive(input)?;
        cx.send(out, item.map(|v| v * v))?;
        if item.is_none() {
            return Ok(());
        }
        cx.checkpoint()?;
    }
}

#[derive(Serialize, Deserialize)]
struct Printer {
    input: ChannelRef<Option<u64>>,
    total: u64,
    lines: u64,
}

fn printer(cx: &mut Cx<Printer>) -> Result<(), PickleError> {
    loop {
        let input = cx.state().input;
        let Some(v) = cx.receive(input)? else {
            let total = cx.state().total;
            return cx.record(|| emit(format!("done: total {total}")));
        };
        let st = cx.state_mut();
        st.total += v;
        st.lines += 1;
        let (n, total) = (st.lines, st.total);
        cx.record(|| emit(format!("line {n}: {v} (total {total})")))?;
        // Every third line only: a restore may replay a few lines' worth of journal.
        if n % 3 == 0 {
            cx.checkpoint()?;
        }
    }
}

struct Kinds {
    registry: Rc<Registry>,
    producer: Kind<Producer>,
    squarer: Kind<Squarer>,
    printer: Kind<Printer>,
}

/// The same registry in every process: same names, versions and order.
fn kinds() -> Kinds {
    let mut r = Registry::new();
    let producer = r.register("producer", 1, producer).unwrap();
    let squarer = r.register("squarer", 1, squarer).unwrap();
    let printer = r.register("printer", 1, printer).unwrap();
    r.register_channel::<Option<u64>>("item", 1).unwrap();
    Kinds {
        registry: Rc::new(r),
        producer,
        squarer,
        printer,
    }
}

fn pipeline(k: &Kinds) -> World {
    let world = World::new(k.registry.clone());
    let raw = world.channel().unwrap();
    let squared = world.channel().unwrap();
    world.get(squared).unwrap().set_preference(1); // the squarer runs on after a send
    world
        .spawn(
            k.printer,
            Printer {
                input: squared,
                total: 0,
                lines: 0,
            },
        )
        .unwrap();
    world
        .spawn(
            k.squarer,
            Squarer {
                input: raw,
                out: squared,
            },
        )
        .unwrap();
    world
        .spawn(k.producer, Producer { out: raw, next: 1 })
        .unwrap();
    world
}

fn full() {
    let k = kinds();
    let _world = pipeline(&k);
    scheduler::run().unwrap();
}

fn save() -> Vec<u8> {
    let k = kinds();
    let world = pipeline(&k);
    for _ in 0..SAVE_AFTER {
        scheduler::schedule().unwrap();
    }
    world.pickle().unwrap()
}

fn resume(bytes: &[u8]) {
    let k = kinds();
    let copy = World::restore(&k.registry, bytes).unwrap_or_else(|e| {
        eprintln!("pickle_resume: {e}");
        std::process::exit(1)
    });
    copy.insert_ring().unwrap();
    scheduler::run().unwrap();
    assert!(
        copy.tasklets.iter().all(|t| !t.alive()),
        "every stage ended"
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["full"] => full(),
        ["save", file] => {
            let bytes = save();
            std::fs::write(file, &bytes).unwrap();
            eprintln!("pickle_resume: saved {} bytes to {file}", bytes.len());
        }
        ["resume", file] => resume(&std::fs::read(file).unwrap()),
        [] => {
            // In one process: the uninterrupted run, then save in one thread and resume in
            // a fresh one; the two halves together print what the whole printed.
            let whole = std::thread::spawn(|| {
                full();
                printed()
            });
            let whole = whole.join().unwrap();
            let (first, bytes) = std::thread::spawn(|| {
                let bytes = save();
                (printed(), bytes)
            })
            .join()
            .unwrap();
            let second = std::thread::spawn(move || {
                resume(&bytes);
                printed()
            })
            .join()
            .unwrap();
            assert!(!first.is_empty() && !second.is_empty(), "pickled mid-way");
            assert_eq!([first.clone(), second.clone()].concat(), whole);
            println!(
                "pickle_resume: pickled after {} of {} lines, resumed in a fresh thread: the same run",
                first.len(),
                whole.len()
            );
        }
        _ => {
            eprintln!("usage: pickle_resume [full | save FILE | resume FILE]");
            std::process::exit(2);
        }
    }
}
