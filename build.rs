//! Assembles `asm/<target_arch>.S`, the only machine code in the crate.

use std::env;
use std::path::Path;

fn main() {
    // `CARGO_CFG_TARGET_ARCH` is the target's architecture; `cfg!(target_arch)` here would be
    // the host's, which is wrong when cross-compiling.
    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("cargo sets CARGO_CFG_TARGET_ARCH");
    let file = format!("asm/{arch}.S");
    println!("cargo:rerun-if-changed=asm/common.h");
    println!("cargo:rerun-if-changed={file}");
    println!("cargo:rerun-if-changed=build.rs");
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
