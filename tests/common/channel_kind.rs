//! Any kind of channel, for the model-based proptest (`tests/prop_scheduler.rs`, included
//! by `tests/prop_channel.rs`), whose real run uses one kind or another: the same methods,
//! forwarded to the channel of the chosen kind. A `BufferedChannel` of capacity 0 is one
//! kind: the rendezvous model holds for it as for `Channel`.

use microthread::channel::{BufferedChannel, Channel, LocalChannel};
use microthread::error::{Payload, Result};
use microthread::SendError;

/// Which channel type a real run uses.
#[derive(Clone, Copy, Debug)]
#[allow(dead_code)] // `tests/prop_scheduler.rs` alone uses `Shared` only
pub enum ChannelKind {
    Shared,
    Local,
    /// `BufferedChannel::with_capacity(0)`.
    Buffered0,
}

/// A channel of either kind.
pub enum AnyKindChannel {
    Shared(Channel<u32>),
    Local(LocalChannel<u32>),
    Buffered0(BufferedChannel<u32>),
}

/// `$ch.$method(...)` on whichever channel `$self` holds.
macro_rules! forward {
    ($(fn $method:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)*) => {
        $(
            pub fn $method(&self $(, $arg: $ty)*) -> $ret {
                match self {
                    AnyKindChannel::Shared(c) => c.$method($($arg),*),
                    AnyKindChannel::Local(c) => c.$method($($arg),*),
                    AnyKindChannel::Buffered0(c) => c.$method($($arg),*),
                }
            }
        )*
    };
}

#[allow(dead_code)]
impl AnyKindChannel {
    pub fn new(kind: ChannelKind) -> AnyKindChannel {
        match kind {
            ChannelKind::Shared => AnyKindChannel::Shared(Channel::new()),
            ChannelKind::Local => AnyKindChannel::Local(LocalChannel::new()),
            ChannelKind::Buffered0 => AnyKindChannel::Buffered0(BufferedChannel::with_capacity(0)),
        }
    }

    pub fn send_sequence(
        &self,
        items: impl Iterator<Item = u32>,
    ) -> std::result::Result<usize, SendError<u32>> {
        match self {
            AnyKindChannel::Shared(c) => c.send_sequence(items),
            AnyKindChannel::Local(c) => c.send_sequence(items),
            AnyKindChannel::Buffered0(c) => c.send_sequence(items),
        }
    }

    forward! {
        fn send(&self, v: u32) -> std::result::Result<(), SendError<u32>>;
        fn send_throw(&self, p: Payload) -> std::result::Result<(), SendError<Payload>>;
        fn receive(&self) -> Result<u32>;
        fn balance(&self) -> isize;
        fn queue(&self) -> Vec<u64>;
        fn close(&self) -> ();
        fn open(&self) -> ();
        fn set_preference(&self, p: i32) -> ();
        fn set_schedule_all(&self, on: bool) -> ();
    }
}
