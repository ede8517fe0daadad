/*
 * asm/aarch64.S: the context switch for AArch64 AAPCS64 (Linux, ELF).
 *
 * The same three routines and contract as asm/x86_64.S, which carries the shared reasoning
 * (handles are saved stack pointers, consumed by the switch; why the resume is an indirect
 * branch; why the FP control state is saved only on request). Only the differences are
 * explained here.
 *
 *   microthread_ctx_switch(to: *mut u8 [x0], data: usize [x1])
 *       -> Transfer { from: *mut u8 [x0], data: usize [x1] }
 *   microthread_ctx_switch_fpenv(to [x0], data [x1]) -> Transfer [x0:x1]
 *   microthread_ctx_trampoline     (never called; a new context's first resume lands here)
 *
 * Saved frame, at a suspended context's stack pointer (`to` / `from`), 0xa0 bytes:
 *
 *   offset  +--------------------------------+
 *   0x00    | d8                             |
 *   0x08    | d9                             |
 *   0x10    | d10                            |
 *   0x18    | d11                            |
 *   0x20    | d12                            |
 *   0x28    | d13                            |
 *   0x30    | d14                            |
 *   0x38    | d15                            |
 *   0x40    | x19                            |
 *   0x48    | x20                            |
 *   0x50    | x21                            |
 *   0x58    | x22                            |
 *   0x60    | x23                            |
 *   0x68    | x24                            |
 *   0x70    | x25                            |
 *   0x78    | x26                            |
 *   0x80    | x27                            |
 *   0x88    | x28                            |
 *   0x90    | x29 (frame pointer)            |
 *   0x98    | x30 = resume pc                |  <- the caller's return address; or .Lrestore_fpenv
 *           +--------------------------------+  <- the suspended caller's sp before `bl`
 *
 * A context suspended by microthread_ctx_switch_fpenv has 16 more bytes above that, and its
 * resume pc is .Lrestore_fpenv rather than its caller:
 *
 *   0xa0    | FPCR                           |
 *   0xa8    | x30 (return address, caller)   |
 *
 * src/arch.rs writes the initial frame of a new context in this layout (x19 = entry, x20 =
 * arg, x30 = microthread_ctx_trampoline, everything else 0), and must change with it.
 * Above it, at the top of the new stack (0xb0 bytes in all, `top` as given to Context::new):
 *
 *   top - 0x08  | link slot: the address of a cell that holds the resumer's saved sp |
 *   top - 0x10  | top cell: 0; a coroutine's cell once it runs  |  <- sp at the trampoline
 *   top - 0xb0  | the initial frame, as above    |
 *
 * The trampoline's CFI follows the link slot to the resumer's saved frame, so backtraces
 * continue on the resumer's stack: see "Backtraces across switches" in asm/x86_64.S.
 *
 * Alignment: `bl` pushes nothing on AArch64, so the caller's sp is 16-aligned (Linux turns on
 * the sp alignment check, so it always is) and 0xa0 and 0xb0 keep it so: every saved sp, and
 * the sp the trampoline starts with, is 16-aligned; unlike x86_64 there is no 8-byte skew.
 *
 * Only the low 64 bits of v8-v15 (d8-d15) are callee-saved in AAPCS64, so only they are
 * saved; SVE/SME state is caller-saved for an ordinary call. x18 is the platform register and
 * is never touched. FPCR is callee-saved in the ABI but Rust never changes it, so only
 * microthread_ctx_switch_fpenv saves it (see asm/x86_64.S). FPSR, the sticky exception
 * flags, is status rather than a mode and is saved by neither switch (on x86_64 the flags
 * ride along only because they share MXCSR with the mode bits).
 *
 * The resume is `br x30`, not `ret`: `ret` pops the return-address stack, which holds our
 * caller, not the other context's, and would mispredict every switch. Consequence: the switch
 * is not compatible with BTI-guarded pages (a resume pc is a return address, never a `bti j`
 * landing pad). That is fine as long as this object carries no BTI property note, which makes
 * the linker leave BTI off for the image.
 */
#include "common.h"

/*
 * CFI for the slots of a frame at sp, except the resume pc, whose rule each user states.
 * .cfi_rel_offset is relative to the current CFA, so this serves both 0xa0 and 0xb0 frames.
 */
