/*
 * asm/x86_64.S: the context switch for x86_64 System V (Linux, ELF).
 *
 * The only machine code in microthread:
 *
 *   microthread_ctx_switch(to: *mut u8 [rdi], data: usize [rsi])
 *       -> Transfer { from: *mut u8 [rax], data: usize [rdx] }
 *   microthread_ctx_switch_fpenv(to [rdi], data [rsi]) -> Transfer [rax:rdx]
 *   microthread_ctx_trampoline     (never called; a new context's first resume lands here)
 *
 * and their variants further down: `_ret` twins that end in `ret` (for call sites the
 * return-address predictor can follow), and the light switch and trampoline (rbx/rbp only,
 * for coroutines whose call sites declare r12-r15 clobbered).
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
 * Not saved, on purpose: caller-saved registers (the Rust caller treats a call as clobbering
 * them) and the fs base (TLS belongs to the OS thread, and contexts never change thread).
 * MXCSR and the x87 control word are callee-saved in the psABI but cost ~6 ns per round trip
 * to save (stmxcsr is slow on this hardware); Rust code never changes them, so only
 * microthread_ctx_switch_fpenv saves them, for contexts that run foreign code which does.
 *
 * Why the resume ends in `pop rcx; jmp *rcx` and not `ret`: `ret` is predicted by the
 * return-stack buffer, which holds *our* caller, not the other context's; every switch would
 * mispredict (~10 ns per round trip measured here). An indirect jmp is predicted by the BTB.
 */
#include "common.h"

/*
 * On entry: rdi = the context to resume (its saved sp), rsi = the word to hand it,
 *           [rsp] = our return address, which becomes the resume pc of the frame we save.
 * On exit (in the other context): rax = our saved sp, rdx = the word.
 */
FUNC_BEGIN(microthread_ctx_switch)
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

    /* Our frame is complete: its address is the handle the other side gets back. */
    movq    %rsp, %rax
    movq    %rdi, %rsp
    movq    %rsi, %rdx
    /*
     * From here rsp is the other context's frame, which has the same shape as ours, so the
     * CFI above keeps describing it while it is popped.
     */
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
    /* rcx is caller-saved and not part of the Transfer, so it is free to carry the target. */
    popq    %rcx
    .cfi_adjust_cfa_offset -8
    .cfi_register rip, rcx
    jmpq    *%rcx
FUNC_END(microthread_ctx_switch)

/*
 * The same switch, ending in `ret` instead of `pop rcx; jmp *rcx`. `ret` is predicted from
 * the return-stack buffer, whose top is our own caller's return address: right exactly when
 * the target was suspended at the same call site as the one we are called from. The
 * scheduler switches every tasklet through one call site, so there `ret` is predicted every
 * time and, unlike the `jmp` form, keeps the return-stack buffer balanced for the `ret`s that
 * follow in the resumed code. Asymmetric coroutines (resume at one site, suspend at another)
 * use microthread_ctx_switch instead.
 *
 * On entry and exit: as microthread_ctx_switch.
 */
FUNC_BEGIN(microthread_ctx_switch_ret)
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
    movq    %rsp, %rax
    movq    %rdi, %rsp
    movq    %rsi, %rdx
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
    ret
FUNC_END(microthread_ctx_switch_ret)

/*
 * As microthread_ctx_switch, but also saves this context's MXCSR and x87 control word and
 * installs the default environment for the target (Rust code assumes it); if the target was
 * suspended here too, its .Lrestore_fpenv stub then reloads the target's own environment.
 *
 * On entry: rdi = target's saved sp, rsi = word, [rsp] = our return address.
 */
