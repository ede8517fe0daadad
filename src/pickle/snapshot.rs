//! Taking a world's picture: what [`World::image`](super::World::image) and
//! [`World::pickle`](super::World::pickle) read of the live world.
//!
//! Both go through one [`View`]: the world as the [`WorldImage`] it describes, but borrowing
//! the tasklets' checkpoints, journals and sent values from their records instead of copying
//! them. The view serialises exactly as that image does (same fields, same order, same serde
//! calls; byte strings through `serialize_bytes`, which postcard writes as it writes a
//! sequence of `u8`), so `pickle` writes the payload straight from the live records into the
//! output, and `image` is the view made owned.
//!
//! A channel's queue order is read without walking the queue: the waiters' blocking
//! episodes are numbered by one counter per thread as they queue
//! (`Scheduler::new_block_epoch`), so sorting a channel's blocked members by episode gives
//! its queue, head first. Walking it instead chases one link per waiter through the
//! waiters' own stack pages, a dependent cache and TLB miss each. Where the members do not
//! account for every queued waiter (a tasklet outside the world waits there), the queue is
//! walked, to name it.

use std::cell::Ref;
use std::collections::HashMap;

use serde::ser::{SerializeStruct, SerializeStructVariant};
use serde::{Serialize, Serializer};

use super::image::{BodyImage, ChannelImage, ChannelKind, Status, TaskletImage, WorldImage};
use super::journal::{Entry, Op, Pending, Record};
use super::world::{IdHashing, Member, WorldInner};
use super::PickleError;
use crate::{scheduler, Tasklet};

/// The world as its image, borrowing from the records of `'r`.
pub(super) struct View<'r> {
    channels: Vec<ChannelView<'r>>,
    tasklets: Vec<TaskletView<'r>>,
    ring: Vec<u32>,
}

struct ChannelView<'r> {
    type_index: u32,
    kind: ChannelKind,
    preference: i8,
    schedule_all: bool,
    closing: bool,
    senders: bool,
    queue: Vec<u32>,
    values: Vec<&'r [u8]>,
    /// Encoded here (a buffer's values live in the channel, not in a record).
    buffered: Vec<Vec<u8>>,
}

struct TaskletView<'r> {
    id: u64,
    name: Option<String>,
    status: Status,
    body: BodyView<'r>,
}

enum BodyView<'r> {
    Closure,
    Resumable {
        kind: u32,
        checkpoint: &'r [u8],
        journal: &'r [Entry],
        /// The completion of the operation it is suspended in, where that has happened (see
        /// [`completed`]): the journal's last entry in the image.
        completed: Option<Entry>,
    },
}

/// The members' records, each borrowed for as long as a view of them lives; `None` for a
/// closure tasklet (and for a record borrowed elsewhere, which is found when it is read).
pub(super) fn borrow_records(members: &[Member]) -> Vec<Option<Ref<'_, Record>>> {
    members
        .iter()
        .map(|m| m.record.as_ref().and_then(|r| r.try_borrow().ok()))
        .collect()
}

