//! [`Channel`]: Stackless Python's rendezvous channel, between tasklets of one thread or of
//! several.
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
//! | `ch.balance`, `ch.queue` | [`Channel::balance`], [`Channel::queue`] (ids, head first) |
//! | `ch.preference = n`, `ch.schedule_all = b` | [`Channel::set_preference`], [`Channel::set_schedule_all`] |
//! | `ch.close()`, `ch.open()`, `ch.closing`, `ch.closed` | the methods of the same names |
//! | `stackless.set_channel_callback(cb)` | [`set_channel_callback`] (per thread) |
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

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::ptr;
use std::sync::Arc;

mod iter;
mod lock;
mod send_error;
mod wait;

pub use iter::Iter;
pub(crate) use lock::{before_fork, in_forked_child};
use lock::{BiasedLock, Held};
use send_error::send_error;
pub use send_error::SendError;
use wait::{wake_on_its_thread, Waiter};

use crate::error::{Error, Payload, Result};
use crate::id;
use crate::scheduler::blocking::{self, scheduler, ChannelInfo, Scheduler};
pub use crate::scheduler::blocking::{ChannelCallback, ChannelEvent};

/// A value or an error travelling through a channel.
enum Msg<T> {
    Value(T),
    /// Boxed once more so that the message of a small `T` is two words: it moves through
    /// registers, and its copies do not trip store-to-load forwarding.
    Error(Box<Payload>),
}

struct State<T> {
    /// Blocked tasklets, head first, all in one direction.
    queue: VecDeque<*const Waiter<T>>,
    balance: isize,
    preference: i8,
    schedule_all: bool,
    closing: bool,
}

struct Chan<T> {
    id: u64,
    lock: BiasedLock,
    state: UnsafeCell<State<T>>,
}

// SAFETY: the state is only reached under `lock`; the raw pointers in it name waiters on
// blocked tasklets' stacks, valid while queued (a waiter is removed under the lock before its
// tasklet can run again), and values of type T, which move between threads only if T: Send.
unsafe impl<T: Send> Send for Chan<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Chan<T> {}

/// Access to a channel's state, for as long as it lives.
struct Guard<'a, T> {
    chan: &'a Chan<T>,
    _held: Held<'a>,
}

impl<T> Chan<T> {
    /// Exclusive access to the state for the calling thread.
    #[inline]
    fn lock(&self) -> Guard<'_, T> {
        self.lock_as(blocking::thread_identity())
    }

    /// Exclusive access for the thread whose scheduler is `s` (already at hand).
    #[inline(always)]
    fn lock_as(&self, me: usize) -> Guard<'_, T> {
        Guard {
            chan: self,
            _held: self.lock.acquire(me),
        }
    }
}

impl<T> Guard<'_, T> {
    /// The state, for as long as the guard is borrowed: one `&mut State` at a time.
    fn state(&mut self) -> &mut State<T> {
        // SAFETY: the guard proves exclusive access to the state.
        unsafe { &mut *self.chan.state.get() }
    }
}

/// A rendezvous channel; see the [module docs](self). Cheap to clone: clones are handles to
/// the same channel. `Send + Sync` when `T: Send`.
pub struct Channel<T> {
    chan: Arc<Chan<T>>,
}

impl<T> Clone for Channel<T> {
    fn clone(&self) -> Self {
        Channel {
            chan: self.chan.clone(),
        }
    }
}

impl<T: Send + 'static> Default for Channel<T> {
    fn default() -> Self {
        Channel::new()
    }
}

/// Installs `callback`, called before every send and receive made by this thread, and returns
/// the previous one. A channel operation made from inside it fails with
/// [`Error::RecursiveChannelCallback`].
pub fn set_channel_callback(callback: Option<ChannelCallback>) -> Option<ChannelCallback> {
    scheduler().set_channel_callback(callback)
}

