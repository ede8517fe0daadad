//! The coroutine's side of the switch: [`Yielder`], the first frame of every coroutine
//! ([`entry`]), and the rules for when a coroutine may suspend.
//!
//! # Only its own coroutine
//!
//! A `Yielder` knows the range of its coroutine's stack below the coroutine's first frame.
//! [`Yielder::suspend`] first checks that the stack pointer is in that range: then its
//! coroutine is the one running there, and the innermost one on that stack. Called from anywhere else (a
//! child coroutine that was handed the outer `&Yielder` as its input, say) it panics with a
//! sentence before it touches any state. Stacks never overlap, so the check is exact; it
//! costs one subtraction and one comparison (`sp - limit < top - limit`, unsigned), which
//! also covers the flag of a forced unwind (see `Yielder::fast_span`).
//!
//! # Suspending and unwinding
//!
//! The rules are on [`Yielder`]: a coroutine may not suspend while its own stack unwinds,
//! and the `Yielder` tells its own unwinding from its resumer's by recording, at every switch
//! into the coroutine, whether the thread was panicking then. In one case (the resumer was
//! unwinding, and the coroutine began to unwind as well) a suspend mid-unwind is accepted;
//! why that is still memory-safe is below.
//!
//! # Why two unwinds on two stacks of one thread are memory-safe
//!
//! With the Itanium unwinder (libgcc's or LLVM's libunwind, which Rust uses on every target
//! of this crate) and Rust's `panic_unwind`:
//!
//! - Rust puts all state of one unwind in its exception object: `_Unwind_Exception` (whose
//!   `private_1`/`private_2` words say forced or not and the canonical frame address of the
//!   handler found in the search phase) plus the payload, in one heap allocation.
//! - The unwinder keeps no state of its own between the frames it runs: the search phase
//!   walks the current stack from the raise to the handler (here the `catch_unwind` of the
//!   coroutine's first frame, so it never walks past it) and the cleanup phase installs the
//!   context of each landing pad, discarding its own frames. A landing pad that runs a
//!   destructor holds the exception object in its frame and continues with
//!   `_Unwind_Resume(exception)`, which rebuilds its context from the current registers and
//!   reads only the exception object. A destructor that suspends leaves all of that, intact,
//!   in its own stack's frames and the heap. Handler frames are told apart by address, and
//!   two stacks never share an address.
//! - The unwinder's global data (the registered frame tables and their caches) is shared
//!   by all threads already and locked accordingly; nothing in it belongs to one unwind.
//! - Rust's panic runtime keeps, per thread, the panic count (incremented when a panic
//!   starts, `resume_unwind` included, decremented when `catch_unwind` catches one) and
//!   whether a panic hook is running (a panic then aborts the process, so a coroutine
//!   resumed from a panic hook must not panic). A count is a count: unwinds on two stacks
//!   add to it and are taken off in whatever order they are caught. Only the meaning of
//!   `thread::panicking()` is shared, which is what the rules on [`Yielder`] are about.
//! - A coroutine whose unwind is suspended and that is never resumed again is either dropped
//!   (the process aborts, see [`Yielder`]) or leaked with `mem::forget` (its stack and
//!   exception object are never freed and the thread stays `panicking()`: a leak, not a
//!   use of freed memory).
//!
//! C++ exceptions keep per-thread state (`__cxa_get_globals`) and are not covered here: a
//! foreign exception must not unwind across a suspension.

use std::any::Any;
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;

use super::{fatal, ForcedUnwind, Resume, Slot, Suspend, LAST};
use crate::context::{Context, Transfer};

/// What [`Coroutine::place`](super::Coroutine) writes at the top of a new coroutine's stack:
/// the closure, and what the coroutine needs to know about its stack.
pub(super) struct Start<F> {
    pub(super) f: F,
    /// The lowest usable address of the coroutine's stack.
    pub(super) stack_limit: usize,
}

