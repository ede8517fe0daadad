//! Callbacks and the switch trap: the schedule callback (called before every switch), the
//! channel callback (called before every channel action; the channel's own types for it live
//! here, so that the scheduler does not depend on the channel module), and [`switch_trap`].

use std::any::Any;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use super::{current, handle, scheduler, Scheduler};

/// The bit of the scheduler's hooks word set while a channel callback is installed or runs:
/// it takes every channel operation off its fast path, and is ignored by switches.
pub(super) const CHANNEL_HOOK: u32 = 1 << 5;
use crate::error::{Error, Result, TaskletExit};
use crate::tasklet::{Inner, Tasklet};

/// A schedule callback: called with (previous, next) before every switch; see
/// [`set_schedule_callback`].
pub type ScheduleCallback = Rc<dyn Fn(&Tasklet, &Tasklet)>;

/// A channel, whatever its kind and item type, as a [`ChannelEvent`] shows it: the queries
/// of [`Channel`](crate::channel::Channel), [`LocalChannel`](crate::channel::LocalChannel) and
/// [`BufferedChannel`](crate::channel::BufferedChannel) (each method does what the channel
/// method of the same name does), and [`downcast_ref`](AnyChannel#method.downcast_ref) to the
/// channel itself. Implemented by those three types only.
///
/// ```
/// use microthread::channel::{AnyChannel, Channel, LocalChannel};
///
/// let ch = Channel::<u32>::new();
/// ch.close();
/// let any: &dyn AnyChannel = &ch;
/// assert_eq!((any.id(), any.balance(), any.preference()), (ch.id(), 0, -1));
/// assert!(any.closing() && any.closed() && !any.schedule_all());
/// assert!(any.queue().is_empty() && any.queue_tasklets().is_empty());
/// assert_eq!((any.len(), any.capacity(), any.is_empty()), (0, 0, true)); // no buffer
/// assert_eq!(any.downcast_ref::<Channel<u32>>().map(|c| c.id()), Some(ch.id()));
/// assert!(any.downcast_ref::<Channel<u64>>().is_none());
/// assert!(any.downcast_ref::<LocalChannel<u32>>().is_none());
/// ```
pub trait AnyChannel: sealed::SealedChannel + Any + fmt::Debug {
    /// The channel's id.
    fn id(&self) -> u64;
    /// Senders waiting (positive) or receivers waiting (negative).
    fn balance(&self) -> isize;
    /// -1, 0 or +1.
    fn preference(&self) -> i8;
    /// Whether every rendezvous makes the caller yield.
    fn schedule_all(&self) -> bool;
    /// Whether the channel is closing.
    fn closing(&self) -> bool;
    /// Closing and nobody waits.
    fn closed(&self) -> bool;
    /// The ids of the blocked tasklets, head first.
    fn queue(&self) -> Vec<u64>;
    /// Handles of the blocked tasklets of the calling thread, head first.
    fn queue_tasklets(&self) -> Vec<Tasklet>;
    /// How many values its buffer holds (a
    /// [`BufferedChannel`](crate::channel::BufferedChannel)'s; 0 for the others).
    fn len(&self) -> usize;
    /// How many values its buffer holds at most (0 without a buffer).
    fn capacity(&self) -> usize;
    /// Whether its buffer holds no value (`len() == 0`).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The channel as `Any`, for [`downcast_ref`](AnyChannel#method.downcast_ref).
    fn as_any(&self) -> &dyn Any;
}

impl dyn AnyChannel + '_ {
    /// The channel itself, if it is a `C` (a `Channel<T>` or a `LocalChannel<T>` of the right
    /// `T`); clone it to keep it.
    ///
    /// ```
    /// use microthread::channel::{AnyChannel, LocalChannel};
    /// use std::rc::Rc;
    ///
    /// let ch = LocalChannel::<Rc<u8>>::new();
    /// let any: &dyn AnyChannel = &ch;
    /// let kept: LocalChannel<Rc<u8>> = any.downcast_ref::<LocalChannel<Rc<u8>>>().unwrap().clone();
    /// assert_eq!(kept.id(), ch.id());
    /// ```
    pub fn downcast_ref<C: AnyChannel>(&self) -> Option<&C> {
        self.as_any().downcast_ref::<C>()
    }
}

mod sealed {
    /// Only the channel module's types are channels.
    pub trait SealedChannel {}
}
pub(crate) use sealed::SealedChannel;

