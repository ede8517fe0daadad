//! The boundary to `asm/<arch>.S`: the extern declarations and, per architecture, the layout
//! of the frame a new context starts from. Only `context` uses this module.
//!
//! Each `asm/<arch>.S` exports the same three symbols with the same contract:
//! `microthread_ctx_switch(to, data) -> (from, data)`, its FP-environment-preserving twin
//! `microthread_ctx_switch_fpenv`, and `microthread_ctx_trampoline`, the first instruction of
//! every new context, which calls `entry(from, data, arg)` with `entry` and `arg` taken from
//! two callee-saved registers of the initial frame written by [`init_frame`]. The last word
//! of that frame, just below the stack top, is the *link slot* the trampolines' unwind
//! information follows to the resumer's frame ([`link_slot`], [`set_link`]).

#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
)))]
compile_error!("microthread supports x86_64, aarch64 and riscv64: add asm/<arch>.S and a layout in src/arch.rs");

/// What a switch returns, in two registers (rax:rdx, x0:x1, a0:a1): the saved stack pointer
/// of the context that switched to us, and the word it passed.
#[repr(C)]
pub(crate) struct RawTransfer {
    pub(crate) from: *mut u8,
    pub(crate) data: usize,
}

extern "C" {
    /// Saves the callee-saved registers on the current stack, resumes `to`, hands it `data`.
    pub(crate) fn microthread_ctx_switch(to: *mut u8, data: usize) -> RawTransfer;
    /// As `microthread_ctx_switch`, and also saves the FP control state of the current
    /// context (restored when it is resumed) and gives the target the default state.
    pub(crate) fn microthread_ctx_switch_fpenv(to: *mut u8, data: usize) -> RawTransfer;
    /// As `microthread_ctx_switch`, ending in a return instead of an indirect jump: for
    /// targets suspended at the caller's own call site (see asm/x86_64.S).
    pub(crate) fn microthread_ctx_switch_ret(to: *mut u8, data: usize) -> RawTransfer;
    fn microthread_ctx_trampoline();
}

#[cfg(target_arch = "x86_64")]
extern "C" {
    /// The `ret`-ending twin of `microthread_ctx_switch_fpenv`, entered by a jump.
    pub(crate) fn microthread_ctx_switch_fpenv_ret();
    /// The last switch of a dying context, entered by a jump: saves nothing.
    pub(crate) fn microthread_ctx_exit();
    fn microthread_ctx_trampoline_light();
}

/// Bytes of the initial light frame below the top: rbx, rbp, pc, the entry's argument, and
/// the link slot (which also leaves the trampoline 16-aligned).
#[cfg(target_arch = "x86_64")]
pub(crate) const INITIAL_LIGHT_FRAME_SIZE: usize = 0x28;

/// Writes the initial light frame below `top` (x86_64): rbx = entry, rbp = 0, pc = the light
/// trampoline, then the argument, which the trampoline reads from its stack.
///
/// # Safety
/// - `top` must be 16-aligned and the `INITIAL_LIGHT_FRAME_SIZE` bytes below it writable.
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) unsafe fn init_light_frame(top: *mut u8, entry: usize, arg: usize) -> *mut u8 {
    debug_assert_eq!(
        top as usize % STACK_ALIGN,
        0,
        "stack top must be 16-aligned"
    );
    // SAFETY: the caller guarantees the bytes below `top`; every slot is an aligned word.
    unsafe {
        let frame = top.sub(INITIAL_LIGHT_FRAME_SIZE) as *mut usize;
        frame.write(entry);
        frame.add(1).write(0);
        frame
            .add(2)
            .write(microthread_ctx_trampoline_light as *const () as usize);
        frame.add(3).write(arg);
        frame.add(4).write(no_parent());
        debug_assert_eq!(frame.add(4), link_slot(top));
        frame as *mut u8
    }
}

/// The word below the stack top of a new context: the *link slot*, which the trampolines'
/// CFI follows to the frame of whoever resumed the context (see "Backtraces across switches"
/// in asm/x86_64.S). It holds the address of a cell, a word that holds the resumer's saved
/// stack pointer whenever the context runs: an `Option<Context>`.
///
/// # Safety
/// - `top` must be the top a context's initial frame was written below.
#[inline(always)]
pub(crate) unsafe fn link_slot(top: *mut u8) -> *mut usize {
    // SAFETY: the caller's obligation: the word is the last of the initial frame.
    unsafe { (top as *mut usize).sub(1) }
}

/// A suspended frame of zeros, as large as the largest saved frame: its return address is 0,
/// which ends every backtrace (libgcc, LLVM's libunwind and gdb all stop at a zero pc).
static ROOT_FRAME: [usize; 32] = [0; 32];

/// The cell a link slot names until the context links itself: it holds [`ROOT_FRAME`]'s
/// address, so that a backtrace through a context that never linked ends at its trampoline.
static NO_PARENT: RootCell = RootCell(&ROOT_FRAME as *const [usize; 32] as *const usize);

