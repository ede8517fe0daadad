//! Stack-overflow reports: a SIGSEGV/SIGBUS handler that recognises a fault in the guard of
//! one of our stacks and says so before the process dies.
//!
//! Every [`Stack`](crate::stack::Stack) with a mapping of its own registers its guard range in
//! a global, lock-free registry (fixed chunks of atomic slots, allocated on demand and never
//! freed, so the handler can read them without locks or allocation); every stack arena
//! registers itself once, with one owner word per slot, and a fault address maps to its slot
//! by division (see [`crate::stack::arena`]). A fault in the guard of a free arena slot is no
//! overflow. On a fault the handler, running on the
//! thread's alternate signal stack, looks the address up; if it is in one of our guards it
//! writes
//!
//! ```text
//! microthread: coroutine <id> overflowed its stack of <N> bytes
//! microthread: tasklet <id> overflowed its stack of <N> bytes
//! ```
//!
//! naming what ran on the stack (a plain [`Coroutine`](crate::coroutine::Coroutine) or a
//! tasklet; each records itself with [`OwnerKind`] when it takes the stack), with `write(2)`,
//! restores the default action and returns, so the faulting instruction runs again and the
//! process dies of the original signal: the exit status and a core dump point at the
//! overflow, as if no handler had been installed. Faults elsewhere go to the handler
//! that was installed before ours (Rust's own, which reports main-thread overflows), or to
//! the default action.
//!
//! The handler needs an alternate signal stack on the faulting thread, since the faulting
//! stack has no room left. Rust gives its own threads one; [`ensure_altstack`] gives one to
//! any other thread that creates a context.

use std::cell::Cell;
use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};

mod arenas;

pub(crate) use arenas::register_arena;
use arenas::{arena_slot, lookup_arena};

const CHUNK_SLOTS: usize = 1024;
const CHUNKS: usize = 4096;

struct Slot {
    guard_lo: AtomicUsize,
    guard_hi: AtomicUsize,
    usable: AtomicUsize,
    owner: AtomicU64,
}

type Chunk = [Slot; CHUNK_SLOTS];

static REGISTRY: [AtomicPtr<Chunk>; CHUNKS] = [const { AtomicPtr::new(ptr::null_mut()) }; CHUNKS];

struct Allocator {
    free: Vec<u32>,
    next: u32,
}

/// The slot allocator, behind a spin lock that `fork` cannot leave held in the child: the
/// `pthread_atfork` handlers registered with the signal handler take it around every `fork`,
/// so the child (whose other threads are gone) never inherits it locked mid-update. (A std
/// `Mutex` held by an exiting thread's stack pool at the moment of a `fork` deadlocked forked
/// children that then mapped a stack.)
struct AllocatorLock {
    locked: AtomicBool,
    allocator: UnsafeCell<Allocator>,
}

// SAFETY: `allocator` is only reached with `locked` taken (see `with_allocator`).
unsafe impl Sync for AllocatorLock {}

static ALLOCATOR: AllocatorLock = AllocatorLock {
    locked: AtomicBool::new(false),
    allocator: UnsafeCell::new(Allocator {
        free: Vec::new(),
        next: 0,
    }),
};

fn lock_allocator() {
    let mut spins = 0u32;
    while ALLOCATOR.locked.swap(true, Ordering::Acquire) {
        spins += 1;
        if spins < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

fn unlock_allocator() {
    ALLOCATOR.locked.store(false, Ordering::Release);
}

fn with_allocator<T>(f: impl FnOnce(&mut Allocator) -> T) -> T {
    lock_allocator();
    // SAFETY: the lock is held; this is the only access until it is released.
    let r = f(unsafe { &mut *ALLOCATOR.allocator.get() });
    unlock_allocator();
    r
}

extern "C" fn before_fork() {
    lock_allocator();
}

extern "C" fn after_fork() {
    unlock_allocator();
}

/// A zeroed chunk on the heap (all-zero atomics are valid), never on the stack: a chunk is
/// 32 KiB, more than a small coroutine's stack that may be mapping a new stack.
#[cold]
#[inline(never)]
fn new_chunk() -> *mut Chunk {
    let layout = std::alloc::Layout::new::<Chunk>();
    // SAFETY: the layout is non-zero-sized; an all-zero Slot (atomics) is a valid value.
    let p = unsafe { std::alloc::alloc_zeroed(layout) } as *mut Chunk;
    if p.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    p
}

/// What runs on a stack, for the overflow report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OwnerKind {
    /// A plain [`Coroutine`](crate::coroutine::Coroutine).
    Coroutine,
    /// A tasklet of the scheduler.
    Tasklet,
}

/// In a slot's `owner` word, the bit that marks a tasklet; the other bits are the id. Ids
/// count up from 1 in one process-wide counter and never reach 2^63.
const TASKLET_BIT: u64 = 1 << 63;

impl OwnerKind {
    fn word(self) -> &'static [u8] {
        match self {
            OwnerKind::Coroutine => b"coroutine",
            OwnerKind::Tasklet => b"tasklet",
        }
    }
}

