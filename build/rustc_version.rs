//! Which language features the compiler building us has, for code that uses one when it can
//! and has a plain fallback (the crate's `rust-version` stays what it is).

use std::env;
use std::process::Command;

/// The minor version of the `rustc` that builds the crate (`RUSTC`, as cargo sets it), or
/// `None` if it cannot be run or its version not read.
pub fn minor() -> Option<u32> {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(rustc).arg("--version").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let version = text.split_whitespace().nth(1)?;
    let mut parts = version.split('.');
    if parts.next()? != "1" {
        return None;
    }
    parts.next()?.parse().ok()
}

/// Emits the cfgs for the features found: `microthread_asm_goto` from Rust 1.87 on (label
/// operands of `asm!`, with `const` operands, stable since 1.82), used by the suspend's fast
/// path on x86_64.
pub fn emit_cfgs() {
    println!("cargo:rustc-check-cfg=cfg(microthread_asm_goto)");
    println!("cargo:rerun-if-env-changed=RUSTC");
    if minor().is_some_and(|m| m >= 87) {
        println!("cargo:rustc-cfg=microthread_asm_goto");
    }
}
