//! `ScopedCoroutine` and generators: borrowing from the caller's stack (shared and mutable),
//! panics on either side of the scope, the unwind of an unfinished coroutine at the end of
//! its scope, `mem::forget` of everything the user can forget, nesting, and iteration.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use microthread::coroutine::{
    generator, scoped_generator, Builder, Coroutine, CoroutineResult, ResumeError, ScopedCoroutine,
    Yielder,
};
use microthread::stack::Stack;

/// Drop-logging values and panic messages.
#[path = "coroutine_scoped/observe.rs"]
mod observe;
use observe::{message, Noted, NotedShared};

// ---------------------------------------------------------------------------------------
// Borrowing

#[test]
fn the_body_mutates_a_vec_on_the_callers_stack_between_suspensions() {
    let mut numbers = vec![1u32];
    let sum = ScopedCoroutine::with(
        |y, factor: u32| {
            let mut factor = factor;
            for _ in 0..3 {
                let last = *numbers.last().unwrap();
                numbers.push(last * factor);
                factor = y.suspend(numbers.len());
            }
            numbers.iter().sum::<u32>()
        },
        |co| {
            assert_eq!(co.resume(2), CoroutineResult::Yield(2));
            assert_eq!(co.resume(3), CoroutineResult::Yield(3));
            assert_eq!(co.resume(10), CoroutineResult::Yield(4));
            co.resume(0)
        },
    )
    .unwrap();
    assert_eq!(sum, CoroutineResult::Return(1 + 2 + 6 + 60));
    assert_eq!(numbers, [1, 2, 6, 60]);
}

#[test]
fn inputs_yields_and_returns_may_be_borrows() {
    let words = [String::from("alpha"), String::from("beta")];
    // Inputs must outlive the whole `with` call: both sinks are made before it.
    let (mut first, mut second) = (String::new(), String::new());
    ScopedCoroutine::with(
        |y: &Yielder<&mut String, &str>, out: &mut String| {
            out.push_str(&words[0]);
            let out = y.suspend(&words[1]);
            out.push('+');
            &words[1][..2]
        },
        |co| {
            assert_eq!(co.resume(&mut first), CoroutineResult::Yield("beta"));
            assert_eq!(co.resume(&mut second), CoroutineResult::Return("be"));
        },
    )
    .unwrap();
    assert_eq!((first.as_str(), second.as_str()), ("alpha", "+"));
}

#[test]
fn a_finished_scoped_coroutine_refuses_resumes_with_the_error_and_the_sentence() {
    let n = 4;
    ScopedCoroutine::with(
        |_: &Yielder<(), ()>, ()| n,
        |co| {
            assert!(!co.started());
            assert_eq!(co.resume(()), CoroutineResult::Return(4));
            assert!(co.started() && co.is_finished());
            assert_eq!(co.try_resume(()), Err(ResumeError::Finished));
            let err = panic::catch_unwind(AssertUnwindSafe(|| co.resume(()))).unwrap_err();
            assert_eq!(
                message(&*err),
                "attempt to resume a coroutine that has finished"
            );
        },
    )
    .unwrap();
}

#[test]
fn builder_options_apply_to_scoped_coroutines() {
    let log = RefCell::new(Vec::new());
    let deep = Builder::new()
        .stack_size(2 << 20)
        .preserve_fp_env(true)
        .scoped(
            |y, ()| {
                // 384 KiB of locals: more than the default stack holds.
                let big = [7u8; 384 * 1024];
                let _noted = Noted {
                    name: "big frame",
                    log: &log,
                };
                y.suspend(
                    std::hint::black_box(&big)
                        .iter()
                        .map(|&b| b as usize)
                        .sum::<usize>(),
                );
            },
            |co| co.resume(()).into_yield(),
        )
        .unwrap();
    assert_eq!(deep, Some(7 * 384 * 1024));
    assert_eq!(*log.borrow(), ["big frame"]);

    let name = String::from("on a given stack");
    let stack = Stack::new(64 * 1024).unwrap();
    let got = Builder::new().scoped_on(
        stack,
        |y: &Yielder<(), usize>, ()| y.suspend(name.len()),
        |co| co.resume(()).into_yield(),
    );
    assert_eq!(got, Some(name.len()));
}

// ---------------------------------------------------------------------------------------
// Panics

