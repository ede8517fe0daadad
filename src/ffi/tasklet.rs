//! Tasklets and the scheduler from C: spawn a tasklet from a function pointer and a `void *`,
//! run the scheduler, yield, pause, sleep, kill, and the ids of the current and main tasklets.
//!
//! A C function run as a tasklet that is killed gets [`MT_EKILLED`] from the `mt_*` call it
//! is suspended in and must return (see the [module docs](super)).

use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr;
use std::time::Duration;

use super::error::{MT_EINVAL, MT_ENOSTACK, MT_ENULL, MT_EOTHERTHREAD, MT_OK};
use super::guard::{code, forget_killed, guard, guard_switching, write_out};
use crate::scheduler;
use crate::tasklet::Tasklet;

/// The function a tasklet runs: called once with the `arg` given to [`mt_spawn`]. It must not
/// unwind (no C++ exception may leave it). `None` is a null function pointer.
///
/// ```
/// use microthread::ffi::*;
/// extern "C" fn nothing(_: *mut std::ffi::c_void) {}
/// let f: mt_fn = Some(nothing);
/// // SAFETY: no handle is asked for.
/// assert_eq!(unsafe { mt_spawn(f, std::ptr::null_mut(), std::ptr::null_mut()) }, MT_OK);
/// assert_eq!(unsafe { mt_spawn(None, std::ptr::null_mut(), std::ptr::null_mut()) }, MT_ENULL);
/// assert_eq!(mt_run(), MT_OK);
/// ```
#[allow(non_camel_case_types)]
pub type mt_fn = Option<extern "C" fn(arg: *mut c_void)>;

/// An opaque handle to a tasklet, made by [`mt_spawn`] and released by [`mt_tasklet_free`].
/// It belongs to the thread that made it: on any other thread every function refuses it with
/// `MT_EOTHERTHREAD`. Releasing the handle does not end the tasklet.
///
/// In Rust it is `!Send`, as [`Tasklet`] is:
///
/// ```compile_fail
/// fn assert_send<T: Send>() {}
/// assert_send::<microthread::ffi::mt_tasklet>();
/// ```
///
/// ```
/// use microthread::ffi::*;
/// extern "C" fn nothing(_: *mut std::ffi::c_void) {}
/// let mut t: *mut mt_tasklet = std::ptr::null_mut();
/// // SAFETY: `t` is writable, then a live handle released once.
/// unsafe {
///     assert_eq!(mt_spawn(Some(nothing), std::ptr::null_mut(), &mut t), MT_OK);
///     assert!(!t.is_null());
///     mt_run();
///     assert_eq!(mt_tasklet_free(t), MT_OK);
/// }
/// ```
#[allow(non_camel_case_types)]
pub struct mt_tasklet {
    tasklet: Tasklet,
}

/// The tasklet behind `t`, if `t` is a handle of this thread.
///
/// # Safety
/// - `t` must be null or a handle from [`mt_spawn`] not yet released.
unsafe fn tasklet<'a>(t: *const mt_tasklet) -> Result<&'a Tasklet, c_int> {
    if t.is_null() {
        return Err(MT_ENULL);
    }
    // SAFETY: the caller vouches that a non-null `t` is a live handle; only its owner field
    // is read before the thread check, and `Inner::owner` is immutable.
    let t = unsafe { &(*t).tasklet };
    if ptr::eq(t.inner.owner, scheduler::main().inner.owner) {
        Ok(t)
    } else {
        Err(MT_EOTHERTHREAD)
    }
}

