//! Where a new coroutine's closure goes: written at the top of its stack when it is small and
//! not over-aligned, else boxed; and the first frame laid out below it.

use std::marker::PhantomData;
use std::mem::{self, ManuallyDrop};
use std::ptr;

use super::yielder::{entry, Start};
use super::{Coroutine, Yielder};
use crate::context::Context;
use crate::id;
use crate::overflow::OwnerKind;
use crate::stack::{cache_color, Stack};

/// Closures larger than this are boxed rather than placed at the top of the stack.
const MAX_INLINE_CLOSURE: usize = 1024;

/// Closures aligned to more than this are boxed rather than placed at the top of the stack:
/// rounding the slot down to a larger alignment would waste the stack, or leave it.
const MAX_INLINE_ALIGN: usize = 128;

/// Whether a closure of type `T` is written at the top of its stack (at most
/// [`MAX_INLINE_CLOSURE`] bytes below it once aligned) rather than boxed. Shared by
/// coroutines and tasklets; decided on size *and* alignment, since a small value may be
/// aligned far beyond the stack (a zero-sized `#[repr(align(2097152))]` type).
#[inline(always)]
pub(crate) const fn fits_at_stack_top<T>() -> bool {
    mem::size_of::<T>() <= MAX_INLINE_CLOSURE && mem::align_of::<T>() <= MAX_INLINE_ALIGN
}

impl<I, Y, R> Coroutine<I, Y, R> {
    /// Creates the coroutine, without the `'static` bounds of the public constructors.
    ///
    /// The thread's alternate signal stack, for the overflow report, must have been checked
    /// (`overflow::ensure_altstack`): `Builder::acquire_stack` does it (for nothing, with a
    /// stack from the pool's fast slot), `build_on` and `scoped_on` call it.
    ///
    /// # Safety
    /// - Whatever `f` borrows, and every lifetime in `I`, `Y` and `R`, must stay valid until
    ///   the coroutine has finished or been dropped; the coroutine must not be leaked (with
    ///   `mem::forget`, say) before that, since its suspended frames may hold those borrows
    ///   and a thread they started may still use them. [`ScopedCoroutine`] keeps this by
    ///   dropping the coroutine before its scope returns.
    #[inline(always)]
    pub(super) unsafe fn create<F>(stack: Stack, preserve_fp_env: bool, f: F) -> Coroutine<I, Y, R>
    where
        F: FnOnce(&Yielder<I, Y>, I) -> R,
    {
        if !fits_at_stack_top::<Start<F>>() {
            // A box of a zero-sized type allocates nothing, whatever its alignment.
            let boxed = Box::new(f);
            // SAFETY: the caller's obligation, for the box that now holds `f`.
            unsafe {
                Coroutine::place(stack, preserve_fp_env, move |y: &Yielder<I, Y>, i| {
                    boxed(y, i)
                })
            }
        } else {
            // SAFETY: the caller's obligation.
            unsafe { Coroutine::place(stack, preserve_fp_env, f) }
        }
    }

