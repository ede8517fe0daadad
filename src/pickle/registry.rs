//! [`Registry`]: the kinds of resumable tasklets and the channel value types a program can
//! pickle, each under a stable name and a user-given version; their fingerprint guards the
//! file format against a program that registered something else.

use std::any::TypeId;
use std::cell::RefCell;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::rc::Rc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::channels::ErasedChannel;
use super::cx::Cx;
use super::journal::Record;
use super::start::{start_lazy, ParkedCell};
use super::world::WorldInner;
use super::PickleError;
use crate::channel::{BufferedChannel, Channel};
use crate::Tasklet;

/// The body of a resumable tasklet of state `S`: a deterministic function of its state and
/// of the results of the operations it makes through its [`Cx`] (see the
/// [module docs](super)). It is entered from its beginning at the start and on every
/// restore, with the state of its last checkpoint.
pub type Body<S> = fn(&mut Cx<S>) -> Result<(), PickleError>;

/// A registered kind of resumable tasklet, with state `S`: what [`World::spawn`] takes.
/// `Copy`.
///
/// [`World::spawn`]: super::World::spawn
///
/// ```
/// use microthread::pickle::{Cx, Kind, PickleError, Registry};
/// fn idle(_: &mut Cx<u8>) -> Result<(), PickleError> { Ok(()) }
/// let mut reg = Registry::new();
/// let kind: Kind<u8> = reg.register("idle", 1, idle).unwrap();
/// assert_eq!(kind.name(&reg), "idle");
/// ```
pub struct Kind<S> {
    pub(super) index: u32,
    pub(super) body: Body<S>,
    _state: PhantomData<fn(S) -> S>,
}

impl<S> Clone for Kind<S> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<S> Copy for Kind<S> {}

impl<S> Kind<S> {
    /// The name it was registered under in `registry`.
    ///
    /// ```
    /// use microthread::pickle::{Cx, PickleError, Registry};
    /// fn a(_: &mut Cx<()>) -> Result<(), PickleError> { Ok(()) }
    /// let mut reg = Registry::new();
    /// assert_eq!(reg.register("a", 3, a).unwrap().name(&reg), "a");
    /// ```
    pub fn name<'r>(&self, registry: &'r Registry) -> &'r str {
        &registry.kinds[self.index as usize].name
    }
}

/// Makes the (lazy) tasklet for a restored record: decodes its checkpoint as the kind's
/// state; the cell is where the restore may put its waiter.
type Starter =
    Box<dyn Fn(&Rc<WorldInner>, Rc<RefCell<Record>>, ParkedCell) -> Result<Tasklet, PickleError>>;

pub(super) struct KindEntry {
    pub(super) name: String,
    pub(super) version: u32,
    pub(super) start: Starter,
}

pub(super) struct ChannelType {
    pub(super) name: String,
    pub(super) version: u32,
    pub(super) make: fn() -> Box<dyn ErasedChannel>,
    /// A buffered channel of the given capacity; `None` if its buffer cannot be allocated.
    pub(super) make_buffered: fn(usize) -> Option<Box<dyn ErasedChannel>>,
}

/// The kinds of resumable tasklets and the channel value types of a program, each under a
/// stable name and a version of its own. Build it once at start-up, the same way in the
/// program that saves and the one that resumes (registration order counts), then share it
/// (`Rc<Registry>`) with [`World::new`](super::World::new).
///
/// ```
/// use microthread::pickle::{Cx, PickleError, Registry};
/// fn count(cx: &mut Cx<u32>) -> Result<(), PickleError> {
///     *cx.state_mut() += 1;
///     Ok(())
/// }
/// let mut a = Registry::new();
/// a.register("count", 1, count).unwrap();
/// a.register_channel::<u32>("u32", 1).unwrap();
/// let mut b = Registry::new();
/// b.register("count", 2, count).unwrap(); // another version
/// b.register_channel::<u32>("u32", 1).unwrap();
/// assert_ne!(a.fingerprint(), b.fingerprint());
/// assert!(a.register("count", 1, count).is_err()); // names are unique
/// ```
#[derive(Default)]
pub struct Registry {
    pub(super) kinds: Vec<KindEntry>,
    pub(super) channel_types: Vec<ChannelType>,
    by_type: HashMap<TypeId, u32>,
}

impl Registry {
    /// An empty registry.
    ///
    /// ```
    /// let reg = microthread::pickle::Registry::new();
    /// assert_eq!(reg.fingerprint(), microthread::pickle::Registry::new().fingerprint());
    /// ```
    pub fn new() -> Registry {
        Registry::default()
    }

