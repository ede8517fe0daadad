//! [`run`], [`run_with`] and the watchdog stack: the tasklets waiting inside `run()`, innermost last, and
//! whom an empty run queue wakes.
//!
//! Besides Stackless's budget in ticks, `run_with` takes a wall-clock **time slice**
//! ([`RunOptions::slice`]; the timer is in `time_slice`, the safe points in `preempt`),
//! a **round-robin** mode ([`RunOptions::round_robin`]: the loop in [`run_with`] puts each
//! hard-interrupted victim back at the end of the run queue and runs again, so the Stackless
//! idiom `while t := run(100): t.insert()` is built in) and **threadblock**
//! ([`RunOptions::threadblock`]): when `run_inline` returns because the run queue emptied
//! while some tasklet here is blocked, `run_with` sleeps on the thread's mailbox (the same
//! sleep as a blocked main tasklet, with deadlock detection) and runs again once mail from
//! another thread made something runnable. It lives here, not in the switch's `block`, so
//! that the block and tasklet-end paths pay nothing for it.

use std::ptr;
use std::time::Duration;

use super::preempt::{Budget, PREEMPT};
use super::time_slice;
use super::watchers::{PopWatchers, Watcher};
use super::{handle, scheduler, Scheduler};
#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;
use crate::tasklet::{Inner, Tasklet};

impl Scheduler {
    pub(super) fn innermost_watchdog_or_main(&self) -> *const Inner {
        let w = self.innermost.get();
        if w.is_null() {
            self.main
        } else {
            w
        }
    }
}

/// Runs the scheduler until the run queue is empty, from any tasklet: the caller leaves the
/// run queue and waits (it is pushed on the watchdog stack), and `run` returns when no
/// tasklet is runnable any more, when someone runs or switches to the caller, or with the
/// error of a tasklet that panicked (the other tasklets stay scheduled). Nested `run` calls
/// are woken innermost first.
///
/// Stackless `run()` with no timeout: [`run_with`]`(RunOptions::new())`, which never
/// returns a tasklet. For a budget (`run(timeout, ...)`), see [`run_with`].
///
/// ```
/// use microthread::{scheduler, spawn, Error};
///
/// // Inside run() the caller (here main) waits outside the run queue: it is not counted.
/// let counted = spawn(scheduler::runcount)?;
/// let failing = spawn(|| -> () { panic!("boom") })?;
/// let later = spawn(|| "after")?;
/// match scheduler::run() {
///     Err(Error::Panicked { tasklet, .. }) => assert_eq!(tasklet, failing.id()),
///     other => panic!("expected the panic, got {other:?}"),
/// }
/// assert_eq!(counted.result::<usize>(), Some(3));
/// assert!(later.scheduled(), "the other tasklets stay scheduled");
/// scheduler::run().unwrap();
/// assert_eq!(later.result::<&str>(), Some("after"));
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// [`Error::Panicked`] and any error delivered to the caller; [`Error::SwitchTrap`],
/// [`Error::Unwinding`], [`Error::RecursiveCallback`] (refused: nothing changed).
pub fn run() -> Result<()> {
    // The same code as `run_with`, with the budget's branches folded away.
    run_inline(RunOptions::new()).map(|_| ())
}

/// How [`run_with`] runs: Stackless's `run(timeout, threadblock, soft, ignore_nesting,
/// totaltimeout)` as a builder. [`RunOptions::new`] is plain `run()`: no budget.
///
/// ```
/// use microthread::scheduler::RunOptions;
///
/// let o = RunOptions::new().ticks(1_000).soft(true).total(true);
/// assert_eq!((o.budget(), o.is_soft(), o.is_total()), (Some(1_000), true, true));
/// assert_eq!(RunOptions::new().ticks(0).budget(), None, "0: no budget, as Stackless's 0");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunOptions {
    ticks: u64,
    soft: bool,
    total: bool,
    slice: Option<Duration>,
    threadblock: bool,
    round_robin: bool,
}

