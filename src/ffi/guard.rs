//! What every entry point of the C API does around its body: catch a Rust unwind before it
//! reaches a C frame (a kill becomes [`MT_EKILLED`], a panic [`MT_EPANIC`]), and keep a killed
//! C tasklet's kill sticky, so that it never switches or blocks again.

use std::cell::RefCell;
use std::ffi::c_int;
use std::panic::{self, AssertUnwindSafe};

use super::error::{code_of, MT_EKILLED, MT_ENULL, MT_EPANIC, MT_OK};
use crate::error::{Error, TaskletExit};
use crate::scheduler;

thread_local! {
    /// Ids of this thread's tasklets (never a main tasklet) whose kill an entry point caught
    /// and that have not returned from their C function yet.
    static KILLED: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Runs `body`, turning an unwind out of it into an error code.
pub(crate) fn guard(body: impl FnOnce() -> c_int) -> c_int {
    match panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(code) => code,
        Err(payload) => {
            let killed = payload.is::<TaskletExit>();
            // A payload's Drop is user code: it must not unwind into C either.
            let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(payload)));
            if killed {
                mark_current_killed();
                MT_EKILLED
            } else {
                MT_EPANIC
            }
        }
    }
}

/// [`guard`] for a body that may switch or block: refused with [`MT_EKILLED`] at once if the
/// calling tasklet's kill was already caught.
pub(crate) fn guard_switching(body: impl FnOnce() -> c_int) -> c_int {
    guard(|| {
        if current_is_killed() {
            MT_EKILLED
        } else {
            body()
        }
    })
}

/// The code of a `Result`, dropping an error's payload (inside the guard, so a panicking
/// `Drop` is caught).
pub(crate) fn code(r: Result<(), Error>) -> c_int {
    match r {
        Ok(()) => MT_OK,
        Err(e) => code_of(&e),
    }
}

/// Writes what `value` makes to the out-pointer `out`: [`MT_ENULL`] if `out` is null (before
/// `value` runs, so that nothing is done), the code `value` fails with (nothing written), or
/// [`MT_OK`].
///
/// # Safety
/// - `out` must be null or valid for writing a `T`.
pub(crate) unsafe fn write_out<T>(out: *mut T, value: impl FnOnce() -> Result<T, c_int>) -> c_int {
    if out.is_null() {
        return MT_ENULL;
    }
    match value() {
        Ok(v) => {
            // SAFETY: `out` is not null; the caller vouches for it.
            unsafe { out.write(v) };
            MT_OK
        }
        Err(code) => code,
    }
}

fn mark_current_killed() {
    let me = scheduler::current();
    if me.is_main() {
        return;
    }
    // During the thread's teardown the list may be gone already: the kill is then not sticky,
    // but the scheduler is ending and refuses to block anyway (`Error::SchedulerEnded`).
    let _ = KILLED.try_with(|k| {
        let mut k = k.borrow_mut();
        if !k.contains(&me.id()) {
            k.push(me.id());
        }
    });
}

fn current_is_killed() -> bool {
    KILLED
        .try_with(|k| {
            let k = k.borrow();
            !k.is_empty() && k.contains(&scheduler::current().id())
        })
        .unwrap_or(false)
}

/// Forgets the kill of tasklet `id`: its C function has returned.
pub(crate) fn forget_killed(id: u64) {
    let _ = KILLED.try_with(|k| k.borrow_mut().retain(|&x| x != id));
}
