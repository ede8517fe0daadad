//! [`ScopedCoroutine`]: a [`Coroutine`] whose body may borrow from its creator's stack,
//! reachable only inside a scope that ends it.

use std::fmt;
use std::io;
use std::marker::PhantomData;

use super::{fatal, Builder, Coroutine, CoroutineResult, ResumeError, State, Yielder};
use crate::stack::Stack;

/// A coroutine whose body may borrow from the caller's stack (mutably too), and whose input,
/// yield and return types may hold borrows. Made and used inside one call:
/// [`ScopedCoroutine::with`]`(body, scope)` creates it, hands `scope` a
/// `&mut ScopedCoroutine`, and ends it before it returns. Otherwise it is a [`Coroutine`]:
/// the same methods, stack, panics and drop.
///
/// ```
/// use microthread::coroutine::{CoroutineResult, ScopedCoroutine};
///
/// let mut log = Vec::new(); // on the caller's stack
/// let total = ScopedCoroutine::with(
///     |y, first: u32| {
///         let mut sum = first;
///         log.push(first);
///         while sum < 10 {
///             let next = y.suspend(sum);
///             log.push(next);
///             sum += next;
///         }
///         sum
///     },
///     |co| {
///         assert_eq!(co.resume(3), CoroutineResult::Yield(3));
///         assert_eq!(co.resume(4), CoroutineResult::Yield(7));
///         co.resume(5)
///     },
/// )?;
/// assert_eq!(total, CoroutineResult::Return(12));
/// assert_eq!(log, [3, 4, 5]); // the borrow ended with the scope
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # What is guaranteed, and why `mem::forget` is harmless
///
/// When `with` returns (or unwinds), the coroutine is over: it returned, panicked, never
/// started (its closure is dropped), or was suspended and has been unwound from its
/// suspension point, every destructor on its stack run, as when a [`Coroutine`] is dropped.
/// No frame that holds a borrow of the caller outlives the borrow. That is what makes
/// borrowing sound: a frame may own things whose `Drop` must run before what they borrow goes
/// away (a [`std::thread::scope`] that joins a thread using the borrow), so leaking the frame
/// is not enough (`corosensei` issue 27: a leaked scoped coroutine let a scoped thread race
/// with the caller).
///
/// - The coroutine itself lives in `with`'s own frame; user code only ever gets a
///   `&mut ScopedCoroutine`, never the value. Forgetting the reference forgets a pointer;
///   `with` still ends the coroutine. There is no way to move the value out (no `Default`,
///   no `Clone`, no constructor that returns it), so nothing can be `mem::replace`d out and
///   forgotten.
/// - The scope closure is `for<'s> FnOnce(&'s mut ScopedCoroutine<'a, ..>) -> T`: the
///   reference cannot leave it, nor be stored anywhere that outlives it.
/// - `'a` is a lifetime parameter of the `with` call, so it lasts the whole call: every
///   borrow of `body` (`F: 'a`) and every borrow in `I`, `Y` and `R` is still valid when the
///   unwind runs. (An input must therefore be declared before `with`, not inside `scope`.)
/// - `ScopedCoroutine` is *invariant* in `'a`: two scoped coroutines may be swapped through
///   their references only if their borrows live equally long, so a swap cannot move a
///   coroutine into a scope that ends after its borrows do. It is invariant in `I` like
///   [`Coroutine`] (see the module docs), covariant in `Y` and `R`.
/// - Leaking the whole `with` call is leaking a frame of its caller: only possible by leaking
///   the thread or coroutine that runs it (forgetting an outer [`Coroutine`]), whose borrows
///   are then `'static` or, for an outer scoped coroutine, ended by its own scope first.
/// - With `panic = "abort"` there is no unwinding: a scope that ends with its coroutine
///   suspended aborts the process with a message instead (a [`Coroutine`] is leaked then).
///
/// # Compile-time checks
///
/// The body holds its borrows for the whole scope (here, a mutable one):
///
/// ```compile_fail
/// use microthread::coroutine::ScopedCoroutine;
/// let mut v = vec![1];
/// ScopedCoroutine::with(
///     |y, ()| {
///         v.push(2);
///         y.suspend(());
///     },
///     |co| {
///         co.resume(());
///         v.push(3); // `v` is still borrowed by the suspended body
///     },
/// )
/// .unwrap();
/// ```
///
/// The handle cannot leave the scope:
///
/// ```compile_fail
/// use microthread::coroutine::ScopedCoroutine;
/// let v = vec![1];
/// let escaped = ScopedCoroutine::with(|y, ()| y.suspend(v.len()), |co| co).unwrap();
/// ```
///
/// An input must outlive the whole `with` call (the body may keep it until the end):
///
/// ```compile_fail
/// use microthread::coroutine::ScopedCoroutine;
/// ScopedCoroutine::with(
///     |y, v: &mut Vec<u32>| {
///         y.suspend(());
///         v.push(1); // would run at the unwind, after `local` is gone
///     },
///     |co| {
///         let mut local = vec![0];
///         co.resume(&mut local);
///     },
/// )
/// .unwrap();
/// ```
///
/// A coroutine that borrows a scope's locals cannot be swapped into an outer scope, where it
/// would be unwound after they are gone:
///
/// ```compile_fail
/// use microthread::coroutine::ScopedCoroutine;
/// let outer_data = vec![1u32];
/// ScopedCoroutine::with(
///     |y, ()| y.suspend(outer_data.len()),
///     |outer| {
///         let inner_data = vec![2u32];
///         ScopedCoroutine::with(
///             |y, ()| y.suspend(inner_data.len()),
///             |inner| std::mem::swap(outer, inner),
///         )
///         .unwrap();
///     },
/// )
/// .unwrap();
/// ```
///
/// It stays on its thread (`!Send`, `!Sync`, and so is the reference):
///
/// ```compile_fail
/// use microthread::coroutine::ScopedCoroutine;
/// ScopedCoroutine::with(
///     |y, ()| y.suspend(1u32),
///     |co| std::thread::scope(|s| {
///         s.spawn(move || co.resume(()));
///     }),
/// )
/// .unwrap();
/// ```
///
/// ```compile_fail
/// fn assert_sync<T: Sync>() {}
/// assert_sync::<microthread::coroutine::ScopedCoroutine<'static, (), (), ()>>();
/// ```
pub struct ScopedCoroutine<'a, I, Y, R> {
    pub(super) inner: Coroutine<I, Y, R>,
    _borrows: Invariant<'a>,
}

