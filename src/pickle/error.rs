//! [`PickleError`]: everything that can go wrong in pickling, loading and replaying, each
//! with a sentence.

use std::fmt;

/// What went wrong while pickling a world, loading a pickle, restoring it, or replaying a
/// resumable tasklet. Every corrupt or hostile input gives one of these (never a panic).
///
/// ```
/// use microthread::pickle::PickleError;
/// let e = PickleError::BadMagic;
/// assert_eq!(e.to_string(), "the input is not a microthread pickle: its first 8 bytes are not \"MTPICKLE\"");
/// ```
#[derive(Debug)]
pub enum PickleError {
    // The envelope (see the `format` byte table in the module docs).
    /// The input ends before the header or the payload does.
    Truncated {
        /// Bytes the header says there must be.
        needed: u64,
        /// Bytes there are.
        available: u64,
    },
    /// The first 8 bytes are not the magic `MTPICKLE`.
    BadMagic,
    /// The format version is not one this build reads.
    UnsupportedVersion {
        /// The version in the input.
        found: u16,
        /// The version this build reads and writes.
        supported: u16,
    },
    /// The reserved header field is not zero.
    BadHeader,
    /// Bytes follow the payload.
    TrailingBytes {
        /// How many.
        extra: u64,
    },
    /// The CRC-32 of the header and payload does not match the stored one: the input was
    /// changed or damaged.
    Checksum {
        /// The stored checksum.
        stored: u32,
        /// The checksum of the bytes read.
        computed: u32,
    },
    /// The pickle was written by a program with other registered kinds or channel types
    /// (names or versions).
    Fingerprint {
        /// The fingerprint in the input.
        found: u64,
        /// This registry's fingerprint.
        expected: u64,
    },
    /// The payload (or a state or journal entry inside it) does not decode.
    Payload(String),
    /// The payload names a kind index the registry does not have.
    UnknownKind {
        /// The index.
        index: u32,
    },
    /// The payload names a channel type index the registry does not have.
    UnknownChannelType {
        /// The index.
        index: u32,
    },
    /// A reference to a tasklet past the end of the world's table.
    MissingTasklet {
        /// The index.
        index: u32,
    },
    /// A reference to a channel that is not in the world.
    MissingChannel {
        /// The index.
        index: u32,
    },
    /// Two tasklets of one pickle have the same id.
    DuplicateTasklet {
        /// The id.
        id: u64,
    },
    /// The payload decodes but does not describe a possible world (a blocked tasklet in no
    /// channel queue, a ring entry that is not runnable, ...).
    Inconsistent(String),
    // Registering.
    /// A kind or channel type name registered twice.
    DuplicateName {
        /// The name.
        name: String,
    },
    /// A channel of a value type the registry does not know.
    UnregisteredChannelType {
        /// The Rust type name.
        type_name: &'static str,
    },
    /// A channel reference used with another value type than its channel's, or with
    /// another kind of channel (a [`ChannelRef`](super::ChannelRef) to a buffered channel,
    /// a [`BufferedChannelRef`](super::BufferedChannelRef) to a rendezvous one).
    WrongChannelType {
        /// The channel's index in the world.
        index: u32,
    },
    /// A buffered channel whose capacity would take the world's buffers past
    /// [`format::MAX_BUFFERED`](super::format::MAX_BUFFERED) values.
    TooMuchBuffer {
        /// The capacity asked for.
        capacity: usize,
        /// The capacity still available in the world.
        available: u64,
    },
    // Pickling.
    /// The tasklet that pickles is in the world (Stackless: "You cannot __reduce__ the
    /// tasklet which is current.").
    CurrentTasklet {
        /// Its id.
        id: u64,
    },
    /// A tasklet that is not in the world waits on one of its channels.
    Outsider {
        /// The waiting tasklet's id.
        tasklet: u64,
        /// The channel's index in the world.
        channel: u32,
    },
    /// A resumable tasklet has received a value it has not resumed to yet, and the value was
    /// sent by code outside the pickle layer (a plain `Channel::send`, not `Cx::send` nor
    /// `World::send`), so no pickle can see it.
    InTransit {
        /// The receiver's id.
        tasklet: u64,
    },
    /// A world tasklet is in a state no pickle can hold (sleeping).
    Unpicklable {
        /// Its id.
        tasklet: u64,
        /// Why.
        why: &'static str,
    },
    /// The user's state (or a value) could not be serialised.
    Encode(String),
    // Running.
    /// A restored copy of a closure tasklet was run: its native stack was not pickled.
    NotRestorable {
        /// The original tasklet's id.
        tasklet: u64,
        /// Its name, if it had one.
        name: Option<String>,
    },
    /// Replay met something else than the journal holds: the body is not a deterministic
    /// function of its state and its operations' results.
    Diverged {
        /// The tasklet's id.
        tasklet: u64,
        /// What was expected and what came.
        detail: String,
    },
    /// The world of a resumable tasklet has been dropped.
    WorldGone,
    /// A scheduler or channel operation failed.
    Op(crate::Error),
}

