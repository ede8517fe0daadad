//! The reference model: plain data following the pseudo-code of Appendix C (see the crate
//! docs of `tests/prop_scheduler.rs`). This file holds the model's state and its execution
//! loop (a step, a resume, the trace); the operations are in `model/ring.rs` (the run ring,
//! `switch`, `tasklet_end`, the watchdogs and the tasklet methods), `model/channels.rs`
//! (`channel_action`) and `model/lifecycle.rs` (bound tasklets, setup, unbind, bind and the
//! error handler).

use std::collections::VecDeque;

use super::steps::{
    flags, handler_panic, is_fatal, thrown_payload, value, Ev, Op, Out, Program, E, HANDLER_STEP,
    MAX_TASKLETS,
};

/// The run ring, `switch`, `tasklet_end`, the watchdogs and the tasklet methods.
#[path = "model/ring.rs"]
mod ring;

/// `channel_action`: rendezvous, blocking and the channel settings' effects.
#[path = "model/channels.rs"]
mod channels;

/// Bound tasklets, setup, unbind, bind and the error handler.
#[path = "model/lifecycle.rs"]
mod lifecycle;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Life {
    /// Bound, not alive (`Tasklet::bound`, `bind`).
    Bound,
    New,
    Started,
    Dead,
}

impl Life {
    fn alive(self) -> bool {
        matches!(self, Life::New | Life::Started)
    }
}

#[derive(Clone, Debug)]
enum Pend {
    Kill,
    Err(E),
}

#[derive(Clone, Debug)]
enum Msg {
    Value(u32),
    Thrown(String),
}

impl Msg {
    fn back(&self) -> String {
        match self {
            Msg::Value(v) => v.to_string(),
            Msg::Thrown(p) => p.clone(),
        }
    }
}

/// A channel operation in progress; a send carries its items (one unless a sequence).
#[derive(Clone, Debug)]
enum ChOp {
    Receive(usize),
    Send {
        ch: usize,
        items: Vec<Msg>,
        i: usize,
        seq: bool,
    },
}

/// The call a suspended tasklet is in.
#[derive(Clone, Debug)]
enum Susp {
    /// `schedule`, `schedule_remove`, `t.run()`, `t.switch()`, non-pending kill/throw.
    Plain,
    /// `scheduler::run()`.
    Run,
    /// Blocked in a channel operation.
    Blocked(ChOp),
    /// Switched away after a rendezvous (preference or `schedule_all`), with what it got.
    Rendezvous(ChOp, Option<Msg>),
}

struct MTasklet {
    script: usize,
    pc: usize,
    life: Life,
    /// +1 sending, -1 receiving, on channel `on`.
    blocked: i8,
    on: usize,
    pending: Option<Pend>,
    susp: Option<Susp>,
    /// The transfer slot of a blocked channel operation.
    slot: Option<Msg>,
}

impl MTasklet {
    fn new(script: usize, life: Life) -> MTasklet {
        MTasklet {
            script,
            pc: 0,
            life,
            blocked: 0,
            on: 0,
            pending: None,
            susp: None,
            slot: None,
        }
    }
}

#[derive(Default)]
struct MChannel {
    queue: VecDeque<usize>,
    balance: isize,
    preference: i8,
    schedule_all: bool,
    closing: bool,
}

/// What the step just executed did to the running tasklet.
enum Flow {
    /// It completed; the tasklet goes on with its next step.
    Next,
    /// The tasklet switched away or ended; `running` is the one to resume.
    Away,
}

pub struct Model<'p> {
    prog: &'p Program,
    ts: Vec<MTasklet>,
    /// The run ring; its front is `current`.
    ring: VecDeque<usize>,
    /// The tasklet executing (normally the ring's front).
    running: usize,
    /// Tasklets inside `scheduler::run()`, innermost last.
    watchdogs: Vec<usize>,
    chans: Vec<MChannel>,
    trace: Vec<Ev>,
    /// The error handler's kind (see `Op::ErrorHandler`).
    handler: u8,
}

