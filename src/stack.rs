//! Guard-paged stacks for contexts, and the per-thread pool that recycles them.
//!
//! A [`Stack`] is a range of memory: a guard region at the bottom (lowest addresses) that
//! faults on any access, and the usable stack above it, growing down from [`Stack::top`].
//! Sizes are rounded up to whole pages with checked arithmetic.
//!
//! | | x86_64, aarch64 | riscv64 |
//! |---|---|---|
//! | default usable size ([`DEFAULT_STACK_SIZE`]) | 256 KiB | 256 KiB |
//! | minimum usable size ([`MIN_STACK_SIZE`]) | 32 KiB | 32 KiB |
//! | guard ([`DEFAULT_GUARD_SIZE`]) | one page | 1 MiB |
//!
//! Why the riscv64 guard is larger: rustc emits stack probes on x86_64 and aarch64, so a
//! function with a large frame touches every page of it in order and no frame can step over
//! a one-page guard there. rustc emits none on riscv64: a function moves the stack pointer
//! down by its whole frame at once and then touches whatever part it uses first, so a frame
//! larger than the guard can land below it, in the next mapping, which is usually another
//! stack (with the former 64 KiB guard, a 200 KiB local silently wrote into a neighbouring
//! tasklet's stack). Any access within a frame no larger than the guard, on the other hand,
//! lands either in the stack or in its guard, since the frame starts inside the stack.
//!
//! The riscv64 guard is 1 MiB, as Linux's own gap below a thread's main stack
//! (`stack_guard_gap`, 256 pages, sized after the "Stack Clash" attacks for the same
//! reason): larger than any frame of realistic code, whose big buffers live on the heap. It
//! costs address space only, no memory, and the address space allows it even on Sv39, the
//! smallest riscv64 layout (39-bit virtual addresses, 256 GiB for user space): a default
//! stack takes 1.25 MiB, so some 200 000 stacks fit, far more than the 32 000 that Linux's
//! default `vm.max_map_count` (65 530 mappings, two per stack) allows anyway; Sv48 and Sv57
//! leave 512 and 262 144 times as much. Where more or larger frames are expected, pass a larger
//! guard ([`Stack::with_guard`], `guard_size` on `coroutine::Builder` and
//! `scheduler::TaskletBuilder`).
//!
//! **The remaining limit on riscv64:** a frame larger than its stack's guard can still step
//! over it and write into whatever is mapped below, without any report. Keep frames smaller
//! than the guard (large buffers on the heap), or raise the guard to the largest frame.
//!
//! The usable part is reserved, not committed: an idle suspended context costs the pages it
//! has touched (typically one), whatever its size.
//!
//! **Arenas.** A stack of at most [`MAX_ARENA_STACK_SIZE`] usable bytes with a guard of at most
//! [`MAX_ARENA_GUARD_SIZE`] is a slot of a large shared mapping ([`arena`]), so a million of
//! them take a few hundred mappings, not two million; its guard is installed by
//! `madvise(MADV_GUARD_INSTALL)` where the kernel supports it and `mprotect` otherwise
//! ([`guard_mechanism`], probed once). Larger stacks get a mapping of their own, as before.
//! A dropped arena stack gives its memory back and its slot to the next stack of its shape;
//! its guard stays. [`limits`] explains the errors at the OS's limits.
//!
//! A fault in the guard of any stack made here is reported by the crate's signal handler as
//! `microthread: coroutine <id> overflowed its stack of <N> bytes` (or `tasklet <id>`), then
//! the process dies of the fault.
//!
//! ```
//! use microthread::stack::{Stack, DEFAULT_STACK_SIZE};
//! let stack = Stack::new(DEFAULT_STACK_SIZE)?;
//! assert_eq!(stack.size(), DEFAULT_STACK_SIZE);
//! assert!(stack.top() as usize - stack.limit() as usize >= stack.size());
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use memmap2::{MmapMut, MmapOptions};

use crate::overflow;
use crate::valgrind;

pub mod arena;
pub mod guard;
pub mod limits;
pub mod pool;

pub use guard::{guard_mechanism, GuardMechanism};

