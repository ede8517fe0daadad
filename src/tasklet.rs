//! [`Tasklet`]: a microthread on its own stack, owned by the scheduler of the thread that
//! created it. This module holds its state and the handle; the operations that move tasklets
//! around the run queue live in [`scheduler`](crate::scheduler).
//!
//! A tasklet is `!Send`: it runs only on the thread that created it.
//!
//! ```compile_fail
//! fn assert_send<T: Send>() {}
//! assert_send::<microthread::Tasklet>();
//! ```

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::ptr;
use std::sync::OnceLock;

mod query;
mod record;
mod remote_state;
mod tempval;
pub(crate) use record::{Record, RECORD_SPACE};
pub(crate) use remote_state::RemoteState;

use crate::context::Context;
use crate::error::Error;
use crate::stack::Stack;

/// Something a blocked tasklet waits in (a channel), which can let go of it when the tasklet
/// is killed, thrown into, or delivered an error while blocked.
pub(crate) trait Blocker {
    /// Removes `t` from the wait queue (adjusting the balance). False if it was no longer
    /// queued: a partner on another thread completed its operation, and a wake for that
    /// blocking episode is on its way (stale by the time it arrives: see `Inner::block_epoch`).
    fn unlink(&self, t: &Inner) -> bool;

    /// The channel's id, for dumps (`scheduler::dump`).
    fn channel_id(&self) -> u64;
}

/// What the next switch into a tasklet delivers at its suspension point.
///
/// Precedence when something is already pending (see [`Inner::set_pending`]): a kill is never
/// replaced; a later error replaces an earlier one, as in Stackless.
pub(crate) enum Pending {
    /// Unwind with [`TaskletExit`](crate::error::TaskletExit).
    Kill,
    /// Return this error from the call the tasklet is suspended in.
    Error(Error),
}

/// `Inner::blocked` of a tasklet asleep in `scheduler::sleep` (on no channel).
pub(crate) const SLEEPING: i8 = 2;

/// Where a tasklet is in its life (reference Appendix B).
/// One byte with these discriminants, for the debugger (`scheduler::debug_root`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Life {
    /// Created, alive; its closure waits at the top of its stack.
    New,
    /// Has run; suspended or running.
    Started,
    /// Returned, panicked, was killed or unbound; its stack is gone.
    Dead,
    /// Bound but not alive (Stackless `tasklet(f)`): its closure waits at the top of its
    /// stack, as for `New`, but it cannot run until `setup` makes it `New` (and scheduled).
    Bound,
}

