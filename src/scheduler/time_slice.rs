//! Wall-clock time slices ([`RunOptions::slice`](super::RunOptions::slice)): the process's
//! one slice timer thread, and the two words of each thread's preemption state it writes.
//!
//! # How a slice fires
//! A thread with an active slice has an *armed* deadline: nanoseconds since a process-wide
//! epoch, in an `AtomicU64` of its preemption state (`SliceFlags::deadline`). One timer
//! thread per process (started the first time any thread arms a slice) sleeps on a condition
//! variable until the earliest armed deadline of all threads. When a deadline passes it
//! marks it `FIRED` (a compare-and-swap, so a deadline the owner moved meanwhile is left
//! alone) and stores 0 into that thread's tick *watermark*, the word every
//! [`tick`](super::tick) compares its counter with, with one relaxed load. So the next safe
//! point of whatever runs on that thread takes the interrupt path, which consumes the
//! `FIRED` mark and interrupts (or defers) as for a used-up tick budget. A safe point pays
//! nothing for slices: the load it did anyway just sees a smaller number. The owner also
//! fires its own slice from its safe points, without the timer (see `slice_clock`): the
//! timer is the backstop for code whose safe points grow far apart.
//!
//! The owner restarts its slice at every real switch (unless `total`): it reads the clock
//! (about 20 ns, only while a slice is active) and stores the new deadline, without a lock
//! and without waking the timer, because a restarted deadline only moves later. The timer,
//! after firing a slice, looks again one slice length later, and sleeps until the new
//! deadline from there. A fire that races with a restart (it hit the old deadline just as
//! the owner stored the new one) leaves at most one spurious visit to the interrupt path,
//! which sees no reason to interrupt and restores the watermark.
//!
//! Every watermark store of the owner is followed by a check of the `FIRED` mark (both
//! sequentially consistent, as are the timer's two stores), so a fire is never lost under a
//! store the owner made just after it.
//!
//! # Soundness
//! The two words live in the owner's thread-local storage. The timer touches them only
//! while the thread is *registered*, under the registry's lock; a thread unregisters (under
//! the same lock) when its slice ends (its interrupt watchdog leaves) and, whatever state it
//! is in, from a thread-local destructor at thread exit, before its thread-local storage is
//! freed. After a `fork` the child has no timer thread: an atfork handler (which holds the
//! registry's lock across the fork, so the child's copy is unlocked and whole) keeps only
//! the forking thread's registration and marks the timer as not running; the child's next
//! slice restart or arm starts a new one.
//!
//! No timer thread exists until a slice is first armed, and while no thread has an armed
//! slice it waits on its condition variable without a timeout: no wake-ups, no signals.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// A deadline that is not armed.
pub(super) const DISARMED: u64 = u64::MAX;
/// A deadline the timer found passed; the owner's next safe point consumes it.
pub(super) const FIRED: u64 = 0;

/// The words of a thread's preemption state that the timer thread writes.
pub(super) struct SliceFlags {
    /// The tick counter value at which a safe point takes the interrupt path (`u64::MAX`:
    /// never). Read by every tick with one relaxed load; the timer stores 0.
    pub(super) watermark: AtomicU64,
    /// The slice's deadline in `now_ns` units, or [`FIRED`] / [`DISARMED`].
    pub(super) deadline: AtomicU64,
}

impl SliceFlags {
    pub(super) const fn new() -> SliceFlags {
        SliceFlags {
            watermark: AtomicU64::new(u64::MAX),
            deadline: AtomicU64::new(DISARMED),
        }
    }

    /// The owner sets its watermark to `value`, then re-applies a fire that may have
    /// happened meanwhile (see the module docs).
    #[inline]
    pub(super) fn set_watermark(&self, value: u64) {
        self.watermark.store(value, Ordering::SeqCst);
        if self.deadline.load(Ordering::SeqCst) == FIRED {
            self.watermark.store(0, Ordering::SeqCst);
        }
    }

