//! The timer queue: tasklets asleep in [`sleep`] / [`sleep_until`] and receives waiting
//! with a deadline (`receive_timeout`), in deadline order, and where the scheduler looks at
//! it.
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
//!   is a plain [`schedule`](super::schedule): the caller goes to the end of the run queue.
//! - **When the scheduler looks.** Reading the clock costs about 20 ns, too much for every
//!   switch. With an empty timer queue a switch pays one load of a counter that is zero.
//!   With sleepers, every switch counts it down and every 32nd switch reads the clock and
//!   moves the expired sleepers into the run queue; and whenever the run queue empties
//!   (everything else blocked, paused or asleep) the scheduler reads the clock at once. A
//!   tasklet that never switches is never interrupted for a sleeper (as for preemption: there
//!   is no safe point in native code that reaches no scheduler call).
//! - **Waiting.** When nothing is runnable and some tasklet sleeps, the thread sleeps until
//!   the earliest deadline (a timed wait on the futex word that mail from other
//!   threads signals: such mail wakes it early), then continues. [`run`](super::run) and a
//!   main tasklet that blocks do not return or fail meanwhile: a sleeper always wakes, so
//!   while one sleeps there is no [`Error::Deadlock`], on this thread or on threads waiting
//!   for it (it counts as awake).
//! - **Receive with a timeout.** `Channel::receive_timeout` blocks on the channel *and*
//!   puts a deadline here; when the deadline comes first, the receiver leaves the channel's
//!   queue (under the channel's lock, so its balance and queue are as if it never came) and
//!   its call returns [`Error::Timeout`]. A sender that took it out of the queue first (on
//!   another thread, under the same lock) has delivered: the receive returns the value.
//!
//! The queue is a binary min-heap of (deadline, sequence) with lazy deletion: a tasklet woken
//! another way (a kill, a throw, the partner of its receive) leaves its entry behind, which
//! names the tasklet's blocking episode (`Inner::block_epoch`) and so is recognised as stale
//! and skipped (and compacted away when such entries pile up). The scheduler's hot paths do
//! not touch the queue at all.
//!
//! ```
//! use microthread::scheduler::{self, spawn};
//! use std::{cell::RefCell, rc::Rc, time::{Duration, Instant}};
//!
//! let log = Rc::new(RefCell::new(Vec::new()));
//! let base = Instant::now();
//! for (name, ms) in [("slow", 300), ("fast", 100)] {
//!     let log = log.clone();
//!     spawn(move || {
//!         scheduler::sleep_until(base + Duration::from_millis(ms)).unwrap();
//!         log.borrow_mut().push(name);
//!     })?;
//! }
//! scheduler::run().unwrap(); // waits (without spinning) until both have slept
//! assert_eq!(*log.borrow(), ["fast", "slow"]);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! [`Tasklet::blocked`]: crate::Tasklet::blocked
//! [`Tasklet::sleeping`]: crate::Tasklet::sleeping
//! [`RemoteTasklet::blocked`]: super::RemoteTasklet::blocked
//! [`Error::RunBlocked`]: crate::Error::RunBlocked
//! [`Error::RemoveBlocked`]: crate::Error::RemoveBlocked
//! [`Error::Deadlock`]: crate::Error::Deadlock
//! [`Error::Timeout`]: crate::Error::Timeout

use crate::tasklet::Record;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use super::{scheduler, Scheduler};
use crate::error::{Error, Result};
use crate::tasklet::{Inner, Pending, RemoteState, SLEEPING};

/// With sleepers, the clock is read at every this many switches.
const POLL_EVERY: u32 = 32;

/// One deadline: a sleeper, or a receive with a timeout.
struct Entry {
    deadline: Instant,
    /// Ties in deadline order: the order they were queued.
    seq: u64,
    /// The tasklet's blocking episode when it was queued: the entry is stale once that ended.
    epoch: u64,
    /// A counted reference: the entry may outlive the episode (lazy deletion).
    tasklet: Record,
}

impl Entry {
    /// Whether the tasklet is still in the blocking episode this entry was made for.
    fn live(&self) -> bool {
        let t = &*self.tasklet;
        t.blocked.get() != 0 && t.block_epoch.get() == self.epoch && t.alive()
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest deadline first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.deadline, other.seq).cmp(&(self.deadline, self.seq))
    }
}

/// A thread's timer queue (see the module docs).
pub(super) struct Timers {
    heap: BinaryHeap<Entry>,
    next_seq: u64,
    /// Compact (drop stale entries) when the heap grows to this size.
    compact_at: usize,
}

