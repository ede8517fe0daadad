//! The heap a blocked tasklet costs beyond its stack page: the tasklet's record, its stack's
//! bookkeeping and its own channel (with the waiter queue), as a counting global allocator
//! sees them (issue 11, `rss_per_suspended_tasklet_bytes`: the goal of 4,200 bytes per
//! blocked tasklet with its guard leaves about 100 bytes of heap beside the one stack page
//! that tests/blocked_footprint.rs checks; the row measures 4,184 with the scale run's own
//! two vectors of handles, 16 bytes a tasklet).
//!
//! Today, 72 bytes: the channel (64) and the stack slot's owner word in the overflow
//! registry (8). The tasklet's record (208 bytes, `tasklet::Record`) and the slot's range
//! (48) live in the stack's top page, the one page a blocked tasklet commits; before that,
//! 328 (record 208, channel 64, range 48, owner 8); before issue 11's footprint work, 488
//! (record 240, channel 112 and its queue buffer 48, range 80, owner 8). The bound is
//! today's number, so that any growth fails here.
//!
//! Bytes are counted as glibc's malloc spends them: each allocation is a chunk of its size
//! plus an 8-byte header, rounded up to 16, at least 32 bytes. The test's own two vectors
//! (a handle of each tasklet and of each channel) are allocated before counting starts.
//!
//! One test function in this file: the counter is process-wide.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};

use microthread::channel::Channel;
use microthread::scheduler;
use microthread::Tasklet;

/// Counts the live bytes (as malloc chunks) and allocations while `COUNTING` is on.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static LIVE_BLOCKS: AtomicIsize = AtomicIsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

/// The size of glibc's chunk for an allocation of `size` bytes (64-bit).
fn chunk(size: usize) -> isize {
    ((size + 8 + 15) & !15).max(32) as isize
}

// SAFETY: forwards to the system allocator; the counters are plain atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE_BYTES.fetch_add(chunk(layout.size()), Ordering::Relaxed);
            LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE_BYTES.fetch_sub(chunk(layout.size()), Ordering::Relaxed);
            LIVE_BLOCKS.fetch_sub(1, Ordering::Relaxed);
        }
        // SAFETY: `p` came from `alloc` with this layout.
        unsafe { System.dealloc(p, layout) }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE_BYTES.fetch_add(chunk(new_size) - chunk(layout.size()), Ordering::Relaxed);
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded.
        unsafe { System.realloc(p, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Heap bytes (malloc chunks) one blocked tasklet with its own channel may cost at most.
const MAX_HEAP_BYTES_PER_BLOCKED_TASKLET: f64 = 74.0;

#[test]
fn a_blocked_tasklet_with_its_channel_costs_at_most_its_measured_heap_bytes() {
    // Warm up what every process pays once (the scheduler, the first arena, the pool's
    // vectors, lazily made statics), and count after it: the per-tasklet cost is the slope.
    let warm = 512;
    let n = 8192;
    let mut channels: Vec<Channel<u32>> = Vec::with_capacity(warm + n);
    let mut tasklets: Vec<Tasklet> = Vec::with_capacity(warm + n);
    let spawn_blocked = |channels: &mut Vec<Channel<u32>>, tasklets: &mut Vec<Tasklet>| {
        let ch = Channel::new();
        let rx = ch.clone();
        tasklets.push(scheduler::spawn(move || rx.receive().expect("a message")).expect("a stack"));
        channels.push(ch);
    };
    for _ in 0..warm {
        spawn_blocked(&mut channels, &mut tasklets);
    }
    scheduler::run().expect("every tasklet blocks in receive");

    COUNTING.store(true, Ordering::SeqCst);
    for _ in 0..n {
        spawn_blocked(&mut channels, &mut tasklets);
    }
    scheduler::run().expect("every tasklet blocks in receive");
    COUNTING.store(false, Ordering::SeqCst);

    assert!(tasklets.iter().all(|t| t.blocked()));
    let per_tasklet = LIVE_BYTES.load(Ordering::SeqCst) as f64 / n as f64;
    let blocks = LIVE_BLOCKS.load(Ordering::SeqCst) as f64 / n as f64;
    let allocations = ALLOCATIONS.load(Ordering::SeqCst) as f64 / n as f64;
    eprintln!(
        "per blocked tasklet with its channel: {per_tasklet:.1} heap bytes in {blocks:.2} live \
         blocks ({allocations:.2} allocations)"
    );
    assert!(
        per_tasklet <= MAX_HEAP_BYTES_PER_BLOCKED_TASKLET,
        "a blocked tasklet with its channel costs {per_tasklet:.1} heap bytes (at most \
         {MAX_HEAP_BYTES_PER_BLOCKED_TASKLET})"
    );

    for ch in &channels {
        ch.send(7).expect("its tasklet waits");
    }
    scheduler::run().expect("every tasklet finishes");
    assert!(tasklets.iter().all(|t| t.result::<u32>() == Some(7)));
}
