//! [`install_dump_signal`]: a signal that prints the process-wide dump to stderr, as Go's
//! runtime prints its goroutines on `SIGQUIT`.
//!
//! A signal handler may only do async-signal-safe things: no allocation, no lock, no
//! formatting. So the handler only writes one byte to a pipe (`write(2)` is async-signal-safe;
//! the write end is non-blocking, so a full pipe drops the byte instead of blocking: a dump
//! is coming anyway), and a dedicated thread, `microthread-dump`, blocked reading that pipe,
//! makes the dump ([`dump_all`](super::dump_all)) and writes it to stderr. That thread never
//! gets a scheduler of its own. Signals that arrive while it dumps make one more dump.

use std::ffi::c_int;
use std::io::{self, Write};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;

/// The pipe's write end, for the handler; -1 before the first installation.
static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);

/// The process whose `microthread-dump` thread reads the pipe (a forked child has no such
/// thread: installing again there starts one), and the pipe's read end.
static DUMPER: Mutex<Option<(libc::pid_t, c_int)>> = Mutex::new(None);

/// Makes `signal` print [`dump_all`](super::dump_all) to stderr, each time it arrives, and
/// go on (unlike Go's `SIGQUIT`, the process does not exit). Opt-in: nothing is installed
/// unless this is called. `SIGQUIT` is the conventional choice (Ctrl-\ in a terminal,
/// `kill -QUIT pid`); `SIGUSR1` if the program must keep `SIGQUIT`'s default. It replaces
/// whatever handler `signal` had.
///
/// The handler itself only writes a byte to a pipe (async-signal-safe); a dedicated thread,
/// `microthread-dump`, started by the first call, makes the dump and writes it. The dump
/// asks every thread with a scheduler for its tasklets, so a thread busy in native code
/// shows as a line saying it did not answer (after [`DEFAULT_ANSWER_TIMEOUT`](super::DEFAULT_ANSWER_TIMEOUT)).
/// A forked child inherits the handler but not the thread: call this again in the child.
///
/// # Errors
/// `InvalidInput` for a signal number that is not a catchable signal, and for `SIGSEGV`,
/// `SIGBUS`, `SIGILL`, `SIGFPE` and `SIGTRAP` (faults: the stack-overflow report owns
/// `SIGSEGV` and `SIGBUS`, and a fault handler that returns re-runs the faulting
/// instruction); the OS error if the pipe, the thread or `sigaction` fails.
///
/// ```
/// use microthread::scheduler;
/// scheduler::install_dump_signal(libc::SIGUSR1)?;
/// // `kill -USR1 <pid>` now prints every thread's tasklets to stderr.
/// let err = scheduler::install_dump_signal(libc::SIGSEGV).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
/// assert_eq!(scheduler::install_dump_signal(0).unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn install_dump_signal(signal: c_int) -> io::Result<()> {
    let refused = [
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGILL,
        libc::SIGFPE,
        libc::SIGTRAP,
        libc::SIGKILL,
        libc::SIGSTOP,
    ];
    let max = libc::SIGRTMAX();
    if signal <= 0 || signal > max || refused.contains(&signal) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "signal {signal} cannot print the tasklet dump (not a catchable signal, or a \
                 fault signal)"
            ),
        ));
    }
    start_dumper()?;
    // SAFETY: a zeroed sigaction is valid; the handler is an `extern "C" fn(c_int)` that
    // lives for the whole process and does only async-signal-safe things.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_dump_signal as extern "C" fn(c_int) as usize;
        action.sa_flags = libc::SA_RESTART | libc::SA_ONSTACK;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(signal, &action, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Starts the `microthread-dump` thread and its pipe, unless this process has them.
fn start_dumper() -> io::Result<()> {
    let mut dumper = DUMPER.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: no preconditions.
    let pid = unsafe { libc::getpid() };
    if matches!(*dumper, Some((p, _)) if p == pid) {
        return Ok(());
    }
    let mut fds = [0 as c_int; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let [read, write] = fds;
    // SAFETY: our own new descriptor.
    unsafe {
        let flags = libc::fcntl(write, libc::F_GETFL);
        libc::fcntl(write, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    let spawned = std::thread::Builder::new()
        .name("microthread-dump".into())
        .spawn(move || dump_on_each_byte(read));
    if let Err(e) = spawned {
        // SAFETY: our own descriptors, used by nobody else.
        unsafe {
            libc::close(read);
            libc::close(write);
        }
        return Err(e);
    }
    let old_write = PIPE_WRITE.swap(write, Ordering::AcqRel);
    if let Some((_, old_read)) = dumper.replace((pid, read)) {
        // A forked child's copy of the parent's pipe, which no thread of ours reads.
        // SAFETY: descriptors of ours; the handler uses the new write end from now on (a
        // handler that loaded the old one just now writes into a pipe nobody reads).
        unsafe {
            libc::close(old_read);
            libc::close(old_write);
        }
    }
    Ok(())
}

/// The `microthread-dump` thread: a dump to stderr for each batch of bytes read.
fn dump_on_each_byte(read: c_int) {
    let mut buf = [0u8; 64];
    loop {
        // SAFETY: `buf` holds 64 bytes; `read` is our pipe's read end.
        let n = unsafe { libc::read(read, buf.as_mut_ptr().cast(), buf.len()) };
        if n == 0 {
            return;
        }
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        let text = super::dump_all().to_string();
        let _ = io::stderr().lock().write_all(text.as_bytes());
    }
}

/// The handler: one byte into the pipe, errno kept. Async-signal-safe.
extern "C" fn on_dump_signal(_: c_int) {
    // SAFETY: `__errno_location` is the calling thread's errno; `write` is
    // async-signal-safe, and the descriptor is our pipe's write end (or -1).
    unsafe {
        let errno = *libc::__errno_location();
        let fd = PIPE_WRITE.load(Ordering::Relaxed);
        if fd >= 0 {
            libc::write(fd, b"d".as_ptr().cast(), 1);
        }
        *libc::__errno_location() = errno;
    }
}