/// Spawns a tasklet that calls `f(arg)`, at the end of the run queue (it runs when the
/// scheduler gets to it: [`mt_run`], [`mt_schedule`], or a blocking call). If `out` is not
/// null, a new handle to the tasklet is written there (release it with [`mt_tasklet_free`]).
/// Returns `MT_OK`, `MT_ENULL` (no `f`), `MT_ENOSTACK`, or `MT_EPANIC`.
///
/// ```
/// use microthread::ffi::*;
/// use std::ffi::c_void;
///
/// extern "C" fn add_one(arg: *mut c_void) {
///     // SAFETY: the spawner passes a pointer to a live i32.
///     unsafe { *arg.cast::<i32>() += 1 };
/// }
/// let mut n = 41;
/// let mut t = std::ptr::null_mut();
/// // SAFETY: `n` outlives the tasklet (mt_run below runs it to its end); `t` is writable.
/// unsafe {
///     assert_eq!(mt_spawn(Some(add_one), (&mut n as *mut i32).cast(), &mut t), MT_OK);
///     assert_eq!(mt_run(), MT_OK);
///     let mut alive = 1;
///     assert_eq!(mt_tasklet_alive(t, &mut alive), MT_OK);
///     assert_eq!(alive, 0);
///     assert_eq!(mt_tasklet_free(t), MT_OK);
/// }
/// assert_eq!(n, 42);
/// ```
///
/// # Safety
/// - `out` must be null or valid for writing a pointer.
/// - `arg` is passed to `f` as it is: whatever it points to must stay valid for as long as
///   `f` uses it (the tasklet may run long after this call).
#[no_mangle]
pub unsafe extern "C" fn mt_spawn(f: mt_fn, arg: *mut c_void, out: *mut *mut mt_tasklet) -> c_int {
    guard(|| {
        let Some(f) = f else { return MT_ENULL };
        let spawned = scheduler::spawn(move || {
            f(arg);
            forget_killed(scheduler::current().id());
        });
        match spawned {
            Ok(tasklet) => {
                if !out.is_null() {
                    let handle = Box::into_raw(Box::new(mt_tasklet { tasklet }));
                    // SAFETY: the caller vouches for a non-null `out`.
                    unsafe { out.write(handle) };
                }
                MT_OK
            }
            Err(_) => MT_ENOSTACK,
        }
    })
}

/// Releases a handle from [`mt_spawn`]; the tasklet lives on (a tasklet that never ran and is
/// paused, with no handle left, is ended without running). Returns `MT_OK`, `MT_ENULL`, or
/// `MT_EOTHERTHREAD` (the handle is kept: release it on its own thread).
///
/// ```
/// use microthread::ffi::*;
/// use std::ffi::c_void;
///
/// extern "C" fn nothing(_: *mut c_void) {}
/// let mut t = std::ptr::null_mut();
/// // SAFETY: `t` is writable, then a live handle, released once.
/// unsafe {
///     assert_eq!(mt_spawn(Some(nothing), std::ptr::null_mut(), &mut t), MT_OK);
///     assert_eq!(mt_tasklet_free(t), MT_OK);
///     assert_eq!(mt_tasklet_free(std::ptr::null_mut()), MT_ENULL);
///     assert_eq!(mt_run(), MT_OK); // the tasklet still runs
/// }
/// ```
///
/// # Safety
/// - `t` must be null or a handle from [`mt_spawn`] not yet released; after `MT_OK` it is
///   released and must not be used again.
#[no_mangle]
pub unsafe extern "C" fn mt_tasklet_free(t: *mut mt_tasklet) -> c_int {
    guard(|| {
        // SAFETY: forwarded from the caller.
        if let Err(code) = unsafe { tasklet(t) } {
            return code;
        }
        // SAFETY: a live handle of this thread, made by `Box::into_raw` in `mt_spawn`; the
        // caller gives it up.
        drop(unsafe { Box::from_raw(t) });
        MT_OK
    })
}

/// Writes the tasklet's id (unique in the process, never 0) to `out`. Returns `MT_OK`,
/// `MT_ENULL` or `MT_EOTHERTHREAD`.
///
/// ```
/// use microthread::ffi::*;
/// use std::ffi::c_void;
///
/// extern "C" fn check_id(arg: *mut c_void) {
///     // SAFETY: the spawner passes a pointer to a live u64.
///     unsafe { *arg.cast::<u64>() = mt_current_id() };
/// }
/// let (mut seen, mut id, mut t) = (0u64, 0u64, std::ptr::null_mut());
/// // SAFETY: `seen` outlives the tasklet; `t` and `id` are writable.
/// unsafe {
///     mt_spawn(Some(check_id), (&mut seen as *mut u64).cast(), &mut t);
///     assert_eq!(mt_tasklet_id(t, &mut id), MT_OK);
///     mt_run();
///     mt_tasklet_free(t);
/// }
/// assert!(id != 0 && id == seen);
/// ```
///
/// # Safety
/// - `t` must be null or a live handle; `out` null or valid for writing a `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn mt_tasklet_id(t: *const mt_tasklet, out: *mut u64) -> c_int {
    // SAFETY: forwarded from the caller.
    guard(|| unsafe { write_out(out, || tasklet(t).map(|t| t.id())) })
}

