//! Valgrind client requests: telling valgrind where our stacks are.
//!
//! Valgrind tracks the stack pointer to know which memory below it is dead. A switch moves the
//! stack pointer from one of our stacks to another; when the two lie close together (they are
//! neighbouring mappings), memcheck takes the jump for a huge frame pushed or popped on one
//! stack and marks the memory in between as unaddressable, then reports every later access to
//! it (hundreds of false "invalid read" reports in thread-locals and frames). A stack made
//! known with `VALGRIND_STACK_REGISTER` lets it recognise the jump as a change of stack.
//! (Valgrind registers every thread's own stack itself, at `clone`, so only ours are needed.)
//!
//! One more request covers the pool: a stack coming back to it is made addressable again
//! ([`discard`]), since memcheck marked what its last context popped unaddressable, and the
//! next context's initial frame is written there. That runs per release, so it is guarded by
//! [`active`], a flag set only when a registration reached valgrind: natively a load.
//!
//! A client request is a magic instruction sequence that does nothing on a real CPU and that
//! valgrind's translator recognises (see `valgrind.h`, `VALGRIND_DO_CLIENT_REQUEST_EXPR`):
//!
//! | arch | sequence | request block | result |
//! |---|---|---|---|
//! | x86_64 | `rol rdi,3; rol rdi,13; rol rdi,61; rol rdi,51; xchg rbx,rbx` | `rax` | `rdx` |
//! | aarch64 | `ror x12,x12,#3; #13; #51; #61; orr x10,x10,x10` | `x4` | `x3` |
//!
//! The rotations add up to 128 bits, so they leave the register as it was, and the last
//! instruction exchanges or ors a register with itself: natively the sequence costs five
//! cycles and changes nothing but (on x86_64) the flags, and the result register keeps the
//! default value (0). On other architectures (riscv64: valgrind has no port for it in the
//! releases this was written against) the requests are no-ops. Stacks register once per
//! mapping, not per spawn from the pool, so the sequence never runs on a hot path.

use std::sync::atomic::{AtomicBool, Ordering};

/// `VG_USERREQ__RUNNING_ON_VALGRIND` from `valgrind.h`: answers how deep we are nested.
const RUNNING_ON_VALGRIND: usize = 0x1001;
/// `VG_USERREQ__MAKE_MEM_DEFINED` from `memcheck.h` (`VG_USERREQ_TOOL_BASE('M','C') + 2`).
const MAKE_MEM_DEFINED: usize = (b'M' as usize) << 24 | (b'C' as usize) << 16 | 2;
/// `VG_USERREQ__STACK_REGISTER` from `valgrind.h`.
const STACK_REGISTER: usize = 0x1501;
/// `VG_USERREQ__STACK_DEREGISTER` from `valgrind.h`.
const STACK_DEREGISTER: usize = 0x1502;

/// Sends one client request; returns valgrind's answer, or `default` when not under valgrind.
#[cfg(target_arch = "x86_64")]
#[inline]
fn client_request(default: usize, request: usize, args: [usize; 5]) -> usize {
    let block: [usize; 6] = [request, args[0], args[1], args[2], args[3], args[4]];
    let result: usize;
    // SAFETY: natively the sequence only rotates rdi by 128 bits in total (back to its value)
    // and exchanges rbx with itself; it changes the flags (not declared preserved). Under
    // valgrind, the request reads the six words at `rax`, which live until the block ends, and
    // writes its result to rdx only. `nostack`: nothing is pushed.
    unsafe {
        core::arch::asm!(
            "rol rdi, 3",
            "rol rdi, 13",
            "rol rdi, 61",
            "rol rdi, 51",
            "xchg rbx, rbx",
            in("rax") block.as_ptr(),
            inout("rdx") default => result,
            options(nostack),
        );
    }
    result
}

