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

use microthread::context::Context;
use microthread::coroutine::{Builder, Coroutine, CoroutineResult};
use microthread::stack::Stack;
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
mod arch {
    use super::*;

    pub const NAMES: [&str; 6] = ["rbx", "rbp", "r12", "r13", "r14", "r15"];

    /// Loads `input` into the callee-saved registers and calls `routine(arg0, arg1)` directly,
    /// with no Rust frame in between; when it returns (for a switch routine: when some context
    /// switches back), stores the registers into `output`, restores their real values and
    /// returns the routine's two return registers (a switch routine's `(from, data)`).
    ///
    /// # Safety
    /// - `input` and `output` must be valid for `NAMES.len()` words.
    /// - `routine` is an `extern "C"` function of this thread's stack taking `(arg0, arg1)`
    ///   with whatever preconditions it has met: `call_thunk` with a live thunk, or an asm
    ///   switch routine with `arg0` a suspended context of this thread.
    pub unsafe fn call_with(
        routine: usize,
        arg0: *mut u8,
        arg1: usize,
        input: *const u64,
        output: *mut u64,
    ) -> (*mut u8, usize) {
        let (ret0, ret1): (usize, usize);
        // SAFETY: the block saves and restores every register it writes that is not declared
        // clobbered; the stack pointer is 16-aligned at entry (an `asm!` guarantee) and at the
        // call (128 + 8 pushes), and restored at the end. The 128 bytes skip the red zone.
        // A switch routine returns here (through whatever resumes us) with rax:rdx = the
        // Transfer and every callee-saved register as that side left them.
        unsafe {
            asm!(
                "sub rsp, 128",
                "push rbx",
                "push rbp",
                "push r12",
                "push r13",
                "push r14",
                "push r15",
                "push rdx",
                "sub rsp, 8",
                "mov rbx, [rcx]",
                "mov rbp, [rcx + 8]",
                "mov r12, [rcx + 16]",
                "mov r13, [rcx + 24]",
                "mov r14, [rcx + 32]",
                "mov r15, [rcx + 40]",
                "call rax",
                "mov rcx, [rsp + 8]",
                "mov [rcx], rbx",
                "mov [rcx + 8], rbp",
                "mov [rcx + 16], r12",
                "mov [rcx + 24], r13",
                "mov [rcx + 32], r14",
                "mov [rcx + 40], r15",
                "add rsp, 16",
                "pop r15",
                "pop r14",
                "pop r13",
                "pop r12",
                "pop rbp",
                "pop rbx",
                "add rsp, 128",
                inout("rax") routine => ret0,
                inout("rdx") output as usize => ret1,
                in("rdi") arg0,
                in("rsi") arg1,
                in("rcx") input,
                clobber_abi("C"),
            );
        }
        (ret0 as *mut u8, ret1)
    }
}

#[cfg(target_arch = "aarch64")]
mod arch {
    use super::*;

    pub const NAMES: [&str; 19] = [
        "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27", "x28", "x29", "d8", "d9",
        "d10", "d11", "d12", "d13", "d14", "d15",
    ];

