//! [`Coroutine`]: a function running on its own guard-paged stack, resumed with a value,
//! yielding values back, and finishing with a return value. The safe interface to
//! [`Context`].
//!
//! ```
//! use microthread::coroutine::{Coroutine, CoroutineResult};
//!
//! let mut counter = Coroutine::new(|yielder, start: u32| {
//!     let mut n = start;
//!     while n < start + 3 {
//!         let step = yielder.suspend(n);
//!         n += step;
//!     }
//!     "done"
//! })?;
//! assert_eq!(counter.resume(10), CoroutineResult::Yield(10));
//! assert_eq!(counter.resume(1), CoroutineResult::Yield(11));
//! assert_eq!(counter.resume(2), CoroutineResult::Return("done"));
//! assert!(counter.is_finished());
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # The forms
//!
//! | form | closure and types | lives | made by |
//! |---|---|---|---|
//! | [`Coroutine<I, Y, R>`] | `'static` | as long as its owner keeps it | [`Coroutine::new`], [`Builder::build`], [`Builder::build_on`] |
//! | [`ScopedCoroutine<'a, I, Y, R>`] | may borrow from the caller (`'a`) | inside one call, which ends it | [`ScopedCoroutine::with`], [`Builder::scoped`], [`Builder::scoped_on`] |
//! | [`Generator<Y>`] = `Coroutine<(), Y, ()>` | `'static` | an [`Iterator`] over its yields | [`generator`], or any constructor above |
//! | [`ScopedGenerator<'a, Y>`] = `ScopedCoroutine<'a, (), Y, ()>` | may borrow | `&mut` of it is the iterator, inside its scope | [`scoped_generator`], or any scoped constructor |
//!
//! A body suspends itself with [`Yielder::suspend`]; a resume gives a [`CoroutineResult`].
//!
//! ```
//! use microthread::coroutine::{generator, ScopedCoroutine};
//!
//! // A generator is an iterator.
//! let evens = generator(|y| (0..10).filter(|n| n % 2 == 0).for_each(|n| y.suspend(n)))?;
//! assert_eq!(evens.collect::<Vec<u32>>(), [0, 2, 4, 6, 8]);
//!
//! // A scoped coroutine borrows from the caller's stack, here mutably.
//! let mut total = 0;
//! ScopedCoroutine::with(
//!     |y, mut n: u32| loop {
//!         total += n;
//!         n = y.suspend(());
//!     },
//!     |co| {
//!         co.resume(1);
//!         co.resume(2);
//!     },
//! )?;
//! assert_eq!(total, 3);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Behaviour
//!
//! - A panic inside the coroutine propagates out of the [`Coroutine::resume`] that ran it;
//!   the coroutine is then finished.
//! - Dropping a suspended coroutine unwinds its stack from the suspension point, so every
//!   destructor on it runs. With `panic = "abort"` there is no unwinding: a [`Coroutine`]'s
//!   frames and stack are then leaked (never reused, since something they started may still
//!   use them), and a [`ScopedCoroutine`] whose scope ends while it is suspended aborts the
//!   process with a message. Dropping one that never started drops its closure.
//! - Resuming a finished coroutine panics with a sentence; [`Coroutine::try_resume`] returns
//!   [`ResumeError`] instead.
//! - A coroutine is `!Send`: it stays on the thread that made it.
//! - Stacks come from the thread's [`stack::pool`](crate::stack::pool) and go back to it when the
//!   coroutine finishes, so a coroutine on a recycled stack costs no system call.
//! - Suspending while the coroutine's *own* stack is unwinding (from a `Drop` impl run by a
//!   panic of the coroutine) is a hard error: it aborts the process with a message. A
//!   coroutine resumed from a `Drop` that runs during a panic of its resumer suspends and is
//!   resumed as usual. [`Yielder`] says exactly what is told apart and what is guaranteed.
//! - A [`Yielder`] suspends only its own coroutine: called from any other stack (say, handed
//!   to a child coroutine as its input), [`Yielder::suspend`] panics with a sentence and
//!   changes nothing.
//! - Closures are written at the top of the coroutine's stack when they are small and not
//!   over-aligned (up to about 1 KiB, aligned to at most 128); any other closure is boxed
//!   (a zero-sized one with no allocation), so nothing is placed outside its stack. (A
//!   closure body that takes the address of a capture aligned to more than its stack size
//!   still needs that much stack to align its frame: a true overflow, as on a thread.)
//!
//! ```compile_fail
//! fn assert_send<T: Send>() {}
//! assert_send::<microthread::coroutine::Coroutine<(), (), ()>>();
//! ```
//!
//! # Backtraces across switches
//!
//! A backtrace taken inside a coroutine ([`std::backtrace::Backtrace`], a panic's, gdb's
//! `bt`) does not stop at the coroutine's first frame: it goes on into the code that
//! resumed it, on the resumer's stack, and from there down to the resumer's own resumer.
//! The coroutine keeps its resumer's saved stack pointer in a word at the top of its stack
//! (one store after every switch into it) and the trampoline's unwind information follows
//! it (see "Backtraces across switches" at the top of `asm/x86_64.S`). Resumers only nest
//! (a running coroutine cannot be resumed), so the chain always ends. A panic still stops at
//! the coroutine's first frame, which catches it; `resume` then raises it on the resumer's
//! side. The link is only meaningful while the coroutine runs: a suspended coroutine's
//! points at a frame its resumer has since left.
//!
//! ```
//! use microthread::coroutine::Coroutine;
//! #[inline(never)]
//! fn resumer_of_the_example(co: &mut Coroutine<(), (), String>) -> String {
//!     co.resume(()).into_return().unwrap()
//! }
//! let mut co = Coroutine::new(|_, ()| std::backtrace::Backtrace::force_capture().to_string())?;
//! let trace = resumer_of_the_example(&mut co);
//! assert!(trace.contains("resumer_of_the_example"), "{trace}");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Coming from corosensei
//!
//! | corosensei 0.3 | microthread |
//! |---|---|
//! | `Coroutine::new(f)` | [`Coroutine::new`]`(f)?` (maps a stack: an `io::Result`) |
//! | `Coroutine::with_stack(stack, f)` | [`Builder::build_on`]`(stack, f)`; sizes: [`Builder::stack_size`] |
//! | `coroutine.resume(x)` / `started()` / `done()` | [`Coroutine::resume`] / [`Coroutine::started`] / [`Coroutine::is_finished`]; [`Coroutine::try_resume`] returns [`ResumeError`] instead of panicking |
//! | `Yielder<I, Y>`, `yielder.suspend(y)` | [`Yielder<I, Y>`], [`Yielder::suspend`] (also checks it is on its own coroutine) |
//! | `CoroutineResult::{Yield, Return}`, `as_yield()`, `as_return()` | [`CoroutineResult`]; by value: [`CoroutineResult::into_yield`] / [`into_return`](CoroutineResult::into_return); [`as_yield`](CoroutineResult::as_yield) / [`as_return`](CoroutineResult::as_return) borrow |
//! | `ScopedCoroutine::new(f).scope(\|co\| ..)` with `co.as_mut().resume(x)` | [`ScopedCoroutine::with`]`(f, \|co\| ..)?` with `co.resume(x)` (`co` is a `&mut ScopedCoroutine`) |
//! | `ScopedCoroutine::with_stack(stack, f)` | [`Builder::scoped_on`]`(stack, f, scope)` |
//! | `force_unwind()` | dropping the coroutine (or ending its scope) unwinds it |
//! | `force_reset()`, `trap_handler()`, `on_stack` | none: overflows are reported by the guard-page handler ([`crate::stack`]) |
//! | `Sync` when its stack is; `Send` only by an `unsafe impl` | `!Send`, `!Sync` |
//!
//! Both need `'static` closures and types for the plain form, and run a dropped coroutine's
//! destructors by unwinding its stack.
//!
//! # Borrowed inputs need the scoped form
//!
//! A `Coroutine` may be leaked with [`mem::forget`]: its stack is then never freed and its
//! frames never run again. That is harmless for what the coroutine owns, but not for a
//! borrow: the caller's borrow ends while a frame on the leaked stack still holds it, and a
//! scoped thread started there keeps using it (corosensei's issue 27, there for its first
//! `ScopedCoroutine`). So `Coroutine::new` and
//! [`Builder::build`] take `'static` closures and `'static` input, yield and return types;
//! a coroutine that borrows from its caller is a [`ScopedCoroutine`]. This does not compile
//! (it did: the scoped thread then pushed to `shared` while the caller did):
//!
//! ```compile_fail
//! use microthread::coroutine::Coroutine;
//! let mut shared = vec![0u64];
//! let mut co: Coroutine<&mut Vec<u64>, (), ()> = Coroutine::new(|y, v: &mut Vec<u64>| {
//!     std::thread::scope(|s| {
//!         s.spawn(|| v.push(1));
//!         y.suspend(());
//!     });
//! })
//! .unwrap();
//! co.resume(&mut shared);
//! std::mem::forget(co);
//! shared.push(2);
//! ```
//!
//! A `ScopedCoroutine` is reachable only as a `&mut` inside the call that made it, and that
//! call ends it (unwinding it if it is suspended) before it returns, so forgetting anything
//! the user holds forgets a reference and nothing else. The guarantees and the reasons are
//! [on the type](ScopedCoroutine#what-is-guaranteed-and-why-memforget-is-harmless).
//!
//! # Variance
//!
//! A `Coroutine<I, Y, R>` is *invariant* in its input type `I`. The coroutine's body may keep
//! an input of one resume across later suspensions, so the type must keep saying which
//! lifetime those inputs have. (It was contravariant: a `Coroutine<&'a mut Vec<u64>, _, _>`
//! became a `Coroutine<&'static mut Vec<u64>, _, _>`, outlived the `Vec`, and its body then
//! wrote through the kept reference into freed memory.) Such types are made only inside a
//! [`ScopedCoroutine`] now (see above), which wraps a `Coroutine` and so is invariant in `I`
//! too. Neither direction is accepted:
//!
//! ```compile_fail
//! use microthread::coroutine::Coroutine;
//! // Shortening what the caller must pass in would let the body keep a dead borrow.
//! fn forget_the_borrow<'a>(
//!     co: Coroutine<&'a mut Vec<u64>, (), usize>,
//! ) -> Coroutine<&'static mut Vec<u64>, (), usize> {
//!     co
//! }
//! ```
//!
//! ```compile_fail
//! use microthread::coroutine::Coroutine;
//! // A body that expects `'static` inputs (and may store them anywhere) must not get less.
//! fn shorten_the_input<'a>(
//!     co: Coroutine<&'static mut Vec<u64>, (), usize>,
//! ) -> Coroutine<&'a mut Vec<u64>, (), usize> {
//!     co
//! }
//! ```
//!
//! The same functions with one lifetime compile (so the two above fail for their lifetimes
//! alone), and the output types stay covariant, which is sound: the coroutine only ever hands
//! `Y` and `R` values out, so a caller may see them with a shorter lifetime.
//!
//! ```
//! use microthread::coroutine::Coroutine;
//! fn keep<'a>(co: Coroutine<&'a mut Vec<u64>, (), usize>) -> Coroutine<&'a mut Vec<u64>, (), usize> {
//!     co
//! }
//! fn shorten_the_outputs<'a>(
//!     co: Coroutine<(), &'static str, &'static str>,
//! ) -> Coroutine<(), &'a str, &'a str> {
//!     co
//! }
//! ```
//!
//! A [`Yielder<I, Y>`] is covariant in `I` and contravariant in `Y`: the body may treat the
//! inputs it receives as living shorter than they do, and may only pass in yields that live
//! at least as long as the resumer expects. It is only reachable as a borrow for the call of
//! the body, and (see above) suspends only its own coroutine, so no other code can use it
//! with other types.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::mem::{self, ManuallyDrop};
use std::panic;

