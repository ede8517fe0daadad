//! The journal of a resumable tasklet: the postcard bytes of its state at its last
//! checkpoint, and the results of its operations since then, in order ([`Entry`]), with a
//! replay cursor. While the cursor is short of the end the tasklet *replays*: each
//! operation takes its result from the next entry and touches no channel, the ring, or the
//! outside world; at the end it runs live, and each operation appends its result.
//!
//! Also here: the operation a live tasklet is inside of ([`Pending`]), which tells the
//! pickler what a suspended tasklet waits for, and the value a blocked sender carries.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::PickleError;
use crate::Error;

/// Which operation a journal entry is the result of.
///
/// ```
/// use microthread::pickle::Op;
/// assert_ne!(Op::Send, Op::Receive);
/// ```
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// [`Cx::schedule`](super::Cx::schedule).
    Schedule,
    /// [`Cx::schedule_remove`](super::Cx::schedule_remove).
    ScheduleRemove,
    /// [`Cx::send`](super::Cx::send).
    Send,
    /// [`Cx::receive`](super::Cx::receive).
    Receive,
    /// [`Cx::record`](super::Cx::record).
    Record,
    /// [`Cx::tick`](super::Cx::tick).
    Tick,
}

/// One journaled result: the operation, and the postcard bytes of its
/// `Result<value, JournaledError>`.
///
/// ```
/// use microthread::pickle::{Entry, Op};
/// let e = Entry { op: Op::Schedule, data: vec![0] }; // Ok(())
/// assert_eq!(e.clone(), e);
/// ```
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The operation.
    pub op: Op,
    /// Its result, postcard encoded.
    pub data: Vec<u8>,
}

/// How an operation's error is journaled: the variants replay can give back exactly, and a
/// sentence for the rest (replayed as [`Error::Thrown`] of that `String`).
#[derive(Serialize, Deserialize, Debug)]
pub(super) enum JournaledError {
    ClosedChannel,
    Deadlock,
    BlockTrap,
    Timeout,
    Other(String),
}

impl JournaledError {
    pub(super) fn of(e: &Error) -> JournaledError {
        match e {
            Error::ClosedChannel => JournaledError::ClosedChannel,
            Error::Deadlock => JournaledError::Deadlock,
            Error::BlockTrap => JournaledError::BlockTrap,
            Error::Timeout => JournaledError::Timeout,
            other => JournaledError::Other(other.to_string()),
        }
    }

    pub(super) fn into_error(self) -> Error {
        match self {
            JournaledError::ClosedChannel => Error::ClosedChannel,
            JournaledError::Deadlock => Error::Deadlock,
            JournaledError::BlockTrap => Error::BlockTrap,
            JournaledError::Timeout => Error::Timeout,
            JournaledError::Other(s) => Error::Thrown(Box::new(s)),
        }
    }
}

/// The postcard bytes of a successful `Result<(), _>`.
pub(super) const UNIT_OK: [u8; 1] = [0];

/// The operation a live resumable tasklet is inside of, with the channel's index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pending {
    None,
    Schedule,
    ScheduleRemove,
    Send(u32),
    Receive(u32),
    Tick,
}

/// Everything the pickle layer keeps of one resumable tasklet.
pub(crate) struct Record {
    pub(super) kind: u32,
    /// The state at the last checkpoint (or at the start), postcard encoded.
    pub(super) checkpoint: Vec<u8>,
    /// Results since then, oldest first.
    pub(super) journal: Vec<Entry>,
    /// The next entry to replay; replaying while `cursor < journal.len()`.
    pub(super) cursor: usize,
    pub(super) pending: Pending,
    /// The value of a blocked send, postcard encoded: what a receiver that takes it but
    /// resumes later (preference +1, `schedule_all`) has received.
    pub(super) pending_value: Option<Vec<u8>>,
    /// While a restore replays a blocked tasklet: the operation it was blocked in, which
    /// must be its first live one.
    pub(super) expect: Option<Pending>,
    /// A restored tasklet that has not run since (and was not queued on a channel): its
    /// status in the pickle, whose journal is complete as it is (pickled again as it was).
    pub(super) restored: Option<super::Status>,
}

impl Record {
    pub(super) fn new(kind: u32, checkpoint: Vec<u8>, journal: Vec<Entry>) -> Record {
        Record {
            kind,
            checkpoint,
            journal,
            cursor: 0,
            pending: Pending::None,
            pending_value: None,
            expect: None,
            restored: None,
        }
    }

    pub(super) fn replaying(&self) -> bool {
        self.cursor < self.journal.len()
    }

    /// The next entry's result, which must be of `op`; `None` when live.
    pub(super) fn replay<T: DeserializeOwned>(
        &mut self,
        me: u64,
        op: Op,
    ) -> Option<Result<T, PickleError>> {
        let entry = self.journal.get(self.cursor)?;
        self.cursor += 1;
        if entry.op != op {
            return Some(Err(PickleError::Diverged {
                tasklet: me,
                detail: format!(
                    "the journal holds {:?} where the body made {:?}",
                    entry.op, op
                ),
            }));
        }
        Some(
            match postcard::from_bytes::<Result<T, JournaledError>>(&entry.data) {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(PickleError::Op(e.into_error())),
                Err(e) => Err(PickleError::Payload(format!(
                    "journal entry {} of tasklet {me}: {e}",
                    self.cursor - 1
                ))),
            },
        )
    }

    /// Checks, as `op` goes live, that it is the operation a restore expects first.
    pub(super) fn go_live(&mut self, me: u64, op: Pending) -> Result<(), PickleError> {
        match self.expect.take() {
            Some(e) if e != op => Err(PickleError::Diverged {
                tasklet: me,
                detail: format!("its replay ended in {op:?}, not in the {e:?} it was blocked in"),
            }),
            _ => Ok(()),
        }
    }

    /// Appends the result of a live operation.
    pub(super) fn append<T: Serialize>(
        &mut self,
        op: Op,
        result: Result<&T, &Error>,
    ) -> Result<(), PickleError> {
        let r: Result<&T, JournaledError> = result.map_err(JournaledError::of);
        let data = postcard::to_allocvec(&r).map_err(|e| PickleError::Encode(e.to_string()))?;
        self.journal.push(Entry { op, data });
        self.cursor = self.journal.len();
        Ok(())
    }
}
