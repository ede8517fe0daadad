//! Regression tests for soundness holes in the coroutine layer (issue 7, items 3, 9 and 17),
//! each written against the unfixed code first and seen to fail there.
//!
//! - Closures whose alignment does not fit the top of a stack are boxed, so they and their
//!   initial frame stay inside their own stack (item 3; the death test without a false
//!   overflow report is in tests/guard_page.rs). The tests that run such closures need a
//!   release build: unoptimised code keeps every by-value move of a 2 MiB-aligned closure in
//!   a stack slot of that alignment, so each frame on the way realigns itself by up to 2 MiB
//!   (a true overflow of any small stack, on a thread just the same). The placement itself is
//!   checked in every build by a unit test in src/coroutine.rs.
//! - Whether a coroutine may suspend depends on its own stack unwinding, not on the thread's
//!   (item 9).
//! - A `Yielder` suspends only its own coroutine (item 17).
//!
//! The variance of `Coroutine` (item 2) is checked by `compile_fail` doctests in
//! src/coroutine.rs.
//!
//! Some tests fork a child (see tests/common/death.rs); so that no other thread of this
//! binary holds a lock the child would need, every test holds [`serial`] for its whole run.
#![cfg(target_os = "linux")]

mod common;
#[path = "common/death.rs"]
mod death;

use std::cell::RefCell;
use std::hint::black_box;
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use death::{in_child, serial};
use microthread::coroutine::{Builder, Coroutine, CoroutineResult, ScopedCoroutine, Yielder};
use microthread::scheduler::{self, TaskletBuilder};
use microthread::stack::{pool, Stack};

/// Suspends its coroutine when dropped: a destructor that switches, for the tests of
/// suspends during unwinding.
struct SuspendOnDrop<'a>(&'a Yielder<(), ()>);

impl Drop for SuspendOnDrop<'_> {
    fn drop(&mut self) {
        self.0.suspend(());
    }
}

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

