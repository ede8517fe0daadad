//! Helpers shared by the scenario tests: an event log, and a fresh thread per test.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::cell::RefCell;
use std::rc::Rc;

/// What tasklets did, in order.
pub type Log = Rc<RefCell<Vec<String>>>;

pub fn log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

pub fn push(l: &Log, s: impl Into<String>) {
    l.borrow_mut().push(s.into());
}

/// The events so far, leaving the log empty.
pub fn taken(l: &Log) -> Vec<String> {
    std::mem::take(&mut *l.borrow_mut())
}

/// Runs a test body on a fresh thread, so every test starts with a fresh scheduler.
pub fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f).join().unwrap()
}

/// Pushes its event into the log when dropped: a `finally` block, which shows when (and
/// whether) a tasklet's stack was unwound.
pub struct PushOnDrop(pub Log, pub &'static str);

impl Drop for PushOnDrop {
    fn drop(&mut self) {
        push(&self.0, self.1);
    }
}
