//! Property: a generator yields exactly what a plain loop over the same program collects, then
//! ends (fused), or panics where the loop panics; dropping it part-way unwinds its frame. Both
//! forms: [`generator`] (owns its program) and [`scoped_generator`] (borrows it and a drop
//! counter from this stack).

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use microthread::coroutine::{generator, scoped_generator, Yielder};
use proptest::prelude::*;

use super::{config, silence_scripted_panics, Boom};

#[derive(Clone, Debug)]
enum Instr {
    Emit(u64),
    /// Emits `n` and `n + 1`.
    EmitPair(u64),
    /// Emits nothing.
    Skip,
    /// Ends the program here.
    Stop,
    /// Panics here.
    Panic,
}

/// The reference: what a plain loop collects, and whether it ends in a panic.
fn plain_loop(program: &[Instr]) -> (Vec<u64>, bool) {
    let mut out = Vec::new();
    for instr in program {
        match *instr {
            Instr::Emit(n) => out.push(n),
            Instr::EmitPair(n) => out.extend([n, n.wrapping_add(1)]),
            Instr::Skip => {}
            Instr::Stop => return (out, false),
            Instr::Panic => return (out, true),
        }
    }
    (out, false)
}

/// The same loop as a generator body.
fn body(y: &Yielder<(), u64>, program: &[Instr]) {
    for instr in program {
        match *instr {
            Instr::Emit(n) => y.suspend(n),
            Instr::EmitPair(n) => {
                y.suspend(n);
                y.suspend(n.wrapping_add(1));
            }
            Instr::Skip => {}
            Instr::Stop => return,
            Instr::Panic => panic::panic_any(Boom(0)),
        }
    }
}

/// Counts its drops.
struct Counted<'a>(&'a Cell<usize>);
impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// Takes up to `limit` items; then, if it took everything without stopping, checks the end
/// (a panic where the loop panics, then `None` for good). Returns the items and whether it
/// saw a panic.
fn drain(gen: &mut dyn Iterator<Item = u64>, limit: usize) -> (Vec<u64>, bool) {
    let mut items = Vec::new();
    while items.len() < limit {
        match panic::catch_unwind(AssertUnwindSafe(|| gen.next())) {
            Ok(Some(v)) => items.push(v),
            Ok(None) => {
                assert_eq!(gen.next(), None, "fused");
                assert_eq!(gen.next(), None, "fused");
                return (items, false);
            }
            Err(payload) => {
                assert!(payload.is::<Boom>(), "only the scripted panic");
                assert_eq!(gen.next(), None, "over after its panic");
                return (items, true);
            }
        }
    }
    (items, false)
}

fn check(program: Vec<Instr>, limit: usize) {
    silence_scripted_panics();
    let (expected, panics) = plain_loop(&program);
    let completes = limit > expected.len();
    let want = &expected[..expected.len().min(limit)];

    // Owned: the generator keeps its own copy of the program and a shared counter.
    let drops = Rc::new(Cell::new(0));
    let in_body = drops.clone();
    let owned = program.clone();
    let mut gen = generator(move |y| {
        let counter = in_body;
        let _frame = Counted(&counter);
        body(y, &owned);
    })
    .expect("map a stack");
    let (items, panicked) = drain(&mut gen, limit);
    assert_eq!(items, want);
    assert_eq!(panicked, completes && panics);
    drop(gen);
    // The body's frame exists once it started (at the first `next`), and is dropped once.
    assert_eq!(drops.get(), usize::from(limit > 0));

    // Scoped: borrows the program and the counter.
    let scoped_drops = Cell::new(0);
    let (items, panicked) = scoped_generator(
        |y| {
            let _frame = Counted(&scoped_drops);
            body(y, &program);
        },
        |gen| {
            let seen = drain(gen, limit);
            // Ended only by the scope if it was not drained.
            assert_eq!(scoped_drops.get(), usize::from(completes));
            seen
        },
    )
    .expect("map a stack");
    assert_eq!(items, want);
    assert_eq!(panicked, completes && panics);
    assert_eq!(scoped_drops.get(), usize::from(limit > 0));
}

fn instr() -> impl Strategy<Value = Instr> {
    prop_oneof![
        6 => any::<u64>().prop_map(Instr::Emit),
        2 => any::<u64>().prop_map(Instr::EmitPair),
        2 => Just(Instr::Skip),
        1 => Just(Instr::Stop),
        1 => Just(Instr::Panic),
    ]
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn a_generator_yields_what_a_plain_loop_collects(
        program in proptest::collection::vec(instr(), 0..24),
        limit in 0usize..40,
    ) {
        check(program, limit);
    }
}

#[test]
fn the_reference_loop_agrees_with_hand_computed_values() {
    use Instr::*;
    assert_eq!(
        plain_loop(&[Emit(1), Skip, EmitPair(5), Stop, Emit(9)]),
        (vec![1, 5, 6], false)
    );
    assert_eq!(plain_loop(&[Emit(2), Panic, Emit(3)]), (vec![2], true));
    assert_eq!(plain_loop(&[]), (vec![], false));
}
