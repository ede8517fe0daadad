//! Sleeping tasklets (issue 9 item 4): wake-up order, kill and throw of a sleeper,
//! `sleep(0)`, refused moves, no CPU while everything sleeps, cross-thread wake of a sleeping
//! thread, thread end, and the Stackless "sleep manager" pattern built on `sleep_until`.
//! Timing margins are generous: these run under qemu too.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use microthread::channel::{Channel, LocalChannel};
use microthread::scheduler::{self, spawn};
use microthread::Error;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) % n
    }
}

#[test]
fn a_thousand_sleepers_wake_in_deadline_order_ties_in_sleep_order() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // The base is fixed once all are spawned (none runs before `run()`), and far enough
    // ahead that all go to sleep before the first deadline, even under a loaded qemu.
    let base_cell = Rc::new(Cell::new(None::<Instant>));
    let woke = Rc::new(RefCell::new(Vec::new()));
    let late = Rc::new(RefCell::new(0usize));
    let mut expected = Vec::new();
    for i in 0..1000usize {
        // Few distinct deadlines: many ties.
        let k = rng.below(40);
        expected.push((k, i));
        let (woke, late, base_cell) = (woke.clone(), late.clone(), base_cell.clone());
        spawn(move || {
            let deadline = base_cell.get().unwrap() + Duration::from_millis(k);
            scheduler::sleep_until(deadline).unwrap();
            if Instant::now() < deadline {
                *late.borrow_mut() += 1;
            }
            woke.borrow_mut().push(i);
        })
        .unwrap();
    }
    let base = Instant::now() + Duration::from_millis(1000);
    base_cell.set(Some(base));
    scheduler::run().unwrap();
    assert!(
        Instant::now() >= base,
        "all went to sleep before the first deadline"
    );
    expected.sort();
    let expected: Vec<usize> = expected.into_iter().map(|(_, i)| i).collect();
    assert_eq!(*woke.borrow(), expected);
    assert_eq!(*late.borrow(), 0, "nobody woke before its deadline");
}

struct SetOnDrop(Rc<RefCell<bool>>);
impl Drop for SetOnDrop {
    fn drop(&mut self) {
        *self.0.borrow_mut() = true;
    }
}

#[test]
fn a_killed_sleeper_unwinds_and_leaves_the_timer_queue() {
    let dropped = Rc::new(RefCell::new(false));
    let d = SetOnDrop(dropped.clone());
    let t = spawn(move || {
        let _d = d;
        scheduler::sleep(Duration::from_secs(3600)).unwrap();
        unreachable!("a killed sleeper never returns from sleep");
    })
    .unwrap();
    scheduler::schedule().unwrap(); // it goes to sleep
    assert!(t.alive() && t.sleeping() && t.blocked() && t.scheduled() && !t.paused());
    assert!(
        t.remote().blocked(),
        "the remote mirror reports a sleeper as blocked"
    );
    t.kill().unwrap();
    assert!(!t.alive() && *dropped.borrow());
    // The stale deadline keeps nobody waiting.
    let start = Instant::now();
    scheduler::run().unwrap();
    assert!(start.elapsed() < Duration::from_secs(60));
}

#[test]
fn a_throw_into_a_sleeper_is_the_error_of_its_sleep_call() {
    let t = spawn(|| match scheduler::sleep(Duration::from_secs(3600)) {
        Err(e) => e.payload_str().map(str::to_owned),
        Ok(()) => None,
    })
    .unwrap();
    scheduler::schedule().unwrap();
    assert!(t.sleeping());
    t.throw(Error::Thrown(Box::new("wake up"))).unwrap();
    assert_eq!(
        t.result::<Option<String>>(),
        Some(Some("wake up".to_owned()))
    );
    let start = Instant::now();
    scheduler::run().unwrap();
    assert!(start.elapsed() < Duration::from_secs(60));
}

#[test]
fn a_pending_kill_of_a_sleeper_runs_when_its_turn_comes() {
    let t = spawn(|| scheduler::sleep(Duration::from_secs(3600))).unwrap();
    scheduler::schedule().unwrap();
    t.kill_pending().unwrap();
    assert!(t.alive() && !t.sleeping() && t.scheduled() && !t.blocked());
    scheduler::run().unwrap();
    assert!(!t.alive());
}

