//! Resuming a [`Coroutine`]: the switch into it with a message, and its reply read back as
//! a [`CoroutineResult`] (suspended again, or finished with its stack back to the pool). The
//! light path (`resume_light`) is the hot one: keep its attributes as they are.

use std::any::Any;
use std::mem::MaybeUninit;
use std::panic;
use std::ptr;

use crate::context::Transfer;
use crate::stack::pool;

#[cfg(doc)]
use super::Yielder;
use super::{Coroutine, CoroutineResult, Resume, ResumeError, Slot, Suspend, LAST};

impl<I, Y, R> Coroutine<I, Y, R> {
    /// Resumes the coroutine with `input` until it suspends or finishes. On the first resume
    /// `input` is the function's argument; later it is what [`Yielder::suspend`] returns.
    ///
    /// ```
    /// use microthread::coroutine::{Coroutine, CoroutineResult};
    /// use std::panic::{catch_unwind, AssertUnwindSafe};
    /// let mut acc = Coroutine::new(|y, mut n: i64| {
    ///     let mut sum = 0;
    ///     while n != 0 {
    ///         sum += n;
    ///         n = y.suspend(sum);
    ///     }
    ///     panic!("stopped at {sum}");
    /// })?;
    /// assert_eq!(acc.resume(4), CoroutineResult::Yield(4));
    /// assert_eq!(acc.resume(-1), CoroutineResult::Yield(3));
    /// // The coroutine's panic comes out of the resume that ran it; then it is finished.
    /// let err = catch_unwind(AssertUnwindSafe(|| acc.resume(0))).unwrap_err();
    /// assert_eq!(err.downcast_ref::<String>().unwrap(), "stopped at 3");
    /// assert!(acc.is_finished());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Panics
    /// If the coroutine has finished, with the sentence of [`ResumeError::Finished`];
    /// and with the coroutine's own panic, if it panics.
    #[inline(always)]
    pub fn resume(&mut self, input: I) -> CoroutineResult<Y, R> {
        if !self.light_resumable {
            return self.resume_other(input);
        }
        // SAFETY: `light_resumable`: a light coroutine that has not finished.
        unsafe { self.resume_light(input) }
    }

    /// [`Coroutine::resume`] off the light path (see [`Coroutine::try_resume_other`]).
    ///
    /// Cold, which makes its call site cold: the light path then falls through and loops
    /// straight back in a caller's loop (no `jmp` round this call), and the compiler stopped
    /// keeping the finished path's thread-local offset in a register the switch clobbers
    /// (moved to rbx and back around every switch): switch round trip 48 -> 46.
    #[cold]
    #[inline(never)]
    fn resume_other(&mut self, input: I) -> CoroutineResult<Y, R> {
        match self.try_resume_other(input) {
            Ok(r) => r,
            Err(e) => resume_failed(e),
        }
    }

    /// As [`resume`](Coroutine::resume), but an error instead of a panic when the coroutine
    /// cannot be resumed. A panic inside the coroutine still propagates.
    ///
    /// ```
    /// use microthread::coroutine::{Coroutine, CoroutineResult, ResumeError};
    /// let mut once: Coroutine<u8, (), u8> = Coroutine::new(|_, x| x + 1)?;
    /// assert_eq!(once.try_resume(1), Ok(CoroutineResult::Return(2)));
    /// assert_eq!(once.try_resume(1), Err(ResumeError::Finished));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`ResumeError::Finished`]. (A running coroutine cannot be resumed at all: the resume
    /// that runs it holds it mutably borrowed.)
    #[inline(always)]
    pub fn try_resume(&mut self, input: I) -> Result<CoroutineResult<Y, R>, ResumeError> {
        if !self.light_resumable {
            return self.try_resume_other(input);
        }
        // SAFETY: `light_resumable`: a light coroutine that has not finished.
        Ok(unsafe { self.resume_light(input) })
    }

