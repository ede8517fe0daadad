//! The error codes of the C API and their messages ([`mt_strerror`]).
//!
//! Every `mt_*` function that can fail returns `int`: [`MT_OK`] (0) on success, else one of
//! the positive codes below. The codes from `MT_EDEADLOCK` to `MT_ENOSTACK` are the variants
//! of [`Error`], one each, and their message is that variant's `Display` sentence; the codes
//! from `MT_EKILLED` on belong to the boundary itself.
//!
//! ```
//! use microthread::ffi::*;
//! let mut ch = std::ptr::null_mut();
//! // SAFETY: `ch` is writable, then a live handle released once.
//! unsafe {
//!     assert_eq!(mt_channel_new(MT_CHANNEL_INT64, &mut ch), MT_OK);
//!     assert_eq!(mt_channel_send_ptr(ch, std::ptr::null_mut()), MT_EWRONGTYPE);
//!     assert_eq!(mt_channel_send_int64(ch, 1), MT_EDEADLOCK); // main alone: nobody receives
//!     mt_channel_free(ch);
//! }
//! ```

use std::ffi::{c_char, c_int, CStr, CString};
use std::sync::OnceLock;

use crate::error::Error;

/// Success.
pub const MT_OK: c_int = 0;
/// [`Error::Deadlock`].
pub const MT_EDEADLOCK: c_int = 1;
/// [`Error::MainReceivingWithoutSender`].
pub const MT_EMAINRECEIVING: c_int = 2;
/// [`Error::MainSendingWithoutReceiver`].
pub const MT_EMAINSENDING: c_int = 3;
/// [`Error::BlockTrap`].
pub const MT_EBLOCKTRAP: c_int = 4;
/// [`Error::ClosedChannel`].
pub const MT_ECLOSED: c_int = 5;
/// [`Error::SwitchTrap`].
pub const MT_ESWITCHTRAP: c_int = 6;
/// [`Error::Unwinding`].
pub const MT_EUNWINDING: c_int = 7;
/// [`Error::RunBlocked`].
pub const MT_ERUNBLOCKED: c_int = 8;
/// [`Error::RunDead`].
pub const MT_ERUNDEAD: c_int = 9;
/// [`Error::RemoveBlocked`].
pub const MT_EREMOVEBLOCKED: c_int = 10;
/// [`Error::RemoveCurrent`].
pub const MT_EREMOVECURRENT: c_int = 11;
/// [`Error::SwitchOtherThread`].
pub const MT_ESWITCHOTHERTHREAD: c_int = 12;
/// [`Error::ThrowDead`].
pub const MT_ETHROWDEAD: c_int = 13;
/// [`Error::NoThread`].
pub const MT_ENOTHREAD: c_int = 14;
/// [`Error::RecursiveCallback`].
pub const MT_ERECURSIVECALLBACK: c_int = 15;
/// [`Error::RecursiveChannelCallback`].
pub const MT_ERECURSIVECHANNELCALLBACK: c_int = 16;
/// [`Error::SchedulerEnded`].
pub const MT_ESCHEDULERENDED: c_int = 17;
/// [`Error::Thrown`]: an error thrown into the tasklet by Rust code; its payload is dropped.
pub const MT_ETHROWN: c_int = 18;
/// [`Error::Timeout`].
pub const MT_ETIMEOUT: c_int = 19;
/// [`Error::Panicked`]: a tasklet panicked (Rust code) and nothing caught it; delivered to
/// the innermost `mt_run` caller or the main tasklet. The payload is dropped.
pub const MT_EPANICKED: c_int = 20;
/// [`Error::TaskletAlive`].
pub const MT_ETASKLETALIVE: c_int = 21;
/// [`Error::NotBound`].
pub const MT_ENOTBOUND: c_int = 22;
/// [`Error::BindCurrent`].
pub const MT_EBINDCURRENT: c_int = 23;
/// [`Error::BindScheduled`].
pub const MT_EBINDSCHEDULED: c_int = 24;
/// [`Error::HasCState`].
pub const MT_EHASCSTATE: c_int = 25;
/// [`Error::UnbindMain`].
pub const MT_EUNBINDMAIN: c_int = 26;
/// [`Error::NoStack`]: no stack could be mapped for a new tasklet.
pub const MT_ENOSTACK: c_int = 27;
/// The calling tasklet was killed: the call returned instead of unwinding into C frames.
/// Clean up and return from the tasklet's function (see the [module docs](super)).
pub const MT_EKILLED: c_int = 64;
/// A Rust panic inside the call was caught at the boundary (a bug in microthread, or a
/// panicking destructor or callback); the panic hook has reported it on stderr.
pub const MT_EPANIC: c_int = 65;
/// A null pointer where a handle or an out-pointer was required.
pub const MT_ENULL: c_int = 66;
/// A channel operation of the other value type (`void *` on an `int64_t` channel, or the
/// reverse); nothing was sent or received.
pub const MT_EWRONGTYPE: c_int = 67;
/// A tasklet handle used on a thread other than the one that made it; nothing changed.
pub const MT_EOTHERTHREAD: c_int = 68;
/// An argument out of its range (an unknown channel kind, a channel buffer too large to
/// allocate, a name that is not UTF-8).
pub const MT_EINVAL: c_int = 69;
/// A system call failed (`errno` tells which error; for example making the dump signal's pipe
/// or thread in `mt_install_dump_signal`).
pub const MT_ESYSTEM: c_int = 70;