/// Makes [`ScopedCoroutine`] invariant in `'a` (see its docs).
type Invariant<'a> = PhantomData<fn(&'a ()) -> &'a ()>;

impl<'a, I, Y, R> ScopedCoroutine<'a, I, Y, R> {
    /// Creates a coroutine running `body` on a default-sized stack from the thread's pool,
    /// calls `scope` with it, ends it (see the [type docs](ScopedCoroutine)), and returns what
    /// `scope` returned. `body` starts at the first [`resume`](ScopedCoroutine::resume).
    ///
    /// [`Builder::scoped`] takes the stack size and the other options.
    ///
    /// ```
    /// use microthread::coroutine::{CoroutineResult, ScopedCoroutine};
    /// let words = ["a", "bc", "def"];
    /// let lengths = ScopedCoroutine::with(
    ///     |y, ()| {
    ///         for w in &words {
    ///             y.suspend(w.len());
    ///         }
    ///     },
    ///     |co| [co.resume(()), co.resume(()), co.resume(())],
    /// )?;
    /// assert_eq!(lengths.map(|r| r.as_yield().copied()), [Some(1), Some(2), Some(3)]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error if a new stack cannot be mapped (`scope` is not called then).
    ///
    /// # Panics
    /// A panic of `scope` propagates after the coroutine was ended; a panic of a destructor
    /// run by that end propagates from here.
    pub fn with<F, S, T>(body: F, scope: S) -> io::Result<T>
    where
        F: FnOnce(&Yielder<I, Y>, I) -> R + 'a,
        S: FnOnce(&mut ScopedCoroutine<'a, I, Y, R>) -> T,
    {
        Builder::new().scoped(body, scope)
    }

    /// Runs `scope` on the coroutine made from `stack` and `body`, then ends it.
    fn run<F, S, T>(builder: &Builder, stack: Stack, body: F, scope: S) -> T
    where
        F: FnOnce(&Yielder<I, Y>, I) -> R + 'a,
        S: FnOnce(&mut ScopedCoroutine<'a, I, Y, R>) -> T,
    {
        let mut coroutine = ScopedCoroutine {
            // SAFETY: `body`'s borrows and the lifetimes in I, Y and R outlive `'a`, a lifetime
            // parameter of this call, so they outlive the call. The coroutine never leaves
            // this frame (`scope` gets a reference it cannot keep), and it is dropped below or
            // by the unwind of a panic of `scope`, which ends it (Drop). A leak of this frame
            // is a leak of the caller's: see the type docs.
            inner: unsafe { Coroutine::create(stack, builder.preserve_fp_env, body) },
            _borrows: PhantomData,
        };
        let result = scope(&mut coroutine);
        drop(coroutine);
        result
    }

    /// As [`Coroutine::resume`]: resumes the coroutine with `input` until it suspends or
    /// finishes.
    ///
    /// ```
    /// use microthread::coroutine::{CoroutineResult, ScopedCoroutine};
    /// let mut seen = Vec::new();
    /// ScopedCoroutine::with(
    ///     |y, mut n: u32| loop {
    ///         seen.push(n);
    ///         n = y.suspend(());
    ///     },
    ///     |co| {
    ///         assert_eq!(co.resume(1), CoroutineResult::Yield(()));
    ///         assert_eq!(co.resume(2), CoroutineResult::Yield(()));
    ///     },
    /// )?;
    /// assert_eq!(seen, [1, 2]); // the endless body was unwound at the end of the scope
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Panics
    /// As [`Coroutine::resume`].
    #[inline(always)]
    pub fn resume(&mut self, input: I) -> CoroutineResult<Y, R> {
        self.inner.resume(input)
    }

    /// As [`Coroutine::try_resume`]: an error instead of a panic when the coroutine cannot be
    /// resumed.
    ///
    /// ```
    /// use microthread::coroutine::{CoroutineResult, ResumeError, ScopedCoroutine, Yielder};
    /// let n = 5;
    /// ScopedCoroutine::with(
    ///     |_: &Yielder<(), ()>, ()| n * 2,
    ///     |co| {
    ///         assert_eq!(co.try_resume(()), Ok(CoroutineResult::Return(10)));
    ///         assert_eq!(co.try_resume(()), Err(ResumeError::Finished));
    ///     },
    /// )?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`ResumeError::Finished`], as [`Coroutine::try_resume`].
    #[inline(always)]
    pub fn try_resume(&mut self, input: I) -> Result<CoroutineResult<Y, R>, ResumeError> {
        self.inner.try_resume(input)
    }

    /// Whether the coroutine has returned or panicked.
    ///
    /// ```
    /// use microthread::coroutine::ScopedCoroutine;
    /// ScopedCoroutine::with(|y: &microthread::Yielder<(), ()>, ()| y.suspend(()), |co| {
    ///     co.resume(());
    ///     assert!(!co.is_finished());
    ///     co.resume(());
    ///     assert!(co.is_finished());
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }

    /// Whether the coroutine has been resumed at least once.
    ///
    /// ```
    /// use microthread::coroutine::{ScopedCoroutine, Yielder};
    /// ScopedCoroutine::with(|_: &Yielder<(), ()>, ()| (), |co| {
    ///     assert!(!co.started());
    ///     co.resume(());
    ///     assert!(co.started());
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn started(&self) -> bool {
        self.inner.started()
    }

    /// The id in overflow reports, as [`Coroutine::id`].
    ///
    /// ```
    /// use microthread::coroutine::{ScopedCoroutine, Yielder};
    /// let (a, b) = ScopedCoroutine::with(|_: &Yielder<(), ()>, ()| (), |a| {
    ///     ScopedCoroutine::with(|_: &Yielder<(), ()>, ()| (), |b| (a.id(), b.id())).unwrap()
    /// })?;
    /// assert_ne!(a, b);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn id(&self) -> u64 {
        self.inner.id()
    }
}

