//! Captures what `--json` says about the build: the compiler's version (`$RUSTC --version`)
//! as `MICROTHREAD_REPORT_RUSTC`, and the commit (`git rev-parse HEAD`, "unknown" outside a
//! git checkout) as `MICROTHREAD_REPORT_COMMIT`. Reruns when HEAD moves: when `.git/HEAD`
//! changes (a checkout) or the branch it names does (a commit), loose or packed.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The trimmed stdout of a successful command, or `None`.
fn output(command: &mut Command) -> Option<String> {
    let out = command.output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    output(Command::new("git").arg("-C").arg(dir).args(args))
}

/// Asks Cargo to rerun this script when `path` changes; a path that does not exist is left
/// out (Cargo would rerun on every build).
fn watch(path: &Path) {
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let version = output(Command::new(rustc).arg("--version")).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=MICROTHREAD_REPORT_RUSTC={version}");

    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by Cargo"));
    let commit = git(&dir, &["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=MICROTHREAD_REPORT_COMMIT={commit}");

    // In a worktree the HEAD lives in its own git dir, the branches in the common one.
    let absolute = |p: String| {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            p
        } else {
            dir.join(p)
        }
    };
    if let Some(git_dir) = git(&dir, &["rev-parse", "--git-dir"]).map(absolute) {
        watch(&git_dir.join("HEAD"));
        let common = git(&dir, &["rev-parse", "--git-common-dir"])
            .map(absolute)
            .unwrap_or_else(|| git_dir.clone());
        watch(&common.join("packed-refs"));
        if let Some(branch) = git(&dir, &["symbolic-ref", "-q", "HEAD"]) {
            watch(&common.join(branch));
        }
    }
}
