//! # microthread
//!
//! Stackless Python's model in native code: tasklets (microthreads) on their own guard-paged
//! stacks, switched by hand-written assembly on x86_64, aarch64 and riscv64; a per-thread
//! round-robin scheduler with Stackless's ring semantics; and channels with Stackless's
//! decision table, between tasklets of one thread or of several.
//!
//! # Quick start
//!
//! The README's example (keep the two in sync; README.md is compiled as a doc test too):
//!
//! ```
//! use microthread::{scheduler, spawn, Channel};
//!
//! let ch = Channel::<u32>::new();
//! let rx = ch.clone();
//! let consumer = spawn(move || rx.receive().unwrap() * 2)?;
//! scheduler::run().unwrap();      // the consumer blocks in receive; run() returns
//! ch.send(21).unwrap();           // preference -1: the receiver runs at once, then we continue
//! assert_eq!(consumer.result::<u32>(), Some(42));
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Everything is per OS thread, as in Stackless: each thread that uses microthread gets its
//! own scheduler, whose **main tasklet** is the thread's own stack. Errors that Stackless
//! raises at a suspension point arrive as the `Err` of the call the tasklet is suspended in
//! (see [`error`]); a kill is a silent unwind with payload [`TaskletExit`].
//!
//! Ported Stackless programs, each asserting its outcome (`bash ci/examples.sh` runs them all):
//! `examples/pipeline.rs` (producer → filter → consumer, `close()` and iteration),
//! `examples/hot_potato.rs` (a ring of tasklets and channels), `examples/worker_pool.rs`
//! (worker tasklets on several threads) and `examples/kill_on_timeout.rs` (a supervisor
//! that kills late workers; `TaskletExit` handling).
//!
//! | layer | module |
//! |---|---|
//! | the switch primitive | [`context`] |
//! | guard-paged stacks and their pool | [`stack`] |
//! | a safe coroutine on top (and [`coroutine::ScopedCoroutine`], which may borrow) | [`coroutine`] |
//! | tasklets | [`tasklet`] |
//! | the round-robin scheduler, Stackless semantics | [`scheduler`] |
//! | channels, within and across threads | [`channel`] |
//! | pickling: resumable tasklets, worlds, the file format | [`pickle`] |
//! | errors | [`error`] |
//!
//! # The `stackless` module in Rust
//!
//! Every function, class and attribute of the `stackless` module (the specification's
//! §1.1–1.3), with its Rust form, or why it has none. Names without a path are in
//! [`scheduler`]; `t` is a [`Tasklet`], `ch` a [`Channel`]. Two reasons recur: microthread
//! runs **native code on native stacks**, so whatever concerns the Python interpreter (frames,
//! C state, soft switching, tracing) has no counterpart; and **preemption** (issue 9) and
//! **pickling** (issue 10) are not built yet.
//!
//! ## Module functions and attributes (§1.1)
//!
//! | Stackless | microthread |
//! |---|---|
//! | `run()` | [`run()`](scheduler::run): the caller waits on the watchdog stack until the run queue is empty |
//! | `run(timeout, threadblock, soft, ignore_nesting, totaltimeout)` | [`run_with(RunOptions::new().ticks(timeout).soft(soft).total(totaltimeout))`](scheduler::run_with) → `Result<Option<Tasklet>>`: the hard-interrupted tasklet (paused; [`insert`](Tasklet::insert) resumes it where it was) or `None`. Ticks are counted at safe points: [`tick()`](scheduler::tick), [`ticks(n)`](scheduler::ticks) and every scheduler and channel operation. `ignore_nesting`: none needed, every safe point is at nesting level 0. `threadblock` → [`RunOptions::threadblock(true)`](scheduler::RunOptions::threadblock) (with a budget or slice: the run sleeps until another thread makes a tasklet runnable). Beyond Stackless: a wall-clock [`RunOptions::slice(d)`](scheduler::RunOptions::slice), and [`RunOptions::round_robin(true)`](scheduler::RunOptions::round_robin) for the `run(100)` + `insert()` loop of Stackless's autoschedule idiom (examples/autoschedule.rs) |
//! | (no Stackless equivalent: users write a sleep manager) | [`scheduler::sleep`] / [`scheduler::sleep_until`] (and [`Channel::receive_timeout`](channel::Channel::receive_timeout)) |
//! | `schedule()` / `schedule(retval)` | [`schedule()`](scheduler::schedule) / [`schedule_with(v)`](scheduler::schedule_with) (returns the caller's `tempval` as set while it was away, else `v`) |
//! | `schedule_remove()` / `schedule_remove(retval)` | [`schedule_remove()`](scheduler::schedule_remove) / [`schedule_remove_with(v)`](scheduler::schedule_remove_with) |
//! | `getcurrent()`, `current` | [`current()`](scheduler::current) |
//! | `getmain()`, `main` | [`main()`](scheduler::main) |
//! | `getruncount()`, `runcount` | [`runcount()`](scheduler::runcount) (the current tasklet included; main not while it waits in `run()`) |
//! | `getcurrentid()` | `current().id()` ([`Tasklet::id`]): ids are unique in the process; a main tasklet's id is not its thread's id ([`Tasklet::thread_id`] gives that) |
//! | `get_thread_info(tid)` | for the calling thread `(main(), current(), runcount())`; none for another thread: a thread's scheduler is touched only by that thread (use a [`RemoteTasklet`] or a channel) |
//! | `getthreads()`, `threads` | none: std keeps no list of threads; keep your [`JoinHandle`](scheduler::JoinHandle)s from [`spawn_thread`] |
//! | `switch_trap(change)` | [`switch_trap(change)`](scheduler::switch_trap) ([`Error::SwitchTrap`]) |
//! | `set_schedule_callback(cb)` / `get_schedule_callback()` | [`set_schedule_callback`](scheduler::set_schedule_callback) / [`schedule_callback()`](scheduler::schedule_callback) (per thread; a scheduling call inside it fails with [`Error::RecursiveCallback`]) |
//! | `set_channel_callback(cb)` / `get_channel_callback()` | [`channel::set_channel_callback`] / [`channel::channel_callback()`](channel::channel_callback) (per thread; gets a [`channel::ChannelEvent`]; a channel operation inside it fails with [`Error::RecursiveChannelCallback`]) |
//! | `set_error_handler(h)` | [`set_error_handler`](scheduler::set_error_handler) / [`error_handler()`](scheduler::error_handler) (type [`ErrorHandler`](scheduler::ErrorHandler); per thread, called in the dying tasklet with the panic payload) |
//! | `enable_softswitch(flag)` | none: every tasklet has its own native stack, so there is no soft switching to turn off |
//! | `pickle_flags()`, `pickle_flags_default()`, `pickle_with_tracing_state`, `PICKLEFLAGS_*` | none: native stacks are never serialised; see [`pickle`] for what is (resumable tasklets replayed from their checkpoint) |
//! | `getdebug()`, `debug` | `cfg!(debug_assertions)` |
//! | `getuncollectables()`, `uncollectables` | none: nothing is uncollectable. The scheduler keeps every live tasklet until it ends, and kills those left when their thread ends, destructors run (see [`scheduler`], "End of a thread") |
//! | `test_outside()`, `test_cframe_nr(n)`, `_test_nostacklesscall(f)` | none: they create or count interpreter C frames; every tasklet here is "C state" (a native stack) and may switch at any depth |
//! | `with atomic():` | [`atomic(f)`](scheduler::atomic) / [`AtomicGuard`](scheduler::AtomicGuard): no watchdog interrupt inside; one that comes due there is deferred (Stackless's `pending_irq`, internal: the budget restarts) and fires at the first safe point after the section (`set_atomic(false)`); one deferred by a callback or a `switch_trap` fires when the restarted budget runs out, as in Stackless |
//! | `bomb(type, value, tb)` | an [`Error`] value: [`Error::Thrown`] carries the payload that [`Tasklet::throw`] or [`Channel::send_throw`] delivers; a pending one waits inside the scheduler until the tasklet resumes |
//! | `cframe` | none: no interpreter frames |
//! | `cstack`, `t.cstate` | none: a tasklet's stack is a guard-paged [`stack::Stack`] the scheduler owns; it is not handed out |
//! | `TaskletExit` | [`TaskletExit`], the payload of a kill's silent unwind; `catch_unwind` sees it, `resume_unwind` lets it go on |
//! | uncaught exception of a tasklet, to main or the `run()` caller | [`Error::Panicked`] from the call main or the innermost `run()` caller is suspended in (unless the error handler takes it) |
//! | `stackless.stackless` (the module itself) | the crate |
//!
//! ## Tasklets (§1.2)
//!
//! | Stackless | microthread |
//! |---|---|
//! | `tasklet(f)` (bound, not alive) | [`Tasklet::bound(f)`](Tasklet::bound) / [`TaskletBuilder::bind(f)`](scheduler::TaskletBuilder::bind) |
//! | `t.setup(*args)`, `t(*args)` | [`t.setup()`](Tasklet::setup): alive and at the end of the run queue; the closure captures the arguments. [`Error::TaskletAlive`], [`Error::NotBound`] |
//! | `tasklet(f)(*args)` | [`spawn(move \|\| f(args))`](spawn) (also [`TaskletBuilder::spawn`](scheduler::TaskletBuilder::spawn)) |
//! | `t.bind(f, args)` (alive, paused) | [`Tasklet::new(move \|\| f(args))`](Tasklet::new) (also [`TaskletBuilder::create`](scheduler::TaskletBuilder::create)) |
//! | `t.bind(None)` (unbind) | [`t.unbind()`](Tasklet::unbind): [`Error::BindCurrent`], [`Error::BindScheduled`], [`Error::HasCState`] (it has started: its stack holds frames), [`Error::UnbindMain`] |
//! | `t.bind(g)` (rebind to another function) | make a new tasklet: handles are cheap, and a Rust closure's type is fixed |
//! | `t.insert()` / `t.remove()` | [`Tasklet::insert`] / [`Tasklet::remove`] |
//! | `t.run()` / `t.switch()` | [`Tasklet::run`] / [`Tasklet::switch`] |
//! | `t.throw(exc)` / `t.throw(exc, pending=True)` | [`Tasklet::throw`] / [`Tasklet::throw_pending`] (`Err` of the target's suspended call) |
//! | `t.raise_exception(cls, *args)` | `t.throw(Error::Thrown(Box::new(value)))` ([`Error::Thrown`]) |
//! | `t.kill()` / `t.kill(pending=True)` | [`Tasklet::kill`] / [`Tasklet::kill_pending`] |
//! | `main.kill()` (raises `TaskletExit` in main) | main unwinds with [`TaskletExit`] from its suspended call; a line on stderr says so, since uncaught it ends the thread |
//! | `t.set_atomic(flag)`, `t.atomic` | [`Tasklet::set_atomic`], [`Tasklet::atomic`]; `set_atomic(false)` on the current tasklet with an interrupt pending (`pending_irq`) lets it fire at the next safe point ([`tick`](scheduler::tick)) |
//! | `t.set_ignore_nesting(flag)`, `t.ignore_nesting` | none: preemption happens only at safe points ([`tick`](scheduler::tick), scheduler and channel operations), which are all at nesting level 0, so there is no nesting level to ignore |
//! | `t.bind_thread(tid)` | none: a tasklet never moves to another thread (`Tasklet` is `!Send`, so thread-locals stay sound) |
//! | `t.__reduce__()` / `pickle.dumps(t)`, `pickle.loads` / `t.__setstate__()`, `t.restorable` | [`World::pickle`](pickle::World::pickle) / [`World::image`](pickle::World::image), [`World::restore`](pickle::World::restore) (or [`pickle::inspect`]), [`World::restorable`](pickle::World::restorable): a tasklet and the channels it uses are pickled together as a world; only resumable tasklets (registered kinds, bodies over [`pickle::Cx`]) can run again (see [`pickle`]) |
//! | `t.__del__` | the `Drop` of the last [`Tasklet`] handle ends a tasklet that never ran and is paused, if no [`RemoteTasklet`] refers to it (its closure is dropped); any other stays alive until it ends, or its thread ends and kills it with its destructors run |
//! | `t.set_context(ctx)`, `t.context_run(f)`, `t.context_id` | none: Rust has no `contextvars`; `thread_local!` values are per thread, so keep per-tasklet state in the closure's captures |
//! | `t.alive`, `t.paused`, `t.blocked`, `t.scheduled` | [`Tasklet::alive`], [`Tasklet::paused`], [`Tasklet::blocked`], [`Tasklet::scheduled`] |
//! | `t.block_trap` | [`Tasklet::block_trap`] / [`Tasklet::set_block_trap`] ([`Error::BlockTrap`]) |
//! | `t.is_main`, `t.is_current` | [`Tasklet::is_main`], [`Tasklet::is_current`] |
//! | `t.thread_id` | [`Tasklet::thread_id`], a [`std::thread::ThreadId`]; `None` (Stackless -1) once its thread has ended |
//! | `t.next`, `t.prev` | [`Tasklet::next`], [`Tasklet::prev`]: the run-queue neighbours of a scheduled tasklet |
//! | `t.tempval` | [`Tasklet::set_tempval`] / [`Tasklet::take_tempval`] (boxed `Any`); channel values go straight from sender to receiver, not through it |
//! | `t.recursion_depth`, `t.nesting_level` | none: no interpreter recursion to count |
//! | `t.frame` | none: no interpreter frames (a backtrace taken inside the tasklet shows its native stack) |
//! | `t.trace_function`, `t.profile_function` | none: no interpreter hooks; the schedule callback sees every switch |
//! | `t._channel` | none: [`Tasklet::blocked`] says whether it waits; [`Channel::queue_tasklets`] lists who waits on a channel |
//! | the return value (discarded in Stackless) | kept: [`Tasklet::result`] |
//! | operations on another thread's tasklet | [`RemoteTasklet`] ([`Tasklet::remote`]): `alive`, `scheduled`, `paused`, `blocked`, `thread_id`, [`insert`](RemoteTasklet::insert), [`remove`](RemoteTasklet::remove), [`run`](RemoteTasklet::run), [`kill`](RemoteTasklet::kill), [`throw`](RemoteTasklet::throw); [`switch`](RemoteTasklet::switch) fails with [`Error::SwitchOtherThread`] |
//! | a later bomb replaces an earlier `tempval` bomb | a later error replaces an earlier pending error; a pending kill is never replaced |
//! | `finally:` blocks of a killed tasklet may use channels | a destructor of an unwinding tasklet may complete a rendezvous (without the switch), but may not block or switch: [`Error::Unwinding`] |
//!
//! ## Channels (§1.3)
//!
//! | Stackless | microthread |
//! |---|---|
//! | `stackless.channel()` | [`Channel::new()`](Channel::new) (`Send + Sync`: clone it, also into other threads); [`channel::LocalChannel`] for values that are not `Send` (it is `!Send` itself) |
//! | `ch.send(v)` / `ch.receive()` | [`Channel::send`] (a failure gives the value back: [`SendError`]) / [`Channel::receive`] |
//! | `ch.send_exception(cls, *args)`, `ch.send_throw(exc)` | [`Channel::send_throw(payload)`](Channel::send_throw): the receiver's `receive` returns `Err(Error::Thrown(payload))` |
//! | `ch.send_sequence(seq)` | [`Channel::send_sequence`] (the count sent) |
//! | `for v in ch:` | [`for v in ch.iter()`](Channel::iter), each item a `Result`; ends when the channel is closing and no sender waits |
//! | `ch.close()`, `ch.open()` | [`Channel::close`], [`Channel::open`] (close wakes nobody, as in Stackless) |
//! | `ch.closing`, `ch.closed` | [`Channel::closing`], [`Channel::closed`] |
//! | `ch.balance` | [`Channel::balance`] |
//! | `ch.queue` | [`Channel::queue`] (ids, head first) / [`Channel::queue_tasklets`] (handles) |
//! | `ch.preference` | [`Channel::preference`] / [`Channel::set_preference`] (clamped by sign) |
//! | `ch.schedule_all` | [`Channel::schedule_all`] / [`Channel::set_schedule_all`] |
//! | `ch.__reduce__()`, `ch.__setstate__()` | part of a world ([`World::channel`](pickle::World::channel)): its queue in FIFO order with the values in flight, preference, `schedule_all` and closing come back |
//!
//! Who runs after a rendezvous, by preference, is the table in the [`channel`] module docs.
//!
//! ## Supported targets
//!
//! | target | switch | guard | FP environment option saves |
//! |---|---|---|---|
//! | `x86_64-unknown-linux-gnu` | `asm/x86_64.S` | 1 page | MXCSR, x87 control word |
//! | `aarch64-unknown-linux-gnu` | `asm/aarch64.S` | 1 page | FPCR |
//! | `riscv64gc-unknown-linux-gnu` | `asm/riscv64.S` | 1 MiB | `frm` |
// The `asan` feature (src/sanitizer.rs) checks that the sanitizer is on and keeps one shim
// uninstrumented; it only builds on nightly anyway.
#![cfg_attr(feature = "asan", feature(cfg_sanitize, sanitize))]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(
    missing_docs,
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc
)]

mod arch;
pub mod channel;
pub mod context;
pub mod coroutine;
pub mod error;
#[cfg(feature = "capi")]
pub mod ffi;
mod id;
mod overflow;
pub mod panic_hook;
pub mod pickle;
mod sanitizer;
pub mod scheduler;
pub mod stack;
pub mod tasklet;
mod valgrind;

pub use channel::{Channel, SendError};
pub use coroutine::{Coroutine, CoroutineResult, Yielder};
pub use error::{Error, Result, TaskletExit};
pub use scheduler::{run, schedule, spawn, spawn_thread, RemoteTasklet};
pub use tasklet::Tasklet;

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
