//! The scheduler's interface for channels: the few operations a blocking primitive needs —
//! the running tasklet, the checks that may refuse a block or a switch, blocking the running
//! tasklet, making a partner runnable (here, or on its own thread), keeping an error for the
//! tasklet's next suspension — and the names they use. [`crate::channel`] uses the scheduler
//! only through this module and the channel callback's plumbing (`before_channel_action`,
//! `channel_hooks`, `set_channel_callback`, in `callback`), so the layers stay
//! one-directional: channel → scheduler → tasklet.

use super::{Mail, SendArc};
use crate::error::{Error, Result};
use crate::tasklet::{Pending, RemoteState};

pub use super::callback::{AnyChannel, ChannelCallback, ChannelEvent};
pub(crate) use super::callback::{ChannelInfo, SealedChannel};
pub(crate) use super::kill::take_pending;
pub(crate) use super::thread::identity_vanished;
pub(crate) use super::{scheduler, thread_identity, Scheduler};
pub(crate) use crate::tasklet::{Blocker, Inner, Tasklet};

/// What a cross-thread wake gives back: drop it after the channel's lock is released. It
/// makes the wake-up's system call then (if the partner's thread sleeps), and holds the mail
/// if the partner's thread has ended.
pub(crate) type Undelivered = super::thread::Posted;

impl Scheduler {
    /// Numbers a new blocking episode of `t`, a tasklet of this thread, and records it in
    /// `t.block_epoch`. One counter per thread: a tasklet's episodes are increasing, so a
    /// wake that names an earlier one is recognised as stale; and the episodes of one
    /// thread's tasklets are ordered as they began. A tasklet joins a channel's queue at the
    /// end (a refused take puts the head back where it was) right after its episode is
    /// numbered, so a channel's waiters of one thread hold increasing numbers from head to
    /// tail, and pickling reads a queue's order from them instead of walking the queue
    /// through the waiters' stacks (see `pickle::order`).
    #[inline(always)]
    pub(crate) fn new_block_epoch(&self, t: &Inner) -> u64 {
        let epoch = self.block_epochs.get() + 1;
        self.block_epochs.set(epoch);
        t.block_epoch.set(epoch);
        epoch
    }

    /// The running tasklet.
    pub(crate) fn current_ptr(&self) -> *const Inner {
        self.current.get()
    }

    /// Whether this scheduler has ended (its thread is past its teardown): nothing it owns
    /// can be woken any more.
    #[inline]
    pub(crate) fn ended(&self) -> bool {
        self.shared.ended()
    }

    /// Takes the running tasklet `me` (just marked blocked) out of the ring and switches to
    /// the next runnable one, or blocks (§2.4). Returns when `me` runs again.
    ///
    /// # Safety
    /// - `me` must be the running tasklet, in the ring.
    #[inline(never)]
    pub(crate) unsafe fn block_current(&self, me: *const Inner) -> Result<()> {
        // SAFETY: forwarded. The mail is read once `me` is out of the ring (a wake for this
        // very block may be in it), before the next tasklet is chosen: a remote run's target
        // takes `me`'s place and runs next.
        unsafe {
            self.ring_remove_as(me, RemoteState::ALIVE | RemoteState::BLOCKED);
            self.read_mail_after_leaving();
            self.switch_after_mail(me, self.current.get())
        }
    }

