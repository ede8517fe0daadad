//! The switch and what runs around it: [`schedule`] and [`schedule_remove`], the fast and the
//! slow path of every switch (`switch_to`), the checks that may refuse one (`refuse_switch`
//! and the hooks word), the context switch between tasklets, what every resumed tasklet
//! does first (`after_switch`, `resumed`), and blocking when nothing is runnable.

use std::any::Any;
use std::ptr;
use std::sync::atomic::Ordering;

use super::callback::CHANNEL_HOOK;
use super::kill::deliver_pending;
use super::preempt::{watchdog_active, WATCHDOG_HOOK};
#[cfg(doc)]
use super::run;
use super::{scheduler, Scheduler};
use crate::context::{Context, Transfer};
use crate::error::{Error, Result};
use crate::tasklet::{Inner, Pending};

/// The hooks bit of an ended scheduler ([`Scheduler::refresh_hooks`] sets it from
/// `shared.ended()`, right after the only place that ends it, its own thread's `close`).
pub(super) const ENDED_HOOK: u32 = 1 << 3;

/// The low bit of a switch's word marks a dying tasklet whose stack the next one releases.
pub(super) const DEAD: usize = 1;

/// Called by every context that a switch resumes, with that switch's transfer: records the
/// switcher's context, or releases the stack of a tasklet that just died.
///
/// # Safety
/// - `t` must be the transfer of a switch made by `Scheduler::transfer` or `end` of `s`.
#[inline(always)]
pub(super) unsafe fn after_switch(s: &Scheduler, t: Transfer) {
    if t.data & DEAD == 0 {
        // SAFETY: the switcher passed its own live Inner, which it keeps alive while
        // suspended (it is in the list).
        unsafe { (*(t.data as *const Inner)).context.set(Some(t.from)) };
    } else {
        // A dying tasklet passes a pointer to itself; its last frame is dead, so its stack
        // can go back to the pool now that we run elsewhere.
        let dead = (t.data & !DEAD) as *const Inner;
        // `t.from`, the dead frame's context, is plain data: nothing to release.
        // SAFETY: the dead tasklet's local reference is still held: by the scheduler, until
        // just below.
        let d = unsafe { &*dead };
        // A stack its record lives on stays in the record until its last reference goes
        // (then freed with it, see `Record`); any other goes back to the pool now.
        if !d.stack_is_home.get() {
            if let Some(stack) = d.stack.take() {
                // SAFETY: held until just below; its last frame is dead.
                unsafe { crate::tasklet::Record::keep_home(dead, stack) };
            }
        }
        // Stackless: `tempval` is None once the tasklet has ended. Emptied here, on its own
        // thread, after the schedule callback (which may have set it) and outside the switch.
        // SAFETY: a Cell of this thread that nothing borrows: a plain read.
        if unsafe { (*d.tempval.as_ptr()).is_some() } {
            if let Some(v) = d.tempval.take() {
                s.defer_drop(v);
            }
        }
        d.held.set(false);
        if d.handles.get() == 0 {
            // Nobody can ask for the result: it goes with the local reference, but on this
            // thread (another thread may hold the last counted reference) and not here, in
            // the middle of a switch.
            if let Some(result) = d.result.take() {
                s.defer_drop(result);
            }
            // SAFETY: nobody else holds the local reference: release it, once.
            crate::tasklet::recycle(unsafe { crate::tasklet::Record::from_raw(dead) });
        }
    }
}

impl Scheduler {
    /// Stackless's `slp_schedule_task`: switch from `prev` (the running tasklet, in the ring
    /// or not) to `next` (`None`: nothing is runnable; block). Every switch passes here; the
    /// common case (a runnable target, no trap or callback) takes the first branch.
    ///
    /// # Safety
    /// - `prev` must be the running tasklet; `next`, if any, a live tasklet of this thread.
    ///
    /// Callers check [`Scheduler::refuse_switch`] before they change any state, so that a
    /// refused operation leaves no trace; the checks here only back that up.
    #[inline(always)]
    pub(super) unsafe fn switch_to(&self, prev: *const Inner, next: *const Inner) -> Result<()> {
        if self.shared.has_mail.load(Ordering::Relaxed) {
            self.read_mail();
        }
        // SAFETY: forwarded.
        unsafe { self.switch_after_mail(prev, next) }
    }

