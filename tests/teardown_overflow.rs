//! A stack overflow in a tasklet destructor run by the thread-exit teardown (the scheduler's
//! thread-local destructor kills every live tasklet) is reported like any other overflow.
//!
//! By then std has removed the alternate signal stack it gave the thread, so without one of
//! ours the kernel cannot deliver the SIGSEGV of an overflow (the faulting stack has no room)
//! and the process died with no word.
//!
//! The thread must really end, so the fork happens inside a spawned thread: the child (in
//! which that thread is the only one) returns from the thread's closure and dies in its
//! teardown; the parent's copy of the thread waits for the child and returns its death.
#![cfg(target_os = "linux")]

#[path = "common/death.rs"]
mod death;

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};

use death::{fork_then, recurse, serial};
use microthread::scheduler::{self, TaskletBuilder};
use microthread::stack::{page_size, MIN_STACK_SIZE};

/// Set in the child only: the parent's copy of the tasklet must die quietly in its own
/// thread's teardown.
static IN_CHILD: AtomicBool = AtomicBool::new(false);

/// Overflows its stack when dropped in the child.
struct OverflowsWhenDropped;

impl Drop for OverflowsWhenDropped {
    fn drop(&mut self) {
        if IN_CHILD.load(Ordering::Relaxed) {
            black_box(recurse(0));
        }
    }
}

#[test]
fn an_overflow_in_a_destructor_run_by_the_thread_exit_teardown_is_reported() {
    let _serial = serial();
    let death = std::thread::spawn(|| {
        // A tasklet that is alive (paused) when its thread ends, holding a value whose
        // destructor overflows: the teardown kills it, and the kill's unwind drops the value.
        let t = TaskletBuilder::new()
            .stack_size(MIN_STACK_SIZE)
            .spawn(|| {
                let _held = OverflowsWhenDropped;
                let _ = scheduler::schedule_remove();
            })
            .unwrap();
        scheduler::run().unwrap();
        assert!(t.alive() && t.paused(), "the tasklet waits, paused");
        let id = t.id();
        drop(t);
        // The child returns from this closure, so its only thread ends; the parent's copy
        // gets the child's death.
        let death = fork_then();
        if death.is_none() {
            IN_CHILD.store(true, Ordering::Relaxed);
        }
        death.map(|death| (death, id))
    })
    .join()
    .unwrap();
    let Some((death, id)) = death else {
        unreachable!("the child's thread never returns here: it ends in its teardown")
    };
    let size = MIN_STACK_SIZE.div_ceil(page_size()) * page_size();
    death.assert_killed_by_sigsegv();
    death.assert_reports_overflow(id, size);
}
