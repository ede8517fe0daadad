//! The resumer's side of a switch into a coroutine: the switch itself (with the FP
//! environment switched around it for a `preserve_fp_env` coroutine), and what the reply
//! means: a yield, the coroutine's last message, or a suspend from another stack, which is
//! refused (see "Only its own coroutine" in `src/coroutine/yielder.rs`).

use std::any::Any;
use std::mem::MaybeUninit;
use std::ptr;

use super::message::FOREIGN;
use super::{Coroutine, Resume, Slot, State, Suspend, LAST};
use crate::context::{Context, FpEnv, Transfer};
use crate::stack::pool;

impl<I, Y, R> Coroutine<I, Y, R> {
    /// Switches into the coroutine with `message` and returns what it sends back, finishing
    /// the bookkeeping (state, stack release) before anything can panic. Only in the
    /// NotStarted or Suspended state.
    #[inline(always)]
    pub(super) fn switch_in(&mut self, message: Resume<I>) -> Suspend<Y, R> {
        if !self.preserve_fp_env {
            // SAFETY: a light coroutine (not `preserve_fp_env`), not finished (our caller's
            // obligation).
            return unsafe { self.switch_in_light(message) };
        }
        // SAFETY: NotStarted or Suspended (caller's obligation) always has a context. It is
        // copied, not taken: the copy left behind is stale until `took_reply` overwrites it,
        // and nothing reads it meanwhile (we hold `&mut self`).
        let context = unsafe { ptr::read(&self.context).unwrap_unchecked() };
        let mut slot = MaybeUninit::uninit();
        let word = message.send(&mut slot);
        // A new coroutine starts in the default environment (`fp_env` is written after its
        // first switch, for the next).
        let env = if self.state == State::NotStarted {
            FpEnv::DEFAULT
        } else {
            // SAFETY: written after every switch into a `preserve_fp_env` coroutine.
            unsafe { self.fp_env.assume_init() }
        };
        // SAFETY: `context` is this coroutine's suspended frame on its own live stack, on this
        // thread (Coroutine is !Send), a light one (made by `new_light`, suspended by
        // `switch_light_back`); it is consumed here. The coroutine reads the message exactly
        // once before it switches back.
        let (transfer, env) = unsafe { switch_with_fp_env(context, word, env) };
        self.fp_env = MaybeUninit::new(env);
        // SAFETY: the coroutine's reply, as `took_reply` wants it.
        unsafe { self.took_reply(transfer) }
    }

    /// [`Coroutine::switch_in`] of a coroutine that is not `preserve_fp_env`.
    ///
    /// # Safety
    /// - The coroutine is not `preserve_fp_env`, and NotStarted or Suspended.
    #[inline(always)]
    pub(super) unsafe fn switch_in_light(&mut self, message: Resume<I>) -> Suspend<Y, R> {
        // SAFETY: as in `switch_in`: a copy, overwritten before anything reads it.
        let context = unsafe { ptr::read(&self.context).unwrap_unchecked() };
        let mut slot = MaybeUninit::uninit();
        let word = message.send(&mut slot);
        // SAFETY: as in `switch_in`.
        let transfer = unsafe { context.switch_light(word) };
        // SAFETY: the coroutine's reply, as `took_reply` wants it.
        unsafe { self.took_reply(transfer) }
    }

    /// Reads the coroutine's reply and records what it means: suspended again, or finished
    /// (its stack back to the pool), or a suspend from elsewhere, refused.
    ///
    /// A frame handed back inside the coroutine's stack is its own suspend's: a yield. (On
    /// x86_64 that is the whole test: the coroutine's last switch, `exit_light`, hands back the
    /// resumer's own frame, outside. Elsewhere the last switch hands back the coroutine's
    /// frame, so the word's `LAST` bit is tested too.) Then the word's `LAST` bit tells the
    /// last message; anything else is a suspend from another stack, for the cold
    /// [`Coroutine::other_reply`].
    ///
    /// # Safety
    /// - `transfer` is what the switch into this coroutine returned: its word is the address
    ///   of an initialised [`Slot`] on the stack of the suspend that switched back, plus
    ///   [`LAST`] for the coroutine's last message (see `message.rs`), valid until we resume
    ///   that frame again and never read by it afterwards.
    #[inline(always)]
    pub(super) unsafe fn took_reply(&mut self, mut transfer: Transfer) -> Suspend<Y, R> {
        loop {
            let own_frame =
                transfer.from.address().wrapping_sub(self.frames_from) < self.frames_span;
            #[cfg(not(target_arch = "x86_64"))]
            let own_frame = own_frame && transfer.data & LAST == 0;
            if own_frame {
                // SAFETY: a yield's slot (caller's obligation).
                return unsafe { self.took_yield(transfer) };
            }
            if transfer.data & LAST != 0 {
                // SAFETY: the last message's slot (caller's obligation).
                return unsafe { self.took_last(transfer) };
            }
            // Values only, no borrow of `self`: so that the compiler still knows every field
            // on the paths above (a call that may write them made it reload and test the
            // stack in the last message's path).
            let env = if self.preserve_fp_env {
                // SAFETY: written after every switch into a `preserve_fp_env` coroutine.
                Some(unsafe { self.fp_env.assume_init() })
            } else {
                None
            };
            // SAFETY: forwarded; what comes back is a reply as the caller promised for this
            // one (see `refuse_foreign`).
            let (next, env) = unsafe { refuse_foreign(transfer.from, env) };
            if let Some(env) = env {
                self.fp_env = MaybeUninit::new(env);
            }
            transfer = next;
        }
    }