/// Usable bytes of a stack when the caller does not say: 256 KiB.
///
/// Enough for ordinary Rust code, formatting and panics with backtraces; only touched pages
/// cost memory, so a large reservation is cheap, and a million of them still fit the address
/// space of a 47-bit process.
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;

/// The smallest usable size accepted: 32 KiB, room for the entry frame, a panic whose hook
/// captures and prints a backtrace (about 24 KiB on x86_64), and a signal frame.
pub const MIN_STACK_SIZE: usize = 32 * 1024;

/// Bytes of the guard below each stack (rounded up to pages at run time).
#[cfg(not(target_arch = "riscv64"))]
pub const DEFAULT_GUARD_SIZE: usize = 4096;
/// Bytes of the guard below each stack: 1 MiB on riscv64, where rustc emits no stack probes
/// and a frame must not be able to step over the guard (see the [module docs](self)).
#[cfg(target_arch = "riscv64")]
pub const DEFAULT_GUARD_SIZE: usize = 1024 * 1024;

/// The largest usable size of a stack carved from an arena: 4 MiB (larger ones get a
/// mapping of their own).
pub const MAX_ARENA_STACK_SIZE: usize = 16 * DEFAULT_STACK_SIZE;

/// The largest guard of a stack carved from an arena: 1 MiB.
pub const MAX_ARENA_GUARD_SIZE: usize = 1024 * 1024;

/// The top of a recycled stack that keeps its pages: 16 KiB. A stack going back to a
/// thread's pool whose last user went deeper gives the rest back to the OS
/// (`MADV_DONTNEED`), so one deep recursion does not hold its memory for ever.
pub const WARM_STACK_BYTES: usize = 16 * 1024;

/// The system page size, read once with `sysconf` (never assumed to be 4096).
pub fn page_size() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if n > 0 {
            n as usize
        } else {
            4096
        }
    })
}

/// Rounds `n` up to a whole number of pages, or `None` if that overflows.
fn round_to_pages(n: usize) -> Option<usize> {
    let page = page_size();
    n.checked_add(page - 1).map(|n| n & !(page - 1))
}

/// The guard bytes that a request for `guard` gets: whole pages, at least one.
fn rounded_guard(guard: usize) -> Option<usize> {
    round_to_pages(guard.max(1))
}

/// Whether (page-rounded) `usable` and `guard` are what `Stack::new(DEFAULT_STACK_SIZE)` gives.
fn is_default(usable: usize, guard: usize) -> bool {
    usable == DEFAULT_STACK_SIZE && Some(guard) == rounded_guard(DEFAULT_GUARD_SIZE)
}

/// A guard-paged stack: `[base, base + guard)` faults on access, `[limit, top)` is usable.
#[repr(transparent)]
pub struct Stack {
    /// One pointer, so that a `Stack` moves cheaply through the pool, coroutines and tasklets
    /// on every spawn (a four-word value copied around made the CPU's store-to-load
    /// forwarding fail on each copy). A stack with its own mapping owns a boxed `Range`; an
    /// arena slot's `Range` is allocated once when the slot is carved and handed from stack to
    /// stack with the slot.
    range: NonNull<Range>,
}

// SAFETY: a `Stack` owns its `Range` exclusively (as a `Box` would), and `Range` is `Send` and
// `Sync` (checked below).
unsafe impl Send for Stack {}
// SAFETY: as above: `&Stack` gives only `&Range`.
unsafe impl Sync for Stack {}

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Range>();
};

/// The offsets of a `Range`'s `base`, `guard` and `usable` (`top - base - guard`), for the
/// debugger (a `Stack` is one pointer to its `Range`: `scheduler::debug_root`).
pub(crate) const DEBUG_RANGE_OFFSETS: [usize; 3] = [
    std::mem::offset_of!(Range, base),
    std::mem::offset_of!(Range, guard),
    std::mem::offset_of!(Range, usable),
];

