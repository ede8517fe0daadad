//! The real run: each script executed by a real tasklet (main's by the case thread's main
//! tasklet), each step's outcome logged as the model logs it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::{mpsc, Mutex, Once};
use std::time::Duration;

use microthread::scheduler;
use microthread::{Error, Tasklet};

use super::channel_kind::{AnyKindChannel, ChannelKind};
use super::steps::{
    flags, handler_panic, is_fatal, thrown_payload, value, Ev, Op, Out, Program, E, HANDLER_STEP,
    MAX_TASKLETS,
};

struct Real {
    prog: Program,
    tasklets: RefCell<Vec<Tasklet>>,
    /// Tasklet id → number.
    ids: RefCell<HashMap<u64, usize>>,
    trace: RefCell<Vec<Ev>>,
    chans: Vec<AnyKindChannel>,
}

impl Real {
    fn error(&self, e: &Error) -> E {
        let s = |e: &Error| e.payload_str().unwrap_or("?").to_string();
        match e {
            Error::Deadlock => E::Deadlock,
            Error::MainReceivingWithoutSender => E::MainReceiving,
            Error::MainSendingWithoutReceiver => E::MainSending,
            Error::ClosedChannel => E::Closed,
            Error::RunBlocked => E::RunBlocked,
            Error::RunDead => E::RunDead,
            Error::RemoveBlocked => E::RemoveBlocked,
            Error::RemoveCurrent => E::RemoveCurrent,
            Error::ThrowDead => E::ThrowDead,
            Error::TaskletAlive => E::TaskletAlive,
            Error::NotBound => E::NotBound,
            Error::BindCurrent => E::BindCurrent,
            Error::BindScheduled => E::BindScheduled,
            Error::HasCState => E::HasCState,
            Error::UnbindMain => E::UnbindMain,
            Error::Thrown(_) => E::Thrown(s(e)),
            Error::Panicked { tasklet, .. } => {
                let n = self
                    .ids
                    .borrow()
                    .get(tasklet)
                    .copied()
                    .unwrap_or(usize::MAX);
                E::Panicked(n, s(e))
            }
            other => E::Other(other.to_string()),
        }
    }

    fn unit(&self, r: microthread::error::Result<()>) -> Out {
        match r {
            Ok(()) => Out::Done,
            Err(e) => Out::Err(self.error(&e)),
        }
    }

    fn target(&self, n: usize) -> (usize, Tasklet) {
        let ts = self.tasklets.borrow();
        let i = n % ts.len();
        (i, ts[i].clone())
    }

    fn snapshot(&self) -> Vec<(isize, Vec<usize>)> {
        let ids = self.ids.borrow();
        self.chans
            .iter()
            .map(|c| (c.balance(), c.queue().iter().map(|id| ids[id]).collect()))
            .collect()
    }

    fn states(&self) -> Vec<String> {
        self.tasklets
            .borrow()
            .iter()
            .map(|t| {
                flags(
                    t.alive(),
                    t.scheduled(),
                    t.blocked(),
                    t.paused(),
                    t.is_current(),
                )
            })
            .collect()
    }

    fn event(&self, me: usize, step: usize, out: Out) {
        let ev = Ev {
            tasklet: me,
            step,
            out,
            runcount: scheduler::runcount(),
            channels: self.snapshot(),
        };
        self.trace.borrow_mut().push(ev);
    }
}

/// Runs script `script` as tasklet number `me`.
fn exec(r: &Rc<Real>, me: usize, script: usize) {
    let ops = r.prog.scripts[script].clone();
    for (step, op) in ops.into_iter().enumerate() {
        let Some(out) = real_step(r, me, step, op) else {
            return;
        };
        let fatal = out.error().and_then(is_fatal);
        r.event(me, step, out);
        if let (Some(msg), true) = (fatal, me != 0) {
            panic::panic_any(msg);
        }
    }
}

