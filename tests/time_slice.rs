//! Wall-clock time slices (`RunOptions::slice`) and round-robin mode
//! (`RunOptions::round_robin`): hard and soft slice interrupts at safe points, the slice
//! restarting at every switch (or not, with `total`), slices combined with tick budgets,
//! `atomic` deferring a slice interrupt, no slice outliving its `run_with`, a forked child
//! (which has no timer thread), and N CPU-bound tasklets sharing a thread.
//!
//! Timing is never asserted tightly: a slice must interrupt *eventually*, and slices are
//! chosen long next to what must fit in one (the tests also run under qemu-user and
//! valgrind, many times slower). Each test runs on its own thread (the harness's), so each
//! has its own scheduler.

#[path = "common/death.rs"]
mod death;

use death::under_qemu_user;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use microthread::scheduler::{self, atomic, run_with, spawn, tick, RunOptions};
use microthread::Tasklet;

const MS: Duration = Duration::from_millis(1);

/// A CPU-bound tasklet: ticks until `stop`, folding every step into a checksum of locals
/// (kept across each interrupt), and returns (steps, checksum).
fn checksummer(stop: &Rc<Cell<bool>>, steps: &Rc<Cell<u64>>) -> Tasklet {
    let (stop, steps) = (stop.clone(), steps.clone());
    spawn(move || {
        let mut acc: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut i: u64 = 0;
        let mut local = [0u64; 8];
        while !stop.get() {
            acc = acc.rotate_left(5) ^ i.wrapping_mul(0x100_0000_01b3);
            local[(i % 8) as usize] = acc;
            i += 1;
            steps.set(i);
            tick().unwrap();
        }
        (i, acc, local)
    })
    .unwrap()
}

/// What `checksummer` computes for `n` steps.
fn expected_checksum(n: u64) -> (u64, u64, [u64; 8]) {
    let mut acc: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut local = [0u64; 8];
    for i in 0..n {
        acc = acc.rotate_left(5) ^ i.wrapping_mul(0x100_0000_01b3);
        local[(i % 8) as usize] = acc;
    }
    (n, acc, local)
}

#[test]
fn a_hard_slice_interrupts_a_tick_loop_and_the_victim_resumes_intact() {
    let (stop, steps) = (Rc::new(Cell::new(false)), Rc::new(Cell::new(0)));
    let t = checksummer(&stop, &steps);
    let mut seen = 0;
    for _ in 0..3 {
        let victim = run_with(RunOptions::new().slice(2 * MS)).unwrap();
        assert_eq!(victim.as_ref(), Some(&t), "the slice interrupted it");
        assert!(t.alive() && t.paused() && !t.scheduled());
        assert_eq!(scheduler::runcount(), 1, "the victim left the run queue");
        assert!(steps.get() > seen, "it made progress in its slice");
        seen = steps.get();
        t.insert().unwrap();
    }
    stop.set(true);
    // No slice: it finishes where it left off, its locals intact.
    scheduler::run().unwrap();
    let (n, acc, local) = t.result::<(u64, u64, [u64; 8])>().unwrap();
    assert_eq!((n, acc, local), expected_checksum(n));
    assert!(n >= seen);
}

#[test]
fn a_soft_slice_returns_at_the_victims_next_switch_with_everything_scheduled() {
    let stop = Rc::new(Cell::new(false));
    let switches = Rc::new(Cell::new(0u32));
    let mut ts = Vec::new();
    for _ in 0..2 {
        let (stop, switches) = (stop.clone(), switches.clone());
        ts.push(
            spawn(move || {
                while !stop.get() {
                    // Runs 5 slices' worth between switches, passing safe points.
                    let start = Instant::now();
                    while start.elapsed() < 10 * MS {
                        tick().unwrap();
                    }
                    switches.set(switches.get() + 1);
                    scheduler::schedule().unwrap();
                }
            })
            .unwrap(),
        );
    }
    let victim = run_with(RunOptions::new().slice(2 * MS).soft(true)).unwrap();
    assert_eq!(victim, None, "soft: no victim");
    assert!(
        switches.get() >= 1,
        "it returned at a switch, not inside a loop"
    );
    assert!(ts.iter().all(|t| t.scheduled() && t.alive()));
    assert_eq!(scheduler::runcount(), 3, "main and both workers");
    stop.set(true);
    scheduler::run().unwrap();
    assert!(ts.iter().all(|t| !t.alive()));
}

/// Two tasklets that switch every `every` of wall time, `rounds` times each.
fn yielders(every: Duration, rounds: u32) -> Vec<Tasklet> {
    (0..2)
        .map(|_| {
            spawn(move || {
                for _ in 0..rounds {
                    let start = Instant::now();
                    while start.elapsed() < every {
                        tick().unwrap();
                    }
                    scheduler::schedule().unwrap();
                }
            })
            .unwrap()
        })
        .collect()
}

