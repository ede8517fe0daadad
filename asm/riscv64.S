/*
 * asm/riscv64.S: the context switch for RISC-V RV64GC, LP64D ABI (Linux, ELF).
 *
 * The same three routines and contract as asm/x86_64.S, which carries the shared reasoning
 * (handles are saved stack pointers, consumed by the switch; why the resume is an indirect
 * jump; why the FP control state is saved only on request). Only the differences are
 * explained here.
 *
 *   microthread_ctx_switch(to: *mut u8 [a0], data: usize [a1])
 *       -> Transfer { from: *mut u8 [a0], data: usize [a1] }
 *   microthread_ctx_switch_fpenv(to [a0], data [a1]) -> Transfer [a0:a1]
 *   microthread_ctx_trampoline     (never called; a new context's first resume lands here)
 *
 * Saved frame, at a suspended context's stack pointer (`to` / `from`), 0xd0 bytes:
 *
 *   offset  +--------------------------------+
 *   0x00    | s0 (frame pointer)             |
 *   0x08    | s1                             |
 *   0x10    | s2                             |
 *   0x18    | s3                             |
 *   0x20    | s4                             |
 *   0x28    | s5                             |
 *   0x30    | s6                             |
 *   0x38    | s7                             |
 *   0x40    | s8                             |
 *   0x48    | s9                             |
 *   0x50    | s10                            |
 *   0x58    | s11                            |
 *   0x60    | ra = resume pc                 |  <- the caller's return address; or .Lrestore_fpenv
 *   0x68    | fs0                            |
 *   0x70    | fs1                            |
 *   0x78    | fs2                            |
 *   0x80    | fs3                            |
 *   0x88    | fs4                            |
 *   0x90    | fs5                            |
 *   0x98    | fs6                            |
 *   0xa0    | fs7                            |
 *   0xa8    | fs8                            |
 *   0xb0    | fs9                            |
 *   0xb8    | fs10                           |
 *   0xc0    | fs11                           |
 *   0xc8    | padding (keeps sp 16-aligned)  |
 *           +--------------------------------+  <- the suspended caller's sp before `call`
 *
 * A context suspended by microthread_ctx_switch_fpenv has 16 more bytes above that, and its
 * resume pc is .Lrestore_fpenv rather than its caller:
 *
 *   0xd0    | frm (rounding mode, 3 bits)    |
 *   0xd8    | ra (return address, caller)    |
 *
 * src/arch.rs writes the initial frame of a new context in this layout (s1 = entry, s2 = arg,
 * ra = microthread_ctx_trampoline, everything else 0), and must change with it.
 * Above it, at the top of the new stack (0xe0 bytes in all, `top` as given to Context::new):
 *
 *   top - 0x08  | link slot: the address of a cell that holds the resumer's saved sp |
 *   top - 0x10  | top cell: 0; a coroutine's cell once it runs  |  <- sp at the trampoline
 *   top - 0xe0  | the initial frame, as above    |
 *
 * The trampoline's CFI follows the link slot to the resumer's saved frame, so backtraces
 * continue on the resumer's stack: see "Backtraces across switches" in asm/x86_64.S.
 *
 * Alignment: `call` pushes nothing, and the psABI keeps sp 16-aligned at every call, so with
 * 0xd0 and 0xe0 every saved sp, and the sp the trampoline starts with, is 16-aligned.
 *
 * The full 64-bit fs0-fs11 are saved (LP64D makes them callee-saved as doubles). tp (thread
 * pointer) and gp (global pointer, for linker relaxation) belong to the OS thread and the
 * image, never to a context, and are never touched; the vector state is caller-saved. frm is
 * the only FP mode; fflags, the sticky exception flags, is status and is saved by neither
 * switch (on x86_64 the flags ride along only because they share MXCSR with the mode bits).
 *
 * The resume is `jr t1`, not `jr ra`: a jalr with rs1 = ra or t0 (x1/x5, the two link
 * registers) and rd = x0 is the return hint, which pops the return-address stack holding our
 * caller, not the other context's. t1 is neither, so the jump is predicted as an indirect
 * one. ra is reloaded as well, so that the resumed code sees the value its `call` left there.
 */
#include "common.h"

/*
 * CFI for the slots of a frame at sp, except the resume pc, whose rule each user states.
 * .cfi_rel_offset is relative to the current CFA, so this serves both 0xd0 and 0xe0 frames.
 */
.macro FRAME_CFI
    .cfi_rel_offset s0, 0x00
    .cfi_rel_offset s1, 0x08
    .cfi_rel_offset s2, 0x10
    .cfi_rel_offset s3, 0x18
    .cfi_rel_offset s4, 0x20
    .cfi_rel_offset s5, 0x28
    .cfi_rel_offset s6, 0x30
    .cfi_rel_offset s7, 0x38
    .cfi_rel_offset s8, 0x40
    .cfi_rel_offset s9, 0x48
    .cfi_rel_offset s10, 0x50
    .cfi_rel_offset s11, 0x58
    .cfi_rel_offset fs0, 0x68
    .cfi_rel_offset fs1, 0x70
    .cfi_rel_offset fs2, 0x78
    .cfi_rel_offset fs3, 0x80
    .cfi_rel_offset fs4, 0x88
    .cfi_rel_offset fs5, 0x90
    .cfi_rel_offset fs6, 0x98
    .cfi_rel_offset fs7, 0xa0
    .cfi_rel_offset fs8, 0xa8
    .cfi_rel_offset fs9, 0xb0
    .cfi_rel_offset fs10, 0xb8
    .cfi_rel_offset fs11, 0xc0