.macro FRAME_CFI
    .cfi_rel_offset d8, 0x00
    .cfi_rel_offset d9, 0x08
    .cfi_rel_offset d10, 0x10
    .cfi_rel_offset d11, 0x18
    .cfi_rel_offset d12, 0x20
    .cfi_rel_offset d13, 0x28
    .cfi_rel_offset d14, 0x30
    .cfi_rel_offset d15, 0x38
    .cfi_rel_offset x19, 0x40
    .cfi_rel_offset x20, 0x48
    .cfi_rel_offset x21, 0x50
    .cfi_rel_offset x22, 0x58
    .cfi_rel_offset x23, 0x60
    .cfi_rel_offset x24, 0x68
    .cfi_rel_offset x25, 0x70
    .cfi_rel_offset x26, 0x78
    .cfi_rel_offset x27, 0x80
    .cfi_rel_offset x28, 0x88
    .cfi_rel_offset x29, 0x90
.endm

/* Stores the frame at sp (already reserved), with \pc as its resume pc. */
.macro SAVE_FRAME pc
    stp     d8, d9, [sp, #0x00]
    stp     d10, d11, [sp, #0x10]
    stp     d12, d13, [sp, #0x20]
    stp     d14, d15, [sp, #0x30]
    stp     x19, x20, [sp, #0x40]
    stp     x21, x22, [sp, #0x50]
    stp     x23, x24, [sp, #0x60]
    stp     x25, x26, [sp, #0x70]
    stp     x27, x28, [sp, #0x80]
    stp     x29, \pc, [sp, #0x90]
    FRAME_CFI
.endm

/*
 * Resumes the frame at sp (CFA = sp + 0xa0, described by FRAME_CFI): reloads it, pops it and
 * branches to its resume pc. x0/x1, the Transfer, are not touched.
 */
.macro RESUME_FRAME how=br
    ldp     d8, d9, [sp, #0x00]
    ldp     d10, d11, [sp, #0x10]
    ldp     d12, d13, [sp, #0x20]
    ldp     d14, d15, [sp, #0x30]
    ldp     x19, x20, [sp, #0x40]
    ldp     x21, x22, [sp, #0x50]
    ldp     x23, x24, [sp, #0x60]
    ldp     x25, x26, [sp, #0x70]
    ldp     x27, x28, [sp, #0x80]
    /*
     * x30 is the link register, which the resumed code treats as clobbered by its `bl`, so
     * it can carry the resume pc and needs no scratch register.
     */
    ldp     x29, x30, [sp, #0x90]
    add     sp, sp, #0xa0
    /* Every register now holds its own value again; the resumed code's caller is in x30. */
    .cfi_def_cfa_offset 0
    .cfi_restore d8
    .cfi_restore d9
    .cfi_restore d10
    .cfi_restore d11
    .cfi_restore d12
    .cfi_restore d13
    .cfi_restore d14
    .cfi_restore d15
    .cfi_restore x19
    .cfi_restore x20
    .cfi_restore x21
    .cfi_restore x22
    .cfi_restore x23
    .cfi_restore x24
    .cfi_restore x25
    .cfi_restore x26
    .cfi_restore x27
    .cfi_restore x28
    .cfi_restore x29
    .cfi_restore x30
.ifc \how, ret
    ret
.else
    br      x30
.endif
.endm

/*
 * The plain switch, leaving by `br x30` or, with `ret`, by `ret`.
 * On entry: x0 = the context to resume (its saved sp), x1 = the word to hand it,
 *           x30 = our return address, which becomes the resume pc of the frame we save.
 * On exit (in the other context): x0 = our saved sp, x1 = the word (never moved).
 */
.macro SWITCH how=br
    sub     sp, sp, #0xa0
    .cfi_def_cfa_offset 0xa0
    SAVE_FRAME x30
    .cfi_rel_offset x30, 0x98
    /*
     * Our frame is complete: its address is the handle the other side gets back. x2 is a
     * scratch register because sp cannot be swapped with x0 in one instruction.
     */
    mov     x2, sp
    mov     sp, x0
    mov     x0, x2
    /* From here sp is the other context's frame, of the same shape, so the CFI still holds. */
    RESUME_FRAME \how
.endm

FUNC_BEGIN(microthread_ctx_switch)
    SWITCH  br
FUNC_END(microthread_ctx_switch)

/*
 * The same, ending in `ret`, which the return-address stack predicts: right when the target
 * waits at our own return address, as every tasklet does in the scheduler (one call site for
 * every switch; see x86_64.S). On entry and exit: as microthread_ctx_switch.
 */
FUNC_BEGIN(microthread_ctx_switch_ret)
    SWITCH  ret
FUNC_END(microthread_ctx_switch_ret)

/*
 * As microthread_ctx_switch, but also saves this context's FPCR and installs the default
 * (0: round to nearest, no traps, no flush-to-zero, no default NaN) for the target; if the
 * target was suspended here too, its .Lrestore_fpenv stub then reloads the target's own.
 *
 * On entry: x0 = target's saved sp, x1 = word, x30 = our return address.
 */
FUNC_BEGIN(microthread_ctx_switch_fpenv)
    sub     sp, sp, #0xb0
    .cfi_def_cfa_offset 0xb0
    mrs     x9, fpcr
    stp     x9, x30, [sp, #0xa0]
    .cfi_rel_offset x30, 0xa8
    /* The resume pc of this frame is the stub, which reloads FPCR first. */
    adr     x10, .Lrestore_fpenv
    SAVE_FRAME x10

    mov     x2, sp
    /* A target suspended by the plain switch never saved an FPCR: give it Rust's. */
    msr     fpcr, xzr
    mov     sp, x0
    mov     x0, x2
    /*
     * The target's frame: the plain shape (CFA = sp + 0xa0, x30 at 0x98) until its resume pc
     * says more. The slots' offsets from the CFA differ from ours, so state them again.
     */
    .cfi_def_cfa_offset 0xa0
    FRAME_CFI
    .cfi_rel_offset x30, 0x98
    RESUME_FRAME

/*
 * Resume pc of a frame saved by microthread_ctx_switch_fpenv, reached from whichever switch
 * resumed it, after the 0xa0-byte frame was popped.
 * On entry: sp -> [FPCR][return address]; x0:x1 = the Transfer (left untouched).
 */
    /*
     * Never executed (RESUME_FRAME always branches away). An unwinder that finds
     * .Lrestore_fpenv as a resume pc looks up the instruction before it, as for any return
     * address: this one, whose CFI describes the stub's frame (see asm/x86_64.S).
     */
    .cfi_def_cfa_offset 16
    .cfi_offset x30, -8
    nop
.Lrestore_fpenv:
    ldp     x9, x30, [sp]
    msr     fpcr, x9
    add     sp, sp, #16
    .cfi_def_cfa_offset 0
    .cfi_restore x30
    br      x30
FUNC_END(microthread_ctx_switch_fpenv)

/*
 * First instruction of every new context, reached by a switch's `br x30` through the frame
 * src/arch.rs wrote.
 * On entry: x0 = the resumer's saved sp, x1 = the word it passed, x19 = the Rust entry
 *           function, x20 = the entry's argument, x29 = 0 (ends frame-pointer walks),
 *           sp = 16-aligned, top - 0x10; [sp + 8] = the link slot.
 * Calls entry(from, data, arg), which never returns: it leaves by its last switch.
 */
FUNC_BEGIN(microthread_ctx_trampoline)
    /*
     * The caller, for unwinders: the resumer's suspended frame (see "Backtraces across
     * switches" in asm/x86_64.S). CFA = [[sp + 8]] + 0xa0:
     *   DW_CFA_def_cfa_expression, 7 bytes:
     *     DW_OP_breg31 (sp) 8; DW_OP_deref; DW_OP_deref; DW_OP_plus_uconst 0xa0
     * and every register at its slot of the frame diagram above, relative to that CFA.
     */
    .cfi_escape 0x0f, 7, 0x8f, 0x08, 0x06, 0x06, 0x23, 0xa0, 0x01
    .cfi_offset d8, -0xa0
    .cfi_offset d9, -0x98
    .cfi_offset d10, -0x90
    .cfi_offset d11, -0x88
    .cfi_offset d12, -0x80
    .cfi_offset d13, -0x78
    .cfi_offset d14, -0x70
    .cfi_offset d15, -0x68
    .cfi_offset x19, -0x60
    .cfi_offset x20, -0x58
    .cfi_offset x21, -0x50
    .cfi_offset x22, -0x48
    .cfi_offset x23, -0x40
    .cfi_offset x24, -0x38
    .cfi_offset x25, -0x30
    .cfi_offset x26, -0x28
    .cfi_offset x27, -0x20
    .cfi_offset x28, -0x18
    .cfi_offset x29, -0x10
    .cfi_offset x30, -0x08
    mov     x2, x20
    blr     x19
    /* The entry is `-> !`; returning here is a bug, and must not run off into the next page. */
    brk     #0
FUNC_END(microthread_ctx_trampoline)

    .section .note.GNU-stack,"",%progbits
