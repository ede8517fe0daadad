//! Helpers shared by the scenario tests: an event log, a fresh thread per test, and the
//! stack pointer.
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

/// The stack pointer: a point in the running stack. (Not the address of a local: under
/// AddressSanitizer's use-after-return checks, a local whose address is taken lives on a
/// separate "fake stack" on the heap.)
#[inline(always)]
pub fn stack_pointer() -> usize {
    let sp: usize;
    // SAFETY: copies the stack pointer into a register; touches nothing else.
    unsafe {
        #[cfg(target_arch = "x86_64")]
        std::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags));
        #[cfg(target_arch = "aarch64")]
        std::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags));
        #[cfg(target_arch = "riscv64")]
        std::arch::asm!("mv {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags));
    }
    sp
}