/// A stack's range and what backs it: seven words (`Backing` is a pointer and a tag).
///
/// An arena slot's range lives in the slot itself, in the last [`RANGE_RESERVE`] bytes of its
/// top page, just above [`Stack::top`]: the page every user of the stack commits anyway, so an
/// arena stack costs no heap at all (issue 11: it was a 48-byte malloc chunk per slot). For
/// that the slot has one page more than its usable size ([`arena`]), and `top - limit` is
/// that page less the reserve larger than [`Stack::size`]. The range is written when the
/// slot is taken from its arena and gone with the slot's memory when it goes back. A stack
/// of its own mapping has its range in a box.
pub(crate) struct Range {
    /// The lowest address: the start of the guard.
    base: usize,
    /// Bytes of the guard at `base`.
    guard: usize,
    /// Usable bytes above the guard: `top - limit`.
    usable: usize,
    /// The usable bytes of the stack's shape, page-rounded: what [`Stack::size`] reports and
    /// the pool matches requests by.
    size: usize,
    /// The stack's owner word in the overflow registry (an arena's word for its slot, or the
    /// registry entry of a mapping of its own): written at every spawn (`Stack::set_owner`)
    /// with one store, whatever backs the stack.
    owner: &'static AtomicU64,
    backing: Backing,
}

/// Bytes at the top of an arena slot that hold its [`Range`]: a cache line.
pub(crate) const RANGE_RESERVE: usize = 64;

/// A per-coroutine or per-tasklet offset of a stack's top, in whole cache lines within the
/// top half of the page: one of [`CACHE_COLORS`] offsets, 0 to 1,984 bytes, a hash of
/// `seed` (the coroutine's or tasklet's id). Coroutines ([`crate::coroutine`]) and tasklets
/// place their closure and first frame that far below [`Stack::top`].
///
/// Stack tops are page-aligned, so without it every context's hot top (its first frames, a
/// suspended context's saved registers, a tasklet's record) would sit at the same address
/// modulo 4096:
///
/// - the level-1 data cache picks a set by address bits 6 to 11, and a set holds 8 to 12
///   lines: a program that resumes a dozen coroutines in turn evicted each one's top before
///   it came round again. Measured on a 2-vCPU Intel Xeon (AMX, 12-way L1), resuming 12
///   suspended coroutines in turn: 9-10 ns per round trip without colours, 1.9 with them;
///   at 64 coroutines 2.9 ns, corosensei (no colours) 10.6 ns (`switch_round_trip_64_ns` in
///   the report);
/// - the CPU's memory disambiguation compares the low 12 bits of a load with earlier stores,
///   and would see false dependencies between the registers one context saves and the ones
///   the next restores on every switch.
///
/// Only the top half: what a tasklet blocked in a channel receive has on its stack (its
/// record and the stack's range, 320 bytes, above the colour; closure, first frame, the
/// receive chain, under 1 KiB) then stays in the top page, the one a fresh stack has
/// committed. With offsets up to the whole page, about one blocked tasklet in six
/// committed a second page (tests/blocked_footprint.rs).
#[inline(always)]
pub(crate) fn cache_color(seed: u64) -> usize {
    ((seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - CACHE_COLORS.trailing_zeros())) as usize)
        * 64
}

/// How many cache colours stacks have (a power of two; 64 bytes apart).
pub(crate) const CACHE_COLORS: u32 = 32;

#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<Range>() == 56);
const _: () = assert!(std::mem::size_of::<Range>() <= RANGE_RESERVE);
const _: () = assert!(std::mem::align_of::<Range>() <= 16);