struct RootCell(#[allow(dead_code)] /* read by unwinders only */ *const usize);
// SAFETY: a constant address that nothing writes through.
unsafe impl Sync for RootCell {}

/// The address of [`NO_PARENT`], the default content of a link slot.
fn no_parent() -> usize {
    &NO_PARENT as *const RootCell as usize
}

/// Points the link slot of the context whose initial frame was written below `top` at
/// `cell`, which must hold the saved stack pointer of the frame to continue backtraces in,
/// in the shape of the context's own trampoline (a light one for a light context).
///
/// # Safety
/// - `top` as for [`link_slot`], and the context must not have ended (its stack is ours).
/// - `cell` must stay valid for as long as the context can run, and hold a saved stack
///   pointer (never zero) whenever the context runs code that may unwind or take a
///   backtrace.
pub(crate) unsafe fn set_link(top: *mut u8, cell: *const Option<crate::context::Context>) {
    // SAFETY: forwarded.
    unsafe { link_slot(top).write(cell as usize) }
}

/// Stack pointer alignment all three psABIs require at a call.
pub(crate) const STACK_ALIGN: usize = 16;

/// Where, in words from the saved stack pointer, the initial frame keeps the values the
/// trampoline needs, and how many bytes below the stack top that frame starts.
struct InitialFrame {
    /// Bytes from the frame to the stack top; chosen so that the trampoline starts with a
    /// 16-aligned stack pointer and one spare 16-byte slot above it.
    size: usize,
    /// Bytes the switch pops off a frame before it jumps to the resume pc.
    #[cfg_attr(not(test), allow(dead_code))]
    popped: usize,
    entry_slot: usize,
    arg_slot: usize,
    pc_slot: usize,
}

#[cfg(target_arch = "x86_64")]
const FRAME: InitialFrame = InitialFrame {
    // r12 r13 r14 r15 rbx rbp pc: 7 words; after they are popped rsp = top - 16.
    size: 0x48,
    popped: 0x38,
    entry_slot: 4, // rbx
    arg_slot: 0,   // r12
    pc_slot: 6,
};

#[cfg(target_arch = "aarch64")]
const FRAME: InitialFrame = InitialFrame {
    // d8..d15 x19..x28 x29 x30: 20 words; after them sp = top - 16.
    size: 0xb0,
    popped: 0xa0,
    entry_slot: 8, // x19
    arg_slot: 9,   // x20
    pc_slot: 19,   // x30
};

#[cfg(target_arch = "riscv64")]
const FRAME: InitialFrame = InitialFrame {
    // s0..s11 ra fs0..fs11 pad: 26 words; after them sp = top - 16.
    size: 0xe0,
    popped: 0xd0,
    entry_slot: 1, // s1
    arg_slot: 2,   // s2
    pc_slot: 12,   // ra
};

/// Bytes of the initial frame, the least a stack must hold before the entry function runs.
pub(crate) const INITIAL_FRAME_SIZE: usize = FRAME.size;

/// Writes the frame a new context starts from just below `top` and returns its saved stack
/// pointer. Every register slot not named below is zero, which also ends frame-pointer walks.
///
/// # Safety
/// - `top` must be 16-aligned and the `INITIAL_FRAME_SIZE` bytes below it writable.
pub(crate) unsafe fn init_frame(top: *mut u8, entry: usize, arg: usize) -> *mut u8 {
    debug_assert_eq!(
        top as usize % STACK_ALIGN,
        0,
        "stack top must be 16-aligned"
    );
    // SAFETY: the caller guarantees INITIAL_FRAME_SIZE writable bytes below `top`.
    let frame = unsafe { top.sub(FRAME.size) } as *mut usize;
    for i in 0..FRAME.size / core::mem::size_of::<usize>() {
        // SAFETY: `i` stays inside the frame, which the caller made writable; `top` is
        // 16-aligned and FRAME.size a multiple of 16, so every word is aligned.
        unsafe { frame.add(i).write(0) };
    }
    // SAFETY: the four slots are inside the frame (checked by the layout tests below).
    unsafe {
        link_slot(top).write(no_parent());
        frame.add(FRAME.entry_slot).write(entry);
        frame.add(FRAME.arg_slot).write(arg);
        frame
            .add(FRAME.pc_slot)
            .write(microthread_ctx_trampoline as *const () as usize);
    }
    frame as *mut u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_frame_fits_and_leaves_the_trampoline_aligned() {
        let words = FRAME.size / 8;
        assert!(FRAME.entry_slot < words);
        assert!(FRAME.arg_slot < words);
        assert!(FRAME.pc_slot < words);
        const { assert!(FRAME.pc_slot * 8 < FRAME.popped && FRAME.popped <= FRAME.size) };
        // The frame starts 16-aligned below the top, and what the switch leaves after popping
        // must be a whole number of 16-byte units, so that the trampoline starts aligned.
        assert_eq!((FRAME.size - FRAME.popped) % STACK_ALIGN, 0);
        const { assert!(FRAME.size - FRAME.popped >= 16) };
        // The link slot is the last word, above everything the trampoline reads.
        for slot in [FRAME.entry_slot, FRAME.arg_slot] {
            assert!(slot < words - 1, "slot {slot} overlaps the link slot");
        }
    }

    #[test]
    fn a_new_context_links_to_the_zero_frame_until_it_links_itself() {
        let mut words = [0usize; 64];
        let top = words.as_mut_ptr_range().end as usize & !(STACK_ALIGN - 1);
        // SAFETY: `top` is 16-aligned with FRAME.size writable bytes of `words` below it.
        unsafe {
            init_frame(top as *mut u8, 1, 2);
            let cell = *link_slot(top as *mut u8) as *const usize;
            let frame = *cell as *const usize;
            assert_eq!(frame, ROOT_FRAME.as_ptr());
            // The return address the trampolines' CFI reads for a full frame: zero.
            assert_eq!(*frame.add(FRAME.pc_slot), 0);
        }
    }
}
