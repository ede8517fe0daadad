//! Death tests by `fork()`: run a body in a child whose stderr is a pipe to the parent, and
//! report how the child ended and what it wrote. Never a re-executed test binary (qemu-user
//! cannot). For test files that include this one with `#[path = "common/death.rs"] mod
//! death;` (tests/guard_page.rs, tests/coroutine_soundness.rs, ...).
//!
//! A child of a multi-threaded process may only rely on what the fork copied: callers hold
//! [`serial`] for the whole test, so no other thread of the test binary is inside the
//! allocator, the guard registry or a pool when one forks. Children leave with `_exit`.
#![allow(dead_code)]

use std::hint::black_box;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

/// Serialises the death tests of one binary: taken first thing by each.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// How a forked child ended, and what it wrote to its stderr.
#[derive(Debug)]
pub struct Death {
    pub status: libc::c_int,
    pub stderr: String,
}

impl Death {
    pub fn signal(&self) -> Option<libc::c_int> {
        libc::WIFSIGNALED(self.status).then(|| libc::WTERMSIG(self.status))
    }

    pub fn exit_code(&self) -> Option<libc::c_int> {
        libc::WIFEXITED(self.status).then(|| libc::WEXITSTATUS(self.status))
    }

    pub fn describe(&self) -> String {
        match (self.signal(), self.exit_code()) {
            (Some(s), _) => format!("signal {s}"),
            (_, Some(c)) => format!("exit code {c}"),
            _ => format!("status {:#x}", self.status),
        }
    }

    #[track_caller]
    pub fn assert_killed_by_sigsegv(&self) {
        assert_eq!(
            self.signal(),
            Some(libc::SIGSEGV),
            "the child should die of SIGSEGV; it ended with {}, stderr: {:?}",
            self.describe(),
            self.stderr
        );
    }

    /// Asserts that the child aborted (SIGABRT) and its stderr says `text`.
    #[track_caller]
    pub fn assert_aborted_saying(&self, text: &str) {
        assert_eq!(self.signal(), Some(libc::SIGABRT), "{}", self.describe());
        assert!(self.stderr.contains(text), "{:?}", self.stderr);
    }

    /// Asserts that the child's stderr holds the overflow report for context `id` with a
    /// stack of `size` usable bytes (whatever the report calls the context).
    #[track_caller]
    pub fn assert_reports_overflow(&self, id: u64, size: usize) {
        let tail = format!(" {id} overflowed its stack of {size} bytes\n");
        assert!(
            self.stderr.contains("microthread: ") && self.stderr.contains(&tail),
            "expected the overflow report \"microthread: ...{tail:?}\" in the child's stderr \
             (ended with {}): {:?}",
            self.describe(),
            self.stderr
        );
    }
}

/// Generous: a child under qemu-user takes well under a second.
const CHILD_DEADLINE: Duration = Duration::from_secs(30);
/// A child that hangs is killed and forked again this often: under qemu-user a `fork` of a
/// process with many threads occasionally leaves the child stuck inside the emulator (seen
/// about once in ten full runs of tests/guard_page.rs on riscv64, never natively); a child
/// that ends is never retried.
const CHILD_ATTEMPTS: usize = 3;

/// Runs `body` in a forked child whose fd 2 is a pipe to us, and returns how it ended. The
/// child exits with 0 if `body` returns, 101 if it panics. The caller holds [`serial`].
pub fn in_child(mut body: impl FnMut()) -> Death {
    for attempt in 1..=CHILD_ATTEMPTS {
        match fork_once() {
            Forked::Child => {
                let code = match panic::catch_unwind(AssertUnwindSafe(&mut body)) {
                    Ok(()) => 0,
                    Err(_) => 101,
                };
                // SAFETY: ends the child without running the parent's atexit handlers or
                // harness.
                unsafe { libc::_exit(code) };
            }
            Forked::Parent(Some(death)) => return death,
            Forked::Parent(None) => retry_or_give_up(attempt),
        }
    }
    unreachable!("retry_or_give_up panics on the last attempt")
}

