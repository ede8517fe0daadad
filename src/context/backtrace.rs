//! Backtraces through contexts: linking a context's first frame to the frame of whoever
//! resumed it, so that an unwinder (a backtrace, gdb, a panic's search for a handler) goes on
//! past the context's stack instead of ending there, and the word at the top of a stack that
//! a coroutine keeps its resumer in for that link.

use super::Context;
use crate::arch;
use crate::sanitizer;

impl Context {
    /// Makes backtraces (and every other DWARF unwinder: gdb, a panic's search for a handler)
    /// that reach the first frame of the context laid out below `top` continue in the frame
    /// whose saved stack pointer `cell` holds at that moment, instead of ending there. Until
    /// this is called, they end at the context's first frame.
    ///
    /// The frame must be the kind the context's trampoline expects: a full frame (suspended
    /// by a full switch) for a context of [`Context::new`], a light one for
    /// [`Context::new_light`]. `cell` is read only by unwinders, at the moment they unwind.
    ///
    /// # Safety
    /// - `top` must be the top the running context was made with (by `new` or `new_light`),
    ///   and the context must not have ended.
    /// - `cell` must stay valid as long as the context can run, and hold a suspended
    ///   context (not `None`) whenever the context runs code that may panic or take a
    ///   backtrace. Following the cells from context to context must never lead back to a
    ///   context already passed (a loop makes every backtrace endless).
    #[inline(always)]
    pub(crate) unsafe fn link_backtrace(top: *mut u8, cell: *const Option<Context>) {
        // The initial frame was written below the sanitizer's header (none without ASan).
        let top = top.wrapping_sub(sanitizer::ENTRY_HEADER_SIZE);
        // SAFETY: forwarded.
        unsafe { arch::set_link(top, cell) }
    }

    /// A word at the top of the stack of the context laid out below `top` that nothing else
    /// uses, for [`Context::link_backtrace`]'s cell when the context keeps its resumer's
    /// saved stack pointer there itself (a coroutine does, with
    /// [`Context::record_resumer_at_top`], from its first instruction until its first
    /// suspend). Free once the context's trampoline has run.
    #[inline(always)]
    pub(crate) fn top_cell(top: *mut u8) -> *const Option<Context> {
        top.wrapping_sub(sanitizer::ENTRY_HEADER_SIZE + 2 * core::mem::size_of::<usize>())
            as *const Option<Context>
    }

    /// Stores `resumer`'s saved stack pointer in the [`Context::top_cell`] of the running
    /// context, made below `top`: one store.
    ///
    /// # Safety
    /// - `top` must be the top the running context was made with, and its trampoline must
    ///   have run (it reads a light context's argument from that word).
    #[inline(always)]
    pub(crate) unsafe fn record_resumer_at_top(top: *mut u8, resumer: &Context) {
        // SAFETY: the word is inside our own stack's initial frame, used by nothing else
        // once the trampoline has run (caller's obligation).
        unsafe { (Context::top_cell(top) as *mut *mut u8).write(resumer.sp.as_ptr()) }
    }
}