/// The owner word of an arena slot that no stack holds: a fault in its guard is no overflow.
pub(crate) const FREE_SLOT: u64 = u64::MAX;

/// The word stored for `kind` and `id` in a slot's owner.
#[inline]
pub(crate) fn owner_word(kind: OwnerKind, id: u64) -> u64 {
    debug_assert!(id & TASKLET_BIT == 0, "ids never reach 2^63");
    match kind {
        OwnerKind::Coroutine => id,
        OwnerKind::Tasklet => id | TASKLET_BIT,
    }
}

/// A stack's entry in the registry; clears it on drop.
pub(crate) struct Registration {
    slot: u32,
}

const UNREGISTERED: u32 = u32::MAX;

#[inline]
fn slot(index: u32) -> Option<&'static Slot> {
    let chunk = REGISTRY
        .get(index as usize / CHUNK_SLOTS)?
        .load(Ordering::Acquire);
    // SAFETY: chunks are leaked boxes, never freed, published with Release before use.
    unsafe { chunk.as_ref() }.map(|c| &c[index as usize % CHUNK_SLOTS])
}

impl Registration {
    /// Registers the guard `[base, base + guard)` of a stack with `usable` bytes above it.
    pub(crate) fn new(base: usize, guard: usize, usable: usize) -> Registration {
        install_handler();
        let index = with_allocator(|a| match a.free.pop() {
            Some(i) => Some(i),
            None if (a.next as usize) < CHUNKS * CHUNK_SLOTS => {
                let i = a.next;
                let c = &REGISTRY[i as usize / CHUNK_SLOTS];
                if c.load(Ordering::Relaxed).is_null() {
                    c.store(new_chunk(), Ordering::Release);
                }
                a.next += 1;
                Some(i)
            }
            // Four million live stacks: the rest still have guards, only no report.
            None => None,
        });
        let Some(index) = index else {
            return Registration { slot: UNREGISTERED };
        };
        if let Some(s) = slot(index) {
            s.usable.store(usable, Ordering::Relaxed);
            s.owner.store(0, Ordering::Relaxed);
            s.guard_lo.store(base, Ordering::Relaxed);
            s.guard_hi.store(base + guard, Ordering::Release);
        }
        Registration { slot: index }
    }

    /// Records what now runs on the stack: its kind and id.
    #[inline]
    /// The registry's owner word of this stack, for its `Range` to write directly (one store
    /// per spawn, no test of the stack's kind); a word nobody reads for a stack that got no
    /// entry (the registry was full). Valid for as long as the registration: chunks are never
    /// freed, and the word is this entry's until the registration is dropped.
    pub(crate) fn owner_cell(&self) -> &'static AtomicU64 {
        /// The owner word of the stacks without an entry: written, never read.
        static NO_ENTRY: AtomicU64 = AtomicU64::new(0);
        slot(self.slot).map_or(&NO_ENTRY, |s| &s.owner)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(s) = slot(self.slot) {
            s.guard_hi.store(0, Ordering::Relaxed);
            s.guard_lo.store(0, Ordering::Relaxed);
            with_allocator(|a| a.free.push(self.slot));
        }
    }
}

