//! What crosses threads: each scheduler's mailbox, the sleep of a thread with nothing to run,
//! the process-wide count of threads that could still wake one, and [`RemoteTasklet`].
//!
//! A thread's ring is only ever touched by that thread. Another thread that must change it
//! (a channel partner made runnable, a remote insert, kill or throw) posts an operation to
//! the owner's mailbox; the owner applies it at its next switch (one relaxed load of a flag on
//! every switch tells it there is mail) or, if it is asleep, wakes up for it.
//!
//! A thread whose ring is empty while some of its tasklets wait for other threads sleeps on
//! a condition variable (no spinning, no polling) until mail arrives. It only goes to sleep
//! if another thread with a scheduler is awake and so could still send it something; if it is
//! the last one awake, its blocking call fails with [`Error::Deadlock`] instead. When the last
//! awake thread ends, one sleeper is woken with that error. Threads that have never used
//! microthread are not counted (as Go ignores threads it did not start): a thread that will
//! wake others through a channel or a [`RemoteTasklet`] should call
//! [`init_thread`](super::init_thread) before they may block, or be started with
//! [`spawn_thread`].

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::tasklet::{Inner, Tasklet};

/// A reference to a tasklet that another thread may hold: only its reference count is ever
/// touched off its own thread, and everything about it that is not `Send` is cleared on its
/// own thread (see `Tasklet`'s `Drop`).
pub(crate) struct SendArc(pub(crate) Arc<Inner>);

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
}

struct Mailbox {
    mail: Vec<Mail>,
    /// False once the thread's scheduler has ended: nothing is delivered any more.
    open: bool,
    sleeping: bool,
    /// Set by whoever wakes a sleeper and counts it awake again (so it is counted once).
    woken: bool,
    /// Wake up with the deadlock error: no awake thread is left to send anything.
    deadlock: bool,
}

/// The part of a scheduler other threads can reach.
pub(crate) struct Shared {
    mailbox: Mutex<Mailbox>,
    /// Whether `mailbox.mail` may be non-empty; read on every switch.
    pub(crate) has_mail: AtomicBool,
    wake: Condvar,
}

/// Threads with a live scheduler that are not asleep in `Shared::sleep`.
static AWAKE: AtomicUsize = AtomicUsize::new(0);
/// Threads asleep in `Shared::sleep` (or about to be). Lock order: this, then a mailbox.
static SLEEPERS: Mutex<Vec<Arc<Shared>>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// A new scheduler's shared part; counts its thread awake.
    pub(crate) fn new() -> Arc<Shared> {
        AWAKE.fetch_add(1, Ordering::SeqCst);
        Arc::new(Shared {
            mailbox: Mutex::new(Mailbox {
                mail: Vec::new(),
                open: true,
                sleeping: false,
                woken: false,
                deadlock: false,
            }),
            has_mail: AtomicBool::new(false),
            wake: Condvar::new(),
        })
    }

    /// Delivers `mail` to the owning thread, waking it if it sleeps. Gives the mail back if
    /// the thread's scheduler has ended.
    pub(crate) fn post(&self, mail: Mail) -> std::result::Result<(), Mail> {
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
        self.wake.notify_one();
        Ok(())
    }

    /// Takes all mail.
    pub(crate) fn take_mail(&self) -> Vec<Mail> {
        let mut m = lock(&self.mailbox);
        self.has_mail.store(false, Ordering::Relaxed);
        std::mem::take(&mut m.mail)
    }

    /// Sleeps until mail arrives. Returns `Err(Deadlock)` without sleeping if no other thread
    /// is awake, or when woken because the last awake thread ended.
    pub(crate) fn sleep(self: &Arc<Shared>) -> Result<()> {
        {
            let mut sleepers = lock(&SLEEPERS);
            let mut m = lock(&self.mailbox);
            if !m.mail.is_empty() {
                return Ok(());
            }
            // Marked asleep before we stop counting ourselves awake, so that a post from
            // now on counts us awake again (see `post`).
            let uncounted = AWAKE.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |a| {
                (a > 1).then(|| a - 1)
            });
            if uncounted.is_err() {
                return Err(Error::Deadlock);
            }
            m.sleeping = true;
            m.woken = false;
            drop(m);
            sleepers.push(self.clone());
        }
        let (counted_by_waker, deadlock) = {
            let mut m = lock(&self.mailbox);
            while m.mail.is_empty() && !m.deadlock && !m.woken {
                m = self.wake.wait(m).unwrap_or_else(|e| e.into_inner());
            }
            m.sleeping = false;
            (
                std::mem::take(&mut m.woken),
                std::mem::take(&mut m.deadlock),
            )
        };
        if !counted_by_waker {
            AWAKE.fetch_add(1, Ordering::SeqCst);
        }
        let mut sleepers = lock(&SLEEPERS);
        if let Some(i) = sleepers.iter().position(|x| Arc::ptr_eq(x, self)) {
            sleepers.swap_remove(i);
        }
        drop(sleepers);
        if deadlock {
            Err(Error::Deadlock)
        } else {
            Ok(())
        }
    }

    /// The owning thread's scheduler has ended: close the mailbox, hand back what it held,
    /// and if no thread is left awake, wake a sleeper with the deadlock error.
    pub(crate) fn close(&self) -> Vec<Mail> {
        let left = {
            let mut m = lock(&self.mailbox);
            m.open = false;
            std::mem::take(&mut m.mail)
        };
        let sleepers = lock(&SLEEPERS);
        if AWAKE.fetch_sub(1, Ordering::SeqCst) == 1 {
            // Wake one sleeper that nobody else is waking.
            for s in sleepers.iter() {
                let mut m = lock(&s.mailbox);
                if m.sleeping && !m.woken {
                    m.woken = true;
                    m.deadlock = true;
                    AWAKE.fetch_add(1, Ordering::SeqCst);
                    s.wake.notify_one();
                    break;
                }
            }
        }
        left
    }
}

