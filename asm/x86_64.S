/*
 * asm/x86_64.S: the context switch for x86_64 System V (Linux, ELF).
 *
 * The machine code of microthread's switches, but for the light switch of coroutines (inline
 * `asm!` in src/context/light.rs):
 *
 *   microthread_ctx_switch(to: *mut u8 [rdi], data: usize [rsi])
 *       -> Transfer { from: *mut u8 [rax], data: usize [rdx] }
 *   microthread_ctx_switch_fpenv(to [rdi], data [rsi]) -> Transfer [rax:rdx]
 *   microthread_ctx_trampoline     (never called; a new context's first resume lands here)
 *
 * and their variants further down: `_ret` twins that end in `ret` (for call sites the
 * return-address predictor can follow), the light trampoline (the first resume of a light
 * context; the light switch itself is inline `asm!` in src/context/light.rs, and its frame is
 * described there), and the exit of a dying context.
 *
 * A context is named by its saved stack pointer. Switching saves the running context's
 * callee-saved registers on its own stack, hands that stack pointer to the other side as
 * `from`, and resumes `to`. `to` is consumed: the Rust side makes the handle linear, so a
 * saved frame is popped exactly once (Boost.Context's jump_fcontext shape).
 *
 * Saved frame, at a suspended context's stack pointer (`to` / `from`):
 *
 *   offset  +--------------------------------+
 *   0x00    | r12                            |
 *   0x08    | r13                            |
 *   0x10    | r14                            |
 *   0x18    | r15                            |
 *   0x20    | rbx                            |
 *   0x28    | rbp                            |
 *   0x30    | resume pc                      |  <- pushed by `call`; or .Lrestore_fpenv
 *           +--------------------------------+  <- the suspended caller's rsp before `call`
 *
 * A context suspended by microthread_ctx_switch_fpenv has two more words above that, and its
 * resume pc is .Lrestore_fpenv rather than its caller:
 *
 *   0x38    | MXCSR control bits (4) | x87 CW (2) | pad(2) |
 *   0x40    | return address (into the caller)|
 *
 * so every resume is the same seven pops and an indirect jump, whoever suspended the frame;
 * a frame that saved the FP environment restores it on its own way back in. (The FP switch
 * itself recognises such a frame by its resume pc and restores it directly.)
 *
 * Alignment: the saved sp is 8 mod 16 (the caller's rsp is 16-aligned before its `call`). A
 * new context's frame is laid out by src/arch.rs so that the trampoline starts with rsp
 * 16-aligned, which makes the `call` into Rust see the (rsp + 8) % 16 == 0 the psABI wants.
 *
 * The top of a new context's stack (written by src/arch.rs; `top` is the address given to
 * Context::new), as the trampoline finds it once the switch has popped the initial frame:
 *
 *   top - 0x08  | link slot: the address of a cell holding the resumer's saved sp |
 *   top - 0x10  | top cell: 0 (full) or the entry's argument (light), until the   |
 *               | trampoline has run; then a coroutine's cell   <- rsp at the trampoline
 *   below       | the initial frame (full: 0x38 bytes, popped by the switch; light: 0x18,
 *               | read by the light trampoline)
 *
 * What the registers hold at each entry point is stated above each routine.
 *
 * Backtraces across switches: the trampoline's CFI names as its caller the *suspended frame
 * of the resumer*: CFA = [[link slot]] + frame size (0x38 full, 0x18 light), and the
 * registers and return address are read from that saved frame at the offsets of the frame
 * diagrams above. So an unwinder that reaches a context's first frame continues in whatever
 * code resumed it, on the other stack. The Rust side chooses the cell (src/context.rs
 * `Context::link_backtrace`): a coroutine's is its top cell, and from its first suspend a
 * field of its Yielder, where it stores its resumer's saved sp after every switch into it
 * (one store, outside this file); a tasklet's is the
 * main tasklet's saved context (never another tasklet, so that symmetric switches make no
 * cycle); a context that never links has a cell pointing at a zeroed frame, whose return
 * address 0 ends every walk. The switch routines are unchanged. A frame saved by the FP
 * switch resumes at .Lrestore_fpenv; the (never executed) instruction before that label
 * carries the stub's CFI for unwinders (see there).
 *
 * Not saved, on purpose: caller-saved registers (the Rust caller treats a call as clobbering
 * them) and the fs base (TLS belongs to the OS thread, and contexts never change thread).
 * MXCSR's control bits and the x87 control word are callee-saved in the psABI but saving
 * them costs several ns per round trip; Rust code never changes them, so only
 * microthread_ctx_switch_fpenv saves them, for contexts that run foreign code which does.
 * MXCSR's status flags (bits 0-5) are caller-saved and deliberately not kept: restoring a
 * value that differs in them from the current one makes ldmxcsr drain the pipeline
 * (measured here: ~110 ns per round trip instead of ~10).
 *
 * Why the resume ends in `pop rcx; jmp *rcx` and not `ret`: `ret` is predicted by the
 * return-stack buffer, which holds *our* caller, not the other context's; every switch would
 * mispredict (~10 ns per round trip measured here). An indirect jmp is predicted by the BTB.
 */
