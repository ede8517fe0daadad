//! Tests for the coroutine layer over the switch: values in and out, panics, drops, nesting.

mod common;

use std::cell::Cell;
use std::rc::Rc;

use common::stack_pointer;

use microthread::coroutine::{Builder, Coroutine, CoroutineResult, ResumeError};

#[test]
fn smoke() {
    let mut co = Coroutine::new(|y, a: i32| {
        let b = y.suspend(a + 1);
        let c = y.suspend(b * 2);
        c - 1
    })
    .unwrap();
    assert!(!co.started());
    assert_eq!(co.resume(1), CoroutineResult::Yield(2));
    assert_eq!(co.resume(10), CoroutineResult::Yield(20));
    assert_eq!(co.resume(5), CoroutineResult::Return(4));
    assert!(co.is_finished());
    assert_eq!(co.try_resume(0), Err(ResumeError::Finished));
}

#[test]
fn resuming_a_finished_coroutine_panics_with_a_sentence() {
    let mut co: Coroutine<(), (), ()> = Coroutine::new(|_, ()| ()).unwrap();
    co.resume(());
    let e = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| co.resume(()))).unwrap_err();
    let msg = e.downcast_ref::<String>().unwrap();
    assert_eq!(msg, "attempt to resume a coroutine that has finished");
}

#[test]
fn panics_propagate_to_the_resumer() {
    let mut co: Coroutine<(), (), ()> = Coroutine::new(|y, ()| {
        y.suspend(());
        panic!("boom {}", 7);
    })
    .unwrap();
    co.resume(());
    let e = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| co.resume(()))).unwrap_err();
    let msg = e
        .downcast_ref::<String>()
        .cloned()
        .or(e.downcast_ref::<&str>().map(|s| s.to_string()));
    assert_eq!(msg.as_deref(), Some("boom 7"), "{:?}", e.type_id());
    assert!(co.is_finished());
}

struct Counted(Rc<Cell<u32>>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn dropping_a_suspended_coroutine_runs_every_destructor_on_its_stack() {
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let mut co: Coroutine<(), u32, ()> = Coroutine::new(move |y, ()| {
        let _a = Counted(d.clone());
        fn deeper(y: &microthread::Yielder<(), u32>, d: Rc<Cell<u32>>, n: u32) {
            let _b = Counted(d.clone());
            if n == 0 {
                loop {
                    y.suspend(n);
                }
            }
            deeper(y, d, n - 1);
        }
        deeper(y, d.clone(), 5);
    })
    .unwrap();
    assert_eq!(co.resume(()), CoroutineResult::Yield(0));
    assert_eq!(drops.get(), 0);
    drop(co);
    // _a, six _b frames, and the captured Rc clone inside the closure (moved into `deeper`).
    assert_eq!(drops.get(), 7);
}

#[test]
fn dropping_an_unstarted_coroutine_drops_its_closure() {
    let drops = Rc::new(Cell::new(0));
    let c = Counted(drops.clone());
    let co: Coroutine<(), (), ()> = Coroutine::new(move |_, ()| drop(c)).unwrap();
    drop(co);
    assert_eq!(drops.get(), 1);
}

#[test]
fn dropping_an_unstarted_coroutine_drops_its_closure_on_every_kind_of_coroutine() {
    // The closure is dropped by the coroutine's first frame (a switch in with the unwind
    // message): for the FP-environment switch and for a boxed (over-aligned) closure too.
    #[repr(align(4096))]
    struct Big(#[allow(dead_code)] u8);
    let drops = Rc::new(Cell::new(0));
    for fp in [false, true] {
        let c = Counted(drops.clone());
        let co: Coroutine<(), (), ()> = Builder::new()
            .preserve_fp_env(fp)
            .build(move |_, ()| drop(c))
            .unwrap();
        drop(co);
        let (c, big) = (Counted(drops.clone()), Big(1));
        let co: Coroutine<(), (), ()> = Builder::new()
            .preserve_fp_env(fp)
            .build(move |_, ()| drop((c, big)))
            .unwrap();
        drop(co);
    }
    assert_eq!(drops.get(), 4);
}

#[test]
fn a_panic_dropping_an_unstarted_coroutine_comes_out_of_the_drop() {
    struct PanicsOnDrop;
    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            panic!("closure drop");
        }
    }
    let p = PanicsOnDrop;
    let co: Coroutine<(), (), ()> = Coroutine::new(move |_, ()| drop(p)).unwrap();
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(co))).unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"closure drop"));
    // The coroutine finished (its stack went back to the pool): the thread goes on as usual.
    let mut next: Coroutine<(), (), u8> = Coroutine::new(|_, ()| 7).unwrap();
    assert_eq!(next.resume(()), CoroutineResult::Return(7));
}

