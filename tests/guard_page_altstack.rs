//! Death tests for the overflow report on threads whose alternate signal stack is missing
//! (a `pthread_create`d thread) or too small for the handler: creating a coroutine must give
//! the thread one the handler can run on. Split from tests/guard_page.rs (same rules: each
//! test holds [`serial`] and dies in a `fork()`ed child, see tests/common/death.rs).
#![cfg(target_os = "linux")]

#[path = "common/death.rs"]
mod death;
#[path = "common/guard.rs"]
mod guard;

use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};

use death::{in_child, recurse, serial, under_qemu_user};
use guard::{assert_reports_overflow, install_the_handler, overflowing, rounded, Overflowing};
use microthread::coroutine::{Builder, Coroutine};
use microthread::stack::{page_size, pool, Stack, DEFAULT_STACK_SIZE};

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
