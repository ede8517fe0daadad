//! [`RemoteTasklet`]: a handle to a tasklet that any thread may hold, query and operate on.

use std::ptr;
use std::sync::Arc;
use std::thread::ThreadId;

use super::{Mail, SendArc, Shared};
use crate::error::{Error, Result};
use crate::tasklet::{Inner, RemoteState, Tasklet};

/// A handle to a tasklet that any thread may hold and use (Stackless: operations on another
/// thread's tasklet act on that thread's ring).
///
/// **Queries** ([`alive`](RemoteTasklet::alive), [`scheduled`](RemoteTasklet::scheduled),
/// [`paused`](RemoteTasklet::paused), [`blocked`](RemoteTasklet::blocked),
/// [`thread_id`](RemoteTasklet::thread_id)) read an atomic mirror of the tasklet's state that
/// its own thread publishes at every change: each answer is a **snapshot**, true at some
/// moment at or after the last synchronisation with that thread (a channel message, a lock,
/// a join), and possibly stale by the time the caller looks at it, since the tasklet's thread
/// runs on meanwhile.
///
/// **Operations** ([`insert`](RemoteTasklet::insert), [`remove`](RemoteTasklet::remove),
/// [`run`](RemoteTasklet::run), [`kill`](RemoteTasklet::kill),
/// [`throw`](RemoteTasklet::throw)) never wait and never switch the caller: each is posted to
/// the tasklet's thread, which applies it at its next switch (waking up for it if it sleeps),
/// as if made there at that moment. What can refuse an operation is checked twice: against
/// the snapshot here (the error is returned), and again when it is applied, where an
/// operation that no longer applies (the target has meanwhile blocked, ended, or is the
/// running tasklet) does nothing, since the caller is no longer waiting to be told.
/// [`switch`](RemoteTasklet::switch) is always refused, as in Stackless.
///
/// Once the tasklet's thread has ended, its tasklets report not alive, `thread_id` is `None`
/// (Stackless: -1), and operations fail as Stackless's do on such tasklets (§4 of the
/// reference: `insert`, `run`, `switch` and `throw` fail with [`Error::NoThread`]; `remove`
/// and `kill` of a tasklet that ended are no-ops).
///
/// ```
/// use microthread::{Channel, Tasklet};
/// use std::sync::mpsc;
///
/// // This thread will wake the worker: make it known as a thread that can.
/// microthread::scheduler::init_thread();
/// let (tx, rx) = mpsc::channel();
/// let worker = microthread::spawn_thread(move || {
///     let done = Channel::new();
///     let d = done.clone();
///     let t = Tasklet::new(move || d.send("ran").unwrap()).unwrap(); // paused
///     tx.send(t.remote()).unwrap();
///     // Nothing runnable here: the thread sleeps until the remote insert arrives.
///     done.receive().unwrap()
/// });
/// let remote = rx.recv().unwrap();
/// assert!(remote.alive() && remote.paused());
/// remote.insert().unwrap();
/// assert_eq!(worker.join().unwrap(), "ran");
/// // Its thread has ended: the tasklet ended too.
/// assert!(!remote.alive() && remote.thread_id().is_none());
/// ```
#[derive(Clone)]
pub struct RemoteTasklet {
    tasklet: Arc<SendArc>,
    owner: Arc<Shared>,
    id: u64,
}

impl std::fmt::Debug for RemoteTasklet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteTasklet")
            .field("id", &self.id)
            .field("alive", &self.alive())
            .field("scheduled", &self.scheduled())
            .field("blocked", &self.blocked())
            .finish()
    }
}

impl Tasklet {
    /// A handle other threads can use to query the tasklet and insert, remove, run, kill or
    /// throw into it (see [`RemoteTasklet`]).
    ///
    /// ```
    /// use microthread::Tasklet;
    /// let t = Tasklet::new(|| ())?;
    /// let r = t.remote();
    /// let (id, paused) = std::thread::spawn(move || (r.id(), r.paused())).join().unwrap();
    /// assert_eq!((id, paused), (t.id(), true));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn remote(&self) -> RemoteTasklet {
        // SAFETY: the owner pointer of a tasklet is its thread's leaked scheduler.
        let owner = unsafe {
            (*(self.inner.owner as *const crate::scheduler::Scheduler))
                .shared
                .clone()
        };
        // Recorded now, on the tasklet's thread, for `RemoteTasklet::thread_id`.
        let _ = owner.thread_id_here();
        RemoteTasklet {
            tasklet: Arc::new(SendArc(crate::tasklet::Record::clone(&self.inner))),
            owner,
            id: self.inner.id,
        }
    }
}

impl RemoteTasklet {
    /// The tasklet's id.
    ///
    /// ```
    /// let t = microthread::Tasklet::new(|| ())?;
    /// assert_eq!(t.remote().id(), t.id());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The published state (see [`RemoteState`]); nothing once the thread has ended.
    fn state(&self) -> u8 {
        if self.owner.ended() {
            return 0;
        }
        let p: *const Inner = crate::tasklet::Record::as_ptr(&self.tasklet.0);
        // SAFETY: our reference keeps the allocation alive; `remote_state` is atomic, and the
        // only part of the tasklet read off its thread (no `&Inner` is made here).
        unsafe { (*ptr::addr_of!((*p).remote_state)).get() }
    }

