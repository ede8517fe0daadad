//! Channels from C: rendezvous channels ([`mt_channel_new`]) or buffered ones
//! ([`mt_channel_new_buffered`]) carrying `void *` or `int64_t` values, chosen when the
//! channel is made. A channel handle may be used from any thread (the channel is Rust's
//! `BufferedChannel`, of capacity 0 for a rendezvous channel, which is then exactly a
//! `Channel`; `Send + Sync`); each handle from [`mt_channel_new`], [`mt_channel_new_buffered`]
//! or [`mt_channel_clone`] is released once with [`mt_channel_free`]. The channel lives until
//! its last handle goes.
//!
//! A `void *` sent to another thread is the C program's business: the channel only moves the
//! address.

use std::ffi::{c_int, c_void};

use super::error::{code_of, MT_EINVAL, MT_ENULL, MT_EWRONGTYPE, MT_OK};
use super::guard::{code, guard, guard_switching, write_out};
use crate::channel::BufferedChannel;

/// [`mt_channel_new`]'s kind for a channel of `void *` values.
pub const MT_CHANNEL_PTR: c_int = 1;
/// [`mt_channel_new`]'s kind for a channel of `int64_t` values.
pub const MT_CHANNEL_INT64: c_int = 2;

/// What travels: one kind per channel, checked before anything is sent or received.
enum Value {
    /// An address (a `void *` as an integer: the channel never dereferences it).
    Ptr(usize),
    Int(i64),
}

/// An opaque handle to a channel (see the [module docs](self)). `Send` and `Sync` in Rust:
/// any thread may use it.
///
/// ```
/// use microthread::ffi::*;
/// fn assert_send_sync<T: Send + Sync>() {}
/// assert_send_sync::<mt_channel>();
/// let mut ch: *mut mt_channel = std::ptr::null_mut();
/// // SAFETY: `ch` is writable, then a live handle released once.
/// unsafe {
///     assert_eq!(mt_channel_new(MT_CHANNEL_PTR, &mut ch), MT_OK);
///     assert_eq!(mt_channel_free(ch), MT_OK);
/// }
/// ```
#[allow(non_camel_case_types)]
pub struct mt_channel {
    kind: c_int,
    chan: BufferedChannel<Value>,
}

/// The channel behind `ch`, if `ch` is not null and of kind `kind`.
///
/// # Safety
/// - `ch` must be null or a live handle.
unsafe fn channel<'a>(ch: *const mt_channel, kind: Option<c_int>) -> Result<&'a mt_channel, c_int> {
    if ch.is_null() {
        return Err(MT_ENULL);
    }
    // SAFETY: the caller vouches that a non-null `ch` is a live handle.
    let ch = unsafe { &*ch };
    match kind {
        Some(k) if k != ch.kind => Err(MT_EWRONGTYPE),
        _ => Ok(ch),
    }
}

/// A handle to a new channel of `kind` around `chan` ([`MT_EINVAL`] for an unknown kind,
/// or no `chan`: a buffer that cannot be allocated).
fn new_handle(
    kind: c_int,
    chan: impl FnOnce() -> Option<BufferedChannel<Value>>,
) -> Result<*mut mt_channel, c_int> {
    if kind != MT_CHANNEL_PTR && kind != MT_CHANNEL_INT64 {
        return Err(MT_EINVAL);
    }
    let chan = chan().ok_or(MT_EINVAL)?;
    Ok(Box::into_raw(Box::new(mt_channel { kind, chan })))
}

/// Makes a channel of `kind` ([`MT_CHANNEL_PTR`] or [`MT_CHANNEL_INT64`]) and writes a handle
/// to `out`. Returns `MT_OK`, `MT_ENULL` or `MT_EINVAL` (unknown kind).
///
/// ```
/// use microthread::ffi::*;
/// let mut ch = std::ptr::null_mut();
/// // SAFETY: `ch` is writable, then a live handle released once.
/// unsafe {
///     assert_eq!(mt_channel_new(7, &mut ch), MT_EINVAL);
///     assert_eq!(mt_channel_new(MT_CHANNEL_INT64, &mut ch), MT_OK);
///     let mut balance = 1;
///     assert_eq!(mt_channel_balance(ch, &mut balance), MT_OK);
///     assert_eq!(balance, 0);
///     assert_eq!(mt_channel_free(ch), MT_OK);
/// }
/// ```
///
/// # Safety
/// - `out` must be null or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn mt_channel_new(kind: c_int, out: *mut *mut mt_channel) -> c_int {
    // SAFETY: forwarded from the caller.
    guard(|| unsafe { write_out(out, || new_handle(kind, || Some(BufferedChannel::new()))) })
}

