//! [`Record`]: the counted reference to a tasklet's state ([`Inner`]), in the place of an
//! `Arc<Inner>`, so that the state can live at the top of the tasklet's own stack (issue 11).
//!
//! A tasklet spawned on a stack of its own has its record in the [`RECORD_SPACE`] bytes just
//! below [`Stack::top`], in the page its first frame commits anyway: a blocked tasklet then
//! costs that one page and no heap (it was a 208-byte malloc chunk). The closure and the
//! first frame go below the record.
//!
//! **Lifetimes.** A record is freed when its last reference goes, as an `Arc`'s allocation
//! is, on whatever thread drops it. A record on a stack (its *home*) keeps that stack while
//! any reference is left, also after the tasklet has died: the scheduler, which releases a
//! dead tasklet's stack after its last switch, leaves the home stack in the state's `stack`
//! (`Inner::stack_is_home` says so), and a tasklet that lets go of its home otherwise (bound
//! to another stack, or ended unrun) hands it to the record ([`Record::keep_home`]); the
//! last reference drops the record and then releases the home stack to the pool (of the thread that drops it, which gives back what the stack touched
//! below its warm top, as for any stack), so the slot is never reused while a handle can
//! still read the record. Records of tasklets created without a stack (the main tasklet,
//! lazily restored ones) are on the heap.
//!
//! **The cost:** a dead tasklet whose handles outlive it keeps the pages its stack touched
//! until its last handle goes (typically one: its top page), where it used to keep only its
//! 208-byte record. Giving the deep part back at its death would mean finding out whether
//! it went deep, which reads a page below its warm top: a page fault whenever it did not
//! (most tasklets), or a system call each; a million tasklets dying with their handles held
//! (the scale row's wake phase) would pay one per tasklet.
//!
//! The count is atomic, as an `Arc`'s: references held by other threads (remote handles,
//! mail, wait queues) count in it; this thread's handles and scheduler share one (see
//! `Inner::held`).

use std::cell::Cell;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::Inner;
use crate::stack::{pool, Stack};

/// Bytes reserved below a home stack's top for its record: whole cache lines.
pub(crate) const RECORD_SPACE: usize = (std::mem::size_of::<Counted>() + 63) & !63;

/// What a [`Record`] points to: the count, the home stack, the state.
#[repr(C)]
struct Counted {
    strong: AtomicUsize,
    /// The top of the stack this record lives on; 0 for a record on the heap.
    home_top: usize,
    /// The home stack once the tasklet has let go of it (rebound to another stack, or ended
    /// unrun); `None` while it is in `Inner::stack` (also after a tasklet's end) and for heap
    /// records. Touched
    /// on the tasklet's thread only, and by the last reference's drop (alone then).
    home: Cell<Option<Stack>>,
    inner: Inner,
}

// The record takes four cache lines of its stack's top page at most.
#[cfg(target_pointer_width = "64")]
const _: () = assert!(RECORD_SPACE <= 256);

/// A counted reference to a tasklet's state, as `Arc<Inner>` (the same operations, by the
/// same names).
pub(crate) struct Record {
    ptr: NonNull<Counted>,
}

impl Record {
    /// A record on the heap.
    pub(crate) fn new_heap(inner: Inner) -> Record {
        let b = Box::new(Counted {
            strong: AtomicUsize::new(1),
            home_top: 0,
            home: Cell::new(None),
            inner,
        });
        Record {
            ptr: NonNull::from(Box::leak(b)),
        }
    }

    /// A record written at the top of `stack`, its home; `stack` goes into its state's
    /// `stack` (written with the rest: no store of `None` first).
    ///
    /// # Safety
    /// - `stack` must be a fresh stack for the tasklet this record is for, with nothing in
    ///   its top [`RECORD_SPACE`] bytes that anybody uses; it must stay the tasklet's stack
    ///   (in `Inner::stack`) or go to [`Record::keep_home`], never be released otherwise,
    ///   while the record lives.
    #[inline(always)]
    pub(crate) unsafe fn new_on(stack: Stack, mut inner: Inner) -> Record {
        let top = stack.top() as usize;
        *inner.stack.get_mut() = Some(stack);
        *inner.stack_is_home.get_mut() = true;
        let at = (top - RECORD_SPACE) as *mut Counted;
        // SAFETY: `at` is below the top of a stack nobody uses yet (caller's obligation), in
        // its usable part (far larger than the space), and aligned (64-aligned offset from a
        // 16-aligned top; `Counted` needs 8).
        unsafe {
            ptr::write(
                at,
                Counted {
                    strong: AtomicUsize::new(1),
                    home_top: top,
                    home: Cell::new(None),
                    inner,
                },
            );
            Record {
                ptr: NonNull::new_unchecked(at),
            }
        }
    }

    #[inline(always)]
    fn counted(&self) -> &Counted {
        // SAFETY: a record keeps its `Counted` alive.
        unsafe { self.ptr.as_ref() }
    }

    /// The state's address (as `Arc::as_ptr`).
    #[inline(always)]
    pub(crate) fn as_ptr(r: &Record) -> *const Inner {
        // SAFETY: in bounds of the live `Counted`.
        unsafe { ptr::addr_of!((*r.ptr.as_ptr()).inner) }
    }

    /// Gives up the reference as the state's address (as `Arc::into_raw`).
    #[inline(always)]
    pub(crate) fn into_raw(r: Record) -> *const Inner {
        let p = Record::as_ptr(&r);
        std::mem::forget(r);
        p
    }