pub(crate) enum Backing {
    /// A mapping of its own, unmapped when the stack is dropped; what it needs for that in a
    /// box of its own (such stacks are rare: the arenas' slots keep the common range small).
    /// Held for its `Drop` only: the range's `owner` is the registration's owner word.
    Own(#[allow(dead_code)] /* held for its drop */ Box<OwnBacking>),
    /// A slot of an arena, which lives as long as the process (its owner word is the
    /// range's `owner`). (Its registration with valgrind, if valgrind runs, lasts as long as
    /// the slot: for ever, so nothing keeps it.)
    Arena,
    /// The same, of the shape `Stack::new(DEFAULT_STACK_SIZE)` gives: the pool's fast slot
    /// holds only such stacks, and its release path tests the tag for it.
    DefaultArena,
}

/// Fields drop in declaration order: both registrations go before `map` is unmapped, so that
/// no other thread's new mapping at the same address can match a stale entry.
pub(crate) struct OwnBacking {
    /// The usable part as valgrind knows it; dropped (deregistered) before `map`.
    _valgrind: valgrind::StackRegistration,
    /// This stack's entry in the overflow handler's guard registry; dropped before `map`.
    _registration: overflow::Registration,
    /// Owns the whole range, guard included.
    _map: MmapMut,
}

impl Stack {
    /// A stack of at least `size` usable bytes (rounded up to pages, at least
    /// [`MIN_STACK_SIZE`]) with the default guard below it: an arena slot if the size is at
    /// most [`MAX_ARENA_STACK_SIZE`], else a mapping of its own.
    ///
    /// # Errors
    /// `InvalidInput` if the size overflows when rounded; the OS error if `mmap`, `madvise`
    /// or `mprotect` fails, explained if a limit was reached (see [`limits`]).
    pub fn new(size: usize) -> io::Result<Stack> {
        Stack::with_guard(size, DEFAULT_GUARD_SIZE)
    }

    /// As [`Stack::new`], with a guard of at least `guard` bytes (at least one page; an arena
    /// slot if it is at most [`MAX_ARENA_GUARD_SIZE`]).
    ///
    /// # Errors
    /// As [`Stack::new`].
    pub fn with_guard(size: usize, guard: usize) -> io::Result<Stack> {
        let (usable, guard) = shape(size, guard)?;
        if arena::fits(usable, guard) {
            let mut one = Vec::with_capacity(1);
            arena::take(usable, guard, 1, &mut one)?;
            return Ok(one
                .pop()
                .expect("take gives at least one stack or an error"));
        }
        Stack::with_own_mapping(size, guard)
    }

    /// As [`Stack::with_guard`], always in a mapping of its own (the guard by `mprotect`),
    /// unmapped when the stack is dropped.
    ///
    /// ```
    /// use microthread::stack::Stack;
    /// let s = Stack::with_own_mapping(64 * 1024, 4096)?;
    /// assert!(!s.in_arena());
    /// assert_eq!(s.size(), 64 * 1024);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Stack::new`].
    pub fn with_own_mapping(size: usize, guard: usize) -> io::Result<Stack> {
        let (usable, guard) = shape(size, guard)?;
        let total = usable + guard;
        let map = MmapOptions::new()
            .len(total)
            .stack()
            .no_reserve_swap()
            .map_anon()
            .map_err(|e| limits::explain_map_failure(e, total))?;
        // SAFETY: `[map.as_ptr(), + guard)` lies inside the mapping we own; nothing refers to
        // it yet, so revoking access cannot invalidate a reference.
        let rc =
            unsafe { libc::mprotect(map.as_ptr() as *mut libc::c_void, guard, libc::PROT_NONE) };
        if rc != 0 {
            return Err(limits::explain_guard_failure(io::Error::last_os_error()));
        }
        let base = map.as_ptr() as usize;
        let registration = overflow::Registration::new(base, guard, usable);
        let limit = (base + guard) as *const u8;
        let valgrind = valgrind::StackRegistration::new(limit, limit.wrapping_add(usable));
        Ok(Stack::from_range(Range {
            base,
            guard,
            usable,
            size: usable,
            owner: registration.owner_cell(),
            backing: Backing::Own(Box::new(OwnBacking {
                _valgrind: valgrind,
                _registration: registration,
                _map: map,
            })),
        }))
    }

    fn from_range(range: Range) -> Stack {
        Stack {
            range: NonNull::from(Box::leak(Box::new(range))),
        }
    }

    /// Writes the range of an arena slot into the slot's top page and makes it a stack.
    ///
    /// # Safety
    /// `[base, base + guard + size + page)` must be a slot of a live arena that nothing else
    /// uses, its top page read-write; `owner` its owner word.
    unsafe fn in_slot(base: usize, guard: usize, size: usize, owner: &'static AtomicU64) -> Stack {
        let end = base + guard + size + page_size();
        let at = end - RANGE_RESERVE;
        let range = Range {
            base,
            guard,
            usable: at - base - guard,
            size,
            owner,
            backing: if is_default(size, guard) {
                Backing::DefaultArena
            } else {
                Backing::Arena
            },
        };
        // SAFETY: `at` is in the slot's read-write top page (caller's obligation), aligned
        // (page-aligned end less a multiple of 16) and room for a `Range` (checked above).
        unsafe { std::ptr::write(at as *mut Range, range) };
        Stack {
            // SAFETY: `at` is not null (inside a mapping).
            range: unsafe { NonNull::new_unchecked(at as *mut Range) },
        }
    }