#include "common.h"

/* ---- building blocks ------------------------------------------------------------------ */

/* Saves the six callee-saved registers of the running context below its return address. */
.macro PUSH_CALLEE_SAVED
    pushq   %rbp
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbp, 0
    pushq   %rbx
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbx, 0
    pushq   %r15
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r15, 0
    pushq   %r14
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r14, 0
    pushq   %r13
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r13, 0
    pushq   %r12
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r12, 0
.endm

/*
 * Restores them from the frame at rsp. The frame being popped is the *target's*, which has
 * the same shape as ours, so the CFI above keeps describing it.
 */
.macro POP_CALLEE_SAVED
    popq    %r12
    .cfi_adjust_cfa_offset -8
    .cfi_restore r12
    popq    %r13
    .cfi_adjust_cfa_offset -8
    .cfi_restore r13
    popq    %r14
    .cfi_adjust_cfa_offset -8
    .cfi_restore r14
    popq    %r15
    .cfi_adjust_cfa_offset -8
    .cfi_restore r15
    popq    %rbx
    .cfi_adjust_cfa_offset -8
    .cfi_restore rbx
    popq    %rbp
    .cfi_adjust_cfa_offset -8
    .cfi_restore rbp
.endm

/*
 * Leaves for the resume pc at rsp. `jmp`: an indirect jump, predicted by the BTB, for a
 * switch entered by `call` whose target waits elsewhere (the resume direction). `ret`: for a
 * switch entered by a jump (the caller stored its return address itself) or from the one call
 * site every target waits at; the return-stack buffer then predicts it and stays balanced.
 * rcx is caller-saved and not part of the Transfer, so it is free to carry the target.
 */
.macro LEAVE how
.ifc \how, ret
    ret
.else
    popq    %rcx
    .cfi_adjust_cfa_offset -8
    .cfi_register rip, rcx
    jmpq    *%rcx
.endif
.endm

/*
 * Resumes the plain frame at rsp after a switch that changed the CFA rules on the way (the
 * FP switch, the exit): restates the frame's CFI (CFA = rsp + 0x38), pops it and leaves.
 */
.macro RESUME_PLAIN_FRAME how
    .cfi_def_cfa_offset 0x38
    .cfi_offset r12, -0x38
    .cfi_offset r13, -0x30
    .cfi_offset r14, -0x28
    .cfi_offset r15, -0x20
    .cfi_offset rbx, -0x18
    .cfi_offset rbp, -0x10
    POP_CALLEE_SAVED
    LEAVE   \how
.endm

/* The plain switch. On entry: rdi = target sp, rsi = word, [rsp] = our resume pc. */
.macro SWITCH how
    PUSH_CALLEE_SAVED
    /* Our frame is complete: its address is the handle the other side gets back. */
    movq    %rsp, %rax
    movq    %rdi, %rsp
    movq    %rsi, %rdx
    POP_CALLEE_SAVED
    LEAVE   \how
.endm

/*
 * The FP-environment switch. Saves our MXCSR control bits and x87 control word above the
 * frame and makes .Lrestore_fpenv the frame's resume pc. A target suspended here too (its
 * resume pc is the stub) gets its own environment back right away and skips the stub; any
 * other target never saved one and gets Rust's default.
 */
.macro SWITCH_FPENV how
    subq    $8, %rsp
    .cfi_adjust_cfa_offset 8
    stmxcsr (%rsp)
    andl    $0xffc0, (%rsp)
    fnstcw  4(%rsp)
    leaq    .Lrestore_fpenv(%rip), %rcx
    pushq   %rcx
    .cfi_adjust_cfa_offset 8
    PUSH_CALLEE_SAVED
    movq    %rsp, %rax
    movq    %rsi, %rdx
    leaq    .Lrestore_fpenv(%rip), %rcx
    cmpq    %rcx, 0x30(%rdi)
    jne     1f
    ldmxcsr 0x38(%rdi)
    fldcw   0x3c(%rdi)
    movq    %rdi, %rsp
    /* From here the CFI describes the target's frame, which saved its FP environment. */
    .cfi_def_cfa_offset 0x48
    .cfi_offset r12, -0x48
    .cfi_offset r13, -0x40
    .cfi_offset r14, -0x38
    .cfi_offset r15, -0x30
    .cfi_offset rbx, -0x28
    .cfi_offset rbp, -0x20
    POP_CALLEE_SAVED
    /* Past the stub's address and the environment word, to the real resume pc. */
    addq    $16, %rsp
    .cfi_adjust_cfa_offset -16
    LEAVE   \how
