//! Deadlock detection across threads: which threads count as able to wake another one.
//!
//! A thread counts as *awake* from its first use of microthread (or from `spawn_thread`)
//! until its scheduler ends, except while it sleeps in a blocking call or waits in
//! `JoinHandle::join`. These tests depend on that process-wide count, so they run one at a
//! time ([`serial`]), and every thread that would hang is watched by a timeout
//! ([`within`]): a regression fails the test instead of hanging the suite.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use microthread::scheduler::{self, spawn};
use microthread::{spawn_thread, Channel, Error, Tasklet};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Generous: each scenario takes milliseconds (more under qemu-user).
const LIMIT: Duration = Duration::from_secs(30);

/// Runs `f` on its own thread and gives its result, or fails the test if it has not returned
/// within [`LIMIT`] (the hung thread is left behind: the test has failed anyway).
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(LIMIT)
        .unwrap_or_else(|_| panic!("{what}: still running after {LIMIT:?}, it hangs"))
}

/// Waits (polling) until `ready`, or fails the test after [`LIMIT`].
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < LIMIT, "{what}: not after {LIMIT:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

// ---- a thread blocked in join is not awake ----

#[test]
fn workers_that_block_while_their_spawner_joins_them_get_the_deadlock_error() {
    let _serial = serial();
    let (a, b) = within("joining two deadlocked workers", || {
        // The joining thread could wake the workers (it has a scheduler), but not while it
        // waits in join: the workers are deadlocked and must be told so.
        scheduler::init_thread();
        let workers: Vec<_> = (0..2)
            .map(|_| spawn_thread(|| Channel::<u32>::new().receive()))
            .collect();
        let mut results = workers.into_iter().map(|w| w.join().unwrap());
        (results.next().unwrap(), results.next().unwrap())
    });
    assert!(matches!(a, Err(Error::Deadlock)), "{a:?}");
    assert!(matches!(b, Err(Error::Deadlock)), "{b:?}");
}

#[test]
fn a_joiner_counts_awake_again_when_the_joined_thread_ends() {
    let _serial = serial();
    let got = within("a receiver waiting for a joiner", || {
        scheduler::init_thread();
        let ch: Channel<u32> = Channel::new();
        let rx = ch.clone();
        let receiver = spawn_thread(move || rx.receive());
        wait_until("the receiver blocks", || ch.balance() == -1);
        // While we join this one, the receiver is asleep and we are not counted; when it
        // ends we are again, so the receiver must not be told it is deadlocked.
        let short = spawn_thread(|| std::thread::sleep(Duration::from_millis(20)));
        short.join().unwrap();
        ch.send(7).unwrap();
        receiver.join().unwrap()
    });
    assert_eq!(got.unwrap(), 7);
}

#[test]
fn the_join_handle_has_the_std_api() {
    let _serial = serial();
    let h = spawn_thread(|| std::thread::current().id());
    let id = h.thread().id();
    wait_until("the thread finishes", || h.is_finished());
    assert!(format!("{h:?}").starts_with("JoinHandle"));
    assert_eq!(h.join().unwrap(), id);
    let panicked = spawn_thread(|| panic!("boom")).join().unwrap_err();
    assert_eq!(panicked.downcast_ref::<&str>(), Some(&"boom"));
}

// ---- thread-locals destroyed after the scheduler's teardown ----

/// What a thread-local's destructor could do after the thread's scheduler ended.
#[derive(Debug)]
struct LateReport {
    spawn: Result<(), String>,
    new: Result<(), String>,
    /// Whether the closure of the refused spawn was dropped (not leaked).
    closure_dropped: bool,
    receive: Option<microthread::Result<u32>>,
}

