//! How a thread with nothing to run waits for mail: a brief spin whose length adapts to how
//! often spinning paid off, then a futex wait on a word of its own ([`Parker`]).
//!
//! # The futex word
//! The owner makes its word odd (a new *episode*), then checks under the mailbox lock whether
//! it must wait at all, then waits on the word for as long as it still reads that value. A
//! poster changes the mailbox under that lock and reads the word there; if it was odd, the
//! poster, after releasing the lock, [`Parker::unpark`]s that episode: only if the word still
//! reads it does it move the word on and make the `FUTEX_WAKE` system call. No wake is lost:
//! if the owner's check missed the poster's change, the owner's odd word was stored before
//! the poster took the lock, so the poster reads it. What this buys:
//! - a post to a thread that runs or spins reads an even word: no system call;
//! - many posts to one sleeper make one system call (the first moves the word on; the
//!   others find it moved): wake-ups are batched;
//! - a late waker (one the owner already saw, before it went to sleep again) finds a new
//!   episode and leaves it alone: no spurious wake-up, however late the unpark comes (a
//!   channel unparks after releasing its own lock);
//! - the sleeper is woken after the poster released the mailbox lock, so it never wakes up
//!   only to block on that lock (as a condition variable notified under its lock can).
//!
//! # The spin
//! Before a thread sleeps for mail it watches its mail flag for a while: a partner that
//! answers at once (a ping-pong, a worker pool with tiny jobs) is then seen without a system
//! call on either side. It spins only where that can pay, so that a waiting thread never
//! burns a core that another could use:
//! - only while another thread counts as awake that is not itself spinning (someone could
//!   post), while those threads leave a CPU idle (fewer of them than CPUs: otherwise the
//!   spin would take a CPU from one of them, perhaps the one that would post), and while
//!   at most half of the CPUs (at least one) are spinning: on two cores one thread spins and
//!   the others sleep at once, never both cores;
//! - for at most the thread's *spin budget*: [`SPIN_MAX`] at first, halved after every spin
//!   that ended in sleep (down to [`SPIN_MIN`]), raised again to four times the wait of a
//!   spin that saw mail (up to [`SPIN_MAX`]). On a loaded machine, where the partner is not
//!   running when we spin, the budget soon sits at [`SPIN_MIN`]; between two idle cores it
//!   stays long enough for the partner's answer;
//! - with `spin_loop` hints only, never `sched_yield` (on a loaded machine a yield gives away
//!   a whole time slice, milliseconds).

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The longest spin: a few cross-thread round trips (one is about a microsecond between two
/// cores), far below what a sleep and wake cost (tens of microseconds on a loaded VM).
pub(super) const SPIN_MAX: Duration = Duration::from_micros(20);
/// The shortest spin, to which a thread whose spins keep failing comes down: about one
/// cross-thread answer, so that it notices when spinning would pay again.
pub(super) const SPIN_MIN: Duration = Duration::from_micros(1);

/// Threads spinning for mail now (in [`Parker::spin`]).
static SPINNING: AtomicUsize = AtomicUsize::new(0);

/// The bit of the word that says the owner waits on it, or is about to after one last look
/// at its mailbox. Every change of the word adds one, so each waiting episode has an odd
/// value of its own (see [`Parker::unpark`]); an even word: the owner runs or spins.
const PARKED: u32 = 1;

/// A thread's futex word and spin budget; see the module docs.
pub(super) struct Parker {
    word: AtomicU32,
    /// The owner's spin budget in nanoseconds; only the owner touches it.
    budget_ns: AtomicU32,
}

impl Parker {
    pub(super) const fn new() -> Parker {
        Parker {
            word: AtomicU32::new(0),
            budget_ns: AtomicU32::new(SPIN_MAX.as_nanos() as u32),
        }
    }

    /// Owner: spins while it may (see the module docs) until `ready()`; true if it became
    /// ready. `awake` is the number of threads counted awake, this one included.
    #[inline(never)]
    pub(super) fn spin(&self, awake: usize, ready: impl Fn() -> bool) -> bool {
        let spinning = SPINNING.fetch_add(1, Ordering::Relaxed) + 1;
        let ready = self.spin_counted(awake, spinning, ready);
        SPINNING.fetch_sub(1, Ordering::Relaxed);
        ready
    }

    fn spin_counted(&self, awake: usize, spinning: usize, ready: impl Fn() -> bool) -> bool {
        if spinning > max_spinners() || awake <= spinning || awake - spinning >= cpus() {
            return false;
        }
        let budget = self.budget_ns.load(Ordering::Relaxed);
        let start = Instant::now();
        let mut hints = 1u32;
        loop {
            if ready() {
                let waited = start.elapsed().as_nanos().min(u32::MAX as u128) as u32;
                let grown = waited.saturating_mul(4).min(SPIN_MAX.as_nanos() as u32);
                self.budget_ns.store(budget.max(grown), Ordering::Relaxed);
                return true;
            }
            if start.elapsed().as_nanos() >= u128::from(budget) {
                let shrunk = (budget / 2).max(SPIN_MIN.as_nanos() as u32);
                self.budget_ns.store(shrunk, Ordering::Relaxed);
                return false;
            }
            for _ in 0..hints {
                std::hint::spin_loop();
            }
            hints = (hints * 2).min(16);
        }
    }

    /// Owner: announces a wait, and returns the episode it will wait in. Then it must look
    /// (under the mailbox lock) whether it may wait, and either [`Parker::wait`] or
    /// [`Parker::cancel`].
    #[inline]
    pub(super) fn prepare(&self) -> u32 {
        // Even (unparked) becomes the next odd value, a new episode; odd stays.
        self.word.fetch_or(PARKED, Ordering::SeqCst) | PARKED
    }

    /// Owner: it will not wait after all (or has stopped waiting).
    #[inline]
    pub(super) fn cancel(&self) {
        let w = self.word.load(Ordering::Relaxed);
        if w & PARKED != 0 {
            // If this fails a waker just unparked us (the word is even now): the same.
            let _ = self.word.compare_exchange(
                w,
                w.wrapping_add(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// Owner, after [`Parker::prepare`] returned `episode` and a look that found nothing:
    /// waits until unparked, or until `deadline`, or spuriously (the caller looks again,
    /// after another `prepare`).
    pub(super) fn wait(&self, episode: u32, deadline: Option<Instant>) {
        let timeout = match deadline {
            None => None,
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return,
            },
        };
        futex_wait(&self.word, episode, timeout);
    }

    /// A waker, under the mailbox lock, after changing what the owner looks at: the episode
    /// the owner waits in (or is about to), if any, for [`Parker::unpark`] after the lock.
    #[inline]
    pub(super) fn waiting_episode(&self) -> Option<u32> {
        let w = self.word.load(Ordering::SeqCst);
        (w & PARKED != 0).then_some(w)
    }

    /// Wakes the owner from `episode` if it still waits in it: a later episode (the owner
    /// saw this waker's mail and went to sleep again since) is left alone, so no wake-up is
    /// ever spurious, and of all the wakers of one episode only the first makes the system
    /// call.
    #[inline]
    pub(super) fn unpark(&self, episode: u32) {
        if self
            .word
            .compare_exchange(
                episode,
                episode.wrapping_add(1),
                Ordering::SeqCst,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            futex_wake(&self.word);
        }
    }
}

/// In a forked child: the threads that were spinning do not exist here.
pub(super) fn forget_spinners() {
    SPINNING.store(0, Ordering::Relaxed);
}

/// How many threads may spin at once: half the CPUs, at least one.
fn max_spinners() -> usize {
    (cpus() / 2).max(1)
}

/// Waits while `word` reads `expected`, at most `timeout`; may return spuriously.
fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, aligned 32-bit atomic; `ts_ptr` is null or points to a
    // timespec that outlives the call. FUTEX_WAIT only reads them; any failure (EAGAIN: the
    // word changed, EINTR, ETIMEDOUT) is a return the caller handles by looking again.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            ts_ptr,
        );
    }
}

/// Wakes one waiter on `word`.
fn futex_wake(word: &AtomicU32) {
    // SAFETY: `word` is a live, aligned 32-bit atomic; FUTEX_WAKE only names its address.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
        );
    }
}

/// The CPUs this process may run on (asked once).
fn cpus() -> usize {
    static CPUS: OnceLock<usize> = OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
