//! What happens to a thread's tasklets when the process exits: `exit(3)` (what returning from
//! `main` and `std::process::exit` call) runs the calling thread's thread-local destructors,
//! so the scheduler's teardown kills every tasklet still alive there, with every destructor
//! on their stacks run; on the process's main thread as on any other (the scheduler module
//! docs, "End of a thread"). The exiting thread is a forked child's only thread: `exit` there
//! does exactly what it does when `main` returns.
#![cfg(target_os = "linux")]

#[path = "common/death.rs"]
mod death;

use death::{in_child, serial};
use microthread::{scheduler, spawn, Channel, Tasklet};

/// Set in the forked child, which exits with its main thread's handles never dropped.
static IN_CHILD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// LeakSanitizer's switch (the ASan leg): asked at `exit`, it turns the leak check off in
/// the forked child, whose `std::process::exit` leaves the handles held by its main thread
/// allocated on purpose; a leak report there would replace the exit code the test checks.
/// Without ASan nothing calls it.
#[no_mangle]
pub extern "C" fn __lsan_is_turned_off() -> libc::c_int {
    IN_CHILD.load(std::sync::atomic::Ordering::Relaxed) as libc::c_int
}

/// Writes `"<name>: dropped\n"` straight to fd 2 when dropped (no output capture can hold it).
struct SaysWhenDropped(&'static str);

impl Drop for SaysWhenDropped {
    fn drop(&mut self) {
        let line = format!("{}: dropped\n", self.0);
        // SAFETY: write(2) only reads the buffer.
        unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
    }
}

#[test]
fn tasklets_alive_when_the_process_exits_are_killed_with_their_destructors_run() {
    let _serial = serial();
    let death = in_child(|| {
        IN_CHILD.store(true, std::sync::atomic::Ordering::Relaxed);
        let ch = Channel::<u32>::new();
        let rx = ch.clone();
        let blocked = spawn(move || {
            let _held = SaysWhenDropped("blocked on a channel");
            let _ = rx.receive();
        })
        .unwrap();
        let paused = spawn(|| {
            let _held = SaysWhenDropped("paused after it ran");
            let _ = scheduler::schedule_remove();
        })
        .unwrap();
        scheduler::run().unwrap();
        assert!(blocked.blocked() && paused.paused());
        let held = SaysWhenDropped("closure of one that never ran");
        let never_ran = Tasklet::new(move || drop(held)).unwrap();
        let held = SaysWhenDropped("closure of one still scheduled");
        let scheduled = spawn(move || drop(held)).unwrap();
        assert!(never_ran.paused() && scheduled.scheduled() && !scheduled.started());
        std::process::exit(7);
    });
    assert_eq!(
        death.exit_code(),
        Some(7),
        "the child exits normally, after the teardown ({}): {:?}",
        death.describe(),
        death.stderr
    );
    for what in [
        "blocked on a channel",
        "paused after it ran",
        "closure of one that never ran",
        "closure of one still scheduled",
    ] {
        assert!(
            death.stderr.contains(&format!("{what}: dropped\n")),
            "the tasklet {what} is killed at exit, its destructors run: {:?}",
            death.stderr
        );
    }
}
