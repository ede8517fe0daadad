//! The messages of a switch between a coroutine and its resumer: each side passes the address
//! of one, on its own stack, as the switch's data word.

use std::any::Any;

/// Message from the resumer, on the resumer's stack; the word passed is its address.
pub(super) enum Resume<I> {
    Input(I),
    /// Unwind from the suspension point: the coroutine is being dropped.
    Unwind,
}

/// What the coroutine's message is. Its yields do not know `R`, so the two kinds of message
/// have different types, each starting with this tag at offset 0 (see [`Reply`]).
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Kind {
    /// A `Reply<Y>`: the value of a suspension.
    Yield,
    /// A `Reply<Suspend<Y, R>>`: the coroutine's last message.
    Last,
}

/// A message from the coroutine, on the coroutine's stack; the word passed is its address.
#[repr(C)]
pub(super) struct Reply<P> {
    pub(super) kind: Kind,
    pub(super) payload: P,
}

/// What a resume gets back.
pub(super) enum Suspend<Y, R> {
    Yield(Y),
    Return(R),
    Panic(Box<dyn Any + Send>),
    /// The forced unwind of a drop reached the root.
    Unwound,
}

/// The payload of a forced unwind; private, so user code can only catch it as `dyn Any`.
pub(super) struct ForcedUnwind;