/// The stack pointer of a frame the caller calls. (Not the address of a local: under
/// AddressSanitizer's use-after-return checks an address-taken local lives on a separate
/// "fake stack".)
#[inline(never)]
fn frame_address() -> usize {
    common::stack_pointer()
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
#[cfg_attr(
    debug_assertions,
    ignore = "a debug build realigns every frame that holds the closure by value to 2 MiB, \
              more stack than any here; the placement is checked in all builds by \
              coroutine::tests::an_over_aligned_closure_is_placed_in_the_top_region_of_its_stack"
)]
fn over_aligned_coroutine_closures_run_inside_their_own_stack() {
    let _serial = serial();
    // Several stacks each: a stack top that happens to be aligned could hide the bug.
    for _ in 0..4 {
        runs_inside_its_stack(Aligned2M, |_| true);
        runs_inside_its_stack(Aligned64K, |_| true);
        runs_inside_its_stack(Aligned512([1, 2, 3, 4]), |a| black_box(a).0 == [1, 2, 3, 4]);
    }
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "a debug build realigns every frame that holds the closure by value to 2 MiB, \
              more stack than any here; the placement is checked in all builds by \
              coroutine::tests::an_over_aligned_closure_is_placed_in_the_top_region_of_its_stack"
)]
fn an_over_aligned_tasklet_runs_inside_its_stack_and_leaves_other_tasklets_intact() {
    let _serial = serial();
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

// ---------------------------------------------------------------------------------------
// Item 9: suspending is refused only while the coroutine's own stack unwinds

type Counter = Coroutine<u32, u32, u32>;

/// Yields its input plus one, twice, then returns the third input times ten.
fn counter() -> Counter {
    Coroutine::new(|y, a: u32| {
        let b = y.suspend(a + 1);
        let c = y.suspend(b + 1);
        c * 10
    })
    .unwrap()
}

/// What each resume gave, and whether the thread was panicking then.
type Seen = Rc<RefCell<Vec<(bool, CoroutineResult<u32, u32>)>>>;

/// Resumes the coroutine twice from its `Drop`, recording what it yielded.
struct ResumeOnDrop {
    co: Rc<RefCell<Counter>>,
    seen: Seen,
}

impl Drop for ResumeOnDrop {
    fn drop(&mut self) {
        let mut co = self.co.borrow_mut();
        for input in [1, 5] {
            let r = co.resume(input);
            self.seen.borrow_mut().push((std::thread::panicking(), r));
        }
    }
}

/// Regression: the first suspend aborted the process ("a coroutine tried to suspend while
/// its stack was being unwound"), because the check was `thread::panicking()`, thread-wide.
#[test]
fn a_coroutine_resumed_from_a_drop_during_a_panic_suspends_and_resumes_again() {
    let _serial = serial();
    let co = Rc::new(RefCell::new(counter()));
    let seen = Rc::new(RefCell::new(Vec::new()));
    let guard = ResumeOnDrop {
        co: co.clone(),
        seen: seen.clone(),
    };
    let r = panic::catch_unwind(AssertUnwindSafe(move || {
        let _guard = guard;
        panic::resume_unwind(Box::new("an ordinary panic"));
    }));
    assert_eq!(
        *r.unwrap_err().downcast::<&str>().unwrap(),
        "an ordinary panic"
    );
    assert_eq!(
        *seen.borrow(),
        [
            (true, CoroutineResult::Yield(2)),
            (true, CoroutineResult::Yield(6))
        ]
    );
    assert!(!std::thread::panicking());
    // After the panic: resumed normally, it finishes.
    assert_eq!(co.borrow_mut().resume(7), CoroutineResult::Return(70));
}

/// A coroutine resumed from a `Drop` during a panic may itself panic and catch it, and still
/// suspend afterwards; dropping it suspended from there unwinds it normally.
#[test]
fn a_coroutine_resumed_during_a_panic_may_catch_its_own_panic_and_is_dropped_cleanly() {
    let _serial = serial();
    let dropped = Rc::new(RefCell::new(Vec::new()));
    struct Note(Rc<RefCell<Vec<&'static str>>>, &'static str);
    impl Drop for Note {
        fn drop(&mut self) {
            self.0.borrow_mut().push(self.1);
        }
    }
    let log = dropped.clone();
    let co: Coroutine<(), u32, ()> = Coroutine::new(move |y, ()| {
        let _frame = Note(log.clone(), "coroutine frame");
        let caught = panic::catch_unwind(|| panic::resume_unwind(Box::new(1u8)));
        assert!(caught.is_err());
        y.suspend(1);
        y.suspend(2);
    })
    .unwrap();
    let co = Rc::new(RefCell::new(co));
    struct Resumer(Rc<RefCell<Coroutine<(), u32, ()>>>);
    impl Drop for Resumer {
        fn drop(&mut self) {
            assert_eq!(self.0.borrow_mut().resume(()), CoroutineResult::Yield(1));
        }
    }
    let resumer = Resumer(co.clone());
    let r = panic::catch_unwind(AssertUnwindSafe(move || {
        let _r = resumer;
        panic::resume_unwind(Box::new("outer"));
    }));
    assert!(r.is_err());
    assert!(dropped.borrow().is_empty());
    drop(co);
    assert_eq!(*dropped.borrow(), ["coroutine frame"]);
}

/// A coroutine that suspends from a destructor run by its own panic, while its resumer is
/// unwinding too (the case one panic count per thread cannot tell apart, see `Yielder`).
fn unwinding_under_an_unwinding_resumer() -> Rc<RefCell<Coroutine<(), (), ()>>> {
    let co: Coroutine<(), (), ()> = Coroutine::new(|y, ()| {
        let _d = SuspendOnDrop(y);
        panic::resume_unwind(Box::new("the coroutine's own panic"));
    })
    .unwrap();
    let co = Rc::new(RefCell::new(co));
    struct Resumer(Rc<RefCell<Coroutine<(), (), ()>>>);
    impl Drop for Resumer {
        fn drop(&mut self) {
            assert_eq!(self.0.borrow_mut().resume(()), CoroutineResult::Yield(()));
        }
    }
    let resumer = Resumer(co.clone());
    let r = panic::catch_unwind(AssertUnwindSafe(move || {
        let _r = resumer;
        panic::resume_unwind(Box::new("the resumer's panic"));
    }));
    assert_eq!(
        *r.unwrap_err().downcast::<&str>().unwrap(),
        "the resumer's panic"
    );
    co
}

/// What the docs of `Yielder` promise for that case: the suspended unwind keeps the thread
/// panicking, and the next resume continues it and returns the coroutine's panic.
#[test]
fn a_suspended_unwind_under_an_unwinding_resumer_continues_at_the_next_resume() {
    let _serial = serial();
    let co = unwinding_under_an_unwinding_resumer();
    assert!(
        std::thread::panicking(),
        "the coroutine's unwind is still counted"
    );
    let r = panic::catch_unwind(AssertUnwindSafe(|| co.borrow_mut().resume(())));
    assert_eq!(
        *r.unwrap_err().downcast::<&str>().unwrap(),
        "the coroutine's own panic"
    );
    assert!(co.borrow().is_finished());
    assert!(!std::thread::panicking());
}

/// And dropping it instead aborts the process with Rust's own message.
#[test]
fn dropping_a_coroutine_with_a_suspended_unwind_aborts_with_rusts_message() {
    let _serial = serial();
    let death = in_child(|| {
        let co = unwinding_under_an_unwinding_resumer();
        drop(co);
    });
    death.assert_aborted_saying("panic in a destructor during cleanup");
}

/// The refusal that stays: a destructor run by the coroutine's own panic may not suspend it.
#[test]
fn suspending_while_the_coroutine_itself_unwinds_still_aborts_with_a_message() {
    let _serial = serial();
    let mut co: Coroutine<(), (), ()> = Coroutine::new(|y, ()| {
        let _d = SuspendOnDrop(y);
        panic::resume_unwind(Box::new("the coroutine's own panic"));
    })
    .unwrap();
    let death = in_child(move || {
        let _ = panic::catch_unwind(AssertUnwindSafe(|| co.resume(())));
    });
    death.assert_aborted_saying(
        "a coroutine tried to suspend while its own stack was being unwound",
    );
}

/// The note that a resumer was panicking does not outlive the next resume: a coroutine
/// resumed once from a `Drop` during a panic (its suspend then is accepted) and then resumed
/// normally is again refused a suspend from a destructor of its own panic. (The fast path
/// records a panicking resumer only in a cold branch and leaves the exact bookkeeping to the
/// slow path from then on; this is the sequence that would catch a note left stale.)
#[test]
fn a_resume_during_a_panic_does_not_excuse_a_later_suspend_during_the_coroutines_own_unwind() {
    let _serial = serial();
    struct ResumeOnDrop(Rc<RefCell<Coroutine<(), (), ()>>>);
    impl Drop for ResumeOnDrop {
        fn drop(&mut self) {
            assert_eq!(self.0.borrow_mut().resume(()), CoroutineResult::Yield(()));
        }
    }
    let death = in_child(move || {
        let co = Rc::new(RefCell::new(
            Coroutine::new(|y: &Yielder<(), ()>, ()| {
                y.suspend(()); // resumed normally: the fast path's suspend
                y.suspend(()); // resumed during the resumer's panic: accepted
                let _d = SuspendOnDrop(y);
                panic::resume_unwind(Box::new("the coroutine's own panic"));
            })
            .unwrap(),
        ));
        assert_eq!(co.borrow_mut().resume(()), CoroutineResult::Yield(()));
        let guard = ResumeOnDrop(co.clone());
        let r = panic::catch_unwind(AssertUnwindSafe(move || {
            let _guard = guard;
            panic::resume_unwind(Box::new("the resumer's panic"));
        }));
        assert!(r.is_err());
        // Straight to fd 2: the test harness captures `eprintln!`.
        let _ = writeln!(std::io::stderr(), "suspended during the resumer's panic");
        let _ = panic::catch_unwind(AssertUnwindSafe(|| co.borrow_mut().resume(())));
    });
    assert!(
        death
            .stderr
            .contains("suspended during the resumer's panic"),
        "{}",
        death.describe()
    );
    death.assert_aborted_saying(
        "a coroutine tried to suspend while its own stack was being unwound",
    );
}

// ---------------------------------------------------------------------------------------
// Item 17: a Yielder suspends only its own coroutine

type Outer = Coroutine<(), u32, &'static str>;

// The child is a coroutine whose input is the outer coroutine's `&Yielder`, a borrow, so it
// is a scoped one (a plain `Coroutine` needs `'static` inputs).

/// Regression: the child's call switched the outer coroutine's resumer back in from the
/// child's stack (the outer resume returned `Yield(7)`), and dropping the outer coroutine
/// later panicked with "internal error: entered unreachable code".
#[test]
fn a_yielder_used_from_another_coroutine_panics_with_a_sentence_and_changes_nothing() {
    let _serial = serial();
    let mut outer: Outer = Coroutine::new(|y, ()| {
        let message = ScopedCoroutine::with(
            |_: &Yielder<_, ()>, outer_yielder: &Yielder<(), u32>| {
                outer_yielder.suspend(7);
            },
            |child| {
                let err = panic::catch_unwind(AssertUnwindSafe(|| child.resume(y))).unwrap_err();
                assert!(child.is_finished());
                err.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            },
        )
        .unwrap();
        // The outer coroutine is untouched: it still suspends and finishes normally.
        y.suspend(1);
        if message.contains("a Yielder can only suspend its own coroutine") {
            "refused"
        } else {
            "accepted"
        }
    })
    .unwrap();
    assert_eq!(outer.resume(()), CoroutineResult::Yield(1));
    assert_eq!(outer.resume(()), CoroutineResult::Return("refused"));
}

/// The same, with the outer coroutine dropped while suspended: it unwinds normally.
#[test]
fn a_coroutine_whose_yielder_was_misused_is_dropped_cleanly() {
    let _serial = serial();
    let unwound = Rc::new(RefCell::new(false));
    let flag = unwound.clone();
    let mut outer: Coroutine<(), u32, ()> = Coroutine::new(move |y, ()| {
        struct SetOnDrop(Rc<RefCell<bool>>);
        impl Drop for SetOnDrop {
            fn drop(&mut self) {
                *self.0.borrow_mut() = true;
            }
        }
        let _set = SetOnDrop(flag);
        ScopedCoroutine::with(
            |_: &Yielder<_, ()>, outer_yielder: &Yielder<(), u32>| {
                outer_yielder.suspend(7);
            },
            |child| {
                let _ = panic::catch_unwind(AssertUnwindSafe(|| child.resume(y)));
            },
        )
        .unwrap();
        y.suspend(1);
    })
    .unwrap();
    assert_eq!(outer.resume(()), CoroutineResult::Yield(1));
    drop(outer);
    assert!(*unwound.borrow());
}

/// The private payload of a drop's forced unwind, caught by user code and carried to another
/// coroutine that raises it, is an ordinary panic of that coroutine. Regression: its resume
/// panicked with "internal error: entered unreachable code: a coroutine unwound without being
/// dropped".
#[test]
fn a_forced_unwind_payload_raised_in_another_coroutine_is_an_ordinary_panic() {
    let _serial = serial();
    let carried: Rc<RefCell<Option<Box<dyn std::any::Any + Send>>>> = Rc::default();
    let keep = carried.clone();
    let mut dropped: Coroutine<(), (), ()> = Coroutine::new(move |y, ()| {
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| y.suspend(()))) {
            *keep.borrow_mut() = Some(payload);
        }
    })
    .unwrap();
    assert_eq!(dropped.resume(()), CoroutineResult::Yield(()));
    drop(dropped);
    let payload = carried
        .borrow_mut()
        .take()
        .expect("the drop's payload was caught");
    let mut raiser: Coroutine<(), (), ()> =
        Coroutine::new(move |_, ()| panic::resume_unwind(payload)).unwrap();
    let err = panic::catch_unwind(AssertUnwindSafe(|| raiser.resume(()))).unwrap_err();
    assert!(raiser.is_finished());
    let message = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()));
    assert_eq!(
        message, None,
        "the resume panicked with a message of its own"
    );
}

