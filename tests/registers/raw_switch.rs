//! The switch routines called directly from the asm block.
//!
//! Through `Coroutine`, compiled Rust frames (the helper, `resume`, `suspend`) sit between the
//! asm block and the switch; any of them that saves a callee-saved register in its prologue
//! restores it on the way out, hiding a switch that fails to. Here the asm block calls the
//! routine itself, on contexts made with the public `Context::new`, so every callee-saved
//! register is checked against the routine alone. Each switch, on either side, picks one of
//! the routines at random: any routine must resume a frame saved by any other.

use microthread::context::Context;
use microthread::stack::Stack;
use proptest::prelude::*;

use super::fp_env::DefaultModeOnDrop;
use super::{arch, differences, Regs, N};

extern "C" {
    // The routines of asm/<arch>.S (global, hidden: linkable from this executable). Only
    // their addresses are used here: the asm block calls them with the switch's contract.
    fn microthread_ctx_switch();
    fn microthread_ctx_switch_fpenv();
    fn microthread_ctx_switch_ret();
    #[cfg(target_arch = "x86_64")]
    fn microthread_ctx_switch_fpenv_ret();
}

pub(crate) fn routines() -> Vec<(&'static str, usize)> {
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
pub(crate) struct RawCase {
    main_values: Vec<Regs>,
    main_routines: Vec<usize>,
    co_values: Vec<Regs>,
    co_routines: Vec<usize>,
}

pub(crate) fn raw_case() -> impl Strategy<Value = RawCase> {
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

pub(crate) fn raw_round_trips(case: RawCase) {
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