    /// The stack as one word (its `Range`'s address, never below 4096), for the pool's fast
    /// slot; the stack stays owned by the caller (forget it once the word owns it).
    #[inline(always)]
    pub(crate) fn as_raw(&self) -> usize {
        self.range.as_ptr() as usize
    }

    /// The stack whose word [`Stack::as_raw`] gave.
    ///
    /// # Safety
    /// - `word` came from `as_raw` of a stack that was then forgotten, and is made a stack
    ///   again only once.
    #[inline(always)]
    pub(crate) unsafe fn from_raw(word: usize) -> Stack {
        Stack {
            // SAFETY: a `Range`'s address (caller's obligation): not null.
            range: unsafe { NonNull::new_unchecked(word as *mut Range) },
        }
    }

    /// The owner word of an arena slot's stack, `None` for a stack of its own mapping.
    fn arena_owner(&self) -> Option<&'static AtomicU64> {
        self.in_arena().then(|| self.range().owner)
    }

    #[inline(always)]
    fn range(&self) -> &Range {
        // SAFETY: the stack owns its range (in its slot, or boxed), alive until `Drop`.
        unsafe { self.range.as_ref() }
    }

    /// The initial stack pointer: one past the highest usable byte, 16-aligned.
    #[inline]
    pub fn top(&self) -> *mut u8 {
        let r = self.range();
        (r.base + r.guard + r.usable) as *mut u8
    }

    /// The lowest usable address, just above the guard.
    #[inline]
    pub fn limit(&self) -> *mut u8 {
        let r = self.range();
        (r.base + r.guard) as *mut u8
    }

    /// The lowest address of the whole range: the start of the guard.
    #[inline]
    pub fn base(&self) -> *mut u8 {
        self.range().base as *mut u8
    }

    /// Usable bytes asked for, rounded up to pages: `top - limit` is at least this. An arena
    /// stack has most of one more page (its slot's top page also holds the slot's
    /// bookkeeping, above `top`: see the [module docs](self)).
    ///
    /// ```
    /// use microthread::stack::Stack;
    /// let s = Stack::new(64 * 1024)?;
    /// assert_eq!(s.size(), 64 * 1024);
    /// let usable = s.top() as usize - s.limit() as usize;
    /// assert!(usable >= s.size() && usable < s.size() + 4096 * 16);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn size(&self) -> usize {
        self.range().size
    }

    /// Bytes of the guard below `limit`.
    #[inline]
    pub fn guard_size(&self) -> usize {
        self.range().guard
    }

    /// Whether the stack is a slot of a shared arena rather than a mapping of its own.
    ///
    /// ```
    /// use microthread::stack::{Stack, MAX_ARENA_STACK_SIZE};
    /// assert!(Stack::new(64 * 1024)?.in_arena());
    /// assert!(!Stack::new(MAX_ARENA_STACK_SIZE + 4096)?.in_arena());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn in_arena(&self) -> bool {
        !matches!(self.range().backing, Backing::Own(_))
    }

    /// Whether the stack has the default usable size and the default guard.
    #[inline]
    pub(crate) fn is_default_shape(&self) -> bool {
        // Only arena slots: a stack of its own mapping goes to the pool's list even if it
        // has the default shape.
        matches!(self.range().backing, Backing::DefaultArena)
    }

    /// Forgets the contents, for a stack whose context is gone (going back to the pool):
    /// under valgrind, makes the whole usable range addressable again (see
    /// `valgrind::discard`); natively a load and a branch.
    #[inline]
    pub(crate) fn discard_contents(&self) {
        if valgrind::active() {
            valgrind::discard(self.limit(), self.top() as usize - self.limit() as usize);
        }
    }

    /// Records which coroutine or tasklet runs on this stack, for the overflow report.
    #[inline]
    pub(crate) fn set_owner(&self, kind: overflow::OwnerKind, id: u64) {
        self.range()
            .owner
            .store(overflow::owner_word(kind, id), Ordering::Relaxed);
    }

    /// An arena slot leaves the free list: its guard reports again (owner: none yet).
    fn mark_taken(&self) {
        if let Some(owner) = self.arena_owner() {
            owner.store(0, Ordering::Relaxed);
        }
    }

    /// An arena slot goes on the free list: a fault in its guard is no overflow.
    fn mark_free(&self) {
        if let Some(owner) = self.arena_owner() {
            owner.store(overflow::FREE_SLOT, Ordering::Relaxed);
        }
    }
}

