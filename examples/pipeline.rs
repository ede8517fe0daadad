//! A producer → filter → consumer pipeline, ported from the classic Stackless program: three
//! tasklets joined by two channels; the producer closes its channel after its last value, the
//! filter and the consumer iterate over theirs until it is closed and drained.
//!
//! ```text
//! cargo run --release --example pipeline
//! ```
//!
//! Stackless:
//!
//! ```text
//! def producer(out):
//!     for n in range(2, 51): out.send(n)
//!     out.close()
//! def primes(inp, out):
//!     held = None
//!     for n in inp:                        # ends when inp is closed and drained
//!         if is_prime(n):
//!             if held is not None: out.send(held)
//!             held = n
//!     if held is not None: out.send(held)
//!     out.close()
//! def consumer(inp):
//!     return list(inp)
//! numbers, primes = stackless.channel(), stackless.channel()
//! numbers.preference = primes.preference = 1
//! ```
//!
//! `close()` wakes nobody, in Stackless and here: a tasklet already blocked in `receive` on a
//! channel that is then closed stays blocked. So a stage closes its output *right after* its
//! last send, and each channel prefers its sender (`preference = 1`): after the hand-off the
//! sender runs on and closes the channel before the receiver asks for the next value.
//! Iteration then sees `closing` with no sender waiting and ends. The filter cannot know which
//! prime is its last until its input ends, so it holds one back: it sends a prime once it has
//! found the next one, and the held one when its input is drained, then closes at once.
//!
//! Running it is a test: it asserts what the consumer got and that both channels end closed.

use std::cell::RefCell;
use std::rc::Rc;

use microthread::{scheduler, spawn, Channel};

fn is_prime(n: u32) -> bool {
    n >= 2 && (2..n).take_while(|d| d * d <= n).all(|d| n % d != 0)
}

fn main() -> std::io::Result<()> {
    const LAST: u32 = 50;
    let numbers = Channel::<u32>::new();
    let primes = Channel::<u32>::new();
    numbers.set_preference(1);
    primes.set_preference(1);
    // Who did what, in the order it happened (all three run on this thread).
    let log = Rc::new(RefCell::new(Vec::new()));

    let out = numbers.clone();
    let l = log.clone();
    spawn(move || {
        for n in 2..=LAST {
            out.send(n).expect("the filter takes every number");
        }
        out.close();
        l.borrow_mut()
            .push(format!("producer: sent 2..={LAST}, closed"));
    })?;

    let (inp, out, l) = (numbers.clone(), primes.clone(), log.clone());
    spawn(move || {
        let mut seen = 0;
        let mut held = None;
        for n in inp.iter() {
            let n = n.expect("nothing is thrown into the pipeline");
            seen += 1;
            if is_prime(n) {
                if let Some(p) = held.replace(n) {
                    out.send(p).expect("the consumer takes every prime");
                }
            }
        }
        if let Some(last) = held {
            out.send(last).expect("the consumer takes the last prime");
        }
        out.close();
        l.borrow_mut()
            .push(format!("filter: saw {seen} numbers, closed"));
        seen
    })?;

    let (inp, l) = (primes.clone(), log.clone());
    let consumer = spawn(move || {
        let got: Vec<u32> = inp.iter().map(|p| p.unwrap()).collect();
        l.borrow_mut()
            .push(format!("consumer: got {} primes", got.len()));
        got
    })?;

    // Runs the three until none is runnable.
    scheduler::run().expect("no tasklet panics");

    for line in log.borrow().iter() {
        println!("{line}");
    }
    let got = consumer
        .result::<Vec<u32>>()
        .expect("the consumer returned");
    println!("primes up to {LAST}: {got:?}");

    let expected: Vec<u32> = (2..=LAST).filter(|&n| is_prime(n)).collect();
    assert_eq!(got, expected);
    assert_eq!(got.len(), 15);
    assert!(!consumer.alive());
    assert!(
        numbers.closed() && primes.closed(),
        "both channels end closed and drained"
    );
    assert_eq!((numbers.balance(), primes.balance()), (0, 0));
    assert_eq!(
        *log.borrow(),
        [
            format!("producer: sent 2..={LAST}, closed"),
            "filter: saw 49 numbers, closed".to_string(),
            "consumer: got 15 primes".to_string(),
        ],
        "each stage closes its output after its input is closed and drained"
    );
    assert_eq!(scheduler::runcount(), 1, "only main is left");
    println!("ok");
    Ok(())
}
