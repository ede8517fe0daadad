//! Lazily laid-out tasklets: made without touching their stacks, laid out (closure and first
//! frame written at the stack top) by the first switch into them. The pickle layer's
//! restore makes its tasklets this way (`crate::pickle`): a restored world of N tasklets
//! then costs no page of stack until a tasklet runs.
//!
//! A lazy tasklet is an ordinary one (alive, paused, in the list) whose saved context is
//! `None`, that has no stack yet, and whose `closure` points to a heap [`Lazy`] instead of
//! the stack top. (Its stack is acquired when it is laid out, not when it is made: the
//! pool's arenas commit the top page of each stack they hand out, which is the page
//! fault, or the populating system call, that a lazy restore is to avoid.) Every
//! switch already tests the target's context for `None` (a suspended tasklet always has
//! one; the test used to abort), so laying out costs the hot path nothing: the `None` branch
//! now calls [`Scheduler::lay_out`] (cold, out of line), which writes the closure and the
//! first frame onto the stack, exactly as `create` does, and returns the new context that
//! the switch then enters. Before that, nothing distinguishes a lazy tasklet from one that
//! never ran: killing it drops its (heap) closure unrun, through the ordinary paths.
//!
//! The closure gets the error that was thrown into the tasklet before its first run, if
//! any (taken out of `pending` when it is laid out; a kill stays pending and ends the
//! tasklet at its first instruction as for any tasklet): a restored tasklet that waited in
//! a channel delivers it from the operation it waited in.

use std::io;

use super::create::place;
use super::switch::fatal;
use super::{scheduler, Scheduler, TaskletBuilder};
use crate::context::Context;
use crate::error::Error;
use crate::id;
use crate::stack::cache_color;
use crate::stack::pool;
use crate::tasklet::{Inner, Life, Pending, Tasklet};

/// What laying out a lazy tasklet's closure at `top` gives: the closure on the stack, how
/// to drop it unrun, and the context that starts it.
type LaidOut = (*mut u8, unsafe fn(*mut u8), Context);

/// What laying out needs to know of a lazy tasklet, whatever its closure's type.
#[derive(Clone, Copy)]
struct Header {
    /// `lay_out_as::<F, R>`.
    lay_out: unsafe fn(*mut u8, usize, Option<Error>) -> LaidOut,
    /// The stack to acquire then (the builder's).
    stack_size: usize,
    guard_size: usize,
}

/// A lazy tasklet's closure, on the heap until it is laid out. `repr(C)`: the header is
/// read through a pointer to the whole.
#[repr(C)]
struct Lazy<F> {
    header: Header,
    f: F,
}

/// Moves the heap closure at `lazy` (a `Box<Lazy<F>>`) onto the stack below `top`, with the
/// error thrown before the first run.
///
/// # Safety
/// - `lazy` must come from `Box::into_raw` of a `Lazy<F>`, not used afterwards; `top` as
///   for [`place`].
unsafe fn lay_out_as<F, R>(lazy: *mut u8, top: usize, thrown: Option<Error>) -> LaidOut
where
    F: FnOnce(Option<Error>) -> R + 'static,
    R: 'static,
{
    // SAFETY: caller's obligation: the box, taken back once.
    let Lazy { f, .. } = *unsafe { Box::from_raw(lazy as *mut Lazy<F>) };
    // SAFETY: forwarded.
    unsafe { place_fitting(top, move || f(thrown)) }
}

/// [`place`], boxing a closure too large or too aligned for the stack top (as `prepare`).
///
/// # Safety
/// - As [`place`].
unsafe fn place_fitting<F, R>(top: usize, run: F) -> LaidOut
where
    F: FnOnce() -> R + 'static,
    R: 'static,
{
    if crate::coroutine::fits_at_stack_top::<F>() {
        // SAFETY: forwarded.
        unsafe { place(top, run) }
    } else {
        // SAFETY: forwarded.
        unsafe { place(top, Box::new(run)) }
    }
}

