//! The round-robin scheduler: one per OS thread, Stackless Python's semantics.
//!
//! Each thread gets a scheduler the first time it uses one (lazily). The thread's own stack
//! is its **main tasklet**. Runnable tasklets form a **ring** that includes the running one;
//! `current` points into it, and the round-robin order is ring order starting at `current`.
//! A new or inserted tasklet goes just *before* `current`, i.e. to the end of the order.
//! [`schedule`] moves `current` one step on; [`Tasklet::run`] and [`Tasklet::switch`] jump
//! `current` to their target without relinking, so every tasklet between the target and the
//! caller runs before the caller does again (Stackless Python reference §2.1–2.3).
//!
//! # Stackless operations and their Rust form
//!
//! | Stackless Python | microthread |
//! |---|---|
//! | `stackless.tasklet(f)(*args)` | [`spawn(move \|\| f(args))`](spawn) |
//! | `stackless.tasklet(f).bind(f, args)` (alive, paused) | [`Tasklet::new(move \|\| f(args))`](Tasklet::new) |
//! | `t.insert()` / `t.remove()` | [`Tasklet::insert`] / [`Tasklet::remove`] |
//! | `t.run()` / `t.switch()` | [`Tasklet::run`] / [`Tasklet::switch`] |
//! | `t.kill()` / `t.kill(pending=True)` | [`Tasklet::kill`] / [`Tasklet::kill_pending`] |
//! | `t.throw(exc)` / `t.throw(exc, pending=True)` | [`Tasklet::throw`] / [`Tasklet::throw_pending`] |
//! | `stackless.schedule()` / `schedule_remove()` | [`schedule`] / [`schedule_remove`] |
//! | `stackless.run()` | [`run`] |
//! | `stackless.current` / `main` / `runcount` | [`current`] / [`main`] / [`runcount`] |
//! | `t.alive`, `blocked`, `scheduled`, `paused`, `is_main`, `is_current` | methods of the same names |
//! | `with stackless.atomic():` / `t.set_atomic()` | [`atomic`] / [`Tasklet::set_atomic`] |
//! | `stackless.switch_trap(n)` | [`switch_trap`] |
//! | `stackless.set_schedule_callback(cb)` | [`set_schedule_callback`] |
//! | an exception raised at a suspension point | `Err(Error)` from the suspended call (see [`Error`]) |
//! | `TaskletExit` | a silent unwind with payload [`TaskletExit`] |
//! | uncaught exception in a tasklet → main / `run()` | [`Error::Panicked`] from the call main or the innermost `run()` caller is suspended in |
//! | return value (discarded) | kept: [`Tasklet::result`] |
//! | `main.kill()` (raises `TaskletExit` in main) | main unwinds with [`TaskletExit`] from its suspended call; a line on stderr says so, since uncaught it ends the thread |
//! | a later bomb replaces an earlier `tempval` bomb | a later error replaces an earlier pending error; a pending kill is never replaced |
//! | `finally:` blocks of a killed tasklet may use channels | a destructor of an unwinding tasklet may complete a rendezvous (without the switch), but may not block or switch: [`Error::Unwinding`] |
//!
//! # What the safe API guarantees
//! - **A refused operation leaves no trace.** Every operation checks everything that can
//!   refuse it (a switch trap, the schedule callback, a blocked or dead target, an unwinding
//!   stack) before it changes the ring, a channel's queue or a flag.
//! - **No user code runs while the scheduler's state is half-changed.** Values whose `Drop`
//!   comes due inside a switch (an error payload replaced by a later one, a result released
//!   during a tasklet's end, mail for a tasklet that has died) are dropped at the next point
//!   where every invariant holds, on the tasklet's own thread; a panic in such a `Drop` is
//!   reported by the panic hook and otherwise ignored. Inside the schedule callback, every
//!   scheduling operation (including [`Tasklet::remove`] and channel operations) fails with
//!   [`Error::RecursiveCallback`].
//! - **No switch while a stack unwinds.** The thread's panic state (what
//!   [`std::thread::panicking`] reports, what poisons a `Mutex`) cannot move between
//!   tasklets, so a destructor running because its tasklet panics or is killed may not
//!   switch or block: such calls fail with [`Error::Unwinding`]. A channel operation that
//!   finds a partner still completes, without the switch its preference would make, so a
//!   destructor can hand a last value to a waiting tasklet.
//! - **A kill is never lost.** It is never replaced by a later error; it reaches a tasklet
//!   switched out inside the channel callback. Killing a main tasklet unwinds the thread's
//!   own stack: catch [`TaskletExit`] there to survive it.
//! - **Cross-thread wakes are tied to one blocking episode**, so a tasklet unblocked another
//!   way (killed, thrown into, routed an error) is never woken into a later block.
//! - A tasklet that never ran, is paused, and has no handle left (and no [`RemoteTasklet`])
//!   is ended when its last handle goes: its closure is dropped then, not at thread end.
//!
//! # Deadlock
//! When the last runnable tasklet would block and the innermost [`run`] caller (or the main
//! tasklet) is paused, that caller is resumed and `run` returns: the blocking tasklet stays
//! blocked. When nobody can wake the blocking tasklet at all, its call fails with
//! [`Error::Deadlock`] and it keeps running.
//!
//! # End of a thread
//! When a thread ends, its scheduler kills every tasklet still alive: each unwinds from its
//! suspension point with every destructor on its stack run; tasklets that never ran just
//! have their closures dropped. (This happens in a thread-local destructor, which Rust does not
//! run for the process's main thread at exit; there, the process ends with them.) A tasklet
//! whose handles were all dropped stays alive until it ends or its thread ends; nothing is
//! freed behind its back.
//!
//! ```
//! use microthread::{scheduler, spawn};
//! use std::{cell::RefCell, rc::Rc};
//!
//! let log = Rc::new(RefCell::new(Vec::new()));
//! for name in ["A", "B"] {
//!     let log = log.clone();
//!     spawn(move || {
//!         for i in 1..=2 {
//!             log.borrow_mut().push(format!("{name}{i}"));
//!             scheduler::schedule().unwrap();
//!         }
//!     })?;
//! }
//! scheduler::run().unwrap();
//! assert_eq!(*log.borrow(), ["A1", "B1", "A2", "B2"]);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::io;
use std::mem;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::context::{Context, Transfer};
use crate::error::{Error, Result, TaskletExit};
use crate::id;
use crate::overflow;
use crate::stack::{pool, DEFAULT_STACK_SIZE};
use crate::tasklet::{Inner, Life, Pending, Tasklet};

