//! [`ChannelRef`] and [`BufferedChannelRef`], a channel of a world as a resumable tasklet's
//! state holds it (its index in the world), the [`WorldRef`] trait the operations take both
//! through, and the type-erased view of a world's channels the pickler and the restorer use.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::world::WorldInner;
use super::PickleError;
use crate::channel::{BufferedChannel, Channel, SendError};
use crate::Tasklet;

/// The traits both world-channel reference types have alike: `Copy`, compared, printed and
/// serialised by their index.
macro_rules! world_ref_traits {
    ($name:ident) => {
        impl<T> Clone for $name<T> {
            fn clone(&self) -> Self {
                *self
            }
        }
        impl<T> Copy for $name<T> {}
        impl<T> PartialEq for $name<T> {
            fn eq(&self, other: &Self) -> bool {
                self.index == other.index
            }
        }
        impl<T> Eq for $name<T> {}
        impl<T> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.index)
            }
        }
        impl<T> Serialize for $name<T> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_u32(self.index)
            }
        }
        impl<'de, T> Deserialize<'de> for $name<T> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                u32::deserialize(d).map(|index| $name {
                    index,
                    _t: PhantomData,
                })
            }
        }
        impl<T> WorldRef<T> for $name<T> {
            fn index(&self) -> u32 {
                self.index
            }
        }
    };
}

/// A channel of a world, by its index there: `Copy`, and serialised as that index, so a
/// state holding it comes back referring to the restored world's channel.
///
/// ```
/// use microthread::pickle::{Registry, World};
/// use std::rc::Rc;
/// let mut reg = Registry::new();
/// reg.register_channel::<u8>("u8", 1).unwrap();
/// let world = World::new(Rc::new(reg));
/// let r = world.channel::<u8>().unwrap();
/// assert_eq!(postcard::to_allocvec(&r).unwrap(), [0]); // the index
/// assert_eq!(world.get(r).unwrap().balance(), 0);
/// ```
pub struct ChannelRef<T> {
    pub(super) index: u32,
    pub(super) _t: PhantomData<fn() -> T>,
}

impl<T> ChannelRef<T> {
    /// The channel's index in its world.
    ///
    /// ```
    /// # use microthread::pickle::{Registry, World};
    /// # let mut reg = Registry::new();
    /// # reg.register_channel::<u8>("u8", 1).unwrap();
    /// # let world = World::new(std::rc::Rc::new(reg));
    /// assert_eq!(world.channel::<u8>().unwrap().index(), 0);
    /// assert_eq!(world.channel::<u8>().unwrap().index(), 1);
    /// ```
    pub fn index(&self) -> u32 {
        self.index
    }
}

world_ref_traits!(ChannelRef);

/// A buffered channel of a world ([`World::buffered_channel`](super::World::buffered_channel)),
/// by its index there: as a [`ChannelRef`] (`Copy`, serialised as that index, one index space
/// for both), but for a [`BufferedChannel`], which [`World::get_buffered`](super::World::get_buffered)
/// hands out. [`Cx::send`](super::Cx::send), [`Cx::receive`](super::Cx::receive) and
/// [`World::send`](super::World::send) take either ([`WorldRef`]).
///
/// ```
/// use microthread::pickle::{Registry, World};
/// use std::rc::Rc;
/// let mut reg = Registry::new();
/// reg.register_channel::<u8>("u8", 1).unwrap();
/// let world = World::new(Rc::new(reg));
/// let plain = world.channel::<u8>().unwrap();
/// let r = world.buffered_channel::<u8>(4).unwrap();
/// assert_eq!((plain.index(), r.index()), (0, 1));
/// assert_eq!(postcard::to_allocvec(&r).unwrap(), [1]); // the index
/// let ch = world.get_buffered(r).unwrap();
/// ch.send(7).unwrap(); // room: main goes on
/// assert_eq!((ch.capacity(), ch.len()), (4, 1));
/// ```
pub struct BufferedChannelRef<T> {
    pub(super) index: u32,
    pub(super) _t: PhantomData<fn() -> T>,
}

impl<T> BufferedChannelRef<T> {
    /// The channel's index in its world.
    ///
    /// ```
    /// # use microthread::pickle::{Registry, World};
    /// # let mut reg = Registry::new();
    /// # reg.register_channel::<u8>("u8", 1).unwrap();
    /// # let world = World::new(std::rc::Rc::new(reg));
    /// world.channel::<u8>().unwrap();
    /// assert_eq!(world.buffered_channel::<u8>(1).unwrap().index(), 1);
    /// ```
    pub fn index(&self) -> u32 {
        self.index
    }
}

world_ref_traits!(BufferedChannelRef);

pub(super) mod sealed {
    /// Only the pickle layer's references are [`WorldRef`](super::WorldRef)s.
    pub trait Sealed {
        /// Whether it names a buffered channel.
        const BUFFERED: bool;
    }
}

