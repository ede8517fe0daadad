//! Tasklet creation: [`TaskletBuilder`], [`spawn`], [`Tasklet::new`] and [`Tasklet::bound`];
//! placing the closure and the first frame on the new stack (`place`, below the stack's
//! [`cache_color`](crate::stack::cache_color)); the
//! tasklet's first frame (`entry`); and ending a tasklet that never ran when its last handle
//! goes (`discard_unstarted`). Setting up and unbinding a tasklet that never ran live in
//! `bind`.

use crate::tasklet::{Record, RECORD_SPACE};
use std::io;
use std::mem;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;

use super::error_handler::{thrown_payload, uncaught};
use super::switch::after_switch;
use super::{scheduler, Scheduler};
use crate::context::{Context, Transfer};
use crate::id;
use crate::stack::{pool, Stack, DEFAULT_STACK_SIZE};
use crate::tasklet::{Inner, Life, Pending, Tasklet, Unstarted};

/// The first Rust frame of every tasklet.
///
/// # Safety
/// - Reached only through the trampoline of a context made by `Tasklet::create`, with `arg`
///   the address of the closure it wrote and `data` the word of the switch into it.
unsafe extern "C" fn entry<F, R>(from: Context, data: usize, arg: usize) -> !
where
    F: FnOnce() -> R + 'static,
    R: 'static,
{
    let s = scheduler();
    // SAFETY: the first switch into a tasklet comes from `transfer` or `end`.
    unsafe { after_switch(s, Transfer { from, data }) };
    // Backtraces from here on continue in the main tasklet, which is suspended whenever
    // another tasklet runs (see "Backtraces across switches" in the scheduler docs).
    // SAFETY: `arg` is the top the context was made with (`place`); main's Inner lives as
    // long as the scheduler, whose tasklets all end before it goes, and its `context` holds
    // main's saved frame (a full one) whenever we run: `after_switch` just set it if main
    // switched to us. Main is no tasklet's entry, so the link never loops.
    unsafe { Context::link_backtrace(arg as *mut u8, (*s.main).context.as_ptr()) };
    if s.has_garbage.get() {
        s.drop_garbage();
    }
    let me = s.current.get();
    // SAFETY: the running tasklet is live.
    let m = unsafe { &*me };
    m.life.set(Life::Started);
    // SAFETY: `arg` is the closure `create` wrote; it is moved out exactly once, here.
    let f = unsafe { ptr::read(arg as *const F) };
    m.closure.set(ptr::null_mut());
    m.drop_closure.set(None);
    // Nothing may unwind out of this frame (an `extern "C"` function without a caller): every
    // piece of user code, the closure's `Drop` and the error handler included, runs inside
    // `catch_unwind`. An uncaught panic goes to the error handler first (`uncaught`).
    // Usually nothing is pending: then a read, no store.
    // SAFETY: a Cell of this thread that nothing borrows: a plain read.
    let pending = if unsafe { (*m.pending.as_ptr()).is_none() } {
        None
    } else {
        m.pending.take()
    };
    let panic = match pending.map(|p| *p) {
        // Killed or thrown into before it ever ran: the closure is dropped unrun.
        Some(Pending::Kill) => panic::catch_unwind(AssertUnwindSafe(|| drop(f))).err(),
        Some(Pending::Error(e)) => {
            if let Err(p) = panic::catch_unwind(AssertUnwindSafe(|| drop(f))) {
                s.defer_drop(p);
            }
            // As in Stackless, where it is raised at the tasklet's first instruction: the
            // thrown error is the tasklet's own uncaught error, routed like a panic of it.
            Some(thrown_payload(e))
        }
        None => panic::catch_unwind(AssertUnwindSafe(|| {
            let r = f();
            // Kept for whoever holds a handle; with no handle left, nobody can ask.
            if m.handles.get() > 0 {
                // SAFETY: a Cell of this thread that nothing borrows. It holds nothing while
                // the closure runs (only the closure's return sets it, and a rebinding, the
                // only way to run again, empties it), so there is nothing to drop: a store.
                unsafe {
                    debug_assert!((*m.result.as_ptr()).is_none());
                    ptr::write(m.result.as_ptr(), Some(Box::new(r)));
                }
            }
        }))
        .err(),
    };
    if let Some(payload) = panic {
        // SAFETY: as below.
        unsafe { died(s, me, payload) }
    }
    // SAFETY: `me` is running on its own stack and is not main.
    unsafe { s.end(me, None) }
}

