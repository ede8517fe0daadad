//! Stack arenas: many stacks of one shape carved side by side from one large reserved
//! mapping, each with a guard below it, so the number of mappings does not grow with the
//! number of stacks.
//!
//! A *class* is one shape, (usable bytes, guard bytes); its slots are `stride = guard +
//! usable + page` bytes apart, guard at the bottom. The extra page is the slot's top page,
//! which holds the stack's own range (its bookkeeping, 64 bytes) above the stack's top: the
//! page the stack's first frame commits anyway, so a stack costs no heap (see `Range` in
//! [`stack`](super)). An arena reserves about [`ARENA_BYTES`] of address
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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Once;

use super::guard::{self, GuardMechanism};
use super::{limits, Stack, MAX_ARENA_GUARD_SIZE, MAX_ARENA_STACK_SIZE, RANGE_RESERVE};
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

/// A slot, free or being handed out: where it starts and its owner word (its range is
/// written into its top page when it becomes a stack).
struct Slot {
    base: usize,
    owner: &'static AtomicU64,
}

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
    let mut slots = Vec::with_capacity(n);
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
        while slots.len() < n {
            let Some(slot) = class.free.pop() else {
                break;
            };
            slots.push(slot);
        }
        let want = n - slots.len();
        if want > 0 {
            if let Err(e) = carve(st, i, want, &mut slots) {
                error = Some(e);
            }
        }
    });
    prefault_tops(&slots, usable, guard);
    let got = slots.len();
    for slot in slots {
        // SAFETY: a slot of this class just taken off the free list or carved: nothing else
        // uses it; its top page is read-write (only the guard below is not).
        let stack = unsafe { Stack::in_slot(slot.base, guard, usable, slot.owner) };
        stack.mark_taken();
        out.push(stack);
    }
    match error {
        Some(e) if got == 0 => Err(e),
        _ => Ok(()),
    }
}

/// Commits the top page of each slot in one system call, where the kernel takes a batch:
/// the slot's range is written there next, and every new context writes its first frame
/// there; one call per batch costs far less than a page fault per stack (each a trap into
/// the kernel; in a virtual machine, several microseconds). Where batches are not
/// available, the pages fault in as usual.
fn prefault_tops(slots: &[Slot], usable: usize, guard: usize) {
    let page = super::page_size();
    let mut ranges = [(0usize, 0usize); guard::MAX_BATCH];
    for chunk in slots.chunks(guard::MAX_BATCH) {
        for (r, s) in ranges.iter_mut().zip(chunk) {
            *r = (s.base + guard + usable, page);
        }
        // SAFETY: the top pages of read-write slots nobody uses yet; populating writes
        // nothing (their contents stay zero).
        unsafe { guard::populate(&ranges[..chunk.len()]) };
    }
}

/// Carves up to `want` new slots of class `i` into `out`, mapping a new arena if needed.
fn carve(st: &mut State, i: usize, want: usize, out: &mut Vec<Slot>) -> io::Result<()> {
    let mechanism = guard::guard_mechanism();
    let (usable, guard) = (st.classes[i].usable, st.classes[i].guard);
    let stride = usable + guard + super::page_size();
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
        // Registered for the life of the slot, which is the process's: all of it above the
        // guard that a context may use, up to its range.
        std::mem::forget(valgrind::StackRegistration::new(
            limit,
            (slot_base + stride - RANGE_RESERVE) as *const u8,
        ));
        out.push(Slot {
            base: slot_base,
            owner: &arena.owners[index],
        });
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
    let page = super::page_size();
    // Read out of each range before its memory (the range's too) goes.
    let slots: Vec<(usize, usize, Slot)> = stacks
        .into_iter()
        .filter_map(|s| {
            s.mark_free();
            let owner = s.arena_owner()?;
            let slot = (
                s.size(),
                s.guard_size(),
                Slot {
                    base: s.base() as usize,
                    owner,
                },
            );
            // Its range is in the slot, which goes on the free list: nothing to free.
            std::mem::forget(s);
            Some(slot)
        })
        .collect();
    let mut ranges = [(0usize, 0usize); guard::MAX_BATCH];
    for chunk in slots.chunks(guard::MAX_BATCH) {
        for (r, (usable, guard, s)) in ranges.iter_mut().zip(chunk) {
            *r = (s.base + guard, usable + page);
        }
        // SAFETY: the usable parts and top pages of slots we own, whose contexts are gone
        // and whose stacks are forgotten. If the advice fails (it does not for our own
        // anonymous mappings), the memory just stays committed.
        let _ = unsafe { guard::discard(&ranges[..chunk.len()]) };
    }
    with_state(|st| {
        for (usable, guard, slot) in slots {
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
