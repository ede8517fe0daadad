//! Restoring a world from its pickle ([`World::restore`]): the channels with their settings
//! (a buffered one with its capacity and its buffered values, in order), every tasklet paused and lazy (no stack, no run: see the [module docs](super)), the
//! blocked ones queued again in their order on heap waiters with the values they send,
//! then the channels' closing flags; the ring order is handed back to insert.

use std::cell::RefCell;
use std::rc::Rc;

use super::image::{BodyImage, ChannelKind, Status, WorldImage};
use super::journal::{Pending, Record};
use super::start::ParkedCell;
use super::world::{World, WorldChannel};
use super::{format, PickleError, Registry};
use crate::Tasklet;

/// A restored world: every tasklet of the pickle (in its order) and the ring order.
/// Restored tasklets are paused (Stackless: an unpickled tasklet is not scheduled) except
/// the blocked ones, which wait on their channels again; [`insert_ring`](Self::insert_ring)
/// puts the runnable ones back in the run queue in their order.
///
/// ```
/// use microthread::pickle::{Registry, World};
/// let reg = std::rc::Rc::new(Registry::new());
/// let world = World::new(reg.clone());
/// let t = microthread::spawn(|| ()).unwrap();
/// world.adopt(&t);
/// let copy = World::restore(&reg, &world.pickle().unwrap()).unwrap();
/// assert_eq!(copy.original_ids, [t.id()]);
/// assert_eq!(copy.ring.len(), 1);
/// assert!(copy.tasklets[0].paused() && !copy.world.restorable(&copy.tasklets[0]));
/// # microthread::run().unwrap();
/// ```
pub struct Restored {
    /// The new world.
    pub world: World,
    /// Its tasklets, in the pickle's order.
    pub tasklets: Vec<Tasklet>,
    /// The original tasklets' ids, in the same order.
    pub original_ids: Vec<u64>,
    /// The tasklets that were in the run queue, in run order (all paused now).
    pub ring: Vec<Tasklet>,
}

impl Restored {
    /// Inserts the tasklets of [`ring`](Self::ring) into the run queue, in order: they run
    /// in the order the originals would have.
    ///
    /// # Errors
    /// Those of [`Tasklet::insert`].
    ///
    /// ```
    /// use microthread::pickle::{Registry, World};
    /// let reg = std::rc::Rc::new(Registry::new());
    /// let copy = World::restore(&reg, &World::new(reg.clone()).pickle().unwrap()).unwrap();
    /// copy.insert_ring().unwrap(); // nothing to insert
    /// ```
    pub fn insert_ring(&self) -> crate::Result<()> {
        for t in &self.ring {
            t.insert()?;
        }
        Ok(())
    }

    /// The restored copy of the tasklet whose id was `original`.
    ///
    /// ```
    /// use microthread::pickle::{Registry, World};
    /// let reg = std::rc::Rc::new(Registry::new());
    /// let copy = World::restore(&reg, &World::new(reg.clone()).pickle().unwrap()).unwrap();
    /// assert!(copy.copy_of(1).is_none());
    /// ```
    pub fn copy_of(&self, original: u64) -> Option<&Tasklet> {
        let i = self.original_ids.iter().position(|&id| id == original)?;
        self.tasklets.get(i)
    }
}

/// Decodes and checks a pickle without building anything: the world as plain data.
///
/// # Errors
/// Every [`format::open`] error, [`PickleError::Payload`], and the image's own checks
/// ([`PickleError::UnknownKind`], [`PickleError::MissingTasklet`],
/// [`PickleError::DuplicateTasklet`], [`PickleError::Inconsistent`], ...).
///
/// ```
/// use microthread::pickle::{inspect, PickleError, Registry};
/// assert!(matches!(inspect(&Registry::new(), b"not a pickle"), Err(PickleError::BadMagic)));
/// ```
pub fn inspect(registry: &Registry, bytes: &[u8]) -> Result<WorldImage, PickleError> {
    let payload = format::open(bytes, registry.fingerprint())?;
    let (image, rest): (WorldImage, _) = postcard::take_from_bytes(payload)?;
    if !rest.is_empty() {
        return Err(PickleError::Payload(format!(
            "{} bytes follow the world",
            rest.len()
        )));
    }
    image.validate(registry)?;
    Ok(image)
}

impl World {
    /// Restores a pickled world into this thread; see [`Restored`]. The originals, if they
    /// still exist, are untouched: the copies go on independently.
    ///
    /// Nothing is replayed here: each tasklet replays its journal when it first runs, and
    /// a replay that diverges then ends that tasklet with [`PickleError::Diverged`] as its
    /// panic payload (see *Restore is lazy* in the [module docs](super)).
    ///
    /// # Errors
    /// Those of [`inspect`]; [`PickleError::Payload`] for a state or a value in flight
    /// that does not decode; [`PickleError::Op`] if a tasklet cannot be made (no stack for
    /// a closure tasklet's copy). On error every tasklet made so far is killed.
    ///
    /// ```
    /// use microthread::pickle::{PickleError, Registry, World};
    /// let reg = std::rc::Rc::new(Registry::new());
    /// let mut bytes = World::new(reg.clone()).pickle().unwrap();
    /// let last = bytes.len() - 1;
    /// bytes[last] ^= 0x10; // the payload's last byte
    /// assert!(matches!(World::restore(&reg, &bytes), Err(PickleError::Checksum { .. })));
    /// ```
    pub fn restore(registry: &Rc<Registry>, bytes: &[u8]) -> Result<Restored, PickleError> {
        let mut image = inspect(registry, bytes)?;
        let world = World::new(registry.clone());
        let mut made = Vec::with_capacity(image.tasklets.len());
        let original_ids = image.tasklets.iter().map(|t| t.id).collect();
        let ring = std::mem::take(&mut image.ring);
        match build(&world, image, &mut made) {
            Ok(()) => Ok(Restored {
                ring: ring.iter().map(|&i| made[i as usize].clone()).collect(),
                original_ids,
                tasklets: made,
                world,
            }),
            Err(e) => {
                for t in &made {
                    if t.alive() {
                        let _ = t.kill();
                    }
                }
                Err(e)
            }
        }
    }
}

