//! The process-wide dump: [`dump_all`] asks every other thread with a scheduler for its
//! [`Dump`] through its mailbox and waits, up to a timeout, for the answers.
//!
//! Why a request and not a read: a thread's tasklets live in `Cell`s only that thread
//! touches, so reading them from another thread would be a data race. The request is a
//! [`Mail`] like a remote wake: the owning thread answers it where it reads its mail, at its
//! next switch, or at once when it sleeps in a blocking call or in `sleep` (a post wakes
//! it). A thread that runs native code (a long computation, a blocking system call, a `std`
//! lock) reaches no such point: it is listed as [silent](ProcessDump::silent). The hot paths
//! pay nothing: the request rides on the mail flag every switch loads anyway.

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use super::{dump_of, Dump};
use crate::scheduler::thread::{live_schedulers, Mail};
use crate::scheduler::{existing_scheduler, Scheduler, TEARDOWN};

/// How long [`dump_all`] waits for the other threads' answers, all together: long enough
/// that a thread asleep in a blocking call answers even on a loaded machine (a wake-up can
/// take tens of milliseconds there), short enough for a signal's dump.
pub const DEFAULT_ANSWER_TIMEOUT: Duration = Duration::from_secs(1);

/// A thread that did not answer a [`dump_all`] in time.
///
/// ```
/// use microthread::scheduler;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// let stop = Arc::new(AtomicBool::new(false));
/// let (s, (ready, started)) = (stop.clone(), std::sync::mpsc::channel());
/// let busy = std::thread::Builder::new().name("busy".into()).spawn(move || {
///     scheduler::init_thread(); // it has a scheduler, but never reads its mail:
///     ready.send(()).unwrap();
///     while !s.load(Ordering::Relaxed) {
///         std::hint::spin_loop(); // native code
///     }
/// })?;
/// started.recv().unwrap();
/// let d = scheduler::dump_all_timeout(Duration::from_millis(50));
/// stop.store(true, Ordering::Relaxed);
/// let id = busy.thread().id();
/// busy.join().unwrap();
/// assert!(d.silent.iter().any(|t| t.thread_name.as_deref() == Some("busy")));
/// assert!(d.thread(id).is_none());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SilentThread {
    /// Its id, if its scheduler recorded it (it does when the thread first answers a dump
    /// or makes a `RemoteTasklet`).
    pub thread_id: Option<ThreadId>,
    /// Its name as the kernel knows it (at most 15 bytes; the program's name for the main
    /// thread), recorded when its scheduler started.
    pub thread_name: Option<String>,
}

/// The dumps of every thread of the process that has a scheduler, from [`dump_all`]. Its
/// `Display` is a header line, each thread's [`Dump`], and a line for each thread that did
/// not answer.
///
/// ```
/// let d = microthread::scheduler::dump_all();
/// assert!(d.to_string().starts_with("microthread: "));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProcessDump {
    /// The threads that answered: the calling thread first (if it has a scheduler), then the
    /// others in the order they answered.
    pub threads: Vec<Dump>,
    /// The threads that did not answer within the timeout: busy in native code, or blocked
    /// outside microthread (their tasklets cannot be read from here; use gdb's `info
    /// tasklets`, which reads memory, for them).
    pub silent: Vec<SilentThread>,
    /// The timeout the silent ones did not meet.
    pub timeout: Duration,
}

impl ProcessDump {
    /// The dump of the thread `id`, if it answered.
    ///
    /// ```
    /// let me = std::thread::current().id();
    /// microthread::scheduler::init_thread();
    /// assert_eq!(microthread::scheduler::dump_all().thread(me).unwrap().thread_id, me);
    /// ```
    pub fn thread(&self, id: ThreadId) -> Option<&Dump> {
        self.threads.iter().find(|d| d.thread_id == id)
    }
}

impl fmt::Display for ProcessDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.threads.len() + self.silent.len();
        write!(
            f,
            "microthread: {n} thread{} with a scheduler",
            if n == 1 { "" } else { "s" }
        )?;
        if !self.silent.is_empty() {
            write!(f, " ({} did not answer)", self.silent.len())?;
        }
        f.write_str("\n")?;
        for d in &self.threads {
            write!(f, "{d}")?;
        }
        for t in &self.silent {
            f.write_str("thread ")?;
            match t.thread_id {
                Some(id) => write!(f, "{id:?}")?,
                None => f.write_str("(id not recorded)")?,
            }
            if let Some(name) = &t.thread_name {
                write!(f, " {name:?}")?;
            }
            writeln!(
                f,
                " did not answer within {:?} (running native code, or blocked outside \
                 microthread)",
                self.timeout
            )?;
        }
        Ok(())
    }
}

/// One thread's answer to a [`dump_all`], filled in by that thread.
pub(crate) struct DumpRequest {
    answer: Mutex<Option<Dump>>,
    answered: Condvar,
}

impl DumpRequest {
    fn new() -> DumpRequest {
        DumpRequest {
            answer: Mutex::new(None),
            answered: Condvar::new(),
        }
    }

    /// Answers with the dump of `s`, the calling thread's scheduler. Only reads the
    /// scheduler (so it may run wherever mail is read) and never unwinds. A thread whose
    /// thread-locals are being destroyed (its teardown reads mail) does not answer: its
    /// scheduler is ending, and the asker sees the request dropped.
    pub(crate) fn answer(&self, s: &Scheduler) {
        if TEARDOWN.try_with(|_| ()).is_err() {
            return;
        }
        let Ok(dump) = panic::catch_unwind(AssertUnwindSafe(|| dump_of(s))) else {
            return;
        };
        let mut answer = self.answer.lock().unwrap_or_else(|e| e.into_inner());
        *answer = Some(dump);
        self.answered.notify_all();
    }

