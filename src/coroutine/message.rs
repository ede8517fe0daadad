//! The messages of a switch between a coroutine and its resumer: each side passes the address
//! of one, on its own stack, as the switch's data word.

use std::any::Any;
use std::mem::{self, MaybeUninit};

use std::ptr;

/// Message from the resumer. The word passed is the address of a `Slot<I>` on the resumer's
/// stack for an input (even: the slot is 2-aligned; for a zero-sized input, the slot's
/// alignment, as a dangling address), or [`UNWIND`] (odd): the coroutine
/// tells them apart by that bit, without a load. See [`Resume::send`] and [`Resume::receive`].
pub(super) enum Resume<I> {
    Input(I),
    /// Unwind from the suspension point: the coroutine is being dropped.
    Unwind,
}

/// The word of a [`Resume::Unwind`].
pub(super) const UNWIND: usize = 1;

impl<I> Resume<I> {
    /// The word that carries this message; an input is moved into `slot`, which must stay
    /// where it is until the coroutine has read it (before it switches back).
    #[inline(always)]
    pub(super) fn send(self, slot: &mut MaybeUninit<Slot<I>>) -> usize {
        match self {
            // A zero-sized input (a generator's `()`) has no bytes to pass: it is forgotten
            // here and read back there from an aligned dangling address (an even constant,
            // one instruction less than the slot's address on the resume path).
            Resume::Input(input) if mem::size_of::<I>() == 0 => {
                mem::forget(input);
                mem::align_of::<Slot<I>>()
            }
            Resume::Input(input) => {
                slot.write(Slot(input));
                slot.as_mut_ptr() as usize
            }
            Resume::Unwind => UNWIND,
        }
    }

    /// The message a resumer sent as `word`; reads an input out of its slot.
    ///
    /// # Safety
    /// - `word` is what [`Resume::send`] gave, its slot not read before and still in place.
    #[inline(always)]
    pub(super) unsafe fn receive(word: usize) -> Resume<I> {
        if word & UNWIND != 0 {
            Resume::Unwind
        } else {
            // SAFETY: the caller's obligation: an initialised slot, read once; or, for a
            // zero-sized input, an aligned non-null address (`send`), which is all a read of
            // a zero-sized value needs (the value `send` forgot is moved here).
            Resume::Input(unsafe { ptr::read(word as *const Slot<I>) }.0)
        }
    }
}

/// A message from the coroutine, on the coroutine's stack. The word passed is its address
/// (even: the slot is 2-aligned) plus [`LAST`] for the coroutine's last message: a yield is a
/// `Slot<Y>`, the last message a `Slot<Suspend<Y, R>>` (yields do not know `R`, so the two
/// have different types). The resumer tells them apart by that bit, without a load.
#[repr(C, align(2))]
pub(super) struct Slot<P>(pub(super) P);

/// Added to the address of the coroutine's last message (see [`Slot`]).
pub(super) const LAST: usize = 1;

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
