//! Stack arenas: many stacks of one shape carved side by side from one large reserved
//! mapping, each with a guard below it, so the number of mappings does not grow with the
//! number of stacks.
//!
//! A *class* is one shape, (usable bytes, guard bytes); its slots are `stride = guard +
//! usable` bytes apart, guard at the bottom. An arena reserves about [`ARENA_BYTES`] of address
//! space (`MAP_NORESERVE`: only touched pages cost memory) and is carved on demand, a batch of
//! slots at a time, whose guards are installed in one system call where the kernel allows it
//! (see [`guard`](super::guard)). Arenas are never unmapped: a freed slot gives its memory
//! back (`MADV_DONTNEED`) and keeps its guard, and the next stack of its class takes it.
//!
//! The free slots of all classes sit in one process-wide list behind a spin lock that `fork`
//! cannot leave held (the same `pthread_atfork` scheme as the overflow registry's). Each
//! thread's [`pool`](super::pool) takes and returns slots in batches, so a spawn normally
//! touches neither the lock nor the kernel.
//!
//! **The `mprotect` fallback** costs two mappings per carved slot. To keep the process's own
//! allocations working, the arenas then carve at most `(vm.max_map_count - reserve) / 2`
//! slots, with `reserve = max(vm.max_map_count / 8, 4096)` mappings left for everything
//! else, and refuse the next with an error that names the limit and how to raise it.
//!
//! ```
//! use microthread::stack::Stack;
//! let a = Stack::new(64 * 1024)?;
//! let b = Stack::new(64 * 1024)?;
//! assert!(a.in_arena() && b.in_arena());
//! // Same class: slots of one arena (or of two), never overlapping.
//! assert!(a.base() as usize >= b.top() as usize || b.base() as usize >= a.top() as usize);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::cell::UnsafeCell;
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Once;

use super::guard::{self, GuardMechanism};
use super::{limits, Backing, Range, Stack, MAX_ARENA_GUARD_SIZE, MAX_ARENA_STACK_SIZE};
use crate::{overflow, valgrind};

/// The address space one arena reserves: 1 GiB (between 8 and 4,096 slots).
pub const ARENA_BYTES: usize = 1 << 30;
/// The fewest slots an arena has.
const MIN_SLOTS: usize = 8;
/// The most slots an arena has.
const MAX_SLOTS: usize = 4096;

/// One arena's mapping, leaked: slots refer to it for the life of the process.
pub(crate) struct Arena {
    /// The owner word of each slot, for the overflow report.
    owners: Box<[AtomicU64]>,
}

/// A slot pointer in the free list; only moved under the lock.
struct Slot(NonNull<Range>);
// SAFETY: a free slot's `Range` is not referred to by anything but this list entry.
unsafe impl Send for Slot {}

