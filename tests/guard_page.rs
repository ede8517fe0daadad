//! Death tests for the guard below each coroutine and tasklet stack and the overflow report.
//!
//! Each test runs its dying part in a `fork()`ed child (see tests/common/death.rs): the child
//! overflows or faults, and the parent checks that it died of SIGSEGV and what it wrote:
//!
//! ```text
//! microthread: coroutine <id> overflowed its stack of <N> bytes
//! microthread: tasklet <id> overflowed its stack of <N> bytes
//! ```
//!
//! Every test of this file holds [`serial`] for its whole run, and the coroutines a child runs
//! are created by the parent before the fork where possible.
//!
//! The overflows on threads without a (big enough) alternate signal stack are in
//! tests/guard_page_altstack.rs; the helpers both files share in tests/common/guard.rs.
#![cfg(target_os = "linux")]

#[path = "common/death.rs"]
mod death;
#[path = "common/guard.rs"]
mod guard;

use std::hint::black_box;
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;

use death::{in_child, recurse, serial};
use guard::{
    assert_reports, assert_reports_overflow, install_the_handler, overflow_report, overflowing,
    rounded, Overflowing,
};
use microthread::coroutine::{Builder, Coroutine, CoroutineResult};
use microthread::scheduler::{self, TaskletBuilder};
use microthread::stack::{page_size, pool, Stack, MIN_STACK_SIZE};

#[test]
fn overflowing_a_coroutine_reports_its_id_and_size_and_dies_of_sigsegv() {
    let _serial = serial();
    let mut co = overflowing(64 * 1024);
    let (id, size) = (co.id(), rounded(64 * 1024));
    let death = in_child(move || {
        co.resume(());
    });
    death.assert_killed_by_sigsegv();
    assert_reports_overflow(&death, id, size);
    assert_eq!(
        death.stderr.matches("overflowed its stack").count(),
        1,
        "{:?}",
        death.stderr
    );
}

/// The report says what overflowed: a tasklet is a "tasklet", a plain coroutine (above) a
/// "coroutine". Regression: both were reported as "tasklet".
#[test]
fn overflowing_a_tasklet_reports_a_tasklet_and_a_coroutine_is_not_called_one() {
    let _serial = serial();
    let death = in_child(|| {
        let t = TaskletBuilder::new()
            .stack_size(64 * 1024)
            .spawn(|| recurse(0))
            .unwrap();
        // Not eprintln!, which the harness captures: straight to fd 2, the parent's pipe.
        writeln!(std::io::stderr(), "spawned tasklet {}", t.id()).unwrap();
        let _ = scheduler::run();
    });
    death.assert_killed_by_sigsegv();
    let id: u64 = death
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("spawned tasklet "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no id in the child's stderr: {:?}", death.stderr));
    assert_reports(&death, &overflow_report("tasklet", id, rounded(64 * 1024)));

    let mut co = overflowing(64 * 1024);
    let id = co.id();
    let death = in_child(move || {
        co.resume(());
    });
    death.assert_killed_by_sigsegv();
    assert_reports_overflow(&death, id, rounded(64 * 1024));
    assert!(!death.stderr.contains("tasklet"), "{:?}", death.stderr);
}

/// Zero-sized but aligned to 2 MiB: a closure capturing only this is zero-sized too.
#[repr(align(2097152))]
#[derive(Clone, Copy)]
struct Aligned2M;

/// Regression: a closure aligned beyond its stack's top region was placed by rounding down
/// from the top, up to 2 MiB below it: its initial frame landed in the guard (a false
/// overflow report) or in another mapping. Several stacks, so that one whose top happens to
/// be 2 MiB-aligned cannot hide the bug.
#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "a debug build realigns every frame that holds the closure by value to 2 MiB, \
              more stack than any here; the placement is checked in all builds by \
              coroutine::tests::an_over_aligned_closure_is_placed_in_the_top_region_of_its_stack"
)]
fn an_over_aligned_closure_runs_without_a_false_overflow_report() {
    let _serial = serial();
    let death = in_child(|| {
        let mut cos: Vec<Coroutine<(), (), usize>> = (0..8)
            .map(|_| {
                let a = Aligned2M;
                Builder::new()
                    .stack_size(64 * 1024)
                    .build(move |_, ()| {
                        let _captured = a;
                        0
                    })
                    .unwrap()
            })
            .collect();
        for co in &mut cos {
            assert_eq!(co.resume(()), CoroutineResult::Return(0));
        }
    });
    assert_eq!(
        death.exit_code(),
        Some(0),
        "{}: {:?}",
        death.describe(),
        death.stderr
    );
    assert!(!death.stderr.contains("overflowed"), "{:?}", death.stderr);
}

