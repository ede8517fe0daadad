//! A dump of the calling thread's tasklets ([`dump`]): every live tasklet with its id, name,
//! state, what it waits on, and its stack's size and use, for logs and debugging (Go's
//! goroutine dump; issue 12 item 2).
//!
//! Only the thread itself can read its scheduler (its state is in `Cell`s, touched by that
//! thread alone), so [`dump`] is per thread, and the process-wide [`dump_all`] *asks* every
//! other thread with a scheduler for its dump: a request in its mailbox, answered by that
//! thread where it reads its mail (at its next switch, or at once if it sleeps in a blocking
//! call), with a timeout for a thread that runs native code and reaches no such point
//! ([`ProcessDump::silent`]). Nothing is read across threads and the hot paths pay nothing:
//! the request rides on the mail flag every switch already checks. [`install_dump_signal`]
//! makes a signal print it to stderr (Go's `SIGQUIT` goroutine dump).
//!
//! A debugger needs neither: gdb/microthread.py reads the tasklets from memory (live or in a
//! core file) through `microthread_debug_root` (see the README's "Debugging").

use std::fmt;
use std::ptr;
use std::thread::ThreadId;
use std::time::Instant;

use super::{existing_scheduler, Scheduler};
use crate::tasklet::{Inner, Life, SLEEPING};

mod all;
mod signal;
pub(crate) use all::DumpRequest;
pub use all::{dump_all, dump_all_timeout, ProcessDump, SilentThread, DEFAULT_ANSWER_TIMEOUT};
pub use signal::install_dump_signal;

/// What a tasklet is doing when the dump is taken.
///
/// ```
/// use microthread::scheduler::{self, dump::DumpState};
/// let t = microthread::Tasklet::new(|| ())?;
/// let state = scheduler::dump().get(t.id()).unwrap().state;
/// assert_eq!(state, DumpState::Paused { started: false });
/// assert_eq!(state.to_string(), "paused, not started");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DumpState {
    /// It is the running tasklet: the one that called [`dump`].
    Running,
    /// In the run queue, waiting for its turn; `started` is false for one that never ran.
    Runnable {
        /// Whether it has run before (false: its function has not started).
        started: bool,
    },
    /// Blocked sending on a channel.
    Sending {
        /// The channel's id ([`Channel::id`](crate::Channel::id)).
        channel: u64,
    },
    /// Blocked receiving on a channel; with a deadline if it called `receive_timeout`.
    Receiving {
        /// The channel's id ([`Channel::id`](crate::Channel::id)).
        channel: u64,
        /// When its `receive_timeout` gives up, if it has a timeout.
        deadline: Option<Instant>,
    },
    /// Asleep in [`sleep`](super::sleep) or [`sleep_until`](super::sleep_until).
    Sleeping {
        /// When it wakes.
        until: Option<Instant>,
    },
    /// Waiting inside [`run`](super::run) (or `run_with`) until the run queue empties.
    InRun,
    /// Alive but out of the run queue: it runs only when someone inserts, runs or switches to
    /// it (paused by [`schedule_remove`](super::schedule_remove), [`remove`](crate::Tasklet::remove),
    /// created by [`Tasklet::new`](crate::Tasklet::new), or interrupted by `run_with`'s ticks);
    /// `started` as for `Runnable`.
    Paused {
        /// Whether it has run before.
        started: bool,
    },
}

impl fmt::Display for DumpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let now = Instant::now();
        let left = |d: &Instant| d.saturating_duration_since(now);
        match self {
            DumpState::Running => f.write_str("running"),
            DumpState::Runnable { started: true } => f.write_str("runnable"),
            DumpState::Runnable { started: false } => f.write_str("runnable, not started"),
            DumpState::Sending { channel } => write!(f, "blocked sending on channel {channel}"),
            DumpState::Receiving {
                channel,
                deadline: None,
            } => write!(f, "blocked receiving on channel {channel}"),
            DumpState::Receiving {
                channel,
                deadline: Some(d),
            } => write!(
                f,
                "blocked receiving on channel {channel}, timeout in {:?}",
                left(d)
            ),
            DumpState::Sleeping { until: Some(d) } => write!(f, "sleeping, {:?} left", left(d)),
            DumpState::Sleeping { until: None } => f.write_str("sleeping"),
            DumpState::InRun => f.write_str("waiting in run()"),
            DumpState::Paused { started: true } => f.write_str("paused"),
            DumpState::Paused { started: false } => f.write_str("paused, not started"),
        }
    }
}