#[test]
fn the_slice_restarts_at_every_switch() {
    // 40 switches, 1 ms apart; a slice of 2 s never runs out between two of them.
    let ts = yielders(MS, 20);
    assert_eq!(run_with(RunOptions::new().slice(2000 * MS)).unwrap(), None);
    assert!(ts.iter().all(|t| !t.alive()), "both finished uninterrupted");
}

#[test]
fn a_total_slice_covers_the_whole_call_even_when_tasklets_switch() {
    // Over 40 ms of switching work, a total slice of 5 ms runs out. Under valgrind (one
    // thread at a time: the timer thread may wait tens of ms for its turn) 2 s of work.
    let under_valgrind = std::env::var_os("MICROTHREAD_UNDER_VALGRIND").is_some();
    let ts = yielders(MS, if under_valgrind { 1000 } else { 20 });
    let victim = run_with(RunOptions::new().slice(5 * MS).total(true)).unwrap();
    let victim = victim.expect("the total slice ran out before they finished");
    assert!(ts.contains(&victim) && victim.paused());
    victim.insert().unwrap();
    scheduler::run().unwrap();
    assert!(ts.iter().all(|t| !t.alive()));
}

#[test]
fn with_a_budget_and_a_slice_whichever_ends_first_interrupts() {
    // The budget first: exactly its ticks pass (the slice is an hour).
    let n = Rc::new(Cell::new(0u64));
    let n2 = n.clone();
    let t = spawn(move || loop {
        n2.set(n2.get() + 1);
        tick().unwrap();
    })
    .unwrap();
    let o = RunOptions::new().ticks(1_000).slice(3_600_000 * MS);
    assert_eq!(run_with(o).unwrap(), Some(t.clone()));
    assert_eq!(n.get(), 1_001, "1,000 ticks pass; the next one interrupts");
    // The slice first: a budget of 2^60 ticks is never used up.
    t.insert().unwrap();
    let o = RunOptions::new().ticks(1 << 60).slice(MS);
    assert_eq!(run_with(o).unwrap(), Some(t.clone()));
    assert!(n.get() > 1_001);
    t.kill().unwrap();
}

#[test]
fn atomic_defers_a_slice_interrupt_to_the_first_safe_point_after_it() {
    let after = Rc::new(Cell::new(0u64));
    let a = after.clone();
    // Fifty slices of safe points: the slice surely ran out meanwhile. Under valgrind, which
    // runs one thread at a time, the timer thread may wait for the CPU for hundreds of ms
    // while the harness's other tests spin: 3 s there (once it fired only after 100 ms).
    let under_valgrind = std::env::var_os("MICROTHREAD_UNDER_VALGRIND").is_some();
    let section = if under_valgrind { 3000 * MS } else { 100 * MS };
    let t = spawn(move || {
        atomic(|| {
            let start = Instant::now();
            while start.elapsed() < section {
                tick().unwrap();
            }
        });
        loop {
            a.set(a.get() + 1);
            tick().unwrap();
        }
    })
    .unwrap();
    assert_eq!(
        run_with(RunOptions::new().slice(2 * MS)).unwrap(),
        Some(t.clone())
    );
    assert_eq!(
        after.get(),
        1,
        "interrupted at the first safe point after the section"
    );
    t.kill().unwrap();
}

#[test]
fn no_slice_outlives_its_run_with() {
    // A slice run whose tasklet finishes at once: the slice long next to one spawn and one
    // safe point, however slowly emulated (with a 1 ms slice, qemu-user's first translation of
    // that code under a loaded CI machine made the slice interrupt the tasklet).
    let slow = under_qemu_user() || std::env::var_os("MICROTHREAD_UNDER_VALGRIND").is_some();
    let slice = if slow { 500 * MS } else { 100 * MS };
    let quick = spawn(|| tick().unwrap()).unwrap();
    assert_eq!(run_with(RunOptions::new().slice(slice)).unwrap(), None);
    assert!(!quick.alive());
    // Long after that slice would have ended, a tick budget that is never used up is not
    // cut short by it, and no watchdog at all means no switch.
    let t = spawn(move || {
        let start = Instant::now();
        while start.elapsed() < slice + 20 * MS {
            tick().unwrap();
        }
    })
    .unwrap();
    assert_eq!(run_with(RunOptions::new().ticks(1 << 60)).unwrap(), None);
    assert!(!t.alive());
    let start = Instant::now();
    while start.elapsed() < slice + 20 * MS {
        tick().unwrap();
    }
    assert!(scheduler::current().is_main());
}

#[test]
fn a_nested_slice_run_behaves_as_run() {
    let inner_result = Rc::new(Cell::new(None));
    let r = inner_result.clone();
    let outer = spawn(move || {
        // Atomic: the outer slice may run out here (slowly emulated) and must not cut this
        // tasklet instead; its switch into the inner run starts the busy one's slice.
        let _atomic = scheduler::AtomicGuard::new();
        let busy = spawn(|| loop {
            tick().unwrap();
        })
        .unwrap();
        // The outer run_with holds the interrupt slot; this one is a plain run: the
        // interrupt goes to the outer one.
        r.set(Some(
            run_with(RunOptions::new().slice(MS)).map(|v| v.is_some()),
        ));
        // Killed by main meanwhile: this kill of a dead tasklet changes nothing.
        let _ = busy.kill();
    })
    .unwrap();
    let victim = run_with(RunOptions::new().slice(2 * MS)).unwrap().unwrap();
    assert_ne!(victim, outer, "the busy tasklet, not the inner watchdog");
    assert!(victim.paused());
    victim.kill().unwrap();
    scheduler::run().unwrap();
    assert!(
        matches!(inner_result.take(), Some(Ok(false))),
        "the inner run returned None once the ring emptied"
    );
}

