//! Death-test helpers: run a body in a `fork()`ed child and see how it ended.
//!
//! Never a re-executed test binary (that cannot work under qemu-user; see cross-arch.md). The
//! child redirects its fd 2 to a pipe and runs the body; the parent reads the pipe, `waitpid`s,
//! and returns a [`Death`]: the wait status and what the child wrote.
//!
//! The child of a multi-threaded process may only rely on what the fork copied: every forking
//! test holds one lock for its whole run ([`serial`]), so no other thread of the binary is
//! inside the allocator, the guard registry or the pool when one forks (or mapping memory where
//! a test expects a hole), and what a child runs is created by the parent before the fork where
//! possible. Children leave with `_exit`, never through the harness.
#![allow(dead_code)] // each test binary uses a part

use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Serialises the forking tests of one test binary: see the module docs. Taken first thing by every test.
static SERIAL: Mutex<()> = Mutex::new(());

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

    pub fn describe(&self) -> String {
        match (self.signal(), self.exit_code()) {
            (Some(s), _) => format!("signal {s}"),
            (_, Some(c)) => format!("exit code {c}"),
            _ => format!("status {:#x}", self.status),
        }
    }
}

/// Generous: a child under qemu-user takes well under a second.
pub const CHILD_DEADLINE: Duration = Duration::from_secs(30);

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

/// How many times a child that hangs is killed and forked again before the test fails.
/// Under qemu-user a `fork` of a process with many threads occasionally leaves the child
/// stuck inside the emulator (seen about once in ten full runs of this file on riscv64, never
/// natively, and never when the hanging test runs alone); a child that ends is never retried.
const CHILD_ATTEMPTS: usize = 3;

/// Runs `body` in a forked child whose fd 2 is a pipe to us, and returns how it ended. The
/// child exits with 0 if `body` returns, 101 if it panics. The caller holds [`serial`].
pub fn in_child(mut body: impl FnMut()) -> Death {
    for attempt in 1..=CHILD_ATTEMPTS {
        // Each child runs on its own copy of the closure's state: the parent's is untouched.
        match fork_and_wait(&mut body) {
            Some(death) => return death,
            None if attempt < CHILD_ATTEMPTS => {
                eprintln!("the child hung for {CHILD_DEADLINE:?}; killed it, forking again");
            }
            None => {}
        }
    }
    panic!("the child did not end within {CHILD_DEADLINE:?}, {CHILD_ATTEMPTS} times");
}

/// Forks a child that runs `body` and exits, and waits for it: `None` if it had to be killed
/// after `CHILD_DEADLINE`.
fn fork_and_wait(body: &mut dyn FnMut()) -> Option<Death> {
    let mut fds = [0; 2];
    // SAFETY: pipe writes two fds into the array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    // SAFETY: the child only uses what fork copied (see the module docs) and leaves by _exit.
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
        let code = match panic::catch_unwind(AssertUnwindSafe(&mut *body)) {
            Ok(()) => 0,
            Err(_) => 101,
        };
        // SAFETY: ends the child without running the parent's atexit handlers or harness.
        unsafe { libc::_exit(code) };
    }
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
