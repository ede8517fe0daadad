//! The per-thread stack pool: creating a context on a recycled stack costs no system call.
//!
//! Finished contexts give their stacks back with [`release`]; [`acquire`] (or
//! [`acquire_with_guard`]) hands out a pooled stack of the requested usable size and guard
//! before it maps a new one. The pool keeps at most [`high_water_mark`] stacks (default
//! [`DEFAULT_HIGH_WATER_MARK`]), each of at most [`MAX_POOLED_STACK_SIZE`] usable bytes; a
//! stack released into a full pool, or larger than that, is unmapped at once, so its memory
//! and address space go back to the OS. The pool belongs to the thread (contexts never change
//! thread) and unmaps what it holds when the thread ends.
//!
//! Pooled stacks keep the pages their last user touched; that is the price of reuse without a
//! system call, bounded by the high-water mark times the size cap (by default 64 × 4 MiB of
//! address space per thread, of which only touched pages cost memory).
//!
//! ```
//! use microthread::stack::{pool, DEFAULT_STACK_SIZE};
//! let stack = pool::acquire(DEFAULT_STACK_SIZE)?;
//! let top = stack.top();
//! pool::release(stack);
//! assert_eq!(pool::acquire(DEFAULT_STACK_SIZE)?.top(), top); // the same stack again
//! # Ok::<(), std::io::Error>(())
//! ```

use std::cell::{Cell, RefCell};
use std::io;

use super::MIN_STACK_SIZE;
use super::{round_to_pages, rounded_guard, Stack, DEFAULT_GUARD_SIZE, DEFAULT_STACK_SIZE};

/// How many stacks a thread's pool keeps unless told otherwise.
pub const DEFAULT_HIGH_WATER_MARK: usize = 64;

/// The largest stack (usable bytes) the pool keeps: 4 MiB, 16 times the default size.
pub const MAX_POOLED_STACK_SIZE: usize = 16 * DEFAULT_STACK_SIZE;

struct Pool {
    stacks: Vec<Stack>,
    high_water_mark: usize,
}

thread_local! {
    /// The most recently released stack of the default size and guard: the common case of a
    /// spawn right after a finish costs no search and no `RefCell` borrow. Counts towards the
    /// pool.
    static LAST_DEFAULT: Cell<Option<Stack>> = const { Cell::new(None) };
    /// Whether the fast slot may hold a stack: the high-water mark is not zero.
    static FAST_SLOT_ON: Cell<bool> = const { Cell::new(DEFAULT_HIGH_WATER_MARK > 0) };
    static POOL: RefCell<Pool> = const {
        RefCell::new(Pool { stacks: Vec::new(), high_water_mark: DEFAULT_HIGH_WATER_MARK })
    };
}

/// A stack with `size` usable bytes (rounded as [`Stack::new`] does) and the default guard: a
/// pooled one if the pool has one of that shape, otherwise a new mapping.
///
/// # Errors
/// As [`Stack::new`].
#[inline]
pub fn acquire(size: usize) -> io::Result<Stack> {
    acquire_with_guard(size, DEFAULT_GUARD_SIZE)
}

/// A stack with `size` usable bytes and a guard of at least `guard` bytes (both rounded as
/// [`Stack::with_guard`] does): a pooled one if the pool has one of exactly that shape,
/// otherwise a new mapping.
///
/// # Errors
/// As [`Stack::with_guard`].
#[inline]
pub fn acquire_with_guard(size: usize, guard: usize) -> io::Result<Stack> {
    if size == DEFAULT_STACK_SIZE && guard == DEFAULT_GUARD_SIZE {
        if let Ok(Some(stack)) = LAST_DEFAULT.try_with(|c| c.take()) {
            return Ok(stack);
        }
    }
    acquire_pooled(size, guard)
}

