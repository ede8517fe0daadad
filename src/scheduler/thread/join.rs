//! [`spawn_thread`] and its [`JoinHandle`]: an OS thread counted awake from its first
//! instruction, and a join that does not count its caller awake while it waits.
//!
//! A thread blocked in [`JoinHandle::join`] cannot send anything until the joined thread
//! ends, so it is no more able to wake another thread than a sleeping one: while it waits it
//! is not counted awake, and the joined thread's end counts it awake again (before the join
//! returns). So workers that all block on each other (or on their joiner) fail with
//! [`Error::Deadlock`](crate::Error::Deadlock) instead of hanging with it.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{lock, uncount_awake, Shared, AWAKE, REGISTRY};

/// Spawns an OS thread that counts as awake for deadlock detection from its first
/// instruction (its scheduler is created before `f` runs), so that other threads waiting for
/// it sleep instead of reporting a deadlock. The calling thread gets its scheduler too (as
/// [`init_thread`](crate::scheduler::init_thread) does), for the same reason.
///
/// # Deadlock detection
/// A thread counts as awake from its first use of microthread (or from here) until its
/// scheduler ends at thread exit, except while it sleeps in a blocking microthread call or
/// waits in [`JoinHandle::join`]. A blocking call that finds no other thread awake fails with
/// [`Error::Deadlock`](crate::Error::Deadlock) instead of sleeping, and when the last awake
/// thread stops counting, a sleeper is woken with that error. Not detected: threads that
/// never used microthread are invisible (call [`init_thread`](crate::scheduler::init_thread)
/// in one that will wake others, or a sleeper may get a false `Deadlock`), and a thread
/// blocked in anything else (a `std` lock, `std::thread::JoinHandle::join`, I/O) counts as
/// awake, so the threads waiting for it sleep until it wakes them or ends.
///
/// ```
/// use microthread::{spawn_thread, Channel};
///
/// let results = Channel::<u32>::new();
/// let tx = results.clone();
/// let worker = spawn_thread(move || {
///     // The worker's main tasklet blocks until main receives; its thread sleeps meanwhile.
///     tx.send(6 * 7).unwrap();
///     std::thread::current().id()
/// });
/// assert_eq!(results.receive().unwrap(), 42);
/// assert_ne!(worker.join().unwrap(), std::thread::current().id());
/// ```
///
/// # Panics
/// As [`std::thread::spawn`], if the OS cannot create the thread.
pub fn spawn_thread<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // The caller will usually wait for the new thread's results: it counts as awake from
    // here too, so that a worker's first send cannot find nobody awake and fail with a false
    // deadlock before the caller's first microthread call.
    let _ = super::super::scheduler();
    // Created here, handed to the new thread: it is counted awake before this returns.
    let shared = Shared::new();
    let ticket = Ticket(Some(shared.clone()));
    let thread = std::thread::spawn(move || {
        super::super::adopt(ticket.take());
        f()
    });
    JoinHandle { thread, shared }
}

/// A thread started by [`spawn_thread`]; the same API as [`std::thread::JoinHandle`], and
/// [`join`](JoinHandle::join) takes part in deadlock detection (see the module docs).
///
/// ```
/// use microthread::{spawn_thread, Channel, Error};
///
/// microthread::scheduler::init_thread(); // this thread counts as awake
/// // A worker waits for a value nobody will send. While this thread waits in join(), no
/// // thread is awake that could send it, so the receive fails instead of hanging.
/// let nobody_sends = Channel::<u32>::new();
/// let rx = nobody_sends.clone();
/// let stuck = spawn_thread(move || rx.receive());
/// assert!(matches!(stuck.join().unwrap(), Err(Error::Deadlock)));
/// ```
pub struct JoinHandle<T> {
    thread: std::thread::JoinHandle<T>,
    /// The thread's scheduler's shared part (it ends when the thread ends).
    shared: Arc<Shared>,
}

impl<T> JoinHandle<T> {
    /// Waits for the thread to finish and returns its result, or the panic it ended with
    /// (as [`std::thread::JoinHandle::join`]). While it waits, the calling thread does not
    /// count as awake for deadlock detection: threads that can then only be woken by the
    /// caller get [`Error::Deadlock`](crate::Error::Deadlock).
    pub fn join(self) -> std::thread::Result<T> {
        let _waiting = Joining::start(&self.shared);
        self.thread.join()
    }

    /// The thread's [`std::thread::Thread`].
    pub fn thread(&self) -> &std::thread::Thread {
        self.thread.thread()
    }

    /// Whether the thread has finished running its closure (as
    /// [`std::thread::JoinHandle::is_finished`]).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle")
            .field("thread", self.thread.thread())
            .finish_non_exhaustive()
    }
}

/// The caller of `join`, not counted awake while `target` has not ended.
struct Joining<'a> {
    target: &'a Shared,
    uncounted: bool,
}

impl<'a> Joining<'a> {
    /// Stops counting the calling thread awake, if it is counted (it has a scheduler that has
    /// not ended) and `target` has not ended yet: `target`'s end counts it awake again.
    fn start(target: &'a Shared) -> Joining<'a> {
        let mut joining = Joining {
            target,
            uncounted: false,
        };
        let counted = super::super::existing_scheduler().is_some_and(|s| !s.shared.ended());
        if !counted || ptr_eq(target, super::super::existing_scheduler()) {
            return joining;
        }
        let registry = lock(&REGISTRY);
        {
            let mut t = lock(&target.mailbox);
            if !t.open {
                return joining;
            }
            t.joiners += 1;
        }
        uncount_awake(&registry);
        joining.uncounted = true;
        joining
    }
}

fn ptr_eq(target: &Shared, s: Option<&'static super::super::Scheduler>) -> bool {
    s.is_some_and(|s| std::ptr::eq(&*s.shared, target))
}

impl Drop for Joining<'_> {
    /// The join returned (or panicked): if the target's end did not count us awake again
    /// (it always does, before its thread finishes; unless its teardown never ran), do it.
    fn drop(&mut self) {
        if !self.uncounted {
            return;
        }
        let _registry = lock(&REGISTRY);
        let mut t = lock(&self.target.mailbox);
        if t.open && t.joiners > 0 {
            t.joiners -= 1;
            AWAKE.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A scheduler's shared part made in advance for a new thread; uncounts it if unused.
struct Ticket(Option<Arc<Shared>>);

impl Ticket {
    fn take(mut self) -> Arc<Shared> {
        self.0.take().expect("a ticket is taken once")
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            s.close();
        }
    }
}
