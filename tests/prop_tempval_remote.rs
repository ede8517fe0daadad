//! Model-based property test of `tempval` (`set_tempval`, `take_tempval`, `schedule_with`,
//! `schedule_remove_with`), the ring walk (`next`, `prev`, `runcount`) and remote operations
//! (`RemoteTasklet::insert`, `remove`, `run` and the state queries, from another thread),
//! mixed with local `insert`, `remove` and `run`.
//!
//! Main drives `n` tasklets. Each one, whenever it runs, logs (its start, or the value its
//! `schedule_remove_with` returned), puts `100 + i` in main's `tempval` if `i` is odd, and
//! pauses itself again with `schedule_remove_with(-i)`. The reference model keeps the run
//! queue as a list (main first), each `tempval`, and the mail other threads posted, which is
//! applied at main's next switch: a remote run goes right after main, behind an earlier remote
//! run's target still waiting; a remote insert at the end; a remote remove takes the tasklet
//! out. Cases: 96, or `PROPTEST_CASES`.

use std::any::Any;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::mpsc;

use microthread::scheduler::{current, main, runcount, schedule_remove_with, schedule_with};
use microthread::{RemoteTasklet, Tasklet};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    SetTempval(usize, i64),
    TakeTempval(usize),
    Insert(usize),
    Remove(usize),
    Run(usize),
    RemoteInsert(usize),
    RemoteRemove(usize),
    RemoteRun(usize),
    Schedule(i64),
    Query,
}

#[derive(Clone, Debug, PartialEq)]
enum Ev {
    Start(usize),
    Got(usize, Option<i64>),
}

#[derive(Clone, Copy, Debug)]
enum Remote {
    Insert,
    Remove,
    Run,
}

/// What the helper thread is asked to do.
enum Ask {
    Op(RemoteTasklet, Remote),
    States(Vec<RemoteTasklet>),
}

enum Reply {
    Op(Result<(), String>),
    States(Vec<(bool, bool, bool, bool)>),
}

fn as_i64(v: Box<dyn Any>) -> Option<i64> {
    v.downcast::<i64>().ok().map(|b| *b)
}

#[derive(Default)]
struct Model {
    /// The run queue in round-robin order; 0 is main, tasklet `i` is `i + 1`.
    ring: Vec<usize>,
    started: Vec<bool>,
    tempval: Vec<Option<i64>>,
    main_tempval: Option<i64>,
    mail: Vec<(Remote, usize)>,
    last_remote_run: Option<usize>,
    log: Vec<Ev>,
}

impl Model {
    fn new(n: usize) -> Model {
        Model {
            ring: vec![0],
            started: vec![false; n + 1],
            tempval: vec![None; n + 1],
            ..Model::default()
        }
    }

    fn in_ring(&self, t: usize) -> bool {
        self.ring.contains(&t)
    }

    fn insert_after(&mut self, anchor: usize, t: usize) {
        let p = self.ring.iter().position(|&x| x == anchor).unwrap();
        self.ring.insert(p + 1, t);
    }

    /// The mail, read while main runs (it is the current tasklet).
    fn read_mail(&mut self) {
        for (op, t) in std::mem::take(&mut self.mail) {
            match op {
                Remote::Insert if !self.in_ring(t) => self.ring.push(t),
                Remote::Remove if self.in_ring(t) => self.ring.retain(|&x| x != t),
                Remote::Run if !self.in_ring(t) => {
                    let anchor = match self.last_remote_run {
                        Some(l) if self.in_ring(l) => l,
                        _ => 0,
                    };
                    self.insert_after(anchor, t);
                    self.last_remote_run = Some(t);
                }
                _ => {}
            }
        }
    }

    /// Tasklet `t` runs once, then pauses itself.
    fn turn(&mut self, t: usize) {
        if self.started[t] {
            let v = self.tempval[t].take();
            self.log.push(Ev::Got(t, v));
        } else {
            self.started[t] = true;
            self.log.push(Ev::Start(t));
        }
        if t % 2 == 1 {
            self.main_tempval = Some(100 + t as i64);
        }
        self.tempval[t] = Some(-(t as i64));
        self.ring.retain(|&x| x != t);
    }

