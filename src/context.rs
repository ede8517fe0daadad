//! The one switch primitive: a suspended execution context and the jump into it.
//!
//! A [`Context`] is the saved stack pointer of a frame laid out by `asm/<arch>.S`. Switching
//! to it consumes it and returns a [`Transfer`]: the context that switched back to us, and the
//! word it passed. Nobody keeps a save slot, so a frame can only be resumed once (Boost's
//! `jump_fcontext` shape). Everything above this module, and nothing else, switches through
//! here; the safe interface on top is [`Coroutine`](crate::coroutine::Coroutine).
//!
//! # An example
//!
//! A context on a [`Stack`](crate::stack::Stack) that doubles the word it is given, hands it
//! back, and ends on the second switch into it:
//!
//! ```
//! use microthread::context::Context;
//! use microthread::stack::Stack;
//!
//! // The first switch into the context calls this with the switching context and its word.
//! unsafe extern "C" fn doubler(from: Context, data: usize, arg: usize) -> ! {
//!     assert_eq!(arg, 1000);
//!     // SAFETY: `from` is the suspended main context of this thread; `switch_back` pairs
//!     // with the `switch` it is suspended in.
//!     let again = unsafe { from.switch_back(data * 2) };
//!     // SAFETY: `again.from` is main again, suspended by a plain switch; this frame is never
//!     // resumed after `exit`.
//!     unsafe { again.from.exit(again.data + 1) }
//! }
//!
//! let stack = Stack::new(64 * 1024)?;
//! // SAFETY: the stack top is 16-aligned, and the stack outlives the context (it is dropped
//! // after the context has ended).
//! let context = unsafe { Context::new(stack.top(), doubler, 1000) };
//! // SAFETY: a new context of this thread, on a live stack.
//! let back = unsafe { context.switch(21) };
//! assert_eq!(back.data, 42);
//! // SAFETY: `back.from` is the doubler, suspended in its `switch_back`.
//! let last = unsafe { back.from.switch(9) };
//! assert_eq!(last.data, 10);
//! // `last.from` is meaningless after an `exit`: it must never be resumed. Forget it.
//! std::mem::forget(last.from);
//! drop(stack);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Pairing the switch calls
//!
//! A context is resumed by popping the frame its suspension wrote, so the call that resumes
//! it must match the *kind* of frame; and on x86_64 the call that suspends should match the
//! call it returns to, for speed.
//!
//! | a context made or suspended by | is resumed by | else |
//! |---|---|---|
//! | [`Context::new`], [`switch`](Context::switch), [`switch_ret`](Context::switch_ret), [`switch_jump`](Context::switch_jump), [`switch_back`](Context::switch_back), [`switch_fpenv`](Context::switch_fpenv), [`switch_fpenv_jump`](Context::switch_fpenv_jump), [`switch_fpenv_back`](Context::switch_fpenv_back) (a *full* frame) | any of those, or [`exit`](Context::exit) | a light switch into a full frame is undefined behaviour (it calls a saved register, or pops two words where there are six) |
//! | [`Context::new_light`] or [`switch_light_back`](Context::switch_light_back) (a *light* frame, resumed by a call) | [`switch_light`](Context::switch_light) only | anything else into it is undefined behaviour (on x86_64 its resume pc expects the resumer's stack and a `call`) |
//! | [`switch_light`](Context::switch_light) (a *light* frame, resumed by a return) | [`switch_light_back`](Context::switch_light_back) only | anything else into it is undefined behaviour (its resume pc expects its registers restored) |
//!
//! Within a kind the calls differ in how they enter and leave, which only the CPU's
//! return-address predictor sees (x86_64; elsewhere the pairs are one routine):
//!
//! | resume with | suspend back with | for |
//! |---|---|---|
//! | [`switch`](Context::switch) | [`switch_back`](Context::switch_back) | a resumer and a context that hands control back to it (a coroutine) |
//! | [`switch_fpenv`](Context::switch_fpenv) | [`switch_fpenv_back`](Context::switch_fpenv_back) | the same, keeping the FP environment |
//! | [`switch_light`](Context::switch_light) | [`switch_light_back`](Context::switch_light_back) | the same, light contexts (the only pairing of light switches; see the first table) |
//! | [`switch_ret`](Context::switch_ret) | [`switch_ret`](Context::switch_ret) | symmetric switches from one call site |
//! | [`switch_jump`](Context::switch_jump) | [`switch_jump`](Context::switch_jump) | symmetric switches from many call sites (the scheduler) |
//! | [`switch_fpenv_jump`](Context::switch_fpenv_jump) | [`switch_fpenv_jump`](Context::switch_fpenv_jump) | the same, keeping the FP environment |
//!
//! Any other pairing of two full switches is correct, only slower: each unmatched
//! `call` or `ret` costs a mispredicted return, on this switch and on the returns after it.
//!
//! The other rules:
//!
//! - **Once.** Every switch consumes the context it resumes, and every `Transfer::from` is
//!   a new handle to the context that switched: resume each exactly once, or never. A
//!   handle dropped without a resume leaks the frame and whatever its stack holds (no
//!   destructor runs). Resuming the same frame twice (through [`Context::from_raw`]) is
//!   undefined behaviour.
//! - **One thread.** A context is resumed on the thread that suspended it (it is `!Send`).
//! - **The stack outlives the context**: while a context is suspended or running, its stack
//!   must stay mapped and unused by anything else.
//! - **An end.** An entry function never returns: it ends with a switch it is never resumed
//!   from. [`exit`](Context::exit) (into a full frame) is that switch; a context that ends
//!   with any other switch calls [`Context::end_at_next_switch`] just before it (without it,
//!   AddressSanitizer builds report false errors on the stack's next user). The `from` that
//!   the resumed side gets from an `exit` is meaningless: never resume it.
//! - **The FP environment** (next section): a context that needs its FP control state kept
//!   must suspend with `switch_fpenv`/`switch_fpenv_back` every time; a frame suspended so
//!   restores its own whoever resumes it, and one suspended by a plain switch keeps whatever
//!   state the thread has when it is resumed. This is about the FP state only; mixing plain
//!   and FP-environment switches is otherwise correct.
//!
//! [`Coroutine`](crate::coroutine::Coroutine) follows all of these for you.
//!
//! # The floating-point environment
//! The plain [`Context::switch`] saves the callee-saved integer and FP registers of the
//! platform ABI but not the FP control state (x86_64 MXCSR and x87 control word, aarch64
//! FPCR, riscv64 `frm`): Rust code never changes it, and on x86_64 saving it more than
//! doubles the cost of a switch. A context that runs foreign code which does change it is
//! switched with [`Context::switch_fpenv`] instead, in both directions: that saves the
//! switching context's FP environment (restored exactly when it is resumed, by whichever
//! switch resumes it) and starts the target in the default environment unless the target
//! saved its own.
//!
//! # Sanitizers
//! With the `asan` feature every switch here tells AddressSanitizer which stack it goes to
//! (see `src/sanitizer.rs`); a context that ends by another switch than [`Context::exit`]
//! says so first with [`Context::end_at_next_switch`]. Without the feature this costs
//! nothing.