/// Writes 1 to `out` if the tasklet is alive (spawned and not yet returned or killed), else
/// 0. Returns `MT_OK`, `MT_ENULL` or `MT_EOTHERTHREAD`.
///
/// ```
/// use microthread::ffi::*;
/// use std::ffi::c_void;
///
/// extern "C" fn nothing(_: *mut c_void) {}
/// let (mut t, mut alive) = (std::ptr::null_mut(), 0);
/// // SAFETY: `t` and `alive` are writable; `t` is released once.
/// unsafe {
///     mt_spawn(Some(nothing), std::ptr::null_mut(), &mut t);
///     assert_eq!(mt_tasklet_alive(t, &mut alive), MT_OK);
///     assert_eq!(alive, 1);
///     mt_run();
///     mt_tasklet_alive(t, &mut alive);
///     assert_eq!(alive, 0);
///     mt_tasklet_free(t);
/// }
/// ```
///
/// # Safety
/// - `t` must be null or a live handle; `out` null or valid for writing an `int`.
#[no_mangle]
pub unsafe extern "C" fn mt_tasklet_alive(t: *const mt_tasklet, out: *mut c_int) -> c_int {
    // SAFETY: forwarded from the caller.
    guard(|| unsafe { write_out(out, || tasklet(t).map(|t| c_int::from(t.alive()))) })
}

/// Names the tasklet (for dumps and panic messages: see `scheduler::dump`); a null `name`
/// clears it. Returns `MT_OK`, `MT_ENULL` (no `t`), `MT_EINVAL` (`name` is not UTF-8) or
/// `MT_EOTHERTHREAD`.
///
/// ```
/// use microthread::ffi::*;
/// use std::ffi::c_void;
///
/// extern "C" fn nothing(_: *mut c_void) {}
/// let mut t = std::ptr::null_mut();
/// // SAFETY: `t` is writable, then live; the name is a NUL-terminated string.
/// unsafe {
///     mt_spawn(Some(nothing), std::ptr::null_mut(), &mut t);
///     assert_eq!(mt_tasklet_set_name(t, c"worker-1".as_ptr()), MT_OK);
///     assert_eq!(mt_tasklet_set_name(t, c"\xff".as_ptr()), MT_EINVAL);
///     mt_run();
///     mt_tasklet_free(t);
/// }
/// ```
///
/// # Safety
/// - `t` must be null or a live handle; `name` null or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn mt_tasklet_set_name(t: *const mt_tasklet, name: *const c_char) -> c_int {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let t = match unsafe { tasklet(t) } {
            Ok(t) => t,
            Err(code) => return code,
        };
        if name.is_null() {
            t.set_name(None);
            return MT_OK;
        }
        // SAFETY: the caller vouches for a NUL-terminated string.
        match unsafe { CStr::from_ptr(name) }.to_str() {
            Ok(s) => {
                t.set_name(Some(s));
                MT_OK
            }
            Err(_) => MT_EINVAL,
        }
    })
}

/// Kills the tasklet now: it is switched to and its pending `mt_*` call returns
/// `MT_EKILLED` (a C tasklet; a Rust one unwinds), then the caller continues when its turn
/// comes. Killing a dead tasklet does nothing; killing the calling tasklet returns
/// `MT_EKILLED` to it. Returns `MT_OK`, `MT_EKILLED`, `MT_ENULL`, `MT_EOTHERTHREAD`, or
/// the scheduler's refusals (`MT_ESWITCHTRAP`, `MT_EUNWINDING`, ...).
///
/// ```
/// use microthread::ffi::*;
/// use std::ffi::c_void;
///
/// extern "C" fn pause_then_record(arg: *mut c_void) {
///     // SAFETY: the spawner passes a pointer to a live c_int.
///     unsafe { *arg.cast::<i32>() = mt_schedule_remove() };
/// }
/// let (mut got, mut t) = (0, std::ptr::null_mut());
/// // SAFETY: `got` outlives the tasklet (it ends inside mt_kill); `t` is writable.
/// unsafe {
///     mt_spawn(Some(pause_then_record), (&mut got as *mut i32).cast(), &mut t);
///     mt_run(); // it pauses itself
///     assert_eq!(mt_kill(t), MT_OK);
///     mt_tasklet_free(t);
/// }
/// assert_eq!(got, MT_EKILLED);
/// ```
///
/// # Safety
/// - `t` must be null or a live handle.
#[no_mangle]
pub unsafe extern "C" fn mt_kill(t: *const mt_tasklet) -> c_int {
    guard_switching(|| {
        // SAFETY: forwarded from the caller.
        match unsafe { tasklet(t) } {
            Ok(t) => code(t.kill()),
            Err(code) => code,
        }
    })
}

