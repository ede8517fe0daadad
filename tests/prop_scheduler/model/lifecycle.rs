//! The model of a tasklet's life: bound tasklets, `setup`, `unbind`, `bind`, and the error
//! handler a dying tasklet's panic goes through.

use super::{
    handler_panic, Ev, Flow, Life, MTasklet, Model, Op, Out, E, HANDLER_STEP, MAX_TASKLETS,
};

impl Model<'_> {
    // ---------- bound tasklets, setup, unbind, bind, the error handler ----------

    pub(super) fn exec_lifecycle(&mut self, me: usize, op: Op) -> Flow {
        let target = |m: &Self, n: usize| n % m.ts.len();
        let unit = |r: Result<(), E>| match r {
            Ok(()) => Out::Done,
            Err(e) => Out::Err(e),
        };
        match op {
            Op::Bound(n) => {
                if self.ts.len() >= MAX_TASKLETS {
                    return self.out(me, Out::Cap);
                }
                let t = self.ts.len();
                self.ts
                    .push(MTasklet::new(self.prog.script_of(n), Life::Bound));
                self.out(me, Out::Made(t))
            }
            Op::Setup(n) => {
                let t = target(self, n);
                let r = match self.ts[t].life {
                    Life::New | Life::Started => Err(E::TaskletAlive),
                    Life::Dead => Err(E::NotBound),
                    Life::Bound => {
                        self.ts[t].life = Life::New;
                        self.ring_insert(t);
                        Ok(())
                    }
                };
                self.out(me, unit(r))
            }
            Op::Unbind(n) => {
                let t = target(self, n);
                let r = self.check_rebind(t).map(|()| {
                    let m = &mut self.ts[t];
                    m.life = Life::Dead;
                    m.pending = None;
                });
                self.out(me, unit(r))
            }
            Op::Bind(n, script) => {
                let t = target(self, n);
                let script = self.prog.script_of(script);
                let r = self.check_rebind(t).map(|()| {
                    let mut fresh = MTasklet::new(script, Life::Bound);
                    std::mem::swap(&mut self.ts[t], &mut fresh);
                });
                self.out(me, unit(r))
            }
            Op::ErrorHandler(kind) => {
                self.handler = kind % 3;
                self.out(me, Out::Done)
            }
            _ => unreachable!("not a lifecycle step"),
        }
    }

    /// The preconditions of `unbind` and `bind`, in Stackless's order; `Ok` for a dead
    /// tasklet too (unbind: nothing to do; bind: bound again).
    fn check_rebind(&self, t: usize) -> Result<(), E> {
        if self.ring.front() == Some(&t) {
            return Err(E::BindCurrent);
        }
        match self.ts[t].life {
            Life::Dead => Ok(()),
            _ if !self.floating(t) => Err(E::BindScheduled),
            _ if t == 0 => Err(E::UnbindMain),
            Life::Started => Err(E::HasCState),
            Life::New | Life::Bound => Ok(()),
        }
    }

    /// The running tasklet `me` (not main) panicked with `msg`: the error handler sees it
    /// first (logging it), then it ends with the error to route, if any.
    pub(super) fn die(&mut self, me: usize, msg: String) -> Flow {
        let error = match self.handler {
            0 => Some(E::Panicked(me, msg)),
            kind => {
                self.trace.push(Ev {
                    tasklet: me,
                    step: HANDLER_STEP,
                    out: Out::Handled(msg.clone()),
                    runcount: self.ring.len(),
                    channels: self.snapshot(),
                });
                (kind == 2).then(|| E::Panicked(me, handler_panic(&msg)))
            }
        };
        self.end(me, error)
    }
}