.endm

/* Stores the frame at sp (already reserved), with \pc as its resume pc. */
.macro SAVE_FRAME pc
    sd      s0, 0x00(sp)
    sd      s1, 0x08(sp)
    sd      s2, 0x10(sp)
    sd      s3, 0x18(sp)
    sd      s4, 0x20(sp)
    sd      s5, 0x28(sp)
    sd      s6, 0x30(sp)
    sd      s7, 0x38(sp)
    sd      s8, 0x40(sp)
    sd      s9, 0x48(sp)
    sd      s10, 0x50(sp)
    sd      s11, 0x58(sp)
    sd      \pc, 0x60(sp)
    fsd     fs0, 0x68(sp)
    fsd     fs1, 0x70(sp)
    fsd     fs2, 0x78(sp)
    fsd     fs3, 0x80(sp)
    fsd     fs4, 0x88(sp)
    fsd     fs5, 0x90(sp)
    fsd     fs6, 0x98(sp)
    fsd     fs7, 0xa0(sp)
    fsd     fs8, 0xa8(sp)
    fsd     fs9, 0xb0(sp)
    fsd     fs10, 0xb8(sp)
    fsd     fs11, 0xc0(sp)
    FRAME_CFI
.endm

/*
 * Resumes the frame at sp (CFA = sp + 0xd0, described by FRAME_CFI): reloads it, pops it and
 * jumps to its resume pc. a0/a1, the Transfer, are not touched.
 */
.macro RESUME_FRAME how=jr
    /* t1: caller-saved, not part of the Transfer, and not a link register (see the header). */
    ld      t1, 0x60(sp)
    ld      ra, 0x60(sp)
    ld      s0, 0x00(sp)
    ld      s1, 0x08(sp)
    ld      s2, 0x10(sp)
    ld      s3, 0x18(sp)
    ld      s4, 0x20(sp)
    ld      s5, 0x28(sp)
    ld      s6, 0x30(sp)
    ld      s7, 0x38(sp)
    ld      s8, 0x40(sp)
    ld      s9, 0x48(sp)
    ld      s10, 0x50(sp)
    ld      s11, 0x58(sp)
    fld     fs0, 0x68(sp)
    fld     fs1, 0x70(sp)
    fld     fs2, 0x78(sp)
    fld     fs3, 0x80(sp)
    fld     fs4, 0x88(sp)
    fld     fs5, 0x90(sp)
    fld     fs6, 0x98(sp)
    fld     fs7, 0xa0(sp)
    fld     fs8, 0xa8(sp)
    fld     fs9, 0xb0(sp)
    fld     fs10, 0xb8(sp)
    fld     fs11, 0xc0(sp)
    addi    sp, sp, 0xd0
    /* Every register now holds its own value again; the resumed code's caller is in ra. */
    .cfi_def_cfa_offset 0
    .cfi_restore s0
    .cfi_restore s1
    .cfi_restore s2
    .cfi_restore s3
    .cfi_restore s4
    .cfi_restore s5
    .cfi_restore s6
    .cfi_restore s7
    .cfi_restore s8
    .cfi_restore s9
    .cfi_restore s10
    .cfi_restore s11
    .cfi_restore fs0
    .cfi_restore fs1
    .cfi_restore fs2
    .cfi_restore fs3
    .cfi_restore fs4
    .cfi_restore fs5
    .cfi_restore fs6
    .cfi_restore fs7
    .cfi_restore fs8
    .cfi_restore fs9
    .cfi_restore fs10
    .cfi_restore fs11
    .cfi_restore ra
.ifc \how, ret
    /* A return: predicted by the return-address stack (see microthread_ctx_switch_ret). */
    ret
.else
    jr      t1
.endif
.endm

/*
 * The plain switch, leaving by `jr t1` or, with `ret`, by `ret`.
 * On entry: a0 = the context to resume (its saved sp), a1 = the word to hand it,
 *           ra = our return address, which becomes the resume pc of the frame we save.
 * On exit (in the other context): a0 = our saved sp, a1 = the word (never moved).
 */
.macro SWITCH how=jr
    addi    sp, sp, -0xd0
    .cfi_def_cfa_offset 0xd0
    SAVE_FRAME ra
    .cfi_rel_offset ra, 0x60
    /* Our frame is complete: its address is the handle the other side gets back. */
    mv      t0, a0
    mv      a0, sp
    mv      sp, t0
    /* From here sp is the other context's frame, of the same shape, so the CFI still holds. */
    RESUME_FRAME \how
.endm

FUNC_BEGIN(microthread_ctx_switch)
    SWITCH  jr
FUNC_END(microthread_ctx_switch)

