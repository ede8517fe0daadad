//! Backtraces across switches (issue 12, item 1): a backtrace taken inside a coroutine or a
//! tasklet continues past its first frame into whoever resumed it (a coroutine's resumer, a
//! tasklet's main tasklet), it ends even when tasklets switch to each other in a ring, a
//! panic still stops at the context's first frame, and gdb's `bt` walks the same chain.
//!
//! The frames are found by name: every resumer here is an `#[inline(never)]` function with a
//! name no other frame has. Runs natively and under qemu-user (`ci/cross-test.sh`): the
//! unwinder is the target's own libgcc, which runs unchanged there. The gdb check runs only
//! natively on x86_64 (qemu-user has no ptrace) and says so when it skips.

mod common;

use std::backtrace::Backtrace;
use std::cell::RefCell;
use std::process::Command;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::on_thread;
use microthread::coroutine::{Builder, Coroutine, CoroutineResult};
use microthread::scheduler::{self, spawn};
use microthread::Tasklet;

/// The backtrace of the calling frame, symbolised.
#[inline(never)]
fn capture() -> String {
    Backtrace::force_capture().to_string()
}

/// The symbols of a rendered backtrace's frames (lines of the form `  N: symbol`), in order.
fn frame_symbols(rendered: &str) -> Vec<&str> {
    rendered
        .lines()
        .filter_map(|l| {
            let (n, symbol) = l.trim_start().split_once(": ")?;
            (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some(symbol.trim())
        })
        .collect()
}

/// How many frames a rendered backtrace lists.
fn frame_count(rendered: &str) -> usize {
    frame_symbols(rendered).len()
}

/// How many frames are the function `name` itself (of this test crate: `backtrace::name`).
/// Counted by frame, not by text: a frame of another function may name it in its generic
/// arguments, as `within_time_limit::<(), backtrace::main_runs_the_scheduler_gamma>` does
/// under the v0 symbol mangling (the nightly toolchain's default, hence the ASan leg's).
fn frames_of(rendered: &str, name: &str) -> usize {
    let own = format!("backtrace::{name}");
    frame_symbols(rendered)
        .iter()
        .filter(|&&s| s == own)
        .count()
}

fn assert_lists(rendered: &str, names: &[&str]) {
    for name in names {
        assert!(
            rendered.contains(name),
            "the backtrace does not show `{name}`:\n{rendered}"
        );
    }
}

/// Fails the whole test binary if `body` does not finish in time: an unwinder caught in a
/// loop of links would run forever (or until it runs out of memory) instead of failing.
fn within_time_limit<T>(what: &'static str, body: impl FnOnce() -> T) -> T {
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    std::thread::spawn(move || {
        // qemu-user and valgrind are slow: generous, and still far below "forever".
        for _ in 0..600 {
            std::thread::sleep(Duration::from_millis(500));
            if flag.load(Ordering::Relaxed) {
                return;
            }
        }
        eprintln!("backtrace test: {what} did not finish in 300 s: an unwinding loop?");
        std::process::exit(101);
    });
    let r = body();
    done.store(true, Ordering::Relaxed);
    r
}

type Captured = Coroutine<(), (), String>;

#[inline(never)]
fn coroutine_resumer_alpha(co: &mut Captured) -> String {
    match co.resume(()) {
        CoroutineResult::Return(bt) => bt,
        CoroutineResult::Yield(()) => panic!("the coroutine yielded"),
    }
}

#[test]
fn a_backtrace_in_a_coroutine_shows_its_resumer() {
    let mut co: Captured = Coroutine::new(|_, ()| capture()).unwrap();
    let bt = within_time_limit("a coroutine backtrace", || coroutine_resumer_alpha(&mut co));
    assert_lists(&bt, &["capture", "coroutine_resumer_alpha"]);
    assert!(
        bt.contains("a_backtrace_in_a_coroutine_shows_its_resumer"),
        "the test function itself, below the resumer: {bt}"
    );
}

#[test]
fn a_backtrace_in_an_fp_environment_coroutine_shows_its_resumer() {
    // Its switches save the FP environment: the resumer's frame resumes at the FP stub.
    let mut co: Captured = Builder::new()
        .preserve_fp_env(true)
        .build(|_, ()| capture())
        .unwrap();
    let bt = within_time_limit("an FP coroutine backtrace", || {
        coroutine_resumer_alpha(&mut co)
    });
    assert_lists(&bt, &["capture", "coroutine_resumer_alpha"]);
}

#[inline(never)]
fn outer_coroutine_resumer_beta(co: &mut Captured) -> String {
    // Not a tail call: this frame stays on the stack below the resume.
    std::hint::black_box(coroutine_resumer_alpha(co))
}

#[test]
fn a_backtrace_in_a_nested_coroutine_shows_every_resumer_once() {
    // outer_coroutine_resumer_beta -> outer coroutine -> coroutine_resumer_alpha -> inner.
    let mut outer: Captured = Coroutine::new(|y, ()| {
        // The inner coroutine yields once first: its links are followed after a suspension too.
        let mut inner: Coroutine<(), (), String> = Coroutine::new(|y, ()| {
            y.suspend(());
            capture()
        })
        .unwrap();
        assert_eq!(inner.resume(()), CoroutineResult::Yield(()));
        y.suspend(());
        coroutine_resumer_alpha(&mut inner)
    })
    .unwrap();
    assert_eq!(outer.resume(()), CoroutineResult::Yield(()));
    let bt = within_time_limit("a nested coroutine backtrace", || {
        outer_coroutine_resumer_beta(&mut outer)
    });
    assert_lists(
        &bt,
        &[
            "capture",
            "coroutine_resumer_alpha",
            "outer_coroutine_resumer_beta",
        ],
    );
    assert_eq!(
        frames_of(&bt, "outer_coroutine_resumer_beta"),
        1,
        "each resumer once: {bt}"
    );
}

#[test]
fn a_backtrace_after_several_suspends_shows_the_latest_resumer() {
    // The first suspend takes the slow path, the later ones the fast path; the resumes come
    // from this test function until the last, from coroutine_resumer_alpha: the backtrace
    // must follow the resumer recorded by the last fast-path suspend, not an older one.
    let mut co: Captured = Coroutine::new(|y, ()| {
        for _ in 0..3 {
            y.suspend(());
        }
        capture()
    })
    .unwrap();
    for _ in 0..3 {
        assert_eq!(co.resume(()), CoroutineResult::Yield(()));
    }
    let bt = within_time_limit("a backtrace after suspends", || {
        coroutine_resumer_alpha(&mut co)
    });
    assert_lists(&bt, &["capture", "coroutine_resumer_alpha"]);
    assert!(
        bt.contains("a_backtrace_after_several_suspends_shows_the_latest_resumer"),
        "the test function itself, below the resumer: {bt}"
    );
}

#[inline(never)]
fn main_runs_the_scheduler_gamma() {
    scheduler::run().unwrap();
}

#[test]
fn a_backtrace_in_a_tasklet_shows_the_main_tasklet_that_runs_it() {
    let bt = on_thread(|| {
        let seen = Rc::new(RefCell::new(String::new()));
        let s = seen.clone();
        spawn(move || *s.borrow_mut() = capture()).unwrap();
        within_time_limit("a tasklet backtrace", main_runs_the_scheduler_gamma);
        let bt = seen.borrow().clone();
        bt
    });
    assert_lists(&bt, &["capture", "main_runs_the_scheduler_gamma"]);
}

#[inline(never)]
fn tasklet_resumes_a_coroutine_delta() -> String {
    let mut co: Captured = Coroutine::new(|_, ()| capture()).unwrap();
    coroutine_resumer_alpha(&mut co)
}

#[test]
fn a_backtrace_in_a_coroutine_inside_a_nested_tasklet_shows_the_whole_chain() {
    let bt = on_thread(|| {
        let seen = Rc::new(RefCell::new(String::new()));
        let s = seen.clone();
        // A tasklet that spawns another and lets it run; that one resumes a coroutine.
        spawn(move || {
            spawn(move || *s.borrow_mut() = tasklet_resumes_a_coroutine_delta()).unwrap();
            scheduler::schedule().unwrap();
        })
        .unwrap();
        within_time_limit("a nested tasklet backtrace", main_runs_the_scheduler_gamma);
        let bt = seen.borrow().clone();
        bt
    });
    assert_lists(
        &bt,
        &[
            "capture",
            "coroutine_resumer_alpha",
            "tasklet_resumes_a_coroutine_delta",
            "main_runs_the_scheduler_gamma",
        ],
    );
}

/// Recurses `depth` frames, then takes the backtrace.
#[inline(never)]
fn deep(depth: u32) -> String {
    if depth == 0 {
        capture()
    } else {
        let bt = deep(depth - 1);
        std::hint::black_box(bt)
    }
}

#[test]
fn a_backtrace_deep_in_a_ring_of_tasklets_ends() {
    const RING: usize = 8;
    let (bt, direct) = on_thread(|| {
        let seen = Rc::new(RefCell::new(String::new()));
        for i in 0..RING {
            let s = seen.clone();
            spawn(move || {
                for round in 0..4 {
                    if i == RING / 2 && round == 2 {
                        // Every tasklet of the ring has resumed the next one several times.
                        *s.borrow_mut() = deep(20);
                    }
                    scheduler::schedule().unwrap();
                }
            })
            .unwrap();
        }
        within_time_limit("a backtrace in a ring", main_runs_the_scheduler_gamma);
        // Two tasklets that switch straight to each other (symmetric: A resumes B, B resumes
        // A, several times): a link to "the last resumer" would make this chain a loop.
        let direct = Rc::new(RefCell::new(String::new()));
        let a_cell: Rc<RefCell<Option<Tasklet>>> = Rc::default();
        let b_cell: Rc<RefCell<Option<Tasklet>>> = Rc::default();
        let (ac, bc, d) = (a_cell.clone(), b_cell.clone(), direct.clone());
        let other = |cell: &Rc<RefCell<Option<Tasklet>>>| cell.borrow().clone().unwrap();
        let a = Tasklet::new(move || {
            for _ in 0..3 {
                other(&bc).switch().unwrap();
            }
        })
        .unwrap();
        let b = Tasklet::new(move || {
            for _ in 0..2 {
                other(&ac).switch().unwrap();
            }
            *d.borrow_mut() = deep(5);
        })
        .unwrap();
        *a_cell.borrow_mut() = Some(a.clone());
        *b_cell.borrow_mut() = Some(b.clone());
        within_time_limit("a backtrace after symmetric switches", || a.run().unwrap());
        // B ended after its capture; A waits, paused, in its third switch.
        assert!(!b.alive());
        a.kill().unwrap();
        a_cell.borrow_mut().take();
        b_cell.borrow_mut().take();
        let bt = seen.borrow().clone();
        let direct = direct.borrow().clone();
        (bt, direct)
    });
    assert_lists(&bt, &["deep", "main_runs_the_scheduler_gamma"]);
    // deep() 21 times, the tasklet's closure and entry, main's frames down to the thread's
    // start: far fewer than 200. A loop would never have returned at all.
    let n = frame_count(&bt);
    assert!((21..200).contains(&n), "{n} frames:\n{bt}");
    assert_eq!(
        frames_of(&bt, "main_runs_the_scheduler_gamma"),
        1,
        "main's frame once: {bt}"
    );
    assert_lists(&direct, &["deep"]);
    let n = frame_count(&direct);
    assert!((6..200).contains(&n), "{n} frames:\n{direct}");
}

#[inline(never)]
fn coroutine_resumer_epsilon(co: &mut Coroutine<(), (), ()>) -> bool {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| co.resume(()))).is_err()
}

