//! [`Cx`]: what a resumable tasklet's body holds. It owns the state, and every operation
//! whose result the body depends on goes through it: it journals the result when live, and
//! gives the journaled result back, touching nothing, when replaying.

use std::any::Any;
use std::cell::RefCell;
use std::rc::{Rc, Weak};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::channels::{sealed::Sealed, WorldRef};
use super::journal::{Op, Pending, Record, UNIT_OK};
use super::world::WorldInner;
use super::PickleError;
use crate::channel::{BufferedChannel, Parked};
use crate::scheduler;

/// The handle of a resumable tasklet's body: its state, and its operations. See the
/// [module docs](super) for what the body must be.
///
/// ```
/// use microthread::pickle::{ChannelRef, Cx, PickleError, Registry, World};
/// use std::rc::Rc;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Summer { input: ChannelRef<u32>, total: u32 }
///
/// fn summer(cx: &mut Cx<Summer>) -> Result<(), PickleError> {
///     loop {
///         let input = cx.state().input;
///         let v = cx.receive(input)?;
///         cx.state_mut().total += v;
///         cx.checkpoint()?; // re-entered here, with this state, after a restore
///     }
/// }
///
/// let mut reg = Registry::new();
/// let kind = reg.register("summer", 1, summer).unwrap();
/// reg.register_channel::<u32>("u32", 1).unwrap();
/// let world = World::new(Rc::new(reg));
/// let input = world.channel::<u32>().unwrap();
/// world.spawn(kind, Summer { input, total: 0 }).unwrap();
/// microthread::run().unwrap(); // it blocks in receive
/// world.send(input, 5).unwrap();
/// assert_eq!(world.get(input).unwrap().balance(), -1); // waiting again
/// ```
pub struct Cx<S> {
    pub(super) state: S,
    pub(super) me: u64,
    pub(super) record: Rc<RefCell<Record>>,
    pub(super) world: Weak<WorldInner>,
    /// A restored tasklet that was blocked: until its replay reaches the operation it was
    /// blocked in, the waiter (a `Box<Parked<T>>`) its restore queued, which holds that
    /// operation's outcome (see [`restore`](super::restore)).
    pub(super) parked: Option<Box<dyn Any>>,
    /// The error thrown into it before it first ran, for that operation.
    pub(super) thrown: Option<crate::Error>,
    /// Whether it is such a tasklet and has not reached that operation yet.
    pub(super) restoring: bool,
}

