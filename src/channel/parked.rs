//! A waiter on the heap, for a tasklet that is not running ([`Parked`]): a restored
//! tasklet of the pickle layer (`crate::pickle`) waits in its channel's queue from the
//! restore on, but its stack is laid out only when it first runs (`scheduler::lazy`), so its
//! waiter, with the value it sends or the slot it receives into, cannot be on that stack.
//!
//! To the channel and its partners a parked waiter is an ordinary one: a partner fills or
//! empties its slot and wakes the tasklet as usual (`action`), a kill or a throw unlinks it
//! (`Blocker::unlink`). When the tasklet runs, it takes the operation's outcome from the
//! waiter ([`Parked::finish_send`], [`Parked::finish_receive`]), with the same rules as a
//! blocked call that resumes (`Core::block`).

use std::cell::{Cell, UnsafeCell};
use std::ptr;

use super::action::Handle;
use super::core::Msg;
use super::lock::BiasedLock;
use super::wait::Waiter;
use super::{BufferedChannel, Channel};
use crate::error::{Error, Result};
use crate::scheduler::blocking::{scheduler, Blocker, Inner, Scheduler, Tasklet};

/// A tasklet's place in a channel's queue, on the heap; see the module docs. Holds a handle
/// `H` to the channel (a [`Channel`] or a [`BufferedChannel`]), which therefore outlives the
/// block (as a blocked call's borrow does). Must not move while queued: it lives in its
/// `Box`.
#[allow(private_bounds)] // `Handle` is the channel module's; the type is the crate's
pub(crate) struct Parked<T: Send + 'static, H: Handle<Item = T, Lock = BiasedLock> = Channel<T>> {
    waiter: Waiter<T>,
    chan: H,
}

impl<T: Send + 'static> Channel<T> {
    /// Queues `tasklet` (a paused, never-run tasklet of this thread, not running) at the end
    /// of this channel's queue as if it had blocked sending `value` (`Some`) or receiving
    /// (`None`); it is blocked from now on, and counts as started. The returned waiter must
    /// be kept until the tasklet runs and finishes the operation with it (dropping it
    /// earlier takes the tasklet out of the queue).
    ///
    /// # Errors
    /// [`Error::SwitchOtherThread`] for another thread's tasklet; [`Error::RunBlocked`] if it
    /// is running, in the run queue or blocked; [`Error::RunDead`] if it is not alive;
    /// [`Error::ClosedChannel`] if the channel is closing; [`Error::Thrown`] with a sentence if
    /// a partner waits in the other direction (the tasklet would not have blocked).
    pub(crate) fn park(&self, tasklet: &Tasklet, value: Option<T>) -> Result<Box<Parked<T>>> {
        park(self, tasklet, value)
    }
}

impl<T: Send + 'static> BufferedChannel<T> {
    /// As [`Channel::park`], on a buffered channel: the caller (a restore) sees to it that a
    /// sender is parked only while the buffer is full, a receiver only while it is empty.
    ///
    /// # Errors
    /// As [`Channel::park`].
    pub(crate) fn park(
        &self,
        tasklet: &Tasklet,
        value: Option<T>,
    ) -> Result<Box<Parked<T, BufferedChannel<T>>>> {
        park(self, tasklet, value)
    }
}

/// [`Channel::park`], for either handle type.
fn park<T, H>(h: &H, tasklet: &Tasklet, value: Option<T>) -> Result<Box<Parked<T, H>>>
where
    T: Send + 'static,
    H: Handle<Item = T, Lock = BiasedLock> + Clone,
{
    let s = scheduler();
    let t: *const Inner = crate::tasklet::Record::as_ptr(&tasklet.inner);
    // SAFETY: a handle keeps its tasklet alive; only this thread's fields are read, after
    // the owner check.
    let inner = unsafe { &*t };
    if !ptr::eq(inner.owner, s as *const Scheduler as *const ()) {
        return Err(Error::SwitchOtherThread);
    }
    if !inner.alive() {
        return Err(Error::RunDead);
    }
    if !inner.floating() || ptr::eq(t, s.current_ptr()) {
        return Err(Error::RunBlocked);
    }
    let dir: i8 = if value.is_some() { 1 } else { -1 };
    let parked = Box::new(Parked {
        waiter: Waiter {
            tasklet: t,
            scheduler: s as *const Scheduler,
            slot: UnsafeCell::new(value.map(Msg::Value)),
            next: Cell::new(ptr::null()),
        },
        chan: h.clone(),
    });
    let mut g = h.core().lock();
    let st = g.state();
    if st.closing {
        return Err(Error::ClosedChannel);
    }
    if st.balance * dir as i32 >= 0 {
        let blocker: &dyn Blocker = h.core();
        // Its episode, which a cross-thread wake names, is kept in the tasklet.
        // SAFETY: floating, alive, not running, of this thread (checked above); the
        // channel outlives the block: the waiter holds a handle.
        unsafe { s.park_floating(t, dir, blocker as *const dyn Blocker) };
        // SAFETY: the waiter is in no queue and stays in its box, unmoved, until it
        // leaves this one (its Drop unlinks it); the queued waiters are valid.
        unsafe { st.queue.push_back(&parked.waiter) };
        st.balance += dir as i32;
        Ok(parked)
    } else {
        Err(Error::Thrown(Box::new(
            "a parked tasklet would not block: a partner waits on the channel",
        )))
    }
}