/// Sets `what` to run from a thread-local's destructor that runs after the scheduler's
/// teardown: the thread-local is registered before the scheduler exists, and thread-locals
/// are destroyed in the reverse order of their registration.
fn after_teardown(what: impl FnOnce() + 'static) {
    struct Late(Option<Box<dyn FnOnce()>>);
    impl Drop for Late {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    thread_local! {
        static LATE: RefCell<Late> = const { RefCell::new(Late(None)) };
    }
    LATE.with(|l| l.borrow_mut().0 = Some(Box::new(what)));
    scheduler::init_thread();
}

#[test]
fn after_the_teardown_a_thread_local_cannot_spawn_and_a_receive_fails_at_once() {
    let _serial = serial();
    // This thread is awake and could send: before the fix the late receive slept for good.
    scheduler::init_thread();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        after_teardown(move || {
            let dropped = Arc::new(AtomicBool::new(false));
            struct Flag(Arc<AtomicBool>);
            impl Drop for Flag {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::SeqCst);
                }
            }
            let flag = Flag(dropped.clone());
            let spawn = spawn(move || drop(flag))
                .map(drop)
                .map_err(|e| e.to_string());
            let new = Tasklet::new(|| ()).map(drop).map_err(|e| e.to_string());
            let closure_dropped = dropped.load(Ordering::SeqCst);
            let _ = tx.send(LateReport {
                spawn,
                new,
                closure_dropped,
                receive: None,
            });
            let receive = Channel::<u32>::new().receive();
            let _ = tx.send(LateReport {
                spawn: Ok(()),
                new: Ok(()),
                closure_dropped: true,
                receive: Some(receive),
            });
        });
    });
    let first = rx.recv_timeout(LIMIT).expect("the late destructor ran");
    let ended = "this thread's scheduler has ended";
    assert!(
        first.spawn.as_ref().is_err_and(|e| e.contains(ended)),
        "{first:?}"
    );
    assert!(
        first.new.as_ref().is_err_and(|e| e.contains(ended)),
        "{first:?}"
    );
    assert!(first.closure_dropped, "the refused closure leaked");
    let second = rx
        .recv_timeout(LIMIT)
        .expect("the late receive returned instead of sleeping");
    let e = second.receive.unwrap().unwrap_err();
    assert!(matches!(e, Error::SchedulerEnded), "{e:?}");
    assert!(e.to_string().contains(ended), "{e}");
}

#[test]
fn a_late_blocking_call_does_not_make_another_thread_see_a_false_deadlock() {
    let _serial = serial();
    scheduler::init_thread();
    // Another awake thread, so that the late receive below goes to sleep (before the fix)
    // instead of failing at once; it ends when told.
    let (end_tx, end_rx) = mpsc::channel::<()>();
    let other = spawn_thread(move || {
        let _ = end_rx.recv();
    });
    // A worker waits for this thread, which is awake and will send once the other thread has
    // ended: nothing below may tell the worker it is deadlocked.
    let ch: Channel<u32> = Channel::new();
    let c = ch.clone();
    let worker = spawn_thread(move || c.receive());
    wait_until("the worker blocks", || ch.balance() == -1);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        after_teardown(move || {
            let _ = tx.send("about to receive");
            let r = Channel::<u32>::new().receive();
            let _ = tx.send(if r.is_err() { "failed" } else { "received" });
        });
    });
    assert_eq!(rx.recv_timeout(LIMIT), Ok("about to receive"));
    // Before the fix, the late receive stopped counting its thread awake a second time (the
    // teardown already had) and slept; give it the time to.
    std::thread::sleep(Duration::from_millis(100));
    // Then the other thread's end looked like the end of the last awake thread.
    end_tx.send(()).unwrap();
    other.join().unwrap();
    wait_until("the worker blocks or ends", || {
        ch.balance() == -1 || worker.is_finished()
    });
    if ch.balance() == -1 {
        ch.send(5).unwrap();
    }
    let got = within("joining the worker", move || worker.join().unwrap());
    assert!(
        matches!(got, Ok(5)),
        "the worker saw a false deadlock: {got:?}"
    );
    assert_eq!(rx.recv_timeout(LIMIT), Ok("failed"));
}

#[test]
fn a_scheduler_first_created_by_a_pthread_key_destructor_still_ends() {
    let _serial = serial();
    // A key destructor runs after every thread-local's: a scheduler created there is past
    // the point where `Teardown` can run, and used to stay counted awake forever.
    unsafe extern "C" fn late_first_use(_: *mut libc::c_void) {
        scheduler::init_thread();
    }
    std::thread::spawn(|| {
        let mut key: libc::pthread_key_t = 0;
        // SAFETY: a new key with a destructor that lives for the whole process; a non-null
        // value so that it runs at thread exit.
        unsafe {
            assert_eq!(libc::pthread_key_create(&mut key, Some(late_first_use)), 0);
            libc::pthread_setspecific(key, 1 as *const libc::c_void);
        }
    })
    .join()
    .unwrap();
    // Nobody else is awake: a receive nobody can satisfy must fail, not sleep forever.
    let r = within("a receive nobody can satisfy", || {
        spawn_thread(|| Channel::<u32>::new().receive())
            .join()
            .unwrap()
    });
    assert!(matches!(r, Err(Error::Deadlock)), "{r:?}");
}
