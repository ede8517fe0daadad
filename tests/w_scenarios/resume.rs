//! A hard-interrupted tasklet that is re-inserted resumes with its stack intact (a checksum
//! of its locals, over nested frames) and, with `preserve_fp_env`, with its own FP rounding
//! mode while main runs in other modes (reference §2.7: "it resumes exactly where it was").

use std::hint::black_box;

use microthread::scheduler::{run_with, tick, RunOptions, TaskletBuilder};

use crate::fp_env::{fpmode, DefaultModeOnDrop, Mode, DEFAULT_MODE};

/// What [`work`] computed: a checksum of its integer locals, the bits of an FP sum whose
/// rounding depends on the mode, and how many safe points came back in a mode other than the
/// expected one.
type Outcome = (u64, u64, u32);

const ROUNDS: u64 = 2_000;

/// A recursive computation whose locals (in every frame down to `depth`) live across the
/// safe points at its leaves.
fn work(expect: Mode, depth: u32, safe_point: &dyn Fn()) -> Outcome {
    fn frame(expect: Mode, depth: u32, seed: u64, safe_point: &dyn Fn(), out: &mut Outcome) {
        let mut local = [seed; 8];
        for (k, v) in local.iter_mut().enumerate() {
            *v = v.rotate_left(k as u32 + 1) ^ (k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
        if depth > 0 {
            frame(
                expect,
                depth - 1,
                seed.wrapping_add(depth as u64),
                safe_point,
                out,
            );
        } else {
            let mut x = f64::from_bits(out.1);
            for i in 0..ROUNDS {
                out.0 = out
                    .0
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(i ^ seed);
                // Rounded as the current mode says (the operands are opaque to the compiler).
                x += black_box(1.0f64) / black_box((i + 3) as f64);
                safe_point();
                if fpmode::get() != expect {
                    out.2 += 1;
                }
            }
            out.1 = x.to_bits();
        }
        // The frame's locals after the leaves' safe points: any corruption changes this.
        out.0 = local.iter().fold(out.0, |h, v| h.rotate_left(7) ^ v);
    }
    let mut out: Outcome = (1, 0f64.to_bits(), 0);
    frame(expect, depth, 0x1234_5678, safe_point, &mut out);
    out
}

#[test]
fn a_re_inserted_victim_keeps_its_stack_and_its_rounding_mode() {
    if std::env::var_os("MICROTHREAD_UNDER_VALGRIND").is_some() {
        // Valgrind computes SSE arithmetic in round-to-nearest whatever MXCSR says, so the
        // FP sum cannot show a mode (it failed there: the same bits in every mode).
        eprintln!("skipped under valgrind: it ignores the SSE rounding mode");
        return;
    }
    let _restore = DefaultModeOnDrop;
    // Three non-default modes (every architecture has at least three).
    let victim_mode: Mode = [1; DEFAULT_MODE.len()];
    let main_modes: [Mode; 2] = [[2; DEFAULT_MODE.len()], [3; DEFAULT_MODE.len()]];
    // The outcome the victim must reach: the same work, uninterrupted, in its mode.
    fpmode::set(victim_mode);
    let expected = work(victim_mode, 24, &|| ());
    fpmode::set(DEFAULT_MODE);
    let in_default_mode = work(DEFAULT_MODE, 24, &|| ());
    assert_eq!(expected.2, 0);
    assert_ne!(
        expected.1, in_default_mode.1,
        "the FP sum depends on the rounding mode, so a lost mode is seen"
    );

    let t = TaskletBuilder::new()
        .preserve_fp_env(true)
        .spawn(move || {
            fpmode::set(victim_mode);
            work(victim_mode, 24, &|| tick().unwrap())
        })
        .unwrap();
    let mut interrupts = 0usize;
    loop {
        let main_mode = main_modes[interrupts % 2];
        fpmode::set(main_mode);
        let v = run_with(RunOptions::new().ticks(97)).unwrap();
        assert_eq!(fpmode::get(), main_mode, "main keeps its own mode");
        let Some(v) = v else { break };
        assert_eq!(v, t);
        assert!(v.paused() && v.alive());
        interrupts += 1;
        v.insert().unwrap();
    }
    fpmode::set(DEFAULT_MODE);
    // One tick per round; every run interrupts at the 98th.
    assert_eq!(interrupts as u64, ROUNDS / 98);
    let got = t.result::<Outcome>().expect("the victim finished");
    assert_eq!(
        got.2, 0,
        "safe points at which the victim's rounding mode was lost"
    );
    assert_eq!(got, expected, "its stack and FP results are intact");
}
