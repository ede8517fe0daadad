//! `fork()`: the child has only the forking thread. Threads that exist only in the parent
//! must not count as awake there, posts to them must fail, and a lock another thread held at
//! the fork must not make the child hang.
//!
//! Each child runs in a `fork()`ed process (see tests/guard_page.rs for the method) under a
//! deadline: a child that hangs is killed and fails the test. The tests hold one lock for
//! their whole run ([`serial`]), so that no other test's thread is inside the allocator or a
//! channel when one forks; children leave with `_exit`, never through the harness.
#![cfg(target_os = "linux")]

#[path = "common/death.rs"]
mod death;

use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use death::under_qemu_user;
use microthread::scheduler::{self, spawn};
use microthread::{spawn_thread, Channel, Error, Tasklet};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// How a child ended.
#[derive(Debug, PartialEq, Eq)]
enum Ending {
    /// Exit code: 0 if the body returned, 101 if it panicked, else what it chose.
    Exited(i32, String),
    /// Killed after `deadline`: it hangs.
    Hung(String),
    Signalled(i32, String),
}

/// Runs `body` in a forked child (see [`fork_child`]). Under qemu-user, where a fork of a
/// process with several threads occasionally leaves the child stuck inside the emulator
/// (see tests/guard_page.rs), a child that hangs is forked again, up to three times.
fn in_child(deadline: Duration, body: impl Fn() -> i32) -> Ending {
    let attempts = if under_qemu_user() { 3 } else { 1 };
    let mut ending = fork_child(deadline, &body);
    for _ in 1..attempts {
        if !matches!(ending, Ending::Hung(_)) {
            break;
        }
        eprintln!("a child hung under qemu-user; forking again");
        ending = fork_child(deadline, &body);
    }
    ending
}

/// Runs `body` in a forked child whose fd 2 is a pipe to us; kills it after `deadline`.
fn fork_child(deadline: Duration, body: impl FnOnce() -> i32) -> Ending {
    let mut fds = [0; 2];
    // SAFETY: pipe writes two fds into the array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    // SAFETY: the child only uses what fork copied and leaves by _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: plain system calls on our own fds.
        unsafe {
            libc::close(fds[0]);
            libc::dup2(fds[1], 2);
            libc::close(fds[1]);
        }
        let code = panic::catch_unwind(AssertUnwindSafe(body)).unwrap_or(101);
        // SAFETY: ends the child without running the parent's atexit handlers or harness.
        unsafe { libc::_exit(code) };
    }
    // SAFETY: our copy of the write end; reading sees EOF when the child ends.
    unsafe { libc::close(fds[1]) };
    // SAFETY: non-blocking reads, so that the deadline is checked while the child runs.
    unsafe { libc::fcntl(fds[0], libc::F_SETFL, libc::O_NONBLOCK) };
    let started = Instant::now();
    let mut stderr = Vec::new();
    let mut status = 0;
    loop {
        let mut buf = [0u8; 4096];
        // SAFETY: reads into our buffer.
        let got = unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len()) };
        if got > 0 {
            stderr.extend_from_slice(&buf[..got as usize]);
        }
        // SAFETY: polling our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break;
        }
        if started.elapsed() > deadline {
            // SAFETY: killing and reaping our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, ptr::null_mut(), 0);
                libc::close(fds[0]);
            }
            return Ending::Hung(String::from_utf8_lossy(&stderr).into_owned());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    loop {
        let mut buf = [0u8; 4096];
        // SAFETY: as above; the child has ended, so this drains to EOF.
        let got = unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len()) };
        if got <= 0 {
            break;
        }
        stderr.extend_from_slice(&buf[..got as usize]);
    }
    // SAFETY: done with the read end.
    unsafe { libc::close(fds[0]) };
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    if libc::WIFEXITED(status) {
        Ending::Exited(libc::WEXITSTATUS(status), stderr)
    } else {
        Ending::Signalled(libc::WTERMSIG(status), stderr)
    }
}

/// Generous for one child that does almost nothing (qemu-user is slow to fork).
const DEADLINE: Duration = Duration::from_secs(20);

#[track_caller]
fn assert_exited_0(e: Ending) {
    assert!(matches!(e, Ending::Exited(0, _)), "the child: {e:?}");
}

/// A thread that counts as awake (it has a scheduler and is blocked outside microthread)
/// until the returned sender is dropped or sent to.
fn awake_thread() -> (mpsc::Sender<()>, microthread::scheduler::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<()>();
    let t = spawn_thread(move || {
        let _ = rx.recv();
    });
    (tx, t)
}