#[allow(private_bounds)]
impl<T: Send + 'static, H: Handle<Item = T, Lock = BiasedLock>> Parked<T, H> {
    /// Whether its tasklet still waits in the queue (not yet served, killed or thrown into).
    fn queued(&self) -> bool {
        let mut g = self.chan.core().lock();
        let me = &self.waiter as *const Waiter<T>;
        // SAFETY: queued waiters are valid, and the queue does not change under the lock.
        let queued = unsafe { g.state().queue.iter().any(|w| ptr::eq(w, me)) };
        queued
    }

    /// The running tasklet checks it is its own waiter, and so out of the queue: a queued
    /// waiter's tasklet is blocked, and a blocked tasklet cannot run until whatever unblocks
    /// it (a partner, a kill, a throw) has taken its waiter out of the queue, under the lock.
    /// (Asking the queue would walk it, one waiter per step, on every restored tasklet's
    /// first run; debug builds do, to check the rule.)
    fn take_slot(&self) -> Option<Msg<T>> {
        let s = scheduler();
        assert!(
            ptr::eq(self.waiter.tasklet, s.current_ptr()),
            "a parked channel operation was finished by another tasklet than its own"
        );
        debug_assert!(
            !self.queued(),
            "a running tasklet's parked waiter is queued"
        );
        // SAFETY: out of the queue (see above), so nobody else touches the slot any more.
        unsafe { (*self.waiter.slot.get()).take() }
    }

    /// The outcome of the parked send, for its tasklet once it runs: `Ok` if a partner took
    /// the value; else `thrown`, the error thrown into the tasklet while it waited (the value
    /// is dropped), as for a send that resumes with an error.
    ///
    /// # Panics
    /// If called by another tasklet than its own.
    pub(crate) fn finish_send(self: Box<Self>, thrown: Option<Error>) -> Result<()> {
        // The value, if no partner took it, goes with the waiter.
        drop(self.take_slot());
        drop(self);
        match thrown {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// The outcome of the parked receive, for its tasklet once it runs: the value (or the
    /// error sent with `send_throw`) a partner put in; `thrown`, the error thrown into the
    /// tasklet while it waited, is returned if no value came, and else waits for the
    /// tasklet's next suspension (the value wins, as for a receive that resumes with both).
    ///
    /// # Panics
    /// If called by another tasklet than its own.
    pub(crate) fn finish_receive(self: Box<Self>, thrown: Option<Error>) -> Result<T> {
        let slot = self.take_slot();
        drop(self);
        match (slot, thrown) {
            (Some(Msg::Value(v)), None) => Ok(v),
            (Some(Msg::Error(p)), None) => Err(Error::Thrown(*p)),
            (Some(msg), Some(e)) => {
                let s = scheduler();
                // SAFETY: the running tasklet (checked in `take_slot`) is live.
                s.pend_error(unsafe { &*s.current_ptr() }, e);
                match msg {
                    Msg::Value(v) => Ok(v),
                    Msg::Error(p) => Err(Error::Thrown(*p)),
                }
            }
            (None, Some(e)) => Err(e),
            (None, None) => Err(Error::Thrown(Box::new(
                "a parked receive resumed without a value or an error",
            ))),
        }
    }
}

impl<T: Send + 'static, H: Handle<Item = T, Lock = BiasedLock>> Drop for Parked<T, H> {
    fn drop(&mut self) {
        // Dropped unfinished (its tasklet ended before running): if still queued, leave the
        // queue, so that no partner reaches a freed waiter. A kill unlinks first, so this is
        // a backstop only.
        let tasklet = self.waiter.tasklet;
        let mut g = match self.chan.core().try_lock() {
            Some(g) => g,
            None => return,
        };
        let st = g.state();
        let me = &self.waiter as *const Waiter<T>;
        // SAFETY: queued waiters are valid (a queued parked waiter lives in its box).
        if unsafe { st.queue.remove_first(|w| ptr::eq(w, me)) }.is_some() {
            // SAFETY: a queued waiter's tasklet is alive (this waiter is its closure's).
            let dir = unsafe { (*tasklet).blocked.get() };
            st.balance -= dir as i32;
            drop(g);
            // SAFETY: as above; it is no longer blocked on anything.
            unsafe {
                (*tasklet).blocked.set(0);
                (*tasklet).blocked_on.set(None);
            }
        }
    }
}
