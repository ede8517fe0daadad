//! Ids for contexts and tasklets: unique in the process, never reused, cheap to take.
//!
//! Each thread takes blocks of ids from one global counter and hands them out one by one, so
//! taking an id is a thread-local increment, not an atomic read-modify-write. Id 0 is never
//! handed out.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

const BLOCK: u64 = 1024;
static NEXT_BLOCK: AtomicU64 = AtomicU64::new(1);

/// This thread's block: the next id and the end of the block. Two cells, so that taking an
/// id stores only `next` (as one pair, both words were stored back every time).
struct Range {
    next: Cell<u64>,
    end: Cell<u64>,
}

thread_local! {
    static RANGE: Range = const {
        Range {
            next: Cell::new(0),
            end: Cell::new(0),
        }
    };
}

/// A new id, unique in the process.
#[inline]
pub(crate) fn next() -> u64 {
    RANGE
        .try_with(|r| {
            let next = r.next.get();
            if next != r.end.get() {
                r.next.set(next + 1);
                next
            } else {
                refill(r)
            }
        })
        .unwrap_or_else(|_| NEXT_BLOCK.fetch_add(1, Ordering::Relaxed))
}

/// Takes a new block for this thread (once every [`BLOCK`] ids, and first of all) and hands
/// out its first id. Out of line: the common path is a load, a comparison and a store.
#[cold]
#[inline(never)]
fn refill(r: &Range) -> u64 {
    let next = NEXT_BLOCK.fetch_add(BLOCK, Ordering::Relaxed);
    r.end.set(next + BLOCK);
    r.next.set(next + 1);
    next
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
