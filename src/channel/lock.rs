//! The channel's lock: biased towards one thread, so that a channel used by the tasklets of a
//! single thread costs no atomic read-modify-write per operation.
//!
//! The first thread to use a channel becomes its *owner*; the owner enters with two plain
//! stores and two plain loads (a flag saying "busy", and a check that it still owns the
//! channel). The first time another thread uses the channel, that thread *revokes* the bias
//! for good: it marks the channel shared, makes every thread of the process execute a full
//! memory barrier (`membarrier(2)`, `MEMBARRIER_CMD_PRIVATE_EXPEDITED`), waits until the
//! owner is not busy, and from then on everyone takes an ordinary spin lock (one
//! compare-and-swap to take it, a store to release it).
//!
//! Why that is sound: the owner's "set busy, then check ownership" would need a store-load
//! fence, which is what makes ordinary locks cost an atomic operation. The revoker supplies it
//! instead: after its barrier, either the owner's "busy" is visible to it (and it waits), or
//! the owner's next ownership check runs after the barrier and sees the channel shared. This
//! is the asymmetric-fence technique of user-space RCU and of biased locking.
//!
//! Where `membarrier` is unavailable (an old kernel, or an emulator that does not forward it),
//! channels are never biased: everyone takes the spin lock.
//!
//! # After `fork()`
//! The child has only the forking thread, which is never inside a channel when it forks (no
//! caller's code runs while a channel is held). A channel that *another* thread was inside at
//! that moment is half-changed in the child, and its lock would never be released: the child
//! detects that instead of spinning forever, and the channel becomes *poisoned*: every use of
//! it panics with a sentence saying why. Two marks make it detectable: the spin lock holds the
//! *fork generation* of its holder (bumped in every forked child, so a holder from before the
//! fork is recognised), and a revoker that waits for a busy owner checks, in a forked child,
//! whether the owner's thread still exists (identities are schedulers, which know). A channel
//! nobody else was inside works normally in the child, biased or not. Tasklets of vanished
//! threads still queued on a channel stay in its queue (see `scheduler::thread::fork`).

use std::hint;
use std::sync::atomic::{compiler_fence, AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// No thread has used the channel yet.
const UNOWNED: usize = 0;
/// Revoked: everyone locks.
const SHARED: usize = 1;
/// The identity of a thread without a scheduler: it never owns a channel (several threads
/// share it).
pub(crate) const ANONYMOUS: usize = 2;
/// In a forked child: a thread that does not exist here was inside (see the module docs).
const POISONED: usize = 3;

/// `locked` when nobody holds the spin lock (a holder stores its `held_mark`), and
/// `owner_busy` when the owner is not inside.
const FREE: u32 = 0;
/// `owner_busy` while the owner is inside.
const BUSY: u32 = 1;

/// Forks between the first process and this one: bumped in every forked child.
static FORK_GENERATION: AtomicUsize = AtomicUsize::new(0);

/// What a spin-lock holder stores: odd (never `FREE`), and naming its fork generation (its
/// low 31 bits: a holder from 2^31 generations back would need as many nested forks).
fn held_mark() -> u32 {
    (FORK_GENERATION.load(Ordering::Relaxed) as u32) << 1 | 1
}

/// Registers the channels' own `pthread_atfork` handlers, once per process; called by the
/// first [`Channel::new`](super::Channel::new) (before a channel exists, a fork has nothing to
/// fix). The channel module installs them itself, so that the scheduler below it never calls
/// up into it.
pub(crate) fn install_fork_handlers() {
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    if INSTALLED.load(Ordering::Acquire) || INSTALLED.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: two `extern "C" fn()` handlers that live for the whole process.
    let rc = unsafe { libc::pthread_atfork(Some(before_fork), None, Some(in_forked_child)) };
    if rc != 0 {
        // Only ENOMEM is possible; without the handlers a forked child could spin forever on
        // a channel a vanished thread held, instead of finding it poisoned: say so, carry on.
        eprintln!(
            "microthread: pthread_atfork failed ({}); a channel held by another thread when \
             the process forks may hang in the child instead of being reported as poisoned",
            std::io::Error::from_raw_os_error(rc)
        );
    }
}

/// Before a fork: settle the one-time decision about fences, so that the child never waits
/// for another thread's half-made one.
extern "C" fn before_fork() {
    let _ = fences_available();
}

/// In a forked child, before anything else runs: see the module docs.
extern "C" fn in_forked_child() {
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// A thread that does not exist in this forked child was inside the channel.
pub(crate) struct Poisoned;

/// See the module docs. Thread identities are the addresses of schedulers, which are never
/// freed, so an identity is never reused.
pub(crate) struct BiasedLock {
    owner: AtomicUsize,
    /// Non-zero (`BUSY`) while the owner is inside, for the length of each unlocked use. A
    /// word like `locked`, so that leaving either way is the same store of zero.
    owner_busy: AtomicU32,
    /// The spin lock: `FREE`, or its holder's `held_mark`. 32 bits, so that the lock is two
    /// words and a channel fits a 64-byte malloc chunk (issue 11).
    locked: AtomicU32,
}

/// Proof of access; releases it when dropped. It names the word that says the channel is
/// held, the owner's `owner_busy` or the spin lock's `locked`: both are released by storing
/// zero, so leaving is one store, whichever way the channel was entered.
pub(crate) struct Held<'a>(&'a AtomicU32);

impl Drop for Held<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        self.0.store(FREE, Ordering::Release);
    }
}