    /// [`Coroutine::try_resume`] of a finished coroutine or of one that keeps the FP
    /// environment: out of line, so that the light path stays one test; cold, as
    /// [`Coroutine::resume_other`].
    #[cold]
    #[inline(never)]
    fn try_resume_other(&mut self, input: I) -> Result<CoroutineResult<Y, R>, ResumeError> {
        if self.finished {
            return Err(ResumeError::Finished);
        }
        Ok(result_of(self.switch_in(Resume::Input(input))))
    }

    /// Switches into the coroutine with `message` and returns what it sends back, finishing
    /// the bookkeeping (state, stack release) before anything can panic. Only in the
    /// NotStarted or Suspended state.
    #[inline(always)]
    pub(super) fn switch_in(&mut self, message: Resume<I>) -> Suspend<Y, R> {
        if self.light_resumable {
            // SAFETY: a light coroutine (not finished, our caller's obligation, so
            // `light_resumable` says not `preserve_fp_env`).
            return unsafe { self.switch_in_light(message) };
        }
        // SAFETY: NotStarted or Suspended (caller's obligation) always has a context. It is
        // copied, not taken: the copy left behind is stale until `took_reply` overwrites it,
        // and nothing reads it meanwhile (we hold `&mut self`).
        let context = unsafe { ptr::read(&self.context).unwrap_unchecked() };
        let mut slot = MaybeUninit::uninit();
        let word = message.send(&mut slot);
        // SAFETY: `context` is this coroutine's suspended frame on its own live stack, on this
        // thread (Coroutine is !Send), made or suspended by an FP-environment (full) switch;
        // it is consumed here. The coroutine reads the message exactly once before it
        // switches back.
        let transfer = unsafe { context.switch_fpenv(word) };
        // SAFETY: the coroutine's reply, as `took_reply` wants it.
        unsafe { self.took_reply(transfer) }
    }

    /// The resume of a light coroutine: the switch in with `input`, and the reply read as a
    /// resume returns it. A last message that is not a return (a panic) is read out of line.
    ///
    /// # Safety
    /// - The coroutine is not `preserve_fp_env`, and NotStarted or Suspended.
    #[inline(always)]
    unsafe fn resume_light(&mut self, input: I) -> CoroutineResult<Y, R> {
        // SAFETY: as in `switch_in_light`: a copy, overwritten before anything reads it.
        let context = unsafe { ptr::read(&self.context).unwrap_unchecked() };
        let mut slot = MaybeUninit::uninit();
        let word = Resume::Input(input).send(&mut slot);
        // SAFETY: as in `switch_in_light` (our caller's obligations).
        let transfer = unsafe { context.switch_light(word) };
        if transfer.data & LAST == 0 {
            // SAFETY: a yield's slot (see `took_reply`).
            let Slot(value) = unsafe { ptr::read(transfer.data as *const Slot<Y>) };
            self.context = Some(transfer.from);
            return CoroutineResult::Yield(value);
        }
        let last = (transfer.data - LAST) as *const Slot<Suspend<Y, R>>;
        // The tag first, and only the return value moved out before the stack goes back to
        // the pool (the whole message was copied to this frame and tested there).
        // SAFETY: the last message's slot (see `took_reply`), initialised, read once: the
        // return value is moved out and nothing else of it is read again.
        if let Suspend::Return(r) = unsafe { &(*last).0 } {
            // SAFETY: as above.
            let r = unsafe { ptr::read(r) };
            self.finish();
            CoroutineResult::Return(r)
        } else {
            // SAFETY: as above, the message read there instead.
            unsafe { self.took_last_other(transfer.data) }
        }
    }