/// The handle a coroutine uses to suspend itself; lives on the coroutine's stack.
///
/// It suspends only its own coroutine: [`suspend`](Yielder::suspend) called anywhere else
/// (in a child coroutine that was handed the outer `&Yielder` as its input, say) panics with a
/// sentence before it changes anything.
///
/// # When a coroutine may suspend
///
/// Not while its *own* stack is unwinding: a destructor run by a panic of the coroutine
/// would suspend it mid-unwind, and the resumer would go on with the thread still counted as
/// panicking, the unwind half done on a stack it cannot see. That is a hard error: the
/// process aborts with a message. But the thread's panic state, [`std::thread::panicking`],
/// is one count for the whole thread, whichever stack a panic unwinds: a healthy coroutine
/// resumed from a `Drop` that runs while its *resumer* unwinds sees it too. So the `Yielder`
/// records, at every switch into the coroutine (the first resume and each return from
/// `suspend`), whether the thread was panicking then, which is whether the resumer was
/// (nothing runs between the resumer's switch and ours). At a suspend:
///
/// - not panicking now: it suspends.
/// - panicking now, not at the last resume: a panic began since, and the coroutine has run
///   ever since (whatever it resumed has switched back to it), so the panic is unwinding its
///   stack. Refused: the process aborts with
///   "a coroutine tried to suspend while its own stack was being unwound".
/// - panicking now and at the last resume: the resumer is unwinding. It suspends, and
///   resumes later as usual.
///
/// With one panic count per thread, the last case cannot be told apart from a coroutine
/// resumed during its resumer's unwind that *also* began to unwind since (it panicked, and
/// a destructor run by that panic suspends). That suspend is accepted too, and then:
///
/// - memory stays safe (see `src/coroutine/yielder.rs` for why two unwinds on two stacks of
///   one thread are sound with the Itanium unwinder);
/// - the coroutine's unwind is suspended, not lost: the next resume continues it, and when it
///   reaches the coroutine's first frame that resume returns the panic as usual;
/// - until then the thread counts that panic: [`std::thread::panicking`] stays true on every
///   stack of the thread after the resumer's own panic is caught (a `MutexGuard` dropped then
///   poisons its mutex), and a coroutine resumed before that began which suspends while it
///   lasts is taken for unwinding itself (the second case: abort with the message);
/// - dropping the coroutine instead of resuming it starts its forced unwind inside the
///   suspended destructor, which Rust does not allow: the process aborts with Rust's own
///   message ("panic in a destructor during cleanup").
///
/// Dropping a suspended coroutine unwinds it with a private payload. Suspending during that
/// unwind is refused the same way; if user code catches the payload and then suspends, the
/// unwind starts again, since the coroutine must end. A payload carried by user code to the
/// first frame of a coroutine that is not being dropped is an ordinary panic of it.
///
/// `repr(C)`, with `stack_limit` and `fast_span` first: the fast path's range check on x86_64
/// reads them at fixed offsets from the `Yielder`'s address, as memory operands of its `asm!`
/// block (`Yielder::off_fast_path`; the offsets are checked below the type).
#[repr(C)]
pub struct Yielder<I, Y> {
    /// The lowest usable address of our stack.
    stack_limit: usize,
    /// `stack_top - stack_limit` while a suspend may take the fast path, else 0: then no stack
    /// pointer passes the fast path's range check, and every suspend takes the slow path,
    /// which checks each condition itself. It is 0 until the first suspend (which links
    /// backtraces to `resumer`), while `unwinding`, while `resumer_panicking`, and always for
    /// a `preserve_fp_env` coroutine (the slow path makes its FP-environment switch). One
    /// comparison for all of them.
    fast_span: Cell<usize>,
    /// Whether the thread was panicking when we were last switched into: the resumer was.
    /// Written only by the slow path and by the fast path's cold branch for a panicking
    /// resumer; it is false whenever `fast_span` is not 0 (see `suspend`).
    resumer_panicking: Cell<bool>,
    /// Set once a drop asked us to unwind.
    unwinding: Cell<bool>,
    /// Where our first frame starts: every frame of the coroutine is below.
    stack_top: usize,
    /// The context that resumed us: stored after every switch into us, read by the suspend
    /// that switches back to it (while we are suspended it is stale, already resumed and never
    /// used, until the switch back into us overwrites it). It is also the cell our backtraces
    /// follow to the resumer (`Context::link_backtrace`, from `entry` on): a field here, not
    /// a word at the stack top, so that reaching it takes no load of `stack_top` first.
    resumer: Cell<Option<Context>>,
    preserve_fp_env: bool,
    _types: Variance<I, Y>,
}

/// Makes [`Yielder`] covariant in `I`, contravariant in `Y` (see the coroutine module docs),
/// and `!Send`.
type Variance<I, Y> = PhantomData<(fn(Y) -> I, *mut ())>;

