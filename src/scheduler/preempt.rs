//! Preemption at safe points: the tick counter, [`tick`] and [`ticks`], and what a watchdog
//! interrupt does (Stackless Python reference §2.7).
//!
//! # Safe points
//! A tasklet is preempted only at a **safe point**: a call of [`tick`] or [`ticks`], or any
//! scheduler or channel operation ([`schedule`](super::schedule),
//! [`schedule_remove`](super::schedule_remove), [`run`](super::run) and
//! [`run_with`](super::run_with), [`Tasklet::run`], [`Tasklet::switch`], every send and
//! receive), each of which counts one tick at its start, before it changes anything, while
//! a watchdog is active (without one nobody reads the count). A
//! CPU-bound loop calls `tick()` where Stackless's eval loop counted a bytecode.
//!
//! Native code is never interrupted between safe points, and cannot be soundly: a signal
//! could stop a tasklet while it holds the allocator's lock, a `std` lock (stdout, the
//! environment), or is inside the panic machinery, and switching to another tasklet that
//! takes the same lock would deadlock or corrupt it, because the lock belongs to the thread,
//! not to the tasklet. So code that reaches no safe point runs on until it does. This is
//! also Stackless's rule: it counts bytecodes, and a long call into C code is not preempted
//! ("tasklets that do long running calls outside of Python code are not something this
//! mechanism has any insight into"). Stackless also holds off preemption at a non-zero C
//! nesting level unless `ignore_nesting` is set; every safe point here is at nesting level
//! zero by construction, so there is no `ignore_nesting`.
//!
//! # The cost
//! A tick is a compare of this thread's counter (a thread-local `Cell<u64>`) with its
//! watermark (a thread-local `AtomicU64`, read with one relaxed load: a plain load on every
//! architecture we build for) and an increment: the watermark is `u64::MAX` while no
//! watchdog is active, so the check never fires; with a watchdog it fires once the budget is
//! used up, or once the time slice's timer stored 0 into it. Report rows
//! `tick_ns` and `tick_watchdog_ns`. While a watchdog is active every switch takes the
//! scheduler's slow path (a bit in its hooks word), where the timeslice restarts and a soft
//! interrupt is delivered; without one the switch is untouched.
//!
//! # Time slices
//! With [`RunOptions::slice`](super::RunOptions::slice) the slice timer (see `time_slice`)
//! stores 0 into the watermark when the slice has run out, so the next safe point enters
//! [`interrupt`], which consumes the timer's mark and proceeds exactly as for a used-up
//! budget: hard, soft or deferred. The thread also looks at the clock itself, every few
//! safe points (about every 20 µs, see `slice_clock`): the watermark is then the nearer of
//! the budget's end and that look, and a look past the deadline marks the slice fired as
//! the timer would, without waiting for the timer thread to wake. A budget and a slice may be combined; whichever ends
//! first interrupts. Every switch under the watchdog restarts both (not with `total`); a
//! visit to the interrupt path with neither due (a fire that raced with such a restart)
//! just restores the watermark.
//!
//! # Deferred interrupts
//! When the budget is used up while the running tasklet is [`atomic`](super::atomic), while
//! a schedule or channel callback runs, under a [`switch_trap`](super::switch_trap), while
//! its stack unwinds, or in soft mode, the interrupt is deferred: the tasklet's
//! `pending_irq` is set and the budget (and the time slice) restarts, exactly as Stackless's
//! `interrupt()` does. In hard mode the interrupt then comes due again when that restarted
//! budget runs out (so a tasklet that switches or ends first is not interrupted), except
//! that [`Tasklet::set_atomic`]`(false)` of the running tasklet fires a pending one at its
//! next safe point (Stackless's `slp_check_pending_irq`): leaving an `atomic` section is
//! interrupted at once, leaving a callback or a `switch_trap` is not. In soft mode it fires
//! at the tasklet's next switch (see [`RunOptions::soft`](super::RunOptions::soft)).

use std::cell::Cell;
use std::ptr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::slice_clock::ClockChecks;
use super::time_slice::{self, SliceFlags};
use super::{scheduler, Scheduler};
use crate::error::Result;
use crate::tasklet::Inner;
#[cfg(doc)]
use crate::tasklet::Tasklet;

/// The bit of the scheduler's hooks word that sends every switch through the slow path while
/// a watchdog with a budget is active.
pub(super) const WATCHDOG_HOOK: u32 = 1 << 4;

