//! Threads from C: any thread (a `pthread_create`d one too) gets its own scheduler the first
//! time it calls an `mt_*` function, whose main tasklet is the thread's own stack. When the
//! thread ends, its scheduler kills its tasklets that are still alive (their pending calls
//! return `MT_EKILLED`), as for a Rust thread.

use std::ffi::c_int;

use super::error::MT_OK;
use super::guard::guard;
use crate::scheduler;

/// Gives the calling thread its scheduler now (`scheduler::init_thread`). Call it early in a
/// thread that has no tasklets of its own but will wake another thread's tasklets through a
/// channel, so that a thread waiting for it sleeps instead of failing with `MT_EDEADLOCK`.
/// Returns `MT_OK` (or `MT_EPANIC`).
///
/// ```
/// use microthread::ffi::*;
/// let mut ch = std::ptr::null_mut();
/// // SAFETY: `ch` is writable, then a live handle, released once after the thread ends.
/// unsafe { mt_channel_new(MT_CHANNEL_INT64, &mut ch) };
/// let (addr, ready) = (ch as usize, std::sync::mpsc::channel());
/// let sender = std::thread::spawn(move || {
///     assert_eq!(mt_init_thread(), MT_OK); // counted awake from here on
///     ready.0.send(()).unwrap();
///     // SAFETY: the handle stays live until this thread is joined.
///     unsafe { mt_channel_send_int64(addr as *const mt_channel, 3) }
/// });
/// ready.1.recv().unwrap();
/// let mut got = 0;
/// // SAFETY: as above.
/// unsafe { assert_eq!(mt_channel_receive_int64(ch, &mut got), MT_OK) };
/// assert_eq!((got, sender.join().unwrap()), (3, MT_OK));
/// // SAFETY: released once.
/// unsafe { mt_channel_free(ch) };
/// ```
#[no_mangle]
pub extern "C" fn mt_init_thread() -> c_int {
    guard(|| {
        scheduler::init_thread();
        MT_OK
    })
}