1:
    .cfi_def_cfa_offset 0x48
    ldmxcsr .Ldefault_mxcsr(%rip)
    fldcw   .Ldefault_x87cw(%rip)
    movq    %rdi, %rsp
    RESUME_PLAIN_FRAME \how
.endm

/* ---- the switches ----------------------------------------------------------------------- */

/*
 * On entry: rdi = the context to resume (its saved sp), rsi = the word to hand it,
 *           [rsp] = our return address, which becomes the resume pc of the frame we save.
 * On exit (in the other context): rax = our saved sp, rdx = the word.
 * Entered by `call`, leaves by an indirect jump (the resume direction); or entered by a jump
 * with the resume pc pushed by hand (the scheduler's switch between tasklets, context.rs
 * `switch_jump`), so that the switch neither pushes nor pops a return-stack entry.
 */
FUNC_BEGIN(microthread_ctx_switch)
    SWITCH  jmp
FUNC_END(microthread_ctx_switch)

/*
 * The same, ending in `ret`: for switches made from one call site, so that the target always
 * waits at our own return address (context.rs `switch_ret`); and for a coroutine's suspend,
 * entered by a jump (see context.rs `switch_back`).
 */
FUNC_BEGIN(microthread_ctx_switch_ret)
    SWITCH  ret
FUNC_END(microthread_ctx_switch_ret)

/*
 * As microthread_ctx_switch, also saving and restoring the FP environment (see
 * SWITCH_FPENV). On entry and exit: as microthread_ctx_switch (also entered by a jump, from
 * the scheduler).
 */
FUNC_BEGIN(microthread_ctx_switch_fpenv)
    SWITCH_FPENV jmp

/*
 * Resume pc of a frame saved by an FP-environment switch, reached when a plain switch resumes
 * it (the FP switches restore such frames themselves), after the six registers were popped.
 * On entry: rsp -> [env word][return address]; rax:rdx = the Transfer (left untouched).
 */
    /*
     * Never executed (the code above always jumps away). An unwinder that finds
     * .Lrestore_fpenv as a resume pc looks up the instruction before it, as for any return
     * address: this one, whose CFI describes the stub's frame (CFA = rsp + 16, the return
     * address at CFA - 8). See "Backtraces across switches" at the top of this file.
     */
    .cfi_def_cfa_offset 16
    .cfi_offset rip, -8
    nop
.Lrestore_fpenv:
    ldmxcsr (%rsp)
    fldcw   4(%rsp)
    addq    $8, %rsp
    .cfi_adjust_cfa_offset -8
    popq    %rcx
    .cfi_adjust_cfa_offset -8
    jmpq    *%rcx
FUNC_END(microthread_ctx_switch_fpenv)

/* The FP-environment switch ending in `ret`: the suspend direction of an FP coroutine. */
FUNC_BEGIN(microthread_ctx_switch_fpenv_ret)
    SWITCH_FPENV ret
FUNC_END(microthread_ctx_switch_fpenv_ret)

/*
 * The last switch of a dying context: resumes `to` without saving anything (the frame it
 * leaves is never resumed), entered by a jump and leaving by a jump, so that the
 * return-stack buffer is exactly as the resumed context's own calls left it.
 * On entry: rdi = target's saved sp (a plain frame), rsi = the word.
 * On exit (in the target): rax = rdi (a placeholder: no frame was saved), rdx = the word.
 */
FUNC_BEGIN(microthread_ctx_exit)
    movq    %rdi, %rax
    movq    %rdi, %rsp
    movq    %rsi, %rdx
    RESUME_PLAIN_FRAME jmp
FUNC_END(microthread_ctx_exit)

/* ---- the trampolines -------------------------------------------------------------------- */

/*
 * CFI of a trampoline: its "caller" is the suspended frame of the context that resumed this
 * one, found through the link slot: CFA = [[rsp + 8]] + SIZE (the resumer's frame size),
 * where rsp is the trampoline's stack pointer before it pushed the entry's return address
 * (what an unwinder reconstructs for a caller frame), [rsp + 8] the link slot, which holds
 * the address of a cell, and the cell the resumer's saved sp (never zero while the context
 * runs Rust code).
 *   DW_CFA_def_cfa_expression, 6 bytes:
 *     DW_OP_breg7 (rsp) 8; DW_OP_deref; DW_OP_deref; DW_OP_plus_uconst SIZE
 */