/// This thread's preemption state (Stackless's `tick_counter`, `tick_watermark`, `interval`,
/// `runflags` and `interrupted`, and the interrupt slot `watchdogs[0]`).
pub(super) struct Preempt {
    ticks: Cell<u64>,
    /// The tick that fires the interrupt (`flags.watermark`; `u64::MAX` when none is
    /// installed; 0 when the time slice fired) and the slice's deadline. The budget's own
    /// end is `deadline`; while the running tasklet has a hard interrupt pending, every tick
    /// checks (the watermark is the counter).
    flags: SliceFlags,
    deadline: Cell<u64>,
    /// The tick budget (`u64::MAX` for a watchdog with a time slice only).
    interval: Cell<u64>,
    /// The time slice in nanoseconds; 0: none.
    slice_ns: Cell<u64>,
    /// While a slice is active: when this thread next looks at the clock itself.
    clock: ClockChecks,
    soft: Cell<bool>,
    total: Cell<bool>,
    /// The interrupt watchdog (Stackless's `watchdogs[0]`): null when none.
    pub(super) slot0: Cell<*const Inner>,
    /// The tasklet an interrupt recorded for the interrupt watchdog.
    pub(super) interrupted: Cell<*const Inner>,
    /// Set by `set_atomic(false)` of the running tasklet with a hard interrupt pending: the
    /// next safe point fires it although the budget has not run out again.
    forced: Cell<bool>,
    /// Set by a channel operation that switches to the partner it chose (Stackless's
    /// `PY_WATCHDOG_NO_SOFT_IRQ`): a soft interrupt passes on to that partner.
    no_soft_irq: Cell<bool>,
}

thread_local! {
    pub(super) static PREEMPT: Preempt = const {
        Preempt {
            ticks: Cell::new(0),
            flags: SliceFlags::new(),
            deadline: Cell::new(u64::MAX),
            interval: Cell::new(0),
            slice_ns: Cell::new(0),
            clock: ClockChecks::new(),
            soft: Cell::new(false),
            total: Cell::new(false),
            slot0: Cell::new(ptr::null()),
            interrupted: Cell::new(ptr::null()),
            no_soft_irq: Cell::new(false),
            forced: Cell::new(false),
        }
    };
}

impl Preempt {
    /// The counter value at which a safe point next takes the interrupt path: the end of the
    /// budget, or with a slice the thread's next look at the clock if that comes first.
    fn watermark_target(&self) -> u64 {
        let end = self.deadline.get();
        if self.slice_ns.get() == 0 {
            end
        } else {
            end.min(self.clock.next())
        }
    }

    /// Restarts the time slice, if there is one, from now.
    fn restart_slice(&self) {
        let slice = self.slice_ns.get();
        if slice != 0 {
            let now = self.flags.restart(slice);
            self.clock.restart(self.ticks.get(), now);
        }
    }
}

/// A safe point: counts one tick, and if the budget of the active watchdog (see
/// [`run_with`](super::run_with)) is used up, preempts the caller here. With no watchdog it
/// is a compare and an increment and never switches.
///
/// # Errors
/// Only when it was preempted: an error delivered to the caller while it was away (it was
/// killed or thrown into before it was inserted again).
///
/// ```
/// use microthread::scheduler::{self, run_with, spawn, RunOptions};
///
/// // A CPU-bound loop with a safe point in it, under a budget of 100 ticks.
/// let busy = spawn(|| {
///     for _ in 0..1_000 {
///         scheduler::tick().unwrap();
///     }
/// })?;
/// let victim = run_with(RunOptions::new().ticks(100)).unwrap();
/// assert_eq!(victim, Some(busy.clone()), "interrupted and handed back");
/// assert!(busy.alive() && busy.paused());
/// // With no watchdog, tick() never switches.
/// scheduler::tick().unwrap();
/// busy.insert().unwrap();
/// scheduler::run().unwrap();
/// assert!(!busy.alive());
/// # Ok::<(), std::io::Error>(())
/// ```
#[inline(always)]
pub fn tick() -> Result<()> {
    PREEMPT.with(|p| {
        let n = p.ticks.get();
        p.ticks.set(n.wrapping_add(1));
        if n >= p.flags.watermark.load(Ordering::Relaxed) {
            interrupt()
        } else {
            Ok(())
        }
    })
}

/// `n` safe points at once: counts `n` ticks, then preempts the caller if the budget is used
/// up (the interrupt fires once, here, however far past the budget `n` goes). For a loop
/// whose body stands for several ticks.
///
/// # Errors
/// As [`tick`].
///
/// ```
/// use microthread::scheduler::{self, run_with, spawn, RunOptions};
///
/// let busy = spawn(|| scheduler::ticks(1_000).unwrap())?;
/// assert_eq!(run_with(RunOptions::new().ticks(10)).unwrap(), Some(busy.clone()));
/// busy.insert().unwrap();
/// scheduler::run().unwrap(); // no watchdog now: it finishes
/// assert!(!busy.alive());
/// # Ok::<(), std::io::Error>(())
/// ```
#[inline]
pub fn ticks(n: u64) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    PREEMPT.with(|p| {
        let last = p.ticks.get().wrapping_add(n - 1);
        p.ticks.set(last.wrapping_add(1));
        if last >= p.flags.watermark.load(Ordering::Relaxed) {
            interrupt()
        } else {
            Ok(())
        }
    })
}

