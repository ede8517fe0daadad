//! A panic hook that names the tasklet that panicked: `tasklet 7 ("worker-3") on thread
//! 'main' panicked at src/worker.rs:12:5:` instead of std's `thread 'main' panicked at ...`,
//! which cannot tell one tasklet of a thread from another (issue 12 item 3).
//!
//! Opt in with [`install`], once, early in `main`: the hook is process-wide, and a library
//! should not replace its user's hook behind its back, so microthread does not install it by
//! itself.

use std::any::Any;
use std::backtrace::{Backtrace, BacktraceStatus};
use std::io::Write;
use std::panic;

use crate::scheduler::dump;

/// Installs the tasklet-naming hook around the current one. A panic inside a tasklet other
/// than a main tasklet is reported as std reports it (the message, and a backtrace when
/// `RUST_BACKTRACE` asks for one), with the line naming the tasklet (its id, its name if it
/// has one) and its thread; the previous hook is not called for it. A panic of a main
/// tasklet, or of a thread without a scheduler, goes to the previous hook unchanged. A kill's
/// unwind ([`TaskletExit`](crate::TaskletExit)) is not a panic and is never reported.
///
/// The report goes straight to the process's stderr (fd 2), also inside `cargo test`, whose
/// output capture only std's own hook knows about.
///
/// Installing it twice nests it: each panic is still reported once (the outer one reports a
/// tasklet's panic; a main tasklet's goes down to the first previous hook).
///
/// ```
/// use microthread::{panic_hook, scheduler, Error};
///
/// panic_hook::install();
/// let t = scheduler::spawn(|| panic!("boom"))?; // stderr: tasklet N panicked at ...: boom
/// t.set_name(Some("worker-3"));
/// let e = scheduler::run().unwrap_err();
/// assert!(matches!(e, Error::Panicked { tasklet, .. } if tasklet == t.id()));
/// let _ = std::panic::take_hook(); // back to std's hook
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn install() {
    let previous = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        let Some((id, name, false)) = dump::current_identity() else {
            return previous(info);
        };
        let mut line = format!("tasklet {id}");
        if let Some(name) = name {
            line.push_str(&format!(" ({name:?})"));
        }
        let thread = std::thread::current();
        match thread.name() {
            Some(t) => line.push_str(&format!(" on thread '{t}'")),
            None => line.push_str(&format!(" on thread {:?}", thread.id())),
        }
        line.push_str(" panicked");
        if let Some(at) = info.location() {
            line.push_str(&format!(" at {at}"));
        }
        let message = payload_text(info.payload());
        let backtrace = Backtrace::capture();
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{line}:\n{message}");
        match backtrace.status() {
            BacktraceStatus::Captured => {
                let _ = writeln!(err, "stack backtrace:\n{backtrace}");
            }
            _ => {
                let _ = writeln!(
                    err,
                    "note: run with `RUST_BACKTRACE=1` environment variable to display a \
                     backtrace"
                );
            }
        }
    }));
}

/// What `panic!` carries, as std's hook prints it.
fn payload_text(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("Box<dyn Any>")
}
