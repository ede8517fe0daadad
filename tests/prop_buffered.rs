//! Model-based property test of `BufferedChannel`: random programs of sends, receives,
//! `send_throw`s, closes, opens and kills on one channel of capacity 0 to 3, made by main and
//! by tasklets, against a reference model that is nothing but a `VecDeque` of buffered
//! messages and the FIFO queues of blocked senders (with their messages) and blocked
//! receivers.
//!
//! Each step is one operation. A tasklet step spawns a tasklet that makes the one operation
//! and logs its outcome, then runs the scheduler until every tasklet is blocked or done; a main
//! step makes the operation in main (which, with every other tasklet blocked, fails with the
//! deadlock error where it would block), then runs the scheduler the same way. So after every
//! step the channel is quiet, and the model only needs to know what the step changed: the
//! outcomes it logged (who got which value, whose send completed, who failed how), compared
//! as a set, since who of the woken runs first is the scheduler's business, not the
//! channel's; then the buffer's length, the balance, the queue of blocked tasklets in order,
//! and `closing` / `closed`. Values are unique, so a value out of FIFO order, lost or
//! duplicated shows in the outcomes.
//!
//! Cases run one at a time, each on a fresh thread (the deadlock rule must see no other
//! thread with a scheduler).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use microthread::channel::BufferedChannel;
use microthread::scheduler::{self, spawn};
use microthread::{Error, Tasklet};
use proptest::prelude::*;

/// One step of a program.
#[derive(Clone, Debug)]
enum Op {
    /// A new tasklet sends a fresh value.
    Send,
    /// A new tasklet sends a fresh error (`send_throw`).
    Throw,
    /// A new tasklet receives once.
    Receive,
    /// Main sends a fresh value.
    MainSend,
    /// Main receives once.
    MainReceive,
    Close,
    Open,
    /// Kills the blocked tasklet at this index (modulo their number) of the queue.
    Kill(usize),
}

/// A message: a value, or an error whose payload is a number (both unique in a program).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Message {
    Value(u32),
    Error(u32),
}

/// What an operation ended with, as the tasklet (0: main, else the step number) logged it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Sent(usize),
    Got(usize, Message),
    Closed(usize),
    Deadlock(usize),
}

/// What one step left behind: its outcomes (sorted) and the channel's state.
#[derive(Debug, PartialEq, Eq)]
struct After {
    outcomes: Vec<Outcome>,
    len: usize,
    balance: isize,
    /// Blocked tasklets, head first, by the step number that made them.
    queue: Vec<usize>,
    closing: bool,
    closed: bool,
}

/// The reference model.
struct Model {
    capacity: usize,
    buffer: VecDeque<Message>,
    senders: VecDeque<(usize, Message)>,
    receivers: VecDeque<usize>,
    closing: bool,
}

impl Model {
    fn send(&mut self, who: usize, m: Message, main: bool, out: &mut Vec<Outcome>) {
        if let Some(r) = self.receivers.pop_front() {
            out.extend([Outcome::Got(r, m), Outcome::Sent(who)]);
        } else if self.closing {
            out.push(Outcome::Closed(who));
        } else if self.buffer.len() < self.capacity {
            self.buffer.push_back(m);
            out.push(Outcome::Sent(who));
        } else if main {
            out.push(Outcome::Deadlock(who));
        } else {
            self.senders.push_back((who, m));
        }
    }

    fn receive(&mut self, who: usize, main: bool, out: &mut Vec<Outcome>) {
        if let Some(m) = self.buffer.pop_front() {
            out.push(Outcome::Got(who, m));
            if let Some((s, sm)) = self.senders.pop_front() {
                self.buffer.push_back(sm);
                out.push(Outcome::Sent(s));
            }
        } else if let Some((s, sm)) = self.senders.pop_front() {
            out.extend([Outcome::Got(who, sm), Outcome::Sent(s)]);
        } else if self.closing {
            out.push(Outcome::Closed(who));
        } else if main {
            out.push(Outcome::Deadlock(who));
        } else {
            self.receivers.push_back(who);
        }
    }

    fn queue(&self) -> Vec<usize> {
        let senders = self.senders.iter().map(|s| s.0);
        senders.chain(self.receivers.iter().copied()).collect()
    }