/// Stackless's `interrupt_timeout_return`: the budget is used up at a safe point.
#[cold]
#[inline(never)]
fn interrupt() -> Result<()> {
    let s = scheduler();
    let cur = s.current.get();
    let (wd, soft) = PREEMPT.with(|p| (p.slot0.get(), p.soft.get()));
    if wd.is_null() {
        // No watchdog (a stale watermark): nothing to do.
        PREEMPT.with(|p| p.flags.set_watermark(u64::MAX));
        return Ok(());
    }
    // SAFETY: the running tasklet is live.
    let c = unsafe { &*cur };
    let due = PREEMPT.with(|p| {
        let slice = p.slice_ns.get();
        if slice != 0 && p.ticks.get() >= p.clock.next() {
            // The thread's own look at the clock (see `slice_clock`).
            p.clock.look(&p.flags, p.ticks.get(), slice);
        }
        let fired = slice != 0 && p.flags.take_fired();
        fired || p.forced.replace(false) || p.ticks.get() > p.deadline.get()
    });
    if !due {
        // A look at the clock before the slice's end, or a fire of the slice timer for a
        // slice that a switch has restarted since: nothing is due (see `time_slice`).
        PREEMPT.with(|p| p.flags.set_watermark(p.watermark_target()));
        return Ok(());
    }
    let deferred = soft
        || c.atomic.get()
        || s.in_callback.get()
        || s.in_channel_callback.get()
        || s.switch_trap.get() != 0
        || std::thread::panicking()
        || cur == wd;
    if deferred {
        PREEMPT.with(|p| {
            // Stackless's `interrupt()`: a deferral sets `pending_irq` and restarts the
            // budget (and here the slice), so the interrupt comes due again when that runs
            // out; only `set_atomic(false)` fires a pending one sooner (`atomic_cleared`).
            p.deadline
                .set(p.ticks.get().saturating_add(p.interval.get()));
            p.restart_slice();
            p.flags.set_watermark(p.watermark_target());
        });
        c.pending_irq.set(true);
        return Ok(());
    }
    c.pending_irq.set(false);
    PREEMPT.with(|p| p.interrupted.set(cur));
    // The victim stays in the ring: the watchdog's `run_with` removes it.
    // SAFETY: `cur` is running; the watchdog is a live tasklet of this thread (paused inside
    // `run_with`, or scheduled if someone inserted it).
    unsafe { s.switch_to(cur, wd) }
}

impl Scheduler {
    /// The safe point at the start of every scheduler and channel operation: a [`tick`]
    /// while a watchdog is active. Without one the counter matters to nobody (a watchdog
    /// measures its budget from the count when it starts), so the operation pays only the
    /// load of the hooks word, which it reads anyway.
    ///
    /// # Errors
    /// As [`tick`].
    #[inline(always)]
    pub(crate) fn op_tick(&self) -> Result<()> {
        if self.hooks.get() & WATCHDOG_HOOK != 0 {
            return op_tick_slow();
        }
        Ok(())
    }
}

#[cold]
#[inline(never)]
fn op_tick_slow() -> Result<()> {
    tick()
}

/// A channel operation is about to switch to the partner it chose.
#[inline(always)]
pub(super) fn note_explicit_partner() {
    PREEMPT.with(|p| p.no_soft_irq.set(true));
}

/// The budget and mode of an interrupt watchdog being installed.
pub(super) struct Budget {
    pub(super) ticks: u64,
    pub(super) soft: bool,
    pub(super) total: bool,
    /// The wall-clock time slice, if any (see `time_slice`).
    pub(super) slice: Option<Duration>,
}