/// Makes a channel of `kind` ([`MT_CHANNEL_PTR`] or [`MT_CHANNEL_INT64`]) that buffers up to
/// `capacity` values, and writes a handle to `out` (Rust's `BufferedChannel::with_capacity`):
/// a send that finds no receiver waiting puts its value in the buffer and returns at once if
/// there is room, and blocks only while the buffer is full; a receive takes the oldest
/// buffered value first. Capacity 0 is [`mt_channel_new`]'s rendezvous channel. On a closing
/// channel a send that finds no receiver fails with `MT_ECLOSED` even with room; receives
/// drain the buffer. Returns `MT_OK`, `MT_ENULL`, or `MT_EINVAL` (an unknown kind, or a
/// buffer that cannot be allocated).
///
/// ```
/// use microthread::ffi::*;
/// let mut ch = std::ptr::null_mut();
/// let (mut got, mut len) = (0i64, 9usize);
/// // SAFETY: `ch`, `got` and `len` are writable; `ch` is released once.
/// unsafe {
///     assert_eq!(mt_channel_new_buffered(7, 2, &mut ch), MT_EINVAL);
///     assert_eq!(mt_channel_new_buffered(MT_CHANNEL_INT64, usize::MAX, &mut ch), MT_EINVAL);
///     assert_eq!(mt_channel_new_buffered(MT_CHANNEL_INT64, 2, &mut ch), MT_OK);
///     assert_eq!(mt_channel_send_int64(ch, 1), MT_OK); // buffered: nobody receives yet
///     assert_eq!(mt_channel_send_int64(ch, 2), MT_OK);
///     assert_eq!(mt_channel_send_int64(ch, 3), MT_EDEADLOCK); // full: main would block
///     assert_eq!(mt_channel_length(ch, &mut len), MT_OK);
///     assert_eq!(len, 2);
///     assert_eq!(mt_channel_receive_int64(ch, &mut got), MT_OK);
///     assert_eq!(got, 1);
///     mt_channel_free(ch);
/// }
/// ```
///
/// # Safety
/// - `out` must be null or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn mt_channel_new_buffered(
    kind: c_int,
    capacity: usize,
    out: *mut *mut mt_channel,
) -> c_int {
    guard(|| {
        // SAFETY: forwarded from the caller.
        unsafe {
            write_out(out, || {
                new_handle(kind, || BufferedChannel::try_with_capacity(capacity))
            })
        }
    })
}

/// Writes a second handle to the same channel to `out` (for another thread or tasklet to
/// own). Returns `MT_OK` or `MT_ENULL`.
///
/// ```
/// use microthread::ffi::*;
/// let (mut a, mut b) = (std::ptr::null_mut(), std::ptr::null_mut());
/// // SAFETY: `a` and `b` are writable, then live handles, each released once.
/// unsafe {
///     mt_channel_new(MT_CHANNEL_INT64, &mut a);
///     assert_eq!(mt_channel_clone(a, &mut b), MT_OK);
///     mt_channel_close(a);
///     let mut closing = 0;
///     mt_channel_closing(b, &mut closing);
///     assert_eq!(closing, 1, "one channel, two handles");
///     mt_channel_free(a);
///     mt_channel_free(b);
/// }
/// ```
///
/// # Safety
/// - `ch` must be null or a live handle; `out` null or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn mt_channel_clone(
    ch: *const mt_channel,
    out: *mut *mut mt_channel,
) -> c_int {
    // SAFETY: forwarded from the caller.
    guard(|| unsafe {
        write_out(out, || {
            let ch = channel(ch, None)?;
            Ok(Box::into_raw(Box::new(mt_channel {
                kind: ch.kind,
                chan: ch.chan.clone(),
            })))
        })
    })
}

/// Releases a channel handle. Returns `MT_OK` or `MT_ENULL`. A tasklet blocked on the
/// channel keeps it alive through its own reference until it is woken or killed.
///
/// ```
/// use microthread::ffi::*;
/// let mut ch = std::ptr::null_mut();
/// // SAFETY: `ch` is writable, then a live handle released once.
/// unsafe {
///     mt_channel_new(MT_CHANNEL_PTR, &mut ch);
///     assert_eq!(mt_channel_free(ch), MT_OK);
///     assert_eq!(mt_channel_free(std::ptr::null_mut()), MT_ENULL);
/// }
/// ```
///
/// # Safety
/// - `ch` must be null or a live handle that no other call is using; after `MT_OK` it must
///   not be used again.
#[no_mangle]
pub unsafe extern "C" fn mt_channel_free(ch: *mut mt_channel) -> c_int {
    guard(|| {
        if ch.is_null() {
            return MT_ENULL;
        }
        // SAFETY: a live handle made by `Box::into_raw`, which the caller gives up.
        drop(unsafe { Box::from_raw(ch) });
        MT_OK
    })
}

