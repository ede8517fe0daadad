//! [`WaitQueue`]: a channel's FIFO of blocked tasklets, threaded through their [`Waiter`]s.
//!
//! Every waiter lives on its blocked tasklet's stack (`Core::block`) for exactly as long as it
//! is queued, so the queue needs no memory of its own: each waiter holds a link to the next
//! one, and the channel holds a single pointer, to the *tail*, whose link closes the circle
//! back to the head. Empty: the tail is null. Push at either end and pop at the head are a few
//! pointer writes; removing a waiter from the middle (a kill, a throw, a timeout) walks from
//! the head, as the `VecDeque` it replaces did. A channel is thus one word smaller than with a
//! `VecDeque` (four words, and a heap buffer once anyone waited), and a blocked tasklet costs
//! its channel no allocation at all (issue 11).
//!
//! All of it happens under the channel's lock (`Guard::state`), like every other access to a
//! channel's state: the links are plain fields reached through raw pointers.

use std::cell::Cell;
use std::ptr;

use super::wait::Waiter;

/// A channel's blocked tasklets, head first; see the module docs.
pub(super) struct WaitQueue<T> {
    /// The last waiter (whose `next` is the first), or null.
    tail: *const Waiter<T>,
}

/// A waiter's link to the one after it in its queue (the head, for the tail); null while the
/// waiter is in no queue.
pub(super) type Link<T> = Cell<*const Waiter<T>>;

impl<T> WaitQueue<T> {
    pub(super) const fn new() -> WaitQueue<T> {
        WaitQueue { tail: ptr::null() }
    }

    /// Queues `w` last.
    ///
    /// # Safety
    /// `w` must be valid and in no queue, and stay valid (and unmoved) until it leaves this
    /// one; every waiter already queued must be valid.
    #[inline(always)]
    pub(super) unsafe fn push_back(&mut self, w: *const Waiter<T>) {
        // SAFETY: the caller's obligation: `w` and the queued waiters are valid.
        unsafe {
            if self.tail.is_null() {
                (*w).next.set(w);
            } else {
                (*w).next.set((*self.tail).next.get());
                (*self.tail).next.set(w);
            }
        }
        self.tail = w;
    }

    /// Queues `w` first (puts back a waiter just popped).
    ///
    /// # Safety
    /// As [`push_back`](WaitQueue::push_back).
    pub(super) unsafe fn push_front(&mut self, w: *const Waiter<T>) {
        // SAFETY: the caller's obligation.
        unsafe {
            if self.tail.is_null() {
                (*w).next.set(w);
                self.tail = w;
            } else {
                (*w).next.set((*self.tail).next.get());
                (*self.tail).next.set(w);
            }
        }
    }

    /// Takes the head off the queue, if any.
    ///
    /// # Safety
    /// Every queued waiter must be valid.
    #[cfg(test)]
    pub(super) unsafe fn pop_front(&mut self) -> Option<*const Waiter<T>> {
        // SAFETY: tested not empty; the rest is the caller's obligation.
        (!self.tail.is_null()).then(|| unsafe { self.pop_front_nonempty() })
    }

    /// Takes the head off a queue known not to be empty (a rendezvous knows it from the
    /// balance): no test of the tail for null.
    ///
    /// # Safety
    /// The queue must not be empty, and every queued waiter must be valid.
    #[inline(always)]
    pub(super) unsafe fn pop_front_nonempty(&mut self) -> *const Waiter<T> {
        debug_assert!(!self.tail.is_null());
        // SAFETY: the caller's obligation: the tail and the head are valid.
        unsafe {
            let head = (*self.tail).next.get();
            if ptr::eq(head, self.tail) {
                self.tail = ptr::null();
            } else {
                (*self.tail).next.set((*head).next.get());
            }
            (*head).next.set(ptr::null());
            head
        }
    }

