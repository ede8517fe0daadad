//! The debugger's root: `microthread_debug_root`, a `#[no_mangle]` `repr(C)` record that
//! gdb/microthread.py finds by its symbol name and reads from the process's memory, live or
//! in a core file, to list every thread's tasklets (`info tasklets`) and to unwind a
//! suspended one (`tasklet bt N`).
//!
//! It costs the hot paths nothing: the debugger reads the schedulers' and tasklets' own fields,
//! at offsets the root publishes (computed by `offset_of!` at compile time, and for a
//! tasklet's name, whose `Option<String>` layout Rust does not fix, by looking at a sample
//! value once). What is kept up to date is only the list of threads: each scheduler's
//! [`DebugThread`] is linked when its shared part is made and unlinked when it ends, under
//! the thread registry's lock (so a forked child keeps only the forking thread's). A
//! debugger that stops the process in the middle of a change may see a half-linked entry;
//! the script bounds its walks and says so.
//!
//! Layout (all words little-endian `u64`, in this order; `version` 1):
//! `magic` (b"mthread\0"), `version`, `threads` (head of the `DebugThread` list), then the
//! [`Layout`] words, then the four [`NameLayout`] words. A `DebugThread` is `next`,
//! `scheduler` (the `Scheduler`, null until its thread starts it), `os_tid` (the kernel's
//! thread id, for matching gdb's threads), `name_ptr`, `name_len` (the thread's name, UTF-8).
//! The tasklet state is derived as `scheduler::dump` does: running if it is the scheduler's
//! `current`; else sleeping, sending or receiving by `blocked` (`SLEEPING`, > 0, < 0); else
//! runnable if in the ring (`next` not null); else waiting in `run()` if it is the innermost
//! `run` caller; else paused. Dead tasklets (`life` = `life_dead` or `life_bound`) are
//! skipped. A suspended tasklet's saved frame is at the `context` word (its saved stack
//! pointer; 0 while it runs), laid out as the top of `asm/<arch>.S` draws it.

use std::cell::Cell;
use std::mem::{offset_of, size_of};
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};

use super::Scheduler;
use crate::stack::DEBUG_RANGE_OFFSETS;
use crate::tasklet::{Inner, Life, SLEEPING};

/// The root: see the module docs for what the debugger reads.
#[repr(C)]
pub(crate) struct DebugRoot {
    magic: [u8; 8],
    version: u64,
    threads: AtomicPtr<DebugThread>,
    layout: Layout,
    name: NameLayout,
}

/// Offsets (bytes) and constants the debugger needs, fixed at compile time.
#[repr(C)]
struct Layout {
    /// 1 x86_64, 2 aarch64, 3 riscv64, 0 another.
    arch: u64,
    sched_current: u64,
    sched_main: u64,
    sched_all: u64,
    sched_innermost: u64,
    inner_id: u64,
    inner_is_main: u64,
    inner_all_next: u64,
    inner_ring_next: u64,
    inner_context: u64,
    inner_stack: u64,
    inner_life: u64,
    inner_blocked: u64,
    inner_preserve_fp_env: u64,
    range_base: u64,
    range_guard: u64,
    range_usable: u64,
    life_new: u64,
    life_started: u64,
    life_dead: u64,
    life_bound: u64,
    blocked_sleeping: u64,
}

/// Where a tasklet's name is: `inner_name` is the offset of its `Option<String>` in the
/// tasklet, `ptr`/`len`/`cap` the offsets of the string's words in that; `u64::MAX` until
/// known, or if the sample did not tell. A name is present when `ptr` is not null and
/// `len <= cap <= isize::MAX` (a `None` fails that test on every layout Rust uses).
#[repr(C)]
struct NameLayout {
    inner_name: AtomicU64,
    ptr: AtomicU64,
    len: AtomicU64,
    cap: AtomicU64,
}

const ARCH: u64 = if cfg!(target_arch = "x86_64") {
    1
} else if cfg!(target_arch = "aarch64") {
    2
} else if cfg!(target_arch = "riscv64") {
    3
} else {
    0
};

