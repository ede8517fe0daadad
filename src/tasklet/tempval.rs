//! A tasklet's `tempval` (Stackless `t.tempval`): the transfer slot that
//! [`schedule_with`](crate::scheduler::schedule_with) and
//! [`schedule_remove_with`](crate::scheduler::schedule_remove_with) return from.

use std::any::Any;

use super::Tasklet;

impl Tasklet {
    /// Puts `value` in the tasklet's `tempval` (Stackless `t.tempval = value`), returning what
    /// was there. A tasklet suspended in
    /// [`schedule_with`](crate::scheduler::schedule_with) or
    /// [`schedule_remove_with`](crate::scheduler::schedule_remove_with) gets it as that call's
    /// value when it resumes. Emptied when the tasklet ends (Stackless: `None`).
    ///
    /// ```
    /// use microthread::scheduler::{self, spawn};
    /// let t = spawn(|| {
    ///     let got = scheduler::schedule_remove_with(Box::new(0u32)).unwrap();
    ///     *got.downcast::<u32>().unwrap()
    /// })?;
    /// scheduler::run().unwrap(); // t waits in schedule_remove_with; its tempval holds 0
    /// assert_eq!(t.set_tempval(Box::new(42u32)).unwrap().downcast_ref(), Some(&0u32));
    /// t.insert().unwrap();
    /// scheduler::run().unwrap();
    /// assert_eq!(t.result::<u32>(), Some(42));
    /// assert!(!t.has_tempval()); // empty once it has ended
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_tempval(&self, value: Box<dyn Any>) -> Option<Box<dyn Any>> {
        self.inner.tempval.replace(Some(value))
    }

    /// Takes the value out of the tasklet's `tempval`, leaving it empty.
    ///
    /// ```
    /// let t = microthread::Tasklet::new(|| ())?;
    /// t.set_tempval(Box::new("x"));
    /// assert_eq!(*t.take_tempval().unwrap().downcast::<&str>().unwrap(), "x");
    /// assert!(t.take_tempval().is_none());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn take_tempval(&self) -> Option<Box<dyn Any>> {
        self.inner.tempval.take()
    }

    /// Whether the tasklet's `tempval` holds a value.
    ///
    /// ```
    /// let t = microthread::Tasklet::new(|| ())?;
    /// assert!(!t.has_tempval());
    /// t.set_tempval(Box::new(1u8));
    /// assert!(t.has_tempval());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn has_tempval(&self) -> bool {
        let v = self.inner.tempval.take();
        let has = v.is_some();
        self.inner.tempval.set(v);
        has
    }
}