    /// [`Scheduler::switch_to`] for a caller that has just read the mail (before it chose
    /// `next` from the ring: see `mail`). Mail arriving since waits for the next switch.
    ///
    /// # Safety
    /// - As `switch_to`.
    #[inline(always)]
    pub(super) unsafe fn switch_after_mail(
        &self,
        prev: *const Inner,
        next: *const Inner,
    ) -> Result<()> {
        self.poll_timers();
        // A channel callback is nothing to a switch.
        if self.hooks.get() & !CHANNEL_HOOK == 0
            && !next.is_null()
            && prev != next
            // SAFETY: `next` is checked for null before it is read.
            && unsafe { (*next).in_ring() }
            && !std::thread::panicking()
        {
            // SAFETY: both are live tasklets of this thread, `prev` running, `next` in the ring.
            unsafe { self.transfer(prev, next) };
            // SAFETY: `prev` is running again.
            return self.resumed(unsafe { &*prev });
        }
        // SAFETY: forwarded.
        unsafe { self.switch_to_slow(prev, next) }
    }

    /// [`Scheduler::switch_after_mail`] for a caller that knows no hook is on (so the
    /// switch trap, the callbacks and the watchdog have nothing to do), that `next`, if not
    /// null, is in the ring, with `NOT_UNWINDING` that the stack does not unwind, and without
    /// `MAY_BE_PREV` that `next` is not `prev`: only what remains is tested (a blocking
    /// tasklet may find the ring empty, or, if it read mail, itself woken back into it).
    ///
    /// # Safety
    /// - As `switch_to`; `hooks` must be zero, `next` null or in the ring, with
    ///   `NOT_UNWINDING`, [`std::thread::panicking`] false, and without `MAY_BE_PREV`,
    ///   `next` not `prev`.
    #[inline(always)]
    pub(super) unsafe fn switch_quiet<const NOT_UNWINDING: bool, const MAY_BE_PREV: bool>(
        &self,
        prev: *const Inner,
        next: *const Inner,
    ) -> Result<()> {
        debug_assert!(self.hooks.get() == 0);
        debug_assert!(!NOT_UNWINDING || !std::thread::panicking());
        debug_assert!(MAY_BE_PREV || prev != next);
        self.poll_timers();
        // Left: an empty ring (block), or the mail woke `prev` back into an empty ring (it
        // continues), or an unwinding stack (refused); all rare.
        if !next.is_null()
            && (!MAY_BE_PREV || prev != next)
            && (NOT_UNWINDING || !std::thread::panicking())
        {
            // SAFETY: `next` is not null.
            debug_assert!(unsafe { (*next).in_ring() });
            // SAFETY: both are live tasklets of this thread, `prev` running, `next` in the ring.
            unsafe { self.transfer(prev, next) };
            // SAFETY: `prev` is running again.
            return self.resumed(unsafe { &*prev });
        }
        // SAFETY: forwarded.
        unsafe { self.switch_to_slow(prev, next) }
    }

    #[inline(never)]
    pub(super) unsafe fn switch_to_slow(
        &self,
        prev: *const Inner,
        next: *const Inner,
    ) -> Result<()> {
        if next.is_null() {
            // SAFETY: forwarded.
            return unsafe { self.block(prev) };
        }
        self.refuse_switch(prev != next)?;
        // SAFETY: forwarded.
        unsafe { self.make_runnable(next) };
        let next = if self.hooks.get() & WATCHDOG_HOOK != 0 {
            // SAFETY: `prev` runs, `next` is now a ring member.
            unsafe { self.watchdog_on_switch(prev, next) }
        } else {
            next
        };
        if prev != next {
            self.call_callback(prev, next);
            if self.hooks.get() & WATCHDOG_HOOK != 0 {
                // SAFETY: `next` is live.
                unsafe { self.watchdog_restart_slice(next) };
            }
            // SAFETY: both are live tasklets of this thread, `prev` running.
            unsafe { self.transfer(prev, next) };
        } else {
            // Back in the ring (if it had left it), the running tasklet is the cursor again.
            self.current.set(prev);
        }
        // SAFETY: `prev` is running again.
        self.resumed(unsafe { &*prev })
    }

