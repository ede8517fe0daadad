//! `fork()`: the child has one thread, the one that forked, and a copy of every other
//! thread's scheduler. `pthread_atfork` handlers keep what crosses threads consistent:
//!
//! - before the fork, the forking thread takes the locks the child will need: the registry,
//!   then its own mailbox (a post to it by another
//!   thread may be in progress); after it, the parent releases them;
//! - the child marks every other thread's scheduler ended and *vanished*: posts to it fail
//!   (a [`RemoteTasklet`](super::RemoteTasklet) gets `NoThread`) without touching its mailbox,
//!   whose lock the vanished thread may hold, and they leave the registry (so the last awake
//!   thread never looks for a sleeper among them); the awake count becomes the number of schedulers that exist in the child (1 if the
//!   forking thread has a live one, else 0), so a blocking call nobody can satisfy fails
//!   with [`Error::Deadlock`](crate::Error::Deadlock); threads that were joining the forking
//!   thread vanished too, and so did those that were spinning for mail (see `park`);
//! - channels: `channel::lock` has its own handlers (a channel another thread was inside at
//!   the fork panics with a sentence in the child instead of spinning forever).
//!
//! Not handled: tasklets of vanished threads that were blocked on a channel stay in its
//! queue; a partner operation in the child pairs with one, cannot post its wake (the post
//! fails), and a value sent to it is lost: never received, never dropped. The child should
//! use only channels no other thread was blocked on or inside at the fork.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::MutexGuard;

use super::{lock, Mailbox, Registry, AWAKE, REGISTRY};

/// The registry lock and the forking thread's own mailbox lock (if it has a scheduler).
type Locks = (
    MutexGuard<'static, Registry>,
    Option<MutexGuard<'static, Mailbox>>,
);

/// The locks the forking thread holds from `prepare` to `parent` or `child`.
struct Held(UnsafeCell<Option<Locks>>);

// SAFETY: only the atfork handlers touch it, on the forking thread, from `prepare` to
// `parent`/`child`; concurrent forks are serialized by the registry lock taken first.
unsafe impl Sync for Held {}

static HELD: Held = Held(UnsafeCell::new(None));

/// Registers the handlers, once per process (before the first scheduler exists: nothing
/// needs fixing in a child before that, and channels check the fork generation themselves).
pub(super) fn install_handlers() {
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    if INSTALLED.load(Ordering::Acquire) || INSTALLED.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: three `extern "C" fn()` handlers that live for the whole process.
    let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    if rc != 0 {
        // Only ENOMEM is possible; without the handlers a forked child could hang in a
        // blocking call instead of getting the deadlock error: say so, carry on.
        eprintln!(
            "microthread: pthread_atfork failed ({}); deadlock detection in forked children \
             will count threads that do not exist there",
            std::io::Error::from_raw_os_error(rc)
        );
    }
}

extern "C" fn prepare() {
    let registry = lock(&REGISTRY);
    let own = super::super::existing_scheduler().map(|s| lock(&s.shared.mailbox));
    // SAFETY: see `Held`: we hold the registry lock, so no other fork is in its handlers.
    unsafe { *HELD.0.get() = Some((registry, own)) };
}

extern "C" fn parent() {
    // SAFETY: see `Held`; `prepare` ran on this thread just before.
    drop(unsafe { (*HELD.0.get()).take() });
}

extern "C" fn child() {
    // SAFETY: see `Held`; the child is this one thread.
    let Some((mut registry, own)) = (unsafe { (*HELD.0.get()).take() }) else {
        return;
    };
    let me = super::super::existing_scheduler().map(|s| &*s.shared as *const super::Shared);
    for s in &registry.live {
        if Some(&**s as *const super::Shared) != me {
            s.vanished.store(true, Ordering::Release);
            s.ended.store(true, Ordering::Release);
        }
    }
    registry
        .live
        .retain(|s| Some(&**s as *const super::Shared) == me);
    super::super::debug_root::retain_only(registry.live.first().map(|s| &s.debug));
    AWAKE.store(registry.live.len(), Ordering::SeqCst);
    super::park::forget_spinners();
    if let Some(mut m) = own {
        // Whoever was joining this thread vanished.
        m.joiners = 0;
    }
    drop(registry);
}