use crate::context::Context;
use crate::stack::Stack;

mod builder;
mod generator;
mod message;
mod placement;
mod result;
mod resume;
mod scoped;
mod yielder;

pub use builder::Builder;
pub use generator::{generator, scoped_generator, Generator, ScopedGenerator};
use message::{ForcedUnwind, Resume, Slot, Suspend, LAST};
pub(crate) use placement::fits_at_stack_top;
pub use result::{CoroutineResult, ResumeError};
pub use scoped::ScopedCoroutine;
pub use yielder::Yielder;

/// Where a coroutine is ([`Coroutine::state`]). There is no "running" state: a running
/// coroutine is mutably borrowed by the resume that runs it, so nothing can look at it until it
/// suspends or finishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    NotStarted,
    Suspended,
    Finished,
}

/// A function on its own stack that can suspend itself; see the [module docs](self).
///
/// `I` is what each resume passes in, `Y` what each suspension passes out, and `R` what the
/// function returns.
pub struct Coroutine<I, Y, R> {
    /// The suspended coroutine. While it runs, a stale copy of the handle that resumed it
    /// (never used: the switch back overwrites it; not clearing it saves a store per switch);
    /// once it finished, a stale copy of its last frame, never read (only a coroutine that is
    /// not finished is switched into).
    context: Option<Context>,
    /// Its stack, until it finished: then a stale copy of the handle that went back to the
    /// pool, never read (only `finish` moves it out, once, and the abort path of `Drop`,
    /// which leaves the coroutine finished too). Never dropped as a field: `Drop` finishes
    /// every coroutine that is not finished (or, with `panic = "abort"`, forgets its stack).
    stack: ManuallyDrop<Option<Stack>>,
    /// The saved stack pointer of its initial frame: while `context` still names that frame,
    /// the coroutine has not started ([`Coroutine::state`]). No state is stored per suspend
    /// (one store fewer per switch round trip): a suspended frame always lies below the
    /// coroutine's first frame, so it is never the initial one.
    initial: *const u8,
    /// Whether it finished (returned, panicked, or was unwound by a drop).
    finished: bool,
    /// The one test of a resume's fast path: not finished, and switched with the light switch
    /// (not `preserve_fp_env`). Anything else takes [`Coroutine::try_resume_other`]. While
    /// the coroutine is not finished, it is also the FP-environment choice: false exactly for
    /// a `preserve_fp_env` coroutine (no field of its own: one store fewer per spawn).
    light_resumable: bool,
    id: u64,
    /// Where `place` wrote the closure, at the top of the stack: for the placement tests only.
    /// (A coroutine dropped before it started has its closure dropped by its own first frame,
    /// so neither this nor a drop function is kept: two stores fewer per spawn.)
    #[cfg(test)]
    closure: *mut u8,
    _types: Variance<I, Y, R>,
}

