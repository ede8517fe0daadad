//! Generation: the strategies of steps and programs, and the proptest configuration.

use proptest::prelude::*;

use super::steps::{Op, Program, MAX_TASKLETS};

fn tasklet() -> impl Strategy<Value = usize> {
    0..MAX_TASKLETS
}

fn kill() -> impl Strategy<Value = Op> {
    (tasklet(), any::<bool>()).prop_map(|(target, pending)| Op::Kill { target, pending })
}

fn throw() -> impl Strategy<Value = Op> {
    (tasklet(), any::<bool>(), any::<bool>()).prop_map(|(target, fatal, pending)| Op::Throw {
        target,
        fatal,
        pending,
    })
}

/// `common`, and for a tasklet other than main also its ends, `Return` and `Panic` (main's
/// would only be skipped), weighted `common_w : return_w : panic_w`.
fn with_endings(
    common: impl Strategy<Value = Op> + 'static,
    main: bool,
    common_w: u32,
    return_w: u32,
    panic_w: u32,
) -> BoxedStrategy<Op> {
    if main {
        common.boxed()
    } else {
        prop_oneof![
            common_w => common,
            return_w => Just(Op::Return),
            panic_w => Just(Op::Panic),
        ]
        .boxed()
    }
}

/// Steps on a tasklet's life: bound tasklets, `setup`, `unbind`, `bind`, and the error
/// handler.
pub fn lifecycle_op() -> BoxedStrategy<Op> {
    prop_oneof![
        2 => any::<usize>().prop_map(Op::Bound),
        3 => tasklet().prop_map(Op::Setup),
        2 => tasklet().prop_map(Op::Unbind),
        1 => (tasklet(), any::<usize>()).prop_map(|(t, s)| Op::Bind(t, s)),
        2 => (0..3u8).prop_map(Op::ErrorHandler),
    ]
    .boxed()
}

/// Scheduler steps; main's exclude return and panic (which it would only skip).
pub fn scheduler_op(main: bool) -> BoxedStrategy<Op> {
    let common = prop_oneof![
        4 => lifecycle_op(),
        2 => Just(Op::Log),
        2 => Just(Op::Query),
        6 => Just(Op::Schedule),
        2 => Just(Op::ScheduleRemove),
        2 => any::<usize>().prop_map(Op::Spawn),
        1 => any::<usize>().prop_map(Op::New),
        2 => tasklet().prop_map(Op::Insert),
        1 => tasklet().prop_map(Op::Remove),
        2 => tasklet().prop_map(Op::Run),
        2 => tasklet().prop_map(Op::Switch),
        2 => kill(),
        2 => throw(),
        1 => Just(Op::RunScheduler),
    ];
    with_endings(common, main, 12, 1, 1)
}

/// Steps weighted towards nested `run()` calls and what ends or wakes them: panics and
/// fatal throws (routed to the innermost `run()` caller), kills of tasklets inside `run()`,
/// `run`/`switch`/`insert` of other tasklets (main included) and `schedule_remove`.
pub fn watchdog_op(main: bool) -> BoxedStrategy<Op> {
    let common = prop_oneof![
        3 => Just(Op::Schedule),
        2 => Just(Op::ScheduleRemove),
        1 => Just(Op::Query),
        1 => any::<usize>().prop_map(Op::Spawn),
        2 => tasklet().prop_map(Op::Insert),
        2 => tasklet().prop_map(Op::Run),
        2 => tasklet().prop_map(Op::Switch),
        2 => kill(),
        2 => throw(),
        4 => Just(Op::RunScheduler),
    ];
    with_endings(common, main, 10, 1, 2)
}

/// Steps weighted towards a tasklet's life: bound tasklets set up, unbound and bound again,
/// error handlers of every kind seeing panics and fatal throws (also into tasklets that never
/// ran), mixed with the steps that run, pause and end tasklets.
pub fn lifecycle_heavy_op(main: bool) -> BoxedStrategy<Op> {
    let common = prop_oneof![
        6 => lifecycle_op(),
        3 => Just(Op::Schedule),
        1 => Just(Op::ScheduleRemove),
        1 => Just(Op::Query),
        1 => any::<usize>().prop_map(Op::New),
        1 => tasklet().prop_map(Op::Insert),
        1 => tasklet().prop_map(Op::Run),
        1 => kill(),
        2 => throw(),
        1 => Just(Op::RunScheduler),
    ];
    with_endings(common, main, 8, 1, 2)
}

/// A program: main's script (a few creations, `body` steps, one or two `run()`s and a query)
/// and `others` scripts of up to `len` steps each.
pub fn program(
    op: impl Fn(bool) -> BoxedStrategy<Op>,
    others: std::ops::RangeInclusive<usize>,
    len: usize,
    channels: std::ops::RangeInclusive<usize>,
) -> impl Strategy<Value = Program> {
    let creation = prop_oneof![
        3 => any::<usize>().prop_map(Op::Spawn),
        1 => any::<usize>().prop_map(Op::New),
        1 => any::<usize>().prop_map(Op::Bound),
    ];
    (
        proptest::collection::vec(creation, 1..=3),
        proptest::collection::vec(op(true), 0..=len + 2),
        1..=2usize,
        proptest::collection::vec(proptest::collection::vec(op(false), 0..=len), others),
        channels,
    )
        .prop_map(|(mut main, body, runs, others, channels)| {
            main.extend(body);
            main.extend(std::iter::repeat(Op::RunScheduler).take(runs));
            main.push(Op::Query);
            let mut scripts = vec![main];
            scripts.extend(others);
            Program { scripts, channels }
        })
}

/// Cases per property: the `PROPTEST_CASES` environment variable if set, else `default`.
pub fn config(default: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = default;
    }
    c
}
