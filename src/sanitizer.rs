//! AddressSanitizer annotations of the stack switch (the `asan` cargo feature).
//!
//! ASan keeps, per thread, the bounds of the stack it believes is running and a *fake stack*
//! (where it places the frames of functions with address-taken locals, to catch a use after
//! return). A switch that it is not told about leaves both wrong: a panic on a coroutine then
//! unpoisons a range between two unrelated stacks (ASan refuses: "ignoring requested
//! `__asan_handle_no_return`"), frames end up on the wrong fake stack, and the poison that a
//! dead context's frames left on its stack makes the next context on that pooled stack look
//! like a stack-buffer-overflow. So every switch in [`context`](crate::context) calls
//! [`start_switch`] before it and [`finish_switch`] after it (on the resumed side), which tell
//! ASan `__sanitizer_start_switch_fiber(&fake_stack_save, bottom, size)` with the bounds of
//! the target's stack, and `__sanitizer_finish_switch_fiber(fake_stack_save, ..)`.
//!
//! - **The target's bounds.** A context is only a saved stack pointer. Coroutine and tasklet
//!   stacks are all in the overflow registry, which gives the usable range containing that
//!   pointer; a context not on one of them is the thread's own stack, whose bounds ASan hands
//!   back on the first switch out of it (kept per thread).
//! - **A new context** starts in [`wrap_entry`]'s shim, which finishes the switch into it
//!   before the real entry runs.
//! - **A dying context** (its switch is [`Context::exit`](crate::context::Context::exit), or
//!   it called [`mark_ending`] first) leaves its fake stack to be destroyed at the thread's
//!   next switch, not at once: the side it resumes may still read a value the dying frame
//!   passed by address (a coroutine's last reply), and that frame can be on the fake stack.
//!   The resumed side clears the poison left on the dead stack (by the frames ASan put on the
//!   real stack rather than a fake one: all of them when use-after-return checks are off), so
//!   a context that reuses the stack from the pool starts on clean memory. (Destroying the
//!   fake stack at the last switch itself, with a null save, unmaps the frame that is making
//!   the switch: every test binary then dies of SIGSEGV.)
//!
//! `__asan_handle_no_return` is not needed: no frame is ever abandoned on a live stack (a
//! context suspends and resumes at the same switch), and the only abandoned frames, those of
//! a dying context, are cleared with the rest of its stack. (Under `panic = "abort"` a
//! suspended coroutine that is dropped is abandoned without a last switch: its stack is
//! leaked, never reused, so its frames' poison is never seen again.)
//!
//! Without the feature every function here is an empty `#[inline(always)]` one and
//! [`Suspension`] has no size: the switch compiles exactly as without this module. The
//! feature needs a nightly compiler with `-Zsanitizer=address` (`ci/asan.sh`); a build with
//! the feature but without the sanitizer is refused at compile time.

#[cfg(feature = "asan")]
pub(crate) use enabled::*;

#[cfg(not(feature = "asan"))]
pub(crate) use disabled::*;

#[cfg(not(feature = "asan"))]
mod disabled {
    use crate::context::Entry;

    /// What a switch keeps for the resumed side of it: nothing without the `asan` feature.
    pub(crate) struct Suspension;

    /// Before a switch to the context whose saved stack pointer is `_to`.
    #[inline(always)]
    pub(crate) fn start_switch(_to: *mut u8) -> Suspension {
        Suspension
    }

    /// After a switch, on the side it resumed.
    #[inline(always)]
    pub(crate) fn finish_switch(_s: Suspension) {}

    /// Before the last switch of the running context, to `_to`.
    #[inline(always)]
    pub(crate) fn start_last_switch(_to: *mut u8) {}

    /// Declares that the running context's next switch is its last.
    #[inline(always)]
    pub(crate) fn mark_ending() {}

    /// Bytes a new context's start needs below its top besides the initial frame.
    pub(crate) const ENTRY_HEADER_SIZE: usize = 0;

    /// The top, entry and argument to lay a new context's initial frame with: unchanged.
    ///
    /// # Safety
    /// - As `Context::new` (nothing is written here).
    #[inline(always)]
    pub(crate) unsafe fn wrap_entry(
        top: *mut u8,
        entry: Entry,
        arg: usize,
    ) -> (*mut u8, Entry, usize) {
        (top, entry, arg)
    }
}

#[cfg(feature = "asan")]
mod enabled {
    use std::cell::Cell;
    use std::ffi::c_void;
    use std::ptr;

    use crate::context::{Context, Entry};
    use crate::overflow;