impl fmt::Display for PickleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use PickleError::*;
        match self {
            Truncated { needed, available } => write!(
                f,
                "the pickle is truncated: {needed} bytes are needed, {available} are there"
            ),
            BadMagic => write!(
                f,
                "the input is not a microthread pickle: its first 8 bytes are not \"MTPICKLE\""
            ),
            UnsupportedVersion { found, supported } => write!(
                f,
                "the pickle has format version {found}; this build reads version {supported}"
            ),
            BadHeader => write!(f, "the pickle's reserved header field is not zero"),
            TrailingBytes { extra } => {
                write!(f, "{extra} bytes follow the pickle's payload")
            }
            Checksum { stored, computed } => write!(
                f,
                "the pickle is damaged: its checksum is {stored:#010x}, its bytes give {computed:#010x}"
            ),
            Fingerprint { found, expected } => write!(
                f,
                "the pickle was written with other registered kinds (fingerprint {found:#018x}, this program's is {expected:#018x})"
            ),
            Payload(why) => write!(f, "the pickle's payload does not decode: {why}"),
            UnknownKind { index } => write!(f, "the pickle names kind {index}, which is not registered"),
            UnknownChannelType { index } => {
                write!(f, "the pickle names channel type {index}, which is not registered")
            }
            MissingTasklet { index } => {
                write!(f, "the pickle refers to tasklet {index}, which it does not hold")
            }
            MissingChannel { index } => {
                write!(f, "a reference to channel {index}, which is not in the world")
            }
            DuplicateTasklet { id } => write!(f, "the pickle holds tasklet {id} twice"),
            Inconsistent(why) => write!(f, "the pickle describes an impossible world: {why}"),
            DuplicateName { name } => write!(f, "the name {name:?} is registered twice"),
            UnregisteredChannelType { type_name } => {
                write!(f, "no channel type is registered for values of type {type_name}")
            }
            WrongChannelType { index } => write!(
                f,
                "channel {index} of the world carries another value type, or is of another kind, than its reference says"
            ),
            TooMuchBuffer { capacity, available } => write!(
                f,
                "a buffered channel of capacity {capacity} does not fit in the world: its buffers may hold {available} more values"
            ),
            CurrentTasklet { id } => write!(
                f,
                "tasklet {id} is the current tasklet, which cannot be pickled; pickle from another tasklet"
            ),
            Outsider { tasklet, channel } => write!(
                f,
                "tasklet {tasklet} waits on channel {channel} of the world but is not in the world"
            ),
            InTransit { tasklet } => write!(
                f,
                "tasklet {tasklet} has received a value from outside the pickle layer and not yet resumed: let it run first"
            ),
            Unpicklable { tasklet, why } => write!(f, "tasklet {tasklet} cannot be pickled: {why}"),
            Encode(why) => write!(f, "a state or value does not serialise: {why}"),
            NotRestorable { tasklet, name } => match name {
                Some(n) => write!(
                    f,
                    "tasklet {tasklet} ({n:?}) is a restored closure tasklet: its native stack was not pickled, so it cannot run"
                ),
                None => write!(
                    f,
                    "tasklet {tasklet} is a restored closure tasklet: its native stack was not pickled, so it cannot run"
                ),
            },
            Diverged { tasklet, detail } => write!(
                f,
                "tasklet {tasklet} diverged from its journal on replay ({detail}): its body is not deterministic"
            ),
            WorldGone => write!(f, "the tasklet's world has been dropped"),
            Op(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for PickleError {}

impl From<crate::Error> for PickleError {
    fn from(e: crate::Error) -> PickleError {
        PickleError::Op(e)
    }
}

impl From<postcard::Error> for PickleError {
    fn from(e: postcard::Error) -> PickleError {
        PickleError::Payload(e.to_string())
    }
}
