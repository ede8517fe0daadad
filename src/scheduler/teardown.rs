//! Teardown: ending a thread's scheduler when its thread ends, killing every tasklet still
//! alive (oldest first; a bound one has its closure dropped) and closing the mailbox.

use std::panic::{self, AssertUnwindSafe};

use super::{existing_scheduler, handle, is_current, Scheduler};
use crate::overflow;
use crate::tasklet::Life;

/// Ends the thread's scheduler when the thread ends. Thread-locals destroyed after it find
/// the scheduler *ended*: creating a tasklet fails, and so does a call that would block or
/// sleep ([`Error::SchedulerEnded`]). (If the scheduler is first created too late for this
/// to be registered, it is ended from the start; see `thread::exit` for a scheduler created
/// after the thread-locals' destructors have all run.)
pub(super) struct Teardown;

impl Drop for Teardown {
    fn drop(&mut self) {
        if let Some(s) = existing_scheduler() {
            s.shutdown();
        }
    }
}

impl Scheduler {
    /// Kills every live tasklet but main, oldest first, then closes the mailbox: the thread is
    /// ending.
    /// From then on the scheduler is ended; a second call does nothing.
    pub(super) fn shutdown(&self) {
        if self.shared.ended() {
            return;
        }
        overflow::ensure_altstack_for_teardown();
        self.kill_all();
        let mail = self.shared.close();
        // A blocking call from now on takes the slow path, which refuses it before it queues;
        // a spawn sees the ended bit. Set before the undelivered mail is dropped (user code).
        self.refresh_hooks();
        drop(mail);
    }

    pub(super) fn kill_all(&self) {
        for _ in 0..16 {
            self.read_mail();
            let mut victims = Vec::new();
            let mut p = self.all.get();
            while !p.is_null() {
                // SAFETY: list members are live.
                unsafe {
                    if !(*p).is_main {
                        victims.push(handle(p));
                    }
                    p = (*p).all_next.get();
                }
            }
            if victims.is_empty() {
                return;
            }
            // The list is newest first; they are killed oldest first (creation order), as in
            // the model of Stackless's thread end (reference §4).
            victims.reverse();
            // Take them out of the ring first, so killing one does not run the others.
            for v in &victims {
                if v.inner.in_ring() && !is_current(&v.inner) {
                    // SAFETY: `v` is in the ring.
                    unsafe { self.ring_remove(crate::tasklet::Record::as_ptr(&v.inner)) };
                }
            }
            for v in victims {
                // A bound tasklet is not alive, so a kill leaves it alone: drop its closure.
                let _ = panic::catch_unwind(AssertUnwindSafe(|| {
                    if v.inner.life.get() == Life::Bound {
                        v.unbind()
                    } else {
                        v.kill()
                    }
                }));
            }
            self.drop_garbage();
        }
    }
}
