//! The rendezvous: Stackless's `channel_action`, written once for both kinds of channel
//! ([`Handle`]), and the send / receive results the public methods make of it.

use std::ptr;
use std::time::Instant;

use super::buffered::Ring;
use super::core::{ChannelLock, Core, Guard, Msg, State};
use super::send_error::{send_error, SendError};
use super::wait::{wake_on_its_thread, Waiter};
use crate::error::{Error, Payload, Result};
use crate::scheduler::blocking::{scheduler, AnyChannel, ChannelInfo, Scheduler};

/// A public channel handle: what the rendezvous needs of it.
pub(super) trait Handle: AnyChannel + Sized {
    type Item: 'static;
    type Lock: ChannelLock;
    fn core(&self) -> &Core<Self::Item, Self::Lock>;
    /// The channel's buffer: `Some` for a [`BufferedChannel`](super::BufferedChannel) only.
    /// A constant `None` for the others, so that their buffered branches are compiled out.
    fn ring(&self) -> Option<&Ring<Self::Item>>;
}

/// What a handle's shared state says about a buffer (see [`Handle::ring`]): a plain
/// [`Core`] has none; a `BufferedCore` has its ring.
pub(super) trait RingOf<T> {
    fn ring(&self) -> Option<&Ring<T>>;
}

impl<T, L: ChannelLock> RingOf<T> for Core<T, L> {
    #[inline(always)]
    fn ring(&self) -> Option<&Ring<T>> {
        None
    }
}

/// How many values `h` holds in its buffer (0 without one).
///
/// # Safety
/// The caller must hold `h`'s lock.
#[inline(always)]
pub(super) unsafe fn buffered_len<H: Handle>(h: &H) -> usize {
    // SAFETY: forwarded.
    h.ring().map_or(0, |r| unsafe { r.len() })
}

/// A channel action's result. The failure is boxed: it is rare, and a small `Outcome` keeps
/// the common path from copying an `Error` and a message around.
pub(super) type Outcome<T> = std::result::Result<Option<Msg<T>>, Box<(Error, Option<Msg<T>>)>>;

/// A failed action's error, with the message given back: boxed, one word.
pub(super) type Failure<T> = Box<(Error, Option<Msg<T>>)>;

#[cold]
pub(super) fn failure<T>(e: Error, msg: Option<Msg<T>>) -> Failure<T> {
    Box::new((e, msg))
}

/// Calls `f`, a function out of line, with `msg`, for an `Outcome`: the message comes back
/// through `io`, a local of the caller's that only `f` touches, and the failure, if any, as
/// one word (see [`into_io`]). An out-of-line function returning an `Outcome` writes it
/// through a pointer, and where its result met the common path's, the common path's outcome
/// went through that stack slot too (stored, loaded back, tested); this way it stays in
/// registers (issue 13).
#[inline(always)]
pub(super) fn out_of_line<T>(
    msg: Option<Msg<T>>,
    f: impl FnOnce(&mut Option<Msg<T>>) -> Option<Failure<T>>,
) -> Outcome<T> {
    let mut io = msg;
    match f(&mut io) {
        None => Ok(io),
        Some(failed) => {
            // `into_io` left nothing in `io` (its message is in the failure): no drop glue.
            debug_assert!(io.is_none());
            std::mem::forget(io);
            Err(failed)
        }
    }
}

/// The out-of-line half of [`out_of_line`]: hands `outcome` back through `io`, which the
/// function took its message from (so it holds none).
#[inline(always)]
pub(super) fn into_io<T>(outcome: Outcome<T>, io: &mut Option<Msg<T>>) -> Option<Failure<T>> {
    debug_assert!(io.is_none());
    match outcome {
        Ok(got) => {
            // SAFETY: `io` holds `None`, which has nothing to drop.
            unsafe { ptr::write(io, got) };
            None
        }
        Err(failed) => Some(failed),
    }
}