mod thread;
pub(crate) use thread::{identity_vanished, Mail, SendArc, Shared};
pub use thread::{spawn_thread, JoinHandle, RemoteTasklet};

/// A schedule callback: called with (previous, next) before every switch.
pub type ScheduleCallback = Box<dyn FnMut(&Tasklet, &Tasklet)>;

/// A thread's scheduler; see the module docs.
pub(crate) struct Scheduler {
    /// The ring cursor: the running tasklet (null only transiently, while blocking).
    current: Cell<*const Inner>,
    runcount: Cell<usize>,
    main: *const Inner,
    /// Head of the list of all live tasklets; each member holds one strong reference.
    all: Cell<*const Inner>,
    /// Tasklets inside `run()`, innermost last.
    watchdogs: RefCell<Vec<*const Inner>>,
    /// The last of `watchdogs` (null if none): read on every tasklet end, so kept at hand.
    innermost: Cell<*const Inner>,
    switch_trap: Cell<i32>,
    callback: Cell<Option<ScheduleCallback>>,
    in_callback: Cell<bool>,
    /// Set when a callback changes the callback while it runs.
    callback_replaced: Cell<bool>,
    channel_callback: Cell<Option<crate::channel::ChannelCallback>>,
    in_channel_callback: Cell<bool>,
    channel_callback_replaced: Cell<bool>,
    channel_hooks: Cell<bool>,
    /// What other threads can reach: the mailbox.
    pub(crate) shared: Arc<Shared>,
    /// Non-zero when anything above needs the slow path of a switch: a switch trap, a
    /// callback, or a callback running. One load keeps the common switch fast.
    hooks: Cell<u32>,
    /// Values whose `Drop` (user code) came due while the scheduler's state was half-changed
    /// (a replaced error payload, a result released during a switch, mail for a dead
    /// tasklet): dropped at the next safe point, where every invariant holds.
    garbage: RefCell<Vec<Box<dyn Any>>>,
    has_garbage: Cell<bool>,
}

thread_local! {
    static SCHEDULER: Cell<*const Scheduler> = const { Cell::new(ptr::null()) };
    static TEARDOWN: Teardown = const { Teardown };
}

/// Ends the thread's scheduler when the thread ends. Thread-locals destroyed after it find
/// the scheduler *ended*: creating a tasklet fails, and so does a call that would block or
/// sleep ([`Error::SchedulerEnded`]). (If the scheduler is first created too late for this
/// to be registered, it is ended from the start; see `thread::exit` for a scheduler created
/// after the thread-locals' destructors have all run.)
struct Teardown;

impl Drop for Teardown {
    fn drop(&mut self) {
        if let Some(s) = existing_scheduler() {
            s.shutdown();
        }
    }
}

/// This thread's scheduler if it has one; never creates it.
pub(crate) fn existing_scheduler() -> Option<&'static Scheduler> {
    let s = SCHEDULER.with(|c| c.get());
    // SAFETY: set by `init` to a leaked Scheduler of this thread, never freed.
    (!s.is_null()).then(|| unsafe { &*s })
}

/// The low bit of a switch's word marks a dying tasklet whose stack the next one releases.
const DEAD: usize = 1;

/// This thread's scheduler, created on first use.
#[inline]
pub(crate) fn scheduler() -> &'static Scheduler {
    let s = SCHEDULER.with(|c| c.get());
    if s.is_null() {
        return init();
    }
    // SAFETY: set by `init` to a leaked Scheduler of this thread; never freed while the
    // thread runs (shutdown keeps it allocated).
    unsafe { &*s }
}

#[cold]
fn init() -> &'static Scheduler {
    init_with(Shared::new())
}

/// Creates this thread's scheduler now, with a shared part made in advance by the thread
/// that spawned this one (so it was counted awake from the start).
pub(crate) fn adopt(shared: Arc<Shared>) {
    if SCHEDULER.with(|c| c.get()).is_null() {
        init_with(shared);
    } else {
        shared.close();
    }
}

fn init_with(shared: Arc<Shared>) -> &'static Scheduler {
    let s: &'static mut Scheduler = Box::leak(Box::new(Scheduler {
        current: Cell::new(ptr::null()),
        runcount: Cell::new(0),
        main: ptr::null(),
        all: Cell::new(ptr::null()),
        watchdogs: RefCell::new(Vec::new()),
        innermost: Cell::new(ptr::null()),
        switch_trap: Cell::new(0),
        callback: Cell::new(None),
        in_callback: Cell::new(false),
        callback_replaced: Cell::new(false),
        channel_callback: Cell::new(None),
        in_channel_callback: Cell::new(false),
        channel_callback_replaced: Cell::new(false),
        channel_hooks: Cell::new(false),
        shared,
        hooks: Cell::new(0),
        garbage: RefCell::new(Vec::new()),
        has_garbage: Cell::new(false),
    }));
    let owner = s as *const Scheduler as *const ();
    s.main = Arc::into_raw(Arc::new(Inner::new(id::next(), true, owner, false)));
    let s: &'static Scheduler = s;
    // SAFETY: `main` is a live Arc whose reference the list takes over; it becomes the first
    // member of the ring, running on the thread's own stack.
    unsafe {
        s.register(s.main);
        s.ring_insert(s.main);
    }
    SCHEDULER.with(|c| c.set(s));
    overflow::ensure_altstack();
    if TEARDOWN.try_with(|_| {}).is_err() {
        // The thread's thread-locals are being destroyed and ours already was: nothing would
        // end this scheduler, so it starts ended (it creates no tasklet and never sleeps).
        drop(s.shared.close());
        s.refresh_hooks();
    } else {
        thread::end_at_thread_exit_anyway(s);
    }
    s
}

/// A handle for a tasklet known to be alive.
///
/// # Safety
/// - `p` must point to a live `Inner` kept alive by an `Arc` (the scheduler's list).
unsafe fn handle(p: *const Inner) -> Tasklet {
    // SAFETY: a live tasklet's local reference is held by the scheduler.
    unsafe { Tasklet::from_local(p) }
}

/// Called by every context that a switch resumes, with that switch's transfer: records the
/// switcher's context, or releases the stack of a tasklet that just died.
///
/// # Safety
/// - `t` must be the transfer of a switch made by `Scheduler::transfer` or `end` of `s`.
#[inline(always)]
unsafe fn after_switch(s: &Scheduler, t: Transfer) {
    if t.data & DEAD == 0 {
        // SAFETY: the switcher passed its own live Inner, which it keeps alive while
        // suspended (it is in the list).
        unsafe { (*(t.data as *const Inner)).context.set(Some(t.from)) };
    } else {
        // A dying tasklet passes a pointer to itself; its last frame is dead, so its stack
        // can go back to the pool now that we run elsewhere.
        let dead = (t.data & !DEAD) as *const Inner;
        mem::forget(t.from);
        // SAFETY: the dead tasklet's local reference is still held: by the scheduler, until
        // just below.
        let d = unsafe { &*dead };
        if let Some(stack) = d.stack.take() {
            pool::release(stack);
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
            crate::tasklet::recycle(unsafe { Arc::from_raw(dead) });
        }
    }
}