impl BiasedLock {
    pub(crate) const fn new() -> BiasedLock {
        BiasedLock {
            owner: AtomicUsize::new(UNOWNED),
            owner_busy: AtomicU32::new(FREE),
            locked: AtomicU32::new(FREE),
        }
    }

    /// Exclusive access for the thread whose identity is `me`: `ANONYMOUS` (which always
    /// takes the spin lock) or the address of its scheduler.
    ///
    /// # Panics
    /// If the channel is poisoned: in a forked child, a thread that does not exist here was
    /// inside it when the process forked.
    #[inline]
    pub(crate) fn acquire(&self, me: usize) -> Held<'_> {
        if let Some(held) = self.enter_as_owner(me) {
            return held;
        }
        match self.acquire_slow(me) {
            Ok(held) => held,
            Err(Poisoned) => poisoned(),
        }
    }

    /// As [`acquire`](BiasedLock::acquire), but a poisoned channel gives `Err`.
    #[inline]
    pub(crate) fn try_acquire(&self, me: usize) -> Result<Held<'_>, Poisoned> {
        match self.enter_as_owner(me) {
            Some(held) => Ok(held),
            None => self.acquire_slow(me),
        }
    }

    /// The owner's fast path: two plain stores and two plain loads (see the module docs).
    #[inline(always)]
    fn enter_as_owner(&self, me: usize) -> Option<Held<'_>> {
        debug_assert!(me == ANONYMOUS || me > POISONED);
        // ANONYMOUS never owns a channel, so it never passes this test.
        if self.owner.load(Ordering::Relaxed) != me {
            return None;
        }
        // No caller's code runs while the state is held, so the owner never re-enters.
        debug_assert!(
            self.owner_busy.load(Ordering::Relaxed) == FREE,
            "a channel was entered again by the thread already inside it"
        );
        self.owner_busy.store(BUSY, Ordering::Relaxed);
        // The CPU-level fence between the store above and the load below is supplied by
        // the revoker's membarrier; only the compiler must not reorder them.
        compiler_fence(Ordering::SeqCst);
        if self.owner.load(Ordering::Relaxed) == me {
            return Some(Held(&self.owner_busy));
        }
        self.owner_busy.store(FREE, Ordering::Release);
        None
    }

    /// Not the owner: become it if nobody is yet, else take the spin lock.
    #[cold]
    #[inline(never)]
    fn acquire_slow(&self, me: usize) -> Result<Held<'_>, Poisoned> {
        if me != ANONYMOUS
            && self.owner.load(Ordering::Relaxed) == UNOWNED
            // Never become the owner while someone holds the spin lock: in a forked child
            // that may be a vanished thread, which only the spin path can tell.
            && self.locked.load(Ordering::Relaxed) == FREE
            && fences_available()
            && self
                .owner
                .compare_exchange(UNOWNED, me, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            if let Some(held) = self.enter_as_owner(me) {
                return Ok(held);
            }
        }
        self.acquire_shared()
    }

    #[cold]
    #[inline(never)]
    fn acquire_shared(&self) -> Result<Held<'_>, Poisoned> {
        let mark = held_mark();
        let mut backoff = Backoff::default();
        loop {
            if self.owner.load(Ordering::Relaxed) == POISONED {
                return Err(Poisoned);
            }
            match self.locked.compare_exchange_weak(
                FREE,
                mark,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(FREE) => {}
                Err(holder) if holder != mark => {
                    // Held since before a fork: by a thread that is not in this process.
                    self.owner.store(POISONED, Ordering::Relaxed);
                    return Err(Poisoned);
                }
                Err(_) => {
                    // Test and test-and-set: wait reading the word (the line stays shared in
                    // every waiter's cache) and try the swap again only once it reads free,
                    // so that the holder's release is not slowed by waiters' failed swaps.
                    // (Back to the top, too, once another thread found the channel
                    // poisoned: then the holder may never release it.)
                    loop {
                        backoff.wait();
                        if self.locked.load(Ordering::Relaxed) == FREE
                            || self.owner.load(Ordering::Relaxed) == POISONED
                        {
                            break;
                        }
                    }
                }
            }
        }
        if self.owner.load(Ordering::Relaxed) != SHARED {
            if let Err(p) = self.revoke() {
                self.locked.store(FREE, Ordering::Release);
                return Err(p);
            }
        }
        Ok(Held(&self.locked))
    }

    /// Ends the bias for good (under the spin lock): see the module docs. Fails (poisoning
    /// the channel) if the owner is busy and, in a forked child, does not exist.
    #[cold]
    fn revoke(&self) -> Result<(), Poisoned> {
        // Nobody owns it yet: no owner can be inside, no barrier needed.
        if self
            .owner
            .compare_exchange(UNOWNED, SHARED, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
        {
            return Ok(());
        }
        let owner = self.owner.swap(SHARED, Ordering::SeqCst);
        full_barrier_on_all_threads();
        let mut backoff = Backoff::default();
        while self.owner_busy.load(Ordering::Acquire) != FREE {
            let forked = FORK_GENERATION.load(Ordering::Relaxed) != 0;
            // SAFETY: `owner` was neither UNOWNED nor SHARED (the caller saw that under the
            // lock) nor POISONED (checked under it too), and ANONYMOUS never owns: it is a
            // scheduler's address.
            if forked && unsafe { crate::scheduler::blocking::identity_vanished(owner) } {
                self.owner.store(POISONED, Ordering::Relaxed);
                return Err(Poisoned);
            }
            backoff.wait();
        }
        Ok(())
    }
}

