//! A tasklet's life before it runs (reference §1.2, Appendix B): [`Tasklet::setup`] makes a
//! bound tasklet alive and scheduled; [`Tasklet::unbind`] (Stackless `bind(None)`) drops the
//! closure of a tasklet that never ran; [`Tasklet::bind`] (Stackless `bind(f)`) gives one that
//! is not running a new closure; `drop_unrun` is how both `unbind` and the last handle of an
//! unreachable unrun tasklet drop it.

use std::panic::{self, AssertUnwindSafe};
use std::ptr;

use super::create::{prepare, Prepared};
use super::{is_current, Scheduler};
use crate::error::{Error, Result};
use crate::stack::{DEFAULT_GUARD_SIZE, DEFAULT_STACK_SIZE};
use crate::tasklet::{Inner, Life, Record, Tasklet};

impl Tasklet {
    /// Makes a [bound](Tasklet::bound) tasklet alive and appends it to the end of the run
    /// queue (Stackless `setup()` / calling the tasklet). No switch, so it works under a
    /// [`switch_trap`](crate::scheduler::switch_trap) too.
    ///
    /// ```
    /// use microthread::{scheduler, Error, Tasklet};
    /// let t = Tasklet::bound(|| ())?;
    /// t.setup().unwrap();
    /// assert!(t.alive() && t.scheduled());
    /// assert!(matches!(t.setup(), Err(Error::TaskletAlive)));
    /// scheduler::run().unwrap();
    /// assert_eq!(t.setup().unwrap_err().to_string(), "the tasklet was not bound to a function");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::TaskletAlive`] if it is alive (a main tasklet always is);
    /// [`Error::NotBound`] if it has no function (unbound or dead);
    /// [`Error::RecursiveCallback`] from inside the schedule callback. A refused call
    /// changes nothing.
    pub fn setup(&self) -> Result<()> {
        let s = self.check_thread()?;
        if s.in_callback.get() {
            return Err(Error::RecursiveCallback);
        }
        match self.inner.life.get() {
            Life::New | Life::Started => Err(Error::TaskletAlive),
            Life::Dead => Err(Error::NotBound),
            Life::Bound => {
                self.inner.life.set(Life::New);
                // SAFETY: a live tasklet of this thread now; a bound one is in no queue.
                unsafe { s.ring_insert(self.ptr()) };
                Ok(())
            }
        }
    }

    /// Drops the tasklet's closure without running it, and the tasklet is no longer alive
    /// (Stackless `bind(None)`): for a bound tasklet, or an alive one that never ran and is
    /// not scheduled. Unbinding a dead tasklet does nothing.
    ///
    /// ```
    /// use microthread::{Error, Tasklet};
    /// use std::{cell::Cell, rc::Rc};
    ///
    /// struct Flag(Rc<Cell<bool>>);
    /// impl Drop for Flag {
    ///     fn drop(&mut self) { self.0.set(true) }
    /// }
    /// let dropped = Rc::new(Cell::new(false));
    /// let flag = Flag(dropped.clone());
    /// let t = Tasklet::new(move || { let _f = flag; unreachable!("never runs") })?;
    /// t.unbind().unwrap();
    /// assert!(dropped.get() && !t.alive());
    /// assert!(matches!(t.setup(), Err(Error::NotBound)));
    ///
    /// let s = microthread::spawn(|| ())?;
    /// assert_eq!(s.unbind().unwrap_err().to_string(), "tasklet is scheduled");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// Checked in this order (Stackless's), refused without a change:
    /// - [`Error::RecursiveCallback`] from inside the schedule callback;
    /// - [`Error::BindCurrent`] for the current tasklet;
    /// - [`Error::BindScheduled`] if it is scheduled or blocked;
    /// - [`Error::UnbindMain`] for a main tasklet;
    /// - [`Error::HasCState`] if it has started: its native frames can only be unwound, by
    ///   [`kill`](Tasklet::kill).
    ///
    /// # Panics
    /// If the closure's `Drop` panics, that panic continues from this call, once the tasklet
    /// is dead and its stack released.
    pub fn unbind(&self) -> Result<()> {
        let s = self.check_rebind()?;
        if self.inner.life.get() == Life::Dead {
            return Ok(());
        }
        // SAFETY: an unrun (bound or new), floating tasklet of this thread, held by the
        // scheduler (in the list); this handle keeps its local reference.
        if let Err(payload) = unsafe { s.drop_unrun(&self.inner) } {
            panic::resume_unwind(payload);
        }
        Ok(())
    }