impl Scheduler {
    /// Installs `wd` as the interrupt watchdog with `budget`. With a time slice,
    /// [`time_slice::prepare`] must have succeeded on this thread.
    pub(super) fn install_watchdog(&self, wd: *const Inner, budget: &Budget) {
        PREEMPT.with(|p| {
            p.slot0.set(wd);
            p.interrupted.set(ptr::null());
            p.no_soft_irq.set(false);
            p.forced.set(false);
            // A slice alone: a tick budget that never ends.
            let interval = if budget.ticks == 0 {
                u64::MAX
            } else {
                budget.ticks
            };
            p.interval.set(interval);
            p.soft.set(budget.soft);
            p.total.set(budget.total);
            p.deadline.set(p.ticks.get().saturating_add(interval));
            match budget.slice {
                Some(d) => {
                    p.slice_ns
                        .set(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX / 2).max(1));
                    let now = time_slice::arm(&p.flags, d);
                    p.clock.arm(p.ticks.get(), now);
                }
                None => p.slice_ns.set(0),
            }
            p.flags.set_watermark(p.watermark_target());
        });
        self.refresh_hooks();
    }

    /// Removes the interrupt watchdog: no budget is counted any more, and its time slice
    /// (if any) is disarmed: the timer never fires for it after this.
    pub(super) fn uninstall_watchdog(&self) {
        PREEMPT.with(|p| {
            p.slot0.set(ptr::null());
            if p.slice_ns.replace(0) != 0 {
                time_slice::disarm(&p.flags);
            }
            p.flags.set_watermark(u64::MAX);
            p.no_soft_irq.set(false);
            p.forced.set(false);
        });
        self.refresh_hooks();
    }

    /// Every switch from `prev` to `next` while a watchdog is active, before the schedule
    /// callback (Stackless's `slp_schedule_soft_irq`): returns the
    /// tasklet to switch to instead (the watchdog, for a soft interrupt), which is in the ring.
    ///
    /// # Safety
    /// - `prev` must be the running tasklet, `next` a ring member, both of this thread.
    #[cold]
    #[inline(never)]
    pub(super) unsafe fn watchdog_on_switch(
        &self,
        prev: *const Inner,
        next: *const Inner,
    ) -> *const Inner {
        PREEMPT.with(|p| {
            let wd = p.slot0.get();
            let nsi = p.no_soft_irq.replace(false);
            // SAFETY: live tasklets of this thread (caller's obligation; the watchdog is
            // paused in `run_with`).
            let (pv, nx) = unsafe { (&*prev, &*next) };
            if wd.is_null() || !p.soft.get() || !pv.pending_irq.get() {
                return next;
            }
            if self.switch_trap.get() != 0 || std::thread::panicking() {
                // The redirect would be refused: it waits for a later switch.
                return next;
            }
            pv.pending_irq.set(false);
            // SAFETY: as above.
            if !unsafe { (*wd).floating() } || prev == wd || next == wd {
                return next;
            }
            if nsi {
                nx.pending_irq.set(true);
                return next;
            }
            p.interrupted.set(next);
            // `wd` goes just before `next`, so `next` runs when the watchdog yields again.
            // SAFETY: `next` is a ring member, `wd` a floating live tasklet of this thread.
            unsafe {
                let hold = self.current.get();
                self.current.set(next);
                self.ring_insert(wd);
                self.current.set(hold);
            }
            wd
        })
    }

    /// The last step of a switch to `next` while a watchdog is active, after the schedule
    /// callback (whose ticks count for the tasklet it ran in): the timeslice restarts (not
    /// with [`RunOptions::total`](super::RunOptions::total)), and a hard interrupt pending
    /// for `next` fires at its first safe point.
    ///
    /// # Safety
    /// - `next` must be a live tasklet of this thread.
    #[cold]
    #[inline(never)]
    pub(super) unsafe fn watchdog_restart_slice(&self, next: *const Inner) {
        PREEMPT.with(|p| {
            if p.slot0.get().is_null() {
                return;
            }
            if !p.total.get() {
                p.deadline
                    .set(p.ticks.get().saturating_add(p.interval.get()));
                p.restart_slice();
            }
            // A hard interrupt pending for `next` waits, as in Stackless, for the budget to
            // run out again (or for its `set_atomic(false)`); one forced by the previous
            // tasklet's `set_atomic(false)` that no safe point of it met is over.
            let _ = next;
            p.forced.set(false);
            p.flags.set_watermark(p.watermark_target());
        });
    }
}

/// Whether an interrupt watchdog is active on this thread (for the hooks word).
pub(super) fn watchdog_active() -> bool {
    PREEMPT.with(|p| !p.slot0.get().is_null())
}

/// `set_atomic(false)` on a tasklet `t` of this thread with an interrupt pending
/// (Stackless's `slp_check_pending_irq`): with no watchdog active nothing can fire it, and
/// Stackless's `set_atomic` clears `pending_irq`, so it must not fire in a later run. With a
/// hard watchdog and `t` running, it fires at the next safe point; otherwise it stays (a soft
/// one fires at the tasklet's next switch, a hard one when the budget runs out again).
pub(crate) fn atomic_cleared(t: &Inner) {
    if !watchdog_active() {
        t.pending_irq.set(false);
        return;
    }
    PREEMPT.with(|p| {
        if !p.soft.get() && super::is_current(t) {
            p.forced.set(true);
            p.flags.set_watermark(p.ticks.get());
        }
    });
}

/// This thread's words that the slice timer writes: valid as long as the thread (the
/// thread-local has no destructor, so also inside every thread-local destructor).
pub(super) fn own_slice_flags() -> *const SliceFlags {
    PREEMPT.with(|p| &p.flags as *const SliceFlags)
}
