//! Killing a main tasklet (soundness issue, item 16): it unwinds the thread's own stack with
//! `TaskletExit` from the call it is suspended in, and says so on stderr, so that a thread
//! or process that ends of it does not end without a word. One test per binary: it points
//! the process's fd 2 at a pipe for a moment.

use std::panic::{self, AssertUnwindSafe};

use microthread::scheduler::{self, schedule, spawn};
use microthread::TaskletExit;

/// Runs `f` with fd 2 redirected into a pipe; returns what was written there.
fn stderr_of(f: impl FnOnce()) -> String {
    let mut fds = [0; 2];
    // SAFETY: plain fd system calls on fds we own; fd 2 is restored before returning.
    let saved = unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        let saved = libc::dup(2);
        libc::dup2(fds[1], 2);
        libc::close(fds[1]);
        saved
    };
    f();
    let mut out = Vec::new();
    // SAFETY: restoring fd 2, then reading our pipe to EOF (its only write end is closed).
    unsafe {
        libc::dup2(saved, 2);
        libc::close(saved);
        let mut buf = [0u8; 4096];
        loop {
            let n = libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len());
            if n <= 0 {
                break;
            }
            out.extend_from_slice(&buf[..n as usize]);
        }
        libc::close(fds[0]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn killing_main_unwinds_it_with_tasklet_exit_and_says_so() {
    let said = stderr_of(|| {
        std::thread::Builder::new()
            .name("victim".into())
            .spawn(|| {
                spawn(|| scheduler::main().kill().unwrap()).unwrap();
                let unwound = panic::catch_unwind(AssertUnwindSafe(schedule)).unwrap_err();
                assert!(unwound.is::<TaskletExit>());
                // Caught: main goes on, and the scheduler still works.
                let t = spawn(|| 5).unwrap();
                scheduler::run().unwrap();
                assert_eq!(t.result::<i32>(), Some(5));
                // Killing itself unwinds at once, with the same report.
                let again = panic::catch_unwind(|| scheduler::main().kill()).unwrap_err();
                assert!(again.is::<TaskletExit>());
            })
            .unwrap()
            .join()
            .unwrap();
    });
    assert_eq!(
        said.matches("the main tasklet").count(),
        2,
        "stderr: {said:?}"
    );
    assert!(said.contains("of thread 'victim' was killed"), "{said:?}");
}