/// The end of a tasklet with an uncaught panic (or an error thrown into it before it ran):
/// the error handler sees it first (`uncaught`), then the tasklet ends with what is left to
/// route. Out of line, so that the common end in `entry` stays lean.
///
/// # Safety
/// - As [`Scheduler::end`]: `me` must be the running, non-main tasklet, on its own stack.
#[cold]
#[inline(never)]
unsafe fn died(s: &Scheduler, me: *const Inner, payload: crate::error::Payload) -> ! {
    // SAFETY: the running tasklet is live.
    let error = uncaught(unsafe { (*me).id }, payload);
    // SAFETY: forwarded.
    unsafe { s.end(me, error) }
}

/// Options for a new tasklet: stack size, guard size and FP-environment preservation; then
/// [`spawn`](TaskletBuilder::spawn) (alive and scheduled), [`create`](TaskletBuilder::create)
/// (alive and paused) or [`bind`](TaskletBuilder::bind) (bound, not alive).
///
/// ```
/// use microthread::scheduler::{self, TaskletBuilder};
/// let t = TaskletBuilder::new().stack_size(64 * 1024).spawn(|| 6 * 7)?;
/// scheduler::run().unwrap();
/// assert_eq!(t.result::<i32>(), Some(42));
///
/// // The builder is `Clone`: one configuration, many tasklets.
/// let small = TaskletBuilder::new().stack_size(16 * 1024);
/// let a = small.clone().create(|| 1)?;
/// let b = small.bind(|| 2)?;
/// assert!(a.alive() && a.paused() && !b.alive());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct TaskletBuilder {
    pub(super) stack_size: usize,
    pub(super) guard_size: usize,
    pub(super) preserve_fp_env: bool,
}

impl Default for TaskletBuilder {
    fn default() -> Self {
        TaskletBuilder::new()
    }
}

impl TaskletBuilder {
    /// Defaults: a [`DEFAULT_STACK_SIZE`] stack from the pool, FP environment not preserved.
    pub fn new() -> TaskletBuilder {
        TaskletBuilder {
            stack_size: DEFAULT_STACK_SIZE,
            guard_size: crate::stack::DEFAULT_GUARD_SIZE,
            preserve_fp_env: false,
        }
    }

    /// Usable bytes of the tasklet's stack.
    pub fn stack_size(mut self, bytes: usize) -> TaskletBuilder {
        self.stack_size = bytes;
        self
    }

    /// Bytes of the inaccessible guard below the tasklet's stack (default
    /// [`DEFAULT_GUARD_SIZE`](crate::stack::DEFAULT_GUARD_SIZE)), rounded up to pages, at least
    /// one; address space only. On riscv64, where rustc emits no stack probes, a frame larger
    /// than the guard can step over it unreported: make it larger than the tasklet's largest
    /// frame (see [`crate::stack`]).
    pub fn guard_size(mut self, bytes: usize) -> TaskletBuilder {
        self.guard_size = bytes;
        self
    }

    /// Whether switches into and out of this tasklet preserve the FP control state (see
    /// [`crate::context`]).
    pub fn preserve_fp_env(mut self, on: bool) -> TaskletBuilder {
        self.preserve_fp_env = on;
        self
    }

