//! Model-based property test of `Coroutine`: random operation sequences over up to eight live
//! coroutines, checked against a reference model that is plain data (no stacks, no switches).
//!
//! Each coroutine runs a random *script*: a list of steps, each of which first creates a
//! tracked value in its own stack frame (the frames nest, so the values of every step so far
//! stay alive until the coroutine finishes or is dropped) and then
//! - `Yield`: suspends with a value derived from (coroutine, step, last input);
//! - `Panic`: panics with the coroutine's tag;
//! - `Nested(script)`: creates an inner coroutine on this stack running `script`, and passes
//!   each of its yields out through its own suspensions (and each input back in) until it
//!   returns; its return value becomes this coroutine's next input. An inner panic unwinds
//!   through this coroutine as well.
//!
//! When the script ends the coroutine returns a value derived from (coroutine, last input).
//! The model predicts, for every resume, the outcome (`Yield(v)`, `Return(v)`, a panic with
//! which coroutine's tag, or `ResumeError::Finished`), and after every operation how many
//! tracked values are alive: each value must be dropped exactly once, whether its coroutine
//! finishes, panics, or is dropped while suspended (forced unwind) or before it started.
//!
//! `generators`: a generator (plain and scoped) yields what a plain loop collects.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt::Debug;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use microthread::coroutine::{Builder, Coroutine, CoroutineResult, ResumeError, Yielder};
use proptest::prelude::*;

/// Generators against a plain loop (`tests/prop_coroutine/generators.rs`).
#[path = "prop_coroutine/generators.rs"]
mod generators;

const SLOTS: usize = 8;
/// Stack sizes for top-level coroutines: the minimum (16 KiB), 64 KiB and the default.
const STACK_SIZES: [usize; 3] = [16 * 1024, 64 * 1024, 256 * 1024];

/// Creating a coroutine needs about 40 KiB of stack today (`overflow::Registration::new`
/// builds a 32 KiB registry chunk on the stack before boxing it; see
/// `creating_a_coroutine_inside_a_minimum_size_coroutine_does_not_overflow` in
/// tests/guard_page.rs), so scripts with nested coroutines get at least 64 KiB.
fn stack_size_for(script: &[Step], index: usize) -> usize {
    let nests = script.iter().any(|s| matches!(s, Step::Nested(_)));
    if nests {
        STACK_SIZES[index.max(1)]
    } else {
        STACK_SIZES[index]
    }
}

#[derive(Clone, Debug)]
enum Step {
    Yield,
    Panic,
    Nested(Vec<Step>),
}

#[derive(Clone, Debug)]
enum Op {
    /// Create a coroutine in `slot`, dropping the one there first.
    Create {
        slot: usize,
        script: Vec<Step>,
        preserve_fp_env: bool,
        stack: usize,
    },
    /// `try_resume(value)` the `pick % n`-th of the n occupied slots, if any.
    Resume { pick: usize, value: u64 },
    /// Drop the coroutine in the `pick % n`-th occupied slot, if any (not started, suspended
    /// or finished).
    Drop { pick: usize },
}

/// What one resume gave, as both the model and the real coroutine describe it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Yield(u64),
    Return(u64),
    /// The resume panicked with the tag of the coroutine whose script panicked.
    Panic(u64),
    /// `try_resume` said `ResumeError::Finished`.
    Finished,
}

// ---------------------------------------------------------------------------------------
// Values: the same pure functions drive the real coroutines and the model, so a value routed
// to the wrong coroutine, step or resume shows up as a mismatch.

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
fn yielded(tag: u64, step: usize, input: u64) -> u64 {
    splitmix(splitmix(tag ^ ((step as u64) << 48)) ^ input)
}
fn returned(tag: u64, input: u64) -> u64 {
    splitmix(splitmix(!tag) ^ input)
}
fn child_tag(tag: u64, step: usize) -> u64 {
    splitmix(tag.wrapping_mul(31).wrapping_add(step as u64 + 1))
}
/// An outer coroutine passes its inner one's yields on, marked, so that forgetting to pass
/// them (or passing a stale one) is visible.
const PASSED_ON: u64 = 0x5a5a_0000_0000_0001;

