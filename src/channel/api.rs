//! The public methods of both channel types, written once: `channel_api!` expands to the
//! operations, queries, settings, iterator, `IntoIterator`, `Debug` and [`AnyChannel`] impl of
//! [`Channel`](super::Channel), [`LocalChannel`](super::LocalChannel) and
//! [`BufferedChannel`](super::BufferedChannel), each documented with an example that runs on
//! that type (a `BufferedChannel`'s made by `new`, capacity 0: a rendezvous channel).
//!
//! [`AnyChannel`]: crate::scheduler::blocking::AnyChannel

/// A doc example for the channel type `$Ch`, which its body calls `Ch`.
macro_rules! example {
    ($Ch:ident, $body:literal) => {
        concat!(
            "\n# Example\n```\nuse microthread::channel::",
            stringify!($Ch),
            " as Ch;\nuse microthread::{scheduler, spawn};\n",
            $body,
            "\n# Ok::<(), std::io::Error>(())\n```"
        )
    };
}

/// [`AnyChannel`] methods that call the inherent query of the same name on `$Ch`.
macro_rules! forward_queries {
    ($Ch:ident: $($query:ident -> $ret:ty),* $(,)?) => {
        $(
            fn $query(&self) -> $ret {
                $Ch::$query(self)
            }
        )*
    };
}

