/*
 * asm/common.h: symbol and section macros shared by asm/<arch>.S.
 *
 * Every routine is global (so Rust's `extern "C"` block can link to it) but hidden (so it never
 * leaks out of a shared object that embeds this crate), and carries the `microthread_ctx_`
 * prefix; Cargo's `links = "microthread_ctx"` key keeps two copies of the crate out of one link.
 * `;` separates statements inside a macro in all three GNU assemblers.
 */
#ifndef MICROTHREAD_COMMON_H
#define MICROTHREAD_COMMON_H

#if defined(__ELF__)
#define FUNC_BEGIN(name)                                                                       \
    .text; .globl name; .hidden name; .type name, %function; .p2align 4; name: .cfi_startproc
#define FUNC_END(name) .cfi_endproc; .size name, .- name
#else
#error "microthread: only ELF targets are supported by asm/common.h"
#endif

#endif