    /// As on x86_64: x19–x29 at words 0–10, d8–d15 at words 11–18.
    ///
    /// # Safety
    /// - As on x86_64.
    pub unsafe fn call_with(
        routine: usize,
        arg0: *mut u8,
        arg1: usize,
        input: *const u64,
        output: *mut u64,
    ) -> (*mut u8, usize) {
        let (ret0, ret1): (usize, usize);
        // SAFETY: as on x86_64; the 160-byte save area keeps sp 16-aligned (there is no red
        // zone on aarch64 Linux). x30 is clobbered by `blr`, and declared by clobber_abi. A
        // switch routine returns here with x0:x1 = the Transfer.
        unsafe {
            asm!(
                "sub sp, sp, #160",
                "stp x19, x20, [sp, #0]",
                "stp x21, x22, [sp, #16]",
                "stp x23, x24, [sp, #32]",
                "stp x25, x26, [sp, #48]",
                "stp x27, x28, [sp, #64]",
                "stp x29, x3, [sp, #80]",
                "stp d8, d9, [sp, #96]",
                "stp d10, d11, [sp, #112]",
                "stp d12, d13, [sp, #128]",
                "stp d14, d15, [sp, #144]",
                "ldp x19, x20, [x2, #0]",
                "ldp x21, x22, [x2, #16]",
                "ldp x23, x24, [x2, #32]",
                "ldp x25, x26, [x2, #48]",
                "ldp x27, x28, [x2, #64]",
                "ldr x29, [x2, #80]",
                "ldp d8, d9, [x2, #88]",
                "ldp d10, d11, [x2, #104]",
                "ldp d12, d13, [x2, #120]",
                "ldp d14, d15, [x2, #136]",
                "blr x16",
                "ldr x9, [sp, #88]",
                "stp x19, x20, [x9, #0]",
                "stp x21, x22, [x9, #16]",
                "stp x23, x24, [x9, #32]",
                "stp x25, x26, [x9, #48]",
                "stp x27, x28, [x9, #64]",
                "str x29, [x9, #80]",
                "stp d8, d9, [x9, #88]",
                "stp d10, d11, [x9, #104]",
                "stp d12, d13, [x9, #120]",
                "stp d14, d15, [x9, #136]",
                "ldp x19, x20, [sp, #0]",
                "ldp x21, x22, [sp, #16]",
                "ldp x23, x24, [sp, #32]",
                "ldp x25, x26, [sp, #48]",
                "ldp x27, x28, [sp, #64]",
                "ldr x29, [sp, #80]",
                "ldp d8, d9, [sp, #96]",
                "ldp d10, d11, [sp, #112]",
                "ldp d12, d13, [sp, #128]",
                "ldp d14, d15, [sp, #144]",
                "add sp, sp, #160",
                inout("x0") arg0 as usize => ret0,
                inout("x1") arg1 => ret1,
                in("x2") input,
                in("x3") output,
                in("x16") routine,
                clobber_abi("C"),
            );
        }
        (ret0 as *mut u8, ret1)
    }
}

#[cfg(target_arch = "riscv64")]
mod arch {
    use super::*;

    pub const NAMES: [&str; 24] = [
        "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "fs0", "fs1",
        "fs2", "fs3", "fs4", "fs5", "fs6", "fs7", "fs8", "fs9", "fs10", "fs11",
    ];