impl<I, Y, R> Drop for ScopedCoroutine<'_, I, Y, R> {
    fn drop(&mut self) {
        if cfg!(panic = "abort") && self.inner.state() == State::Suspended {
            // Leaking the frames would not do: they may hold borrows that end with the scope.
            fatal(
                "a scope ended with its ScopedCoroutine suspended, and with panic = \"abort\" \
                 its stack cannot be unwound",
            );
        }
        // `inner` is dropped next: it unwinds a suspended coroutine.
    }
}

impl<I, Y, R> fmt::Debug for ScopedCoroutine<'_, I, Y, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedCoroutine")
            .field("id", &self.inner.id)
            .field("state", &self.inner.state())
            .finish()
    }
}

impl Builder {
    /// [`ScopedCoroutine::with`] with this builder's options: creates a coroutine running
    /// `body` on a stack from the thread's pool, calls `scope` with it, ends it, and returns
    /// what `scope` returned.
    ///
    /// ```
    /// use microthread::coroutine::{Builder, CoroutineResult};
    /// let mut hits = 0;
    /// let r = Builder::new().stack_size(64 * 1024).scoped(
    ///     |y, ()| {
    ///         hits += 1;
    ///         y.suspend('x');
    ///         hits += 1;
    ///     },
    ///     |co| (co.resume(()), co.resume(())),
    /// )?;
    /// assert_eq!(r, (CoroutineResult::Yield('x'), CoroutineResult::Return(())));
    /// assert_eq!(hits, 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error if a new stack cannot be mapped (`scope` is not called then).
    pub fn scoped<'a, I, Y, R, F, S, T>(self, body: F, scope: S) -> io::Result<T>
    where
        F: FnOnce(&Yielder<I, Y>, I) -> R + 'a,
        S: FnOnce(&mut ScopedCoroutine<'a, I, Y, R>) -> T,
    {
        let stack = self.acquire_stack()?;
        Ok(ScopedCoroutine::run(&self, stack, body, scope))
    }

    /// [`scoped`](Builder::scoped) on the given stack (its guard is its own; the stack goes
    /// to the thread's pool when the coroutine ends).
    ///
    /// ```
    /// use microthread::coroutine::{Builder, Yielder};
    /// use microthread::stack::Stack;
    /// let name = String::from("scoped");
    /// let body = |_: &Yielder<(), ()>, ()| name.len();
    /// let len = Builder::new().scoped_on(Stack::new(64 * 1024)?, body, |co| {
    ///     co.resume(()).as_return().copied()
    /// });
    /// assert_eq!(len, Some(6));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn scoped_on<'a, I, Y, R, F, S, T>(self, stack: Stack, body: F, scope: S) -> T
    where
        F: FnOnce(&Yielder<I, Y>, I) -> R + 'a,
        S: FnOnce(&mut ScopedCoroutine<'a, I, Y, R>) -> T,
    {
        // A stack of the caller's: the thread's alternate signal stack was not checked for it.
        crate::overflow::ensure_altstack();
        ScopedCoroutine::run(&self, stack, body, scope)
    }
}