// ---------------------------------------------------------------------------------------
// The ledger of tracked values: created, alive, dropped twice.

#[derive(Default)]
struct Ledger {
    next: u64,
    alive: HashSet<u64>,
    dropped_twice: Vec<u64>,
}

thread_local! {
    static LEDGER: RefCell<Ledger> = RefCell::default();
}

struct Tracked(u64);

impl Tracked {
    fn new() -> Tracked {
        LEDGER.with(|l| {
            let mut l = l.borrow_mut();
            l.next += 1;
            let id = l.next;
            l.alive.insert(id);
            Tracked(id)
        })
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        LEDGER.with(|l| {
            let mut l = l.borrow_mut();
            if !l.alive.remove(&self.0) {
                l.dropped_twice.push(self.0);
            }
        });
    }
}

fn alive() -> usize {
    LEDGER.with(|l| l.borrow().alive.len())
}

// ---------------------------------------------------------------------------------------
// The real coroutines.

/// The payload of a scripted panic: the tag of the coroutine that panicked.
struct Boom(u64);

/// Keeps the default panic hook from printing scripted panics (there are many).
fn silence_scripted_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<Boom>().is_none() {
                default(info);
            }
        }));
    });
}

type Co = Coroutine<u64, u64, u64>;

fn spawn(tag: u64, script: Vec<Step>, builder: Builder) -> Co {
    // Lives in the closure until the body starts, then in the body's frame until it ends.
    let captured = Tracked::new();
    builder
        .build(move |y, input| {
            let _captured = captured;
            run(y, tag, &script, 0, input)
        })
        .expect("map a stack")
}

/// Runs `script[step..]` with `input`; one frame (and one tracked value) per step.
fn run(y: &Yielder<u64, u64>, tag: u64, script: &[Step], step: usize, input: u64) -> u64 {
    let Some(s) = script.get(step) else {
        return returned(tag, input);
    };
    let _value = Tracked::new();
    match s {
        Step::Yield => {
            let next = y.suspend(yielded(tag, step, input));
            run(y, tag, script, step + 1, next)
        }
        Step::Panic => panic::panic_any(Boom(tag)),
        Step::Nested(sub) => {
            let mut inner = spawn(child_tag(tag, step), sub.clone(), Builder::new());
            let mut r = inner.resume(input);
            let next = loop {
                match r {
                    CoroutineResult::Yield(v) => {
                        let back = y.suspend(v ^ PASSED_ON);
                        r = inner.resume(back);
                    }
                    CoroutineResult::Return(v) => break v,
                }
            };
            assert!(inner.is_finished());
            drop(inner);
            run(y, tag, script, step + 1, next)
        }
    }
}

fn resume_real(co: &mut Co, value: u64) -> Outcome {
    match panic::catch_unwind(AssertUnwindSafe(|| co.try_resume(value))) {
        Ok(Ok(CoroutineResult::Yield(v))) => Outcome::Yield(v),
        Ok(Ok(CoroutineResult::Return(v))) => Outcome::Return(v),
        Ok(Err(ResumeError::Finished)) => Outcome::Finished,
        Ok(Err(ResumeError::Running)) => panic!("a suspended coroutine said it is running"),
        Err(payload) => match payload.downcast::<Boom>() {
            Ok(b) => Outcome::Panic(b.0),
            Err(other) => panic::resume_unwind(other),
        },
    }
}

// ---------------------------------------------------------------------------------------
// The model.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    NotStarted,
    /// Suspended inside `script[step]` (a `Yield`, or a `Nested` whose inner one yielded).
    Suspended(usize),
    Finished,
}

#[derive(Debug)]
struct Model {
    tag: u64,
    script: Vec<Step>,
    state: State,
    inner: Option<Box<Model>>,
}

