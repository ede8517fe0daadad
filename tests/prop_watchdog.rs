//! Model-based property test of the tick watchdog (reference §2.6–2.7): random tasklet
//! programs of `ticks(k)`, `schedule()` and `set_atomic(on)` steps run under `run_with` with
//! random budgets, hard or soft, timeslice or total, for real and in a small model of the
//! ring, the tick counter and Stackless's interrupt rules. Main calls `run_with` again and
//! again, re-inserting each returned victim, until every tasklet has finished. The two traces
//! (each step as it starts, each `run_with` result: which tasklet it returned, or none) must
//! be equal.
//!
//! The model is Stackless's (Appendix C `interrupt()`, `set_atomic`, `soft_irq_redirect`),
//! in this crate's tick convention (a budget of `n` lets `n` ticks pass; the next safe point
//! interrupts):
//! - a safe point whose ticks reach the deadline calls the interrupt; so does every safe point
//!   of a tasklet with a hard interrupt pending (Stackless: `set_atomic(False)` makes the next
//!   instruction fire; here the next safe point, with no safe point in between);
//! - soft mode or `atomic` defer it: the tasklet's `pending_irq` is set, and the budget
//!   restarts whenever it has run out again (Stackless restarts its watermark at every
//!   deferral: `tick_watermark = tick_counter + interval`);
//! - `pending_irq` belongs to the tasklet and outlives the `run` that set it, until it fires
//!   or `set_atomic(false)` clears it where no watchdog is active (a run without a budget);
//! - a soft-pending tasklet's next switch goes to the watchdog, put just before the tasklet
//!   that would have run.

use std::cell::RefCell;
use std::rc::Rc;

use microthread::scheduler::{self, run_with, spawn, RunOptions};
use microthread::Tasklet;
use proptest::prelude::*;

#[derive(Debug, Clone, Copy)]
enum Step {
    Ticks(u64),
    Schedule,
    /// `current().set_atomic(on)`: not a safe point.
    Atomic(bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ev {
    /// Tasklet (1-based), step index, as the step starts.
    Step(usize, usize),
    /// What a `run_with` returned: the victim's number, or 0 for none.
    Ret(usize),
}

#[derive(Debug, Clone, Copy)]
struct Opts {
    ticks: u64,
    soft: bool,
    total: bool,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (1u64..=6).prop_map(Step::Ticks),
        2 => Just(Step::Schedule),
        1 => any::<bool>().prop_map(Step::Atomic),
    ]
}

fn opts() -> impl Strategy<Value = Opts> {
    // 0: no budget, a plain run (no watchdog: soft and total mean nothing then).
    (0u64..=8, any::<bool>(), any::<bool>()).prop_map(|(ticks, soft, total)| Opts {
        ticks,
        soft,
        total,
    })
}

const MAX_RUNS: usize = 400;

fn real(progs: &[Vec<Step>], runs: &[Opts]) -> Vec<Ev> {
    let log = Rc::new(RefCell::new(Vec::new()));
    let ts: Vec<Tasklet> = progs
        .iter()
        .enumerate()
        .map(|(i, prog)| {
            let (log, prog) = (log.clone(), prog.clone());
            spawn(move || {
                for (pc, s) in prog.iter().enumerate() {
                    log.borrow_mut().push(Ev::Step(i + 1, pc));
                    match *s {
                        Step::Ticks(k) => scheduler::ticks(k).unwrap(),
                        Step::Schedule => scheduler::schedule().unwrap(),
                        Step::Atomic(on) => {
                            scheduler::current().set_atomic(on);
                        }
                    }
                }
            })
            .unwrap()
        })
        .collect();
    for r in 0..MAX_RUNS {
        if ts.iter().all(|t| !t.alive()) {
            break;
        }
        let o = runs[r % runs.len()];
        let v = run_with(RunOptions::new().ticks(o.ticks).soft(o.soft).total(o.total)).unwrap();
        let n = v
            .as_ref()
            .map(|v| ts.iter().position(|t| t == v).unwrap() + 1)
            .unwrap_or(0);
        log.borrow_mut().push(Ev::Ret(n));
        if let Some(v) = v {
            v.insert().unwrap();
        }
    }
    for t in &ts {
        if t.alive() {
            t.kill().unwrap();
        }
    }
    let out = log.borrow().clone();
    out
}

/// The model. The ring is a `Vec` whose element 0 is `current`; 0 is main.
struct Model {
    ring: Vec<usize>,
    pc: Vec<usize>,
    /// Interrupted inside `schedule()`'s safe point: on resume it does the switch.
    in_schedule: Vec<bool>,
    pending: Vec<bool>,
    atomic: Vec<bool>,
    ticks: u64,
    deadline: u64,
    /// Whether the current run has a budget (a watchdog is active).
    budget: bool,
    /// `set_atomic(false)` of the running tasklet with a hard interrupt pending: its next
    /// safe point calls the interrupt (Stackless's `slp_check_pending_irq`).
    forced: bool,
    log: Vec<Ev>,
}

enum Out {
    Victim(usize),
    None,
}

impl Model {
    fn restart(&mut self, o: &Opts) {
        if !o.total {
            self.deadline = self.ticks + o.ticks;
        }
    }