/// Executes one step; `None` for a return.
fn real_step(r: &Rc<Real>, me: usize, step: usize, op: Op) -> Option<Out> {
    let send_err = |e: &Error, back: Option<String>| match back {
        Some(back) => Out::ErrBack(r.error(e), back),
        None => Out::Err(r.error(e)),
    };
    Some(match op {
        Op::Log => Out::Done,
        Op::Query => Out::State(r.states()),
        Op::Schedule => r.unit(scheduler::schedule()),
        Op::ScheduleRemove => r.unit(scheduler::schedule_remove()),
        Op::Spawn(n) | Op::New(n) => {
            let t = r.tasklets.borrow().len();
            if t >= MAX_TASKLETS {
                Out::Cap
            } else {
                let script = r.prog.script_of(n);
                let rc = r.clone();
                let f = move || exec(&rc, t, script);
                let handle = if matches!(op, Op::Spawn(_)) {
                    scheduler::spawn(f)
                } else {
                    Tasklet::new(f)
                }
                .expect("a stack for a new tasklet");
                r.ids.borrow_mut().insert(handle.id(), t);
                r.tasklets.borrow_mut().push(handle);
                Out::Made(t)
            }
        }
        Op::Insert(n) => r.unit(r.target(n).1.insert()),
        Op::Remove(n) => r.unit(r.target(n).1.remove()),
        Op::Run(n) => r.unit(r.target(n).1.run()),
        Op::Switch(n) => r.unit(r.target(n).1.switch()),
        Op::Kill { target, pending } => {
            let (i, t) = r.target(target);
            if i == 0 {
                Out::Skip
            } else if pending {
                r.unit(t.kill_pending())
            } else {
                r.unit(t.kill())
            }
        }
        Op::Throw {
            target,
            fatal,
            pending,
        } => {
            let t = r.target(target).1;
            let e = Error::Thrown(Box::new(thrown_payload(me, step, fatal)));
            r.unit(if pending {
                t.throw_pending(e)
            } else {
                t.throw(e)
            })
        }
        Op::RunScheduler => r.unit(scheduler::run()),
        Op::Return if me != 0 => return None,
        Op::Panic if me != 0 => panic::panic_any(format!("boom{me}.{step}")),
        Op::Return | Op::Panic => Out::Skip,
        Op::Send(c) => match r.chans[r.prog.channel(c)].send(value(me, step, 0)) {
            Ok(()) => Out::Done,
            Err(e) => send_err(&e.error, e.value.map(|v| v.to_string())),
        },
        Op::SendThrow { ch, fatal } => {
            let p = Box::new(thrown_payload(me, step, fatal));
            match r.chans[r.prog.channel(ch)].send_throw(p) {
                Ok(()) => Out::Done,
                Err(e) => {
                    let back = e
                        .value
                        .map(|p| p.downcast_ref::<String>().cloned().unwrap());
                    send_err(&e.error, back)
                }
            }
        }
        Op::SendSeq(c, n) => {
            let items = (0..n).map(|i| value(me, step, i));
            match r.chans[r.prog.channel(c)].send_sequence(items) {
                Ok(k) => Out::Sent(k),
                Err(e) => send_err(&e.error, e.value.map(|v| v.to_string())),
            }
        }
        Op::Receive(c) => match r.chans[r.prog.channel(c)].receive() {
            Ok(v) => Out::Value(v),
            Err(e) => Out::Err(r.error(&e)),
        },
        Op::Close(c) => {
            r.chans[r.prog.channel(c)].close();
            Out::Done
        }
        Op::Open(c) => {
            r.chans[r.prog.channel(c)].open();
            Out::Done
        }
        Op::Preference(c, p) => {
            r.chans[r.prog.channel(c)].set_preference(p as i32);
            Out::Done
        }
        Op::ScheduleAll(c, on) => {
            r.chans[r.prog.channel(c)].set_schedule_all(on);
            Out::Done
        }
        Op::Bound(..) | Op::Setup(..) | Op::Unbind(..) | Op::Bind(..) | Op::ErrorHandler(..) => {
            real_lifecycle_step(r, op)
        }
    })
}

