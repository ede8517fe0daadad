//! The switch and spawn loops of microthread and its coroutine peers (corosensei, context),
//! shared by the report, `benches/peers.rs` (criterion) and `examples/callgrind_peers.rs`
//! (instruction counts), so all three measure the same code. Each `*_switch` / `*_spawn`
//! function does the one-time setup and returns one iteration as a closure; the `*_elapsed`
//! functions time `iterations` of them, for the report.
//!
//! context 3.0.0 has no riscv64 assembly, so its loops exist only off riscv64.
//!
//! ```
//! use microthread_report::peers::{coroutines, time};
//! // Not under ci/valgrind.sh: corosensei's stack switches are not announced to valgrind.
//! # if std::env::var_os("MICROTHREAD_UNDER_VALGRIND").is_none() {
//! let elapsed = time(coroutines::corosensei_switch(), 100);
//! assert!(elapsed > std::time::Duration::ZERO);
//! # }
//! ```

use std::hint::black_box;
use std::time::Duration;

use super::time;

/// Resume a microthread coroutine that suspends straight back (with or without the FP
/// environment switch).
pub fn microthread_switch(preserve_fp_env: bool) -> impl FnMut() {
    let mut co: microthread::Coroutine<(), (), ()> = microthread::coroutine::Builder::new()
        .preserve_fp_env(preserve_fp_env)
        .build(|yielder, ()| loop {
            yielder.suspend(());
        })
        .expect("a stack");
    black_box(co.resume(()));
    #[inline(always)]
    move || {
        black_box(co.resume(()));
    }
}

/// How many suspended coroutines the `*_switch_many` loops resume in turn.
pub const MANY: usize = 64;

/// Resume [`MANY`] suspended microthread coroutines in turn, each of which suspends straight
/// back: one round trip per step, a different coroutine (and stack) each time, as a program
/// that drives many generators or connections does.
pub fn microthread_switch_many() -> impl FnMut() {
    let all = (0..MANY).map(|_| {
        microthread::Coroutine::<(), (), ()>::new(|yielder, ()| loop {
            yielder.suspend(());
        })
        .expect("a stack")
    });
    in_turn(all.collect(), |co| {
        black_box(co.resume(()));
    })
}

/// [`microthread_switch_many`] for corosensei (DefaultStack: 1 MiB with a guard page).
pub fn corosensei_switch_many() -> impl FnMut() {
    let all = (0..MANY).map(|_| {
        corosensei::Coroutine::<(), (), ()>::new(|yielder, ()| loop {
            yielder.suspend(());
        })
    });
    in_turn(all.collect(), |co| {
        black_box(co.resume(()));
    })
}

/// Resumes each of `all` once (to its first suspension), then returns the step that resumes
/// the next one in turn.
#[inline(always)]
fn in_turn<T>(mut all: Vec<T>, mut resume: impl FnMut(&mut T)) -> impl FnMut() {
    for co in &mut all {
        resume(co);
    }
    let mut next = 0;
    #[inline(always)]
    move || {
        resume(&mut all[next]);
        next = if next + 1 == all.len() { 0 } else { next + 1 };
    }
}

/// Create a trivial microthread coroutine and run it to completion. The first one maps the
/// stack; later ones take it from the thread's pool.
pub fn microthread_spawn() -> impl FnMut() {
    #[inline(always)]
    fn spawn() {
        let mut co: microthread::Coroutine<(), (), u32> =
            microthread::Coroutine::new(|_, ()| black_box(1)).expect("a stack");
        black_box(co.resume(()));
    }
    spawn();
    spawn
}

/// Resume a corosensei coroutine (DefaultStack: 1 MiB with a guard page) that suspends
/// straight back.
pub fn corosensei_switch() -> impl FnMut() {
    let mut co: corosensei::Coroutine<(), (), ()> =
        corosensei::Coroutine::new(|yielder, ()| loop {
            yielder.suspend(());
        });
    black_box(co.resume(()));
    #[inline(always)]
    move || {
        black_box(co.resume(()));
    }
}

/// Create a trivial corosensei coroutine on a reused stack and run it to completion.
pub fn corosensei_spawn() -> impl FnMut() {
    let mut stack = Some(corosensei::stack::DefaultStack::default());
    #[inline(always)]
    move || {
        let mut co: corosensei::Coroutine<(), (), u32> =
            corosensei::Coroutine::with_stack(stack.take().expect("the stack"), |_, ()| {
                black_box(1)
            });
        black_box(co.resume(()));
        stack = Some(co.into_stack());
    }
}

/// Resume a context (Boost.Context's assembly) that resumes straight back.
#[cfg(not(target_arch = "riscv64"))]
pub fn context_switch() -> impl FnMut() {
    use context::stack::ProtectedFixedSizeStack;
    use context::{Context, Transfer};

    extern "C" fn echo(mut t: Transfer) -> ! {
        loop {
            // SAFETY: `t.context` is the suspended resumer, on this thread.
            t = unsafe { t.context.resume(t.data) };
        }
    }
    let stack = ProtectedFixedSizeStack::default();
    // SAFETY: the closure owns the stack, so it outlives every use of the context; when the
    // closure is dropped, `echo` stays suspended on it forever, holding nothing to drop.
    let first = unsafe { Context::new(&stack, echo).resume(0) };
    let mut ctx = Some(first.context);
    #[inline(always)]
    move || {
        // Moves the stack into the closure: echo runs on it.
        let _stack = &stack;
        let to = ctx.take().expect("echo is suspended");
        // SAFETY: `to` is echo's suspended context, on this thread, its stack alive.
        let t = unsafe { to.resume(black_box(1)) };
        ctx = Some(t.context);
        black_box(t.data);
    }
}

/// Create a context on a reused stack and run it to completion.
#[cfg(not(target_arch = "riscv64"))]
pub fn context_spawn() -> impl FnMut() {
    use context::stack::ProtectedFixedSizeStack;
    use context::{Context, Transfer};

    extern "C" fn finish(t: Transfer) -> ! {
        // SAFETY: `t.context` is the suspended resumer, on this thread. It never resumes us
        // again: this frame is abandoned and the stack reused.
        unsafe { t.context.resume(black_box(t.data) + 1) };
        unreachable!("a finished context was resumed")
    }
    let stack = ProtectedFixedSizeStack::default();
    #[inline(always)]
    move || {
        // SAFETY: the stack outlives the context, and the previous context on it is finished
        // (abandoned), so nothing else uses it.
        let t = unsafe { Context::new(&stack, finish).resume(black_box(1)) };
        black_box(t.data);
    }
}

/// `iterations` round trips of [`corosensei_switch`].
pub fn corosensei_switch_elapsed(iterations: u64) -> Duration {
    time(corosensei_switch(), iterations)
}

/// `iterations` round trips of [`corosensei_switch_many`].
pub fn corosensei_switch_many_elapsed(iterations: u64) -> Duration {
    time(corosensei_switch_many(), iterations)
}

/// `iterations` spawns of [`corosensei_spawn`].
pub fn corosensei_spawn_elapsed(iterations: u64) -> Duration {
    time(corosensei_spawn(), iterations)
}

/// `iterations` round trips of [`context_switch`].
#[cfg(not(target_arch = "riscv64"))]
pub fn context_switch_elapsed(iterations: u64) -> Duration {
    time(context_switch(), iterations)
}

/// `iterations` spawns of [`context_spawn`].
#[cfg(not(target_arch = "riscv64"))]
pub fn context_spawn_elapsed(iterations: u64) -> Duration {
    time(context_spawn(), iterations)
}
