//! The round-robin scheduler: one per OS thread, Stackless Python's semantics.
//!
//! Each thread gets a scheduler the first time it uses one (lazily). The thread's own stack
//! is its **main tasklet**. Runnable tasklets form a **ring** that includes the running one;
//! `current` points into it, and the round-robin order is ring order starting at `current`.
//! A new or inserted tasklet goes just *before* `current`, i.e. to the end of the order.
//! [`schedule`] moves `current` one step on; [`Tasklet::run`] and [`Tasklet::switch`] jump
//! `current` to their target without relinking, so every tasklet between the target and the
//! caller runs before the caller does again (Stackless Python reference §2.1–2.3).
//!
//! # Stackless operations and their Rust form
//!
//! The crate root maps the whole `stackless` module, every function and attribute, to its
//! Rust form: [the table there](crate#the-stackless-module-in-rust). The scheduler's part in
//! short: [`spawn`], [`Tasklet::new`], [`run`], [`schedule`], [`schedule_remove`],
//! [`current`], [`main`], [`runcount`], [`atomic`], [`switch_trap`],
//! [`set_schedule_callback`], the [`Tasklet`] methods that move a tasklet around the ring
//! (`insert`, `remove`, `run`, `switch`, `kill`, `throw`), and [`spawn_thread`] and
//! [`RemoteTasklet`] for several threads.
//!
//! # What the safe API guarantees
//! - **A refused operation leaves no trace.** Every operation checks everything that can
//!   refuse it (a switch trap, the schedule callback, a blocked or dead target, an unwinding
//!   stack) before it changes the ring, a channel's queue or a flag.
//! - **No user code runs while the scheduler's state is half-changed.** Values whose `Drop`
//!   comes due inside a switch (an error payload replaced by a later one, a result released
//!   during a tasklet's end, mail for a tasklet that has died) are dropped at the next point
//!   where every invariant holds, on the tasklet's own thread; a panic in such a `Drop` is
//!   reported by the panic hook and otherwise ignored. Inside the schedule callback, every
//!   scheduling operation (including [`Tasklet::remove`] and channel operations) fails with
//!   [`Error::RecursiveCallback`].
//! - **No switch while a stack unwinds.** The thread's panic state (what
//!   [`std::thread::panicking`] reports, what poisons a `Mutex`) cannot move between
//!   tasklets, so a destructor running because its tasklet panics or is killed may not
//!   switch or block: such calls fail with [`Error::Unwinding`]. A channel operation that
//!   finds a partner still completes, without the switch its preference would make, so a
//!   destructor can hand a last value to a waiting tasklet.
//! - **A kill is never lost.** It is never replaced by a later error; it reaches a tasklet
//!   switched out inside the channel callback. Killing a main tasklet unwinds the thread's
//!   own stack: catch [`TaskletExit`] there to survive it.
//! - **Cross-thread wakes are tied to one blocking episode**, so a tasklet unblocked another
//!   way (killed, thrown into, routed an error) is never woken into a later block.
//! - A tasklet that never ran, is paused, and has no handle left (and no [`RemoteTasklet`])
//!   is ended when its last handle goes: its closure is dropped then, not at thread end.
//!
//! # Backtraces across switches
//! A backtrace taken inside a tasklet ([`std::backtrace::Backtrace`], a panic's, gdb's `bt`)
//! goes on past the tasklet's first frame into the **main tasklet**, where main is suspended
//! (in [`run`], [`schedule`], a channel operation...), and ends where the thread's own stack
//! ends. Not into the tasklet that switched to it last: tasklets switch symmetrically (A to
//! B, B to A), so that link would make the chain a loop and every backtrace endless; main is
//! suspended whenever another tasklet runs, and is itself no tasklet's entry. A tasklet run
//! by a nested [`run`] inside another tasklet therefore shows main's frames, not its
//! caller's. Coroutines resumed inside a tasklet link to their resumer first (see
//! [`crate::coroutine`]). A panic still stops at the tasklet's first frame, which catches it.
//!
//! ```
//! use microthread::scheduler::{self, spawn};
//! use std::{cell::RefCell, rc::Rc};
//! #[inline(never)]
//! fn main_runs_the_example() {
//!     scheduler::run().unwrap();
//! }
//! let trace = Rc::new(RefCell::new(String::new()));
//! let t = trace.clone();
//! spawn(move || *t.borrow_mut() = std::backtrace::Backtrace::force_capture().to_string())?;
//! main_runs_the_example();
//! assert!(trace.borrow().contains("main_runs_the_example"), "{}", trace.borrow());
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Deadlock
//! When the last runnable tasklet would block and the innermost [`run`] caller (or the main
//! tasklet) is paused, that caller is resumed and `run` returns: the blocking tasklet stays
//! blocked. When nobody can wake the blocking tasklet at all, its call fails with
//! [`Error::Deadlock`] and it keeps running.
//!
//! # Sleeping
//! [`sleep`] parks the calling tasklet on its thread's timer queue until a deadline and lets
//! the other tasklets run; the thread itself never blocks while one of them can run.
//! Stackless has no sleep: its users write a "sleep manager" (a tasklet that keeps sleepers
//! paused and re-inserts them when their time comes, driven by a `run()` loop); this is that
//! manager, built into the scheduler.
//!
//! - **State.** A sleeping tasklet is neither in the run queue nor paused: it counts as
//!   *blocked* ([`Tasklet::blocked`] and [`RemoteTasklet::blocked`] are true, `scheduled` is
//!   true, `paused` false), as a tasklet blocked on a channel is, and [`Tasklet::sleeping`]
//!   tells the two apart. So `insert`, `run` and `switch` refuse it with
//!   [`Error::RunBlocked`], `remove` with [`Error::RemoveBlocked`]; a kill or a throw takes
//!   it off the timer queue and delivers the `TaskletExit` / the error at its `sleep` call, as
//!   for a blocked tasklet; at thread end it is killed like the others.
//! - **Order.** Expired sleepers go to the end of the run queue in deadline order; equal
//!   deadlines in the order their tasklets went to sleep. A deadline already past (`sleep(0)`)
//!   is a plain [`schedule`]: the caller goes to the end of the run queue.
//! - **When the scheduler looks.** Reading the clock costs about 20 ns, too much for every
//!   switch. With an empty timer queue a switch pays one load of a counter that is zero.
//!   With sleepers, every switch counts it down and every 32nd switch reads the clock and
//!   moves the expired sleepers into the run queue; and whenever the run queue empties
//!   (everything else blocked, paused or asleep) the scheduler reads the clock at once. A
//!   tasklet that never switches is never interrupted for a sleeper (as for preemption: there
//!   is no safe point in native code that reaches no scheduler call).
//! - **Waiting.** When nothing is runnable and some tasklet sleeps, the thread sleeps until
//!   the earliest deadline (a timed wait on the futex word that mail from other
//!   threads signals: such mail wakes it early), then continues. [`run`] and a
//!   main tasklet that blocks do not return or fail meanwhile: a sleeper always wakes, so
//!   while one sleeps there is no [`Error::Deadlock`], on this thread or on threads waiting
//!   for it (it counts as awake).
//! - **Receive with a timeout.**
//!   [`Channel::receive_timeout`](crate::channel::Channel::receive_timeout) blocks on the
//!   channel *and* puts a deadline on the timer queue; when the deadline comes first, the receiver leaves the channel's
//!   queue (under the channel's lock, so its balance and queue are as if it never came) and
//!   its call returns [`Error::Timeout`]. A sender that took it out of the queue first (on
//!   another thread, under the same lock) has delivered: the receive returns the value.
//!
//!
//! # End of a thread
//! When a thread ends, its scheduler kills every tasklet still alive, oldest first (creation
//! order, as Stackless's model of threads does): each unwinds from its suspension point with
//! every destructor on its stack run; tasklets that never ran, and
//! [bound](Tasklet::bound) ones, just have their closures dropped. This happens in a thread-local destructor, which glibc also
//! runs for the process's main thread when `main` returns or [`std::process::exit`] is
//! called (`exit(3)` runs the calling thread's thread-local destructors;
//! `tests/process_exit.rs` shows it). It does not happen when the process ends any other way:
//! [`std::process::abort`], `_exit(2)`, a fatal signal, or `exit` called on *another*
//! thread (that one's tasklets are killed, the rest end with the process). A tasklet
//! whose handles were all dropped stays alive until it ends or its thread ends; nothing is
//! freed behind its back.
//!
//! ```
//! use microthread::{scheduler, spawn};
//! use std::{cell::RefCell, rc::Rc};
//!
//! let log = Rc::new(RefCell::new(Vec::new()));
//! for name in ["A", "B"] {
//!     let log = log.clone();
//!     spawn(move || {
//!         for i in 1..=2 {
//!             log.borrow_mut().push(format!("{name}{i}"));
//!             scheduler::schedule().unwrap();
//!         }
//!     })?;
//! }
//! scheduler::run().unwrap();
//! assert_eq!(*log.borrow(), ["A1", "B1", "A2", "B2"]);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::ptr;
use std::sync::Arc;