/// Sends `value` on `h` (see `Channel::send`).
#[inline(always)]
pub(super) fn send<H: Handle>(
    h: &H,
    value: H::Item,
) -> std::result::Result<(), SendError<H::Item>> {
    match action::<H, 1>(h, Some(Msg::Value(value))) {
        // A successful send gets nothing back: no message to drop (skip the drop glue).
        Ok(nothing) => {
            debug_assert!(nothing.is_none());
            std::mem::forget(nothing);
            Ok(())
        }
        Err(f) => {
            let (error, msg) = *f;
            Err(send_error(error, msg))
        }
    }
}

/// Sends an error on `h` (see `Channel::send_throw`).
pub(super) fn send_throw<H: Handle>(
    h: &H,
    payload: Payload,
) -> std::result::Result<(), SendError<Payload>> {
    match action::<H, 1>(h, Some(Msg::Error(Box::new(payload)))) {
        // A successful send gets nothing back: no message to drop (skip the drop glue).
        Ok(nothing) => {
            debug_assert!(nothing.is_none());
            std::mem::forget(nothing);
            Ok(())
        }
        Err(f) => match *f {
            (error, Some(Msg::Error(p))) => Err(SendError {
                value: Some(*p),
                error,
            }),
            (error, _) => Err(SendError { value: None, error }),
        },
    }
}

/// Receives on `h` (see `Channel::receive`).
#[inline(always)]
pub(super) fn receive<H: Handle>(h: &H) -> Result<H::Item> {
    // Out of line: the common path tests for a value only (no jump table), and one call
    // (with two words) makes every other result.
    let otherwise = match action::<H, -1>(h, None) {
        Ok(Some(Msg::Value(v))) => return Ok(v),
        Ok(Some(Msg::Error(p))) => Ok(p),
        Ok(None) => unreachable!("a completed receive always has a message"),
        Err(f) => Err(f),
    };
    received_otherwise(otherwise)
}

/// What a receive returns when it did not get a value: an error sent instead (`Ok`), or the
/// failure.
#[cold]
#[inline(never)]
fn received_otherwise<T>(otherwise: std::result::Result<Box<Payload>, Failure<T>>) -> Result<T> {
    match otherwise {
        Ok(p) => Err(Error::Thrown(*p)),
        Err(f) => Err(f.0),
    }
}

/// Receives on `h`, giving up at `deadline` (see `Channel::receive_timeout`).
pub(super) fn receive_until<H: Handle>(h: &H, deadline: Instant) -> Result<H::Item> {
    match action_until::<H, -1>(h, None, Some(deadline)) {
        Ok(Some(Msg::Value(v))) => Ok(v),
        Ok(Some(Msg::Error(p))) => Err(Error::Thrown(*p)),
        Ok(None) => unreachable!("a completed receive always has a message"),
        Err(f) => Err(f.0),
    }
}

/// Stackless's `channel_action`: `DIR` +1 sends `msg`, -1 receives.
#[inline(always)]
fn action<H: Handle, const DIR: i8>(h: &H, msg: Option<Msg<H::Item>>) -> Outcome<H::Item> {
    action_until::<H, DIR>(h, msg, None)
}

/// `action`, blocking at most until `deadline` if there is one (for a receive only).
///
/// The common case (no watchdog, no callback of any kind, no switch trap, a scheduler that has
/// not ended) is told by one load of the hooks word and takes the *quiet* rendezvous, which
/// tests none of them again; anything else goes out of line, through the safe point and the
/// channel callback, to the rendezvous that checks each.
#[inline(always)]
fn action_until<H: Handle, const DIR: i8>(
    h: &H,
    msg: Option<Msg<H::Item>>,
    deadline: Option<Instant>,
) -> Outcome<H::Item> {
    let s = scheduler();
    if s.hooks_on() {
        return out_of_line(msg, |io| action_hooked::<H, DIR>(h, s, io, deadline));
    }
    // SAFETY: no hook is on (just tested), and nothing before the rendezvous can set one.
    unsafe { rendezvous::<H, DIR, true>(h, s, msg, deadline) }
}

