//! The operations of a [`Tasklet`] handle that move it around the run queue ([`insert`],
//! [`remove`], [`run`], [`switch`]) or ask the scheduler about it, and [`atomic`].
//!
//! [`insert`]: Tasklet::insert
//! [`remove`]: Tasklet::remove
//! [`run`]: Tasklet::run
//! [`switch`]: Tasklet::switch

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
    ///
    /// ```
    /// use microthread::scheduler::{self, current, main, spawn};
    /// assert!(main().is_current());
    /// let t = spawn(|| current().is_current() && !main().is_current())?;
    /// scheduler::run().unwrap();
    /// assert_eq!(t.result::<bool>(), Some(true));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn is_current(&self) -> bool {
        is_current(&self.inner)
    }

    pub(super) fn ptr(&self) -> *const Inner {
        crate::tasklet::Record::as_ptr(&self.inner)
    }

    /// The tasklet after this one in the run queue (Stackless `t.next`): the one that runs
    /// after it in round-robin order. `None` if it is not in the run queue: paused, dead, or
    /// blocked. (Stackless gives a blocked tasklet's neighbours in its channel's queue; here a
    /// channel's queue is not a list of tasklets: [`Channel::queue`] gives its order.) A
    /// tasklet alone in the run queue is its own neighbour.
    ///
    /// Walking `next` from [`current`] lists the run queue in the order it runs,
    /// [`runcount`](super::runcount) tasklets:
    ///
    /// ```
    /// use microthread::scheduler::{self, current, spawn};
    /// let a = spawn(|| ())?;
    /// let b = spawn(|| ())?;
    /// let mut order = vec![current()];
    /// while let Some(n) = order.last().unwrap().next().filter(|n| *n != order[0]) {
    ///     order.push(n);
    /// }
    /// assert_eq!(order, [current(), a.clone(), b.clone()]);
    /// assert_eq!(order.len(), scheduler::runcount());
    /// assert_eq!(a.prev(), Some(current()));
    /// assert!(microthread::Tasklet::new(|| ())?.next().is_none()); // paused
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// [`Channel::queue`]: crate::channel::Channel::queue
    pub fn next(&self) -> Option<Tasklet> {
        let n = self.inner.next.get();
        // SAFETY: a ring member is a live tasklet of this thread (this handle's, since handles
        // are !Send), held by the scheduler.
        (!n.is_null()).then(|| unsafe { Tasklet::from_local(n) })
    }

    /// The tasklet before this one in the run queue (Stackless `t.prev`); `None` when it is
    /// not in the run queue, as [`next`](Tasklet::next).
    ///
    /// ```
    /// use microthread::scheduler::{current, spawn};
    /// let a = spawn(|| ())?;
    /// // New tasklets go to the end of the run queue: just before the current one.
    /// assert_eq!(current().prev(), Some(a.clone()));
    /// assert_eq!(a.next(), Some(current()));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn prev(&self) -> Option<Tasklet> {
        let p = self.inner.prev.get();
        // SAFETY: as in `next`.
        (!p.is_null()).then(|| unsafe { Tasklet::from_local(p) })
    }

    /// The id of the thread the tasklet belongs to (Stackless `t.thread_id`): the same for
    /// every tasklet of a thread and its main tasklet, [`std::thread::current`]'s id there;
    /// `None` once the thread's scheduler has ended (Stackless: -1), which a handle can only
    /// see from a thread-local destructor that runs after that.
    ///
    /// ```
    /// use microthread::scheduler::{main, spawn};
    /// let t = spawn(|| ())?;
    /// assert_eq!(t.thread_id(), Some(std::thread::current().id()));
    /// assert_eq!(t.thread_id(), main().thread_id());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn thread_id(&self) -> Option<std::thread::ThreadId> {
        // SAFETY: a tasklet's owner is its thread's scheduler, leaked: never freed.
        let s = unsafe { &*(self.inner.owner as *const Scheduler) };
        // On the tasklet's thread: handles are !Send.
        s.shared.thread_id_here()
    }

    /// Appends the tasklet to the end of the run queue (just before the current tasklet) if it
    /// is not in it. No switch.
    ///
    /// # Errors
    /// [`Error::RunBlocked`], [`Error::RunDead`].
    ///
    /// ```
    /// use microthread::{scheduler, Error, Tasklet};
    /// let t = Tasklet::new(|| ())?;
    /// t.insert().unwrap();
    /// t.insert().unwrap(); // already scheduled: no-op
    /// assert_eq!(scheduler::runcount(), 2);
    /// assert_eq!(scheduler::current().prev(), Some(t.clone())); // at the end of the queue
    /// scheduler::run().unwrap();
    /// assert!(matches!(t.insert(), Err(Error::RunDead)));
    /// # Ok::<(), std::io::Error>(())
    /// ```
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
    ///
    /// ```
    /// use microthread::{scheduler, spawn, Error};
    /// let t = spawn(|| ())?;
    /// t.remove().unwrap();
    /// assert!(t.paused());
    /// assert_eq!(scheduler::runcount(), 1);
    /// assert!(matches!(scheduler::current().remove(), Err(Error::RemoveCurrent)));
    /// # Ok::<(), std::io::Error>(())
    /// ```
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
    ///
    /// ```
    /// use microthread::{scheduler, spawn};
    /// use std::{cell::RefCell, rc::Rc};
    /// let log = Rc::new(RefCell::new(Vec::new()));
    /// let ts: Vec<_> = ["A", "B", "C"]
    ///     .into_iter()
    ///     .map(|n| {
    ///         let log = log.clone();
    ///         spawn(move || log.borrow_mut().push(n)).unwrap()
    ///     })
    ///     .collect();
    /// // Queue: main, A, B, C. Running B jumps there: B, C, then main; A waits its turn.
    /// ts[1].run().unwrap();
    /// assert_eq!(*log.borrow(), ["B", "C"]);
    /// assert!(ts[0].scheduled());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn run(&self) -> Result<()> {
        scheduler().op_tick()?;
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
    ///
    /// ```
    /// use microthread::scheduler::{self, main, spawn};
    /// let t = spawn(|| {
    ///     let paused = main().paused();
    ///     main().switch().unwrap(); // hand back; this tasklet is paused now
    ///     paused
    /// })?;
    /// t.switch().unwrap(); // main leaves the run queue; t runs
    /// assert!(t.paused() && t.alive());
    /// t.insert().unwrap();
    /// scheduler::run().unwrap();
    /// assert_eq!(t.result::<bool>(), Some(true));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn switch(&self) -> Result<()> {
        let s = scheduler();
        s.op_tick()?;
        if !s.is_this_thread(&self.inner) {
            return Err(Error::SwitchOtherThread);
        }
        if is_current(&self.inner) {
            return s.refuse_switch(false);
        }
        self.check_runnable()?;
        s.refuse_switch(true)?;
        // Read while the caller is still in the ring: a remote run's target takes its place.
        s.read_mail_before_choosing();
        self.insert()?;
        let me = s.current.get();
        // SAFETY: the running tasklet is in the ring.
        unsafe { s.ring_remove(me) };
        // SAFETY: `me` is running; the target is live and of this thread.
        unsafe { s.switch_after_mail(me, self.ptr()) }
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