impl RunOptions {
    /// No budget: [`run_with`] behaves as [`run`].
    ///
    /// ```
    /// use microthread::scheduler::RunOptions;
    /// assert_eq!(RunOptions::new().budget(), None);
    /// ```
    pub fn new() -> RunOptions {
        RunOptions::default()
    }

    /// A budget of `n` ticks (Stackless's `timeout`): the running tasklet may pass `n` safe
    /// points ([`tick`](super::tick), scheduler and channel operations); the next one
    /// interrupts it. (Stackless interrupts one tick later: it compares with `>`.) By
    /// default the budget is a timeslice, restarted at every switch to another tasklet; see
    /// [`total`](RunOptions::total). `0` means no budget.
    ///
    /// ```
    /// use microthread::scheduler::{self, run_with, spawn, RunOptions};
    /// // Two tasklets that yield every 10 ticks never use up a timeslice of 50.
    /// for _ in 0..2 {
    ///     spawn(|| for _ in 0..20 { scheduler::ticks(9).unwrap(); scheduler::schedule().unwrap() })?;
    /// }
    /// assert_eq!(run_with(RunOptions::new().ticks(50)).unwrap(), None);
    /// assert_eq!(scheduler::runcount(), 1, "both finished");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn ticks(mut self, n: u64) -> RunOptions {
        self.ticks = n;
        self
    }

    /// Soft interrupts (Stackless's `soft`): a tasklet that uses up its budget is not cut;
    /// at its next switch the watchdog runs instead of whoever would have run next, and
    /// [`run_with`] returns `None` with every tasklet still scheduled. When that switch is a
    /// channel operation switching to the partner it chose (preference), the pending
    /// interrupt passes on to the partner, as in Stackless. A tasklet that never switches
    /// keeps a soft `run_with` from returning.
    ///
    /// ```
    /// use microthread::scheduler::{self, run_with, spawn, RunOptions};
    /// let busy = spawn(|| loop { scheduler::ticks(100).unwrap(); scheduler::schedule().unwrap() })?;
    /// assert_eq!(run_with(RunOptions::new().ticks(10).soft(true)).unwrap(), None);
    /// assert!(busy.scheduled(), "still scheduled");
    /// busy.kill().unwrap();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn soft(mut self, on: bool) -> RunOptions {
        self.soft = on;
        self
    }

    /// One budget for the whole call (Stackless's `totaltimeout`) instead of a timeslice.
    ///
    /// ```
    /// use microthread::scheduler::{self, run_with, spawn, RunOptions};
    /// for _ in 0..2 {
    ///     spawn(|| for _ in 0..20 { scheduler::ticks(9).unwrap(); scheduler::schedule().unwrap() })?;
    /// }
    /// let victim = run_with(RunOptions::new().ticks(50).total(true)).unwrap();
    /// assert!(victim.is_some(), "the budget ran out before they finished");
    /// assert_eq!(scheduler::runcount(), 2, "main and the other one");
    /// victim.unwrap().kill().unwrap();
    /// scheduler::run().unwrap();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn total(mut self, on: bool) -> RunOptions {
        self.total = on;
        self
    }

    /// The tick budget, if any.
    ///
    /// ```
    /// use microthread::scheduler::RunOptions;
    /// assert_eq!(RunOptions::new().ticks(7).budget(), Some(7));
    /// ```
    pub fn budget(&self) -> Option<u64> {
        (self.ticks > 0).then_some(self.ticks)
    }

    /// Whether interrupts are soft.
    ///
    /// ```
    /// use microthread::scheduler::RunOptions;
    /// assert!(!RunOptions::new().is_soft());
    /// ```
    pub fn is_soft(&self) -> bool {
        self.soft
    }

    /// Whether the budget covers the whole call.
    ///
    /// ```
    /// use microthread::scheduler::RunOptions;
    /// assert!(RunOptions::new().total(true).is_total());
    /// ```
    pub fn is_total(&self) -> bool {
        self.total
    }

    /// A wall-clock time slice (which Stackless lacks): the running tasklet is preempted at
    /// its first safe point after running `length` without a switch, hard or
    /// [soft](RunOptions::soft) as for a used-up tick budget, and restarted at every switch
    /// unless [`total`](RunOptions::total). With [`ticks`](RunOptions::ticks) as well,
    /// whichever ends first interrupts. `Duration::ZERO` means no slice. See
    /// [Time slices](run_with#time-slices) for how it is timed and what it costs.
    ///
    /// ```
    /// use microthread::scheduler::{self, run_with, spawn, RunOptions};
    /// use std::time::Duration;
    ///
    /// // A tasklet that never switches: only its safe points let the slice end.
    /// let busy = spawn(|| loop { scheduler::tick().unwrap() })?;
    /// let victim = run_with(RunOptions::new().slice(Duration::from_millis(1))).unwrap();
    /// assert_eq!(victim, Some(busy.clone()), "preempted after about 1 ms");
    /// assert!(busy.paused());
    /// busy.kill().unwrap();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn slice(mut self, length: Duration) -> RunOptions {
        self.slice = (!length.is_zero()).then_some(length);
        self
    }

    /// The time slice, if any.
    ///
    /// ```
    /// use microthread::scheduler::RunOptions;
    /// use std::time::Duration;
    /// let ms = Duration::from_millis(1);
    /// assert_eq!(RunOptions::new().slice(ms).time_slice(), Some(ms));
    /// assert_eq!(RunOptions::new().slice(Duration::ZERO).time_slice(), None);
    /// ```
    pub fn time_slice(&self) -> Option<Duration> {
        self.slice
    }

    /// Stackless's `threadblock`: with a budget or a slice, when every tasklet here waits on
    /// other threads (blocked on a channel another thread will feed, or sleeping), the thread
    /// sleeps until one of them can run, instead of [`run_with`] returning. This holds
    /// whether the last runnable tasklet blocked, ended or paused itself: `run_with` returns
    /// only when no tasklet here is blocked any more. When no other thread could ever wake
    /// one (the thread is the last one awake, where a plain block gets
    /// [`Error::Deadlock`]), `run_with` returns as without the flag, the tasklets still
    /// blocked. Sleepers need no flag: an empty run queue always waits for them. Without a
    /// budget or a slice it has no effect, as in Stackless (only the interrupt watchdog's
    /// flags count: a nested `run_with` ignores it).
    ///
    /// ```
    /// use microthread::scheduler::{self, run_with, spawn, RunOptions};
    /// use microthread::Channel;
    ///
    /// let ch = Channel::<u32>::new();
    /// let rx = ch.clone();
    /// let t = spawn(move || rx.receive().unwrap())?;
    /// // No timeout: no effect, run_with returns with `t` blocked.
    /// assert_eq!(run_with(RunOptions::new().threadblock(true)).unwrap(), None);
    /// assert!(t.blocked());
    /// let (ready_tx, ready) = std::sync::mpsc::channel();
    /// let feeder = std::thread::spawn(move || {
    ///     scheduler::init_thread(); // counted awake before the other thread waits
    ///     ready_tx.send(()).unwrap();
    ///     std::thread::sleep(std::time::Duration::from_millis(20));
    ///     ch.send(7).unwrap();
    /// });
    /// ready.recv().unwrap();
    /// // With a timeout: the thread sleeps until the value arrives and `t` finishes.
    /// assert_eq!(run_with(RunOptions::new().ticks(1_000_000).threadblock(true)).unwrap(), None);
    /// assert_eq!(t.result::<u32>(), Some(7));
    /// feeder.join().unwrap();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn threadblock(mut self, on: bool) -> RunOptions {
        self.threadblock = on;
        self
    }

    /// Whether `threadblock` is set.
    ///
    /// ```
    /// use microthread::scheduler::RunOptions;
    /// assert!(RunOptions::new().threadblock(true).is_threadblock());
    /// ```
    pub fn is_threadblock(&self) -> bool {
        self.threadblock
    }

    /// Round-robin mode (which Stackless users write by hand: `run(100)` in a loop that
    /// re-inserts each interrupted tasklet): [`run_with`] puts every hard-interrupted
    /// tasklet back at the end of the run queue itself and carries on, with a new budget
    /// and slice, so CPU-bound tasklets share the thread fairly. It then never returns a
    /// tasklet: it returns `None` when the run queue is empty (every tasklet finished,
    /// blocked or paused, as [`run`]) or when someone runs or switches to the caller, and
    /// with an error as `run` does. With [`soft`](RunOptions::soft) interrupts, or with
    /// neither a budget nor a slice, it changes nothing.
    ///
    /// ```
    /// use microthread::scheduler::{self, run_with, spawn, RunOptions};
    /// use std::{cell::Cell, rc::Rc};
    ///
    /// let counts: Vec<Rc<Cell<u32>>> = (0..3).map(|_| Rc::new(Cell::new(0))).collect();
    /// for c in &counts {
    ///     let c = c.clone();
    ///     // CPU-bound: never yields, only passes safe points.
    ///     spawn(move || for _ in 0..1_000 { c.set(c.get() + 1); scheduler::tick().unwrap() })?;
    /// }
    /// let o = RunOptions::new().ticks(100).round_robin(true);
    /// assert_eq!(run_with(o).unwrap(), None, "all finished");
    /// assert!(counts.iter().all(|c| c.get() == 1_000));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn round_robin(mut self, on: bool) -> RunOptions {
        self.round_robin = on;
        self
    }

    /// Whether round-robin mode is on.
    ///
    /// ```
    /// use microthread::scheduler::RunOptions;
    /// assert!(RunOptions::new().round_robin(true).is_round_robin());
    /// ```
    pub fn is_round_robin(&self) -> bool {
        self.round_robin
    }

    /// Whether `run_with` with these options would become the interrupt watchdog (if the
    /// slot is free): a budget or a slice.
    #[inline(always)]
    fn interrupts(&self) -> bool {
        self.ticks > 0 || self.slice.is_some()
    }
}

