//! The payload: a world as plain data ([`WorldImage`]), postcard encoded, and the checks that
//! a decoded one describes a possible world before anything is built from it.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::journal::Entry;
use super::{PickleError, Registry};

/// A pickled world, as [`inspect`](super::inspect) shows it.
///
/// ```
/// use microthread::pickle::{inspect, Registry, World};
/// use std::rc::Rc;
/// let mut reg = Registry::new();
/// reg.register_channel::<u8>("u8", 1).unwrap();
/// let reg = Rc::new(reg);
/// let world = World::new(reg.clone());
/// world.channel::<u8>().unwrap();
/// let image = inspect(&reg, &world.pickle().unwrap()).unwrap();
/// assert_eq!(image.channels.len(), 1);
/// assert!(image.tasklets.is_empty());
/// ```
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct WorldImage {
    /// The channels, in the world's order (a [`ChannelRef`](super::ChannelRef) is an index
    /// here).
    pub channels: Vec<ChannelImage>,
    /// The tasklets, in the order they joined the world.
    pub tasklets: Vec<TaskletImage>,
    /// Indices into `tasklets` of the runnable ones, in run order (after the pickler).
    pub ring: Vec<u32>,
}

/// A pickled channel.
///
/// ```
/// use microthread::pickle::{ChannelImage, ChannelKind};
/// let c = ChannelImage {
///     type_index: 0,
///     kind: ChannelKind::Buffered { capacity: 2 },
///     preference: -1,
///     schedule_all: false,
///     closing: false,
///     senders: false,
///     queue: vec![],
///     values: vec![],
///     buffered: vec![vec![7]],
/// };
/// assert_eq!(c.clone(), c);
/// ```
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ChannelImage {
    /// Its value type, an index into the registry's channel types.
    pub type_index: u32,
    /// A rendezvous [`Channel`](crate::channel::Channel) or a
    /// [`BufferedChannel`](crate::channel::BufferedChannel) with its capacity.
    pub kind: ChannelKind,
    /// -1, 0 or 1.
    pub preference: i8,
    /// `schedule_all`.
    pub schedule_all: bool,
    /// `closing`.
    pub closing: bool,
    /// Whether the blocked tasklets are senders (positive balance), not receivers.
    pub senders: bool,
    /// Indices into the world's tasklets of the blocked ones, head first.
    pub queue: Vec<u32>,
    /// For blocked senders, the value each is sending, postcard encoded, in the order of
    /// `queue` (empty bytes for a closure tasklet, whose value is not picklable); empty for
    /// receivers. A restore queues the senders with their values before they run.
    pub values: Vec<Vec<u8>>,
    /// A buffered channel's buffered values, oldest first, postcard encoded (at most its
    /// capacity; only while no receiver waits; all of them while senders wait); empty for
    /// a rendezvous channel. They come out before the blocked senders' values.
    pub buffered: Vec<Vec<u8>>,
}

/// The kind of a pickled channel.
///
/// ```
/// use microthread::pickle::ChannelKind;
/// assert_ne!(ChannelKind::Rendezvous, ChannelKind::Buffered { capacity: 0 });
/// ```
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// A [`Channel`](crate::channel::Channel) ([`World::channel`](super::World::channel)).
    Rendezvous,
    /// A [`BufferedChannel`](crate::channel::BufferedChannel)
    /// ([`World::buffered_channel`](super::World::buffered_channel)).
    Buffered {
        /// How many values its buffer holds at most.
        capacity: u64,
    },
}

/// What a pickled tasklet was doing.
///
/// ```
/// use microthread::pickle::Status;
/// assert_ne!(Status::Blocked, Status::Paused);
/// ```
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Alive, never run (scheduled if the ring lists it, else paused).
    Unrun,
    /// In the ring.
    Runnable,
    /// Alive, started, not in the ring, not blocked.
    Paused,
    /// Blocked on a channel (whose queue lists it).
    Blocked,
    /// Ended.
    Dead,
}

/// A pickled tasklet.
///
/// ```
/// use microthread::pickle::{BodyImage, Status, TaskletImage};
/// let t = TaskletImage { id: 5, name: None, status: Status::Dead, body: BodyImage::Closure };
/// assert_eq!(t.clone(), t);
/// ```
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TaskletImage {
    /// The original tasklet's id.
    pub id: u64,
    /// Its name.
    pub name: Option<String>,
    /// What it was doing.
    pub status: Status,
    /// Its kind and journal, or none.
    pub body: BodyImage,
}

/// The body of a pickled tasklet.
///
/// ```
/// use microthread::pickle::BodyImage;
/// assert_eq!(BodyImage::Closure, BodyImage::Closure);
/// ```
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum BodyImage {
    /// A closure tasklet: pickled for inspection, not restorable.
    Closure,
    /// A resumable tasklet.
    Resumable {
        /// Its kind, an index into the registry's kinds.
        kind: u32,
        /// Its state at its last checkpoint, postcard encoded.
        checkpoint: Vec<u8>,
        /// The results of its operations since then.
        journal: Vec<Entry>,
    },
}

