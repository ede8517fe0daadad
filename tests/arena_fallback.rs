//! The `mprotect` fallback of the stack arenas, forced natively with
//! `MICROTHREAD_STACK_GUARD=mprotect` (under qemu-user the probe picks it by itself): guards
//! still fault and report, and the arenas stop short of `vm.max_map_count` with an error that
//! names it, leaving the program's own allocations working.
//!
//! One test only: the variable must be set before anything in the process probes.
#![cfg(target_os = "linux")]

#[path = "common/death.rs"]
mod death;

use death::{in_child, recurse, serial};
use microthread::channel::Channel;
use microthread::scheduler;
use microthread::stack::{arena, guard_mechanism, limits, GuardMechanism, Stack};

#[test]
fn the_fallback_guards_and_refuses_cleanly_before_the_map_count_limit() {
    if std::env::var_os("MICROTHREAD_UNDER_VALGRIND").is_some() {
        // Tens of thousands of mprotect'ed guards are more segments than valgrind's address
        // space manager holds ("VG_N_SEGMENTS is too low": it exits). The native and ASan
        // legs run it.
        eprintln!("skipped under valgrind: too many mappings for its address space manager");
        return;
    }
    let _serial = serial();
    std::env::set_var("MICROTHREAD_STACK_GUARD", "mprotect");
    assert_eq!(guard_mechanism(), GuardMechanism::Mprotect);

    // Tasklets on fallback stacks overflow into a guard that reports them.
    let ch = Channel::<u32>::new();
    let rx = ch.clone();
    let t = scheduler::spawn(move || {
        if rx.receive().unwrap() == 1 {
            std::hint::black_box(recurse(0));
        }
    })
    .unwrap();
    scheduler::run().unwrap();
    let id = t.id();
    let death = in_child(|| {
        ch.send(1).unwrap();
        let _ = scheduler::run();
    });
    death.assert_killed_by_sigsegv();
    assert!(
        death
            .stderr
            .contains(&format!("microthread: tasklet {id} overflowed")),
        "{:?}",
        death.stderr
    );

    // Stacks until the budget is used up: a clear error, well below the kernel's limit.
    let budget = arena::mprotect_slot_budget();
    assert!(budget < limits::max_map_count() / 2);
    let mut stacks = Vec::new();
    let error = loop {
        match Stack::new(32 * 1024) {
            Ok(s) => stacks.push(s),
            Err(e) => break e,
        }
        assert!(stacks.len() <= budget, "more stacks than the budget");
    };
    let message = error.to_string();
    assert!(message.contains("vm.max_map_count"), "{message}");
    assert!(message.contains("sysctl -w vm.max_map_count="), "{message}");
    let maps = limits::map_count().unwrap();
    assert!(
        maps + 4096 <= limits::max_map_count(),
        "{maps} mappings: no headroom left"
    );
    // The program's own mappings still work.
    let own: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 256 * 1024]).collect();
    assert_eq!(own[63][1000], 63);
    // Freed slots are reused: the budget counts slots carved, not stacks alive.
    drop(stacks.pop());
    assert!(Stack::new(32 * 1024).is_ok());
    drop(t);
}
