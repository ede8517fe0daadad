//! Ids for contexts and tasklets: unique in the process, never reused, cheap to take.
//!
//! Each thread takes blocks of ids from one global counter and hands them out one by one, so
//! taking an id is a thread-local increment, not an atomic read-modify-write. Id 0 is never
//! handed out.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

const BLOCK: u64 = 1024;
static NEXT_BLOCK: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// (next id, end of this thread's block)
    static RANGE: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// A new id, unique in the process.
#[inline]
pub(crate) fn next() -> u64 {
    RANGE
        .try_with(|r| {
            let (mut next, mut end) = r.get();
            if next == end {
                next = NEXT_BLOCK.fetch_add(BLOCK, Ordering::Relaxed);
                end = next + BLOCK;
            }
            r.set((next + 1, end));
            next
        })
        .unwrap_or_else(|_| NEXT_BLOCK.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_unique_across_threads() {
        let mut all: Vec<u64> = (0..4)
            .map(|_| std::thread::spawn(|| (0..3000).map(|_| super::next()).collect::<Vec<_>>()))
            .flat_map(|h| h.join().unwrap())
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
        assert!(all[0] > 0);
    }
}
