//! Death tests for the guard below each coroutine and tasklet stack and the overflow report.
//!
//! Each test runs its dying part in a `fork()`ed child (see tests/common/death.rs): the child
//! overflows or faults, and the parent checks that it died of SIGSEGV and what it wrote:
//!
//! ```text
//! microthread: coroutine <id> overflowed its stack of <N> bytes
//! microthread: tasklet <id> overflowed its stack of <N> bytes
//! ```
//!
//! Every test of this file holds [`serial`] for its whole run, and the coroutines a child runs
//! are created by the parent before the fork where possible.
#![cfg(target_os = "linux")]

#[path = "common/death.rs"]
mod death;

use std::hint::black_box;
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};

use death::{in_child, recurse, serial, under_qemu_user, Death};
use microthread::coroutine::{Builder, Coroutine, CoroutineResult};
use microthread::scheduler::{self, TaskletBuilder};
use microthread::stack::{page_size, pool, Stack, DEFAULT_STACK_SIZE, MIN_STACK_SIZE};

/// The report for an overflow of the stack of coroutine (`kind` "coroutine") or tasklet `id`.
fn overflow_report(kind: &str, id: u64, size: usize) -> String {
    format!("microthread: {kind} {id} overflowed its stack of {size} bytes\n")
}

/// Asserts that the child's stderr holds the overflow report for coroutine `id` of `size`.
#[track_caller]
fn assert_reports_overflow(death: &Death, id: u64, size: usize) {
    assert_reports(death, &overflow_report("coroutine", id, size));
}

#[track_caller]
fn assert_reports(death: &Death, report: &str) {
    assert!(
        death.stderr.contains(report),
        "expected {report:?} in the child's stderr: {:?}",
        death.stderr
    );
}

/// Usable bytes the pool gives for a request of `n`: rounded to pages, at least the minimum.
fn rounded(n: usize) -> usize {
    let page = page_size();
    n.max(MIN_STACK_SIZE).div_ceil(page) * page
}

type Overflowing = Coroutine<(), (), u64>;

/// A coroutine that overflows its pooled stack of `size` bytes when resumed.
fn overflowing(size: usize) -> Overflowing {
    Builder::new()
        .stack_size(size)
        .build(|_, ()| recurse(0))
        .unwrap()
}

#[test]
fn overflowing_a_coroutine_reports_its_id_and_size_and_dies_of_sigsegv() {
    let _serial = serial();
    let mut co = overflowing(64 * 1024);
    let (id, size) = (co.id(), rounded(64 * 1024));
    let death = in_child(move || {
        co.resume(());
    });
    death.assert_killed_by_sigsegv();
    assert_reports_overflow(&death, id, size);
    assert_eq!(
        death.stderr.matches("overflowed its stack").count(),
        1,
        "{:?}",
        death.stderr
    );
}

/// The report says what overflowed: a tasklet is a "tasklet", a plain coroutine (above) a
/// "coroutine". Regression: both were reported as "tasklet".
#[test]
fn overflowing_a_tasklet_reports_a_tasklet_and_a_coroutine_is_not_called_one() {
    let _serial = serial();
    let death = in_child(|| {
        let t = TaskletBuilder::new()
            .stack_size(64 * 1024)
            .spawn(|| recurse(0))
            .unwrap();
        // Not eprintln!, which the harness captures: straight to fd 2, the parent's pipe.
        writeln!(std::io::stderr(), "spawned tasklet {}", t.id()).unwrap();
        let _ = scheduler::run();
    });
    death.assert_killed_by_sigsegv();
    let id: u64 = death
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("spawned tasklet "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no id in the child's stderr: {:?}", death.stderr));
    assert_reports(&death, &overflow_report("tasklet", id, rounded(64 * 1024)));

    let mut co = overflowing(64 * 1024);
    let id = co.id();
    let death = in_child(move || {
        co.resume(());
    });
    death.assert_killed_by_sigsegv();
    assert_reports_overflow(&death, id, rounded(64 * 1024));
    assert!(!death.stderr.contains("tasklet"), "{:?}", death.stderr);
}

/// Zero-sized but aligned to 2 MiB: a closure capturing only this is zero-sized too.
#[repr(align(2097152))]
#[derive(Clone, Copy)]
struct Aligned2M;

/// Regression: a closure aligned beyond its stack's top region was placed by rounding down
/// from the top, up to 2 MiB below it: its initial frame landed in the guard (a false
/// overflow report) or in another mapping. Several stacks, so that one whose top happens to
/// be 2 MiB-aligned cannot hide the bug.
#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "a debug build realigns every frame that holds the closure by value to 2 MiB, \
              more stack than any here; the placement is checked in all builds by \
              coroutine::tests::an_over_aligned_closure_is_placed_in_the_top_region_of_its_stack"
)]
fn an_over_aligned_closure_runs_without_a_false_overflow_report() {
    let _serial = serial();
    let death = in_child(|| {
        let mut cos: Vec<Coroutine<(), (), usize>> = (0..8)
            .map(|_| {
                let a = Aligned2M;
                Builder::new()
                    .stack_size(64 * 1024)
                    .build(move |_, ()| {
                        let _captured = a;
                        0
                    })
                    .unwrap()
            })
            .collect();
        for co in &mut cos {
            assert_eq!(co.resume(()), CoroutineResult::Return(0));
        }
    });
    assert_eq!(
        death.exit_code(),
        Some(0),
        "{}: {:?}",
        death.describe(),
        death.stderr
    );
    assert!(!death.stderr.contains("overflowed"), "{:?}", death.stderr);
}