    /// Takes the first waiter for which `f` holds off the queue, if there is one.
    ///
    /// # Safety
    /// Every queued waiter must be valid.
    pub(super) unsafe fn remove_first(
        &mut self,
        mut f: impl FnMut(*const Waiter<T>) -> bool,
    ) -> Option<*const Waiter<T>> {
        if self.tail.is_null() {
            return None;
        }
        let mut prev = self.tail;
        loop {
            // SAFETY: the caller's obligation: every queued waiter is valid.
            let w = unsafe { (*prev).next.get() };
            if f(w) {
                // SAFETY: as above.
                unsafe {
                    if ptr::eq(w, prev) {
                        // The only waiter.
                        self.tail = ptr::null();
                    } else {
                        (*prev).next.set((*w).next.get());
                        if ptr::eq(w, self.tail) {
                            self.tail = prev;
                        }
                    }
                    (*w).next.set(ptr::null());
                }
                return Some(w);
            }
            if ptr::eq(w, self.tail) {
                return None;
            }
            prev = w;
        }
    }

    /// The queued waiters, head first.
    ///
    /// # Safety
    /// Every queued waiter must be valid, and the queue unchanged, while the iterator lives.
    pub(super) unsafe fn iter(&self) -> impl Iterator<Item = *const Waiter<T>> + '_ {
        let tail = self.tail;
        let mut next = if tail.is_null() {
            ptr::null()
        } else {
            // SAFETY: the caller's obligation.
            unsafe { (*tail).next.get() }
        };
        std::iter::from_fn(move || {
            if next.is_null() {
                return None;
            }
            let w = next;
            next = if ptr::eq(w, tail) {
                ptr::null()
            } else {
                // SAFETY: the caller's obligation.
                unsafe { (*w).next.get() }
            };
            Some(w)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::cell::UnsafeCell;

    use super::*;

    /// A waiter told apart by `label`, kept as its (never followed) tasklet pointer.
    fn waiter(label: usize) -> Waiter<u8> {
        Waiter {
            tasklet: ptr::without_provenance(label),
            scheduler: ptr::null(),
            slot: UnsafeCell::new(None),
            next: Link::new(ptr::null()),
        }
    }

    /// The label of `w`, a valid waiter.
    unsafe fn label(w: *const Waiter<u8>) -> usize {
        // SAFETY: the caller's obligation.
        unsafe { (*w).tasklet as usize }
    }

    fn labels(q: &WaitQueue<u8>) -> Vec<usize> {
        // SAFETY: the test's waiters outlive the queue's use.
        unsafe { q.iter().map(|w| label(w)).collect() }
    }

    #[test]
    fn the_queue_is_fifo_and_removes_from_anywhere() {
        let ws: Vec<Waiter<u8>> = (0..5).map(waiter).collect();
        let mut q = WaitQueue::new();
        assert!(labels(&q).is_empty());
        // SAFETY: the waiters live (unmoved, in `ws`) for the whole test.
        unsafe {
            for w in &ws {
                q.push_back(w);
            }
            assert_eq!(labels(&q), [0, 1, 2, 3, 4]);
            // Middle, tail, head.
            assert_eq!(q.remove_first(|w| label(w) == 2).map(|w| label(w)), Some(2));
            assert_eq!(q.remove_first(|w| label(w) == 4).map(|w| label(w)), Some(4));
            assert_eq!(q.remove_first(|w| label(w) == 0).map(|w| label(w)), Some(0));
            assert!(q.remove_first(|w| label(w) == 2).is_none());
            assert_eq!(labels(&q), [1, 3]);
            // A removed tail is replaced: pushing after it goes last.
            q.push_back(&ws[4]);
            assert_eq!(labels(&q), [1, 3, 4]);
            let head = q.pop_front().expect("three queued");
            assert_eq!(label(head), 1);
            assert!((*head).next.get().is_null());
            q.push_front(head);
            assert_eq!(labels(&q), [1, 3, 4]);
            for e in [1, 3, 4] {
                assert_eq!(q.pop_front().map(|w| label(w)), Some(e));
            }
            assert!(q.pop_front().is_none());
            // The only waiter, removed, and the queue reused.
            q.push_front(&ws[2]);
            assert_eq!(q.remove_first(|_| true).map(|w| label(w)), Some(2));
            assert!(q.pop_front().is_none());
            q.push_back(&ws[1]);
            assert_eq!(labels(&q), [1]);
        }
    }
}