#[test]
fn a_caught_forced_unwind_is_rethrown_at_the_next_suspend() {
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let mut co: Coroutine<(), (), ()> = Coroutine::new(move |y, ()| {
        let _outer = Counted(d.clone());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _inner = Counted(d.clone());
            y.suspend(());
        }));
        assert!(r.is_err());
        y.suspend(()); // re-throws the forced unwind
        unreachable!();
    })
    .unwrap();
    co.resume(());
    drop(co);
    assert_eq!(drops.get(), 2);
}

/// `started` and the `Debug` state tell a coroutine that has not run from a suspended one by
/// its context alone (no state is stored per suspend): before the first resume, after each
/// yield (the first and later ones, on the light and the FP-environment path), at the end.
#[test]
fn started_tells_a_new_coroutine_from_a_suspended_one() {
    for fp in [false, true] {
        let mut co: Coroutine<(), u32, ()> = Builder::new()
            .preserve_fp_env(fp)
            .build(|y, ()| {
                y.suspend(1);
                y.suspend(2);
            })
            .unwrap();
        assert!(!co.started());
        assert!(format!("{co:?}").contains("NotStarted"), "{co:?}");
        for n in 1..=2 {
            assert_eq!(co.resume(()), CoroutineResult::Yield(n));
            assert!(co.started() && !co.is_finished());
            assert!(format!("{co:?}").contains("Suspended"), "{co:?}");
        }
        assert_eq!(co.resume(()), CoroutineResult::Return(()));
        assert!(co.started() && co.is_finished());
        assert!(format!("{co:?}").contains("Finished"), "{co:?}");
    }
}

/// A zero-sized input is passed as no bytes at all (an aligned dangling address): each value
/// is still moved in exactly once, so a zero-sized input with a destructor is dropped once
/// per resume, by the body that received it, on the light and the FP-environment path.
#[test]
fn a_zero_sized_input_with_a_destructor_is_dropped_once_per_resume() {
    thread_local! {
        static DROPS: Cell<u32> = const { Cell::new(0) };
    }
    struct Token;
    impl Drop for Token {
        fn drop(&mut self) {
            DROPS.with(|d| d.set(d.get() + 1));
        }
    }
    for fp in [false, true] {
        DROPS.with(|d| d.set(0));
        let mut co: Coroutine<Token, u32, u32> = Builder::new()
            .preserve_fp_env(fp)
            .build(|y, first: Token| {
                drop(first);
                let seen = DROPS.with(Cell::get);
                let second = y.suspend(seen);
                drop(second);
                DROPS.with(Cell::get)
            })
            .unwrap();
        assert_eq!(co.resume(Token), CoroutineResult::Yield(1));
        assert_eq!(co.resume(Token), CoroutineResult::Return(2));
        assert_eq!(DROPS.with(Cell::get), 2, "fp_env {fp}");
    }
}

#[test]
fn float_formatting_and_snprintf_work_inside_a_coroutine() {
    let mut co: Coroutine<f64, (), String> = Coroutine::new(|_, x: f64| {
        let mut buf = [0u8; 64];
        // SAFETY: the buffer is large enough; the format takes one double.
        let n = unsafe {
            libc::snprintf(
                buf.as_mut_ptr() as *mut libc::c_char,
                buf.len(),
                c"%f".as_ptr(),
                x,
            )
        };
        format!(
            "{:.3} {}",
            x,
            std::str::from_utf8(&buf[..n as usize]).unwrap()
        )
    })
    .unwrap();
    assert_eq!(
        co.resume(2f64.sqrt()),
        CoroutineResult::Return("1.414 1.414214".to_string())
    );
}