use std::marker::PhantomData;
use std::ptr::NonNull;

use crate::arch;
use crate::sanitizer;

/// The `asm!` call of an x86_64 switch routine of asm/x86_64.S, giving its `Transfer`:
/// entered by a jump after storing the return address by hand, so that the routine's `ret`
/// pops nothing the predictor pushed (the suspend direction), or, with a routine that leaves
/// by a jump, so that the switch touches no return-address prediction at all
/// (`Context::switch_jump`); either way we resume at label 2 with rsp back where it was
/// before the push. rax is free until the switch returns `from` in it. Caller-saved registers
/// are clobbered. The block is not `nostack`, so the compiler keeps nothing in the red zone
/// under rsp. (The light switch is inline, in `light.rs`.)
#[cfg(target_arch = "x86_64")]
macro_rules! x86_switch {
    (jump, $routine:path, $to:expr, $word:expr) => {{
        let (from, data_out): (*mut u8, usize);
        core::arch::asm!(
            "lea rax, [rip + 2f]",
            "push rax",
            "jmp {switch}",
            "2:",
            switch = sym $routine,
            inout("rdi") $to => _,
            inout("rsi") $word => _,
            out("rax") from,
            out("rdx") data_out,
            clobber_abi("C"),
        );
        // The switch always hands back the non-null stack pointer of a saved frame (the
        // caller's `unsafe` block covers this under the same obligation).
        Transfer { from: Context::from_raw(NonNull::new_unchecked(from)), data: data_out }
    }};
}