    /// Creates the tasklet alive and paused (Stackless `bind(f, args)`): it runs once
    /// inserted, run or switched to.
    ///
    /// ```
    /// use microthread::scheduler::{self, TaskletBuilder};
    /// let t = TaskletBuilder::new().create(|| "ran")?;
    /// assert!(t.alive() && t.paused());
    /// scheduler::run().unwrap(); // nothing is scheduled: it does not run
    /// assert!(t.paused());
    /// t.run().unwrap();
    /// assert_eq!(t.result::<&str>(), Some("ran"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error if a new stack cannot be mapped; an error of kind `Other` if this
    /// thread's scheduler has ended (the thread is exiting, past its teardown).
    pub fn create<F, R>(self, f: F) -> io::Result<Tasklet>
    where
        F: FnOnce() -> R + 'static,
        R: 'static,
    {
        let s = scheduler();
        let p = self.create_in(s, f)?;
        // SAFETY: a new tasklet of this thread, in no queue, whose one handle this is.
        Ok(unsafe { Tasklet::first_handle(p) })
    }

    /// [`create`](TaskletBuilder::create) on this thread's scheduler `s`, without the handle
    /// (its count of handles is 0): the new tasklet, alive and paused, registered.
    #[inline(always)]
    fn create_in<F, R>(self, s: &Scheduler, f: F) -> io::Result<*const Inner>
    where
        F: FnOnce() -> R + 'static,
        R: 'static,
    {
        // The ended bit of the hooks word is `shared.ended()`, set right after the close (one
        // load of the scheduler's own word, not the shared part's).
        debug_assert_eq!(
            s.hooks.get() & super::switch::ENDED_HOOK != 0,
            s.shared.ended()
        );
        if s.hooks.get() & super::switch::ENDED_HOOK != 0 {
            return Err(io::Error::other(
                "microthread: this thread's scheduler has ended (the thread is exiting and its \
                 tasklets were killed); no new tasklet can be created on it",
            ));
        }
        let id = id::next();
        let Prepared {
            stack,
            closure,
            drop_closure: drop_fn,
            context: ctx,
        } = prepare(self.stack_size, self.guard_size, RECORD_SPACE, id, f)?;
        // SAFETY: a fresh stack whose top `RECORD_SPACE` bytes `prepare` left free; it goes
        // into the record's `stack`, and every release of a tasklet's stack hands it to
        // `Record::keep_home`.
        let rc = unsafe {
            crate::tasklet::new_tasklet_on(
                Unstarted {
                    stack,
                    context: ctx,
                    closure,
                    drop_closure: drop_fn,
                },
                id,
                s as *const Scheduler as *const (),
                self.preserve_fp_env,
            )
        };
        let p = Record::into_raw(rc);
        // SAFETY: the scheduler holds the new tasklet's local reference; handles share it.
        unsafe { s.register(p) };
        Ok(p)
    }

    /// Creates the tasklet bound but not alive (Stackless `tasklet(f)`): its closure is on
    /// its stack, but it is neither alive nor scheduled, and it cannot run until
    /// [`Tasklet::setup`] makes it alive and scheduled. [`Tasklet::unbind`] drops the closure
    /// unrun; so does dropping its last handle (unless a [`RemoteTasklet`] refers to it), or
    /// its thread's end.
    ///
    /// [`RemoteTasklet`]: crate::scheduler::RemoteTasklet
    ///
    /// ```
    /// use microthread::scheduler::{self, TaskletBuilder};
    /// use microthread::Error;
    /// let t = TaskletBuilder::new().bind(|| 6 * 7)?;
    /// assert!(!t.alive() && !t.scheduled() && !t.paused());
    /// assert!(matches!(t.run(), Err(Error::RunDead)));
    /// t.setup().unwrap();
    /// assert!(t.alive() && t.scheduled());
    /// scheduler::run().unwrap();
    /// assert_eq!(t.result::<i32>(), Some(42));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`create`](TaskletBuilder::create).
    pub fn bind<F, R>(self, f: F) -> io::Result<Tasklet>
    where
        F: FnOnce() -> R + 'static,
        R: 'static,
    {
        let t = self.create(f)?;
        t.inner.life.set(Life::Bound);
        // Not alive, for other threads too.
        t.inner.remote_state.set(0);
        Ok(t)
    }

