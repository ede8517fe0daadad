//! Stack arenas: the guard probe, recycling that gives memory back, and the errors at the OS's
//! limits.
#![cfg(target_os = "linux")]

#[path = "common/death.rs"]
mod death;

use std::cell::Cell;
use std::rc::Rc;

use death::{in_child, serial, under_qemu_user};
use microthread::scheduler::{self, TaskletBuilder};
use microthread::stack::{
    guard_mechanism, page_size, pool, GuardMechanism, Stack, WARM_STACK_BYTES,
};

/// The running kernel's (major, minor) version, from `uname`.
fn kernel_version() -> (u32, u32) {
    // SAFETY: zeroed utsname is valid; uname fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    assert_eq!(unsafe { libc::uname(&mut u) }, 0);
    // SAFETY: uname writes a NUL-terminated release string.
    let release = unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) }.to_string_lossy();
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor)
}

#[test]
fn the_probe_finds_guard_regions_on_linux_6_13_natively_and_the_fallback_under_qemu() {
    if under_qemu_user() {
        assert_eq!(guard_mechanism(), GuardMechanism::Mprotect);
    } else if kernel_version() >= (6, 13) && std::env::var_os("MICROTHREAD_STACK_GUARD").is_none() {
        assert_eq!(guard_mechanism(), GuardMechanism::MadviseGuard);
    } else if kernel_version() < (6, 13) {
        assert_eq!(guard_mechanism(), GuardMechanism::Mprotect);
    }
}

/// Whether the page at `addr` (page-aligned) is in memory.
fn resident(addr: usize) -> bool {
    let mut v = [0u8; 1];
    // SAFETY: mincore only reads page tables and writes one byte.
    let rc = unsafe { libc::mincore(addr as *mut libc::c_void, page_size(), v.as_mut_ptr()) };
    rc == 0 && v[0] & 1 == 1
}

/// Resident pages in `[lo, hi)`.
fn resident_pages(lo: usize, hi: usize) -> usize {
    let page = page_size();
    (lo / page * page..hi)
        .step_by(page)
        .filter(|&p| resident(p))
        .count()
}

/// The process's resident set in bytes, from /proc/self/statm.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * page_size()
}

/// Touches `bytes` of stack below the caller, a page at a time (nonzero, like real frames).
#[inline(never)]
fn touch_stack(bytes: usize) -> u64 {
    let mut frame = [1u8; 4096];
    std::hint::black_box(&mut frame);
    if bytes <= 4096 {
        return frame[100] as u64;
    }
    touch_stack(bytes - 4096) + std::hint::black_box(frame[7]) as u64
}

#[test]
fn a_tasklet_that_touched_a_mebibyte_leaves_only_the_warm_part_committed() {
    if std::env::var_os("MICROTHREAD_UNDER_ASAN").is_some() {
        // ASan's instrumentation commits pages of its own on the stack (one stayed).
        eprintln!("skipped under ASan: its instrumentation commits stack pages of its own");
        return;
    }
    let _serial = serial();
    pool::clear();
    const MIB: usize = 1 << 20;
    let top_local = Rc::new(Cell::new(0usize));
    let t = top_local.clone();
    let before = rss();
    let during = Rc::new(Cell::new(0usize));
    let d = during.clone();
    TaskletBuilder::new()
        .stack_size(2 * MIB)
        .spawn(move || {
            let here = 0u8;
            t.set(&here as *const u8 as usize);
            std::hint::black_box(touch_stack(MIB));
            d.set(rss());
        })
        .unwrap();
    scheduler::run().unwrap();
    let here = top_local.get();
    let page = page_size();
    // The local lies in the top part of the stack; everything from a mebibyte below it up to
    // the warm part was touched, and must have gone back when the stack was recycled.
    let deep_lo = here - MIB;
    let deep_hi = here - WARM_STACK_BYTES;
    assert!(
        during.get() >= before + MIB - 64 * 1024,
        "the mebibyte was committed"
    );
    assert_eq!(pool::len(), 1, "the stack went back to the pool");
    assert_eq!(
        resident_pages(deep_lo, deep_hi),
        0,
        "pages below the warm part still committed"
    );
    assert!(resident_pages(deep_hi, here) <= WARM_STACK_BYTES / page);
    // Coarsely, by the process's RSS too (natively: under qemu-user the emulator's own
    // memory counts in it, under valgrind its shadow memory): the mebibyte went back (what
    // remains is the warm part and the top pages of the batch of fresh stacks the pool took
    // from the arena with this one, which hold their ranges).
    let under_valgrind = std::env::var_os("MICROTHREAD_UNDER_VALGRIND").is_some();
    assert!(
        under_qemu_user() || under_valgrind || rss() < before + MIB / 2,
        "RSS {} after, {} before",
        rss(),
        before
    );
    pool::clear();
}

#[test]
fn an_arena_stack_has_the_stack_api_and_a_reused_slot_starts_zeroed() {
    let _serial = serial();
    pool::clear();
    let s = Stack::new(96 * 1024).unwrap();
    assert!(s.in_arena());
    assert_eq!(s.size(), 96 * 1024);
    // The slot's top page is usable too, up to the slot's range at its very top.
    let page = microthread::stack::page_size();
    assert_eq!(s.top() as usize - s.limit() as usize, s.size() + page - 64);
    assert_eq!(s.limit() as usize - s.base() as usize, s.guard_size());
    assert_eq!(s.top() as usize % 16, 0);
    // SAFETY: the usable part is ours.
    unsafe { std::ptr::write_bytes(s.limit(), 0xee, s.top() as usize - s.limit() as usize) };
    let top = s.top();
    drop(s);
    // The next stack of this shape takes the freed slot: given back to the OS, so zeroed.
    let t = Stack::new(96 * 1024).unwrap();
    assert_eq!(t.top(), top, "the freed slot is reused");
    // SAFETY: reading the usable part of a stack we own.
    let zero =
        unsafe { std::slice::from_raw_parts(t.limit(), t.top() as usize - t.limit() as usize) }
            .iter()
            .all(|&b| b == 0);
    assert!(zero, "a reused slot starts with zeroed memory");
    // A guard-sized request that fits no class gets its own mapping.
    let own = Stack::with_guard(64 * 1024, 2 << 20).unwrap();
    assert!(!own.in_arena());
    assert!(own.guard_size() >= 2 << 20);
}

#[test]
fn at_the_address_space_limit_the_error_names_rlimit_as_and_the_program_keeps_allocating() {
    let _serial = serial();
    if under_qemu_user() {
        // RLIMIT_AS limits the emulator, which reserves the guest's address space itself.
        return;
    }
    let death = in_child(|| {
        let vsz: usize = std::fs::read_to_string("/proc/self/statm")
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse::<usize>()
            .unwrap()
            * page_size();
        let limit = (vsz + (8 << 20)) as libc::rlim_t;
        let r = libc::rlimit {
            rlim_cur: limit,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: setrlimit reads one rlimit; the child's own limit.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &r) }, 0);
        // A new class of 3 MiB stacks needs an arena of at least 8 of them: refused.
        let e = Stack::new(3 << 20).unwrap_err();
        let message = e.to_string();
        assert!(message.contains("RLIMIT_AS"), "{message}");
        assert!(message.contains("ulimit -v"), "{message}");
        // The program's own allocations still work.
        let v = vec![7u8; 1 << 20];
        assert_eq!(v[12345], 7);
        let small = Stack::with_own_mapping(32 * 1024, 4096);
        assert!(small.is_ok());
    });
    assert_eq!(
        death.exit_code(),
        Some(0),
        "{}: {}",
        death.describe(),
        death.stderr
    );
}
