//! [`Iter`]: received values until the channel is closing and drained.

use super::Channel;
use crate::error::Result;

/// Received values until the channel is closing and drained; see [`Channel::iter`].
pub struct Iter<'a, T> {
    pub(super) channel: &'a Channel<T>,
}

impl<T: Send + 'static> Iterator for Iter<'_, T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        {
            let mut g = self.channel.chan.lock();
            let st = g.state();
            if st.closing && st.balance <= 0 {
                return None;
            }
        }
        Some(self.channel.receive())
    }
}
