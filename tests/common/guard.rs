//! Helpers shared by the guard-page death tests (tests/guard_page.rs,
//! tests/guard_page_altstack.rs), which include this file with
//! `#[path = "common/guard.rs"] mod guard;` next to `common/death.rs` as `death`.
#![allow(dead_code)]

use microthread::coroutine::{Builder, Coroutine};
use microthread::stack::{page_size, Stack, MIN_STACK_SIZE};

use crate::death::{recurse, Death};

/// The report for an overflow of the stack of coroutine (`kind` "coroutine") or tasklet `id`.
pub fn overflow_report(kind: &str, id: u64, size: usize) -> String {
    format!("microthread: {kind} {id} overflowed its stack of {size} bytes\n")
}

/// Asserts that the child's stderr holds the overflow report for coroutine `id` of `size`.
#[track_caller]
pub fn assert_reports_overflow(death: &Death, id: u64, size: usize) {
    assert_reports(death, &overflow_report("coroutine", id, size));
}

#[track_caller]
pub fn assert_reports(death: &Death, report: &str) {
    assert!(
        death.stderr.contains(report),
        "expected {report:?} in the child's stderr: {:?}",
        death.stderr
    );
}

/// Usable bytes the pool gives for a request of `n`: rounded to pages, at least the minimum.
pub fn rounded(n: usize) -> usize {
    let page = page_size();
    n.max(MIN_STACK_SIZE).div_ceil(page) * page
}

pub type Overflowing = Coroutine<(), (), u64>;

/// A coroutine that overflows its pooled stack of `size` bytes when resumed.
pub fn overflowing(size: usize) -> Overflowing {
    Builder::new()
        .stack_size(size)
        .build(|_, ()| recurse(0))
        .unwrap()
}

/// Makes sure this process has installed the overflow handler (creating a stack does).
pub fn install_the_handler() {
    drop(Stack::new(MIN_STACK_SIZE).unwrap());
}
