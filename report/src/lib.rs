//! The peers that the switch-latency report (`microthread`, `cargo run --release` at the
//! repository root) measures beside microthread's rows, as a library so that the report, the
//! criterion benchmark (`benches/peers.rs`) and the callgrind loop runner
//! (`examples/callgrind_peers.rs`) all run the same loops.
//!
//! The peers are dependencies of this package only: users of the `microthread` library never
//! compile them.

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod peers;