    fn check_name(&self, name: &str) -> Result<(), PickleError> {
        let taken = self.kinds.iter().any(|k| k.name == name)
            || self.channel_types.iter().any(|c| c.name == name);
        if taken {
            return Err(PickleError::DuplicateName { name: name.into() });
        }
        Ok(())
    }

    /// Registers a kind of resumable tasklet: `body` over a state `S`, under `name` and
    /// `version` (raise the version whenever `S` or the body's meaning changes, so that old
    /// pickles are refused with [`PickleError::Fingerprint`]). A generic body registers once
    /// per instance, each under its own name.
    ///
    /// # Errors
    /// [`PickleError::DuplicateName`].
    ///
    /// ```
    /// use microthread::pickle::{Cx, PickleError, Registry};
    /// fn hold<T: serde::Serialize + serde::de::DeserializeOwned + 'static>(
    ///     _: &mut Cx<T>,
    /// ) -> Result<(), PickleError> {
    ///     Ok(())
    /// }
    /// let mut reg = Registry::new();
    /// reg.register("hold-u8", 1, hold::<u8>).unwrap();
    /// reg.register("hold-string", 1, hold::<String>).unwrap();
    /// ```
    pub fn register<S>(
        &mut self,
        name: &str,
        version: u32,
        body: Body<S>,
    ) -> Result<Kind<S>, PickleError>
    where
        S: Serialize + DeserializeOwned + 'static,
    {
        self.check_name(name)?;
        let index = self.kinds.len() as u32;
        let start: Starter = Box::new(move |world, record, parked| {
            let state: S = {
                let r = record.borrow();
                postcard::from_bytes(&r.checkpoint)?
            };
            start_lazy(world, body, record, state, parked)
        });
        self.kinds.push(KindEntry {
            name: name.into(),
            version,
            start,
        });
        Ok(Kind {
            index,
            body,
            _state: PhantomData,
        })
    }

    /// Registers the value type `T` of channels that worlds hold, under `name` and
    /// `version`.
    ///
    /// # Errors
    /// [`PickleError::DuplicateName`], also when `T` is registered already.
    ///
    /// ```
    /// use microthread::pickle::Registry;
    /// let mut reg = Registry::new();
    /// reg.register_channel::<String>("text", 1).unwrap();
    /// assert!(reg.register_channel::<String>("text-again", 1).is_err());
    /// ```
    pub fn register_channel<T>(&mut self, name: &str, version: u32) -> Result<(), PickleError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        self.check_name(name)?;
        if self.by_type.contains_key(&TypeId::of::<T>()) {
            return Err(PickleError::DuplicateName { name: name.into() });
        }
        let index = self.channel_types.len() as u32;
        self.by_type.insert(TypeId::of::<T>(), index);
        self.channel_types.push(ChannelType {
            name: name.into(),
            version,
            make: || Box::new(Channel::<T>::new()),
            make_buffered: |capacity| {
                BufferedChannel::<T>::try_with_capacity(capacity)
                    .map(|c| Box::new(c) as Box<dyn ErasedChannel>)
            },
        });
        Ok(())
    }

    /// The channel type index of `T`.
    pub(super) fn channel_type_of<T: 'static>(&self) -> Result<u32, PickleError> {
        self.by_type
            .get(&TypeId::of::<T>())
            .copied()
            .ok_or(PickleError::UnregisteredChannelType {
                type_name: std::any::type_name::<T>(),
            })
    }

    /// The fingerprint written into every pickle: a 64-bit FNV-1a hash of the registered
    /// kinds and channel types, names and versions, in registration order.
    ///
    /// ```
    /// use microthread::pickle::Registry;
    /// let mut a = Registry::new();
    /// a.register_channel::<u8>("byte", 1).unwrap();
    /// let mut b = Registry::new();
    /// b.register_channel::<u8>("octet", 1).unwrap();
    /// assert_ne!(a.fingerprint(), b.fingerprint());
    /// ```
    pub fn fingerprint(&self) -> u64 {
        let mut h = Fnv(0xcbf2_9ce4_8422_2325);
        h.write(b"microthread-pickle-kinds");
        h.write(&(self.kinds.len() as u64).to_le_bytes());
        for k in &self.kinds {
            h.write(&(k.name.len() as u64).to_le_bytes());
            h.write(k.name.as_bytes());
            h.write(&k.version.to_le_bytes());
        }
        h.write(&(self.channel_types.len() as u64).to_le_bytes());
        for c in &self.channel_types {
            h.write(&(c.name.len() as u64).to_le_bytes());
            h.write(c.name.as_bytes());
            h.write(&c.version.to_le_bytes());
        }
        h.0
    }
}

struct Fnv(u64);

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}
