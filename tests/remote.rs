//! `RemoteTasklet`: another thread's view of a tasklet (its state, as a snapshot, and its
//! thread id) and the operations Stackless allows on another thread's tasklet: `insert`,
//! `remove`, `run` (in order: Stackless's TH11), `kill`, `throw`, and `switch` refused; and
//! how they fail on tasklets of a thread that has ended (reference §4).

mod common;

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::mpsc;

use common::on_thread;
use microthread::scheduler::{self, current, main, runcount, spawn};
use microthread::{spawn_thread, Channel, Error, RemoteTasklet, Tasklet};

/// Runs `f` on another thread (one that never uses a scheduler) and gives its result.
fn elsewhere<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f).join().unwrap()
}

/// (alive, scheduled, blocked, paused) as another thread sees them.
fn seen(r: &RemoteTasklet) -> (bool, bool, bool, bool) {
    let r = r.clone();
    elsewhere(move || (r.alive(), r.scheduled(), r.blocked(), r.paused()))
}

fn local(t: &Tasklet) -> (bool, bool, bool, bool) {
    (t.alive(), t.scheduled(), t.blocked(), t.paused())
}

#[test]
fn another_thread_sees_each_state_the_tasklet_is_in() {
    on_thread(|| {
        let ch = Channel::<u8>::new();
        let rx = ch.clone();
        let blocked = spawn(move || rx.receive().unwrap()).unwrap();
        let dead = spawn(|| ()).unwrap();
        scheduler::run().unwrap();
        let paused = Tasklet::new(|| ()).unwrap();
        let scheduled = spawn(|| ()).unwrap();
        let cases = [
            (&paused, (true, false, false, true)),
            (&scheduled, (true, true, false, false)),
            (&blocked, (true, true, true, false)),
            (&dead, (false, false, false, false)),
            (&main(), (true, true, false, false)),
        ];
        for (t, want) in cases {
            assert_eq!(local(t), want);
            assert_eq!(seen(&t.remote()), want, "tasklet {}", t.id());
        }
        // Each transition is published: remove, insert, unblock, end.
        scheduled.remove().unwrap();
        assert_eq!(seen(&scheduled.remote()), (true, false, false, true));
        scheduled.insert().unwrap();
        assert_eq!(seen(&scheduled.remote()), (true, true, false, false));
        ch.send(1).unwrap(); // the receiver runs at once and ends
        assert_eq!(seen(&blocked.remote()), (false, false, false, false));
        scheduler::run().unwrap();
        assert_eq!(seen(&scheduled.remote()), (false, false, false, false));
        // Blocking again, after running: blocked, then runnable.
        let rx = ch.clone();
        let again = spawn(move || {
            scheduler::schedule().unwrap();
            rx.receive().unwrap()
        })
        .unwrap();
        scheduler::run().unwrap();
        assert_eq!(seen(&again.remote()), (true, true, true, false));
        ch.send(2).unwrap();
        assert_eq!(again.result::<u8>(), Some(2));
        drop(paused);
    });
}

#[test]
fn another_thread_sees_bound_unbound_and_rebound_tasklets_as_the_owner_does() {
    on_thread(|| {
        let bound = Tasklet::bound(|| ()).unwrap();
        let not_alive = (false, false, false, false);
        assert_eq!(local(&bound), not_alive);
        assert_eq!(seen(&bound.remote()), not_alive, "bound, not set up");
        bound.setup().unwrap();
        assert_eq!(seen(&bound.remote()), (true, true, false, false), "set up");
        bound.remove().unwrap();
        bound.unbind().unwrap();
        assert_eq!(local(&bound), not_alive);
        assert_eq!(seen(&bound.remote()), not_alive, "unbound");
        // Re-bound after its end, and after it was alive and paused without running.
        let paused = Tasklet::new(|| ()).unwrap();
        assert_eq!(seen(&paused.remote()), (true, false, false, true));
        for t in [&bound, &paused] {
            t.bind(|| ()).unwrap();
            assert_eq!(local(t), not_alive);
            assert_eq!(seen(&t.remote()), not_alive, "re-bound tasklet {}", t.id());
        }
    });
}

