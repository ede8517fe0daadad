//! Pinning the whole process to one CPU (`sched_setaffinity` of every thread) for the
//! one-thread rows, so that ours and the peer run on the same core, and undoing it for the
//! cross-thread rows.
//!
//! Threads started while pinned (may's worker, on its first coroutine) inherit the mask;
//! [`Pin::release`] puts every thread of the process back on the mask the process had.

/// The ids of this process's threads (`/proc/self/task`).
fn threads() -> Vec<libc::pid_t> {
    std::fs::read_dir("/proc/self/task")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Sets the CPU mask of every thread; false if one refused.
fn set_all(mask: &libc::cpu_set_t) -> bool {
    let mut ok = true;
    for tid in threads() {
        // SAFETY: `mask` is a valid cpu_set_t of the size passed; a thread that ended since
        // the listing gives ESRCH, which is harmless.
        let r = unsafe { libc::sched_setaffinity(tid, std::mem::size_of_val(mask), mask) };
        ok &= r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
    }
    ok
}

/// The process pinned to one CPU until [`Pin::release`] (or drop).
pub struct Pin {
    original: libc::cpu_set_t,
    cpu: usize,
}

impl Pin {
    /// Pins every thread of the process to the CPU this thread runs on; `None` if the system
    /// refuses (the rows then run unpinned).
    pub fn current_cpu() -> Option<Pin> {
        // SAFETY: cpu_set_t is plain bytes; all zeros is the empty set.
        let mut original: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `original` is a writable cpu_set_t of the size passed; 0 is this thread.
        if unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&original), &mut original) }
            != 0
        {
            return None;
        }
        // SAFETY: no preconditions.
        let cpu = usize::try_from(unsafe { libc::sched_getcpu() }).ok()?;
        // SAFETY: as above.
        let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `cpu` is below CPU_SETSIZE (the kernel gave it), `one` a valid set.
        unsafe { libc::CPU_SET(cpu, &mut one) };
        let pin = Pin { original, cpu };
        // On failure `pin` drops, which puts back any thread already moved.
        set_all(&one).then_some(pin)
    }

    /// The CPU the process is pinned to.
    pub fn cpu(&self) -> usize {
        self.cpu
    }

    /// Puts every thread back on the process's original mask.
    pub fn release(self) {}
}

impl Drop for Pin {
    fn drop(&mut self) {
        set_all(&self.original);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask() -> libc::cpu_set_t {
        // SAFETY: as in `current_cpu`.
        let mut m: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: as in `current_cpu`.
        assert_eq!(
            unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&m), &mut m) },
            0
        );
        m
    }

    fn count(m: &libc::cpu_set_t) -> u32 {
        // SAFETY: `m` is a valid set.
        unsafe { libc::CPU_COUNT(m) as u32 }
    }

    #[test]
    fn pins_every_thread_and_puts_them_back() {
        let before = count(&mask());
        let Some(pin) = Pin::current_cpu() else {
            return; // a sandbox that forbids sched_setaffinity: nothing to check
        };
        assert_eq!(count(&mask()), 1);
        // SAFETY: `m` is a valid set.
        assert!(unsafe { libc::CPU_ISSET(pin.cpu(), &mask()) });
        // A thread started while pinned inherits the mask.
        let inner = std::thread::spawn(|| count(&mask())).join().unwrap();
        assert_eq!(inner, 1);
        pin.release();
        assert_eq!(count(&mask()), before);
    }
}
