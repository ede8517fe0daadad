//! The process-wide dump (issue 12 item 2): `scheduler::dump_all()` over every thread with a
//! scheduler (a thread asleep in a blocking call answers, one busy in native code is listed
//! as silent, one without a scheduler is not listed, two threads dumping at once answer each
//! other, a forked child lists only its own thread), and `install_dump_signal`, which makes
//! a signal print it to stderr (in a forked child).

#[path = "common/death.rs"]
mod death;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use microthread::scheduler::{self, dump::DumpState, spawn, JoinHandle};
use microthread::Channel;

/// A thread with a tasklet named `name` blocked receiving on `ch`, and its main tasklet
/// blocked receiving on `done` (so the thread sleeps); returns once the dump shows both.
fn blocked_worker(
    name: &'static str,
    ch: &Channel<u32>,
    done: &Channel<()>,
) -> (JoinHandle<()>, ThreadId, u64) {
    let (rx, done_rx) = (ch.clone(), done.clone());
    let (ids, ids_rx) = mpsc::channel();
    let worker = scheduler::spawn_thread(move || {
        let t = spawn(move || rx.receive().unwrap()).unwrap();
        t.set_name(Some(name));
        ids.send((std::thread::current().id(), t.id())).unwrap();
        done_rx.receive().unwrap();
    });
    let (thread, id) = ids_rx.recv().unwrap();
    let start = Instant::now();
    loop {
        let d = scheduler::dump_all_timeout(Duration::from_secs(10));
        let t = d.thread(thread);
        let blocked = |id| {
            t.and_then(|t| t.get(id))
                .is_some_and(|t| matches!(t.state, DumpState::Receiving { .. }))
        };
        if blocked(id) && t.is_some_and(|t| t.tasklets.iter().any(|x| x.is_main && blocked(x.id))) {
            return (worker, thread, id);
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the worker never blocked: {d}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_sleeping_thread_answers_a_busy_one_is_silent_one_without_scheduler_is_not_listed() {
    scheduler::init_thread();
    let (ch, done) = (Channel::<u32>::new(), Channel::<()>::new());
    let (worker, worker_thread, waiter) = blocked_worker("waiter", &ch, &done);

    let stop = Arc::new(AtomicBool::new(false));
    let (busy_id_tx, busy_id) = mpsc::channel();
    let s = stop.clone();
    let busy = std::thread::Builder::new()
        .name("busy-native".into())
        .spawn(move || {
            scheduler::init_thread();
            busy_id_tx.send(std::thread::current().id()).unwrap();
            while !s.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        })
        .unwrap();
    let busy_thread = busy_id.recv().unwrap();
    let (plain_id_tx, plain_id) = mpsc::channel();
    let s = stop.clone();
    let plain = std::thread::spawn(move || {
        plain_id_tx.send(std::thread::current().id()).unwrap();
        while !s.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    let plain_thread = plain_id.recv().unwrap();

    let d = scheduler::dump_all_timeout(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    busy.join().unwrap();
    plain.join().unwrap();

    let me = std::thread::current().id();
    assert_eq!(d.threads[0].thread_id, me, "the caller first: {d}");
    let w = d
        .thread(worker_thread)
        .expect("the sleeping worker answered");
    assert_eq!(
        w.get(waiter).unwrap().state,
        DumpState::Receiving {
            channel: ch.id(),
            deadline: None
        }
    );
    assert!(
        d.silent
            .iter()
            .any(|t| t.thread_name.as_deref() == Some("busy-native")),
        "the busy thread is silent: {d}"
    );
    assert!(d.thread(busy_thread).is_none());
    assert!(d.thread(plain_thread).is_none());
    assert!(!d.silent.iter().any(|t| t.thread_id == Some(plain_thread)));
    let text = d.to_string();
    assert!(
        text.contains("\"busy-native\" did not answer within 2s (running native code"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "tasklet {waiter} \"waiter\": blocked receiving on channel {}",
            ch.id()
        )),
        "{text}"
    );

    ch.send(1).unwrap();
    done.send(()).unwrap();
    worker.join().unwrap();
}

#[test]
fn two_threads_dumping_at_once_answer_each_other() {
    // This thread waits only in microthread's blocking calls (which answer dumps): waiting
    // in native code (`mpsc::recv`) it would be listed as silent after the whole timeout.
    scheduler::init_thread();
    let barrier = Arc::new(Barrier::new(2));
    let (ids, dumps, release) = (Channel::new(), Channel::new(), Channel::<()>::new());
    let dumper = |barrier: Arc<Barrier>| {
        let (ids, dumps, release) = (ids.clone(), dumps.clone(), release.clone());
        move || {
            scheduler::init_thread();
            barrier.wait();
            // Long enough that a thread not answered while it waits would be noticed.
            let dump = scheduler::dump_all_timeout(Duration::from_secs(20));
            ids.send(std::thread::current().id()).unwrap();
            dumps.send(dump).unwrap();
            // Stay registered, asleep in a blocking call, until both dumps are taken: a
            // thread that finished first and ended would rightly be missing from the other's
            // dump (seen under valgrind, which runs one thread at a time).
            release.receive().unwrap();
        }
    };
    let a = std::thread::spawn(dumper(barrier.clone()));
    let b = std::thread::spawn(dumper(barrier));
    let (x, da) = (ids.receive().unwrap(), dumps.receive().unwrap());
    let (y, db) = (ids.receive().unwrap(), dumps.receive().unwrap());
    release.send(()).unwrap();
    release.send(()).unwrap();
    a.join().unwrap();
    b.join().unwrap();
    for d in [&da, &db] {
        for id in [x, y] {
            assert!(d.thread(id).is_some(), "thread {id:?} is in the dump: {d}");
            assert!(!d.silent.iter().any(|t| t.thread_id == Some(id)), "{d}");
        }
    }
}

#[test]
fn a_forked_child_dumps_only_its_own_thread() {
    let _serial = death::serial();
    scheduler::init_thread();
    let (ch, done) = (Channel::<u32>::new(), Channel::<()>::new());
    let (worker, worker_thread, _) = blocked_worker("parent-side", &ch, &done);
    let death = death::in_child(|| {
        let d = scheduler::dump_all_timeout(Duration::from_secs(5));
        to_stderr(&d.to_string());
        assert!(d.thread(worker_thread).is_none());
        assert!(d.silent.is_empty());
        assert_eq!(d.threads.len(), 1);
        assert_eq!(d.threads[0].thread_id, std::thread::current().id());
    });
    ch.send(1).unwrap();
    done.send(()).unwrap();
    worker.join().unwrap();
    assert_eq!(
        death.exit_code(),
        Some(0),
        "{}: {}",
        death.describe(),
        death.stderr
    );
    assert!(
        death
            .stderr
            .starts_with("microthread: 1 thread with a scheduler\n"),
        "{}",
        death.stderr
    );
}

/// Writes to fd 2 itself (`eprint!` in a test goes to the harness's capture instead).
fn to_stderr(text: &str) {
    use std::io::Write;
    std::io::stderr().write_all(text.as_bytes()).unwrap();
}

/// Reads `fd` until `done(text)` or 30 s pass.
fn read_until(fd: libc::c_int, done: impl Fn(&str) -> bool) -> String {
    let mut text = Vec::new();
    let start = Instant::now();
    while !done(&String::from_utf8_lossy(&text)) && start.elapsed() < Duration::from_secs(30) {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, 100) } <= 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        // SAFETY: `buf` holds 4096 bytes; `fd` is our pipe's read end.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        text.extend_from_slice(&buf[..n as usize]);
    }
    String::from_utf8_lossy(&text).into_owned()
}

#[test]
fn the_dump_signal_prints_every_threads_tasklets_to_stderr() {
    if death::under_qemu_user() {
        // The child starts threads (a worker, the dump thread): qemu-user cannot reliably
        // start a thread in a forked child of a multithreaded process (see
        // tests/guard_page.rs). Natively the test always runs.
        eprintln!("skipped under qemu-user: threads in forked children are unreliable there");
        return;
    }
    let _serial = death::serial();
    let death = death::in_child(|| {
        scheduler::init_thread();
        let (ch, done) = (Channel::<u32>::new(), Channel::<()>::new());
        let (worker, _, waiter) = blocked_worker("signalled", &ch, &done);
        // Our stderr into a pipe we read ourselves, so that we know when the dump is out.
        let mut fds = [0; 2];
        // SAFETY: plain descriptor calls on our own descriptors.
        let saved = unsafe {
            assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
            let saved = libc::dup(2);
            libc::dup2(fds[1], 2);
            saved
        };
        scheduler::install_dump_signal(libc::SIGQUIT).unwrap();
        // SAFETY: raising a signal whose handler we just installed.
        unsafe { libc::raise(libc::SIGQUIT) };
        // This thread reads in native code meanwhile: its line comes last.
        let text = read_until(fds[0], |t| t.contains("did not answer"));
        // SAFETY: back to the parent's pipe.
        unsafe { libc::dup2(saved, 2) };
        to_stderr(&text);
        assert!(text.contains(&format!(
            "tasklet {waiter} \"signalled\": blocked receiving on channel {}",
            ch.id()
        )));
        ch.send(1).unwrap();
        done.send(()).unwrap();
        worker.join().unwrap();
    });
    assert_eq!(
        death.exit_code(),
        Some(0),
        "{}: {}",
        death.describe(),
        death.stderr
    );
    let me = "microthread: 2 threads with a scheduler (1 did not answer)\n";
    assert!(death.stderr.starts_with(me), "{}", death.stderr);
    assert!(
        death
            .stderr
            .contains("did not answer within 1s (running native code"),
        "{}",
        death.stderr
    );
}