#[test]
fn a_panic_in_a_coroutine_stops_at_its_first_frame_and_its_backtrace_shows_the_resumer() {
    // The panic unwinds the coroutine's stack to its first frame, which catches it; only then
    // does `resume` raise it again, on the resumer's stack. A guard in the resumer's frame
    // drops after the coroutine's, and exactly once; a Drop during the coroutine's unwind
    // takes a backtrace that shows the resumer.
    let log = Rc::new(RefCell::new(Vec::<String>::new()));
    struct Guard(Rc<RefCell<Vec<String>>>, &'static str, bool);
    impl Drop for Guard {
        fn drop(&mut self) {
            let mut entry = self.1.to_string();
            if self.2 {
                entry = capture();
            }
            self.0.borrow_mut().push(entry);
        }
    }
    let l = log.clone();
    let mut co: Coroutine<(), (), ()> = Coroutine::new(move |_, ()| {
        let _g = Guard(l, "coroutine", true);
        panic!("on purpose");
    })
    .unwrap();
    let panicked = within_time_limit("a panic in a coroutine", || {
        let _g = Guard(log.clone(), "resumer", false);
        let p = coroutine_resumer_epsilon(&mut co);
        log.borrow_mut().push("resume returned".into());
        p
    });
    assert!(panicked && co.is_finished());
    let log = log.borrow();
    assert_eq!(log.len(), 3, "{log:?}");
    assert_lists(&log[0], &["coroutine_resumer_epsilon"]);
    assert_eq!(&log[1..], ["resume returned", "resumer"]);
}

/// gdb's target: stops (at a breakpoint gdb sets) inside a coroutine resumed by a named
/// function, inside a tasklet run by main. Run only by `gdb_bt_walks_through_the_switches`.
#[test]
#[ignore = "run under gdb by gdb_bt_walks_through_the_switches"]
fn gdb_target() {
    spawn(|| {
        let mut co: Captured = Coroutine::new(|_, ()| {
            microthread_backtrace_gdb_stop();
            String::new()
        })
        .unwrap();
        gdb_coroutine_resumer_zeta(&mut co);
    })
    .unwrap();
    main_runs_the_scheduler_gamma();
}

#[inline(never)]
fn gdb_coroutine_resumer_zeta(co: &mut Captured) -> String {
    // Not a tail call: this frame stays on the stack below the resume.
    std::hint::black_box(coroutine_resumer_alpha(co))
}

#[no_mangle]
#[inline(never)]
pub extern "C" fn microthread_backtrace_gdb_stop() {
    std::hint::black_box(());
}

#[test]
fn gdb_bt_walks_through_the_switches() {
    // An x86_64 test binary runs natively; the others run under qemu-user here.
    if !cfg!(target_arch = "x86_64") {
        eprintln!("gdb check skipped: gdb runs natively on x86_64 only (qemu-user has no ptrace)");
        return;
    }
    if std::env::var_os("MICROTHREAD_UNDER_VALGRIND").is_some() {
        eprintln!("gdb check skipped under valgrind (gdb would debug the test binary, not valgrind's run)");
        return;
    }
    if Command::new("gdb").arg("--version").output().is_err() {
        eprintln!("gdb check skipped: no gdb on this machine");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("timeout")
        .arg("120")
        .arg("gdb")
        .args(["-nx", "-batch", "-q"])
        .args(["-ex", "set debuginfod enabled off"])
        .args(["-ex", "set pagination off"])
        .args(["-ex", "break microthread_backtrace_gdb_stop"])
        .args(["-ex", "run"])
        .args(["-ex", "bt 200"])
        .args(["-ex", "kill"])
        .arg("--args")
        .arg(exe)
        .args([
            "gdb_target",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "gdb failed ({}):\n{text}", out.status);
    assert_lists(
        &text,
        &[
            "microthread_backtrace_gdb_stop",
            "coroutine_resumer_alpha",
            "gdb_coroutine_resumer_zeta",
            "main_runs_the_scheduler_gamma",
        ],
    );
    // `bt 200` prints "(More stack frames follow...)" if the walk did not end by itself.
    assert!(
        !text.contains("More stack frames follow"),
        "gdb's walk did not end:\n{text}"
    );
}