    /// The owner's safe point consumes a fire: true if the slice had fired.
    #[inline]
    pub(super) fn take_fired(&self) -> bool {
        self.deadline.load(Ordering::SeqCst) == FIRED
            && self
                .deadline
                .compare_exchange(FIRED, DISARMED, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
    }

    /// The owner starts a new slice of `length_ns` from now (at a real switch), and returns
    /// that now. The timer is not woken: the deadline only moves later.
    #[inline]
    pub(super) fn restart(&self, length_ns: u64) -> u64 {
        let now = now_ns();
        self.deadline
            .store(now.saturating_add(length_ns), Ordering::SeqCst);
        if !TIMER_RUNNING.load(Ordering::Relaxed) {
            // Only in a forked child whose timer thread stayed in the parent.
            restart_timer_after_fork();
        }
        now
    }
}

/// Nanoseconds since the process's slice epoch, plus one (never [`FIRED`]).
pub(super) fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let e = *EPOCH.get_or_init(Instant::now);
    (e.elapsed().as_nanos() as u64)
        .saturating_add(1)
        .min(DISARMED - 1)
}

/// A registered thread: its flags, and its slice length (how soon to look again after a
/// fire).
struct Armed {
    flags: *const SliceFlags,
    length_ns: u64,
}

// SAFETY: `flags` points to atomics in a live thread's thread-local storage; it is only
// dereferenced under the registry's lock, while the entry is registered, and the thread
// unregisters under that lock before its thread-local storage goes (see the module docs).
unsafe impl Send for Armed {}

struct Registry {
    armed: Vec<Armed>,
    /// Whether a timer thread serves this registry (false in a forked child at first).
    running: bool,
    /// When the timer thread will look again (`now_ns` units; `u64::MAX`: not before it is
    /// woken). Written by the timer before it waits, read by `arm`, both under the lock.
    wakes_at: u64,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    armed: Vec::new(),
    running: false,
    wakes_at: u64::MAX,
});
static WAKE: Condvar = Condvar::new();
/// `Registry::running`, readable without the lock (checked at every slice restart).
static TIMER_RUNNING: AtomicBool = AtomicBool::new(false);

fn lock() -> MutexGuard<'static, Registry> {
    // Nothing panics while holding it; a poisoned lock is still consistent.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Unregisters the thread at its exit, whatever it was doing.
struct UnregisterAtExit;

impl Drop for UnregisterAtExit {
    fn drop(&mut self) {
        // SAFETY: this thread's own flags, valid until the thread is gone (we run before).
        disarm(unsafe { &*super::preempt::own_slice_flags() });
    }
}

thread_local! {
    static UNREGISTER_AT_EXIT: UnregisterAtExit = const { UnregisterAtExit };
}

/// Everything that can refuse a slice, checked before `run_with` changes anything: the exit
/// hook must be registrable (not while this thread's thread-locals are being destroyed), and
/// the timer thread must be running (started now if not).
///
/// # Errors
/// [`Error::SchedulerEnded`] while the thread's thread-locals are being destroyed.
///
/// # Panics
/// If the timer thread cannot be started (as `std::thread::spawn`).
pub(super) fn prepare() -> Result<()> {
    UNREGISTER_AT_EXIT
        .try_with(|_| ())
        .map_err(|_| Error::SchedulerEnded)?;
    if !TIMER_RUNNING.load(Ordering::Acquire) {
        start_timer(&mut lock());
    }
    Ok(())
}

fn start_timer(r: &mut Registry) {
    if r.running {
        return;
    }
    install_fork_handlers();
    std::thread::Builder::new()
        .name("microthread-slices".into())
        .spawn(timer_main)
        .expect("microthread: cannot start the time-slice timer thread");
    r.running = true;
    TIMER_RUNNING.store(true, Ordering::Release);
}

#[cold]
#[inline(never)]
fn restart_timer_after_fork() {
    start_timer(&mut lock());
    WAKE.notify_one();
}

/// Tests only: while set, the timer thread fires nothing (it still wakes and looks), so a
/// test can see the owners' own looks at the clock fire slices alone (see `slice_clock`).
#[cfg(test)]
pub(super) static TIMER_PAUSED: AtomicBool = AtomicBool::new(false);

