//! Assembles `asm/<target_arch>.S`, the only machine code in the crate, after refusing builds
//! that ask for control-flow protection the switch does not support (see
//! [`refuse_unsupported_control_flow_protection`]).

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
    refuse_unsupported_control_flow_protection(&arch);
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

/// Stops the build with a message if the flags ask for hardware control-flow protection that
/// the context switch would break at run time:
///
/// - **x86_64 CET shadow stacks** (`-Z cf-protection=return|full`, or the linker's `-z shstk`):
///   a switch changes stacks without changing shadow stacks and resumes contexts by an
///   indirect jump, so the first return after a switch would fault (#CP, a bare SIGSEGV).
///   Indirect-branch tracking (`cf-protection=branch`, `-z ibt`) is refused too: the switch
///   resumes at return addresses, which are no `endbr64` landing pads.
/// - **aarch64 BTI and pointer authentication** (`-Z branch-protection=bti|pac-ret|...`, or
///   the linker's `-z force-bti`): the switch resumes with `br` at return addresses, never a
///   `bti` landing pad, and the assembly neither signs nor authenticates return addresses.
///
/// Without these flags nothing breaks: `asm/*.S` carry no GNU property notes for SHSTK, IBT
/// or BTI, so the linker leaves the protections off for the whole image.
fn refuse_unsupported_control_flow_protection(arch: &str) {
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let flags: Vec<&str> = flags.split('\x1f').filter(|f| !f.is_empty()).collect();
    // `-Zname=value`, `-Z name=value` and `-C link-arg(s)=...` in every spelling rustc takes.
    let mut options = Vec::new();
    let mut i = 0;
    while i < flags.len() {
        let flag = flags[i];
        if flag == "-Z" || flag == "-C" {
            if let Some(next) = flags.get(i + 1) {
                options.push(next.to_string());
                i += 1;
            }
        } else if let Some(rest) = flag.strip_prefix("-Z").or_else(|| flag.strip_prefix("-C")) {
            options.push(rest.to_string());
        } else if let Some(rest) = flag.strip_prefix("--codegen=") {
            options.push(rest.to_string());
        }
        i += 1;
    }
    let value_of = |name: &str| -> Vec<String> {
        options
            .iter()
            .filter_map(|o| o.strip_prefix(name)?.strip_prefix('=').map(str::to_string))
            .collect()
    };
    let link_args: String = value_of("link-arg")
        .into_iter()
        .chain(value_of("link-args"))
        .collect::<Vec<_>>()
        .join(" ")
        .replace(',', " ");
    let link_words: Vec<&str> = link_args.split_whitespace().collect();
    let links_with = |opt: &str| {
        link_words.windows(2).any(|w| w[0] == "-z" && w[1] == opt)
            || link_words.contains(&format!("-z{opt}").as_str())
    };
    let mut problems = Vec::new();
    for value in value_of("cf-protection") {
        if value != "none" {
            problems.push(format!(
                "`-Z cf-protection={value}` asks for Intel CET (shadow stacks and/or indirect \
                 branch tracking)"
            ));
        }
    }
    for opt in ["shstk", "ibt"] {
        if links_with(opt) {
            problems.push(format!(
                "the linker option `-z {opt}` marks the image for Intel CET"
            ));
        }
    }
    for value in value_of("branch-protection") {
        if value != "none" {
            problems.push(format!(
                "`-Z branch-protection={value}` asks for aarch64 BTI and/or pointer \
                 authentication"
            ));
        }
    }
    if links_with("force-bti") {
        problems.push("the linker option `-z force-bti` marks the image for aarch64 BTI".into());
    }
    if !problems.is_empty() {
        panic!(
            "microthread does not support hardware control-flow protection on {arch}: {}. \
             Its context switch moves between stacks without switching CET shadow stacks and \
             resumes contexts by indirect jumps to return addresses (no `endbr64`/`bti` \
             landing pads, no pointer authentication), so such a build would crash at the \
             first switch. Build microthread without these flags (see README, design notes).",
            problems.join("; ")
        );
    }
}