    /// As on x86_64: s0–s11 at words 0–11, fs0–fs11 at words 12–23.
    ///
    /// # Safety
    /// - As on x86_64.
    pub unsafe fn call_with(
        routine: usize,
        arg0: *mut u8,
        arg1: usize,
        input: *const u64,
        output: *mut u64,
    ) -> (*mut u8, usize) {
        let (ret0, ret1): (usize, usize);
        // SAFETY: as on x86_64; the 208-byte save area keeps sp 16-aligned. ra is clobbered
        // by `jalr`, and declared by clobber_abi. fld/fsd move the 64 bits unchanged. A switch
        // routine returns here with a0:a1 = the Transfer.
        unsafe {
            asm!(
                "addi sp, sp, -208",
                "sd s0, 0(sp)",
                "sd s1, 8(sp)",
                "sd s2, 16(sp)",
                "sd s3, 24(sp)",
                "sd s4, 32(sp)",
                "sd s5, 40(sp)",
                "sd s6, 48(sp)",
                "sd s7, 56(sp)",
                "sd s8, 64(sp)",
                "sd s9, 72(sp)",
                "sd s10, 80(sp)",
                "sd s11, 88(sp)",
                "fsd fs0, 96(sp)",
                "fsd fs1, 104(sp)",
                "fsd fs2, 112(sp)",
                "fsd fs3, 120(sp)",
                "fsd fs4, 128(sp)",
                "fsd fs5, 136(sp)",
                "fsd fs6, 144(sp)",
                "fsd fs7, 152(sp)",
                "fsd fs8, 160(sp)",
                "fsd fs9, 168(sp)",
                "fsd fs10, 176(sp)",
                "fsd fs11, 184(sp)",
                "sd a3, 192(sp)",
                "ld s0, 0(a2)",
                "ld s1, 8(a2)",
                "ld s2, 16(a2)",
                "ld s3, 24(a2)",
                "ld s4, 32(a2)",
                "ld s5, 40(a2)",
                "ld s6, 48(a2)",
                "ld s7, 56(a2)",
                "ld s8, 64(a2)",
                "ld s9, 72(a2)",
                "ld s10, 80(a2)",
                "ld s11, 88(a2)",
                "fld fs0, 96(a2)",
                "fld fs1, 104(a2)",
                "fld fs2, 112(a2)",
                "fld fs3, 120(a2)",
                "fld fs4, 128(a2)",
                "fld fs5, 136(a2)",
                "fld fs6, 144(a2)",
                "fld fs7, 152(a2)",
                "fld fs8, 160(a2)",
                "fld fs9, 168(a2)",
                "fld fs10, 176(a2)",
                "fld fs11, 184(a2)",
                "jalr t1",
                "ld t0, 192(sp)",
                "sd s0, 0(t0)",
                "sd s1, 8(t0)",
                "sd s2, 16(t0)",
                "sd s3, 24(t0)",
                "sd s4, 32(t0)",
                "sd s5, 40(t0)",
                "sd s6, 48(t0)",
                "sd s7, 56(t0)",
                "sd s8, 64(t0)",
                "sd s9, 72(t0)",
                "sd s10, 80(t0)",
                "sd s11, 88(t0)",
                "fsd fs0, 96(t0)",
                "fsd fs1, 104(t0)",
                "fsd fs2, 112(t0)",
                "fsd fs3, 120(t0)",
                "fsd fs4, 128(t0)",
                "fsd fs5, 136(t0)",
                "fsd fs6, 144(t0)",
                "fsd fs7, 152(t0)",
                "fsd fs8, 160(t0)",
                "fsd fs9, 168(t0)",
                "fsd fs10, 176(t0)",
                "fsd fs11, 184(t0)",
                "ld s0, 0(sp)",
                "ld s1, 8(sp)",
                "ld s2, 16(sp)",
                "ld s3, 24(sp)",
                "ld s4, 32(sp)",
                "ld s5, 40(sp)",
                "ld s6, 48(sp)",
                "ld s7, 56(sp)",
                "ld s8, 64(sp)",
                "ld s9, 72(sp)",
                "ld s10, 80(sp)",
                "ld s11, 88(sp)",
                "fld fs0, 96(sp)",
                "fld fs1, 104(sp)",
                "fld fs2, 112(sp)",
                "fld fs3, 120(sp)",
                "fld fs4, 128(sp)",
                "fld fs5, 136(sp)",
                "fld fs6, 144(sp)",
                "fld fs7, 152(sp)",
                "fld fs8, 160(sp)",
                "fld fs9, 168(sp)",
                "fld fs10, 176(sp)",
                "fld fs11, 184(sp)",
                "addi sp, sp, 208",
                inout("a0") arg0 as usize => ret0,
                inout("a1") arg1 => ret1,
                in("a2") input,
                in("a3") output,
                in("t1") routine,
                clobber_abi("C"),
            );
        }
        (ret0 as *mut u8, ret1)
    }
}

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

// ---------------------------------------------------------------------------------------
// The switch routines called directly from the asm block.
//
// Through `Coroutine`, compiled Rust frames (the helper, `resume`, `suspend`) sit between the
// asm block and the switch; any of them that saves a callee-saved register in its prologue
// restores it on the way out, hiding a switch that fails to. Here the asm block calls the
// routine itself, on contexts made with the public `Context::new`, so every callee-saved
// register is checked against the routine alone. Each switch, on either side, picks one of
// the routines at random: any routine must resume a frame saved by any other.

extern "C" {
    // The routines of asm/<arch>.S (global, hidden: linkable from this executable). Only
    // their addresses are used here: the asm block calls them with the switch's contract.
    fn microthread_ctx_switch();
    fn microthread_ctx_switch_fpenv();
    fn microthread_ctx_switch_ret();
    #[cfg(target_arch = "x86_64")]
    fn microthread_ctx_switch_fpenv_ret();
}

fn routines() -> Vec<(&'static str, usize)> {
    #[allow(unused_mut)]
    let mut r = vec![
        ("switch", microthread_ctx_switch as *const () as usize),
        (
            "switch_fpenv",
            microthread_ctx_switch_fpenv as *const () as usize,
        ),
    ];
    r.push((
        "switch_ret",
        microthread_ctx_switch_ret as *const () as usize,
    ));
    // Entered by `call` here, it ends in `ret` like switch_ret: the same contract.
    #[cfg(target_arch = "x86_64")]
    r.push((
        "switch_fpenv_ret",
        microthread_ctx_switch_fpenv_ret as *const () as usize,
    ));
    r
}