/// Arms `flags` with a slice of `length` from now and registers the thread; returns that now.
/// Wakes the timer only if it would otherwise look later than the new deadline: a thread
/// that runs one slice after another (re-arming just after its last one ended, when the
/// timer is about to look anyway) makes no system call for it.
pub(super) fn arm(flags: &SliceFlags, length: Duration) -> u64 {
    let length_ns = u64::try_from(length.as_nanos()).unwrap_or(u64::MAX / 2);
    let now = now_ns();
    let deadline = now.saturating_add(length_ns).min(DISARMED - 1);
    flags.deadline.store(deadline, Ordering::SeqCst);
    let wake = {
        let mut r = lock();
        let me = flags as *const SliceFlags;
        r.armed.retain(|a| a.flags != me);
        r.armed.push(Armed {
            flags: me,
            length_ns: length_ns.max(1),
        });
        start_timer(&mut r);
        r.wakes_at > deadline
    };
    if wake {
        WAKE.notify_one();
    }
    now
}

/// Unregisters the thread: from now on the timer never touches `flags`.
pub(super) fn disarm(flags: &SliceFlags) {
    let me = flags as *const SliceFlags;
    {
        let mut r = lock();
        r.armed.retain(|a| a.flags != me);
    }
    flags.deadline.store(DISARMED, Ordering::SeqCst);
}

/// The timer thread: fires passed deadlines, sleeps until the earliest armed one.
fn timer_main() {
    #[cfg(target_os = "linux")]
    // SAFETY: sets a number of the calling thread only: wake-ups within 1 µs of the deadline
    // instead of the default 50 µs slack.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong, 0, 0, 0);
    }
    let mut r = lock();
    loop {
        if r.armed.is_empty() {
            r.wakes_at = u64::MAX;
            r = WAKE.wait(r).unwrap_or_else(|e| e.into_inner());
            continue;
        }
        let now = now_ns();
        let mut next = u64::MAX;
        for a in &r.armed {
            // SAFETY: registered, so its thread is alive (see `Armed`).
            let f = unsafe { &*a.flags };
            let d = f.deadline.load(Ordering::SeqCst);
            if d == FIRED || d == DISARMED {
                // Look again one slice later: the owner restarts it without waking us.
                next = next.min(now.saturating_add(a.length_ns));
            } else if d <= now {
                #[cfg(test)]
                if TIMER_PAUSED.load(Ordering::SeqCst) {
                    next = next.min(now.saturating_add(a.length_ns));
                    continue;
                }
                if f.deadline
                    .compare_exchange(d, FIRED, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
                {
                    f.watermark.store(0, Ordering::SeqCst);
                }
                next = next.min(now.saturating_add(a.length_ns));
            } else {
                next = next.min(d);
            }
        }
        r.wakes_at = next;
        let wait = Duration::from_nanos(next.saturating_sub(now_ns()));
        r = WAKE
            .wait_timeout(r, wait)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

/// The registry lock the forking thread holds from `prepare` to `parent` / `child`.
struct Held(UnsafeCell<Option<MutexGuard<'static, Registry>>>);

// SAFETY: only the atfork handlers touch it, on the forking thread, between `prepare` and
// `parent`/`child`; concurrent forks are serialized by the registry lock taken in `prepare`.
unsafe impl Sync for Held {}

static HELD: Held = Held(UnsafeCell::new(None));

fn install_fork_handlers() {
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    if INSTALLED.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: three `extern "C" fn()` handlers that live for the whole process.
    let rc = unsafe { libc::pthread_atfork(Some(prepare_fork), Some(parent), Some(child)) };
    if rc != 0 {
        eprintln!(
            "microthread: pthread_atfork failed ({}); a forked child may hang in its first \
             time-sliced run_with",
            std::io::Error::from_raw_os_error(rc)
        );
    }
}

extern "C" fn prepare_fork() {
    let r = lock();
    // SAFETY: see `Held`.
    unsafe { *HELD.0.get() = Some(r) };
}

extern "C" fn parent() {
    // SAFETY: see `Held`; `prepare_fork` ran on this thread just before.
    drop(unsafe { (*HELD.0.get()).take() });
}

extern "C" fn child() {
    // SAFETY: see `Held`; the child is this one thread.
    let Some(mut r) = (unsafe { (*HELD.0.get()).take() }) else {
        return;
    };
    // The other threads vanished; so did the timer thread.
    let me = super::preempt::own_slice_flags();
    r.armed.retain(|a| a.flags == me);
    r.running = false;
    r.wakes_at = u64::MAX;
    TIMER_RUNNING.store(false, Ordering::Release);
    drop(r);
}