#[test]
fn every_tasklet_of_a_thread_has_that_threads_id_and_none_once_it_ended() {
    let (tx, rx) = mpsc::channel();
    let worker = spawn_thread(move || {
        let here = std::thread::current().id();
        let a = spawn(|| ()).unwrap();
        let b = Tasklet::new(|| ()).unwrap();
        for t in [&a, &b, &main(), &current()] {
            assert_eq!(t.thread_id(), Some(here));
        }
        tx.send((here, a.remote(), b.remote(), main().remote()))
            .unwrap();
        scheduler::run().unwrap();
    });
    let (id, a, b, m) = rx.recv().unwrap();
    assert_ne!(id, std::thread::current().id());
    worker.join().unwrap();
    for r in [&a, &b, &m] {
        assert_eq!(r.thread_id(), None, "the thread has ended (Stackless: -1)");
        assert!(!r.alive() && !r.scheduled() && !r.paused() && !r.blocked());
    }
    // A live thread's id as seen from elsewhere.
    let t = Tasklet::new(|| ()).unwrap();
    let r = t.remote();
    let here = std::thread::current().id();
    assert_eq!(elsewhere(move || r.thread_id()), Some(here));
    assert_eq!(t.thread_id(), main().thread_id());
}

#[test]
fn a_remote_remove_takes_a_scheduled_tasklet_out_at_the_next_switch() {
    on_thread(|| {
        let ran = Rc::new(RefCell::new(false));
        let r = ran.clone();
        let t = spawn(move || *r.borrow_mut() = true).unwrap();
        let remote = t.remote();
        elsewhere(move || remote.remove()).unwrap();
        assert!(t.scheduled(), "applied at the next switch, not before");
        scheduler::schedule().unwrap();
        assert!(t.paused() && !*ran.borrow());
        assert_eq!(runcount(), 1);
        // Not scheduled: nothing to do.
        let remote = t.remote();
        elsewhere(move || remote.remove()).unwrap();
        scheduler::schedule().unwrap();
        assert!(t.paused());
        t.insert().unwrap();
        scheduler::run().unwrap();
        assert!(*ran.borrow());
    });
}

#[test]
fn a_remote_remove_of_the_running_tasklet_does_nothing() {
    on_thread(|| {
        let t = spawn(move || {
            let remote = current().remote();
            elsewhere(move || remote.remove()).unwrap();
            // The mail is read at this switch, while we are the running tasklet: refused, as
            // Stackless refuses to remove the current tasklet.
            scheduler::schedule().unwrap();
            current().scheduled()
        })
        .unwrap();
        scheduler::run().unwrap();
        assert_eq!(t.result::<bool>(), Some(true));
    });
}

#[test]
fn remote_operations_refused_by_the_snapshot_return_stackless_errors() {
    on_thread(|| {
        let ch = Channel::<u8>::new();
        let rx = ch.clone();
        let blocked = spawn(move || rx.receive().unwrap()).unwrap();
        let dead = spawn(|| ()).unwrap();
        scheduler::run().unwrap();
        let (b, d) = (blocked.remote(), dead.remote());
        let errors = elsewhere(move || {
            [
                b.insert(),
                b.run(),
                b.remove(),
                b.switch(),
                d.insert(),
                d.run(),
                d.throw(Error::Thrown(Box::new("late"))),
                d.kill(),
                d.remove(),
            ]
            .map(|r| r.err().map(|e| e.to_string()))
        });
        assert_eq!(
            errors,
            [
                Some("You cannot run a blocked tasklet".into()),
                Some("You cannot run a blocked tasklet".into()),
                Some("You cannot remove a blocked tasklet.".into()),
                Some("can't switch to a different thread.".into()),
                Some("You cannot run an unbound(dead) tasklet".into()),
                Some("You cannot run an unbound(dead) tasklet".into()),
                Some("You cannot throw to a dead tasklet".into()),
                None, // killing a dead tasklet: no-op
                None, // removing one: no-op
            ]
        );
        // Nothing changed.
        assert!(blocked.blocked());
        ch.send(1).unwrap();
        assert_eq!(blocked.result::<u8>(), Some(1));
    });
}

#[test]
fn a_remote_switch_is_refused_and_changes_nothing() {
    on_thread(|| {
        let t = spawn(|| ()).unwrap();
        let r = t.remote();
        let e = elsewhere(move || r.switch());
        assert!(matches!(e, Err(Error::SwitchOtherThread)));
        assert_eq!(
            e.unwrap_err().to_string(),
            "can't switch to a different thread."
        );
        assert!(t.scheduled());
        scheduler::run().unwrap();
        assert!(!t.alive());
    });
}

