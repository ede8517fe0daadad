//! Which rustc flags ask for hardware control-flow protection that microthread's context
//! switch does not support. Used by `build.rs` (which stops the build with [`refusal`]'s
//! message) and by `tests/build_flags.rs`.
//!
//! - **x86_64 CET shadow stacks** (`-Z cf-protection=return|full`, or the linker's `-z shstk`):
//!   a switch changes stacks without changing shadow stacks and resumes contexts by an
//!   indirect jump, so the first return after a switch would fault (#CP, a bare SIGSEGV).
//!   Indirect-branch tracking (`cf-protection=branch`, `-z ibt`) is refused too: the switch
//!   resumes at return addresses, which are no `endbr64` landing pads.
//! - **aarch64 BTI and pointer authentication** (`-Z branch-protection=bti|pac-ret|...`, or
//!   the linker's `-z force-bti`): the switch resumes with `br` at return addresses, never a
//!   `bti` landing pad, and the assembly neither signs nor authenticates return addresses.
//!
//! Without these flags nothing breaks: `asm/*.S` carry no GNU property notes for SHSTK, IBT
//! or BTI, so the linker leaves the protections off for the whole image.

/// The message that stops the build for these `CARGO_ENCODED_RUSTFLAGS` (flags separated by
/// `0x1f`), or `None` if they ask for no unsupported protection.
pub fn refusal(arch: &str, encoded_rustflags: &str) -> Option<String> {
    let problems = problems(encoded_rustflags);
    if problems.is_empty() {
        return None;
    }
    Some(format!(
        "microthread does not support hardware control-flow protection on {arch}: {}. Its \
         context switch moves between stacks without switching CET shadow stacks and resumes \
         contexts by indirect jumps to return addresses (no `endbr64`/`bti` landing pads, no \
         pointer authentication), so such a build would crash at the first switch. Build \
         microthread without these flags (see the README's design notes).",
        problems.join("; ")
    ))
}

/// One sentence per unsupported protection the flags ask for.
pub fn problems(encoded_rustflags: &str) -> Vec<String> {
    let flags: Vec<&str> = encoded_rustflags
        .split('\x1f')
        .filter(|f| !f.is_empty())
        .collect();
    // The options of `-Zname=value`, `-Z name=value`, `-Cname=value`, `-C name=value` and
    // `--codegen name=value` / `--codegen=name=value`.
    let mut options = Vec::new();
    let mut i = 0;
    while i < flags.len() {
        let flag = flags[i];
        if flag == "-Z" || flag == "-C" || flag == "--codegen" {
            if let Some(next) = flags.get(i + 1) {
                options.push(*next);
                i += 1;
            }
        } else if let Some(rest) = flag
            .strip_prefix("--codegen=")
            .or_else(|| flag.strip_prefix("-Z"))
            .or_else(|| flag.strip_prefix("-C"))
        {
            options.push(rest);
        }
        i += 1;
    }
    let values_of = |name: &str| -> Vec<&str> {
        options
            .iter()
            .filter_map(|o| o.strip_prefix(name)?.strip_prefix('='))
            .collect()
    };
    // Linker words, whether passed as `-Wl,-z,shstk`, `-zshstk` or `-z shstk`.
    let link_args = values_of("link-arg")
        .into_iter()
        .chain(values_of("link-args"))
        .collect::<Vec<_>>()
        .join(" ")
        .replace(',', " ");
    let words: Vec<&str> = link_args.split_whitespace().collect();
    let links_with = |opt: &str| {
        words.windows(2).any(|w| w[0] == "-z" && w[1] == opt)
            || words.iter().any(|w| w.strip_prefix("-z") == Some(opt))
    };
    let mut problems = Vec::new();
    for value in values_of("cf-protection") {
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
    for value in values_of("branch-protection") {
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
    problems
}