#[test]
fn in_a_forked_child_a_receive_nobody_can_satisfy_fails_with_deadlock() {
    let _serial = serial();
    scheduler::init_thread();
    // Awake in the parent, absent in the child.
    let (stop, awake) = awake_thread();
    let ending = in_child(DEADLINE, || match Channel::<u32>::new().receive() {
        Err(Error::Deadlock) => 0,
        other => {
            eprintln!("the receive returned {other:?}");
            1
        }
    });
    drop(stop);
    awake.join().unwrap();
    assert_exited_0(ending);
}

#[test]
fn in_a_forked_child_remote_operations_on_a_vanished_threads_tasklet_fail() {
    let _serial = serial();
    let (tx, rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let worker = spawn_thread(move || {
        let paused = Tasklet::new(|| ()).unwrap();
        tx.send(paused.remote()).unwrap();
        let _ = stop_rx.recv();
    });
    let remote = rx.recv().unwrap();
    let ending = in_child(DEADLINE, || {
        // Before the fix the mail was accepted by the copy of the worker's mailbox, and lost.
        match (remote.insert(), remote.kill()) {
            (Err(Error::NoThread), Err(Error::NoThread)) => 0,
            other => {
                eprintln!("insert and kill returned {other:?}");
                1
            }
        }
    });
    drop(stop_tx);
    worker.join().unwrap();
    assert_exited_0(ending);
}

#[test]
fn in_a_forked_child_a_send_does_not_hand_its_value_to_a_vanished_threads_receiver() {
    let _serial = serial();
    scheduler::init_thread();
    let ch = Channel::<String>::new();
    let rx = ch.clone();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let worker = spawn_thread(move || {
        let r = rx.clone();
        // Blocked receiving in the parent: in the child its thread does not exist.
        spawn(move || {
            let _ = r.receive();
        })
        .unwrap();
        scheduler::run().unwrap();
        ready_tx.send(()).unwrap();
        let _ = stop_rx.recv();
        // Release the receiver so the thread can end.
        rx.send("bye".to_string()).unwrap();
    });
    ready_rx.recv().unwrap();
    assert_eq!(ch.balance(), -1);
    let ending = in_child(DEADLINE, || {
        // Before the fix the send popped the vanished receiver and returned Ok: the value
        // was written into a stack nothing will run again.
        match ch.send("lost?".to_string()) {
            Err(e) if matches!(e.error, Error::Deadlock) && e.value.as_deref() == Some("lost?") => {
                if ch.balance() == 0 {
                    0
                } else {
                    eprintln!("balance {}", ch.balance());
                    1
                }
            }
            other => {
                eprintln!("the send returned {other:?}");
                1
            }
        }
    });
    drop(stop_tx);
    worker.join().unwrap();
    assert_exited_0(ending);
}

/// The fork-race tests hammer a channel from one thread while another forks: valgrind runs
/// one thread at a time, so the hammer can starve the forking thread for minutes and there is
/// no race to find. They run natively and under qemu-user; `ci/valgrind.sh` sets the variable.
fn skipped_under_valgrind() -> bool {
    let skip = std::env::var_os("MICROTHREAD_UNDER_VALGRIND").is_some();
    if skip {
        eprintln!("skipped under valgrind: its threads do not run at once, so nothing races");
    }
    skip
}

/// Forks `forks` children while `hammer` runs on another thread, each child running
/// `child`, and the parent `between` after each; returns how the children ended.
fn fork_while(
    forks: usize,
    hammer: impl Fn() + Send + 'static,
    child: impl Fn() -> i32,
    between: impl Fn(),
) -> Vec<Ending> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let (started_tx, started_rx) = mpsc::channel();
    let hammering = std::thread::spawn(move || {
        started_tx.send(()).unwrap();
        while !s.load(Ordering::Relaxed) {
            hammer();
        }
    });
    started_rx.recv().unwrap();
    let endings: Vec<Ending> = (0..forks)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(1));
            let ending = in_child(Duration::from_secs(5), &child);
            between();
            ending
        })
        .collect();
    stop.store(true, Ordering::Relaxed);
    hammering.join().unwrap();
    endings
}

const POISONED: &str = "a thread that does not exist here was inside it";