impl Scheduler {
    fn is_this_thread(&self, t: &Inner) -> bool {
        ptr::eq(t.owner, self as *const Scheduler as *const ())
    }

    /// Inserts `t` at the end of the run queue (just before the current tasklet).
    ///
    /// # Safety
    /// - `t` must be a live tasklet of this scheduler, not in the ring.
    pub(crate) unsafe fn ring_insert(&self, t: *const Inner) {
        // SAFETY: ring members are live (they are in the list); caller vouches for `t`.
        unsafe {
            let cur = self.current.get();
            if cur.is_null() {
                (*t).next.set(t);
                (*t).prev.set(t);
                self.current.set(t);
            } else {
                let last = (*cur).prev.get();
                (*last).next.set(t);
                (*t).prev.set(last);
                (*t).next.set(cur);
                (*cur).prev.set(t);
            }
        }
        self.runcount.set(self.runcount.get() + 1);
    }

    /// Inserts `t` right after the current tasklet (a preferred channel partner).
    ///
    /// # Safety
    /// - As `ring_insert`.
    pub(crate) unsafe fn ring_insert_after_current(&self, t: *const Inner) {
        let hold = self.current.get();
        if !hold.is_null() {
            // SAFETY: `hold` is a ring member.
            self.current.set(unsafe { (*hold).next.get() });
        }
        // SAFETY: forwarded.
        unsafe { self.ring_insert(t) };
        if !hold.is_null() {
            self.current.set(hold);
        }
    }

    /// Unlinks `t` from the ring; `current` moves on if `t` was current.
    ///
    /// # Safety
    /// - `t` must be in this scheduler's ring.
    unsafe fn ring_remove(&self, t: *const Inner) {
        // SAFETY: `t` and its neighbours are ring members.
        unsafe {
            let (prev, next) = ((*t).prev.get(), (*t).next.get());
            if next == t {
                self.current.set(ptr::null());
            } else {
                (*prev).next.set(next);
                (*next).prev.set(prev);
                if self.current.get() == t {
                    self.current.set(next);
                }
            }
            (*t).next.set(ptr::null());
            (*t).prev.set(ptr::null());
        }
        self.runcount.set(self.runcount.get() - 1);
    }

    /// Adds `t` (an `Arc::into_raw` reference the list now owns) to the list of live tasklets.
    ///
    /// # Safety
    /// - `t` must be a live tasklet of this scheduler, not in the list, whose reference the
    ///   list takes over.
    unsafe fn register(&self, t: *const Inner) {
        let head = self.all.get();
        // SAFETY: `t` and `head` are live.
        unsafe {
            (*t).all_next.set(head);
            (*t).all_prev.set(ptr::null());
            if !head.is_null() {
                (*head).all_prev.set(t);
            }
        }
        self.all.set(t);
    }

    /// Removes `t` from the list; the caller takes over the list's strong reference.
    ///
    /// # Safety
    /// - `t` must be in this scheduler's list.
    unsafe fn unregister(&self, t: *const Inner) {
        // SAFETY: `t` and its neighbours are list members.
        unsafe {
            let (p, n) = ((*t).all_prev.get(), (*t).all_next.get());
            if p.is_null() {
                self.all.set(n);
            } else {
                (*p).all_next.set(n);
            }
            if !n.is_null() {
                (*n).all_prev.set(p);
            }
            (*t).all_next.set(ptr::null());
            (*t).all_prev.set(ptr::null());
        }
    }

    pub(crate) fn current_ptr(&self) -> *const Inner {
        self.current.get()
    }

    /// Takes the running tasklet `me` (just marked blocked) out of the ring and switches to
    /// the next runnable one, or blocks (§2.4). Returns when `me` runs again.
    ///
    /// # Safety
    /// - `me` must be the running tasklet, in the ring.
    pub(crate) unsafe fn block_current(&self, me: *const Inner) -> Result<()> {
        // SAFETY: forwarded.
        unsafe {
            self.ring_remove(me);
            self.switch_to(me, self.current.get())
        }
    }

    /// Whether a channel callback is installed, or one is running.
    #[inline]
    pub(crate) fn channel_hooks(&self) -> bool {
        self.channel_hooks.get()
    }