/// Gathers the view of `world`, whose members are `members` and their borrowed records
/// `records` (from [`borrow_records`]). Every check that can refuse the pickle is made here.
pub(super) fn gather<'r>(
    world: &WorldInner,
    members: &[Member],
    records: &'r [Option<Ref<'_, Record>>],
) -> Result<View<'r>, PickleError> {
    let me = scheduler::current();
    let by_id = world.by_id.borrow();
    let mut ring = Vec::new();
    let mut n = me.next();
    while let Some(t) = n.filter(|t| *t != me) {
        if let Some(&i) = by_id.get(&t.id()) {
            ring.push(i as u32);
        }
        n = t.next();
    }
    let queues = queues(world, members, &by_id)?;
    let mut queued = vec![false; members.len()];
    let chans = world.channels.borrow();
    let mut channels = Vec::with_capacity(chans.len());
    for (ci, (c, queue)) in chans.iter().zip(queues).enumerate() {
        let ch = &c.chan;
        let senders = ch.balance() > 0;
        let mut values = Vec::new();
        for &i in &queue {
            queued[i as usize] = true;
            if senders {
                // A resumable sender blocked in its Cx carries its value's bytes; a
                // closure tasklet's value is not picklable (it comes back paused).
                let bytes = records[i as usize]
                    .as_ref()
                    .and_then(|r| r.pending_value.as_deref())
                    .unwrap_or_default();
                values.push(bytes);
            }
        }
        let kind = match ch.capacity() {
            None => ChannelKind::Rendezvous,
            Some(capacity) => ChannelKind::Buffered {
                capacity: capacity as u64,
            },
        };
        channels.push(ChannelView {
            type_index: c.type_index,
            kind,
            preference: ch.preference(),
            schedule_all: ch.schedule_all(),
            closing: ch.closing(),
            senders,
            queue,
            values,
            buffered: ch.buffered(ci as u32)?,
        });
    }
    let in_transit = world.in_transit.borrow();
    let mut tasklets = Vec::with_capacity(members.len());
    for (i, m) in members.iter().enumerate() {
        let t = &m.tasklet;
        let id = t.id();
        if t.is_current() {
            return Err(PickleError::CurrentTasklet { id });
        }
        let record = match (&m.record, &records[i]) {
            (None, _) => None,
            (Some(_), Some(r)) => Some(r),
            (Some(_), None) => return Err(PickleError::Unpicklable {
                tasklet: id,
                why:
                    "its journal is in use (the pickle was made from inside one of its operations)",
            }),
        };
        let status = if !t.alive() {
            Status::Dead
        } else if t.sleeping() {
            return Err(PickleError::Unpicklable {
                tasklet: id,
                why: "it sleeps",
            });
        } else if t.blocked() {
            if !queued[i] {
                return Err(PickleError::Unpicklable {
                    tasklet: id,
                    why: "it is blocked on a channel outside its world",
                });
            }
            Status::Blocked
        } else if !t.started() {
            // A restored tasklet that has not run since is what it was (its journal
            // holds the completion of what it was suspended in), runnable or paused
            // as it is now.
            match record.and_then(|r| r.restored) {
                Some(Status::Runnable | Status::Paused) if t.scheduled() => Status::Runnable,
                Some(Status::Runnable | Status::Paused) => Status::Paused,
                _ => Status::Unrun,
            }
        } else if t.scheduled() {
            Status::Runnable
        } else {
            Status::Paused
        };
        let body = match record {
            None => BodyView::Closure,
            Some(r) => {
                let completed = match status {
                    Status::Runnable | Status::Paused if r.restored.is_some() => None,
                    Status::Runnable | Status::Paused => {
                        completed(id, status, r.pending, &in_transit)?
                    }
                    Status::Blocked
                        if !matches!(r.pending, Pending::Send(_) | Pending::Receive(_)) =>
                    {
                        return Err(PickleError::Unpicklable {
                            tasklet: id,
                            why: "it is blocked in a channel call not made through its Cx",
                        })
                    }
                    _ => None,
                };
                BodyView::Resumable {
                    kind: r.kind,
                    checkpoint: &r.checkpoint,
                    journal: &r.journal,
                    completed,
                }
            }
        };
        tasklets.push(TaskletView {
            id,
            name: t.name(),
            status,
            body,
        });
    }
    Ok(View {
        channels,
        tasklets,
        ring,
    })
}