    /// Whether the running tasklet may switch now; checked by every operation before it
    /// changes anything. Inside the schedule callback no scheduling operation may run at all;
    /// otherwise only a switch to another tasklet (`switching`) can be refused: under a
    /// switch trap, or while the running tasklet's stack unwinds (a destructor run by a panic
    /// or a kill: the thread's panic state cannot move to another tasklet).
    #[inline]
    pub(super) fn refuse_switch(&self, switching: bool) -> Result<()> {
        // Both refusals by hooks (a callback running, a switch trap) are bits of the hooks
        // word, refreshed whenever they change: one load when no hook is on.
        if self.hooks.get() != 0 {
            self.refuse_by_hooks(switching)?;
        }
        if switching && std::thread::panicking() {
            return Err(Error::Unwinding);
        }
        Ok(())
    }

    /// The end of every switch back into `me`: drops what came due while the scheduler was
    /// busy, then delivers what is pending for `me`.
    #[inline(always)]
    pub(super) fn resumed(&self, me: &Inner) -> Result<()> {
        // SAFETY: a Cell of this thread that nothing borrows: a plain read.
        if unsafe { (*me.pending.as_ptr()).is_none() } && !self.has_garbage.get() {
            // The common case: nothing to drop or deliver (no store to clear `pending`).
            return Ok(());
        }
        // Taken first: a `Drop` that calls into the scheduler must not receive it instead.
        let pending = me.pending.take();
        if self.has_garbage.get() {
            self.drop_garbage();
        }
        match pending {
            None => Ok(()),
            Some(p) => deliver_pending(me, *p),
        }
    }

    pub(super) fn refresh_hooks(&self) {
        // SAFETY (of the read below): the callback cell is only swapped, never borrowed.
        let cb = self.callback.take();
        let has_cb = cb.is_some();
        self.callback.set(cb);
        let hooks = (self.switch_trap.get() != 0) as u32
            | (has_cb as u32) << 1
            | (self.in_callback.get() as u32) << 2
            | if self.shared.ended() { ENDED_HOOK } else { 0 }
            | if watchdog_active() { WATCHDOG_HOOK } else { 0 }
            | if self.channel_hooks.get() {
                CHANNEL_HOOK
            } else {
                0
            };
        self.hooks.set(hooks);
    }

    /// The actual switch: `current := next`, then into `next`'s context.
    ///
    /// # Safety
    /// - `prev` must be running, `next` suspended (or new), both of this thread.
    #[inline(always)]
    pub(super) unsafe fn transfer(&self, prev: *const Inner, next: *const Inner) {
        self.current.set(next);
        // SAFETY: caller vouches for both.
        let (p, n) = unsafe { (&*prev, &*next) };
        let fp = p.preserve_fp_env | n.preserve_fp_env;
        // A suspended tasklet always has a saved context, unless it is lazy and never ran
        // (see `lazy`): then it is laid out now, off the hot path.
        let t = match n.context.take() {
            // SAFETY: `ctx` is `next`'s suspended frame on its live stack, consumed here;
            // the word is our own Inner, which stays alive in the list while we are
            // suspended.
            Some(ctx) => unsafe { switch_between_tasklets(ctx, prev as usize, fp) },
            // SAFETY: as above, for the context laid out.
            None => unsafe { self.switch_into_lazy(prev, n, fp) },
        };
        // SAFETY: every switch into a tasklet comes from `transfer` or `end`.
        unsafe { after_switch(self, t) };
    }

    /// [`Scheduler::transfer`]'s switch into a lazy tasklet that never ran: laid out, then
    /// entered. Out of line, so that the common switch stays as it was.
    ///
    /// # Safety
    /// - As `transfer`, with `n` the lazy tasklet (current already).
    #[cold]
    #[inline(never)]
    unsafe fn switch_into_lazy(&self, prev: *const Inner, n: &Inner, fp: bool) -> Transfer {
        let ctx = self.lay_out(n);
        // SAFETY: the context just laid out on `n`'s fresh stack; the word is our own Inner.
        unsafe { switch_between_tasklets(ctx, prev as usize, fp) }
    }

