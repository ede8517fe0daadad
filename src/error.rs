//! The crate's error type: misuse of the scheduler and channels, deadlocks, and errors that
//! travel between tasklets (thrown, sent through a channel, or escaping a tasklet).
//!
//! Every message is Stackless Python's own sentence for the same condition, so a port can
//! match on the text as well as on the variant; but for [`Error::SchedulerEnded`] and
//! [`Error::Unwinding`], states Stackless does not have, and [`Error::Thrown`] and
//! [`Error::Panicked`], whose text is the payload's with our prefix.
//!
//! # How an error reaches a tasklet
//! Whatever Stackless would raise *at a suspension point* arrives in Rust as the `Err` of the
//! call the tasklet is suspended in: [`schedule`](crate::scheduler::schedule),
//! [`run`](crate::scheduler::run), [`Tasklet::run`](crate::Tasklet::run), a channel's `send` or
//! `receive`, and so on. That covers [`Tasklet::throw`](crate::Tasklet::throw), errors sent
//! through a channel, a panic that escaped another tasklet ([`Error::Panicked`], delivered to
//! the innermost `run()` caller or the main tasklet) and deadlocks. The one exception is
//! [`Tasklet::kill`](crate::Tasklet::kill): it must unwind the target's stack whatever the
//! target does, so it arrives as a silent panic ([`TaskletExit`]) from the suspension point.

use std::any::Any;
use std::fmt;

/// A payload carried by a thrown or routed error: what `panic!` or `throw` was given.
pub type Payload = Box<dyn Any + Send>;

/// The payload of the silent unwind that [`Tasklet::kill`](crate::Tasklet::kill) starts at
/// the target's suspension point. A tasklet that catches it (with `catch_unwind`) keeps
/// running, as in Stackless; letting it escape ends the tasklet without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskletExit;

/// Everything that can go wrong in the scheduler and channels.
pub enum Error {
    /// The last runnable tasklet tried to block and nothing can ever wake it.
    Deadlock,
    /// The ring emptied while the main tasklet (or the innermost `run()` caller) was blocked
    /// receiving.
    MainReceivingWithoutSender,
    /// The ring emptied while the main tasklet was blocked sending.
    MainSendingWithoutReceiver,
    /// A channel operation would block a tasklet whose `block_trap` is set.
    BlockTrap,
    /// A blocking channel operation on a closing channel.
    ClosedChannel,
    /// A switch was attempted while `switch_trap` was non-zero.
    SwitchTrap,
    /// A switch (or a channel operation that would block) was attempted while the running
    /// tasklet's stack unwinds: from a destructor run by a panic or a kill. The thread's
    /// panic state cannot move to another tasklet, so such code may not suspend.
    Unwinding,
    /// `insert`, `run` or `switch` of a tasklet that is blocked on a channel.
    RunBlocked,
    /// `insert`, `run` or `switch` of a tasklet that is not alive: it has ended, or it is
    /// bound and not yet set up.
    RunDead,
    /// `remove` of a tasklet that is blocked on a channel.
    RemoveBlocked,
    /// `remove` of the current tasklet.
    RemoveCurrent,
    /// `switch` to a tasklet of another thread.
    SwitchOtherThread,
    /// `throw` to a tasklet that is not alive: it has ended, or it is bound and not yet set
    /// up.
    ThrowDead,
    /// The tasklet's thread has ended.
    NoThread,
    /// A scheduler operation from inside the schedule callback.
    RecursiveCallback,
    /// A channel operation from inside the channel callback.
    RecursiveChannelCallback,
    /// A call that would block or sleep, on a thread whose scheduler has ended: the thread
    /// is exiting and a thread-local destroyed after the scheduler's teardown made the call.
    /// Nothing can wake it any more. (Stackless has no such state; the sentence is ours.)
    SchedulerEnded,
    /// An error thrown into this tasklet with `throw`, or sent through a channel.
    Thrown(Payload),
    /// A receive with a timeout (`receive_timeout`) found no sender before its deadline; the
    /// channel is as if the receive never happened. (Stackless has no such state; the
    /// sentence is ours.)
    Timeout,
    /// A tasklet panicked and nothing caught it; delivered to the innermost `run()` caller or
    /// the main tasklet.
    Panicked {
        /// The id of the tasklet that panicked.
        tasklet: u64,
        /// What it panicked with.
        payload: Payload,
    },
    // Binding and setting up (Stackless `bind` and `setup`, reference §1.2 and Appendix A).
    /// [`Tasklet::setup`](crate::Tasklet::setup) of a tasklet that is already alive.
    TaskletAlive,
    /// [`Tasklet::setup`](crate::Tasklet::setup) of a tasklet with no function: unbound, or
    /// dead.
    NotBound,
    /// [`Tasklet::unbind`](crate::Tasklet::unbind) or [`Tasklet::bind`](crate::Tasklet::bind)
    /// of the current tasklet.
    BindCurrent,
    /// [`Tasklet::unbind`](crate::Tasklet::unbind) or [`Tasklet::bind`](crate::Tasklet::bind)
    /// of a tasklet that is scheduled or blocked.
    BindScheduled,
    /// [`Tasklet::unbind`](crate::Tasklet::unbind) or [`Tasklet::bind`](crate::Tasklet::bind)
    /// of a tasklet that has started and not ended: it has native frames on its stack
    /// (Stackless: C state), which only unwinding can end.
    HasCState,
    /// [`Tasklet::unbind`](crate::Tasklet::unbind) or [`Tasklet::bind`](crate::Tasklet::bind)
    /// of a main tasklet.
    UnbindMain,
    /// [`Tasklet::bind`](crate::Tasklet::bind) could not map a new stack: the OS error.
    /// (Stackless has no such state; the sentence is ours.)
    NoStack(std::io::Error),
}