impl Model {
    fn new(tag: u64, script: Vec<Step>) -> Model {
        Model {
            tag,
            script,
            state: State::NotStarted,
            inner: None,
        }
    }

    fn resume(&mut self, value: u64) -> Outcome {
        match self.state {
            State::Finished => Outcome::Finished,
            State::NotStarted => self.run_from(0, value),
            State::Suspended(step) => match self.script[step] {
                Step::Yield => self.run_from(step + 1, value),
                Step::Nested(_) => {
                    let inner = self.inner.as_mut().expect("suspended in a nested step");
                    match inner.resume(value) {
                        Outcome::Yield(v) => Outcome::Yield(v ^ PASSED_ON),
                        Outcome::Return(v) => {
                            self.inner = None;
                            self.run_from(step + 1, v)
                        }
                        Outcome::Panic(t) => {
                            self.inner = None;
                            self.state = State::Finished;
                            Outcome::Panic(t)
                        }
                        Outcome::Finished => unreachable!("the inner one is resumed until it ends"),
                    }
                }
                Step::Panic => unreachable!("nothing suspends at a panic"),
            },
        }
    }

    fn run_from(&mut self, mut step: usize, mut input: u64) -> Outcome {
        loop {
            let Some(s) = self.script.get(step).cloned() else {
                self.state = State::Finished;
                return Outcome::Return(returned(self.tag, input));
            };
            match s {
                Step::Yield => {
                    self.state = State::Suspended(step);
                    return Outcome::Yield(yielded(self.tag, step, input));
                }
                Step::Panic => {
                    self.state = State::Finished;
                    return Outcome::Panic(self.tag);
                }
                Step::Nested(sub) => {
                    let mut inner = Model::new(child_tag(self.tag, step), sub);
                    match inner.resume(input) {
                        Outcome::Yield(v) => {
                            self.inner = Some(Box::new(inner));
                            self.state = State::Suspended(step);
                            return Outcome::Yield(v ^ PASSED_ON);
                        }
                        Outcome::Return(v) => {
                            input = v;
                            step += 1;
                        }
                        Outcome::Panic(t) => {
                            self.state = State::Finished;
                            return Outcome::Panic(t);
                        }
                        Outcome::Finished => unreachable!("a new coroutine is not finished"),
                    }
                }
            }
        }
    }

    /// Tracked values alive on this coroutine's account.
    fn alive(&self) -> usize {
        match self.state {
            // The one captured by the closure.
            State::NotStarted => 1,
            // The captured one, one per frame of steps 0..=step, and the inner one's.
            State::Suspended(step) => 1 + (step + 1) + self.inner.as_ref().map_or(0, |i| i.alive()),
            State::Finished => 0,
        }
    }

    fn is_finished(&self) -> bool {
        self.state == State::Finished
    }
}

// ---------------------------------------------------------------------------------------
// The property.

/// The slot of the `pick % n`-th of the n occupied slots.
fn occupied(model: &[Option<Model>], pick: usize) -> Option<usize> {
    let slots: Vec<usize> = (0..model.len()).filter(|&i| model[i].is_some()).collect();
    (!slots.is_empty()).then(|| slots[pick % slots.len()])
}

