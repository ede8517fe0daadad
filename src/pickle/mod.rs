//! Pickling: tasklets and channels written to bytes and resumed exactly where they were,
//! in another thread or another process (Stackless reference §5).
//!
//! Native stacks cannot be serialised, so a tasklet that is to be resumed is written the
//! way durable-execution engines write workflows: a **resumable tasklet** runs a body that
//! is a deterministic function of a serde-serialisable state and of the results of its
//! operations, made through its [`Cx`]. Its state is captured at its start and at each
//! [`Cx::checkpoint`]; the results of its operations since then are journaled. Restoring
//! re-enters the body from its beginning with the checkpointed state and feeds it the
//! journaled results, touching no channel and not the ring, until the journal runs out at
//! the operation it was suspended in; from there it runs live. A deterministic body thus
//! arrives exactly where it was pickled.
//!
//! A **world** ([`World`]) is a set of tasklets and the channels they use, pickled together
//! ([`World::pickle`]) and restored together ([`World::restore`]): the same ring order, the
//! blocked tasklets queued again on their channels in FIFO order with the values they were
//! sending, paused tasklets paused, each channel's preference, `schedule_all` and closing.
//! A channel inside a state is a [`ChannelRef`], serialised as its index in the world, so
//! it comes back as the restored channel. Kinds and channel value types are registered in a
//! [`Registry`] under stable names and versions; the pickle carries their fingerprint.
//!
//! A world's channels are rendezvous [`Channel`](crate::Channel)s ([`World::channel`], a
//! [`ChannelRef`]) or [`BufferedChannel`](crate::channel::BufferedChannel)s
//! ([`World::buffered_channel`] with its capacity, a [`BufferedChannelRef`]; one index space
//! for both). A buffered channel's pickle holds its capacity and its buffered values, oldest
//! first, each serialised with the registered type's serde; the restore refills the buffer
//! before it queues the blocked tasklets again (senders wait only on a full buffer,
//! receivers only on an empty one), so the values come out in the order they would have:
//! the buffered ones, then the blocked senders'. [`Cx::send`], [`Cx::receive`] and
//! [`World::send`] take either reference ([`WorldRef`]).
//!
//! ```
//! use microthread::pickle::{ChannelRef, Cx, PickleError, Registry, World};
//! use std::rc::Rc;
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Doubler { input: ChannelRef<u32>, output: ChannelRef<u32>, seen: u32 }
//!
//! // Re-entered from the top after a restore: the loop head is where the state says all.
//! fn doubler(cx: &mut Cx<Doubler>) -> Result<(), PickleError> {
//!     loop {
//!         let Doubler { input, output, .. } = *cx.state();
//!         let v = cx.receive(input)?;
//!         cx.send(output, v * 2)?;
//!         cx.state_mut().seen += 1;
//!         cx.checkpoint()?;
//!     }
//! }
//!
//! let mut reg = Registry::new();
//! let kind = reg.register("doubler", 1, doubler).unwrap();
//! reg.register_channel::<u32>("u32", 1).unwrap();
//! let reg = Rc::new(reg);
//!
//! let world = World::new(reg.clone());
//! let (input, output) = (world.channel().unwrap(), world.channel().unwrap());
//! world.spawn(kind, Doubler { input, output, seen: 0 }).unwrap();
//! world.send(input, 5).unwrap(); // the doubler takes it and blocks sending 10
//! let bytes = world.pickle().unwrap();
//!
//! // Elsewhere (another thread, another process): the doubler is blocked sending 10 again.
//! let copy = World::restore(&reg, &bytes).unwrap();
//! let out = copy.world.get(output).unwrap();
//! assert_eq!(out.balance(), 1);
//! assert_eq!(out.receive().unwrap(), 10);
//! ```
//!
//! # What the body must be
//! - **Deterministic**: given its state and the results its `Cx` returns, it makes the
//!   same operations in the same order. Anything else (the time, random numbers, reading
//!   input) goes through [`Cx::record`], which journals the result.
//! - **Re-entrant at its checkpoints**: a restore enters the body from its beginning with
//!   the state of the last checkpoint, so the state must say everything about where to go
//!   on (typically: `loop { ...; cx.checkpoint()? }`, with the loop's variables in the
//!   state).
//! - **Side effects since the checkpoint happen once**: code between operations runs again
//!   on replay; output that must not repeat goes through `cx.record(|| ...)` too (it is
//!   skipped on replay), or is guarded by [`Cx::replaying`].
//! - **Every suspension through `Cx`**: a resumable tasklet that is suspended in a
//!   scheduler or channel call not made through its `Cx` cannot be pickled
//!   ([`PickleError::Unpicklable`]).
//!
//! A replay that meets another operation than the journal holds, or a checkpoint before
//! the journal's end, fails with [`PickleError::Diverged`].
//!
//! # Restore is lazy
//! [`World::restore`] builds every resumable tasklet without touching a stack and without
//! running its body: it decodes the checkpointed state, makes a tasklet whose closure waits
//! on the heap, and queues the blocked ones on their channels again, each with a waiter on
//! the heap that holds the value it sends (the pickle carries the values of blocked
//! senders). A tasklet gets its stack, is laid out and replays its journal only the first
//! time the scheduler switches into it (`scheduler::lazy`: the switch's test for a missing
//! saved context, which every switch makes anyway, is where a lazy tasklet is laid out, so
//! closure tasklets and the channel paths pay nothing). A restored world of N blocked
//! tasklets therefore costs no page of stack and no replay until they run, and a tasklet
//! that never runs again (killed, or pickled once more) never pays them.
//!
//! Until then a restored tasklet behaves exactly as one that replayed eagerly: a partner
//! that matches its waiter takes its value or hands it one and makes it runnable, as for
//! any blocked tasklet; when it first runs, its replay reaches that operation, which
//! returns what the match delivered (its own recomputed value, for a send, is dropped).
//! Killing it before then ends it without running its body (it is switched to and ends at
//! its first instruction, as any tasklet that never ran), out of its channel's queue, with
//! the value it was sending dropped. An error thrown into it is the result of the
//! operation it was blocked in, as for a tasklet suspended there. Pickling it again before
//! it ran gives back what was restored.
//!
//! **Divergence is found when the tasklet first runs**, not by the restore: if its replay
//! does not reach the operation it was blocked in (another operation, a checkpoint before
//! the journal's end, or the body returns), the tasklet ends with the
//! [`PickleError::Diverged`] as its panic payload, delivered like any tasklet's failure
//! (to main or the innermost `run()` caller as [`Error::Panicked`](crate::Error::Panicked)),
//! the same way a copy of a closure tasklet fails. By then a partner may already have taken
//! the value it was restored with. What `restore` still checks eagerly it still returns as
//! errors: the format, the image's consistency, every state (it must decode) and every
//! value in flight (each must decode as its channel's type).
//!
//! # The journal costs ordinary tasklets nothing
//! The journal lives in `Cx`, not in the channel: a resumable tasklet's `cx.send(ch, v)`
//! journals and then calls the ordinary [`Channel::send`](crate::Channel::send). The channel
//! and scheduler paths are unchanged, so closure tasklets pay nothing.
//!
//! # Stackless's pickling in Rust
//!
//! | Stackless | microthread |
//! |---|---|
//! | `pickle.dumps(t)` (a tasklet with its frames) | [`World::pickle`] of a world holding it (with the channels it uses): `Vec<u8>` in the [`format`](mod@format) |
//! | `pickle.dumps(ch)` (a channel with its queue) | the same: channels are pickled with their world |
//! | none: Stackless has no buffered channel | a world's [`BufferedChannel`](crate::channel::BufferedChannel) ([`World::buffered_channel`]) is pickled with its capacity, its buffered values in order, its queue and its settings |
//! | `pickle.loads(s)` | [`World::restore`] → [`Restored`]; [`inspect`] decodes without building |
//! | `t.__reduce__()` of the current tasklet: `RuntimeError` | [`PickleError::CurrentTasklet`] |
//! | `t.restorable` (no C state on the stack) | [`World::restorable`]: true for a resumable tasklet, false for a closure tasklet (its native stack is its "C state") |
//! | running an unpickled non-restorable tasklet: `RuntimeError("... frame had a C state that can't be restored")` | the copy fails with [`PickleError::NotRestorable`] naming it, delivered as a panic ([`Error::Panicked`](crate::Error::Panicked)) to main or the `run()` caller |
//! | unpickled tasklet: alive, not scheduled, paused | the same: [`Restored::ring`] lists the runnable ones in order, [`Restored::insert_ring`] inserts them |
//! | unpickled blocked tasklets re-linked to their channel in order | the same, at once, with the values they send; each replays up to its channel operation when it first runs (see *Restore is lazy*) |
//! | an unpickled new (never run) tasklet runs from the start | the same: its checkpoint is its initial state |
//! | an unpickled dead tasklet is not alive | the same (a bound, not set-up tasklet) |
//! | the copy and the original continue independently | the same |
//! | a tasklet interrupted by the watchdog is picklable | the same (it resumes into the interrupted operation) |
//! | `pickle_flags()`, `PICKLEFLAGS_*`, tracing state, `persistent_id` | none: there are no frames or interpreter state; what is pickled is exactly the registered state, which the program designs |
//! | pickles tied to the CPython version | pickles tied to the [`Registry::fingerprint`] (kind names and versions) and the [`format::FORMAT_VERSION`] |
//!
//! # Limits
//! - A world is of one thread: its channels may be shared with other threads, but a
//!   tasklet of another thread waiting on one makes the world unpicklable
//!   ([`PickleError::Outsider`]).
//! - A blocked closure tasklet comes back paused, not queued (its value was on its stack).
//! - A sleeping tasklet cannot be pickled.
//! - An error sent with `send_throw` into a buffered channel's buffer cannot be pickled
//!   ([`PickleError::Encode`]); the buffers of one world hold at most
//!   [`format::MAX_BUFFERED`] values together ([`PickleError::TooMuchBuffer`]).
//! - A buffered value is serialised under its channel's lock: its `Serialize` impl must not
//!   use that channel.
//! - A resumable tasklet that received a value from code outside the pickle layer (a plain
//!   `Channel::send`, not [`Cx::send`] or [`World::send`]) and has not resumed from that
//!   receive yet cannot be pickled until it does ([`PickleError::InTransit`]); with the
//!   default preference (-1) a receiver always resumes at once.
//! - A resumable tasklet paused inside `cx.schedule_remove()` by a watchdog, before it
//!   removed itself, is restored as if it had removed itself.
//! - A restored tasklet gets its stack when it first runs: if none can be mapped then, the
//!   process aborts with a message naming the tasklet (there is no context to switch to,
//!   and a switch cannot fail), as for a failed heap allocation.

mod channels;
mod cx;
mod error;
pub mod format;
mod image;
mod journal;
mod registry;
mod restore;
mod snapshot;
mod start;
mod world;

pub use channels::{BufferedChannelRef, ChannelRef, WorldRef};
pub use cx::Cx;
pub use error::PickleError;
pub use image::{BodyImage, ChannelImage, ChannelKind, Status, TaskletImage, WorldImage};
pub use journal::{Entry, Op};
pub use registry::{Body, Kind, Registry};
pub use restore::{inspect, Restored};
pub use world::World;