impl Timers {
    pub(super) const fn new() -> Timers {
        Timers {
            heap: BinaryHeap::new(),
            next_seq: 0,
            compact_at: 64,
        }
    }
}

impl Scheduler {
    /// The deadline of every tasklet still in the blocking episode it was queued for (for
    /// `dump`); empty if the queue is borrowed.
    pub(super) fn live_deadlines(&self) -> Vec<(*const Inner, Instant)> {
        let Ok(timers) = self.timers.try_borrow() else {
            return Vec::new();
        };
        timers
            .heap
            .iter()
            .filter(|e| e.live())
            .map(|e| (Record::as_ptr(&e.tasklet), e.deadline))
            .collect()
    }

    /// Puts the running tasklet `me`, in its blocking episode `epoch`, on the timer queue.
    ///
    /// # Safety
    /// - `me` must be a live tasklet of this scheduler.
    pub(crate) unsafe fn add_timer(&self, me: *const Inner, deadline: Instant, epoch: u64) {
        // SAFETY: live (caller's obligation); the entry takes a counted reference.
        let tasklet = unsafe {
            Record::increment_strong_count(me);
            Record::from_raw(me)
        };
        let mut t = self.timers.borrow_mut();
        let seq = t.next_seq;
        t.next_seq += 1;
        if t.heap.len() >= t.compact_at {
            t.heap.retain(Entry::live);
            t.compact_at = (t.heap.len() * 2).max(64);
        }
        t.heap.push(Entry {
            deadline,
            seq,
            epoch,
            tasklet,
        });
        drop(t);
        if self.timer_poll.get() == 0 {
            self.timer_poll.set(POLL_EVERY);
        }
    }

    /// The check on every switch: nothing but one load unless the timer queue has entries.
    #[inline(always)]
    pub(super) fn poll_timers(&self) {
        if self.timer_poll.get() != 0 {
            self.poll_timers_slow();
        }
    }

    #[cold]
    #[inline(never)]
    fn poll_timers_slow(&self) {
        let c = self.timer_poll.get();
        if c > 1 {
            self.timer_poll.set(c - 1);
        } else {
            self.expire_timers();
        }
    }

    /// Moves every tasklet whose deadline has passed to the end of the run queue, in deadline
    /// order; a receive that timed out leaves its channel with [`Error::Timeout`] pending.
    /// Runs no user code. Only where the scheduler's state is whole (at a switch).
    #[cold]
    #[inline(never)]
    pub(super) fn expire_timers(&self) {
        if self.timers.borrow().heap.is_empty() {
            self.timer_poll.set(0);
            return;
        }
        let now = Instant::now();
        loop {
            let entry = {
                let mut t = self.timers.borrow_mut();
                match t.heap.peek() {
                    Some(e) if e.deadline <= now => t.heap.pop(),
                    _ => None,
                }
            };
            let Some(e) = entry else { break };
            if e.live() {
                // SAFETY: a live entry's tasklet is alive, of this thread, and blocked.
                unsafe { self.wake_sleeper(Record::as_ptr(&e.tasklet)) };
            }
        }
        let empty = self.timers.borrow().heap.is_empty();
        self.timer_poll.set(if empty { 0 } else { POLL_EVERY });
    }

    /// A deadline came: a sleeper goes to the end of the run queue; a receive with a
    /// timeout gets [`Error::Timeout`] and is let go of by its channel (or, if a partner on
    /// another thread completed it first, keeps the value: see the channel's `block`).
    ///
    /// # Safety
    /// - `t` must be a live, blocked tasklet of this scheduler.
    unsafe fn wake_sleeper(&self, t: *const Inner) {
        // SAFETY: caller's obligation.
        let tr = unsafe { &*t };
        if tr.blocked.get() == SLEEPING {
            tr.blocked.set(0);
            // SAFETY: live, of this thread, in no queue.
            unsafe { self.ring_insert(t) };
        } else {
            if let Some(lost) = tr.set_pending(Pending::Error(Error::Timeout)) {
                self.defer_drop(lost);
            }
            // SAFETY: live, of this thread.
            unsafe { self.make_runnable(t) };
        }
    }

    /// The run queue is empty: if some entry is live, sleeps until the earliest deadline (or
    /// until mail arrives) and returns true; false if nobody waits for a deadline. Stale
    /// entries at the front are dropped first, so a deadline waited for is a real one.
    #[inline(always)]
    pub(super) fn wait_for_timer(&self) -> bool {
        // Zero only while the queue is empty: one load when nobody sleeps.
        self.timer_poll.get() != 0 && self.wait_for_timer_slow()
    }

