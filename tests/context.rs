//! Tests for the coroutine layer over the switch: values in and out, panics, drops, nesting.

use std::cell::Cell;
use std::rc::Rc;

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