/// Found by gdb/microthread.py by this name; see the module docs.
#[no_mangle]
#[used]
#[allow(non_upper_case_globals)]
pub(crate) static microthread_debug_root: DebugRoot = DebugRoot {
    magic: *b"mthread\0",
    version: 1,
    threads: AtomicPtr::new(std::ptr::null_mut()),
    layout: Layout {
        arch: ARCH,
        sched_current: offset_of!(Scheduler, current) as u64,
        sched_main: offset_of!(Scheduler, main) as u64,
        sched_all: offset_of!(Scheduler, all) as u64,
        sched_innermost: offset_of!(Scheduler, innermost) as u64,
        inner_id: offset_of!(Inner, id) as u64,
        inner_is_main: offset_of!(Inner, is_main) as u64,
        inner_all_next: offset_of!(Inner, all_next) as u64,
        inner_ring_next: offset_of!(Inner, next) as u64,
        inner_context: offset_of!(Inner, context) as u64,
        inner_stack: offset_of!(Inner, stack) as u64,
        inner_life: offset_of!(Inner, life) as u64,
        inner_blocked: offset_of!(Inner, blocked) as u64,
        inner_preserve_fp_env: offset_of!(Inner, preserve_fp_env) as u64,
        range_base: DEBUG_RANGE_OFFSETS[0] as u64,
        range_guard: DEBUG_RANGE_OFFSETS[1] as u64,
        range_usable: DEBUG_RANGE_OFFSETS[2] as u64,
        life_new: Life::New as u64,
        life_started: Life::Started as u64,
        life_dead: Life::Dead as u64,
        life_bound: Life::Bound as u64,
        blocked_sleeping: SLEEPING as u64,
    },
    name: NameLayout {
        inner_name: AtomicU64::new(u64::MAX),
        ptr: AtomicU64::new(u64::MAX),
        len: AtomicU64::new(u64::MAX),
        cap: AtomicU64::new(u64::MAX),
    },
};

// What the debugger reads as one word must be one word (a nullable pointer or a `u64`).
const _: () = {
    assert!(size_of::<Option<crate::context::Context>>() == 8 || cfg!(target_pointer_width = "32"));
    assert!(size_of::<Option<crate::stack::Stack>>() == size_of::<usize>());
    assert!(size_of::<Life>() == 1);
};

/// One thread's entry in the debugger's list (see the module docs for its layout).
#[repr(C)]
pub(crate) struct DebugThread {
    next: AtomicPtr<DebugThread>,
    scheduler: AtomicPtr<u8>,
    os_tid: AtomicU64,
    name_ptr: AtomicPtr<u8>,
    name_len: AtomicUsize,
    /// Owns the bytes `name_ptr` points to (not read by the debugger).
    name: OnceLock<Box<str>>,
}

impl DebugThread {
    pub(crate) const fn new() -> DebugThread {
        DebugThread {
            next: AtomicPtr::new(std::ptr::null_mut()),
            scheduler: AtomicPtr::new(std::ptr::null_mut()),
            os_tid: AtomicU64::new(0),
            name_ptr: AtomicPtr::new(std::ptr::null_mut()),
            name_len: AtomicUsize::new(0),
            name: OnceLock::new(),
        }
    }

    /// Records the scheduler `s`, the thread's name (the kernel's copy, at most 15 bytes: it
    /// needs no thread-local, so it works late in a thread's exit) and kernel id, on the
    /// owning thread when its scheduler starts.
    pub(crate) fn publish(&self, s: &Scheduler) {
        let mut buf = [0u8; 17];
        // SAFETY: PR_GET_NAME writes at most 16 bytes, NUL included, into `buf`.
        unsafe { libc::prctl(libc::PR_GET_NAME, buf.as_mut_ptr(), 0, 0, 0) };
        let len = buf.iter().position(|&b| b == 0).unwrap_or(16);
        let name = std::str::from_utf8(&buf[..len])
            .ok()
            .filter(|n| !n.is_empty());
        if let Some(name) = name {
            let name = self.name.get_or_init(|| name.into());
            self.name_len.store(name.len(), Ordering::Relaxed);
            self.name_ptr
                .store(name.as_ptr() as *mut u8, Ordering::Release);
        }
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) } as u64;
        self.os_tid.store(tid, Ordering::Relaxed);
        self.scheduler
            .store(s as *const Scheduler as *mut u8, Ordering::Release);
    }

    /// The thread's name, if it has one and its scheduler has started.
    pub(crate) fn thread_name(&self) -> Option<String> {
        self.name.get().map(|n| n.to_string())
    }
}

fn head() -> &'static AtomicPtr<DebugThread> {
    &microthread_debug_root.threads
}

/// Links `t` at the head of the list. Called with the thread registry's lock held.
pub(crate) fn link(t: &DebugThread) {
    static PROBED: Once = Once::new();
    PROBED.call_once(probe_name_layout);
    t.next
        .store(head().load(Ordering::Relaxed), Ordering::Relaxed);
    head().store(
        t as *const DebugThread as *mut DebugThread,
        Ordering::Release,
    );
}

/// Unlinks `t` if it is in the list. Called with the thread registry's lock held.
pub(crate) fn unlink(t: &DebugThread) {
    let target = t as *const DebugThread as *mut DebugThread;
    let mut link = head();
    loop {
        let p = link.load(Ordering::Relaxed);
        if p.is_null() {
            return;
        }
        if p == target {
            link.store(t.next.load(Ordering::Relaxed), Ordering::Release);
            return;
        }
        // SAFETY: list members are entries of live `Shared`s (unlinked before they end,
        // and the registry keeps each alive while linked); we hold the registry lock.
        link = unsafe { &(*p).next };
    }
}