fn check(ops: &[Op]) {
    silence_scripted_panics();
    LEDGER.with(|l| *l.borrow_mut() = Ledger::default());
    let mut real: Vec<Option<Co>> = (0..SLOTS).map(|_| None).collect();
    let mut model: Vec<Option<Model>> = (0..SLOTS).map(|_| None).collect();
    let mut ids = HashSet::new();
    let mut next_tag = 1u64;
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::Create {
                slot,
                script,
                preserve_fp_env,
                stack,
            } => {
                real[*slot] = None;
                model[*slot] = None;
                let tag = next_tag;
                next_tag += 1;
                let builder = Builder::new()
                    .preserve_fp_env(*preserve_fp_env)
                    .stack_size(stack_size_for(script, *stack));
                let co = spawn(tag, script.clone(), builder);
                assert!(
                    ids.insert(co.id()),
                    "op #{i}: id {} handed out twice",
                    co.id()
                );
                assert!(!co.started() && !co.is_finished());
                real[*slot] = Some(co);
                model[*slot] = Some(Model::new(tag, script.clone()));
            }
            Op::Resume { pick, value } => {
                if let Some(slot) = occupied(&model, *pick) {
                    let (co, m) = (real[slot].as_mut().unwrap(), model[slot].as_mut().unwrap());
                    let want = m.resume(*value);
                    let got = resume_real(co, *value);
                    assert_eq!(got, want, "op #{i} {op:?}: outcome");
                    assert_eq!(
                        co.is_finished(),
                        m.is_finished(),
                        "op #{i} {op:?}: is_finished"
                    );
                    assert!(co.started(), "op #{i}: resumed but not started");
                }
            }
            Op::Drop { pick } => {
                if let Some(slot) = occupied(&model, *pick) {
                    real[slot] = None;
                    model[slot] = None;
                }
            }
        }
        let want: usize = model.iter().flatten().map(Model::alive).sum();
        assert_eq!(alive(), want, "after op #{i} {op:?}: tracked values alive");
        LEDGER.with(|l| {
            let l = l.borrow();
            assert!(
                l.dropped_twice.is_empty(),
                "after op #{i}: dropped twice: {:?}",
                l.dropped_twice
            );
        });
    }
    drop(real);
    LEDGER.with(|l| {
        let l = l.borrow();
        assert!(l.alive.is_empty(), "never dropped: {:?}", l.alive);
        assert!(
            l.dropped_twice.is_empty(),
            "dropped twice: {:?}",
            l.dropped_twice
        );
    });
}

fn step() -> impl Strategy<Value = Step> {
    let leaf = prop_oneof![4 => Just(Step::Yield), 1 => Just(Step::Panic)];
    leaf.prop_recursive(2, 16, 4, |inner| {
        prop_oneof![
            4 => Just(Step::Yield),
            1 => Just(Step::Panic),
            2 => proptest::collection::vec(inner, 0..4).prop_map(Step::Nested),
        ]
    })
}

fn op() -> impl Strategy<Value = Op> {
    let slot = 0..SLOTS;
    prop_oneof![
        3 => (slot.clone(), proptest::collection::vec(step(), 0..6), any::<bool>(), 0..STACK_SIZES.len())
            .prop_map(|(slot, script, preserve_fp_env, stack)| Op::Create { slot, script, preserve_fp_env, stack }),
        6 => (slot.clone(), any::<u64>()).prop_map(|(pick, value)| Op::Resume { pick, value }),
        1 => slot.prop_map(|pick| Op::Drop { pick }),
    ]
}

/// Cases per property: the `PROPTEST_CASES` environment variable if set, else `default`.
fn config(default: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = default;
    }
    c
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn coroutines_behave_like_the_model(ops in proptest::collection::vec(op(), 1..64)) {
        check(&ops);
    }
}

// ---------------------------------------------------------------------------------------
// Fixed scripts: the model checked against hand-computed expectations, so that a model bug
// cannot hide a coroutine bug by agreeing with it.

#[test]
fn the_model_agrees_with_hand_computed_values() {
    let mut m = Model::new(
        7,
        vec![Step::Yield, Step::Nested(vec![Step::Yield]), Step::Yield],
    );
    assert_eq!(m.alive(), 1);
    assert_eq!(m.resume(10), Outcome::Yield(yielded(7, 0, 10)));
    assert_eq!(m.alive(), 2);
    let inner = child_tag(7, 1);
    assert_eq!(
        m.resume(11),
        Outcome::Yield(yielded(inner, 0, 11) ^ PASSED_ON)
    );
    // Captured, frames 0 and 1, and the inner one's captured value and frame 0.
    assert_eq!(m.alive(), 5);
    assert_eq!(
        m.resume(12),
        Outcome::Yield(yielded(7, 2, returned(inner, 12)))
    );
    assert_eq!(m.alive(), 4);
    assert_eq!(m.resume(13), Outcome::Return(returned(7, 13)));
    assert_eq!(m.alive(), 0);
    assert_eq!(m.resume(14), Outcome::Finished);
}