/// A tasklet's state. All mutation through `Cell`s, by the scheduler of its thread only,
/// which never holds a borrow across a switch. It lives at the top of the tasklet's own
/// stack, or on the heap for a tasklet created without one (see [`Record`]). Shared through
/// [`Record`] (a counted reference, as `Arc`) so that other threads can
/// hold it (a remote handle, a channel's wait queue) and send it back to its thread; they only
/// ever touch the reference count. Everything that is not `Send` is cleared on the owning
/// thread before the tasklet is dead and unreferenced there (see `Tasklet`'s `Drop`).
pub(crate) struct Inner {
    pub(crate) id: u64,
    pub(crate) is_main: bool,
    /// A `Cell` (not a `RefCell`: one word less): read by cloning it out in place, which runs
    /// no user code (see [`Inner::name`]).
    pub(crate) name: Cell<Option<String>>,
    /// Ring links: both null when the tasklet is not in the run queue.
    pub(crate) next: Cell<*const Inner>,
    pub(crate) prev: Cell<*const Inner>,
    /// Links of the scheduler's list of all live tasklets, which holds one strong reference.
    pub(crate) all_next: Cell<*const Inner>,
    pub(crate) all_prev: Cell<*const Inner>,
    /// The saved context while suspended; `None` while running, before the first switch out
    /// of a main tasklet, and once dead.
    pub(crate) context: Cell<Option<Context>>,
    /// The stack (none for a main tasklet); released by whoever runs after its last switch,
    /// unless it is the record's home (`stack_is_home`): then it stays here, and goes with the
    /// record (see [`Record`]).
    pub(crate) stack: Cell<Option<Stack>>,
    pub(crate) life: Cell<Life>,
    /// 0, or +1 / -1 while blocked sending / receiving, or [`SLEEPING`].
    pub(crate) blocked: Cell<i8>,
    /// The channel it is blocked on. A raw pointer: the blocked call borrows a handle to
    /// that channel for as long as it is blocked, so the channel outlives the block.
    pub(crate) blocked_on: Cell<Option<*const dyn Blocker>>,
    /// Its current (or last) blocking episode, numbered by its thread's scheduler
    /// (`Scheduler::new_block_epoch`): a wake posted by another thread names the episode it
    /// completed, so that one arriving after the tasklet was unblocked otherwise (killed,
    /// thrown into, delivered an error) cannot end a later episode; and the numbers order a
    /// channel's waiters of one thread as they queued.
    pub(crate) block_epoch: Cell<u64>,
    /// Boxed so that the check on every resume is one pointer load.
    pub(crate) pending: Cell<Option<Box<Pending>>>,
    /// The closure's return value, boxed (free for `()`), until someone takes it.
    pub(crate) result: Cell<Option<Box<dyn Any>>>,
    /// How many `Tasklet` handles exist (all on this thread: they are `!Send`). When the last
    /// one goes, a dead tasklet's result is dropped here, on its own thread. 32 bits, beside
    /// the one-byte fields (the process aborts, as `Rc`'s does, if it would overflow).
    pub(crate) handles: Cell<u32>,
    /// Whether the scheduler still holds the tasklet: from its creation until the switch
    /// after its last one. The scheduler and every `Tasklet` handle share a single strong
    /// reference (the *local* one, released when neither holds it any more), so that
    /// handles and the scheduler never touch the atomic count; only other threads'
    /// references (remote handles, mail) count in it.
    pub(crate) held: Cell<bool>,
    /// Until the first run: the closure at the top of the stack, and how to drop it unrun.
    pub(crate) closure: Cell<*mut u8>,
    pub(crate) drop_closure: Cell<Option<unsafe fn(*mut u8)>>,
    pub(crate) atomic: Cell<bool>,
    /// Stackless's `pending_irq`: a watchdog interrupt was deferred while this tasklet ran
    /// (atomic, a callback, a switch trap, or soft mode); see `scheduler::preempt`.
    pub(crate) pending_irq: Cell<bool>,
    pub(crate) block_trap: Cell<bool>,
    pub(crate) preserve_fp_env: bool,
    /// Whether `stack` is the stack the record lives on (its home, see [`Record`]): set when
    /// the record is written there, cleared when the tasklet is bound to another stack. One
    /// load tells a dying tasklet's successor that the stack stays (no comparison of tops).
    pub(crate) stack_is_home: Cell<bool>,
    /// The scheduler that owns this tasklet (its thread's).
    pub(crate) owner: *const (),
    // --- Ring walking, thread id, remote state, tempval (issue 8 items 2, 3, 4, 6) ---
    /// What other threads may read of the tasklet's state (see [`RemoteState`]): written by
    /// the owning thread only, on every change of `life`, the ring links and `blocked`.
    pub(crate) remote_state: RemoteState,
    /// Stackless's `tempval`: the value `schedule_with` returns, which another tasklet may
    /// replace while this one is away. Dropped on the tasklet's own thread when it ends.
    pub(crate) tempval: Cell<Option<Box<dyn Any>>>,
}

