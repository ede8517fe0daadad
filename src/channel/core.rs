//! The state every channel shares, whatever its kind: the queue of blocked tasklets and the
//! settings ([`State`]), behind a lock ([`ChannelLock`]) that is the one thing the two kinds
//! do differently. A [`Channel`](super::Channel) may be used by any thread: its lock is the
//! [`BiasedLock`]. A [`LocalChannel`](super::LocalChannel) never leaves its thread (its
//! handle is `!Send` and `!Sync`): its lock is [`OneThread`], which does nothing.

#[cfg(debug_assertions)]
use std::cell::Cell;
use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::ptr;

use super::lock::{BiasedLock, Held, Poisoned};
use super::wait_queue::WaitQueue;
use crate::error::Payload;
use crate::id;
use crate::scheduler::blocking::{self, Tasklet};

/// A value or an error travelling through a channel.
pub(super) enum Msg<T> {
    Value(T),
    /// Boxed once more so that the message of a small `T` is two words: it moves through
    /// registers, and its copies do not trip store-to-load forwarding.
    Error(Box<Payload>),
}

pub(super) struct State<T> {
    /// Blocked tasklets, head first, all in one direction: threaded through their waiters
    /// (on their stacks), so that it costs the channel one word and no allocation.
    pub(super) queue: WaitQueue<T>,
    /// The signed length of `queue` (positive: senders wait). An `i32`, so that the state is
    /// two words: more than 2^31 waiters would take more than 8 TiB of stack pages (each
    /// blocked tasklet holds at least one), far beyond any machine.
    pub(super) balance: i32,
    /// Written with `set_preference` only, which keeps `switches` up to date.
    pub(super) preference: i8,
    /// Written with `set_schedule_all` only, which keeps `switches` up to date.
    pub(super) schedule_all: bool,
    pub(super) closing: bool,
    /// Which rendezvous switch to the partner at once (`SEND_SWITCHES`, `RECEIVE_SWITCHES`):
    /// what the preference and `schedule_all` say, worked out when they are set rather than
    /// on every operation. (The state stays two words: this byte fills its padding.)
    switches: u8,
}

/// `State::switches`: a send that finds a waiting receiver switches (preference -1, or
/// `schedule_all`).
const SEND_SWITCHES: u8 = 1;
/// `State::switches`: a receive that finds a waiting sender switches (preference +1, or
/// `schedule_all`).
const RECEIVE_SWITCHES: u8 = 2;

impl<T> State<T> {
    /// Whether a rendezvous in direction `DIR` (+1 send, -1 receive) switches to a partner
    /// of the same thread: Stackless's `schedule_all || preference == -dir`.
    #[inline(always)]
    pub(super) fn switches<const DIR: i8>(&self) -> bool {
        let bit = if DIR > 0 {
            SEND_SWITCHES
        } else {
            RECEIVE_SWITCHES
        };
        self.switches & bit != 0
    }

    /// Sets the preference, clamped by sign.
    pub(super) fn set_preference(&mut self, preference: i32) {
        self.preference = preference.signum() as i8;
        self.update_switches();
    }

    pub(super) fn set_schedule_all(&mut self, on: bool) {
        self.schedule_all = on;
        self.update_switches();
    }

    fn update_switches(&mut self) {
        let all = self.schedule_all;
        self.switches = if all || self.preference == -1 {
            SEND_SWITCHES
        } else {
            0
        } | if all || self.preference == 1 {
            RECEIVE_SWITCHES
        } else {
            0
        };
    }
}

/// Exclusive access to a channel's state, as each kind of channel provides it.
pub(super) trait ChannelLock: 'static {
    /// Proof of access; releases it when dropped.
    type Held<'a>;
    /// Whether every user of the channel is on one thread (so every waiter is of the calling
    /// thread): the cross-thread branches of a rendezvous are compiled out.
    const ONE_THREAD: bool;
    fn new() -> Self;
    /// Access for the thread whose identity is `me` (`blocking::thread_identity`).
    fn acquire_as(&self, me: usize) -> Self::Held<'_>;
    /// Access for the calling thread.
    fn acquire_here(&self) -> Self::Held<'_>;
    /// As `acquire_here`, but never panics: `Err` where `acquire` would panic.
    fn try_acquire_here(&self) -> Result<Self::Held<'_>, Poisoned>;
}

impl ChannelLock for BiasedLock {
    type Held<'a> = Held<'a>;
    const ONE_THREAD: bool = false;
    fn new() -> Self {
        BiasedLock::new()
    }
    #[inline(always)]
    fn acquire_as(&self, me: usize) -> Held<'_> {
        self.acquire(me)
    }
    #[inline]
    fn acquire_here(&self) -> Held<'_> {
        self.acquire(blocking::thread_identity())
    }
    fn try_acquire_here(&self) -> Result<Held<'_>, Poisoned> {
        self.try_acquire(blocking::thread_identity())
    }
}

/// The lock of a channel whose handles never leave their thread: nothing to do, since no
/// caller's code runs while the state is held and no other thread can reach it. `!Send` and
/// `!Sync`, so that a [`Core`] using it is too. Debug builds check that nobody enters twice.
pub(super) struct OneThread {
    #[cfg(debug_assertions)]
    inside: Cell<bool>,
    _not_send: PhantomData<*const ()>,
}

/// A [`OneThread`] access: in debug builds, leaves the channel when dropped.
pub(super) struct OneThreadHeld<'a> {
    #[cfg(debug_assertions)]
    inside: &'a Cell<bool>,
    _lock: PhantomData<&'a OneThread>,
}

