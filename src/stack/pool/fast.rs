//! The pool's fast slot: the most recently released stack of the default size and guard, for
//! the common case of a spawn right after a finish (one load, a comparison and a store each
//! way: no search, no `RefCell` borrow). Its stack counts towards the pool.
//!
//! The slot is one thread-local word without drop glue ([`FAST`]), so that reaching it is one
//! `%fs`-relative access: a thread-local with a destructor also tests, on every access,
//! whether it was initialised or destroyed. A second thread-local, [`FAST_GUARD`], has the
//! destructor: registered when the slot is armed, it gives the slot's stack back when the
//! thread ends and turns the slot off for good.
//!
//! The word is a stack (the address of its `Range`: [`Stack::as_raw`]; a `Range` lies in a
//! mapping, far above the states) or one of three states:
//!
//! | word | meaning |
//! |---|---|
//! | [`EMPTY`] | on and empty: armed |
//! | [`UNARMED`] | the first state, and after the high-water mark was raised from 0 again |
//! | [`OFF`] | the high-water mark is 0, or the thread's exit emptied the slot for good |
//! | a stack | armed, holding that stack |
//!
//! Arming ([`arm`], on the first release of a default stack) registers the guard and checks
//! the thread's alternate signal stack (`overflow::ensure_altstack`). So a stack taken from
//! the slot tells a new coroutine that the check was made on this thread: its spawn makes no
//! test of its own for that (`pool::acquire_spawn_fast`).

use std::cell::Cell;

use super::POOL;
use crate::stack::Stack;

/// On and empty.
const EMPTY: usize = 0;
/// Not armed yet: the next release of a default stack arms the slot.
const UNARMED: usize = 1;
/// Off: takes no stack.
const OFF: usize = 2;

thread_local! {
    /// The slot's word (see the module docs).
    static FAST: Cell<usize> = const { Cell::new(UNARMED) };
    /// Registered on its first access (by [`arm`]); its `Drop` empties the slot for good.
    static FAST_GUARD: Guard = const { Guard };
}

/// Gives the slot's stack back when the thread ends, and turns the slot off.
struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        // `FAST` has no destructor: it is readable for as long as the thread runs anything.
        drop(swap_word(OFF));
    }
}

/// Sets the word to `word` and returns the stack the slot held, if any.
///
/// `word` must be a state, or a stack the slot now owns (see [`Stack::as_raw`]).
#[inline]
fn swap_word(word: usize) -> Option<Stack> {
    let old = FAST.with(|f| f.replace(word));
    // SAFETY: a word above `OFF` is a stack given to the slot with `Stack::as_raw` and then
    // forgotten, taken out exactly once (the slot holds `word` now).
    (old > OFF).then(|| unsafe { Stack::from_raw(old) })
}

/// The slot's stack, if it holds one (then it is left empty).
#[inline(always)]
pub(super) fn take() -> Option<Stack> {
    FAST.with(|f| {
        let word = f.get();
        if word > OFF {
            // Only an armed slot holds a stack; empty, it is `EMPTY`.
            f.set(EMPTY);
            // SAFETY: as in `swap_word`.
            Some(unsafe { Stack::from_raw(word) })
        } else {
            None
        }
    })
}

/// Puts `stack` (of the default shape) in the slot if it is on and empty; else hands it back.
#[inline(always)]
pub(super) fn put_if_empty(stack: Stack) -> Result<(), Stack> {
    FAST.with(|f| {
        if f.get() == EMPTY {
            f.set(stack.as_raw());
            // The slot owns it now.
            std::mem::forget(stack);
            Ok(())
        } else {
            Err(stack)
        }
    })
}

/// Puts `stack` (of the default shape) in the slot, arming it first if it is unarmed, and
/// returns the stack it held, if any; hands `stack` back if the slot is off.
pub(super) fn put(stack: Stack) -> Result<Option<Stack>, Stack> {
    let word = FAST.with(Cell::get);
    if word == OFF || (word == UNARMED && !arm()) {
        return Err(stack);
    }
    let new = stack.as_raw();
    // The slot owns it now.
    std::mem::forget(stack);
    Ok(swap_word(new))
}

/// Arms an unarmed slot: registers [`FAST_GUARD`], checks the thread's alternate signal
/// stack, and turns the slot on (empty) if the high-water mark allows, off otherwise (and
/// for good once the thread's exit dropped the guard). Returns whether it is on.
#[cold]
#[inline(never)]
fn arm() -> bool {
    crate::overflow::ensure_altstack();
    let on = FAST_GUARD.try_with(|_| ()).is_ok()
        && POOL
            .try_with(|p| p.borrow().high_water_mark > 0)
            .unwrap_or(false);
    FAST.with(|f| f.set(if on { EMPTY } else { OFF }));
    on
}

/// The slot's stack, if any, leaving the slot on (or unarmed, or off) as it was.
pub(super) fn flush() -> Option<Stack> {
    if len() == 1 {
        swap_word(EMPTY)
    } else {
        None
    }
}

/// For a new high-water mark: off for 0, else unarmed (the next release arms it, or finds
/// the thread ending). The slot must be empty ([`flush`]).
pub(super) fn turn(on: bool) {
    FAST.with(|f| f.set(if on { UNARMED } else { OFF }));
}

/// Whether the slot holds a stack: 1 or 0.
pub(super) fn len() -> usize {
    (FAST.with(Cell::get) > OFF) as usize
}