mod backtrace;
mod light;

/// A suspended execution context: the saved stack pointer of a frame written by the switch.
///
/// Linear: resuming consumes it. `!Send`: a context holds thread-bound state (its stack may
/// refer to thread-locals, whose addresses the compiler may cache across a switch).
#[repr(transparent)]
#[derive(Debug)]
pub struct Context {
    sp: NonNull<u8>,
    _thread_bound: PhantomData<*mut ()>,
}

/// What a switch returns: the context that switched to us, and the word it passed.
#[derive(Debug)]
pub struct Transfer {
    /// The context that switched back to us, suspended at its switch.
    pub from: Context,
    /// The word it passed.
    pub data: usize,
}

impl Transfer {
    /// # Safety
    /// - `t` must be what a switch routine returned: `from` is then the non-null stack
    ///   pointer of a saved frame.
    #[inline(always)]
    unsafe fn from_raw(t: arch::RawTransfer) -> Transfer {
        // SAFETY: the caller's obligation.
        let from = unsafe { Context::from_raw(NonNull::new_unchecked(t.from)) };
        Transfer { from, data: t.data }
    }
}

/// The function a new context starts in: `entry(from, data, arg)`, where `from` and `data`
/// are those of the first switch into it and `arg` is the word given to [`Context::new`].
/// It must never return: it ends by switching away for the last time.
pub type Entry = unsafe extern "C" fn(from: Context, data: usize, arg: usize) -> !;

impl Context {
    /// The saved stack pointer: where the suspended frame's registers begin (for a dump's
    /// estimate of the stack in use).
    pub(crate) fn stack_pointer(&self) -> *const u8 {
        self.sp.as_ptr()
    }

    /// Lays out a new context just below `top` that will call `entry(from, data, arg)` when
    /// first switched to.
    ///
    /// # Safety
    /// - `top` must be 16-aligned, with at least [`Context::INITIAL_FRAME_SIZE`] writable
    ///   bytes below it plus whatever `entry` needs, up to a guard or the end of the memory.
    /// - That memory must stay valid and otherwise unused for as long as the context runs or
    ///   is suspended.
    pub unsafe fn new(top: *mut u8, entry: Entry, arg: usize) -> Context {
        // SAFETY: the caller vouches for the memory below `top` (the sanitizer's header is
        // counted in INITIAL_FRAME_SIZE).
        let sp = unsafe {
            let (top, entry, arg) = sanitizer::wrap_entry(top, entry, arg);
            arch::init_frame(top, entry as usize, arg)
        };
        Context {
            sp: NonNull::new(sp).expect("a frame below a non-null top"),
            _thread_bound: PhantomData,
        }
    }

    /// Bytes the initial frame takes below `top`.
    pub const INITIAL_FRAME_SIZE: usize = arch::INITIAL_FRAME_SIZE + sanitizer::ENTRY_HEADER_SIZE;

    /// Suspends the running context and resumes `self`, passing it `data`. Returns when some
    /// context switches back to this one.
    ///
    /// # Safety
    /// - `self` must be a suspended context of this OS thread whose stack is still valid.
    /// - The caller must not be relying on the FP control state surviving (see the module
    ///   docs); use [`Context::switch_fpenv`] for that.
    #[inline(always)]
    pub unsafe fn switch(self, data: usize) -> Transfer {
        let suspension = sanitizer::start_switch(self.sp.as_ptr());
        // SAFETY: the caller's obligation.
        let transfer = unsafe { self.raw_switch(data) };
        sanitizer::finish_switch(suspension);
        transfer
    }

    /// As [`Context::switch`], and the running context's FP control state is saved and
    /// restored when it is resumed; the target starts with the default state unless it was
    /// itself suspended by this function.
    ///
    /// # Safety
    /// - As [`Context::switch`], except for the FP environment.
    #[inline(always)]
    pub unsafe fn switch_fpenv(self, data: usize) -> Transfer {
        let suspension = sanitizer::start_switch(self.sp.as_ptr());
        // SAFETY: the caller's obligation.
        let transfer = unsafe { self.raw_switch_fpenv(data) };
        sanitizer::finish_switch(suspension);
        transfer
    }