/// Runs the scheduler until the run queue is empty but for the caller (`scheduler::run`).
/// Returns `MT_OK`, or an error delivered to the caller meanwhile (`MT_EPANICKED` from a
/// Rust tasklet that panicked, `MT_EKILLED`, ...).
///
/// ```
/// use microthread::ffi::*;
/// use std::ffi::c_void;
///
/// extern "C" fn nothing(_: *mut c_void) {}
/// // SAFETY: no handle is asked for.
/// unsafe { mt_spawn(Some(nothing), std::ptr::null_mut(), std::ptr::null_mut()) };
/// assert_eq!(microthread::scheduler::runcount(), 2);
/// assert_eq!(mt_run(), MT_OK);
/// assert_eq!(microthread::scheduler::runcount(), 1);
/// ```
#[no_mangle]
pub extern "C" fn mt_run() -> c_int {
    guard_switching(|| code(scheduler::run()))
}

/// Yields: the caller goes to the end of the run queue and the next tasklet runs
/// (`scheduler::schedule`). Returns `MT_OK`, `MT_EKILLED`, or an error delivered meanwhile.
///
/// ```
/// use microthread::ffi::*;
/// use std::ffi::c_void;
///
/// extern "C" fn bump(arg: *mut c_void) {
///     // SAFETY: the spawner passes a pointer to a live i32.
///     unsafe { *arg.cast::<i32>() += 1 };
/// }
/// let mut n = 0;
/// // SAFETY: `n` outlives the tasklet (it ends inside mt_schedule).
/// unsafe { mt_spawn(Some(bump), (&mut n as *mut i32).cast(), std::ptr::null_mut()) };
/// assert_eq!(mt_schedule(), MT_OK);
/// assert_eq!(n, 1);
/// ```
#[no_mangle]
pub extern "C" fn mt_schedule() -> c_int {
    guard_switching(|| code(scheduler::schedule()))
}

/// Pauses the caller (out of the run queue) and runs the next tasklet
/// (`scheduler::schedule_remove`); it continues when someone kills it or Rust code inserts
/// it. The main tasklet alone returns at once. Returns `MT_OK`, `MT_EKILLED`, or an error
/// delivered meanwhile.
///
/// ```
/// use microthread::ffi::*;
/// // Main alone: nothing else could run, so it returns at once.
/// assert_eq!(mt_schedule_remove(), MT_OK);
/// assert_eq!(mt_current_id(), mt_main_id());
/// ```
#[no_mangle]
pub extern "C" fn mt_schedule_remove() -> c_int {
    guard_switching(|| code(scheduler::schedule_remove()))
}

/// Sleeps `nanoseconds` while the thread's other tasklets run (`scheduler::sleep`). Returns
/// `MT_OK`, `MT_EKILLED`, or an error delivered meanwhile.
///
/// ```
/// use microthread::ffi::*;
/// let start = std::time::Instant::now();
/// assert_eq!(mt_sleep_ns(1_000_000), MT_OK);
/// assert!(start.elapsed() >= std::time::Duration::from_millis(1));
/// ```
#[no_mangle]
pub extern "C" fn mt_sleep_ns(nanoseconds: u64) -> c_int {
    guard_switching(|| code(scheduler::sleep(Duration::from_nanos(nanoseconds))))
}

/// The id of the running tasklet of this thread (0 only if an internal panic was caught).
///
/// ```
/// use microthread::ffi::*;
/// assert_eq!(mt_current_id(), mt_main_id(), "outside any tasklet: main");
/// assert_eq!(mt_current_id(), microthread::scheduler::current().id());
/// ```
#[no_mangle]
pub extern "C" fn mt_current_id() -> u64 {
    id_of(scheduler::current)
}

/// The id of this thread's main tasklet, the thread's own stack (0 only if an internal panic
/// was caught).
///
/// ```
/// use microthread::ffi::*;
/// assert_eq!(mt_main_id(), microthread::scheduler::main().id());
/// let other = std::thread::spawn(|| mt_main_id()).join().unwrap();
/// assert_ne!(other, mt_main_id(), "each thread has its own main tasklet");
/// ```
#[no_mangle]
pub extern "C" fn mt_main_id() -> u64 {
    id_of(scheduler::main)
}

fn id_of(which: fn() -> Tasklet) -> u64 {
    let mut id = 0;
    let _ = guard(|| {
        id = which().id();
        MT_OK
    });
    id
}