impl<T: Send + 'static> Channel<T> {
    /// A new channel: balance 0, preference -1, not closing.
    pub fn new() -> Channel<T> {
        Channel {
            chan: Arc::new(Chan {
                id: id::next(),
                lock: BiasedLock::new(),
                state: UnsafeCell::new(State {
                    queue: VecDeque::new(),
                    balance: 0,
                    preference: -1,
                    schedule_all: false,
                    closing: false,
                }),
            }),
        }
    }

    /// The channel's id, unique in the process.
    pub fn id(&self) -> u64 {
        self.chan.id
    }

    /// Sends `value`: hands it to the first waiting receiver, or blocks until one comes.
    ///
    /// # Errors
    /// [`Error::ClosedChannel`], [`Error::BlockTrap`], [`Error::Deadlock`] (it would block
    /// and nothing can wake it), or an error delivered while blocked (a throw, a routed
    /// panic): each with the value given back if it was not delivered.
    #[inline(always)]
    pub fn send(&self, value: T) -> std::result::Result<(), SendError<T>> {
        match self.action::<1>(Some(Msg::Value(value))) {
            // A successful send gets nothing back: no message to drop (skip the drop glue).
            Ok(nothing) => {
                debug_assert!(nothing.is_none());
                std::mem::forget(nothing);
                Ok(())
            }
            Err(f) => {
                let (error, msg) = *f;
                Err(send_error(error, msg))
            }
        }
    }

    /// Sends an error instead of a value: the receiver's [`receive`](Channel::receive) returns
    /// `Err(Error::Thrown(payload))` (Stackless `send_exception` / `send_throw`).
    ///
    /// # Errors
    /// As [`send`](Channel::send), with the payload given back.
    pub fn send_throw(&self, payload: Payload) -> std::result::Result<(), SendError<Payload>> {
        match self.action::<1>(Some(Msg::Error(Box::new(payload)))) {
            // A successful send gets nothing back: no message to drop (skip the drop glue).
            Ok(nothing) => {
                debug_assert!(nothing.is_none());
                std::mem::forget(nothing);
                Ok(())
            }
            Err(f) => match *f {
                (error, Some(Msg::Error(p))) => Err(SendError {
                    value: Some(*p),
                    error,
                }),
                (error, _) => Err(SendError { value: None, error }),
            },
        }
    }

    /// Receives a value: takes the first waiting sender's, or blocks until one comes.
    ///
    /// # Errors
    /// [`Error::Thrown`] if an error was sent instead of a value; [`Error::ClosedChannel`],
    /// [`Error::BlockTrap`], [`Error::Deadlock`],
    /// [`Error::MainReceivingWithoutSender`], or an error delivered while blocked.
    #[inline(always)]
    pub fn receive(&self) -> Result<T> {
        match self.action::<-1>(None) {
            Ok(Some(Msg::Value(v))) => Ok(v),
            Ok(Some(Msg::Error(p))) => Err(Error::Thrown(*p)),
            Ok(None) => unreachable!("a completed receive always has a message"),
            Err(f) => Err(f.0),
        }
    }

    /// Sends every item, in order; returns how many were sent.
    ///
    /// # Errors
    /// The first failed send, with its value; the items after it are not taken from `items`.
    pub fn send_sequence<I: IntoIterator<Item = T>>(
        &self,
        items: I,
    ) -> std::result::Result<usize, SendError<T>> {
        let mut n = 0;
        for item in items {
            self.send(item)?;
            n += 1;
        }
        Ok(n)
    }

    /// Iterates over received values; ends when the channel is closing and no sender waits
    /// (Stackless: `StopIteration` when `closing and balance <= 0`).
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { channel: self }
    }

    /// Senders waiting (positive) or receivers waiting (negative).
    pub fn balance(&self) -> isize {
        self.chan.lock().state().balance
    }

    /// The ids of the blocked tasklets, head (next to be served) first.
    pub fn queue(&self) -> Vec<u64> {
        let mut g = self.chan.lock();
        // SAFETY: queued waiters and their tasklets are valid; `id` is never written.
        g.state()
            .queue
            .iter()
            .map(|&w| unsafe { (*(*w).tasklet).id })
            .collect()
    }

    /// -1 (default): prefer the receiver; +1: prefer the sender; 0: neither (see the module
    /// docs).
    pub fn preference(&self) -> i8 {
        self.chan.lock().state().preference
    }

    /// Sets the preference; values are clamped by sign, as in Stackless (5 → 1, -7 → -1).
    pub fn set_preference(&self, preference: i32) {
        self.chan.lock().state().preference = preference.signum() as i8;
    }

    /// Whether every rendezvous makes the partner runnable and the caller yield.
    pub fn schedule_all(&self) -> bool {
        self.chan.lock().state().schedule_all
    }

    /// Sets `schedule_all`, which overrides the preference.
    pub fn set_schedule_all(&self, on: bool) {
        self.chan.lock().state().schedule_all = on;
    }

    /// Marks the channel closing: operations that find a partner still succeed (so blocked
    /// senders can be drained), operations that would block fail with
    /// [`Error::ClosedChannel`]. Nobody is woken.
    pub fn close(&self) {
        self.chan.lock().state().closing = true;
    }

    /// Clears `closing`.
    pub fn open(&self) {
        self.chan.lock().state().closing = false;
    }

    /// Whether [`close`](Channel::close) was called (and not undone by `open`).
    pub fn closing(&self) -> bool {
        self.chan.lock().state().closing
    }

    /// Closing and nobody waits: every further blocking operation fails.
    pub fn closed(&self) -> bool {
        let mut g = self.chan.lock();
        let st = g.state();
        st.closing && st.balance == 0
    }

    /// Stackless's `channel_action`: `DIR` +1 sends `msg`, -1 receives.
    #[inline(always)]
    fn action<const DIR: i8>(&self, msg: Option<Msg<T>>) -> Outcome<T> {
        let s = scheduler();
        if s.channel_hooks() {
            if let Err(e) = self.call_channel_callback::<DIR>(s) {
                return Err(failure(e, msg));
            }
        }
        let mut g = self.chan.lock_as(s as *const Scheduler as usize);
        let st = g.state();
        let cando = if DIR > 0 {
            st.balance < 0
        } else {
            st.balance > 0
        };
        if !cando {
            return self.block::<DIR>(s, g, msg);
        }
        // SAFETY: a non-zero balance means a waiter of the other direction is queued.
        let w = unsafe { st.queue.pop_front().unwrap_unchecked() };
        // SAFETY: a queued waiter is valid until removed, which we just did under the lock;
        // its tasklet stays blocked (and alive) until it is woken below.
        let local = ptr::eq(unsafe { (*w).scheduler }, s);
        // SAFETY: as above; a queued waiter's scheduler outlives it.
        if !local && unsafe { (*(*w).scheduler).ended() } {
            // Only in a forked child: a waiter of a thread that does not exist here, which
            // nothing will ever wake. It leaves the queue (its value, if any, stays in that
            // thread's copied stack) and the operation starts again.
            st.balance += DIR as isize;
            drop(g);
            return self.action_again::<DIR>(msg);
        }
        let switching = local && (st.schedule_all || st.preference == -DIR);
        if s.hooks_on() {
            if let Err(e) = s.refuse_by_hooks(switching) {
                // Put back as it was, under the same lock: nobody saw the change, so the
                // refused operation leaves no trace.
                st.queue.push_front(w);
                drop(g);
                return Err(failure(e, msg));
            }
        }
        st.balance += DIR as isize;
        // SAFETY: a queued waiter is valid until removed, which we just did under the lock;
        // its tasklet stays blocked (and alive) until it is woken below.
        let (partner, got) = unsafe {
            let slot = &mut *(*w).slot.get();
            let got = if DIR > 0 {
                // The receiver's slot is empty: write without dropping the old value (its
                // drop glue is an out-of-line call on this hot path).
                debug_assert!(slot.is_none());
                ptr::write(slot, msg);
                None
            } else {
                slot.take()
            };
            if !ptr::eq((*w).scheduler, s) {
                return Ok(wake_on_its_thread(g, w, got));
            }
            ((*w).tasklet, got)
        };
        let schedule_all = st.schedule_all;
        drop(g);
        // SAFETY: the partner is a blocked tasklet of this thread, now out of the queue.
        let switched = unsafe { s.wake_here(partner, switching, schedule_all) };
        match switched {
            Ok(()) => Ok(got),
            // Refused because the caller's stack unwinds (a destructor of a killed or
            // panicking tasklet): the rendezvous stands, the partner runs later. (No switch
            // happens while a stack unwinds, so this cannot be an error delivered after one.)
            Err(Error::Unwinding) if std::thread::panicking() => Ok(got),
            Err(e) => Err(failure(e, got)),
        }
    }

    /// `action`, out of line: after a waiter of a vanished thread was dropped.
    #[cold]
    #[inline(never)]
    fn action_again<const DIR: i8>(&self, msg: Option<Msg<T>>) -> Outcome<T> {
        self.action::<DIR>(msg)
    }

    #[cold]
    #[inline(never)]
    fn call_channel_callback<const DIR: i8>(&self, s: &Scheduler) -> Result<()> {
        s.before_channel_action(|| {
            let mut st = self.chan.lock();
            let b = st.state().balance;
            ChannelInfo {
                channel: self.chan.id,
                sending: DIR > 0,
                will_block: if DIR > 0 { b >= 0 } else { b <= 0 },
            }
        })
    }
}

/// A channel action's result. The failure is boxed: it is rare, and a small `Outcome` keeps
/// the common path from copying an `Error` and a message around.
type Outcome<T> = std::result::Result<Option<Msg<T>>, Box<(Error, Option<Msg<T>>)>>;

#[cold]
fn failure<T>(e: Error, msg: Option<Msg<T>>) -> Box<(Error, Option<Msg<T>>)> {
    Box::new((e, msg))
}

/// Formats a snapshot taken under the lock, written after the lock is released: the
/// formatter's writer is the caller's code and may use this very channel.
impl<T> fmt::Debug for Channel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (balance, preference, schedule_all, closing) = {
            let mut g = self.chan.lock();
            let st = g.state();
            (st.balance, st.preference, st.schedule_all, st.closing)
        };
        f.debug_struct("Channel")
            .field("id", &self.chan.id)
            .field("balance", &balance)
            .field("preference", &preference)
            .field("schedule_all", &schedule_all)
            .field("closing", &closing)
            .finish()
    }
}

#[allow(dead_code)]
fn assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Channel<u32>>();
    let _ = PhantomData::<crate::scheduler::RemoteTasklet>;
}
