//! [`Channel`]: Stackless Python's rendezvous channel, between tasklets of one thread or of
//! several; [`LocalChannel`], the same for values that are not `Send`; [`BufferedChannel`], a
//! `Channel` with a FIFO buffer.
//!
//! A send blocks until a receiver takes the value, and a receive until a sender brings one.
//! Blocked tasklets wait in one FIFO queue, all in the same direction; [`Channel::balance`] is
//! its signed length (positive: senders wait, negative: receivers wait).
//!
//! # Who runs after a rendezvous (Stackless reference §3.1)
//!
//! | preference | `send` finds a waiting receiver | `receive` finds a waiting sender |
//! |---|---|---|
//! | **-1** (default) | the receiver runs at once; the sender goes after everything runnable | the receiver (caller) continues; the sender goes to the end of the ring |
//! | **+1** | the sender (caller) continues; the receiver goes to the end | the sender runs at once; the receiver goes after everything runnable |
//! | **0** | the caller continues; the partner goes to the end | the caller continues; the partner goes to the end |
//! | any, with `schedule_all` | the partner goes to the end and the caller yields | the same |
//!
//! "Runs at once" inserts the partner right after the caller and switches to it, so the caller
//! resumes only after every other runnable tasklet. A partner on **another thread** is made
//! runnable in its own thread (and that thread woken), and the caller always continues.
//!
//! # Stackless operations and their Rust form
//!
//! | Stackless Python | microthread |
//! |---|---|
//! | `ch = stackless.channel()` | `let ch = Channel::new();` (clone it to share it, also across threads) |
//! | `ch.send(v)` | `ch.send(v)?` (the error gives the value back: [`SendError`]) |
//! | `v = ch.receive()` | `let v = ch.receive()?;` |
//! | `ch.send_exception(E, ...)` / `ch.send_throw(...)` | `ch.send_throw(Box::new(payload))`: the receiver's `receive` returns `Err(Error::Thrown(payload))` |
//! | `ch.send_sequence(seq)` | `ch.send_sequence(iter)?` (the count sent) |
//! | `for v in ch:` | `for v in ch.iter() { let v = v?; ... }` (ends when closing and drained) |
//! | `for v in ch:` (also) | `for v in &ch { let v = v?; ... }` (`&Channel` is `IntoIterator`) |
//! | `ch.balance`, `ch.queue` | [`Channel::balance`]; [`Channel::queue`] (ids, head first) or [`Channel::queue_tasklets`] (handles of this thread's waiters, head first) |
//! | `ch.preference = n`, `ch.schedule_all = b` | [`Channel::set_preference`], [`Channel::set_schedule_all`] |
//! | `ch.close()`, `ch.open()`, `ch.closing`, `ch.closed` | the methods of the same names |
//! | `stackless.set_channel_callback(cb)` | [`set_channel_callback`] (per thread; `cb` is an `Rc<dyn Fn(&ChannelEvent)>`) |
//! | `stackless.get_channel_callback()` | [`channel_callback`] |
//! | the callback's `(channel, tasklet, sending, will_block)` | [`ChannelEvent`]: `channel` is a [`&dyn AnyChannel`](AnyChannel) (query it, or `downcast_ref::<Channel<T>>()`), then `tasklet`, `sending`, `will_block` |
//! | a channel of objects that are not thread-safe (any Python object) | [`LocalChannel`]: the same channel for tasklets of one thread, for any `T: 'static` (`Rc<RefCell<..>>`) |
//! | none: Stackless has no buffered channel (Go's `make(chan T, n)`) | [`BufferedChannel::with_capacity(n)`](BufferedChannel::with_capacity): sends go on while fewer than `n` values wait to be received; see [Buffered channels](#buffered-channels) |
//!
//! ```
//! use microthread::{channel::Channel, scheduler, spawn};
//!
//! let ch = Channel::new();
//! let rx = ch.clone();
//! let consumer = spawn(move || {
//!     let first: u32 = rx.receive().unwrap();
//!     first * 100
//! })?;
//! scheduler::run().unwrap(); // the consumer blocks in receive; run returns
//! assert_eq!(ch.balance(), -1);
//! ch.send(7).unwrap(); // the receiver runs at once (preference -1) and finishes
//! assert_eq!(consumer.result::<u32>(), Some(700));
//!
//! // Iteration drains the senders still blocked on a closing channel, then ends.
//! for v in 1..=4u32 {
//!     let tx = ch.clone();
//!     spawn(move || tx.send(v).unwrap())?;
//! }
//! scheduler::run().unwrap(); // all four senders block
//! ch.close();
//! assert_eq!(ch.iter().map(|v| v.unwrap()).sum::<u32>(), 10);
//! assert!(ch.closed());
//! # scheduler::run().unwrap();
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! A tasklet blocked on a channel keeps it alive: dropping every user handle never releases
//! or loses a blocked tasklet (Stackless §3.6).
//!
//! Between tasklets of one thread a value moves straight from the sender's stack into the
//! receiver's (no allocation, one move each way). The channel's state sits behind a small
//! lock so that any thread may use it.
//!
//! # Buffered channels
//! A rendezvous costs every value a hand-over: the sender waits for a receiver, or the receiver
//! for a sender, and each value wakes somebody (a system call if that is another thread that
//! sleeps). A [`BufferedChannel`] holds up to `capacity` values that nobody has received yet,
//! as Go's `make(chan T, n)` does (Stackless has no buffered channel):
//!
//! - **send**: a receiver waits: the value is handed to it, as on a `Channel` (the preference
//!   decides who runs). Else, if the buffer has room, the value goes in and the sender goes
//!   on, without switching (whatever the preference or `schedule_all`: nobody is woken).
//!   Else the sender blocks in the channel's queue, as on a `Channel`.
//! - **receive**: a value is buffered: the receiver takes the oldest, and if a sender waits
//!   (the buffer was full), the first waiting sender's value moves into the buffer and that
//!   sender becomes runnable (the preference decides who runs, as for a receive that finds a
//!   sender on a `Channel`). Else it blocks, or takes a waiting sender's value (capacity 0).
//!   Values thus come out in the order they were sent: the buffered ones, then the blocked
//!   senders' in their queue's order.
//! - **`send_throw`** travels as a value does: into the buffer, in order with the values.
//! - **[`balance`](BufferedChannel::balance)** counts blocked tasklets, as Stackless's
//!   does (positive: senders wait for room, negative: receivers wait for values);
//!   [`len`](BufferedChannel::len) counts buffered values. Receivers wait only while the
//!   buffer is empty, and senders only while it is full.
//! - **closing**: receives drain the buffer and then the blocked senders; a send that finds
//!   no receiver waiting fails with [`Error::ClosedChannel`](crate::Error::ClosedChannel), even
//!   with room (so that a closing channel only empties). `closed` and the end of iteration
//!   need an empty buffer too. The channel callback's `will_block` says whether the operation
//!   would block (or, closing, fail): a send into a buffer with room does not.
//! - Dropping the last handle drops the buffered values.
//! - **Capacity 0** ([`BufferedChannel::new`]) is exactly a `Channel`: every operation a
//!   rendezvous.
//!
//! The buffer is one allocation, made with the channel; `Channel` and `LocalChannel` do not
//! pay for it (their code has no buffered branch).
//!
//! ```
//! use microthread::channel::BufferedChannel;
//! use microthread::{scheduler, spawn, spawn_thread};
//!
//! let ch = BufferedChannel::with_capacity(2);
//! ch.send(1).unwrap(); // nobody receives: buffered, main goes on
//! ch.send(2).unwrap();
//! let tx = ch.clone();
//! let third = spawn(move || tx.send(3).unwrap())?;
//! scheduler::run().unwrap(); // the buffer is full: the third send blocks
//! assert_eq!((ch.len(), ch.balance()), (2, 1));
//! assert_eq!(ch.receive().unwrap(), 1); // 3 moves into the buffer; its sender is runnable
//! scheduler::run().unwrap();
//! assert!(!third.alive());
//! ch.close();
//! assert_eq!(ch.iter().map(|v| v.unwrap()).collect::<Vec<_>>(), [2, 3]); // drained
//! assert!(ch.closed());
//!
//! // Across threads: a worker that sleeps in `receive` is woken by the send that hands it a
//! // value; the producer runs ahead by up to `capacity` jobs.
//! let jobs = BufferedChannel::<Option<u32>>::with_capacity(64);
//! let rx = jobs.clone();
//! let worker = spawn_thread(move || {
//!     let mut sum = 0;
//!     while let Some(job) = rx.receive().unwrap() {
//!         sum += job;
//!     }
//!     sum
//! });
//! jobs.send_sequence((1..=1000).map(Some)).unwrap();
//! jobs.send(None).unwrap();
//! assert_eq!(worker.join().unwrap(), 500_500);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Values that are not `Send`: [`LocalChannel`]
//! A [`Channel<T>`] may reach other threads, so it needs `T: Send`. A [`LocalChannel<T>`] is
//! the same channel for the tasklets of one thread (same methods, same rules, same speed,
//! without the lock): its handle is neither `Send` nor `Sync`, so no other thread can ever
//! use it, and any `T: 'static` may go through it, such as `Rc<RefCell<Entity>>`.
//!
//! ```
//! use microthread::channel::LocalChannel;
//! use microthread::{scheduler, spawn};
//! use std::{cell::RefCell, rc::Rc};
//!
//! let ch = LocalChannel::<Rc<RefCell<Vec<&str>>>>::new();
//! let rx = ch.clone();
//! spawn(move || {
//!     let entity = rx.receive().unwrap();
//!     entity.borrow_mut().push("seen by the tasklet");
//! })?;
//! scheduler::run().unwrap();
//! let entity = Rc::new(RefCell::new(vec!["made by main"]));
//! ch.send(entity.clone()).unwrap();
//! assert_eq!(*entity.borrow(), ["made by main", "seen by the tasklet"]);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::any::Any;
use std::fmt;
use std::sync::Arc;

