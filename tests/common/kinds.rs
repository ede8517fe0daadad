//! `for_both_channel_kinds!`: scenario tests written once, run on both channel types, and on
//! a `BufferedChannel` of capacity 0 (`BufferedChannel::new`), which must behave exactly as a
//! rendezvous `Channel`.

/// Expands the scenarios once per channel kind, each in a module where `Ch` is that kind.
macro_rules! for_both_channel_kinds {
    ($($scenarios:tt)*) => {
        mod shared {
            #[allow(unused_imports)]
            use super::*;
            use microthread::channel::Channel as Ch;
            $($scenarios)*
        }
        mod local {
            #[allow(unused_imports)]
            use super::*;
            use microthread::channel::LocalChannel as Ch;
            $($scenarios)*
        }
        mod buffered_capacity_0 {
            #[allow(unused_imports)]
            use super::*;
            use microthread::channel::BufferedChannel as Ch;
            $($scenarios)*
        }
    };
}