impl WorldImage {
    /// Every check that can refuse the image, before anything is built from it.
    pub(super) fn validate(&self, registry: &Registry) -> Result<(), PickleError> {
        let n = self.tasklets.len();
        // Duplicates by sorting (no hashing of ids an attacker chose); the error names the
        // first repeated id in the pickle's order, found by a second pass if there is one.
        let mut sorted: Vec<u64> = self.tasklets.iter().map(|t| t.id).collect();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            let mut ids = HashSet::with_capacity(n);
            for t in &self.tasklets {
                if !ids.insert(t.id) {
                    return Err(PickleError::DuplicateTasklet { id: t.id });
                }
            }
        }
        drop(sorted);
        for t in &self.tasklets {
            if let BodyImage::Resumable { kind, .. } = t.body {
                if kind as usize >= registry.kinds.len() {
                    return Err(PickleError::UnknownKind { index: kind });
                }
            }
        }
        let index = |i: u32| -> Result<&TaskletImage, PickleError> {
            self.tasklets
                .get(i as usize)
                .ok_or(PickleError::MissingTasklet { index: i })
        };
        let mut placed = vec![false; n];
        for &i in &self.ring {
            let t = index(i)?;
            if !matches!(t.status, Status::Runnable | Status::Unrun) {
                return Err(PickleError::Inconsistent(format!(
                    "tasklet {} is in the ring but {:?}",
                    t.id, t.status
                )));
            }
            if std::mem::replace(&mut placed[i as usize], true) {
                return Err(PickleError::Inconsistent(format!(
                    "tasklet {} is in the ring twice",
                    t.id
                )));
            }
        }
        let mut buffered_total = 0u64;
        for c in &self.channels {
            if c.type_index as usize >= registry.channel_types.len() {
                return Err(PickleError::UnknownChannelType {
                    index: c.type_index,
                });
            }
            if !(-1..=1).contains(&c.preference) {
                return Err(PickleError::Inconsistent(format!(
                    "a channel has preference {}",
                    c.preference
                )));
            }
            c.validate_buffer(&mut buffered_total)?;
            let values_expected = if c.senders { c.queue.len() } else { 0 };
            if c.values.len() != values_expected {
                return Err(PickleError::Inconsistent(format!(
                    "a channel has {} queued tasklets and {} values",
                    c.queue.len(),
                    c.values.len()
                )));
            }
            for &i in &c.queue {
                let t = index(i)?;
                if t.status != Status::Blocked {
                    return Err(PickleError::Inconsistent(format!(
                        "tasklet {} is in a channel queue but {:?}",
                        t.id, t.status
                    )));
                }
                if std::mem::replace(&mut placed[i as usize], true) {
                    return Err(PickleError::Inconsistent(format!(
                        "tasklet {} is queued twice",
                        t.id
                    )));
                }
            }
        }
        for (t, &p) in self.tasklets.iter().zip(&placed) {
            let needs_place = matches!(t.status, Status::Runnable | Status::Blocked);
            if needs_place && !p {
                return Err(PickleError::Inconsistent(format!(
                    "tasklet {} is {:?} but in no ring or queue",
                    t.id, t.status
                )));
            }
        }
        Ok(())
    }
}

impl ChannelImage {
    /// The checks of a channel's kind and buffer: a rendezvous channel buffers nothing; a
    /// buffered one holds at most its capacity, nothing while receivers wait, and is full
    /// while senders wait; the world's capacities add up to at most
    /// [`MAX_BUFFERED`](super::format::MAX_BUFFERED) (`total` adds this one's).
    fn validate_buffer(&self, total: &mut u64) -> Result<(), PickleError> {
        let held = self.buffered.len() as u64;
        let capacity = match self.kind {
            ChannelKind::Rendezvous if held == 0 => return Ok(()),
            ChannelKind::Rendezvous => {
                return Err(PickleError::Inconsistent(format!(
                    "a rendezvous channel holds {held} buffered values"
                )))
            }
            ChannelKind::Buffered { capacity } => capacity,
        };
        *total = total.saturating_add(capacity);
        if *total > super::format::MAX_BUFFERED {
            return Err(PickleError::Inconsistent(format!(
                "the buffered channels' capacities add up to more than {}",
                super::format::MAX_BUFFERED
            )));
        }
        if held > capacity {
            return Err(PickleError::Inconsistent(format!(
                "a channel of capacity {capacity} holds {held} buffered values"
            )));
        }
        if !self.queue.is_empty() {
            if self.senders && held < capacity {
                return Err(PickleError::Inconsistent(format!(
                    "senders wait on a buffered channel with room ({held} of {capacity} values)"
                )));
            }
            if !self.senders && held > 0 {
                return Err(PickleError::Inconsistent(format!(
                    "receivers wait on a buffered channel that holds {held} values"
                )));
            }
        }
        Ok(())
    }
}
