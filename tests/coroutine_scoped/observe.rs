//! What the tests observe a coroutine with: values that log their drop, and the text of a
//! panic payload.

use std::cell::RefCell;
use std::rc::Rc;

/// Pushes `name` to a log borrowed from the test's stack when dropped.
pub(crate) struct Noted<'a> {
    pub(crate) name: &'static str,
    pub(crate) log: &'a RefCell<Vec<&'static str>>,
}

impl Drop for Noted<'_> {
    fn drop(&mut self) {
        self.log.borrow_mut().push(self.name);
    }
}

/// [`Noted`] for `'static` bodies: pushes `name` to a shared log when dropped.
pub(crate) struct NotedShared(
    pub(crate) &'static str,
    pub(crate) Rc<RefCell<Vec<&'static str>>>,
);

impl Drop for NotedShared {
    fn drop(&mut self) {
        self.1.borrow_mut().push(self.0);
    }
}

/// The text of a panic payload (empty if it is neither a `String` nor a `&str`).
pub(crate) fn message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}