/// Stackless's `run(timeout, threadblock, soft, ignore_nesting, totaltimeout)`: runs the
/// scheduler as [`run`] does, and with a budget ([`RunOptions::ticks`]) it becomes the
/// thread's *interrupt watchdog* if there is none yet (the outermost active `run_with` with
/// a budget; a nested one behaves as [`run`]).
///
/// Hard mode (the default): the tasklet that uses up the budget is interrupted at its safe
/// point, removed from the run queue and returned, paused; after
/// [`insert`](Tasklet::insert) it resumes exactly where it was (inside that `tick()`).
/// Returns `None` when the run queue emptied (or someone ran the caller) first. An
/// interrupt deferred by [`atomic`](super::atomic) fires at the first safe point after the
/// section; one deferred by a callback or a [`switch_trap`](super::switch_trap) restarts the
/// budget and fires when that runs out, as in Stackless (see [`tick`](super::tick)'s module).
/// When the interrupt watchdog leaves the watchdog stack (an outer `run` was woken and
/// popped it), its budget ends with it. See the [`preempt`](super::tick) docs for what a
/// safe point is.
///
/// ```
/// use microthread::scheduler::{self, run_with, spawn, RunOptions};
/// use std::{cell::Cell, rc::Rc};
///
/// let progress = Rc::new(Cell::new(0u32));
/// let p = progress.clone();
/// let busy = spawn(move || for i in 1..=100 { p.set(i); scheduler::tick().unwrap() })?;
/// let victim = run_with(RunOptions::new().ticks(10)).unwrap().expect("interrupted");
/// assert_eq!(victim, busy);
/// assert!(victim.paused() && progress.get() < 100);
/// victim.insert().unwrap();
/// scheduler::run().unwrap(); // no budget: it finishes where it left off
/// assert_eq!(progress.get(), 100);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// `threadblock` is [`RunOptions::threadblock`]; `ignore_nesting` needs none: every safe
/// point is at nesting level zero.
///
/// # Time slices
/// [`RunOptions::slice`] adds a wall-clock limit, which Stackless lacks: one timer thread
/// per process (started by the first slice, asleep while no thread has one) marks a slice
/// that ran out, and the next safe point of the running tasklet sees it in the same one
/// load that [`tick`](super::tick) does anyway, so safe points cost nothing more for it.
/// The slice restarts at every switch (unless [`RunOptions::total`]), which reads the clock
/// (about 20 ns) while a slice is active; without one nothing reads the clock and no timer
/// wakes. How late the interrupt lands is the timer thread's wake-up latency plus the time
/// to the victim's next safe point (report row `slice_overrun_us_p99`; on a machine whose
/// cores are all busy the timer thread waits for a core, and slices run long). Code that
/// reaches no safe point is not preempted, as with tick budgets.
///
/// ```
/// use microthread::scheduler::{self, run_with, spawn, RunOptions};
/// use std::time::Duration;
///
/// // Round robin with 1 ms slices: three CPU-bound tasklets share the thread.
/// let done: Vec<_> = (0..3)
///     .map(|_| spawn(|| {
///         let start = std::time::Instant::now();
///         while start.elapsed() < Duration::from_millis(5) {
///             scheduler::tick().unwrap();
///         }
///     }))
///     .collect::<Result<_, _>>()?;
/// let o = RunOptions::new().slice(Duration::from_millis(1)).round_robin(true);
/// assert_eq!(run_with(o).unwrap(), None);
/// assert!(done.iter().all(|t| !t.alive()));
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// As [`run`]; with a slice, also [`Error::SchedulerEnded`] while this thread's
/// thread-locals are being destroyed (the slice could not be unregistered at its exit).
///
/// # Panics
/// With a slice, if the process's slice timer thread cannot be started (as
/// [`std::thread::spawn`]).
pub fn run_with(options: RunOptions) -> Result<Option<Tasklet>> {
    loop {
        let threadblock = options.threadblock && options.interrupts() && watchdog_slot_free();
        let victim = run_inline(options)?;
        if victim.is_null() {
            // Alone in the run queue: it emptied (else someone ran the caller explicitly).
            let s = scheduler();
            if threadblock && s.runcount.get() == 1 && s.wait_for_other_threads_to_feed() {
                continue;
            }
            return Ok(None);
        }
        if !options.round_robin {
            // SAFETY: a non-null victim is a live tasklet of this thread (see `run_inline`).
            return Ok(Some(unsafe { handle(victim) }));
        }
        // Round robin: the victim goes to the end of the run queue, and on we go.
        // SAFETY: a live, paused tasklet of this thread (see `run_inline`): floating.
        unsafe { scheduler().ring_insert(victim) };
    }
}