/// The page-rounded (usable, guard) of a request, checked.
fn shape(size: usize, guard: usize) -> io::Result<(usize, usize)> {
    let too_large = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a stack of {size} bytes with a {guard}-byte guard is too large to map"),
        )
    };
    let usable = round_to_pages(size.max(MIN_STACK_SIZE)).ok_or_else(too_large)?;
    let guard = rounded_guard(guard).ok_or_else(too_large)?;
    let total = usable.checked_add(guard).ok_or_else(too_large)?;
    if total > isize::MAX as usize {
        return Err(too_large());
    }
    Ok((usable, guard))
}

impl Drop for Stack {
    fn drop(&mut self) {
        if self.in_arena() {
            let me = Stack { range: self.range };
            // The slot goes on the free list instead of being freed (its `Range` with it).
            arena::give_back(vec![me]);
        } else {
            // SAFETY: an own-mapping stack's range is a leaked box that only this stack owns.
            drop(unsafe { Box::from_raw(self.range.as_ptr()) });
        }
    }
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("base", &self.base())
            .field("limit", &self.limit())
            .field("top", &self.top())
            .field("in_arena", &self.in_arena())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_rounded_to_pages_with_a_minimum() {
        let page = page_size();
        let s = Stack::new(MIN_STACK_SIZE + 1).unwrap();
        assert_eq!(s.size(), MIN_STACK_SIZE + page);
        assert_eq!(s.size() % page, 0);
        let small = Stack::new(1).unwrap();
        assert_eq!(small.size(), MIN_STACK_SIZE);
        assert!(small.guard_size() >= DEFAULT_GUARD_SIZE.max(page));
        assert_eq!(small.top() as usize % 16, 0);
    }

    #[test]
    fn every_usable_byte_is_writable_and_the_guard_sits_just_below() {
        let s = Stack::new(MIN_STACK_SIZE).unwrap();
        let usable = s.top() as usize - s.limit() as usize;
        assert!(usable >= s.size());
        // SAFETY: [limit, top) is the usable, read-write part of the mapping.
        unsafe {
            std::ptr::write_bytes(s.limit(), 0xa5, usable);
            assert_eq!(*s.limit(), 0xa5);
            assert_eq!(*s.top().sub(1), 0xa5);
        }
        assert_eq!(s.limit() as usize - s.base() as usize, s.guard_size());
        // The guard must not be accessible: a write(2) from it fails with EFAULT instead of
        // faulting, which checks the protection without killing the test.
        let mut fds = [0; 2];
        // SAFETY: pipe writes two fds into the array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: write only reads from the given range; the kernel reports EFAULT for it.
        let r = unsafe { libc::write(fds[1], s.limit().sub(1) as *const libc::c_void, 1) };
        assert_eq!(r, -1);
        assert_eq!(
            io::Error::last_os_error().raw_os_error(),
            Some(libc::EFAULT)
        );
        // SAFETY: the same from the lowest usable byte succeeds.
        let r = unsafe { libc::write(fds[1], s.limit() as *const libc::c_void, 1) };
        assert_eq!(r, 1);
        // SAFETY: closing the fds we opened.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }

    #[test]
    fn absurd_sizes_are_an_error_not_a_panic() {
        let e = Stack::new(usize::MAX).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("too large"), "{e}");
        let e = Stack::with_guard(4096, usize::MAX - 10).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        // Larger than the address space but not overflowing: the kernel says no.
        assert!(Stack::new(1 << 62).is_err());
    }
}