    /// Writes `f` at the top of `stack` and lays out the first frame.
    ///
    /// # Safety
    /// - As [`create`](Coroutine::create): the result holds `f`'s borrows.
    #[inline(always)]
    unsafe fn place<F>(stack: Stack, preserve_fp_env: bool, f: F) -> Coroutine<I, Y, R>
    where
        F: FnOnce(&Yielder<I, Y>, I) -> R,
    {
        let id = id::next();
        stack.set_owner(OwnerKind::Coroutine, id);
        // `create` boxed anything that does not fit (a constant: no code in release).
        assert!(fits_at_stack_top::<Start<F>>());
        let align = mem::align_of::<Start<F>>().max(16);
        // Below the stack's colour (see `stack::cache_color`): coroutines resumed in turn
        // keep their tops in different sets of the CPU's level-1 cache.
        let top = stack.top() as usize - cache_color(id);
        let closure = (top - mem::size_of::<Start<F>>()) & !(align - 1);
        let start = Start {
            f,
            stack_limit: stack.limit() as usize,
        };
        // SAFETY: the slot is aligned for Start<F> and, since the top is page-aligned, the
        // colour under 2 KiB and Start<F> fits at the top, at most 2 KiB + MAX_INLINE_CLOSURE
        // bytes below the top of a stack of at least MIN_STACK_SIZE bytes; nothing else uses
        // it.
        unsafe { ptr::write(closure as *mut Start<F>, start) };
        // SAFETY: `closure` is 16-aligned, the stack below it is ours and outlives the context
        // (it is only released after the final switch out of it).
        let context = unsafe {
            if preserve_fp_env {
                Context::new(closure as *mut u8, entry::<I, Y, R, F, true>, closure)
            } else {
                Context::new_light(closure as *mut u8, entry::<I, Y, R, F, false>, closure)
            }
        };
        // Backtraces through the coroutine continue in its resumer, whose saved stack pointer
        // the coroutine keeps in the top cell from its first instruction on (`entry`), until
        // its first suspend links them to its `Yielder`'s copy, which every suspend keeps up
        // to date. Resumers only nest (a running coroutine cannot be resumed), so following
        // these links never loops.
        // SAFETY: `closure` is the top the context was just made with; the cell is a word of
        // its initial frame, valid as long as the stack, which the context never outlives.
        unsafe {
            Context::link_backtrace(closure as *mut u8, Context::top_cell(closure as *mut u8))
        };
        let initial = context.stack_pointer();
        Coroutine {
            context: Some(context),
            stack: ManuallyDrop::new(Some(stack)),
            initial,
            finished: false,
            light_resumable: !preserve_fp_env,
            id,
            #[cfg(test)]
            closure: closure as *mut u8,
            _types: PhantomData,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coroutine::Builder;
    use crate::stack::CACHE_COLORS;

    #[repr(align(2097152))]
    #[derive(Clone, Copy)]
    struct Aligned2M;

    #[repr(align(128))]
    struct Aligned128 {
        _bytes: [u8; 128],
    }

    #[repr(align(256))]
    struct Aligned256 {
        _bytes: [u8; 256],
    }

    #[test]
    fn closures_are_placed_inline_only_if_size_and_alignment_fit() {
        assert!(fits_at_stack_top::<[u8; MAX_INLINE_CLOSURE]>());
        assert!(!fits_at_stack_top::<[u8; MAX_INLINE_CLOSURE + 1]>());
        assert!(fits_at_stack_top::<Aligned128>());
        assert!(!fits_at_stack_top::<Aligned256>());
        assert!(
            !fits_at_stack_top::<Aligned2M>(),
            "zero-sized, but over-aligned"
        );
    }

    /// Coroutines' tops are spread over the cache colours: the closures of 64 coroutines on
    /// stacks of one shape (whose tops all have the same offset in their page) land on many
    /// different cache lines modulo a page, not on one (as they did before the colours), and
    /// each stays in the top half of its stack's top page.
    #[test]
    fn coroutines_on_stacks_of_one_shape_have_their_tops_on_different_cache_lines() {
        let all: Vec<Coroutine<(), (), ()>> = (0..64)
            .map(|_| Coroutine::new(|_, ()| ()).unwrap())
            .collect();
        let mut lines = std::collections::BTreeSet::new();
        for co in &all {
            let top = co.stack.as_ref().unwrap().top() as usize;
            let closure = co.closure as usize;
            assert!(top - closure <= (CACHE_COLORS as usize - 1) * 64 + MAX_INLINE_ALIGN);
            assert_eq!(
                top % 4096,
                all[0].stack.as_ref().unwrap().top() as usize % 4096
            );
            lines.insert(closure % 4096 / 64);
        }
        assert!(
            lines.len() >= 16,
            "64 coroutines on {} cache lines",
            lines.len()
        );
    }

    /// Regression (issue 7, item 3): a zero-sized closure aligned to 2 MiB was placed by
    /// rounding the stack top down to 2 MiB, outside a 64 KiB stack. Checked without running
    /// it, so that it holds in debug builds too (where running it needs megabytes of stack
    /// for every frame that holds it by value to realign itself; see tests/coroutine_soundness.rs).
    #[test]
    fn an_over_aligned_closure_is_placed_in_the_top_region_of_its_stack() {
        // A thread with room for a debug build's realigned frames of `build` and `create`.
        let on_big_stack = std::thread::Builder::new().stack_size(64 << 20);
        let placed = on_big_stack.spawn(|| {
            (0..4)
                .map(|_| {
                    let a = Aligned2M;
                    let co: Coroutine<(), (), ()> = Builder::new()
                        .stack_size(64 * 1024)
                        .build(move |_, ()| {
                            let _captured = a;
                        })
                        .unwrap();
                    let top = co.stack.as_ref().unwrap().top() as usize;
                    (top, co.closure as usize)
                })
                .collect::<Vec<_>>()
        });
        for (top, slot) in placed.unwrap().join().unwrap() {
            assert!(
                slot < top
                    && top - slot
                        <= (CACHE_COLORS as usize - 1) * 64 + MAX_INLINE_CLOSURE + MAX_INLINE_ALIGN,
                "the closure slot {slot:#x} is {} bytes below the stack top {top:#x}",
                top.wrapping_sub(slot)
            );
        }
    }
}