/*
 * The same, ending in `ret` (jr ra), which the return-address stack predicts: right when the
 * target waits at our own return address, as every tasklet does in the scheduler (one call
 * site for every switch; see x86_64.S). On entry and exit: as microthread_ctx_switch.
 */
FUNC_BEGIN(microthread_ctx_switch_ret)
    SWITCH  ret
FUNC_END(microthread_ctx_switch_ret)

/*
 * As microthread_ctx_switch, but also saves this context's rounding mode (frm) and installs
 * the default (0: round to nearest, ties to even) for the target; if the target was
 * suspended here too, its .Lrestore_fpenv stub then reloads the target's own.
 *
 * On entry: a0 = target's saved sp, a1 = word, ra = our return address.
 */
FUNC_BEGIN(microthread_ctx_switch_fpenv)
    addi    sp, sp, -0xe0
    .cfi_def_cfa_offset 0xe0
    frrm    t0
    sd      t0, 0xd0(sp)
    sd      ra, 0xd8(sp)
    .cfi_rel_offset ra, 0xd8
    /* The resume pc of this frame is the stub, which reloads frm first. */
    lla     t0, .Lrestore_fpenv
    SAVE_FRAME t0

    mv      t0, a0
    mv      a0, sp
    /* A target suspended by the plain switch never saved a rounding mode: give it Rust's. */
    fsrm    zero
    mv      sp, t0
    /*
     * The target's frame: the plain shape (CFA = sp + 0xd0, ra at 0x60) until its resume pc
     * says more. The slots' offsets from the CFA differ from ours, so state them again.
     */
    .cfi_def_cfa_offset 0xd0
    FRAME_CFI
    .cfi_rel_offset ra, 0x60
    RESUME_FRAME

/*
 * Resume pc of a frame saved by microthread_ctx_switch_fpenv, reached from whichever switch
 * resumed it, after the 0xd0-byte frame was popped.
 * On entry: sp -> [frm][return address]; a0:a1 = the Transfer (left untouched);
 *           ra = t1 = this stub.
 */
    /*
     * Never executed (RESUME_FRAME always jumps away). An unwinder that finds .Lrestore_fpenv
     * as a resume pc looks up the instruction before it, as for any return address: this
     * one, whose CFI describes the stub's frame (see asm/x86_64.S).
     */
    .cfi_def_cfa_offset 16
    .cfi_offset ra, -8
    nop
.Lrestore_fpenv:
    ld      t0, 0(sp)
    fsrm    t0
    ld      t1, 8(sp)
    ld      ra, 8(sp)
    addi    sp, sp, 16
    .cfi_def_cfa_offset 0
    .cfi_restore ra
    jr      t1
FUNC_END(microthread_ctx_switch_fpenv)

/*
 * First instruction of every new context, reached by a switch's `jr t1` through the frame
 * src/arch.rs wrote.
 * On entry: a0 = the resumer's saved sp, a1 = the word it passed, s1 = the Rust entry
 *           function, s2 = the entry's argument, s0 = 0 (ends frame-pointer walks),
 *           sp = 16-aligned, top - 0x10; 8(sp) = the link slot.
 * Calls entry(from, data, arg), which never returns: it leaves by its last switch.
 */
FUNC_BEGIN(microthread_ctx_trampoline)
    /*
     * The caller, for unwinders: the resumer's suspended frame (see "Backtraces across
     * switches" in asm/x86_64.S). CFA = [[sp + 8]] + 0xd0:
     *   DW_CFA_def_cfa_expression, 7 bytes:
     *     DW_OP_breg2 (sp) 8; DW_OP_deref; DW_OP_deref; DW_OP_plus_uconst 0xd0
     * and every register at its slot of the frame diagram above, relative to that CFA.
     */
    .cfi_escape 0x0f, 7, 0x72, 0x08, 0x06, 0x06, 0x23, 0xd0, 0x01
    .cfi_offset s0, -0xd0
    .cfi_offset s1, -0xc8
    .cfi_offset s2, -0xc0
    .cfi_offset s3, -0xb8
    .cfi_offset s4, -0xb0
    .cfi_offset s5, -0xa8
    .cfi_offset s6, -0xa0
    .cfi_offset s7, -0x98
    .cfi_offset s8, -0x90
    .cfi_offset s9, -0x88
    .cfi_offset s10, -0x80
    .cfi_offset s11, -0x78
    .cfi_offset ra, -0x70
    .cfi_offset fs0, -0x68
    .cfi_offset fs1, -0x60
    .cfi_offset fs2, -0x58
    .cfi_offset fs3, -0x50
    .cfi_offset fs4, -0x48
    .cfi_offset fs5, -0x40
    .cfi_offset fs6, -0x38
    .cfi_offset fs7, -0x30
    .cfi_offset fs8, -0x28
    .cfi_offset fs9, -0x20
    .cfi_offset fs10, -0x18
    .cfi_offset fs11, -0x10
    mv      a2, s2
    jalr    s1
    /* The entry is `-> !`; returning here is a bug, and must not run off into the next page. */
    unimp
FUNC_END(microthread_ctx_trampoline)

    .section .note.GNU-stack,"",%progbits
