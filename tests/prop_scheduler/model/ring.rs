//! The model's run ring (Appendix C): insertion, removal, `current`, `switch`, `tasklet_end`
//! and the watchdogs, and the tasklet methods built on them (insert, remove, the pending kill
//! or error of `kill`/`throw`).

use super::{Flow, Life, Model, Out, Pend, Susp, E};

impl Model<'_> {
    // ---------- ring (Appendix C) ----------

    pub(super) fn in_ring(&self, t: usize) -> bool {
        self.ring.contains(&t)
    }

    pub(super) fn floating(&self, t: usize) -> bool {
        !self.in_ring(t) && self.ts[t].blocked == 0
    }

    /// Just before current: the end of the round-robin order.
    pub(super) fn ring_insert(&mut self, t: usize) {
        assert!(!self.in_ring(t), "model: {t} inserted twice");
        self.ring.push_back(t);
    }

    pub(super) fn ring_insert_after_current(&mut self, t: usize) {
        assert!(!self.in_ring(t), "model: {t} inserted twice");
        if self.ring.is_empty() {
            self.ring.push_back(t);
        } else {
            self.ring.insert(1, t);
        }
    }

    /// Unlinks `t`; if it was current, current moves on to its successor.
    pub(super) fn ring_remove(&mut self, t: usize) {
        let i = self
            .ring
            .iter()
            .position(|&x| x == t)
            .expect("model: not in the ring");
        self.ring.remove(i);
    }

    /// `current := t` without relinking.
    pub(super) fn set_current(&mut self, t: usize) {
        let i = self
            .ring
            .iter()
            .position(|&x| x == t)
            .expect("model: not in the ring");
        self.ring.rotate_left(i);
    }

    pub(super) fn wake(&self) -> usize {
        self.watchdogs.last().copied().unwrap_or(0)
    }

    pub(super) fn unblock(&mut self, t: usize) {
        let ch = &mut self.chans[self.ts[t].on];
        let i = ch
            .queue
            .iter()
            .position(|&x| x == t)
            .expect("model: not queued");
        ch.queue.remove(i);
        ch.balance -= self.ts[t].blocked as isize;
        self.ts[t].blocked = 0;
    }

    /// The preparation of `next` in `switch`: unblocked if blocked, inserted if floating.
    pub(super) fn make_runnable(&mut self, t: usize) {
        if self.ts[t].blocked != 0 {
            self.unblock(t);
            self.ring_insert(t);
        } else if !self.in_ring(t) {
            self.ring_insert(t);
        }
    }

    /// `switch(prev, next)`: `prev` will resume in `susp`; `None` is the block logic.
    pub(super) fn switch(&mut self, prev: usize, next: Option<usize>, susp: Susp) -> Flow {
        self.ts[prev].susp = Some(susp);
        let next = match next {
            Some(n) => n,
            None => {
                let wake = self.wake();
                if self.floating(wake) {
                    wake
                } else {
                    self.set_pending(prev, Pend::Err(E::Deadlock));
                    prev
                }
            }
        };
        self.make_runnable(next);
        self.set_current(next);
        self.running = next;
        Flow::Away
    }

    /// `tasklet_end`.
    pub(super) fn end(&mut self, me: usize, error: Option<E>) -> Flow {
        self.ring_remove(me);
        let wake = self.wake();
        let mut error = error;
        let mut next = match self.ring.front() {
            Some(&n) => n,
            None => {
                let b = self.ts[wake].blocked;
                if b != 0 && error.is_none() {
                    error = Some(if b < 0 {
                        E::MainReceiving
                    } else {
                        E::MainSending
                    });
                }
                wake
            }
        };
        if let Some(e) = error {
            next = wake;
            self.set_pending(wake, Pend::Err(e));
        }
        self.ts[me].life = Life::Dead;
        self.ts[me].slot = None;
        self.make_runnable(next);
        self.set_current(next);
        self.running = next;
        Flow::Away
    }

    /// What `run()` does when its caller resumes: pop it and every deeper watchdog, and put
    /// the deeper ones that are floating back in the ring (innermost first).
    pub(super) fn pop_watchdogs(&mut self, me: usize) {
        if let Some(i) = self.watchdogs.iter().rposition(|&p| p == me) {
            let deeper: Vec<usize> = self.watchdogs.drain(i..).collect();
            for p in deeper.into_iter().rev() {
                if self.floating(p) {
                    self.ring_insert(p);
                }
            }
        }
    }

    // ---------- tasklet methods ----------

    pub(super) fn insert(&mut self, t: usize) -> Result<(), E> {
        if self.ts[t].blocked != 0 {
            return Err(E::RunBlocked);
        }
        if !self.ts[t].life.alive() {
            return Err(E::RunDead);
        }
        if !self.in_ring(t) {
            self.ring_insert(t);
        }
        Ok(())
    }

    pub(super) fn remove(&mut self, t: usize) -> Result<(), E> {
        if self.ring.front() == Some(&t) {
            return Err(E::RemoveCurrent);
        }
        if self.ts[t].blocked != 0 {
            return Err(E::RemoveBlocked);
        }
        if self.in_ring(t) {
            self.ring_remove(t);
        }
        Ok(())
    }

    /// Makes `what` pending in `t`: a later error replaces an earlier one (Stackless), but a
    /// pending kill is never replaced.
    pub(super) fn set_pending(&mut self, t: usize, what: Pend) {
        if !matches!(self.ts[t].pending, Some(Pend::Kill)) {
            self.ts[t].pending = Some(what);
        }
    }

    /// The bomb of `throw`/`kill`: pending, or switched to now.
    pub(super) fn deliver(&mut self, me: usize, t: usize, what: Pend, pending: bool) -> Flow {
        self.set_pending(t, what);
        if pending {
            self.make_runnable(t);
            self.out(me, Out::Done)
        } else {
            self.switch(me, Some(t), Susp::Plain)
        }
    }
}
