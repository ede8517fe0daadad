//! `scheduler::dump()` (issue 12 item 2): the entry of a tasklet in every state (running,
//! runnable, never started, paused, blocked sending, blocked receiving with and without a
//! timeout, sleeping, waiting in run()), names, stack size and use, the Display lines, dead
//! tasklets left out, and a thread without a scheduler.

mod common;

use std::time::Duration;

use microthread::channel::Channel;
use microthread::scheduler::dump::{DumpState, TaskletDump};
use microthread::scheduler::{self, spawn, TaskletBuilder};
use microthread::Tasklet;

use common::on_thread;

fn entry(t: &Tasklet) -> TaskletDump {
    scheduler::dump()
        .get(t.id())
        .cloned()
        .unwrap_or_else(|| panic!("tasklet {} missing from the dump", t.id()))
}

#[test]
fn every_state_is_reported() {
    on_thread(|| {
        let (ch, other, timed) = (
            Channel::<u8>::new(),
            Channel::<u8>::new(),
            Channel::<u8>::new(),
        );
        let (tx, orx, trx) = (ch.clone(), other.clone(), timed.clone());
        let blocked_sender = spawn(move || tx.send(2).unwrap()).unwrap();
        let blocked_receiver = spawn(move || orx.receive().unwrap()).unwrap();
        let timed_receiver =
            spawn(move || trx.receive_timeout(Duration::from_secs(600)).unwrap_err()).unwrap();
        let sleeper = spawn(|| scheduler::sleep(Duration::from_secs(600))).unwrap();
        let pauser = spawn(|| scheduler::schedule_remove().unwrap()).unwrap();
        let yielder = spawn(|| scheduler::schedule().unwrap()).unwrap();
        let fresh = Tasklet::new(|| ()).unwrap();
        let queued = spawn(|| ()).unwrap();
        // Each runs once: they block, sleep, pause, yield (behind main) or end.
        scheduler::schedule().unwrap();

        let d = scheduler::dump();
        assert_eq!(entry(&scheduler::main()).state, DumpState::Running);
        assert_eq!(
            entry(&blocked_sender).state,
            DumpState::Sending { channel: ch.id() }
        );
        assert_eq!(
            entry(&blocked_receiver).state,
            DumpState::Receiving {
                channel: other.id(),
                deadline: None
            }
        );
        assert!(
            matches!(
                entry(&timed_receiver).state,
                DumpState::Receiving { channel, deadline: Some(_) } if channel == timed.id()
            ),
            "{d}"
        );
        assert!(
            matches!(
                entry(&sleeper).state,
                DumpState::Sleeping { until: Some(_) }
            ),
            "{d}"
        );
        assert_eq!(entry(&pauser).state, DumpState::Paused { started: true });
        assert_eq!(entry(&yielder).state, DumpState::Runnable { started: true });
        assert_eq!(entry(&fresh).state, DumpState::Paused { started: false });
        assert!(!queued.alive(), "it ran to its end");
        assert!(d.get(queued.id()).is_none(), "a dead tasklet is not listed");

        let not_started = spawn(|| ()).unwrap();
        assert_eq!(
            entry(&not_started).state,
            DumpState::Runnable { started: false }
        );

        // Oldest first, main first.
        let ids: Vec<u64> = scheduler::dump().tasklets.iter().map(|t| t.id).collect();
        assert_eq!(ids[0], scheduler::main().id());
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(
            ids, sorted,
            "ids are handed out in creation order on one thread"
        );

        // Clean up: wake or kill everyone.
        ch.receive().unwrap();
        other.send(3).unwrap();
        for t in [&timed_receiver, &sleeper, &pauser, &fresh] {
            t.kill().unwrap();
        }
        scheduler::run().unwrap();
        assert_eq!(scheduler::dump().tasklets.len(), 1, "main alone again");
    });
}

#[test]
fn main_waiting_in_run_and_a_running_tasklet() {
    on_thread(|| {
        let t = spawn(scheduler::dump).unwrap();
        scheduler::run().unwrap();
        let d = t.result::<microthread::scheduler::dump::Dump>().unwrap();
        let me = d.get(t.id()).unwrap();
        assert_eq!(me.state, DumpState::Running);
        let main = d.get(scheduler::main().id()).unwrap();
        assert_eq!(main.state, DumpState::InRun);
        assert!(main.is_main && main.stack_size.is_none() && main.stack_used.is_none());
    });
}

#[test]
fn stack_size_and_use() {
    on_thread(|| {
        let size = 256 * 1024;
        let deep = TaskletBuilder::new()
            .stack_size(size)
            .spawn(|| {
                // About 32 KiB of frame in use while it is paused.
                let buffer = std::hint::black_box([7u8; 32 * 1024]);
                scheduler::schedule_remove().unwrap();
                buffer[100]
            })
            .unwrap();
        let shallow = TaskletBuilder::new()
            .stack_size(size)
            .spawn(|| scheduler::schedule_remove().unwrap())
            .unwrap();
        scheduler::run().unwrap();
        let (d, s) = (entry(&deep), entry(&shallow));
        assert!(d.stack_size.unwrap() >= size, "{d:?}");
        let (used_deep, used_shallow) = (d.stack_used.unwrap(), s.stack_used.unwrap());
        assert!(used_deep >= 32 * 1024 && used_deep < size, "{d:?}");
        assert!(used_shallow < 32 * 1024, "{s:?}");
        deep.insert().unwrap();
        shallow.insert().unwrap();
        scheduler::run().unwrap();
        assert_eq!(deep.result::<u8>(), Some(7));
    });
}

#[test]
fn display_names_each_tasklet() {
    on_thread(|| {
        let ch = Channel::<u8>::new();
        let rx = ch.clone();
        let t = spawn(move || rx.receive().unwrap()).unwrap();
        t.set_name(Some("worker-3"));
        let p = Tasklet::new(|| ()).unwrap();
        scheduler::run().unwrap();
        let text = scheduler::dump().to_string();
        let main = scheduler::main().id();
        let mut lines = text.lines();
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with("3 tasklets on thread ThreadId("),
            "{text}"
        );
        assert_eq!(
            lines.next().unwrap(),
            format!("  tasklet {main} (main): running")
        );
        let line = lines.next().unwrap();
        let want = format!(
            "  tasklet {} \"worker-3\": blocked receiving on channel {}; stack ",
            t.id(),
            ch.id()
        );
        assert!(
            line.starts_with(&want) && line.ends_with(" bytes used"),
            "{line:?}"
        );
        let line = lines.next().unwrap();
        assert!(line.starts_with(&format!(
            "  tasklet {}: paused, not started; stack ",
            p.id()
        )));
        assert!(lines.next().is_none());
        ch.send(1).unwrap();
        p.kill().unwrap();
    });
}

#[test]
fn a_thread_without_a_scheduler_shows_its_main_tasklet() {
    let text = std::thread::Builder::new()
        .name("plain".into())
        .spawn(|| scheduler::dump().to_string())
        .unwrap()
        .join()
        .unwrap();
    assert!(text.starts_with("1 tasklet on thread ThreadId("), "{text}");
    assert!(text.contains(" \"plain\":\n  tasklet "), "{text}");
    assert!(text.ends_with(" (main): running\n"), "{text}");
}
