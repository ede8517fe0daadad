//! The owner's own looks at the clock while a time slice is active.
//!
//! The slice timer (see `time_slice`) is one thread that sleeps until a deadline and then
//! lowers the owner's watermark; how late it wakes is up to the OS, and on a busy or
//! virtualised machine a sleeping thread can wake a few hundred microseconds late, which
//! would stretch a 1 ms slice by as much. So the owner also looks at the clock itself, from
//! its safe points: every `every` ticks its watermark brings it to the interrupt path, which
//! reads the clock (about 20 ns) and, if the deadline has passed, marks the slice fired
//! exactly as the timer does. `every` follows the rate at which the running code ticks, so
//! that looks come about [`look_interval_ns`] apart (at most 20 µs) whatever that rate is,
//! and the last one before the deadline lands on it. That costs one clock read per interval
//! (0.1 % of a core at 20 µs) and bounds the overrun by the interval plus the time between
//! two ticks, with no thread to wake.
//!
//! The timer stays: it is what fires the slice of code whose ticking slows down after a look
//! planned for a faster rate (the next look would then come late), and its fire is what the
//! owner's own look races with; both only ever turn an armed deadline that has passed into
//! `FIRED`, by compare-and-swap, so whichever comes second finds nothing to do.

use std::cell::Cell;
use std::sync::atomic::Ordering;

use super::time_slice::{now_ns, SliceFlags, DISARMED, FIRED};

/// Ticks to the first look after a watchdog is installed, before any rate is known.
const FIRST_EVERY: u64 = 64;
/// The most ticks between two looks (code that ticks in bulk with `ticks(n)`).
const MAX_EVERY: u64 = 1 << 32;

/// How far apart the owner's looks at the clock aim to be for a slice of `slice_ns`: a
/// sixteenth of the slice, between 1 and 20 µs.
pub(super) fn look_interval_ns(slice_ns: u64) -> u64 {
    (slice_ns / 16).clamp(1_000, 20_000)
}

/// When the owner next looks at the clock, and what it saw last time.
pub(super) struct ClockChecks {
    /// Ticks from the last look to the next.
    every: Cell<u64>,
    /// The tick counter and the clock (in `now_ns` units) at the last look or restart.
    at_ticks: Cell<u64>,
    at_ns: Cell<u64>,
}

impl ClockChecks {
    pub(super) const fn new() -> ClockChecks {
        ClockChecks {
            every: Cell::new(FIRST_EVERY),
            at_ticks: Cell::new(0),
            at_ns: Cell::new(0),
        }
    }

    /// A new watchdog with a slice starts counting: no rate is known yet.
    pub(super) fn arm(&self, ticks: u64, now: u64) {
        self.every.set(FIRST_EVERY);
        self.restart(ticks, now);
    }

    /// The slice restarted at `now` with the counter at `ticks`. The rate (`every`) is kept:
    /// it belongs to the code, and the next look measures it again.
    pub(super) fn restart(&self, ticks: u64, now: u64) {
        self.at_ticks.set(ticks);
        self.at_ns.set(now);
    }

    /// The counter value at which the next look is due.
    pub(super) fn next(&self) -> u64 {
        self.at_ticks.get().saturating_add(self.every.get())
    }

    /// The look, at a safe point whose counter (`ticks`) has reached [`next`](Self::next):
    /// fires the slice if its deadline in `flags` has passed (as the timer would), and plans
    /// the next look from the rate of ticks since the last one.
    pub(super) fn look(&self, flags: &SliceFlags, ticks: u64, slice_ns: u64) {
        self.look_at(flags, ticks, slice_ns, now_ns());
    }

