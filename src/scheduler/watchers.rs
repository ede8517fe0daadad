//! The watchdog stack: the tasklets waiting inside [`run`](super::run), innermost on top,
//! as a list threaded through nodes in their own `run` frames (no allocation, no `RefCell`:
//! a push and a pop are a few stores).
//!
//! A node lives in the frame of the `run` call that pushed it, on its caller's stack, and is
//! unlinked before that frame goes: by the call itself when it returns, or by its guard's
//! `Drop` when a kill unwinds the caller out of it ([`PopWatchers`]). An outer `run` woken
//! first pops the deeper nodes too (their tasklets continue as ordinary ones); their frames
//! are still there, suspended in their switches, and find themselves gone from the list when
//! they resume. Nodes are told apart by address, not by tasklet: a tasklet can have two (a
//! deferred value dropped as its `run` resumes, before the pop, may call `run` again).

use std::cell::Cell;
use std::ptr;

use super::preempt::{PREEMPT, WATCHDOG_HOOK};
use super::Scheduler;
use crate::tasklet::Inner;

/// A `run` caller on the watchdog stack: a node in its `run` frame.
pub(super) struct Watcher {
    tasklet: *const Inner,
    /// The next node down (the next outer `run` caller), null for the outermost; set when
    /// the node is pushed.
    below: Cell<*const Watcher>,
}

impl Watcher {
    /// The node for `tasklet`, not yet pushed.
    #[inline(always)]
    pub(super) fn new(tasklet: *const Inner) -> Watcher {
        Watcher {
            tasklet,
            below: Cell::new(ptr::null()),
        }
    }
}

impl Scheduler {
    /// The tasklets inside `run`, innermost first.
    pub(super) fn watcher_tasklets(&self) -> Vec<*const Inner> {
        let mut out = Vec::new();
        let mut w = self.watchers.get();
        while !w.is_null() {
            // SAFETY: nodes in the list are live (see the module docs).
            unsafe {
                out.push((*w).tasklet);
                w = (*w).below.get();
            }
        }
        out
    }
}

/// Pushes `node` (its tasklet the running one) on the watchdog stack, and pops it and every
/// deeper node when dropped or [popped](PopWatchers::pop): the guard of a `run` call.
pub(super) struct PopWatchers(&'static Scheduler, *const Watcher);

impl PopWatchers {
    /// Pushes `node`; the guard returned pops it.
    ///
    /// # Safety
    /// - `node` must stay where it is until the guard is dropped or popped (a local of the
    ///   `run` frame, which the guard lives in), pushed once, and its tasklet must be the
    ///   running one, of `s`.
    #[inline(always)]
    pub(super) unsafe fn push(s: &'static Scheduler, node: &Watcher) -> PopWatchers {
        node.below.set(s.watchers.get());
        s.watchers.set(node);
        s.innermost.set(node.tasklet);
        PopWatchers(s, node)
    }

    /// Pops the node, and every deeper one first (innermost first, as Stackless pops them);
    /// nothing if an outer `run` popped it already. A popped tasklet that is floating goes
    /// back into the ring; the interrupt watchdog popped loses its budget.
    #[inline(always)]
    pub(super) fn pop(&self) {
        let PopWatchers(s, node) = *self;
        // The common case: the node is on top and no interrupt watchdog is installed.
        // `pop_slow` would do just this.
        if ptr::eq(s.watchers.get(), node) && s.hooks.get() & WATCHDOG_HOOK == 0 {
            // SAFETY: the node is live while its guard is (see `push`).
            let (me, below) = unsafe { ((*node).tasklet, (*node).below.get()) };
            debug_assert!(s.innermost.get() == me);
            s.watchers.set(below);
            s.innermost.set(tasklet_of(below));
            // SAFETY: watchdogs are live tasklets of this thread.
            if unsafe { (*me).floating() } {
                // SAFETY: as above, and floating.
                unsafe { s.ring_insert(me) };
            }
            return;
        }
        pop_slow(s, node);
    }
}

impl Drop for PopWatchers {
    fn drop(&mut self) {
        self.pop();
    }
}

/// [`PopWatchers::pop`] when the node is not on top or an interrupt watchdog is installed.
#[cold]
#[inline(never)]
fn pop_slow(s: &Scheduler, node: *const Watcher) {
    // Usually on top; if an outer `run` already popped it, nothing to do.
    let mut w = s.watchers.get();
    while !w.is_null() && !ptr::eq(w, node) {
        // SAFETY: nodes in the list are live.
        w = unsafe { (*w).below.get() };
    }
    if w.is_null() {
        return;
    }
    // Innermost first, down to and including `node`.
    loop {
        let p = s.watchers.get();
        // SAFETY: `node` is in the list, at or below `p`: `p` is a live node.
        let (t, below) = unsafe { ((*p).tasklet, (*p).below.get()) };
        s.watchers.set(below);
        if s.hooks.get() & WATCHDOG_HOOK != 0 && PREEMPT.with(|pr| pr.slot0.get()) == t {
            // The interrupt watchdog leaves: its budget ends.
            s.uninstall_watchdog();
        }
        // SAFETY: watchdogs are live tasklets of this thread.
        if unsafe { (*t).floating() } {
            // SAFETY: as above, and floating.
            unsafe { s.ring_insert(t) };
        }
        if ptr::eq(p, node) {
            break;
        }
    }
    s.innermost.set(tasklet_of(s.watchers.get()));
}

/// The tasklet of the node `w` of the list (null if `w` is).
#[inline(always)]
fn tasklet_of(w: *const Watcher) -> *const Inner {
    if w.is_null() {
        ptr::null()
    } else {
        // SAFETY: nodes in the list are live (see the module docs).
        unsafe { (*w).tasklet }
    }
}
