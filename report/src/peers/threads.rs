//! The cross-thread peers: crossbeam-channel's rendezvous channel between two threads, and a
//! pool of plain threads taking tiny jobs from one `std::sync::mpsc` channel. The report's
//! own rows for these use the same shapes ([`POOL_THREADS`], [`tiny_job`]).
//!
//! ```
//! use microthread_report::peers::threads;
//! assert!(threads::crossbeam_pingpong(100) > std::time::Duration::ZERO);
//! assert!(threads::mpsc_pool(1_000) > std::time::Duration::ZERO);
//! assert!(threads::sync_channel_pool(1_000) > std::time::Duration::ZERO);
//! assert!(threads::sync_channel_buffered_pool(1_000) > std::time::Duration::ZERO);
//! ```

use std::hint::black_box;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Threads in the worker pool rows (each runs one worker).
pub const POOL_THREADS: usize = 4;

/// The buffer of the buffered worker pool row (`BufferedChannel::with_capacity`) and of its
/// peer [`sync_channel_buffered_pool`], in jobs.
pub const POOL_BUFFER: usize = 256;

/// The job of the worker pool rows: a few arithmetic instructions, so that the row measures
/// the channel and the wake-ups, not the work.
///
/// ```
/// use microthread_report::peers::threads::tiny_job;
/// assert_eq!(tiny_job(3), tiny_job(3));
/// assert_ne!(tiny_job(3), tiny_job(4));
/// ```
#[inline]
pub fn tiny_job(x: u64) -> u64 {
    x.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17)
}

/// Main sends on one `crossbeam_channel::bounded(0)` channel and receives the echo on
/// another; a second thread echoes. `iterations` round trips (the thread's start and end are
/// not timed).
pub fn crossbeam_pingpong(iterations: u64) -> Duration {
    let (ping, pinged) = crossbeam_channel::bounded::<u64>(0);
    let (pong, ponged) = crossbeam_channel::bounded::<u64>(0);
    let echo = std::thread::spawn(move || {
        while let Ok(v) = pinged.recv() {
            if pong.send(v + 1).is_err() {
                break;
            }
        }
    });
    // One round trip first, so the echo thread is running when the clock starts.
    ping.send(0).expect("the echo thread");
    black_box(ponged.recv().expect("the echo thread"));
    let start = Instant::now();
    for i in 0..iterations {
        ping.send(i).expect("the echo thread");
        black_box(ponged.recv().expect("the echo thread"));
    }
    let elapsed = start.elapsed();
    drop(ping);
    echo.join().expect("the echo thread does not panic");
    elapsed
}

/// [`POOL_THREADS`] plain threads take `jobs` tiny jobs from one `std::sync::mpsc` channel
/// (its receiver shared behind a mutex), each summing its [`tiny_job`] results; main sends
/// them all, closes the channel and joins. Timed from the first send to the last join (the
/// threads are started before).
pub fn mpsc_pool(jobs: u64) -> Duration {
    let (tx, rx) = mpsc::channel::<u64>();
    pool(jobs, move |job| tx.send(job).expect("the workers"), rx)
}

/// As [`mpsc_pool`] on `std::sync::mpsc::sync_channel(0)`: a rendezvous, as a microthread
/// channel is (each send waits until a worker takes the job).
pub fn sync_channel_pool(jobs: u64) -> Duration {
    let (tx, rx) = mpsc::sync_channel::<u64>(0);
    pool(jobs, move |job| tx.send(job).expect("the workers"), rx)
}

/// As [`mpsc_pool`] on `std::sync::mpsc::sync_channel(POOL_BUFFER)`: a bounded buffer, as a
/// `BufferedChannel::with_capacity(POOL_BUFFER)` is (a send waits only while it is full).
pub fn sync_channel_buffered_pool(jobs: u64) -> Duration {
    let (tx, rx) = mpsc::sync_channel::<u64>(POOL_BUFFER);
    pool(jobs, move |job| tx.send(job).expect("the workers"), rx)
}

/// The pool of [`mpsc_pool`] and the `sync_channel` pools: `send` gives a job to the channel
/// whose receiving end is `rx`; dropping `send` closes it.
fn pool(jobs: u64, mut send: impl FnMut(u64), rx: mpsc::Receiver<u64>) -> Duration {
    let rx = Arc::new(Mutex::new(rx));
    let workers: Vec<_> = (0..POOL_THREADS)
        .map(|_| {
            let rx = rx.clone();
            std::thread::spawn(move || {
                let mut sum = 0u64;
                loop {
                    let job = rx.lock().expect("no worker panics").recv();
                    match job {
                        Ok(job) => sum = sum.wrapping_add(tiny_job(job)),
                        Err(_) => return sum,
                    }
                }
            })
        })
        .collect();
    let start = Instant::now();
    for job in 0..jobs {
        send(job);
    }
    drop(send);
    let sum = workers
        .into_iter()
        .map(|w| w.join().expect("no worker panics"))
        .fold(0u64, u64::wrapping_add);
    let elapsed = start.elapsed();
    black_box(sum);
    elapsed
}
