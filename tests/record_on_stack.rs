//! A tasklet's record lives at the top of its own stack (issue 11, `tasklet::Record`): the
//! stack must stay the record's for as long as anything refers to the tasklet, also after
//! it has died, and go back to the pool only with the last reference.

mod common;

use std::cell::Cell;
use std::rc::Rc;

use common::{on_thread, stack_pointer};
use microthread::scheduler::{self, spawn};
use microthread::stack::DEFAULT_STACK_SIZE;

/// Spawns a tasklet that notes its stack pointer (a point in its stack's top page) and
/// returns `value`; runs it to its end.
fn run_one_noting_its_stack(value: u64) -> (microthread::Tasklet, usize) {
    let at = Rc::new(Cell::new(0usize));
    let a = at.clone();
    let t = spawn(move || {
        a.set(stack_pointer());
        value
    })
    .unwrap();
    scheduler::run().unwrap();
    assert!(!t.alive());
    (t, at.get())
}

/// Binds the dead tasklet `t` again to a closure that notes its stack pointer and returns 4,
/// runs it to its end, and returns where it ran.
fn rebind_and_run_noting_its_stack(t: &microthread::Tasklet) -> usize {
    let at = Rc::new(Cell::new(0usize));
    let a = at.clone();
    t.bind(move || {
        a.set(stack_pointer());
        4u64
    })
    .unwrap();
    t.setup().unwrap();
    scheduler::run().unwrap();
    assert!(!t.alive());
    at.get()
}

/// Whether two points lie in the same stack slot (default stacks: at least 256 KiB apart).
fn same_stack(a: usize, b: usize) -> bool {
    a.abs_diff(b) < DEFAULT_STACK_SIZE
}

/// Regression for the record's lifetime: a stack released at the tasklet's death (as before
/// issue 11, when the record was on the heap) would be the very next spawn's, and its first
/// frames would overwrite the record that the handle still reads.
#[test]
fn a_dead_tasklets_stack_is_not_reused_while_a_handle_refers_to_it() {
    on_thread(|| {
        let (t, home) = run_one_noting_its_stack(42);
        let id = t.id();
        for i in 0..200 {
            let (other, at) = run_one_noting_its_stack(i);
            assert!(
                !same_stack(at, home),
                "tasklet {i} ran on the stack of a dead tasklet that a handle still refers to"
            );
            assert_eq!(other.result::<u64>(), Some(i));
        }
        // The record is intact and still usable through the handle.
        assert_eq!(t.id(), id);
        assert!(!t.alive() && !t.scheduled() && t.started());
        t.set_name(Some("kept"));
        assert_eq!(t.name().as_deref(), Some("kept"));
        assert_eq!(t.result::<u64>(), Some(42));
        assert_eq!(t.clone(), t);
        // With the last handle, the stack goes back to the pool: the next spawn takes it.
        drop(t);
        let (_, at) = run_one_noting_its_stack(7);
        assert!(
            same_stack(at, home),
            "the stack came back with the last handle"
        );
    });
}

/// The last reference may be another thread's: the stack stays until that goes, and is
/// released on that thread.
#[test]
fn a_remote_reference_keeps_a_dead_tasklets_stack_until_it_goes() {
    on_thread(|| {
        let (t, home) = run_one_noting_its_stack(1);
        let remote = t.remote();
        drop(t);
        for i in 0..100 {
            let (_, at) = run_one_noting_its_stack(i);
            assert!(
                !same_stack(at, home),
                "a stack was reused while another thread's reference to its tasklet lived"
            );
        }
        let seen = std::thread::spawn(move || {
            let alive = remote.alive();
            drop(remote);
            alive
        })
        .join()
        .unwrap();
        assert!(
            !seen,
            "a dead tasklet is not alive for another thread either"
        );
        // Spawning goes on normally afterwards.
        let (t, _) = run_one_noting_its_stack(5);
        assert_eq!(t.result::<u64>(), Some(5));
    });
}

/// A tasklet bound again after its death runs its new closure on a stack of its own; its
/// record stays on the first one.
#[test]
fn a_rebound_tasklet_keeps_its_record_and_runs_again() {
    on_thread(|| {
        let (t, home) = run_one_noting_its_stack(3);
        let at = rebind_and_run_noting_its_stack(&t);
        assert_eq!(t.result::<u64>(), Some(4));
        assert!(!same_stack(at, home), "the new closure ran over the record");
        let id = t.id();
        for i in 0..50 {
            let (_, at) = run_one_noting_its_stack(i);
            assert!(!same_stack(at, home));
        }
        assert_eq!(t.id(), id);
    });
}

/// The last handle frees a dead tasklet's record without an atomic decrement once its count
/// reads 1 (issue 13): also when another thread's reference was the one that went just
/// before, the record and its stack come back whole, and only then.
#[test]
fn the_last_handle_after_a_remote_reference_went_frees_the_record_and_its_stack() {
    on_thread(|| {
        let (t, home) = run_one_noting_its_stack(9);
        let remote = t.remote();
        std::thread::spawn(move || drop(remote)).join().unwrap();
        // Only the local reference is left: the handle still reads the record...
        assert_eq!(t.result::<u64>(), Some(9));
        for i in 0..20 {
            let (_, at) = run_one_noting_its_stack(i);
            assert!(!same_stack(at, home), "reused while a handle was left");
        }
        // ...and its drop releases the stack: the next spawn takes it.
        drop(t);
        let (t, at) = run_one_noting_its_stack(10);
        assert!(
            same_stack(at, home),
            "the stack came back with the last handle"
        );
        assert_eq!(t.result::<u64>(), Some(10));
    });
}

/// A dead tasklet's home stack stays with its record (issue 13: in its state, not handed
/// over), but a rebound tasklet's second stack is no home: it goes back to the pool at the
/// tasklet's second end, while the handle is still held, and the next spawn takes it.
#[test]
fn a_rebound_tasklets_own_stack_goes_back_at_its_end_and_its_home_stays() {
    on_thread(|| {
        let (t, home) = run_one_noting_its_stack(3);
        let second = rebind_and_run_noting_its_stack(&t);
        assert!(!same_stack(second, home));
        let (u, next) = run_one_noting_its_stack(5);
        assert!(
            same_stack(next, second),
            "the rebound tasklet's own stack came back at its end"
        );
        for i in 0..20 {
            let (_, at) = run_one_noting_its_stack(i);
            assert!(
                !same_stack(at, home),
                "the home was reused under the record"
            );
        }
        assert_eq!(t.result::<u64>(), Some(4));
        drop((t, u));
    });
}