#[test]
fn nested_coroutines_several_levels_deep() {
    fn level(depth: u32) -> Coroutine<u64, u64, u64> {
        Coroutine::new(move |y, x: u64| {
            if depth == 0 {
                let x2 = y.suspend(x + 1);
                return x2 * 10;
            }
            let mut inner = level(depth - 1);
            let CoroutineResult::Yield(a) = inner.resume(x + 1) else {
                panic!()
            };
            let b = y.suspend(a);
            let CoroutineResult::Return(c) = inner.resume(b + 1) else {
                panic!()
            };
            c + 1
        })
        .unwrap()
    }
    let mut top = level(8);
    // Down: 0 + 1 at each of 9 levels.
    assert_eq!(top.resume(0), CoroutineResult::Yield(9));
    // Back in: +1 per level above the innermost on the way down, *10 there, +1 per level out.
    assert_eq!(top.resume(100), CoroutineResult::Return((100 + 8) * 10 + 8));
}

#[test]
fn fp_env_option_runs_ordinary_code() {
    let mut co: Coroutine<f64, f64, f64> = Builder::new()
        .preserve_fp_env(true)
        .build(|y, x: f64| y.suspend(x * 1.5) + 0.25)
        .unwrap();
    assert_eq!(co.resume(2.0), CoroutineResult::Yield(3.0));
    assert_eq!(co.resume(1.0), CoroutineResult::Return(1.25));
}

#[test]
fn large_closures_are_boxed_and_still_run() {
    let big = [7u8; 4096];
    let mut co: Coroutine<(), (), u32> =
        Coroutine::new(move |_, ()| big.iter().map(|&b| b as u32).sum()).unwrap();
    assert_eq!(co.resume(()), CoroutineResult::Return(7 * 4096));
}

// ---------------------------------------------------------------------------------------
// The stack pool, seen through coroutines: reuse, the high-water mark, and every way a
// coroutine ends giving its stack back. A recycled stack is recognised by a sentinel word
// that each coroutine leaves 32 KiB below its first frame: a pooled stack keeps its pages, so
// the next coroutine on it reads its predecessor's sentinel, while a fresh mapping (even one
// at the address of a stack just unmapped) reads zero.

/// A stack size no other test in this file uses, so the pool's stacks here are ours.
const POOL_TEST_STACK: usize = 68 * 1024;

/// Swaps `new` into the sentinel word of the calling coroutine's stack, returning the old one.
#[inline(always)]
fn swap_sentinel(new: u64) -> u64 {
    let frame = stack_pointer();
    let word = ((frame - 32 * 1024) & !4095) as *mut u64;
    // SAFETY: 32 KiB below a frame near the top of a 68 KiB stack is inside its usable part,
    // below the stack pointer and so used by nothing else while this coroutine runs.
    unsafe {
        let old = word.read_volatile();
        word.write_volatile(new);
        old
    }
}

/// Resume input of a pool probe after its first suspension.
const FINISH: u8 = 0;
const PANIC: u8 = 1;

/// A coroutine that marks its stack with `tag` and yields the mark it found, then returns
/// it (on `FINISH`) or panics (on `PANIC`) without running the panic hook.
fn pool_probe(tag: u64) -> Coroutine<u8, u64, u64> {
    Builder::new()
        .stack_size(POOL_TEST_STACK)
        .build(move |y, _first: u8| {
            let found = swap_sentinel(tag);
            if y.suspend(found) == PANIC {
                std::panic::resume_unwind(Box::new("retired by a panic"));
            }
            found
        })
        .unwrap()
}

fn start(co: &mut Coroutine<u8, u64, u64>) -> u64 {
    match co.resume(FINISH) {
        CoroutineResult::Yield(found) => found,
        CoroutineResult::Return(_) => panic!("a pool probe suspends first"),
    }
}

#[test]
fn finishing_coroutines_in_a_row_keeps_reusing_one_stack() {
    if std::env::var_os("MICROTHREAD_UNDER_ASAN").is_some() {
        // The asan build gives back every recycled stack below its warm top (reading a dead
        // context's frames to see how deep it went would hit their poison: src/stack/pool.rs
        // `went_deep`), which wipes the sentinels this test finds reuse by.
        eprintln!("skipped under ASan: recycled stacks are always trimmed there");
        return;
    }
    use microthread::stack::pool;
    pool::clear();
    let mut ids = std::collections::HashSet::new();
    for i in 1..=1000u64 {
        let mut co = pool_probe(i);
        assert!(
            ids.insert(co.id()),
            "ids are never reused, even on a recycled stack"
        );
        let found = start(&mut co);
        // The first one gets a fresh (zeroed) mapping; each later one its predecessor's.
        assert_eq!(found, i - 1, "coroutine {i} found another stack's sentinel");
        assert_eq!(co.resume(FINISH), CoroutineResult::Return(i - 1));
        assert_eq!(
            pool::len(),
            1,
            "the finished coroutine's stack is back in the pool"
        );
    }
    pool::clear();
}