/// What the context on the other side runs, and what it saw; lives on the test's heap.
struct RawScript {
    values: Vec<Regs>,
    /// Index into `routines()` of each of its switches (one more than `values`: the last).
    routines: Vec<usize>,
    log: Vec<(Regs, Regs)>,
    /// The data word of every switch into it, the first one included.
    received: Vec<usize>,
}

const RAW_DONE: usize = 0xd0e;

/// The other side: for each value set, loads it and switches back with the chosen routine;
/// finally switches back one last time and is abandoned with its stack. Never unwinds.
unsafe extern "C" fn raw_entry(from: Context, data: usize, arg: usize) -> ! {
    // SAFETY: the test keeps the script alive and does not touch it until our last switch.
    let script = unsafe { &mut *(arg as *mut RawScript) };
    let routines = routines();
    script.received.push(data);
    let mut to = from.into_raw().as_ptr();
    let rounds = script.values.len();
    for k in 0..rounds {
        let (values, routine) = (script.values[k], script.routines[k]);
        let mut got = [0u64; N];
        // SAFETY: `to` is the test's suspended context.
        let (from, data) = unsafe {
            arch::call_with(
                routines[routine].1,
                to,
                0x100 + k,
                values.as_ptr(),
                got.as_mut_ptr(),
            )
        };
        script.log.push((values, got));
        script.received.push(data);
        to = from;
    }
    let routine = routines[script.routines[rounds]].1;
    drop(routines); // this frame is abandoned after the last switch: leave nothing to drop
    let last = [0u64; N];
    let mut got = [0u64; N];
    // SAFETY: as above; nothing resumes this context again.
    unsafe { arch::call_with(routine, to, RAW_DONE, last.as_ptr(), got.as_mut_ptr()) };
    std::process::abort()
}

#[derive(Debug, Clone)]
struct RawCase {
    main_values: Vec<Regs>,
    main_routines: Vec<usize>,
    co_values: Vec<Regs>,
    co_routines: Vec<usize>,
}

fn raw_case() -> impl Strategy<Value = RawCase> {
    let n = routines().len();
    (1usize..=4).prop_flat_map(move |rounds| {
        (
            proptest::collection::vec(any::<Regs>(), rounds + 1),
            proptest::collection::vec(0..n, rounds + 1),
            proptest::collection::vec(any::<Regs>(), rounds),
            proptest::collection::vec(0..n, rounds + 1),
        )
            .prop_map(
                |(main_values, main_routines, co_values, co_routines)| RawCase {
                    main_values,
                    main_routines,
                    co_values,
                    co_routines,
                },
            )
    })
}

fn raw_round_trips(case: RawCase) {
    let _restore = DefaultModeOnDrop; // the fpenv routines install the default; keep it so
    let routines = routines();
    let rounds = case.co_values.len();
    let stack = Stack::new(64 * 1024).unwrap();
    let script = Box::into_raw(Box::new(RawScript {
        values: case.co_values.clone(),
        routines: case.co_routines.clone(),
        log: Vec::new(),
        received: Vec::new(),
    }));
    // SAFETY: the stack is ours, 16-aligned at the top, and outlives every switch into it.
    let context = unsafe { Context::new(stack.top(), raw_entry, script as usize) };
    let mut to = context.into_raw().as_ptr();
    let mut failures = Vec::new();
    for k in 0..=rounds {
        let (name, routine) = routines[case.main_routines[k]];
        let values = case.main_values[k];
        let mut got = [0u64; N];
        // SAFETY: `to` is the other side's suspended context, on `stack`.
        let (from, data) =
            unsafe { arch::call_with(routine, to, k, values.as_ptr(), got.as_mut_ptr()) };
        for d in differences(&values, &got) {
            failures.push(format!("main, across {name} #{k}: {d}"));
        }
        let want = if k < rounds { 0x100 + k } else { RAW_DONE };
        assert_eq!(data, want, "the data word of switch #{k}");
        to = from;
    }
    // SAFETY: the other side is done with the script (its last switch has happened).
    let script = unsafe { Box::from_raw(script) };
    drop(stack);
    assert_eq!(script.received, (0..=rounds).collect::<Vec<_>>());
    for (k, (values, got)) in script.log.iter().enumerate() {
        let name = routines[case.co_routines[k]].0;
        for d in differences(values, got) {
            failures.push(format!("other side, across {name} #{k}: {d}"));
        }
    }
    assert!(
        failures.is_empty(),
        "callee-saved registers not preserved by the switch routines:\n{}",
        failures.join("\n")
    );
}