    /// [`Scheduler::block_current`] for a channel operation on its fast path, where the
    /// caller has found no hook on and the stack not unwinding, so that the switch tests
    /// neither again. Inlined at its call site, so that the switch is entered and left by
    /// jumps (see `switch_between_tasklets`): a tasklet that blocks here resumes with no
    /// return whose address another tasklet's call pushed, which would mispredict (a send
    /// of main and a send of a tasklet block at different call sites).
    ///
    /// # Safety
    /// - As `block_current`, and neither [`Scheduler::hooks_on`] nor
    ///   [`std::thread::panicking`] may hold.
    #[inline(always)]
    pub(crate) unsafe fn block_current_quiet(&self, me: *const Inner) -> Result<()> {
        // SAFETY: forwarded, as in `block_current`; the quiet switch's conditions are the
        // caller's, and reading the mail or the timers sets no hook and starts no unwinding.
        unsafe {
            // The running tasklet is the ring's cursor.
            let next = self.ring_remove_current_as(me, RemoteState::ALIVE | RemoteState::BLOCKED);
            if self
                .shared
                .has_mail
                .load(std::sync::atomic::Ordering::Relaxed)
            {
                // The mail may wake `me` back into the ring (then it continues).
                self.read_mail_after_leaving();
                return self.switch_quiet::<true, true>(me, self.current.get());
            }
            // No mail: `me` stays out of the ring, so the next tasklet, if any, is another
            // one (no test of that), and the cursor is still `next`.
            self.switch_quiet::<true, false>(me, next)
        }
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

    /// Whether anything takes a channel operation off its fast path: a switch trap, a
    /// schedule or channel callback set or running, an active watchdog, or an ended
    /// scheduler. One load; nothing but the caller's own scheduler calls changes it.
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

    /// The scheduler's part of why the running tasklet `m` may not block now: its thread has
    /// ended, a switch would be refused, or an error waited for its next suspension (it is
    /// delivered now instead).
    pub(crate) fn refuse_block(&self, m: &Inner) -> Result<()> {
        if self.shared.ended() {
            // Nothing could ever wake it: its thread is past its teardown.
            return Err(Error::SchedulerEnded);
        }
        self.refuse_switch(true)?;
        take_pending(m)
    }

    /// Marks `t`, a paused tasklet of this thread that is not running, as blocked on
    /// `blocker` in direction `dir` (+1 sending, -1 receiving), as if it had blocked there
    /// itself; it counts as started (it is suspended inside that operation). Returns its new
    /// blocking episode. The caller queues its waiter, under the channel's lock, before
    /// releasing it (`Channel::park`).
    ///
    /// # Safety
    /// - `t` must be a live, floating, non-running tasklet of this scheduler; `blocker` must
    ///   stay valid for as long as `t` stays blocked on it.
    pub(crate) unsafe fn park_floating(
        &self,
        t: *const Inner,
        dir: i8,
        blocker: *const dyn Blocker,
    ) -> u64 {
        // SAFETY: caller's obligation.
        let t = unsafe { &*t };
        debug_assert!(t.floating() && t.alive() && !std::ptr::eq(t, self.current.get()));
        let epoch = self.new_block_epoch(t);
        t.blocked.set(dir);
        t.blocked_on.set(Some(blocker));
        t.life.set(crate::tasklet::Life::Started);
        t.remote_state
            .set(RemoteState::ALIVE | RemoteState::BLOCKED);
        epoch
    }

    /// Keeps `e` pending in the running tasklet `m`, for its next suspension; what it
    /// replaces is dropped at the next safe point.
    pub(crate) fn pend_error(&self, m: &Inner, e: Error) {
        if let Some(lost) = m.set_pending(Pending::Error(e)) {
            self.defer_drop(lost);
        }
    }

    /// Unblocks `partner` (a rendezvous completed with it) and makes it runnable: at the end
    /// of the run queue if not `switching`; else with `schedule_all` at the end and the
    /// running tasklet yields; else right after the running tasklet, which switches to it.
    /// `QUIET`: no hook is on, so the switch to the partner tests none.
    ///
    /// # Safety
    /// - `partner` must be a blocked tasklet of this thread, out of its channel's queue.
    /// - With `QUIET`, [`Scheduler::hooks_on`] must be false.
    #[inline(always)]
    pub(crate) unsafe fn wake_here<const QUIET: bool>(
        &self,
        partner: *const Inner,
        switching: bool,
        schedule_all: bool,
    ) -> Result<()> {
        // SAFETY: the partner is a blocked tasklet of this thread, now out of the queue.
        let p = unsafe { &*partner };
        p.blocked.set(0);
        p.blocked_on.set(None);
        let me = self.current_ptr();
        // SAFETY: `me` runs; the partner is live, of this thread, in no queue.
        unsafe {
            if !switching {
                self.ring_insert(partner);
                Ok(())
            } else {
                // Read before the partner goes in, so that a remote run's target runs after
                // it (and the switch below needs no mail check of its own).
                if self
                    .shared
                    .has_mail
                    .load(std::sync::atomic::Ordering::Relaxed)
                {
                    self.read_mail_before_waking(partner);
                }
                if schedule_all {
                    self.ring_insert(partner);
                    self.switch_after_mail(me, (*me).next.get())
                } else {
                    self.ring_insert_after_current(partner);
                    if QUIET {
                        // The partner is in the ring, after `me` (so not `me`, which
                        // runs); no hook is on.
                        self.switch_quiet::<false, false>(me, partner)
                    } else {
                        if self.hooks.get() != 0 {
                            super::preempt::note_explicit_partner();
                        }
                        self.switch_after_mail(me, partner)
                    }
                }
            }
        }
    }
}

impl Scheduler {
    /// Reads the mail in [`Scheduler::wake_here`] before the partner goes into the ring. The
    /// mail may have made the partner runnable already (a remote kill or throw): then it is
    /// taken out again, to go where `wake_here` puts it.
    ///
    /// # Safety
    /// - `partner` must be a live tasklet of this thread, unblocked, in no channel's queue.
    #[cold]
    #[inline(never)]
    unsafe fn read_mail_before_waking(&self, partner: *const Inner) {
        self.read_mail();
        // SAFETY: live (caller's obligation).
        if unsafe { (*partner).in_ring() } {
            // SAFETY: in the ring.
            unsafe { self.ring_remove(partner) };
        }
    }
}

/// Posts a wake for `partner`'s blocking episode `epoch` to its own thread (whose scheduler
/// is `partner_sched`): it becomes runnable there.
///
/// # Safety
/// - `partner` must be a tasklet blocked on a channel (hence alive) whose scheduler is
///   `partner_sched`, and that cannot run again before this wake.
pub(crate) unsafe fn wake_on_its_thread(
    partner: *const Inner,
    partner_sched: *const Scheduler,
    epoch: u64,
) -> Undelivered {
    // SAFETY: the partner is blocked, hence alive; we take a counted reference.
    let arc = unsafe {
        crate::tasklet::Record::increment_strong_count(partner);
        crate::tasklet::Record::from_raw(partner)
    };
    // SAFETY: a blocked tasklet's scheduler is alive (it ends only after killing and
    // unlinking its tasklets); its shared part is reference-counted.
    let shared = unsafe { (*partner_sched).shared.clone() };
    shared.post_deferring_wake(Mail::Wake(SendArc(arc), epoch))
}