FUNC_BEGIN(microthread_ctx_switch_fpenv)
    subq    $8, %rsp
    .cfi_adjust_cfa_offset 8
    stmxcsr (%rsp)
    /*
     * Keep the control bits only: the status flags (bits 0-5) are caller-saved in the psABI,
     * and restoring a value that differs from the current one in them makes every ldmxcsr
     * a pipeline-draining write (measured: ~100 ns per round trip instead of ~10).
     */
    andl    $0xffc0, (%rsp)
    fnstcw  4(%rsp)
    /* The resume pc of this frame is the stub, which reloads the environment first. */
    leaq    .Lrestore_fpenv(%rip), %rcx
    pushq   %rcx
    .cfi_adjust_cfa_offset 8
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

    movq    %rsp, %rax
    movq    %rsi, %rdx
    /*
     * A target suspended here too (its resume pc is our stub) gets its own environment back
     * right now, and skips the stub: one load of each register instead of two, and no
     * second indirect jump. Any other target never saved one: it gets Rust's default.
     */
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
    /* Past the stub's address and the environment word, to the real return address. */
    addq    $16, %rsp
    .cfi_adjust_cfa_offset -16
    popq    %rcx
    .cfi_adjust_cfa_offset -8
    jmpq    *%rcx
1:
    .cfi_def_cfa_offset 0x48
    ldmxcsr .Ldefault_mxcsr(%rip)
    fldcw   .Ldefault_x87cw(%rip)
    movq    %rdi, %rsp
    /* The target's frame: the plain shape (CFA = rsp + 0x38) until its resume pc says more. */
    .cfi_def_cfa_offset 0x38
    .cfi_offset r12, -0x38
    .cfi_offset r13, -0x30
    .cfi_offset r14, -0x28
    .cfi_offset r15, -0x20
    .cfi_offset rbx, -0x18
    .cfi_offset rbp, -0x10
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
    popq    %rcx
    .cfi_adjust_cfa_offset -8
    jmpq    *%rcx

/*
 * Resume pc of a frame saved by microthread_ctx_switch_fpenv, reached from whichever switch
 * resumed it, after the six registers were popped.
 * On entry: rsp -> [env word][return address]; rax:rdx = the Transfer (left untouched).
 */
.Lrestore_fpenv:
    .cfi_def_cfa_offset 16
    ldmxcsr (%rsp)
    fldcw   4(%rsp)
    addq    $8, %rsp
    .cfi_adjust_cfa_offset -8
    popq    %rcx
    .cfi_adjust_cfa_offset -8
    jmpq    *%rcx
FUNC_END(microthread_ctx_switch_fpenv)

/*
 * microthread_ctx_switch_fpenv_ret: microthread_ctx_switch_fpenv entered by a jump after the
 * caller stored its return address itself, and leaving by `ret`: the suspend direction of an
 * FP-preserving coroutine, which keeps the return-address predictor balanced as
 * microthread_ctx_switch_ret does for the plain one. On entry: as microthread_ctx_switch_fpenv.
 */
FUNC_BEGIN(microthread_ctx_switch_fpenv_ret)
    subq    $8, %rsp
    .cfi_adjust_cfa_offset 8
    stmxcsr (%rsp)
    /*
     * Keep the control bits only: the status flags (bits 0-5) are caller-saved in the psABI,
     * and restoring a value that differs from the current one in them makes every ldmxcsr
     * a pipeline-draining write (measured: ~100 ns per round trip instead of ~10).
     */
    andl    $0xffc0, (%rsp)
    fnstcw  4(%rsp)
    /* The resume pc of this frame is the stub, which reloads the environment first. */
    leaq    .Lrestore_fpenv(%rip), %rcx
    pushq   %rcx
    .cfi_adjust_cfa_offset 8
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

    movq    %rsp, %rax
    movq    %rsi, %rdx
    /*
     * A target suspended here too (its resume pc is our stub) gets its own environment back
     * right now, and skips the stub: one load of each register instead of two, and no
     * second indirect jump. Any other target never saved one: it gets Rust's default.
     */
    leaq    .Lrestore_fpenv(%rip), %rcx
    cmpq    %rcx, 0x30(%rdi)
    jne     2f
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
    /* Past the stub's address and the environment word, to the real return address. */
    addq    $16, %rsp
    .cfi_adjust_cfa_offset -16
    ret
2:
    .cfi_def_cfa_offset 0x48
    ldmxcsr .Ldefault_mxcsr(%rip)
    fldcw   .Ldefault_x87cw(%rip)
    movq    %rdi, %rsp
    /* The target's frame: the plain shape (CFA = rsp + 0x38) until its resume pc says more. */
    .cfi_def_cfa_offset 0x38
    .cfi_offset r12, -0x38
    .cfi_offset r13, -0x30
    .cfi_offset r14, -0x28
    .cfi_offset r15, -0x20
    .cfi_offset rbx, -0x18
    .cfi_offset rbp, -0x10
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
    /* A target saved by a plain switch resumes at its pc: through its stub if it has one. */
    ret