/// Counts its drops: for the values of suspends that were refused or cut short.
struct Counted(Rc<std::cell::Cell<u32>>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// What item 17's refusal guarantees about the suspend's value, for any place the check is
/// made (on the suspend's side before it switches, or by the resume it would land in): the
/// refused value is dropped once, in the misused suspend, before its panic leaves the child,
/// and the first yield the outer resumer sees is the outer coroutine's own. With and without
/// the FP environment kept (a second kind of switch on both sides).
#[test]
fn a_refused_suspend_drops_its_value_once_and_the_resumer_sees_only_the_outer_yield() {
    let _serial = serial();
    for preserve_fp_env in [false, true] {
        let drops = Rc::new(std::cell::Cell::new(0));
        let counter = drops.clone();
        let mut outer: Coroutine<(), Counted, bool> = Builder::new()
            .preserve_fp_env(preserve_fp_env)
            .build(move |y, ()| {
                let misused = counter.clone();
                let refused = ScopedCoroutine::with(
                    move |_: &Yielder<_, ()>, outer_yielder: &Yielder<(), Counted>| {
                        outer_yielder.suspend(Counted(misused));
                    },
                    |child| panic::catch_unwind(AssertUnwindSafe(|| child.resume(y))).is_err(),
                )
                .unwrap();
                // Dropped by the refused suspend, before its panic reached the child's end.
                assert_eq!(counter.get(), 1);
                y.suspend(Counted(counter.clone()));
                refused
            })
            .unwrap();
        match outer.resume(()) {
            CoroutineResult::Yield(_own) => assert_eq!(drops.get(), 1, "{preserve_fp_env}"),
            CoroutineResult::Return(_) => panic!("the outer coroutine ended early"),
        }
        assert_eq!(drops.get(), 2, "the yielded value, dropped by the match");
        assert!(matches!(outer.resume(()), CoroutineResult::Return(true)));
        assert_eq!(drops.get(), 2);
    }
}

/// A suspend after user code caught the drop's unwind is unwound again (the coroutine must
/// end): the drop ends, every destructor on the coroutine's stack runs, and that suspend's
/// value is dropped once. (Regression guard for the `unwinding` test of the suspend, wherever
/// it is made: without it the suspend yields into the drop, which panics, "a coroutine
/// yielded while being unwound".)
#[test]
fn a_suspend_after_a_caught_forced_unwind_is_unwound_again_by_the_drop() {
    let _serial = serial();
    let drops = Rc::new(std::cell::Cell::new(0));
    let log = Rc::new(RefCell::new(Vec::new()));
    struct Note(Rc<RefCell<Vec<&'static str>>>, &'static str);
    impl Drop for Note {
        fn drop(&mut self) {
            self.0.borrow_mut().push(self.1);
        }
    }
    let (counter, notes) = (drops.clone(), log.clone());
    let mut co: Coroutine<(), Counted, ()> = Coroutine::new(move |y, ()| {
        let _frame = Note(notes.clone(), "frame");
        let first = panic::catch_unwind(AssertUnwindSafe(|| y.suspend(Counted(counter.clone()))));
        assert!(first.is_err(), "the drop's unwind, caught");
        notes.borrow_mut().push("caught");
        y.suspend(Counted(counter.clone()));
        notes.borrow_mut().push("resumed after the unwind");
    })
    .unwrap();
    assert!(matches!(co.resume(()), CoroutineResult::Yield(_)));
    assert_eq!(drops.get(), 1);
    drop(co);
    assert_eq!(*log.borrow(), ["caught", "frame"]);
    assert_eq!(drops.get(), 2);
}