/// Drops a lazy closure unrun.
///
/// # Safety
/// - `p` must come from `Box::into_raw` of a `Lazy<F>`, not used afterwards.
unsafe fn drop_lazy<F>(p: *mut u8) {
    // SAFETY: caller's obligation.
    drop(unsafe { Box::from_raw(p as *mut Lazy<F>) })
}

impl TaskletBuilder {
    /// As [`create`](TaskletBuilder::create) (alive and paused), but the stack is not
    /// touched: `f` stays on the heap until the first switch into the tasklet lays it out,
    /// and is called with the error thrown into the tasklet before then, if any.
    ///
    /// # Errors
    /// As `create`.
    pub(crate) fn create_lazy<F, R>(self, f: F) -> io::Result<Tasklet>
    where
        F: FnOnce(Option<Error>) -> R + 'static,
        R: 'static,
    {
        let s = scheduler();
        if s.shared.ended() {
            return Err(io::Error::other(
                "microthread: this thread's scheduler has ended; no new tasklet can be created \
                 on it",
            ));
        }
        let id = id::next();
        let lazy = Box::into_raw(Box::new(Lazy {
            header: Header {
                lay_out: lay_out_as::<F, R>,
                stack_size: self.stack_size,
                guard_size: self.guard_size,
            },
            f,
        }));
        let rc = crate::tasklet::new_tasklet(
            id,
            s as *const Scheduler as *const (),
            self.preserve_fp_env,
        );
        rc.closure.set(lazy as *mut u8);
        rc.drop_closure.set(Some(drop_lazy::<F>));
        let p = crate::tasklet::Record::into_raw(rc);
        // SAFETY: the scheduler holds the new tasklet's local reference; handles share it.
        let t = unsafe {
            s.register(p);
            Tasklet::from_local(p)
        };
        Ok(t)
    }
}

impl Scheduler {
    /// The context to switch into `n`, which has none saved: a lazy tasklet, laid out now.
    /// Any other tasklet without a context is a broken invariant: abort.
    #[cold]
    #[inline(never)]
    pub(super) fn lay_out(&self, n: &Inner) -> Context {
        let lazy = n.closure.get();
        if lazy.is_null() || n.drop_closure.get().is_none() || n.life.get() == Life::Dead {
            fatal("switch to a tasklet without a saved context")
        }
        // SAFETY: a lazy tasklet's `closure` is a `Lazy<F>` box (`create_lazy`), which
        // starts with its header (`repr(C)`).
        let header = unsafe { *(lazy as *const Header) };
        // Its stack only now: a restored world costs no stack until its tasklets run. The
        // pool's arenas commit their stacks' top pages in batches, so this first touch is
        // usually paid already; if no stack can be had, there is no way to go on (no
        // context to switch to, and the switch cannot fail): as for a failed allocation.
        let stack = match pool::acquire_with_guard(header.stack_size, header.guard_size) {
            Ok(stack) => stack,
            Err(e) => fatal(&format!(
                "no stack for tasklet {} at its first run ({e})",
                n.id
            )),
        };
        stack.set_owner(crate::overflow::OwnerKind::Tasklet, n.id);
        let top = stack.top() as usize - cache_color(n.id);
        n.stack.set(Some(stack));
        // A kill stays pending (the tasklet ends at its first instruction, its closure
        // dropped unrun); an error goes to the closure.
        let thrown = match n.pending.take() {
            Some(p) if matches!(*p, Pending::Error(_)) => match *p {
                Pending::Error(e) => Some(e),
                Pending::Kill => None,
            },
            kill => {
                n.pending.set(kill);
                None
            }
        };
        // SAFETY: the box is consumed here, once (the fields are replaced below); `top` is
        // the top of the tasklet's fresh stack.
        let (closure, drop_fn, ctx) = unsafe { (header.lay_out)(lazy, top, thrown) };
        n.closure.set(closure);
        n.drop_closure.set(Some(drop_fn));
        ctx
    }
}