/// Whether no interrupt watchdog is installed on this thread: a `run_with` with a budget or
/// a slice would become it.
fn watchdog_slot_free() -> bool {
    PREEMPT.with(|p| p.slot0.get().is_null())
}

impl Scheduler {
    /// `threadblock`: a `run_with` that was the interrupt watchdog returned because the run
    /// queue emptied. While some tasklet here is blocked on a channel (its partner may be on
    /// another thread) and the caller is alone in the run queue (nobody ran it explicitly),
    /// sleeps until another thread's mail makes something runnable here: true, run again.
    /// False when nothing waits, or no other thread is awake to help (a plain block would
    /// get [`Error::Deadlock`]): `run_with` returns as without the flag.
    ///
    /// Sleepers need nothing here: a run queue with sleepers never empties into `run_with`
    /// (the thread waits for the earliest deadline first).
    #[cold]
    #[inline(never)]
    fn wait_for_other_threads_to_feed(&self) -> bool {
        loop {
            if !self.some_tasklet_blocked() || self.shared.sleep().is_err() {
                return false;
            }
            self.read_mail();
            self.expire_timers_if_any();
            if self.runcount.get() > 1 {
                return true;
            }
        }
    }

    /// Whether a live tasklet of this thread is blocked (on a channel, or asleep).
    fn some_tasklet_blocked(&self) -> bool {
        let mut p = self.all.get();
        while !p.is_null() {
            // SAFETY: list members are live tasklets of this thread.
            unsafe {
                if (*p).blocked.get() != 0 && (*p).alive() {
                    return true;
                }
                p = (*p).all_next.get();
            }
        }
        false
    }
}

