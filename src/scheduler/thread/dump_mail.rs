//! What a process-wide dump (`scheduler::dump_all`) needs of the thread registry: the list of
//! live schedulers to ask, and the dump requests in a mailbox, for a thread that waits for
//! the answers of others and must meanwhile answer theirs.

use std::sync::Arc;

use super::{lock, Mail, Shared, REGISTRY};
use crate::scheduler::dump::DumpRequest;

/// Every scheduler that has not ended (in a forked child: only the forking thread's).
pub(crate) fn live_schedulers() -> Vec<Arc<Shared>> {
    lock(&REGISTRY).live.clone()
}

impl Shared {
    /// Takes the dump requests out of the mailbox and leaves the other mail where it is (in
    /// its order), so that a thread waiting in `dump_all` can answer another thread's
    /// `dump_all` without applying anything else.
    pub(crate) fn take_dump_requests(&self) -> Vec<Arc<DumpRequest>> {
        if self.ended() {
            return Vec::new();
        }
        let mut m = lock(&self.mailbox);
        let mut requests = Vec::new();
        m.mail.retain(|mail| match mail {
            Mail::Dump(r) => {
                requests.push(r.clone());
                false
            }
            _ => true,
        });
        if m.mail.is_empty() {
            self.has_mail
                .store(false, std::sync::atomic::Ordering::Relaxed);
        }
        requests
    }
}

/// Runs `f` with the registry locked: nothing is linked into or out of the debugger's list
/// of threads meanwhile (for tests that walk it).
#[cfg(test)]
pub(crate) fn while_registry_locked<R>(f: impl FnOnce() -> R) -> R {
    let _registry = lock(&REGISTRY);
    f()
}