    /// Stackless's `schedule_task_block`: `prev` stopped being runnable and the ring is empty.
    ///
    /// # Safety
    /// - `prev` must be the running tasklet, out of the ring.
    pub(super) unsafe fn block(&self, prev: *const Inner) -> Result<()> {
        match self.wait_for_runnable() {
            // SAFETY: `prev` is running; `next` is a ring member or the floating waker, live.
            Ok(next) => unsafe { self.switch_to(prev, next) },
            Err(e) => {
                // SAFETY: `prev` is running.
                if let Some(lost) = unsafe { (*prev).set_pending(Pending::Error(e)) } {
                    self.defer_drop(lost);
                }
                // Puts `prev` back in the ring (out of its channel) and raises the error in it.
                // SAFETY: forwarded.
                unsafe { self.switch_to(prev, prev) }
            }
        }
    }

    /// The ring is empty: reads mail and expires timers until a tasklet here is runnable
    /// (another thread made it so, or a sleeper's time came), waiting for the earliest
    /// deadline or for mail meanwhile, and returns it; or returns the innermost `run` caller
    /// (or main) if it is floating. `Err`: nothing here can run and [`Shared::sleep`]
    /// refused to wait for another thread (none is awake, or the scheduler has ended).
    ///
    /// [`Shared::sleep`]: super::thread::Shared::sleep
    #[inline(always)]
    pub(super) fn wait_for_runnable(&self) -> Result<*const Inner> {
        loop {
            if self.shared.has_mail.load(Ordering::Relaxed) {
                self.read_mail();
            }
            self.expire_timers_if_any();
            let next = self.current.get();
            if !next.is_null() {
                return Ok(next);
            }
            // Someone sleeps: wait for the earliest deadline (or mail), then look again.
            if self.wait_for_timer() {
                continue;
            }
            let wake = self.innermost_watchdog_or_main();
            // SAFETY: watchdogs and main are live.
            if unsafe { (*wake).floating() } {
                return Ok(wake);
            }
            // Nothing runnable here: wait for another thread to make something runnable.
            self.shared.sleep()?;
        }
    }
}

/// The switch between tasklets, inlined at each of its call sites. It is entered and left by
/// jumps (`Context::switch_jump`): tasklets suspend at different places (main in its loop, a
/// tasklet in its own), so a switch that returned by `ret`, or into a shared function that
/// did, would pop the return address the *other* tasklet's calls pushed and mispredict on
/// every switch between tasklets whose call sites differ (~10 ns each on AMD EPYC; the
/// asymmetric `schedule()` row). Leaving the return-address predictor alone, the resumed
/// tasklet continues where it was with no return at all until it leaves the scheduler's
/// (inlined) code; a full frame, resumable by every full switch and by `exit`.
///
/// # Safety
/// - As `Context::switch`.
#[inline(always)]
unsafe fn switch_between_tasklets(ctx: Context, data: usize, fpenv: bool) -> Transfer {
    if fpenv {
        // SAFETY: forwarded.
        unsafe { ctx.switch_fpenv_jump(data) }
    } else {
        // SAFETY: forwarded.
        unsafe { ctx.switch_jump(data) }
    }
}

pub(super) fn fatal(why: &str) -> ! {
    eprintln!("microthread: {why}; aborting");
    std::process::abort()
}

/// Yields to the next tasklet in the run queue; the caller stays in it and runs again after
/// one full round. A no-op if the caller is the only runnable tasklet.
///
/// # Errors
/// [`Error::SwitchTrap`], [`Error::Unwinding`], [`Error::RecursiveCallback`], or an error
/// delivered to the caller while it was suspended.
///
/// ```
/// use microthread::scheduler::{self, spawn};
/// use std::{cell::RefCell, rc::Rc};
/// let log = Rc::new(RefCell::new(Vec::new()));
/// let l = log.clone();
/// spawn(move || l.borrow_mut().push("other"))?;
/// log.borrow_mut().push("main");
/// scheduler::schedule().unwrap(); // the other tasklet runs, then main again
/// log.borrow_mut().push("main again");
/// assert_eq!(*log.borrow(), ["main", "other", "main again"]);
/// scheduler::schedule().unwrap(); // alone: a no-op
/// # Ok::<(), std::io::Error>(())
/// ```
#[inline]
pub fn schedule() -> Result<()> {
    let s = scheduler();
    s.op_tick()?;
    s.read_mail_before_choosing();
    let me = s.current.get();
    // SAFETY: `me` is running and in the ring, so `next` is a live ring member.
    unsafe { s.switch_after_mail(me, (*me).next.get()) }
}