/// The text of a panic payload (what the scripts panic and throw with).
fn payload_text(p: &microthread::error::Payload) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "?".to_string())
}

/// Executes a step on bound tasklets, setup, unbind, bind or the error handler.
fn real_lifecycle_step(r: &Rc<Real>, op: Op) -> Out {
    match op {
        Op::Bound(n) => {
            let t = r.tasklets.borrow().len();
            if t >= MAX_TASKLETS {
                return Out::Cap;
            }
            let script = r.prog.script_of(n);
            let rc = r.clone();
            let handle = Tasklet::bound(move || exec(&rc, t, script)).expect("a stack");
            r.ids.borrow_mut().insert(handle.id(), t);
            r.tasklets.borrow_mut().push(handle);
            Out::Made(t)
        }
        Op::Setup(n) => r.unit(r.target(n).1.setup()),
        Op::Unbind(n) => r.unit(r.target(n).1.unbind()),
        Op::Bind(n, script) => {
            let (i, t) = r.target(n);
            let script = r.prog.script_of(script);
            let rc = r.clone();
            r.unit(t.bind(move || exec(&rc, i, script)))
        }
        Op::ErrorHandler(kind) => {
            let handler: Option<scheduler::ErrorHandler> = match kind % 3 {
                0 => None,
                kind => {
                    // Weak: the handler lives in a thread-local, which must not keep the
                    // harness (and its tasklet handles) alive past the scheduler's teardown.
                    let weak = Rc::downgrade(r);
                    Some(Rc::new(move |p| {
                        let msg = payload_text(&p);
                        if let Some(r) = weak.upgrade() {
                            let me = r.ids.borrow()[&scheduler::current().id()];
                            r.event(me, HANDLER_STEP, Out::Handled(msg.clone()));
                        }
                        if kind == 2 {
                            panic::panic_any(handler_panic(&msg));
                        }
                    }))
                }
            };
            scheduler::set_error_handler(handler);
            Out::Done
        }
        _ => unreachable!("not a lifecycle step"),
    }
}

/// Cases run one at a time: a scheduler thread of a concurrently running case would make a
/// deadlocking one sleep (waiting for another thread to wake it) instead of failing at once.
static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `f` on a fresh thread (so with a fresh scheduler), waiting at most a minute for it.
fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (tx, rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        let _ = tx.send(panic::catch_unwind(AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(r) => {
            h.join().expect("the case thread ended cleanly");
            r.unwrap_or_else(|p| panic::resume_unwind(p))
        }
        Err(_) => panic!("the program did not finish within two minutes"),
    }
}

/// Runs the program for real on a fresh thread, with channels of `kind`; returns its trace.
pub fn run_real(prog: &Program, kind: ChannelKind) -> Vec<Ev> {
    silence_tasklet_panics();
    let prog = prog.clone();
    on_thread(move || {
        let main = scheduler::current();
        let r = Rc::new(Real {
            ids: RefCell::new(HashMap::from([(main.id(), 0)])),
            tasklets: RefCell::new(vec![main]),
            trace: RefCell::new(Vec::new()),
            chans: (0..prog.channels)
                .map(|_| AnyKindChannel::new(kind))
                .collect(),
            prog,
        });
        exec(&r, 0, 0);
        let steps = r.prog.scripts[0].len();
        r.event(0, steps, Out::State(r.states()));
        let trace = std::mem::take(&mut *r.trace.borrow_mut());
        trace
    })
}

/// The scripted panics are expected: keep the default hook's report for the others only.
fn silence_tasklet_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let p = info.payload();
            let msg = p
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| p.downcast_ref::<&str>().copied())
                .unwrap_or("");
            if !(msg.starts_with("boom") || msg.starts_with("re:x")) {
                default(info);
            }
        }));
    });
}