impl Inner {
    pub(crate) fn new(id: u64, is_main: bool, owner: *const (), preserve_fp_env: bool) -> Inner {
        Inner {
            id,
            is_main,
            name: Cell::new(None),
            next: Cell::new(ptr::null()),
            prev: Cell::new(ptr::null()),
            all_next: Cell::new(ptr::null()),
            all_prev: Cell::new(ptr::null()),
            context: Cell::new(None),
            stack: Cell::new(None),
            life: Cell::new(if is_main { Life::Started } else { Life::New }),
            blocked: Cell::new(0),
            blocked_on: Cell::new(None),
            block_epoch: Cell::new(0),
            pending: Cell::new(None),
            result: Cell::new(None),
            handles: Cell::new(0),
            held: Cell::new(true),
            closure: Cell::new(ptr::null_mut()),
            drop_closure: Cell::new(None),
            atomic: Cell::new(false),
            pending_irq: Cell::new(false),
            block_trap: Cell::new(false),
            preserve_fp_env,
            stack_is_home: Cell::new(false),
            owner,
            remote_state: RemoteState::new(RemoteState::ALIVE),
            tempval: Cell::new(None),
        }
    }

    /// A copy of the name. The `Cell` is read in place: cloning a `String` runs no user code,
    /// so nothing can write the name meanwhile.
    pub(crate) fn name(&self) -> Option<String> {
        // SAFETY: a Cell of this thread, not written while the clone reads it (see above).
        unsafe { (*self.name.as_ptr()).clone() }
    }

    /// In the run queue (scheduled, or current).
    pub(crate) fn in_ring(&self) -> bool {
        !self.next.get().is_null()
    }

    /// Neither in the run queue nor blocked on a channel.
    pub(crate) fn floating(&self) -> bool {
        !self.in_ring() && self.blocked.get() == 0
    }

    /// Alive: set up (or bound with its arguments) and not yet ended.
    pub(crate) fn alive(&self) -> bool {
        matches!(self.life.get(), Life::New | Life::Started)
    }

    /// Its closure is still unrun on its stack (bound, or alive and never run).
    pub(crate) fn unrun(&self) -> bool {
        matches!(self.life.get(), Life::New | Life::Bound)
    }

    /// Makes `p` pending, by the precedence rule of [`Pending`]. Returns what lost (the
    /// replaced error, or `p` itself if a kill is pending), for the caller to drop where no
    /// scheduler state is half-changed: a payload's `Drop` is user code.
    #[must_use]
    pub(crate) fn set_pending(&self, p: Pending) -> Option<Box<Pending>> {
        match self.pending.take() {
            Some(old) if matches!(*old, Pending::Kill) => {
                self.pending.set(Some(old));
                Some(Box::new(p))
            }
            old => {
                self.pending.set(Some(Box::new(p)));
                old
            }
        }
    }
}

/// More `Tasklet` handles of one tasklet than a `u32` counts: as `Rc`, abort (only leaked
/// handles can get there).
#[cold]
#[inline(never)]
fn handle_count_overflow() -> ! {
    eprintln!("microthread: more than 2^32 - 1 handles of one tasklet (leaked with mem::forget?)");
    std::process::abort()
}

/// A handle to a tasklet. Cheap to clone; all clones name the same tasklet. Dropping every
/// handle does not end a tasklet: the scheduler keeps every live tasklet until it ends or its
/// thread ends (see [`scheduler`](crate::scheduler)).
pub struct Tasklet {
    /// A copy of the tasklet's local reference (see `Inner::held`), not a count of its own.
    pub(crate) inner: std::mem::ManuallyDrop<Record>,
}

impl Clone for Tasklet {
    fn clone(&self) -> Tasklet {
        // SAFETY: this handle holds the local reference, so it is held.
        unsafe { Tasklet::from_local(Record::as_ptr(&self.inner)) }
    }
}

