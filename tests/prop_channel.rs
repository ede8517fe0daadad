//! Model-based property test of channels: the programs of `tests/prop_scheduler.rs` (whose
//! model and harness this file includes) with channel steps over one to three channels:
//! `send` of a unique value, `receive`, `send_sequence` of one to three unique values,
//! `send_throw` (a fatal payload makes the receiver panic), `close`/`open`, preference
//! -1/0/+1 and `schedule_all`, mixed with the scheduler steps (so blocked tasklets are killed,
//! thrown into, run, inserted and removed).
//!
//! The model follows reference §3.1 (the decision table: who runs after a rendezvous), the
//! "block" branch of `channel_action` (closing → error; otherwise queue, FIFO, and switch to
//! the next runnable tasklet or apply the deadlock rules of §2.4) and §3.3 (close wakes
//! nobody, operations that find a partner still succeed). Every event carries each channel's
//! balance and queue, so `balance()` and the FIFO order are checked after every step; values
//! are checked to arrive at the receiver the model says, at most once. The deadlock error and
//! "the main tasklet is receiving/sending without a ... available" appear where the model
//! predicts them (main blocking with nothing runnable; the last tasklet ending or blocking
//! while main is blocked).
//!
//! Each property runs three times: with `Channel`s, with `LocalChannel`s and with
//! `BufferedChannel`s of capacity 0 (the same model: a `LocalChannel` behaves as a `Channel`
//! for the tasklets of its thread, and a `BufferedChannel` without a buffer is a rendezvous
//! channel). `tests/prop_buffered.rs` checks buffered channels against a model of their own.
//!
//! Cases run one at a time, each on a fresh thread (see `on_thread` in the included file): a
//! deadlocking case must see no other thread with a scheduler, or it would sleep until that
//! thread ends instead of failing at once.

#[path = "prop_scheduler.rs"]
mod model;

use model::{check_on, config, program, scheduler_op, ChannelKind, Op};
use proptest::prelude::*;

fn channel() -> impl Strategy<Value = usize> {
    0..3usize
}

/// Channel steps, mixed with scheduler steps.
fn channel_op(main: bool) -> BoxedStrategy<Op> {
    let channel_step = prop_oneof![
        5 => channel().prop_map(Op::Send),
        5 => channel().prop_map(Op::Receive),
        1 => (channel(), any::<bool>()).prop_map(|(ch, fatal)| Op::SendThrow { ch, fatal }),
        1 => (channel(), 1..=3usize).prop_map(|(ch, n)| Op::SendSeq(ch, n)),
        1 => channel().prop_map(Op::Close),
        1 => channel().prop_map(Op::Open),
        2 => (channel(), -1i8..=1).prop_map(|(ch, p)| Op::Preference(ch, p)),
        1 => (channel(), any::<bool>()).prop_map(|(ch, on)| Op::ScheduleAll(ch, on)),
    ];
    prop_oneof![
        3 => channel_step,
        2 => scheduler_op(main),
    ]
    .boxed()
}

/// Mostly rendezvous: sends, receives and settings on one channel, plus schedule, throw and
/// kill.
fn rendezvous_op(_main: bool) -> BoxedStrategy<Op> {
    prop_oneof![
        4 => Just(Op::Send(0)),
        4 => Just(Op::Receive(0)),
        1 => (1..=3usize).prop_map(|n| Op::SendSeq(0, n)),
        1 => any::<bool>().prop_map(|fatal| Op::SendThrow { ch: 0, fatal }),
        2 => (-1i8..=1).prop_map(|p| Op::Preference(0, p)),
        1 => any::<bool>().prop_map(|on| Op::ScheduleAll(0, on)),
        1 => Just(Op::Close(0)),
        1 => Just(Op::Open(0)),
        2 => Just(Op::Schedule),
        1 => Just(Op::Query),
        // Errors reaching blocked and just-woken partners (non-fatal: the target goes on).
        2 => (0..5usize, any::<bool>())
            .prop_map(|(target, pending)| Op::Throw { target, fatal: false, pending }),
        1 => (0..5usize, any::<bool>()).prop_map(|(target, pending)| Op::Kill { target, pending }),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn channel_programs_follow_the_model(prog in program(channel_op, 1..=5, 8, 1..=3)) {
        check_on(&prog, ChannelKind::Shared)?;
    }

    #[test]
    fn local_channel_programs_follow_the_model(prog in program(channel_op, 1..=5, 8, 1..=3)) {
        check_on(&prog, ChannelKind::Local)?;
    }

    #[test]
    fn unbuffered_buffered_channel_programs_follow_the_model(
        prog in program(channel_op, 1..=5, 8, 1..=3)
    ) {
        check_on(&prog, ChannelKind::Buffered0)?;
    }

    #[test]
    fn rendezvous_on_one_channel_follows_the_decision_table(
        prog in program(rendezvous_op, 1..=4, 6, 1..=1)
    ) {
        check_on(&prog, ChannelKind::Shared)?;
    }

    #[test]
    fn rendezvous_on_one_local_channel_follows_the_decision_table(
        prog in program(rendezvous_op, 1..=4, 6, 1..=1)
    ) {
        check_on(&prog, ChannelKind::Local)?;
    }

    #[test]
    fn rendezvous_on_one_unbuffered_buffered_channel_follows_the_decision_table(
        prog in program(rendezvous_op, 1..=4, 6, 1..=1)
    ) {
        check_on(&prog, ChannelKind::Buffered0)?;
    }
}