    #[cold]
    #[inline(never)]
    fn wait_for_timer_slow(&self) -> bool {
        let deadline = {
            let mut t = self.timers.borrow_mut();
            loop {
                match t.heap.peek() {
                    None => break None,
                    Some(e) if e.live() => break Some(e.deadline),
                    Some(_) => {
                        t.heap.pop();
                    }
                }
            }
        };
        match deadline {
            None => {
                self.timer_poll.set(0);
                false
            }
            Some(d) => {
                self.shared.sleep_until(d);
                true
            }
        }
    }

    /// Expires what is due, if the timer queue has entries: for a run queue that just emptied.
    #[inline(always)]
    pub(super) fn expire_timers_if_any(&self) {
        if self.timer_poll.get() != 0 {
            self.expire_timers();
        }
    }
}

/// Sleeps for `duration`: the calling tasklet leaves the run queue and the others run; it
/// goes to the end of the run queue once the time has passed (see [Sleeping](crate::scheduler#sleeping)
/// for what it is meanwhile, and how soon it wakes). `sleep(Duration::ZERO)` is a
/// [`schedule`](super::schedule). A duration too long for the clock sleeps about a century.
///
/// ```
/// use microthread::scheduler::{self, spawn};
/// use std::time::{Duration, Instant};
///
/// let start = Instant::now();
/// let sleeper = spawn(|| scheduler::sleep(Duration::from_millis(10)).unwrap())?;
/// let busy = spawn(|| "ran while the other slept")?;
/// scheduler::schedule().unwrap(); // the sleeper goes to sleep, `busy` runs
/// assert!(sleeper.blocked() && sleeper.sleeping() && !busy.alive());
/// scheduler::run().unwrap(); // waits for the sleeper
/// assert!(!sleeper.alive() && start.elapsed() >= Duration::from_millis(10));
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// As a channel receive that would block: [`Error::BlockTrap`], [`Error::SwitchTrap`],
/// [`Error::Unwinding`], [`Error::RecursiveCallback`], [`Error::SchedulerEnded`] (refused:
/// nothing changed), an error pending for the caller (delivered instead), or an error thrown
/// into it while it sleeps.
///
/// [`Error::BlockTrap`]: crate::Error::BlockTrap
/// [`Error::SwitchTrap`]: crate::Error::SwitchTrap
/// [`Error::Unwinding`]: crate::Error::Unwinding
/// [`Error::RecursiveCallback`]: crate::Error::RecursiveCallback
/// [`Error::SchedulerEnded`]: crate::Error::SchedulerEnded
pub fn sleep(duration: Duration) -> Result<()> {
    if duration.is_zero() {
        return super::schedule();
    }
    sleep_until(deadline_after(duration))
}

/// The deadline `duration` from now, or about a century from now if the clock cannot
/// represent it.
pub(crate) fn deadline_after(duration: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(duration)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(now)
}

/// Sleeps until `deadline` (the deadline form of [`sleep`]); a deadline already past is a
/// [`schedule`](super::schedule).
///
/// ```
/// use microthread::scheduler::{self, spawn};
/// use std::time::{Duration, Instant};
///
/// let at = Instant::now() + Duration::from_millis(5);
/// let t = spawn(move || {
///     scheduler::sleep_until(at).unwrap();
///     Instant::now() >= at
/// })?;
/// scheduler::run().unwrap();
/// assert_eq!(t.result::<bool>(), Some(true));
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// As [`sleep`].
pub fn sleep_until(deadline: Instant) -> Result<()> {
    if deadline <= Instant::now() {
        return super::schedule();
    }
    let s = scheduler();
    let me = s.current.get();
    // SAFETY: the running tasklet is live.
    let m = unsafe { &*me };
    if m.block_trap.get() {
        return Err(Error::BlockTrap);
    }
    // Everything that can refuse is checked before anything changes.
    s.refuse_block(m)?;
    let epoch = s.new_block_epoch(m);
    m.blocked.set(SLEEPING);
    // SAFETY: `me` is the running tasklet, live, of this thread, in the ring; its entry names
    // this episode, so a wake for an earlier one cannot end it.
    unsafe {
        s.add_timer(me, deadline, epoch);
        s.ring_remove_as(me, RemoteState::ALIVE | RemoteState::BLOCKED);
        s.read_mail_after_leaving();
        s.switch_after_mail(me, s.current.get())
    }
}
