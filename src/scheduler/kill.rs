//! Kill, throw and what they leave pending: delivering a pending error or kill when a tasklet
//! resumes, unwinding a killed tasklet, and a tasklet's end, which routes its uncaught error to
//! main or the innermost `run()` caller.

use std::panic;
use std::ptr;
use std::sync::atomic::Ordering;

use super::switch::{fatal, DEAD};
use super::{is_current, Scheduler};
use crate::context::Context;
use crate::error::{Error, Result, TaskletExit};
use crate::tasklet::{Inner, Life, Pending, Tasklet};

impl Tasklet {
    /// Ends the tasklet now: it unwinds from its suspension point with every destructor on
    /// its stack run, then ends silently; the caller stays scheduled and continues when its
    /// turn comes. A tasklet that never ran ends without running its closure (it is switched
    /// to like any other); killing a dead one does nothing; killing the current tasklet
    /// unwinds the caller.
    ///
    /// Killing a main tasklet unwinds the thread's own stack with [`TaskletExit`] from the
    /// call it is suspended in (Stackless raises `TaskletExit` in main): a program may catch
    /// it; if nothing does, the thread ends, and a line on stderr says why.
    ///
    /// A kill is never lost or replaced: an error thrown into a tasklet with a kill pending
    /// is dropped, and the kill is delivered. Killing a [bound](Tasklet::bound) tasklet,
    /// which is not alive, does nothing (it stays bound).
    ///
    /// ```
    /// use microthread::scheduler::{self, schedule, spawn};
    /// use std::{cell::RefCell, rc::Rc};
    ///
    /// let log = Rc::new(RefCell::new(Vec::new()));
    /// struct Cleanup(Rc<RefCell<Vec<&'static str>>>);
    /// impl Drop for Cleanup {
    ///     fn drop(&mut self) { self.0.borrow_mut().push("cleaned up") }
    /// }
    /// let c = Cleanup(log.clone());
    /// let t = spawn(move || {
    ///     let _c = c;
    ///     loop { schedule().unwrap(); }
    /// })?;
    /// schedule().unwrap(); // t runs once
    /// t.kill().unwrap(); // t unwinds now, its destructors run, then main continues
    /// log.borrow_mut().push("main continues");
    /// assert!(!t.alive());
    /// assert_eq!(*log.borrow(), ["cleaned up", "main continues"]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::SwitchTrap`] or [`Error::Unwinding`] (the caller may not switch now),
    /// [`Error::RecursiveCallback`] from inside the schedule callback, or an error delivered
    /// to the caller while it was suspended. A refused kill changes nothing.
    pub fn kill(&self) -> Result<()> {
        self.kill_with(false)
    }

    /// Like [`kill`](Tasklet::kill), but the tasklet only becomes runnable (at the end of the
    /// queue) and unwinds when its turn comes; the caller continues at once.
    ///
    /// ```
    /// use microthread::scheduler::{self, schedule_remove, spawn};
    /// let t = spawn(|| schedule_remove().unwrap())?;
    /// scheduler::run().unwrap(); // t pauses itself
    /// t.kill_pending().unwrap();
    /// assert!(t.alive() && t.scheduled()); // not yet: it unwinds when its turn comes
    /// scheduler::run().unwrap();
    /// assert!(!t.alive());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::RecursiveCallback`] from inside the schedule callback.
    pub fn kill_pending(&self) -> Result<()> {
        self.kill_with(true)
    }

    pub(super) fn kill_with(&self, pending: bool) -> Result<()> {
        let s = self.check_thread()?;
        s.refuse_switch(false)?;
        if is_current(&self.inner) {
            unwind_killed(&self.inner);
        }
        match self.inner.life.get() {
            // Not alive: nothing to end (a bound one keeps its closure; `unbind` drops it).
            Life::Dead | Life::Bound => Ok(()),
            // One that never ran is switched to (or made runnable) like any other, as in
            // Stackless: it ends at its first instruction, without running its closure.
            Life::New | Life::Started => self.deliver(s, Pending::Kill, pending),
        }
    }