/// What a channel callback is told, before each channel operation of its thread (Stackless
/// passes `(channel, tasklet, sending, will_block)`).
///
/// ```
/// use microthread::channel::{self, Channel};
/// use std::{cell::RefCell, rc::Rc};
///
/// let seen = Rc::new(RefCell::new(Vec::new()));
/// let log = seen.clone();
/// channel::set_channel_callback(Some(Rc::new(move |ev: &channel::ChannelEvent<'_>| {
///     let ch = ev.channel.downcast_ref::<Channel<u32>>().expect("a Channel<u32>");
///     log.borrow_mut().push((ch.id(), ev.channel.balance(), ev.sending, ev.will_block));
/// })));
/// let ch = Channel::<u32>::new();
/// let rx = ch.clone();
/// microthread::spawn(move || rx.receive().unwrap())?;
/// microthread::scheduler::run().unwrap(); // the receiver blocks
/// ch.send(5).unwrap();
/// channel::set_channel_callback(None);
/// assert_eq!(*seen.borrow(), [(ch.id(), 0, false, true), (ch.id(), -1, true, false)]);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct ChannelEvent<'a> {
    /// The channel: query it, or [`downcast_ref`](AnyChannel#method.downcast_ref) it to its
    /// own type.
    pub channel: &'a dyn AnyChannel,
    /// The tasklet acting.
    pub tasklet: Tasklet,
    /// Sending (true) or receiving.
    pub sending: bool,
    /// Whether the operation will block (no partner waits).
    pub will_block: bool,
}

/// A channel callback; see [`set_channel_callback`](crate::channel::set_channel_callback).
pub type ChannelCallback = Rc<dyn Fn(&ChannelEvent<'_>)>;

/// What the channel tells [`Scheduler::before_channel_action`] about its action, if a
/// callback is installed.
pub(crate) struct ChannelInfo<'a> {
    pub(crate) channel: &'a dyn AnyChannel,
    pub(crate) sending: bool,
    pub(crate) will_block: bool,
}

impl Scheduler {
    /// Whether a channel callback is installed, or one is running.
    #[inline]
    pub(crate) fn channel_hooks(&self) -> bool {
        self.channel_hooks.get()
    }

    /// Calls the channel callback (if any) before a channel action of the current tasklet.
    #[cold]
    pub(crate) fn before_channel_action<'c>(
        &self,
        info: impl FnOnce() -> ChannelInfo<'c>,
    ) -> Result<()> {
        if self.in_channel_callback.get() {
            return Err(Error::RecursiveChannelCallback);
        }
        // A counted reference: the callback may replace itself while it runs.
        let Some(cb) = self.channel_callback() else {
            return Ok(());
        };
        let info = info();
        let event = ChannelEvent {
            channel: info.channel,
            tasklet: current(),
            sending: info.sending,
            will_block: info.will_block,
        };
        self.in_channel_callback.set(true);
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| cb(&event)));
        self.in_channel_callback.set(false);
        self.refresh_channel_hooks();
        // The last reference if the callback replaced itself: its drop is user code, and runs
        // with the scheduler's state whole.
        drop(cb);
        match outcome {
            // The callback may switch (only channel operations are refused inside it), so a
            // kill can reach the tasklet in there: it is never swallowed. The channel
            // operation has not started, so it unwinds without a trace.
            Err(p) if p.is::<TaskletExit>() => panic::resume_unwind(p),
            // Stackless prints and ignores an error in the callback; the panic hook printed.
            _ => Ok(()),
        }
    }

    /// The installed channel callback (a new reference to it).
    pub(crate) fn channel_callback(&self) -> Option<ChannelCallback> {
        let cb = self.channel_callback.take();
        let copy = cb.clone();
        self.channel_callback.set(cb);
        copy
    }

    pub(crate) fn set_channel_callback(
        &self,
        callback: Option<ChannelCallback>,
    ) -> Option<ChannelCallback> {
        let old = self.channel_callback.replace(callback);
        self.refresh_channel_hooks();
        old
    }

    pub(super) fn refresh_channel_hooks(&self) {
        let cb = self.channel_callback.take();
        self.channel_hooks
            .set(cb.is_some() || self.in_channel_callback.get());
        self.channel_callback.set(cb);
        // The hooks word carries it too (`CHANNEL_HOOK`): a channel operation tests that one
        // word for everything that takes it off its fast path.
        self.refresh_hooks();
    }

    pub(super) fn call_callback(&self, prev: *const Inner, next: *const Inner) {
        let Some(cb) = self.schedule_callback() else {
            return;
        };
        // SAFETY: both are live tasklets of this thread.
        let (p, n) = unsafe { (handle(prev), handle(next)) };
        self.in_callback.set(true);
        self.refresh_hooks();
        // Stackless prints and ignores an error in the callback; the panic hook has printed.
        let _ = panic::catch_unwind(AssertUnwindSafe(|| cb(&p, &n)));
        self.in_callback.set(false);
        self.refresh_hooks();
        // The callback stays installed while it runs (this is a clone); if it replaced itself,
        // this clone is the last one, and its `Drop` (user code) waits for a safe point: the
        // switch around this call is half done.
        if Rc::strong_count(&cb) == 1 {
            self.defer_drop(Box::new(cb));
        }
    }

    /// The installed schedule callback, cloned.
    pub(super) fn schedule_callback(&self) -> Option<ScheduleCallback> {
        // The cell is only swapped, never borrowed.
        let cb = self.callback.take();
        self.callback.set(cb.clone());
        cb
    }
}