/// Where the fast path's `asm!` range check reads `stack_limit` and `fast_span`: the same for
/// every `I` and `Y` (`repr(C)`, both fields ahead of anything whose layout depends on them),
/// so checking one instance checks all.
#[cfg(all(target_arch = "x86_64", microthread_asm_goto))]
const OFF_LIMIT: usize = 0;
#[cfg(all(target_arch = "x86_64", microthread_asm_goto))]
const OFF_SPAN: usize = 8;
#[cfg(all(target_arch = "x86_64", microthread_asm_goto))]
const _: () = {
    assert!(core::mem::offset_of!(Yielder<(), ()>, stack_limit) == OFF_LIMIT);
    assert!(core::mem::offset_of!(Yielder<(), ()>, fast_span) == OFF_SPAN);
    assert!(core::mem::offset_of!(Yielder<String, [u128; 3]>, stack_limit) == OFF_LIMIT);
    assert!(core::mem::offset_of!(Yielder<String, [u128; 3]>, fast_span) == OFF_SPAN);
};

impl<I, Y> Yielder<I, Y> {
    /// Suspends the coroutine, handing `value` to the
    /// [`Coroutine::resume`](super::Coroutine::resume) that ran it, and returns the value of the
    /// next resume.
    ///
    /// # Panics
    /// If called anywhere but on this `Yielder`'s own coroutine (from another coroutine it was
    /// passed to, for example), with a sentence; nothing has changed then.
    ///
    /// Aborts the process with a message if the coroutine's own stack is unwinding (a
    /// destructor run by its own panic called this); see [`Yielder`].
    ///
    /// ```
    /// use microthread::coroutine::{Coroutine, CoroutineResult, Yielder};
    /// // Any depth of calls may suspend: the whole stack stays as it is.
    /// fn walk(y: &Yielder<bool, u32>, depth: u32) -> u32 {
    ///     if y.suspend(depth) { walk(y, depth + 1) } else { depth }
    /// }
    /// // The first resume's value is the body's argument, the others are what `suspend` returns.
    /// let mut co = Coroutine::new(|y, _first: bool| walk(y, 0))?;
    /// assert_eq!(co.resume(true), CoroutineResult::Yield(0));
    /// assert_eq!(co.resume(true), CoroutineResult::Yield(1)); // `suspend` returned `true`
    /// assert_eq!(co.resume(false), CoroutineResult::Return(1));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn suspend(&self, value: Y) -> I {
        // One comparison for the rare cases but one (`fast_span` is 0 for them), and one test
        // for a panicking thread. Two branches, not `|`: combined, the compiler materialised
        // `panicking()` as a flag and tested it again (three more instructions).
        if self.off_fast_path() {
            return self.suspend_slow(value);
        }
        if std::thread::panicking() {
            return self.suspend_slow(value);
        }
        // The fast path: on our own stack, nothing unwinding, a light coroutine whose resumer
        // was not panicking when it last switched into us (so `resumer_panicking` is false).
        let mut message = MaybeUninit::new(Slot(value));
        // SAFETY: the resumer is the suspended light context that resumed us, on this thread,
        // consumed here; it reads `message` once before resuming us again.
        let transfer = unsafe {
            self.resumer()
                .switch_light_back(message.as_mut_ptr() as usize)
        };
        // SAFETY: we were just switched into.
        unsafe { self.record_resumer(&transfer.from) };
        // The word first, then the thread's panic state: so the word need not be kept across
        // the test (`start_forced_unwind` notes a panicking resumer itself).
        // SAFETY: the resumer's word, from `Resume::send`.
        let input = match unsafe { Resume::receive(transfer.data) } {
            Resume::Input(input) => input,
            Resume::Unwind => self.start_forced_unwind(),
        };
        if std::thread::panicking() {
            // Rare: take note, and send the next suspend down the slow path, which keeps
            // `resumer_panicking` exact from then on.
            self.resumed_while_panicking();
        }
        input
    }

    /// The fast path's range check: true unless the stack pointer is in
    /// `[stack_limit, stack_limit + fast_span)`, i.e. true off our own stack and whenever
    /// `fast_span` is 0 (see the field). Unsigned: a stack pointer below the limit wraps round
    /// to a huge offset.
    #[inline(always)]
    fn off_fast_path(&self) -> bool {
        // `asm!` label operands need Rust 1.87 (the build script's `microthread_asm_goto`);
        // older compilers, and the other architectures, compare in Rust.
        #[cfg(all(target_arch = "x86_64", microthread_asm_goto))]
        {
            // One `asm!` block with memory operands and a jump to a label: four instructions
            // (the compiler, given the same arithmetic in Rust, loaded both fields into
            // registers first, and kept the loop's first values in them as phis: six).
            // SAFETY: reads rsp and the two fields of `self` (a live, aligned `Yielder`; the
            // offsets are checked where they are defined) into a scratch register and the
            // flags; writes nothing else. Not `nomem`: it reads `self`'s memory, which
            // `Cell::set` writes, so the compiler must not move it across such a store.
            unsafe {
                core::arch::asm!(
                    "mov {t}, rsp",
                    "sub {t}, qword ptr [{y} + {limit}]",
                    "cmp {t}, qword ptr [{y} + {span}]",
                    "jae {off}",
                    t = out(reg) _,
                    y = in(reg) self,
                    limit = const OFF_LIMIT,
                    span = const OFF_SPAN,
                    off = label { return true },
                    options(nostack, readonly),
                );
            }
            false
        }
        #[cfg(not(all(target_arch = "x86_64", microthread_asm_goto)))]
        {
            stack_pointer().wrapping_sub(self.stack_limit) >= self.fast_span.get()
        }
    }

    /// The suspend of the rare cases: from another stack, while the thread is panicking, after
    /// a drop asked us to unwind, after a resume by a panicking resumer, and every suspend of
    /// a `preserve_fp_env` coroutine. Checks everything before it changes anything.
    #[cold]
    #[inline(never)]
    fn suspend_slow(&self, value: Y) -> I {
        self.check_may_suspend();
        // From here on (again, after the first time) backtraces follow `resumer`, which holds
        // the same context as the top cell `entry` linked them to, and which the fast path
        // keeps up to date (it does not touch the top cell).
        // SAFETY: `stack_top` is the top our context was made with and we run; the yielder
        // stays in `entry`'s frame, unmoved (only borrowed), until our last switch, and its
        // `resumer` always holds a suspended context. Resumers only nest: the links never loop.
        unsafe { Context::link_backtrace(self.stack_top as *mut u8, self.resumer.as_ptr()) };
        let mut message = MaybeUninit::new(Slot(value));
        // SAFETY: as in `suspend`; the kind of switch is the one our frames are made for.
        let transfer = unsafe {
            switch_back(
                self.resumer(),
                message.as_mut_ptr() as usize,
                self.preserve_fp_env,
            )
        };
        // SAFETY: we were just switched into.
        unsafe { self.record_resumer(&transfer.from) };
        let resumer_panicking = std::thread::panicking();
        self.resumer_panicking.set(resumer_panicking);
        let fast = !(resumer_panicking || self.unwinding.get() || self.preserve_fp_env);
        self.fast_span.set(if fast {
            self.stack_top - self.stack_limit
        } else {
            0
        });
        // SAFETY: the resumer's word, from `Resume::send`.
        match unsafe { Resume::receive(transfer.data) } {
            Resume::Input(input) => input,
            Resume::Unwind => self.start_forced_unwind(),
        }
    }

    /// The context that resumed us, copied out of `resumer` (which keeps a stale copy).
    ///
    /// # Safety
    /// - Only while we run (the cell then holds the context that resumed us), to be resumed
    ///   once: by the switch back to it.
    #[inline(always)]
    unsafe fn resumer(&self) -> Context {
        // SAFETY: `resumer` holds the context that resumed us whenever we run (set in `entry`
        // and after every switch into us; caller's obligation: we run).
        unsafe { ptr::read(self.resumer.as_ptr()).unwrap_unchecked() }
    }

    /// Stores the context that just switched into us in `resumer`: for backtraces, and as
    /// the resumer our next suspend switches back to.
    ///
    /// # Safety
    /// - Right after a switch into us, with the `from` it returned.
    #[inline(always)]
    unsafe fn record_resumer(&self, from: &Context) {
        // SAFETY: a copy of the handle, the old (stale) one overwritten without a drop
        // (`Context` has none); `from` is what the switch into us returned (caller's
        // obligation), the one context our next suspend resumes.
        unsafe { ptr::write(self.resumer.as_ptr(), Some(ptr::read(from))) };
    }

    /// The fast path's note that the thread was panicking when it switched into us.
    #[cold]
    #[inline(never)]
    fn resumed_while_panicking(&self) {
        self.resumer_panicking.set(true);
        self.fast_span.set(0);
    }

    /// What a suspend does when a drop resumes it to unwind: unwinds, to the first frame.
    /// First takes note if the drop runs while the thread is panicking (the resumer unwinds),
    /// as every switch into us does, for the suspends the unwind may reach.
    #[cold]
    #[inline(never)]
    fn start_forced_unwind(&self) -> ! {
        if std::thread::panicking() {
            self.resumed_while_panicking();
        }
        self.unwinding.set(true);
        self.fast_span.set(0);
        panic::resume_unwind(Box::new(ForcedUnwind))
    }

    /// Whether we run on this Yielder's stack, in a frame of its coroutine.
    #[inline(always)]
    fn on_own_stack(&self) -> bool {
        // Unsigned: a stack pointer below the limit wraps round to a huge offset.
        stack_pointer().wrapping_sub(self.stack_limit) < self.stack_top - self.stack_limit
    }

    /// The slow path of a suspend from another stack, while the thread is panicking, or after a
    /// drop asked us to unwind: returns if the suspend may go ahead (the resumer is unwinding,
    /// not us), diverges if not. Changes nothing before it decides.
    #[cold]
    #[inline(never)]
    #[track_caller]
    fn check_may_suspend(&self) {
        if !self.on_own_stack() {
            foreign_yielder();
        }
        if std::thread::panicking() && !self.resumer_panicking.get() {
            fatal("a coroutine tried to suspend while its own stack was being unwound");
        }
        if self.unwinding.get() {
            // A drop asked us to unwind and user code caught it: keep unwinding.
            panic::resume_unwind(Box::new(ForcedUnwind))
        }
    }
}