impl<S: Serialize + DeserializeOwned + 'static> Cx<S> {
    /// The state.
    ///
    /// ```
    /// # use microthread::pickle::{Cx, PickleError};
    /// fn body(cx: &mut Cx<u32>) -> Result<(), PickleError> {
    ///     assert_eq!(*cx.state(), 7);
    ///     Ok(())
    /// }
    /// ```
    pub fn state(&self) -> &S {
        &self.state
    }

    /// The state, to change. Changes are pickled at the next [`checkpoint`](Self::checkpoint).
    ///
    /// ```
    /// # use microthread::pickle::{Cx, PickleError};
    /// fn body(cx: &mut Cx<u32>) -> Result<(), PickleError> {
    ///     *cx.state_mut() += 1;
    ///     cx.checkpoint()
    /// }
    /// ```
    pub fn state_mut(&mut self) -> &mut S {
        &mut self.state
    }

    /// The id of the tasklet (of this run: a restored copy has a new one).
    ///
    /// ```
    /// # use microthread::pickle::{Cx, PickleError};
    /// fn body(cx: &mut Cx<()>) -> Result<(), PickleError> {
    ///     assert_eq!(cx.id(), microthread::scheduler::current().id());
    ///     Ok(())
    /// }
    /// ```
    pub fn id(&self) -> u64 {
        self.me
    }

    /// Whether the body is replaying its journal (after a restore): its operations touch
    /// nothing and give back the journaled results.
    ///
    /// ```
    /// # use microthread::pickle::{Cx, PickleError};
    /// fn body(cx: &mut Cx<()>) -> Result<(), PickleError> {
    ///     if !cx.replaying() {
    ///         println!("live");
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub fn replaying(&self) -> bool {
        self.record.borrow().replaying()
    }

    fn world(&self) -> Result<Rc<WorldInner>, PickleError> {
        self.world.upgrade().ok_or(PickleError::WorldGone)
    }

    /// Captures the state: a restore re-enters the body from its beginning with this state,
    /// and the journal starts empty again.
    ///
    /// # Errors
    /// [`PickleError::Encode`] if the state does not serialise; [`PickleError::Diverged`]
    /// if it is reached while replaying (the journal ends at the next checkpoint in a
    /// deterministic body).
    ///
    /// ```
    /// # use microthread::pickle::{Cx, PickleError};
    /// fn body(cx: &mut Cx<Vec<u8>>) -> Result<(), PickleError> {
    ///     cx.state_mut().push(1);
    ///     cx.checkpoint()
    /// }
    /// ```
    pub fn checkpoint(&mut self) -> Result<(), PickleError> {
        let mut r = self.record.borrow_mut();
        if r.replaying() {
            return Err(PickleError::Diverged {
                tasklet: self.me,
                detail: format!(
                    "a checkpoint with {} journal entries still to replay",
                    r.journal.len() - r.cursor
                ),
            });
        }
        r.go_live(self.me, Pending::None)?;
        r.checkpoint =
            postcard::to_allocvec(&self.state).map_err(|e| PickleError::Encode(e.to_string()))?;
        r.journal.clear();
        r.cursor = 0;
        Ok(())
    }

    /// Runs `f` and journals its result; when replaying, returns the journaled result
    /// without running `f`. Use it for everything not deterministic (the time, random
    /// numbers, input) and for output that must not happen twice (`f` returning `()`).
    ///
    /// # Errors
    /// [`PickleError::Encode`], [`PickleError::Diverged`], [`PickleError::Payload`].
    ///
    /// ```
    /// # use microthread::pickle::{Cx, PickleError};
    /// fn body(cx: &mut Cx<u64>) -> Result<(), PickleError> {
    ///     let now = cx.record(|| std::time::SystemTime::now()
    ///         .duration_since(std::time::UNIX_EPOCH).unwrap().as_secs())?;
    ///     cx.record(|| println!("started at {now}"))?; // printed once, not on replay
    ///     Ok(())
    /// }
    /// ```
    pub fn record<R: Serialize + DeserializeOwned>(
        &mut self,
        f: impl FnOnce() -> R,
    ) -> Result<R, PickleError> {
        if let Some(r) = self.record.borrow_mut().replay::<R>(self.me, Op::Record) {
            return r;
        }
        self.record.borrow_mut().go_live(self.me, Pending::None)?;
        let v = f();
        self.record.borrow_mut().append(Op::Record, Ok(&v))?;
        Ok(v)
    }

    /// A unit operation: replayed, or run live with `pending` set while inside.
    fn unit_op(
        &mut self,
        op: Op,
        pending: Pending,
        live: impl FnOnce() -> crate::Result<()>,
    ) -> Result<(), PickleError> {
        if let Some(r) = self.record.borrow_mut().replay::<()>(self.me, op) {
            return r;
        }
        {
            let mut rec = self.record.borrow_mut();
            rec.go_live(self.me, pending)?;
            rec.pending = pending;
        }
        let res = live();
        let mut rec = self.record.borrow_mut();
        rec.pending = Pending::None;
        rec.append(op, res.as_ref().map(|_| &()))?;
        res.map_err(PickleError::Op)
    }

    /// [`scheduler::schedule`], journaled.
    ///
    /// # Errors
    /// Those of `schedule`, as [`PickleError::Op`].
    ///
    /// ```
    /// # use microthread::pickle::{Cx, PickleError};
    /// fn body(cx: &mut Cx<()>) -> Result<(), PickleError> {
    ///     cx.schedule()
    /// }
    /// ```
    pub fn schedule(&mut self) -> Result<(), PickleError> {
        self.unit_op(Op::Schedule, Pending::Schedule, scheduler::schedule)
    }

    /// [`scheduler::schedule_remove`], journaled: the tasklet pauses until it is
    /// inserted again.
    ///
    /// # Errors
    /// Those of `schedule_remove`, as [`PickleError::Op`].
    ///
    /// ```
    /// # use microthread::pickle::{Cx, PickleError};
    /// fn body(cx: &mut Cx<()>) -> Result<(), PickleError> {
    ///     cx.schedule_remove()
    /// }
    /// ```
    pub fn schedule_remove(&mut self) -> Result<(), PickleError> {
        self.unit_op(
            Op::ScheduleRemove,
            Pending::ScheduleRemove,
            scheduler::schedule_remove,
        )
    }

    /// [`scheduler::tick`], journaled: a safe point where a watchdog may interrupt.
    ///
    /// # Errors
    /// Those of `tick`, as [`PickleError::Op`].
    ///
    /// ```
    /// # use microthread::pickle::{Cx, PickleError};
    /// fn body(cx: &mut Cx<u64>) -> Result<(), PickleError> {
    ///     for _ in 0..10 { *cx.state_mut() += 1; cx.tick()?; }
    ///     Ok(())
    /// }
    /// ```
    pub fn tick(&mut self) -> Result<(), PickleError> {
        self.unit_op(Op::Tick, Pending::Tick, scheduler::tick)
    }

    /// Sends `value` on the world's channel `ch` (a [`ChannelRef`](super::ChannelRef) or a
    /// [`BufferedChannelRef`](super::BufferedChannelRef)), journaled. When replaying, the
    /// value was delivered before the pickle and is dropped.
    ///
    /// # Errors
    /// The channel's errors as [`PickleError::Op`] (the value is dropped);
    /// [`PickleError::MissingChannel`], [`PickleError::WrongChannelType`],
    /// [`PickleError::WorldGone`], [`PickleError::Diverged`].
    ///
    /// ```
    /// # use microthread::pickle::{ChannelRef, Cx, PickleError};
    /// fn body(cx: &mut Cx<ChannelRef<u32>>) -> Result<(), PickleError> {
    ///     let out = *cx.state();
    ///     cx.send(out, 42)
    /// }
    /// ```
    pub fn send<T>(&mut self, ch: impl WorldRef<T>, value: T) -> Result<(), PickleError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        if let Some(r) = self.record.borrow_mut().replay::<()>(self.me, Op::Send) {
            return r;
        }
        if let Some(parked) = self.parked.take() {
            // The replay reached the send it was restored in: `value` is the one the
            // restore queued (already delivered, or still in the waiter).
            drop(value);
            let op = Pending::Send(ch.index());
            let res = if has_buffer(&ch) {
                self.finish_parked(parked, op, |p: Box<Parked<T, BufferedChannel<T>>>, e| {
                    p.finish_send(e)
                })?
            } else {
                self.finish_parked(parked, op, |p: Box<Parked<T>>, e| p.finish_send(e))?
            };
            let mut rec = self.record.borrow_mut();
            rec.pending = Pending::None;
            rec.pending_value = None;
            rec.append(Op::Send, res.as_ref().map(|_| &()))?;
            return res.map_err(PickleError::Op);
        }
        let world = self.world()?;
        let chan = world.live(ch)?;
        let carried = world.before_send(&chan, &value)?;
        {
            let mut rec = self.record.borrow_mut();
            rec.go_live(self.me, Pending::Send(ch.index()))?;
            rec.pending = Pending::Send(ch.index());
            rec.pending_value = carried;
        }
        drop(world);
        let res = chan.send(value).map_err(|e| e.error);
        let mut rec = self.record.borrow_mut();
        rec.pending = Pending::None;
        rec.pending_value = None;
        rec.append(Op::Send, res.as_ref().map(|_| &()))?;
        res.map_err(PickleError::Op)
    }

    /// Receives from the world's channel `ch` (a [`ChannelRef`](super::ChannelRef) or a
    /// [`BufferedChannelRef`](super::BufferedChannelRef)), journaled.
    ///
    /// # Errors
    /// The channel's errors as [`PickleError::Op`]; [`PickleError::MissingChannel`],
    /// [`PickleError::WrongChannelType`], [`PickleError::WorldGone`],
    /// [`PickleError::Diverged`].
    ///
    /// ```
    /// # use microthread::pickle::{ChannelRef, Cx, PickleError};
    /// fn body(cx: &mut Cx<ChannelRef<u32>>) -> Result<(), PickleError> {
    ///     let input = *cx.state();
    ///     let v = cx.receive(input)?;
    ///     assert!(v < 100);
    ///     Ok(())
    /// }
    /// ```
    pub fn receive<T>(&mut self, ch: impl WorldRef<T>) -> Result<T, PickleError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        if let Some(r) = self.record.borrow_mut().replay::<T>(self.me, Op::Receive) {
            return r;
        }
        if let Some(parked) = self.parked.take() {
            let op = Pending::Receive(ch.index());
            let res = if has_buffer(&ch) {
                self.finish_parked(parked, op, |p: Box<Parked<T, BufferedChannel<T>>>, e| {
                    p.finish_receive(e)
                })?
            } else {
                self.finish_parked(parked, op, |p: Box<Parked<T>>, e| p.finish_receive(e))?
            };
            if let Ok(world) = self.world() {
                world.after_receive(self.me);
            }
            let mut rec = self.record.borrow_mut();
            rec.pending = Pending::None;
            rec.append(Op::Receive, res.as_ref())?;
            return res.map_err(PickleError::Op);
        }
        let world = self.world()?;
        let chan = world.live(ch)?;
        {
            let mut rec = self.record.borrow_mut();
            rec.go_live(self.me, Pending::Receive(ch.index()))?;
            rec.pending = Pending::Receive(ch.index());
        }
        world.before_receive(&chan, self.me);
        let res = chan.receive();
        world.after_receive(self.me);
        drop(world);
        let mut rec = self.record.borrow_mut();
        rec.pending = Pending::None;
        rec.append(Op::Receive, res.as_ref())?;
        res.map_err(PickleError::Op)
    }

    /// The first live operation of a restored blocked tasklet, `op`: it must be the one it
    /// was blocked in (else [`PickleError::Diverged`]); its outcome is the parked waiter's.
    fn finish_parked<P: 'static, R>(
        &mut self,
        parked: Box<dyn Any>,
        op: Pending,
        finish: impl FnOnce(Box<P>, Option<crate::Error>) -> R,
    ) -> Result<R, PickleError> {
        self.record.borrow_mut().go_live(self.me, op)?;
        self.restoring = false;
        let parked = parked.downcast::<P>().map_err(|_| PickleError::Diverged {
            tasklet: self.me,
            detail: format!(
                "its replay ended in {op:?} with another value type than it was blocked with"
            ),
        })?;
        Ok(finish(parked, self.thrown.take()))
    }

    /// Sends every item in order through [`send`](Self::send); returns how many were sent.
    /// A tasklet blocked inside it is resumable like any sender.
    ///
    /// # Errors
    /// The first failed send's.
    ///
    /// ```
    /// # use microthread::pickle::{ChannelRef, Cx, PickleError};
    /// fn body(cx: &mut Cx<ChannelRef<u32>>) -> Result<(), PickleError> {
    ///     let out = *cx.state();
    ///     assert_eq!(cx.send_sequence(out, [1, 2, 3])?, 3);
    ///     Ok(())
    /// }
    /// ```
    pub fn send_sequence<T, I>(
        &mut self,
        ch: impl WorldRef<T>,
        items: I,
    ) -> Result<usize, PickleError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = T>,
    {
        let mut n = 0;
        for item in items {
            self.send(ch, item)?;
            n += 1;
        }
        Ok(n)
    }
}

/// The journal entry that completes an operation a runnable tasklet is suspended in after
/// its effect happened (see `World::pickle`).
/// Whether `ch` names a buffered channel (whose restored waiters are
/// `Parked<T, BufferedChannel<T>>`).
fn has_buffer<R: Sealed>(_ch: &R) -> bool {
    R::BUFFERED
}

pub(super) fn completion(op: Op) -> super::journal::Entry {
    super::journal::Entry {
        op,
        data: UNIT_OK.to_vec(),
    }
}