#[macro_use]
mod api;
mod action;
mod buffered;
mod core;
mod local;
mod lock;
mod parked;
mod send_error;
mod wait;
mod wait_queue;

use self::core::Core;
use action::{Handle, RingOf};
use buffered::Ring;
pub use buffered::{BufferedChannel, BufferedIter};
pub use local::{LocalChannel, LocalIter};
use lock::BiasedLock;
pub(crate) use parked::Parked;
pub use send_error::SendError;

use crate::error::{Payload, Result};
use crate::scheduler::blocking::{scheduler, SealedChannel, Tasklet};
pub use crate::scheduler::blocking::{AnyChannel, ChannelCallback, ChannelEvent};

/// A rendezvous channel; see the [module docs](self). Cheap to clone: clones are handles to
/// the same channel. `Send + Sync` when `T: Send`.
///
/// ```
/// use microthread::{channel::Channel, spawn_thread};
///
/// fn is_send_sync<S: Send + Sync>(_: &S) {}
/// let ch = Channel::<u32>::new();
/// is_send_sync(&ch);
/// let other = ch.clone();
/// // Another thread's main tasklet; spawn_thread counts it awake at once, so this thread's
/// // send cannot find nobody awake (a false Error::Deadlock) before it starts.
/// let t = spawn_thread(move || other.receive().unwrap());
/// ch.send(9).unwrap(); // the partner is on another thread: main continues
/// assert_eq!(t.join().unwrap(), 9);
/// ```
pub struct Channel<T> {
    chan: Arc<Core<T, BiasedLock>>,
}

