//! The build refuses hardware control-flow protection that the context switch would break
//! (CET shadow stacks and IBT on x86_64, BTI and pointer authentication on aarch64): the
//! decision of `build.rs`, on the flags in every spelling rustc accepts. (A real build with
//! such flags needs a nightly toolchain for `-Z`; checked by hand, see the README.)

#[path = "../build/control_flow.rs"]
mod control_flow;

use control_flow::{problems, refusal};

/// Flags as cargo encodes them for a build script: separated by 0x1f.
fn encoded(flags: &[&str]) -> String {
    flags.join("\x1f")
}

#[test]
fn cet_is_refused_in_every_spelling() {
    for flags in [
        &["-Zcf-protection=full"][..],
        &["-Z", "cf-protection=return"],
        &["-Zcf-protection=branch"],
        &["-C", "link-arg=-Wl,-z,shstk"],
        &["-Clink-args=-z ibt"],
        &["-Clink-arg=-zshstk"],
        &["--codegen", "link-arg=-Wl,-z,ibt"],
    ] {
        assert_eq!(problems(&encoded(flags)).len(), 1, "{flags:?}");
    }
    let message = refusal("x86_64", &encoded(&["-Zcf-protection=full"])).unwrap();
    assert!(message.contains("`-Z cf-protection=full`"), "{message}");
    assert!(message.contains("shadow stacks"), "{message}");
}

#[test]
fn bti_and_pointer_authentication_are_refused() {
    for flags in [
        &["-Zbranch-protection=bti"][..],
        &["-Z", "branch-protection=pac-ret,leaf"],
        &["-Zbranch-protection=bti,pac-ret"],
        &["-Clink-arg=-Wl,-z,force-bti"],
    ] {
        assert_eq!(problems(&encoded(flags)).len(), 1, "{flags:?}");
    }
    let message = refusal("aarch64", &encoded(&["-Zbranch-protection=bti"])).unwrap();
    assert!(message.contains("on aarch64"), "{message}");
    assert!(message.contains("`-Z branch-protection=bti`"), "{message}");
}

#[test]
fn other_flags_and_explicit_none_build() {
    for flags in [
        &[][..],
        &["-Copt-level=3", "-Ctarget-cpu=native"],
        &["-Zcf-protection=none"],
        &["-Z", "branch-protection=none"],
        &["-Clink-arg=-Wl,-z,now", "-C", "link-args=-z relro"],
        &["-Ctarget-feature=+bti"],
    ] {
        assert_eq!(refusal("x86_64", &encoded(flags)), None, "{flags:?}");
    }
}
