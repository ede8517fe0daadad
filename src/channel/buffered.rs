//! [`BufferedChannel`]: a [`Channel`](super::Channel) with a FIFO buffer of up to `capacity`
//! values (Go's `make(chan T, n)`; Stackless has no buffered channel).
//!
//! # How it is built
//! It runs the very code of `Channel` (`action`, `block`, the `Blocker` impl, the cross-thread
//! wake), on a [`BufferedCore`]: the `Core` of a `Channel` first (`#[repr(C)]`, so that the
//! core's address is the channel's, as `Channel`'s is), then a [`Ring`] of buffered messages,
//! reached under the core's lock. The rendezvous asks its handle for the ring
//! (`Handle::ring`, through [`RingOf`](super::action::RingOf)): `None` for `Channel` and
//! `LocalChannel`, a constant, so their buffered branches are compiled out and their code is
//! what it was.
//!
//! # Invariants (under the lock)
//! - Receivers wait (balance < 0) only while the buffer is empty: a send with room never
//!   buffers while a receiver waits, it hands over.
//! - Senders wait (balance > 0) only while the buffer is full: a receive that takes a value
//!   from the buffer moves the first waiting sender's message into the freed place and wakes
//!   it, and a send finds no room while senders wait. So the values come out in the order
//!   they were sent: the buffer's, then the blocked senders' in their queue order.
//! - With capacity 0 the buffer is always empty and full: every operation takes `Channel`'s
//!   path, a rendezvous.

use std::any::Any;
use std::cell::UnsafeCell;
use std::fmt;
use std::mem::MaybeUninit;
use std::ops::Deref;
use std::sync::Arc;

use super::action::{self, Handle, RingOf};
use super::core::{Core, Msg};
use super::lock::{self, BiasedLock};
use super::SendError;
use crate::error::{Payload, Result};
use crate::scheduler::blocking::{AnyChannel, SealedChannel, Tasklet};

/// A FIFO of at most `capacity` messages, in a buffer allocated once. Every method but
/// [`capacity`](Ring::capacity) needs the lock of the channel it belongs to.
pub(super) struct Ring<T> {
    /// Never written after construction (read without the lock).
    capacity: usize,
    cells: UnsafeCell<Cells<T>>,
}

struct Cells<T> {
    /// `capacity` places; those from `head` (wrapping) for `len` hold messages.
    buf: Box<[MaybeUninit<Msg<T>>]>,
    head: usize,
    len: usize,
}

impl<T> Ring<T> {
    /// A ring of `capacity` places, or `None` if they cannot be allocated.
    fn try_with_capacity(capacity: usize) -> Option<Ring<T>> {
        let mut buf = Vec::new();
        buf.try_reserve_exact(capacity).ok()?;
        buf.resize_with(capacity, MaybeUninit::uninit);
        Some(Ring {
            capacity,
            cells: UnsafeCell::new(Cells {
                buf: buf.into_boxed_slice(),
                head: 0,
                len: 0,
            }),
        })
    }

    /// How many messages it holds at most.
    #[inline(always)]
    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    /// # Safety
    /// The caller must hold its channel's lock, and no other reference made by this function
    /// may be live.
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    unsafe fn cells(&self) -> &mut Cells<T> {
        // SAFETY: the caller's obligation: exclusive access under the lock.
        unsafe { &mut *self.cells.get() }
    }

    /// How many messages it holds.
    ///
    /// # Safety
    /// The caller must hold its channel's lock.
    #[inline(always)]
    pub(super) unsafe fn len(&self) -> usize {
        // SAFETY: forwarded.
        unsafe { self.cells().len }
    }

    /// Whether it holds fewer than `capacity` messages.
    ///
    /// # Safety
    /// The caller must hold its channel's lock.
    #[inline(always)]
    pub(super) unsafe fn has_room(&self) -> bool {
        // SAFETY: forwarded.
        unsafe { self.cells().len < self.capacity }
    }

    /// Appends `msg`.
    ///
    /// # Safety
    /// The caller must hold its channel's lock, and the ring must have room.
    #[inline(always)]
    pub(super) unsafe fn push_back(&self, msg: Msg<T>) {
        // SAFETY: forwarded.
        let c = unsafe { self.cells() };
        debug_assert!(c.len < self.capacity);
        let mut at = c.head + c.len;
        if at >= self.capacity {
            at -= self.capacity;
        }
        // SAFETY: `at < capacity` (head < capacity and len < capacity), a free place.
        unsafe { c.buf.get_unchecked_mut(at) }.write(msg);
        c.len += 1;
    }

    /// Takes the first message.
    ///
    /// # Safety
    /// The caller must hold its channel's lock, and the ring must not be empty.
    #[inline(always)]
    pub(super) unsafe fn pop_front(&self) -> Msg<T> {
        // SAFETY: forwarded.
        let c = unsafe { self.cells() };
        debug_assert!(c.len > 0);
        let at = c.head;
        c.head = if at + 1 == self.capacity { 0 } else { at + 1 };
        c.len -= 1;
        // SAFETY: not empty, so the place at the head holds a message, which leaves it.
        unsafe { c.buf.get_unchecked(at).assume_init_read() }
    }
}

