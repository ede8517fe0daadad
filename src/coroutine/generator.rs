//! Generators: a coroutine that takes no input and returns nothing is an [`Iterator`] over
//! what it yields.

use std::io;
use std::iter::FusedIterator;

use super::{Coroutine, CoroutineResult, ScopedCoroutine, Yielder};

/// A coroutine that yields `Y`s and is iterated: each [`next`](Iterator::next) resumes it,
/// a suspension is `Some(value)`, the end of the body is `None`, and so is every later call
/// (it is a [`FusedIterator`]). A panic of the body propagates out of the `next` that ran
/// it; the generator is then finished, so the next call returns `None`. Make one with
/// [`generator`], or with [`Builder::build`](super::Builder::build) for other options.
///
/// ```
/// use microthread::coroutine::{generator, Generator};
/// let squares: Generator<u64> = generator(|y| {
///     for n in 1..=4 {
///         y.suspend(n * n);
///     }
/// })?;
/// assert_eq!(squares.collect::<Vec<_>>(), [1, 4, 9, 16]);
/// # Ok::<(), std::io::Error>(())
/// ```
pub type Generator<Y> = Coroutine<(), Y, ()>;

/// The borrowing form of [`Generator`]: a [`ScopedCoroutine`] that yields `Y`s, made by
/// [`scoped_generator`]. `&mut ScopedGenerator` is the iterator, so the scope can use
/// `for`, `collect` and the other adapters on it.
///
/// ```
/// use microthread::coroutine::scoped_generator;
/// let text = String::from("one two three");
/// let words = scoped_generator(
///     |y| text.split(' ').for_each(|w| y.suspend(w)),
///     |words| words.map(str::len).collect::<Vec<_>>(),
/// )?;
/// assert_eq!(words, [3, 3, 5]);
/// # Ok::<(), std::io::Error>(())
/// ```
pub type ScopedGenerator<'a, Y> = ScopedCoroutine<'a, (), Y, ()>;

/// Creates a [`Generator`] running `body` on a default-sized stack from the thread's pool:
/// an iterator over the values `body` passes to [`Yielder::suspend`]. `body` starts at the
/// first [`next`](Iterator::next).
///
/// ```
/// use microthread::coroutine::generator;
/// let mut fib = generator(|y| {
///     let (mut a, mut b) = (0u64, 1u64);
///     loop {
///         y.suspend(a);
///         (a, b) = (b, a + b);
///     }
/// })?;
/// assert_eq!(fib.by_ref().take(8).collect::<Vec<_>>(), [0, 1, 1, 2, 3, 5, 8, 13]);
/// assert_eq!(fib.next(), Some(21));
/// drop(fib); // unwinds the endless body
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// The OS error if a new stack cannot be mapped.
pub fn generator<Y, F>(body: F) -> io::Result<Generator<Y>>
where
    F: FnOnce(&Yielder<(), Y>) + 'static,
    Y: 'static,
{
    Coroutine::new(move |y: &Yielder<(), Y>, ()| body(y))
}

/// The borrowing form of [`generator`]: as [`ScopedCoroutine::with`], `body` may borrow from
/// the caller's stack; `scope` gets the generator and its result is returned; the generator
/// is ended before this returns.
///
/// ```
/// use microthread::coroutine::scoped_generator;
/// let mut grid = vec![vec![1, 2], vec![3]];
/// let total: i32 = scoped_generator(
///     |y| {
///         for row in grid.iter_mut() {
///             for cell in row.iter_mut() {
///                 *cell *= 10; // a mutable borrow of the caller's grid
///                 y.suspend(*cell);
///             }
///         }
///     },
///     |cells| cells.sum(),
/// )?;
/// assert_eq!(total, 60);
/// assert_eq!(grid, [vec![10, 20], vec![30]]);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// The OS error if a new stack cannot be mapped (`scope` is not called then).
pub fn scoped_generator<'a, Y, F, S, T>(body: F, scope: S) -> io::Result<T>
where
    F: FnOnce(&Yielder<(), Y>) + 'a,
    S: FnOnce(&mut ScopedGenerator<'a, Y>) -> T,
{
    ScopedCoroutine::with(move |y: &Yielder<(), Y>, ()| body(y), scope)
}

/// One step of a generator: `None` once it is finished, else resume it.
#[inline(always)]
fn next_of<Y>(co: &mut Coroutine<(), Y, ()>) -> Option<Y> {
    if co.is_finished() {
        return None;
    }
    match co.resume(()) {
        CoroutineResult::Yield(value) => Some(value),
        CoroutineResult::Return(()) => None,
    }
}

/// See [`Generator`].
impl<Y> Iterator for Coroutine<(), Y, ()> {
    type Item = Y;

    #[inline]
    fn next(&mut self) -> Option<Y> {
        next_of(self)
    }
}

impl<Y> FusedIterator for Coroutine<(), Y, ()> {}

/// See [`ScopedGenerator`].
impl<Y> Iterator for ScopedCoroutine<'_, (), Y, ()> {
    type Item = Y;

    #[inline]
    fn next(&mut self) -> Option<Y> {
        next_of(&mut self.inner)
    }
}

impl<Y> FusedIterator for ScopedCoroutine<'_, (), Y, ()> {}