/// The code of an error.
pub(crate) fn code_of(e: &Error) -> c_int {
    match e {
        Error::Deadlock => MT_EDEADLOCK,
        Error::MainReceivingWithoutSender => MT_EMAINRECEIVING,
        Error::MainSendingWithoutReceiver => MT_EMAINSENDING,
        Error::BlockTrap => MT_EBLOCKTRAP,
        Error::ClosedChannel => MT_ECLOSED,
        Error::SwitchTrap => MT_ESWITCHTRAP,
        Error::Unwinding => MT_EUNWINDING,
        Error::RunBlocked => MT_ERUNBLOCKED,
        Error::RunDead => MT_ERUNDEAD,
        Error::RemoveBlocked => MT_EREMOVEBLOCKED,
        Error::RemoveCurrent => MT_EREMOVECURRENT,
        Error::SwitchOtherThread => MT_ESWITCHOTHERTHREAD,
        Error::ThrowDead => MT_ETHROWDEAD,
        Error::NoThread => MT_ENOTHREAD,
        Error::RecursiveCallback => MT_ERECURSIVECALLBACK,
        Error::RecursiveChannelCallback => MT_ERECURSIVECHANNELCALLBACK,
        Error::SchedulerEnded => MT_ESCHEDULERENDED,
        Error::Thrown(_) => MT_ETHROWN,
        Error::Timeout => MT_ETIMEOUT,
        Error::Panicked { .. } => MT_EPANICKED,
        Error::TaskletAlive => MT_ETASKLETALIVE,
        Error::NotBound => MT_ENOTBOUND,
        Error::BindCurrent => MT_EBINDCURRENT,
        Error::BindScheduled => MT_EBINDSCHEDULED,
        Error::HasCState => MT_EHASCSTATE,
        Error::UnbindMain => MT_EUNBINDMAIN,
        Error::NoStack(_) => MT_ENOSTACK,
    }
}