/// Stackless TH11: three remote `run()`s of t1, t2, t3, in that order, run them in that order
/// on their thread, here while that thread sleeps (nothing runnable) when they arrive.
#[test]
fn three_remote_runs_run_in_order_on_a_sleeping_thread() {
    for _ in 0..20 {
        on_thread(|| {
            scheduler::init_thread();
            let (tx, rx) = mpsc::channel();
            let worker = spawn_thread(move || {
                let log = Rc::new(RefCell::new(Vec::new()));
                let done = Channel::<()>::new();
                let remotes: Vec<RemoteTasklet> = ["t1", "t2", "t3"]
                    .into_iter()
                    .map(|name| {
                        let (log, done) = (log.clone(), done.clone());
                        let t = Tasklet::new(move || {
                            log.borrow_mut().push(name);
                            done.send(()).unwrap();
                        })
                        .unwrap();
                        t.remote()
                    })
                    .collect();
                tx.send(remotes).unwrap();
                for _ in 0..3 {
                    done.receive().unwrap(); // asleep until the runs arrive
                }
                let log = log.borrow().clone();
                log
            });
            let remotes = rx.recv().unwrap();
            for r in &remotes {
                r.run().unwrap();
            }
            assert_eq!(worker.join().unwrap(), ["t1", "t2", "t3"]);
        });
    }
}