    /// As [`Context::switch`], but the switch ends in a return instead of an indirect jump.
    /// The return is predicted from the return-stack buffer, so this is the faster form when
    /// the target was itself suspended by a switch made from the same call site as this one
    /// (and nothing returns past that site before the next switch), and the slower form
    /// otherwise (asymmetric resume/suspend pairs; a scheduler, whose tasklets wait in
    /// different callers, uses [`Context::switch_jump`]).
    ///
    /// # Safety
    /// - As [`Context::switch`].
    #[inline(always)]
    pub unsafe fn switch_ret(self, data: usize) -> Transfer {
        let suspension = sanitizer::start_switch(self.sp.as_ptr());
        // SAFETY: the caller's obligation.
        let transfer = unsafe { self.raw_switch_ret(data) };
        sanitizer::finish_switch(suspension);
        transfer
    }

    /// As [`Context::switch`], entered and left by jumps: the switch neither pushes nor pops
    /// a return address, so the CPU's return-address predictor is left exactly as the
    /// switching context's own calls left it. For symmetric switches between contexts that
    /// wait at different places (a scheduler's main loop and a tasklet's): a switch entered by
    /// `call` or left by `ret` there mispredicts whenever the two sides' call sites differ,
    /// while this one's only indirect jump is predicted from the branch history. Resumes and is
    /// resumed by every full switch; pair it with itself. Elsewhere than x86_64 this is
    /// [`Context::switch`].
    ///
    /// ```
    /// use microthread::context::Context;
    /// use microthread::stack::Stack;
    ///
    /// unsafe extern "C" fn ping(from: Context, data: usize, _arg: usize) -> ! {
    ///     // SAFETY: `from` is main, suspended in its `switch_jump`.
    ///     let back = unsafe { from.switch_jump(data + 1) };
    ///     // SAFETY: main again, a plain full frame; this frame is never resumed.
    ///     unsafe { back.from.exit(back.data + 1) }
    /// }
    ///
    /// let stack = Stack::new(64 * 1024)?;
    /// // SAFETY: the top is 16-aligned; the stack outlives the context.
    /// let context = unsafe { Context::new(stack.top(), ping, 0) };
    /// // SAFETY: a new context of this thread, on a live stack.
    /// let t = unsafe { context.switch_jump(1) };
    /// assert_eq!(t.data, 2);
    /// // SAFETY: `t.from` is `ping`, suspended in its `switch_jump`.
    /// let last = unsafe { t.from.switch_jump(10) };
    /// assert_eq!(last.data, 11);
    /// std::mem::forget(last.from); // meaningless after an `exit`
    /// drop(stack);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Safety
    /// - As [`Context::switch`].
    #[inline(always)]
    pub unsafe fn switch_jump(self, data: usize) -> Transfer {
        let suspension = sanitizer::start_switch(self.sp.as_ptr());
        // SAFETY: the caller's obligation.
        let transfer = unsafe { self.raw_switch_jump(data) };
        sanitizer::finish_switch(suspension);
        transfer
    }

    /// [`Context::switch_jump`] keeping the FP environment, as [`Context::switch_fpenv`] does:
    /// entered and left by jumps. Elsewhere than x86_64 this is [`Context::switch_fpenv`].
    ///
    /// ```
    /// use microthread::context::Context;
    /// use microthread::stack::Stack;
    ///
    /// unsafe extern "C" fn ping(from: Context, data: usize, _arg: usize) -> ! {
    ///     // SAFETY: `from` is main, suspended in its `switch_fpenv_jump`.
    ///     let back = unsafe { from.switch_fpenv_jump(data + 1) };
    ///     // SAFETY: main again; this frame is never resumed after this switch, which is
    ///     // an FP-environment one (main's frame saved its environment), not `exit`.
    ///     unsafe {
    ///         Context::end_at_next_switch();
    ///         back.from.switch_fpenv_jump(back.data + 1);
    ///     }
    ///     unreachable!("an ended context was resumed")
    /// }
    ///
    /// let stack = Stack::new(64 * 1024)?;
    /// // SAFETY: the top is 16-aligned; the stack outlives the context.
    /// let context = unsafe { Context::new(stack.top(), ping, 0) };
    /// // SAFETY: a new context of this thread, on a live stack.
    /// let t = unsafe { context.switch_fpenv_jump(1) };
    /// assert_eq!(t.data, 2);
    /// // SAFETY: `t.from` is `ping`, suspended in its `switch_fpenv_jump`.
    /// let last = unsafe { t.from.switch_fpenv_jump(10) };
    /// assert_eq!(last.data, 11);
    /// std::mem::forget(last.from); // never to be resumed
    /// drop(stack);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Safety
    /// - As [`Context::switch_fpenv`].
    #[inline(always)]
    pub unsafe fn switch_fpenv_jump(self, data: usize) -> Transfer {
        let suspension = sanitizer::start_switch(self.sp.as_ptr());
        // SAFETY: the caller's obligation.
        let transfer = unsafe { self.raw_switch_fpenv_jump(data) };
        sanitizer::finish_switch(suspension);
        transfer
    }