    /// [`Coroutine::resume_light`]'s last message when it is not a return: a panic, which
    /// comes out of this resume once the coroutine is finished. Takes the word, not the
    /// slot's address, which the fast path then need not keep.
    ///
    /// # Safety
    /// - `word` is the coroutine's last message's word (its slot's address plus [`LAST`]),
    ///   the slot not read before.
    #[cold]
    #[inline(never)]
    unsafe fn took_last_other(&mut self, word: usize) -> CoroutineResult<Y, R> {
        // SAFETY: the caller's obligation.
        let Slot(last) = unsafe { ptr::read((word - LAST) as *const Slot<Suspend<Y, R>>) };
        self.finish();
        result_of(last)
    }

    /// [`Coroutine::switch_in`] of a light coroutine.
    ///
    /// # Safety
    /// - The coroutine is not `preserve_fp_env`, and NotStarted or Suspended.
    #[inline(always)]
    unsafe fn switch_in_light(&mut self, message: Resume<I>) -> Suspend<Y, R> {
        // SAFETY: as in `switch_in`: a copy, overwritten before anything reads it.
        let context = unsafe { ptr::read(&self.context).unwrap_unchecked() };
        let mut slot = MaybeUninit::uninit();
        let word = message.send(&mut slot);
        // SAFETY: as in `switch_in`; a light coroutine's frames are light (made by
        // `new_light`, suspended by `switch_light_back`).
        let transfer = unsafe { context.switch_light(word) };
        // SAFETY: the coroutine's reply, as `took_reply` wants it.
        unsafe { self.took_reply(transfer) }
    }

    /// Reads the coroutine's reply and records what it means: suspended again, or finished
    /// (its stack back to the pool).
    ///
    /// # Safety
    /// - `transfer` is what the switch into this coroutine returned: its word is the address
    ///   of an initialised [`Slot`] on the coroutine's stack, plus [`LAST`] for its last
    ///   message (see `message.rs`), valid until we resume it again and never read by it
    ///   afterwards.
    #[inline(always)]
    unsafe fn took_reply(&mut self, transfer: Transfer) -> Suspend<Y, R> {
        if transfer.data & LAST == 0 {
            // SAFETY: a yield's slot (caller's obligation).
            let Slot(value) = unsafe { ptr::read(transfer.data as *const Slot<Y>) };
            self.context = Some(transfer.from);
            Suspend::Yield(value)
        } else {
            // SAFETY: the last message's slot (caller's obligation).
            let Slot(last) =
                unsafe { ptr::read((transfer.data - LAST) as *const Slot<Suspend<Y, R>>) };
            // The coroutine's last switch: its frame is dead, its stack free for reuse.
            self.finish();
            last
        }
    }

    /// Marks the coroutine finished and gives its stack back to the pool.
    #[inline(always)]
    fn finish(&mut self) {
        self.finished = true;
        self.light_resumable = false;
        // The context and the stack fields keep stale copies (two stores fewer per end):
        // nothing reads either once the coroutine is finished (every reader tests the state
        // or `light_resumable` first), and neither is dropped (`Context` has no `Drop`, the
        // stack field is `ManuallyDrop`).
        // SAFETY: the stack is moved out once: a finished coroutine never finishes again.
        if let Some(stack) = unsafe { ptr::read(&*self.stack) } {
            pool::release(stack);
        }
    }
}

/// What a resume returns for the coroutine's message.
#[inline(always)]
fn result_of<Y, R>(reply: Suspend<Y, R>) -> CoroutineResult<Y, R> {
    match reply {
        Suspend::Yield(y) => CoroutineResult::Yield(y),
        Suspend::Return(r) => CoroutineResult::Return(r),
        Suspend::Panic(payload) => rethrow(payload),
        // Only a drop sends Unwind, and a drop does not come through here.
        Suspend::Unwound => unreachable!("a coroutine unwound without being dropped"),
    }
}

#[cold]
#[inline(never)]
fn resume_failed(e: ResumeError) -> ! {
    panic!("{e}")
}

#[cold]
#[inline(never)]
fn rethrow(payload: Box<dyn Any + Send>) -> ! {
    panic::resume_unwind(payload)
}
