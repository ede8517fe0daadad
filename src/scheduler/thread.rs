//! What crosses threads: each scheduler's mailbox, the sleep of a thread with nothing to run,
//! the process-wide count of threads that could still wake one, and [`RemoteTasklet`].
//!
//! A thread's ring is only ever touched by that thread. Another thread that must change it
//! (a channel partner made runnable, a remote insert, remove, run, kill or throw) posts an
//! operation to the owner's mailbox; the owner applies it at its next switch (one relaxed load
//! of a flag on every switch tells it there is mail; see `mail` for where exactly) or, if it
//! is asleep, wakes up for it. What other threads may *read* of a tasklet (for
//! [`RemoteTasklet`]'s queries) is one atomic byte its thread publishes at every change.
//!
//! A thread whose ring is empty while some of its tasklets wait for other threads first spins
//! briefly, watching the mail flag, then yields its CPU briefly (looking again after each
//! yield), then sleeps on a futex word of its own (no polling) until mail arrives; see `park`
//! for how long it spins and yields (adaptively, spinning never on more than half the CPUs,
//! neither when nobody could post) and why a post to a thread that runs, spins or yields
//! costs no system call, and many posts to a sleeper one.
//!
//! # Deadlock detection: what is and is not detected
//! A thread *counts as awake* from its first use of microthread (or from [`spawn_thread`],
//! before its closure runs) until its scheduler ends at thread exit, except while it sleeps
//! in a blocking microthread call or waits in [`JoinHandle::join`]. A blocking call goes to
//! sleep only if another thread counts as awake (it could still send something); if none
//! does, the call fails with [`Error::Deadlock`] instead, and when the last awake thread
//! stops counting (it ends, or starts a `join`), one sleeper is woken with that error (and
//! the next when that one ends, and so on). So tasklets on several threads that all wait for
//! each other, or for a thread that is joining them, get the error instead of hanging.
//!
//! Not detected:
//! - threads that have never used microthread are invisible (as Go ignores threads it did
//!   not start): one that will wake others through a channel or a [`RemoteTasklet`] should
//!   call [`init_thread`](super::init_thread) before they may block, or be started with
//!   [`spawn_thread`]; otherwise a sleeper may get a false `Deadlock`;
//! - a thread blocked in anything but a microthread blocking call or [`JoinHandle::join`]
//!   (a `std` lock, `std::thread::JoinHandle::join`, I/O, `std::thread::sleep`) counts as
//!   awake, so threads waiting for it sleep until it wakes them or ends;
//! - after its scheduler ended (in thread-local destructors that run after the teardown) a
//!   thread no longer counts, creates no tasklet and never sleeps: a call that would block
//!   fails with [`Error::SchedulerEnded`].

use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::ThreadId;

mod dump_mail;
mod exit;
mod fork;
mod join;
mod park;
mod remote;
pub(crate) use dump_mail::live_schedulers;
#[cfg(test)]
pub(crate) use dump_mail::while_registry_locked;
pub(crate) use exit::end_at_thread_exit_anyway;
pub use join::{spawn_thread, JoinHandle};
pub use remote::RemoteTasklet;

use crate::error::{Error, Result};

/// A reference to a tasklet that another thread may hold: only its reference count is ever
/// touched off its own thread, and everything about it that is not `Send` is cleared on its
/// own thread (see `Tasklet`'s `Drop`).
pub(crate) struct SendArc(pub(crate) crate::tasklet::Record);

// SAFETY: see the type's docs: other threads only move it and touch the atomic count.
unsafe impl Send for SendArc {}
// SAFETY: as above; no `&Inner` is ever handed out off its thread.
unsafe impl Sync for SendArc {}

/// An operation for a scheduler to apply on its own thread.
pub(crate) enum Mail {
    /// A channel partner on another thread completed this blocked tasklet's operation in the
    /// blocking episode numbered here (`Inner::block_epoch`); stale if that episode is over.
    Wake(SendArc, u64),
    Insert(SendArc),
    Kill(SendArc),
    Throw(SendArc, Error),
    /// A remote `remove()`: out of the run queue, unless it is the running tasklet or blocked.
    Remove(SendArc),
    /// A remote `run()`: into the run queue right after the running tasklet (after the
    /// targets of earlier remote runs that have not run yet), so that it runs next.
    Run(SendArc),
    /// A process-wide dump asks for this thread's dump (`scheduler::dump_all`): answered
    /// where the mail is read, by the owning thread, which alone may read its tasklets.
    Dump(Arc<super::dump::DumpRequest>),
}