    /// Raises `error` in the tasklet at its suspension point, as the `Err` of the call it is
    /// suspended in, and switches to it now (the caller stays scheduled). A blocked tasklet is
    /// taken out of its channel first. Throwing to the current tasklet returns the error to
    /// the caller.
    ///
    /// An error replaces an earlier pending error (Stackless), whose payload is dropped once
    /// the operation is done; it never replaces a pending kill (it is dropped instead).
    ///
    /// A tasklet that never ran ends at once, without running its closure, and the error is
    /// that tasklet's uncaught error, as in Stackless (where it is raised at the tasklet's
    /// first instruction): the [error handler](crate::scheduler::set_error_handler) sees it,
    /// and unless the handler swallows it, it is routed to the innermost `run()` caller or
    /// main as [`Error::Panicked`] with the tasklet's id and, as the payload, what an
    /// [`Error::Thrown`] carries, or for any other variant the error itself, boxed.
    ///
    /// ```
    /// use microthread::scheduler::{self, schedule_remove, spawn};
    /// use microthread::Error;
    /// use std::{cell::RefCell, rc::Rc};
    ///
    /// let got = Rc::new(RefCell::new(None));
    /// let g = got.clone();
    /// let t = spawn(move || {
    ///     let e = schedule_remove().unwrap_err();
    ///     *g.borrow_mut() = e.payload_str().map(str::to_owned);
    /// })?;
    /// scheduler::run().unwrap(); // t waits in schedule_remove
    /// t.throw(Error::Thrown(Box::new("stop"))).unwrap(); // t runs now, then main continues
    /// assert_eq!(got.borrow().as_deref(), Some("stop"));
    ///
    /// // Into a tasklet that never ran: its uncaught error, routed to main.
    /// let fresh = spawn(|| unreachable!())?;
    /// match fresh.throw(Error::Thrown(Box::new("early"))) {
    ///     Err(Error::Panicked { tasklet, payload }) => {
    ///         assert_eq!(tasklet, fresh.id());
    ///         assert_eq!(payload.downcast_ref::<&str>(), Some(&"early"));
    ///     }
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::ThrowDead`], [`Error::SwitchTrap`], [`Error::Unwinding`],
    /// [`Error::RecursiveCallback`], the thrown error itself if the target is the caller, or
    /// an error delivered to the caller while it was suspended. A refused throw changes
    /// nothing.
    pub fn throw(&self, error: Error) -> Result<()> {
        self.throw_with(error, false)
    }

    /// Like [`throw`](Tasklet::throw), but the target only becomes runnable; the caller
    /// continues at once.
    ///
    /// ```
    /// use microthread::scheduler::{self, schedule_remove, spawn};
    /// use microthread::Error;
    /// use std::{cell::Cell, rc::Rc};
    ///
    /// let thrown = Rc::new(Cell::new(false));
    /// let th = thrown.clone();
    /// let t = spawn(move || th.set(schedule_remove().is_err()))?;
    /// scheduler::run().unwrap();
    /// t.throw_pending(Error::Thrown(Box::new(1))).unwrap();
    /// assert!(!thrown.get() && t.scheduled()); // delivered when its turn comes
    /// scheduler::run().unwrap();
    /// assert!(thrown.get());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::ThrowDead`], [`Error::RecursiveCallback`], or the thrown error itself if the
    /// target is the caller.
    pub fn throw_pending(&self, error: Error) -> Result<()> {
        self.throw_with(error, true)
    }

    pub(super) fn throw_with(&self, error: Error, pending: bool) -> Result<()> {
        let s = self.check_thread()?;
        s.refuse_switch(false)?;
        if is_current(&self.inner) {
            return Err(error);
        }
        if !self.inner.alive() {
            return Err(Error::ThrowDead);
        }
        self.deliver(s, Pending::Error(error), pending)
    }

    /// Makes `what` pending in this live tasklet (by the precedence of `Pending`: a kill is
    /// never replaced) and makes it runnable; switches to it unless `pending`.
    pub(super) fn deliver(&self, s: &Scheduler, what: Pending, pending: bool) -> Result<()> {
        if !pending {
            s.refuse_switch(true)?;
        }
        if let Some(lost) = self.inner.set_pending(what) {
            s.defer_drop(lost);
        }
        if pending {
            // SAFETY: live, of this thread.
            unsafe { s.make_runnable(self.ptr()) };
            s.drop_garbage();
            Ok(())
        } else {
            // SAFETY: the current tasklet is running; the target is live, of this thread.
            unsafe { s.switch_to(s.current.get(), self.ptr()) }
        }
    }
}

