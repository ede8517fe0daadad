//! The switch must preserve every callee-saved register of the platform ABI, and, with
//! `preserve_fp_env`, each side's FP rounding mode.
//!
//! The switch is hand-written assembly, so nothing but these tests checks that it saves the
//! right registers: `clobber_abi` cannot help an external `.S` file. Each test loads random
//! values into *all* callee-saved registers with inline `asm!`, calls an `extern "C"` helper
//! (or a switch routine itself) that switches to the other side, and stores the registers
//! again when it returns. The other side does the same with different values, so each side
//! clobbers the other's registers between the load and the store:
//!
//! | target | registers |
//! |---|---|
//! | x86_64 SysV | rbx, rbp, r12–r15 |
//! | aarch64 AAPCS64 | x19–x29, d8–d15 (x30 is the link register, clobbered by `bl`; x18 untouched) |
//! | riscv64 LP64D | s0–s11, fs0–fs11 |
//!
//! Some of these (rbx, rbp, x19, x29, s0, s1) cannot be `asm!` operands, so the asm block saves
//! the real values on the stack itself and restores them before it ends.
#![cfg(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
))]

use std::any::Any;
use std::arch::asm;
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use microthread::coroutine::{Builder, Coroutine, CoroutineResult};
use proptest::prelude::*;

/// What the helper called from inside the asm block runs: a closure, and the panic it raised,
/// if any, carried out of the `extern "C"` helper so that it is re-raised after the asm block
/// has restored the registers (unwinding through the asm block would be undefined).
struct Thunk<'a> {
    f: &'a mut dyn FnMut(),
    panic: Option<Box<dyn Any + Send>>,
}

/// The function the asm blocks call: runs the thunk's closure.
extern "C" fn call_thunk(t: *mut Thunk<'_>) {
    // SAFETY: `with_callee_saved` passes a pointer to a live Thunk it owns.
    let t = unsafe { &mut *t };
    if let Err(p) = panic::catch_unwind(AssertUnwindSafe(|| (t.f)())) {
        t.panic = Some(p);
    }
}

#[cfg(target_arch = "x86_64")]
#[path = "registers/arch/x86_64.rs"]
mod arch;
#[cfg(target_arch = "aarch64")]
#[path = "registers/arch/aarch64.rs"]
mod arch;
#[cfg(target_arch = "riscv64")]
#[path = "registers/arch/riscv64.rs"]
mod arch;

/// The switch routines called directly from the asm block.
#[path = "registers/raw_switch.rs"]
mod raw_switch;
use raw_switch::{raw_case, raw_round_trips};

/// The FP rounding mode.
#[path = "registers/fp_env.rs"]
mod fp_env;
use fp_env::{fp_env_round_trips, fpmode, mode_script, DefaultModeOnDrop, Mode, DEFAULT_MODE};

const N: usize = arch::NAMES.len();

/// One value per callee-saved register, in `arch::NAMES` order.
type Regs = [u64; N];

/// Runs `f` with every callee-saved register set to `values`, and returns what those registers
/// held when `f` returned. A panic in `f` is re-raised after the registers are restored.
fn with_callee_saved(values: &Regs, f: &mut dyn FnMut()) -> Regs {
    let mut out = [0u64; N];
    let mut thunk = Thunk { f, panic: None };
    let routine: extern "C" fn(*mut Thunk<'_>) = call_thunk;
    let thunk_ptr: *mut Thunk<'_> = &mut thunk;
    // SAFETY: both arrays hold N words; `call_thunk` takes the live thunk as its first
    // argument and ignores the second.
    unsafe {
        arch::call_with(
            routine as usize,
            thunk_ptr.cast(),
            0,
            values.as_ptr(),
            out.as_mut_ptr(),
        )
    };
    if let Some(p) = thunk.panic {
        panic::resume_unwind(p);
    }
    out
}

/// The registers whose value did not survive, as "name: expected 0x.. got 0x..".
fn differences(expected: &Regs, got: &Regs) -> Vec<String> {
    arch::NAMES
        .iter()
        .zip(expected.iter().zip(got))
        .filter(|(_, (e, g))| e != g)
        .map(|(name, (e, g))| format!("{name}: expected {e:#018x} got {g:#018x}"))
        .collect()
}

/// Cases per property: the `PROPTEST_CASES` environment variable if set, else `default`.
fn config(default: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = default;
    }
    c
}