struct Class {
    usable: usize,
    guard: usize,
    /// The arena being carved, its base, stride, slot count and how many are carved.
    current: Option<(&'static Arena, usize, usize, usize)>,
    carved: usize,
    free: Vec<Slot>,
}

struct State {
    classes: Vec<Class>,
    /// Slots carved with `mprotect` guards in the whole process (two mappings each).
    mprotect_slots: usize,
}

struct Lock {
    locked: AtomicBool,
    state: UnsafeCell<State>,
}

// SAFETY: `state` is only reached with `locked` taken (see `with_state`).
unsafe impl Sync for Lock {}

static LOCK: Lock = Lock {
    locked: AtomicBool::new(false),
    state: UnsafeCell::new(State {
        classes: Vec::new(),
        mprotect_slots: 0,
    }),
};

fn lock() {
    let mut spins = 0u32;
    while LOCK.locked.swap(true, Ordering::Acquire) {
        spins += 1;
        if spins < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

fn unlock() {
    LOCK.locked.store(false, Ordering::Release);
}

extern "C" fn before_fork() {
    lock();
}

extern "C" fn after_fork() {
    unlock();
}

fn with_state<T>(f: impl FnOnce(&mut State) -> T) -> T {
    static ATFORK: Once = Once::new();
    ATFORK.call_once(|| {
        // SAFETY: both handlers only take and release the spin lock.
        unsafe { libc::pthread_atfork(Some(before_fork), Some(after_fork), Some(after_fork)) };
    });
    lock();
    // SAFETY: the lock is held; this is the only access until it is released.
    let r = f(unsafe { &mut *LOCK.state.get() });
    unlock();
    r
}

/// Whether stacks of this shape (page-rounded usable and guard bytes) come from arenas.
pub(crate) fn fits(usable: usize, guard: usize) -> bool {
    usable <= MAX_ARENA_STACK_SIZE && guard <= MAX_ARENA_GUARD_SIZE
}

/// The most slots the `mprotect` fallback carves in this process:
/// `(vm.max_map_count - max(vm.max_map_count / 8, 4096)) / 2`.
///
/// ```
/// use microthread::stack::{arena, limits};
/// assert!(arena::mprotect_slot_budget() < limits::max_map_count() / 2);
/// ```
pub fn mprotect_slot_budget() -> usize {
    let max = limits::max_map_count();
    let reserve = (max / 8).max(4096);
    max.saturating_sub(reserve) / 2
}

/// Takes up to `n` (at least one) stacks of the shape (page-rounded `usable`, `guard`, which
/// [`fits`]) into `out`: free slots first, then newly carved ones.
///
/// # Errors
/// The OS's refusal to map an arena or install a guard, explained (see
/// [`limits`](super::limits)), or the fallback's mapping budget used up; only if not even one
/// stack could be had.
pub(crate) fn take(usable: usize, guard: usize, n: usize, out: &mut Vec<Stack>) -> io::Result<()> {
    let n = n.max(1);
    let before = out.len();
    let mut error = None;
    with_state(|st| {
        let i = match st
            .classes
            .iter()
            .position(|c| c.usable == usable && c.guard == guard)
        {
            Some(i) => i,
            None => {
                st.classes.push(Class {
                    usable,
                    guard,
                    current: None,
                    carved: 0,
                    free: Vec::new(),
                });
                st.classes.len() - 1
            }
        };
        let class = &mut st.classes[i];
        while out.len() - before < n {
            let Some(Slot(p)) = class.free.pop() else {
                break;
            };
            // SAFETY: a free slot's range is owned by the list; taking it out makes it this
            // stack's.
            out.push(unsafe { Stack::from_raw(p) });
        }
        let want = n - (out.len() - before);
        if want > 0 {
            if let Err(e) = carve(st, i, want, out) {
                error = Some(e);
            }
        }
    });
    for s in &out[before..] {
        s.mark_taken();
    }
    prefault_tops(&out[before..]);
    match error {
        Some(e) if out.len() == before => Err(e),
        _ => Ok(()),
    }
}

/// Commits the top page of each stack in one system call, where the kernel takes a batch:
/// every new context writes its first frame there, and one call per batch costs far less
/// than a page fault per stack (each a trap into the kernel; in a virtual machine, several
/// microseconds). Where batches are not available, the stacks fault their pages in as usual.
fn prefault_tops(stacks: &[Stack]) {
    let page = super::page_size();
    let mut ranges = [(0usize, 0usize); guard::MAX_BATCH];
    for chunk in stacks.chunks(guard::MAX_BATCH) {
        for (r, s) in ranges.iter_mut().zip(chunk) {
            *r = (s.top() as usize - page, page);
        }
        // SAFETY: the top pages of read-write stacks nobody runs on yet; populating writes
        // nothing (their contents stay zero).
        unsafe { guard::populate(&ranges[..chunk.len()]) };
    }
}

/// Carves up to `want` new slots of class `i` into `out`, mapping a new arena if needed.
fn carve(st: &mut State, i: usize, want: usize, out: &mut Vec<Stack>) -> io::Result<()> {
    let mechanism = guard::guard_mechanism();
    let (usable, guard) = (st.classes[i].usable, st.classes[i].guard);
    let stride = usable + guard;
    let mut want = want;
    if mechanism == GuardMechanism::Mprotect {
        let budget = mprotect_slot_budget();
        let left = budget.saturating_sub(st.mprotect_slots);
        if left == 0 {
            return Err(limits::fallback_budget_exhausted(budget));
        }
        want = want.min(left);
    }
    let class = &mut st.classes[i];
    let (arena, base, slots, carved) = match class.current {
        Some((a, base, slots, carved)) if carved < slots => (a, base, slots, carved),
        _ => {
            let (a, base, slots) = map_arena(stride, guard, usable)?;
            class.current = Some((a, base, slots, 0));
            (a, base, slots, 0)
        }
    };
    let count = want.min(slots - carved).min(guard::MAX_BATCH);
    let mut ranges = [(0usize, 0usize); guard::MAX_BATCH];
    for (k, r) in ranges[..count].iter_mut().enumerate() {
        *r = (base + (carved + k) * stride, guard);
    }
    // SAFETY: the ranges are the guards of slots of our arena that nothing has used yet.
    unsafe { guard::install(&ranges[..count]) }.map_err(limits::explain_guard_failure)?;
    class.current = Some((arena, base, slots, carved + count));
    class.carved += count;
    if mechanism == GuardMechanism::Mprotect {
        st.mprotect_slots += count;
    }
    for k in 0..count {
        let index = carved + k;
        let slot_base = base + index * stride;
        let limit = (slot_base + guard) as *const u8;
        // Registered for the life of the slot, which is the process's.
        std::mem::forget(valgrind::StackRegistration::new(
            limit,
            limit.wrapping_add(usable),
        ));
        let range = Range {
            base: slot_base,
            guard,
            usable,
            backing: if super::is_default(usable, guard) {
                Backing::DefaultArena(&arena.owners[index])
            } else {
                Backing::Arena(&arena.owners[index])
            },
        };
        out.push(Stack::from_range(range));
    }
    Ok(())
}

/// Maps a new arena for slots of `stride` bytes, halving its size while the OS refuses
/// (`RLIMIT_AS`, overcommit) down to [`MIN_SLOTS`]. Returns it with its base and slot count.
fn map_arena(
    stride: usize,
    guard: usize,
    usable: usize,
) -> io::Result<(&'static Arena, usize, usize)> {
    let mut slots = (ARENA_BYTES / stride).clamp(MIN_SLOTS, MAX_SLOTS);
    loop {
        let len = slots * stride;
        // SAFETY: an anonymous private reservation with no address hint.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if p != libc::MAP_FAILED {
            let base = p as usize;
            let owners: Box<[AtomicU64]> = (0..slots)
                .map(|_| AtomicU64::new(overflow::FREE_SLOT))
                .collect();
            let arena: &'static Arena = Box::leak(Box::new(Arena { owners }));
            overflow::register_arena(base, len, stride, guard, usable, &arena.owners);
            return Ok((arena, base, slots));
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ENOMEM) || slots == MIN_SLOTS {
            return Err(limits::explain_map_failure(e, len));
        }
        slots = (slots / 2).max(MIN_SLOTS);
    }
}

/// Gives arena stacks back for good: their memory goes back to the OS (in one system call
/// where the kernel allows it), their guards stay, and their slots go on the free list.
pub(crate) fn give_back(stacks: Vec<Stack>) {
    let mut ranges = [(0usize, 0usize); guard::MAX_BATCH];
    for chunk in stacks.chunks(guard::MAX_BATCH) {
        for (r, s) in ranges.iter_mut().zip(chunk) {
            *r = (s.limit() as usize, s.size());
        }
        // SAFETY: the usable parts of stacks we own, whose contexts are gone. If the advice
        // fails (it does not for our own anonymous mappings), the memory just stays committed.
        let _ = unsafe { guard::discard(&ranges[..chunk.len()]) };
    }
    let slots: Vec<Slot> = stacks
        .into_iter()
        .map(|s| {
            s.mark_free();
            Slot(s.into_raw())
        })
        .collect();
    with_state(|st| {
        for slot in slots {
            // SAFETY: the range is a live arena slot's.
            let r = unsafe { slot.0.as_ref() };
            let (usable, guard) = (r.usable, r.guard);
            if let Some(c) = st
                .classes
                .iter_mut()
                .find(|c| c.usable == usable && c.guard == guard)
            {
                c.free.push(slot);
            }
        }
    });
}

/// Slots carved so far in this process, over all classes.
///
/// ```
/// use microthread::stack::{arena, Stack};
/// let s = Stack::new(48 * 1024)?;
/// assert!(arena::carved_slots() >= 1);
/// # drop(s);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn carved_slots() -> usize {
    with_state(|st| st.classes.iter().map(|c| c.carved).sum())
}

/// Free slots waiting in the process-wide list, over all classes (the threads' pools hold
/// more).
///
/// ```
/// use microthread::stack::{arena, Stack};
/// let s = Stack::new(40 * 1024)?;
/// let before = arena::free_slots();
/// drop(s);
/// assert_eq!(arena::free_slots(), before + 1);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn free_slots() -> usize {
    with_state(|st| st.classes.iter().map(|c| c.free.len()).sum())
}