    /// The partner of [`Context::switch`] for asymmetric hand-offs: switches back to the
    /// context that last resumed us with `switch`, keeping the CPU's return-address
    /// predictor balanced.
    ///
    /// `switch` is entered by a call (the predictor pushes the resumer's return address) and
    /// leaves by an indirect jump (nothing is popped). This one is entered by a jump with the
    /// return address stored by hand (nothing is pushed) and leaves by `ret`, which pops the
    /// resumer's address: exactly where the resumer waits. One push and one pop per round
    /// trip, every branch predicted, and the `ret`s that follow on either side still match
    /// their calls. On aarch64 and riscv64 this is currently the plain switch.
    ///
    /// # Safety
    /// - As [`Context::switch`]; and `self` should be the context that resumed the caller
    ///   (anything else is correct, only slower).
    #[inline(always)]
    pub unsafe fn switch_back(self, data: usize) -> Transfer {
        let suspension = sanitizer::start_switch(self.sp.as_ptr());
        // SAFETY: the caller's obligation.
        let transfer = unsafe { self.raw_switch_back(data) };
        sanitizer::finish_switch(suspension);
        transfer
    }

    /// The partner of [`Context::switch_fpenv`] for asymmetric hand-offs, as
    /// [`Context::switch_back`] is the partner of [`Context::switch`]: entered by a jump,
    /// leaving by `ret`. Elsewhere than x86_64 this is [`Context::switch_fpenv`].
    ///
    /// # Safety
    /// - As [`Context::switch_fpenv`].
    #[inline(always)]
    pub unsafe fn switch_fpenv_back(self, data: usize) -> Transfer {
        let suspension = sanitizer::start_switch(self.sp.as_ptr());
        // SAFETY: the caller's obligation.
        let transfer = unsafe { self.raw_switch_fpenv_back(data) };
        sanitizer::finish_switch(suspension);
        transfer
    }

