//! [`LocalChannel`]: the channel of the tasklets of one thread, for values that are not
//! `Send`.
//!
//! # Why it is sound
//! It runs the very code of [`Channel`](super::Channel) (`action`, `block`, the `Blocker`
//! impl), with a lock that does nothing. That is sound because every thread that touches its
//! state is the thread that made it:
//! - its handle holds an `Rc` (so it is `!Send` and `!Sync`), and the only other way to it,
//!   the callback's `&dyn AnyChannel`, is neither `Send` nor `Sync` either: no other thread
//!   can send, receive, query or downcast it;
//! - so every waiter in its queue is a tasklet of that thread (checked in debug builds), and
//!   the cross-thread branches of the rendezvous are compiled out (`ChannelLock::ONE_THREAD`);
//! - a blocked tasklet is let go of (`Blocker::unlink`) by its own thread only: kill, throw
//!   and teardown run there (another thread's kill is mail, read by the owner);
//! - tasklets never move between threads, so a `T` that is not `Send` stays on its thread;
//! - no caller's code runs while the state is held (the same rule as for `Channel`), so no
//!   second access overlaps the first (checked in debug builds).

use std::any::Any;
use std::fmt;
use std::rc::Rc;

use super::action::{self, Handle, RingOf};
use super::buffered::Ring;
use super::core::{Core, OneThread};
use super::SendError;
use crate::error::{Payload, Result};
use crate::scheduler::blocking::{AnyChannel, SealedChannel, Tasklet};

/// A rendezvous channel between the tasklets of one thread: a [`Channel`](super::Channel) in
/// everything (the methods, the preference and `schedule_all`, closing, the error and
/// deadlock rules, the callback), but for any `T: 'static`, `Send` or not, and without a lock.
/// Cheap to clone: clones are handles to the same channel.
///
/// Its handles never leave the thread that made it, so no tasklet of another thread can
/// rendezvous on it, and no `T` moves between threads: it is neither `Send`
///
/// ```compile_fail
/// use microthread::channel::LocalChannel;
/// let ch = LocalChannel::<u32>::new();
/// std::thread::spawn(move || drop(ch));
/// ```
///
/// nor `Sync`:
///
/// ```compile_fail
/// use microthread::channel::LocalChannel;
/// fn is_sync<S: Sync>(_: &S) {}
/// is_sync(&LocalChannel::<u32>::new());
/// ```
///
/// (A [`Channel`](super::Channel) is both, so it needs `T: Send`: a `Channel<Rc<_>>` cannot be
/// made.)
///
/// ```compile_fail
/// use microthread::channel::Channel;
/// let ch = Channel::<std::rc::Rc<u32>>::new();
/// ```
///
/// ```
/// use microthread::channel::LocalChannel;
/// use microthread::{scheduler, spawn};
/// use std::{cell::RefCell, rc::Rc};
///
/// struct Entity {
///     hits: u32,
/// }
/// let ch = LocalChannel::<Rc<RefCell<Entity>>>::new();
/// let rx = ch.clone();
/// spawn(move || {
///     for entity in &rx {
///         entity.unwrap().borrow_mut().hits += 1;
///     }
/// })?;
/// let e = Rc::new(RefCell::new(Entity { hits: 0 }));
/// ch.send_sequence([e.clone(), e.clone()]).unwrap();
/// assert_eq!(e.borrow().hits, 2);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct LocalChannel<T> {
    chan: Rc<Core<T, OneThread>>,
}

impl<T: 'static> LocalChannel<T> {
    /// A new channel of this thread: balance 0, preference -1, not closing.
    ///
    /// ```
    /// use microthread::channel::LocalChannel;
    ///
    /// let ch = LocalChannel::<std::rc::Rc<String>>::new();
    /// assert_eq!((ch.balance(), ch.preference(), ch.closing()), (0, -1, false));
    /// ```
    pub fn new() -> LocalChannel<T> {
        LocalChannel {
            chan: Rc::new(Core::new()),
        }
    }
}

channel_api!(LocalChannel, LocalIter, OneThread, ['static]);