    /// The preconditions of [`unbind`](Tasklet::unbind) and [`bind`](Tasklet::bind), in
    /// Stackless's order; on success the tasklet is dead, or unrun and floating.
    fn check_rebind(&self) -> Result<&'static Scheduler> {
        let s = self.check_thread()?;
        if s.in_callback.get() {
            return Err(Error::RecursiveCallback);
        }
        if is_current(&self.inner) {
            return Err(Error::BindCurrent);
        }
        let life = self.inner.life.get();
        if life == Life::Dead {
            return Ok(s);
        }
        if !self.inner.floating() {
            return Err(Error::BindScheduled);
        }
        if self.inner.is_main {
            return Err(Error::UnbindMain);
        }
        if life == Life::Started {
            return Err(Error::HasCState);
        }
        Ok(s)
    }

    /// Binds the tasklet to `f`, on a new default-sized stack
    /// ([`crate::stack::DEFAULT_STACK_SIZE`]): it becomes bound, not
    /// alive, and [`setup`](Tasklet::setup) runs `f` (Stackless `bind(f)`). Its id, name and
    /// flags stay; an earlier return value is dropped. A tasklet that never ran (bound, or
    /// alive and paused) has its old closure dropped unrun, as [`unbind`](Tasklet::unbind)
    /// does; a dead one is bound again.
    ///
    /// ```
    /// use microthread::{scheduler, Tasklet};
    /// let t = microthread::spawn(|| 1)?;
    /// scheduler::run().unwrap();
    /// assert!(!t.alive());
    /// t.bind(|| 2).unwrap(); // the same tasklet, a new function
    /// assert!(!t.alive() && t.result::<i32>().is_none());
    /// t.setup().unwrap();
    /// scheduler::run().unwrap();
    /// assert_eq!(t.result::<i32>(), Some(2));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`unbind`](Tasklet::unbind) (current, scheduled or blocked, main, started and not
    /// ended); [`Error::SchedulerEnded`] if this thread's scheduler has ended;
    /// [`Error::NoStack`] if a new stack cannot be mapped. A refused call changes nothing.
    ///
    /// # Panics
    /// If the old closure's `Drop` panics, that panic continues from this call, once the
    /// tasklet is bound to `f`.
    pub fn bind<F, R>(&self, f: F) -> Result<()>
    where
        F: FnOnce() -> R + 'static,
        R: 'static,
    {
        let s = self.check_rebind()?;
        if s.shared.ended() {
            return Err(Error::SchedulerEnded);
        }
        let t: &Inner = &self.inner;
        let Prepared {
            stack,
            closure,
            drop_closure: drop_fn,
            context: ctx,
        } = prepare(DEFAULT_STACK_SIZE, DEFAULT_GUARD_SIZE, 0, t.id, f).map_err(Error::NoStack)?;
        // All at once, without user code: the old closure, stack, pending error and result
        // are swapped out, and dropped once the tasklet is bound to `f`.
        let was_dead = t.life.replace(Life::Bound) == Life::Dead;
        // Not alive, for other threads too (`register` below does not publish).
        t.remote_state.set(0);
        let old_closure = t.closure.replace(closure);
        let old_drop = t.drop_closure.replace(Some(drop_fn));
        let old_stack = t.stack.replace(Some(stack));
        // A new stack is never the record's home (the home goes to the record, below).
        t.stack_is_home.set(false);
        t.context.set(Some(ctx));
        let old_pending = t.pending.take();
        let old_result = t.result.take();
        if was_dead {
            // Dead and not in the schedule callback: the scheduler has let go of it (`held`
            // is false) and its handles hold its local reference, which the list shares again.
            debug_assert!(!t.held.get());
            t.held.set(true);
            // SAFETY: a tasklet of this thread, not in the list; the list shares the local
            // reference this handle holds.
            unsafe { s.register(t) };
        }
        let dropped = match old_drop {
            // SAFETY: the old closure never ran, so it was never moved out; its stack is
            // still mapped (released below).
            Some(d) => panic::catch_unwind(AssertUnwindSafe(|| unsafe { d(old_closure) })),
            None => Ok(()),
        };
        if let Some(stack) = old_stack {
            // SAFETY: a live tasklet of this thread (this handle's); its old closure is gone
            // and no frame ran on the old stack since it was bound or died.
            unsafe { Record::keep_home(t, stack) };
        }
        let _ = panic::catch_unwind(AssertUnwindSafe(move || drop((old_pending, old_result))));
        if let Err(payload) = dropped {
            panic::resume_unwind(payload);
        }
        Ok(())
    }
}

impl Scheduler {
    /// Ends a tasklet whose closure never ran: out of every structure first (dead, out of the
    /// list, no longer held: its handles own its local reference now), then its closure and
    /// anything pending for it are dropped (user code, with every invariant holding), then
    /// its stack goes back to the pool. Returns the closure's `Drop` panic, if any.
    ///
    /// # Safety
    /// - `t` must be a tasklet of this scheduler, bound or new, floating, in the list (held),
    ///   whose local reference the caller keeps (a handle, or the last one's `Arc`).
    pub(super) unsafe fn drop_unrun(&self, t: &Inner) -> std::thread::Result<()> {
        debug_assert!(t.unrun() && t.floating() && t.held.get());
        let closure = t.closure.replace(ptr::null_mut());
        let drop_closure = t.drop_closure.take();
        let pending = t.pending.take();
        t.life.set(Life::Dead);
        t.context.set(None);
        // SAFETY: a member of the list (caller's obligation); the list's reference is the
        // local one the caller keeps.
        unsafe { self.unregister(t) };
        t.held.set(false);
        let dropped = match drop_closure {
            // SAFETY: the closure written at `closure` on the tasklet's stack never ran, so it
            // was never moved out; the stack is still mapped (released below).
            Some(d) => panic::catch_unwind(AssertUnwindSafe(|| unsafe { d(closure) })),
            None => Ok(()),
        };
        if let Some(stack) = t.stack.take() {
            // SAFETY: a tasklet of this thread whose local reference the caller keeps; its
            // closure never ran, so no frame of it is on the stack.
            unsafe { Record::keep_home(t, stack) };
        }
        // A kill or an error left pending by a pending kill/throw and a remove: nobody
        // receives it now; a panic in its payload's `Drop` is ignored, as for garbage.
        let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(pending)));
        dropped
    }
}