/// In a forked child: only `keep` (the forking thread's entry) stays listed. Called with
/// the thread registry's lock held (by the fork handlers).
pub(crate) fn retain_only(keep: Option<&DebugThread>) {
    let keep = keep.map_or(std::ptr::null_mut(), |k| {
        k.next.store(std::ptr::null_mut(), Ordering::Relaxed);
        k as *const DebugThread as *mut DebugThread
    });
    head().store(keep, Ordering::Release);
}

/// Finds where a tasklet's name lies, from a sample value of the same type.
fn probe_name_layout() {
    // The type of `Inner::name`.
    let mut sample: Cell<Option<String>> = Cell::new(Some(String::with_capacity(24)));
    if let Some(s) = sample.get_mut().as_mut() {
        s.push_str("abc");
    }
    let (ptr, len, cap) = {
        let s = sample.get_mut().as_ref().expect("set above");
        (s.as_ptr() as usize, s.len(), s.capacity())
    };
    let value = sample.as_ptr() as usize;
    let in_cell = value - &sample as *const _ as usize;
    let words = size_of::<Option<String>>() / size_of::<usize>();
    let find = |x: usize| {
        let hits: Vec<usize> = (0..words)
            // SAFETY: `value` is a live `Option<String>::Some` of `words` words, all of them
            // initialised (a `String` has no padding); read as plain words.
            .filter(|&i| unsafe { (value as *const usize).add(i).read_unaligned() } == x)
            .collect();
        (hits.len() == 1).then(|| (hits[0] * size_of::<usize>()) as u64)
    };
    if let (Some(p), Some(l), Some(c)) = (find(ptr), find(len), find(cap)) {
        let n = &microthread_debug_root.name;
        n.ptr.store(p, Ordering::Relaxed);
        n.len.store(l, Ordering::Relaxed);
        n.cap.store(c, Ordering::Relaxed);
        n.inner_name.store(
            (offset_of!(Inner, name) + in_cell) as u64,
            Ordering::Release,
        );
    }
}

/// gdb's auto-load entry (`.debug_gdb_scripts`: a 1, "a Python file", then its path and a
/// NUL): gdb loads gdb/microthread.py from this crate's source directory when that directory
/// is trusted (`add-auto-load-safe-path`; see the README's "Debugging").
#[cfg(target_os = "linux")]
#[link_section = ".debug_gdb_scripts"]
#[used]
static GDB_SCRIPT_ENTRY: [u8; GDB_SCRIPT_PATH.len() + 2] = gdb_script_entry();

#[cfg(target_os = "linux")]
const GDB_SCRIPT_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/gdb/microthread.py");

#[cfg(target_os = "linux")]
const fn gdb_script_entry() -> [u8; GDB_SCRIPT_PATH.len() + 2] {
    let mut entry = [0u8; GDB_SCRIPT_PATH.len() + 2];
    entry[0] = 1;
    let path = GDB_SCRIPT_PATH.as_bytes();
    let mut i = 0;
    while i < path.len() {
        entry[i + 1] = path[i];
        i += 1;
    }
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_layout_is_found() {
        crate::scheduler::init_thread();
        let n = &microthread_debug_root.name;
        let offsets = [&n.ptr, &n.len, &n.cap].map(|a| a.load(Ordering::Relaxed));
        assert!(offsets.iter().all(|&o| o < 24), "{offsets:?}");
        assert_ne!(n.inner_name.load(Ordering::Relaxed), u64::MAX);
    }

    /// Whether the debugger's list holds scheduler `s`.
    fn listed(s: usize) -> bool {
        crate::scheduler::thread::while_registry_locked(|| {
            let mut p = head().load(Ordering::Acquire);
            let mut found = false;
            while !p.is_null() {
                // SAFETY: entries of live `Shared`s (unlinked, under the lock we hold, before
                // they can go).
                let t = unsafe { &*p };
                found |= t.scheduler.load(Ordering::Acquire) as usize == s;
                p = t.next.load(Ordering::Acquire);
            }
            found
        })
    }

    #[test]
    fn a_thread_is_listed_while_its_scheduler_lives() {
        let me = crate::scheduler::scheduler() as *const Scheduler as usize;
        assert!(listed(me));
        let other = std::thread::spawn(|| {
            let s = crate::scheduler::scheduler() as *const Scheduler as usize;
            assert!(listed(s));
            s
        })
        .join()
        .unwrap();
        assert!(!listed(other), "unlinked when its thread ended");
    }
}
