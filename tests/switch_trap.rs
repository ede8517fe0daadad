//! Under `switch_trap`, every operation that would switch fails with `Error::SwitchTrap`
//! before it changes anything, and the operations that do not switch still work (reference
//! §1.1 `switch_trap`, issue 8 "behaviour that differs"). Complements
//! `operations_refused_by_a_switch_trap_leave_no_trace` in tests/soundness.rs (run, a blocking
//! send, switch/run/throw/kill of a paused tasklet) and the rendezvous test there.

use std::cell::Cell;
use std::rc::Rc;

use microthread::channel::Channel;
use microthread::scheduler::{
    self, current, runcount, schedule, schedule_remove, spawn, switch_trap,
};
use microthread::{Error, Tasklet};

mod common;
use common::{log, on_thread, push, taken};

fn trapped<T: std::fmt::Debug>(r: Result<T, Error>) {
    match r {
        Err(Error::SwitchTrap) => {}
        other => panic!("expected Err(SwitchTrap), got {other:?}"),
    }
}

#[test]
fn schedule_and_schedule_remove_are_refused_and_the_caller_stays_in_the_ring() {
    on_thread(|| {
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let other = spawn(move || r.set(true)).unwrap();
        switch_trap(1);
        trapped(schedule());
        trapped(schedule_remove());
        assert!(scheduler::main().scheduled() && current().is_main());
        assert_eq!(runcount(), 2);
        // Alone: schedule() would not switch and works; schedule_remove() may sleep and is
        // refused all the same (Stackless re-inserts the caller and raises).
        other.remove().unwrap();
        schedule().unwrap();
        trapped(schedule_remove());
        assert_eq!(runcount(), 1);
        switch_trap(-1);
        assert!(!ran.get());
        other.insert().unwrap();
        scheduler::run().unwrap();
        assert!(ran.get());
    });
}

#[test]
fn kill_and_throw_of_a_blocked_tasklet_are_refused_and_it_stays_in_its_channel() {
    on_thread(|| {
        let ch: Channel<u32> = Channel::new();
        let rx = ch.clone();
        let blocked = spawn(move || rx.receive()).unwrap();
        scheduler::run().unwrap();
        assert!(blocked.blocked());
        switch_trap(1);
        trapped(blocked.kill());
        trapped(blocked.throw(Error::Thrown(Box::new("no"))));
        // (Refused for what it is first: a blocked tasklet cannot be run.)
        assert!(matches!(blocked.run(), Err(Error::RunBlocked)));
        assert!(blocked.blocked() && blocked.alive());
        assert_eq!((ch.balance(), ch.queue()), (-1, vec![blocked.id()]));
        // A receive that would block (the queue has a receiver, not a sender) is refused too.
        trapped(ch.receive());
        assert_eq!((ch.balance(), ch.queue()), (-1, vec![blocked.id()]));
        switch_trap(-1);
        ch.send(4).unwrap();
        assert_eq!(
            blocked
                .result::<microthread::Result<u32>>()
                .unwrap()
                .unwrap(),
            4
        );
    });
}

#[test]
fn run_and_switch_of_a_scheduled_tasklet_and_a_schedule_all_rendezvous_are_refused() {
    on_thread(|| {
        let l = log();
        let l2 = l.clone();
        let t = spawn(move || push(&l2, "t")).unwrap();
        switch_trap(1);
        trapped(t.run());
        trapped(t.switch());
        assert!(t.scheduled() && scheduler::main().scheduled());
        assert_eq!(runcount(), 2);
        switch_trap(-1);
        scheduler::run().unwrap();
        assert_eq!(taken(&l), ["t"]);

        // schedule_all: a rendezvous that would switch to the next runnable tasklet.
        let ch: Channel<u32> = Channel::new();
        ch.set_schedule_all(true);
        let rx = ch.clone();
        let receiver = spawn(move || rx.receive().unwrap()).unwrap();
        scheduler::run().unwrap();
        switch_trap(1);
        let e = ch.send(8).unwrap_err();
        assert!(matches!(e.error, Error::SwitchTrap));
        assert_eq!(e.value, Some(8));
        assert_eq!((ch.balance(), ch.queue()), (-1, vec![receiver.id()]));
        switch_trap(-1);
        ch.send(9).unwrap();
        assert_eq!(receiver.result::<u32>(), Some(9));
    });
}

#[test]
fn operations_that_do_not_switch_still_work_under_a_switch_trap() {
    on_thread(|| {
        let l = log();
        switch_trap(1);
        // insert, remove, setup, unbind, bind, switch to oneself, run() with nothing to run.
        let (l1, l2) = (l.clone(), l.clone());
        let paused = Tasklet::new(move || push(&l1, "paused")).unwrap();
        paused.insert().unwrap();
        paused.remove().unwrap();
        let bound = Tasklet::bound(move || push(&l2, "bound")).unwrap();
        bound.setup().unwrap();
        bound.remove().unwrap();
        let spare = Tasklet::bound(|| ()).unwrap();
        spare.unbind().unwrap();
        spare.bind(|| ()).unwrap();
        current().switch().unwrap();
        scheduler::run().unwrap();
        // kill_pending and throw_pending: the targets become runnable, the caller goes on.
        let victim = spawn(|| ()).unwrap();
        victim.kill_pending().unwrap();
        let target = Tasklet::new(|| ()).unwrap();
        target
            .throw_pending(Error::Thrown(Box::new("later")))
            .unwrap();
        assert!(victim.scheduled() && target.scheduled());
        // Kill of a dead tasklet, throw to a dead one: nothing would switch.
        spare.kill().unwrap();
        spare.unbind().unwrap();
        assert!(matches!(
            spare.throw(Error::Deadlock),
            Err(Error::ThrowDead)
        ));
        // A rendezvous where the sender continues (no preference) completes.
        let ch: Channel<u32> = Channel::new();
        ch.set_preference(0);
        switch_trap(-1);
        let rx = ch.clone();
        let receiver = spawn(move || rx.receive().unwrap()).unwrap();
        receiver.run().unwrap();
        switch_trap(1);
        ch.send(3).unwrap();
        assert!(receiver.scheduled() && !receiver.blocked());
        switch_trap(-1);
        paused.insert().unwrap();
        bound.insert().unwrap();
        let e = scheduler::run().unwrap_err();
        // The pending throw ended `target`, which never ran: its uncaught error.
        assert!(matches!(e, Error::Panicked { tasklet, .. } if tasklet == target.id()));
        scheduler::run().unwrap();
        assert_eq!(receiver.result::<u32>(), Some(3));
        assert!(!victim.alive() && !target.alive());
        assert_eq!(taken(&l), ["paused", "bound"]);
    });
}

#[test]
fn killing_the_current_tasklet_under_a_switch_trap_unwinds_it_and_it_ends() {
    on_thread(|| {
        let l = log();
        let l2 = l.clone();
        let t = spawn(move || {
            struct Fin(common::Log);
            impl Drop for Fin {
                fn drop(&mut self) {
                    push(&self.0, "unwound");
                }
            }
            let _f = Fin(l2);
            switch_trap(1);
            // No switch: the caller itself unwinds, and its end leaves to main as usual.
            let _ = current().kill();
            unreachable!("the kill unwinds the caller");
        })
        .unwrap();
        scheduler::run().unwrap();
        assert_eq!(switch_trap(-1), 1);
        assert!(!t.alive());
        assert_eq!(taken(&l), ["unwound"]);
    });
}