/// The registered guard containing `addr`: (owner kind, owner id, usable bytes).
/// Async-signal-safe.
fn lookup(addr: usize) -> Option<(OwnerKind, u64, usize)> {
    if let Some(found) = lookup_arena(addr) {
        return found;
    }
    for c in REGISTRY.iter() {
        let chunk = c.load(Ordering::Acquire);
        // SAFETY: as in `slot`: chunks are never freed once published.
        let chunk = unsafe { chunk.as_ref() }?;
        for s in chunk.iter() {
            let hi = s.guard_hi.load(Ordering::Acquire);
            if hi != 0 && addr < hi && addr >= s.guard_lo.load(Ordering::Relaxed) {
                let owner = s.owner.load(Ordering::Relaxed);
                let kind = if owner & TASKLET_BIT != 0 {
                    OwnerKind::Tasklet
                } else {
                    OwnerKind::Coroutine
                };
                return Some((kind, owner & !TASKLET_BIT, s.usable.load(Ordering::Relaxed)));
            }
        }
    }
    None
}

/// The usable range `(limit, top)` of the registered stack whose usable part contains
/// `addr`: for the sanitizer annotations, which need the bounds of the stack a suspended
/// context's stack pointer lies on. Async-signal-safe; a scan of the registry.
#[cfg_attr(not(feature = "asan"), allow(dead_code))]
pub(crate) fn usable_range_containing(addr: usize) -> Option<(usize, usize)> {
    if let Some((e, index, off)) = arena_slot(addr) {
        let guard = e.guard.load(Ordering::Relaxed);
        let stride = e.stride.load(Ordering::Relaxed);
        if off < guard || off >= stride - crate::stack::RANGE_RESERVE {
            return None;
        }
        let limit = e.base.load(Ordering::Relaxed) + index * stride + guard;
        // Up to the slot's range, at the top of its last page (see `stack::Range`).
        return Some((limit, limit - guard + stride - crate::stack::RANGE_RESERVE));
    }
    for c in REGISTRY.iter() {
        let chunk = c.load(Ordering::Acquire);
        // SAFETY: as in `slot`: chunks are never freed once published.
        let chunk = unsafe { chunk.as_ref() }?;
        for s in chunk.iter() {
            let limit = s.guard_hi.load(Ordering::Acquire);
            if limit != 0 && addr >= limit {
                let usable = s.usable.load(Ordering::Relaxed);
                if addr - limit < usable {
                    return Some((limit, limit + usable));
                }
            }
        }
    }
    None
}

/// The handlers that were installed before ours, for SIGSEGV and SIGBUS.
static PREVIOUS: OnceLock<[libc::sigaction; 2]> = OnceLock::new();

fn install_handler() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // SAFETY: both handlers only take and release the allocator's spin lock.
        unsafe { libc::pthread_atfork(Some(before_fork), Some(after_fork), Some(after_fork)) };
        let mut previous: [libc::sigaction; 2] =
            // SAFETY: sigaction is plain old data; all-zero is a valid (default) value.
            unsafe { MaybeUninit::zeroed().assume_init() };
        for (i, sig) in [libc::SIGSEGV, libc::SIGBUS].into_iter().enumerate() {
            // SAFETY: querying the current action writes into `previous[i]` only.
            unsafe { libc::sigaction(sig, ptr::null(), &mut previous[i]) };
        }
        let _ = PREVIOUS.set(previous);
        for sig in [libc::SIGSEGV, libc::SIGBUS] {
            // SAFETY: as above, zeroed sigaction is valid; we fill in handler, flags, mask.
            let mut action: libc::sigaction = unsafe { MaybeUninit::zeroed().assume_init() };
            action.sa_sigaction = handler as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            // SAFETY: sa_mask is a valid sigset_t to empty; the handler is async-signal-safe.
            unsafe {
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(sig, &action, ptr::null_mut());
            }
        }
    });
}

/// Formats `n` in decimal into the end of `buf`, returning the digits.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

