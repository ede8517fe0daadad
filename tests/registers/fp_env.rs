//! The FP rounding mode with `preserve_fp_env`: reading and setting it per architecture, and
//! the coroutine scripts whose two sides each keep their own mode.

use std::arch::asm;
use std::cell::RefCell;
use std::rc::Rc;

use microthread::coroutine::{Builder, Coroutine, CoroutineResult};
use proptest::prelude::*;

/// The FP rounding mode, per architecture, read and written with inline asm. A `Mode` holds
/// one rounding-mode field per control register; 0 is the default (round to nearest).
#[cfg(target_arch = "x86_64")]
pub(crate) mod fpmode {
    use super::*;

    /// [MXCSR.RC (bits 13–14), x87 control word RC (bits 10–11)].
    pub type Mode = [u32; 2];
    /// Non-default values of each field: 1..=CHOICES.
    pub const CHOICES: u32 = 3;

    pub fn get() -> Mode {
        let mut mxcsr: u32 = 0;
        let mut cw: u16 = 0;
        // SAFETY: stores the two control registers into the two locals.
        unsafe {
            asm!(
                "stmxcsr [{m}]",
                "fnstcw [{c}]",
                m = in(reg) &mut mxcsr,
                c = in(reg) &mut cw,
                options(nostack, preserves_flags),
            );
        }
        [(mxcsr >> 13) & 3, u32::from((cw >> 10) & 3)]
    }

    pub fn set(mode: Mode) {
        let mut mxcsr: u32 = 0;
        let mut cw: u16 = 0;
        // SAFETY: read-modify-write of the two control registers, rounding fields only.
        unsafe {
            asm!(
                "stmxcsr [{m}]",
                "fnstcw [{c}]",
                m = in(reg) &mut mxcsr,
                c = in(reg) &mut cw,
                options(nostack, preserves_flags),
            );
            mxcsr = (mxcsr & !(3 << 13)) | (mode[0] << 13);
            cw = (cw & !(3 << 10)) | ((mode[1] as u16) << 10);
            asm!(
                "ldmxcsr [{m}]",
                "fldcw [{c}]",
                m = in(reg) &mxcsr,
                c = in(reg) &cw,
                options(nostack, preserves_flags),
            );
        }
    }
}

#[cfg(target_arch = "aarch64")]
pub(crate) mod fpmode {
    use super::*;

    /// [FPCR.RMode (bits 22–23)].
    pub type Mode = [u32; 1];
    pub const CHOICES: u32 = 3;

    pub fn get() -> Mode {
        let fpcr: u64;
        // SAFETY: reads FPCR.
        unsafe { asm!("mrs {0}, fpcr", out(reg) fpcr, options(nomem, nostack, preserves_flags)) };
        [((fpcr >> 22) & 3) as u32]
    }

    pub fn set(mode: Mode) {
        // SAFETY: read-modify-write of FPCR, RMode field only.
        unsafe {
            asm!(
                "mrs {t}, fpcr",
                "bic {t}, {t}, #0xc00000",
                "orr {t}, {t}, {m}",
                "msr fpcr, {t}",
                t = out(reg) _,
                m = in(reg) u64::from(mode[0]) << 22,
                options(nomem, nostack, preserves_flags),
            );
        }
    }
}

#[cfg(target_arch = "riscv64")]
pub(crate) mod fpmode {
    use super::*;

    /// [frm]: 0 RNE, 1 RTZ, 2 RDN, 3 RUP, 4 RMM.
    pub type Mode = [u32; 1];
    pub const CHOICES: u32 = 4;

    pub fn get() -> Mode {
        let frm: u64;
        // SAFETY: reads frm.
        unsafe { asm!("frrm {0}", out(reg) frm, options(nomem, nostack, preserves_flags)) };
        [frm as u32]
    }

    pub fn set(mode: Mode) {
        // SAFETY: writes frm.
        unsafe {
            asm!("fsrm {0}", in(reg) u64::from(mode[0]), options(nomem, nostack, preserves_flags))
        };
    }
}

pub(crate) use fpmode::Mode;

pub(crate) const DEFAULT_MODE: Mode = [0; std::mem::size_of::<Mode>() / 4];