    /// A snapshot: alive (created, not ended), and its thread has not ended.
    ///
    /// ```
    /// let t = microthread::Tasklet::new(|| ())?;
    /// let r = t.remote();
    /// assert!(std::thread::spawn(move || r.alive()).join().unwrap());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn alive(&self) -> bool {
        self.state() & RemoteState::ALIVE != 0
    }

    /// A snapshot: in its thread's run queue (running included) or blocked on a channel, as
    /// [`Tasklet::scheduled`].
    ///
    /// ```
    /// let t = microthread::spawn(|| ())?;
    /// let r = t.remote();
    /// assert!(std::thread::spawn(move || r.scheduled()).join().unwrap());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn scheduled(&self) -> bool {
        self.state() & (RemoteState::IN_RING | RemoteState::BLOCKED) != 0
    }

    /// A snapshot: blocked on a channel.
    ///
    /// ```
    /// use microthread::{scheduler, spawn, Channel};
    /// let ch = Channel::<u8>::new();
    /// let rx = ch.clone();
    /// let t = spawn(move || rx.receive())?;
    /// scheduler::run().unwrap(); // t blocks in receive
    /// let r = t.remote();
    /// assert!(std::thread::spawn(move || r.blocked() && r.scheduled()).join().unwrap());
    /// # ch.send(1).unwrap();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn blocked(&self) -> bool {
        self.state() & RemoteState::BLOCKED != 0
    }

    /// A snapshot: alive but neither scheduled nor blocked.
    ///
    /// ```
    /// let t = microthread::Tasklet::new(|| ())?; // created paused
    /// let r = t.remote();
    /// assert!(std::thread::spawn(move || r.paused()).join().unwrap());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn paused(&self) -> bool {
        self.state() == RemoteState::ALIVE
    }

    /// The id of the tasklet's thread, `None` once that thread has ended (Stackless: -1).
    ///
    /// ```
    /// let t = microthread::Tasklet::new(|| ())?;
    /// let r = t.remote();
    /// let here = std::thread::current().id();
    /// assert_eq!(std::thread::spawn(move || r.thread_id()).join().unwrap(), Some(here));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn thread_id(&self) -> Option<ThreadId> {
        self.owner.thread_id()
    }

    /// Posts `make`'s mail; `Err(mail)` if the thread has ended meanwhile.
    fn send(&self, make: impl FnOnce(SendArc) -> Mail) -> std::result::Result<(), ()> {
        let mail = make(SendArc(self.tasklet.0.clone()));
        // If its thread has ended, the mail (a reference) is dropped here: the tasklet was
        // cleared on its own thread.
        self.owner.post(mail).map_err(drop)
    }

    /// The checks a run or an insert makes against the snapshot.
    fn check_runnable(&self) -> Result<()> {
        if self.owner.ended() {
            return Err(Error::NoThread);
        }
        let state = self.state();
        if state & RemoteState::BLOCKED != 0 {
            return Err(Error::RunBlocked);
        }
        if state & RemoteState::ALIVE == 0 {
            return Err(Error::RunDead);
        }
        Ok(())
    }

    /// Appends the tasklet to its thread's run queue if it is paused (Stackless
    /// `t.insert()` on another thread's tasklet); no-op if it is scheduled.
    ///
    /// # Errors
    /// [`Error::NoThread`] if its thread has ended; [`Error::RunBlocked`] or
    /// [`Error::RunDead`] if the snapshot says it is blocked or has ended.
    ///
    /// ```
    /// use microthread::Error;
    /// let t = microthread::Tasklet::new(|| ())?;
    /// let r = t.remote();
    /// std::thread::spawn(move || r.insert()).join().unwrap().unwrap();
    /// microthread::schedule().unwrap(); // applied at this thread's next switch; t runs
    /// assert!(!t.alive());
    /// assert!(matches!(t.remote().insert(), Err(Error::RunDead)));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn insert(&self) -> Result<()> {
        self.check_runnable()?;
        self.send(Mail::Insert).map_err(|()| Error::NoThread)
    }

    /// Takes the tasklet out of its thread's run queue (Stackless `t.remove()` on another
    /// thread's tasklet): it becomes paused. Applied when its thread next switches; nothing
    /// happens if by then it is that thread's running tasklet (Stackless refuses with
    /// [`Error::RemoveCurrent`]), blocked, or not scheduled.
    ///
    /// # Errors
    /// [`Error::RemoveBlocked`] if the snapshot says it is blocked. A tasklet whose thread
    /// has ended is not scheduled: `Ok`, as in Stackless.
    ///
    /// ```
    /// use microthread::{scheduler, spawn};
    /// let t = spawn(|| ())?;
    /// let r = t.remote();
    /// std::thread::spawn(move || r.remove()).join().unwrap().unwrap();
    /// scheduler::schedule().unwrap(); // the mail is read here: t leaves the run queue
    /// assert!(t.paused() && t.alive());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn remove(&self) -> Result<()> {
        if self.owner.ended() {
            return Ok(());
        }
        if self.state() & RemoteState::BLOCKED != 0 {
            return Err(Error::RemoveBlocked);
        }
        let _ = self.send(Mail::Remove);
        Ok(())
    }

    /// Makes its thread run the tasklet next (Stackless `t.run()` on another thread's
    /// tasklet: "insert it and let that thread switch to it"); the caller continues. At its
    /// thread's next switch it goes right after the running tasklet (after the targets of
    /// earlier remote runs that have not run yet), so remote runs run in the order they were
    /// made; a sleeping thread wakes up and runs it. A scheduled tasklet stays where it is.
    ///
    /// # Errors
    /// As [`insert`](RemoteTasklet::insert).
    ///
    /// ```
    /// use microthread::{scheduler, spawn, Tasklet};
    /// use std::{cell::RefCell, rc::Rc};
    /// let log = Rc::new(RefCell::new(Vec::new()));
    /// let l = log.clone();
    /// spawn(move || l.borrow_mut().push("queued"))?;
    /// let l = log.clone();
    /// let t = Tasklet::new(move || l.borrow_mut().push("run remotely"))?;
    /// let r = t.remote();
    /// std::thread::spawn(move || r.run()).join().unwrap().unwrap();
    /// scheduler::run().unwrap();
    /// assert_eq!(*log.borrow(), ["run remotely", "queued"]); // it went first
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn run(&self) -> Result<()> {
        self.check_runnable()?;
        self.send(Mail::Run).map_err(|()| Error::NoThread)
    }

    /// Refused: a tasklet cannot switch to a tasklet of another thread (use the tasklet's own
    /// [`Tasklet::switch`] on its thread).
    ///
    /// # Errors
    /// Always: [`Error::NoThread`] if its thread has ended, else
    /// [`Error::SwitchOtherThread`] (Stackless: "can't switch to a different thread.").
    ///
    /// ```
    /// use microthread::Error;
    /// let t = microthread::Tasklet::new(|| ())?;
    /// let r = t.remote();
    /// let e = std::thread::spawn(move || r.switch()).join().unwrap();
    /// assert!(matches!(e, Err(Error::SwitchOtherThread)));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn switch(&self) -> Result<()> {
        if self.owner.ended() {
            return Err(Error::NoThread);
        }
        Err(Error::SwitchOtherThread)
    }

    /// Kills the tasklet on its thread: it becomes runnable there and unwinds when its turn
    /// comes; the caller continues. (Stackless's `kill()` and `kill(pending=True)` of another
    /// thread's tasklet both do this.) A tasklet that has ended: no-op.
    ///
    /// # Errors
    /// [`Error::NoThread`] if its thread has ended while the tasklet had not (it survived the
    /// thread's teardown by catching [`TaskletExit`](crate::TaskletExit)).
    ///
    /// ```
    /// let t = microthread::Tasklet::new(|| ())?;
    /// let r = t.remote();
    /// std::thread::spawn(move || r.kill()).join().unwrap().unwrap();
    /// microthread::schedule().unwrap(); // the kill is applied and t ends
    /// assert!(!t.alive());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn kill(&self) -> Result<()> {
        let ended = self.owner.ended();
        let alive = {
            let p: *const Inner = crate::tasklet::Record::as_ptr(&self.tasklet.0);
            // SAFETY: as in `state`.
            unsafe { (*ptr::addr_of!((*p).remote_state)).get() & RemoteState::ALIVE != 0 }
        };
        if !alive {
            return Ok(());
        }
        if ended {
            return Err(Error::NoThread);
        }
        self.send(Mail::Kill).map_err(|()| Error::NoThread)
    }

    /// Throws `error` into the tasklet on its thread: it becomes runnable there (taken out
    /// of its channel if blocked) and the error is the `Err` of the call it is suspended in;
    /// the caller continues. (Stackless's `throw()` with or without `pending` of another
    /// thread's tasklet.)
    ///
    /// # Errors
    /// [`Error::NoThread`] if its thread has ended; [`Error::ThrowDead`] if the snapshot says
    /// the tasklet has ended (an error thrown at a tasklet that ends before the mail is
    /// applied is dropped).
    ///
    /// ```
    /// use microthread::{scheduler, spawn, Error};
    /// let t = spawn(|| scheduler::schedule_remove())?;
    /// scheduler::run().unwrap(); // t waits in schedule_remove
    /// let r = t.remote();
    /// std::thread::spawn(move || r.throw(Error::Thrown(Box::new("stop")))).join().unwrap().unwrap();
    /// scheduler::run().unwrap();
    /// let e = t.result::<microthread::Result<()>>().unwrap().unwrap_err();
    /// assert_eq!(e.payload_str(), Some("stop"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn throw(&self, error: Error) -> Result<()> {
        if self.owner.ended() {
            return Err(Error::NoThread);
        }
        if self.state() & RemoteState::ALIVE == 0 {
            return Err(Error::ThrowDead);
        }
        self.send(move |t| Mail::Throw(t, error))
            .map_err(|()| Error::NoThread)
    }
}