impl<T: Send + 'static> Channel<T> {
    /// A new channel: balance 0, preference -1, not closing.
    ///
    /// ```
    /// use microthread::channel::Channel;
    ///
    /// let ch = Channel::<String>::new();
    /// assert_eq!((ch.balance(), ch.preference(), ch.closing()), (0, -1, false));
    /// ```
    pub fn new() -> Channel<T> {
        lock::install_fork_handlers();
        Channel {
            chan: Arc::new(Core::new()),
        }
    }
}

channel_api!(Channel, Iter, BiasedLock, [Send + 'static]);

impl<T> Channel<T> {
    /// The address of the channel's state, which a tasklet blocked on it names
    /// (`Inner::blocked_on`, whose data pointer it is).
    pub(crate) fn blocker_address(&self) -> usize {
        Arc::as_ptr(&self.chan) as *const () as usize
    }

    /// The id of the tasklet at the head of the queue (`queue().first()`, without listing
    /// the queue).
    pub(crate) fn queue_head(&self) -> Option<u64> {
        self.chan.queue_head_id()
    }
}

/// Installs `callback`, called before every send and receive made by this thread, and returns
/// the previous one (Stackless `set_channel_callback`). A channel operation made from inside
/// it fails with [`Error::RecursiveChannelCallback`](crate::Error::RecursiveChannelCallback);
/// a panic in it is ignored (after the panic hook reports it). It may replace or remove
/// itself: the call in progress finishes.
///
/// ```
/// use microthread::channel::{self, Channel, ChannelEvent};
/// use std::{cell::Cell, rc::Rc};
///
/// let calls = Rc::new(Cell::new(0));
/// let c = calls.clone();
/// let previous = channel::set_channel_callback(Some(Rc::new(move |ev: &ChannelEvent<'_>| {
///     assert!(ev.sending && ev.will_block);
///     c.set(c.get() + 1);
/// })));
/// assert!(previous.is_none());
/// let ch = Channel::<u8>::new();
/// assert!(ch.send(1).is_err()); // main would block with nothing runnable: a deadlock
/// assert_eq!(calls.get(), 1);
/// assert!(channel::set_channel_callback(None).is_some());
/// ```
pub fn set_channel_callback(callback: Option<ChannelCallback>) -> Option<ChannelCallback> {
    scheduler().set_channel_callback(callback)
}

/// The channel callback installed on this thread (Stackless `get_channel_callback`): the
/// same `Rc` as was given to [`set_channel_callback`], also while it runs.
///
/// ```
/// use microthread::channel::{self, ChannelCallback, ChannelEvent};
/// use std::rc::Rc;
///
/// assert!(channel::channel_callback().is_none());
/// let cb: ChannelCallback = Rc::new(|_: &ChannelEvent<'_>| {});
/// channel::set_channel_callback(Some(cb.clone()));
/// assert!(Rc::ptr_eq(&channel::channel_callback().unwrap(), &cb));
/// channel::set_channel_callback(None);
/// assert!(channel::channel_callback().is_none());
/// ```
pub fn channel_callback() -> Option<ChannelCallback> {
    scheduler().channel_callback()
}

const _: () = {
    const fn is<T: Send + Sync>() {}
    is::<Channel<u32>>();
};
