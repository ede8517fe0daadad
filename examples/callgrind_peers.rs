//! The loops of `benches/peers.rs`, one per run, a fixed number of times: for instruction
//! counts under callgrind, where criterion's own work would swamp them.
//!
//! ```text
//! cargo build --release --example callgrind_peers
//! for n in 100000 200000; do
//!   valgrind --tool=callgrind --callgrind-out-file=/tmp/cg-$n.out \
//!     target/release/examples/callgrind_peers corosensei_switch $n
//! done
//! # Ir per iteration = (summary of cg-200000.out - summary of cg-100000.out) / 100000
//! ```
//!
//! `callgrind_peers --list` names the loops. context 3.0.0 does not build on riscv64, so its
//! loops are missing there.

use std::hint::black_box;
use std::process::ExitCode;

type Loop = fn(u64);

const LOOPS: &[(&str, Loop)] = &[
    ("microthread_switch", microthread_switch),
    ("microthread_fpenv_switch", microthread_fpenv_switch),
    ("microthread_spawn", microthread_spawn),
    ("corosensei_switch", corosensei_switch),
    ("corosensei_spawn", corosensei_spawn),
    #[cfg(not(target_arch = "riscv64"))]
    ("context_switch", context_switch),
    #[cfg(not(target_arch = "riscv64"))]
    ("context_spawn", context_spawn),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--list") {
        for (name, _) in LOOPS {
            println!("{name}");
        }
        return ExitCode::SUCCESS;
    }
    let usage = || {
        let names: Vec<&str> = LOOPS.iter().map(|(n, _)| *n).collect();
        eprintln!(
            "usage: callgrind_peers LOOP ITERATIONS | --list\nloops: {}",
            names.join(", ")
        );
        ExitCode::from(2)
    };
    let [name, n] = args.as_slice() else {
        return usage();
    };
    let Some((_, run)) = LOOPS.iter().find(|(l, _)| l == name) else {
        return usage();
    };
    let Ok(n) = n.replace('_', "").parse::<u64>() else {
        return usage();
    };
    run(n);
    ExitCode::SUCCESS
}

fn microthread_round_trip(fpenv: bool, n: u64) {
    let mut co: microthread::Coroutine<(), (), ()> = microthread::coroutine::Builder::new()
        .preserve_fp_env(fpenv)
        .build(|yielder, ()| loop {
            yielder.suspend(());
        })
        .expect("a stack");
    black_box(co.resume(()));
    for _ in 0..n {
        black_box(co.resume(()));
    }
}

fn microthread_switch(n: u64) {
    microthread_round_trip(false, n);
}

fn microthread_fpenv_switch(n: u64) {
    microthread_round_trip(true, n);
}

fn microthread_spawn(n: u64) {
    for _ in 0..n {
        let mut co: microthread::Coroutine<(), (), u32> =
            microthread::Coroutine::new(|_, ()| black_box(1)).expect("a stack");
        black_box(co.resume(()));
    }
}

fn corosensei_switch(n: u64) {
    let mut co: corosensei::Coroutine<(), (), ()> =
        corosensei::Coroutine::new(|yielder, ()| loop {
            yielder.suspend(());
        });
    black_box(co.resume(()));
    for _ in 0..n {
        black_box(co.resume(()));
    }
}

fn corosensei_spawn(n: u64) {
    let mut stack = Some(corosensei::stack::DefaultStack::default());
    for _ in 0..n {
        let mut co: corosensei::Coroutine<(), (), u32> =
            corosensei::Coroutine::with_stack(stack.take().expect("the stack"), |_, ()| {
                black_box(1)
            });
        black_box(co.resume(()));
        stack = Some(co.into_stack());
    }
}

#[cfg(not(target_arch = "riscv64"))]
fn context_switch(n: u64) {
    use context::stack::ProtectedFixedSizeStack;
    use context::{Context, Transfer};

    extern "C" fn echo(mut t: Transfer) -> ! {
        loop {
            // SAFETY: `t.context` is the suspended resumer, on this thread.
            t = unsafe { t.context.resume(t.data) };
        }
    }
    let stack = ProtectedFixedSizeStack::default();
    // SAFETY: the stack outlives every use of the context.
    let first = unsafe { Context::new(&stack, echo).resume(0) };
    let mut ctx = Some(first.context);
    for _ in 0..n {
        let to = ctx.take().expect("echo is suspended");
        // SAFETY: `to` is echo's suspended context, on this thread, its stack alive.
        let t = unsafe { to.resume(black_box(1)) };
        ctx = Some(t.context);
        black_box(t.data);
    }
}

#[cfg(not(target_arch = "riscv64"))]
fn context_spawn(n: u64) {
    use context::stack::ProtectedFixedSizeStack;
    use context::{Context, Transfer};

    extern "C" fn finish(t: Transfer) -> ! {
        // SAFETY: `t.context` is the suspended resumer; it never resumes us again.
        unsafe { t.context.resume(black_box(t.data) + 1) };
        unreachable!("a finished context was resumed")
    }
    let stack = ProtectedFixedSizeStack::default();
    for _ in 0..n {
        // SAFETY: the stack outlives the context; the previous one on it is abandoned.
        let t = unsafe { Context::new(&stack, finish).resume(black_box(1)) };
        black_box(t.data);
    }
}