/// Sends one client request; returns valgrind's answer, or `default` when not under valgrind.
#[cfg(target_arch = "aarch64")]
#[inline]
fn client_request(default: usize, request: usize, args: [usize; 5]) -> usize {
    let block: [usize; 6] = [request, args[0], args[1], args[2], args[3], args[4]];
    let result: usize;
    // SAFETY: natively the sequence only rotates x12 by 128 bits in total (back to its value)
    // and ors x10 with itself; none of it touches flags or memory. Under valgrind, the request
    // reads the six words at x4, which live until the block ends, and writes its result to x3.
    unsafe {
        core::arch::asm!(
            "ror x12, x12, #3",
            "ror x12, x12, #13",
            "ror x12, x12, #51",
            "ror x12, x12, #61",
            "orr x10, x10, x10",
            in("x4") block.as_ptr(),
            inout("x3") default => result,
            options(nostack, preserves_flags),
        );
    }
    result
}

/// No valgrind port to talk to: every request answers `default`.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
#[inline]
fn client_request(default: usize, _request: usize, _args: [usize; 5]) -> usize {
    default
}

/// Set by the first stack registration that valgrind answered: from then on, recycled stacks
/// are announced too (see [`discard`]). Never set natively.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Whether the process runs under valgrind (asked once; natively always false). For the
/// parker, which does not yield there (see `scheduler::thread::park`).
pub(crate) fn running_on_valgrind() -> bool {
    static UNDER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *UNDER.get_or_init(|| client_request(0, RUNNING_ON_VALGRIND, [0; 5]) > 0)
}

/// Whether a stack registration reached valgrind: one relaxed load, for paths that run on
/// every spawn and must cost nothing natively.
#[inline(always)]
pub(crate) fn active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// `VALGRIND_MAKE_MEM_DEFINED(start, len)`: the memory is addressable again. For a stack
/// going back to the pool: memcheck marked the part its last context popped unaddressable (as
/// it must, while that context lived), but the next context's creator writes the closure and
/// the initial frame there from outside its stack pointer.
///
/// Defined rather than undefined: a pooled stack really keeps its bytes (see
/// [`crate::stack::pool`]), and tests/context.rs reads a predecessor's mark on purpose. Frames
/// the next context pushes are marked undefined again by memcheck itself, so reads of
/// uninitialised locals are still caught.
pub(crate) fn discard(start: *const u8, len: usize) {
    client_request(0, MAKE_MEM_DEFINED, [start as usize, len, 0, 0, 0]);
}

/// A stack made known to valgrind; forgotten again on drop (before the memory is unmapped).
pub(crate) struct StackRegistration {
    id: usize,
}

impl StackRegistration {
    /// `VALGRIND_STACK_REGISTER(start, end)`: `[start, end]` is a stack (`end` is the initial
    /// stack pointer, one past the highest byte, which a context with nothing pushed has).
    #[inline]
    pub(crate) fn new(start: *const u8, end: *const u8) -> StackRegistration {
        let id = client_request(0, STACK_REGISTER, [start as usize, end as usize, 0, 0, 0]);
        // Valgrind registers the first thread's stack as 0 itself: ours are never 0 there.
        if id != 0 && !active() {
            ACTIVE.store(true, Ordering::Relaxed);
        }
        StackRegistration { id }
    }
}

impl Drop for StackRegistration {
    #[inline]
    fn drop(&mut self) {
        client_request(0, STACK_DEREGISTER, [self.id, 0, 0, 0, 0]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_magic_sequence_reaches_valgrind_and_is_a_no_op_natively() {
        let depth = client_request(0, RUNNING_ON_VALGRIND, [0; 5]);
        if std::env::var_os("MICROTHREAD_UNDER_VALGRIND").is_some() {
            // ci/valgrind.sh sets this: the request must have been recognised.
            assert!(
                cfg!(not(any(target_arch = "x86_64", target_arch = "aarch64"))) || depth >= 1,
                "valgrind did not answer the client request"
            );
        } else {
            assert_eq!(depth, 0, "natively the default comes back");
        }
        let start = 0x1000 as *const u8;
        let r = StackRegistration::new(start, start.wrapping_add(0x1000));
        if depth == 0 {
            assert_eq!(r.id, 0);
        }
        drop(r);
    }
}