    /// Calls the channel callback (if any) before a channel action of the current tasklet.
    #[cold]
    pub(crate) fn before_channel_action(
        &self,
        info: impl FnOnce() -> crate::channel::ChannelInfo,
    ) -> Result<()> {
        if self.in_channel_callback.get() {
            return Err(Error::RecursiveChannelCallback);
        }
        let Some(mut cb) = self.channel_callback.take() else {
            return Ok(());
        };
        let info = info();
        let event = crate::channel::ChannelEvent {
            channel: info.channel,
            tasklet: current(),
            sending: info.sending,
            will_block: info.will_block,
        };
        self.in_channel_callback.set(true);
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| cb(&event)));
        self.in_channel_callback.set(false);
        if !self.channel_callback_replaced.replace(false) {
            self.channel_callback.set(Some(cb));
        }
        self.refresh_channel_hooks();
        match outcome {
            // The callback may switch (only channel operations are refused inside it), so a
            // kill can reach the tasklet in there: it is never swallowed. The channel
            // operation has not started, so it unwinds without a trace.
            Err(p) if p.is::<TaskletExit>() => panic::resume_unwind(p),
            // Stackless prints and ignores an error in the callback; the panic hook printed.
            _ => Ok(()),
        }
    }

    pub(crate) fn set_channel_callback(
        &self,
        callback: Option<crate::channel::ChannelCallback>,
    ) -> Option<crate::channel::ChannelCallback> {
        let old = self.channel_callback.replace(callback);
        if self.in_channel_callback.get() {
            self.channel_callback_replaced.set(true);
        }
        self.refresh_channel_hooks();
        old
    }

    fn refresh_channel_hooks(&self) {
        let cb = self.channel_callback.take();
        self.channel_hooks
            .set(cb.is_some() || self.in_channel_callback.get());
        self.channel_callback.set(cb);
    }

    fn innermost_watchdog_or_main(&self) -> *const Inner {
        let w = self.innermost.get();
        if w.is_null() {
            self.main
        } else {
            w
        }
    }

    /// Makes `t` runnable if it is not: unblocked from its channel, or inserted if floating.
    ///
    /// # Safety
    /// - `t` must be a live tasklet of this scheduler.
    unsafe fn make_runnable(&self, t: *const Inner) {
        // SAFETY: caller vouches for `t`.
        let tr = unsafe { &*t };
        if tr.blocked.get() != 0 {
            unblock(tr);
            // SAFETY: an unblocked tasklet is in no queue.
            unsafe { self.ring_insert(t) };
        } else if !tr.in_ring() {
            // SAFETY: as above.
            unsafe { self.ring_insert(t) };
        }
    }

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
    pub(crate) unsafe fn switch_to(&self, prev: *const Inner, next: *const Inner) -> Result<()> {
        if self.shared.has_mail.load(Ordering::Relaxed) {
            self.read_mail();
        }
        // SAFETY: `next` is checked for null before it is read.
        if self.hooks.get() == 0
            && !next.is_null()
            && prev != next
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

    #[inline(never)]
    unsafe fn switch_to_slow(&self, prev: *const Inner, next: *const Inner) -> Result<()> {
        if next.is_null() {
            // SAFETY: forwarded.
            return unsafe { self.block(prev) };
        }
        self.refuse_switch(prev != next)?;
        // SAFETY: forwarded.
        unsafe { self.make_runnable(next) };
        if prev != next {
            self.call_callback(prev, next);
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
    pub(crate) fn refuse_switch(&self, switching: bool) -> Result<()> {
        self.refuse_by_hooks(switching)?;
        if switching && std::thread::panicking() {
            return Err(Error::Unwinding);
        }
        Ok(())
    }

    /// The part of [`Scheduler::refuse_switch`] that only the hooks can refuse: the schedule
    /// callback and the switch trap. Nothing to check unless [`Scheduler::hooks_on`].
    #[inline]
    pub(crate) fn refuse_by_hooks(&self, switching: bool) -> Result<()> {
        if self.in_callback.get() {
            return Err(Error::RecursiveCallback);
        }
        if switching && self.switch_trap.get() != 0 {
            return Err(Error::SwitchTrap);
        }
        Ok(())
    }

    /// Whether a switch trap or a schedule callback is set, a callback is running, or the
    /// scheduler has ended.
    #[inline(always)]
    pub(crate) fn hooks_on(&self) -> bool {
        self.hooks.get() != 0
    }

    /// Whether [`Scheduler::refuse_switch`] might refuse anything now: one load and one
    /// relaxed atomic load, for the channel's fast path.
    #[inline(always)]
    pub(crate) fn may_refuse(&self) -> bool {
        self.hooks.get() != 0 || std::thread::panicking()
    }

    /// The end of every switch back into `me`: drops what came due while the scheduler was
    /// busy, then delivers what is pending for `me`.
    #[inline(always)]
    fn resumed(&self, me: &Inner) -> Result<()> {
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

    /// Keeps `x` to be dropped at the next safe point (see `garbage`).
    pub(crate) fn defer_drop(&self, x: Box<dyn Any>) {
        self.garbage.borrow_mut().push(x);
        self.has_garbage.set(true);
    }

    /// Drops the deferred values, at a point where every invariant holds. A `Drop` that
    /// panics is reported by the panic hook and otherwise ignored (no caller expects it).
    #[cold]
    #[inline(never)]
    pub(crate) fn drop_garbage(&self) {
        loop {
            let next = self.garbage.borrow_mut().pop();
            let Some(x) = next else { break };
            let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(x)));
        }
        self.has_garbage.set(false);
    }

    /// Applies what other threads posted: tasklets they made runnable, remote operations.
    /// Runs no user code (whatever must be dropped is deferred) and never unwinds, so it can
    /// run in the middle of any operation.
    #[cold]
    #[inline(never)]
    pub(crate) fn read_mail(&self) {
        for mail in self.shared.take_mail() {
            // SAFETY: mail names tasklets of this thread.
            unsafe { self.apply_mail(mail) };
        }
    }

    /// # Safety
    /// - The mail must name a tasklet of this scheduler.
    unsafe fn apply_mail(&self, mail: Mail) {
        let (t, pending) = match mail {
            Mail::Wake(t, epoch) => {
                let i = &t.0;
                // A wake for an episode that already ended some other way is stale.
                if i.blocked.get() != 0 && i.block_epoch.get() == epoch {
                    i.blocked.set(0);
                    i.blocked_on.set(None);
                    // SAFETY: a live tasklet of this thread (it was blocked), in no queue now.
                    unsafe { self.ring_insert(Arc::as_ptr(&t.0)) };
                }
                return;
            }
            Mail::Insert(t) => {
                let i = &t.0;
                if i.alive() && i.floating() {
                    // SAFETY: a live tasklet of this thread in no queue.
                    unsafe { self.ring_insert(Arc::as_ptr(&t.0)) };
                }
                return;
            }
            Mail::Kill(t) => (t, Pending::Kill),
            Mail::Throw(t, e) => (t, Pending::Error(e)),
        };
        if !t.0.alive() {
            self.defer_drop(Box::new(pending));
            return;
        }
        if let Some(lost) = t.0.set_pending(pending) {
            self.defer_drop(lost);
        }
        // SAFETY: a live tasklet of this thread.
        unsafe { self.make_runnable(Arc::as_ptr(&t.0)) };
    }

    fn refresh_hooks(&self) {
        // SAFETY (of the read below): the callback cell is only swapped, never borrowed.
        let cb = self.callback.take();
        let has_cb = cb.is_some();
        self.callback.set(cb);
        let hooks = (self.switch_trap.get() != 0) as u32
            | (has_cb as u32) << 1
            | (self.in_callback.get() as u32) << 2
            | (self.shared.ended() as u32) << 3;
        self.hooks.set(hooks);
    }

    /// The actual switch: `current := next`, then into `next`'s context.
    ///
    /// # Safety
    /// - `prev` must be running, `next` suspended (or new), both of this thread.
    #[inline(always)]
    unsafe fn transfer(&self, prev: *const Inner, next: *const Inner) {
        self.current.set(next);
        // SAFETY: caller vouches for both.
        let (p, n) = unsafe { (&*prev, &*next) };
        let fp = p.preserve_fp_env | n.preserve_fp_env;
        // A suspended tasklet always has a saved context.
        let Some(ctx) = n.context.take() else {
            fatal("switch to a tasklet without a saved context")
        };
        // SAFETY: `ctx` is `next`'s suspended frame on its live stack, consumed here; the
        // word is our own Inner, which stays alive in the list while we are suspended.
        let t = unsafe { switch_from_the_one_site(ctx, prev as usize, fp) };
        // SAFETY: every switch into a tasklet comes from `transfer` or `end`.
        unsafe { after_switch(self, t) };
    }

    fn call_callback(&self, prev: *const Inner, next: *const Inner) {
        let Some(mut cb) = self.callback.take() else {
            return;
        };
        // SAFETY: both are live tasklets of this thread.
        let (p, n) = unsafe { (handle(prev), handle(next)) };
        self.in_callback.set(true);
        self.refresh_hooks();
        // Stackless prints and ignores an error in the callback; the panic hook has printed.
        let _ = panic::catch_unwind(AssertUnwindSafe(|| cb(&p, &n)));
        self.in_callback.set(false);
        // Unless the callback installed a new one (or removed itself), put it back.
        if !self.callback_replaced.replace(false) {
            self.callback.set(Some(cb));
        }
        self.refresh_hooks();
    }

    /// Stackless's `schedule_task_block`: `prev` stopped being runnable and the ring is empty.
    ///
    /// # Safety
    /// - `prev` must be the running tasklet, out of the ring.
    unsafe fn block(&self, prev: *const Inner) -> Result<()> {
        loop {
            if self.shared.has_mail.load(Ordering::Relaxed) {
                self.read_mail();
            }
            let next = self.current.get();
            if !next.is_null() {
                // Another thread made something runnable here.
                // SAFETY: `prev` is running; `next` is a ring member.
                return unsafe { self.switch_to(prev, next) };
            }
            let wake = self.innermost_watchdog_or_main();
            // SAFETY: watchdogs and main are live.
            if unsafe { (*wake).floating() } {
                // SAFETY: forwarded; `wake` is live.
                return unsafe { self.switch_to(prev, wake) };
            }
            // Nothing runnable here: wait for another thread to make something runnable.
            if let Err(e) = self.shared.sleep() {
                // SAFETY: `prev` is running.
                if let Some(lost) = unsafe { (*prev).set_pending(Pending::Error(e)) } {
                    self.defer_drop(lost);
                }
                break;
            }
        }
        // Puts `prev` back in the ring (out of its channel) and raises the error in it.
        // SAFETY: forwarded.
        unsafe { self.switch_to(prev, prev) }
    }

    /// Stackless's `slp_tasklet_end`: the current tasklet `me` has finished. Never returns.
    ///
    /// # Safety
    /// - `me` must be the running, non-main tasklet, on its own stack.
    #[inline(always)]
    unsafe fn end(&self, me: *const Inner, error: Option<Error>) -> ! {
        // SAFETY: `me` is running, hence in the ring.
        unsafe { self.ring_remove(me) };
        // SAFETY: `me` is running; its list reference goes to whoever runs next.
        let m = unsafe { &*me };
        // Dead from here on: mail read below (a remote kill, insert or throw) leaves it alone.
        m.life.set(Life::Dead);
        let mut error = error;
        let mut next = self.current.get();
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
        // SAFETY: `me` is a list member.
        unsafe { self.unregister(me) };
        // SAFETY: `next` is live.
        unsafe { self.make_runnable(next) };
        if self.hooks.get() != 0 {
            self.call_callback(me, next);
        }
        self.current.set(next);
        // SAFETY: `next` is live and not running.
        let n = unsafe { &*next };
        let Some(ctx) = n.context.take() else {
            fatal("switch to a tasklet without a saved context")
        };
        // SAFETY: the last switch out of this stack: `next` releases it (after_switch with
        // the DEAD mark) and nothing resumes this frame again. `next` waits in a plain frame
        // (the scheduler's switches), unless one side preserves the FP environment.
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

    /// The ring is empty and a tasklet is ending: if whoever it would wake is blocked, sleep
    /// (still on the dying tasklet's stack) while other threads may make something runnable
    /// here. Returns the new current tasklet, or null if there is none (or nobody awake).
    ///
    /// # Safety
    /// - Only from `end`, with the ring empty.
    unsafe fn wait_for_other_threads(&self) -> *const Inner {
        loop {
            if self.shared.has_mail.load(Ordering::Relaxed) {
                self.read_mail();
            }
            let next = self.current.get();
            if !next.is_null() {
                return next;
            }
            let wake = self.innermost_watchdog_or_main();
            // SAFETY: watchdogs and main are live.
            if unsafe { (*wake).floating() } || self.shared.sleep().is_err() {
                return ptr::null();
            }
        }
    }

    /// Kills every live tasklet but main, then closes the mailbox: the thread is ending.
    /// From then on the scheduler is ended; a second call does nothing.
    fn shutdown(&self) {
        if self.shared.ended() {
            return;
        }
        overflow::ensure_altstack_for_teardown();
        self.kill_all();
        drop(self.shared.close());
        // A blocking call from now on takes the slow path, which refuses it before it queues.
        self.refresh_hooks();
    }

    fn kill_all(&self) {
        for _ in 0..16 {
            self.read_mail();
            let mut victims = Vec::new();
            let mut p = self.all.get();
            while !p.is_null() {
                // SAFETY: list members are live.
                unsafe {
                    if !(*p).is_main {
                        victims.push(handle(p));
                    }
                    p = (*p).all_next.get();
                }
            }
            if victims.is_empty() {
                return;
            }
            // Take them out of the ring first, so killing one does not run the others.
            for v in &victims {
                if v.inner.in_ring() && !is_current(&v.inner) {
                    // SAFETY: `v` is in the ring.
                    unsafe { self.ring_remove(Arc::as_ptr(&v.inner)) };
                }
            }
            for v in victims {
                let _ = panic::catch_unwind(AssertUnwindSafe(|| v.kill()));
            }
            self.drop_garbage();
        }
    }
}

/// The only call site of the switch between tasklets. Every suspended tasklet (but a new one)
/// waits at the return address of this one call, so the switch can end in `ret` and be
/// predicted every time (see `Context::switch_ret`).
///
/// # Safety
/// - As `Context::switch`.
#[inline(never)]
unsafe fn switch_from_the_one_site(ctx: Context, data: usize, fpenv: bool) -> Transfer {
    if fpenv {
        // SAFETY: forwarded.
        unsafe { ctx.switch_fpenv(data) }
    } else {
        // SAFETY: forwarded.
        unsafe { ctx.switch_ret(data) }
    }
}

/// Takes a channel-blocked tasklet out of its channel's queue.
fn unblock(t: &Inner) {
    if let Some(b) = t.blocked_on.take() {
        // SAFETY: the blocked call borrows a handle to the channel until it returns, and it
        // has not returned: the tasklet is still blocked in it. If a partner on another
        // thread already took it out, its wake names this episode, which ends here: stale.
        let _ = unsafe { (*b).unlink(t) };
    }
    t.blocked.set(0);
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
fn deliver_pending(me: &Inner, p: Pending) -> Result<()> {
    match p {
        Pending::Error(e) => Err(e),
        Pending::Kill => unwind_killed(me),
    }
}

/// Unwinds the running tasklet `me` with [`TaskletExit`]. For a main tasklet that is the
/// thread's own stack: if nothing catches it the thread (or, on the process's main thread,
/// the process) ends with it, so say so on stderr first rather than end without a word.
#[cold]
fn unwind_killed(me: &Inner) -> ! {
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

fn fatal(why: &str) -> ! {
    eprintln!("microthread: {why}; aborting");
    std::process::abort()
}

pub(crate) fn is_current(t: &Inner) -> bool {
    let s = SCHEDULER.with(|c| c.get());
    // SAFETY: a non-null scheduler pointer is this thread's live scheduler.
    !s.is_null() && ptr::eq(unsafe { (*s).current.get() }, t)
}

/// The first Rust frame of every tasklet.
///
/// # Safety
/// - Reached only through the trampoline of a context made by `Tasklet::create`, with `arg`
///   the address of the closure it wrote and `data` the word of the switch into it.
unsafe extern "C" fn entry<F, R>(from: Context, data: usize, arg: usize) -> !
where
    F: FnOnce() -> R + 'static,
    R: 'static,
{
    let s = scheduler();
    // SAFETY: the first switch into a tasklet comes from `transfer` or `end`.
    unsafe { after_switch(s, Transfer { from, data }) };
    if s.has_garbage.get() {
        s.drop_garbage();
    }
    let me = s.current.get();
    // SAFETY: the running tasklet is live.
    let m = unsafe { &*me };
    m.life.set(Life::Started);
    // SAFETY: `arg` is the closure `create` wrote; it is moved out exactly once, here.
    let f = unsafe { ptr::read(arg as *const F) };
    m.closure.set(ptr::null_mut());
    m.drop_closure.set(None);
    // Nothing may unwind out of this frame (an `extern "C"` function without a caller): every
    // piece of user code, the closure's `Drop` included, runs inside `catch_unwind`.
    let panicked = |payload: Box<dyn Any + Send>| {
        if payload.is::<TaskletExit>() {
            None
        } else {
            Some(Error::Panicked {
                tasklet: m.id,
                payload,
            })
        }
    };
    let error = match m.pending.take().map(|p| *p) {
        // Killed or thrown into before it ever ran: the closure is dropped unrun.
        Some(Pending::Kill) => panic::catch_unwind(AssertUnwindSafe(|| drop(f)))
            .err()
            .and_then(panicked),
        Some(Pending::Error(e)) => {
            if let Err(p) = panic::catch_unwind(AssertUnwindSafe(|| drop(f))) {
                s.defer_drop(p);
            }
            Some(e)
        }
        None => panic::catch_unwind(AssertUnwindSafe(|| {
            let r = f();
            // Kept for whoever holds a handle; with no handle left, nobody can ask.
            if m.handles.get() > 0 {
                *m.result.borrow_mut() = Some(Box::new(r));
            }
        }))
        .err()
        .and_then(panicked),
    };
    // SAFETY: `me` is running on its own stack and is not main.
    unsafe { s.end(me, error) }
}

/// Options for a new tasklet: stack size, guard size and FP-environment preservation.
///
/// ```
/// use microthread::scheduler::{self, TaskletBuilder};
/// let t = TaskletBuilder::new().stack_size(64 * 1024).spawn(|| 6 * 7)?;
/// scheduler::run().unwrap();
/// assert_eq!(t.result::<i32>(), Some(42));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct TaskletBuilder {
    stack_size: usize,
    guard_size: usize,
    preserve_fp_env: bool,
}

impl Default for TaskletBuilder {
    fn default() -> Self {
        TaskletBuilder::new()
    }
}

impl TaskletBuilder {
    /// Defaults: a [`DEFAULT_STACK_SIZE`] stack from the pool, FP environment not preserved.
    pub fn new() -> TaskletBuilder {
        TaskletBuilder {
            stack_size: DEFAULT_STACK_SIZE,
            guard_size: crate::stack::DEFAULT_GUARD_SIZE,
            preserve_fp_env: false,
        }
    }

    /// Usable bytes of the tasklet's stack.
    pub fn stack_size(mut self, bytes: usize) -> TaskletBuilder {
        self.stack_size = bytes;
        self
    }

    /// Bytes of the inaccessible guard below the tasklet's stack (default
    /// [`DEFAULT_GUARD_SIZE`](crate::stack::DEFAULT_GUARD_SIZE)), rounded up to pages, at least
    /// one; address space only. On riscv64, where rustc emits no stack probes, a frame larger
    /// than the guard can step over it unreported: make it larger than the tasklet's largest
    /// frame (see [`crate::stack`]).
    pub fn guard_size(mut self, bytes: usize) -> TaskletBuilder {
        self.guard_size = bytes;
        self
    }

    /// Whether switches into and out of this tasklet preserve the FP control state (see
    /// [`crate::context`]).
    pub fn preserve_fp_env(mut self, on: bool) -> TaskletBuilder {
        self.preserve_fp_env = on;
        self
    }

    /// Creates the tasklet alive and paused (Stackless `bind(f, args)`): it runs once
    /// inserted, run or switched to.
    ///
    /// # Errors
    /// The OS error if a new stack cannot be mapped; an error of kind `Other` if this
    /// thread's scheduler has ended (the thread is exiting, past its teardown).
    pub fn create<F, R>(self, f: F) -> io::Result<Tasklet>
    where
        F: FnOnce() -> R + 'static,
        R: 'static,
    {
        let s = scheduler();
        if s.shared.ended() {
            return Err(io::Error::other(
                "microthread: this thread's scheduler has ended (the thread is exiting and its \
                 tasklets were killed); no new tasklet can be created on it",
            ));
        }
        let stack = pool::acquire_with_guard(self.stack_size, self.guard_size)?;
        let id = id::next();
        stack.set_owner(crate::overflow::OwnerKind::Tasklet, id);
        // Decided on size and alignment: an over-aligned closure (even a zero-sized one) would
        // be placed below the stack. A box of a zero-sized type allocates nothing.
        let f = if crate::coroutine::fits_at_stack_top::<F>() {
            Placed::Inline(f)
        } else {
            Placed::Boxed(Box::new(f))
        };
        let top = stack.top() as usize - cache_color(id);
        let (closure, drop_fn, ctx) = match f {
            // SAFETY: the closure goes at the top of our fresh stack, aligned, and the initial
            // frame just below it; the stack outlives the context.
            Placed::Inline(f) => unsafe { place(top, f) },
            // SAFETY: as above, for the boxed closure.
            Placed::Boxed(b) => unsafe { place(top, b) },
        };
        let rc = crate::tasklet::new_tasklet(
            id,
            s as *const Scheduler as *const (),
            self.preserve_fp_env,
        );
        rc.context.set(Some(ctx));
        rc.stack.set(Some(stack));
        rc.closure.set(closure);
        rc.drop_closure.set(Some(drop_fn));
        let p = Arc::into_raw(rc);
        // SAFETY: the scheduler holds the new tasklet's local reference; handles share it.
        let t = unsafe {
            s.register(p);
            Tasklet::from_local(p)
        };
        Ok(t)
    }

    /// Creates the tasklet and inserts it at the end of the run queue (Stackless
    /// `tasklet(f)()`).
    ///
    /// # Errors
    /// The OS error if a new stack cannot be mapped.
    pub fn spawn<F, R>(self, f: F) -> io::Result<Tasklet>
    where
        F: FnOnce() -> R + 'static,
        R: 'static,
    {
        let t = self.create(f)?;
        let s = scheduler();
        // SAFETY: a new tasklet of this thread, in no queue.
        unsafe { s.ring_insert(Arc::as_ptr(&t.inner)) };
        Ok(t)
    }
}

/// A per-tasklet offset of the stack top, in whole cache lines within a page.
///
/// Stack tops are page-aligned, so without it every tasklet's frames would sit at the same
/// address modulo 4096, and the CPU's memory disambiguation (which compares the low 12 bits
/// of a load with earlier stores) would see false dependencies between the registers one
/// tasklet saves and the ones the next restores on every switch.
pub(crate) fn cache_color(id: u64) -> usize {
    ((id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize) * 64
}

enum Placed<F, B> {
    Inline(F),
    Boxed(B),
}

/// Writes `f` just below `top` and a context that starts `entry::<F, R>` below it.
///
/// # Safety
/// - `top` must be the 16-aligned top of a stack with room for `f` and the initial frame.
unsafe fn place<F, R>(top: usize, f: F) -> (*mut u8, unsafe fn(*mut u8), Context)
where
    F: FnOnce() -> R + 'static,
    R: 'static,
{
    // The caller boxed anything larger or more aligned (a constant: no code in release), so
    // `at` is at most 1024 + 128 bytes below `top`.
    assert!(crate::coroutine::fits_at_stack_top::<F>());
    let align = mem::align_of::<F>().max(16);
    let at = (top - mem::size_of::<F>()) & !(align - 1);
    // SAFETY: caller vouches for the room; `at` is aligned for F.
    unsafe { ptr::write(at as *mut F, f) };
    // SAFETY: `at` is 16-aligned and the stack below is ours.
    let ctx = unsafe { Context::new(at as *mut u8, entry::<F, R>, at) };
    (at as *mut u8, drop_as::<F>, ctx)
}

/// # Safety
/// - `p` must point to a valid `F` that is not used afterwards.
unsafe fn drop_as<F>(p: *mut u8) {
    // SAFETY: forwarded.
    unsafe { ptr::drop_in_place(p as *mut F) }
}

impl Tasklet {
    /// Creates a tasklet alive and paused (Stackless `bind(f, args)`), on a default stack.
    ///
    /// # Errors
    /// The OS error if a new stack cannot be mapped.
    pub fn new<F, R>(f: F) -> io::Result<Tasklet>
    where
        F: FnOnce() -> R + 'static,
        R: 'static,
    {
        TaskletBuilder::new().create(f)
    }

    fn check_thread(&self) -> Result<&'static Scheduler> {
        let s = scheduler();
        if s.is_this_thread(&self.inner) {
            Ok(s)
        } else {
            Err(Error::NoThread)
        }
    }

    fn ptr(&self) -> *const Inner {
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
    fn check_runnable(&self) -> Result<&'static Scheduler> {
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
    /// is dropped, and the kill is delivered.
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
    /// # Errors
    /// [`Error::RecursiveCallback`] from inside the schedule callback.
    pub fn kill_pending(&self) -> Result<()> {
        self.kill_with(true)
    }

    fn kill_with(&self, pending: bool) -> Result<()> {
        let s = self.check_thread()?;
        s.refuse_switch(false)?;
        if is_current(&self.inner) {
            unwind_killed(&self.inner);
        }
        match self.inner.life.get() {
            Life::Dead => Ok(()),
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
    /// # Errors
    /// [`Error::ThrowDead`], [`Error::RecursiveCallback`], or the thrown error itself if the
    /// target is the caller.
    pub fn throw_pending(&self, error: Error) -> Result<()> {
        self.throw_with(error, true)
    }

    fn throw_with(&self, error: Error, pending: bool) -> Result<()> {
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
    fn deliver(&self, s: &Scheduler, what: Pending, pending: bool) -> Result<()> {
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

/// Creates a tasklet and appends it to the run queue: Stackless `tasklet(f)()`.
///
/// # Errors
/// The OS error if a new stack cannot be mapped.
pub fn spawn<F, R>(f: F) -> io::Result<Tasklet>
where
    F: FnOnce() -> R + 'static,
    R: 'static,
{
    TaskletBuilder::new().spawn(f)
}

/// Creates this thread's scheduler now if it has none. Every microthread call does that on
/// first use; call this early in a thread that has no tasklets of its own but will wake
/// another thread's tasklets through a channel or a [`RemoteTasklet`], so that a thread
/// waiting for it sleeps instead of reporting a deadlock (see [`spawn_thread`]).
pub fn init_thread() {
    scheduler();
}

/// An identity for the calling thread: its scheduler's address if it has one, else 2 (a
/// value no scheduler has; such threads never own a channel). Does not create a scheduler.
#[inline]
pub(crate) fn thread_identity() -> usize {
    let s = SCHEDULER.with(|c| c.get());
    if s.is_null() {
        2
    } else {
        s as usize
    }
}

/// The running tasklet of this thread.
pub fn current() -> Tasklet {
    let s = scheduler();
    // SAFETY: the running tasklet is live.
    unsafe { handle(s.current.get()) }
}

/// This thread's main tasklet: the thread's own stack.
pub fn main() -> Tasklet {
    // SAFETY: main lives as long as the scheduler.
    unsafe { handle(scheduler().main) }
}

/// Tasklets in this thread's run queue, the current one included. Paused and blocked
/// tasklets are not counted, nor is a tasklet waiting inside [`run`].
pub fn runcount() -> usize {
    scheduler().runcount.get()
}

/// Yields to the next tasklet in the run queue; the caller stays in it and runs again after
/// one full round. A no-op if the caller is the only runnable tasklet.
///
/// # Errors
/// [`Error::SwitchTrap`], [`Error::Unwinding`], [`Error::RecursiveCallback`], or an error
/// delivered to the caller while it was suspended.
#[inline]
pub fn schedule() -> Result<()> {
    let s = scheduler();
    let me = s.current.get();
    // SAFETY: `me` is running and in the ring, so `next` is a live ring member.
    unsafe { s.switch_to(me, (*me).next.get()) }
}

/// Like [`schedule`], but the caller leaves the run queue (paused) and runs again only when
/// someone inserts, runs or switches to it. If it was the last runnable tasklet, the
/// innermost [`run`] caller (or main) is woken; if it is main and alone, this returns at once.
///
/// # Errors
/// As [`schedule`], and [`Error::Deadlock`].
pub fn schedule_remove() -> Result<()> {
    let s = scheduler();
    let me = s.current.get();
    // It may switch (and even when alone it may sleep), so every refusal applies.
    s.refuse_switch(true)?;
    // SAFETY: `me` is running, in the ring.
    unsafe {
        let next = if (*me).next.get() == me {
            ptr::null()
        } else {
            (*me).next.get()
        };
        s.ring_remove(me);
        s.switch_to(me, next)
    }
}

/// Runs the scheduler until the run queue is empty, from any tasklet: the caller leaves the
/// run queue and waits (it is pushed on the watchdog stack), and `run` returns when no
/// tasklet is runnable any more, when someone runs or switches to the caller, or with the
/// error of a tasklet that panicked (the other tasklets stay scheduled). Nested `run` calls
/// are woken innermost first.
///
/// # Errors
/// [`Error::Panicked`] and any error delivered to the caller; [`Error::SwitchTrap`],
/// [`Error::Unwinding`], [`Error::RecursiveCallback`] (refused: nothing changed).
pub fn run() -> Result<()> {
    let s = scheduler();
    let me = s.current.get();
    // With nothing else runnable it returns at once, without switching.
    // SAFETY: `me` is running, in the ring.
    s.refuse_switch(unsafe { (*me).next.get() } != me)?;
    s.watchdogs.borrow_mut().push(me);
    s.innermost.set(me);
    // SAFETY: `me` is running, in the ring.
    unsafe { s.ring_remove(me) };
    let next = s.current.get();
    // Popped when `run` returns, and also when a kill unwinds the caller out of it.
    let _pop = PopWatchdogs(s, me);
    // SAFETY: `me` is running; `next` (if any) is a ring member.
    unsafe { s.switch_to(me, next) }
}

/// Ends a tasklet that never ran and never can (paused, no handle, no other thread refers to
/// it): drops its closure now instead of at the thread's end. Called by the last handle.
pub(crate) fn discard_unstarted(inner: Arc<Inner>) {
    let s = scheduler();
    let p = Arc::as_ptr(&inner);
    let closure = inner.closure.replace(ptr::null_mut());
    let drop_closure = inner.drop_closure.take();
    // Out of every structure first: the closure's `Drop` is user code and may do anything.
    inner.life.set(Life::Dead);
    inner.context.set(None);
    // SAFETY: a live tasklet of this thread is in the list; the list's reference is the
    // local one this handle shares, which `inner` now holds.
    unsafe { s.unregister(p) };
    inner.held.set(false);
    let dropped = match drop_closure {
        // SAFETY: the closure written at `closure` on the tasklet's stack never ran, so it was
        // never moved out; the stack is still mapped (released below).
        Some(d) => panic::catch_unwind(AssertUnwindSafe(|| unsafe { d(closure) })),
        None => Ok(()),
    };
    if let Some(stack) = inner.stack.take() {
        pool::release(stack);
    }
    crate::tasklet::recycle(inner);
    if let Err(payload) = dropped {
        panic::resume_unwind(payload);
    }
}

/// Pops a `run` caller and every deeper watchdog; the deeper ones continue as ordinary
/// tasklets.
struct PopWatchdogs(&'static Scheduler, *const Inner);

impl Drop for PopWatchdogs {
    fn drop(&mut self) {
        let PopWatchdogs(s, me) = *self;
        let mut w = s.watchdogs.borrow_mut();
        // Usually `me` is the innermost; if an outer `run` already popped it, nothing to do.
        if s.innermost.get() != me && !w.contains(&me) {
            return;
        }
        // Innermost first, as Stackless pops them, down to and including `me`.
        while let Some(p) = w.pop() {
            // SAFETY: watchdogs are live tasklets of this thread.
            if unsafe { (*p).floating() } {
                // SAFETY: as above, and floating.
                unsafe { s.ring_insert(p) };
            }
            if p == me {
                break;
            }
        }
        s.innermost.set(w.last().copied().unwrap_or(ptr::null()));
    }
}

/// Adds `change` to this thread's switch-trap level and returns the old level;
/// `switch_trap(0)` only reads it. While the level is non-zero, every switch to another
/// tasklet fails with [`Error::SwitchTrap`]; operations that do not switch still work.
///
/// # Panics
/// If the level would overflow an `i32` (it is left unchanged).
pub fn switch_trap(change: i32) -> i32 {
    let s = scheduler();
    let old = s.switch_trap.get();
    let Some(new) = old.checked_add(change) else {
        panic!("switch_trap({change}): the switch-trap level {old} would overflow an i32");
    };
    s.switch_trap.set(new);
    s.refresh_hooks();
    old
}

/// Installs `callback`, called with (previous, next) before every switch of this thread,
/// and returns the previous one. A panic in the callback is ignored (after the panic hook
/// reports it); a scheduler operation from inside it fails with [`Error::RecursiveCallback`].
pub fn set_schedule_callback(callback: Option<ScheduleCallback>) -> Option<ScheduleCallback> {
    let s = scheduler();
    let old = s.callback.replace(callback);
    if s.in_callback.get() {
        s.callback_replaced.set(true);
    }
    s.refresh_hooks();
    old
}

/// Runs `f` with the current tasklet's `atomic` flag set, restoring it afterwards: no
/// involuntary switch (preemption) happens inside. Explicit switches still do.
pub fn atomic<T>(f: impl FnOnce() -> T) -> T {
    let _guard = AtomicGuard::new();
    f()
}

/// Sets the current tasklet's `atomic` flag for its lifetime; see [`atomic`].
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