/// `action` with a hook on: a safe point, where a watchdog may preempt the caller (before
/// anything changes), the channel callback, then the rendezvous that checks every hook.
/// Its message in and out through `io` (see [`out_of_line`]).
#[cold]
#[inline(never)]
fn action_hooked<H: Handle, const DIR: i8>(
    h: &H,
    s: &Scheduler,
    io: &mut Option<Msg<H::Item>>,
    deadline: Option<Instant>,
) -> Option<Failure<H::Item>> {
    let msg = io.take();
    into_io(action_hooked_outcome::<H, DIR>(h, s, msg, deadline), io)
}

#[inline(always)]
fn action_hooked_outcome<H: Handle, const DIR: i8>(
    h: &H,
    s: &Scheduler,
    msg: Option<Msg<H::Item>>,
    deadline: Option<Instant>,
) -> Outcome<H::Item> {
    if let Err(e) = s.op_tick() {
        return Err(failure(e, msg));
    }
    if s.channel_hooks() {
        if let Err(e) = call_channel_callback::<H, DIR>(h, s) {
            return Err(failure(e, msg));
        }
    }
    // SAFETY: QUIET is false: every hook is checked where it matters.
    unsafe { rendezvous::<H, DIR, false>(h, s, msg, deadline) }
}

/// The rendezvous itself, for the running tasklet of `s`. `QUIET`: no hook is on, so the
/// checks that only a hook can fail (the switch trap, a callback running, an ended scheduler)
/// are compiled out, and so are the tests the switch makes for them.
///
/// # Safety
/// With `QUIET`, `s.hooks_on()` must be false.
#[inline(always)]
unsafe fn rendezvous<H: Handle, const DIR: i8, const QUIET: bool>(
    h: &H,
    s: &Scheduler,
    msg: Option<Msg<H::Item>>,
    deadline: Option<Instant>,
) -> Outcome<H::Item> {
    debug_assert!(!QUIET || !s.hooks_on());
    let chan = h.core();
    let mut g = chan.lock_as(s as *const Scheduler as usize);
    if let Some(ring) = h.ring() {
        let st = g.state();
        // SAFETY: under the channel's lock.
        let buffered = unsafe {
            if DIR > 0 {
                // No receiver waits (one would take the value at once: the buffer is empty
                // then), there is room, and the channel is not closing (a send that finds no
                // receiver on a closing channel fails, below, as a block would).
                st.balance >= 0 && !st.closing && ring.has_room()
            } else {
                ring.len() > 0
            }
        };
        if buffered {
            // SAFETY: forwarded (QUIET's obligation); under the lock `g` holds, the ring has
            // room (a send) or a message (a receive).
            return unsafe { buffered_action::<H, DIR, QUIET>(s, g, ring, msg) };
        }
    }
    let st = g.state();
    let cando = if DIR > 0 {
        st.balance < 0
    } else {
        st.balance > 0
    };
    if !cando {
        // SAFETY: forwarded (QUIET's obligation).
        return unsafe { chan.block::<DIR, QUIET>(s, g, msg, deadline) };
    }
    // SAFETY: a non-zero balance means a waiter of the other direction is queued; queued
    // waiters are valid.
    let (w, local) = unsafe { pop_partner::<H>(st, s) };
    // SAFETY: just popped under the lock.
    if !local && unsafe { vanished::<H, DIR>(st, w) } {
        // The operation starts again: the queue may be empty now.
        drop(g);
        return out_of_line(msg, |io| action_again::<H, DIR>(h, io, deadline));
    }
    // SAFETY: forwarded (QUIET's obligation); `w` was just popped off the queue `g` locks.
    unsafe {
        meet_partner::<H, DIR, QUIET>(s, g, w, local, msg, |slot, msg| {
            if DIR > 0 {
                // The receiver's slot is empty: write without dropping the old value (its
                // drop glue is an out-of-line call on this hot path).
                debug_assert!(slot.is_none());
                ptr::write(slot, msg);
                None
            } else {
                slot.take()
            }
        })
    }
}

