//! The light switch: the switch of a coroutine and its resumer, inline at both call sites.
//!
//! Only two places switch light contexts: the resume ([`Context::switch_light`]) and the
//! suspend ([`Context::switch_light_back`]), and each always switches to the other. On
//! x86_64 both are `asm!` blocks of their own, so that
//!
//! - no routine is called: the resume is one `call` to the coroutine's resume pc, and the
//!   suspend returns to the resumer with `ret`, which the CPU's return-stack buffer predicts,
//!   since it holds exactly that `call`'s return address. One push and one pop per round trip
//!   (the resume's indirect `call` is predicted from the branch history, as a jump would be);
//! - the switch saves only rbx and rbp, the two callee-saved registers an `asm!` block cannot
//!   declare clobbered. Both blocks declare r12-r15 and every caller-saved register
//!   clobbered, so the compiler saves only those of them that are live at the call site, and
//!   none twice in a loop.
//!
//! Light frame, at a suspended light context's saved stack pointer (the same shape for both
//! sides, which is what the light trampoline's unwind information reads; asm/x86_64.S):
//!
//! ```text
//!   0x00 rbx | 0x08 rbp | 0x10 resume pc      <- the sp before the frame was pushed: 0x18
//! ```
//!
//! The two sides' frames differ in how they are resumed:
//!
//! - the resumer's: `call` pushes the resume pc (its return address) and the *other* side
//!   pushes rbp and rbx below it on the resumer's stack (the code at a suspended coroutine's
//!   resume pc, and the first instructions of the light trampoline, do that). It is resumed
//!   by the suspend's `pop rbx; pop rbp; ret`.
//! - the coroutine's: the suspend pushes its resume pc (label 2 of its block) and rbp, rbx.
//!   It is resumed by a `call` to that pc, made on the resumer's stack with rdi = the
//!   coroutine's saved sp: the code there completes the resumer's frame, takes rbx and rbp
//!   back from its own frame and moves rsp above it.
//!
//! Registers across the switch: rdi = the frame to resume, rdx = the word (passed straight
//! through, in both directions), rax = on arrival, the frame of the side that switched.
//!
//! Elsewhere than x86_64 a light context is a full one, switched by the full switch.

use std::marker::PhantomData;
use std::ptr::NonNull;

use super::{Context, Entry, Transfer};
use crate::arch;
use crate::sanitizer;

impl Context {
    /// Lays out a new *light* context below `top`: one that is only ever switched with
    /// [`Context::switch_light`] (resumed) and [`Context::switch_light_back`] (suspending,
    /// back to the context that resumed it): a coroutine and its resumers. On x86_64 its
    /// switches save only the registers an `asm!` block cannot declare clobbered (rbx, rbp)
    /// and let the compiler save whichever of the others are live (see the module docs);
    /// elsewhere this is [`Context::new`].
    ///
    /// ```
    /// use microthread::context::Context;
    /// use microthread::stack::Stack;
    ///
    /// unsafe extern "C" fn adder(from: Context, data: usize, arg: usize) -> ! {
    ///     // SAFETY: `from` is main, suspended in its `switch_light`.
    ///     let again = unsafe { from.switch_light_back(data + arg) };
    ///     // SAFETY: main again, suspended in its second `switch_light`; this frame is
    ///     // never resumed.
    ///     unsafe { again.from.exit_light(again.data + arg) }
    /// }
    ///
    /// let stack = Stack::new(64 * 1024)?;
    /// // SAFETY: the top is 16-aligned; the stack outlives the context.
    /// let context = unsafe { Context::new_light(stack.top(), adder, 100) };
    /// // SAFETY: a new light context of this thread, on a live stack.
    /// let t = unsafe { context.switch_light(1) };
    /// assert_eq!(t.data, 101);
    /// // SAFETY: `t.from` is `adder`, suspended in its `switch_light_back`.
    /// let last = unsafe { t.from.switch_light(2) };
    /// assert_eq!(last.data, 102);
    /// std::mem::forget(last.from); // meaningless after `exit_light`
    /// drop(stack);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Safety
    /// - As [`Context::new`], with [`Context::INITIAL_LIGHT_FRAME_SIZE`] bytes for the frame.
    #[inline]
    pub unsafe fn new_light(top: *mut u8, entry: Entry, arg: usize) -> Context {
        // SAFETY: the caller vouches for the memory below `top` (the sanitizer's header is
        // counted in INITIAL_LIGHT_FRAME_SIZE).
        let (top, entry, arg) = unsafe { sanitizer::wrap_entry(top, entry, arg) };
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        let sp = unsafe { arch::init_light_frame(top, entry as usize, arg) };
        #[cfg(not(target_arch = "x86_64"))]
        // SAFETY: as above.
        let sp = unsafe { arch::init_frame(top, entry as usize, arg) };
        Context {
            sp: NonNull::new(sp).expect("a frame below a non-null top"),
            _thread_bound: PhantomData,
        }
    }