#[test]
fn round_robin_lets_cpu_bound_tasklets_all_progress_and_finish() {
    const N: usize = 4;
    // Each needs about 10 ms of ticks natively (many slices of 1 ms), more when emulated.
    const TICKS: u64 = 10_000_000;
    let counts: Rc<Vec<Cell<u64>>> = Rc::new((0..N).map(|_| Cell::new(0)).collect());
    let seen_at_first_finish: Rc<Cell<Option<Vec<u64>>>> = Rc::new(Cell::new(None));
    let ts: Vec<Tasklet> = (0..N)
        .map(|i| {
            let (counts, seen) = (counts.clone(), seen_at_first_finish.clone());
            spawn(move || {
                for _ in 0..TICKS {
                    counts[i].set(counts[i].get() + 1);
                    tick().unwrap();
                }
                let snapshot = counts.iter().map(Cell::get).collect();
                let first = seen.take().unwrap_or(snapshot);
                seen.set(Some(first));
            })
            .unwrap()
        })
        .collect();
    let o = RunOptions::new().slice(MS).round_robin(true);
    assert_eq!(
        run_with(o).unwrap(),
        None,
        "round robin never returns a tasklet"
    );
    assert!(ts.iter().all(|t| !t.alive()), "all finished");
    assert!(counts.iter().all(|c| c.get() == TICKS));
    let first = seen_at_first_finish.take().unwrap();
    assert!(
        first.iter().all(|&c| c > 0),
        "when the first one finished every other one had run: {first:?}"
    );
    assert!(
        first.iter().filter(|&&c| c < TICKS).count() >= N - 1,
        "and was not finished yet: {first:?}"
    );
}

#[test]
fn round_robin_with_a_tick_budget_interleaves_in_ring_order() {
    let log = Rc::new(std::cell::RefCell::new(Vec::new()));
    for name in ["A", "B", "C"] {
        let log = log.clone();
        spawn(move || {
            for _ in 0..250 {
                let mut l = log.borrow_mut();
                if l.last() != Some(&name) {
                    l.push(name);
                }
                drop(l);
                tick().unwrap();
            }
        })
        .unwrap();
    }
    let o = RunOptions::new().ticks(100).round_robin(true);
    assert_eq!(run_with(o).unwrap(), None);
    // 250 ticks in slices of about 100: three turns each, in ring order.
    assert_eq!(*log.borrow(), ["A", "B", "C", "A", "B", "C", "A", "B", "C"]);
}

#[test]
fn a_forked_child_has_no_timer_thread_and_starts_its_own() {
    if death::under_qemu_user() {
        // As in tests/fork.rs: the child's new thread (its timer) dies with exit code 127.
        eprintln!("skipped under qemu-user: threads in forked children are unreliable there");
        return;
    }
    let _serial = death::serial();
    // The parent's timer thread is running (this slice started it if nobody had).
    let t = spawn(|| loop {
        tick().unwrap();
    })
    .unwrap();
    assert!(run_with(RunOptions::new().slice(MS)).unwrap().is_some());
    t.kill().unwrap();
    let death = death::in_child(|| {
        let t = spawn(|| loop {
            tick().unwrap();
        })
        .unwrap();
        let v = run_with(RunOptions::new().slice(MS)).unwrap();
        assert_eq!(v, Some(t.clone()), "the child's slice fired");
        t.kill().unwrap();
    });
    assert_eq!(death.exit_code(), Some(0), "{}", death.describe());
}

#[test]
fn threads_that_end_inside_a_time_sliced_run_with_leave_the_timer_sound() {
    // Each thread ends with a tasklet waiting in a time-sliced run_with (its teardown kills
    // it there); the slice may run out before, during or after the thread's end. The timer
    // must never write a dead thread's thread-locals (valgrind and ASan would see it), and
    // it still serves the threads that live on.
    for _ in 0..8 {
        std::thread::spawn(|| {
            spawn(|| {
                let _ = run_with(RunOptions::new().slice(MS));
            })
            .unwrap();
            // The tasklet enters run_with; main, alone in the run queue, runs on and ends
            // the thread.
            scheduler::schedule().unwrap();
        })
        .join()
        .unwrap();
    }
    std::thread::sleep(20 * MS);
    let t = spawn(|| loop {
        tick().unwrap();
    })
    .unwrap();
    assert_eq!(
        run_with(RunOptions::new().slice(MS)).unwrap(),
        Some(t.clone())
    );
    t.kill().unwrap();
}
