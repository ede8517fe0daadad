//! What a resume gives back ([`CoroutineResult`]) and why it may be refused ([`ResumeError`]).

use std::fmt;

/// What a [`Coroutine::resume`](super::Coroutine::resume) gives back.
///
/// ```
/// use microthread::coroutine::{Coroutine, CoroutineResult};
/// let mut co = Coroutine::new(|y, ()| {
///     y.suspend('a');
///     42
/// })?;
/// let mut yields = Vec::new();
/// let ret = loop {
///     match co.resume(()) {
///         CoroutineResult::Yield(c) => yields.push(c),
///         CoroutineResult::Return(r) => break r,
///     }
/// };
/// assert_eq!((yields, ret), (vec!['a'], 42));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CoroutineResult<Y, R> {
    /// The coroutine suspended itself with this value.
    Yield(Y),
    /// The coroutine finished with this value.
    Return(R),
}

impl<Y, R> CoroutineResult<Y, R> {
    /// The yielded value, if it is one.
    ///
    /// ```
    /// use microthread::coroutine::CoroutineResult;
    /// let r: CoroutineResult<u8, &str> = CoroutineResult::Yield(4);
    /// assert_eq!(r.as_yield(), Some(&4));
    /// assert_eq!(r.as_return(), None);
    /// ```
    pub fn as_yield(&self) -> Option<&Y> {
        match self {
            CoroutineResult::Yield(y) => Some(y),
            CoroutineResult::Return(_) => None,
        }
    }

    /// The returned value, if it is one.
    ///
    /// ```
    /// use microthread::coroutine::CoroutineResult;
    /// let r: CoroutineResult<u8, &str> = CoroutineResult::Return("end");
    /// assert_eq!(r.as_return(), Some(&"end"));
    /// assert_eq!(r.as_yield(), None);
    /// ```
    pub fn as_return(&self) -> Option<&R> {
        match self {
            CoroutineResult::Yield(_) => None,
            CoroutineResult::Return(r) => Some(r),
        }
    }

    /// The yielded value, if it is one, by value (corosensei's `as_yield`).
    ///
    /// ```
    /// use microthread::coroutine::CoroutineResult;
    /// let r: CoroutineResult<String, ()> = CoroutineResult::Yield("x".into());
    /// assert_eq!(r.into_yield(), Some(String::from("x")));
    /// ```
    pub fn into_yield(self) -> Option<Y> {
        match self {
            CoroutineResult::Yield(y) => Some(y),
            CoroutineResult::Return(_) => None,
        }
    }

    /// The returned value, if it is one, by value (corosensei's `as_return`).
    ///
    /// ```
    /// use microthread::coroutine::CoroutineResult;
    /// let r: CoroutineResult<(), Vec<u8>> = CoroutineResult::Return(vec![1]);
    /// assert_eq!(r.into_return(), Some(vec![1]));
    /// ```
    pub fn into_return(self) -> Option<R> {
        match self {
            CoroutineResult::Yield(_) => None,
            CoroutineResult::Return(r) => Some(r),
        }
    }
}

/// Why a coroutine could not be resumed; its `Display` is the sentence
/// [`Coroutine::resume`](super::Coroutine::resume) panics with.
///
/// ```
/// use microthread::coroutine::{Coroutine, ResumeError};
/// let mut co: Coroutine<(), (), ()> = Coroutine::new(|_, ()| ())?;
/// co.resume(());
/// let err = co.try_resume(()).unwrap_err();
/// assert_eq!(err, ResumeError::Finished);
/// assert_eq!(err.to_string(), "attempt to resume a coroutine that has finished");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeError {
    /// It has finished (returned or panicked).
    Finished,
    /// It is running: it is the caller, or one of the callers, of this resume. Never returned
    /// by this crate: the resume that runs a coroutine holds it mutably borrowed, so safe code
    /// cannot reach it again before it suspends. Kept so that matches stay exhaustive.
    Running,
}

impl fmt::Display for ResumeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResumeError::Finished => "attempt to resume a coroutine that has finished",
            ResumeError::Running => "attempt to resume a coroutine that is running",
        })
    }
}

impl std::error::Error for ResumeError {}