FUNC_END(microthread_ctx_switch_fpenv_ret)


/*
 * First instruction of every new context, reached by a switch's `jmp *rcx` through the frame
 * src/arch.rs wrote.
 * On entry: rax = the resumer's saved sp, rdx = the word it passed, rbx = the Rust entry
 *           function, r12 = the entry's argument, rbp = 0 (ends frame-pointer walks),
 *           rsp = 16-aligned, just below the top of the stack.
 * Calls entry(from, data, arg), which never returns: it leaves by its last switch.
 */
FUNC_BEGIN(microthread_ctx_trampoline)
    /* There is no caller: backtraces and unwinding must stop here, not walk stale memory. */
    .cfi_undefined rip
    movq    %rax, %rdi
    movq    %rdx, %rsi
    movq    %r12, %rdx
    callq   *%rbx
    /* The entry is `-> !`; returning here is a bug, and must not run off into the next page. */
    ud2
FUNC_END(microthread_ctx_trampoline)

/*
 * The light switch, for contexts that only ever switch with each other through it (a
 * coroutine and its resumer, when the FP environment is not preserved). It saves only rbx and
 * rbp, the two callee-saved registers an inline `asm!` block cannot declare clobbered; the
 * Rust side calls it from such a block that declares r12-r15 clobbered, so the compiler saves
 * only those of them that are live, and nothing at all in a loop that keeps nothing there.
 * Together the two still preserve every callee-saved register across the switch.
 *
 * Light frame, at a suspended context's stack pointer:
 *
 *   offset  +--------------------------------+
 *   0x00    | rbx                            |
 *   0x08    | rbp                            |
 *   0x10    | resume pc                      |
 *           +--------------------------------+
 *
 * A light frame must be resumed by a light switch, and a full frame by a full one.
 *
 * microthread_ctx_switch_light: entered by `call`, leaves by `jmp` (the resume direction).
 * On entry: rdi = target's saved sp, rsi = word, [rsp] = return address.
 * On exit (in the target): rax = our saved sp, rdx = the word.
 */
FUNC_BEGIN(microthread_ctx_switch_light)
    pushq   %rbp
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbp, 0
    pushq   %rbx
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbx, 0
    movq    %rsp, %rax
    movq    %rdi, %rsp
    movq    %rsi, %rdx
    popq    %rbx
    .cfi_adjust_cfa_offset -8
    .cfi_restore rbx
    popq    %rbp
    .cfi_adjust_cfa_offset -8
    .cfi_restore rbp
    popq    %rcx
    .cfi_adjust_cfa_offset -8
    .cfi_register rip, rcx
    jmpq    *%rcx
FUNC_END(microthread_ctx_switch_light)

/*
 * microthread_ctx_switch_light_ret: the same, entered by a jump after the caller stored its
 * return address itself, and leaving by `ret` (the suspend direction; see context.rs).
 * On entry: rdi, rsi as above, [rsp] = the return address the caller pushed.
 */
FUNC_BEGIN(microthread_ctx_switch_light_ret)
    pushq   %rbp
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbp, 0
    pushq   %rbx
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbx, 0
    movq    %rsp, %rax
    movq    %rdi, %rsp
    movq    %rsi, %rdx
    popq    %rbx
    .cfi_adjust_cfa_offset -8
    .cfi_restore rbx
    popq    %rbp
    .cfi_adjust_cfa_offset -8
    .cfi_restore rbp
    ret
FUNC_END(microthread_ctx_switch_light_ret)

/*
 * First instruction of a new light context (its initial light frame is written by
 * src/arch.rs, with the entry's argument in the word above the frame).
 * On entry: rax = the resumer's saved sp, rdx = its word, rbx = the Rust entry function,
 *           rbp = 0, rsp = 16-aligned, pointing at the entry's argument.
 */
FUNC_BEGIN(microthread_ctx_trampoline_light)
    .cfi_undefined rip
    movq    %rax, %rdi
    movq    %rdx, %rsi
    movq    (%rsp), %rdx
    callq   *%rbx
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
