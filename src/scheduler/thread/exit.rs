//! The end of a thread's scheduler when the `Teardown` thread-local cannot see to it.
//!
//! glibc runs a thread's destructors in two phases: first those of thread-locals (Rust's,
//! C++'s), then those of `pthread_key_create` keys. A scheduler first created in the second
//! phase (by a key destructor of some C library that calls back into Rust) registers its
//! `Teardown`, but that phase is over: it would never run, and the thread would stay counted
//! awake for deadlock detection forever. So every scheduler also sets a key of its own, whose
//! destructor (in the key phase, which repeats while destructors set keys) ends a scheduler
//! that is not ended yet. For every other thread `Teardown` has ended it first, and the key's
//! destructor does nothing.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::super::Scheduler;

/// The key, plus one (0: not created yet).
static KEY: AtomicUsize = AtomicUsize::new(0);

/// Sets this thread's value of the key to `s`, so that its destructor ends `s` at thread exit
/// if `Teardown` did not.
pub(crate) fn end_at_thread_exit_anyway(s: &'static Scheduler) {
    let Some(key) = key() else {
        return;
    };
    // SAFETY: a key of ours; the value is a pointer to a leaked scheduler.
    unsafe { libc::pthread_setspecific(key, s as *const Scheduler as *const libc::c_void) };
}

fn key() -> Option<libc::pthread_key_t> {
    let k = KEY.load(Ordering::Acquire);
    if k != 0 {
        return Some((k - 1) as libc::pthread_key_t);
    }
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: writes a new key into `key`; the destructor lives for the whole process.
    if unsafe { libc::pthread_key_create(&mut key, Some(end_if_not_ended)) } != 0 {
        // Out of keys (PTHREAD_KEYS_MAX): only the rare late scheduler goes without.
        return None;
    }
    match KEY.compare_exchange(0, key as usize + 1, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Some(key),
        Err(other) => {
            // Another thread created one first: use that.
            // SAFETY: our own unused key.
            unsafe { libc::pthread_key_delete(key) };
            Some((other - 1) as libc::pthread_key_t)
        }
    }
}

/// The key's destructor, on the exiting thread.
///
/// # Safety
/// - `s` is the value `end_at_thread_exit_anyway` set: this thread's leaked scheduler.
unsafe extern "C" fn end_if_not_ended(s: *mut libc::c_void) {
    // SAFETY: see above.
    let s = unsafe { &*(s as *const Scheduler) };
    s.shutdown();
}