/// Also for a stack of its own mapping, whose owner word is its registry entry's.
#[test]
fn the_report_gives_the_usable_size_of_a_stack_given_to_build_on() {
    let _serial = serial();
    // Not a multiple of the page size: the report gives the rounded, usable size.
    for own in [false, true] {
        let stack = if own {
            Stack::with_own_mapping(100 * 1024 + 1, page_size())
        } else {
            Stack::new(100 * 1024 + 1)
        };
        let stack = stack.unwrap();
        assert_eq!(stack.in_arena(), !own);
        let size = stack.size();
        assert_eq!(size, rounded(100 * 1024 + 1));
        let mut co: Overflowing = Builder::new().build_on(stack, |_, ()| recurse(0));
        let id = co.id();
        let death = in_child(move || {
            co.resume(());
        });
        death.assert_killed_by_sigsegv();
        assert_reports_overflow(&death, id, size);
    }
}

#[test]
fn the_report_names_the_current_owner_of_a_recycled_stack() {
    let _serial = serial();
    pool::clear();
    let size = 72 * 1024;
    let mut first: Coroutine<(), (), ()> =
        Builder::new().stack_size(size).build(|_, ()| ()).unwrap();
    first.resume(());
    assert!(first.is_finished());
    let first_id = first.id();
    assert_eq!(
        pool::len(),
        1,
        "the finished coroutine's stack went back to the pool"
    );
    let mut second = overflowing(size);
    assert_eq!(pool::len(), 0, "the second coroutine took the pooled stack");
    let second_id = second.id();
    assert_ne!(first_id, second_id);
    let death = in_child(move || {
        second.resume(());
    });
    death.assert_killed_by_sigsegv();
    assert_reports_overflow(&death, second_id, rounded(size));
    assert!(
        !death.stderr.contains(&format!("coroutine {first_id} ")),
        "{:?}",
        death.stderr
    );
}

#[test]
fn an_overflow_in_a_nested_coroutine_names_the_inner_one() {
    let _serial = serial();
    let mut inner = overflowing(64 * 1024);
    let inner_id = inner.id();
    let mut outer: Coroutine<(), (), ()> = Coroutine::new(move |y, ()| {
        y.suspend(());
        inner.resume(());
    })
    .unwrap();
    let outer_id = outer.id();
    assert_eq!(outer.resume(()), CoroutineResult::Yield(()));
    let death = in_child(move || {
        outer.resume(());
    });
    death.assert_killed_by_sigsegv();
    assert_reports_overflow(&death, inner_id, rounded(64 * 1024));
    assert!(
        !death.stderr.contains(&format!("coroutine {outer_id} ")),
        "{:?}",
        death.stderr
    );
}

/// A page of our own with no access, outside every guard.
fn prot_none_page() -> *mut u8 {
    // SAFETY: a fresh anonymous mapping; nothing else refers to it.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            page_size(),
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    p.cast()
}

/// Writes to `addr`, which must fault.
fn fault_at(addr: usize) {
    // SAFETY: not safe at all: the point is to fault, in a child that dies of it.
    unsafe { ptr::write_volatile(black_box(addr) as *mut u8, 1) };
}

/// Makes sure this process has installed the overflow handler (creating a stack does).
fn install_the_handler() {
    drop(Stack::new(MIN_STACK_SIZE).unwrap());
}