#[test]
fn a_panic_in_the_body_propagates_from_resume_and_the_scope_goes_on() {
    let log = RefCell::new(Vec::new());
    let after = ScopedCoroutine::with(
        |y, ()| {
            let _noted = Noted {
                name: "body frame",
                log: &log,
            };
            y.suspend(1);
            panic!("the body failed at {}", 2);
        },
        |co| {
            assert_eq!(co.resume(()), CoroutineResult::Yield(1));
            let err = panic::catch_unwind(AssertUnwindSafe(|| co.resume(()))).unwrap_err();
            assert_eq!(message(&*err), "the body failed at 2");
            assert!(co.is_finished());
            assert_eq!(*log.borrow(), ["body frame"]);
            "scope went on"
        },
    )
    .unwrap();
    assert_eq!(after, "scope went on");
    assert_eq!(*log.borrow(), ["body frame"], "dropped exactly once");
}

#[test]
fn a_panic_of_the_scope_unwinds_the_suspended_coroutine_then_propagates() {
    let log = RefCell::new(Vec::new());
    let err = panic::catch_unwind(AssertUnwindSafe(|| {
        ScopedCoroutine::with(
            |y, ()| {
                let _noted = Noted {
                    name: "body frame",
                    log: &log,
                };
                y.suspend(());
                unreachable!("never resumed");
            },
            |co| {
                co.resume(());
                log.borrow_mut().push("scope panics");
                panic!("the scope failed");
            },
        )
    }))
    .unwrap_err();
    assert_eq!(message(&*err), "the scope failed");
    assert_eq!(*log.borrow(), ["scope panics", "body frame"]);
}

/// A body that catches the end-of-scope unwind and panics with its own payload instead: that
/// panic comes out of `with` (a destructor that panics during the unwind would be a panic
/// during a panic: Rust aborts, as on any stack).
#[test]
fn a_panic_that_replaces_the_end_of_scope_unwind_propagates_from_with() {
    let reached = Cell::new(false);
    let err = panic::catch_unwind(AssertUnwindSafe(|| {
        ScopedCoroutine::with(
            |y, ()| {
                if panic::catch_unwind(AssertUnwindSafe(|| y.suspend(()))).is_err() {
                    panic!("replaced the unwind");
                }
            },
            |co| {
                co.resume(());
                reached.set(true);
            },
        )
    }))
    .unwrap_err();
    assert!(reached.get());
    assert_eq!(message(&*err), "replaced the unwind");
}

// ---------------------------------------------------------------------------------------
// The end of the scope

#[test]
fn an_unfinished_coroutine_is_unwound_at_the_end_of_its_scope_in_frame_order() {
    let log = RefCell::new(Vec::new());
    fn deeper(y: &Yielder<(), u32>, log: &RefCell<Vec<&'static str>>, depth: u32) {
        let _noted = Noted {
            name: ["frame 0", "frame 1", "frame 2"][depth as usize],
            log,
        };
        if depth == 2 {
            loop {
                y.suspend(depth);
            }
        }
        deeper(y, log, depth + 1);
    }
    ScopedCoroutine::with(
        |y, ()| deeper(y, &log, 0),
        |co| {
            assert_eq!(co.resume(()), CoroutineResult::Yield(2));
            assert_eq!(co.resume(()), CoroutineResult::Yield(2));
            log.borrow_mut().push("scope ends");
        },
    )
    .unwrap();
    assert_eq!(
        *log.borrow(),
        ["scope ends", "frame 2", "frame 1", "frame 0"]
    );
}

#[test]
fn a_coroutine_never_resumed_drops_its_closure_once_at_the_end_of_its_scope() {
    let log = RefCell::new(Vec::new());
    let captured = Noted {
        name: "captured",
        log: &log,
    };
    ScopedCoroutine::with(
        move |_: &Yielder<(), ()>, ()| {
            let _moved_in = captured;
        },
        |co| {
            assert!(!co.started());
            assert!(log.borrow().is_empty());
        },
    )
    .unwrap();
    assert_eq!(*log.borrow(), ["captured"]);
}

