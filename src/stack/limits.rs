//! The OS limits a stack can run into, and errors that say which one and how to raise it.
//!
//! When `mmap` or a guard's `mprotect` fails with `ENOMEM`, the error's message names the
//! likely limit: the mapping count (`vm.max_map_count`), the address-space limit
//! (`RLIMIT_AS`, `ulimit -v`) or strict overcommit (`vm.overcommit_memory = 2`), with the
//! numbers read at that moment and the command that raises it. The error keeps its kind
//! (`OutOfMemory`) and, as its source, the OS error.
//!
//! ```
//! use microthread::stack::limits;
//! assert!(limits::max_map_count() > 0);
//! ```

use std::io;
use std::sync::OnceLock;

/// `/proc/sys/vm/max_map_count`, read once (65,530 if it cannot be read).
pub fn max_map_count() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| read_number("/proc/sys/vm/max_map_count").unwrap_or(65_530))
}

fn read_number(path: &str) -> Option<usize> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// How many mappings this process has now (lines of `/proc/self/maps`).
pub fn map_count() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/maps").ok()?;
    Some(text.lines().count())
}

/// `RLIMIT_AS`'s soft limit in bytes, `None` if unlimited.
fn address_space_limit() -> Option<u64> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut r) };
    (rc == 0 && r.rlim_cur != libc::RLIM_INFINITY).then_some(r.rlim_cur)
}

/// The explanation of an `ENOMEM` from mapping `len` bytes, as one sentence.
fn explain_enomem(what: &str, len: usize) -> String {
    let max = max_map_count();
    if let Some(n) = map_count() {
        if n + 16 >= max {
            return format!(
                "{what} failed: the process has {n} memory mappings and vm.max_map_count is \
                 {max}; raise it with `sysctl -w vm.max_map_count={}` (or have fewer live \
                 stacks)",
                (max * 2).max(262_144)
            );
        }
    }
    if let Some(limit) = address_space_limit() {
        return format!(
            "{what} of {len} bytes failed: the address-space limit RLIMIT_AS is {limit} bytes; \
             raise it with `ulimit -v unlimited` (or `ulimit -v` in KiB) before starting the \
             program"
        );
    }
    if read_number("/proc/sys/vm/overcommit_memory") == Some(2) {
        return format!(
            "{what} of {len} bytes failed: vm.overcommit_memory is 2 (strict), so reserved \
             stack space counts against the commit limit; allow overcommit with \
             `sysctl -w vm.overcommit_memory=0` or raise vm.overcommit_ratio"
        );
    }
    format!("{what} of {len} bytes failed: the system is out of memory or address space")
}

fn with_message(e: io::Error, message: String) -> io::Error {
    io::Error::new(e.kind(), Explained { message, source: e })
}

/// An explained OS error: the sentence, then the OS's own words as the source.
#[derive(Debug)]
struct Explained {
    message: String,
    source: io::Error,
}

impl std::fmt::Display for Explained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.source)
    }
}

impl std::error::Error for Explained {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// `e` from mapping `len` bytes of stacks, explained if it is `ENOMEM`.
pub(crate) fn explain_map_failure(e: io::Error, len: usize) -> io::Error {
    if e.raw_os_error() == Some(libc::ENOMEM) {
        let m = explain_enomem("mapping a stack arena", len);
        with_message(e, m)
    } else {
        e
    }
}

/// `e` from installing a guard, explained if it is `ENOMEM` (an `mprotect` that would split
/// a mapping beyond `vm.max_map_count`).
pub(crate) fn explain_guard_failure(e: io::Error) -> io::Error {
    if e.raw_os_error() == Some(libc::ENOMEM) {
        let m = explain_enomem("installing a stack guard", 0);
        with_message(e, m)
    } else {
        e
    }
}

/// The error when the `mprotect` fallback has carved `budget` slots.
pub(crate) fn fallback_budget_exhausted(budget: usize) -> io::Error {
    let max = max_map_count();
    io::Error::new(
        io::ErrorKind::OutOfMemory,
        format!(
            "no new stack: this kernel has no MADV_GUARD_INSTALL (Linux 6.13+), so each \
             guard is an mprotect costing two memory mappings, and {budget} stacks already \
             use most of vm.max_map_count = {max} (the rest is kept for the program's own \
             allocations); raise it with `sysctl -w vm.max_map_count={}`",
            (max * 4).max(262_144)
        ),
    )
}