impl Scheduler {
    /// Stackless's `slp_tasklet_end`: the current tasklet `me` has finished. Never returns.
    ///
    /// # Safety
    /// - `me` must be the running, non-main tasklet, on its own stack.
    #[inline(always)]
    pub(super) unsafe fn end(&self, me: *const Inner, error: Option<Error>) -> ! {
        // SAFETY: `me` is running; its list reference goes to whoever runs next.
        let m = unsafe { &*me };
        let mut next = 'chosen: {
            let mut error = error;
            // SAFETY: `me` is running, hence current and in the ring.
            let alone = unsafe { (*me).next.get() } == me;
            if alone && error.is_none() {
                let wake = self.innermost_watchdog_or_main();
                // The common end of a `run()`: the last runnable tasklet ends with no mail
                // and nobody asleep, and the `run` caller (or main) waits floating. The
                // loop of `wait_for_other_threads` would find just that on its first look
                // (after `me` left the ring), and return the waker, which is not blocked (so
                // no error), to be inserted: `wake` takes `me`'s place in the ring at once.
                // SAFETY: watchdogs and main are live.
                if unsafe { self.nothing_to_wait_for(wake) } {
                    m.life.set(Life::Dead);
                    // SAFETY: `me` is current and alone in the ring, `wake` floating; dead
                    // for other threads at once (remote state 0), as `unregister` publishes.
                    unsafe {
                        self.ring_replace_alone(me, 0, wake);
                        self.unregister_dead(me);
                    }
                    break 'chosen wake;
                }
            }
            // SAFETY: `me` is running, hence current and in the ring.
            // Dead for other threads at once (remote state 0), as `unregister` publishes.
            let mut next = unsafe { self.ring_remove_current_as(me, 0) };
            // Dead from here on: mail read below (a remote kill, insert or throw) leaves it
            // alone.
            m.life.set(Life::Dead);
            // Out of the list now (nothing below walks it for `me`: a dump skips the dead).
            // SAFETY: `me` is a list member, its remote state already 0.
            unsafe { self.unregister_dead(me) };
            if next.is_null() && error.is_none() {
                // SAFETY: the running tasklet's stack stays valid until its last switch.
                next = unsafe { self.wait_for_other_threads() };
            }
            if next.is_null() {
                next = self.innermost_watchdog_or_main();
                // SAFETY: watchdogs and main are live.
                let blocked = unsafe { (*next).blocked.get() };
                if blocked != 0 && error.is_none() {
                    error = Some(if blocked < 0 {
                        Error::MainReceivingWithoutSender
                    } else {
                        Error::MainSendingWithoutReceiver
                    });
                }
            }
            if let Some(e) = error {
                next = self.innermost_watchdog_or_main();
                // SAFETY: as above. What the error replaces is dropped after the switch.
                if let Some(lost) = unsafe { (*next).set_pending(Pending::Error(e)) } {
                    self.defer_drop(lost);
                }
            }
            // SAFETY: `next` is live.
            unsafe { self.make_runnable(next) };
            next
        };
        if self.hooks.get() != 0 {
            if self.hooks.get() & super::preempt::WATCHDOG_HOOK != 0 {
                // SAFETY: `me` runs, `next` is a ring member.
                next = unsafe { self.watchdog_on_switch(me, next) };
            }
            self.call_callback(me, next);
            if self.hooks.get() & super::preempt::WATCHDOG_HOOK != 0 {
                // SAFETY: `next` is live.
                unsafe { self.watchdog_restart_slice(next) };
            }
        }
        self.current.set(next);
        // SAFETY: `next` is live and not running.
        let n = unsafe { &*next };
        let Some(ctx) = n.context.take() else {
            // A lazy tasklet that never ran (see `lazy`): laid out, then the same exit.
            // SAFETY: forwarded.
            unsafe { end_into_lazy(me, n) }
        };
        // SAFETY: forwarded.
        unsafe { exit_into(m, n, ctx, me) }
    }

    /// Whether a tasklet ending with the ring empty has nothing to wait for before it wakes
    /// `wake` (the innermost `run` caller or main): no mail, no sleeper, and `wake` floating.
    /// What [`Scheduler::wait_for_other_threads`] would find on its first look; one load
    /// each, inline.
    ///
    /// # Safety
    /// - `wake` must be live (a watchdog or main).
    #[inline(always)]
    unsafe fn nothing_to_wait_for(&self, wake: *const Inner) -> bool {
        !self.shared.has_mail.load(Ordering::Relaxed)
            && self.timer_poll.get() == 0
            // SAFETY: caller vouches for `wake`.
            && unsafe { (*wake).floating() }
    }

    /// The ring is empty and a tasklet is ending: if whoever it would wake is blocked, sleep
    /// (still on the dying tasklet's stack) while other threads may make something runnable
    /// here. Returns the new current tasklet, the waker (the innermost `run` caller or
    /// main) if it is floating, or null if there is none (or nobody awake: the waker is
    /// blocked). `end` takes the common case, nothing to wait for, without the call.
    ///
    /// # Safety
    /// - Only from `end`, with the ring empty.
    #[inline(never)]
    unsafe fn wait_for_other_threads(&self) -> *const Inner {
        // A sleep's refusal is the caller's to report (to the waker, if it is blocked).
        self.wait_for_runnable().unwrap_or(ptr::null())
    }
}

