//! The C API (cargo feature `capi`): opaque handles and `mt_*` functions for C and C++
//! programs that embed the runtime. `include/microthread.h` is generated from this module by
//! cbindgen (`bash ci/c-header.sh` regenerates it; `--check` fails if the committed header is
//! stale), and `cargo rustc --release --lib --features capi --crate-type staticlib,cdylib`
//! builds `libmicrothread.a` and `libmicrothread.so` (`bash ci/c-tests.sh` does that, then
//! builds and runs the C tests in `tests/c/`). docs/using-from-c.md is the guide.
//!
//! | concept | file | functions |
//! |---|---|---|
//! | error codes, `mt_strerror` | [`error`] | `MT_OK`, `MT_E*`, [`mt_strerror`] |
//! | tasklets and the scheduler | [`tasklet`] | [`mt_spawn`], [`mt_run`], [`mt_schedule`], [`mt_schedule_remove`], [`mt_sleep_ns`], [`mt_current_id`], [`mt_main_id`], [`mt_kill`], `mt_tasklet_*` |
//! | channels of `void *` or `int64_t` | [`channel`] | `mt_channel_*` |
//! | threads | [`thread`] | [`mt_init_thread`] |
//! | the tasklet dump (`scheduler::dump`) | [`dump`] | [`mt_dump`] |
//!
//! # Rules at the boundary
//! - **No unwind crosses it.** Every entry point runs its body under `catch_unwind`: a Rust
//!   panic inside it (a bug, or a panic in a callback) becomes [`MT_EPANIC`]. A C function
//!   run as a tasklet must not unwind either (no C++ exception may leave it).
//! - **A kill of a tasklet that runs C code.** A kill unwinds the target from the call it is
//!   suspended in. In a C tasklet that call is an `mt_*` function (a receive, a schedule,
//!   ...): it catches the unwind at its own frame, before any C frame, and returns
//!   [`MT_EKILLED`]. The C function is expected to clean up and return; until it does, every
//!   further `mt_*` call of that tasklet that would switch or block returns `MT_EKILLED` at
//!   once (the kill is sticky), so a killed C tasklet never blocks again. A main tasklet that
//!   is killed gets `MT_EKILLED` once (it is the thread's own stack: the C program decides).
//!   A Rust tasklet (not from [`mt_spawn`]) killed inside an `mt_*` call made by C code it
//!   called is marked the same way, but only its thread's end clears the mark.
//! - **Thread-bound handles.** A tasklet handle (`mt_tasklet *`) belongs to the thread that
//!   made it: every function refuses it on another thread with [`MT_EOTHERTHREAD`] and
//!   changes nothing. Channel handles (`mt_channel *`) may be used from any thread.
//! - **Null pointers** where a handle or an out-pointer is expected give [`MT_ENULL`].

pub mod channel;
pub mod dump;
pub mod error;
mod guard;
pub mod tasklet;
pub mod thread;

pub use channel::*;
pub use dump::*;
pub use error::*;
pub use tasklet::*;
pub use thread::*;
