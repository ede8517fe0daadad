//! Autoschedule: Stackless's idiom for preemptive scheduling. Main pumps the scheduler with a
//! budget of 100 ticks; a tasklet that runs 100 ticks without switching is interrupted, handed
//! back to main, and main re-inserts it at the end of the run queue, so CPU-bound tasklets
//! take turns although none of them yields.
//!
//! ```text
//! cargo run --release --example autoschedule
//! ```
//!
//! Stackless (the interrupted tasklet is returned by `run(timeout)`, removed from the run
//! queue; `insert()` puts it back, and it resumes where it was cut):
//!
//! ```text
//! def autoschedule(budget=100):
//!     while stackless.getruncount() > 1:
//!         t = stackless.run(budget)
//!         if t is not None:
//!             t.insert()
//! ```
//!
//! Here `stackless.run(budget)` is `scheduler::run_with(RunOptions::new().ticks(budget))`.
//! Stackless counts bytecodes; native code has no such count, so the CPU-bound loops below
//! call `scheduler::tick()`, the safe point at which a tasklet can be preempted (every
//! scheduler and channel operation is one too). Code that reaches no safe point is never
//! preempted, as C code is not in Stackless.
//!
//! The program: a server tasklet answers requests from several client tasklets over channels,
//! doing CPU-bound work (ticks) for each; the clients do CPU-bound work between their requests.
//! Running it is a test: it asserts that every client got all its replies, in order and with
//! the right values, that the server served everyone and ended, and that the budget did
//! interrupt tasklets; it exits with status 1 otherwise.

use std::cell::RefCell;
use std::rc::Rc;

use microthread::scheduler::{self, run_with, tick, RunOptions};
use microthread::{spawn, Channel};

const CLIENTS: usize = 4;
const REQUESTS: u64 = 6;
const BUDGET: u64 = 100;

/// A client's request, or its goodbye.
enum Request {
    Work {
        client: usize,
        seq: u64,
        input: u64,
        reply: Channel<Reply>,
    },
    Done,
}

/// The server's answer to request `seq`.
struct Reply {
    seq: u64,
    output: u64,
}

/// CPU-bound work with a safe point in every iteration: `rounds` ticks.
fn crunch(mut x: u64, rounds: u64) -> u64 {
    for i in 0..rounds {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(i | 1);
        tick().expect("tick");
    }
    x
}

/// What the server computes for `input` (the client checks it without the ticks).
fn answer(input: u64) -> u64 {
    let mut x = input;
    for i in 0..250 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(i | 1);
    }
    x
}

/// What each client received, in order: (seq, output) per reply.
type Received = Rc<RefCell<Vec<Vec<(u64, u64)>>>>;

fn fail(why: String) -> ! {
    eprintln!("autoschedule: FAILED: {why}");
    std::process::exit(1);
}

fn main() {
    let requests = Channel::<Request>::new();

    let rx = requests.clone();
    let server = spawn(move || {
        let (mut served, mut done) = (0u64, 0usize);
        while done < CLIENTS {
            match rx.receive().expect("server receive") {
                Request::Work {
                    client,
                    seq,
                    input,
                    reply,
                } => {
                    // 250 ticks: more than one budget; the server is interrupted mid-request.
                    let output = crunch(input, 250);
                    served += 1;
                    if reply.send(Reply { seq, output }).is_err() {
                        fail(format!("client {client} did not take reply {seq}"));
                    }
                }
                Request::Done => done += 1,
            }
        }
        served
    })
    .expect("spawn server");

    let received: Received = Rc::new(RefCell::new(vec![Vec::new(); CLIENTS]));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (tx, got) = (requests.clone(), received.clone());
            spawn(move || {
                let reply = Channel::<Reply>::new();
                for seq in 0..REQUESTS {
                    // Think before asking: 120 ticks, also more than one budget.
                    let input = crunch((client as u64) << 32 | seq, 120);
                    let work = Request::Work {
                        client,
                        seq,
                        input,
                        reply: reply.clone(),
                    };
                    if tx.send(work).is_err() {
                        fail(format!(
                            "client {client}: the server did not take request {seq}"
                        ));
                    }
                    let r = reply.receive().expect("client receive");
                    got.borrow_mut()[client].push((r.seq, r.output));
                    if r.output != answer(input) {
                        fail(format!("client {client}: wrong answer to request {seq}"));
                    }
                }
                if tx.send(Request::Done).is_err() {
                    fail(format!("client {client}: goodbye not taken"));
                }
            })
            .expect("spawn client")
        })
        .collect();

    // The idiom: pump the scheduler with a budget, re-inserting whoever was interrupted.
    let mut interrupts = 0u64;
    while scheduler::runcount() > 1 {
        match run_with(RunOptions::new().ticks(BUDGET)) {
            Ok(Some(interrupted)) => {
                interrupts += 1;
                interrupted.insert().expect("re-insert");
            }
            Ok(None) => {}
            Err(e) => fail(format!("run_with failed: {e}")),
        }
    }

    let received = received.borrow();
    for (client, replies) in received.iter().enumerate() {
        let seqs: Vec<u64> = replies.iter().map(|r| r.0).collect();
        let want: Vec<u64> = (0..REQUESTS).collect();
        if seqs != want {
            fail(format!(
                "client {client} got replies {seqs:?}, wanted {want:?}"
            ));
        }
        println!("client {client}: {} replies in order", replies.len());
    }
    if clients.iter().any(|c| c.alive()) {
        fail("a client did not finish".to_string());
    }
    match server.result::<u64>() {
        Some(served) if served == CLIENTS as u64 * REQUESTS => {
            println!("server: served {served} requests")
        }
        other => fail(format!("the server did not finish its work: {other:?}")),
    }
    // Each request costs the server 250 ticks and each client 120 between requests: with a
    // budget of 100 the tasklets are cut many times.
    if interrupts < CLIENTS as u64 * REQUESTS {
        fail(format!(
            "only {interrupts} interrupts: the budget did not preempt"
        ));
    }
    println!("autoschedule: {interrupts} interrupts with a budget of {BUDGET} ticks; all replies in order");
}