/// Forks; returns `None` in the child (fd 2 a pipe to the parent), which must then end on
/// its own (for example by returning from its thread, to die in the thread's teardown), and
/// `Some` of how the child ended in the parent. The caller holds [`serial`].
pub fn fork_then() -> Option<Death> {
    for attempt in 1..=CHILD_ATTEMPTS {
        match fork_once() {
            Forked::Child => return None,
            Forked::Parent(Some(death)) => return Some(death),
            Forked::Parent(None) => retry_or_give_up(attempt),
        }
    }
    unreachable!("retry_or_give_up panics on the last attempt")
}

fn retry_or_give_up(attempt: usize) {
    if attempt == CHILD_ATTEMPTS {
        panic!("the child did not end within {CHILD_DEADLINE:?}, {CHILD_ATTEMPTS} times");
    }
    eprintln!("the child hung for {CHILD_DEADLINE:?}; killed it, forking again");
}

enum Forked {
    /// In the child, with fd 2 redirected to the parent.
    Child,
    /// In the parent: how the child ended, or `None` if it was killed after the deadline.
    Parent(Option<Death>),
}

fn fork_once() -> Forked {
    let mut fds = [0; 2];
    // SAFETY: pipe writes two fds into the array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    // SAFETY: the child only uses what fork copied (see the module docs).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: plain system calls on our own fds; no core file for an intended crash.
        unsafe {
            let no_core = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &no_core);
            libc::close(fds[0]);
            libc::dup2(fds[1], 2);
            libc::close(fds[1]);
        }
        return Forked::Child;
    }
    Forked::Parent(wait_for(pid, fds[0], fds[1]))
}

/// Reads the child's stderr until it ends and reaps it; `None` if it had to be killed.
fn wait_for(pid: libc::pid_t, read_end: libc::c_int, write_end: libc::c_int) -> Option<Death> {
    let fds = [read_end, write_end];
    // SAFETY: closing our copy of the write end, so that reading sees EOF when the child ends.
    unsafe { libc::close(fds[1]) };
    let started = Instant::now();
    let mut stderr = Vec::new();
    loop {
        let mut pfd = libc::pollfd {
            fd: fds[0],
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, 100) };
        if n > 0 {
            let mut buf = [0u8; 4096];
            // SAFETY: reads into our buffer.
            let got = unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len()) };
            if got <= 0 {
                break;
            }
            stderr.extend_from_slice(&buf[..got as usize]);
        }
        if started.elapsed() > CHILD_DEADLINE {
            // SAFETY: killing and reaping our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, ptr::null_mut(), 0);
                libc::close(fds[0]);
            }
            eprintln!(
                "stderr of the hung child: {:?}",
                String::from_utf8_lossy(&stderr)
            );
            return None;
        }
    }
    // SAFETY: done with the read end.
    unsafe { libc::close(fds[0]) };
    let mut status = 0;
    // SAFETY: reaping our own child.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid, "waitpid: {}", std::io::Error::last_os_error());
    Some(Death {
        status,
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}

/// Whether this binary runs under qemu-user: built for a non-x86 architecture, on a machine
/// whose `/proc/cpuinfo` (which qemu-user passes through from the host) describes an x86 CPU.
pub fn under_qemu_user() -> bool {
    if cfg!(any(target_arch = "x86_64", target_arch = "x86")) {
        return false;
    }
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|c| c.contains("GenuineIntel") || c.contains("AuthenticAMD"))
        .unwrap_or(false)
}

/// Recurses without bound, 1 KiB of stack per frame that the optimiser cannot remove.
#[inline(never)]
pub fn recurse(depth: u64) -> u64 {
    let mut frame = [0u8; 1024];
    frame[(depth % 1024) as usize] = depth as u8;
    let frame = black_box(&mut frame);
    if black_box(depth) == u64::MAX {
        return 0;
    }
    recurse(depth + 1).wrapping_add(u64::from(frame[7]))
}
