//! The per-thread stack pool: creating a context on a recycled stack costs no system call.
//!
//! Finished contexts give their stacks back with [`release`]; [`acquire`] (or
//! [`acquire_with_guard`]) hands out a pooled stack of the requested usable size and guard
//! before it takes one from the [arenas](super::arena) (a batch of them at once: the next
//! spawns find them here) or maps a new one. The pool belongs to the thread (contexts never
//! change thread) and gives back what it holds when the thread ends.
//!
//! **The high-water mark is a memory policy.** The pool keeps at most [`high_water_mark`]
//! stacks (default [`DEFAULT_HIGH_WATER_MARK`]), each of at most [`MAX_POOLED_STACK_SIZE`]
//! usable bytes, with the top [`WARM_STACK_BYTES`](super::WARM_STACK_BYTES) their last user
//! touched: a stack whose user went deeper gives the rest back (`MADV_DONTNEED`) when it goes
//! into the pool. (The one exception is the fast slot, which holds the last released stack
//! of the default size as it is, for the next spawn: one stack per thread, until it moves on
//! into the pool.) A stack released into a full pool goes back to its arena, its memory to the OS
//! (in batches: one system call per 64 stacks where the kernel allows it), and its slot to
//! the next stack of its shape, from any thread; a stack of its own mapping is unmapped.
//! So any number of tasklets spawn without a system call in the common case, and finished
//! ones keep at most `high-water mark × 16 KiB` of memory per thread.
//!
//! ```
//! use microthread::stack::{pool, DEFAULT_STACK_SIZE};
//! let stack = pool::acquire(DEFAULT_STACK_SIZE)?;
//! let top = stack.top();
//! pool::release(stack);
//! assert_eq!(pool::acquire(DEFAULT_STACK_SIZE)?.top(), top); // the same stack again
//! # Ok::<(), std::io::Error>(())
//! ```

use std::cell::RefCell;
use std::io;

use super::{arena, shape, Stack, DEFAULT_GUARD_SIZE, DEFAULT_STACK_SIZE, WARM_STACK_BYTES};

mod fast;

/// How many stacks a thread's pool keeps unless told otherwise.
pub const DEFAULT_HIGH_WATER_MARK: usize = 64;

/// The largest stack (usable bytes) the pool keeps: 4 MiB, 16 times the default size.
pub const MAX_POOLED_STACK_SIZE: usize = 16 * DEFAULT_STACK_SIZE;

/// The most stacks taken from the arenas, or given back to them, at once.
const BATCH: usize = 64;

struct Pool {
    stacks: Vec<Stack>,
    high_water_mark: usize,
}

/// Arena stacks released into a full pool, given back [`BATCH`] at a time.
struct Spill(Vec<Stack>);

impl Drop for Spill {
    fn drop(&mut self) {
        arena::give_back(std::mem::take(&mut self.0));
    }
}

thread_local! {
    static POOL: RefCell<Pool> = const {
        RefCell::new(Pool { stacks: Vec::new(), high_water_mark: DEFAULT_HIGH_WATER_MARK })
    };
    static SPILL: RefCell<Spill> = const { RefCell::new(Spill(Vec::new())) };
    /// Arena stacks taken in a batch and not used yet: no memory committed, zero contents.
    /// Not counted in [`len`]: they are free slots held for this thread's next spawns.
    static FRESH: RefCell<Spill> = const { RefCell::new(Spill(Vec::new())) };
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
        if let Some(stack) = fast::take() {
            return Ok(stack);
        }
    }
    acquire_pooled(size, guard)
}

/// The fast slot's stack for a new coroutine, if `size` and `guard` are the default ones and
/// the slot holds a stack; else `None` (then [`acquire_spawn_slow`]). Two functions, not one
/// returning an `io::Result`: the caller's test of that result stays off the fast path (the
/// compiler merged the two results and tested the merged one).
///
/// A stack from here needs no check of the thread's alternate signal stack (for the overflow
/// report): the slot holds stacks only once armed, and arming checked it (see `fast`).
#[inline(always)]
pub(crate) fn acquire_spawn_fast(size: usize, guard: usize) -> Option<Stack> {
    if size == DEFAULT_STACK_SIZE && guard == DEFAULT_GUARD_SIZE {
        fast::take()
    } else {
        None
    }
}