#[cfg(doc)]
use crate::error::{Error, TaskletExit};
use crate::id;
use crate::overflow;
use crate::tasklet::{Inner, Tasklet};

mod thread;
pub use thread::{spawn_thread, JoinHandle, RemoteTasklet};
use thread::{Mail, SendArc, Shared};
mod bind;
pub(crate) mod blocking;
mod callback;
mod create;
mod debug_root;
pub mod dump;
mod error_handler;
mod garbage;
mod handle;
mod kill;
mod lazy;
mod mail;
mod preempt;
mod ring;
mod slice_clock;
mod switch;
mod teardown;
mod time_slice;
mod timer;
mod watchdog;
mod watchers;

pub use callback::{schedule_callback, set_schedule_callback, switch_trap, ScheduleCallback};
pub use create::{spawn, TaskletBuilder};
pub use dump::{dump, dump_all, dump_all_timeout, install_dump_signal};
pub use error_handler::{error_handler, set_error_handler, ErrorHandler};
pub use handle::{atomic, AtomicGuard};
pub(crate) use preempt::atomic_cleared;
pub use preempt::{tick, ticks};
pub use ring::runcount;
pub use switch::{schedule, schedule_remove, schedule_remove_with, schedule_with};
use teardown::Teardown;
pub(crate) use timer::deadline_after;
pub use timer::{sleep, sleep_until};
pub use watchdog::{run, run_with, RunOptions};