.macro LINKED_CFA size
    .cfi_escape 0x0f, 6, 0x77, 0x08, 0x06, 0x06, 0x23, \size
.endm

/*
 * First instruction of every new context, reached by a switch's `jmp *rcx` through the frame
 * src/arch.rs wrote.
 * On entry: rax = the resumer's saved sp, rdx = the word it passed, rbx = the Rust entry
 *           function, r12 = the entry's argument, rbp = 0 (ends frame-pointer walks),
 *           rsp = 16-aligned, top - 0x10; [rsp + 8] = the link slot.
 * Calls entry(from, data, arg), which never returns: it leaves by its last switch.
 */
FUNC_BEGIN(microthread_ctx_trampoline)
    /* The caller, for unwinders: the resumer's full frame (see the top of this file). */
    LINKED_CFA 0x38
    .cfi_offset r12, -0x38
    .cfi_offset r13, -0x30
    .cfi_offset r14, -0x28
    .cfi_offset r15, -0x20
    .cfi_offset rbx, -0x18
    .cfi_offset rbp, -0x10
    .cfi_offset rip, -0x08
    movq    %rax, %rdi
    movq    %rdx, %rsi
    movq    %r12, %rdx
    /*
     * A jump with a return address pushed by hand, not a call: the entry never returns, and
     * a call would push a return-stack-buffer entry that no `ret` pops, so that every return
     * the resumer makes after our last switch would be mispredicted. The pushed address is
     * only for unwinders: it points just past the jump, inside this function, whose CFI
     * (above; stated for rsp as it was before the push, as at a call) leads to the resumer.
     */
    leaq    1f(%rip), %rcx
    pushq   %rcx
    jmpq    *%rbx
1:
    ud2
FUNC_END(microthread_ctx_trampoline)

/*
 * First instruction of a new light context, reached by the `call` of the inline light switch
 * (src/context/light.rs), like every suspended light frame's resume pc, and doing what the
 * resume half of that switch does: it completes the resumer's light frame on the resumer's
 * stack (the `call` pushed its return address; rbp and rbx go below it), then moves to the
 * initial light frame written by src/arch.rs (rbx = the Rust entry function, rbp = 0, this
 * pc, then the entry's argument in the word above the frame) and calls entry(from, data, arg).
 * On entry: rdi = the new context's saved sp, rdx = the resumer's word, rsp = the resumer's
 *           stack, [rsp] = the resumer's return address.
 * At the entry function: rsp = 16-aligned, top - 0x10, pointing at the argument; [rsp + 8]
 *           = the link slot.
 */
FUNC_BEGIN(microthread_ctx_trampoline_light)
    /* Still on the resumer's stack, called by it: the default CFI of a called routine. */
    pushq   %rbp
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbp, 0
    pushq   %rbx
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbx, 0
    /* The resumer's light frame is complete: its address is `from`. */
    movq    %rsp, %rax
    movq    (%rdi), %rbx
    movq    8(%rdi), %rbp
    leaq    0x18(%rdi), %rsp
    /*
     * On our stack. The caller, for unwinders: the resumer's light frame (rbx, rbp, return
     * address), found through the link slot. r12-r15 are not in it (the resumer's call site
     * declared them clobbered, so they hold nothing of it).
     */
    LINKED_CFA 0x18
    .cfi_offset rbx, -0x18
    .cfi_offset rbp, -0x10
    .cfi_offset rip, -0x08
    .cfi_undefined r12
    .cfi_undefined r13
    .cfi_undefined r14
    .cfi_undefined r15
    movq    %rax, %rdi
    movq    %rdx, %rsi
    movq    (%rsp), %rdx
    /*
     * As in microthread_ctx_trampoline. (The resumer's `call` pushed a return-stack entry;
     * the coroutine's first suspend, which ends in `ret`, pops it.)
     */
    leaq    1f(%rip), %rcx
    pushq   %rcx
    jmpq    *%rbx
1:
    ud2
FUNC_END(microthread_ctx_trampoline_light)

    .section .rodata
    .p2align 2
/* The power-on defaults Rust code assumes: all exceptions masked, round to nearest. */
.Ldefault_mxcsr:
    .long   0x1f80
.Ldefault_x87cw:
    .short  0x037f

    .section .note.GNU-stack,"",%progbits
