//! [`World`]: a set of tasklets and the channels they use, pickled together
//! ([`World::pickle`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::rc::Rc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::channels::{BufferedChannelRef, ChannelRef, ErasedChannel, Live, WorldRef};
use super::image::WorldImage;
use super::journal::Record;
use super::registry::Kind;
use super::start::start_resumable;
use super::{format, snapshot, PickleError, Registry};
use crate::channel::{BufferedChannel, Channel};
use crate::{scheduler, Tasklet};

pub(super) struct WorldChannel {
    pub(super) type_index: u32,
    pub(super) chan: Box<dyn ErasedChannel>,
}

pub(super) struct Member {
    pub(super) tasklet: Tasklet,
    /// `None` for a closure tasklet.
    pub(super) record: Option<Rc<RefCell<Record>>>,
}

/// Hashing of tasklet ids (made by this process, never read from a pickle): one
/// multiplication by an odd constant, a bijection that spreads consecutive ids over both
/// the low bits (the bucket) and the high bits (the tag) of the hash.
#[derive(Default, Clone, Copy)]
pub(super) struct IdHashing;

pub(super) struct IdHash(u64);

impl std::hash::BuildHasher for IdHashing {
    type Hasher = IdHash;
    fn build_hasher(&self) -> IdHash {
        IdHash(0)
    }
}

impl std::hash::Hasher for IdHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn write_u64(&mut self, id: u64) {
        self.0 = (self.0 ^ id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// What a world's tasklets share with it.
pub(crate) struct WorldInner {
    pub(super) registry: Rc<Registry>,
    pub(super) channels: RefCell<Vec<WorldChannel>>,
    pub(super) members: RefCell<Vec<Member>>,
    /// Member index by tasklet id.
    pub(super) by_id: RefCell<HashMap<u64, usize, IdHashing>>,
    /// Values received by tasklets that have not resumed from their receive yet, postcard
    /// encoded, by receiver id.
    pub(super) in_transit: RefCell<HashMap<u64, Vec<u8>>>,
    /// The values of blocked `World::send`s (from tasklets outside the world), postcard
    /// encoded, by sender id: what a receiver that takes one but resumes later has received.
    pub(super) outside_sends: RefCell<HashMap<u64, Vec<u8>>>,
}

impl WorldInner {
    /// The handle of the world's channel `r` names, of the kind `R` says.
    pub(super) fn live<T: Send + 'static, R: WorldRef<T>>(
        &self,
        r: R,
    ) -> Result<Live<T>, PickleError> {
        let index = r.index();
        let chans = self.channels.borrow();
        let c = chans
            .get(index as usize)
            .ok_or(PickleError::MissingChannel { index })?;
        let any = c.chan.as_any();
        let live = if R::BUFFERED {
            any.downcast_ref::<BufferedChannel<T>>()
                .cloned()
                .map(Live::Buffered)
        } else {
            any.downcast_ref::<Channel<T>>().cloned().map(Live::Plain)
        };
        live.ok_or(PickleError::WrongChannelType { index })
    }

    /// Room for `n` more members.
    pub(super) fn reserve_members(&self, n: usize) {
        self.members.borrow_mut().reserve(n);
        self.by_id.borrow_mut().reserve(n);
    }

    pub(super) fn push_member(&self, tasklet: Tasklet, record: Option<Rc<RefCell<Record>>>) {
        let mut members = self.members.borrow_mut();
        self.by_id.borrow_mut().insert(tasklet.id(), members.len());
        members.push(Member { tasklet, record });
    }
}

/// A set of tasklets and the channels they use, pickled together: see the
/// [module docs](super). Belongs to its thread (`!Send`):
///
/// ```compile_fail
/// use microthread::pickle::{Registry, World};
/// let world = World::new(std::rc::Rc::new(Registry::new()));
/// std::thread::spawn(move || drop(world));
/// ```
///
/// ```
/// use microthread::pickle::{ChannelRef, Cx, PickleError, Registry, World};
/// use std::rc::Rc;
///
/// fn echo(cx: &mut Cx<ChannelRef<u32>>) -> Result<(), PickleError> {
///     loop {
///         let ch = *cx.state();
///         let v = cx.receive(ch)?;
///         cx.checkpoint()?;
///         cx.send(ch, v + 1)?;
///     }
/// }
/// let mut reg = Registry::new();
/// let kind = reg.register("echo", 1, echo).unwrap();
/// reg.register_channel::<u32>("u32", 1).unwrap();
/// let reg = Rc::new(reg);
/// let world = World::new(reg.clone());
/// let ch = world.channel::<u32>().unwrap();
/// world.spawn(kind, ch).unwrap();
/// microthread::run().unwrap(); // echo waits in receive
/// let bytes = world.pickle().unwrap();
///
/// let copy = World::restore(&reg, &bytes).unwrap();
/// let ch2 = copy.world.get(ch).unwrap(); // the same reference, the restored channel
/// assert_eq!(ch2.balance(), -1); // the copy waits in receive too
/// ch2.send(1).unwrap();
/// assert_eq!(ch2.receive().unwrap(), 2);
/// ```
#[derive(Clone)]
pub struct World {
    pub(super) inner: Rc<WorldInner>,
}

impl World {
    /// An empty world of the kinds and channel types of `registry`.
    ///
    /// ```
    /// use microthread::pickle::{Registry, World};
    /// let world = World::new(std::rc::Rc::new(Registry::new()));
    /// assert!(world.tasklets().is_empty());
    /// ```
    pub fn new(registry: Rc<Registry>) -> World {
        World {
            inner: Rc::new(WorldInner {
                registry,
                channels: RefCell::new(Vec::new()),
                members: RefCell::new(Vec::new()),
                by_id: RefCell::new(HashMap::default()),
                in_transit: RefCell::new(HashMap::new()),
                outside_sends: RefCell::new(HashMap::new()),
            }),
        }
    }