/// One tasklet in a [`Dump`].
///
/// ```
/// use microthread::scheduler::{self, dump::DumpState};
/// let main = &scheduler::dump().tasklets[0];
/// assert!(main.is_main && main.state == DumpState::Running && main.stack_size.is_none());
/// assert!(main.to_string().ends_with(" (main): running"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskletDump {
    /// Its id ([`Tasklet::id`](crate::Tasklet::id)).
    pub id: u64,
    /// Its name ([`Tasklet::name`](crate::Tasklet::name)).
    pub name: Option<String>,
    /// Whether it is the thread's main tasklet (the thread's own stack).
    pub is_main: bool,
    /// What it is doing.
    pub state: DumpState,
    /// Its stack's usable size in bytes; `None` for a main tasklet (the thread's stack).
    pub stack_size: Option<usize>,
    /// How much of its stack is in use now: from its top to its saved stack pointer (to the
    /// dump's own frame for the running tasklet). The high-water mark is not known: pages
    /// touched earlier and since left are not counted. `None` for a main tasklet.
    pub stack_used: Option<usize>,
}

impl fmt::Display for TaskletDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tasklet {}", self.id)?;
        if let Some(name) = &self.name {
            write!(f, " {name:?}")?;
        }
        if self.is_main {
            f.write_str(" (main)")?;
        }
        write!(f, ": {}", self.state)?;
        match (self.stack_used, self.stack_size) {
            (Some(used), Some(size)) => write!(f, "; stack {used} of {size} bytes used"),
            (None, Some(size)) => write!(f, "; stack of {size} bytes"),
            _ => Ok(()),
        }
    }
}

/// The live tasklets of one thread, oldest first (its main tasklet first), from [`dump`].
/// Its `Display` is one line for the thread and one for each tasklet.
///
/// ```
/// let d = microthread::scheduler::dump();
/// assert_eq!(d.thread_id, std::thread::current().id());
/// assert!(d.to_string().starts_with("1 tasklet on thread "));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Dump {
    /// The thread's id.
    pub thread_id: ThreadId,
    /// The thread's name, if it has one.
    pub thread_name: Option<String>,
    /// Every live tasklet of the thread, in creation order.
    pub tasklets: Vec<TaskletDump>,
}

impl Dump {
    /// The entry of tasklet `id`, if it is alive on this thread.
    ///
    /// ```
    /// use microthread::scheduler::{self, dump::DumpState};
    /// let main = scheduler::main().id();
    /// assert_eq!(scheduler::dump().get(main).unwrap().state, DumpState::Running);
    /// assert!(scheduler::dump().get(0).is_none(), "no tasklet has id 0");
    /// ```
    pub fn get(&self, id: u64) -> Option<&TaskletDump> {
        self.tasklets.iter().find(|t| t.id == id)
    }
}

impl fmt::Display for Dump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} tasklet", self.tasklets.len())?;
        if self.tasklets.len() != 1 {
            f.write_str("s")?;
        }
        write!(f, " on thread {:?}", self.thread_id)?;
        if let Some(name) = &self.thread_name {
            write!(f, " {name:?}")?;
        }
        f.write_str(":\n")?;
        for t in &self.tasklets {
            writeln!(f, "  {t}")?;
        }
        Ok(())
    }
}

/// Every live tasklet of the calling thread, with its state, what it waits on and its stack's
/// use. Like every call, it gives a thread without a scheduler its scheduler (whose dump is
/// its main tasklet alone). Costs a walk of the thread's tasklets (and, with sleepers, of
/// its timer queue); it does not switch, so it may be called anywhere, the schedule callback
/// included.
///
/// ```
/// use microthread::scheduler::{self, dump::DumpState, spawn};
/// use microthread::Channel;
///
/// let ch = Channel::<u8>::new();
/// let rx = ch.clone();
/// let receiver = spawn(move || rx.receive().unwrap())?;
/// receiver.set_name(Some("receiver"));
/// let sleeper = spawn(|| scheduler::sleep(std::time::Duration::from_secs(60)))?;
/// scheduler::schedule().unwrap(); // the receiver blocks, the sleeper sleeps, main goes on
/// let d = scheduler::dump();
/// assert_eq!(d.get(receiver.id()).unwrap().state, DumpState::Receiving { channel: ch.id(), deadline: None });
/// assert!(matches!(d.get(sleeper.id()).unwrap().state, DumpState::Sleeping { until: Some(_) }));
/// assert!(d.to_string().contains(&format!("tasklet {} \"receiver\": blocked receiving on channel {}", receiver.id(), ch.id())));
/// ch.send(1).unwrap();
/// sleeper.kill().unwrap();
/// assert_eq!(scheduler::dump().tasklets.len(), 1, "main alone");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn dump() -> Dump {
    dump_of(super::scheduler())
}

