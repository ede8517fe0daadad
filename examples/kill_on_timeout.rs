//! Kill on timeout: a supervisor tasklet gives its workers a budget of scheduler rounds and
//! kills those that have not finished by then. A killed worker unwinds from the call it is
//! suspended in (`schedule`, a channel's `receive`) with every destructor on its stack run;
//! one of them catches the [`TaskletExit`] to clean up, as a Stackless `except TaskletExit:`
//! block does, and lets it go on.
//!
//! ```text
//! cargo run --release --example kill_on_timeout
//! ```
//!
//! Stackless:
//!
//! ```text
//! def slow():
//!     try:
//!         while True: work(); stackless.schedule()
//!     except TaskletExit:
//!         log("slow: caught TaskletExit"); raise
//! def supervisor(workers, budget):
//!     for _ in range(budget):
//!         if not any(w.alive for w in workers): return
//!         stackless.schedule()
//!     for w in workers:
//!         if w.alive: w.kill()
//! ```
//!
//! A budget of wall-clock time works the same way (the supervisor compares
//! `Instant::elapsed` with its deadline at each of its rounds). What this cannot stop is a
//! worker that never switches: there is no preemption yet (issue 9).
//!
//! Running it is a test: it asserts which workers finished, which were killed, and that the
//! killed ones' destructors and `TaskletExit` handler ran, in order.

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use microthread::{scheduler, spawn, Channel, Tasklet, TaskletExit};

type Log = Rc<RefCell<Vec<String>>>;

fn say(log: &Log, line: impl Into<String>) {
    let line = line.into();
    println!("{line}");
    log.borrow_mut().push(line);
}

/// Logs when it is dropped: stands for whatever a worker must release (a file, a lock).
struct Cleanup(&'static str, Log);

impl Drop for Cleanup {
    fn drop(&mut self) {
        say(&self.1, format!("{}: cleanup ran", self.0));
    }
}

/// Rounds of the scheduler the supervisor waits before it kills.
const BUDGET: u32 = 10;

fn main() -> std::io::Result<()> {
    let log: Log = Rc::default();

    // Finishes in 3 rounds.
    let l = log.clone();
    let quick = spawn(move || {
        let _cleanup = Cleanup("quick", l.clone());
        let mut sum = 0u64;
        for step in 1..=3 {
            sum += step;
            scheduler::schedule().unwrap();
        }
        say(&l, "quick: done");
        sum
    })?;

    // Would need a million rounds; catches the kill to clean up, then lets it go on.
    let l = log.clone();
    let slow = spawn(move || {
        let _cleanup = Cleanup("slow", l.clone());
        let work = panic::catch_unwind(AssertUnwindSafe(|| {
            let mut steps = 0u64;
            while steps < 1_000_000 {
                steps += 1;
                // A kill arrives here: `schedule` does not return, it unwinds.
                scheduler::schedule().unwrap();
            }
            steps
        }));
        match work {
            Ok(steps) => steps,
            Err(payload) if payload.is::<TaskletExit>() => {
                say(&l, "slow: caught TaskletExit");
                // Re-raised: the tasklet ends silently, as a killed one does. (Returning
                // instead would end it normally, with a result.)
                panic::resume_unwind(payload)
            }
            Err(other) => panic::resume_unwind(other),
        }
    })?;

    // Waits for a message that never comes; the kill takes it out of the channel.
    let nobody_sends = Channel::<u32>::new();
    let (rx, l) = (nobody_sends.clone(), log.clone());
    let stuck = spawn(move || {
        let _cleanup = Cleanup("stuck", l);
        rx.receive()
    })?;

    let workers: Vec<(&'static str, Tasklet)> = vec![
        ("quick", quick.clone()),
        ("slow", slow.clone()),
        ("stuck", stuck.clone()),
    ];
    let l = log.clone();
    let supervisor = spawn(move || {
        let mut rounds = 0;
        while rounds < BUDGET && workers.iter().any(|(_, w)| w.alive()) {
            scheduler::schedule().unwrap();
            rounds += 1;
        }
        let mut killed = Vec::new();
        for (name, w) in &workers {
            if w.alive() {
                say(
                    &l,
                    format!("supervisor: {name} not done after {rounds} rounds: kill"),
                );
                // Switches to the worker now; it unwinds, and we go on when our turn comes.
                w.kill().unwrap();
                assert!(!w.alive());
                killed.push(*name);
            }
        }
        killed
    })?;

    // A kill is silent: no error reaches run().
    scheduler::run().expect("nobody panics");

    assert_eq!(quick.result::<u64>(), Some(6));
    assert_eq!(slow.result::<u64>(), None, "killed: no result");
    assert!(stuck.result::<microthread::Result<u32>>().is_none());
    assert!(!quick.alive() && !slow.alive() && !stuck.alive());
    assert_eq!(
        supervisor.result::<Vec<&str>>(),
        Some(vec!["slow", "stuck"])
    );
    assert_eq!(
        nobody_sends.balance(),
        0,
        "the killed receiver left the channel"
    );
    assert_eq!(
        *log.borrow(),
        [
            "quick: done",
            "quick: cleanup ran",
            &format!("supervisor: slow not done after {BUDGET} rounds: kill"),
            "slow: caught TaskletExit",
            "slow: cleanup ran",
            &format!("supervisor: stuck not done after {BUDGET} rounds: kill"),
            "stuck: cleanup ran",
        ]
    );
    assert_eq!(scheduler::runcount(), 1, "only main is left");
    println!("ok");
    Ok(())
}