/// Makes [`Coroutine`] invariant in `I`, covariant in `Y` and `R` (see the module docs), and
/// `!Send`.
type Variance<I, Y, R> = PhantomData<(fn(I) -> I, fn() -> Y, fn() -> R, *mut ())>;

impl<I, Y, R> Coroutine<I, Y, R> {
    /// Creates a coroutine running `f` on a default-sized stack from the thread's pool. `f`
    /// starts at the first [`resume`](Coroutine::resume), with that resume's value. `f` and
    /// the three types are `'static`; to borrow, use [`ScopedCoroutine`] (see the module docs
    /// for why).
    ///
    /// ```
    /// use microthread::coroutine::{Coroutine, CoroutineResult};
    /// let mut echo = Coroutine::new(|y, first: String| {
    ///     let second = y.suspend(first.len());
    ///     format!("{first} {second}")
    /// })?;
    /// assert!(!echo.started()); // nothing ran yet
    /// assert_eq!(echo.resume("hello".into()), CoroutineResult::Yield(5));
    /// assert_eq!(echo.resume("world".into()), CoroutineResult::Return("hello world".into()));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error if a new stack cannot be mapped.
    #[inline(always)]
    pub fn new<F>(f: F) -> io::Result<Coroutine<I, Y, R>>
    where
        F: FnOnce(&Yielder<I, Y>, I) -> R + 'static,
        I: 'static,
        Y: 'static,
        R: 'static,
    {
        Builder::new().build(f)
    }