/// Builds the world from `image`, whose byte strings move into the records.
fn build(world: &World, image: WorldImage, made: &mut Vec<Tasklet>) -> Result<(), PickleError> {
    let inner = &world.inner;
    let registry = &inner.registry;
    {
        let mut chans = inner.channels.borrow_mut();
        for c in &image.channels {
            let ty = &registry.channel_types[c.type_index as usize];
            let chan = match c.kind {
                ChannelKind::Rendezvous => (ty.make)(),
                ChannelKind::Buffered { capacity } => usize::try_from(capacity)
                    .ok()
                    .and_then(ty.make_buffered)
                    .ok_or_else(|| {
                        PickleError::Inconsistent(format!(
                            "a buffer of {capacity} values cannot be allocated"
                        ))
                    })?,
            };
            chan.set_preference(c.preference);
            chan.set_schedule_all(c.schedule_all);
            // Before anything waits on it: the buffered values come out first.
            for v in &c.buffered {
                chan.refill(v)?;
            }
            chans.push(WorldChannel {
                type_index: c.type_index,
                chan,
            });
        }
    }
    let WorldImage {
        channels, tasklets, ..
    } = image;
    let mut cells: Vec<Option<ParkedCell>> = Vec::with_capacity(tasklets.len());
    inner.reserve_members(tasklets.len());
    for t in tasklets {
        let (tasklet, record, cell) = match (t.body, t.status) {
            (_, Status::Dead) => (bound_dead()?, None, None),
            (BodyImage::Closure, _) => (not_restorable(t.id, t.name.clone())?, None, None),
            (
                BodyImage::Resumable {
                    kind,
                    checkpoint,
                    journal,
                },
                _,
            ) => {
                let mut record = Record::new(kind, checkpoint, journal);
                if t.status != Status::Blocked {
                    record.restored = Some(t.status);
                }
                let record = Rc::new(RefCell::new(record));
                let cell = ParkedCell::default();
                let start = &registry.kinds[kind as usize].start;
                (
                    start(inner, record.clone(), cell.clone())?,
                    Some(record),
                    Some(cell),
                )
            }
        };
        if t.name.is_some() {
            tasklet.set_name(t.name.as_deref());
        }
        inner.push_member(tasklet.clone(), record);
        made.push(tasklet);
        cells.push(cell);
    }
    for (ci, c) in channels.iter().enumerate() {
        for (qi, &i) in c.queue.iter().enumerate() {
            let Some(cell) = &cells[i as usize] else {
                continue; // a closure tasklet's value is on its lost stack: it stays paused
            };
            let t = &made[i as usize];
            let value = c.senders.then(|| c.values[qi].as_slice());
            let waiter = inner.channels.borrow()[ci].chan.park(t, value)?;
            *cell.borrow_mut() = Some(waiter);
            let record = inner.members.borrow()[i as usize].record.clone();
            if let Some(r) = record {
                let mut r = r.borrow_mut();
                let op = if c.senders {
                    Pending::Send(ci as u32)
                } else {
                    Pending::Receive(ci as u32)
                };
                // As if it were inside that operation: what pickling it again, or a
                // receiver that takes its value, reads.
                r.expect = Some(op);
                r.pending = op;
                r.pending_value = value.map(<[u8]>::to_vec);
            }
        }
    }
    let chans = inner.channels.borrow();
    for (c, wc) in channels.iter().zip(chans.iter()) {
        if c.closing {
            wc.chan.close();
        }
    }
    Ok(())
}

/// Ends a restored tasklet whose replay diverged from its journal (found when it first
/// runs): as a panic with `e` as its payload, delivered like any tasklet failure.
pub(super) fn fail_restored(e: PickleError) -> ! {
    eprintln!("microthread: {e}");
    std::panic::resume_unwind(Box::new(e))
}

fn no_stack(e: std::io::Error) -> PickleError {
    PickleError::Op(crate::Error::NoStack(e))
}

/// The copy of a dead tasklet: bound, never set up, so not alive.
fn bound_dead() -> Result<Tasklet, PickleError> {
    Tasklet::bound(|| ()).map_err(no_stack)
}

/// The copy of a closure tasklet: running it fails with [`PickleError::NotRestorable`],
/// which ends it as a panic does (delivered to main or the `run()` caller).
fn not_restorable(tasklet: u64, name: Option<String>) -> Result<Tasklet, PickleError> {
    Tasklet::new(move || {
        let e = PickleError::NotRestorable { tasklet, name };
        eprintln!("microthread: {e}");
        std::panic::resume_unwind(Box::new(e))
    })
    .map_err(no_stack)
}