    /// Everything from position `from` of the ring to its end runs, in order; main resumes.
    fn round_from(&mut self, from: usize) {
        let runs: Vec<usize> = self.ring[from..].to_vec();
        for t in runs {
            self.turn(t);
        }
    }
}

fn op(n: usize) -> impl Strategy<Value = Op> {
    let t = 1..=n;
    prop_oneof![
        1 => (t.clone(), -50i64..50).prop_map(|(t, v)| Op::SetTempval(t, v)),
        1 => t.clone().prop_map(Op::TakeTempval),
        1 => t.clone().prop_map(Op::Insert),
        1 => t.clone().prop_map(Op::Remove),
        1 => t.clone().prop_map(Op::Run),
        1 => t.clone().prop_map(Op::RemoteInsert),
        1 => t.clone().prop_map(Op::RemoteRemove),
        3 => t.prop_map(Op::RemoteRun),
        3 => (1000i64..2000).prop_map(Op::Schedule),
        2 => Just(Op::Query),
    ]
}

fn case() -> impl Strategy<Value = (usize, Vec<Op>)> {
    (1usize..=5).prop_flat_map(|n| (Just(n), prop::collection::vec(op(n), 1..40)))
}

fn check(n: usize, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let (ask_tx, ask_rx) = mpsc::channel::<Ask>();
    let (reply_tx, reply_rx) = mpsc::channel::<Reply>();
    // Another thread, for the remote side; it never uses a scheduler of its own.
    let helper = std::thread::spawn(move || {
        for ask in ask_rx {
            let reply = match ask {
                Ask::Op(r, Remote::Insert) => Reply::Op(r.insert().map_err(|e| e.to_string())),
                Ask::Op(r, Remote::Remove) => Reply::Op(r.remove().map_err(|e| e.to_string())),
                Ask::Op(r, Remote::Run) => Reply::Op(r.run().map_err(|e| e.to_string())),
                Ask::States(rs) => Reply::States(
                    rs.iter()
                        .map(|r| (r.alive(), r.scheduled(), r.blocked(), r.paused()))
                        .collect(),
                ),
            };
            reply_tx.send(reply).unwrap();
        }
    });
    let log = Rc::new(RefCell::new(Vec::new()));
    let m = main();
    let mut ts = vec![m.clone()];
    for i in 1..=n {
        let (log, m) = (log.clone(), m.clone());
        ts.push(
            Tasklet::new(move || {
                log.borrow_mut().push(Ev::Start(i));
                loop {
                    if i % 2 == 1 {
                        m.set_tempval(Box::new(100 + i as i64));
                    }
                    let v = schedule_remove_with(Box::new(-(i as i64))).unwrap();
                    log.borrow_mut().push(Ev::Got(i, as_i64(v)));
                }
            })
            .unwrap(),
        );
    }
    let remotes: Vec<RemoteTasklet> = ts.iter().map(Tasklet::remote).collect();
    let mut model = Model::new(n);
    for (step, op) in ops.into_iter().enumerate() {
        let ctx = format!("step {step}: {op:?}");
        match op {
            Op::SetTempval(t, v) => {
                let old = ts[t].set_tempval(Box::new(v)).and_then(as_i64);
                prop_assert_eq!(old, model.tempval[t].replace(v), "{}", ctx);
            }
            Op::TakeTempval(t) => {
                let got = ts[t].take_tempval().and_then(as_i64);
                prop_assert_eq!(got, model.tempval[t].take(), "{}", ctx);
            }
            Op::Insert(t) => {
                ts[t].insert().unwrap();
                if !model.in_ring(t) {
                    model.ring.push(t);
                }
            }
            Op::Remove(t) => {
                ts[t].remove().unwrap();
                model.ring.retain(|&x| x != t);
            }
            Op::Run(t) => {
                ts[t].run().unwrap();
                if !model.in_ring(t) {
                    model.ring.push(t);
                }
                model.read_mail();
                if !model.in_ring(t) {
                    // Removed by the mail, put back by the switch to it.
                    model.ring.push(t);
                }
                let from = model.ring.iter().position(|&x| x == t).unwrap();
                model.round_from(from);
            }
            Op::RemoteInsert(t) | Op::RemoteRemove(t) | Op::RemoteRun(t) => {
                let kind = match op {
                    Op::RemoteInsert(_) => Remote::Insert,
                    Op::RemoteRemove(_) => Remote::Remove,
                    _ => Remote::Run,
                };
                ask_tx.send(Ask::Op(remotes[t].clone(), kind)).unwrap();
                let Reply::Op(r) = reply_rx.recv().unwrap() else {
                    unreachable!()
                };
                prop_assert_eq!(r, Ok(()), "{}", ctx);
                model.mail.push((kind, t));
            }
            Op::Schedule(v) => {
                let got = schedule_with(Box::new(v)).unwrap();
                model.main_tempval = Some(v);
                model.read_mail();
                model.round_from(1);
                prop_assert_eq!(as_i64(got), model.main_tempval.take(), "{}", ctx);
            }
            Op::Query => {
                ask_tx.send(Ask::States(remotes[1..].to_vec())).unwrap();
                let Reply::States(states) = reply_rx.recv().unwrap() else {
                    unreachable!()
                };
                for t in 1..=n {
                    let r = model.in_ring(t);
                    let want = (true, r, false, !r);
                    let tl = &ts[t];
                    prop_assert_eq!(
                        (tl.alive(), tl.scheduled(), tl.blocked(), tl.paused()),
                        want,
                        "{} local {}",
                        ctx,
                        t
                    );
                    prop_assert_eq!(states[t - 1], want, "{} remote {}", ctx, t);
                    prop_assert_eq!(tl.has_tempval(), model.tempval[t].is_some(), "{}", ctx);
                    prop_assert_eq!(tl.thread_id(), main().thread_id(), "{}", ctx);
                }
                prop_assert_eq!(m.has_tempval(), model.main_tempval.is_some(), "{}", ctx);
            }
        }
        // After every step: the walk from main is the model's run queue, in order.
        prop_assert!(current().is_main(), "{}", ctx);
        let mut walk = vec![0];
        let mut at = current().next().unwrap();
        while !at.is_main() {
            walk.push(ts.iter().position(|x| *x == at).unwrap());
            at = at.next().unwrap();
            prop_assert!(walk.len() <= n + 1, "{}: the ring does not close", ctx);
        }
        prop_assert_eq!(&walk, &model.ring, "{}", ctx);
        prop_assert_eq!(runcount(), model.ring.len(), "{}", ctx);
        for (i, t) in ts.iter().enumerate().skip(1) {
            let (next, prev) = match model.ring.iter().position(|&x| x == i) {
                Some(p) => {
                    let len = model.ring.len();
                    (
                        Some(model.ring[(p + 1) % len]),
                        Some(model.ring[(p + len - 1) % len]),
                    )
                }
                None => (None, None),
            };
            let idx = |x: Option<Tasklet>| x.map(|x| ts.iter().position(|y| *y == x).unwrap());
            prop_assert_eq!(
                (idx(t.next()), idx(t.prev())),
                (next, prev),
                "{} {}",
                ctx,
                i
            );
        }
        let got: Vec<Ev> = std::mem::take(&mut *log.borrow_mut());
        prop_assert_eq!(got, std::mem::take(&mut model.log), "{}", ctx);
    }
    drop(ask_tx);
    helper.join().unwrap();
    Ok(())
}

/// Cases per property: the `PROPTEST_CASES` environment variable if set, else `default`.
fn config(default: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = default;
    }
    c
}

proptest! {
    #![proptest_config(config(96))]

    #[test]
    fn tempval_ring_walk_and_remote_operations_follow_the_model((n, ops) in case()) {
        // A fresh thread (and scheduler) per case.
        std::thread::spawn(move || check(n, ops)).join().unwrap()?;
    }
}
