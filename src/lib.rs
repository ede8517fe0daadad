//! # microthread
//!
//! Stackless Python's model in native code: tasklets (microthreads) on their own guard-paged
//! stacks, switched by hand-written assembly on x86_64, aarch64 and riscv64.
//!
//! | layer | module |
//! |---|---|
//! | the switch primitive | [`context`] |
//! | guard-paged stacks and their pool | [`stack`] |
//! | a safe coroutine on top | [`coroutine`] |
//! | tasklets | [`tasklet`] |
//! | the round-robin scheduler, Stackless semantics | [`scheduler`] |
//! | channels, within and across threads | [`channel`] |
//! | errors | [`error`] |
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
mod id;
mod overflow;
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