impl Drop for Tasklet {
    fn drop(&mut self) {
        let n = self.inner.handles.get() - 1;
        self.inner.handles.set(n);
        if n != 0 {
            return;
        }
        if !self.inner.held.get() {
            // Nobody can ask for the result any more: drop it here, on its own thread, once
            // the reference is released (its `Drop` is user code and may do anything).
            let result = self.inner.result.take();
            // SAFETY: the last holder of the local reference releases it, once: the
            // scheduler has let go (`held` is false) and no other handle exists.
            let inner = unsafe { std::mem::ManuallyDrop::take(&mut self.inner) };
            recycle_then_drop(inner, result);
        } else if self.inner.unrun()
            && self.inner.floating()
            && Record::strong_count(&self.inner) == 1
        {
            // Paused (or bound), never run, and nobody can ever insert or set it up again: it
            // would only wait for its thread's end. Drop its closure now instead.
            // SAFETY: the last handle of an unstarted tasklet of this thread (handles are
            // !Send) that no other thread refers to; this handle's local reference is the
            // one the scheduler shares, handed over here.
            let inner = unsafe { std::mem::ManuallyDrop::take(&mut self.inner) };
            match DISCARD_UNSTARTED.get() {
                Some(discard) => discard(inner),
                None => unreachable!("a tasklet exists only once its scheduler has started"),
            }
        }
    }
}

/// How the last handle of a tasklet that never ran and never can ends it (the scheduler's
/// `discard_unstarted`: its closure is dropped now). Set by the scheduler, the layer above,
/// when it starts, so that this module does not call up into it.
static DISCARD_UNSTARTED: OnceLock<fn(Record)> = OnceLock::new();

/// Sets what [`DISCARD_UNSTARTED`] calls; every scheduler sets the same function, the first
/// one wins.
pub(crate) fn set_discard_unstarted(discard: fn(Record)) {
    let _ = DISCARD_UNSTARTED.set(discard);
}

/// How many dead tasklets' heap records a thread keeps for reuse.
const RECYCLED_MAX: usize = 64;

thread_local! {
    /// Heap records of dead tasklets nobody refers to any more, reused by the next tasklets
    /// of this thread made without a stack (lazily restored ones) instead of a `malloc` and
    /// a `free` each. (A record on a stack goes with its stack, which the pool recycles.)
    static RECYCLED: RefCell<Vec<Record>> = const { RefCell::new(Vec::new()) };
}

/// Releases the local reference of a dead tasklet: keeps a heap record for reuse if no other
/// thread refers to it, else just drops the reference (the last one frees the record and
/// releases its home stack, if it has one).
#[inline(always)]
pub(crate) fn recycle(inner: Record) {
    recycle_then_drop(inner, None);
}

/// [`recycle`], then drops `result`, what was left in the tasklet's result (user code, with
/// the reference already released): the end of a dead tasklet's last handle, which its
/// `Drop` reaches by a jump (no frame of its own around the call).
#[inline(never)]
fn recycle_then_drop(inner: Record, result: Option<Box<dyn Any>>) {
    // A value put in a dead tasklet's `tempval` (it is emptied when the tasklet ends) must
    // not go to another thread with the last reference, nor into a new tasklet.
    // SAFETY: a Cell of this thread that nothing borrows: a plain read.
    if unsafe { (*inner.tempval.as_ptr()).is_some() } {
        drop_tempval(&inner);
    }
    if Record::strong_count(&inner) != 1 || inner.life.get() != Life::Dead {
        drop(inner);
    } else if !Record::on_heap(&inner) {
        // A record on a stack goes with its stack, which the pool recycles: freed here, with
        // no atomic decrement (the count was just read as 1).
        // SAFETY: the count, read above with `Acquire`, is 1: `inner` is the only reference.
        unsafe { Record::free_unique(inner) };
    } else {
        let _ = RECYCLED.try_with(move |r| {
            let mut r = r.borrow_mut();
            if r.len() < RECYCLED_MAX {
                r.push(inner);
            }
        });
    }
    drop(result);
}

#[cold]
fn drop_tempval(inner: &Inner) {
    drop(inner.tempval.take());
}

/// The parts of a new, not yet started tasklet on its own stack (see `scheduler::create`).
pub(crate) struct Unstarted {
    pub(crate) stack: Stack,
    /// Its first frame, on `stack`.
    pub(crate) context: Context,
    /// Its closure, on `stack`, and how to drop it unrun.
    pub(crate) closure: *mut u8,
    pub(crate) drop_closure: unsafe fn(*mut u8),
}