    /// Whether a safe point of `t` whose last tick is `last` calls the interrupt.
    fn due(&mut self, last: u64) -> bool {
        self.budget && (std::mem::take(&mut self.forced) || last >= self.deadline)
    }

    /// The interrupt at a safe point of `t` whose last tick was `last`: true if `t` is
    /// interrupted (hard), false if deferred.
    fn interrupt(&mut self, t: usize, last: u64, o: &Opts) -> bool {
        if o.soft || self.atomic[t] {
            // Stackless's interrupt(): every deferral restarts the budget.
            let _ = last;
            self.deadline = self.ticks + o.ticks;
            self.pending[t] = true;
            return false;
        }
        self.pending[t] = false;
        // Main goes in just before `t` and runs; `run_with` removes `t`.
        let rest: Vec<usize> = self.ring[1..].to_vec();
        self.ring = std::iter::once(0).chain(rest).collect();
        true
    }

    /// Main goes in just before `ring[i]` and runs (a soft interrupt's redirect).
    fn redirect_before(&mut self, i: usize) {
        let mut rot: Vec<usize> = self.ring[i..].to_vec();
        rot.extend_from_slice(&self.ring[..i]);
        self.ring = std::iter::once(0).chain(rot).collect();
    }

    /// `schedule()`'s switch from `t` (ring[0]); Some(out) if `run_with` returns.
    fn schedule_switch(&mut self, t: usize, o: &Opts) -> Option<Out> {
        let ni = if self.ring.len() > 1 { 1 } else { 0 };
        if o.soft && self.pending[t] {
            self.pending[t] = false;
            self.redirect_before(ni);
            return Some(Out::None);
        }
        if ni == 1 {
            self.ring.rotate_left(1);
            self.restart(o);
        }
        None
    }

    fn run_with(&mut self, o: &Opts, progs: &[Vec<Step>]) -> Out {
        self.budget = o.ticks > 0;
        // No budget: no watchdog, so nothing is ever due and nothing is soft.
        let o = &if self.budget {
            *o
        } else {
            Opts {
                ticks: u64::MAX / 4,
                soft: false,
                total: true,
            }
        };
        self.ticks = 0;
        self.deadline = o.ticks;
        self.forced = false;
        assert_eq!(self.ring[0], 0);
        self.ring.remove(0);
        assert!(!self.ring.is_empty());
        self.restart(o);
        loop {
            let t = self.ring[0];
            if self.in_schedule[t] {
                self.in_schedule[t] = false;
                if let Some(out) = self.schedule_switch(t, o) {
                    return out;
                }
                continue;
            }
            if self.pc[t] == progs[t - 1].len() {
                // A switch: what `set_atomic(false)` forced for `t` is over.
                self.forced = false;
                self.ring.remove(0);
                if self.ring.is_empty() {
                    self.ring.push(0);
                    return Out::None;
                }
                if o.soft && self.pending[t] {
                    self.pending[t] = false;
                    self.redirect_before(0);
                    return Out::None;
                }
                self.restart(o);
                continue;
            }
            let pc = self.pc[t];
            self.log.push(Ev::Step(t, pc));
            self.pc[t] += 1;
            match progs[t - 1][pc] {
                Step::Ticks(k) => {
                    let last = self.ticks + k - 1;
                    self.ticks += k;
                    if self.due(last) && self.interrupt(t, last, o) {
                        return Out::Victim(t);
                    }
                }
                Step::Schedule => {
                    let n = self.ticks;
                    self.ticks += 1;
                    if self.due(n) && self.interrupt(t, n, o) {
                        self.in_schedule[t] = true;
                        return Out::Victim(t);
                    }
                    if let Some(out) = self.schedule_switch(t, o) {
                        return out;
                    }
                }
                Step::Atomic(on) => {
                    self.atomic[t] = on;
                    // Stackless's set_atomic(False): with no watchdog nothing can fire the
                    // pending interrupt; it is cleared.
                    if !on && !self.budget {
                        self.pending[t] = false;
                    }
                    if !on && self.budget && !o.soft && self.pending[t] {
                        self.forced = true;
                    }
                }
            }
        }
    }
}

fn model(progs: &[Vec<Step>], runs: &[Opts]) -> Vec<Ev> {
    let n = progs.len();
    let mut m = Model {
        ring: (0..=n).collect(),
        pc: vec![0; n + 1],
        in_schedule: vec![false; n + 1],
        pending: vec![false; n + 1],
        atomic: vec![false; n + 1],
        ticks: 0,
        deadline: 0,
        budget: false,
        forced: false,
        log: Vec::new(),
    };
    for r in 0..MAX_RUNS {
        if m.ring.iter().all(|&t| t == 0) {
            break;
        }
        let o = runs[r % runs.len()];
        match m.run_with(&o, progs) {
            Out::Victim(v) => {
                m.log.push(Ev::Ret(v));
                m.ring.push(v);
            }
            Out::None => m.log.push(Ev::Ret(0)),
        }
    }
    m.log
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_real_watchdog_trace_equals_the_models(
        progs in prop::collection::vec(prop::collection::vec(step(), 0..12), 1..4),
        runs in prop::collection::vec(opts(), 1..5),
    ) {
        let want = model(&progs, &runs);
        let got = real(&progs, &runs);
        prop_assert_eq!(got, want);
    }
}