/// A thread's scheduler; see the module docs.
pub(crate) struct Scheduler {
    /// The ring cursor: the running tasklet (null only transiently, while blocking).
    current: Cell<*const Inner>,
    runcount: Cell<usize>,
    main: *const Inner,
    /// Head of the list of all live tasklets; each member holds one strong reference.
    all: Cell<*const Inner>,
    /// The watchdog stack: the innermost `run()` caller's node, null if none (see
    /// `watchers`).
    watchers: Cell<*const watchers::Watcher>,
    /// The innermost `run()` caller (null if none): read on every tasklet end, so kept at hand.
    innermost: Cell<*const Inner>,
    switch_trap: Cell<i32>,
    callback: Cell<Option<ScheduleCallback>>,
    in_callback: Cell<bool>,
    channel_callback: Cell<Option<callback::ChannelCallback>>,
    in_channel_callback: Cell<bool>,
    channel_hooks: Cell<bool>,
    /// What other threads can reach: the mailbox.
    shared: Arc<Shared>,
    /// Non-zero when anything above needs the slow path of a switch or of a channel
    /// operation: a switch trap, a callback, a callback running, an ended scheduler, an
    /// active watchdog (`WATCHDOG_HOOK`), a channel callback (`CHANNEL_HOOK`, which switches
    /// ignore). One load keeps the common switch and channel operation fast.
    hooks: Cell<u32>,
    /// Values whose `Drop` (user code) came due while the scheduler's state was half-changed
    /// (a replaced error payload, a result released during a switch, mail for a dead
    /// tasklet): dropped at the next safe point, where every invariant holds.
    garbage: RefCell<Vec<Box<dyn Any>>>,
    has_garbage: Cell<bool>,
    /// Sleepers and receives with a deadline (see `timer`).
    timers: RefCell<timer::Timers>,
    /// Zero while the timer queue is empty; else counts switches down to the next look at
    /// the clock. One load on every switch.
    timer_poll: Cell<u32>,
    /// The last blocking episode numbered on this thread (see `new_block_epoch`).
    block_epochs: Cell<u64>,
}