/// A new, not yet started tasklet's state at the top of its stack, its home (see
/// [`Record`]), written at once with its context, stack and closure.
///
/// # Safety
/// As [`Record::new_on`], for `parts.stack`.
#[inline(always)]
pub(crate) unsafe fn new_tasklet_on(
    parts: Unstarted,
    id: u64,
    owner: *const (),
    preserve_fp_env: bool,
) -> Record {
    let mut inner = Inner::new(id, false, owner, preserve_fp_env);
    *inner.context.get_mut() = Some(parts.context);
    *inner.closure.get_mut() = parts.closure;
    *inner.drop_closure.get_mut() = Some(parts.drop_closure);
    // SAFETY: forwarded.
    unsafe { Record::new_on(parts.stack, inner) }
}

/// A new, not yet started tasklet's state on the heap, for a tasklet that has no stack yet:
/// a recycled record if the thread has one (a dead tasklet's fields are already empty; only
/// those that differ are set), else a new one.
pub(crate) fn new_tasklet(id: u64, owner: *const (), preserve_fp_env: bool) -> Record {
    let old = RECYCLED.try_with(|r| r.borrow_mut().pop()).ok().flatten();
    if let Some(a) = old {
        debug_assert_eq!(Record::strong_count(&a), 1);
        // SAFETY: a recycled allocation had no other reference when it was recycled (checked
        // in `recycle`), nobody else knew of it since, and no weak references are ever made:
        // this is the only access. (`Arc::get_mut` would prove it with an atomic operation.)
        let t = unsafe { &mut *(Record::as_ptr(&a) as *mut Inner) };
        debug_assert!(!t.in_ring() && t.blocked.get() == 0 && t.handles.get() == 0);
        t.id = id;
        t.owner = owner;
        t.preserve_fp_env = preserve_fp_env;
        t.life.set(Life::New);
        t.held.set(true);
        t.name.get_mut().take();
        t.pending.get_mut().take();
        t.result.get_mut().take();
        t.atomic.set(false);
        t.pending_irq.set(false);
        t.block_trap.set(false);
        t.stack_is_home.set(false);
        t.remote_state.set(RemoteState::ALIVE);
        // Emptied when the tasklet died (`after_switch`) and in `recycle`.
        debug_assert!(t.tempval.get_mut().is_none());
        return a;
    }
    Record::new_heap(Inner::new(id, false, owner, preserve_fp_env))
}

impl Tasklet {
    /// A new handle sharing the tasklet's local reference: no atomic operation.
    ///
    /// # Safety
    /// - `p` must be a tasklet of this thread whose local reference is still held (by the
    ///   scheduler, or by another handle).
    pub(crate) unsafe fn from_local(p: *const Inner) -> Tasklet {
        // SAFETY: the local reference is held (caller's obligation); the ManuallyDrop never
        // releases it except in `drop`, under the rule there.
        let inner = std::mem::ManuallyDrop::new(unsafe { Record::from_raw(p) });
        match inner.handles.get().checked_add(1) {
            Some(n) => inner.handles.set(n),
            None => handle_count_overflow(),
        }
        Tasklet { inner }
    }

    /// The first handle of a new tasklet, which has none yet: its count becomes 1.
    ///
    /// # Safety
    /// - `p` must be a tasklet of this thread with no handle, whose local reference the
    ///   scheduler holds.
    #[inline(always)]
    pub(crate) unsafe fn first_handle(p: *const Inner) -> Tasklet {
        // SAFETY: the local reference is held (caller's obligation), as in `from_local`.
        let inner = std::mem::ManuallyDrop::new(unsafe { Record::from_raw(p) });
        debug_assert_eq!(inner.handles.get(), 0);
        inner.handles.set(1);
        Tasklet { inner }
    }
}

// The state's size on 64-bit targets (issue 11): 184 bytes; with its count and home, 208, in
// four cache lines at the top of its stack ([`RECORD_SPACE`]), or one 224-byte malloc chunk
// on the heap.
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<Inner>() <= 184);
