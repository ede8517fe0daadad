//! The tasklet dump from C: the text of `scheduler::dump()` for the calling thread.

use std::ffi::{c_char, c_int};

use super::error::{MT_ENULL, MT_OK};
use super::guard::guard;
use crate::scheduler;

/// Writes the calling thread's tasklet dump (one line for the thread, one per live tasklet:
/// id, name, state, the channel it waits on, its stack's use) into `buf` as a NUL-terminated
/// string of at most `len - 1` bytes, cut if longer. If `needed` is not null, the dump's whole
/// length (without the NUL) is written there, so a caller can retry with a larger buffer.
/// `buf` may be null when `len` is 0 (to ask for the length only). Returns `MT_OK` or
/// `MT_ENULL` (`buf` null with `len` > 0).
///
/// ```
/// use microthread::ffi::*;
/// use std::ffi::CStr;
///
/// let (mut needed, mut buf) = (0usize, [0u8; 256]);
/// // SAFETY: `buf` holds `buf.len()` bytes; `needed` is writable.
/// unsafe {
///     assert_eq!(mt_dump(std::ptr::null_mut(), 0, &mut needed), MT_OK);
///     assert_eq!(mt_dump(buf.as_mut_ptr().cast(), buf.len(), std::ptr::null_mut()), MT_OK);
/// }
/// let text = CStr::from_bytes_until_nul(&buf).unwrap().to_str().unwrap();
/// assert_eq!(text.len(), needed);
/// assert!(text.ends_with(&format!("tasklet {} (main): running\n", mt_main_id())));
/// ```
///
/// # Safety
/// - `buf` must be null or valid for writing `len` bytes; `needed` null or valid for
///   writing a `size_t`.
#[no_mangle]
pub unsafe extern "C" fn mt_dump(buf: *mut c_char, len: usize, needed: *mut usize) -> c_int {
    guard(|| {
        if buf.is_null() && len > 0 {
            return MT_ENULL;
        }
        let text = scheduler::dump().to_string();
        if !needed.is_null() {
            // SAFETY: the caller vouches for a non-null `needed`.
            unsafe { needed.write(text.len()) };
        }
        if len > 0 {
            let n = text.len().min(len - 1);
            // SAFETY: `buf` holds `len` > `n` bytes (the caller's obligation); the text is
            // ours, so the ranges do not overlap.
            unsafe {
                std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), n);
                buf.add(n).write(0);
            }
        }
        MT_OK
    })
}