#[test]
fn a_fault_outside_any_guard_is_not_reported_and_still_kills() {
    let _serial = serial();
    install_the_handler();
    let page = prot_none_page() as usize;
    // On the thread's own stack, and inside a coroutine; on our page, and at address 0.
    for (place, addr) in [("PROT_NONE page", page), ("null", 0)] {
        let death = in_child(move || fault_at(addr));
        death.assert_killed_by_sigsegv();
        assert!(
            !death.stderr.contains("overflowed"),
            "{place}: {:?}",
            death.stderr
        );

        let mut co: Coroutine<(), (), ()> = Builder::new()
            .stack_size(64 * 1024)
            .build(move |_, ()| fault_at(addr))
            .unwrap();
        let death = in_child(move || {
            co.resume(());
        });
        death.assert_killed_by_sigsegv();
        assert!(
            !death.stderr.contains("overflowed"),
            "{place}, in a coroutine: {:?}",
            death.stderr
        );
    }
    // SAFETY: unmapping the page we mapped.
    unsafe { libc::munmap(page as *mut libc::c_void, page_size()) };
}

#[test]
fn a_fault_where_a_freed_stack_had_its_guard_is_not_reported() {
    let _serial = serial();
    install_the_handler();
    // A stack of its own mapping dropped outright (not pooled) is unmapped and leaves the
    // registry. It is dropped in the child, the only thread there, so nothing else can map
    // the hole it leaves.
    let mut stack = Some(Stack::with_own_mapping(64 * 1024, page_size()).unwrap());
    let (guard, guard_len) = {
        let s = stack.as_ref().unwrap();
        (s.base() as usize, s.guard_size())
    };
    let death = in_child(move || {
        // The child's copy of the stack (each forked child has its own).
        drop(stack.take());
        // SAFETY: maps a no-access range of our own exactly where the guard was, or fails.
        let p = unsafe {
            libc::mmap(
                guard as *mut libc::c_void,
                guard_len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        if p as usize != guard {
            // SAFETY: a static message on fd 2, then leave with a code the parent checks.
            unsafe {
                let m = b"could not map the old guard range\n";
                libc::write(2, m.as_ptr().cast(), m.len());
                libc::_exit(3);
            }
        }
        fault_at(guard + guard_len - 1);
    });
    death.assert_killed_by_sigsegv();
    assert!(!death.stderr.contains("overflowed"), "{:?}", death.stderr);
}

#[test]
fn a_fault_in_the_guard_of_a_free_arena_slot_is_not_reported_and_still_kills() {
    let _serial = serial();
    install_the_handler();
    // An arena stack dropped outright goes back to its arena: its slot is free, its guard
    // stays installed (the next stack of its shape reuses both), and no one owns it.
    let mut stack = Some(Stack::new(64 * 1024).unwrap());
    let (limit, in_arena) = {
        let s = stack.as_ref().unwrap();
        (s.limit() as usize, s.in_arena())
    };
    assert!(in_arena);
    let death = in_child(move || {
        drop(stack.take());
        fault_at(limit - 1);
    });
    death.assert_killed_by_sigsegv();
    assert!(!death.stderr.contains("overflowed"), "{:?}", death.stderr);
}

/// Written by the child's thread, read by the parent after the child died.
#[repr(C)]
struct Shared {
    had_altstack: AtomicU64,
    has_altstack: AtomicU64,
    id: AtomicU64,
    size: AtomicU64,
    /// Set by the parent: the coroutine's stack comes from the pool's fast slot.
    fast_slot: AtomicU64,
}

fn has_altstack() -> bool {
    // SAFETY: a zeroed stack_t is valid; a null new stack only queries.
    let mut ss: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    assert_eq!(unsafe { libc::sigaltstack(ptr::null(), &mut ss) }, 0);
    ss.ss_flags & libc::SS_DISABLE == 0
}

extern "C" fn overflow_on_a_foreign_thread(arg: *mut libc::c_void) -> *mut libc::c_void {
    // SAFETY: the parent's shared page, which outlives the child.
    let shared = unsafe { &*(arg as *const Shared) };
    shared
        .had_altstack
        .store(has_altstack() as u64 + 1, Ordering::SeqCst);
    let (mut co, size): (Overflowing, usize) = if shared.fast_slot.load(Ordering::SeqCst) == 1 {
        // A stack released on this thread (no coroutine made yet) goes to the pool's fast
        // slot, armed by that release; the coroutine takes it and tests no altstack itself.
        pool::release(Stack::new(DEFAULT_STACK_SIZE).expect("map a stack"));
        let co = Coroutine::new(|_, ()| recurse(0)).expect("a stack");
        assert_eq!(pool::len(), 0, "the coroutine took the released stack");
        (co, rounded(DEFAULT_STACK_SIZE))
    } else {
        let stack = Stack::new(64 * 1024).expect("map a stack");
        let size = stack.size();
        (Builder::new().build_on(stack, |_, ()| recurse(0)), size)
    };
    shared
        .has_altstack
        .store(has_altstack() as u64 + 1, Ordering::SeqCst);
    shared.size.store(size as u64, Ordering::SeqCst);
    shared.id.store(co.id(), Ordering::SeqCst);
    co.resume(());
    ptr::null_mut()
}

/// A thread started by `pthread_create` has no alternate signal stack (Rust gives its own
/// threads one); creating a coroutine must give it one, or the handler cannot run.
#[test]
fn an_overflow_on_a_thread_without_an_altstack_is_still_reported() {
    overflow_on_a_thread_without_an_altstack(false);
}

/// The same with the coroutine's stack from the pool's fast slot: the release that put it
/// there armed the slot, which checks the thread's alternate signal stack.
#[test]
fn an_overflow_on_a_stack_from_the_fast_slot_of_a_thread_without_an_altstack_is_reported() {
    overflow_on_a_thread_without_an_altstack(true);
}

fn overflow_on_a_thread_without_an_altstack(fast_slot: bool) {
    if under_qemu_user() {
        // qemu-user 7.2 cannot reliably start a thread in a forked child of a multithreaded
        // process: about one run in five the child hangs or dies of qemu's own assertions
        // ("qemu_plugin_vcpu_init_hook: assertion failed", "cpu_exec: assertion failed:
        // (cpu == current_cpu)"). Natively the test always runs.
        eprintln!("skipped under qemu-user: threads in forked children are unreliable there");
        return;
    }
    let _serial = serial();
    install_the_handler();
    // SAFETY: a shared anonymous page, zeroed, that parent and child both see.
    let page = unsafe {
        libc::mmap(
            ptr::null_mut(),
            page_size(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(page, libc::MAP_FAILED);
    let shared = page as usize;
    // SAFETY: the page holds a zero-initialised Shared; the child is not started yet.
    unsafe { &*(page as *const Shared) }
        .fast_slot
        .store(fast_slot as u64, Ordering::SeqCst);
    let death = in_child(move || {
        let mut thread: libc::pthread_t = 0;
        // SAFETY: a plain pthread (no Rust runtime set-up) running our extern "C" function.
        let rc = unsafe {
            libc::pthread_create(
                &mut thread,
                ptr::null(),
                overflow_on_a_foreign_thread,
                shared as *mut libc::c_void,
            )
        };
        assert_eq!(rc, 0, "pthread_create");
        // SAFETY: joining the thread we created; the process dies before it returns.
        unsafe { libc::pthread_join(thread, ptr::null_mut()) };
    });
    // SAFETY: the page holds a zero-initialised Shared, written by the child.
    let s = unsafe { &*(page as *const Shared) };
    let (id, size) = (s.id.load(Ordering::SeqCst), s.size.load(Ordering::SeqCst));
    let (had, has) = (
        s.had_altstack.load(Ordering::SeqCst),
        s.has_altstack.load(Ordering::SeqCst),
    );
    // SAFETY: unmapping our page after reading it.
    unsafe { libc::munmap(page, page_size()) };
    death.assert_killed_by_sigsegv();
    assert_eq!(
        had, 1,
        "the pthread started without an alternate signal stack"
    );
    assert_eq!(
        has, 2,
        "creating a coroutine gave the thread an alternate signal stack"
    );
    let stack_size = if fast_slot {
        DEFAULT_STACK_SIZE
    } else {
        64 * 1024
    };
    assert!(id != 0 && size == rounded(stack_size) as u64);
    assert_reports_overflow(&death, id, size as usize);
}

/// A coroutine on a minimum-size stack creates another coroutine (mapping a new stack, which
/// registers its guard). Regression: the registry once built its 32 KiB chunk on the stack.
#[test]
fn creating_a_coroutine_inside_a_minimum_size_coroutine_does_not_overflow() {
    let _serial = serial();
    let death = in_child(|| {
        pool::clear();
        let mut outer: Coroutine<(), (), u64> = Builder::new()
            .stack_size(MIN_STACK_SIZE)
            .build(|_, ()| {
                let mut inner: Coroutine<(), (), u64> = Coroutine::new(|_, ()| 5).unwrap();
                match inner.resume(()) {
                    CoroutineResult::Return(v) => v + 1,
                    CoroutineResult::Yield(()) => 0,
                }
            })
            .unwrap();
        assert_eq!(outer.resume(()), CoroutineResult::Return(6));
    });
    assert_eq!(
        death.exit_code(),
        Some(0),
        "{}: {:?}",
        death.describe(),
        death.stderr
    );
}

/// `MIN_STACK_SIZE` is documented as room for a panic whose hook captures and symbolises a
/// backtrace on the coroutine's stack (about 24 KiB on x86_64, debug and release).
#[test]
fn a_panic_with_a_backtrace_fits_in_a_minimum_size_coroutine() {
    let _serial = serial();
    let death = in_child(|| {
        // SAFETY (of set_var): the forked child has this one thread.
        std::env::set_var("RUST_BACKTRACE", "1");
        let _ = panic::take_hook(); // the default hook, whatever the harness installed
        let mut co: Coroutine<(), (), ()> = Builder::new()
            .stack_size(MIN_STACK_SIZE)
            .build(|_, ()| panic!("a panic on a small stack"))
            .unwrap();
        let r = panic::catch_unwind(AssertUnwindSafe(|| co.resume(())));
        assert!(r.is_err());
    });
    assert_eq!(
        death.exit_code(),
        Some(0),
        "{}: {:?}",
        death.describe(),
        death.stderr
    );
}

/// Installs on the calling thread an alternate signal stack with room for the kernel's signal
/// frame and nothing more, above a `PROT_NONE` page; `None` where the kernel does not say how
/// big its frame is (`AT_MINSIGSTKSZ`) or refuses the stack.
fn install_a_minimal_altstack() -> Option<()> {
    // SAFETY: getauxval has no preconditions; 0 means unknown.
    let min = unsafe { libc::getauxval(libc::AT_MINSIGSTKSZ) } as usize;
    if min == 0 {
        return None;
    }
    // sigaltstack refuses less than MINSIGSTKSZ, which may be more than the frame (arm64).
    let min = min.max(libc::MINSIGSTKSZ);
    let page = page_size();
    let len = min.div_ceil(page) * page;
    // SAFETY: an anonymous private mapping with no address hint; it is never unmapped (the
    // thread that uses it ends inside a forked child or keeps it until the process exits).
    let map = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len + page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(map, libc::MAP_FAILED);
    // SAFETY: the lowest page of our own mapping becomes the guard below the stack.
    assert_eq!(unsafe { libc::mprotect(map, page, libc::PROT_NONE) }, 0);
    let stack = libc::stack_t {
        // SAFETY: within the mapping: `min` bytes ending at its end.
        ss_sp: unsafe { (map as *mut u8).add(page + len - min) } as *mut libc::c_void,
        ss_flags: 0,
        ss_size: min,
    };
    // SAFETY: the range is mapped read-write for the rest of the process.
    (unsafe { libc::sigaltstack(&stack, ptr::null_mut()) } == 0).then_some(())
}

/// A thread whose alternate signal stack has no room for the handler beyond the kernel's
/// frame (a small one installed by other code; or std's 8 KiB, too small for the handler of
/// an AddressSanitizer build with AVX-512 frames) gets ours when it first creates a
/// coroutine. Regression: the handler ran on the small one, faulted below it, and the process
/// died of the second SIGSEGV without the report (seen in the ASan leg).
#[test]
fn an_overflow_on_a_thread_whose_altstack_is_too_small_is_still_reported() {
    let _serial = serial();
    install_the_handler();
    let death = std::thread::spawn(|| {
        install_a_minimal_altstack()?;
        let mut co = overflowing(64 * 1024);
        let id = co.id();
        // SAFETY: a zeroed stack_t is valid; a null new stack only queries.
        let mut ss: libc::stack_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        assert_eq!(unsafe { libc::sigaltstack(ptr::null(), &mut ss) }, 0);
        // SAFETY: getauxval has no preconditions.
        let min =
            (unsafe { libc::getauxval(libc::AT_MINSIGSTKSZ) } as usize).max(libc::MINSIGSTKSZ);
        assert!(
            ss.ss_flags & libc::SS_DISABLE == 0 && ss.ss_size >= min + 16 * 1024,
            "the coroutine's thread kept an alternate stack of {} bytes, the frame alone \
             takes up to {min}",
            ss.ss_size
        );
        Some((
            id,
            in_child(move || {
                co.resume(());
            }),
        ))
    })
    .join()
    .unwrap();
    let Some((id, death)) = death else {
        eprintln!("skipped: no AT_MINSIGSTKSZ, or sigaltstack refused a stack of that size");
        return;
    };
    death.assert_killed_by_sigsegv();
    assert_reports_overflow(&death, id, rounded(64 * 1024));
}