    /// Creates the tasklet and inserts it at the end of the run queue (Stackless
    /// `tasklet(f)()`).
    ///
    /// ```
    /// use microthread::scheduler::{self, TaskletBuilder};
    /// let t = TaskletBuilder::new().spawn(|| ())?;
    /// assert!(t.alive() && t.scheduled());
    /// scheduler::run().unwrap();
    /// assert!(!t.alive());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`create`](TaskletBuilder::create).
    pub fn spawn<F, R>(self, f: F) -> io::Result<Tasklet>
    where
        F: FnOnce() -> R + 'static,
        R: 'static,
    {
        let s = scheduler();
        let p = self.create_in(s, f)?;
        // SAFETY: a new tasklet of this thread, in no queue, whose one handle this is.
        unsafe {
            s.ring_insert(p);
            Ok(Tasklet::first_handle(p))
        }
    }
}

/// A new tasklet stack with its closure placed at the top (see [`prepare`]).
pub(super) struct Prepared {
    pub(super) stack: Stack,
    /// Where the closure is, on `stack`.
    pub(super) closure: *mut u8,
    /// How to drop the closure unrun.
    pub(super) drop_closure: unsafe fn(*mut u8),
    /// The context that starts the tasklet (its first frame, `entry`).
    pub(super) context: Context,
}

/// A new stack for tasklet `id`, with `f` placed `reserve` bytes below its top (room for the
/// tasklet's record there, see `tasklet::Record`) and a context that starts it below.
#[inline(always)]
pub(super) fn prepare<F, R>(
    stack_size: usize,
    guard_size: usize,
    reserve: usize,
    id: u64,
    f: F,
) -> io::Result<Prepared>
where
    F: FnOnce() -> R + 'static,
    R: 'static,
{
    let stack = pool::acquire_with_guard(stack_size, guard_size)?;
    stack.set_owner(crate::overflow::OwnerKind::Tasklet, id);
    // Decided on size and alignment: an over-aligned closure (even a zero-sized one) would
    // be placed below the stack. A box of a zero-sized type allocates nothing.
    let f = if crate::coroutine::fits_at_stack_top::<F>() {
        Placed::Inline(f)
    } else {
        Placed::Boxed(Box::new(f))
    };
    let top = stack.top() as usize - reserve - crate::stack::cache_color(id);
    let (closure, drop_fn, ctx) = match f {
        // SAFETY: the closure goes at the top of our fresh stack, aligned, and the initial
        // frame just below it; the stack outlives the context.
        Placed::Inline(f) => unsafe { place(top, f) },
        // SAFETY: as above, for the boxed closure.
        Placed::Boxed(b) => unsafe { place(top, b) },
    };
    Ok(Prepared {
        stack,
        closure,
        drop_closure: drop_fn,
        context: ctx,
    })
}

pub(super) enum Placed<F, B> {
    Inline(F),
    Boxed(B),
}

/// Writes `f` just below `top` and a context that starts `entry::<F, R>` below it.
///
/// # Safety
/// - `top` must be the 16-aligned top of a stack with room for `f` and the initial frame.
pub(super) unsafe fn place<F, R>(top: usize, f: F) -> (*mut u8, unsafe fn(*mut u8), Context)
where
    F: FnOnce() -> R + 'static,
    R: 'static,
{
    // The caller boxed anything larger or more aligned (a constant: no code in release), so
    // `at` is at most 1024 + 128 bytes below `top`.
    assert!(crate::coroutine::fits_at_stack_top::<F>());
    let align = mem::align_of::<F>().max(16);
    let at = (top - mem::size_of::<F>()) & !(align - 1);
    // SAFETY: caller vouches for the room; `at` is aligned for F.
    unsafe { ptr::write(at as *mut F, f) };
    // SAFETY: `at` is 16-aligned and the stack below is ours.
    let ctx = unsafe { Context::new(at as *mut u8, entry::<F, R>, at) };
    (at as *mut u8, drop_as::<F>, ctx)
}

