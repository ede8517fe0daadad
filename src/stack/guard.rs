//! How guard pages are installed: `madvise(MADV_GUARD_INSTALL)` where the kernel really does
//! it, `mprotect(PROT_NONE)` otherwise, decided once per process by a probe that checks the
//! result, not the return code.
//!
//! `MADV_GUARD_INSTALL` (Linux 6.13) turns pages of a mapping into guard regions without
//! changing the mapping: no new VMA, so a million guarded stacks side by side in a few large
//! mappings stay far below `vm.max_map_count`. `mprotect` per guard splits the mapping, two
//! VMAs per stack; the arenas then hold back a reserve of mappings (see
//! [`arena`](super::arena)).
//!
//! The probe maps two pages, asks for a guard on the lower one and then checks that the kernel
//! refuses to read it: a `write(2)` from it into a pipe must fail with `EFAULT` (qemu-user
//! and older kernels may accept the call, or return `EINVAL`, without installing anything).
//! It also checks whether `process_madvise` on the calling process accepts the advice, which
//! lets one system call install the guards of many stacks at once.
//!
//! The environment variable `MICROTHREAD_STACK_GUARD=mprotect`, read by the probe, forces the
//! fallback (for tests of it and for kernels whose guard regions misbehave).
//!
//! ```
//! use microthread::stack::{guard_mechanism, GuardMechanism};
//! let m = guard_mechanism();
//! assert!(matches!(m, GuardMechanism::MadviseGuard | GuardMechanism::Mprotect));
//! assert_eq!(guard_mechanism(), m, "probed once, the same answer every time");
//! ```

use std::io;
use std::sync::OnceLock;

use super::page_size;

/// `MADV_GUARD_INSTALL` (Linux 6.13+; the libc crate may not define it).
const MADV_GUARD_INSTALL: libc::c_int = 102;
/// `PIDFD_SELF_THREAD`: a pidfd naming the calling thread (Linux 6.14+), whose memory is the
/// process's. Used with `process_madvise`, and never an fd a forked child could inherit.
const PIDFD_SELF: libc::c_int = -10000;
/// The most ranges one system call here takes: 64 (the kernel takes up to 1,024, but the
/// `iovec` array lives on the caller's stack, which may be a small coroutine's).
pub(crate) const MAX_BATCH: usize = 64;

/// How this process installs the guard below each stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardMechanism {
    /// `madvise(MADV_GUARD_INSTALL)`: a guard costs no mapping, so the number of mappings
    /// does not grow with the number of stacks.
    MadviseGuard,
    /// `mprotect(PROT_NONE)`: each guard splits its arena, two mappings per stack, which
    /// `vm.max_map_count` limits.
    Mprotect,
}

impl GuardMechanism {
    /// A short name: `"madvise(MADV_GUARD_INSTALL)"` or `"mprotect(PROT_NONE)"`.
    ///
    /// ```
    /// use microthread::stack::guard_mechanism;
    /// assert!(guard_mechanism().name().contains("PROT_NONE") || guard_mechanism().name().contains("GUARD"));
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            GuardMechanism::MadviseGuard => "madvise(MADV_GUARD_INSTALL)",
            GuardMechanism::Mprotect => "mprotect(PROT_NONE)",
        }
    }
}

/// What the probe found.
#[derive(Clone, Copy)]
struct Probe {
    mechanism: GuardMechanism,
    /// Whether `process_madvise(PIDFD_SELF, ..)` applies `MADV_GUARD_INSTALL` and
    /// `MADV_DONTNEED` to many ranges in one call.
    batched: bool,
}

fn probe() -> Probe {
    static PROBE: OnceLock<Probe> = OnceLock::new();
    *PROBE.get_or_init(|| {
        let forced = std::env::var_os("MICROTHREAD_STACK_GUARD").is_some_and(|v| v == "mprotect");
        if forced {
            return Probe {
                mechanism: GuardMechanism::Mprotect,
                batched: false,
            };
        }
        // SAFETY: probing on pages of our own, mapped and unmapped here.
        unsafe { run_probe() }
    })
}

/// The mechanism this process uses, probed on first use.
///
/// ```
/// use microthread::stack::{guard_mechanism, GuardMechanism};
/// // Linux 6.13 and later, natively: no mapping per guard.
/// println!("guards by {}", guard_mechanism().name());
/// # let _ = GuardMechanism::Mprotect;
/// ```
pub fn guard_mechanism() -> GuardMechanism {
    probe().mechanism
}

/// Whether a `write(2)` of one byte from `addr` into a pipe fails with `EFAULT`: the kernel
/// cannot read the page, without a fault in this process.
fn unreadable(addr: *const u8) -> bool {
    let mut fds = [0; 2];
    // SAFETY: pipe writes two fds into the array.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: write only reads (or fails to read) the given byte.
    let r = unsafe { libc::write(fds[1], addr as *const libc::c_void, 1) };
    let efault = r == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT);
    // SAFETY: closing the fds we opened.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    efault
}