#[test]
fn sleep_zero_is_a_schedule() {
    let log = Rc::new(RefCell::new(Vec::new()));
    for name in ["A", "B"] {
        let log = log.clone();
        spawn(move || {
            for i in 1..=2 {
                log.borrow_mut().push(format!("{name}{i}"));
                scheduler::sleep(Duration::ZERO).unwrap();
            }
        })
        .unwrap();
    }
    scheduler::run().unwrap();
    assert_eq!(*log.borrow(), ["A1", "B1", "A2", "B2"]);
    // A deadline in the past, likewise.
    scheduler::sleep_until(Instant::now() - Duration::from_millis(1)).unwrap();
}

#[test]
fn a_sleeper_is_refused_as_a_blocked_tasklet() {
    let t = spawn(|| scheduler::sleep(Duration::from_millis(20)).unwrap()).unwrap();
    scheduler::schedule().unwrap();
    assert!(matches!(t.insert(), Err(Error::RunBlocked)));
    assert!(matches!(t.run(), Err(Error::RunBlocked)));
    assert!(matches!(t.switch(), Err(Error::RunBlocked)));
    assert!(matches!(t.remove(), Err(Error::RemoveBlocked)));
    assert!(t.sleeping());
    scheduler::run().unwrap();
    assert!(!t.alive());
}

#[test]
fn sleep_is_refused_under_a_block_trap_and_changes_nothing() {
    let me = scheduler::current();
    me.set_block_trap(true);
    assert!(matches!(
        scheduler::sleep(Duration::from_millis(1)),
        Err(Error::BlockTrap)
    ));
    me.set_block_trap(false);
    assert!(!me.sleeping() && me.scheduled());
}

#[test]
fn main_sleeps_while_others_run() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    spawn(move || {
        for i in 0..3 {
            l.borrow_mut().push(i);
            scheduler::schedule().unwrap();
        }
    })
    .unwrap();
    let start = Instant::now();
    scheduler::sleep(Duration::from_millis(30)).unwrap();
    assert!(start.elapsed() >= Duration::from_millis(30));
    assert_eq!(
        *log.borrow(),
        [0, 1, 2],
        "the other tasklet ran to its end meanwhile"
    );
}

#[path = "common/cpu.rs"]
mod cpu;
use cpu::thread_cpu;

#[test]
fn the_thread_uses_no_cpu_while_every_tasklet_sleeps() {
    for _ in 0..3 {
        spawn(|| scheduler::sleep(Duration::from_millis(200)).unwrap()).unwrap();
    }
    let (cpu0, wall0) = (thread_cpu(), Instant::now());
    scheduler::run().unwrap();
    let (cpu, wall) = (thread_cpu() - cpu0, wall0.elapsed());
    assert!(wall >= Duration::from_millis(200));
    // A busy wait would use about the whole wall time.
    assert!(cpu < wall / 4, "cpu {cpu:?} over a wall time of {wall:?}");
    // Main alone, sleeping.
    let (cpu0, wall0) = (thread_cpu(), Instant::now());
    scheduler::sleep(Duration::from_millis(200)).unwrap();
    let (cpu, wall) = (thread_cpu() - cpu0, wall0.elapsed());
    assert!(cpu < wall / 4, "cpu {cpu:?} over a wall time of {wall:?}");
}

#[test]
fn mail_from_another_thread_wakes_a_thread_whose_tasklets_sleep() {
    let ch = Channel::<u32>::new();
    let rx = ch.clone();
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        let sleeper = spawn(|| scheduler::sleep(Duration::from_secs(3600))).unwrap();
        let s = sleeper.clone();
        let start = Instant::now();
        let receiver = spawn(move || {
            let v = rx.receive().unwrap();
            let waited = start.elapsed();
            s.kill().unwrap(); // no need to wait an hour
            (v, waited)
        })
        .unwrap();
        ready_tx.send(()).unwrap();
        // Both go to sleep / block; the thread waits for the hour-long deadline, until the
        // value's mail wakes it.
        scheduler::run().unwrap();
        assert!(!sleeper.alive());
        receiver.result::<(u32, Duration)>().unwrap()
    });
    ready.recv().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    scheduler::init_thread();
    ch.send(7).unwrap();
    let (v, waited) = worker.join().unwrap();
    assert_eq!(v, 7);
    assert!(
        waited < Duration::from_secs(600),
        "woken by the mail, not the deadline"
    );
}