/// The dump of `s`, this thread's scheduler.
fn dump_of(s: &Scheduler) -> Dump {
    let thread = std::thread::current();
    let tasklets = collect(s);
    Dump {
        thread_id: thread.id(),
        thread_name: thread.name().map(str::to_owned),
        tasklets,
    }
}

fn collect(s: &Scheduler) -> Vec<TaskletDump> {
    let deadlines = s.live_deadlines();
    let watching = s.watcher_tasklets();
    let here = 0u8;
    let here = ptr::addr_of!(here) as usize;
    let mut out = Vec::new();
    let mut p = s.all.get();
    while !p.is_null() {
        // SAFETY: list members are live; the list holds a reference to each, and nothing here
        // switches or runs user code, so the list does not change under the walk.
        let t = unsafe { &*p };
        if t.alive() {
            let deadline = deadlines
                .iter()
                .find(|&&(q, _)| ptr::eq(q, t))
                .map(|&(_, d)| d);
            out.push(describe(s, t, &watching, deadline, here));
        }
        p = t.all_next.get();
    }
    // The list is newest first.
    out.reverse();
    out
}

fn describe(
    s: &Scheduler,
    t: &Inner,
    watching: &[*const Inner],
    deadline: Option<Instant>,
    here: usize,
) -> TaskletDump {
    let started = t.life.get() == Life::Started;
    let channel = || {
        t.blocked_on
            .get()
            // SAFETY: a blocked call keeps its channel alive until it returns (`blocked_on`).
            .map(|b| unsafe { (*b).channel_id() })
            .unwrap_or(0)
    };
    let state = if ptr::eq(s.current.get(), t) {
        DumpState::Running
    } else if t.blocked.get() == SLEEPING {
        DumpState::Sleeping { until: deadline }
    } else if t.blocked.get() > 0 {
        DumpState::Sending { channel: channel() }
    } else if t.blocked.get() < 0 {
        DumpState::Receiving {
            channel: channel(),
            deadline,
        }
    } else if t.in_ring() {
        DumpState::Runnable { started }
    } else if watching.iter().any(|&w| ptr::eq(w, t)) {
        DumpState::InRun
    } else {
        DumpState::Paused { started }
    };
    // Taken out of their cells and put back at once: nothing runs in between.
    let stack = t.stack.take();
    let context = t.context.take();
    let top = stack.as_ref().map(|st| st.top() as usize);
    let sp = if ptr::eq(s.current.get(), t) {
        Some(here)
    } else {
        context.as_ref().map(|c| c.stack_pointer() as usize)
    };
    let stack_size = stack.as_ref().map(|st| st.size());
    t.context.set(context);
    t.stack.set(stack);
    let stack_used = match (top, sp) {
        (Some(top), Some(sp)) if sp <= top => Some(top - sp),
        _ => None,
    };
    TaskletDump {
        id: t.id,
        name: t.name(),
        is_main: t.is_main,
        state,
        stack_size,
        stack_used: stack_size.and(stack_used),
    }
}

/// The running tasklet's id, name and whether it is a main tasklet, if this thread has a
/// scheduler; for the panic hook, which may run anywhere, even while the scheduler's state
/// is half-changed: it only reads, creates nothing and never panics.
pub(crate) fn current_identity() -> Option<(u64, Option<String>, bool)> {
    let s = existing_scheduler()?;
    let p = s.current.get();
    if p.is_null() {
        return None;
    }
    // SAFETY: the running tasklet is live (the list holds it).
    let t = unsafe { &*p };
    let name = t.name();
    Some((t.id, name, t.is_main))
}