/// The stack pointer: where the running frame really is. (Not the address of a local: under
/// AddressSanitizer's use-after-return checks an address-taken local lives on a separate
/// "fake stack".)
#[inline(always)]
fn stack_pointer() -> usize {
    let sp: usize;
    // SAFETY: copies the stack pointer into a register; reads and writes nothing else.
    // `pure` elsewhere: the compiler may reuse one read for the whole function, which is
    // right, since a function runs on one stack all along (a switch returns to it on the same
    // stack). Not on x86_64: there the compiler kept that one read in a spill slot across the
    // inline light switch (which clobbers every register it may) and loaded it back at every
    // suspend; read afresh, it is one `mov` from rsp (callgrind: 54 -> 51 instructions per
    // switch round trip).
    unsafe {
        #[cfg(target_arch = "x86_64")]
        core::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags));
        #[cfg(target_arch = "aarch64")]
        core::arch::asm!("mov {}, sp", out(reg) sp, options(pure, nomem, nostack, preserves_flags));
        #[cfg(target_arch = "riscv64")]
        core::arch::asm!("mv {}, sp", out(reg) sp, options(pure, nomem, nostack, preserves_flags));
    }
    sp
}

#[cold]
#[inline(never)]
#[track_caller]
fn foreign_yielder() -> ! {
    panic!(
        "Yielder::suspend called outside the coroutine it belongs to (a Yielder can only \
         suspend its own coroutine, from that coroutine's stack)"
    )
}