impl<'p> Model<'p> {
    pub fn new(prog: &'p Program) -> Model<'p> {
        Model {
            prog,
            ts: vec![MTasklet::new(0, Life::Started)],
            ring: VecDeque::from([0]),
            running: 0,
            watchdogs: Vec::new(),
            chans: (0..prog.channels)
                .map(|_| MChannel {
                    preference: -1,
                    ..MChannel::default()
                })
                .collect(),
            trace: Vec::new(),
            handler: 0,
        }
    }

    // ---------- execution ----------

    fn snapshot(&self) -> Vec<(isize, Vec<usize>)> {
        self.chans
            .iter()
            .map(|c| (c.balance, c.queue.iter().copied().collect()))
            .collect()
    }

    fn states(&self) -> Vec<String> {
        (0..self.ts.len())
            .map(|t| {
                let alive = self.ts[t].life.alive();
                let blocked = self.ts[t].blocked != 0;
                let scheduled = self.in_ring(t) || blocked;
                flags(
                    alive,
                    scheduled,
                    blocked,
                    alive && !scheduled,
                    self.ring.front() == Some(&t),
                )
            })
            .collect()
    }

    /// Records the outcome of the running tasklet's current step, then either moves it on to
    /// its next step or, for a fatal thrown error, makes it panic.
    fn out(&mut self, me: usize, out: Out) -> Flow {
        let fatal = out.error().and_then(is_fatal);
        self.trace.push(Ev {
            tasklet: me,
            step: self.ts[me].pc,
            out,
            runcount: self.ring.len(),
            channels: self.snapshot(),
        });
        if let (Some(msg), true) = (fatal, me != 0) {
            return self.die(me, msg);
        }
        self.ts[me].pc += 1;
        Flow::Next
    }

    /// The running tasklet resumes from the call it was suspended in.
    fn resume(&mut self, me: usize, susp: Susp) -> Flow {
        let r = match self.ts[me].pending.take() {
            Some(Pend::Kill) => {
                // TaskletExit unwinds from the call (run() pops its watchdogs on the way).
                if let Susp::Run = susp {
                    self.pop_watchdogs(me);
                }
                return self.end(me, None);
            }
            Some(Pend::Err(e)) => Err(e),
            None => Ok(()),
        };
        let unit = |r: Result<(), E>| match r {
            Ok(()) => Out::Done,
            Err(e) => Out::Err(e),
        };
        match susp {
            Susp::Plain => self.out(me, unit(r)),
            Susp::Run => {
                self.pop_watchdogs(me);
                self.out(me, unit(r))
            }
            Susp::Blocked(op) => {
                let slot = self.ts[me].slot.take();
                let sending = matches!(op, ChOp::Send { .. });
                let res = match r {
                    Ok(()) => Ok(slot),
                    Err(e) => match slot {
                        // The operation completed before the error came: keep its result,
                        // the error waits for the next suspension point.
                        Some(Msg::Value(v)) if !sending => {
                            self.set_pending(me, Pend::Err(e));
                            Ok(Some(Msg::Value(v)))
                        }
                        // A sender whose value was taken gets the error without it.
                        other => Err((e, other)),
                    },
                };
                self.channel_done(me, op, res)
            }
            Susp::Rendezvous(op, got) => {
                // The error wins over what the rendezvous received, as in Stackless.
                let res = match r {
                    Ok(()) => Ok(got),
                    Err(e) => Err((e, got)),
                };
                self.channel_done(me, op, res)
            }
        }
    }

    fn exec(&mut self, me: usize, op: Op) -> Flow {
        assert_eq!(
            self.ring.front(),
            Some(&me),
            "model: the running tasklet is current"
        );
        let step = self.ts[me].pc;
        let target = |m: &Self, n: usize| n % m.ts.len();
        let unit = |r: Result<(), E>| match r {
            Ok(()) => Out::Done,
            Err(e) => Out::Err(e),
        };
        match op {
            Op::Log => self.out(me, Out::Done),
            Op::Query => {
                let s = self.states();
                self.out(me, Out::State(s))
            }
            Op::Schedule => {
                let next = if self.ring.len() > 1 {
                    self.ring[1]
                } else {
                    me
                };
                self.switch(me, Some(next), Susp::Plain)
            }
            Op::ScheduleRemove => {
                let next = if self.ring.len() > 1 {
                    Some(self.ring[1])
                } else {
                    None
                };
                self.ring_remove(me);
                self.switch(me, next, Susp::Plain)
            }
            Op::Spawn(n) | Op::New(n) => {
                if self.ts.len() >= MAX_TASKLETS {
                    return self.out(me, Out::Cap);
                }
                let t = self.ts.len();
                self.ts
                    .push(MTasklet::new(self.prog.script_of(n), Life::New));
                if matches!(op, Op::Spawn(_)) {
                    self.ring_insert(t);
                }
                self.out(me, Out::Made(t))
            }
            Op::Insert(n) => {
                let r = self.insert(target(self, n));
                self.out(me, unit(r))
            }
            Op::Remove(n) => {
                let r = self.remove(target(self, n));
                self.out(me, unit(r))
            }
            Op::Run(n) => {
                let t = target(self, n);
                match self.insert(t) {
                    Ok(()) => self.switch(me, Some(t), Susp::Plain),
                    Err(e) => self.out(me, Out::Err(e)),
                }
            }
            Op::Switch(n) => {
                let t = target(self, n);
                if t == me {
                    return self.out(me, Out::Done);
                }
                match self.insert(t) {
                    Ok(()) => {
                        self.ring_remove(me);
                        self.switch(me, Some(t), Susp::Plain)
                    }
                    Err(e) => self.out(me, Out::Err(e)),
                }
            }
            Op::Kill { target: n, pending } => {
                let t = target(self, n);
                if t == 0 {
                    self.out(me, Out::Skip)
                } else if t == me {
                    // Killing oneself unwinds at once, pending or not.
                    self.end(me, None)
                } else if !self.ts[t].life.alive() {
                    self.out(me, Out::Done)
                } else {
                    self.deliver(me, t, Pend::Kill, pending)
                }
            }
            Op::Throw {
                target: n,
                fatal,
                pending,
            } => {
                let t = target(self, n);
                let p = thrown_payload(me, step, fatal);
                if t == me {
                    self.out(me, Out::Err(E::Thrown(p)))
                } else if !self.ts[t].life.alive() {
                    self.out(me, Out::Err(E::ThrowDead))
                } else {
                    self.deliver(me, t, Pend::Err(E::Thrown(p)), pending)
                }
            }
            Op::RunScheduler => {
                self.watchdogs.push(me);
                self.ring_remove(me);
                let next = self.ring.front().copied();
                self.switch(me, next, Susp::Run)
            }
            Op::Return if me != 0 => self.end(me, None),
            Op::Panic if me != 0 => self.die(me, format!("boom{me}.{step}")),
            Op::Return | Op::Panic => self.out(me, Out::Skip),
            Op::Send(c) => {
                let ch = self.prog.channel(c);
                let items = vec![Msg::Value(value(me, step, 0))];
                self.channel_action(
                    me,
                    ChOp::Send {
                        ch,
                        items,
                        i: 0,
                        seq: false,
                    },
                )
            }
            Op::SendThrow { ch: c, fatal } => {
                let ch = self.prog.channel(c);
                let items = vec![Msg::Thrown(thrown_payload(me, step, fatal))];
                self.channel_action(
                    me,
                    ChOp::Send {
                        ch,
                        items,
                        i: 0,
                        seq: false,
                    },
                )
            }
            Op::SendSeq(c, n) => {
                let ch = self.prog.channel(c);
                let items = (0..n).map(|i| Msg::Value(value(me, step, i))).collect();
                self.channel_action(
                    me,
                    ChOp::Send {
                        ch,
                        items,
                        i: 0,
                        seq: true,
                    },
                )
            }
            Op::Receive(c) => {
                let ch = self.prog.channel(c);
                self.channel_action(me, ChOp::Receive(ch))
            }
            Op::Close(c) => {
                let ch = self.prog.channel(c);
                self.chans[ch].closing = true;
                self.out(me, Out::Done)
            }
            Op::Open(c) => {
                let ch = self.prog.channel(c);
                self.chans[ch].closing = false;
                self.out(me, Out::Done)
            }
            Op::Preference(c, p) => {
                let ch = self.prog.channel(c);
                self.chans[ch].preference = p.signum();
                self.out(me, Out::Done)
            }
            Op::ScheduleAll(c, on) => {
                let ch = self.prog.channel(c);
                self.chans[ch].schedule_all = on;
                self.out(me, Out::Done)
            }
            Op::Bound(..)
            | Op::Setup(..)
            | Op::Unbind(..)
            | Op::Bind(..)
            | Op::ErrorHandler(..) => self.exec_lifecycle(me, op),
        }
    }

    /// Runs the program until main's script is done; returns the trace, ending with main's
    /// final query.
    pub fn run(mut self) -> Vec<Ev> {
        loop {
            let me = self.running;
            let flow = if self.ts[me].life == Life::New {
                // A tasklet's first run: a pending kill or error ends it at once.
                self.ts[me].life = Life::Started;
                match self.ts[me].pending.take() {
                    Some(Pend::Kill) => self.end(me, None),
                    // Its uncaught error, as if raised at its first instruction.
                    Some(Pend::Err(e)) => {
                        let msg = match e {
                            E::Thrown(p) => p,
                            _ => "?".to_string(),
                        };
                        self.die(me, msg)
                    }
                    None => Flow::Next,
                }
            } else if let Some(s) = self.ts[me].susp.take() {
                self.resume(me, s)
            } else {
                assert_eq!(me, 0, "model: only main starts without a suspension");
                Flow::Next
            };
            if let Flow::Away = flow {
                continue;
            }
            loop {
                let script = &self.prog.scripts[self.ts[me].script];
                let Some(op) = script.get(self.ts[me].pc).cloned() else {
                    if me == 0 {
                        return self.finish();
                    }
                    self.end(me, None);
                    break;
                };
                if let Flow::Away = self.exec(me, op) {
                    break;
                }
            }
        }
    }

    fn finish(mut self) -> Vec<Ev> {
        let s = self.states();
        self.trace.push(Ev {
            tasklet: 0,
            step: self.ts[0].pc,
            out: Out::State(s),
            runcount: self.ring.len(),
            channels: self.snapshot(),
        });
        self.trace
    }
}
