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

use std::hint;
use std::sync::atomic::{compiler_fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// No thread has used the channel yet.
const UNOWNED: usize = 0;
/// Revoked: everyone locks.
const SHARED: usize = 1;
/// The identity of a thread without a scheduler: it never owns a channel (several threads
/// share it).
pub(crate) const ANONYMOUS: usize = 2;

/// See the module docs. Thread identities are the addresses of schedulers, which are never
/// freed, so an identity is never reused.
pub(crate) struct BiasedLock {
    owner: AtomicUsize,
    /// Set by the owner for the length of each unlocked use.
    owner_busy: AtomicBool,
    locked: AtomicBool,
}

/// Proof of access; releases it when dropped.
pub(crate) enum Held<'a> {
    Owner(&'a BiasedLock),
    Locked(&'a BiasedLock),
}

impl Drop for Held<'_> {
    #[inline]
    fn drop(&mut self) {
        match self {
            Held::Owner(l) => l.owner_busy.store(false, Ordering::Release),
            Held::Locked(l) => l.locked.store(false, Ordering::Release),
        }
    }
}

impl BiasedLock {
    pub(crate) const fn new() -> BiasedLock {
        BiasedLock {
            owner: AtomicUsize::new(UNOWNED),
            owner_busy: AtomicBool::new(false),
            locked: AtomicBool::new(false),
        }
    }

    /// Exclusive access for the thread whose identity is `me` (never 0 or 1; `ANONYMOUS`
    /// always takes the spin lock).
    #[inline]
    pub(crate) fn acquire(&self, me: usize) -> Held<'_> {
        debug_assert!(me > SHARED);
        let owner = self.owner.load(Ordering::Relaxed);
        if me == ANONYMOUS {
            return self.acquire_shared();
        }
        if owner == me {
            // No caller's code runs while the state is held, so the owner never re-enters.
            debug_assert!(
                !self.owner_busy.load(Ordering::Relaxed),
                "a channel was entered again by the thread already inside it"
            );
            self.owner_busy.store(true, Ordering::Relaxed);
            // The CPU-level fence between the store above and the load below is supplied by
            // the revoker's membarrier; only the compiler must not reorder them.
            compiler_fence(Ordering::SeqCst);
            if self.owner.load(Ordering::Relaxed) == me {
                return Held::Owner(self);
            }
            self.owner_busy.store(false, Ordering::Release);
        } else if owner == UNOWNED
            && fences_available()
            && self
                .owner
                .compare_exchange(UNOWNED, me, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            return self.acquire(me);
        }
        self.acquire_shared()
    }

    #[cold]
    #[inline(never)]
    fn acquire_shared(&self) -> Held<'_> {
        let mut backoff = Backoff::default();
        while self.locked.swap(true, Ordering::Acquire) {
            backoff.wait();
        }
        if self.owner.load(Ordering::Relaxed) != SHARED {
            self.revoke();
        }
        Held::Locked(self)
    }

    /// Ends the bias for good (under the spin lock): see the module docs.
    #[cold]
    fn revoke(&self) {
        // Nobody owns it yet: no owner can be inside, no barrier needed.
        if self
            .owner
            .compare_exchange(UNOWNED, SHARED, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
        self.owner.store(SHARED, Ordering::SeqCst);
        full_barrier_on_all_threads();
        let mut backoff = Backoff::default();
        while self.owner_busy.load(Ordering::Acquire) {
            backoff.wait();
        }
    }
}

/// Spin a little, then give the CPU away: the thread we wait for may have been preempted,
/// and spinning through its time slice would only delay it.
#[derive(Default)]
struct Backoff(u32);

impl Backoff {
    fn wait(&mut self) {
        self.0 += 1;
        if self.0 < 32 {
            hint::spin_loop();
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
        // Identities: any distinct addresses above 1.
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