/// # Safety
/// None beyond the calls' own: every range touched is mapped here.
unsafe fn run_probe() -> Probe {
    let page = page_size();
    let fallback = Probe {
        mechanism: GuardMechanism::Mprotect,
        batched: false,
    };
    let map = |len| {
        // SAFETY: an anonymous private mapping with no address hint.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        (p != libc::MAP_FAILED).then_some(p as *mut u8)
    };
    let Some(p) = map(4 * page) else {
        return fallback;
    };
    // Pages 0 and 2 get guards (0 by madvise, 2 by process_madvise); 1 and 3 stay usable.
    // SAFETY: page 0 of our mapping.
    let rc = unsafe { libc::madvise(p.cast(), page, MADV_GUARD_INSTALL) };
    let works = rc == 0 && unreadable(p) && !unreadable(p.wrapping_add(page));
    let batched = works && {
        let iov = [libc::iovec {
            iov_base: p.wrapping_add(2 * page).cast(),
            iov_len: page,
        }];
        // SAFETY: one range of our own mapping.
        let n = unsafe {
            libc::syscall(
                libc::SYS_process_madvise,
                PIDFD_SELF,
                iov.as_ptr(),
                1usize,
                MADV_GUARD_INSTALL,
                0u32,
            )
        };
        n == page as libc::c_long
            && unreadable(p.wrapping_add(2 * page))
            && !unreadable(p.wrapping_add(3 * page))
    };
    // SAFETY: unmapping the probe's own mapping.
    unsafe { libc::munmap(p.cast(), 4 * page) };
    if works {
        Probe {
            mechanism: GuardMechanism::MadviseGuard,
            batched,
        }
    } else {
        fallback
    }
}

/// Applies `advice` to each range (start, length), in as few system calls as the kernel
/// allows.
///
/// # Safety
/// Each range lies in a mapping the caller owns and that nothing else uses meanwhile (the
/// advice may discard its contents).
unsafe fn advise(ranges: &[(usize, usize)], advice: libc::c_int) -> io::Result<()> {
    if probe().batched {
        for chunk in ranges.chunks(MAX_BATCH) {
            let mut iov = [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; MAX_BATCH];
            let mut total = 0;
            for (v, &(start, len)) in iov.iter_mut().zip(chunk) {
                *v = libc::iovec {
                    iov_base: start as *mut libc::c_void,
                    iov_len: len,
                };
                total += len;
            }
            // SAFETY: the ranges are ours (the caller's obligation); the iovec array is valid
            // for `chunk.len()` entries.
            let n = unsafe {
                libc::syscall(
                    libc::SYS_process_madvise,
                    PIDFD_SELF,
                    iov.as_ptr(),
                    chunk.len(),
                    advice,
                    0u32,
                )
            };
            if n < 0 || n as usize != total {
                // Partly done: do the rest one by one (the calls are idempotent).
                // SAFETY: as the caller promised.
                unsafe { advise_each(chunk, advice)? };
            }
        }
        Ok(())
    } else {
        // SAFETY: as the caller promised.
        unsafe { advise_each(ranges, advice) }
    }
}

/// # Safety
/// As [`advise`].
unsafe fn advise_each(ranges: &[(usize, usize)], advice: libc::c_int) -> io::Result<()> {
    for &(start, len) in ranges {
        // SAFETY: as the caller promised.
        if unsafe { libc::madvise(start as *mut libc::c_void, len, advice) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Makes each range (start, length) a guard: any access faults.
///
/// # Safety
/// Each range lies in a mapping the caller owns and nothing refers to its contents.
pub(crate) unsafe fn install(ranges: &[(usize, usize)]) -> io::Result<()> {
    match guard_mechanism() {
        // SAFETY: as the caller promised.
        GuardMechanism::MadviseGuard => unsafe { advise(ranges, MADV_GUARD_INSTALL) },
        GuardMechanism::Mprotect => {
            for &(start, len) in ranges {
                // SAFETY: as the caller promised.
                if unsafe { libc::mprotect(start as *mut libc::c_void, len, libc::PROT_NONE) } != 0
                {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        }
    }
}

/// Gives the memory of each range (start, length) back to the OS: the next access finds
/// zero-filled pages.
///
/// # Safety
/// Each range lies in a read-write mapping the caller owns, whose contents nobody needs.
pub(crate) unsafe fn discard(ranges: &[(usize, usize)]) -> io::Result<()> {
    // SAFETY: as the caller promised.
    unsafe { advise(ranges, libc::MADV_DONTNEED) }
}

/// `MADV_POPULATE_WRITE` (Linux 5.14+).
const MADV_POPULATE_WRITE: libc::c_int = 23;

/// Commits each range (start, length) as if written, in one system call per batch where
/// `process_madvise` takes a batch; otherwise does nothing (the pages fault in when used).
///
/// # Safety
/// Each range lies in a read-write mapping the caller owns.
pub(crate) unsafe fn populate(ranges: &[(usize, usize)]) {
    if probe().batched {
        // SAFETY: as the caller promised. A failure (an old kernel's EINVAL) leaves the pages
        // to fault in when used.
        let _ = unsafe { advise(ranges, MADV_POPULATE_WRITE) };
    }
}