struct Mailbox {
    mail: Vec<Mail>,
    /// False once the thread's scheduler has ended: nothing is delivered any more.
    open: bool,
    /// The owner sleeps in `Shared::sleep`, not counted awake (it sets this and uncounts
    /// itself under this lock, so whoever finds it set may count it awake again).
    sleeping: bool,
    /// Set by whoever wakes a sleeper and counts it awake again (so it is counted once).
    woken: bool,
    /// Wake up with the deadlock error: no awake thread is left to send anything.
    deadlock: bool,
    /// Threads blocked in [`JoinHandle::join`] of this thread, not counted awake meanwhile:
    /// counted awake again when this thread's scheduler ends (then their join returns soon).
    joiners: usize,
}

/// The part of a scheduler other threads can reach.
pub(crate) struct Shared {
    mailbox: Mutex<Mailbox>,
    /// Whether `mailbox.mail` may be non-empty; read on every switch.
    pub(crate) has_mail: AtomicBool,
    /// Where the owner waits for mail; unparked after every post (see `park`).
    parker: park::Parker,
    /// The scheduler has ended (see [`Shared::ended`]); set with the mailbox's `open` cleared,
    /// readable without the lock.
    ended: AtomicBool,
    /// The thread does not exist in this process: a forked child's copy of another thread's
    /// scheduler (see `fork`). Its mailbox lock may be held by the vanished thread forever.
    vanished: AtomicBool,
    /// The owning thread's id, recorded on the owning thread when first asked for there (a
    /// shared part may be made in advance, by the thread that spawns the owner); never changed.
    thread: OnceLock<ThreadId>,
    /// This thread's entry in the debugger's list of threads (`debug_root`), linked while
    /// the scheduler is in `REGISTRY.live`.
    pub(crate) debug: super::debug_root::DebugThread,
}

/// A post made by [`Shared::post_deferring_wake`]: wakes the owner (if it waits for this
/// mail) when dropped; holds the mail if its thread's scheduler had ended (dropped then too).
#[must_use = "dropping it makes the wake-up: drop it where the poster's locks are released"]
pub(crate) struct Posted {
    shared: Arc<Shared>,
    delivered: std::result::Result<Option<u32>, Mail>,
}

impl Drop for Posted {
    fn drop(&mut self) {
        if let Ok(Some(episode)) = self.delivered {
            self.shared.parker.unpark(episode);
        }
    }
}

/// Threads with a live scheduler that are neither asleep in `Shared::sleep` nor blocked in
/// [`JoinHandle::join`].
static AWAKE: AtomicUsize = AtomicUsize::new(0);

/// Every scheduler that has not ended (what a forked child must mark as gone, and where the
/// last awake thread looks for a sleeper to wake with the deadlock error).
struct Registry {
    live: Vec<Arc<Shared>>,
}