    /// Whether the coroutine has returned or panicked.
    ///
    /// ```
    /// use microthread::coroutine::Coroutine;
    /// let mut co: Coroutine<(), (), ()> = Coroutine::new(|y, ()| y.suspend(()))?;
    /// co.resume(());
    /// assert!(!co.is_finished()); // suspended
    /// co.resume(());
    /// assert!(co.is_finished()); // returned
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Not started, suspended or finished: not started while its context is still the initial
    /// frame (see `initial`).
    fn state(&self) -> State {
        match &self.context {
            _ if self.finished => State::Finished,
            Some(c) if c.stack_pointer() == self.initial => State::NotStarted,
            _ => State::Suspended,
        }
    }

    /// Whether the coroutine has been resumed at least once.
    ///
    /// ```
    /// use microthread::coroutine::Coroutine;
    /// let mut co: Coroutine<(), (), ()> = Coroutine::new(|_, ()| ())?;
    /// assert!(!co.started());
    /// co.resume(());
    /// assert!(co.started() && co.is_finished());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn started(&self) -> bool {
        self.state() != State::NotStarted
    }

    /// The id in overflow reports: unique in the process.
    ///
    /// ```
    /// use microthread::coroutine::Coroutine;
    /// let a: Coroutine<(), (), ()> = Coroutine::new(|_, ()| ())?;
    /// let b: Coroutine<(), (), ()> = Coroutine::new(|_, ()| ())?;
    /// assert_ne!(a.id(), b.id());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl<I, Y, R> Drop for Coroutine<I, Y, R> {
    /// Inline, so that dropping a finished coroutine (the usual end) costs one test, or
    /// nothing where the compiler sees the state; the rest is out of line.
    #[inline]
    fn drop(&mut self) {
        if !self.finished {
            self.drop_unfinished();
        }
    }
}