/// corosensei issue 27: a forgotten scoped coroutine left a scoped thread running on data the
/// caller had back. Here the handle is forgotten (and a reborrow of it) and the scope still
/// ends the coroutine. The thread may write only once the unwind has begun (a destructor in
/// the body lets it go), and the unwind then runs `thread::scope`'s join before `with`
/// returns, so the write is seen after `with`. (Were the thread not joined, `with` would
/// return while it still sleeps before writing.)
#[test]
#[allow(forgetting_references)] // the point: forgetting what the scope has does nothing
fn forgetting_the_handle_still_joins_a_scoped_thread_started_in_the_body() {
    struct LetGo<'a>(&'a AtomicBool);
    impl Drop for LetGo<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let go = AtomicBool::new(false);
    let written = AtomicUsize::new(0);
    ScopedCoroutine::with(
        |y, ()| {
            std::thread::scope(|s| {
                s.spawn(|| {
                    while !go.load(Ordering::SeqCst) {
                        std::thread::yield_now();
                    }
                    std::thread::sleep(Duration::from_millis(50));
                    written.store(1, Ordering::SeqCst);
                });
                let _let_go = LetGo(&go);
                y.suspend(());
            });
            unreachable!("never resumed after the first suspension");
        },
        |co| {
            assert_eq!(co.resume(()), CoroutineResult::Yield(()));
            // Everything the scope can forget: a reborrow, and the reference itself.
            std::mem::forget(&mut *co);
            std::mem::forget(co);
            assert!(!go.load(Ordering::SeqCst));
        },
    )
    .unwrap();
    assert!(go.load(Ordering::SeqCst));
    assert_eq!(written.load(Ordering::SeqCst), 1);
}

#[test]
#[allow(forgetting_references)]
fn forgetting_a_scoped_generator_handle_still_unwinds_it() {
    let log = RefCell::new(Vec::new());
    let first = scoped_generator(
        |y| {
            let _noted = Noted {
                name: "generator frame",
                log: &log,
            };
            loop {
                y.suspend(5u8);
            }
        },
        |gen| {
            let first = gen.next();
            std::mem::forget(gen);
            first
        },
    )
    .unwrap();
    assert_eq!(first, Some(5));
    assert_eq!(*log.borrow(), ["generator frame"]);
}

// ---------------------------------------------------------------------------------------
// Nesting

#[test]
fn nested_scoped_coroutines_borrow_from_each_others_stacks() {
    let log = RefCell::new(Vec::new());
    let mut totals = Vec::new();
    let outer = ScopedCoroutine::with(
        |outer_y: &Yielder<(), u32>, ()| {
            // A local of the outer body, borrowed mutably by the inner one.
            let mut inner_count = 0u32;
            let _noted = Noted {
                name: "outer frame",
                log: &log,
            };
            ScopedCoroutine::with(
                |inner_y: &Yielder<(), u32>, ()| {
                    let _noted = Noted {
                        name: "inner frame",
                        log: &log,
                    };
                    for n in 1..=3 {
                        inner_count += 1;
                        inner_y.suspend(n * 10);
                    }
                },
                |inner| {
                    while let CoroutineResult::Yield(v) = inner.resume(()) {
                        outer_y.suspend(v);
                    }
                },
            )
            .unwrap();
            totals.push(inner_count);
            inner_count
        },
        |outer| {
            let mut seen = Vec::new();
            loop {
                match outer.resume(()) {
                    CoroutineResult::Yield(v) => seen.push(v),
                    CoroutineResult::Return(r) => break (seen, r),
                }
            }
        },
    )
    .unwrap();
    assert_eq!(outer, (vec![10, 20, 30], 3));
    assert_eq!(totals, [3]);
    assert_eq!(*log.borrow(), ["inner frame", "outer frame"]);
}

#[test]
fn ending_an_outer_scope_unwinds_an_inner_scoped_coroutine_suspended_inside_it() {
    let log = RefCell::new(Vec::new());
    ScopedCoroutine::with(
        |outer_y: &Yielder<(), &'static str>, ()| {
            let _noted = Noted {
                name: "outer frame",
                log: &log,
            };
            ScopedCoroutine::with(
                |inner_y: &Yielder<(), ()>, ()| {
                    let _noted = Noted {
                        name: "inner frame",
                        log: &log,
                    };
                    inner_y.suspend(());
                    unreachable!("the inner coroutine is never resumed again");
                },
                |inner| {
                    inner.resume(());
                    // Suspend the outer coroutine inside the inner scope, with the inner
                    // coroutine suspended too.
                    outer_y.suspend("inside the inner scope");
                    unreachable!("the outer coroutine is never resumed again");
                },
            )
            .unwrap();
        },
        |outer| {
            assert_eq!(
                outer.resume(()),
                CoroutineResult::Yield("inside the inner scope")
            );
            log.borrow_mut().push("outer scope ends");
        },
    )
    .unwrap();
    // The outer unwind leaves the inner scope, which ends the inner coroutine first.
    assert_eq!(
        *log.borrow(),
        ["outer scope ends", "inner frame", "outer frame"]
    );
}