/// Also for a stack of its own mapping, whose owner word is its registry entry's.
#[test]
fn the_report_gives_the_usable_size_of_a_stack_given_to_build_on() {
    let _serial = serial();
    // Not a multiple of the page size: the report gives the rounded, usable size.
    for own in [false, true] {
        let stack = if own {
            Stack::with_own_mapping(100 * 1024 + 1, page_size())
        } else {
            Stack::new(100 * 1024 + 1)
        };
        let stack = stack.unwrap();
        assert_eq!(stack.in_arena(), !own);
        let size = stack.size();
        assert_eq!(size, rounded(100 * 1024 + 1));
        let mut co: Overflowing = Builder::new().build_on(stack, |_, ()| recurse(0));
        let id = co.id();
        let death = in_child(move || {
            co.resume(());
        });
        death.assert_killed_by_sigsegv();
        assert_reports_overflow(&death, id, size);
    }
}

#[test]
fn the_report_names_the_current_owner_of_a_recycled_stack() {
    let _serial = serial();
    pool::clear();
    let size = 72 * 1024;
    let mut first: Coroutine<(), (), ()> =
        Builder::new().stack_size(size).build(|_, ()| ()).unwrap();
    first.resume(());
    assert!(first.is_finished());
    let first_id = first.id();
    assert_eq!(
        pool::len(),
        1,
        "the finished coroutine's stack went back to the pool"
    );
    let mut second = overflowing(size);
    assert_eq!(pool::len(), 0, "the second coroutine took the pooled stack");
    let second_id = second.id();
    assert_ne!(first_id, second_id);
    let death = in_child(move || {
        second.resume(());
    });
    death.assert_killed_by_sigsegv();
    assert_reports_overflow(&death, second_id, rounded(size));
    assert!(
        !death.stderr.contains(&format!("coroutine {first_id} ")),
        "{:?}",
        death.stderr
    );
}

#[test]
fn an_overflow_in_a_nested_coroutine_names_the_inner_one() {
    let _serial = serial();
    let mut inner = overflowing(64 * 1024);
    let inner_id = inner.id();
    let mut outer: Coroutine<(), (), ()> = Coroutine::new(move |y, ()| {
        y.suspend(());
        inner.resume(());
    })
    .unwrap();
    let outer_id = outer.id();
    assert_eq!(outer.resume(()), CoroutineResult::Yield(()));
    let death = in_child(move || {
        outer.resume(());
    });
    death.assert_killed_by_sigsegv();
    assert_reports_overflow(&death, inner_id, rounded(64 * 1024));
    assert!(
        !death.stderr.contains(&format!("coroutine {outer_id} ")),
        "{:?}",
        death.stderr
    );
}

/// A page of our own with no access, outside every guard.
fn prot_none_page() -> *mut u8 {
    // SAFETY: a fresh anonymous mapping; nothing else refers to it.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            page_size(),
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    p.cast()
}

/// Writes to `addr`, which must fault.
fn fault_at(addr: usize) {
    // SAFETY: not safe at all: the point is to fault, in a child that dies of it.
    unsafe { ptr::write_volatile(black_box(addr) as *mut u8, 1) };
}

#[test]
fn a_fault_outside_any_guard_is_not_reported_and_still_kills() {
    let _serial = serial();
    install_the_handler();
    let page = prot_none_page() as usize;
    // On the thread's own stack, and inside a coroutine; on our page, and at address 0.
    for (place, addr) in [("PROT_NONE page", page), ("null", 0)] {
        let death = in_child(move || fault_at(addr));
        death.assert_killed_by_sigsegv();
        assert!(
            !death.stderr.contains("overflowed"),
            "{place}: {:?}",
            death.stderr
        );

        let mut co: Coroutine<(), (), ()> = Builder::new()
            .stack_size(64 * 1024)
            .build(move |_, ()| fault_at(addr))
            .unwrap();
        let death = in_child(move || {
            co.resume(());
        });
        death.assert_killed_by_sigsegv();
        assert!(
            !death.stderr.contains("overflowed"),
            "{place}, in a coroutine: {:?}",
            death.stderr
        );
    }
    // SAFETY: unmapping the page we mapped.
    unsafe { libc::munmap(page as *mut libc::c_void, page_size()) };
}