/// Each world channel's queue as member indices, head first; an error names a queued
/// tasklet that is not a member.
fn queues(
    world: &WorldInner,
    members: &[Member],
    by_id: &HashMap<u64, usize, IdHashing>,
) -> Result<Vec<Vec<u32>>, PickleError> {
    let chans = world.channels.borrow();
    let mut index: HashMap<usize, u32, IdHashing> =
        HashMap::with_capacity_and_hasher(chans.len(), IdHashing);
    for (ci, c) in chans.iter().enumerate() {
        index.insert(c.chan.address(), ci as u32);
    }
    // (blocking episode, member) of each member blocked on a world channel, by channel.
    let mut blocked: Vec<Vec<(u64, u32)>> = vec![Vec::new(); chans.len()];
    for (i, m) in members.iter().enumerate() {
        if let Some((address, epoch)) = blocked_on_channel(&m.tasklet) {
            if let Some(&ci) = index.get(&address) {
                blocked[ci as usize].push((epoch, i as u32));
            }
        }
    }
    let mut queues = Vec::with_capacity(chans.len());
    for (ci, (c, mut b)) in chans.iter().zip(blocked).enumerate() {
        let queue = if b.len() == c.chan.balance().unsigned_abs() {
            // Every queued waiter is a member of this thread (a member blocked on the
            // channel is in its queue): their episodes give the queue's order.
            b.sort_unstable_by_key(|&(epoch, _)| epoch);
            let queue: Vec<u32> = b.into_iter().map(|(_, i)| i).collect();
            debug_assert_eq!(
                walked(c.chan.queue(), by_id, ci).ok(),
                Some(queue.clone()),
                "a channel's queue order differs from its waiters' blocking episodes"
            );
            queue
        } else {
            walked(c.chan.queue(), by_id, ci)?
        };
        queues.push(queue);
    }
    Ok(queues)
}

/// The address of the channel `t` is blocked on (sending or receiving, not asleep) and its
/// blocking episode.
fn blocked_on_channel(t: &Tasklet) -> Option<(usize, u64)> {
    let inner = &t.inner;
    match inner.blocked.get() {
        1 | -1 => inner
            .blocked_on
            .get()
            .map(|b| (b as *const () as usize, inner.block_epoch.get())),
        _ => None,
    }
}

/// The member indices of the tasklets `ids` queued on channel `ci`, in order; an error for
/// the first that is not a member.
fn walked(
    ids: Vec<u64>,
    by_id: &HashMap<u64, usize, IdHashing>,
    ci: usize,
) -> Result<Vec<u32>, PickleError> {
    ids.into_iter()
        .map(|id| {
            by_id
                .get(&id)
                .map(|&i| i as u32)
                .ok_or(PickleError::Outsider {
                    tasklet: id,
                    channel: ci as u32,
                })
        })
        .collect()
}

/// The result of the operation a runnable or paused resumable tasklet is suspended in, to
/// append to its journal, if its effect has happened; `None` if the operation is to run
/// again.
///
/// A runnable tasklet inside an operation has had its effect: its schedule yielded, its
/// send was taken, its receive got a value (kept in `in_transit`). A paused one inside
/// `schedule_remove` has removed itself; inside another operation it was interrupted by a
/// watchdog at the operation's safe point, before any effect (or removed after a
/// receive, whose value is in `in_transit`).
fn completed(
    id: u64,
    status: Status,
    pending: Pending,
    in_transit: &HashMap<u64, Vec<u8>>,
) -> Result<Option<Entry>, PickleError> {
    let runnable = status == Status::Runnable;
    Ok(match pending {
        Pending::None => {
            return Err(PickleError::Unpicklable {
                tasklet: id,
                why: "it is suspended outside its Cx (a scheduler or channel call not made through the pickle layer)",
            })
        }
        Pending::Receive(_) => match in_transit.get(&id) {
            Some(v) => {
                let mut data = Vec::with_capacity(v.len() + 1);
                data.push(0); // Ok
                data.extend_from_slice(v);
                Some(Entry {
                    op: Op::Receive,
                    data,
                })
            }
            None if runnable => return Err(PickleError::InTransit { tasklet: id }),
            None => None,
        },
        Pending::ScheduleRemove => Some(super::cx::completion(Op::ScheduleRemove)),
        Pending::Schedule if runnable => Some(super::cx::completion(Op::Schedule)),
        Pending::Send(_) if runnable => Some(super::cx::completion(Op::Send)),
        Pending::Tick if runnable => Some(super::cx::completion(Op::Tick)),
        Pending::Schedule | Pending::Send(_) | Pending::Tick => None,
    })
}

