//! The watchdog scenarios (W) of the Stackless reference, §2.6–2.7: one test per scenario that
//! applies to native stacks, with tick loops (`tick()`, `ticks(n)`) standing in for bytecode
//! loops. Each test asserts the Stackless outcome: the returned victim, the order of events,
//! the runcount, and what is scheduled afterwards.
//!
//! The numbering: the reference's scenario list (§6.8) is not reproduced in
//! shared/reference/stackless-semantics.md (its §6 says so), and the reference itself names
//! only W7 and W8 (§8.1 item 4, Appendix D). W7 (no preemption at a non-zero C nesting level
//! unless `ignore_nesting`) and W8 (hard preemption, Appendix D) keep those meanings; the
//! other numbers follow the order of the rules in §2.6–2.7, as listed here.
//!
//! | W | rule (reference) | test |
//! |---|---|---|
//! | W1 | timeslice: yielding tasklets finish, `run` returns None (§2.7) | tests/watchdog.rs `timeslice_cooperative_tasklets_finish_and_run_with_returns_none` |
//! | W2 | `totaltimeout`: one budget, runcount 2 after (§2.7) | tests/watchdog.rs `total_budget_covers_the_whole_call_even_when_tasklets_yield` |
//! | W3 | the victim's life cycle: alive, paused, not scheduled; resumes after `insert` (§2.7) | `budget::hard_interrupt_victim_is_alive_paused_and_unscheduled_until_inserted` |
//! | W4 | soft: `run` returns None, runcount 3 with 2 workers (§2.7) | tests/watchdog.rs `soft_interrupt_returns_none_with_every_tasklet_still_scheduled` |
//! | W5 | soft: a tasklet that never yields holds `run` until it ends (§2.7) | `budget::soft_run_waits_for_a_tasklet_that_never_yields_until_it_ends` |
//! | W6 | `atomic` defers; the interrupt fires after the section (§2.7) | tests/watchdog.rs `atomic_defers_the_interrupt_to_the_first_safe_point_after_the_section` |
//! | W7 | nesting level > 0 without `ignore_nesting`: no preemption (§2.7) | not applicable: every safe point is at nesting level zero (src/scheduler/preempt.rs) |
//! | W8 | hard preemption, the ring trace of Appendix D | `budget::hard_preemption_follows_the_ring_trace_of_appendix_d` |
//! | W9 | `set_atomic(False)` with `pending_irq` fires at the next instruction (§2.7) | tests/watchdog.rs `set_atomic_false_with_a_pending_interrupt_fires_at_the_next_safe_point` |
//! | W10 | an interrupt due in a callback (`schedlock`) is deferred (§2.7) | `budget::an_interrupt_due_in_the_channel_callback_is_deferred_and_fires_within_one_budget` (the exact Stackless tick: `deferral`); the schedule callback: tests/watchdog.rs `an_interrupt_due_inside_the_schedule_callback_is_deferred_and_a_fresh_timeslice_forgets_it` |
//! | W11 | `switch_trap` defers (§2.7) | tests/watchdog.rs `switch_trap_defers_the_interrupt_until_the_trap_is_lifted` (the exact Stackless tick: `deferral`) |
//! | W12 | soft: a channel switch to a chosen partner passes the interrupt on (§2.7) | tests/watchdog.rs `soft_interrupt_passes_on_through_a_channel_switch_to_a_chosen_partner` |
//! | W13 | `run` from a worker while main schedules: main is an ordinary tasklet (§2.6) | `nesting::run_from_a_worker_waits_while_main_schedules_like_any_tasklet` |
//! | W14 | the inner `run` returns first; the outer caller is still paused (§2.6) | `nesting::the_inner_run_returns_first_and_the_outer_caller_stays_paused` |
//! | W15 | nested watchdogs are woken innermost first (§2.6) | `nesting::nested_watchdogs_are_woken_innermost_first_as_the_ring_empties` |
//! | W16 | watchdog priority: the outermost interrupt watchdog gets the interrupt (§2.6) | tests/watchdog.rs `nested_run_with_budget_behaves_like_run_and_the_outer_watchdog_wakes`; flags too: `nesting::a_nested_run_s_soft_flag_is_ignored_the_outer_hard_watchdog_interrupts` |
//! | W17 | a tasklet runs the watchdog (`main.run()`): `run` returns None, the tasklet stays scheduled (§2.6) | `nesting::a_tasklet_that_runs_the_watchdog_makes_run_return_none_and_stays_scheduled` |
//! | W18 | an uncaught error under `run(timeout)`: raised by `run`, the others stay (§2.5, §2.6) | `nesting::a_panic_under_a_budget_is_returned_by_run_and_the_others_stay_scheduled` |
//! | W19 | errors of nested runs go to the innermost run (§2.5, §2.6) | tests/watchdog.rs `errors_go_to_the_innermost_run` |
//! | W20 | `threadblock` | not here: TH17 (threadblock with and without a timeout) belongs to the threadblock work |
//! | W21 | `run(timeout)` from a non-main tasklet (under main's plain `run()`: it takes the free interrupt slot) | tests/watchdog.rs `run_with_from_a_non_main_tasklet` |
//! | W22 | the timeslice restarts only at a real switch: `schedule()` alone does not (§2.2 step 6–7) | `budget::schedule_with_nothing_else_runnable_does_not_restart_the_timeslice` |
//!
//! Also here: the stack and FP environment of a re-inserted victim (`resume`), and the
//! The exact Stackless ticks of a callback- and a switch_trap-deferred interrupt: `deferral`.
//!
//! Each test runs on its own thread (the test harness's), so each has its own scheduler.
//! Nothing here depends on timing: budgets count ticks.

mod common;

#[path = "w_scenarios/budget.rs"]
mod budget;
#[path = "w_scenarios/deferral.rs"]
mod deferral;
#[path = "w_scenarios/nesting.rs"]
mod nesting;
#[path = "w_scenarios/resume.rs"]
mod resume;
// The rounding-mode accessors of the register tests (only `fpmode` is used here).
#[allow(dead_code)]
#[path = "registers/fp_env.rs"]
mod fp_env;
