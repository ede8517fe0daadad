//! The coroutine's side of the switch: [`Yielder`], with which a coroutine suspends itself,
//! and [`entry`], the first frame of every coroutine.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;

use super::{fatal, ForcedUnwind, Kind, Reply, Resume, Suspend};
use crate::context::{Context, Transfer};

/// The handle a coroutine uses to suspend itself; lives on the coroutine's stack.
pub struct Yielder<I, Y> {
    /// The context that resumed us; `None` only while we are suspended.
    resumer: Cell<Option<Context>>,
    /// Set once a drop asked us to unwind.
    unwinding: Cell<bool>,
    preserve_fp_env: bool,
    _types: Variance<I, Y>,
}

/// Makes [`Yielder`] covariant in `I`, contravariant in `Y` (see the coroutine module docs),
/// and `!Send`.
type Variance<I, Y> = PhantomData<(fn(Y) -> I, *mut ())>;

impl<I, Y> Yielder<I, Y> {
    /// Suspends the coroutine, handing `value` to the
    /// [`Coroutine::resume`](super::Coroutine::resume) that ran it, and returns the value of the
    /// next resume.
    #[inline]
    pub fn suspend(&self, value: Y) -> I {
        if self.unwinding.get() || std::thread::panicking() {
            self.refuse_to_suspend();
        }
        // SAFETY: a running coroutine always holds its resumer (it is only taken here and in
        // the entry's last switch, and put back when we are resumed).
        let resumer = unsafe { self.resumer.take().unwrap_unchecked() };
        let mut message = MaybeUninit::new(Reply {
            kind: Kind::Yield,
            payload: value,
        });
        // SAFETY: `resumer` is the suspended context that resumed us, on this thread, consumed
        // here; it reads `message` once before resuming us again.
        let transfer =
            unsafe { switch_back(resumer, message.as_mut_ptr() as usize, self.preserve_fp_env) };
        self.resumer.set(Some(transfer.from));
        // SAFETY: the resumer passes the address of an initialised Resume on its stack.
        match unsafe { ptr::read(transfer.data as *const Resume<I>) } {
            Resume::Input(input) => input,
            Resume::Unwind => {
                self.unwinding.set(true);
                panic::resume_unwind(Box::new(ForcedUnwind))
            }
        }
    }
}

impl<I, Y> Yielder<I, Y> {
    /// Suspending is impossible: a drop asked us to unwind and user code caught it (keep
    /// unwinding), or the stack is unwinding right now (a hard error).
    #[cold]
    #[inline(never)]
    fn refuse_to_suspend(&self) -> ! {
        if std::thread::panicking() {
            fatal("a coroutine tried to suspend while its stack was being unwound");
        }
        panic::resume_unwind(Box::new(ForcedUnwind))
    }
}

impl<I, Y> fmt::Debug for Yielder<I, Y> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Yielder").finish_non_exhaustive()
    }
}

/// The first Rust frame of every coroutine.
///
/// # Safety
/// - Only reached through the trampoline of a context made by `Coroutine::place`, with
///   `arg` the address of the `F` it wrote and `data` the address of a `Resume<I>`.
pub(super) unsafe extern "C" fn entry<I, Y, R, F, const FP_ENV: bool>(
    from: Context,
    data: usize,
    arg: usize,
) -> !
where
    F: FnOnce(&Yielder<I, Y>, I) -> R,
{
    // SAFETY: `arg` is the closure `place` wrote; we move it out exactly once.
    let f = unsafe { ptr::read(arg as *const F) };
    // SAFETY: the first resume passes the address of an initialised Resume on its stack.
    let first = unsafe { ptr::read(data as *const Resume<I>) };
    let yielder = Yielder {
        resumer: Cell::new(Some(from)),
        unwinding: Cell::new(false),
        preserve_fp_env: FP_ENV,
        _types: PhantomData,
    };
    let reply: Suspend<Y, R> = match first {
        Resume::Input(input) => {
            match panic::catch_unwind(AssertUnwindSafe(|| f(&yielder, input))) {
                Ok(r) => Suspend::Return(r),
                Err(p) if p.is::<ForcedUnwind>() => Suspend::Unwound,
                Err(p) => Suspend::Panic(p),
            }
        }
        // Not reachable: a coroutine that never started is dropped without a switch.
        Resume::Unwind => {
            drop(f);
            Suspend::Unwound
        }
    };
    let resumer = yielder
        .resumer
        .take()
        .expect("a running coroutine knows its resumer");
    let fpenv = yielder.preserve_fp_env;
    drop(yielder);
    let mut reply = MaybeUninit::new(Reply {
        kind: Kind::Last,
        payload: reply,
    });
    // SAFETY: the final switch: the resumer reads `reply` and releases this stack without
    // ever resuming this frame, so nothing here runs again.
    unsafe { switch_back(resumer, reply.as_mut_ptr() as usize, fpenv) };
    fatal("a finished coroutine was resumed")
}

/// Switches from the coroutine back to its resumer.
///
/// # Safety
/// - As `Context::switch`.
#[inline(always)]
unsafe fn switch_back(resumer: Context, data: usize, fpenv: bool) -> Transfer {
    if fpenv {
        // SAFETY: forwarded.
        unsafe { resumer.switch_fpenv_back(data) }
    } else {
        // SAFETY: forwarded.
        unsafe { resumer.switch_light_back(data) }
    }
}
