//! The ring and its cursor: the run queue of a thread's runnable tasklets (the running one
//! included), `current` pointing into it, and `runcount`; the list of all live tasklets, which
//! holds each one's local reference; and making a tasklet runnable again (out of its channel
//! or back into the ring).

use std::ptr;

#[cfg(doc)]
use super::run;

use super::{scheduler, Scheduler};
use crate::tasklet::{Inner, RemoteState};

impl Scheduler {
    /// Inserts `t` at the end of the run queue (just before the current tasklet).
    ///
    /// # Safety
    /// - `t` must be a live tasklet of this scheduler, not in the ring.
    #[inline(always)]
    pub(super) unsafe fn ring_insert(&self, t: *const Inner) {
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
            // Only a live tasklet that is not blocked is ever inserted.
            (*t).remote_state
                .set(RemoteState::ALIVE | RemoteState::IN_RING);
        }
        self.runcount.set(self.runcount.get() + 1);
    }

    /// Inserts `t` right after the current tasklet (a preferred channel partner).
    ///
    /// # Safety
    /// - As `ring_insert`.
    pub(super) unsafe fn ring_insert_after_current(&self, t: *const Inner) {
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

    /// Inserts `t` right after `anchor`, a ring member.
    ///
    /// # Safety
    /// - As `ring_insert`, and `anchor` must be in this scheduler's ring.
    pub(super) unsafe fn ring_insert_after(&self, anchor: *const Inner, t: *const Inner) {
        let hold = self.current.get();
        // SAFETY: `anchor` is a ring member; inserting before its successor puts `t` after it.
        unsafe {
            self.current.set((*anchor).next.get());
            self.ring_insert(t);
        }
        self.current.set(hold);
    }

    /// Unlinks `t` from the ring; `current` moves on if `t` was current.
    ///
    /// # Safety
    /// - `t` must be in this scheduler's ring.
    #[inline(always)]
    pub(super) unsafe fn ring_remove(&self, t: *const Inner) {
        // SAFETY: forwarded. It leaves paused; one that dies is marked dead when it leaves the
        // list (`unregister`).
        unsafe { self.ring_remove_as(t, RemoteState::ALIVE) }
    }

    /// `ring_remove`, publishing `state` as the tasklet's state for other threads.
    ///
    /// # Safety
    /// - As `ring_remove`.
    #[inline(always)]
    pub(super) unsafe fn ring_remove_as(&self, t: *const Inner, state: u8) {
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
            (*t).remote_state.set(state);
        }
        self.runcount.set(self.runcount.get() - 1);
    }

    /// `ring_remove_as` for the current tasklet `t`: the cursor moves on to the next one
    /// (null if `t` was alone), with no test of whether `t` is the current one. Returns the
    /// new cursor (so that the caller need not load it back).
    ///
    /// # Safety
    /// - `t` must be the current tasklet, in this scheduler's ring.
    #[inline(always)]
    pub(super) unsafe fn ring_remove_current_as(&self, t: *const Inner, state: u8) -> *const Inner {
        debug_assert!(ptr::eq(self.current.get(), t));
        // SAFETY: `t` and its neighbours are ring members.
        let cursor = unsafe {
            let (prev, next) = ((*t).prev.get(), (*t).next.get());
            let cursor = if next == t {
                ptr::null()
            } else {
                (*prev).next.set(next);
                (*next).prev.set(prev);
                next
            };
            self.current.set(cursor);
            (*t).next.set(ptr::null());
            (*t).prev.set(ptr::null());
            (*t).remote_state.set(state);
            cursor
        };
        self.runcount.set(self.runcount.get() - 1);
        cursor
    }

    /// `t`, the current tasklet and alone in the ring, leaves it (publishing `state`), and
    /// the floating `u` takes its place as the ring's only member and cursor: as
    /// `ring_remove_current_as(t, state)` then `ring_insert(u)`, with the count unchanged.
    ///
    /// # Safety
    /// - `t` must be the current tasklet, alone in this scheduler's ring; `u` a live, floating
    ///   tasklet of this scheduler, not `t`.
    #[inline(always)]
    pub(super) unsafe fn ring_replace_alone(&self, t: *const Inner, state: u8, u: *const Inner) {
        debug_assert!(ptr::eq(self.current.get(), t) && t != u);
        // SAFETY: caller vouches for both.
        unsafe {
            debug_assert!((*t).next.get() == t && (*u).floating());
            (*t).next.set(ptr::null());
            (*t).prev.set(ptr::null());
            (*t).remote_state.set(state);
            (*u).next.set(u);
            (*u).prev.set(u);
            (*u).remote_state
                .set(RemoteState::ALIVE | RemoteState::IN_RING);
        }
        self.current.set(u);
    }

    /// Adds `t` (an `Arc::into_raw` reference the list now owns) to the list of live tasklets.
    ///
    /// # Safety
    /// - `t` must be a live tasklet of this scheduler, not in the list, whose reference the
    ///   list takes over.
    pub(super) unsafe fn register(&self, t: *const Inner) {
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
    #[inline(always)]
    pub(super) unsafe fn unregister(&self, t: *const Inner) {
        // Only a tasklet that has ended leaves the list.
        // SAFETY: caller vouches for `t`; forwarded.
        unsafe {
            (*t).remote_state.set(0);
            self.unregister_dead(t);
        }
    }

    /// [`Scheduler::unregister`] of a tasklet whose remote state is 0 (dead) already.
    ///
    /// # Safety
    /// - As `unregister`.
    #[inline(always)]
    pub(super) unsafe fn unregister_dead(&self, t: *const Inner) {
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
            debug_assert_eq!((*t).remote_state.get(), 0);
        }
    }

    /// Makes `t` runnable if it is not: unblocked from its channel, or inserted if floating.
    ///
    /// # Safety
    /// - `t` must be a live tasklet of this scheduler.
    #[inline(always)]
    pub(super) unsafe fn make_runnable(&self, t: *const Inner) {
        // SAFETY: caller vouches for `t`.
        let tr = unsafe { &*t };
        if tr.blocked.get() != 0 {
            unblock_cold(tr);
        } else if tr.in_ring() {
            return;
        }
        // SAFETY: floating, or just unblocked: in no queue.
        unsafe { self.ring_insert(t) };
    }
}

/// [`unblock`] for [`Scheduler::make_runnable`], out of line: the common target is floating
/// or in the ring already.
#[cold]
#[inline(never)]
fn unblock_cold(t: &Inner) {
    unblock(t);
}

/// Takes a channel-blocked tasklet out of its channel's queue.
pub(super) fn unblock(t: &Inner) {
    if let Some(b) = t.blocked_on.take() {
        // SAFETY: the blocked call borrows a handle to the channel until it returns, and it
        // has not returned: the tasklet is still blocked in it. If a partner on another
        // thread already took it out, its wake names this episode, which ends here: stale.
        let _ = unsafe { (*b).unlink(t) };
    }
    t.blocked.set(0);
}

/// Tasklets in this thread's run queue, the current one included. Paused and blocked
/// tasklets are not counted, nor is a tasklet waiting inside [`run`].
///
/// ```
/// use microthread::{scheduler, spawn};
///
/// assert_eq!(scheduler::runcount(), 1, "main alone");
/// let t = spawn(scheduler::runcount)?;
/// assert_eq!(scheduler::runcount(), 2);
/// scheduler::run().unwrap();
/// assert_eq!(t.result::<usize>(), Some(1), "inside run(), main waits and is not counted");
/// assert_eq!(scheduler::runcount(), 1);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn runcount() -> usize {
    scheduler().runcount.get()
}