#[test]
fn every_way_a_coroutine_ends_gives_its_stack_back() {
    if std::env::var_os("MICROTHREAD_UNDER_ASAN").is_some() {
        // The asan build gives back every recycled stack below its warm top (reading a dead
        // context's frames to see how deep it went would hit their poison: src/stack/pool.rs
        // `went_deep`), which wipes the sentinels this test finds reuse by.
        eprintln!("skipped under ASan: recycled stacks are always trimmed there");
        return;
    }
    use microthread::stack::pool;
    pool::clear();
    // A window of at most WINDOW live coroutines, retired oldest first, each a different
    // way: finished, dropped while suspended (forced unwind), panicked, dropped unstarted.
    const WINDOW: usize = 12;
    let mut live: std::collections::VecDeque<(u64, Coroutine<u8, u64, u64>)> = Default::default();
    let mut fresh = 0;
    for i in 1..=1000u64 {
        if live.len() == WINDOW {
            let (tag, mut co) = live.pop_front().unwrap();
            let before = pool::len();
            match tag % 4 {
                0 => assert_eq!(co.resume(FINISH), CoroutineResult::Return(co_found(tag))),
                1 => drop(co),
                2 => {
                    let r =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| co.resume(PANIC)));
                    assert!(r.is_err());
                    assert!(co.is_finished());
                }
                _ => {
                    assert!(!co.started());
                    drop(co);
                }
            }
            assert_eq!(
                pool::len(),
                before + 1,
                "retiring {tag} (way {}) pooled its stack",
                tag % 4
            );
        }
        let mut co = pool_probe(i);
        // Every fourth one is left unstarted; the others run up to their first suspension.
        if i % 4 != 3 {
            let found = start(&mut co);
            FOUND.with(|f| f.borrow_mut().insert(i, found));
            if found == 0 {
                fresh += 1;
            }
        }
        assert!(pool::len() <= pool::high_water_mark());
        live.push_back((i, co));
    }
    // Never more than WINDOW stacks existed, so at most WINDOW sentinels were found unset.
    assert!(
        fresh <= WINDOW,
        "{fresh} coroutines got a fresh stack; the window is {WINDOW}"
    );
    drop(live);
    assert!(pool::len() <= WINDOW);
    pool::clear();
}

thread_local! {
    static FOUND: std::cell::RefCell<std::collections::HashMap<u64, u64>> = Default::default();
}

/// What the probe with `tag` found on its stack when it started.
fn co_found(tag: u64) -> u64 {
    FOUND.with(|f| f.borrow()[&tag])
}

#[test]
fn the_pool_keeps_only_its_high_water_mark_and_unmaps_the_rest() {
    if std::env::var_os("MICROTHREAD_UNDER_ASAN").is_some() {
        // The asan build gives back every recycled stack below its warm top (reading a dead
        // context's frames to see how deep it went would hit their poison: src/stack/pool.rs
        // `went_deep`), which wipes the sentinels this test finds reuse by.
        eprintln!("skipped under ASan: recycled stacks are always trimmed there");
        return;
    }
    use microthread::stack::pool;
    pool::clear();
    let old = pool::set_high_water_mark(4);
    let mut first: Vec<_> = (1..=10u64).map(pool_probe).collect();
    for co in &mut first {
        assert_eq!(start(co), 0, "an empty pool maps fresh stacks");
    }
    for co in &mut first {
        co.resume(FINISH);
        assert!(pool::len() <= 4);
    }
    assert_eq!(pool::len(), 4);
    // The next ten: four get pooled stacks (their sentinels set by the first batch), six get
    // fresh ones, whose pages are zero even where the kernel reuses an unmapped address.
    let mut second: Vec<_> = (11..=20u64).map(pool_probe).collect();
    assert_eq!(pool::len(), 0);
    let found: Vec<u64> = second.iter_mut().map(start).collect();
    let reused: Vec<u64> = found.iter().copied().filter(|&f| f != 0).collect();
    assert_eq!(reused.len(), 4, "found {found:?}");
    assert!(
        reused.iter().all(|f| (1..=10).contains(f)),
        "found {found:?}"
    );
    drop(second);
    pool::set_high_water_mark(old);
    pool::clear();
}