#[cold]
#[inline(never)]
fn poisoned() -> ! {
    panic!(
        "microthread: this channel cannot be used in this forked child: a thread that does \
         not exist here was inside it when the process forked, so its state is half-changed"
    )
}

/// Spin a little, longer each time, then give the CPU away: the thread we wait for may have
/// been preempted, and spinning through its time slice would only delay it.
///
/// The spins double from 1 to 64 `spin_loop` hints (127 in all, 1 to 5 µs on a recent x86, whose
/// `pause` takes some 40 to 140 cycles): a critical section of a channel is a few dozen
/// instructions, so a holder that runs releases within the first spins, and a waiter that
/// has not seen it free after all of them is most likely waiting for a preempted holder,
/// and yields from then on. With one hint per try (the former backoff), five threads
/// sharing one channel on two vCPUs spent two thirds of their time in this loop (`perf` on
/// the report's buffered worker-pool row).
#[derive(Default)]
struct Backoff(u32);

impl Backoff {
    /// Tries that spin before the waiter yields: 1, 2, 4, ... 64 hints.
    const SPINS: u32 = 7;

    fn wait(&mut self) {
        if self.0 < Self::SPINS {
            for _ in 0..1u32 << self.0 {
                hint::spin_loop();
            }
            self.0 += 1;
        } else {
            std::thread::yield_now();
        }
    }
}

const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

/// Whether this process may use `membarrier(PRIVATE_EXPEDITED)` (registered on first ask).
fn fences_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        if std::env::var_os("MICROTHREAD_NO_BIASED_CHANNELS").is_some() {
            return false;
        }
        // SAFETY: membarrier registration takes no pointers; failure is reported as -1.
        unsafe {
            libc::syscall(
                libc::SYS_membarrier,
                MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED,
                0,
                0,
            ) == 0
        }
    })
}

fn full_barrier_on_all_threads() {
    // Only reached for a channel that was biased, which requires registration to have worked.
    // SAFETY: as above; the command only issues barriers.
    let rc = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) };
    if rc != 0 {
        // Registered, so this cannot fail; if it did, the owner might still be inside:
        // there is no safe way on.
        eprintln!(
            "microthread: membarrier failed after registration: {}; aborting",
            std::io::Error::last_os_error()
        );
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_second_thread_revokes_the_bias_and_both_stay_exclusive() {
        let lock = Arc::new(BiasedLock::new());
        let counter = Arc::new(AtomicUsize::new(0));
        // Identities: any distinct addresses above POISONED (the one check that reads an
        // identity's scheduler runs only in forked children).
        let (a, b) = (0x1000usize, 0x2000usize);
        drop(lock.acquire(a));
        if fences_available() {
            assert_eq!(lock.owner.load(Ordering::Relaxed), a);
        }
        let workers: Vec<_> = [a, b]
            .into_iter()
            .map(|me| {
                let (lock, counter) = (lock.clone(), counter.clone());
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        let _held = lock.acquire(me);
                        // A non-atomic read-modify-write made of two atomic halves: any
                        // overlap of two holders loses an increment.
                        let v = counter.load(Ordering::Relaxed);
                        counter.store(v + 1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(counter.load(Ordering::Relaxed), 40_000);
        assert_eq!(lock.owner.load(Ordering::Relaxed), SHARED);
    }
}