/// Takes the head of `st`'s queue, known not to be empty (the balance says so), as the
/// partner of the running tasklet of `s`, with whether it is of this thread.
///
/// # Safety
/// Under the lock of `st`'s channel, whose queue must not be empty.
#[inline(always)]
unsafe fn pop_partner<H: Handle>(
    st: &mut State<H::Item>,
    s: &Scheduler,
) -> (*const Waiter<H::Item>, bool) {
    // SAFETY: the caller's obligation; queued waiters are valid.
    let w = unsafe { st.queue.pop_front_nonempty() };
    // SAFETY: a queued waiter is valid until removed, which we just did under the lock;
    // its tasklet stays blocked (and alive) until it is woken.
    let local = H::Lock::ONE_THREAD || ptr::eq(unsafe { (*w).scheduler }, s);
    // A one-thread channel's waiters are all of this thread: its handles never leave it.
    // SAFETY: as above.
    debug_assert!(ptr::eq(unsafe { (*w).scheduler }, s) || !H::Lock::ONE_THREAD);
    (w, local)
}

/// Whether `w`, a partner of another thread just popped by [`pop_partner`], is a waiter of a
/// thread that does not exist here (only in a forked child), which nothing will ever wake:
/// then it leaves the balance too (its value, if any, stays in that thread's copied stack).
///
/// # Safety
/// Under the lock of `st`'s channel; `w` just popped off its queue.
#[inline(always)]
unsafe fn vanished<H: Handle, const DIR: i8>(
    st: &mut State<H::Item>,
    w: *const Waiter<H::Item>,
) -> bool {
    // SAFETY: the caller's obligation; a queued waiter's scheduler outlives it.
    let gone = unsafe { (*(*w).scheduler).ended() };
    if gone {
        st.balance += DIR as i32;
    }
    gone
}

/// The rest of an operation of the running tasklet of `s` that found its partner: `w`, just
/// popped off the queue of the channel whose lock `g` holds (`local`: of this thread; see
/// [`pop_partner`]). A hook may refuse it: `w` goes back to the head of the queue, `msg` to
/// the caller, and nothing is changed. Otherwise `w` leaves the balance, `exchange` moves
/// the messages (given `w`'s slot and `msg`, it returns the operation's result), and the
/// partner is woken: here (the switching rule says whether we switch to it) or on its own
/// thread.
///
/// # Safety
/// With `QUIET`, `s.hooks_on()` must be false. `w` must be the waiter just popped off the
/// queue of `g`'s channel, still blocked.
#[inline(always)]
unsafe fn meet_partner<H: Handle, const DIR: i8, const QUIET: bool>(
    s: &Scheduler,
    mut g: Guard<'_, H::Item, H::Lock>,
    w: *const Waiter<H::Item>,
    local: bool,
    msg: Option<Msg<H::Item>>,
    exchange: impl FnOnce(&mut Option<Msg<H::Item>>, Option<Msg<H::Item>>) -> Option<Msg<H::Item>>,
) -> Outcome<H::Item> {
    let st = g.state();
    let switching = local && st.switches::<DIR>();
    if !QUIET && s.hooks_on() {
        if let Err(e) = s.refuse_by_hooks(switching) {
            // Put back as it was, under the same lock: nobody saw the change, so the
            // refused operation leaves no trace.
            // SAFETY: `w` was just popped, still valid and blocked.
            unsafe { st.queue.push_front(w) };
            drop(g);
            return Err(failure(e, msg));
        }
    }
    st.balance += DIR as i32;
    // SAFETY: a waiter popped under the lock is valid, and its tasklet stays blocked (and
    // alive) until it is woken below; nobody else touches its slot meanwhile.
    let (partner, got) = unsafe {
        let got = exchange(&mut *(*w).slot.get(), msg);
        if !local {
            return Ok(wake_on_its_thread(g, w, got));
        }
        ((*w).tasklet, got)
    };
    let schedule_all = st.schedule_all;
    drop(g);
    // SAFETY: the partner is a blocked tasklet of this thread, now out of the queue; with
    // QUIET no hook is on (the caller's obligation; nothing since could set one).
    let switched = unsafe { s.wake_here::<QUIET>(partner, switching, schedule_all) };
    match switched {
        Ok(()) => Ok(got),
        // Refused because the caller's stack unwinds (a destructor of a killed or
        // panicking tasklet): the operation stands, the partner runs later. (No switch
        // happens while a stack unwinds, so this cannot be an error delivered after one.)
        Err(Error::Unwinding) if std::thread::panicking() => Ok(got),
        Err(e) => Err(failure(e, got)),
    }
}