/// Sends `value`: hands it to a receiver already waiting, or puts it in the buffer if there
/// is room, or blocks until a receiver (or room) comes.
///
/// # Safety
/// - `ch` must be null or a live handle.
unsafe fn send(ch: *const mt_channel, kind: c_int, value: Value) -> c_int {
    guard_switching(|| {
        // SAFETY: forwarded from the caller.
        match unsafe { channel(ch, Some(kind)) } {
            Ok(ch) => code(ch.chan.send(value).map_err(|e| e.error)),
            Err(code) => code,
        }
    })
}

/// Receives a value of `kind` into `out`, as `take` makes it of the value.
///
/// # Safety
/// - `ch` must be null or a live handle; `out` null or valid for writing a `T`.
unsafe fn receive<T>(
    ch: *const mt_channel,
    kind: c_int,
    out: *mut T,
    take: fn(Value) -> Option<T>,
) -> c_int {
    // A null `out` is refused before the guard (even for a killed tasklet) and before
    // anything is received.
    if out.is_null() {
        return MT_ENULL;
    }
    guard_switching(|| {
        // SAFETY: forwarded from the caller.
        let got = unsafe { channel(ch, Some(kind)) }
            // The error's payload is dropped here, inside the guard.
            .and_then(|ch| ch.chan.receive().map_err(|e| code_of(&e)))
            .and_then(|v| take(v).ok_or(MT_EWRONGTYPE));
        match got {
            Ok(v) => {
                // SAFETY: `out` is not null (tested above); the caller vouches for it.
                unsafe { out.write(v) };
                MT_OK
            }
            Err(code) => code,
        }
    })
}

/// Sends a `void *` on a [`MT_CHANNEL_PTR`] channel: hands it to the first waiting receiver,
/// or (a buffered channel with room) puts it in the buffer, or blocks until one comes (other
/// tasklets run meanwhile). Returns `MT_OK`, `MT_ENULL`, `MT_EWRONGTYPE`, `MT_ECLOSED`,
/// `MT_EDEADLOCK` (nobody could ever receive), `MT_EMAINSENDING`, `MT_EKILLED`, or an error
/// delivered while blocked. On an error the value was not delivered.
///
/// ```
/// use microthread::ffi::*;
/// use std::ffi::c_void;
///
/// static TARGET: u8 = 9;
/// extern "C" fn send_address(ch: *mut c_void) {
///     // SAFETY: the spawner passes a live channel handle. (A C function must not panic:
///     // the result is checked by the receiver.)
///     unsafe { mt_channel_send_ptr(ch.cast(), &TARGET as *const u8 as *mut c_void) };
/// }
/// let (mut ch, mut got) = (std::ptr::null_mut(), std::ptr::null_mut());
/// // SAFETY: `ch` outlives the sender (mt_run ends it); `got` is writable.
/// unsafe {
///     mt_channel_new(MT_CHANNEL_PTR, &mut ch);
///     mt_spawn(Some(send_address), ch.cast(), std::ptr::null_mut());
///     assert_eq!(mt_channel_receive_ptr(ch, &mut got), MT_OK);
///     assert_eq!(got.cast_const(), &TARGET as *const u8 as *const c_void);
///     mt_run(); // the sender, runnable again, ends
///     assert_eq!(mt_channel_send_int64(ch, 1), MT_EWRONGTYPE);
///     mt_channel_free(ch);
/// }
/// ```
///
/// # Safety
/// - `ch` must be null or a live handle. `value` is not dereferenced.
#[no_mangle]
pub unsafe extern "C" fn mt_channel_send_ptr(ch: *const mt_channel, value: *mut c_void) -> c_int {
    // SAFETY: forwarded from the caller.
    unsafe { send(ch, MT_CHANNEL_PTR, Value::Ptr(value as usize)) }
}