    /// The last switch of a context that is ending: resumes `self` and never comes back. On
    /// x86_64 it saves nothing and is entered and left by jumps, leaving the return-address
    /// predictor as the resumed context's calls left it; elsewhere it is [`Context::switch`].
    /// The resumed side gets a meaningless `from` (never to be resumed). It may still read
    /// what the ending frame passed it by address, until it next switches.
    ///
    /// A context that ends by another kind of switch (it needs a light or FP-environment
    /// one) calls [`Context::end_at_next_switch`] first.
    ///
    /// # Safety
    /// - As [`Context::switch`], and `self` must be a plain (not light, not FP-environment)
    ///   frame; the calling context must never be resumed.
    #[inline(always)]
    pub unsafe fn exit(self, data: usize) -> ! {
        sanitizer::start_last_switch(self.sp.as_ptr());
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the routine only restores `self`'s frame (caller's obligation) and jumps
        // into it; nothing of ours needs to survive.
        unsafe {
            core::arch::asm!(
                "jmp {exit}",
                exit = sym arch::microthread_ctx_exit,
                in("rdi") self.sp.as_ptr(),
                in("rsi") data,
                options(noreturn),
            )
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            // SAFETY: forwarded.
            unsafe { self.raw_switch(data) };
            unreachable!("an exited context was resumed")
        }
    }

    /// Declares that the running context's next switch is its last: it is never resumed,
    /// and the side it resumes may read what it passed by address only until that side
    /// next switches. [`Context::exit`] implies this; a context that ends by any other
    /// switch (a coroutine's last light or FP-environment switch back) calls this just
    /// before it. With the `asan` feature this lets AddressSanitizer release the context's
    /// fake stack and clear the poison its frames leave on the stack, which would otherwise
    /// make the next context on the same (pooled) stack look like an overflow; without it,
    /// this does nothing.
    ///
    /// # Safety
    /// - The calling context must never be resumed after the next switch this thread makes.
    #[inline(always)]
    pub unsafe fn end_at_next_switch() {
        sanitizer::mark_ending();
    }

    /// The plain switch routine, unannotated.
    ///
    /// # Safety
    /// - As [`Context::switch`].
    #[inline(always)]
    unsafe fn raw_switch(self, data: usize) -> Transfer {
        // SAFETY: `self` is a suspended frame of this thread (caller's obligation), consumed
        // here so it cannot be resumed twice.
        unsafe { Transfer::from_raw(arch::microthread_ctx_switch(self.sp.as_ptr(), data)) }
    }

    /// # Safety
    /// - As [`Context::switch_fpenv`].
    #[inline(always)]
    unsafe fn raw_switch_fpenv(self, data: usize) -> Transfer {
        // SAFETY: as in `raw_switch`.
        unsafe { Transfer::from_raw(arch::microthread_ctx_switch_fpenv(self.sp.as_ptr(), data)) }
    }

    /// # Safety
    /// - As [`Context::switch`].
    #[inline(always)]
    unsafe fn raw_switch_ret(self, data: usize) -> Transfer {
        // SAFETY: as in `raw_switch`.
        unsafe { Transfer::from_raw(arch::microthread_ctx_switch_ret(self.sp.as_ptr(), data)) }
    }

    /// # Safety
    /// - As [`Context::switch`].
    #[inline(always)]
    unsafe fn raw_switch_back(self, data: usize) -> Transfer {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the routine saves every callee-saved register on our stack and resumes
        // `self` (caller's obligation); see `x86_switch!` for the stack and registers.
        unsafe {
            x86_switch!(
                jump,
                arch::microthread_ctx_switch_ret,
                self.sp.as_ptr(),
                data
            )
        }
        #[cfg(not(target_arch = "x86_64"))]
        // SAFETY: forwarded.
        unsafe {
            self.raw_switch(data)
        }
    }

    /// # Safety
    /// - As [`Context::switch`].
    #[inline(always)]
    unsafe fn raw_switch_jump(self, data: usize) -> Transfer {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the routine saves every callee-saved register on our stack and resumes
        // `self` (caller's obligation), leaving by `pop rcx; jmp *rcx`; see `x86_switch!`.
        unsafe {
            x86_switch!(jump, arch::microthread_ctx_switch, self.sp.as_ptr(), data)
        }
        #[cfg(not(target_arch = "x86_64"))]
        // SAFETY: forwarded.
        unsafe {
            self.raw_switch(data)
        }
    }

    /// # Safety
    /// - As [`Context::switch_fpenv`].
    #[inline(always)]
    unsafe fn raw_switch_fpenv_jump(self, data: usize) -> Transfer {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `raw_switch_jump`, and the routine also saves the FP environment.
        unsafe {
            x86_switch!(
                jump,
                arch::microthread_ctx_switch_fpenv,
                self.sp.as_ptr(),
                data
            )
        }
        #[cfg(not(target_arch = "x86_64"))]
        // SAFETY: forwarded.
        unsafe {
            self.raw_switch_fpenv(data)
        }
    }

    /// # Safety
    /// - As [`Context::switch_fpenv`].
    #[inline(always)]
    unsafe fn raw_switch_fpenv_back(self, data: usize) -> Transfer {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `raw_switch_back`, and the routine also saves the FP environment.
        unsafe {
            x86_switch!(
                jump,
                arch::microthread_ctx_switch_fpenv_ret,
                self.sp.as_ptr(),
                data
            )
        }
        #[cfg(not(target_arch = "x86_64"))]
        // SAFETY: forwarded.
        unsafe {
            self.raw_switch_fpenv(data)
        }
    }

    /// The saved stack pointer, giving up the handle.
    pub fn into_raw(self) -> NonNull<u8> {
        self.sp
    }

    /// Rebuilds a handle from [`Context::into_raw`].
    ///
    /// # Safety
    /// - `sp` must come from `into_raw` (or a switch) and not have been resumed since.
    pub unsafe fn from_raw(sp: NonNull<u8>) -> Context {
        Context {
            sp,
            _thread_bound: PhantomData,
        }
    }
}