/// A handle to a tasklet that any thread may hold and use: it inserts, kills or throws into
/// the tasklet on the tasklet's own thread (Stackless: operations on another thread's tasklet
/// act on that thread's ring). The caller never waits: the operation is done in its pending
/// form when the owning thread next switches, and wakes that thread if it sleeps.
///
/// ```
/// use microthread::{Channel, Tasklet};
/// use std::sync::mpsc;
///
/// // This thread will wake the worker: make it known as a thread that can.
/// microthread::scheduler::init_thread();
/// let (tx, rx) = mpsc::channel();
/// let worker = microthread::spawn_thread(move || {
///     let done = Channel::new();
///     let d = done.clone();
///     let t = Tasklet::new(move || d.send("ran").unwrap()).unwrap(); // paused
///     tx.send(t.remote()).unwrap();
///     // Nothing runnable here: the thread sleeps until the remote insert arrives.
///     done.receive().unwrap()
/// });
/// rx.recv().unwrap().insert().unwrap();
/// assert_eq!(worker.join().unwrap(), "ran");
/// ```
#[derive(Clone)]
pub struct RemoteTasklet {
    tasklet: Arc<SendArc>,
    owner: Arc<Shared>,
    id: u64,
}

impl std::fmt::Debug for RemoteTasklet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteTasklet")
            .field("id", &self.id)
            .finish()
    }
}

impl Tasklet {
    /// A handle other threads can use to insert, kill or throw into this tasklet.
    pub fn remote(&self) -> RemoteTasklet {
        // SAFETY: the owner pointer of a tasklet is its thread's leaked scheduler.
        let owner = unsafe {
            (*(self.inner.owner as *const super::Scheduler))
                .shared
                .clone()
        };
        RemoteTasklet {
            tasklet: Arc::new(SendArc(Arc::clone(&self.inner))),
            owner,
            id: self.inner.id,
        }
    }
}

impl RemoteTasklet {
    /// The tasklet's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    fn send(&self, make: impl FnOnce(SendArc) -> Mail) -> Result<()> {
        let mail = make(SendArc(self.tasklet.0.clone()));
        match self.owner.post(mail) {
            Ok(()) => Ok(()),
            Err(mail) => {
                // Its thread has ended; drop the reference here (the tasklet is dead and was
                // cleared on its own thread).
                drop(mail);
                Err(Error::NoThread)
            }
        }
    }

    /// Appends the tasklet to its thread's run queue (if it is paused).
    ///
    /// # Errors
    /// [`Error::NoThread`] if its thread has ended.
    pub fn insert(&self) -> Result<()> {
        self.send(Mail::Insert)
    }

    /// Kills the tasklet (the pending form: it unwinds when its turn comes).
    ///
    /// # Errors
    /// [`Error::NoThread`] if its thread has ended.
    pub fn kill(&self) -> Result<()> {
        self.send(Mail::Kill)
    }

    /// Throws `error` into the tasklet (the pending form).
    ///
    /// # Errors
    /// [`Error::NoThread`] if its thread has ended.
    pub fn throw(&self, error: Error) -> Result<()> {
        self.send(move |t| Mail::Throw(t, error))
    }
}

/// Spawns an OS thread that counts as awake for deadlock detection from its first
/// instruction (its scheduler is created before `f` runs), so that other threads waiting for
/// it sleep instead of reporting a deadlock.
///
/// # Panics
/// As [`std::thread::spawn`], if the OS cannot create the thread.
pub fn spawn_thread<F, T>(f: F) -> std::thread::JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // Created here, handed to the new thread: it is counted awake before this returns.
    let ticket = Ticket(Some(Shared::new()));
    std::thread::spawn(move || {
        super::adopt(ticket.take());
        f()
    })
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