    /// Takes back a reference given up by [`Record::into_raw`].
    ///
    /// # Safety
    /// - `p` must come from [`Record::into_raw`] (or be a live record's state whose count the
    ///   caller has raised for this reference), and be used so once.
    #[inline(always)]
    pub(crate) unsafe fn from_raw(p: *const Inner) -> Record {
        let offset = std::mem::offset_of!(Counted, inner);
        Record {
            // SAFETY: `p` is the `inner` field of a live `Counted` (caller's obligation).
            ptr: unsafe { NonNull::new_unchecked((p as *mut u8).sub(offset) as *mut Counted) },
        }
    }

    /// Raises the count of the record whose state is at `p` by one.
    ///
    /// # Safety
    /// - `p` must be a live record's state.
    #[inline(always)]
    pub(crate) unsafe fn increment_strong_count(p: *const Inner) {
        // SAFETY: forwarded; the clone is forgotten, leaving the count raised.
        let r = std::mem::ManuallyDrop::new(unsafe { Record::from_raw(p) });
        std::mem::forget(Record::clone(&r));
    }

    /// How many references there are.
    #[inline(always)]
    pub(crate) fn strong_count(r: &Record) -> usize {
        r.counted().strong.load(Ordering::Acquire)
    }

    /// Whether two references name the same record.
    pub(crate) fn ptr_eq(a: &Record, b: &Record) -> bool {
        a.ptr == b.ptr
    }

    /// Whether the record is on the heap (not on a stack).
    #[inline(always)]
    pub(crate) fn on_heap(r: &Record) -> bool {
        r.counted().home_top == 0
    }

    /// Hands `stack`, which the tasklet whose state is `t` no longer runs on, to whoever owns
    /// it now: the record keeps it if it is the record's home; otherwise it goes back to
    /// the pool.
    ///
    /// # Safety
    /// - `t` must be a live record's state, on this thread, and the tasklet's stack must be
    ///   dead (no frame of it left to run).
    // Inline: once per tasklet's end, in the switch after it (a call and its register saves
    // were half of it).
    #[inline(always)]
    pub(crate) unsafe fn keep_home(t: *const Inner, stack: Stack) {
        // SAFETY: a live record (caller's obligation); the reference is not dropped.
        let r = std::mem::ManuallyDrop::new(unsafe { Record::from_raw(t) });
        let c = r.counted();
        if c.home_top == stack.top() as usize {
            // Nothing there before (a record has one home): a store, no drop.
            debug_assert!(
                // SAFETY: a Cell of this thread that nothing borrows: a plain read.
                unsafe { (*c.home.as_ptr()).is_none() },
                "a record has one home"
            );
            c.home.set(Some(stack));
        } else {
            release_not_home(stack);
        }
    }

    /// The last reference is gone: drops the state, then releases its home stack, if any.
    #[cold]
    #[inline(never)]
    fn free(&mut self) {
        // SAFETY: the last reference (the count went from 1 to 0).
        unsafe { Record::free_in_place(self.ptr.as_ptr()) }
    }

    /// Frees `r`, the only reference left (its count is 1), with no atomic operation: the
    /// common end of a dead tasklet's last handle, whose record is on its stack.
    ///
    /// # Safety
    /// - The count must have been read as 1 with `Acquire` ordering ([`Record::strong_count`])
    ///   by the holder of `r`, after every other reference was made: with no other reference
    ///   left, no thread can make a new one (as `Arc`, a reference is only made from one; the
    ///   raw-pointer increments of `add_timer` and `wake_on_its_thread` are of live
    ///   tasklets, whose scheduler still holds their local reference, so their count is at
    ///   least 1 besides). The acquire load orders the other holders' releases before the free,
    ///   as the fence after the last decrement does.
    #[inline]
    pub(crate) unsafe fn free_unique(r: Record) {
        let r = std::mem::ManuallyDrop::new(r);
        debug_assert_eq!(Record::strong_count(&r), 1);
        // SAFETY: the only reference (caller's obligation); it is not used again.
        unsafe { Record::free_in_place(r.ptr.as_ptr()) }
    }

    /// Drops the record at `c` and releases its home stack, if any.
    ///
    /// # Safety
    /// - `c` must be a record nobody refers to any more.
    #[inline(always)]
    unsafe fn free_in_place(c: *mut Counted) {
        // SAFETY: the last reference: nothing else reads the record any more.
        unsafe {
            if (*c).home_top == 0 {
                drop(Box::from_raw(c));
                return;
            }
            // Out of the record before it is dropped: releasing a stack may give its memory
            // back, the record's with it.
            let home = (*c).home.take();
            let running = (*c).inner.stack.take();
            ptr::drop_in_place(c);
            if let Some(stack) = running {
                pool::release(stack);
            }
            if let Some(stack) = home {
                pool::release(stack);
            }
        }
    }
}

/// [`Record::keep_home`] of a stack that is not the record's home (a rebound tasklet's): back
/// to the pool, out of line.
#[inline(never)]
fn release_not_home(stack: Stack) {
    pool::release(stack);
}

impl Clone for Record {
    #[inline(always)]
    fn clone(&self) -> Record {
        // As `Arc`: relaxed, since a new reference can only be made from an existing one.
        let old = self.counted().strong.fetch_add(1, Ordering::Relaxed);
        if old > isize::MAX as usize {
            std::process::abort();
        }
        Record { ptr: self.ptr }
    }
}

impl Drop for Record {
    #[inline]
    fn drop(&mut self) {
        // As `Arc`: release here, acquire before the free.
        if self.counted().strong.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        std::sync::atomic::fence(Ordering::Acquire);
        self.free();
    }
}

impl std::ops::Deref for Record {
    type Target = Inner;

    #[inline(always)]
    fn deref(&self) -> &Inner {
        &self.counted().inner
    }
}