    /// Bytes the initial light frame takes below `top`.
    #[cfg(target_arch = "x86_64")]
    pub const INITIAL_LIGHT_FRAME_SIZE: usize =
        arch::INITIAL_LIGHT_FRAME_SIZE + sanitizer::ENTRY_HEADER_SIZE;
    /// Bytes the initial light frame takes below `top`.
    #[cfg(not(target_arch = "x86_64"))]
    pub const INITIAL_LIGHT_FRAME_SIZE: usize = Context::INITIAL_FRAME_SIZE;

    /// [`Context::switch`] for light contexts (see [`Context::new_light`]): resumes a light
    /// context (new, or suspended by [`Context::switch_light_back`]), by a `call` into it.
    /// Returns when it switches back with `switch_light_back`.
    ///
    /// # Safety
    /// - As [`Context::switch`], and `self` must be a new light context or one suspended by
    ///   [`Context::switch_light_back`].
    #[inline(always)]
    pub unsafe fn switch_light(self, data: usize) -> Transfer {
        let suspension = sanitizer::start_switch(self.sp.as_ptr());
        // SAFETY: the caller's obligation.
        let transfer = unsafe { self.raw_switch_light(data) };
        sanitizer::finish_switch(suspension);
        transfer
    }

    /// [`Context::switch_back`] for light contexts: suspends the running light context and
    /// returns (by `ret`) into the context that resumed it with [`Context::switch_light`].
    /// Returns when that context resumes us with `switch_light`.
    ///
    /// # Safety
    /// - As [`Context::switch`], and `self` must have been suspended by
    ///   [`Context::switch_light`], and the running context must be a light one (made by
    ///   [`Context::new_light`]), which the next `switch_light` into it resumes.
    #[inline(always)]
    pub unsafe fn switch_light_back(self, data: usize) -> Transfer {
        let suspension = sanitizer::start_switch(self.sp.as_ptr());
        // SAFETY: the caller's obligation.
        let transfer = unsafe { self.raw_switch_light_back(data) };
        sanitizer::finish_switch(suspension);
        transfer
    }

