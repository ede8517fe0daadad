//! [`SendError`]: a send that failed, with the value given back if it was not delivered.

use std::fmt;

use super::core::Msg;
use crate::error::Error;

/// A send that failed, and why.
pub struct SendError<T> {
    /// The value, given back if it was not delivered. `None` when it was delivered but an
    /// error reached the sender before its call returned (for example a panic of another
    /// tasklet, routed to the sender while the receiver ran).
    pub value: Option<T>,
    /// Why it was not delivered.
    pub error: Error,
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl<T> std::error::Error for SendError<T> {}

#[cold]
pub(super) fn send_error<T>(error: Error, msg: Option<Msg<T>>) -> SendError<T> {
    let value = match msg {
        Some(Msg::Value(v)) => Some(v),
        _ => None,
    };
    SendError { value, error }
}
