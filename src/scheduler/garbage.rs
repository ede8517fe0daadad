//! Deferred drops: values whose `Drop` (user code) comes due while the scheduler's state is
//! half-changed are kept and dropped at the next point where every invariant holds.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};

use super::Scheduler;

impl Scheduler {
    /// Keeps `x` to be dropped at the next safe point (see `garbage`).
    pub(super) fn defer_drop(&self, x: Box<dyn Any>) {
        self.garbage.borrow_mut().push(x);
        self.has_garbage.set(true);
    }

    /// Drops the deferred values, at a point where every invariant holds. A `Drop` that
    /// panics is reported by the panic hook and otherwise ignored (no caller expects it).
    #[cold]
    #[inline(never)]
    pub(super) fn drop_garbage(&self) {
        loop {
            let next = self.garbage.borrow_mut().pop();
            let Some(x) = next else { break };
            let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(x)));
        }
        self.has_garbage.set(false);
    }
}
