//! Mail application: what other threads posted to this thread's mailbox (wakes, inserts,
//! remote kills, throws, removes and runs, dump requests), applied at the start of a switch.
//!
//! A remote operation takes effect at the moment its mail is read, as if made then on this
//! thread. Mail is read before the switching call chooses its next tasklet where that choice
//! depends on the ring (`schedule`, `schedule_remove`, `Tasklet::switch`, a channel's
//! preferred partner, blocking), so a remote run's target is that choice; otherwise at the
//! start of the switch, with the target already chosen.

use crate::tasklet::Record;
use std::cell::Cell;

use super::{Mail, Scheduler};
use crate::tasklet::Pending;

/// Where a remote run's target goes when no earlier one still waits in the ring.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum RunAt {
    /// Right after the current tasklet, which is the one running (it stays in the ring).
    AfterCurrent,
    /// Just before the current tasklet, becoming the current one: the running tasklet has
    /// left the ring and the switch goes to the current tasklet, chosen after the mail.
    Current,
}

thread_local! {
    /// The target of the last remote run applied on this thread: the next one goes right after
    /// it while it is still in the ring, so that remote runs run in the order they were made.
    static LAST_REMOTE_RUN: Cell<Option<Record>> = const { Cell::new(None) };
}

impl Scheduler {
    /// Applies what other threads posted: tasklets they made runnable, remote operations.
    /// Runs no user code (whatever must be dropped is deferred) and never unwinds, so it can
    /// run in the middle of any operation. For a switch whose target is already chosen.
    #[cold]
    #[inline(never)]
    pub(super) fn read_mail(&self) {
        self.read_mail_at(RunAt::AfterCurrent);
    }

    /// Reads the mail if there is any, where the running tasklet is the current one and in
    /// the ring: before a switching call chooses its next tasklet from the ring.
    #[inline(always)]
    pub(super) fn read_mail_before_choosing(&self) {
        if self
            .shared
            .has_mail
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            self.read_mail();
        }
    }

    /// Reads the mail if there is any, where the running tasklet has just left the ring and
    /// the switch goes to the current tasklet, chosen after the mail: a remote run's target
    /// takes the running tasklet's place and runs next.
    #[inline(always)]
    pub(super) fn read_mail_after_leaving(&self) {
        if self
            .shared
            .has_mail
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            self.read_mail_at(RunAt::Current);
        }
    }

    /// As [`Scheduler::read_mail`], with remote runs placed as `at` says.
    #[cold]
    #[inline(never)]
    pub(super) fn read_mail_at(&self, at: RunAt) {
        for mail in self.shared.take_mail() {
            // SAFETY: mail names tasklets of this thread.
            unsafe { self.apply_mail(mail, at) };
        }
    }

    /// # Safety
    /// - The mail must name a tasklet of this scheduler.
    pub(super) unsafe fn apply_mail(&self, mail: Mail, at: RunAt) {
        let (t, pending) = match mail {
            Mail::Wake(t, epoch) => {
                let i = &t.0;
                // A wake for an episode that already ended some other way is stale.
                if i.blocked.get() != 0 && i.block_epoch.get() == epoch {
                    i.blocked.set(0);
                    i.blocked_on.set(None);
                    // SAFETY: a live tasklet of this thread (it was blocked), in no queue now.
                    unsafe { self.ring_insert(Record::as_ptr(&t.0)) };
                }
                return;
            }
            Mail::Insert(t) => {
                let i = &t.0;
                if i.alive() && i.floating() {
                    // SAFETY: a live tasklet of this thread in no queue.
                    unsafe { self.ring_insert(Record::as_ptr(&t.0)) };
                }
                return;
            }
            Mail::Remove(t) => {
                let p = Record::as_ptr(&t.0);
                // Stackless refuses to remove the current tasklet (here: the running one, or
                // the one a switch in progress goes to) and a blocked one; nothing to tell
                // the remote caller, who did not wait.
                if t.0.in_ring() && p != self.current.get() {
                    // SAFETY: in this scheduler's ring.
                    unsafe { self.ring_remove(p) };
                }
                return;
            }
            Mail::Run(t) => {
                let i = &t.0;
                if i.alive() && i.floating() {
                    // SAFETY: a live tasklet of this thread in no queue.
                    unsafe { self.insert_remote_run(t.0, at) };
                }
                return;
            }
            Mail::Dump(request) => {
                // Only reads this thread's state, allocates the text and never unwinds.
                request.answer(self);
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
        unsafe { self.make_runnable(Record::as_ptr(&t.0)) };
    }

    /// Inserts a remote run's target `t` where it runs next: after the last remote run's
    /// target if that still waits in the ring, else as `at` says.
    ///
    /// # Safety
    /// - `t` must be a live tasklet of this scheduler, in no queue.
    unsafe fn insert_remote_run(&self, t: Record, at: RunAt) {
        let p = Record::as_ptr(&t);
        let last = LAST_REMOTE_RUN.try_with(|l| l.take()).ok().flatten();
        // SAFETY: `last` is kept alive by its reference; ring members are of this thread.
        unsafe {
            match &last {
                Some(l) if l.in_ring() => self.ring_insert_after(Record::as_ptr(l), p),
                _ if self.current.get().is_null() => self.ring_insert(p),
                _ if at == RunAt::AfterCurrent => self.ring_insert_after(self.current.get(), p),
                _ => {
                    self.ring_insert(p);
                    self.current.set(p);
                }
            }
        }
        if let Some(l) = last {
            // Possibly the last reference: its `Drop` waits for a safe point.
            self.defer_drop(Box::new(l));
        }
        // During the thread's teardown the slot may be gone: then order is not kept any more.
        let _ = LAST_REMOTE_RUN.try_with(move |l| l.set(Some(t)));
    }
}
