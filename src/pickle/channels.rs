//! [`ChannelRef`], a channel of a world as a resumable tasklet's state holds it (its index
//! in the world), and the type-erased view of a world's channels the pickler and the
//! restorer use.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::PickleError;
use crate::channel::Channel;
use crate::Tasklet;

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

impl<T> Clone for ChannelRef<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for ChannelRef<T> {}
impl<T> PartialEq for ChannelRef<T> {
    fn eq(&self, other: &Self) -> bool {
        self.index == other.index
    }
}
impl<T> Eq for ChannelRef<T> {}
impl<T> fmt::Debug for ChannelRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChannelRef({})", self.index)
    }
}
impl<T> Serialize for ChannelRef<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.index)
    }
}
impl<'de, T> Deserialize<'de> for ChannelRef<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u32::deserialize(d).map(|index| ChannelRef {
            index,
            _t: PhantomData,
        })
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
}

impl<T: Serialize + DeserializeOwned + Send + 'static> ErasedChannel for Channel<T> {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn queue(&self) -> Vec<u64> {
        Channel::queue(self)
    }
    fn address(&self) -> usize {
        Channel::blocker_address(self)
    }
    fn balance(&self) -> isize {
        Channel::balance(self)
    }
    fn preference(&self) -> i8 {
        Channel::preference(self)
    }
    fn schedule_all(&self) -> bool {
        Channel::schedule_all(self)
    }
    fn closing(&self) -> bool {
        Channel::closing(self)
    }
    fn set_preference(&self, p: i8) {
        Channel::set_preference(self, p as i32)
    }
    fn set_schedule_all(&self, on: bool) {
        Channel::set_schedule_all(self, on)
    }
    fn close(&self) {
        Channel::close(self)
    }
    fn park(&self, tasklet: &Tasklet, value: Option<&[u8]>) -> Result<Box<dyn Any>, PickleError> {
        let value: Option<T> = match value {
            Some(bytes) => Some(postcard::from_bytes(bytes)?),
            None => None,
        };
        Ok(Channel::park(self, tasklet, value).map_err(PickleError::Op)?)
    }
}