/// Like [`schedule`], but the caller leaves the run queue (paused) and runs again only when
/// someone inserts, runs or switches to it. If it was the last runnable tasklet, the
/// innermost [`run`] caller (or main) is woken; if it is main and alone, this returns at once.
///
/// # Errors
/// As [`schedule`], and [`Error::Deadlock`].
///
/// ```
/// use microthread::scheduler::{self, spawn};
/// let t = spawn(|| {
///     scheduler::schedule_remove().unwrap(); // paused until someone inserts it
///     "resumed"
/// })?;
/// scheduler::run().unwrap(); // run() returns: nothing is runnable
/// assert!(t.paused());
/// t.insert().unwrap();
/// scheduler::run().unwrap();
/// assert_eq!(t.result::<&str>(), Some("resumed"));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn schedule_remove() -> Result<()> {
    let s = scheduler();
    s.op_tick()?;
    let me = s.current.get();
    // It may switch (and even when alone it may sleep), so every refusal applies.
    s.refuse_switch(true)?;
    s.read_mail_before_choosing();
    // SAFETY: `me` is running, in the ring.
    unsafe {
        let next = if (*me).next.get() == me {
            ptr::null()
        } else {
            (*me).next.get()
        };
        s.ring_remove(me);
        s.switch_after_mail(me, next)
    }
}

/// [`schedule`] passing a value (Stackless `schedule(retval)`): the value goes into the
/// caller's `tempval`, and the call returns what is in it when the caller resumes: what
/// another tasklet put there meanwhile with [`Tasklet::set_tempval`], else `value` itself
/// (or `()`, Stackless's `None`, if someone took it and put nothing back).
///
/// # Errors
/// As [`schedule`]. The value then stays in the caller's `tempval` (take it back with
/// `current().take_tempval()`), as in Stackless.
///
/// ```
/// use microthread::scheduler::{self, current, spawn};
/// let me = current();
/// spawn(move || me.set_tempval(Box::new("from the other tasklet")))?;
/// let got = scheduler::schedule_with(Box::new("mine")).unwrap();
/// assert_eq!(*got.downcast::<&str>().unwrap(), "from the other tasklet");
/// // Nobody touches it: our own value comes back.
/// let got = scheduler::schedule_with(Box::new(7u8)).unwrap();
/// assert_eq!(*got.downcast::<u8>().unwrap(), 7);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// [`Tasklet::set_tempval`]: crate::Tasklet::set_tempval
pub fn schedule_with(value: Box<dyn Any>) -> Result<Box<dyn Any>> {
    through_tempval(value, schedule)
}

/// [`schedule_remove`] passing a value (Stackless `schedule_remove(retval)`): returns what is
/// in the caller's `tempval` when someone inserts it again, as [`schedule_with`]. The usual
/// way to "return" a value to a paused tasklet: `t.set_tempval(v); t.insert()`.
///
/// # Errors
/// As [`schedule_remove`]; the value then stays in the caller's `tempval`.
///
/// ```
/// use microthread::scheduler::{self, spawn};
/// let t = spawn(|| *scheduler::schedule_remove_with(Box::new(0)).unwrap().downcast::<i32>().unwrap())?;
/// scheduler::run().unwrap(); // t is paused inside schedule_remove_with
/// t.set_tempval(Box::new(5));
/// t.insert().unwrap();
/// scheduler::run().unwrap();
/// assert_eq!(t.result::<i32>(), Some(5));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn schedule_remove_with(value: Box<dyn Any>) -> Result<Box<dyn Any>> {
    through_tempval(value, schedule_remove)
}

/// Puts `value` in the running tasklet's `tempval`, runs `op`, and takes the `tempval`.
fn through_tempval(value: Box<dyn Any>, op: fn() -> Result<()>) -> Result<Box<dyn Any>> {
    let s = scheduler();
    // SAFETY: the running tasklet is live, and stays so while suspended (it is in the list).
    let me = unsafe { &*s.current.get() };
    // What it replaces is dropped here, where nothing is half-changed.
    drop(me.tempval.replace(Some(value)));
    op()?;
    Ok(me.tempval.take().unwrap_or_else(|| Box::new(())))
}
