//! [`run`] and the watchdog stack: the tasklets waiting inside `run()`, innermost last, and
//! whom an empty run queue wakes.

use std::ptr;

use super::{scheduler, Scheduler};
#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;
use crate::tasklet::Inner;

impl Scheduler {
    pub(super) fn innermost_watchdog_or_main(&self) -> *const Inner {
        let w = self.innermost.get();
        if w.is_null() {
            self.main
        } else {
            w
        }
    }
}

/// Runs the scheduler until the run queue is empty, from any tasklet: the caller leaves the
/// run queue and waits (it is pushed on the watchdog stack), and `run` returns when no
/// tasklet is runnable any more, when someone runs or switches to the caller, or with the
/// error of a tasklet that panicked (the other tasklets stay scheduled). Nested `run` calls
/// are woken innermost first.
///
/// Stackless `run()` with no timeout (`run(timeout)` and preemption: not yet, issue 9).
///
/// ```
/// use microthread::{scheduler, spawn, Error};
///
/// // Inside run() the caller (here main) waits outside the run queue: it is not counted.
/// let counted = spawn(scheduler::runcount)?;
/// let failing = spawn(|| -> () { panic!("boom") })?;
/// let later = spawn(|| "after")?;
/// match scheduler::run() {
///     Err(Error::Panicked { tasklet, .. }) => assert_eq!(tasklet, failing.id()),
///     other => panic!("expected the panic, got {other:?}"),
/// }
/// assert_eq!(counted.result::<usize>(), Some(3));
/// assert!(later.scheduled(), "the other tasklets stay scheduled");
/// scheduler::run().unwrap();
/// assert_eq!(later.result::<&str>(), Some("after"));
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// [`Error::Panicked`] and any error delivered to the caller; [`Error::SwitchTrap`],
/// [`Error::Unwinding`], [`Error::RecursiveCallback`] (refused: nothing changed).
pub fn run() -> Result<()> {
    let s = scheduler();
    let me = s.current.get();
    // With nothing else runnable it returns at once, without switching.
    // SAFETY: `me` is running, in the ring.
    s.refuse_switch(unsafe { (*me).next.get() } != me)?;
    s.watchdogs.borrow_mut().push(me);
    s.innermost.set(me);
    // SAFETY: `me` is running, in the ring.
    unsafe { s.ring_remove(me) };
    let next = s.current.get();
    // Popped when `run` returns, and also when a kill unwinds the caller out of it.
    let _pop = PopWatchdogs(s, me);
    // SAFETY: `me` is running; `next` (if any) is a ring member.
    unsafe { s.switch_to(me, next) }
}

/// Pops a `run` caller and every deeper watchdog; the deeper ones continue as ordinary
/// tasklets.
pub(super) struct PopWatchdogs(&'static Scheduler, *const Inner);

impl Drop for PopWatchdogs {
    fn drop(&mut self) {
        let PopWatchdogs(s, me) = *self;
        let mut w = s.watchdogs.borrow_mut();
        // Usually `me` is the innermost; if an outer `run` already popped it, nothing to do.
        if s.innermost.get() != me && !w.contains(&me) {
            return;
        }
        // Innermost first, as Stackless pops them, down to and including `me`.
        while let Some(p) = w.pop() {
            // SAFETY: watchdogs are live tasklets of this thread.
            if unsafe { (*p).floating() } {
                // SAFETY: as above, and floating.
                unsafe { s.ring_insert(p) };
            }
            if p == me {
                break;
            }
        }
        s.innermost.set(w.last().copied().unwrap_or(ptr::null()));
    }
}
