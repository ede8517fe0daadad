//! Regression tests for soundness holes in the coroutine layer (issue 7), each written
//! against the unfixed code first and seen to fail there.
//!
//! - Closures whose alignment does not fit the top of a stack are boxed, so they and their
//!   initial frame stay inside their own stack (item 3; the death test without a false
//!   overflow report is in tests/guard_page.rs).
//!
//! The variance of `Coroutine` (item 2) is checked by `compile_fail` doctests in
//! src/coroutine.rs.
#![cfg(target_os = "linux")]

use std::hint::black_box;

use microthread::coroutine::{Builder, Coroutine, CoroutineResult};
use microthread::scheduler::{self, TaskletBuilder};
use microthread::stack::{pool, Stack};

// ---------------------------------------------------------------------------------------
// Item 3: over-aligned closures

/// Zero-sized but aligned to 2 MiB: a closure capturing only this is zero-sized too, and was
/// placed by rounding the stack top down to 2 MiB.
#[repr(align(2097152))]
#[derive(Clone, Copy)]
struct Aligned2M;

/// Zero-sized, aligned to 64 KiB.
#[repr(align(65536))]
#[derive(Clone, Copy)]
struct Aligned64K;

/// Small and aligned to 512 bytes: fits the top region either way.
#[repr(C, align(512))]
#[derive(Clone, Copy)]
struct Aligned512([u64; 4]);

/// The address of a local of the caller's frame.
#[inline(never)]
fn frame_address() -> usize {
    let local = 0u8;
    black_box(&local) as *const u8 as usize
}

/// Runs a coroutine capturing `value` on a fresh stack, asserts that its frames lay inside
/// that stack, and gives `check` the captured value (by value: a closure body that took the
/// address of a capture aligned beyond its stack would need that much stack to realign its
/// frame, a true overflow, as on a thread).
/// (`check` is a closure type, not a function pointer, so that a zero-sized `T` makes a
/// zero-sized closure.)
fn runs_inside_its_stack<T, C>(value: T, check: C)
where
    T: Copy + 'static,
    C: Fn(T) -> bool + Copy + 'static,
{
    let stack = Stack::new(64 * 1024).unwrap();
    let (limit, top) = (stack.limit() as usize, stack.top() as usize);
    let mut co: Coroutine<(), (), (usize, bool)> =
        Builder::new().build_on(stack, move |_, ()| (frame_address(), check(value)));
    match co.resume(()) {
        CoroutineResult::Return((at, intact)) => {
            assert!(
                (limit..top).contains(&at),
                "a frame at {at:#x}, outside its stack [{limit:#x}, {top:#x})"
            );
            assert!(intact, "the captured value changed");
        }
        CoroutineResult::Yield(()) => unreachable!(),
    }
}

#[test]
fn over_aligned_coroutine_closures_run_inside_their_own_stack() {
    // Several stacks each: a stack top that happens to be aligned could hide the bug.
    for _ in 0..4 {
        runs_inside_its_stack(Aligned2M, |_| true);
        runs_inside_its_stack(Aligned64K, |_| true);
        runs_inside_its_stack(Aligned512([1, 2, 3, 4]), |a| black_box(a).0 == [1, 2, 3, 4]);
    }
}

#[test]
fn an_over_aligned_tasklet_runs_inside_its_stack_and_leaves_other_tasklets_intact() {
    // On a fresh thread, so the scheduler is fresh.
    on_thread(|| {
        pool::clear();
        // Victims created first, on stacks mapped before and after the over-aligned one's.
        let values: [u64; 16] = std::array::from_fn(|i| 0x5eed_0000 + i as u64);
        let before = scheduler::spawn(move || values.iter().sum::<u64>()).unwrap();
        // A stack of a size nobody else asks for, put in the pool so that the over-aligned
        // tasklet gets exactly it and we know its range.
        let size = 96 * 1024;
        let stack = Stack::new(size).unwrap();
        let (limit, top) = (stack.limit() as usize, stack.top() as usize);
        pool::release(stack);
        let mut aligned = Vec::new();
        for _ in 0..4 {
            let a = Aligned2M;
            aligned.push(
                TaskletBuilder::new()
                    .stack_size(size)
                    .spawn(move || {
                        let _captured = a;
                        frame_address()
                    })
                    .unwrap(),
            );
        }
        let after = scheduler::spawn(move || values.iter().rev().sum::<u64>()).unwrap();
        scheduler::run().unwrap();
        let expected: u64 = values.iter().sum();
        assert_eq!(before.result::<u64>(), Some(expected));
        assert_eq!(after.result::<u64>(), Some(expected));
        let at = aligned[0].result::<usize>().unwrap();
        assert!(
            (limit..top).contains(&at),
            "a frame at {at:#x}, outside its stack [{limit:#x}, {top:#x})"
        );
        for t in &aligned[1..] {
            assert!(t.result::<usize>().is_some());
        }
    });
}

fn on_thread(f: impl FnOnce() + Send + 'static) {
    std::thread::spawn(f).join().unwrap()
}