proptest! {
    #![proptest_config(config(128))]

    /// Every routine, in both directions and in any mix, preserves every callee-saved register.
    #[test]
    fn the_switch_routines_preserve_callee_saved_registers(case in raw_case()) {
        raw_round_trips(case);
    }
}

/// The FP rounding mode, per architecture, read and written with inline asm. A `Mode` holds
/// one rounding-mode field per control register; 0 is the default (round to nearest).
#[cfg(target_arch = "x86_64")]
mod fpmode {
    use super::*;

    /// [MXCSR.RC (bits 13–14), x87 control word RC (bits 10–11)].
    pub type Mode = [u32; 2];
    /// Non-default values of each field: 1..=CHOICES.
    pub const CHOICES: u32 = 3;

    pub fn get() -> Mode {
        let mut mxcsr: u32 = 0;
        let mut cw: u16 = 0;
        // SAFETY: stores the two control registers into the two locals.
        unsafe {
            asm!(
                "stmxcsr [{m}]",
                "fnstcw [{c}]",
                m = in(reg) &mut mxcsr,
                c = in(reg) &mut cw,
                options(nostack, preserves_flags),
            );
        }
        [(mxcsr >> 13) & 3, u32::from((cw >> 10) & 3)]
    }

    pub fn set(mode: Mode) {
        let mut mxcsr: u32 = 0;
        let mut cw: u16 = 0;
        // SAFETY: read-modify-write of the two control registers, rounding fields only.
        unsafe {
            asm!(
                "stmxcsr [{m}]",
                "fnstcw [{c}]",
                m = in(reg) &mut mxcsr,
                c = in(reg) &mut cw,
                options(nostack, preserves_flags),
            );
            mxcsr = (mxcsr & !(3 << 13)) | (mode[0] << 13);
            cw = (cw & !(3 << 10)) | ((mode[1] as u16) << 10);
            asm!(
                "ldmxcsr [{m}]",
                "fldcw [{c}]",
                m = in(reg) &mxcsr,
                c = in(reg) &cw,
                options(nostack, preserves_flags),
            );
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod fpmode {
    use super::*;

    /// [FPCR.RMode (bits 22–23)].
    pub type Mode = [u32; 1];
    pub const CHOICES: u32 = 3;

    pub fn get() -> Mode {
        let fpcr: u64;
        // SAFETY: reads FPCR.
        unsafe { asm!("mrs {0}, fpcr", out(reg) fpcr, options(nomem, nostack, preserves_flags)) };
        [((fpcr >> 22) & 3) as u32]
    }

    pub fn set(mode: Mode) {
        // SAFETY: read-modify-write of FPCR, RMode field only.
        unsafe {
            asm!(
                "mrs {t}, fpcr",
                "bic {t}, {t}, #0xc00000",
                "orr {t}, {t}, {m}",
                "msr fpcr, {t}",
                t = out(reg) _,
                m = in(reg) u64::from(mode[0]) << 22,
                options(nomem, nostack, preserves_flags),
            );
        }
    }
}

#[cfg(target_arch = "riscv64")]
mod fpmode {
    use super::*;

    /// [frm]: 0 RNE, 1 RTZ, 2 RDN, 3 RUP, 4 RMM.
    pub type Mode = [u32; 1];
    pub const CHOICES: u32 = 4;

    pub fn get() -> Mode {
        let frm: u64;
        // SAFETY: reads frm.
        unsafe { asm!("frrm {0}", out(reg) frm, options(nomem, nostack, preserves_flags)) };
        [frm as u32]
    }

    pub fn set(mode: Mode) {
        // SAFETY: writes frm.
        unsafe {
            asm!("fsrm {0}", in(reg) u64::from(mode[0]), options(nomem, nostack, preserves_flags))
        };
    }
}

use fpmode::Mode;

const DEFAULT_MODE: Mode = [0; std::mem::size_of::<Mode>() / 4];

/// Puts the default rounding mode back when dropped, even if the test fails.
struct DefaultModeOnDrop;
impl Drop for DefaultModeOnDrop {
    fn drop(&mut self) {
        fpmode::set(DEFAULT_MODE);
    }
}

/// A non-default mode, each field different from the same field of every mode in `avoid`
/// whenever there is such a value; `pick` chooses among the candidates.
fn mode_avoiding(avoid: &[Mode], pick: &[u32]) -> Mode {
    std::array::from_fn(|field| {
        let candidates: Vec<u32> = (1..=fpmode::CHOICES)
            .filter(|v| avoid.iter().all(|m| m[field] != *v))
            .collect();
        let candidates = if candidates.is_empty() {
            (1..=fpmode::CHOICES)
                .filter(|&v| v != avoid[0][field])
                .collect()
        } else {
            candidates
        };
        candidates[pick[field] as usize % candidates.len()]
    })
}

/// Main's modes (one per resume) and the coroutine's (one per suspension); each coroutine
/// mode differs from the main modes around it, so a mode leaking either way is seen.
fn mode_script() -> impl Strategy<Value = (Vec<Mode>, Vec<Mode>)> {
    let field = 0..fpmode::CHOICES;
    let mode = proptest::collection::vec(field, DEFAULT_MODE.len());
    (1usize..=4).prop_flat_map(move |rounds| {
        (
            proptest::collection::vec(mode.clone(), rounds + 1),
            proptest::collection::vec(mode.clone(), rounds),
        )
            .prop_map(|(main_picks, co_picks)| {
                let main: Vec<Mode> = main_picks
                    .iter()
                    .map(|p| std::array::from_fn(|f| 1 + p[f]))
                    .collect();
                let co = co_picks
                    .iter()
                    .enumerate()
                    .map(|(k, p)| mode_avoiding(&[main[k], main[k + 1]], p))
                    .collect();
                (main, co)
            })
    })
}

/// What the coroutine saw: its mode on entry, then (set, observed after the suspend) pairs.
#[derive(Default)]
struct ModeLog {
    on_entry: Option<Mode>,
    rounds: Vec<(Mode, Mode)>,
}

fn fp_env_round_trips(main_modes: Vec<Mode>, co_modes: Vec<Mode>) {
    let _restore = DefaultModeOnDrop;
    let rounds = co_modes.len();
    let log: Rc<RefCell<ModeLog>> = Rc::default();
    let co_log = log.clone();
    let mut co: Coroutine<(), (), ()> = Builder::new()
        .preserve_fp_env(true)
        .build(move |y, ()| {
            co_log.borrow_mut().on_entry = Some(fpmode::get());
            for mode in co_modes {
                fpmode::set(mode);
                y.suspend(());
                let got = fpmode::get();
                co_log.borrow_mut().rounds.push((mode, got));
            }
            // Whatever we leave behind must not reach main: its own mode comes back.
            fpmode::set([fpmode::CHOICES; DEFAULT_MODE.len()]);
        })
        .unwrap();
    let mut failures = Vec::new();
    for (round, &mode) in main_modes.iter().enumerate() {
        fpmode::set(mode);
        let r = co.resume(());
        let got = fpmode::get();
        if got != mode {
            failures.push(format!(
                "main, across resume #{round}: set {mode:?}, got {got:?}"
            ));
        }
        assert_eq!(r == CoroutineResult::Return(()), round == rounds);
    }
    fpmode::set(DEFAULT_MODE);
    let log = log.borrow();
    assert_eq!(log.rounds.len(), rounds);
    let on_entry = log.on_entry.expect("the coroutine ran");
    if on_entry != DEFAULT_MODE {
        failures.push(format!(
            "coroutine started in {on_entry:?} (resumer had {:?}), not the default",
            main_modes[0]
        ));
    }
    for (round, (set, got)) in log.rounds.iter().enumerate() {
        if set != got {
            failures.push(format!(
                "coroutine, across suspend #{round}: set {set:?}, got {got:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "FP environment not preserved:\n{}",
        failures.join("\n")
    );
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