#[test]
fn no_deadlock_while_someone_sleeps() {
    // Main blocks on a channel that only a sleeper will serve: not a deadlock.
    let ch = LocalChannel::<&str>::new();
    let tx = ch.clone();
    spawn(move || {
        scheduler::sleep(Duration::from_millis(20)).unwrap();
        tx.send("after the sleep").unwrap();
    })
    .unwrap();
    assert_eq!(ch.receive().unwrap(), "after the sleep");
}

#[test]
fn a_thread_that_waits_for_a_sleeping_thread_gets_no_deadlock() {
    // Counted awake before the other thread's send can come (however slow this thread is
    // to reach its receive, under qemu for instance).
    scheduler::init_thread();
    let ch = Channel::<u8>::new();
    let tx = ch.clone();
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let other = std::thread::spawn(move || {
        scheduler::init_thread();
        ready_tx.send(()).unwrap();
        // Its only tasklet (main) sleeps: it counts as awake meanwhile.
        scheduler::sleep(Duration::from_millis(100)).unwrap();
        tx.send(1).unwrap();
    });
    ready.recv().unwrap();
    assert_eq!(ch.receive().unwrap(), 1);
    other.join().unwrap();
}

#[test]
fn thread_end_kills_sleepers() {
    let dropped = Arc::new(AtomicBool::new(false));
    let d = dropped.clone();
    let start = Instant::now();
    std::thread::spawn(move || {
        struct Flag(Arc<AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let f = Flag(d);
        spawn(move || {
            let _f = f;
            scheduler::sleep(Duration::from_secs(3600)).unwrap();
        })
        .unwrap();
        scheduler::schedule().unwrap(); // it goes to sleep; the thread ends
    })
    .join()
    .unwrap();
    assert!(
        dropped.load(Ordering::SeqCst),
        "killed at thread end, destructors run"
    );
    assert!(start.elapsed() < Duration::from_secs(600));
}

/// Stackless's "sleep manager", without autoschedule: sleepers wait on their own channel, a
/// manager tasklet keeps their deadlines and wakes each in time. With `sleep_until` the
/// manager itself does not spin between deadlines.
#[test]
fn the_sleep_manager_pattern() {
    type Sleepers = Rc<RefCell<Vec<(Instant, usize, LocalChannel<()>)>>>;
    let sleepers: Sleepers = Rc::new(RefCell::new(Vec::new()));
    let woke = Rc::new(RefCell::new(Vec::new()));
    let start = Instant::now();
    let nap = move |sleepers: &Sleepers, id: usize, ms: u64| {
        let ch = LocalChannel::new();
        sleepers
            .borrow_mut()
            .push((start + Duration::from_millis(ms), id, ch.clone()));
        ch.receive().unwrap();
    };
    for (id, ms) in [(0usize, 60u64), (1, 20), (2, 40), (3, 20)] {
        let (s, w) = (sleepers.clone(), woke.clone());
        spawn(move || {
            nap(&s, id, ms);
            w.borrow_mut().push(id);
        })
        .unwrap();
    }
    let s = sleepers.clone();
    let manager = spawn(move || {
        let mut rounds = 0;
        loop {
            rounds += 1;
            let next = s.borrow().iter().map(|e| e.0).min();
            let Some(at) = next else { break rounds };
            scheduler::sleep_until(at).unwrap();
            let now = Instant::now();
            let mut due: Vec<_> = s.borrow().iter().filter(|e| e.0 <= now).cloned().collect();
            s.borrow_mut().retain(|e| e.0 > now);
            due.sort_by_key(|e| (e.0, e.1));
            for (_, _, ch) in due {
                ch.send(()).unwrap();
            }
        }
    })
    .unwrap();
    scheduler::run().unwrap();
    assert_eq!(*woke.borrow(), [1, 3, 2, 0]);
    assert!(start.elapsed() >= Duration::from_millis(60));
    let rounds = manager.result::<i32>().unwrap();
    assert!(
        rounds <= 5,
        "one round per distinct deadline, no spinning: {rounds}"
    );
}

#[test]
fn many_short_sleeps_in_a_loop() {
    // Exercises the queue with stale-free churn; each sleep really waits.
    let t = spawn(|| {
        let start = Instant::now();
        for _ in 0..50 {
            scheduler::sleep(Duration::from_micros(200)).unwrap();
        }
        start.elapsed()
    })
    .unwrap();
    scheduler::run().unwrap();
    assert!(t.result::<Duration>().unwrap() >= Duration::from_millis(10));
}