/// [`acquire_with_guard`] for a new coroutine whose stack did not come from
/// [`acquire_spawn_fast`]: also makes sure the thread has an alternate signal stack for the
/// overflow report (`overflow::ensure_altstack`).
///
/// # Errors
/// As [`acquire_with_guard`].
#[inline(never)]
pub(crate) fn acquire_spawn_slow(size: usize, guard: usize) -> io::Result<Stack> {
    crate::overflow::ensure_altstack();
    acquire_with_guard(size, guard)
}

fn acquire_pooled(size: usize, guard: usize) -> io::Result<Stack> {
    let (usable, guard) = shape(size, guard)?;
    let pooled = POOL
        .try_with(|p| {
            let mut p = p.borrow_mut();
            let i = p
                .stacks
                .iter()
                .rposition(|s| s.size() == usable && s.guard_size() == guard)?;
            Some(p.stacks.swap_remove(i))
        })
        .ok()
        .flatten();
    match pooled {
        Some(stack) => Ok(stack),
        None => refill(usable, guard),
    }
}

/// No pooled stack of this shape: one from the arenas, with up to a batch more for the pool
/// (as many as it has room for), or one of its own mapping.
#[cold]
#[inline(never)]
fn refill(usable: usize, guard: usize) -> io::Result<Stack> {
    if !arena::fits(usable, guard) {
        return Stack::with_own_mapping(usable, guard);
    }
    let fresh = FRESH
        .try_with(|f| {
            let mut f = f.borrow_mut();
            let i =
                f.0.iter()
                    .rposition(|s| s.size() == usable && s.guard_size() == guard)?;
            Some(f.0.swap_remove(i))
        })
        .ok()
        .flatten();
    if let Some(stack) = fresh {
        return Ok(stack);
    }
    let mut got = Vec::with_capacity(BATCH);
    arena::take(usable, guard, BATCH, &mut got)?;
    let first = got
        .pop()
        .expect("take gives at least one stack or an error");
    let _ = FRESH.try_with(|f| f.borrow_mut().0.append(&mut got));
    // Anything left (this thread is ending) goes back to the arena.
    arena::give_back(got);
    Ok(first)
}

/// Where the warm top of `stack` starts: [`WARM_STACK_BYTES`](super::WARM_STACK_BYTES) below
/// its top, rounded up to a page (an arena stack's top is just below its slot's range, not
/// at a page boundary).
#[inline]
fn warm_start(stack: &Stack) -> usize {
    let page = super::page_size();
    (stack.top() as usize - WARM_STACK_BYTES + page - 1) & !(page - 1)
}

/// Whether the last user of `stack` went below its warm top: sampled words of the page just
/// below it are not all zero (a page never touched since it was last given back reads as
/// zeros; a page a call chain went through holds return addresses and saved registers).
#[inline]
fn went_deep(stack: &Stack) -> bool {
    let page = super::page_size();
    if stack.size() < WARM_STACK_BYTES + page {
        return false;
    }
    if cfg!(feature = "asan") {
        // Reads of a dead context's stack may hit its frames' poison: always give back.
        return true;
    }
    let below = warm_start(stack) - page;
    (0..8).any(|k| {
        // SAFETY: `below + k * page/8` lies in the usable part of a stack whose context is
        // gone (it is being released), so nothing else reads or writes it.
        unsafe { std::ptr::read_volatile((below + k * page / 8 + page / 8 - 8) as *const u64) != 0 }
    })
}

/// Gives back what the last user of `stack` touched below its warm top, if it went there.
#[inline]
fn trim(stack: &Stack) {
    if went_deep(stack) {
        let limit = stack.limit() as usize;
        let len = warm_start(stack) - limit;
        // SAFETY: the usable part below the warm top of a stack whose context is gone. If the
        // advice fails, the memory just stays committed.
        let _ = unsafe { super::guard::discard(&[(limit, len)]) };
    }
}