/// The end of `end` when the next tasklet is lazy: lays it out and exits into it. Out of
/// line, and finding the scheduler itself, so that `end`'s common path stays as it was.
///
/// # Safety
/// - As the exit in [`Scheduler::end`]: `me` is the dead, running tasklet; `n` the next.
#[cold]
#[inline(never)]
unsafe fn end_into_lazy(me: *const Inner, n: &Inner) -> ! {
    let ctx = super::scheduler().lay_out(n);
    // SAFETY: forwarded; `me` is still the (dead) running tasklet, live until `n` runs.
    unsafe { exit_into(&*me, n, ctx, me) }
}

/// The last switch out of the dead tasklet `m` (`me`) into `n`, whose context is `ctx`.
///
/// # Safety
/// - As in [`Scheduler::end`], of which it is the end.
#[inline(always)]
unsafe fn exit_into(m: &Inner, n: &Inner, ctx: Context, me: *const Inner) -> ! {
    // SAFETY: the last switch out of this stack: `next` releases it (after_switch with the
    // DEAD mark) and nothing resumes this frame again. `next` waits in a plain frame (the
    // scheduler's switches), unless one side preserves the FP environment.
    unsafe {
        if m.preserve_fp_env | n.preserve_fp_env {
            Context::end_at_next_switch();
            ctx.switch_fpenv(me as usize | DEAD);
            fatal("a dead tasklet was resumed")
        } else {
            ctx.exit(me as usize | DEAD)
        }
    }
}

/// Delivers what is pending for the tasklet that just resumed: an error, or a kill.
#[inline(always)]
pub(crate) fn take_pending(me: &Inner) -> Result<()> {
    match me.pending.take() {
        None => Ok(()),
        Some(p) => deliver_pending(me, *p),
    }
}

#[cold]
pub(super) fn deliver_pending(me: &Inner, p: Pending) -> Result<()> {
    match p {
        Pending::Error(e) => Err(e),
        Pending::Kill => unwind_killed(me),
    }
}

/// Unwinds the running tasklet `me` with [`TaskletExit`]. For a main tasklet that is the
/// thread's own stack: if nothing catches it the thread (or, on the process's main thread,
/// the process) ends with it, so say so on stderr first rather than end without a word.
#[cold]
pub(super) fn unwind_killed(me: &Inner) -> ! {
    if me.is_main {
        let thread = std::thread::current();
        let line = format!(
            "microthread: the main tasklet (id {}) of thread '{}' was killed: unwinding the \
             thread's stack with TaskletExit\n",
            me.id,
            thread.name().unwrap_or("<unnamed>")
        );
        // Straight to fd 2, like the overflow report: not swallowed by an output capture.
        // SAFETY: write(2) only reads the buffer.
        unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
    }
    panic::resume_unwind(Box::new(TaskletExit))
}
