//! How a thread with nothing to run waits for mail: a brief spin, then a brief run of
//! yields, each as long as it recently paid off, then a futex wait on a word of its own
//! ([`Parker`]).
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
//!
//! # The yields
//! Where the spin may not run (more threads awake than CPUs, or enough spinners already) or
//! saw nothing, the thread still does not sleep at once: it gives its CPU to whoever else
//! can run (`sched_yield`) and looks at its mail flag after each yield ([`Parker::yield_for`]).
//! That is for a pool with more threads than CPUs: a worker's next job comes after the other
//! workers have taken theirs, a few handovers later, and a worker that yields meanwhile lets
//! them run and then needs no wake-up (two system calls and a trip through the idle loop,
//! tens of microseconds on a VM whose idle virtual CPU must be woken), only its turn on a
//! CPU. Bounded so as never to burn a CPU for nothing:
//! - only while some thread counted awake neither spins nor yields (someone could post);
//! - never under valgrind, which runs one thread at a time: there a yield hands valgrind's
//!   lock to the other threads for their whole slice (milliseconds of wall time, each), and
//!   the yielding threads of a pool were measured using about 100 ms of CPU each in a
//!   200 ms idle wait;
//! - for at most the thread's *yield budget*: [`YIELD_MAX`] at first, halved after every
//!   run of yields that ended in sleep, and zero once below [`YIELD_MIN`]: then the thread
//!   sleeps at once, and tries one short run of yields only once in
//!   [`YIELD_RETRY_EVERY`] waits (to notice when yielding would pay again); raised to four
//!   times the wait of a run that saw mail (up to [`YIELD_MAX`]). A thread whose partners
//!   answer late (an idle pool) soon sleeps at once: its yields cost it about one [`YIELD_MIN`]
//!   in [`YIELD_RETRY_EVERY`] waits.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The longest spin: a few cross-thread round trips (one is about a microsecond between two
/// cores), far below what a sleep and wake cost (tens of microseconds on a loaded VM).
pub(super) const SPIN_MAX: Duration = Duration::from_micros(20);
/// The shortest spin, to which a thread whose spins keep failing comes down: about one
/// cross-thread answer, so that it notices when spinning would pay again.
pub(super) const SPIN_MIN: Duration = Duration::from_micros(1);

/// The longest run of yields for mail before a thread sleeps: a few handovers of a pool
/// with more threads than CPUs.
pub(super) const YIELD_MAX: Duration = Duration::from_micros(50);
/// The shortest run of yields: below it the yield budget falls to zero (no yields).
pub(super) const YIELD_MIN: Duration = Duration::from_micros(2);
/// With a zero yield budget, one wait in this many makes a run of [`YIELD_MIN`] (to notice
/// when yielding would pay again).
const YIELD_RETRY_EVERY: u32 = 8;

/// Threads spinning for mail now (in [`Parker::spin`]).
static SPINNING: AtomicUsize = AtomicUsize::new(0);
/// Threads yielding for mail now (in [`Parker::yield_for`]).
static YIELDING: AtomicUsize = AtomicUsize::new(0);

/// The bit of the word that says the owner waits on it, or is about to after one last look
/// at its mailbox. Every change of the word adds one, so each waiting episode has an odd
/// value of its own (see [`Parker::unpark`]); an even word: the owner runs or spins.
const PARKED: u32 = 1;

/// A thread's futex word and spin budget; see the module docs.
pub(super) struct Parker {
    word: AtomicU32,
    /// The owner's spin budget in nanoseconds; only the owner touches it.
    budget_ns: AtomicU32,
    /// The owner's yield budget in nanoseconds (see [`Parker::yield_for`]); owner only.
    yield_budget_ns: AtomicU32,
    /// Waits since the yield budget fell to zero; owner only.
    yield_retry: AtomicU32,
}

impl Parker {
    pub(super) const fn new() -> Parker {
        Parker {
            word: AtomicU32::new(0),
            budget_ns: AtomicU32::new(SPIN_MAX.as_nanos() as u32),
            yield_budget_ns: AtomicU32::new(YIELD_MAX.as_nanos() as u32),
            yield_retry: AtomicU32::new(0),
        }
    }

    /// Owner: spins, then yields, while it may (see the module docs) until `ready()`; true
    /// if it became ready. `awake` is the number of threads counted awake, this one included.
    #[inline(never)]
    pub(super) fn spin(&self, awake: usize, ready: impl Fn() -> bool) -> bool {
        let spinning = SPINNING.fetch_add(1, Ordering::Relaxed) + 1;
        let became_ready = self.spin_counted(awake, spinning, &ready);
        SPINNING.fetch_sub(1, Ordering::Relaxed);
        if became_ready {
            return true;
        }
        let yielding = YIELDING.fetch_add(1, Ordering::Relaxed) + 1;
        // Only while someone counted awake neither spins nor yields (someone could post).
        let worker_left = awake > yielding + SPINNING.load(Ordering::Relaxed);
        let became_ready =
            worker_left && !crate::valgrind::running_on_valgrind() && { self.yield_for(&ready) };
        YIELDING.fetch_sub(1, Ordering::Relaxed);
        became_ready
    }