/// # Safety
/// - `p` must point to a valid `F` that is not used afterwards.
pub(super) unsafe fn drop_as<F>(p: *mut u8) {
    // SAFETY: forwarded.
    unsafe { ptr::drop_in_place(p as *mut F) }
}

impl Tasklet {
    /// Creates a tasklet alive and paused (Stackless `bind(f, args)`), on a default stack: it
    /// runs once [inserted](Tasklet::insert), [run](Tasklet::run) or
    /// [switched to](Tasklet::switch).
    ///
    /// ```
    /// use microthread::{scheduler, Tasklet};
    /// let t = Tasklet::new(|| 1 + 1)?;
    /// assert!(t.alive() && t.paused() && !t.started());
    /// t.insert().unwrap();
    /// scheduler::run().unwrap();
    /// assert_eq!(t.result::<i32>(), Some(2));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error if a new stack cannot be mapped.
    pub fn new<F, R>(f: F) -> io::Result<Tasklet>
    where
        F: FnOnce() -> R + 'static,
        R: 'static,
    {
        TaskletBuilder::new().create(f)
    }

    /// Creates a tasklet bound to `f` but not alive (Stackless `tasklet(f)`), on a default
    /// stack: [`setup`](Tasklet::setup) makes it alive and scheduled. See
    /// [`TaskletBuilder::bind`].
    ///
    /// ```
    /// use microthread::{scheduler, Tasklet};
    /// let t = Tasklet::bound(|| "hello")?;
    /// assert!(!t.alive());
    /// t.setup().unwrap();
    /// scheduler::run().unwrap();
    /// assert_eq!(t.result::<&str>(), Some("hello"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error if a new stack cannot be mapped.
    pub fn bound<F, R>(f: F) -> io::Result<Tasklet>
    where
        F: FnOnce() -> R + 'static,
        R: 'static,
    {
        TaskletBuilder::new().bind(f)
    }
}

/// Creates a tasklet and appends it to the run queue: Stackless `tasklet(f)()`. The one-call
/// form of [`Tasklet::bound`] + [`Tasklet::setup`].
///
/// ```
/// use microthread::scheduler::{self, spawn};
/// use std::{cell::RefCell, rc::Rc};
///
/// let log = Rc::new(RefCell::new(Vec::new()));
/// for name in ["A", "B"] {
///     let log = log.clone();
///     spawn(move || log.borrow_mut().push(name))?;
/// }
/// assert_eq!(scheduler::runcount(), 3); // main and the two new ones
/// scheduler::run().unwrap();
/// assert_eq!(*log.borrow(), ["A", "B"]); // in creation order
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// The OS error if a new stack cannot be mapped.
pub fn spawn<F, R>(f: F) -> io::Result<Tasklet>
where
    F: FnOnce() -> R + 'static,
    R: 'static,
{
    TaskletBuilder::new().spawn(f)
}

/// Ends a tasklet that never ran and never can (paused or bound, no handle, no other thread
/// refers to it): drops its closure now instead of at the thread's end. Called by the last
/// handle.
pub(super) fn discard_unstarted(inner: Record) {
    let s = scheduler();
    // SAFETY: an unrun, floating tasklet of this thread, in the list; its local reference
    // is the one the last handle handed over, held here in `inner`.
    let dropped = unsafe { s.drop_unrun(&inner) };
    crate::tasklet::recycle(inner);
    if let Err(payload) = dropped {
        panic::resume_unwind(payload);
    }
}
