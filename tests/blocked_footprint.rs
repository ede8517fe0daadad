//! What a tasklet blocked in a channel receive keeps committed of its stack: one page.
//!
//! Regression: the cache colour (a per-tasklet offset of the first frame below the stack's
//! top, up to 4,032 bytes) pushed the receive chain of about one in six tasklets over into a
//! second page, so a million blocked tasklets held some 700 bytes each more than the one page
//! they need (issue 11, `rss_per_suspended_tasklet_bytes`).
#![cfg(target_os = "linux")]

use std::cell::Cell;
use std::rc::Rc;

use microthread::channel::Channel;
use microthread::scheduler;
use microthread::stack::page_size;
use microthread::Tasklet;

/// Whether the page at `addr` (page-aligned) is resident. `mincore` fails with ENOMEM on
/// unmapped memory, which is not resident either.
fn resident(addr: usize) -> bool {
    let mut vec = [0u8; 1];
    // SAFETY: mincore only inspects the page tables of the given page and writes one byte.
    let rc = unsafe { libc::mincore(addr as *mut libc::c_void, page_size(), vec.as_mut_ptr()) };
    rc == 0 && vec[0] & 1 == 1
}

#[test]
fn a_tasklet_blocked_in_receive_keeps_one_page_of_its_stack() {
    if cfg!(debug_assertions) {
        // Unoptimised frames are several times larger: the receive chain of a debug build
        // takes more than a page, as it may. The footprint is a property of release builds
        // (which `cargo test --release`, the valgrind leg and the report run).
        eprintln!("skipped in a debug build: its frames do not fit one page");
        return;
    }
    // Enough tasklets for every cache colour (64) many times over; all on fresh stacks (the
    // first thing this process does), whose pages were never touched before.
    let n = 4096;
    let page = page_size();
    let channels: Vec<Channel<u32>> = (0..n).map(|_| Channel::new()).collect();
    let marks: Vec<Rc<Cell<usize>>> = (0..n).map(|_| Rc::new(Cell::new(0))).collect();
    let tasklets: Vec<Tasklet> = channels
        .iter()
        .zip(&marks)
        .map(|(ch, mark)| {
            let (ch, mark) = (ch.clone(), mark.clone());
            scheduler::spawn(move || {
                // An address in the tasklet's first frames, near its stack's top.
                let here = 0u8;
                mark.set(std::hint::black_box(&here) as *const u8 as usize);
                ch.receive().expect("a message")
            })
            .expect("a stack")
        })
        .collect();
    scheduler::run().expect("every tasklet blocks in receive");
    // The mark is in the stack's top page (the closure and the first frame sit within 2 KiB
    // of the top); the receive chain goes down from it. Count the resident pages from the
    // mark's page down to eight below it. (Not the page above: that is the next slot's
    // guard, or, above an arena's last slot, another mapping.)
    let mut pages = Vec::with_capacity(n);
    for mark in &marks {
        let at = mark.get() & !(page - 1);
        assert_ne!(at, 0, "every tasklet ran until it blocked");
        let count = (0..9)
            .map(|k| at - k * page)
            .filter(|&p| resident(p))
            .count();
        pages.push(count);
    }
    let two = pages.iter().filter(|&&c| c > 1).count();
    assert!(
        pages.iter().all(|&c| c == 1),
        "{two} of {n} blocked tasklets hold more than one stack page (max {:?})",
        pages.iter().max()
    );
    for ch in &channels {
        ch.send(7).expect("its tasklet waits");
    }
    scheduler::run().expect("every tasklet finishes");
    assert!(tasklets.iter().all(|t| t.result::<u32>() == Some(7)));
}