/// The message of a code that stands for an [`Error`] variant: its `Display` sentence, for
/// the payload-carrying ones a sentence without the payload.
fn error_message(code: c_int) -> Option<String> {
    let e = match code {
        MT_EDEADLOCK => Error::Deadlock,
        MT_EMAINRECEIVING => Error::MainReceivingWithoutSender,
        MT_EMAINSENDING => Error::MainSendingWithoutReceiver,
        MT_EBLOCKTRAP => Error::BlockTrap,
        MT_ECLOSED => Error::ClosedChannel,
        MT_ESWITCHTRAP => Error::SwitchTrap,
        MT_EUNWINDING => Error::Unwinding,
        MT_ERUNBLOCKED => Error::RunBlocked,
        MT_ERUNDEAD => Error::RunDead,
        MT_EREMOVEBLOCKED => Error::RemoveBlocked,
        MT_EREMOVECURRENT => Error::RemoveCurrent,
        MT_ESWITCHOTHERTHREAD => Error::SwitchOtherThread,
        MT_ETHROWDEAD => Error::ThrowDead,
        MT_ENOTHREAD => Error::NoThread,
        MT_ERECURSIVECALLBACK => Error::RecursiveCallback,
        MT_ERECURSIVECHANNELCALLBACK => Error::RecursiveChannelCallback,
        MT_ESCHEDULERENDED => Error::SchedulerEnded,
        MT_ETHROWN => return Some("an error was thrown into the tasklet (by Rust code)".into()),
        MT_ETIMEOUT => Error::Timeout,
        MT_EPANICKED => {
            return Some("a tasklet panicked (in Rust code) and nothing caught it".into())
        }
        MT_ETASKLETALIVE => Error::TaskletAlive,
        MT_ENOTBOUND => Error::NotBound,
        MT_EBINDCURRENT => Error::BindCurrent,
        MT_EBINDSCHEDULED => Error::BindScheduled,
        MT_EHASCSTATE => Error::HasCState,
        MT_EUNBINDMAIN => Error::UnbindMain,
        MT_ENOSTACK => return Some("cannot map a stack for the tasklet".into()),
        _ => return None,
    };
    Some(e.to_string())
}

/// The messages of every code, NUL-terminated, built once.
fn messages() -> &'static [(c_int, CString)] {
    static TABLE: OnceLock<Vec<(c_int, CString)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let own: [(c_int, &str); 8] = [
            (MT_OK, "success"),
            (
                MT_EKILLED,
                "the tasklet was killed: clean up and return from its function",
            ),
            (
                MT_EPANIC,
                "a Rust panic was caught at the C boundary (reported on stderr)",
            ),
            (
                MT_ENULL,
                "a null pointer where a handle or an out-pointer is required",
            ),
            (
                MT_EWRONGTYPE,
                "the channel carries the other value type (void * or int64_t)",
            ),
            (
                MT_EOTHERTHREAD,
                "the tasklet handle belongs to another thread",
            ),
            (MT_EINVAL, "an argument is out of its range"),
            (MT_ESYSTEM, "a system call failed (see errno)"),
        ];
        let mut table: Vec<(c_int, CString)> = (MT_EDEADLOCK..=MT_ENOSTACK)
            .filter_map(|c| error_message(c).map(|m| (c, m)))
            .chain(own.iter().map(|&(c, m)| (c, m.to_owned())))
            .map(|(c, m)| (c, CString::new(m).expect("messages have no NUL")))
            .collect();
        table.sort_by_key(|&(c, _)| c);
        table
    })
}

/// The message of `code`: a NUL-terminated sentence with static lifetime (never free it).
/// An unknown code gives "unknown microthread error code".
///
/// ```
/// use microthread::ffi::{mt_strerror, MT_ECLOSED, MT_EKILLED};
/// use std::ffi::CStr;
///
/// // SAFETY: mt_strerror returns a static NUL-terminated string.
/// let text = |c| unsafe { CStr::from_ptr(mt_strerror(c)) }.to_str().unwrap();
/// assert_eq!(text(MT_ECLOSED), microthread::Error::ClosedChannel.to_string());
/// assert!(text(MT_EKILLED).contains("killed"));
/// assert_eq!(text(-5), "unknown microthread error code");
/// ```
#[no_mangle]
pub extern "C" fn mt_strerror(code: c_int) -> *const c_char {
    const UNKNOWN: &CStr = c"unknown microthread error code";
    let found = std::panic::catch_unwind(|| {
        messages()
            .binary_search_by_key(&code, |&(c, _)| c)
            .ok()
            .map(|i| messages()[i].1.as_ptr())
    });
    match found {
        Ok(Some(p)) => p,
        _ => UNKNOWN.as_ptr(),
    }
}
