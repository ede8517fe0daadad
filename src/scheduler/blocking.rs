//! The scheduler's interface for channels: the few operations a blocking primitive needs
//! (the running tasklet, the checks that may refuse a block or a switch, blocking the running
//! tasklet, making a partner runnable here or on its own thread, deferring a drop).
//! [`crate::channel`] uses the scheduler only through this module.

use super::Scheduler;
use crate::error::Result;
use crate::tasklet::Inner;

impl Scheduler {
    pub(crate) fn current_ptr(&self) -> *const Inner {
        self.current.get()
    }

    /// Takes the running tasklet `me` (just marked blocked) out of the ring and switches to
    /// the next runnable one, or blocks (§2.4). Returns when `me` runs again.
    ///
    /// # Safety
    /// - `me` must be the running tasklet, in the ring.
    pub(crate) unsafe fn block_current(&self, me: *const Inner) -> Result<()> {
        // SAFETY: forwarded.
        unsafe {
            self.ring_remove(me);
            self.switch_to(me, self.current.get())
        }
    }
}
