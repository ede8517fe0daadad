//! The callee-saved registers of x86_64 SysV and `call_with`, which loads and stores them
//! around a call (see the crate docs of `tests/registers.rs`).

use super::*;

pub const NAMES: [&str; 6] = ["rbx", "rbp", "r12", "r13", "r14", "r15"];

/// Loads `input` into the callee-saved registers and calls `routine(arg0, arg1)` directly,
/// with no Rust frame in between; when it returns (for a switch routine: when some context
/// switches back), stores the registers into `output`, restores their real values and
/// returns the routine's two return registers (a switch routine's `(from, data)`).
///
/// # Safety
/// - `input` and `output` must be valid for `NAMES.len()` words.
/// - `routine` is an `extern "C"` function of this thread's stack taking `(arg0, arg1)`
///   with whatever preconditions it has met: `call_thunk` with a live thunk, or an asm
///   switch routine with `arg0` a suspended context of this thread.
pub unsafe fn call_with(
    routine: usize,
    arg0: *mut u8,
    arg1: usize,
    input: *const u64,
    output: *mut u64,
) -> (*mut u8, usize) {
    let (ret0, ret1): (usize, usize);
    // SAFETY: the block saves and restores every register it writes that is not declared
    // clobbered; the stack pointer is 16-aligned at entry (an `asm!` guarantee) and at the
    // call (128 + 8 pushes), and restored at the end. The 128 bytes skip the red zone.
    // A switch routine returns here (through whatever resumes us) with rax:rdx = the
    // Transfer and every callee-saved register as that side left them.
    unsafe {
        asm!(
            "sub rsp, 128",
            "push rbx",
            "push rbp",
            "push r12",
            "push r13",
            "push r14",
            "push r15",
            "push rdx",
            "sub rsp, 8",
            "mov rbx, [rcx]",
            "mov rbp, [rcx + 8]",
            "mov r12, [rcx + 16]",
            "mov r13, [rcx + 24]",
            "mov r14, [rcx + 32]",
            "mov r15, [rcx + 40]",
            "call rax",
            "mov rcx, [rsp + 8]",
            "mov [rcx], rbx",
            "mov [rcx + 8], rbp",
            "mov [rcx + 16], r12",
            "mov [rcx + 24], r13",
            "mov [rcx + 32], r14",
            "mov [rcx + 40], r15",
            "add rsp, 16",
            "pop r15",
            "pop r14",
            "pop r13",
            "pop r12",
            "pop rbp",
            "pop rbx",
            "add rsp, 128",
            inout("rax") routine => ret0,
            inout("rdx") output as usize => ret1,
            in("rdi") arg0,
            in("rsi") arg1,
            in("rcx") input,
            clobber_abi("C"),
        );
    }
    (ret0 as *mut u8, ret1)
}