    /// [`look`](Self::look) with the clock read as `now`.
    fn look_at(&self, flags: &SliceFlags, ticks: u64, slice_ns: u64, now: u64) {
        let deadline = flags.deadline.load(Ordering::SeqCst);
        let armed = deadline != FIRED && deadline != DISARMED;
        if armed && deadline <= now {
            // Loses only to the timer's own fire or to a restart: either way nothing is left.
            let _ = flags.deadline.compare_exchange(
                deadline,
                FIRED,
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
        }
        let mut until = look_interval_ns(slice_ns);
        if armed && deadline > now {
            until = until.min(deadline - now);
        }
        let ticked = u128::from(ticks.wrapping_sub(self.at_ticks.get()).max(1));
        let elapsed = u128::from(now.saturating_sub(self.at_ns.get()).max(1));
        let every = (ticked * u128::from(until) / elapsed).clamp(1, u128::from(MAX_EVERY));
        self.every.set(every as u64);
        self.restart(ticks, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    fn flags(deadline: u64) -> SliceFlags {
        SliceFlags {
            watermark: AtomicU64::new(u64::MAX),
            deadline: AtomicU64::new(deadline),
        }
    }

    #[test]
    fn a_look_past_the_deadline_fires_the_slice() {
        let c = ClockChecks::new();
        let f = flags(5_000);
        c.arm(0, 1_000);
        c.look_at(&f, 10, 1_000_000, 5_000);
        assert_eq!(f.deadline.load(Ordering::SeqCst), FIRED);
    }

    #[test]
    fn a_look_before_the_deadline_fires_nothing_and_plans_by_the_rate() {
        let c = ClockChecks::new();
        let f = flags(1_000_000_000);
        c.arm(1_000, 0);
        // 10,000 ticks in 1 ms, 10 per µs: a 20 µs interval is 200 ticks.
        c.look_at(&f, 11_000, 1_000_000, 1_000_000);
        assert_eq!(f.deadline.load(Ordering::SeqCst), 1_000_000_000);
        assert_eq!(c.next() - 11_000, 200);
        // Slower code: 100 ticks in the next 100 µs, 1 per µs: 20 ticks.
        c.look_at(&f, 11_100, 1_000_000, 1_100_000);
        assert_eq!(c.next() - 11_100, 20);
        // A short slice looks more often: a sixteenth of 160 µs is 10 µs, 10 ticks.
        c.look_at(&f, 11_200, 160_000, 1_200_000);
        assert_eq!(c.next() - 11_200, 10);
    }

    #[test]
    fn the_last_look_before_the_deadline_aims_at_it() {
        let c = ClockChecks::new();
        c.arm(0, 0);
        // A deadline 2 µs away, ticks at 1 per µs: the next look in 2 ticks, not 20.
        let f = flags(1_002_000);
        c.look_at(&f, 1_000, 1_000_000, 1_000_000);
        assert_eq!(c.next() - 1_000, 2);
    }

    #[test]
    fn looks_are_at_least_one_tick_apart_and_at_most_max_every() {
        let c = ClockChecks::new();
        let f = flags(u64::MAX - 1);
        c.arm(0, 0);
        // One tick in a whole second: still the next tick.
        c.look_at(&f, 1, 1_000_000, 1_000_000_000);
        assert_eq!(c.next() - 1, 1);
        // 2^40 ticks in 1 ns (ticks(n) in bulk): capped.
        c.look_at(&f, 1 + (1 << 40), 1_000_000, 1_000_000_001);
        assert_eq!(c.next() - (1 + (1 << 40)), MAX_EVERY);
    }

    #[test]
    fn disarmed_and_fired_deadlines_are_left_alone() {
        for d in [DISARMED, FIRED] {
            let c = ClockChecks::new();
            let f = flags(d);
            c.arm(0, 1);
            c.look_at(&f, 100, 1_000_000, 1_000_000);
            assert_eq!(f.deadline.load(Ordering::SeqCst), d);
        }
    }

    /// With the timer thread firing nothing, a ticking tasklet is still interrupted at the
    /// end of its slice, by its own look at the clock. (Before the looks it ran to its end:
    /// `run_with` returned no victim.)
    #[test]
    fn a_slice_fires_without_the_timer_thread() {
        use crate::scheduler::{run_with, spawn, tick, RunOptions};
        use std::time::{Duration, Instant};

        super::super::time_slice::TIMER_PAUSED.store(true, Ordering::SeqCst);
        let busy = spawn(|| {
            let end = Instant::now() + Duration::from_secs(3);
            while Instant::now() < end {
                tick().unwrap();
            }
        })
        .unwrap();
        let victim = run_with(RunOptions::new().slice(Duration::from_millis(5)));
        super::super::time_slice::TIMER_PAUSED.store(false, Ordering::SeqCst);
        assert_eq!(
            victim.unwrap(),
            Some(busy.clone()),
            "interrupted by its own look"
        );
        busy.kill().unwrap();
    }
}