fn acquire_pooled(size: usize, guard: usize) -> io::Result<Stack> {
    let shape = round_to_pages(size.max(MIN_STACK_SIZE)).zip(rounded_guard(guard));
    let pooled = shape.and_then(|(usable, guard)| {
        POOL.try_with(|p| {
            let mut p = p.borrow_mut();
            let i = p
                .stacks
                .iter()
                .rposition(|s| s.size() == usable && s.guard_size() == guard)?;
            Some(p.stacks.swap_remove(i))
        })
        .ok()
        .flatten()
    });
    match pooled {
        Some(stack) => Ok(stack),
        None => Stack::with_guard(size, guard),
    }
}

/// Gives a stack back: pooled if the pool is below its high-water mark and the stack is at most
/// [`MAX_POOLED_STACK_SIZE`], unmapped otherwise.
#[inline]
pub fn release(stack: Stack) {
    stack.discard_contents();
    let stack = if stack.is_default_shape() && FAST_SLOT_ON.with(Cell::get) {
        match LAST_DEFAULT.try_with(move |c| match c.take() {
            None => {
                c.set(Some(stack));
                None
            }
            Some(other) => {
                c.set(Some(stack));
                Some(other)
            }
        }) {
            Ok(None) => return,
            Ok(Some(other)) => other,
            Err(_) => return,
        }
    } else {
        stack
    };
    release_pooled(stack);
}

fn release_pooled(stack: Stack) {
    if stack.size() > MAX_POOLED_STACK_SIZE {
        // Unmapped here: a parked huge stack would hold its address space for nobody.
        return;
    }
    // The fast slot's stack counts towards the mark too.
    let in_slot = LAST_DEFAULT
        .try_with(|c| {
            let s = c.take();
            let n = s.is_some() as usize;
            c.set(s);
            n
        })
        .unwrap_or(0);
    let _ = POOL.try_with(move |p| {
        let mut p = p.borrow_mut();
        if p.stacks.len() + in_slot < p.high_water_mark {
            p.stacks.push(stack);
        }
        // Otherwise `stack` is dropped here, which unmaps it.
    });
}

/// How many stacks this thread's pool holds now.
pub fn len() -> usize {
    let last = LAST_DEFAULT
        .try_with(|c| {
            let s = c.take();
            let n = s.is_some() as usize;
            c.set(s);
            n
        })
        .unwrap_or(0);
    POOL.try_with(|p| p.borrow().stacks.len()).unwrap_or(0) + last
}

/// Moves the fast slot's stack into the pool proper.
fn flush_last() {
    if let Ok(Some(s)) = LAST_DEFAULT.try_with(|c| c.take()) {
        release_pooled(s);
    }
}

/// The most stacks this thread's pool keeps.
pub fn high_water_mark() -> usize {
    POOL.try_with(|p| p.borrow().high_water_mark).unwrap_or(0)
}

/// Sets the most stacks this thread's pool keeps, unmapping any above the new mark at once.
/// Returns the previous mark. `0` disables pooling.
pub fn set_high_water_mark(n: usize) -> usize {
    flush_last();
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        let old = std::mem::replace(&mut p.high_water_mark, n);
        FAST_SLOT_ON.with(|c| c.set(n > 0));
        let excess: Vec<Stack> = if p.stacks.len() > n {
            p.stacks.drain(n..).collect()
        } else {
            Vec::new()
        };
        drop(p);
        drop(excess);
        old
    })
}