#[test]
fn a_dropped_coroutine_unwinds_its_suspended_inner_coroutine() {
    silence_scripted_panics();
    let ops = [
        Op::Create {
            slot: 0,
            script: vec![
                Step::Yield,
                Step::Nested(vec![
                    Step::Nested(vec![Step::Yield, Step::Yield]),
                    Step::Yield,
                ]),
                Step::Yield,
            ],
            preserve_fp_env: false,
            stack: 0,
        },
        Op::Resume { pick: 0, value: 1 },
        Op::Resume { pick: 0, value: 2 },
        Op::Resume { pick: 0, value: 3 },
        Op::Drop { pick: 0 },
    ];
    check(&ops);
}

#[test]
fn a_panic_in_a_nested_coroutine_reaches_the_top_and_finishes_both() {
    silence_scripted_panics();
    let ops = [
        Op::Create {
            slot: 3,
            script: vec![Step::Nested(vec![Step::Yield, Step::Panic]), Step::Yield],
            preserve_fp_env: true,
            stack: 1,
        },
        Op::Resume { pick: 0, value: 5 },
        Op::Resume { pick: 0, value: 6 },
        Op::Resume { pick: 0, value: 7 },
        Op::Drop { pick: 0 },
    ];
    check(&ops);
}

// ---------------------------------------------------------------------------------------
// The yield message must reach the resumer as a yield whatever `Y` and `R` are.

/// Resumes a coroutine that yields `y` once and returns `r`, checking both arrive as such.
/// A wrong variant is forgotten, not dropped: its bytes may not be a valid value.
fn yield_then_return<Y, R>(y: Y, r: R)
where
    Y: Clone + PartialEq + Debug + 'static,
    R: Clone + PartialEq + Debug + 'static,
{
    let (y2, r2) = (y.clone(), r.clone());
    let mut co: Coroutine<(), Y, R> = Coroutine::new(move |yielder, ()| {
        yielder.suspend(y2);
        r2
    })
    .unwrap();
    let first = co.resume(());
    let ok = matches!(&first, CoroutineResult::Yield(v) if *v == y);
    let is_return = matches!(first, CoroutineResult::Return(_));
    if !ok {
        std::mem::forget(first);
        std::mem::forget(co);
        panic!(
            "Coroutine<(), {}, {}>: the yield arrived as {}",
            std::any::type_name::<Y>(),
            std::any::type_name::<R>(),
            if is_return {
                "a Return"
            } else {
                "a different Yield"
            },
        );
    }
    assert!(!co.is_finished(), "a yielded coroutine is not finished");
    assert_eq!(co.resume(()), CoroutineResult::Return(r));
}

#[test]
fn yield_reaches_the_resumer_for_plain_types() {
    yield_then_return(7u64, 9u64);
    yield_then_return((), ());
    yield_then_return(4u32, 5u32);
}

/// Regression: `Yielder::suspend` once sent a `Suspend::<Y, ()>::Yield` that the resumer read
/// as a `Suspend<Y, R>`; when `R` changed the enum's layout (a niche, as in `Vec`, `String`,
/// `Box`), the yield was read as `Return(<garbage>)`.
#[test]
fn yield_reaches_the_resumer_whatever_the_return_type() {
    yield_then_return((), vec![1u8, 2, 3]);
    yield_then_return(1u8, String::from("r"));
    yield_then_return(2u32, Box::new(5u64));
    yield_then_return(false, Some(Box::new(5u64)));
    yield_then_return(3u64, vec![String::from("a")]);
    yield_then_return(String::from("y"), String::from("r"));
}