/// For `rounds` suspensions: main's values (rounds + 1 resumes) and the coroutine's (one set
/// per suspension).
fn register_script() -> impl Strategy<Value = (Vec<Regs>, Vec<Regs>)> {
    (1usize..=4).prop_flat_map(|rounds| {
        (
            proptest::collection::vec(any::<Regs>(), rounds + 1),
            proptest::collection::vec(any::<Regs>(), rounds),
        )
    })
}

/// The coroutine half's record: for each of its value sets, what came back after the
/// suspend. Checked by main (a panic on the coroutine side would be re-raised inside main's
/// asm call chain). Kept out of the coroutine's return type on purpose: see
/// `yield_reaches_the_resumer_whatever_the_return_type` in tests/prop_coroutine.rs.
type Log = Rc<RefCell<Vec<(Regs, Regs)>>>;

fn register_round_trips(preserve_fp_env: bool, main_values: Vec<Regs>, co_values: Vec<Regs>) {
    let rounds = co_values.len();
    let log: Log = Rc::default();
    let co_log = log.clone();
    let mut co: Coroutine<(), (), ()> = Builder::new()
        .preserve_fp_env(preserve_fp_env)
        .build(move |y, ()| {
            // Each side loads, switches, stores: the coroutine first switches by suspending.
            for values in co_values {
                let got = with_callee_saved(&values, &mut || y.suspend(()));
                co_log.borrow_mut().push((values, got));
            }
        })
        .unwrap();

    let mut failures = Vec::new();
    for (round, values) in main_values.iter().enumerate() {
        let mut result = None;
        let got = with_callee_saved(values, &mut || result = Some(co.resume(())));
        for d in differences(values, &got) {
            failures.push(format!("main, across resume #{round}: {d}"));
        }
        match result.expect("the resume ran") {
            CoroutineResult::Yield(()) => assert!(round < rounds, "yielded too often"),
            CoroutineResult::Return(()) => assert_eq!(round, rounds, "returned too early"),
        }
    }
    assert!(co.is_finished());
    let log = log.borrow();
    assert_eq!(log.len(), rounds);
    for (round, (values, got)) in log.iter().enumerate() {
        for d in differences(values, got) {
            failures.push(format!("coroutine, across suspend #{round}: {d}"));
        }
    }
    assert!(
        failures.is_empty(),
        "callee-saved registers were not preserved by the switch (preserve_fp_env = \
         {preserve_fp_env}):\n{}",
        failures.join("\n")
    );
}

proptest! {
    #![proptest_config(config(64))]

    /// main → coroutine → main and coroutine → main → coroutine, with the plain switch.
    #[test]
    fn callee_saved_registers_survive_the_switch((main_values, co_values) in register_script()) {
        register_round_trips(false, main_values, co_values);
    }

    /// The same through the FP-environment-preserving switch, a separate asm routine.
    #[test]
    fn callee_saved_registers_survive_the_fp_env_switch(
        (main_values, co_values) in register_script()
    ) {
        register_round_trips(true, main_values, co_values);
    }
}