impl<I, Y> fmt::Debug for Yielder<I, Y> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Yielder").finish_non_exhaustive()
    }
}

/// The first Rust frame of every coroutine.
///
/// # Safety
/// - Only reached through the trampoline of a context made by `Coroutine::place`, with
///   `arg` the address of the `Start<F>` it wrote and `data` the word of a `Resume<I>` (see
///   `Resume::send`).
pub(super) unsafe extern "C" fn entry<I, Y, R, F, const FP_ENV: bool>(
    from: Context,
    data: usize,
    arg: usize,
) -> !
where
    F: FnOnce(&Yielder<I, Y>, I) -> R,
{
    // First of all, before anything that may unwind: backtraces from here on continue in the
    // resumer (see "Backtraces across switches" in the coroutine module docs).
    // SAFETY: `arg` is the top our context was made with, and the trampoline has run.
    unsafe { Context::record_resumer_at_top(arg as *mut u8, &from) };
    let resumer_panicking = std::thread::panicking();
    // SAFETY: `arg` is the Start<F> `place` wrote; we move it out exactly once.
    let Start { f, stack_limit } = unsafe { ptr::read(arg as *const Start<F>) };
    // SAFETY: the first resume's word, from `Resume::send`.
    let first = unsafe { Resume::<I>::receive(data) };
    let input = match first {
        Resume::Input(input) => input,
        // A coroutine dropped before it started: out of line, so that the body's path
        // writes its reply straight (no merge with this one's).
        // SAFETY: the first switch into us, from `from`.
        Resume::Unwind => unsafe { drop_unstarted::<Y, R, F, FP_ENV>(f, from) },
    };
    let yielder = Yielder {
        unwinding: Cell::new(false),
        // The first suspend takes the slow path, which links backtraces to `resumer`.
        fast_span: Cell::new(0),
        resumer_panicking: Cell::new(resumer_panicking),
        stack_limit,
        // The context was laid out below `arg`, so every frame of this coroutine is too.
        stack_top: arg,
        resumer: Cell::new(Some(from)),
        preserve_fp_env: FP_ENV,
        _types: PhantomData,
    };
    let reply: Suspend<Y, R> = match panic::catch_unwind(AssertUnwindSafe(|| f(&yielder, input))) {
        Ok(r) => Suspend::Return(r),
        Err(p) => unwound_or_panicked(p, yielder.unwinding.get()),
    };
    // SAFETY: we run; the switch below resumes it. The yielder is plain data (no `Drop`):
    // nothing of it needs releasing before the last switch abandons this frame.
    unsafe { last_switch::<Y, R, FP_ENV>(yielder.resumer(), reply) }
}

