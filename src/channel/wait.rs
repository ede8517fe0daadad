//! The blocked side of a channel: a blocked tasklet's place in the queue ([`Waiter`]),
//! blocking the running tasklet (`block`, with the checks that may refuse it), what a blocked
//! operation returns when an error resumes it, letting go of a waiter that is killed or thrown
//! into (the [`Blocker`] impl), and waking a partner that waits on another thread.

use std::cell::UnsafeCell;
use std::ptr;
use std::time::Instant;

use super::action::{failure, out_of_line, Failure, Outcome};
use super::core::{ChannelLock, Core, Guard, Msg};
use super::wait_queue::Link;
use crate::error::{Error, Result};
use crate::scheduler::blocking::{self, Blocker, Inner, Scheduler};

/// A blocked tasklet's place in a channel's queue; lives on the blocked tasklet's stack.
pub(super) struct Waiter<T> {
    pub(super) tasklet: *const Inner,
    pub(super) scheduler: *const Scheduler,
    /// The sender's message, or the receiver's empty slot the partner fills.
    pub(super) slot: UnsafeCell<Option<Msg<T>>>,
    /// The next waiter in the channel's queue (see [`WaitQueue`](super::wait_queue)),
    /// written under the channel's lock only.
    pub(super) next: Link<T>,
}

impl<T, L: ChannelLock> Blocker for Core<T, L> {
    fn channel_id(&self) -> u64 {
        self.id
    }

    fn unlink(&self, t: &Inner) -> bool {
        // Called in the middle of scheduler operations, where a panic must not start. A
        // poisoned channel (see `lock`) is never read again, so `t` may stay in its queue.
        let Some(mut g) = self.try_lock() else {
            return false;
        };
        let st = g.state();
        // SAFETY: queued waiters are valid (see `Core`'s Send impl).
        let is_ts = |w: *const Waiter<T>| unsafe { ptr::eq((*w).tasklet, t) };
        // SAFETY: as above.
        match unsafe { st.queue.remove_first(is_ts) } {
            Some(_) => {
                st.balance -= t.blocked.get() as i32;
                true
            }
            None => false,
        }
    }
}

impl<T: 'static, L: ChannelLock> Core<T, L> {
    /// No partner: queue the running tasklet and switch away until a partner (or an error)
    /// makes it runnable again. `QUIET`: no hook is on, so only what else can refuse the
    /// block is tested, and the switch away is the quiet one.
    ///
    /// # Safety
    /// With `QUIET`, `s.hooks_on()` must be false.
    #[inline(always)]
    pub(super) unsafe fn block<const DIR: i8, const QUIET: bool>(
        &self,
        s: &Scheduler,
        mut g: Guard<'_, T, L>,
        msg: Option<Msg<T>>,
        deadline: Option<Instant>,
    ) -> Outcome<T> {
        let st = g.state();
        let me = s.current_ptr();
        // SAFETY: `me` is the running tasklet.
        let m = unsafe { &*me };
        // Everything that can refuse to block is checked before the tasklet is queued; one
        // test on the common path.
        if m.block_trap.get()
            || st.closing
            || if QUIET {
                std::thread::panicking()
            } else {
                s.may_refuse()
            }
            // SAFETY: a Cell of this thread that nothing borrows: a plain read.
            || unsafe { (*m.pending.as_ptr()).is_some() }
        {
            if let Err(e) = refuse_to_block(s, m, st.closing) {
                drop(g);
                return Err(failure(e, msg));
            }
        }
        if let Some(d) = deadline {
            if d <= Instant::now() {
                // The deadline has passed and nobody waits to send: the channel is untouched.
                drop(g);
                return Err(failure(Error::Timeout, msg));
            }
        }
        // Its episode is kept in the tasklet only (`Inner::block_epoch`), where a
        // cross-thread wake reads it: no copy in the waiter to store.
        let epoch = s.new_block_epoch(m);
        let waiter = Waiter {
            tasklet: me,
            scheduler: s as *const Scheduler,
            slot: UnsafeCell::new(msg),
            next: Link::new(ptr::null()),
        };
        // SAFETY: the waiter stays on this stack, unmoved, until it is out of the queue
        // (see below); the queued ones are valid.
        unsafe { st.queue.push_back(&waiter) };
        st.balance += DIR as i32;
        drop(g);
        m.blocked.set(DIR);
        let blocker: &dyn Blocker = self;
        m.blocked_on.set(Some(blocker as *const dyn Blocker));
        if let Some(d) = deadline {
            // SAFETY: `me` is the running tasklet, live; the entry names this episode.
            unsafe { s.add_timer(me, d, epoch) };
        }
        // SAFETY: `me` runs and is in the ring; the switch comes back once a partner (or an
        // error) makes us runnable, and by then `waiter` is out of the queue. With QUIET no
        // hook is on (the caller's obligation) and the stack does not unwind (an unwinding
        // one was refused above).
        let r = unsafe {
            if QUIET {
                s.block_current_quiet(me)
            } else {
                s.block_current(me)
            }
        };
        if DIR > 0 && r.is_ok() {
            // A send resumed without an error: a partner took the value, the slot is empty
            // and the waiter has nothing to drop (skip reading it back).
            // SAFETY: out of the queue (see above), so nobody else touches the slot any more.
            debug_assert!(unsafe { (*waiter.slot.get()).is_none() });
            std::mem::forget(waiter);
            return Ok(None);
        }
        // SAFETY: out of the queue (see above), so nobody else touches the slot any more.
        let slot = unsafe { (*waiter.slot.get()).take() };
        match r {
            Ok(()) => Ok(slot),
            // The deadline came, but a sender on another thread had already taken us out of
            // the queue (under the lock, before the timer's unlink) and delivered: the
            // value wins and the timeout is forgotten. Nothing is lost either way.
            Err(Error::Timeout) if DIR < 0 && deadline.is_some() && slot.is_some() => Ok(slot),
            Err(e) => out_of_line(slot, |io| blocked_with_error::<T, DIR>(s, m, e, io)),
        }
    }
}