/// A coroutine nested in another: the inner one's switches go between two coroutine stacks,
/// and the middle one is both a resumer and a resumed context.
#[test]
fn callee_saved_registers_survive_nested_switches() {
    fn regs(seed: u64) -> Regs {
        std::array::from_fn(|i| {
            (seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
                .wrapping_mul(0xbf58_476d_1ce4_e5b9)
        })
    }
    let failures: Rc<RefCell<Vec<String>>> = Rc::default();
    let record = |failures: &Rc<RefCell<Vec<String>>>, who: &str, v: &Regs, got: &Regs| {
        let mut f = failures.borrow_mut();
        f.extend(
            differences(v, got)
                .into_iter()
                .map(|d| format!("{who}: {d}")),
        );
    };
    let f_outer = failures.clone();
    let mut outer: Coroutine<(), (), ()> = Coroutine::new(move |y, ()| {
        let f_inner = f_outer.clone();
        let mut inner: Coroutine<(), (), ()> = Builder::new()
            .preserve_fp_env(true)
            .build(move |y, ()| {
                for round in 0..3u64 {
                    let v = regs(0x1000 + round);
                    let got = with_callee_saved(&v, &mut || y.suspend(()));
                    record(&f_inner, "inner, across suspend", &v, &got);
                }
            })
            .unwrap();
        for round in 0..4u64 {
            let v = regs(0x2000 + round);
            let mut result = None;
            let got = with_callee_saved(&v, &mut || result = Some(inner.resume(())));
            record(&f_outer, "middle, across resume of inner", &v, &got);
            let expected = if round < 3 {
                CoroutineResult::Yield(())
            } else {
                CoroutineResult::Return(())
            };
            assert_eq!(result, Some(expected));
            // Suspend to main between inner resumes, with the middle's values live.
            let v = regs(0x3000 + round);
            let got = with_callee_saved(&v, &mut || y.suspend(()));
            record(&f_outer, "middle, across suspend", &v, &got);
        }
        assert!(inner.is_finished());
    })
    .unwrap();
    for round in 0..5u64 {
        let v = regs(0x4000 + round);
        let mut result = None;
        let got = with_callee_saved(&v, &mut || result = Some(outer.resume(())));
        record(&failures, "main, across resume", &v, &got);
        assert_eq!(
            result.is_some_and(|r| r == CoroutineResult::Return(())),
            round == 4
        );
    }
    assert!(outer.is_finished());
    let failures = failures.borrow();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The harness itself: what is loaded comes back when nothing switches, and a nested use
/// restores the outer values on its way out.
#[test]
fn the_harness_round_trips_values_and_nests() {
    let values: Regs = std::array::from_fn(|i| 0x1111_0000 + i as u64);
    let got = with_callee_saved(&values, &mut || {});
    assert_eq!(differences(&values, &got), Vec::<String>::new());
    let got = with_callee_saved(&values, &mut || {
        let inner: Regs = std::array::from_fn(|i| 0x2222_0000 + i as u64);
        // The inner block restores our values on its way out: still no difference.
        let seen = with_callee_saved(&inner, &mut || {});
        assert_eq!(seen, inner);
    });
    assert_eq!(got, values);
}

proptest! {
    #![proptest_config(config(128))]

    /// Every routine, in both directions and in any mix, preserves every callee-saved register.
    #[test]
    fn the_switch_routines_preserve_callee_saved_registers(case in raw_case()) {
        raw_round_trips(case);
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// Each side keeps its own rounding mode across switches in both directions.
    #[test]
    fn each_side_keeps_its_rounding_mode_with_preserve_fp_env((main_modes, co_modes) in mode_script()) {
        fp_env_round_trips(main_modes, co_modes);
    }
}

#[test]
fn the_rounding_mode_accessors_round_trip() {
    let _restore = DefaultModeOnDrop;
    assert_eq!(
        fpmode::get(),
        DEFAULT_MODE,
        "tests start in the default mode"
    );
    for v in 1..=fpmode::CHOICES {
        let m = [v; DEFAULT_MODE.len()];
        fpmode::set(m);
        assert_eq!(fpmode::get(), m);
    }
    fpmode::set(DEFAULT_MODE);
    assert_eq!(fpmode::get(), DEFAULT_MODE);
}

/// A coroutine created with the option starts in the default mode whatever its resumer runs
/// in, and one started by a resumer in the default mode does not see a mode set later.
#[test]
fn a_preserving_coroutine_starts_in_the_default_rounding_mode() {
    let _restore = DefaultModeOnDrop;
    for v in 1..=fpmode::CHOICES {
        let m = [v; DEFAULT_MODE.len()];
        let second = Rc::new(Cell::new(None));
        let seen = second.clone();
        let mut co: Coroutine<(), Mode, ()> = Builder::new()
            .preserve_fp_env(true)
            .build(move |y, ()| {
                let first = fpmode::get();
                y.suspend(first);
                seen.set(Some(fpmode::get()));
            })
            .unwrap();
        fpmode::set(m);
        assert_eq!(co.resume(()), CoroutineResult::Yield(DEFAULT_MODE));
        assert_eq!(fpmode::get(), m, "the resumer keeps its mode");
        // Resumed again from a different mode: it still has the default it suspended with.
        let other = [1 + v % fpmode::CHOICES; DEFAULT_MODE.len()];
        fpmode::set(other);
        assert_eq!(co.resume(()), CoroutineResult::Return(()));
        assert_eq!(fpmode::get(), other, "the resumer keeps its mode");
        assert_eq!(second.get(), Some(DEFAULT_MODE));
        fpmode::set(DEFAULT_MODE);
    }
}