    fn take(&self) -> Option<Dump> {
        self.answer.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Waits up to `d` for the answer (returns early when it comes).
    fn wait(&self, d: Duration) {
        let answer = self.answer.lock().unwrap_or_else(|e| e.into_inner());
        if answer.is_none() {
            drop(self.answered.wait_timeout(answer, d));
        }
    }
}

/// [`dump_all_timeout`] with [`DEFAULT_ANSWER_TIMEOUT`].
///
/// ```
/// let d = microthread::scheduler::dump_all();
/// // This thread has no scheduler yet: the dump does not give it one.
/// assert!(d.thread(std::thread::current().id()).is_none());
/// microthread::scheduler::init_thread();
/// let d = microthread::scheduler::dump_all();
/// assert_eq!(d.thread(std::thread::current().id()).unwrap().tasklets.len(), 1);
/// ```
pub fn dump_all() -> ProcessDump {
    dump_all_timeout(DEFAULT_ANSWER_TIMEOUT)
}

/// Every live tasklet of every thread of the process that has a scheduler: the calling
/// thread's [`dump`](super::dump), and each other thread's, which that thread makes itself
/// when it next reads its mail (at its next switch, or at once if it sleeps in a blocking
/// microthread call or `sleep`). Waits at most `timeout` in all for the answers; threads
/// that did not answer by then (running native code, or blocked outside microthread) are
/// listed in [`ProcessDump::silent`]. While it waits, the calling thread answers other
/// threads' dump requests (two threads may dump at once). Does not create a scheduler for
/// the calling thread (a thread without one is not in the dump), and may be called from any
/// thread, including one that never used microthread. Blocks the calling thread (not only its
/// tasklet) while it waits.
///
/// ```
/// use microthread::scheduler::{self, dump::DumpState};
/// use microthread::Channel;
/// use std::time::Duration;
///
/// scheduler::init_thread(); // counted awake: the worker's receives sleep, not deadlock
/// let (ch, done) = (Channel::<u32>::new(), Channel::<()>::new());
/// let (rx, done_rx) = (ch.clone(), done.clone());
/// let (ids, ids_rx) = std::sync::mpsc::channel();
/// let worker = scheduler::spawn_thread(move || {
///     let t = scheduler::spawn(move || rx.receive().unwrap()).unwrap();
///     t.set_name(Some("waiter"));
///     ids.send((std::thread::current().id(), t.id())).unwrap();
///     done_rx.receive().unwrap(); // the waiter blocks too; then the thread sleeps
/// });
/// let (thread, waiter) = ids_rx.recv().unwrap();
/// // The worker answers at its next switch or in its sleep: poll until the waiter blocked.
/// let d = loop {
///     let d = scheduler::dump_all_timeout(Duration::from_secs(5));
///     match d.thread(thread).and_then(|t| t.get(waiter)) {
///         Some(t) if matches!(t.state, DumpState::Receiving { .. }) => break d,
///         _ => std::thread::sleep(Duration::from_millis(1)),
///     }
/// };
/// assert!(d.silent.is_empty());
/// let text = d.to_string();
/// assert!(text.contains(&format!("tasklet {waiter} \"waiter\": blocked receiving on channel {}", ch.id())));
/// ch.send(5).unwrap();
/// done.send(()).unwrap();
/// worker.join().unwrap();
/// ```
pub fn dump_all_timeout(timeout: Duration) -> ProcessDump {
    let deadline = Instant::now() + timeout;
    let me = existing_scheduler().filter(|s| !s.shared.ended());
    let mine = me.map(|s| Arc::as_ptr(&s.shared));
    let mut asked = Vec::new();
    for shared in live_schedulers() {
        if Some(Arc::as_ptr(&shared)) == mine {
            continue;
        }
        let request = Arc::new(DumpRequest::new());
        // A scheduler that ended meanwhile refuses the post: it is gone, not silent.
        if shared.post(Mail::Dump(request.clone())).is_ok() {
            asked.push((shared, request));
        }
    }
    let mut threads = Vec::new();
    if let Some(s) = me {
        if TEARDOWN.try_with(|_| ()).is_ok() {
            threads.push(dump_of(s));
        }
    }
    let mut silent = Vec::new();
    for (shared, request) in asked {
        loop {
            if let Some(d) = request.take() {
                threads.push(d);
                break;
            }
            if let Some(s) = me {
                for r in s.shared.take_dump_requests() {
                    r.answer(s);
                }
            }
            // Ours is the last reference: the thread dropped the request unanswered (its
            // scheduler ended). It may have answered just before: look once more.
            if Arc::strong_count(&request) == 1 {
                if let Some(d) = request.take() {
                    threads.push(d);
                }
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                silent.push(SilentThread {
                    thread_id: shared.thread_id(),
                    thread_name: shared.debug.thread_name(),
                });
                break;
            }
            // Short slices when this thread may itself be asked meanwhile.
            let slice = if me.is_some() {
                Duration::from_millis(2)
            } else {
                deadline - now
            };
            request.wait(slice.min(deadline - now));
        }
    }
    ProcessDump {
        threads,
        silent,
        timeout,
    }
}