#[test]
fn a_scope_inside_a_dropped_plain_coroutine_ends_its_scoped_coroutine() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let shared = log.clone();
    let mut plain: Coroutine<(), (), ()> = Coroutine::new(move |plain_y, ()| {
        let local = Cell::new(0);
        ScopedCoroutine::with(
            |y: &Yielder<(), ()>, ()| {
                let _noted = NotedShared("scoped frame", shared.clone());
                local.set(1);
                y.suspend(());
            },
            |co| {
                co.resume(());
                plain_y.suspend(());
            },
        )
        .unwrap();
    })
    .unwrap();
    plain.resume(());
    assert!(log.borrow().is_empty());
    drop(plain);
    assert_eq!(*log.borrow(), ["scoped frame"]);
}

// ---------------------------------------------------------------------------------------
// Generators

#[test]
fn a_generator_yields_in_order_and_is_fused_after_its_end() {
    let mut gen = generator(|y| {
        for c in "abc".chars() {
            y.suspend(c);
        }
    })
    .unwrap();
    assert!(!gen.started());
    assert_eq!(gen.next(), Some('a'));
    assert_eq!(gen.by_ref().collect::<String>(), "bc");
    assert!(gen.is_finished());
    for _ in 0..3 {
        assert_eq!(gen.next(), None);
    }
}

#[test]
fn a_panic_in_a_generator_propagates_from_next_and_then_it_is_over() {
    let mut gen = generator(|y| {
        y.suspend(1u8);
        panic!("generator failed");
    })
    .unwrap();
    assert_eq!(gen.next(), Some(1));
    let err = panic::catch_unwind(AssertUnwindSafe(|| gen.next())).unwrap_err();
    assert_eq!(message(&*err), "generator failed");
    assert_eq!(gen.next(), None);
    assert_eq!(gen.next(), None);
}

#[test]
fn an_endless_generator_dropped_mid_way_unwinds_its_stack() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let shared = log.clone();
    let mut naturals = generator(move |y| {
        let _noted = NotedShared("generator frame", shared);
        for n in 0u64.. {
            y.suspend(n);
        }
    })
    .unwrap();
    assert_eq!(
        naturals
            .by_ref()
            .skip(2)
            .step_by(3)
            .take(3)
            .collect::<Vec<_>>(),
        [2, 5, 8]
    );
    assert!(log.borrow().is_empty());
    drop(naturals);
    assert_eq!(*log.borrow(), ["generator frame"]);
}

#[test]
fn a_plain_coroutine_with_unit_input_and_return_is_an_iterator_too() {
    let co: Coroutine<(), u32, ()> = Builder::new()
        .stack_size(64 * 1024)
        .build(|y, ()| (1..=3).for_each(|n| y.suspend(n)))
        .unwrap();
    let doubled: Vec<u32> = co.map(|n| n * 2).collect();
    assert_eq!(doubled, [2, 4, 6]);
}

#[test]
fn a_scoped_generator_walks_borrowed_data_and_writes_through_a_mutable_borrow() {
    let tree = vec![vec![1, 2], vec![], vec![3, 4, 5]];
    let mut visited = 0;
    let (evens, rest) = scoped_generator(
        |y| {
            for row in &tree {
                for &leaf in row {
                    visited += 1;
                    y.suspend(leaf);
                }
            }
        },
        |leaves| {
            let evens: Vec<i32> = leaves.by_ref().filter(|n| n % 2 == 0).take(1).collect();
            let rest: Vec<i32> = leaves.collect();
            (evens, rest)
        },
    )
    .unwrap();
    assert_eq!(evens, [2]);
    assert_eq!(rest, [3, 4, 5]);
    assert_eq!(visited, 5);
}

#[test]
fn a_scoped_generator_is_fused_and_propagates_its_panic() {
    let limit = 2;
    scoped_generator(
        |y| {
            for n in 0..limit {
                y.suspend(n);
            }
            panic!("past the limit");
        },
        |gen| {
            assert_eq!(gen.next(), Some(0));
            assert_eq!(gen.next(), Some(1));
            let err = panic::catch_unwind(AssertUnwindSafe(|| gen.next())).unwrap_err();
            assert_eq!(message(&*err), "past the limit");
            assert_eq!(gen.next(), None);
            assert_eq!(gen.next(), None);
        },
    )
    .unwrap();
}

#[test]
fn for_loops_over_a_scoped_generator_reference() {
    let text = "to be or not to be";
    let mut counts = std::collections::BTreeMap::new();
    scoped_generator(
        |y| text.split(' ').for_each(|w| y.suspend(w)),
        |words| {
            for w in words {
                *counts.entry(w).or_insert(0) += 1;
            }
        },
    )
    .unwrap();
    assert_eq!(counts.get("to"), Some(&2));
    assert_eq!(counts.get("not"), Some(&1));
    assert_eq!(counts.len(), 4);
}