#[test]
fn a_fault_where_a_freed_stack_had_its_guard_is_not_reported() {
    let _serial = serial();
    install_the_handler();
    // A stack of its own mapping dropped outright (not pooled) is unmapped and leaves the
    // registry. It is dropped in the child, the only thread there, so nothing else can map
    // the hole it leaves.
    let mut stack = Some(Stack::with_own_mapping(64 * 1024, page_size()).unwrap());
    let (guard, guard_len) = {
        let s = stack.as_ref().unwrap();
        (s.base() as usize, s.guard_size())
    };
    let death = in_child(move || {
        // The child's copy of the stack (each forked child has its own).
        drop(stack.take());
        // SAFETY: maps a no-access range of our own exactly where the guard was, or fails.
        let p = unsafe {
            libc::mmap(
                guard as *mut libc::c_void,
                guard_len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        if p as usize != guard {
            // SAFETY: a static message on fd 2, then leave with a code the parent checks.
            unsafe {
                let m = b"could not map the old guard range\n";
                libc::write(2, m.as_ptr().cast(), m.len());
                libc::_exit(3);
            }
        }
        fault_at(guard + guard_len - 1);
    });
    death.assert_killed_by_sigsegv();
    assert!(!death.stderr.contains("overflowed"), "{:?}", death.stderr);
}

#[test]
fn a_fault_in_the_guard_of_a_free_arena_slot_is_not_reported_and_still_kills() {
    let _serial = serial();
    install_the_handler();
    // An arena stack dropped outright goes back to its arena: its slot is free, its guard
    // stays installed (the next stack of its shape reuses both), and no one owns it.
    let mut stack = Some(Stack::new(64 * 1024).unwrap());
    let (limit, in_arena) = {
        let s = stack.as_ref().unwrap();
        (s.limit() as usize, s.in_arena())
    };
    assert!(in_arena);
    let death = in_child(move || {
        drop(stack.take());
        fault_at(limit - 1);
    });
    death.assert_killed_by_sigsegv();
    assert!(!death.stderr.contains("overflowed"), "{:?}", death.stderr);
}

/// A coroutine on a minimum-size stack creates another coroutine (mapping a new stack, which
/// registers its guard). Regression: the registry once built its 32 KiB chunk on the stack.
#[test]
fn creating_a_coroutine_inside_a_minimum_size_coroutine_does_not_overflow() {
    let _serial = serial();
    let death = in_child(|| {
        pool::clear();
        let mut outer: Coroutine<(), (), u64> = Builder::new()
            .stack_size(MIN_STACK_SIZE)
            .build(|_, ()| {
                let mut inner: Coroutine<(), (), u64> = Coroutine::new(|_, ()| 5).unwrap();
                match inner.resume(()) {
                    CoroutineResult::Return(v) => v + 1,
                    CoroutineResult::Yield(()) => 0,
                }
            })
            .unwrap();
        assert_eq!(outer.resume(()), CoroutineResult::Return(6));
    });
    assert_eq!(
        death.exit_code(),
        Some(0),
        "{}: {:?}",
        death.describe(),
        death.stderr
    );
}

/// `MIN_STACK_SIZE` is documented as room for a panic whose hook captures and symbolises a
/// backtrace on the coroutine's stack (about 24 KiB on x86_64, debug and release).
#[test]
fn a_panic_with_a_backtrace_fits_in_a_minimum_size_coroutine() {
    let _serial = serial();
    let death = in_child(|| {
        // SAFETY (of set_var): the forked child has this one thread.
        std::env::set_var("RUST_BACKTRACE", "1");
        let _ = panic::take_hook(); // the default hook, whatever the harness installed
        let mut co: Coroutine<(), (), ()> = Builder::new()
            .stack_size(MIN_STACK_SIZE)
            .build(|_, ()| panic!("a panic on a small stack"))
            .unwrap();
        let r = panic::catch_unwind(AssertUnwindSafe(|| co.resume(())));
        assert!(r.is_err());
    });
    assert_eq!(
        death.exit_code(),
        Some(0),
        "{}: {:?}",
        death.describe(),
        death.stderr
    );
}
