//! [`Builder`]: the options of a new coroutine (stack size, guard, FP environment).

use std::io;

use super::{Coroutine, Yielder};
use crate::overflow;
use crate::stack::{pool, Stack, DEFAULT_STACK_SIZE};

/// Options for a new coroutine.
///
/// ```
/// use microthread::coroutine::{Builder, Coroutine, CoroutineResult};
/// let mut co: Coroutine<(), (), u8> =
///     Builder::new().stack_size(64 * 1024).preserve_fp_env(true).build(|_, ()| 7)?;
/// assert_eq!(co.resume(()), CoroutineResult::Return(7));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    stack_size: usize,
    guard_size: usize,
    pub(super) preserve_fp_env: bool,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder::new()
    }
}

impl Builder {
    /// The defaults: a [`DEFAULT_STACK_SIZE`] stack with a
    /// [`DEFAULT_GUARD_SIZE`](crate::stack::DEFAULT_GUARD_SIZE) guard, FP environment not
    /// preserved.
    ///
    /// ```
    /// use microthread::coroutine::{Builder, Coroutine, CoroutineResult};
    /// let mut co: Coroutine<(), (), &str> = Builder::new().build(|_, ()| "defaults")?;
    /// assert_eq!(co.resume(()), CoroutineResult::Return("defaults"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new() -> Builder {
        Builder {
            stack_size: DEFAULT_STACK_SIZE,
            guard_size: crate::stack::DEFAULT_GUARD_SIZE,
            preserve_fp_env: false,
        }
    }

    /// Usable bytes of the stack (default [`DEFAULT_STACK_SIZE`]), rounded up to pages.
    ///
    /// ```
    /// use microthread::coroutine::{Builder, Coroutine, CoroutineResult};
    /// // 1 MiB of locals needs more than the default 256 KiB.
    /// let mut co: Coroutine<(), (), u8> = Builder::new().stack_size(4 << 20).build(|_, ()| {
    ///     let big = [1u8; 1 << 20];
    ///     std::hint::black_box(&big)[12345]
    /// })?;
    /// assert_eq!(co.resume(()), CoroutineResult::Return(1));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = bytes;
        self
    }

    /// Bytes of the inaccessible guard below the stack (default
    /// [`DEFAULT_GUARD_SIZE`](crate::stack::DEFAULT_GUARD_SIZE)), rounded up to pages, at least
    /// one. It costs address space only. On riscv64, where rustc emits no stack probes, a frame
    /// larger than the guard can step over it unreported: make the guard larger than the
    /// largest frame the coroutine may have (see [`crate::stack`]). Not used by
    /// [`build_on`](Builder::build_on), whose stack has its guard already.
    ///
    /// ```
    /// use microthread::coroutine::{Builder, Coroutine, CoroutineResult};
    /// let mut co: Coroutine<(), (), ()> = Builder::new().guard_size(1 << 20).build(|_, ()| ())?;
    /// assert_eq!(co.resume(()), CoroutineResult::Return(()));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn guard_size(mut self, bytes: usize) -> Builder {
        self.guard_size = bytes;
        self
    }

    /// Whether switches into and out of this coroutine save and restore the FP control state
    /// (MXCSR and the x87 control word, FPCR, `frm`), so that it and its resumer each keep
    /// their own. Off by default: see [`crate::context`] for the cost and the reasons.
    ///
    /// ```
    /// use microthread::coroutine::{Builder, Coroutine, CoroutineResult};
    /// let mut co: Coroutine<f64, f64, f64> =
    ///     Builder::new().preserve_fp_env(true).build(|y, x| y.suspend(x * 2.0) + 1.0)?;
    /// assert_eq!(co.resume(1.5), CoroutineResult::Yield(3.0));
    /// assert_eq!(co.resume(0.5), CoroutineResult::Return(1.5));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn preserve_fp_env(mut self, on: bool) -> Builder {
        self.preserve_fp_env = on;
        self
    }

    /// Creates the coroutine on a stack from the thread's pool. As [`Coroutine::new`], `f`
    /// and the types are `'static`; [`scoped`](Builder::scoped) is the borrowing form.
    ///
    /// ```
    /// use microthread::coroutine::{Builder, Coroutine, CoroutineResult};
    /// let mut co: Coroutine<(), u32, ()> = Builder::new().stack_size(64 * 1024).build(|y, ()| {
    ///     y.suspend(1);
    /// })?;
    /// assert_eq!(co.resume(()), CoroutineResult::Yield(1));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error if a new stack cannot be mapped.
    #[inline(always)]
    pub fn build<I, Y, R, F>(self, f: F) -> io::Result<Coroutine<I, Y, R>>
    where
        F: FnOnce(&Yielder<I, Y>, I) -> R + 'static,
        I: 'static,
        Y: 'static,
        R: 'static,
    {
        // Not `acquire_stack()?`: the test of its result would be on the fast path too.
        let stack = match pool::acquire_spawn_fast(self.stack_size, self.guard_size) {
            Some(stack) => stack,
            None => pool::acquire_spawn_slow(self.stack_size, self.guard_size)?,
        };
        // SAFETY: `F`, `I`, `Y` and `R` are `'static`: nothing the coroutine can hold ends.
        Ok(unsafe { Coroutine::create(stack, self.preserve_fp_env, f) })
    }

    /// A stack of this builder's size and guard from the thread's pool, the thread's
    /// alternate signal stack checked (see [`Coroutine::create`]).
    #[inline(always)]
    pub(super) fn acquire_stack(&self) -> io::Result<Stack> {
        match pool::acquire_spawn_fast(self.stack_size, self.guard_size) {
            Some(stack) => Ok(stack),
            None => pool::acquire_spawn_slow(self.stack_size, self.guard_size),
        }
    }

    /// Creates the coroutine on the given stack, which goes to the thread's pool when the
    /// coroutine finishes.
    ///
    /// ```
    /// use microthread::coroutine::{Builder, Coroutine, CoroutineResult};
    /// use microthread::stack::Stack;
    /// let stack = Stack::new(64 * 1024)?;
    /// let mut co: Coroutine<u8, (), u8> = Builder::new().build_on(stack, |_, x| x * 3);
    /// assert_eq!(co.resume(5), CoroutineResult::Return(15));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn build_on<I, Y, R, F>(self, stack: Stack, f: F) -> Coroutine<I, Y, R>
    where
        F: FnOnce(&Yielder<I, Y>, I) -> R + 'static,
        I: 'static,
        Y: 'static,
        R: 'static,
    {
        // A stack of the caller's: the thread's alternate signal stack was not checked for it.
        overflow::ensure_altstack();
        // SAFETY: as in `build`.
        unsafe { Coroutine::create(stack, self.preserve_fp_env, f) }
    }
}