/// `action`, out of line: after a waiter of a vanished thread was dropped. Its message in and
/// out through `io` (see [`out_of_line`]).
#[cold]
#[inline(never)]
fn action_again<H: Handle, const DIR: i8>(
    h: &H,
    io: &mut Option<Msg<H::Item>>,
    deadline: Option<Instant>,
) -> Option<Failure<H::Item>> {
    let msg = io.take();
    into_io(action_until::<H, DIR>(h, msg, deadline), io)
}

#[cold]
#[inline(never)]
fn call_channel_callback<H: Handle, const DIR: i8>(h: &H, s: &Scheduler) -> Result<()> {
    s.before_channel_action(|| {
        let mut g = h.core().lock();
        let st = g.state();
        let (b, closing) = (st.balance, st.closing);
        // SAFETY: under the channel's lock.
        let (len, room) = unsafe { (buffered_len(h), h.ring().is_some_and(|r| r.has_room())) };
        drop(g);
        ChannelInfo {
            channel: h,
            sending: DIR > 0,
            will_block: if DIR > 0 {
                b >= 0 && (closing || !room)
            } else {
                b <= 0 && len == 0
            },
        }
    })
}

/// A send into the buffer, or a receive from it, for the running tasklet of `s`, under the
/// lock `g` holds: the send (`DIR` +1) appends `msg` and goes on; the receive (`DIR` -1)
/// takes the oldest message and, if a sender waits (the buffer was full), moves that
/// sender's message into the freed place and wakes it, as a rendezvous wakes its partner
/// (the preference and `schedule_all` say whether the receiver switches to it).
///
/// # Safety
/// With `QUIET`, `s.hooks_on()` must be false. `ring` must be the ring of the channel whose
/// lock `g` holds, with room for a send or a message for a receive.
#[inline(always)]
unsafe fn buffered_action<H: Handle, const DIR: i8, const QUIET: bool>(
    s: &Scheduler,
    mut g: Guard<'_, H::Item, H::Lock>,
    ring: &Ring<H::Item>,
    msg: Option<Msg<H::Item>>,
) -> Outcome<H::Item> {
    let st = g.state();
    if DIR < 0 {
        // A receive, with a sender waiting if the balance says so. Waiters of a vanished
        // thread (only in a forked child) leave the queue (see `vanished`): the buffer has a
        // message for us all the same.
        while st.balance > 0 {
            // SAFETY: under the lock; a positive balance means a sender is queued.
            let (w, local) = unsafe { pop_partner::<H>(st, s) };
            // SAFETY: just popped under the lock.
            if local || unsafe { !vanished::<H, DIR>(st, w) } {
                // SAFETY: forwarded (QUIET's obligation); `w` was just popped off the queue
                // `g` locks.
                return unsafe {
                    meet_partner::<H, DIR, QUIET>(s, g, w, local, msg, |slot, _| {
                        // Under the lock, not empty (the caller's obligation); a blocked
                        // sender's slot holds its message, which moves into the place `got`
                        // left (FIFO: after every buffered one).
                        let got = ring.pop_front();
                        match slot.take() {
                            Some(m) => ring.push_back(m),
                            None => unreachable!("a blocked sender has its message"),
                        }
                        Some(got)
                    })
                };
            }
        }
    }
    // Nobody to wake: a send into the buffer, or a receive with no sender waiting.
    if !QUIET && s.hooks_on() {
        if let Err(e) = s.refuse_by_hooks(false) {
            drop(g);
            return Err(failure(e, msg));
        }
    }
    // SAFETY: under the lock, with room for a send or a message for a receive (the
    // caller's obligation).
    let got = unsafe {
        if DIR > 0 {
            let Some(msg) = msg else {
                unreachable!("a send has a message")
            };
            ring.push_back(msg);
            None
        } else {
            Some(ring.pop_front())
        }
    };
    drop(g);
    Ok(got)
}