impl OneThread {
    #[inline(always)]
    fn enter(&self) -> OneThreadHeld<'_> {
        #[cfg(debug_assertions)]
        assert!(
            !self.inside.replace(true),
            "a channel was entered again by the thread already inside it"
        );
        OneThreadHeld {
            #[cfg(debug_assertions)]
            inside: &self.inside,
            _lock: PhantomData,
        }
    }
}

#[cfg(debug_assertions)]
impl Drop for OneThreadHeld<'_> {
    fn drop(&mut self) {
        self.inside.set(false);
    }
}

impl ChannelLock for OneThread {
    type Held<'a> = OneThreadHeld<'a>;
    const ONE_THREAD: bool = true;
    fn new() -> Self {
        OneThread {
            #[cfg(debug_assertions)]
            inside: Cell::new(false),
            _not_send: PhantomData,
        }
    }
    #[inline(always)]
    fn acquire_as(&self, _me: usize) -> OneThreadHeld<'_> {
        self.enter()
    }
    #[inline(always)]
    fn acquire_here(&self) -> OneThreadHeld<'_> {
        self.enter()
    }
    fn try_acquire_here(&self) -> Result<OneThreadHeld<'_>, Poisoned> {
        Ok(self.enter())
    }
}

/// A channel: what its handles share.
pub(super) struct Core<T, L> {
    pub(super) id: u64,
    pub(super) lock: L,
    state: UnsafeCell<State<T>>,
}

// SAFETY: the state is only reached under `lock`; the raw pointers in it name waiters on
// blocked tasklets' stacks, valid while queued (a waiter is removed under the lock before its
// tasklet can run again), and values of type T, which move between threads only if T: Send.
// (A core with the `OneThread` lock is neither Send nor Sync: it contains raw pointers.)
unsafe impl<T: Send> Send for Core<T, BiasedLock> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Core<T, BiasedLock> {}

// A channel with its reference counts is 56 bytes on 64-bit targets: one 64-byte malloc chunk
// (issue 11: the heap a blocked tasklet with its own channel costs; tests/tasklet_footprint.rs).
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<Core<u64, BiasedLock>>() == 40);

/// Access to a channel's state, for as long as it lives.
pub(super) struct Guard<'a, T, L: ChannelLock> {
    chan: &'a Core<T, L>,
    _held: L::Held<'a>,
}

impl<T, L: ChannelLock> Core<T, L> {
    /// A new channel: balance 0, preference -1, not closing.
    pub(super) fn new() -> Core<T, L> {
        Core {
            id: id::next(),
            lock: L::new(),
            state: UnsafeCell::new(State {
                queue: WaitQueue::new(),
                balance: 0,
                preference: -1,
                schedule_all: false,
                closing: false,
                switches: SEND_SWITCHES,
            }),
        }
    }

    /// Exclusive access to the state for the calling thread.
    #[inline]
    pub(super) fn lock(&self) -> Guard<'_, T, L> {
        Guard {
            chan: self,
            _held: self.lock.acquire_here(),
        }
    }

    /// Exclusive access for the thread whose identity is `me` (already at hand).
    #[inline(always)]
    pub(super) fn lock_as(&self, me: usize) -> Guard<'_, T, L> {
        Guard {
            chan: self,
            _held: self.lock.acquire_as(me),
        }
    }

    /// As `lock`, but `None` where it would panic (a poisoned channel, see `lock`).
    pub(super) fn try_lock(&self) -> Option<Guard<'_, T, L>> {
        Some(Guard {
            chan: self,
            _held: self.lock.try_acquire_here().ok()?,
        })
    }
}

impl<T, L: ChannelLock> Guard<'_, T, L> {
    /// The state, for as long as the guard is borrowed: one `&mut State` at a time.
    pub(super) fn state(&mut self) -> &mut State<T> {
        // SAFETY: the guard proves exclusive access to the state: the lock for a shared
        // channel; for a one-thread channel, the thread (no other can reach it) and the rule
        // that no caller's code runs while a guard lives (so no second guard is made).
        unsafe { &mut *self.chan.state.get() }
    }
}

impl<T, L: ChannelLock> Core<T, L> {
    /// The ids of the blocked tasklets, head first.
    pub(super) fn queue_ids(&self) -> Vec<u64> {
        let mut g = self.lock();
        // SAFETY: queued waiters are valid and the queue does not change under the lock.
        let waiters = unsafe { g.state().queue.iter() };
        // SAFETY: a queued waiter's tasklet is valid; `id` is never written.
        waiters.map(|w| unsafe { (*(*w).tasklet).id }).collect()
    }

    /// The id of the blocked tasklet at the head of the queue, if any (no walk).
    pub(super) fn queue_head_id(&self) -> Option<u64> {
        let mut g = self.lock();
        // SAFETY: queued waiters are valid and the queue does not change under the lock.
        let head = unsafe { g.state().queue.iter() }.next()?;
        // SAFETY: a queued waiter's tasklet is valid; `id` is never written.
        Some(unsafe { (*(*head).tasklet).id })
    }

    /// Handles of the blocked tasklets of the calling thread, head first.
    pub(super) fn queue_tasklets(&self) -> Vec<Tasklet> {
        let me = blocking::scheduler() as *const _;
        let mut g = self.lock();
        // SAFETY: queued waiters are valid and the queue does not change under the lock.
        let waiters = unsafe { g.state().queue.iter() };
        waiters
            // SAFETY: queued waiters are valid.
            .filter(|&w| unsafe { ptr::eq((*w).scheduler, me) })
            // SAFETY: a blocked tasklet of this thread is alive, so the scheduler holds its
            // local reference.
            .map(|w| unsafe { Tasklet::from_local((*w).tasklet) })
            .collect()
    }
}
