//! Assembles `asm/<target_arch>.S`, the only machine code in the crate, after refusing builds
//! that ask for control-flow protection the switch does not support (`build/control_flow.rs`),
//! and tells the crate which newer language features its compiler has
//! (`build/rustc_version.rs`).

use std::env;
use std::path::Path;

#[path = "build/control_flow.rs"]
mod control_flow;
#[path = "build/rustc_version.rs"]
mod rustc_version;

fn main() {
    // `CARGO_CFG_TARGET_ARCH` is the target's architecture; `cfg!(target_arch)` here would be
    // the host's, which is wrong when cross-compiling.
    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("cargo sets CARGO_CFG_TARGET_ARCH");
    let file = format!("asm/{arch}.S");
    println!("cargo:rerun-if-changed=asm/common.h");
    println!("cargo:rerun-if-changed={file}");
    println!("cargo:rerun-if-changed=build.rs");
    // Control-flow protection the switch would break at run time stops the build here.
    println!("cargo:rerun-if-changed=build/control_flow.rs");
    println!("cargo:rerun-if-changed=build/rustc_version.rs");
    rustc_version::emit_cfgs();
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if let Some(message) = control_flow::refusal(&arch, &flags) {
        panic!("{message}");
    }
    if !Path::new(&file).exists() {
        panic!(
            "microthread does not support target_arch `{arch}`: the context switch for it, \
             `{file}`, does not exist (supported: x86_64, aarch64, riscv64)"
        );
    }
    cc::Build::new()
        .file(&file)
        .include("asm")
        .flag_if_supported("-Wa,--noexecstack")
        .compile("microthread_ctx");
}
