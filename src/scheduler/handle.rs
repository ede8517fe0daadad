//! The operations of a [`Tasklet`] handle that move it around the run queue ([`insert`],
//! [`remove`], [`run`], [`switch`]) or ask the scheduler about it, and [`atomic`].
//!
//! [`insert`]: Tasklet::insert
//! [`remove`]: Tasklet::remove
//! [`run`]: Tasklet::run
//! [`switch`]: Tasklet::switch

use std::sync::Arc;

use super::{current, is_current, scheduler, Scheduler};
use crate::error::{Error, Result};
use crate::tasklet::{Inner, Tasklet};

impl Tasklet {
    pub(super) fn check_thread(&self) -> Result<&'static Scheduler> {
        let s = scheduler();
        if s.is_this_thread(&self.inner) {
            Ok(s)
        } else {
            Err(Error::NoThread)
        }
    }

    /// Whether it is the running tasklet of its thread.
    pub fn is_current(&self) -> bool {
        is_current(&self.inner)
    }

    pub(super) fn ptr(&self) -> *const Inner {
        Arc::as_ptr(&self.inner)
    }

    /// Appends the tasklet to the end of the run queue (just before the current tasklet) if it
    /// is not in it. No switch.
    ///
    /// # Errors
    /// [`Error::RunBlocked`], [`Error::RunDead`].
    pub fn insert(&self) -> Result<()> {
        let s = self.check_thread()?;
        if self.inner.blocked.get() != 0 {
            return Err(Error::RunBlocked);
        }
        if !self.inner.alive() {
            return Err(Error::RunDead);
        }
        if !self.inner.in_ring() {
            // SAFETY: live, of this thread, in no queue.
            unsafe { s.ring_insert(self.ptr()) };
        }
        Ok(())
    }

    /// Takes the tasklet out of the run queue: it becomes paused. No-op if not scheduled.
    ///
    /// # Errors
    /// [`Error::RemoveCurrent`], [`Error::RemoveBlocked`], [`Error::RecursiveCallback`] from
    /// inside the schedule callback.
    pub fn remove(&self) -> Result<()> {
        let s = self.check_thread()?;
        // The callback runs between choosing the next tasklet and switching to it: taking
        // that one out of the ring now would make the switch enter a tasklet outside it.
        if s.in_callback.get() {
            return Err(Error::RecursiveCallback);
        }
        if is_current(&self.inner) {
            return Err(Error::RemoveCurrent);
        }
        if self.inner.blocked.get() != 0 {
            return Err(Error::RemoveBlocked);
        }
        if self.inner.in_ring() {
            // SAFETY: in the ring.
            unsafe { s.ring_remove(self.ptr()) };
        }
        Ok(())
    }

    /// Inserts the tasklet if needed and switches to it now; the caller stays in the run
    /// queue. Returns when the caller is scheduled again: every tasklet between the target
    /// and the caller in the ring runs first.
    ///
    /// # Errors
    /// [`Error::RunBlocked`], [`Error::RunDead`], [`Error::SwitchTrap`],
    /// [`Error::RecursiveCallback`], [`Error::Unwinding`], or an error delivered to the caller
    /// while it was suspended. A refused call changes nothing.
    pub fn run(&self) -> Result<()> {
        let s = self.check_runnable()?;
        s.refuse_switch(!is_current(&self.inner))?;
        self.insert()?;
        // SAFETY: the current tasklet is running; the target is live, of this thread.
        unsafe { s.switch_to(s.current.get(), self.ptr()) }
    }

    /// The checks of [`insert`](Tasklet::insert), without inserting.
    pub(super) fn check_runnable(&self) -> Result<&'static Scheduler> {
        let s = self.check_thread()?;
        if self.inner.blocked.get() != 0 {
            return Err(Error::RunBlocked);
        }
        if !self.inner.alive() {
            return Err(Error::RunDead);
        }
        Ok(s)
    }

    /// Like [`run`](Tasklet::run), but the caller leaves the run queue (paused): the
    /// primitive for coroutine-style hand-offs. Switching to oneself is a no-op.
    ///
    /// # Errors
    /// As [`run`](Tasklet::run), and [`Error::SwitchOtherThread`].
    pub fn switch(&self) -> Result<()> {
        let s = scheduler();
        if !s.is_this_thread(&self.inner) {
            return Err(Error::SwitchOtherThread);
        }
        if is_current(&self.inner) {
            return s.refuse_switch(false);
        }
        self.check_runnable()?;
        s.refuse_switch(true)?;
        self.insert()?;
        let me = s.current.get();
        // SAFETY: the running tasklet is in the ring.
        unsafe { s.ring_remove(me) };
        // SAFETY: `me` is running; the target is live and of this thread.
        unsafe { s.switch_to(me, self.ptr()) }
    }
}

/// Runs `f` with the current tasklet's `atomic` flag set, restoring it afterwards (Stackless
/// `with stackless.atomic():`): no involuntary switch (preemption) happens inside. Explicit
/// switches still do. (There is no preemption yet, issue 9: today the flag changes nothing.)
///
/// ```
/// use microthread::scheduler::{self, atomic};
///
/// let t = scheduler::spawn(|| 1)?;
/// let n = atomic(|| {
///     assert!(scheduler::current().atomic());
///     scheduler::schedule().unwrap(); // an explicit switch still happens
///     5
/// });
/// assert_eq!((n, t.result::<i32>()), (5, Some(1)));
/// assert!(!scheduler::current().atomic(), "restored");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn atomic<T>(f: impl FnOnce() -> T) -> T {
    let _guard = AtomicGuard::new();
    f()
}

/// Sets the current tasklet's `atomic` flag for its lifetime, then restores the old value;
/// see [`atomic`].
///
/// ```
/// use microthread::scheduler::{current, AtomicGuard};
///
/// let outer = AtomicGuard::new();
/// {
///     let _inner = AtomicGuard::new();
///     assert!(current().atomic());
/// }
/// assert!(current().atomic(), "the inner guard restores what the outer one set");
/// drop(outer);
/// assert!(!current().atomic());
/// ```
#[derive(Debug)]
pub struct AtomicGuard {
    tasklet: Tasklet,
    old: bool,
}

impl AtomicGuard {
    /// Sets `atomic` on the current tasklet until the guard is dropped.
    pub fn new() -> AtomicGuard {
        let tasklet = current();
        let old = tasklet.set_atomic(true);
        AtomicGuard { tasklet, old }
    }
}

impl Default for AtomicGuard {
    fn default() -> Self {
        AtomicGuard::new()
    }
}

impl Drop for AtomicGuard {
    fn drop(&mut self) {
        self.tasklet.set_atomic(self.old);
    }
}