thread_local! {
    static SCHEDULER: Cell<*const Scheduler> = const { Cell::new(ptr::null()) };
    static TEARDOWN: Teardown = const { Teardown };
}

/// This thread's scheduler if it has one; never creates it.
pub(super) fn existing_scheduler() -> Option<&'static Scheduler> {
    let s = SCHEDULER.with(|c| c.get());
    // SAFETY: set by `init` to a leaked Scheduler of this thread, never freed.
    (!s.is_null()).then(|| unsafe { &*s })
}

/// This thread's scheduler, created on first use.
#[inline]
pub(super) fn scheduler() -> &'static Scheduler {
    let s = SCHEDULER.with(|c| c.get());
    if s.is_null() {
        return init();
    }
    // SAFETY: set by `init` to a leaked Scheduler of this thread; never freed while the
    // thread runs (shutdown keeps it allocated).
    unsafe { &*s }
}

#[cold]
fn init() -> &'static Scheduler {
    init_with(Shared::new())
}

/// Creates this thread's scheduler now, with a shared part made in advance by the thread
/// that spawned this one (so it was counted awake from the start).
pub(super) fn adopt(shared: Arc<Shared>) {
    if SCHEDULER.with(|c| c.get()).is_null() {
        init_with(shared);
    } else {
        shared.close();
    }
}

fn init_with(shared: Arc<Shared>) -> &'static Scheduler {
    let s: &'static mut Scheduler = Box::leak(Box::new(Scheduler {
        current: Cell::new(ptr::null()),
        runcount: Cell::new(0),
        main: ptr::null(),
        all: Cell::new(ptr::null()),
        watchers: Cell::new(ptr::null()),
        innermost: Cell::new(ptr::null()),
        switch_trap: Cell::new(0),
        callback: Cell::new(None),
        in_callback: Cell::new(false),
        channel_callback: Cell::new(None),
        in_channel_callback: Cell::new(false),
        channel_hooks: Cell::new(false),
        shared,
        hooks: Cell::new(0),
        garbage: RefCell::new(Vec::new()),
        has_garbage: Cell::new(false),
        timers: RefCell::new(timer::Timers::new()),
        timer_poll: Cell::new(0),
        block_epochs: Cell::new(0),
    }));
    let owner = s as *const Scheduler as *const ();
    // An `Arc` of a `!Send` record on purpose: only its count is touched off its thread
    // (see `SendArc`).
    #[allow(clippy::arc_with_non_send_sync)]
    let main = crate::tasklet::Record::new_heap(Inner::new(id::next(), true, owner, false));
    s.main = crate::tasklet::Record::into_raw(main);
    let s: &'static Scheduler = s;
    // SAFETY: `main` is a live Arc whose reference the list takes over; it becomes the first
    // member of the ring, running on the thread's own stack.
    unsafe {
        s.register(s.main);
        s.ring_insert(s.main);
    }
    SCHEDULER.with(|c| c.set(s));
    crate::tasklet::set_discard_unstarted(create::discard_unstarted);
    overflow::ensure_altstack();
    if TEARDOWN.try_with(|_| {}).is_err() {
        // The thread's thread-locals are being destroyed and ours already was: nothing would
        // end this scheduler, so it starts ended (it creates no tasklet and never sleeps).
        let mail = s.shared.close();
        s.refresh_hooks();
        drop(mail);
    } else {
        thread::end_at_thread_exit_anyway(s);
        // For dumps and the debugger. Not `std::thread::current()`: a scheduler first made by
        // a pthread key destructor runs after std's thread handle is gone.
        s.shared.debug.publish(s);
    }
    s
}

