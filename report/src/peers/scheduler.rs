//! may 0.3, the scheduler and one-thread channel peer, with one worker thread (set before its
//! first coroutine), so that its coroutines share one thread as our tasklets do.
//!
//! Every loop runs inside a may coroutine and spawns its partners from there: they land in
//! the worker's local queue. may takes from the global queue (where spawns from a plain
//! thread go) only when the local one is empty, which it never is while a coroutine keeps
//! yielding, so a partner spawned from a plain thread would starve the timed coroutine.
//!
//! Under qemu-user may's ping-pong was seen to hang: callers on an emulated target leave
//! these loops out (the report shows them as n/a).
//!
//! ```
//! // Not under ci/valgrind.sh: may's stack switches are not announced to valgrind.
//! # if cfg!(target_arch = "x86_64") && std::env::var_os("MICROTHREAD_UNDER_VALGRIND").is_none()
//! #     && std::env::var_os("MICROTHREAD_UNDER_ASAN").is_none() {
//! let elapsed = microthread_report::peers::scheduler::yield_pingpong(100);
//! assert!(elapsed > std::time::Duration::ZERO);
//! # }
//! ```

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

/// `may::coroutine::spawn` on a runtime with one worker thread.
fn spawn<F, T>(f: F) -> may::coroutine::JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    static CONFIGURED: Once = Once::new();
    CONFIGURED.call_once(|| {
        may::config().set_workers(1);
    });
    // SAFETY: may's spawn is unsafe because a coroutine must not hold thread-bound state
    // (thread-locals, `!Send` guards) across a yield, as it may move between workers. The
    // closures of this module hold only integers, `Instant`s, channel ends,
    // `Arc<AtomicBool>`s and join handles.
    unsafe { may::coroutine::spawn(f) }
}

/// Runs `f` in a may coroutine and waits for its result.
fn in_coroutine<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    spawn(f).join().expect("the may coroutine does not panic")
}

/// One side of the symmetric ping-pong: both coroutines run this same loop.
fn yielder(n: u64) -> impl FnOnce() + Send + 'static {
    move || {
        for _ in 0..n {
            may::coroutine::yield_now();
        }
    }
}

/// Two coroutines run the same loop of `yield_now()`, `iterations` round trips (A -> B -> A,
/// each through may's scheduler): the peer of `schedule()` ping-pong between two tasklets.
pub fn yield_pingpong(iterations: u64) -> Duration {
    in_coroutine(move || {
        let a = spawn(yielder(iterations));
        let b = spawn(yielder(iterations));
        // Neither has run yet: they start when this coroutine blocks in join.
        let start = Instant::now();
        a.join().expect("a yielder");
        b.join().expect("a yielder");
        start.elapsed()
    })
}

/// The timed coroutine's loop and a partner's different loop call `yield_now()` in turn
/// (they suspend at different call sites): the peer of main <-> a tasklet `schedule()`.
pub fn yield_pingpong_asymmetric(iterations: u64) -> Duration {
    in_coroutine(move || {
        let stop = Arc::new(AtomicBool::new(false));
        let partner_stop = stop.clone();
        let partner = spawn(move || {
            while !partner_stop.load(Ordering::Relaxed) {
                may::coroutine::yield_now();
            }
        });
        // Let the partner start, so every timed yield switches to it and back.
        may::coroutine::yield_now();
        let start = Instant::now();
        for _ in 0..iterations {
            may::coroutine::yield_now();
        }
        let elapsed = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        partner.join().expect("the partner");
        elapsed
    })
}

/// `iterations` times: spawn a trivial coroutine and join it, from a coroutine (the peer of
/// tasklet spawn + run to completion).
pub fn spawn_join(iterations: u64) -> Duration {
    in_coroutine(move || {
        let start = Instant::now();
        for _ in 0..iterations {
            spawn(|| black_box(())).join().expect("a trivial coroutine");
        }
        start.elapsed()
    })
}

/// Receives on `rx` and sends the value + 1 on `tx`, `n` times. The last send may find the
/// receiver gone (its partner finished first): that is the end of the ping-pong, not an error.
fn echo(
    rx: may::sync::mpsc::Receiver<u64>,
    tx: may::sync::mpsc::Sender<u64>,
    n: u64,
) -> impl FnOnce() + Send + 'static {
    move || {
        for _ in 0..n {
            let v = rx.recv().expect("a ping");
            let _ = tx.send(v + 1);
        }
    }
}

/// Two coroutines run the same echo loop over two `may::sync::mpsc` channels, `iterations`
/// round trips: the peer of channel ping-pong between two tasklets of one thread.
pub fn channel_pingpong(iterations: u64) -> Duration {
    in_coroutine(move || {
        let (to_first, first_rx) = may::sync::mpsc::channel::<u64>();
        let (to_second, second_rx) = may::sync::mpsc::channel::<u64>();
        let first = spawn(echo(first_rx, to_second, iterations));
        let second = spawn(echo(second_rx, to_first.clone(), iterations));
        let start = Instant::now();
        to_first.send(0).expect("the first ping");
        first.join().expect("an echo");
        second.join().expect("an echo");
        start.elapsed()
    })
}

/// The timed coroutine sends on one `mpsc` channel and receives the echo on another, a
/// second coroutine echoes: the two block at different places (the peer of main <-> an
/// echoing tasklet).
pub fn channel_pingpong_asymmetric(iterations: u64) -> Duration {
    in_coroutine(move || {
        let (tx1, rx1) = may::sync::mpsc::channel::<u64>();
        let (tx2, rx2) = may::sync::mpsc::channel::<u64>();
        let echo = spawn(echo(rx1, tx2, iterations));
        let start = Instant::now();
        for i in 0..iterations {
            tx1.send(i).expect("ping");
            black_box(rx2.recv().expect("pong"));
        }
        let elapsed = start.elapsed();
        echo.join().expect("the echo coroutine");
        elapsed
    })
}