/// Sends an `int64_t` on a [`MT_CHANNEL_INT64`] channel; otherwise as
/// [`mt_channel_send_ptr`].
///
/// ```
/// use microthread::ffi::*;
/// use std::ffi::c_void;
///
/// extern "C" fn send_42(ch: *mut c_void) {
///     // SAFETY: the spawner passes a live channel handle.
///     unsafe { mt_channel_send_int64(ch.cast(), 42) };
/// }
/// let (mut ch, mut got) = (std::ptr::null_mut(), 0i64);
/// // SAFETY: `ch` outlives the sender (mt_run ends it); `got` is writable.
/// unsafe {
///     mt_channel_new(MT_CHANNEL_INT64, &mut ch);
///     mt_spawn(Some(send_42), ch.cast(), std::ptr::null_mut());
///     assert_eq!(mt_channel_receive_int64(ch, &mut got), MT_OK);
///     mt_run(); // the sender, runnable again, ends
///     // Nobody receives: main would block forever.
///     assert_eq!(mt_channel_send_int64(ch, 1), MT_EDEADLOCK);
///     mt_channel_free(ch);
/// }
/// assert_eq!(got, 42);
/// ```
///
/// # Safety
/// - `ch` must be null or a live handle.
#[no_mangle]
pub unsafe extern "C" fn mt_channel_send_int64(ch: *const mt_channel, value: i64) -> c_int {
    // SAFETY: forwarded from the caller.
    unsafe { send(ch, MT_CHANNEL_INT64, Value::Int(value)) }
}

/// Receives a `void *` from a [`MT_CHANNEL_PTR`] channel into `out`: takes the oldest
/// buffered value (a buffered channel), or the first waiting sender's, or blocks until one
/// comes. Returns `MT_OK`, `MT_ENULL`, `MT_EWRONGTYPE`, `MT_ECLOSED`, `MT_EDEADLOCK`,
/// `MT_EMAINRECEIVING`, `MT_EKILLED`, or an error delivered while blocked; `out` is written
/// only on `MT_OK`.
///
/// ```
/// use microthread::ffi::*;
/// let (mut ch, mut got) = (std::ptr::null_mut(), std::ptr::null_mut());
/// // SAFETY: `ch` and `got` are writable; `ch` is released once.
/// unsafe {
///     mt_channel_new(MT_CHANNEL_PTR, &mut ch);
///     mt_channel_close(ch);
///     assert_eq!(mt_channel_receive_ptr(ch, &mut got), MT_ECLOSED);
///     assert!(got.is_null());
///     mt_channel_free(ch);
/// }
/// ```
///
/// # Safety
/// - `ch` must be null or a live handle; `out` null or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn mt_channel_receive_ptr(
    ch: *const mt_channel,
    out: *mut *mut c_void,
) -> c_int {
    // SAFETY: forwarded from the caller.
    unsafe {
        receive(ch, MT_CHANNEL_PTR, out, |v| match v {
            Value::Ptr(p) => Some(p as *mut c_void),
            Value::Int(_) => None,
        })
    }
}

/// Receives an `int64_t` from a [`MT_CHANNEL_INT64`] channel into `out`; otherwise as
/// [`mt_channel_receive_ptr`].
///
/// ```
/// use microthread::ffi::*;
/// let (mut ch, mut got) = (std::ptr::null_mut(), 0i64);
/// // SAFETY: `ch` and `got` are writable; `ch` is released once.
/// unsafe {
///     mt_channel_new(MT_CHANNEL_INT64, &mut ch);
///     // Main alone: nobody could ever send.
///     assert_eq!(mt_channel_receive_int64(ch, &mut got), MT_EDEADLOCK);
///     assert_eq!(mt_channel_receive_int64(ch, std::ptr::null_mut()), MT_ENULL);
///     mt_channel_free(ch);
/// }
/// ```
///
/// # Safety
/// - `ch` must be null or a live handle; `out` null or valid for writing an `int64_t`.
#[no_mangle]
pub unsafe extern "C" fn mt_channel_receive_int64(ch: *const mt_channel, out: *mut i64) -> c_int {
    // SAFETY: forwarded from the caller.
    unsafe {
        receive(ch, MT_CHANNEL_INT64, out, |v| match v {
            Value::Int(i) => Some(i),
            Value::Ptr(_) => None,
        })
    }
}

/// Writes the channel's balance to `out`: the number of blocked senders, or minus the number
/// of blocked receivers. Returns `MT_OK` or `MT_ENULL`.
///
/// ```
/// use microthread::ffi::*;
/// use std::ffi::c_void;
///
/// extern "C" fn receive_one(ch: *mut c_void) {
///     let mut v = 0;
///     // SAFETY: the spawner passes a live channel handle.
///     unsafe { mt_channel_receive_int64(ch.cast(), &mut v) };
/// }
/// let (mut ch, mut balance) = (std::ptr::null_mut(), 0i64);
/// // SAFETY: `ch` outlives the receiver (it ends inside the send); `balance` is writable.
/// unsafe {
///     mt_channel_new(MT_CHANNEL_INT64, &mut ch);
///     mt_spawn(Some(receive_one), ch.cast(), std::ptr::null_mut());
///     mt_run(); // the receiver blocks
///     assert_eq!(mt_channel_balance(ch, &mut balance), MT_OK);
///     assert_eq!(balance, -1);
///     mt_channel_send_int64(ch, 5);
///     mt_channel_balance(ch, &mut balance);
///     assert_eq!(balance, 0);
///     mt_channel_free(ch);
/// }
/// ```
///
/// # Safety
/// - `ch` must be null or a live handle; `out` null or valid for writing an `int64_t`.
#[no_mangle]
pub unsafe extern "C" fn mt_channel_balance(ch: *const mt_channel, out: *mut i64) -> c_int {
    // SAFETY: forwarded from the caller.
    guard(|| unsafe { write_out(out, || channel(ch, None).map(|ch| ch.chan.balance() as i64)) })
}