    /// Owner, after a spin that was not allowed or saw nothing: gives its CPU to whoever
    /// else can run (`sched_yield`) and looks again, for at most its yield budget (see the
    /// module docs); true if it became ready.
    fn yield_for(&self, ready: &impl Fn() -> bool) -> bool {
        let budget = self.yield_budget_ns.load(Ordering::Relaxed);
        if budget == 0 {
            // Grown back slowly: one in a few waits tries again.
            let tries = self.yield_retry.fetch_add(1, Ordering::Relaxed);
            if tries % YIELD_RETRY_EVERY != YIELD_RETRY_EVERY - 1 {
                return false;
            }
        }
        let budget = budget.max(YIELD_MIN.as_nanos() as u32);
        let start = Instant::now();
        loop {
            std::thread::yield_now();
            if ready() {
                let waited = start.elapsed().as_nanos().min(u32::MAX as u128) as u32;
                let grown = waited.saturating_mul(4).min(YIELD_MAX.as_nanos() as u32);
                self.yield_budget_ns
                    .store(budget.max(grown), Ordering::Relaxed);
                return true;
            }
            if start.elapsed().as_nanos() >= u128::from(budget) {
                let shrunk = budget / 2;
                let shrunk = if shrunk < YIELD_MIN.as_nanos() as u32 {
                    0
                } else {
                    shrunk
                };
                self.yield_budget_ns.store(shrunk, Ordering::Relaxed);
                return false;
            }
        }
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
    YIELDING.store(0, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// CPU time of the calling thread.
    fn thread_cpu() -> Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec through a valid out-pointer.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        assert_eq!(rc, 0);
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }

    /// So many threads counted awake that the spin may not run (more of them than CPUs):
    /// only the yields look at the mail flag.
    const CROWDED: usize = 1_000;

    #[test]
    fn waits_that_see_nothing_bring_the_yield_budget_to_zero_and_one_that_sees_mail_back() {
        let p = Parker::new();
        if crate::valgrind::running_on_valgrind() {
            // No yields there: a crowded wait (no spin either) never looks.
            assert!(!p.spin(CROWDED, || true));
            return;
        }
        for _ in 0..8 {
            assert!(!p.spin(CROWDED, || false));
        }
        // 50 µs halved six times is below YIELD_MIN: zero after at most six failures.
        assert_eq!(p.yield_budget_ns.load(Ordering::Relaxed), 0);
        // Then most waits sleep at once (no look), one in YIELD_RETRY_EVERY tries again.
        let mut looked = 0;
        for _ in 0..YIELD_RETRY_EVERY {
            let looks = std::cell::Cell::new(0u32);
            assert!(!p.spin(CROWDED, || {
                looks.set(looks.get() + 1);
                false
            }));
            looked += u32::from(looks.get() > 0);
        }
        assert_eq!(looked, 1);
        // A retry that sees mail raises the budget again.
        let ready = (0..YIELD_RETRY_EVERY).any(|_| p.spin(CROWDED, || true));
        assert!(ready);
        assert!(p.yield_budget_ns.load(Ordering::Relaxed) >= YIELD_MIN.as_nanos() as u32);
    }

    #[test]
    fn nobody_else_awake_means_no_yields() {
        let p = Parker::new();
        // `awake` 1: only this thread; nobody could post. Neither spin nor yield may run:
        // the first look decides.
        let looks = std::cell::Cell::new(0u32);
        assert!(!p.spin(1, || {
            looks.set(looks.get() + 1);
            false
        }));
        assert_eq!(looks.get(), 0);
        assert_eq!(
            p.yield_budget_ns.load(Ordering::Relaxed),
            YIELD_MAX.as_nanos() as u32
        );
    }

    #[test]
    fn a_thousand_waits_that_see_nothing_cost_little_cpu() {
        // Without the budgets' decay each would spin 20 µs and yield 50 µs: 70 ms in all.
        // Measured after 100 waits: the budgets have decayed by then, and the first runs of
        // the code (under qemu-user, its translation: 41 ms once on aarch64) are not counted.
        let p = Parker::new();
        for _ in 0..100 {
            assert!(!p.spin(2, || false));
        }
        let cpu0 = thread_cpu();
        for _ in 0..1_000 {
            assert!(!p.spin(2, || false));
        }
        let cpu = thread_cpu() - cpu0;
        assert!(
            cpu < Duration::from_millis(25),
            "1,000 waits used {cpu:?} of CPU"
        );
    }
}