/// Unmaps every pooled stack of this thread.
pub fn clear() {
    flush_last();
    let stacks = POOL.with(|p| std::mem::take(&mut p.borrow_mut().stacks));
    drop(stacks);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the page below `top` is mapped: `mincore` fails with ENOMEM on unmapped memory.
    fn is_mapped(top: usize) -> bool {
        let page = crate::stack::page_size();
        let mut vec = [0u8; 1];
        // SAFETY: mincore only inspects the page tables of the given (page-aligned) range and
        // writes one byte per page into `vec`.
        unsafe {
            libc::mincore(
                (top - page) as *mut libc::c_void,
                page,
                vec.as_mut_ptr() as _,
            ) == 0
        }
    }

    #[test]
    fn stacks_are_reused() {
        clear();
        let a = acquire(64 * 1024).unwrap();
        let (top, size) = (a.top(), a.size());
        release(a);
        assert_eq!(len(), 1);
        let b = acquire(64 * 1024).unwrap();
        assert_eq!(b.top(), top);
        assert_eq!(b.size(), size);
        assert_eq!(len(), 0);
        // A different size is not served from the pool.
        release(b);
        let c = acquire(128 * 1024).unwrap();
        assert_ne!(c.top(), top);
        assert_eq!(len(), 1);
        clear();
    }

    /// Regression: the pool kept a stack of any size, so a parked huge stack held its address
    /// space (a 64 TiB one made the next such request fail).
    #[test]
    fn stacks_larger_than_the_cap_are_unmapped_at_release_not_pooled() {
        clear();
        let big = acquire(MAX_POOLED_STACK_SIZE + 1).unwrap();
        assert!(big.size() > MAX_POOLED_STACK_SIZE);
        let top = big.top() as usize;
        assert!(is_mapped(top));
        release(big);
        assert_eq!(len(), 0, "a stack above the cap is not pooled");
        assert!(!is_mapped(top), "a stack above the cap goes back to the OS");
        // Far above it (256 times; not terabytes, which take qemu-user a minute to map): the
        // address space is given back at once, every time.
        for _ in 0..3 {
            let huge = acquire(1 << 30).unwrap();
            release(huge);
            assert_eq!(len(), 0);
        }
        // At the cap, a stack is still pooled.
        let at_cap = acquire(MAX_POOLED_STACK_SIZE).unwrap();
        let top = at_cap.top();
        release(at_cap);
        assert_eq!(len(), 1);
        assert_eq!(acquire(MAX_POOLED_STACK_SIZE).unwrap().top(), top);
        clear();
    }

    #[test]
    fn stacks_are_pooled_by_size_and_guard() {
        clear();
        let page = crate::stack::page_size();
        let big_guard = 16 * page;
        let a = acquire_with_guard(64 * 1024, big_guard).unwrap();
        assert_eq!(a.guard_size(), big_guard);
        let top = a.top();
        release(a);
        // Same size, other guard: not this stack.
        let b = acquire(64 * 1024).unwrap();
        assert_ne!(b.top(), top);
        assert_eq!(
            b.guard_size(),
            crate::stack::rounded_guard(DEFAULT_GUARD_SIZE).unwrap()
        );
        // Same size and guard (asked for in other words: rounded alike): this stack.
        let c = acquire_with_guard(64 * 1024, big_guard - 1).unwrap();
        assert_eq!(c.top(), top);
        assert_eq!(c.guard_size(), big_guard);
        // The default shape with a larger guard never goes into the fast slot's place.
        let d = acquire_with_guard(DEFAULT_STACK_SIZE, big_guard).unwrap();
        let d_top = d.top();
        release(d);
        assert_ne!(acquire(DEFAULT_STACK_SIZE).unwrap().top(), d_top);
        drop((b, c));
        clear();
    }

    #[test]
    fn memory_above_the_high_water_mark_goes_back_to_the_os() {
        clear();
        let old = set_high_water_mark(2);
        let stacks: Vec<Stack> = (0..6).map(|_| acquire(MIN_STACK_SIZE).unwrap()).collect();
        let tops: Vec<usize> = stacks.iter().map(|s| s.top() as usize).collect();
        assert!(tops.iter().all(|&t| is_mapped(t)));
        for s in stacks {
            release(s);
        }
        assert_eq!(len(), 2);
        // The first two were pooled and stay mapped; the other four went back to the OS.
        assert!(tops[..2].iter().all(|&t| is_mapped(t)));
        assert!(
            tops[2..].iter().all(|&t| !is_mapped(t)),
            "stacks above the mark are unmapped"
        );
        set_high_water_mark(1);
        assert_eq!(len(), 1);
        assert_eq!(tops[..2].iter().filter(|&&t| is_mapped(t)).count(), 1);
        set_high_water_mark(old);
        clear();
        assert_eq!(len(), 0);
    }
}