/// `run_with`, returning the hard-interrupted victim as a pointer (null if none): a live
/// tasklet of this thread, paused.
#[inline(always)]
fn run_inline(options: RunOptions) -> Result<*const Inner> {
    let s = scheduler();
    s.op_tick()?;
    let me = s.current.get();
    // With nothing else runnable it returns at once, without switching.
    // SAFETY: `me` is running, in the ring.
    let switching = unsafe { (*me).next.get() } != me;
    s.refuse_switch(switching)?;
    let irq = options.interrupts() && PREEMPT.with(|p| p.slot0.get().is_null());
    if irq && options.slice.is_some() {
        // The timer thread runs, and this thread can unregister at its exit.
        time_slice::prepare()?;
    }
    let node = Watcher::new(me);
    // Popped when `run` returns, and also when a kill unwinds the caller out of it (the
    // guard's `Drop`), before the node's frame goes.
    // SAFETY: `node` stays in this frame, which the guard lives in; `me` is running, and on
    // no node (it is not suspended in another `run`).
    let pop = unsafe { PopWatchers::push(s, &node) };
    if irq {
        s.install_watchdog(
            me,
            &Budget {
                ticks: options.ticks,
                soft: options.soft,
                total: options.total,
                slice: options.slice,
            },
        );
    }
    // SAFETY: `me` is running: current, in the ring.
    unsafe { s.ring_remove_current_as(me, crate::tasklet::RemoteState::ALIVE) };
    // Before the next tasklet is chosen: a remote run's target runs first.
    s.read_mail_after_leaving();
    let next = s.current.get();
    let result = if switching && s.hooks.get() == 0 {
        // The common case, with what `switch_after_mail` would test again left out: no hook
        // is on (looked at after the mail), `next` is the current tasklet (null or in the
        // ring), and `refuse_switch(true)` above found the stack not unwinding, which nothing
        // since could change (no user code ran). `next` may be `me` if the mail woke it back
        // into the ring: tested (`MAY_BE_PREV`).
        // SAFETY: `me` is running; `next` (if any) is a ring member; as just said.
        unsafe { s.switch_quiet::<true, true>(me, next) }
    } else {
        // SAFETY: `me` is running; `next` (if any) is a ring member.
        unsafe { s.switch_after_mail(me, next) }
    };
    // Popped here, inline (the guard's `Drop` is for a kill's unwinding); on each arm, so
    // that the common `Ok` is not kept in memory across the pop.
    let victim = if irq {
        PREEMPT.with(|p| p.interrupted.replace(ptr::null()))
    } else {
        ptr::null()
    };
    if let Err(e) = result {
        pop.pop();
        std::mem::forget(pop);
        return Err(e);
    }
    pop.pop();
    std::mem::forget(pop);
    if victim.is_null() || options.soft {
        return Ok(ptr::null());
    }
    // SAFETY: the victim was running when it was interrupted, just before this resumed: a
    // live tasklet of this thread.
    unsafe {
        if (*victim).in_ring() {
            s.ring_remove(victim);
        }
    }
    Ok(victim)
}