    /// The last switch of a light context that is ending: [`Context::switch_light_back`]
    /// that saves nothing and never returns (the running frame is abandoned), as
    /// [`Context::exit`] is for full frames. The resumed side gets a meaningless `from`
    /// (never to be resumed); it may still read what the ending frame passed it by address,
    /// until it next switches. Elsewhere than x86_64 this is [`Context::exit`].
    ///
    /// # Safety
    /// - As [`Context::switch_light_back`]; the calling context must never be resumed.
    #[inline(always)]
    pub unsafe fn exit_light(self, data: usize) -> ! {
        #[cfg(target_arch = "x86_64")]
        {
            sanitizer::start_last_switch(self.sp.as_ptr());
            // SAFETY: `self` is the resumer's light frame (caller's obligation): restores its
            // rbx and rbp and returns into its `switch_light`'s `call`, as the suspend of
            // `raw_switch_light_back` does, with rax = its own frame (a placeholder, never
            // resumed: it is consumed here) and rdx = our word. Nothing of ours survives.
            unsafe {
                core::arch::asm!(
                    "mov rax, rdi",
                    "mov rsp, rdi",
                    "pop rbx",
                    "pop rbp",
                    "ret",
                    in("rdi") self.sp.as_ptr(),
                    in("rdx") data,
                    options(noreturn),
                )
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        // SAFETY: forwarded; light contexts are full ones here, and `self` a plain frame.
        unsafe {
            self.exit(data)
        }
    }

    /// # Safety
    /// - As [`Context::switch_light`].
    #[inline(always)]
    unsafe fn raw_switch_light(self, data: usize) -> Transfer {
        #[cfg(target_arch = "x86_64")]
        {
            let (from, data_out): (*mut u8, usize);
            // SAFETY: `self` is a light frame whose resume pc (at 0x10) expects a `call`
            // from the resumer's stack with rdi = the frame (caller's obligation: a new light
            // context's trampoline, or label 2 of `raw_switch_light_back`). That code pushes
            // our rbp and rbx below the return address and resumes the coroutine; its
            // suspend pops them and returns here with rsp as before the call, rax = its
            // frame and rdx = its word. Every other register is declared clobbered. The
            // block is not `nostack`: the `call` writes below rsp, which the compiler keeps
            // 16-aligned at the block and free of red-zone data.
            unsafe {
                core::arch::asm!(
                    "call qword ptr [rdi + 0x10]",
                    inout("rdi") self.sp.as_ptr() => _,
                    inout("rdx") data => data_out,
                    out("rax") from,
                    out("r12") _, out("r13") _, out("r14") _, out("r15") _,
                    clobber_abi("C"),
                );
            }
            // SAFETY: rax is the non-null saved sp of the frame the other side just pushed.
            let from = unsafe { Context::from_raw(NonNull::new_unchecked(from)) };
            Transfer {
                from,
                data: data_out,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        // SAFETY: forwarded; light contexts are full ones on this architecture.
        unsafe {
            self.raw_switch(data)
        }
    }

    /// # Safety
    /// - As [`Context::switch_light_back`].
    #[inline(always)]
    unsafe fn raw_switch_light_back(self, data: usize) -> Transfer {
        #[cfg(target_arch = "x86_64")]
        {
            let (from, data_out): (*mut u8, usize);
            // SAFETY: `self` is the resumer's light frame, made by its `switch_light`'s
            // `call` and the two pushes below the return address (caller's obligation): the
            // three instructions after `mov rsp, rdi` restore its rbx and rbp and return
            // into that `call`, with rax = our frame and rdx = our word. Our own frame is
            // rbx, rbp and the resume pc 2, in the light shape; the resumer's next
            // `switch_light` calls 2 on its stack with rdi = our frame: the code there
            // completes the resumer's frame (rax = its address), restores our rbx and rbp
            // and moves rsp back above our frame, where it was before the block. Every
            // other register is declared clobbered; not `nostack`, as in `raw_switch_light`.
            unsafe {
                core::arch::asm!(
                    "lea rax, [rip + 2f]",
                    "push rax",
                    "push rbp",
                    "push rbx",
                    "mov rax, rsp",
                    "mov rsp, rdi",
                    "pop rbx",
                    "pop rbp",
                    "ret",
                    // Resumed: called by the resumer, on its stack.
                    "2:",
                    "push rbp",
                    "push rbx",
                    "mov rax, rsp",
                    "mov rbx, qword ptr [rdi]",
                    "mov rbp, qword ptr [rdi + 8]",
                    "lea rsp, [rdi + 0x18]",
                    inout("rdi") self.sp.as_ptr() => _,
                    inout("rdx") data => data_out,
                    out("rax") from,
                    out("r12") _, out("r13") _, out("r14") _, out("r15") _,
                    clobber_abi("C"),
                );
            }
            // SAFETY: rax is the non-null saved sp of the resumer's frame.
            let from = unsafe { Context::from_raw(NonNull::new_unchecked(from)) };
            Transfer {
                from,
                data: data_out,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        // SAFETY: forwarded.
        unsafe {
            self.raw_switch_back(data)
        }
    }
}