/// The shared API of a channel handle type `$Ch` (items `T: $bound`), whose iterator is
/// `$Iter`.
macro_rules! channel_api {
    ($Ch:ident, $Iter:ident, $Lock:ty, [$($bound:tt)+]) => {
        impl<T: $($bound)+> $Ch<T> {
            /// The channel's id, unique in the process.
            #[doc = example!($Ch, "let (a, b) = (Ch::<u8>::new(), Ch::<u8>::new());
assert_ne!(a.id(), b.id());
assert_eq!(a.clone().id(), a.id());")]
            pub fn id(&self) -> u64 {
                self.chan.id
            }

            /// Sends `value`: hands it to the first waiting receiver, or blocks until one
            /// comes. (A [`BufferedChannel`](crate::channel::BufferedChannel) with room in its
            /// buffer and no receiver waiting puts the value there and goes on.)
            ///
            /// # Errors
            /// [`Error::ClosedChannel`](crate::Error::ClosedChannel),
            /// [`Error::BlockTrap`](crate::Error::BlockTrap),
            /// [`Error::Deadlock`](crate::Error::Deadlock) (it would block and nothing can
            /// wake it), or an error delivered while blocked (a throw, a routed panic): each
            /// with the value given back if it was not delivered.
            #[doc = example!($Ch, "let ch = Ch::new();
let rx = ch.clone();
let t = spawn(move || rx.receive().unwrap() + 1)?;
scheduler::run().unwrap(); // the receiver blocks
ch.send(41u32).unwrap(); // the receiver runs at once (preference -1)
assert_eq!(t.result::<u32>(), Some(42));
// Nobody to receive: main would block forever.
let failed = ch.send(7).unwrap_err();
assert_eq!(failed.value, Some(7));
assert!(matches!(failed.error, microthread::Error::Deadlock));")]
            #[inline(always)]
            pub fn send(&self, value: T) -> std::result::Result<(), SendError<T>> {
                action::send(self, value)
            }

            /// Sends an error instead of a value: the receiver's `receive` returns
            /// `Err(Error::Thrown(payload))` (Stackless `send_exception` / `send_throw`). It
            /// travels as a value does (through the buffer of a
            /// [`BufferedChannel`](crate::channel::BufferedChannel), in order).
            ///
            /// # Errors
            /// As `send`, with the payload given back.
            #[doc = example!($Ch, "let ch = Ch::<u32>::new();
let rx = ch.clone();
let t = spawn(move || match rx.receive() {
    Err(microthread::Error::Thrown(p)) => *p.downcast::<&str>().unwrap(),
    _ => \"no error\",
})?;
scheduler::run().unwrap();
ch.send_throw(Box::new(\"stop\")).unwrap();
assert_eq!(t.result::<&str>(), Some(\"stop\"));")]
            pub fn send_throw(
                &self,
                payload: Payload,
            ) -> std::result::Result<(), SendError<Payload>> {
                action::send_throw(self, payload)
            }

            /// Receives a value: takes the first waiting sender's, or blocks until one comes.
            /// (A [`BufferedChannel`](crate::channel::BufferedChannel) gives its oldest buffered
            /// value first, and moves the first waiting sender's value into the buffer.)
            ///
            /// # Errors
            /// [`Error::Thrown`](crate::Error::Thrown) if an error was sent instead of a
            /// value; [`Error::ClosedChannel`](crate::Error::ClosedChannel),
            /// [`Error::BlockTrap`](crate::Error::BlockTrap),
            /// [`Error::Deadlock`](crate::Error::Deadlock),
            /// [`Error::MainReceivingWithoutSender`](crate::Error::MainReceivingWithoutSender),
            /// or an error delivered while blocked.
            #[doc = example!($Ch, "let ch = Ch::new();
let tx = ch.clone();
spawn(move || tx.send(\"hello\").unwrap())?;
assert_eq!(ch.receive().unwrap(), \"hello\"); // main blocks; the sender runs and wakes it
ch.close();
assert!(matches!(ch.receive(), Err(microthread::Error::ClosedChannel)));")]
            #[inline(always)]
            pub fn receive(&self) -> Result<T> {
                action::receive(self)
            }

            /// Like `receive`, but gives up after `timeout`: if no sender came by then, the
            /// call fails with [`Error::Timeout`](crate::Error::Timeout) and the channel is
            /// exactly as if the receive never happened (its balance and queue are as
            /// before); a value sent later goes to the next receiver. A sender on another
            /// thread that races with the deadline either delivers (this returns `Ok`) or
            /// finds no receiver: the value is never lost. While it waits, the caller is
            /// blocked on the channel and on the timer queue (see
            /// [Sleeping](crate::scheduler#sleeping)); a zero timeout only takes a value from a
            /// sender that already waits.
            ///
            /// # Errors
            /// [`Error::Timeout`](crate::Error::Timeout), and those of `receive`.
            #[doc = example!($Ch, "use std::time::Duration;
let ch = Ch::<u32>::new();
let before = ch.balance();
let timed_out = ch.receive_timeout(Duration::from_millis(2));
assert!(matches!(timed_out, Err(microthread::Error::Timeout)));
assert_eq!(ch.balance(), before); // as if it never happened
let tx = ch.clone();
spawn(move || tx.send(5).unwrap())?;
scheduler::schedule().unwrap(); // the sender blocks: nobody receives yet
assert_eq!(ch.receive_timeout(Duration::ZERO).unwrap(), 5);")]
            pub fn receive_timeout(&self, timeout: std::time::Duration) -> Result<T> {
                action::receive_until(self, crate::scheduler::deadline_after(timeout))
            }

            /// Sends every item, in order; returns how many were sent.
            ///
            /// # Errors
            /// The first failed send, with its value; the items after it are not taken from
            /// `items`.
            #[doc = example!($Ch, "let ch = Ch::new();
let rx = ch.clone();
let t = spawn(move || (0..3).map(|_| rx.receive().unwrap()).collect::<Vec<u32>>())?;
assert_eq!(ch.send_sequence([1, 2, 3]).unwrap(), 3);
assert_eq!(t.result::<Vec<u32>>(), Some(vec![1, 2, 3]));
ch.close();
let failed = ch.send_sequence([4, 5]).unwrap_err(); // the first send fails: closing
assert_eq!(failed.value, Some(4));")]
            pub fn send_sequence<I: IntoIterator<Item = T>>(
                &self,
                items: I,
            ) -> std::result::Result<usize, SendError<T>> {
                let mut n = 0;
                for item in items {
                    self.send(item)?;
                    n += 1;
                }
                Ok(n)
            }

            /// Iterates over received values; ends when the channel is closing, no sender
            /// waits and no value is buffered (Stackless: `StopIteration` when `closing and
            /// balance <= 0`). `&channel` is `IntoIterator` too.
            #[doc = example!($Ch, "let ch = Ch::new();
for v in 1..=3u32 {
    let tx = ch.clone();
    spawn(move || tx.send(v).unwrap())?;
}
scheduler::run().unwrap(); // three senders block
ch.close();
let got: Vec<u32> = ch.iter().map(|v| v.unwrap()).collect();
assert_eq!(got, [1, 2, 3]);
assert!(ch.closed());
let mut n = 0;
for v in &ch {
    v.unwrap();
    n += 1;
}
assert_eq!(n, 0); // closed: the loop ends at once")]
            pub fn iter(&self) -> $Iter<'_, T> {
                $Iter { channel: self }
            }

            /// Senders waiting (positive) or receivers waiting (negative): blocked tasklets,
            /// as Stackless counts them (a [`BufferedChannel`](crate::channel::BufferedChannel)'s
            /// buffered values are not counted: see its `len`).
            #[doc = example!($Ch, "let ch = Ch::<u8>::new();
for _ in 0..2 {
    let rx = ch.clone();
    spawn(move || rx.receive())?;
}
scheduler::run().unwrap();
assert_eq!(ch.balance(), -2);
ch.send_sequence([1, 2]).unwrap();
assert_eq!(ch.balance(), 0);")]
            pub fn balance(&self) -> isize {
                self.chan.lock().state().balance as isize
            }

            /// The ids of the blocked tasklets, head (next to be served) first, of every
            /// thread.
            #[doc = example!($Ch, "let ch = Ch::<u8>::new();
let (rx1, rx2) = (ch.clone(), ch.clone());
let a = spawn(move || rx1.receive())?;
let b = spawn(move || rx2.receive())?;
scheduler::run().unwrap();
assert_eq!(ch.queue(), [a.id(), b.id()]);")]
            pub fn queue(&self) -> Vec<u64> {
                self.chan.queue_ids()
            }

            /// Handles of the blocked tasklets of the calling thread, head first. Tasklets of
            /// other threads waiting on a shared channel are left out (a [`Tasklet`] handle
            /// belongs to its thread; [`queue`](Self::queue) lists their ids too).
            #[doc = example!($Ch, "let ch = Ch::<u8>::new();
let (rx1, rx2) = (ch.clone(), ch.clone());
let a = spawn(move || rx1.receive())?;
let b = spawn(move || rx2.receive())?;
scheduler::run().unwrap();
let queued = ch.queue_tasklets();
assert_eq!(queued, [a.clone(), b]);
queued[0].kill().unwrap(); // a leaves the queue
assert!(!a.alive());
assert_eq!(ch.balance(), -1);")]
            pub fn queue_tasklets(&self) -> Vec<Tasklet> {
                self.chan.queue_tasklets()
            }

            /// -1 (default): prefer the receiver; +1: prefer the sender; 0: neither (see the
            /// [module docs](crate::channel)).
            #[doc = example!($Ch, "let ch = Ch::<u8>::new();
assert_eq!(ch.preference(), -1);
ch.set_preference(1);
assert_eq!(ch.preference(), 1);")]
            pub fn preference(&self) -> i8 {
                self.chan.lock().state().preference
            }

            /// Sets the preference; values are clamped by sign, as in Stackless (5 → 1, -7 →
            /// -1).
            #[doc = example!($Ch, "let ch = Ch::<u8>::new();
ch.set_preference(5);
assert_eq!(ch.preference(), 1);
ch.set_preference(0);
assert_eq!(ch.preference(), 0);
ch.set_preference(-7);
assert_eq!(ch.preference(), -1);
// +1: a send to a waiting receiver lets the sender continue.
ch.set_preference(1);
let rx = ch.clone();
let t = spawn(move || rx.receive().unwrap())?;
scheduler::run().unwrap();
ch.send(3).unwrap();
assert!(t.alive() && t.scheduled()); // runnable, not yet run
scheduler::run().unwrap();
assert_eq!(t.result::<u8>(), Some(3));")]
            pub fn set_preference(&self, preference: i32) {
                self.chan.lock().state().set_preference(preference);
            }

            /// Whether every rendezvous makes the partner runnable and the caller yield.
            #[doc = example!($Ch, "let ch = Ch::<u8>::new();
assert!(!ch.schedule_all());
ch.set_schedule_all(true);
assert!(ch.schedule_all());")]
            pub fn schedule_all(&self) -> bool {
                self.chan.lock().state().schedule_all
            }

            /// Sets `schedule_all`, which overrides the preference.
            #[doc = example!($Ch, "use std::{cell::RefCell, rc::Rc};
let order = Rc::new(RefCell::new(Vec::new()));
let ch = Ch::<u8>::new();
ch.set_schedule_all(true);
let (rx, o) = (ch.clone(), order.clone());
spawn(move || { rx.receive().unwrap(); o.borrow_mut().push(\"receiver\"); })?;
scheduler::run().unwrap();
let (tx, o) = (ch.clone(), order.clone());
spawn(move || { tx.send(1).unwrap(); o.borrow_mut().push(\"sender\"); })?;
scheduler::run().unwrap();
// The sender yielded after the rendezvous: the receiver ran first.
assert_eq!(*order.borrow(), [\"receiver\", \"sender\"]);")]
            pub fn set_schedule_all(&self, on: bool) {
                self.chan.lock().state().set_schedule_all(on);
            }

            /// Marks the channel closing: operations that find a partner still succeed (so
            /// blocked senders can be drained), operations that would block fail with
            /// [`Error::ClosedChannel`](crate::Error::ClosedChannel). Nobody is woken. (A
            /// [`BufferedChannel`](crate::channel::BufferedChannel)'s receives drain its
            /// buffer; a send that finds no receiver waiting fails, even with room.)
            #[doc = example!($Ch, "let ch = Ch::new();
let tx = ch.clone();
spawn(move || tx.send(1u8).unwrap())?;
scheduler::run().unwrap(); // the sender blocks
ch.close();
assert!(ch.closing() && !ch.closed()); // a sender still waits
assert_eq!(ch.receive().unwrap(), 1); // drained
assert!(ch.closed());
assert!(matches!(ch.receive(), Err(microthread::Error::ClosedChannel)));")]
            pub fn close(&self) {
                self.chan.lock().state().closing = true;
            }

            /// Clears `closing`.
            #[doc = example!($Ch, "let ch = Ch::<u8>::new();
ch.close();
ch.open();
assert!(!ch.closing() && !ch.closed());")]
            pub fn open(&self) {
                self.chan.lock().state().closing = false;
            }

            /// Whether `close` was called (and not undone by `open`).
            #[doc = example!($Ch, "let ch = Ch::<u8>::new();
assert!(!ch.closing());
ch.close();
assert!(ch.closing());")]
            pub fn closing(&self) -> bool {
                self.chan.lock().state().closing
            }

            /// Closing, nobody waits and nothing is buffered: every further blocking operation
            /// fails.
            #[doc = example!($Ch, "let ch = Ch::<u8>::new();
let rx = ch.clone();
spawn(move || rx.receive())?;
scheduler::run().unwrap(); // a receiver waits
ch.close();
assert!(!ch.closed());
ch.send(1).unwrap(); // served: nobody waits any more
assert!(ch.closed());")]
            pub fn closed(&self) -> bool {
                let mut g = self.chan.lock();
                let st = g.state();
                // SAFETY: under the channel's lock.
                st.closing && st.balance == 0 && unsafe { action::buffered_len(self) } == 0
            }
        }

        impl<T: $($bound)+> Handle for $Ch<T> {
            type Item = T;
            type Lock = $Lock;
            #[inline(always)]
            fn core(&self) -> &Core<T, Self::Lock> {
                &self.chan
            }
            #[inline(always)]
            fn ring(&self) -> Option<&Ring<T>> {
                RingOf::ring(&*self.chan)
            }
        }

        impl<T> SealedChannel for $Ch<T> {}

        impl<T: $($bound)+> AnyChannel for $Ch<T> {
            forward_queries!($Ch: id -> u64, balance -> isize, preference -> i8,
                schedule_all -> bool, closing -> bool, closed -> bool, queue -> Vec<u64>,
                queue_tasklets -> Vec<Tasklet>);
            fn len(&self) -> usize {
                let _g = self.chan.lock();
                // SAFETY: under the channel's lock.
                unsafe { action::buffered_len(self) }
            }
            fn capacity(&self) -> usize {
                Handle::ring(self).map_or(0, Ring::capacity)
            }
            fn as_any(&self) -> &dyn Any {
                self
            }
        }

        impl<T> Clone for $Ch<T> {
            /// Another handle to the same channel.
            fn clone(&self) -> Self {
                $Ch {
                    chan: self.chan.clone(),
                }
            }
        }

        impl<T: $($bound)+> Default for $Ch<T> {
            fn default() -> Self {
                $Ch::new()
            }
        }

        /// Formats a snapshot taken under the lock, written after the lock is released: the
        /// formatter's writer is the caller's code and may use this very channel.
        impl<T> fmt::Debug for $Ch<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let ring = RingOf::ring(&*self.chan);
                let (balance, preference, schedule_all, closing, len) = {
                    let mut g = self.chan.lock();
                    let st = g.state();
                    // SAFETY: under the channel's lock.
                    let len = ring.map(|r| unsafe { r.len() });
                    (st.balance, st.preference, st.schedule_all, st.closing, len)
                };
                let mut d = f.debug_struct(stringify!($Ch));
                d.field("id", &self.chan.id)
                    .field("balance", &balance)
                    .field("preference", &preference)
                    .field("schedule_all", &schedule_all)
                    .field("closing", &closing);
                if let (Some(len), Some(r)) = (len, ring) {
                    d.field("len", &len).field("capacity", &r.capacity());
                }
                d.finish()
            }
        }

        #[doc = concat!("Received values until the channel is closing and drained; see [`",
            stringify!($Ch), "::iter`].")]
        #[doc = example!($Ch, "let ch = Ch::new();
let tx = ch.clone();
spawn(move || {
    tx.send(1u32).unwrap();
    tx.close(); // the next send still finds the receiver waiting
    tx.send(2).unwrap();
})?;
let mut values = ch.iter();
assert_eq!(values.next().map(Result::unwrap), Some(1));
assert_eq!(values.next().map(Result::unwrap), Some(2));
assert!(values.next().is_none()); // closing, and no sender waits (nothing buffered)")]
        pub struct $Iter<'a, T> {
            channel: &'a $Ch<T>,
        }

        impl<T: $($bound)+> Iterator for $Iter<'_, T> {
            type Item = Result<T>;

            fn next(&mut self) -> Option<Result<T>> {
                {
                    let mut g = self.channel.chan.lock();
                    let st = g.state();
                    // SAFETY: under the channel's lock.
                    let buffered = unsafe { action::buffered_len(self.channel) };
                    if st.closing && st.balance <= 0 && buffered == 0 {
                        return None;
                    }
                }
                Some(self.channel.receive())
            }
        }

        impl<'a, T: $($bound)+> IntoIterator for &'a $Ch<T> {
            type Item = Result<T>;
            type IntoIter = $Iter<'a, T>;

            fn into_iter(self) -> $Iter<'a, T> {
                self.iter()
            }
        }
    };
}
