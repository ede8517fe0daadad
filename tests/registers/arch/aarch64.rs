//! The callee-saved registers of aarch64 AAPCS64 and `call_with`, which loads and stores them
//! around a call (see the crate docs of `tests/registers.rs`).

use super::*;

pub const NAMES: [&str; 19] = [
    "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27", "x28", "x29", "d8", "d9", "d10",
    "d11", "d12", "d13", "d14", "d15",
];

/// As on x86_64: x19–x29 at words 0–10, d8–d15 at words 11–18.
///
/// # Safety
/// - As on x86_64.
pub unsafe fn call_with(
    routine: usize,
    arg0: *mut u8,
    arg1: usize,
    input: *const u64,
    output: *mut u64,
) -> (*mut u8, usize) {
    let (ret0, ret1): (usize, usize);
    // SAFETY: as on x86_64; the 160-byte save area keeps sp 16-aligned (there is no red
    // zone on aarch64 Linux). x30 is clobbered by `blr`, and declared by clobber_abi. A
    // switch routine returns here with x0:x1 = the Transfer.
    unsafe {
        asm!(
            "sub sp, sp, #160",
            "stp x19, x20, [sp, #0]",
            "stp x21, x22, [sp, #16]",
            "stp x23, x24, [sp, #32]",
            "stp x25, x26, [sp, #48]",
            "stp x27, x28, [sp, #64]",
            "stp x29, x3, [sp, #80]",
            "stp d8, d9, [sp, #96]",
            "stp d10, d11, [sp, #112]",
            "stp d12, d13, [sp, #128]",
            "stp d14, d15, [sp, #144]",
            "ldp x19, x20, [x2, #0]",
            "ldp x21, x22, [x2, #16]",
            "ldp x23, x24, [x2, #32]",
            "ldp x25, x26, [x2, #48]",
            "ldp x27, x28, [x2, #64]",
            "ldr x29, [x2, #80]",
            "ldp d8, d9, [x2, #88]",
            "ldp d10, d11, [x2, #104]",
            "ldp d12, d13, [x2, #120]",
            "ldp d14, d15, [x2, #136]",
            "blr x16",
            "ldr x9, [sp, #88]",
            "stp x19, x20, [x9, #0]",
            "stp x21, x22, [x9, #16]",
            "stp x23, x24, [x9, #32]",
            "stp x25, x26, [x9, #48]",
            "stp x27, x28, [x9, #64]",
            "str x29, [x9, #80]",
            "stp d8, d9, [x9, #88]",
            "stp d10, d11, [x9, #104]",
            "stp d12, d13, [x9, #120]",
            "stp d14, d15, [x9, #136]",
            "ldp x19, x20, [sp, #0]",
            "ldp x21, x22, [sp, #16]",
            "ldp x23, x24, [sp, #32]",
            "ldp x25, x26, [sp, #48]",
            "ldp x27, x28, [sp, #64]",
            "ldr x29, [sp, #80]",
            "ldp d8, d9, [sp, #96]",
            "ldp d10, d11, [sp, #112]",
            "ldp d12, d13, [sp, #128]",
            "ldp d14, d15, [sp, #144]",
            "add sp, sp, #160",
            inout("x0") arg0 as usize => ret0,
            inout("x1") arg1 => ret1,
            in("x2") input,
            in("x3") output,
            in("x16") routine,
            clobber_abi("C"),
        );
    }
    (ret0 as *mut u8, ret1)
}