impl<T> Ring<T> {
    /// Calls `f` on each held message, first to last (for a snapshot: nothing moves).
    ///
    /// # Safety
    /// The caller must hold its channel's lock, and `f` must not reach this ring.
    unsafe fn for_each(&self, mut f: impl FnMut(&Msg<T>)) {
        // SAFETY: forwarded; only read while `f` runs, and `f` does not reach the ring.
        let c = unsafe { self.cells() };
        for k in 0..c.len {
            let mut at = c.head + k;
            if at >= self.capacity {
                at -= self.capacity;
            }
            // SAFETY: one of the `len` places from `head` (wrapping): it holds a message.
            f(unsafe { c.buf[at].assume_init_ref() });
        }
    }
}

impl<T> Drop for Ring<T> {
    /// Drops the messages still buffered, first to last.
    fn drop(&mut self) {
        let c = self.cells.get_mut();
        while c.len > 0 {
            let at = c.head;
            c.head = if at + 1 == self.capacity { 0 } else { at + 1 };
            c.len -= 1;
            // SAFETY: a held message; `len` and `head` already say it left, so a panic in its
            // drop does not drop it again (the rest leak).
            unsafe { c.buf[at].assume_init_drop() };
        }
    }
}

/// What the handles of a [`BufferedChannel`] share: a channel's core, then its buffer.
#[repr(C)]
pub(super) struct BufferedCore<T> {
    core: Core<T, BiasedLock>,
    ring: Ring<T>,
}

impl<T> Deref for BufferedCore<T> {
    type Target = Core<T, BiasedLock>;
    #[inline(always)]
    fn deref(&self) -> &Core<T, BiasedLock> {
        &self.core
    }
}

impl<T> RingOf<T> for BufferedCore<T> {
    #[inline(always)]
    fn ring(&self) -> Option<&Ring<T>> {
        Some(&self.ring)
    }
}

// SAFETY: the core is Send and Sync for T: Send (see its impls); the ring holds values of
// type T, which move between threads only if T: Send, and is reached under the core's lock
// only (its capacity, never written, without it).
unsafe impl<T: Send> Send for BufferedCore<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for BufferedCore<T> {}

/// A [`Channel`](super::Channel) with a FIFO buffer of up to [`capacity`](Self::capacity)
/// values: a send that finds no receiver waiting puts its value in the buffer and goes on if
/// there is room, and blocks only when the buffer is full; a receive takes the oldest buffered
/// value first. See [Buffered channels](super#buffered-channels) in the module docs. Cheap to
/// clone: clones are handles to the same channel. `Send + Sync` when `T: Send`.
///
/// Everything else is `Channel`'s: the methods, the preference and `schedule_all` (for the
/// rendezvous and the wake-ups of blocked senders), closing, the error and deadlock rules, the
/// callback. [`BufferedChannel::new`] (capacity 0) is a rendezvous channel exactly like
/// `Channel::new`.
///
/// ```
/// use microthread::channel::BufferedChannel;
/// use microthread::spawn_thread;
///
/// let jobs = BufferedChannel::<Option<u64>>::with_capacity(16);
/// let workers: Vec<_> = (0..2)
///     .map(|_| {
///         let jobs = jobs.clone();
///         spawn_thread(move || {
///             let mut sum = 0;
///             while let Some(job) = jobs.receive().unwrap() {
///                 sum += job;
///             }
///             sum
///         })
///     })
///     .collect();
/// for job in 1..=100 {
///     jobs.send(Some(job)).unwrap(); // blocks only while 16 jobs wait
/// }
/// for _ in &workers {
///     jobs.send(None).unwrap();
/// }
/// let total: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
/// assert_eq!(total, 5050);
/// ```
pub struct BufferedChannel<T> {
    chan: Arc<BufferedCore<T>>,
}