impl<T> sealed::Sealed for ChannelRef<T> {
    const BUFFERED: bool = false;
}
impl<T> sealed::Sealed for BufferedChannelRef<T> {
    const BUFFERED: bool = true;
}

/// A reference to a world's channel of values of type `T`: a [`ChannelRef`] or a
/// [`BufferedChannelRef`] (sealed: no other type is one). The channel operations of
/// [`Cx`](super::Cx) and [`World::send`](super::World::send) take either.
///
/// ```
/// use microthread::pickle::{ChannelRef, WorldRef};
/// fn index_of<R: WorldRef<u8>>(r: R) -> u32 {
///     r.index()
/// }
/// let r: ChannelRef<u8> = postcard::from_bytes(&[3]).unwrap();
/// assert_eq!(index_of(r), 3);
/// ```
pub trait WorldRef<T>: sealed::Sealed + Copy + fmt::Debug {
    /// The channel's index in its world.
    fn index(&self) -> u32;
}

/// A world's channel, as a resumable tasklet's operation or [`World::send`](super::World::send)
/// uses it: the handle of either kind.
pub(super) enum Live<T> {
    Plain(Channel<T>),
    Buffered(BufferedChannel<T>),
}

/// `$call` on the handle a [`Live`] holds, whichever kind it is.
macro_rules! on_live {
    ($live:expr, $c:ident => $call:expr) => {
        match $live {
            Live::Plain($c) => $call,
            Live::Buffered($c) => $call,
        }
    };
}

impl<T: Send + 'static> Live<T> {
    pub(super) fn balance(&self) -> isize {
        on_live!(self, c => c.balance())
    }
    pub(super) fn preference(&self) -> i8 {
        on_live!(self, c => c.preference())
    }
    pub(super) fn schedule_all(&self) -> bool {
        on_live!(self, c => c.schedule_all())
    }
    pub(super) fn queue_head(&self) -> Option<u64> {
        on_live!(self, c => c.queue_head())
    }
    /// Whether a send now goes into the buffer (no receiver waits, room, not closing).
    pub(super) fn buffers_a_send(&self) -> bool {
        match self {
            Live::Plain(_) => false,
            Live::Buffered(c) => c.balance() >= 0 && !c.closing() && c.len() < c.capacity(),
        }
    }
    pub(super) fn send(&self, value: T) -> Result<(), SendError<T>> {
        on_live!(self, c => c.send(value))
    }
    pub(super) fn receive(&self) -> crate::Result<T> {
        on_live!(self, c => c.receive())
    }
}

/// A world's channel, whatever its value type: the queries the pickler makes and the
/// settings the restorer sets.
pub(super) trait ErasedChannel {
    fn as_any(&self) -> &dyn Any;
    fn queue(&self) -> Vec<u64>;
    /// The address a tasklet blocked on the channel names it by (`Inner::blocked_on`).
    fn address(&self) -> usize;
    fn balance(&self) -> isize;
    fn preference(&self) -> i8;
    fn schedule_all(&self) -> bool;
    fn closing(&self) -> bool;
    fn set_preference(&self, p: i8);
    fn set_schedule_all(&self, on: bool);
    fn close(&self);
    /// Queues `tasklet` as blocked on the channel ([`Channel::park`]): sending the value
    /// whose postcard bytes are `value`, or receiving (`None`). The waiter is returned as a
    /// `Box<Parked<T>>`, erased.
    fn park(&self, tasklet: &Tasklet, value: Option<&[u8]>) -> Result<Box<dyn Any>, PickleError>;
    /// The buffer's capacity: `None` for a rendezvous [`Channel`].
    fn capacity(&self) -> Option<usize> {
        None
    }
    /// The buffered values, oldest first, postcard encoded; `ci` is the channel's index, for
    /// the error.
    fn buffered(&self, _ci: u32) -> Result<Vec<Vec<u8>>, PickleError> {
        Ok(Vec::new())
    }
    /// Appends the value whose postcard bytes are `value` to the buffer (a restore, before
    /// anything waits on the channel).
    fn refill(&self, _value: &[u8]) -> Result<(), PickleError> {
        Err(PickleError::Inconsistent(
            "a rendezvous channel holds buffered values".into(),
        ))
    }
}