/// The first frame of a coroutine dropped before it started: its closure is dropped here, on
/// its own stack (its `Coroutine` keeps no drop function for it). A panic of that drop is
/// caught, as a panic of the body would be: nothing may unwind past this frame.
///
/// # Safety
/// - Only from [`entry`], at the first switch into the coroutine, with the context that made
///   it (`resumer`).
#[cold]
#[inline(never)]
unsafe fn drop_unstarted<Y, R, F, const FP_ENV: bool>(f: F, resumer: Context) -> ! {
    let reply = match panic::catch_unwind(AssertUnwindSafe(move || drop(f))) {
        Ok(()) => Suspend::Unwound,
        Err(p) => Suspend::Panic(p),
    };
    // SAFETY: the caller's obligation: `resumer` switched into us and is suspended.
    unsafe { last_switch::<Y, R, FP_ENV>(resumer, reply) }
}

/// The coroutine's last switch, to `resumer` with `reply`: the first frame's end.
///
/// # Safety
/// - From the coroutine's first frame ([`entry`] or [`drop_unstarted`]), with the context
///   that resumed it; nothing on its stack is used again.
#[inline(always)]
unsafe fn last_switch<Y, R, const FP_ENV: bool>(resumer: Context, reply: Suspend<Y, R>) -> ! {
    let mut reply = MaybeUninit::new(Slot(reply));
    // The final switch: the resumer reads `reply` (the slot is 2-aligned, so `LAST` marks its
    // address) and releases this stack without ever resuming this frame, so nothing here
    // runs again.
    let word = reply.as_mut_ptr() as usize + LAST;
    if FP_ENV {
        // SAFETY: the final switch (above); the resumer's frame is a full one, suspended by
        // an FP-environment switch.
        unsafe {
            Context::end_at_next_switch();
            resumer.switch_fpenv_back(word)
        };
        fatal("a finished coroutine was resumed")
    } else {
        // SAFETY: the final switch (above); the resumer's frame is a light one, suspended by
        // `switch_light`, and `exit_light` never returns.
        unsafe { resumer.exit_light(word) }
    }
}

/// What a panic that reached the coroutine's first frame means: the end of the forced unwind
/// of a drop only if a drop asked for one; any other payload, a [`ForcedUnwind`] that user
/// code carried here included, is a panic of the coroutine.
fn unwound_or_panicked<Y, R>(payload: Box<dyn Any + Send>, dropping: bool) -> Suspend<Y, R> {
    if dropping && payload.is::<ForcedUnwind>() {
        Suspend::Unwound
    } else {
        Suspend::Panic(payload)
    }
}

/// Switches from the coroutine back to its resumer.
///
/// # Safety
/// - As `Context::switch`.
#[inline(always)]
unsafe fn switch_back(resumer: Context, data: usize, fpenv: bool) -> Transfer {
    if fpenv {
        // SAFETY: forwarded.
        unsafe { resumer.switch_fpenv_back(data) }
    } else {
        // SAFETY: forwarded.
        unsafe { resumer.switch_light_back(data) }
    }
}