/// Lock order: this, then a mailbox. A thread going to sleep takes only its mailbox's lock.
static REGISTRY: Mutex<Registry> = Mutex::new(Registry { live: Vec::new() });

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Stops counting one thread awake; if it was the last, wakes one sleeper (that nobody else
/// is waking) with the deadlock error: nobody is left to wake it.
///
/// Sound without a list of sleepers kept under the registry lock: a sleeper uncounts itself
/// and marks itself sleeping under its own mailbox lock, which this scan takes too; so a
/// sleeper that uncounted itself before the count reached zero here is found sleeping, and
/// one that tries after sees the count too low to sleep (and gets `Deadlock` at once).
fn uncount_awake(registry: &Registry) {
    if AWAKE.fetch_sub(1, Ordering::SeqCst) == 1 {
        for s in registry.live.iter() {
            let mut m = lock(&s.mailbox);
            if m.sleeping && !m.woken {
                m.woken = true;
                m.deadlock = true;
                AWAKE.fetch_add(1, Ordering::SeqCst);
                let episode = s.parker.waiting_episode();
                drop(m);
                if let Some(e) = episode {
                    s.parker.unpark(e);
                }
                break;
            }
        }
    }
}

impl Shared {
    /// A new scheduler's shared part; counts its thread awake.
    pub(crate) fn new() -> Arc<Shared> {
        fork::install_handlers();
        let shared = Arc::new(Shared {
            mailbox: Mutex::new(Mailbox {
                mail: Vec::new(),
                open: true,
                sleeping: false,
                woken: false,
                deadlock: false,
                joiners: 0,
            }),
            has_mail: AtomicBool::new(false),
            parker: park::Parker::new(),
            ended: AtomicBool::new(false),
            vanished: AtomicBool::new(false),
            thread: OnceLock::new(),
            debug: super::debug_root::DebugThread::new(),
        });
        let mut registry = lock(&REGISTRY);
        AWAKE.fetch_add(1, Ordering::SeqCst);
        registry.live.push(shared.clone());
        super::debug_root::link(&shared.debug);
        shared
    }

    /// The owning thread's id, or `None` once its scheduler has ended (Stackless: -1). Only
    /// on the owning thread: records the id on first use. (Not when the scheduler starts, which
    /// may be late in the thread's exit, where `std::thread::current` is gone.)
    #[inline]
    pub(crate) fn thread_id_here(&self) -> Option<ThreadId> {
        if self.ended() {
            None
        } else {
            Some(*self.thread.get_or_init(|| std::thread::current().id()))
        }
    }

    /// The owning thread's id as recorded by [`Shared::thread_id_here`] (every
    /// `RemoteTasklet` is made on the owning thread, which records it), or `None` once its
    /// scheduler has ended.
    #[inline]
    pub(crate) fn thread_id(&self) -> Option<ThreadId> {
        if self.ended() {
            None
        } else {
            self.thread.get().copied()
        }
    }

    /// Whether the scheduler has ended: its thread tore it down (or could not register the
    /// teardown), or, in a forked child, the thread does not exist. Nothing is delivered to
    /// it any more; it creates no tasklet and never sleeps.
    #[inline]
    pub(crate) fn ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// Delivers `mail` to the owning thread, waking it if it sleeps (a system call only if
    /// it does, and only for the first of the posts it sleeps through). Gives the mail back
    /// if the thread's scheduler has ended.
    pub(crate) fn post(&self, mail: Mail) -> std::result::Result<(), Mail> {
        // After the lock is released, so that the woken owner does not block on it.
        if let Some(episode) = self.deliver(mail)? {
            self.parker.unpark(episode);
        }
        Ok(())
    }

    /// As [`Shared::post`], but the wake-up (the system call, if the owner sleeps) is made
    /// only when the returned [`Posted`] is dropped: a poster that holds a lock of its own (a
    /// channel's) drops it after releasing that lock, so that the other users of the lock
    /// never wait through the system call, nor the woken owner on the lock.
    pub(crate) fn post_deferring_wake(self: Arc<Self>, mail: Mail) -> Posted {
        let delivered = self.deliver(mail);
        Posted {
            shared: self,
            delivered,
        }
    }

    /// The mailbox half of a post: the mail goes in, and a sleeping owner is counted awake.
    /// Returns the episode to unpark (see `park`) if the owner waits or is about to.
    fn deliver(&self, mail: Mail) -> std::result::Result<Option<u32>, Mail> {
        // Checked before the lock: in a forked child, a vanished thread may hold it forever.
        if self.ended() {
            return Err(mail);
        }
        let mut m = lock(&self.mailbox);
        if !m.open {
            return Err(mail);
        }
        m.mail.push(mail);
        self.has_mail.store(true, Ordering::Release);
        if m.sleeping && !m.woken {
            // Counted awake again here, before we could block and see nobody awake.
            m.woken = true;
            AWAKE.fetch_add(1, Ordering::SeqCst);
        }
        Ok(self.parker.waiting_episode())
    }

    /// Takes all mail.
    pub(crate) fn take_mail(&self) -> Vec<Mail> {
        let mut m = lock(&self.mailbox);
        self.has_mail.store(false, Ordering::Relaxed);
        std::mem::take(&mut m.mail)
    }

    /// Sleeps until mail arrives. Returns `Err(Deadlock)` without sleeping if no other thread
    /// is awake, or when woken because the last awake thread ended; `Err(SchedulerEnded)`
    /// without sleeping (or touching the awake count) once the scheduler has ended, since no
    /// mail can arrive any more.
    pub(crate) fn sleep(&self) -> Result<()> {
        if self.spin_for_mail() {
            return Ok(());
        }
        let mut episode = self.parker.prepare();
        {
            let mut m = lock(&self.mailbox);
            if !m.open {
                self.parker.cancel();
                return Err(Error::SchedulerEnded);
            }
            if !m.mail.is_empty() {
                self.parker.cancel();
                return Ok(());
            }
            // Marked asleep under the lock under which we stop counting ourselves awake, so
            // that a post from now on counts us awake again (see `post`), and the last awake
            // thread finds us (see `uncount_awake`).
            let uncounted = AWAKE.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |a| {
                (a > 1).then(|| a - 1)
            });
            if uncounted.is_err() {
                self.parker.cancel();
                return Err(Error::Deadlock);
            }
            m.sleeping = true;
            m.woken = false;
        }
        let (counted_by_waker, deadlock) = loop {
            self.parker.wait(episode, None);
            episode = self.parker.prepare();
            let mut m = lock(&self.mailbox);
            if !m.mail.is_empty() || m.deadlock || m.woken {
                self.parker.cancel();
                m.sleeping = false;
                break (
                    std::mem::take(&mut m.woken),
                    std::mem::take(&mut m.deadlock),
                );
            }
        };
        if !counted_by_waker {
            AWAKE.fetch_add(1, Ordering::SeqCst);
        }
        if deadlock {
            Err(Error::Deadlock)
        } else {
            Ok(())
        }
    }

    /// Sleeps until `deadline` or until mail arrives, whichever comes first. Unlike
    /// [`Shared::sleep`] the thread keeps counting as awake: it wakes by itself (a sleeping
    /// tasklet of it always does), so no thread waiting for it may report a deadlock.
    pub(crate) fn sleep_until(&self, deadline: std::time::Instant) {
        if self.ended() {
            return;
        }
        let _slack = TightTimerSlack::new();
        loop {
            let episode = self.parker.prepare();
            {
                let m = lock(&self.mailbox);
                if !m.open || !m.mail.is_empty() || std::time::Instant::now() >= deadline {
                    self.parker.cancel();
                    return;
                }
            }
            self.parker.wait(episode, Some(deadline));
        }
    }

    /// Before [`Shared::sleep`]: spins and yields briefly for mail that may be on its way
    /// (see `park` for how long, and when not at all); true if some came. Not at all if no other thread
    /// counts as awake (no mail can come: `sleep` reports the deadlock at once).
    fn spin_for_mail(&self) -> bool {
        let awake = AWAKE.load(Ordering::Relaxed);
        if awake <= 1 {
            return false;
        }
        self.parker
            .spin(awake, || self.has_mail.load(Ordering::Acquire))
    }

    /// The owning thread's scheduler has ended: close the mailbox, hand back what it held,
    /// count the threads joining this one awake again, stop counting this one, and if no
    /// thread is left awake, wake a sleeper with the deadlock error. Only the first call
    /// does anything.
    pub(crate) fn close(&self) -> Vec<Mail> {
        let mut registry = lock(&REGISTRY);
        let (left, joiners) = {
            let mut m = lock(&self.mailbox);
            if !m.open {
                return Vec::new();
            }
            m.open = false;
            self.ended.store(true, Ordering::Release);
            (std::mem::take(&mut m.mail), std::mem::take(&mut m.joiners))
        };
        if let Some(i) = registry.live.iter().position(|x| ptr::eq(&**x, self)) {
            registry.live.swap_remove(i);
            super::debug_root::unlink(&self.debug);
        }
        AWAKE.fetch_add(joiners, Ordering::SeqCst);
        uncount_awake(&registry);
        left
    }
}

