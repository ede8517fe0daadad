//! The [`Tasklet`] handle's queries and flags: its id and name, its state as Stackless
//! reports it (`alive`, `blocked`, `scheduled`, ...), `atomic` and `block_trap`, its result,
//! and the comparisons and `Debug` output built on them.

use std::fmt;

#[cfg(doc)]
use crate::error::Error;

use super::{Life, Record, Tasklet, SLEEPING};

impl Tasklet {
    /// The tasklet's id, unique in the process.
    ///
    /// ```
    /// let (a, b) = (microthread::Tasklet::new(|| ())?, microthread::Tasklet::new(|| ())?);
    /// assert_ne!(a.id(), b.id());
    /// assert_eq!(a.clone().id(), a.id());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The tasklet's name, if one was set.
    ///
    /// ```
    /// let t = microthread::Tasklet::new(|| ())?;
    /// assert_eq!(t.name(), None);
    /// t.set_name(Some("worker"));
    /// assert_eq!(t.name().as_deref(), Some("worker"));
    /// assert!(format!("{t:?}").contains("worker"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn name(&self) -> Option<String> {
        self.inner.name()
    }

    /// Sets (or clears) the tasklet's name, shown in its `Debug` output.
    ///
    /// ```
    /// let t = microthread::Tasklet::new(|| ())?;
    /// t.set_name(Some("a"));
    /// t.set_name(None);
    /// assert_eq!(t.name(), None);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_name(&self, name: Option<&str>) {
        // The old name is dropped after the new one is in place (a `String`'s drop runs no
        // user code either way).
        drop(self.inner.name.replace(name.map(str::to_owned)));
    }

    /// Alive: created (or [set up](Tasklet::setup)) and not yet ended (returned, panicked,
    /// killed or [unbound](Tasklet::unbind)). A [bound](Tasklet::bound) tasklet is not alive
    /// until it is set up.
    ///
    /// The states of reference Appendix B, as `(alive, scheduled, paused, started)`:
    ///
    /// ```
    /// use microthread::{scheduler, Tasklet};
    /// let flags = |t: &Tasklet| (t.alive(), t.scheduled(), t.paused(), t.started());
    ///
    /// let t = Tasklet::bound(|| scheduler::schedule_remove().unwrap())?;
    /// assert_eq!(flags(&t), (false, false, false, false)); // bound, not alive
    /// t.setup().unwrap();
    /// assert_eq!(flags(&t), (true, true, false, false)); // alive, scheduled
    /// scheduler::schedule().unwrap();
    /// assert_eq!(flags(&t), (true, false, true, true)); // ran, paused itself
    /// t.kill().unwrap();
    /// assert_eq!(flags(&t), (false, false, false, true)); // dead
    ///
    /// let p = Tasklet::new(|| ())?;
    /// assert_eq!(flags(&p), (true, false, true, false)); // alive, paused, never ran
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn alive(&self) -> bool {
        self.inner.alive()
    }

    /// Blocked on a channel, or asleep in [`sleep`](crate::scheduler::sleep) (see
    /// [`sleeping`](Tasklet::sleeping)).
    ///
    /// | state | `alive` | `scheduled` | `blocked` | `sleeping` | `paused` |
    /// |---|---|---|---|---|---|
    /// | running or in the run queue | yes | yes | no | no | no |
    /// | blocked on a channel | yes | yes | yes | no | no |
    /// | asleep (no Stackless equivalent) | yes | yes | yes | yes | no |
    /// | paused (out of the run queue) | yes | no | no | no | yes |
    /// | dead or bound | no | no | no | no | no |
    ///
    /// A sleeper is blocked on the timer queue: `insert`, `run`, `switch` and `remove` refuse
    /// it as a blocked tasklet, a kill or a throw wakes it; [`RemoteTasklet::blocked`] is
    /// true for it too.
    ///
    /// [`RemoteTasklet::blocked`]: crate::scheduler::RemoteTasklet::blocked
    ///
    /// ```
    /// use microthread::{scheduler, spawn, Channel};
    /// let ch = Channel::<u8>::new();
    /// let rx = ch.clone();
    /// let t = spawn(move || rx.receive().unwrap())?;
    /// scheduler::run().unwrap(); // it blocks in receive
    /// assert!(t.blocked() && t.scheduled() && !t.paused());
    /// ch.send(1).unwrap();
    /// assert!(!t.blocked() && !t.alive());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn blocked(&self) -> bool {
        self.inner.blocked.get() != 0
    }

    /// Asleep in [`sleep`](crate::scheduler::sleep) or
    /// [`sleep_until`](crate::scheduler::sleep_until) until its deadline: then also
    /// [`blocked`](Tasklet::blocked), on no channel.
    ///
    /// ```
    /// use microthread::scheduler::{self, spawn};
    /// use std::time::Duration;
    /// let t = spawn(|| scheduler::sleep(Duration::from_millis(1)).unwrap())?;
    /// scheduler::schedule().unwrap(); // it goes to sleep
    /// assert!(t.sleeping() && t.blocked() && !t.paused());
    /// scheduler::run().unwrap();
    /// assert!(!t.sleeping() && !t.alive());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn sleeping(&self) -> bool {
        self.inner.blocked.get() == SLEEPING
    }

    /// In the run queue (the current tasklet is too) or blocked on a channel, as Stackless
    /// defines `scheduled`.
    ///
    /// ```
    /// use microthread::{scheduler, Tasklet};
    /// let t = Tasklet::new(|| ())?;
    /// assert!(!t.scheduled()); // created paused
    /// t.insert().unwrap();
    /// assert!(t.scheduled());
    /// assert!(scheduler::current().scheduled()); // the running tasklet is in the run queue
    /// # scheduler::run().unwrap();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn scheduled(&self) -> bool {
        self.inner.in_ring() || self.blocked()
    }

    /// Alive but neither scheduled nor blocked: it runs only when someone inserts, runs or
    /// switches to it.
    ///
    /// ```
    /// use microthread::{scheduler, spawn};
    /// let t = spawn(|| ())?;
    /// assert!(!t.paused());
    /// t.remove().unwrap();
    /// assert!(t.paused() && t.alive());
    /// assert!(!scheduler::main().paused()); // main, outside run(), is in the run queue
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn paused(&self) -> bool {
        self.alive() && !self.scheduled()
    }

    /// The tasklet that stands for its thread's own stack.
    ///
    /// ```
    /// use microthread::scheduler::{current, main, spawn};
    /// assert!(main().is_main() && current().is_main());
    /// assert!(!spawn(|| ())?.is_main());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn is_main(&self) -> bool {
        self.inner.is_main
    }

    /// Whether its closure has left the top of its stack: it has run at least once, or it
    /// has ended (even without running: killed or [unbound](Tasklet::unbind) first). A main
    /// tasklet always has. False exactly for a bound tasklet and an alive one that never ran,
    /// the ones [`unbind`](Tasklet::unbind) accepts.
    ///
    /// ```
    /// use microthread::{scheduler, scheduler::schedule_remove, spawn};
    /// let t = spawn(|| schedule_remove())?;
    /// assert!(!t.started());
    /// scheduler::run().unwrap(); // it runs and pauses itself
    /// assert!(t.started() && t.alive());
    /// assert!(scheduler::main().started());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn started(&self) -> bool {
        matches!(self.inner.life.get(), Life::Started | Life::Dead)
    }

    /// Whether `atomic` is set: no involuntary switch (preemption) may happen while it is.
    ///
    /// ```
    /// let t = microthread::scheduler::current();
    /// assert!(!t.atomic());
    /// microthread::scheduler::atomic(|| assert!(t.atomic()));
    /// assert!(!t.atomic());
    /// ```
    pub fn atomic(&self) -> bool {
        self.inner.atomic.get()
    }

    /// Sets `atomic`, returning the old value. Explicit switches (schedule, channel blocking)
    /// still happen; only involuntary ones are suppressed. See [`crate::scheduler::atomic`].
    /// An interrupt that came due while it was set fires at the next safe point after
    /// `set_atomic(false)`, or is dropped if no watchdog is active then (as in Stackless).
    ///
    /// ```
    /// let t = microthread::Tasklet::new(|| ())?;
    /// assert!(!t.set_atomic(true));
    /// assert!(t.set_atomic(false)); // the old value
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_atomic(&self, on: bool) -> bool {
        let old = self.inner.atomic.replace(on);
        if !on && self.inner.pending_irq.get() {
            crate::scheduler::atomic_cleared(&self.inner);
        }
        old
    }

    /// Whether a channel operation that would block fails with [`Error::BlockTrap`] instead.
    ///
    /// ```
    /// use microthread::{scheduler, spawn, Channel, Error};
    /// let ch = Channel::<u8>::new();
    /// let rx = ch.clone();
    /// let t = spawn(move || rx.receive())?;
    /// t.set_block_trap(true);
    /// assert!(t.block_trap());
    /// scheduler::run().unwrap();
    /// assert!(matches!(t.result::<microthread::Result<u8>>(), Some(Err(Error::BlockTrap))));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn block_trap(&self) -> bool {
        self.inner.block_trap.get()
    }

    /// Sets `block_trap`, returning the old value.
    ///
    /// ```
    /// let t = microthread::Tasklet::new(|| ())?;
    /// assert!(!t.set_block_trap(true));
    /// assert!(t.set_block_trap(false));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_block_trap(&self, on: bool) -> bool {
        self.inner.block_trap.replace(on)
    }

    /// Takes the tasklet's return value once it has returned: `Some` the first time, if `R`
    /// is the closure's return type; `None` before it returned, if it panicked or was killed,
    /// if the value was already taken, or if `R` is not the right type. Stackless discards
    /// return values; this is the join-like accessor it lacks.
    ///
    /// ```
    /// use microthread::{scheduler, spawn};
    /// let t = spawn(|| 6 * 7)?;
    /// assert_eq!(t.result::<i32>(), None); // not yet run
    /// scheduler::run().unwrap();
    /// assert_eq!(t.result::<u8>(), None); // wrong type: kept
    /// assert_eq!(t.result::<i32>(), Some(42));
    /// assert_eq!(t.result::<i32>(), None); // taken
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn result<R: 'static>(&self) -> Option<R> {
        // Taken out of its cell and put back if it is not an `R`: a downcast runs no user code.
        match self.inner.result.take()?.downcast::<R>() {
            Ok(r) => Some(*r),
            Err(other) => {
                self.inner.result.set(Some(other));
                None
            }
        }
    }

    /// Whether two handles name the same tasklet.
    ///
    /// ```
    /// let a = microthread::Tasklet::new(|| ())?;
    /// assert!(a.ptr_eq(&a.clone()));
    /// assert!(!a.ptr_eq(&microthread::Tasklet::new(|| ())?));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn ptr_eq(&self, other: &Tasklet) -> bool {
        Record::ptr_eq(&self.inner, &other.inner)
    }
}

impl PartialEq for Tasklet {
    fn eq(&self, other: &Tasklet) -> bool {
        self.ptr_eq(other)
    }
}

impl Eq for Tasklet {}

impl fmt::Debug for Tasklet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Tasklet");
        d.field("id", &self.inner.id);
        // A copy: the formatter is user code, which may set the name meanwhile.
        if let Some(n) = self.name() {
            d.field("name", &n);
        }
        d.field("alive", &self.alive())
            .field("scheduled", &self.scheduled())
            .field("blocked", &self.blocked())
            .field("is_main", &self.is_main())
            .finish()
    }
}