/// Why the running tasklet `m` may not block now, if it may not: its block trap, a closing
/// channel, a refused switch, or an error that waited for its next suspension (see
/// `blocked_with_error`), which is delivered now instead.
#[cold]
#[inline(never)]
fn refuse_to_block(s: &Scheduler, m: &Inner, closing: bool) -> Result<()> {
    if m.block_trap.get() {
        return Err(Error::BlockTrap);
    }
    if closing {
        return Err(Error::ClosedChannel);
    }
    s.refuse_block(m)
}

/// A blocked operation resumed with an error: give the message back, unless a receive got
/// its value too, in which case the value wins (it would be lost otherwise) and the error
/// waits for the tasklet's next suspension. A send whose value a partner took before the
/// error came returns the error with no value in it (Stackless: the error replaces the
/// send's result; the value was delivered).
/// The slot in and out through `io` (see [`out_of_line`]).
#[cold]
#[inline(never)]
fn blocked_with_error<T, const DIR: i8>(
    s: &Scheduler,
    m: &Inner,
    e: Error,
    io: &mut Option<Msg<T>>,
) -> Option<Failure<T>> {
    let completed = DIR < 0 && matches!(*io, Some(Msg::Value(_)));
    if !completed {
        return Some(failure(e, io.take()));
    }
    s.pend_error(m, e);
    None
}

/// The partner is another thread's tasklet: it runs in its own thread, and we continue.
/// Posted while the channel is still locked, so its own thread never finds it neither queued
/// nor posted (see `unblock`); its thread is woken (a system call if it sleeps) only after
/// the channel's lock is released, so that nobody waits for the lock through that call.
#[cold]
#[inline(never)]
pub(super) fn wake_on_its_thread<T, L: ChannelLock>(
    g: Guard<'_, T, L>,
    w: *const Waiter<T>,
    got: Option<Msg<T>>,
) -> Option<Msg<T>> {
    // SAFETY: the waiter stays valid until its tasklet runs again, which needs this wake.
    let (partner, partner_sched) = unsafe { ((*w).tasklet, (*w).scheduler) };
    // SAFETY: the partner is blocked, hence alive. Its episode was numbered on its own thread
    // before its waiter was queued, under the lock we hold, and stays as it is until the
    // partner runs again (which needs this wake, or an unlink that waits for our lock): a
    // plain read of a value that nothing writes meanwhile.
    let epoch = unsafe { (*partner).block_epoch.get() };
    // SAFETY: the partner is blocked (hence alive) on this channel, out of its queue now, and
    // `partner_sched` is its scheduler; it cannot run again before this wake.
    let posted = unsafe { blocking::wake_on_its_thread(partner, partner_sched, epoch) };
    drop(g);
    // The wake-up, or the undelivered mail's drop: both after the lock.
    drop(posted);
    got
}