/// The child uses `ch`: exit 0 if that worked, 3 if it panicked with the poisoned sentence.
fn use_channel_in_child(ch: &Channel<u32>) -> i32 {
    let prev = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let r = panic::catch_unwind(AssertUnwindSafe(|| ch.balance()));
    panic::set_hook(prev);
    match r {
        Ok(0) => 0,
        Ok(b) => {
            eprintln!("balance {b}");
            1
        }
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            if msg.contains(POISONED) {
                3
            } else {
                eprintln!("panicked: {msg}");
                2
            }
        }
    }
}

#[track_caller]
fn assert_no_child_hung(endings: &[Ending]) {
    let bad: Vec<_> = endings
        .iter()
        .filter(|e| !matches!(e, Ending::Exited(0 | 3, _)))
        .collect();
    assert!(bad.is_empty(), "children that hung or failed: {bad:?}");
    let poisoned = endings
        .iter()
        .filter(|e| matches!(e, Ending::Exited(3, _)))
        .count();
    eprintln!(
        "{} children: {poisoned} found the channel poisoned",
        endings.len()
    );
}

#[test]
fn a_shared_channel_another_thread_was_inside_at_the_fork_panics_in_the_child_and_never_hangs() {
    if skipped_under_valgrind() {
        return;
    }
    let _serial = serial();
    let ch: Channel<u32> = Channel::new();
    // A thread without a scheduler: the channel is never biased, everyone takes the spin lock.
    let c = ch.clone();
    let endings = fork_while(
        40,
        move || {
            std::hint::black_box(c.balance());
        },
        || use_channel_in_child(&ch),
        || (),
    );
    assert_no_child_hung(&endings);
}

#[test]
fn a_channel_biased_to_another_thread_busy_at_the_fork_panics_in_the_child_and_never_hangs() {
    if skipped_under_valgrind() {
        return;
    }
    let _serial = serial();
    let ch: Channel<u32> = Channel::new();
    let c = ch.clone();
    let (owned_tx, owned_rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    // The owner: the first thread with a scheduler to use the channel.
    let owner = spawn_thread(move || {
        c.balance();
        owned_tx.send(()).unwrap();
        while !s.load(Ordering::Relaxed) {
            std::hint::black_box(c.balance());
        }
    });
    owned_rx.recv().unwrap();
    let endings = fork_while(
        40,
        std::thread::yield_now,
        || use_channel_in_child(&ch),
        || (),
    );
    stop.store(true, Ordering::Relaxed);
    owner.join().unwrap();
    assert_no_child_hung(&endings);
}

#[test]
fn the_forking_threads_mailbox_is_usable_in_the_child_while_another_thread_posts_to_it() {
    if skipped_under_valgrind() {
        return;
    }
    let _serial = serial();
    // A blocked tasklet: inserting it is refused (quietly, when the mail is read), so the
    // poster can post as fast as it likes and nothing changes.
    let gate: Channel<u32> = Channel::new();
    let g = gate.clone();
    let blocked = spawn(move || g.receive()).unwrap();
    scheduler::run().unwrap();
    let remote = blocked.remote();
    let endings = fork_while(
        40,
        move || {
            let _ = remote.insert();
        },
        || {
            // Reads this thread's mail: its mailbox lock must not be held by a vanished
            // poster.
            scheduler::schedule().unwrap();
            0
        },
        // Read the mail here too, so the mailbox stays short.
        || scheduler::schedule().unwrap(),
    );
    blocked.kill().unwrap();
    assert!(
        endings.iter().all(|e| matches!(e, Ending::Exited(0, _))),
        "{endings:?}"
    );
}

#[test]
fn a_channel_only_the_forking_thread_used_works_in_the_child_also_from_a_new_thread() {
    if under_qemu_user() {
        eprintln!("skipped under qemu-user: threads in forked children are unreliable there");
        return;
    }
    let _serial = serial();
    scheduler::init_thread();
    let ch: Channel<u32> = Channel::new();
    ch.set_preference(1); // biased to this thread
    let ending = in_child(DEADLINE, || {
        // A new thread of the child ends the bias (membarrier in the child), sends, and the
        // forking thread receives: deadlock detection counts the new thread.
        let c = ch.clone();
        let sender = spawn_thread(move || c.send(11).unwrap());
        let got = ch.receive();
        sender.join().unwrap();
        let spawned = spawn(|| 5).map(|t| {
            scheduler::run().unwrap();
            t.result::<i32>()
        });
        match (got, spawned) {
            (Ok(11), Ok(Some(5))) => 0,
            other => {
                eprintln!("{other:?}");
                1
            }
        }
    });
    assert_exited_0(ending);
}