    // (Inside this module: `cfg(sanitize)` is unstable and must not be seen without the
    // feature, which enables it in lib.rs.)
    #[cfg(not(sanitize = "address"))]
    compile_error!(
        "the `asan` feature annotates stack switches for AddressSanitizer and needs it: build \
         with RUSTFLAGS=-Zsanitizer=address on a nightly toolchain (see ci/asan.sh)"
    );

    extern "C" {
        // The fiber interface of compiler-rt (sanitizer/common_interface_defs.h).
        fn __sanitizer_start_switch_fiber(
            fake_stack_save: *mut *mut c_void,
            bottom: *const c_void,
            size: usize,
        );
        fn __sanitizer_finish_switch_fiber(
            fake_stack_save: *mut c_void,
            bottom_old: *mut *const c_void,
            size_old: *mut usize,
        );
        // sanitizer/asan_interface.h
        fn __asan_unpoison_memory_region(addr: *const c_void, size: usize);
    }

    /// What a switch keeps for the resumed side of it: the running context's fake stack,
    /// detached by `start_switch` and handed back to ASan when the context is resumed.
    pub(crate) struct Suspension {
        fake_stack: *mut c_void,
    }

    /// Per-thread state of the annotations. Plain `Cell`s of `Copy` values: no destructor,
    /// so they stay usable while the thread's other thread-locals are torn down (the
    /// scheduler's teardown still switches).
    struct ThreadState {
        /// The bounds of the thread's own stack (bottom, size), once known.
        own_stack: Cell<Option<(usize, usize)>>,
        /// A switch was started and not yet finished (a switch made without `Context`, as
        /// tests/registers.rs does into a new context, has neither half).
        switching: Cell<bool>,
        /// The running context declared that its next switch is its last.
        ending: Cell<bool>,
        /// The context that switched to us was ending: its stack is dead.
        from_dead: Cell<bool>,
        /// The fake stack of the last context that ended, destroyed at the next switch.
        orphan: Cell<*mut c_void>,
    }

    thread_local! {
        static STATE: ThreadState = const {
            ThreadState {
                own_stack: Cell::new(None),
                switching: Cell::new(false),
                ending: Cell::new(false),
                from_dead: Cell::new(false),
                orphan: Cell::new(ptr::null_mut()),
            }
        };
    }

    /// The bounds (bottom, size) of the stack that holds the saved stack pointer `sp`: a
    /// registered coroutine or tasklet stack, else the thread's own; (0, 0) if unknown (ASan
    /// then treats the stack as one of unknown extent, and only loses precision).
    fn stack_bounds(state: &ThreadState, sp: usize) -> (usize, usize) {
        if let Some((bottom, size)) = state.own_stack.get() {
            if sp.wrapping_sub(bottom) < size {
                return (bottom, size);
            }
        }
        match overflow::usable_range_containing(sp) {
            Some((limit, top)) => (limit, top - limit),
            None => (0, 0),
        }
    }

    /// Destroys the fake stack left by the last context that ended, if any: makes it the
    /// current one for a moment (a switch from this stack to itself) and ends that with a
    /// null save, which tells ASan to free it; then gives this context its own back.
    fn destroy_orphan(state: &ThreadState) {
        let orphan = state.orphan.replace(ptr::null_mut());
        if orphan.is_null() {
            return;
        }
        let mut ours: *mut c_void = ptr::null_mut();
        let (mut bottom, mut size): (*const c_void, usize) = (ptr::null(), 0);
        // SAFETY: four runtime calls in a row, with no instrumented code between them; the
        // first two report this very stack (its bounds come back from the finish), the
        // orphan is a fake stack ASan gave us that no live frame uses.
        unsafe {
            __sanitizer_start_switch_fiber(&mut ours, ptr::null(), 0);
            __sanitizer_finish_switch_fiber(orphan, &mut bottom, &mut size);
            __sanitizer_start_switch_fiber(ptr::null_mut(), bottom, size);
            __sanitizer_finish_switch_fiber(ours, ptr::null_mut(), ptr::null_mut());
        }
    }

    /// Before a switch to the context whose saved stack pointer is `to`.
    #[inline(never)]
    pub(crate) fn start_switch(to: *mut u8) -> Suspension {
        STATE.with(|state| {
            destroy_orphan(state);
            let (bottom, size) = stack_bounds(state, to as usize);
            let mut fake_stack: *mut c_void = ptr::null_mut();
            let save = if state.ending.replace(false) {
                // Never resumed: its fake stack waits in `orphan` for the next switch.
                state.from_dead.set(true);
                state.orphan.as_ptr()
            } else {
                &mut fake_stack
            };
            state.switching.set(true);
            // SAFETY: `save` is writable; the bounds are those of the target's stack.
            unsafe { __sanitizer_start_switch_fiber(save, bottom as *const c_void, size) };
            Suspension { fake_stack }
        })
    }