/// Writes the number of values the channel's buffer holds to `out` (0 for a rendezvous
/// channel; blocked senders' values are not counted: see [`mt_channel_balance`]). Returns
/// `MT_OK` or `MT_ENULL`.
///
/// ```
/// use microthread::ffi::*;
/// let (mut ch, mut len) = (std::ptr::null_mut(), 9usize);
/// // SAFETY: `ch` and `len` are writable; `ch` is released once.
/// unsafe {
///     mt_channel_new_buffered(MT_CHANNEL_PTR, 4, &mut ch);
///     assert_eq!(mt_channel_length(ch, &mut len), MT_OK);
///     assert_eq!(len, 0);
///     mt_channel_send_ptr(ch, std::ptr::null_mut());
///     mt_channel_length(ch, &mut len);
///     assert_eq!(len, 1);
///     assert_eq!(mt_channel_length(ch, std::ptr::null_mut()), MT_ENULL);
///     mt_channel_free(ch);
/// }
/// ```
///
/// # Safety
/// - `ch` must be null or a live handle; `out` null or valid for writing a `size_t`.
#[no_mangle]
pub unsafe extern "C" fn mt_channel_length(ch: *const mt_channel, out: *mut usize) -> c_int {
    // SAFETY: forwarded from the caller.
    guard(|| unsafe { write_out(out, || channel(ch, None).map(|ch| ch.chan.len())) })
}

/// Closes the channel: once no sender waits (and, buffered, the buffer is drained), every
/// blocking send or receive fails with `MT_ECLOSED` (tasklets already blocked stay blocked
/// until a partner or a kill comes, as in Stackless). Returns `MT_OK` or `MT_ENULL`.
///
/// ```
/// use microthread::ffi::*;
/// let mut ch = std::ptr::null_mut();
/// // SAFETY: `ch` is writable, then a live handle released once.
/// unsafe {
///     mt_channel_new(MT_CHANNEL_INT64, &mut ch);
///     assert_eq!(mt_channel_close(ch), MT_OK);
///     assert_eq!(mt_channel_send_int64(ch, 1), MT_ECLOSED);
///     mt_channel_free(ch);
/// }
/// ```
///
/// # Safety
/// - `ch` must be null or a live handle.
#[no_mangle]
pub unsafe extern "C" fn mt_channel_close(ch: *const mt_channel) -> c_int {
    guard(|| {
        // SAFETY: forwarded from the caller.
        match unsafe { channel(ch, None) } {
            Ok(ch) => {
                ch.chan.close();
                MT_OK
            }
            Err(code) => code,
        }
    })
}

/// Writes 1 to `out` if the channel is closing ([`mt_channel_close`] was called), else 0.
/// Returns `MT_OK` or `MT_ENULL`.
///
/// ```
/// use microthread::ffi::*;
/// let (mut ch, mut closing) = (std::ptr::null_mut(), 1);
/// // SAFETY: `ch` and `closing` are writable; `ch` is released once.
/// unsafe {
///     mt_channel_new(MT_CHANNEL_PTR, &mut ch);
///     assert_eq!(mt_channel_closing(ch, &mut closing), MT_OK);
///     assert_eq!(closing, 0);
///     mt_channel_close(ch);
///     mt_channel_closing(ch, &mut closing);
///     assert_eq!(closing, 1);
///     mt_channel_free(ch);
/// }
/// ```
///
/// # Safety
/// - `ch` must be null or a live handle; `out` null or valid for writing an `int`.
#[no_mangle]
pub unsafe extern "C" fn mt_channel_closing(ch: *const mt_channel, out: *mut c_int) -> c_int {
    // SAFETY: forwarded from the caller.
    guard(|| unsafe {
        write_out(out, || {
            channel(ch, None).map(|ch| c_int::from(ch.chan.closing()))
        })
    })
}