impl<I, Y, R> Coroutine<I, Y, R> {
    /// [`Drop`] of a coroutine that has not finished: drops its closure, or unwinds it.
    #[inline(never)]
    fn drop_unfinished(&mut self) {
        if cfg!(panic = "abort") && self.state() == State::Suspended {
            // No unwinding: the frames are abandoned, and so is their stack, which stays
            // mapped: a thread they started (a scoped one) may still use it. (The context is
            // plain data: clearing it releases nothing.)
            self.context = None;
            mem::forget(self.stack.take());
            self.finished = true;
            self.light_resumable = false;
            return;
        }
        // Suspended: unwinds the coroutine from its suspension point. Not started: its first
        // frame (`entry`) gets the unwind message first and drops the closure on the
        // coroutine's own stack, a panic of that drop caught and sent back like a panic of the
        // unwind (nothing unwinds, so this works with `panic = "abort"` too). Either way the
        // last message finishes the coroutine (its stack back to the pool) before anything
        // here can panic.
        match self.switch_in(Resume::Unwind) {
            Suspend::Unwound | Suspend::Return(_) => {}
            Suspend::Panic(payload) => {
                // A destructor panicked: report it unless we are already unwinding ourselves
                // (a second panic would abort).
                if !std::thread::panicking() {
                    panic::resume_unwind(payload);
                }
            }
            Suspend::Yield(_) => unreachable!("a coroutine yielded while being unwound"),
        }
    }
}

impl<I, Y, R> fmt::Debug for Coroutine<I, Y, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coroutine")
            .field("id", &self.id)
            .field("state", &self.state())
            .finish()
    }
}

/// Prints `why` and aborts: for states the process cannot continue from safely. Written to
/// the process's stderr itself, not through `eprintln!`, which a test harness may capture
/// (and would lose with the process).
fn fatal(why: &str) -> ! {
    use std::io::Write;
    let _ = writeln!(io::stderr(), "microthread: {why}; aborting");
    std::process::abort()
}