    /// A new channel of the world, for values of a registered type `T`.
    ///
    /// # Errors
    /// [`PickleError::UnregisteredChannelType`].
    ///
    /// ```
    /// use microthread::pickle::{PickleError, Registry, World};
    /// let world = World::new(std::rc::Rc::new(Registry::new()));
    /// assert!(matches!(world.channel::<u8>(), Err(PickleError::UnregisteredChannelType { .. })));
    /// ```
    pub fn channel<T>(&self) -> Result<ChannelRef<T>, PickleError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        let type_index = self.inner.registry.channel_type_of::<T>()?;
        let mut chans = self.inner.channels.borrow_mut();
        let index = chans.len() as u32;
        chans.push(WorldChannel {
            type_index,
            chan: Box::new(Channel::<T>::new()),
        });
        Ok(ChannelRef {
            index,
            _t: PhantomData,
        })
    }

    /// A handle to the world's channel `r`, for any code (a send through it that a
    /// resumable receiver takes but resumes from later cannot be pickled before it resumes:
    /// use [`World::send`]).
    ///
    /// # Errors
    /// [`PickleError::MissingChannel`], [`PickleError::WrongChannelType`].
    ///
    /// ```
    /// # use microthread::pickle::{Registry, World};
    /// # let mut reg = Registry::new();
    /// # reg.register_channel::<u8>("u8", 1).unwrap();
    /// # let world = World::new(std::rc::Rc::new(reg));
    /// let r = world.channel::<u8>().unwrap();
    /// world.get(r).unwrap().set_preference(1);
    /// assert_eq!(world.get(r).unwrap().preference(), 1);
    /// ```
    pub fn get<T: Send + 'static>(&self, r: ChannelRef<T>) -> Result<Channel<T>, PickleError> {
        match self.inner.live(r)? {
            Live::Plain(c) => Ok(c),
            Live::Buffered(_) => Err(PickleError::WrongChannelType { index: r.index }),
        }
    }

    /// A new buffered channel of the world (Go's `make(chan T, capacity)`: see
    /// [`BufferedChannel`]), for values of a registered type `T`. Its pickle holds its
    /// capacity and its buffered values (each serialised with `T`'s serde, as the values of
    /// blocked senders are), and the restore refills the buffer in the same order before it
    /// queues the blocked tasklets again. The world's buffers hold at most
    /// [`format::MAX_BUFFERED`] values together, since a restore allocates each buffer
    /// whole. Capacity 0 is allowed: a rendezvous channel, pickled as buffered.
    ///
    /// # Errors
    /// [`PickleError::UnregisteredChannelType`], [`PickleError::TooMuchBuffer`].
    ///
    /// ```
    /// use microthread::pickle::{BufferedChannelRef, Cx, PickleError, Registry, World};
    /// use std::rc::Rc;
    ///
    /// // Sends 1, 2, 3, ... forever: blocks once the buffer is full.
    /// fn producer(cx: &mut Cx<(BufferedChannelRef<u32>, u32)>) -> Result<(), PickleError> {
    ///     loop {
    ///         let (out, n) = *cx.state();
    ///         cx.send(out, n + 1)?;
    ///         cx.state_mut().1 += 1;
    ///         cx.checkpoint()?;
    ///     }
    /// }
    /// let mut reg = Registry::new();
    /// let kind = reg.register("producer", 1, producer).unwrap();
    /// reg.register_channel::<u32>("u32", 1).unwrap();
    /// let reg = Rc::new(reg);
    /// let world = World::new(reg.clone());
    /// let out = world.buffered_channel::<u32>(2).unwrap();
    /// world.spawn(kind, (out, 0)).unwrap();
    /// microthread::run().unwrap(); // 1 and 2 are buffered; the producer blocks sending 3
    /// let bytes = world.pickle().unwrap();
    ///
    /// let copy = World::restore(&reg, &bytes).unwrap();
    /// let ch = copy.world.get_buffered(out).unwrap();
    /// assert_eq!((ch.capacity(), ch.len(), ch.balance()), (2, 2, 1));
    /// assert_eq!(ch.receive().unwrap(), 1); // 3 moves into the buffer
    /// assert_eq!(ch.receive().unwrap(), 2);
    /// assert_eq!(ch.receive().unwrap(), 3);
    /// # for t in &copy.tasklets { t.kill().unwrap(); }
    /// # for t in world.tasklets() { t.kill().unwrap(); }
    /// ```
    pub fn buffered_channel<T>(&self, capacity: usize) -> Result<BufferedChannelRef<T>, PickleError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        let type_index = self.inner.registry.channel_type_of::<T>()?;
        let mut chans = self.inner.channels.borrow_mut();
        let used: u64 = chans
            .iter()
            .filter_map(|c| c.chan.capacity())
            .map(|c| c as u64)
            .sum();
        let available = format::MAX_BUFFERED.saturating_sub(used);
        if capacity as u64 > available {
            return Err(PickleError::TooMuchBuffer {
                capacity,
                available,
            });
        }
        let index = chans.len() as u32;
        chans.push(WorldChannel {
            type_index,
            chan: Box::new(BufferedChannel::<T>::with_capacity(capacity)),
        });
        Ok(BufferedChannelRef {
            index,
            _t: PhantomData,
        })
    }

    /// A handle to the world's buffered channel `r`, for any code (see [`get`](Self::get)).
    ///
    /// # Errors
    /// [`PickleError::MissingChannel`], [`PickleError::WrongChannelType`].
    ///
    /// ```
    /// # use microthread::pickle::{Registry, World};
    /// # let mut reg = Registry::new();
    /// # reg.register_channel::<u8>("u8", 1).unwrap();
    /// # let world = World::new(std::rc::Rc::new(reg));
    /// let r = world.buffered_channel::<u8>(3).unwrap();
    /// assert_eq!(world.get_buffered(r).unwrap().capacity(), 3);
    /// ```
    pub fn get_buffered<T: Send + 'static>(
        &self,
        r: BufferedChannelRef<T>,
    ) -> Result<BufferedChannel<T>, PickleError> {
        match self.inner.live(r)? {
            Live::Buffered(c) => Ok(c),
            Live::Plain(_) => Err(PickleError::WrongChannelType { index: r.index }),
        }
    }

    /// Sends `value` on the world's channel `r` (a [`ChannelRef`] or a
    /// [`BufferedChannelRef`]) from code that is not a resumable tasklet (main, a closure
    /// tasklet), so that a resumable receiver can be pickled at any point.
    ///
    /// # Errors
    /// The channel's, as [`PickleError::Op`]; those of [`get`](Self::get).
    ///
    /// ```
    /// # use microthread::pickle::{Registry, World};
    /// # let mut reg = Registry::new();
    /// # reg.register_channel::<u8>("u8", 1).unwrap();
    /// # let world = World::new(std::rc::Rc::new(reg));
    /// let r = world.channel::<u8>().unwrap();
    /// let rx = world.get(r).unwrap();
    /// microthread::spawn(move || rx.receive().unwrap()).unwrap();
    /// world.send(r, 3).unwrap();
    /// ```
    pub fn send<T>(&self, r: impl WorldRef<T>, value: T) -> Result<(), PickleError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        let chan = self.inner.live(r)?;
        let carried = self.inner.before_send(&chan, &value)?;
        let me = carried.map(|bytes| {
            let me = scheduler::current().id();
            self.inner.outside_sends.borrow_mut().insert(me, bytes);
            me
        });
        let res = chan.send(value).map_err(|e| PickleError::Op(e.error));
        if let Some(me) = me {
            self.inner.outside_sends.borrow_mut().remove(&me);
        }
        res
    }

    /// Spawns a resumable tasklet of `kind` with initial `state`, at the end of the run
    /// queue, into the world.
    ///
    /// # Errors
    /// [`PickleError::Encode`] (the state does not serialise), or no stack
    /// ([`PickleError::Op`] of [`Error::NoStack`](crate::Error::NoStack)).
    ///
    /// ```
    /// use microthread::pickle::{Cx, PickleError, Registry, World};
    /// fn double(cx: &mut Cx<u32>) -> Result<(), PickleError> {
    ///     *cx.state_mut() *= 2;
    ///     Ok(())
    /// }
    /// let mut reg = Registry::new();
    /// let kind = reg.register("double", 1, double).unwrap();
    /// let world = World::new(std::rc::Rc::new(reg));
    /// let t = world.spawn(kind, 21).unwrap();
    /// assert!(t.scheduled() && world.restorable(&t));
    /// microthread::run().unwrap();
    /// assert!(!t.alive());
    /// ```
    pub fn spawn<S>(&self, kind: Kind<S>, state: S) -> Result<Tasklet, PickleError>
    where
        S: Serialize + DeserializeOwned + 'static,
    {
        let checkpoint =
            postcard::to_allocvec(&state).map_err(|e| PickleError::Encode(e.to_string()))?;
        let record = Rc::new(RefCell::new(Record::new(
            kind.index,
            checkpoint,
            Vec::new(),
        )));
        let t = start_resumable(&self.inner, kind.body, record.clone(), state)?;
        t.insert()?;
        self.inner.push_member(t.clone(), Some(record));
        Ok(t)
    }

    /// Adds a closure tasklet to the world: it is pickled for inspection (id, name, state,
    /// which queue it waits in), and its restored copy is not restorable. Adding one twice
    /// adds it once.
    ///
    /// ```
    /// use microthread::pickle::{Registry, World};
    /// let world = World::new(std::rc::Rc::new(Registry::new()));
    /// let t = microthread::spawn(|| ()).unwrap();
    /// world.adopt(&t);
    /// world.adopt(&t);
    /// assert_eq!(world.tasklets(), [t.clone()]);
    /// assert!(!world.restorable(&t));
    /// # microthread::run().unwrap();
    /// ```
    pub fn adopt(&self, tasklet: &Tasklet) {
        if !self.inner.by_id.borrow().contains_key(&tasklet.id()) {
            self.inner.push_member(tasklet.clone(), None);
        }
    }

    /// The world's tasklets, in the order they joined it.
    ///
    /// ```
    /// use microthread::pickle::{Registry, World};
    /// assert!(World::new(std::rc::Rc::new(Registry::new())).tasklets().is_empty());
    /// ```
    pub fn tasklets(&self) -> Vec<Tasklet> {
        self.inner
            .members
            .borrow()
            .iter()
            .map(|m| m.tasklet.clone())
            .collect()
    }

    /// Whether `tasklet` is a resumable tasklet of this world (Stackless `t.restorable`):
    /// its pickle resumes where it was. False for a closure tasklet and for one not in the
    /// world.
    ///
    /// ```
    /// use microthread::pickle::{Registry, World};
    /// let world = World::new(std::rc::Rc::new(Registry::new()));
    /// assert!(!world.restorable(&microthread::scheduler::current()));
    /// ```
    pub fn restorable(&self, tasklet: &Tasklet) -> bool {
        let Some(&i) = self.inner.by_id.borrow().get(&tasklet.id()) else {
            return false;
        };
        self.inner.members.borrow()[i].record.is_some()
    }

    /// The registry the world was made with.
    ///
    /// ```
    /// use microthread::pickle::{Registry, World};
    /// let reg = std::rc::Rc::new(Registry::new());
    /// assert!(std::rc::Rc::ptr_eq(World::new(reg.clone()).registry(), &reg));
    /// ```
    pub fn registry(&self) -> &Rc<Registry> {
        &self.inner.registry
    }

    /// The world as plain data; see [`pickle`](Self::pickle).
    ///
    /// # Errors
    /// As `pickle`.
    ///
    /// ```
    /// use microthread::pickle::{Registry, World};
    /// let world = World::new(std::rc::Rc::new(Registry::new()));
    /// assert!(world.image().unwrap().tasklets.is_empty());
    /// ```
    pub fn image(&self) -> Result<WorldImage, PickleError> {
        let members = self.inner.members.borrow();
        let records = snapshot::borrow_records(&members);
        Ok(snapshot::gather(&self.inner, &members, &records)?.to_image())
    }

    /// Pickles the world: every tasklet, every channel, the ring order and the queues, in
    /// the [file format](super::format). The world goes on unchanged.
    ///
    /// # Errors
    /// [`PickleError::CurrentTasklet`] (call it from a tasklet outside the world),
    /// [`PickleError::Outsider`], [`PickleError::InTransit`],
    /// [`PickleError::Unpicklable`].
    ///
    /// ```
    /// use microthread::pickle::{inspect, Registry, Status, World};
    /// let reg = std::rc::Rc::new(Registry::new());
    /// let world = World::new(reg.clone());
    /// let t = microthread::Tasklet::new(|| ()).unwrap();
    /// world.adopt(&t);
    /// let image = inspect(&reg, &world.pickle().unwrap()).unwrap();
    /// assert_eq!((image.tasklets[0].id, image.tasklets[0].status), (t.id(), Status::Unrun));
    /// ```
    pub fn pickle(&self) -> Result<Vec<u8>, PickleError> {
        let members = self.inner.members.borrow();
        let records = snapshot::borrow_records(&members);
        let view = snapshot::gather(&self.inner, &members, &records)?;
        // Written straight after the header's room, from the records themselves.
        let out = format::Sealer::with_capacity(32 * members.len());
        let out = postcard::serialize_with_flavor(&view, out)
            .map_err(|e| PickleError::Encode(e.to_string()))?;
        Ok(out.seal(self.inner.registry.fingerprint()))
    }
}
