//! The overflow registry's part for stack arenas: one entry per arena (registered once, never
//! removed, as arenas are never unmapped) and one owner word per slot, so a fault address maps
//! to its slot by a division and the lookup stays async-signal-safe.

use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use super::{install_handler, OwnerKind, FREE_SLOT, TASKLET_BIT};

/// The most stack arenas the registry knows (each reserves about 1 GiB: 16 TiB in all).
const MAX_ARENAS: usize = 16384;

/// An arena's entry: slots of `stride` bytes from `base` to `end`, each a guard of `guard`
/// bytes below `usable` bytes, with one owner word per slot in `owners`.
pub(super) struct ArenaEntry {
    pub(super) base: AtomicUsize,
    pub(super) end: AtomicUsize,
    pub(super) stride: AtomicUsize,
    pub(super) guard: AtomicUsize,
    pub(super) usable: AtomicUsize,
    pub(super) owners: AtomicPtr<AtomicU64>,
}

static ARENAS: [ArenaEntry; MAX_ARENAS] = [const {
    ArenaEntry {
        base: AtomicUsize::new(0),
        end: AtomicUsize::new(0),
        stride: AtomicUsize::new(0),
        guard: AtomicUsize::new(0),
        usable: AtomicUsize::new(0),
        owners: AtomicPtr::new(ptr::null_mut()),
    }
}; MAX_ARENAS];

/// How many entries of [`ARENAS`] are in use (they are filled in order, never freed).
static ARENA_COUNT: AtomicUsize = AtomicUsize::new(0);

/// Registers an arena of `len` bytes at `base`; `owners` has one word per slot and lives for
/// the rest of the process, as the arena does. Called with the arenas' lock held, so entries
/// are filled one at a time. Past [`MAX_ARENAS`] arenas, stacks keep their guards but get no
/// report.
pub(crate) fn register_arena(
    base: usize,
    len: usize,
    stride: usize,
    guard: usize,
    usable: usize,
    owners: &'static [AtomicU64],
) {
    install_handler();
    let i = ARENA_COUNT.load(Ordering::Relaxed);
    let Some(e) = ARENAS.get(i) else { return };
    e.stride.store(stride, Ordering::Relaxed);
    e.guard.store(guard, Ordering::Relaxed);
    e.usable.store(usable, Ordering::Relaxed);
    e.owners
        .store(owners.as_ptr() as *mut AtomicU64, Ordering::Relaxed);
    e.base.store(base, Ordering::Relaxed);
    e.end.store(base + len, Ordering::Release);
    ARENA_COUNT.store(i + 1, Ordering::Release);
}

/// The arena slot containing `addr`: (the arena, slot index, offset in the slot).
/// Async-signal-safe.
pub(super) fn arena_slot(addr: usize) -> Option<(&'static ArenaEntry, usize, usize)> {
    let n = ARENA_COUNT.load(Ordering::Acquire);
    ARENAS[..n.min(MAX_ARENAS)].iter().find_map(|e| {
        let end = e.end.load(Ordering::Acquire);
        let base = e.base.load(Ordering::Relaxed);
        (addr >= base && addr < end).then(|| {
            let stride = e.stride.load(Ordering::Relaxed);
            let off = addr - base;
            (e, off / stride, off % stride)
        })
    })
}

/// An arena slot's guard containing `addr`, if its slot is held: as `super::lookup`. `None`
/// if `addr` is in no arena; `Some(None)` if it is, but not in the guard of a held slot.
pub(super) fn lookup_arena(addr: usize) -> Option<Option<(OwnerKind, u64, usize)>> {
    let (e, index, off) = arena_slot(addr)?;
    if off >= e.guard.load(Ordering::Relaxed) {
        return Some(None);
    }
    // SAFETY: `owners` has one word per slot and is never freed; `index` is a slot's.
    let owner = unsafe { &*e.owners.load(Ordering::Relaxed).add(index) }.load(Ordering::Relaxed);
    if owner == FREE_SLOT {
        return Some(None);
    }
    let kind = if owner & TASKLET_BIT != 0 {
        OwnerKind::Tasklet
    } else {
        OwnerKind::Coroutine
    };
    Some(Some((
        kind,
        owner & !TASKLET_BIT,
        e.usable.load(Ordering::Relaxed),
    )))
}