    /// The coroutine's last message: it has ended.
    ///
    /// # Safety
    /// - As [`Coroutine::took_reply`], for the last message.
    #[inline(always)]
    unsafe fn took_last(&mut self, transfer: Transfer) -> Suspend<Y, R> {
        // SAFETY: the last message's slot (caller's obligation).
        let Slot(last) = unsafe { ptr::read((transfer.data - LAST) as *const Slot<Suspend<Y, R>>) };
        // The coroutine's last switch: its frame is dead, its stack free for reuse.
        self.finish();
        last
    }

    /// A yield: the coroutine is suspended at `transfer.from`.
    ///
    /// # Safety
    /// - As [`Coroutine::took_reply`], for a yield of this coroutine's, from its own stack.
    #[inline(always)]
    unsafe fn took_yield(&mut self, transfer: Transfer) -> Suspend<Y, R> {
        // SAFETY: a yield's slot (caller's obligation).
        let Slot(value) = unsafe { ptr::read(transfer.data as *const Slot<Y>) };
        self.context = Some(transfer.from);
        self.state = State::Suspended;
        Suspend::Yield(value)
    }

    /// Marks the coroutine finished and gives its stack back to the pool.
    #[inline(always)]
    pub(super) fn finish(&mut self) {
        self.context = None;
        self.state = State::Finished;
        self.light_resumable = false;
        if let Some(stack) = self.stack.take() {
            pool::release(stack);
        }
    }

    /// Unwinds a suspended coroutine to its end (the drop of one): returns the payload of a
    /// panic that ended it instead. A suspend after user code caught the unwind comes back
    /// here as a yield (a suspend does not test for it, see `Yielder`): the unwind is sent
    /// again, and the values such suspends passed are dropped once the coroutine has ended,
    /// so that no user code runs while it is still suspended.
    pub(super) fn unwind_suspended(&mut self) -> Option<Box<dyn Any + Send>> {
        let mut caught = Vec::new();
        loop {
            match self.switch_in(Resume::Unwind) {
                Suspend::Unwound | Suspend::Return(_) => return None,
                Suspend::Panic(payload) => return Some(payload),
                Suspend::Yield(value) => caught.push(value),
            }
        }
    }
}

/// A suspend that came from another stack than the coroutine's (its `Yielder` used elsewhere:
/// on a child coroutine's stack, say), at `from`: switched straight back into with
/// `Resume::Foreign`, its message unread and nothing recorded, in the coroutine's FP
/// environment `fp_env` if it keeps one (given back updated). The suspend there drops its
/// value and panics, and the code it returns to runs on as part of the coroutine (which the
/// resume still runs), so what comes back after that is the reply of that resume, as the one
/// it replaces was.
///
/// # Safety
/// - `from` is the frame of a reply as `Coroutine::took_reply` wants it, neither from the
///   coroutine's stack nor its last message.
#[cold]
#[inline(never)]
unsafe fn refuse_foreign(from: Context, fp_env: Option<FpEnv>) -> (Transfer, Option<FpEnv>) {
    // SAFETY: `from` is the suspended light frame of the suspend that switched here from
    // another stack, on this thread: part of the coroutine's run (a `Yielder` is only
    // reachable while its coroutine runs), so its stack is live. It reads the word, drops its
    // own message and panics, unwinding as part of the coroutine's run.
    unsafe {
        match fp_env {
            Some(env) => {
                let (transfer, env) = switch_with_fp_env(from, FOREIGN, env);
                (transfer, Some(env))
            }
            None => (from.switch_light(FOREIGN), None),
        }
    }
}

/// The light switch into `to` with the coroutine's FP environment `env` installed for it, and
/// ours again once it switches back; gives back the coroutine's, for its next resume (see
/// `src/context/fp_env.rs`).
///
/// # Safety
/// - As [`Context::switch_light`]; `to` runs as part of a `preserve_fp_env` coroutine whose
///   environment `env` is.
#[inline(always)]
unsafe fn switch_with_fp_env(to: Context, word: usize, env: FpEnv) -> (Transfer, FpEnv) {
    let ours = FpEnv::current();
    // SAFETY: the coroutine's own environment, for its own code only: ours is installed again
    // below, before anything of ours runs.
    unsafe { env.install() };
    // SAFETY: the caller's obligation.
    let transfer = unsafe { to.switch_light(word) };
    // Nothing ran since the coroutine switched back: this is its environment.
    let theirs = FpEnv::current();
    // SAFETY: ours, as it was.
    unsafe { ours.install() };
    (transfer, theirs)
}
