//! The switch and spawn loops of `benches/peers.rs` and of the report's peer columns (from
//! `microthread_report::peers::coroutines`, report/src/peers/coroutines.rs), one per run,
//! a fixed number of times: for instruction counts under callgrind, where criterion's own
//! work would swamp them.
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

use std::process::ExitCode;

use microthread_report::peers::coroutines as peer_loops;

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

/// Runs one of the shared loops `n` times after its setup.
fn repeat(mut step: impl FnMut(), n: u64) {
    for _ in 0..n {
        step();
    }
}

fn microthread_switch(n: u64) {
    repeat(peer_loops::microthread_switch(false), n);
}

fn microthread_fpenv_switch(n: u64) {
    repeat(peer_loops::microthread_switch(true), n);
}

fn microthread_spawn(n: u64) {
    repeat(peer_loops::microthread_spawn(), n);
}

fn corosensei_switch(n: u64) {
    repeat(peer_loops::corosensei_switch(), n);
}

fn corosensei_spawn(n: u64) {
    repeat(peer_loops::corosensei_spawn(), n);
}

#[cfg(not(target_arch = "riscv64"))]
fn context_switch(n: u64) {
    repeat(peer_loops::context_switch(), n);
}

#[cfg(not(target_arch = "riscv64"))]
fn context_spawn(n: u64) {
    repeat(peer_loops::context_spawn(), n);
}