/// Gives a stack back: pooled if the pool is below its high-water mark and the stack is at most
/// [`MAX_POOLED_STACK_SIZE`], unmapped otherwise.
// Always inlined: the release is a few tests and a store in the common case, and the call a
// tenth of the coroutine spawn row's instructions when the compiler kept it out of line
// (after issue 11 made the stack's range smaller: 184 -> 195).
#[inline(always)]
pub fn release(stack: Stack) {
    stack.discard_contents();
    if stack.is_default_shape() {
        match fast::put_if_empty(stack) {
            Ok(()) => {}
            Err(stack) => release_slow(stack),
        }
    } else {
        release_slow(stack);
    }
}

/// [`release`] of a stack the empty fast slot did not take: not of the default shape, or the
/// slot is full, unarmed or off.
#[inline(never)]
fn release_slow(stack: Stack) {
    let stack = if stack.is_default_shape() {
        // The newest stack takes the slot; the one it held, if any, goes to the pool.
        match fast::put(stack) {
            Ok(None) => return,
            Ok(Some(older)) => older,
            Err(stack) => stack,
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
    let in_slot = fast::len();
    let room = POOL
        .try_with(|p| {
            let p = p.borrow();
            p.stacks.len() + in_slot < p.high_water_mark
        })
        .unwrap_or(false);
    if room {
        // Kept: only its warm top may stay committed. (A stack going back to its arena gives
        // all of it back, and is never read here: a first read of a page never touched would
        // fault in the zero page.)
        trim(&stack);
        let _ = POOL.try_with(move |p| p.borrow_mut().stacks.push(stack));
    } else {
        spill(stack);
    }
}

/// A stack the full pool does not keep: an arena stack waits for a batch to go back to the
/// arena; one of its own mapping is unmapped now.
fn spill(stack: Stack) {
    if !stack.in_arena() {
        return;
    }
    let full = SPILL.try_with(|s| {
        let mut s = s.borrow_mut();
        s.0.push(stack);
        (s.0.len() >= BATCH).then(|| std::mem::take(&mut s.0))
    });
    if let Ok(Some(batch)) = full {
        arena::give_back(batch);
    }
}

/// Gives the spilled stacks back to their arenas now.
fn flush_spill() {
    if let Ok(batch) = SPILL.try_with(|s| std::mem::take(&mut s.borrow_mut().0)) {
        arena::give_back(batch);
    }
}

/// How many stacks this thread's pool holds now.
pub fn len() -> usize {
    POOL.try_with(|p| p.borrow().stacks.len()).unwrap_or(0) + fast::len()
}

/// Moves the fast slot's stack into the pool proper.
fn flush_last() {
    if let Some(s) = fast::flush() {
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
        fast::turn(n > 0);
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

/// Gives back every pooled stack of this thread: arena stacks to their arenas (their memory
/// to the OS), others unmapped.
pub fn clear() {
    flush_last();
    let stacks = POOL.with(|p| std::mem::take(&mut p.borrow_mut().stacks));
    let (arena_stacks, own): (Vec<Stack>, Vec<Stack>) =
        stacks.into_iter().partition(|s| s.in_arena());
    arena::give_back(arena_stacks);
    drop(own);
    flush_spill();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::MIN_STACK_SIZE;

    /// Whether the page holding the byte below `top` is mapped: `mincore` fails with ENOMEM
    /// on unmapped memory.
    fn is_mapped(top: usize) -> bool {
        let page = crate::stack::page_size();
        let mut vec = [0u8; 1];
        // SAFETY: mincore only inspects the page tables of the given (page-aligned) range and
        // writes one byte per page into `vec`.
        unsafe {
            libc::mincore(
                ((top - 1) & !(page - 1)) as *mut libc::c_void,
                page,
                vec.as_mut_ptr() as _,
            ) == 0
        }
    }

    /// Whether the page holding the byte below `top` is in memory (mapped and committed).
    fn is_resident(top: usize) -> bool {
        let page = crate::stack::page_size();
        let mut vec = [0u8; 1];
        // SAFETY: as in `is_mapped`.
        let rc = unsafe {
            libc::mincore(
                ((top - 1) & !(page - 1)) as *mut libc::c_void,
                page,
                vec.as_mut_ptr() as _,
            )
        };
        rc == 0 && vec[0] & 1 == 1
    }

    /// Writes the page below the stack's top, committing it.
    fn touch_top(s: &Stack) {
        // SAFETY: the top page is usable, and no context runs on the stack.
        unsafe { s.top().sub(8).write_volatile(0x5a) };
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
    /// The fast slot's stack goes back to its arena (its memory to the OS) when the thread
    /// ends: the slot is a plain word, emptied by its guard's destructor.
    #[test]
    fn the_fast_slot_gives_its_stack_back_when_the_thread_ends() {
        let top = std::thread::spawn(|| {
            let s = acquire(DEFAULT_STACK_SIZE).unwrap();
            assert!(s.is_default_shape());
            touch_top(&s);
            let top = s.top() as usize;
            release(s);
            assert_eq!(fast::len(), 1, "the stack is in the fast slot");
            assert!(is_resident(top));
            top
        })
        .join()
        .unwrap();
        assert!(is_mapped(top), "an arena slot stays mapped");
        assert!(!is_resident(top), "the thread's end gave the stack back");
    }

    /// With a high-water mark of 0 nothing is pooled, the fast slot included; raised again,
    /// the slot takes stacks again.
    #[test]
    fn a_high_water_mark_of_zero_turns_the_fast_slot_off() {
        clear();
        let old = set_high_water_mark(0);
        let s = acquire(DEFAULT_STACK_SIZE).unwrap();
        let top = s.top();
        release(s);
        assert_eq!(len(), 0, "nothing pooled");
        assert_ne!(acquire(DEFAULT_STACK_SIZE).unwrap().top(), top);
        set_high_water_mark(1);
        let s = acquire(DEFAULT_STACK_SIZE).unwrap();
        let top = s.top();
        release(s);
        assert_eq!(fast::len(), 1, "in the fast slot again");
        assert_eq!(acquire(DEFAULT_STACK_SIZE).unwrap().top(), top);
        set_high_water_mark(old);
        clear();
    }

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
        // Two for the pool and a whole batch above the mark.
        let stacks: Vec<Stack> = (0..2 + BATCH)
            .map(|_| acquire(MIN_STACK_SIZE).unwrap())
            .collect();
        assert!(stacks.iter().all(Stack::in_arena));
        stacks.iter().for_each(touch_top);
        let tops: Vec<usize> = stacks.iter().map(|s| s.top() as usize).collect();
        assert!(tops.iter().all(|&t| is_resident(t)));
        for s in stacks {
            release(s);
        }
        assert_eq!(len(), 2);
        // The first two were pooled and keep their memory; the rest went back to the OS.
        assert!(tops[..2].iter().all(|&t| is_resident(t)));
        assert!(
            tops[2..].iter().all(|&t| is_mapped(t) && !is_resident(t)),
            "stacks above the mark give their memory back"
        );
        set_high_water_mark(1);
        assert_eq!(len(), 1);
        clear();
        assert_eq!(len(), 0);
        assert!(
            tops.iter().all(|&t| !is_resident(t)),
            "clear gives all back"
        );
        set_high_water_mark(old);
    }

    #[test]
    fn a_stack_used_deeply_keeps_only_its_warm_top_when_pooled() {
        clear();
        let s = acquire(1 << 20).unwrap();
        let (limit, top) = (s.limit() as usize, s.top() as usize);
        // SAFETY: the whole usable part is ours; no context runs on it.
        unsafe { std::ptr::write_bytes(limit as *mut u8, 0x77, top - limit) };
        let page = crate::stack::page_size();
        let resident = |lo: usize, hi: usize| {
            (lo..hi)
                .step_by(page)
                .filter(|&p| is_resident(p + page))
                .count()
        };
        assert_eq!(resident(limit, top), (top - limit).div_ceil(page));
        release(s);
        assert_eq!(len(), 1, "pooled");
        assert_eq!(
            resident(limit, top - WARM_STACK_BYTES),
            0,
            "the deep part went back"
        );
        assert_eq!(
            resident(top - WARM_STACK_BYTES, top),
            WARM_STACK_BYTES / page
        );
        // A shallow user keeps its pages without a system call: nothing below is touched.
        let s = acquire(1 << 20).unwrap();
        assert_eq!(s.top() as usize, top);
        release(s);
        assert_eq!(
            resident(top - WARM_STACK_BYTES, top),
            WARM_STACK_BYTES / page
        );
        clear();
    }
}