/// Puts the default rounding mode back when dropped, even if the test fails.
pub(crate) struct DefaultModeOnDrop;
impl Drop for DefaultModeOnDrop {
    fn drop(&mut self) {
        fpmode::set(DEFAULT_MODE);
    }
}

/// A non-default mode, each field different from the same field of every mode in `avoid`
/// whenever there is such a value; `pick` chooses among the candidates.
fn mode_avoiding(avoid: &[Mode], pick: &[u32]) -> Mode {
    std::array::from_fn(|field| {
        let candidates: Vec<u32> = (1..=fpmode::CHOICES)
            .filter(|v| avoid.iter().all(|m| m[field] != *v))
            .collect();
        let candidates = if candidates.is_empty() {
            (1..=fpmode::CHOICES)
                .filter(|&v| v != avoid[0][field])
                .collect()
        } else {
            candidates
        };
        candidates[pick[field] as usize % candidates.len()]
    })
}

/// Main's modes (one per resume) and the coroutine's (one per suspension); each coroutine
/// mode differs from the main modes around it, so a mode leaking either way is seen.
pub(crate) fn mode_script() -> impl Strategy<Value = (Vec<Mode>, Vec<Mode>)> {
    let field = 0..fpmode::CHOICES;
    let mode = proptest::collection::vec(field, DEFAULT_MODE.len());
    (1usize..=4).prop_flat_map(move |rounds| {
        (
            proptest::collection::vec(mode.clone(), rounds + 1),
            proptest::collection::vec(mode.clone(), rounds),
        )
            .prop_map(|(main_picks, co_picks)| {
                let main: Vec<Mode> = main_picks
                    .iter()
                    .map(|p| std::array::from_fn(|f| 1 + p[f]))
                    .collect();
                let co = co_picks
                    .iter()
                    .enumerate()
                    .map(|(k, p)| mode_avoiding(&[main[k], main[k + 1]], p))
                    .collect();
                (main, co)
            })
    })
}

/// What the coroutine saw: its mode on entry, then (set, observed after the suspend) pairs.
#[derive(Default)]
struct ModeLog {
    on_entry: Option<Mode>,
    rounds: Vec<(Mode, Mode)>,
}

pub(crate) fn fp_env_round_trips(main_modes: Vec<Mode>, co_modes: Vec<Mode>) {
    let _restore = DefaultModeOnDrop;
    let rounds = co_modes.len();
    let log: Rc<RefCell<ModeLog>> = Rc::default();
    let co_log = log.clone();
    let mut co: Coroutine<(), (), ()> = Builder::new()
        .preserve_fp_env(true)
        .build(move |y, ()| {
            co_log.borrow_mut().on_entry = Some(fpmode::get());
            for mode in co_modes {
                fpmode::set(mode);
                y.suspend(());
                let got = fpmode::get();
                co_log.borrow_mut().rounds.push((mode, got));
            }
            // Whatever we leave behind must not reach main: its own mode comes back.
            fpmode::set([fpmode::CHOICES; DEFAULT_MODE.len()]);
        })
        .unwrap();
    let mut failures = Vec::new();
    for (round, &mode) in main_modes.iter().enumerate() {
        fpmode::set(mode);
        let r = co.resume(());
        let got = fpmode::get();
        if got != mode {
            failures.push(format!(
                "main, across resume #{round}: set {mode:?}, got {got:?}"
            ));
        }
        assert_eq!(r == CoroutineResult::Return(()), round == rounds);
    }
    fpmode::set(DEFAULT_MODE);
    let log = log.borrow();
    assert_eq!(log.rounds.len(), rounds);
    let on_entry = log.on_entry.expect("the coroutine ran");
    if on_entry != DEFAULT_MODE {
        failures.push(format!(
            "coroutine started in {on_entry:?} (resumer had {:?}), not the default",
            main_modes[0]
        ));
    }
    for (round, (set, got)) in log.rounds.iter().enumerate() {
        if set != got {
            failures.push(format!(
                "coroutine, across suspend #{round}: set {set:?}, got {got:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "FP environment not preserved:\n{}",
        failures.join("\n")
    );
}