    fn step(&mut self, n: usize, op: &Op) -> After {
        let mut out = Vec::new();
        match *op {
            Op::Send => self.send(n, Message::Value(n as u32), false, &mut out),
            Op::Throw => self.send(n, Message::Error(n as u32), false, &mut out),
            Op::Receive => self.receive(n, false, &mut out),
            Op::MainSend => self.send(0, Message::Value(n as u32), true, &mut out),
            Op::MainReceive => self.receive(0, true, &mut out),
            Op::Close => self.closing = true,
            Op::Open => self.closing = false,
            Op::Kill(i) => {
                let q = self.queue();
                if !q.is_empty() {
                    let victim = q[i % q.len()];
                    self.senders.retain(|s| s.0 != victim);
                    self.receivers.retain(|&r| r != victim);
                }
            }
        }
        out.sort();
        let balance = self.senders.len() as isize - self.receivers.len() as isize;
        After {
            outcomes: out,
            len: self.buffer.len(),
            balance,
            queue: self.queue(),
            closing: self.closing,
            closed: self.closing && balance == 0 && self.buffer.is_empty(),
        }
    }
}

type Log = Rc<RefCell<Vec<Outcome>>>;

/// The outcome of a send by `who`.
fn sent<T>(who: usize, r: Result<(), microthread::SendError<T>>) -> Outcome {
    match r {
        Ok(()) => Outcome::Sent(who),
        Err(e) => failed(who, e.error),
    }
}

fn failed(who: usize, e: Error) -> Outcome {
    match e {
        Error::ClosedChannel => Outcome::Closed(who),
        Error::Deadlock => Outcome::Deadlock(who),
        e => panic!("unexpected error for {who}: {e}"),
    }
}

/// The outcome of a receive by `who`.
fn got(who: usize, r: microthread::Result<u32>) -> Outcome {
    match r {
        Ok(v) => Outcome::Got(who, Message::Value(v)),
        Err(Error::Thrown(p)) => Outcome::Got(who, Message::Error(*p.downcast::<u32>().unwrap())),
        Err(e) => failed(who, e),
    }
}

/// Runs the program for real: what each step left behind.
fn run_real(capacity: usize, ops: &[Op]) -> Vec<After> {
    let ch = BufferedChannel::<u32>::with_capacity(capacity);
    let log: Log = Rc::default();
    // The tasklets made by the steps, by step number (to name the queue's ids).
    let mut tasklets: Vec<(usize, Tasklet)> = Vec::new();
    let mut afters = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let n = i + 1;
        let (c, l) = (ch.clone(), log.clone());
        let spawned = match *op {
            Op::Send => Some(spawn(move || {
                let o = sent(n, c.send(n as u32));
                l.borrow_mut().push(o);
            })),
            Op::Throw => Some(spawn(move || {
                let o = sent(n, c.send_throw(Box::new(n as u32)));
                l.borrow_mut().push(o);
            })),
            Op::Receive => Some(spawn(move || {
                let o = got(n, c.receive());
                l.borrow_mut().push(o);
            })),
            Op::MainSend => {
                let o = sent(0, ch.send(n as u32));
                log.borrow_mut().push(o);
                None
            }
            Op::MainReceive => {
                let o = got(0, ch.receive());
                log.borrow_mut().push(o);
                None
            }
            Op::Close => {
                ch.close();
                None
            }
            Op::Open => {
                ch.open();
                None
            }
            Op::Kill(k) => {
                let q = ch.queue_tasklets();
                if !q.is_empty() {
                    q[k % q.len()].kill().unwrap();
                }
                None
            }
        };
        if let Some(t) = spawned {
            tasklets.push((n, t.unwrap()));
        }
        scheduler::run().unwrap();
        let ids = ch.queue();
        let queue = ids
            .iter()
            .map(|id| tasklets.iter().find(|t| t.1.id() == *id).unwrap().0)
            .collect();
        let mut outcomes = std::mem::take(&mut *log.borrow_mut());
        outcomes.sort();
        afters.push(After {
            outcomes,
            len: ch.len(),
            balance: ch.balance(),
            queue,
            closing: ch.closing(),
            closed: ch.closed(),
        });
    }
    // Leave nothing blocked behind (their stacks unwind here, on this thread).
    for t in ch.queue_tasklets() {
        t.kill().unwrap();
    }
    afters
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::Send),
        1 => Just(Op::Throw),
        6 => Just(Op::Receive),
        2 => Just(Op::MainSend),
        2 => Just(Op::MainReceive),
        1 => Just(Op::Close),
        1 => Just(Op::Open),
        1 => any::<usize>().prop_map(Op::Kill),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn buffered_channel_programs_follow_the_model(
        capacity in 0..=3usize,
        ops in prop::collection::vec(op(), 1..40),
    ) {
        let mut model = Model {
            capacity,
            buffer: VecDeque::new(),
            senders: VecDeque::new(),
            receivers: VecDeque::new(),
            closing: false,
        };
        let expected: Vec<After> = ops.iter().enumerate().map(|(i, op)| model.step(i + 1, op)).collect();
        let ops2 = ops.clone();
        let actual = std::thread::spawn(move || run_real(capacity, &ops2)).join().unwrap();
        for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
            prop_assert_eq!(a, e, "step {} ({:?}) differs (real left, model right)", i + 1, ops[i]);
        }
    }
}