impl View<'_> {
    /// The image the view describes, owned.
    pub(super) fn to_image(&self) -> WorldImage {
        WorldImage {
            channels: self
                .channels
                .iter()
                .map(|c| ChannelImage {
                    type_index: c.type_index,
                    kind: c.kind,
                    preference: c.preference,
                    schedule_all: c.schedule_all,
                    closing: c.closing,
                    senders: c.senders,
                    queue: c.queue.clone(),
                    values: c.values.iter().map(|v| v.to_vec()).collect(),
                    buffered: c.buffered.clone(),
                })
                .collect(),
            tasklets: self
                .tasklets
                .iter()
                .map(|t| TaskletImage {
                    id: t.id,
                    name: t.name.clone(),
                    status: t.status,
                    body: match &t.body {
                        BodyView::Closure => BodyImage::Closure,
                        BodyView::Resumable {
                            kind,
                            checkpoint,
                            journal,
                            completed,
                        } => BodyImage::Resumable {
                            kind: *kind,
                            checkpoint: checkpoint.to_vec(),
                            journal: journal.iter().chain(completed).cloned().collect(),
                        },
                    },
                })
                .collect(),
            ring: self.ring.clone(),
        }
    }
}

// The serialisations below make, field by field, the serde calls that the derives of the
// image's types make (postcard writes no names: only the order and the calls matter); a
// test checks that the bytes are the same (`pickle_matches_the_image`).

/// A byte string: `serialize_bytes`, one copy, where a `Vec<u8>` serialises byte by byte;
/// postcard writes both as a length and the bytes.
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// An [`Entry`] with its data as a byte string.
struct EntryView<'a>(&'a Entry);

impl Serialize for EntryView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Entry", 2)?;
        st.serialize_field("op", &self.0.op)?;
        st.serialize_field("data", &Bytes(&self.0.data))?;
        st.end()
    }
}

impl Serialize for View<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("WorldImage", 3)?;
        st.serialize_field("channels", &self.channels)?;
        st.serialize_field("tasklets", &self.tasklets)?;
        st.serialize_field("ring", &self.ring)?;
        st.end()
    }
}

impl Serialize for ChannelView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("ChannelImage", 9)?;
        st.serialize_field("type_index", &self.type_index)?;
        st.serialize_field("kind", &self.kind)?;
        st.serialize_field("preference", &self.preference)?;
        st.serialize_field("schedule_all", &self.schedule_all)?;
        st.serialize_field("closing", &self.closing)?;
        st.serialize_field("senders", &self.senders)?;
        st.serialize_field("queue", &self.queue)?;
        st.serialize_field("values", &Seq(self.values.iter().map(|v| Bytes(v))))?;
        st.serialize_field("buffered", &Seq(self.buffered.iter().map(|v| Bytes(v))))?;
        st.end()
    }
}

impl Serialize for TaskletView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("TaskletImage", 4)?;
        st.serialize_field("id", &self.id)?;
        st.serialize_field("name", &self.name)?;
        st.serialize_field("status", &self.status)?;
        st.serialize_field("body", &self.body)?;
        st.end()
    }
}

impl Serialize for BodyView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            BodyView::Closure => s.serialize_unit_variant("BodyImage", 0, "Closure"),
            BodyView::Resumable {
                kind,
                checkpoint,
                journal,
                completed,
            } => {
                let mut st = s.serialize_struct_variant("BodyImage", 1, "Resumable", 3)?;
                st.serialize_field("kind", kind)?;
                st.serialize_field("checkpoint", &Bytes(checkpoint))?;
                let entries = journal.iter().chain(completed).map(EntryView);
                st.serialize_field("journal", &Seq(entries))?;
                st.end()
            }
        }
    }
}

/// A sequence of known length from an iterator that can be cloned (serialised once).
struct Seq<I>(I);

impl<I> Serialize for Seq<I>
where
    I: Iterator + Clone,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.clone())
    }
}
