//! Mail application: what other threads posted to this thread's mailbox (wakes, inserts,
//! remote kills and throws), applied at the start of a switch.

use std::sync::Arc;

use super::{Mail, Scheduler};
use crate::tasklet::Pending;

impl Scheduler {
    /// Applies what other threads posted: tasklets they made runnable, remote operations.
    /// Runs no user code (whatever must be dropped is deferred) and never unwinds, so it can
    /// run in the middle of any operation.
    #[cold]
    #[inline(never)]
    pub(super) fn read_mail(&self) {
        for mail in self.shared.take_mail() {
            // SAFETY: mail names tasklets of this thread.
            unsafe { self.apply_mail(mail) };
        }
    }

    /// # Safety
    /// - The mail must name a tasklet of this scheduler.
    pub(super) unsafe fn apply_mail(&self, mail: Mail) {
        let (t, pending) = match mail {
            Mail::Wake(t, epoch) => {
                let i = &t.0;
                // A wake for an episode that already ended some other way is stale.
                if i.blocked.get() != 0 && i.block_epoch.get() == epoch {
                    i.blocked.set(0);
                    i.blocked_on.set(None);
                    // SAFETY: a live tasklet of this thread (it was blocked), in no queue now.
                    unsafe { self.ring_insert(Arc::as_ptr(&t.0)) };
                }
                return;
            }
            Mail::Insert(t) => {
                let i = &t.0;
                if i.alive() && i.floating() {
                    // SAFETY: a live tasklet of this thread in no queue.
                    unsafe { self.ring_insert(Arc::as_ptr(&t.0)) };
                }
                return;
            }
            Mail::Kill(t) => (t, Pending::Kill),
            Mail::Throw(t, e) => (t, Pending::Error(e)),
        };
        if !t.0.alive() {
            self.defer_drop(Box::new(pending));
            return;
        }
        if let Some(lost) = t.0.set_pending(pending) {
            self.defer_drop(lost);
        }
        // SAFETY: a live tasklet of this thread.
        unsafe { self.make_runnable(Arc::as_ptr(&t.0)) };
    }
}