impl<T: Send + 'static> BufferedChannel<T> {
    /// A new channel without a buffer (capacity 0): a rendezvous channel, like
    /// [`Channel::new`](super::Channel::new). Balance 0, preference -1, not closing.
    ///
    /// ```
    /// use microthread::channel::BufferedChannel;
    ///
    /// let ch = BufferedChannel::<u32>::new();
    /// assert_eq!((ch.capacity(), ch.len(), ch.balance()), (0, 0, 0));
    /// assert!(ch.send(1).is_err()); // nobody receives: main would block forever
    /// ```
    pub fn new() -> BufferedChannel<T> {
        BufferedChannel::with_capacity(0)
    }

    /// A new channel that buffers up to `capacity` values. Balance 0, preference -1, not
    /// closing. The buffer is allocated now, `capacity` messages of `T` (at least two words
    /// each).
    ///
    /// # Panics
    /// If the buffer cannot be allocated (its size overflows `isize`, or the allocator
    /// refuses it).
    ///
    /// ```
    /// use microthread::channel::BufferedChannel;
    ///
    /// let ch = BufferedChannel::with_capacity(2);
    /// ch.send("a").unwrap(); // room: main goes on, nobody receives yet
    /// ch.send("b").unwrap();
    /// assert_eq!((ch.len(), ch.balance()), (2, 0));
    /// assert!(ch.send("c").is_err()); // full: main would block with nothing to run
    /// assert_eq!(ch.receive().unwrap(), "a");
    /// assert_eq!(ch.receive().unwrap(), "b");
    /// ```
    pub fn with_capacity(capacity: usize) -> BufferedChannel<T> {
        match BufferedChannel::try_with_capacity(capacity) {
            Some(ch) => ch,
            None => {
                panic!("microthread: a channel buffer of {capacity} values cannot be allocated")
            }
        }
    }

    /// As [`with_capacity`](Self::with_capacity), but `None` where it would panic (for the C
    /// API, which must not).
    pub(crate) fn try_with_capacity(capacity: usize) -> Option<BufferedChannel<T>> {
        let ring = Ring::try_with_capacity(capacity)?;
        lock::install_fork_handlers();
        Some(BufferedChannel {
            chan: Arc::new(BufferedCore {
                core: Core::new(),
                ring,
            }),
        })
    }

    /// How many values the buffer holds at most (as given to
    /// [`with_capacity`](Self::with_capacity)).
    ///
    /// ```
    /// use microthread::channel::BufferedChannel;
    ///
    /// assert_eq!(BufferedChannel::<u8>::with_capacity(8).capacity(), 8);
    /// assert_eq!(BufferedChannel::<u8>::new().capacity(), 0);
    /// ```
    pub fn capacity(&self) -> usize {
        self.chan.ring.capacity()
    }

    /// How many values are buffered now (not counting those of blocked senders, which
    /// [`balance`](Self::balance) counts).
    ///
    /// ```
    /// use microthread::channel::BufferedChannel;
    /// use microthread::{scheduler, spawn};
    ///
    /// let ch = BufferedChannel::with_capacity(1);
    /// ch.send(1u8).unwrap();
    /// let tx = ch.clone();
    /// spawn(move || tx.send(2).unwrap())?;
    /// scheduler::run().unwrap(); // the buffer is full: the second sender blocks
    /// assert_eq!((ch.len(), ch.balance()), (1, 1));
    /// assert_eq!(ch.receive().unwrap(), 1); // the blocked sender's 2 moves into the buffer
    /// assert_eq!((ch.len(), ch.balance()), (1, 0));
    /// # scheduler::run().unwrap();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        let _g = self.chan.lock();
        // SAFETY: under the channel's lock.
        unsafe { self.chan.ring.len() }
    }

    /// Whether no value is buffered ([`len`](Self::len) is 0).
    ///
    /// ```
    /// use microthread::channel::BufferedChannel;
    ///
    /// let ch = BufferedChannel::with_capacity(1);
    /// assert!(ch.is_empty());
    /// ch.send(()).unwrap();
    /// assert!(!ch.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the pickle layer (`crate::pickle`) reads of a buffered channel and sets when it
/// restores one; nothing here is on the channel's paths.
impl<T: Send + 'static> BufferedChannel<T> {
    /// The address of the channel's state, which a tasklet blocked on it names
    /// (`Inner::blocked_on`: the core's, the first field of the `#[repr(C)]` shared state).
    pub(crate) fn blocker_address(&self) -> usize {
        Arc::as_ptr(&self.chan) as *const () as usize
    }

    /// The id of the tasklet at the head of the queue, without listing the queue.
    pub(crate) fn queue_head(&self) -> Option<u64> {
        self.chan.queue_head_id()
    }

    /// Calls `f` on each buffered message, oldest first, under the channel's lock:
    /// `Some(value)`, or `None` for an error sent with `send_throw`. `f` runs under the lock,
    /// so it must not use this channel (a value's `Serialize` impl that did would find it
    /// locked by its own thread).
    pub(crate) fn inspect_buffered(&self, mut f: impl FnMut(Option<&T>)) {
        let _g = self.chan.lock();
        // SAFETY: under the channel's lock; `f` is told not to reach the channel.
        unsafe {
            self.chan.ring.for_each(|m| match m {
                Msg::Value(v) => f(Some(v)),
                Msg::Error(_) => f(None),
            })
        };
    }

    /// Appends `value` to the buffer as a send with room would, but with no hook, callback or
    /// switch (a restore refilling the buffer before anything waits on the channel). Gives
    /// `value` back if the buffer is full or a tasklet waits.
    pub(crate) fn refill(&self, value: T) -> std::result::Result<(), T> {
        let mut g = self.chan.lock();
        let st = g.state();
        // SAFETY: under the channel's lock.
        if st.balance != 0 || !unsafe { self.chan.ring.has_room() } {
            return Err(value);
        }
        // SAFETY: under the channel's lock, with room (checked above).
        unsafe { self.chan.ring.push_back(Msg::Value(value)) };
        Ok(())
    }
}

channel_api!(BufferedChannel, BufferedIter, BiasedLock, [Send + 'static]);

const _: () = {
    const fn is<T: Send + Sync>() {}
    is::<BufferedChannel<u32>>();
};