fn write_stderr(bytes: &[u8]) {
    // SAFETY: write(2) is async-signal-safe and only reads `bytes`.
    unsafe { libc::write(2, bytes.as_ptr() as *const libc::c_void, bytes.len()) };
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, uctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t for an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    if let Some((kind, owner, usable)) = lookup(addr) {
        let (mut a, mut b) = ([0u8; 20], [0u8; 20]);
        write_stderr(b"microthread: ");
        write_stderr(kind.word());
        write_stderr(b" ");
        write_stderr(decimal(owner, &mut a));
        write_stderr(b" overflowed its stack of ");
        write_stderr(decimal(usable as u64, &mut b));
        write_stderr(b" bytes\n");
        reset_to_default(sig);
        return;
    }
    let Some(previous) = PREVIOUS.get() else {
        reset_to_default(sig);
        return;
    };
    let prev = &previous[if sig == libc::SIGSEGV { 0 } else { 1 }];
    if prev.sa_sigaction == libc::SIG_DFL || prev.sa_sigaction == libc::SIG_IGN {
        // A fault cannot be ignored: returning would re-fault forever. Die of it instead.
        reset_to_default(sig);
    } else if prev.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed for exactly this kind of call.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(prev.sa_sigaction) };
        f(sig, info, uctx);
    } else {
        // SAFETY: a handler installed without SA_SIGINFO takes the signal number only.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(prev.sa_sigaction) };
        f(sig);
    }
}

/// Restores the default action so that returning re-runs the fault and the process dies of it.
fn reset_to_default(sig: libc::c_int) {
    // SAFETY: zeroed sigaction with SIG_DFL is the default action; signal() is async-signal-safe.
    unsafe { libc::signal(sig, libc::SIG_DFL) };
}

/// Alternate signal stacks this crate installs for threads that have none.
///
/// A thread's stack outlives every thread-local destructor: it belongs to a `pthread` key,
/// whose destructor (disable, then unmap) glibc runs only after all of them
/// (`__call_tls_dtors`, then `__nptl_deallocate_tsd`). That matters because the scheduler's
/// thread-exit teardown runs in a thread-local destructor and may overflow, and by then std
/// has removed the alternate stack it gave the thread (it does so when the thread's main
/// function returns, and for the main thread in its exit cleanup). A thread-local owner
/// could itself be destroyed before the teardown.
struct AltStack;

impl AltStack {
    /// Bytes of each alternate stack: the kernel's minimum signal frame (which grows with
    /// AVX-512 state) or `SIGSTKSZ`, whichever is larger, plus room for the handler.
    fn len() -> usize {
        static LEN: OnceLock<usize> = OnceLock::new();
        *LEN.get_or_init(|| {
            // SAFETY: getauxval has no preconditions; 0 means "unknown".
            let min = unsafe { libc::getauxval(libc::AT_MINSIGSTKSZ) } as usize;
            let page = crate::stack::page_size();
            (min.max(libc::SIGSTKSZ) + 16 * 1024 + page - 1) & !(page - 1)
        })
    }

    /// The key whose value is the calling thread's alternate stack (null: none of ours), or
    /// `None` if the process has no key left (then stacks are never unmapped: a leak of one
    /// small mapping per thread, never a stack freed while installed).
    fn key() -> Option<libc::pthread_key_t> {
        static KEY: OnceLock<Option<libc::pthread_key_t>> = OnceLock::new();
        *KEY.get_or_init(|| {
            let mut key: libc::pthread_key_t = 0;
            // SAFETY: `key` is a valid out-pointer; the destructor has the C signature and is
            // only called by glibc with a value we stored.
            let rc = unsafe { libc::pthread_key_create(&mut key, Some(AltStack::release)) };
            (rc == 0).then_some(key)
        })
    }

    /// The calling thread's alternate stack that we mapped earlier, if any.
    fn mapped() -> *mut libc::c_void {
        match AltStack::key() {
            // SAFETY: reading our own key; no other code stores into it.
            Some(key) => unsafe { libc::pthread_getspecific(key) },
            None => ptr::null_mut(),
        }
    }