impl Error {
    /// The payload of a [`Error::Thrown`] or [`Error::Panicked`], if any.
    pub fn payload(&self) -> Option<&(dyn Any + Send)> {
        match self {
            Error::Thrown(p) | Error::Panicked { payload: p, .. } => Some(&**p),
            _ => None,
        }
    }

    /// The payload as a string, if it is one (what `panic!("...")` carries).
    pub fn payload_str(&self) -> Option<&str> {
        let p = self.payload()?;
        p.downcast_ref::<&str>()
            .copied()
            .or_else(|| p.downcast_ref::<String>().map(|s| s.as_str()))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Error::Deadlock => "Deadlock: the last runnable tasklet cannot be blocked.",
            Error::MainReceivingWithoutSender => {
                "the main tasklet is receiving without a sender available."
            }
            Error::MainSendingWithoutReceiver => {
                "the main tasklet is sending without a receiver available."
            }
            Error::BlockTrap => "this tasklet does not like to be blocked.",
            Error::ClosedChannel => "Send/receive operation on a closed channel",
            Error::SwitchTrap => "switch_trap",
            Error::Unwinding => {
                "a tasklet cannot switch or block while its stack is unwinding (in a destructor run by a panic or a kill)"
            }
            Error::RunBlocked => "You cannot run a blocked tasklet",
            Error::RunDead => "You cannot run an unbound(dead) tasklet",
            Error::RemoveBlocked => "You cannot remove a blocked tasklet.",
            Error::RemoveCurrent => "The current tasklet cannot be removed.",
            Error::SwitchOtherThread => "can't switch to a different thread.",
            Error::ThrowDead => "You cannot throw to a dead tasklet",
            Error::NoThread => "tasklet has no thread",
            Error::RecursiveCallback => "Recursive scheduler call due to callbacks!",
            Error::RecursiveChannelCallback => "Recursive channel call due to callbacks!",
            Error::SchedulerEnded => {
                "this thread's scheduler has ended (the thread is exiting): nothing can wake a \
                 blocked tasklet on it any more"
            }
            Error::Timeout => "the receive timed out: no sender came before its deadline",
            Error::Thrown(_) => {
                return match self.payload_str() {
                    Some(s) => write!(f, "error thrown into the tasklet: {s}"),
                    None => f.write_str("error thrown into the tasklet"),
                }
            }
            Error::Panicked { tasklet, .. } => {
                return match self.payload_str() {
                    Some(s) => write!(f, "tasklet {tasklet} panicked: {s}"),
                    None => write!(f, "tasklet {tasklet} panicked"),
                }
            }
            Error::TaskletAlive => "tasklet is alive",
            Error::NotBound => "the tasklet was not bound to a function",
            Error::BindCurrent => "can't (re)bind the current tasklet",
            Error::BindScheduled => "tasklet is scheduled",
            Error::HasCState => {
                "tasklet has C state on its stack: it has started running, and its native \
                 frames can only be unwound: end it with kill()"
            }
            Error::UnbindMain => "can't unbind the main tasklet",
            Error::NoStack(e) => return write!(f, "cannot map a stack for the tasklet: {e}"),
        };
        f.write_str(s)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({self})")
    }
}

impl std::error::Error for Error {}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