/// Lowers the calling thread's timer slack (Linux: by default timed waits may end up to
/// 50 µs late, which alone would eat half of a sleeper's latency budget) to 1 µs for a timed
/// wait, and restores it afterwards. Three system calls, only on the path that is about to
/// sleep anyway.
struct TightTimerSlack(#[allow(dead_code)] libc::c_ulong);

impl TightTimerSlack {
    fn new() -> TightTimerSlack {
        #[cfg(target_os = "linux")]
        // SAFETY: PR_GET/SET_TIMERSLACK read and set a number of the calling thread only.
        unsafe {
            let old = libc::prctl(libc::PR_GET_TIMERSLACK, 0, 0, 0, 0);
            if old > 1000 {
                libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong, 0, 0, 0);
                return TightTimerSlack(old as libc::c_ulong);
            }
        }
        TightTimerSlack(0)
    }
}

impl Drop for TightTimerSlack {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if self.0 != 0 {
            // SAFETY: as in `new`: restores the thread's own setting.
            unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, self.0, 0, 0, 0) };
        }
    }
}

/// Whether the thread whose identity (see `thread_identity`) is `identity` does not exist in
/// this process: it was another thread of the parent of this forked child.
///
/// # Safety
/// - `identity` must be the address of a scheduler (as channel owners are).
pub(crate) unsafe fn identity_vanished(identity: usize) -> bool {
    // SAFETY: schedulers are leaked, never freed (caller vouches that this is one).
    let s = unsafe { &*(identity as *const super::Scheduler) };
    s.shared.vanished.load(Ordering::Acquire)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deferred_post_wakes_its_waiting_owner_only_when_dropped() {
        let shared = Shared::new();
        let t = crate::Tasklet::new(|| ()).unwrap();
        // The owner announces a wait (as `sleep` does before its last look).
        let episode = shared.parker.prepare();
        let posted = shared.clone().post_deferring_wake(Mail::Insert(SendArc(
            crate::tasklet::Record::clone(&t.inner),
        )));
        assert!(shared.has_mail.load(Ordering::Relaxed), "delivered at once");
        assert_eq!(
            shared.parker.waiting_episode(),
            Some(episode),
            "not woken yet"
        );
        drop(posted);
        assert_eq!(shared.parker.waiting_episode(), None, "woken by the drop");
        // Ends the test's scheduler part: the undelivered Insert comes back, dropped here.
        drop(shared.close());
    }
}