    /// Maps a new alternate stack above a `PROT_NONE` page (a handler that ran out of it
    /// faults instead of writing into the mapping below), recorded under the key for release
    /// at thread exit. Returns the stack's lowest byte, one page above the mapping's start.
    fn map() -> Option<*mut libc::c_void> {
        let page = crate::stack::page_size();
        // SAFETY: an anonymous private mapping with no address hint has no preconditions.
        let map = unsafe {
            libc::mmap(
                ptr::null_mut(),
                AltStack::len() + page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return None;
        }
        // SAFETY: the lowest page of our own fresh mapping. If it fails the stack has no
        // guard, as before, but still works.
        unsafe { libc::mprotect(map, page, libc::PROT_NONE) };
        // SAFETY: one page into a mapping of more than one page.
        let stack = unsafe { (map as *mut u8).add(page) } as *mut libc::c_void;
        if let Some(key) = AltStack::key() {
            // SAFETY: our own key; the value is the stack, which `release` unmaps with the
            // page below it.
            unsafe { libc::pthread_setspecific(key, stack) };
        }
        Some(stack)
    }

    /// The key's destructor: disables the alternate stack if it is still ours, then unmaps it
    /// with its guard page.
    ///
    /// # Safety
    /// Only as the key's destructor, with the stack `map` returned by [`AltStack::map`], at
    /// thread exit when no signal handler runs on it.
    unsafe extern "C" fn release(map: *mut libc::c_void) {
        // SAFETY: zeroed stack_t is valid; a null new stack only queries.
        let mut current: libc::stack_t = unsafe { MaybeUninit::zeroed().assume_init() };
        // SAFETY: as above; then disabling affects only this thread, and the mapping is ours
        // and no longer installed when it is unmapped.
        unsafe {
            if libc::sigaltstack(ptr::null(), &mut current) == 0
                && current.ss_flags & libc::SS_DISABLE == 0
                && current.ss_sp == map
            {
                let disable = libc::stack_t {
                    ss_sp: ptr::null_mut(),
                    ss_flags: libc::SS_DISABLE,
                    ss_size: 0,
                };
                libc::sigaltstack(&disable, ptr::null_mut());
            }
            let page = crate::stack::page_size();
            libc::munmap(
                (map as *mut u8).sub(page) as *mut libc::c_void,
                AltStack::len() + page,
            );
        }
    }
}

thread_local! {
    /// Whether this thread went through `install_altstack` once. A `const` cell without drop
    /// glue: it is never destroyed, so it can be read during the thread-exit teardown.
    static CHECKED: Cell<bool> = const { Cell::new(false) };
}

/// Makes sure the calling thread has an alternate signal stack, so an overflow of a context's
/// stack can be reported; installs one (freed at thread exit) if the thread has none.
#[inline]
pub(crate) fn ensure_altstack() {
    if !CHECKED.with(|c| c.get()) {
        CHECKED.with(|c| c.set(true));
        install_altstack();
    }
}

/// As [`ensure_altstack`], checked again whatever was found before: for the start of the
/// scheduler's thread-exit teardown, which kills (and so runs the destructors of) every live
/// tasklet after std removed the alternate stack it had given the thread.
#[cold]
pub(crate) fn ensure_altstack_for_teardown() {
    install_altstack();
}

/// Installs an alternate signal stack on the calling thread unless it has one of at least
/// [`AltStack::len`] bytes: the one we mapped for it earlier if there is one, else a new
/// mapping.
#[cold]
#[inline(never)]
fn install_altstack() {
    install_handler();
    // SAFETY: zeroed stack_t is valid; sigaltstack with a null new stack only queries.
    let mut current: libc::stack_t = unsafe { MaybeUninit::zeroed().assume_init() };
    // SAFETY: as above.
    if unsafe { libc::sigaltstack(ptr::null(), &mut current) } != 0 {
        return;
    }
    // One that is big enough stays (std's on its threads, normally). A smaller one is
    // replaced: the handler needs room beyond the kernel's frame, and more than 8 KiB in all
    // in a sanitizer build with AVX-512 frames (std's is 8 KiB); on too small a stack it
    // faulted again and the process died without the report. Not while running on it
    // (`SS_ONSTACK`): sigaltstack would refuse.
    if current.ss_flags & libc::SS_DISABLE == 0
        && (current.ss_size >= AltStack::len() || current.ss_flags & libc::SS_ONSTACK != 0)
    {
        return;
    }
    let earlier = AltStack::mapped();
    let Some(map) = (if earlier.is_null() {
        AltStack::map()
    } else {
        Some(earlier)
    }) else {
        return;
    };
    let stack = libc::stack_t {
        ss_sp: map,
        ss_flags: 0,
        ss_size: AltStack::len(),
    };
    // SAFETY: `map` is a read-write mapping of `AltStack::len()` bytes that stays mapped until
    // the key's destructor at thread exit, which disables it first. If installing fails, it
    // stays recorded under the key and is unmapped then.
    unsafe { libc::sigaltstack(&stack, ptr::null_mut()) };
}

#[cfg(test)]
mod tests;
