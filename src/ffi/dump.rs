//! The tasklet dump from C: the text of `scheduler::dump()` for the calling thread, of
//! `scheduler::dump_all()` for the whole process, and the dump signal.

use std::ffi::{c_char, c_int};

use super::error::{MT_EINVAL, MT_ENULL, MT_ESYSTEM, MT_OK};
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
    // SAFETY: forwarded from the caller.
    guard(|| unsafe { write_text(|| scheduler::dump().to_string(), buf, len, needed) })
}

/// Copies the text `text` makes into `buf` as `mt_dump` documents (a null `buf` with `len` > 0
/// is refused before the text is made).
///
/// # Safety
/// - As for `mt_dump`.
unsafe fn write_text(
    text: impl FnOnce() -> String,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> c_int {
    if buf.is_null() && len > 0 {
        return MT_ENULL;
    }
    let text = text();
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
}

/// Writes the process-wide dump (`scheduler::dump_all()`: every thread with a scheduler; a
/// thread busy in native code for a second gets a line saying it did not answer) into `buf`,
/// as [`mt_dump`] does. Does not give the calling thread a scheduler. Note that a retry with
/// a larger buffer makes a new dump, which may be longer still.
///
/// ```
/// use microthread::ffi::*;
/// use std::ffi::CStr;
///
/// let mut buf = [0u8; 4096];
/// mt_init_thread();
/// // SAFETY: `buf` holds `buf.len()` bytes.
/// assert_eq!(unsafe { mt_dump_all(buf.as_mut_ptr().cast(), buf.len(), std::ptr::null_mut()) }, MT_OK);
/// let text = CStr::from_bytes_until_nul(&buf).unwrap().to_str().unwrap();
/// assert!(text.starts_with("microthread: "));
/// assert!(text.contains(&format!("tasklet {} (main): running\n", mt_main_id())));
/// // SAFETY: a null buffer of length 0 asks for nothing.
/// assert_eq!(unsafe { mt_dump_all(std::ptr::null_mut(), 1, std::ptr::null_mut()) }, MT_ENULL);
/// ```
///
/// # Safety
/// - As for [`mt_dump`].
#[no_mangle]
pub unsafe extern "C" fn mt_dump_all(buf: *mut c_char, len: usize, needed: *mut usize) -> c_int {
    // SAFETY: forwarded from the caller.
    guard(|| unsafe { write_text(|| scheduler::dump_all().to_string(), buf, len, needed) })
}

/// Makes signal `sig` print the process-wide dump to stderr each time it arrives
/// (`scheduler::install_dump_signal`; `SIGQUIT` is the usual choice). Returns `MT_OK`, or
/// `MT_EINVAL` for a signal that cannot be caught or is a fault signal (`SIGSEGV`, `SIGBUS`,
/// `SIGILL`, `SIGFPE`, `SIGTRAP`), or `MT_ESYSTEM` (with `errno` set) if the pipe, the thread or `sigaction` failed.
///
/// ```
/// use microthread::ffi::*;
/// assert_eq!(mt_install_dump_signal(libc::SIGUSR2), MT_OK);
/// assert_eq!(mt_install_dump_signal(libc::SIGSEGV), MT_EINVAL);
/// ```
#[no_mangle]
pub extern "C" fn mt_install_dump_signal(sig: c_int) -> c_int {
    guard(|| match scheduler::install_dump_signal(sig) {
        Ok(()) => MT_OK,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => MT_EINVAL,
        Err(e) => {
            if let Some(errno) = e.raw_os_error() {
                // SAFETY: the calling thread's errno.
                unsafe { *libc::__errno_location() = errno };
            }
            MT_ESYSTEM
        }
    })
}