/// TH11 while the target thread is busy: the runs arrive while another tasklet yields there;
/// each goes right after the running tasklet, behind the earlier ones, and runs before the
/// rest of the run queue.
#[test]
fn three_remote_runs_run_in_order_on_a_busy_thread_and_before_the_queue() {
    for _ in 0..20 {
        let (tx, rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let worker = spawn_thread(move || {
            let log = Rc::new(RefCell::new(Vec::new()));
            let remotes: Vec<RemoteTasklet> = ["t1", "t2", "t3"]
                .into_iter()
                .map(|name| {
                    let log = log.clone();
                    Tasklet::new(move || log.borrow_mut().push(name))
                        .unwrap()
                        .remote()
                })
                .collect();
            let l = log.clone();
            spawn(move || {
                // Posted before our next switch: all three are read at once.
                go_rx.recv().unwrap();
                scheduler::schedule().unwrap();
                l.borrow_mut().push("spinner");
            })
            .unwrap();
            let l = log.clone();
            spawn(move || l.borrow_mut().push("queued")).unwrap();
            tx.send(remotes).unwrap();
            scheduler::run().unwrap();
            let log = log.borrow().clone();
            log
        });
        let remotes = rx.recv().unwrap();
        for r in &remotes {
            r.run().unwrap();
        }
        go_tx.send(()).unwrap();
        // The spinner yields: the three run next, then the queue (queued, spinner again).
        assert_eq!(
            worker.join().unwrap(),
            ["t1", "t2", "t3", "queued", "spinner"]
        );
    }
}

/// A remote run read just before a channel's preferred partner goes in after the running
/// tasklet runs after that partner, as in Stackless (where it would have gone after the running
/// tasklet, and the partner in front of it).
#[test]
fn a_remote_run_arriving_before_a_rendezvous_runs_after_the_preferred_partner() {
    on_thread(|| {
        let log = Rc::new(RefCell::new(Vec::new()));
        let l = log.clone();
        let t1 = Tasklet::new(move || l.borrow_mut().push("t1")).unwrap();
        let ch = Channel::<u8>::new();
        let rx = ch.clone();
        let l = log.clone();
        spawn(move || {
            rx.receive().unwrap();
            l.borrow_mut().push("receiver");
        })
        .unwrap();
        scheduler::run().unwrap(); // the receiver blocks
        let r1 = t1.remote();
        let l = log.clone();
        spawn(move || {
            elsewhere(move || r1.run()).unwrap();
            ch.send(1).unwrap(); // the receiver is preferred: it runs at once
            l.borrow_mut().push("sender");
        })
        .unwrap();
        scheduler::run().unwrap();
        assert_eq!(*log.borrow(), ["receiver", "t1", "sender"]);
    });
}

#[test]
fn a_remote_run_does_not_switch_the_caller() {
    on_thread(|| {
        scheduler::init_thread();
        let (tx, rx) = mpsc::channel();
        let worker = spawn_thread(move || {
            let done = Channel::<&str>::new();
            let d = done.clone();
            tx.send(
                Tasklet::new(move || d.send("ran").unwrap())
                    .unwrap()
                    .remote(),
            )
            .unwrap();
            done.receive().unwrap()
        });
        let ran_here = Rc::new(RefCell::new(false));
        let r = ran_here.clone();
        let local = spawn(move || *r.borrow_mut() = true).unwrap();
        rx.recv().unwrap().run().unwrap();
        // No switch here: the local tasklet has not run, main is still current.
        assert!(!*ran_here.borrow() && local.scheduled());
        assert!(current().is_main());
        assert_eq!(runcount(), 2);
        assert_eq!(worker.join().unwrap(), "ran");
        scheduler::run().unwrap();
        assert!(*ran_here.borrow());
    });
}

#[test]
fn a_remote_kill_or_throw_makes_the_target_runnable_there_and_the_caller_continues() {
    on_thread(|| {
        scheduler::init_thread();
        let (tx, rx) = mpsc::channel();
        let worker = spawn_thread(move || {
            let gate = Channel::<u8>::new();
            let done = Channel::<String>::new();
            let (g1, g2, d1, d2) = (gate.clone(), gate.clone(), done.clone(), done.clone());
            struct Report(Channel<String>);
            impl Drop for Report {
                fn drop(&mut self) {
                    // Runs while the kill unwinds the tasklet; main waits in `receive`.
                    let _ = self.0.send("killed".into());
                }
            }
            let killed = spawn(move || {
                let _r = Report(d1);
                g1.receive()
            })
            .unwrap();
            let thrown = spawn(move || {
                let e = g2.receive().unwrap_err();
                d2.send(e.payload_str().unwrap_or("?").into()).unwrap();
            })
            .unwrap();
            scheduler::run().unwrap(); // both block
            tx.send((killed.remote(), thrown.remote())).unwrap();
            // Asleep until the kill and the throw arrive.
            let mut got = vec![done.receive().unwrap(), done.receive().unwrap()];
            got.sort();
            got
        });
        let (killed, thrown) = rx.recv().unwrap();
        let ran_here = Rc::new(RefCell::new(false));
        let r = ran_here.clone();
        spawn(move || *r.borrow_mut() = true).unwrap();
        killed.kill().unwrap();
        thrown.throw(Error::Thrown(Box::new("from afar"))).unwrap();
        assert!(!*ran_here.borrow(), "the caller continues, no local switch");
        assert_eq!(worker.join().unwrap(), ["from afar", "killed"]);
        assert!(!killed.alive() && !thrown.alive());
        scheduler::run().unwrap();
        assert!(*ran_here.borrow());
    });
}

#[test]
fn methods_on_tasklets_of_an_ended_thread_fail_as_in_stackless() {
    let (tx, rx) = mpsc::channel();
    let worker = spawn_thread(move || {
        let finished = spawn(|| ()).unwrap();
        scheduler::run().unwrap();
        let paused = Tasklet::new(|| ()).unwrap(); // killed at the thread's end
                                                   // Survives the teardown's kills by catching them: alive, but its thread is gone.
        let survivor = spawn(|| loop {
            let _ = panic::catch_unwind(AssertUnwindSafe(scheduler::schedule_remove));
        })
        .unwrap();
        scheduler::run().unwrap();
        tx.send([finished.remote(), paused.remote(), survivor.remote()])
            .unwrap();
    });
    let remotes = rx.recv().unwrap();
    worker.join().unwrap();
    for (i, r) in remotes.iter().enumerate() {
        assert!(!r.alive() && !r.scheduled() && !r.paused(), "remote {i}");
        assert_eq!(r.thread_id(), None);
        assert!(matches!(r.insert(), Err(Error::NoThread)));
        assert!(matches!(r.run(), Err(Error::NoThread)));
        assert!(matches!(r.switch(), Err(Error::NoThread)));
        assert!(matches!(
            r.throw(Error::Thrown(Box::new(()))),
            Err(Error::NoThread)
        ));
        assert!(r.remove().is_ok(), "remove: fine (not scheduled)");
    }
    // kill: a tasklet that ended is a no-op; one that outlived its thread cannot be killed.
    assert!(remotes[0].kill().is_ok());
    assert!(remotes[1].kill().is_ok());
    assert!(matches!(remotes[2].kill(), Err(Error::NoThread)));
}