/// Adds `change` to this thread's switch-trap level and returns the old level;
/// `switch_trap(0)` only reads it. While the level is non-zero, every switch to another
/// tasklet fails with [`Error::SwitchTrap`]; operations that do not switch still work.
///
/// ```
/// use microthread::{scheduler, spawn, Error};
///
/// let t = spawn(|| ())?;
/// assert_eq!(scheduler::switch_trap(1), 0, "returns the old level");
/// assert!(matches!(scheduler::schedule(), Err(Error::SwitchTrap)));
/// assert!(t.alive() && t.scheduled(), "refused: nothing changed");
/// assert_eq!(scheduler::switch_trap(0), 1, "0 only reads it");
/// assert_eq!(scheduler::switch_trap(-1), 1);
/// scheduler::run().unwrap();
/// assert!(!t.alive());
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Panics
/// If the level would overflow an `i32` (it is left unchanged).
pub fn switch_trap(change: i32) -> i32 {
    let s = scheduler();
    let old = s.switch_trap.get();
    let Some(new) = old.checked_add(change) else {
        panic!("switch_trap({change}): the switch-trap level {old} would overflow an i32");
    };
    s.switch_trap.set(new);
    s.refresh_hooks();
    old
}

/// Installs `callback`, called with (previous, next) before every switch of this thread,
/// and returns the previous one (`None` removes it). A panic in the callback is ignored
/// (after the panic hook reports it); a scheduler operation from inside it fails with
/// [`Error::RecursiveCallback`]. A callback may replace or remove itself; the call in
/// progress finishes with the callback it started with.
///
/// ```
/// use microthread::scheduler::{self, set_schedule_callback, spawn};
/// use std::{cell::RefCell, rc::Rc};
///
/// let switches = Rc::new(RefCell::new(Vec::new()));
/// let s = switches.clone();
/// set_schedule_callback(Some(Rc::new(move |prev, next| {
///     s.borrow_mut().push((prev.is_main(), next.is_main()));
/// })));
/// spawn(|| ())?;
/// scheduler::run().unwrap();
/// set_schedule_callback(None);
/// // main -> the tasklet, then the dying tasklet -> main.
/// assert_eq!(*switches.borrow(), [(true, false), (false, true)]);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn set_schedule_callback(callback: Option<ScheduleCallback>) -> Option<ScheduleCallback> {
    let s = scheduler();
    let old = s.callback.replace(callback);
    s.refresh_hooks();
    old
}

/// This thread's schedule callback, if one is installed: the one given to
/// [`set_schedule_callback`] (`Rc::ptr_eq` with it).
///
/// ```
/// use microthread::scheduler::{schedule_callback, set_schedule_callback, ScheduleCallback};
/// use std::rc::Rc;
///
/// let cb: ScheduleCallback = Rc::new(|_, _| ());
/// set_schedule_callback(Some(cb.clone()));
/// assert!(Rc::ptr_eq(&schedule_callback().unwrap(), &cb));
/// set_schedule_callback(None);
/// assert!(schedule_callback().is_none());
/// ```
pub fn schedule_callback() -> Option<ScheduleCallback> {
    scheduler().schedule_callback()
}