    /// After a switch, on the side it resumed.
    #[inline(never)]
    pub(crate) fn finish_switch(s: Suspension) {
        STATE.with(|state| finish(state, s.fake_stack));
    }

    fn finish(state: &ThreadState, fake_stack: *mut c_void) {
        let (mut bottom, mut size): (*const c_void, usize) = (ptr::null(), 0);
        state.switching.set(false);
        // SAFETY: a switch was started on this thread (`switching`); `fake_stack` is what
        // ASan gave this context when it was suspended, or null for a new context.
        unsafe { __sanitizer_finish_switch_fiber(fake_stack, &mut bottom, &mut size) };
        if state.own_stack.get().is_none() {
            // The first switch of a thread is made from its own stack.
            state.own_stack.set(Some((bottom as usize, size)));
        }
        if state.from_dead.replace(false) && size != 0 {
            // SAFETY: the dead context's stack is ours until it is reused; clearing its
            // poison only makes accesses to it allowed.
            unsafe { __asan_unpoison_memory_region(bottom, size) };
        }
    }

    /// Before the last switch of the running context, to `to`.
    #[inline(always)]
    pub(crate) fn start_last_switch(to: *mut u8) {
        mark_ending();
        let _never_resumed = start_switch(to);
    }

    /// Declares that the running context's next switch is its last.
    pub(crate) fn mark_ending() {
        STATE.with(|state| state.ending.set(true));
    }

    /// What the shim of a new context reads below its top: the real entry and its argument.
    #[repr(C, align(16))]
    struct EntryHeader {
        entry: Entry,
        arg: usize,
    }

    /// Bytes a new context's start needs below its top besides the initial frame.
    pub(crate) const ENTRY_HEADER_SIZE: usize = std::mem::size_of::<EntryHeader>();

    /// Writes the real `entry` and `arg` just below `top` and returns the top, entry and
    /// argument to lay the initial frame with: below the header, starting in the shim.
    ///
    /// # Safety
    /// - As `Context::new`, with `ENTRY_HEADER_SIZE` more writable bytes below `top`.
    pub(crate) unsafe fn wrap_entry(
        top: *mut u8,
        entry: Entry,
        arg: usize,
    ) -> (*mut u8, Entry, usize) {
        // SAFETY: the caller vouches for the bytes below `top`, which is 16-aligned.
        unsafe {
            let header = top.sub(ENTRY_HEADER_SIZE);
            ptr::write(header as *mut EntryHeader, EntryHeader { entry, arg });
            (header, entry_shim, header as usize)
        }
    }

    /// The first Rust frame of every new context under ASan: finishes the switch into it,
    /// then runs the real entry.
    ///
    /// Not instrumented: ASan would call `__asan_handle_no_return` before the call of the
    /// entry (which never returns), and a context entered by a switch that ASan was not told
    /// about (tests/registers.rs switches by hand) has no bounds it could use for that: ASan
    /// warns. There is nothing to unpoison on a new context's stack anyway.
    ///
    /// # Safety
    /// - Only reached through a trampoline of a frame laid out by `wrap_entry`, with
    ///   `header` the address of its header.
    #[sanitize(address = "off")]
    unsafe extern "C" fn entry_shim(from: Context, data: usize, header: usize) -> ! {
        STATE.with(|state| {
            if state.switching.get() {
                finish(state, ptr::null_mut());
            }
        });
        // SAFETY: `wrap_entry` wrote the header; nothing else uses it.
        let EntryHeader { entry, arg } = unsafe { ptr::read(header as *const EntryHeader) };
        // SAFETY: the real entry, reached as the trampoline would have reached it.
        unsafe { entry(from, data, arg) }
    }
}

#[cfg(test)]
mod tests {
    use crate::overflow::usable_range_containing;
    use crate::stack::Stack;

    #[test]
    fn the_usable_range_of_a_registered_stack_is_found_from_any_address_in_it() {
        let stack = Stack::new(64 * 1024).unwrap();
        let range = Some((stack.limit() as usize, stack.top() as usize));
        assert_eq!(usable_range_containing(stack.limit() as usize), range);
        assert_eq!(usable_range_containing(stack.top() as usize - 1), range);
        assert_eq!(usable_range_containing(stack.top() as usize - 4096), range);
        // Neither the guard nor the byte at the top belongs to the usable part.
        assert_eq!(usable_range_containing(stack.limit() as usize - 1), None);
        assert_eq!(usable_range_containing(stack.top() as usize), None);
        let here = 0u8;
        assert_eq!(usable_range_containing(&here as *const u8 as usize), None);
    }
}