/// A handle for a tasklet known to be alive.
///
/// # Safety
/// - `p` must point to a live `Inner` kept alive by an `Arc` (the scheduler's list).
unsafe fn handle(p: *const Inner) -> Tasklet {
    // SAFETY: a live tasklet's local reference is held by the scheduler.
    unsafe { Tasklet::from_local(p) }
}

impl Scheduler {
    fn is_this_thread(&self, t: &Inner) -> bool {
        ptr::eq(t.owner, self as *const Scheduler as *const ())
    }
}

pub(super) fn is_current(t: &Inner) -> bool {
    let s = SCHEDULER.with(|c| c.get());
    // SAFETY: a non-null scheduler pointer is this thread's live scheduler.
    !s.is_null() && ptr::eq(unsafe { (*s).current.get() }, t)
}

/// Creates this thread's scheduler now if it has none. Every microthread call does that on
/// first use; call this early in a thread that has no tasklets of its own but will wake
/// another thread's tasklets through a channel or a [`RemoteTasklet`], so that a thread
/// waiting for it sleeps instead of reporting a deadlock (see [`spawn_thread`]).
///
/// ```
/// use microthread::{scheduler, Channel};
/// use std::sync::mpsc;
///
/// scheduler::init_thread(); // this thread too: the helper's send must find it awake
/// let ch = Channel::<u32>::new();
/// let tx = ch.clone();
/// let (ready_tx, ready) = mpsc::channel();
/// let helper = std::thread::spawn(move || {
///     scheduler::init_thread(); // counted awake from here on
///     ready_tx.send(()).unwrap();
///     tx.send(7).unwrap();
/// });
/// ready.recv().unwrap();
/// // The helper counts as awake, so this receive sleeps until the value arrives instead of
/// // failing with Error::Deadlock.
/// assert_eq!(ch.receive().unwrap(), 7);
/// helper.join().unwrap();
/// ```
pub fn init_thread() {
    scheduler();
}

/// An identity for the calling thread: its scheduler's address if it has one, else 2 (a
/// value no scheduler has; such threads never own a channel). Does not create a scheduler.
#[inline]
pub(super) fn thread_identity() -> usize {
    let s = SCHEDULER.with(|c| c.get());
    if s.is_null() {
        2
    } else {
        s as usize
    }
}

/// The running tasklet of this thread (Stackless `stackless.current`).
///
/// ```
/// use microthread::{scheduler, spawn};
///
/// assert_eq!(scheduler::current(), scheduler::main(), "outside any tasklet: main");
/// let t = spawn(|| {
///     let me = scheduler::current();
///     (me.id(), me.is_main(), me.is_current())
/// })?;
/// scheduler::run().unwrap();
/// assert_eq!(t.result::<(u64, bool, bool)>(), Some((t.id(), false, true)));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn current() -> Tasklet {
    let s = scheduler();
    // SAFETY: the running tasklet is live.
    unsafe { handle(s.current.get()) }
}

/// This thread's main tasklet: the thread's own stack (Stackless `stackless.main`). Each
/// thread has its own.
///
/// ```
/// use microthread::scheduler;
///
/// let main = scheduler::main();
/// assert!(main.is_main() && main.is_current() && main.alive());
/// let other = std::thread::spawn(|| scheduler::main().id()).join().unwrap();
/// assert_ne!(other, main.id(), "another thread, another main tasklet");
/// ```
pub fn main() -> Tasklet {
    // SAFETY: main lives as long as the scheduler.
    unsafe { handle(scheduler().main) }
}
