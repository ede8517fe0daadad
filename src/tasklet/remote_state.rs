//! [`RemoteState`]: the part of a tasklet's state that other threads may read.

use std::sync::atomic::{AtomicU8, Ordering};

/// An atomic mirror of a tasklet's state for other threads ([`RemoteTasklet`]'s queries),
/// since the `Cell`s it is computed from belong to the owning thread. Only the owner writes
/// it, with relaxed stores (a plain store on every architecture, no read-modify-write), at
/// each transition: into the ring (`ring_insert`), out of it (`ring_remove`, which also sees
/// whether the tasklet leaves it to block), and death (`unregister`). A reader gets a
/// snapshot that was true at some moment and may be stale by the time it looks at it.
///
/// [`RemoteTasklet`]: crate::scheduler::RemoteTasklet
pub(crate) struct RemoteState(AtomicU8);

impl RemoteState {
    /// Alive (created, not ended).
    pub(crate) const ALIVE: u8 = 1;
    /// In the run queue (scheduled or running).
    pub(crate) const IN_RING: u8 = 2;
    /// Blocked on a channel.
    pub(crate) const BLOCKED: u8 = 4;

    pub(crate) fn new(bits: u8) -> RemoteState {
        RemoteState(AtomicU8::new(bits))
    }

    /// Publishes `bits`; by the owning thread only.
    #[inline(always)]
    pub(crate) fn set(&self, bits: u8) {
        self.0.store(bits, Ordering::Relaxed);
    }

    /// The last published state: a snapshot.
    #[inline]
    pub(crate) fn get(&self) -> u8 {
        self.0.load(Ordering::Relaxed)
    }
}
