//! The error handler (Stackless `set_error_handler`, reference §1.1, §2.5, §2.10): a per-thread
//! function that sees the uncaught panic of any tasklet but main before it is routed, and what
//! a dying tasklet's uncaught panic becomes (`uncaught`).
//!
//! When it runs and what it may do: see [`set_error_handler`].

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use crate::error::{Error, Payload, TaskletExit};

/// An error handler: called with the payload of a tasklet's uncaught panic; see
/// [`set_error_handler`]. It belongs to its thread (an `Rc`), as a
/// [`ScheduleCallback`](crate::scheduler::ScheduleCallback) does:
///
/// ```compile_fail
/// fn assert_send<T: Send>() {}
/// assert_send::<microthread::scheduler::ErrorHandler>();
/// ```
/// ```compile_fail
/// fn assert_send<T: Send>() {}
/// assert_send::<microthread::scheduler::ScheduleCallback>();
/// ```
pub type ErrorHandler = Rc<dyn Fn(Payload)>;

thread_local! {
    /// This thread's error handler. Only ever swapped or cloned (no user code runs while it
    /// is borrowed).
    static HANDLER: RefCell<Option<ErrorHandler>> = const { RefCell::new(None) };
}

/// Installs `handler` as this thread's error handler (Stackless `set_error_handler`; `None`
/// removes it, restoring the default routing) and returns the previous one.
///
/// # When it runs, and what it may do
/// It is called **in the dying tasklet**, on its own stack:
/// [`current`](crate::scheduler::current) is that tasklet, which is still alive and scheduled,
/// and its stack has finished unwinding (the panic was caught first), so the handler may do
/// anything a tasklet may: schedule, switch,
/// block on a channel, even replace or remove the handler (the call in progress keeps the
/// handler it started with). The tasklet ends when the handler returns:
/// - it **returns**: the error is swallowed; nothing is routed;
/// - it **panics**: that new panic is routed as usual, as [`Error::Panicked`] with the dying
///   tasklet's id, to the innermost [`run`](crate::scheduler::run) caller or main (the
///   handler is not called again for its own panic);
/// - it **panics with [`TaskletExit`]** (for example because the tasklet is killed while the
///   handler waits in a switch): the tasklet ends silently, as a killed one does.
///
/// It is not called for a kill ([`TaskletExit`]), nor for a panic of the main tasklet (the
/// thread's own stack, where a panic is an ordinary Rust panic). An error thrown into a
/// tasklet that never ran is that tasklet's uncaught error (see
/// [`Tasklet::throw`](crate::Tasklet::throw)); the handler sees it too.
///
/// ```
/// use microthread::scheduler::{self, set_error_handler, spawn};
/// use std::{cell::RefCell, rc::Rc};
///
/// let seen = Rc::new(RefCell::new(Vec::new()));
/// let s = seen.clone();
/// set_error_handler(Some(Rc::new(move |payload| {
///     let who = scheduler::current().id();
///     s.borrow_mut().push((who, *payload.downcast::<&str>().unwrap()));
/// })));
/// let t = spawn(|| panic!("oops"))?;
/// // The handler swallowed the panic: run() returns Ok.
/// scheduler::run().unwrap();
/// assert_eq!(*seen.borrow(), [(t.id(), "oops")]);
/// assert!(set_error_handler(None).is_some());
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Panics
/// If called while this thread's thread-locals are being destroyed, after this one was.
pub fn set_error_handler(handler: Option<ErrorHandler>) -> Option<ErrorHandler> {
    HANDLER.with(|h| h.replace(handler))
}

/// This thread's error handler, if one is installed: the one given to
/// [`set_error_handler`] (`Rc::ptr_eq` with it).
///
/// ```
/// use microthread::scheduler::{error_handler, set_error_handler, ErrorHandler};
/// use std::rc::Rc;
///
/// assert!(error_handler().is_none());
/// let h: ErrorHandler = Rc::new(|_| ());
/// set_error_handler(Some(h.clone()));
/// assert!(Rc::ptr_eq(&error_handler().unwrap(), &h));
/// set_error_handler(None);
/// assert!(error_handler().is_none());
/// ```
pub fn error_handler() -> Option<ErrorHandler> {
    HANDLER.try_with(|h| h.borrow().clone()).ok().flatten()
}

/// What the uncaught panic `payload` of the dying tasklet `tasklet` (the running one, not
/// main) becomes: `None` to end silently (a kill, or the handler swallowed it), else the
/// error to route. Calls the handler, if any; never unwinds.
#[inline(always)]
pub(super) fn uncaught(tasklet: u64, payload: Payload) -> Option<Error> {
    if payload.is::<TaskletExit>() {
        None
    } else {
        handle(tasklet, payload)
    }
}

/// The part of [`uncaught`] for a panic that is not a kill.
#[cold]
#[inline(never)]
fn handle(tasklet: u64, payload: Payload) -> Option<Error> {
    let Some(handler) = error_handler() else {
        return Some(Error::Panicked { tasklet, payload });
    };
    // The handler (and this clone of it, whose drop may be the last and run user code) goes
    // inside `catch_unwind`: nothing may unwind out of the tasklet's first frame.
    match panic::catch_unwind(AssertUnwindSafe(move || handler(payload))) {
        Ok(()) => None,
        Err(p) if p.is::<TaskletExit>() => None,
        Err(payload) => Some(Error::Panicked { tasklet, payload }),
    }
}

/// The payload an error thrown into a tasklet that never ran ends it with: what a
/// [`Error::Thrown`] carries, or any other error itself, boxed.
#[cold]
pub(super) fn thrown_payload(error: Error) -> Payload {
    match error {
        Error::Thrown(payload) => payload,
        other => Box::new(other),
    }
}