/// The [`ErasedChannel`] methods both channel types implement alike, through their own
/// (same-named) methods.
macro_rules! erased_channel_common {
    ($ty:ident) => {
        fn as_any(&self) -> &dyn Any {
            self
        }
        fn queue(&self) -> Vec<u64> {
            $ty::queue(self)
        }
        fn address(&self) -> usize {
            $ty::blocker_address(self)
        }
        fn balance(&self) -> isize {
            $ty::balance(self)
        }
        fn preference(&self) -> i8 {
            $ty::preference(self)
        }
        fn schedule_all(&self) -> bool {
            $ty::schedule_all(self)
        }
        fn closing(&self) -> bool {
            $ty::closing(self)
        }
        fn set_preference(&self, p: i8) {
            $ty::set_preference(self, p as i32)
        }
        fn set_schedule_all(&self, on: bool) {
            $ty::set_schedule_all(self, on)
        }
        fn close(&self) {
            $ty::close(self)
        }
        fn park(
            &self,
            tasklet: &Tasklet,
            value: Option<&[u8]>,
        ) -> Result<Box<dyn Any>, PickleError> {
            let value: Option<T> = match value {
                Some(bytes) => Some(postcard::from_bytes(bytes)?),
                None => None,
            };
            Ok($ty::park(self, tasklet, value).map_err(PickleError::Op)?)
        }
    };
}

impl<T: Serialize + DeserializeOwned + Send + 'static> ErasedChannel for Channel<T> {
    erased_channel_common!(Channel);
}

impl<T: Serialize + DeserializeOwned + Send + 'static> ErasedChannel for BufferedChannel<T> {
    erased_channel_common!(BufferedChannel);
    fn capacity(&self) -> Option<usize> {
        Some(BufferedChannel::capacity(self))
    }
    fn buffered(&self, ci: u32) -> Result<Vec<Vec<u8>>, PickleError> {
        let mut out = Vec::new();
        let mut failed = None;
        self.inspect_buffered(|v| {
            if failed.is_some() {
                return;
            }
            match v.map(postcard::to_allocvec) {
                Some(Ok(bytes)) => out.push(bytes),
                Some(Err(e)) => failed = Some(PickleError::Encode(e.to_string())),
                None => {
                    failed = Some(PickleError::Encode(format!(
                        "channel {ci} buffers an error sent with send_throw, which has no serialisation"
                    )))
                }
            }
        });
        match failed {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
    fn refill(&self, value: &[u8]) -> Result<(), PickleError> {
        let value: T = postcard::from_bytes(value)?;
        BufferedChannel::refill(self, value).map_err(|_| {
            PickleError::Inconsistent(
                "a channel holds more buffered values than its capacity".into(),
            )
        })
    }
}

impl WorldInner {
    /// Before a send of `value` on `chan`: a receiver that takes it but resumes later gets
    /// the value's bytes in `in_transit`; a send that will block returns them to carry (a
    /// send into a buffer with room neither hands over nor blocks: nothing to keep).
    pub(super) fn before_send<T: Serialize + Send + 'static>(
        &self,
        chan: &Live<T>,
        value: &T,
    ) -> Result<Option<Vec<u8>>, PickleError> {
        let encode =
            || postcard::to_allocvec(value).map_err(|e| PickleError::Encode(e.to_string()));
        if chan.balance() < 0 {
            // preference -1 without schedule_all: the receiver runs at once, and resumes.
            if chan.preference() >= 0 || chan.schedule_all() {
                if let Some(head) = chan.queue_head() {
                    self.in_transit.borrow_mut().insert(head, encode()?);
                }
            }
            Ok(None)
        } else if chan.buffers_a_send() {
            Ok(None)
        } else {
            Ok(Some(encode()?))
        }
    }

    /// Before receiver `me` receives on `chan`: if it takes a value but resumes later
    /// (a sender waits, and preference +1 or `schedule_all` makes the receiver yield to it),
    /// keep the value's bytes for it: the oldest buffered value if the buffer holds one,
    /// else the first waiting sender's.
    pub(super) fn before_receive<T: Serialize + Send + 'static>(&self, chan: &Live<T>, me: u64) {
        if chan.balance() > 0 && (chan.preference() > 0 || chan.schedule_all()) {
            if let Live::Buffered(b) = chan {
                let mut first = None;
                b.inspect_buffered(|v| {
                    if first.is_none() {
                        first = Some(v.and_then(|v| postcard::to_allocvec(v).ok()));
                    }
                });
                if let Some(v) = first {
                    // (An error sent with `send_throw`, or a value that does not serialise,
                    // keeps nothing: a pickle before the receiver resumes is refused.)
                    if let Some(v) = v {
                        self.in_transit.borrow_mut().insert(me, v);
                    }
                    return;
                }
            }
            let Some(head) = chan.queue_head() else {
                return;
            };
            let members = self.members.borrow();
            let value = self
                .by_id
                .borrow()
                .get(&head)
                .and_then(|&i| members[i].record.as_ref())
                .and_then(|r| r.borrow().pending_value.clone())
                .or_else(|| self.outside_sends.borrow().get(&head).cloned());
            if let Some(v) = value {
                self.in_transit.borrow_mut().insert(me, v);
            }
        }
    }

    pub(super) fn after_receive(&self, me: u64) {
        let mut t = self.in_transit.borrow_mut();
        if !t.is_empty() {
            t.remove(&me);
        }
    }
}
