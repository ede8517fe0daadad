//! The FP control state as a value: read, kept, and installed again by Rust code, for a
//! coroutine that keeps its own ([`Builder::preserve_fp_env`](crate::coroutine::Builder)).
//!
//! The coroutine's resumer switches it around the light switch, which saves nothing of it:
//! it reads its own state, installs the coroutine's, switches, and when the coroutine
//! switches back (nothing runs between the coroutine's suspend and that return) reads the
//! coroutine's state and installs its own again. The coroutine's side of the switch is then
//! the same as every coroutine's (no test of its kind per suspend), and the state kept is
//! the one [`Context::switch_fpenv`](super::Context::switch_fpenv) keeps: MXCSR's control
//! bits and the x87 control word on x86_64 (MXCSR's status flags are left out, as there: a
//! value that differs in them makes `ldmxcsr` drain the pipeline), FPCR on aarch64, `frm` on
//! riscv64. A new coroutine starts in [`FpEnv::DEFAULT`], Rust's, as a new context does.

/// One side's FP control state (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FpEnv {
    /// MXCSR in the low half, the x87 control word above: one word, so that a new
    /// coroutine's default is one store.
    #[cfg(target_arch = "x86_64")]
    mxcsr_x87_cw: u64,
    #[cfg(target_arch = "aarch64")]
    fpcr: u64,
    #[cfg(target_arch = "riscv64")]
    frm: u64,
}

impl FpEnv {
    /// The state Rust code assumes: all exceptions masked, round to nearest (the defaults of
    /// asm/*.S).
    pub(crate) const DEFAULT: FpEnv = FpEnv {
        #[cfg(target_arch = "x86_64")]
        mxcsr_x87_cw: 0x1f80 | 0x037f << 32,
        #[cfg(target_arch = "aarch64")]
        fpcr: 0,
        #[cfg(target_arch = "riscv64")]
        frm: 0,
    };

    /// The thread's state now.
    #[inline(always)]
    pub(crate) fn current() -> FpEnv {
        #[cfg(target_arch = "x86_64")]
        {
            let mut mxcsr = 0u32;
            let mut x87_cw = 0u16;
            // SAFETY: two stores of the control registers into our locals; nothing else.
            unsafe {
                core::arch::asm!(
                    "stmxcsr dword ptr [{m}]",
                    "fnstcw word ptr [{c}]",
                    m = in(reg) &mut mxcsr,
                    c = in(reg) &mut x87_cw,
                    options(nostack, preserves_flags),
                );
            }
            FpEnv {
                mxcsr_x87_cw: (mxcsr & 0xffc0) as u64 | (x87_cw as u64) << 32,
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            let fpcr: u64;
            // SAFETY: reads FPCR into a register; nothing else.
            unsafe {
                core::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack, preserves_flags))
            };
            FpEnv { fpcr }
        }
        #[cfg(target_arch = "riscv64")]
        {
            let frm: u64;
            // SAFETY: reads the rounding mode into a register; nothing else.
            unsafe {
                core::arch::asm!("frrm {}", out(reg) frm, options(nomem, nostack, preserves_flags))
            };
            FpEnv { frm }
        }
    }

    /// Makes this the thread's state.
    ///
    /// # Safety
    /// - Rust code assumes [`FpEnv::DEFAULT`]: another state may only be installed for code
    ///   that expects it (the coroutine's own, which set it), and the caller's own installed
    ///   again before its code goes on.
    #[inline(always)]
    pub(crate) unsafe fn install(self) {
        #[cfg(target_arch = "x86_64")]
        {
            let mxcsr = self.mxcsr_x87_cw as u32;
            let x87_cw = (self.mxcsr_x87_cw >> 32) as u16;
            // SAFETY: loads the control registers from our locals; the caller's obligation
            // for the code that runs under them.
            unsafe {
                core::arch::asm!(
                    "ldmxcsr dword ptr [{m}]",
                    "fldcw word ptr [{c}]",
                    m = in(reg) &mxcsr,
                    c = in(reg) &x87_cw,
                    options(nostack, preserves_flags, readonly),
                );
            }
        }
        #[cfg(target_arch = "aarch64")]
        // SAFETY: as above.
        unsafe {
            core::arch::asm!("msr fpcr, {}", in(reg) self.fpcr, options(nomem, nostack, preserves_flags))
        };
        #[cfg(target_arch = "riscv64")]
        // SAFETY: as above.
        unsafe {
            core::arch::asm!("fsrm {}", in(reg) self.frm, options(nomem, nostack, preserves_flags))
        };
    }
}
