//! The loops of `benches/cross_thread.rs`: each returns the wall time of its timed part.

use std::hint::black_box;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

// The report's own cross-thread peers (report/src/peers/threads.rs): the same job, the same
// pool size and crossbeam's ping-pong, so that the benchmark and the report measure alike.
pub use microthread_report::peers::threads::{
    crossbeam_pingpong as crossbeam_ping_pong, tiny_job, POOL_THREADS,
};

/// Jobs per pool run.
pub const POOL_JOBS: u64 = 20_000;

/// The sum every pool must come back with.
pub fn expected_sum(jobs: u64) -> u64 {
    (1..=jobs).fold(0u64, |s, n| s.wrapping_add(tiny_job(n)))
}

// ---------------------------------------------------------------------------------------------
// Ping-pong between two threads: `iters` round trips, each a send on one channel and a
// receive of the echo on another.

/// microthread: this thread's main tasklet against another thread's main tasklet.
pub fn microthread_ping_pong(iters: u64) -> Duration {
    microthread::scheduler::init_thread();
    let (a, b) = (
        microthread::Channel::<u64>::new(),
        microthread::Channel::<u64>::new(),
    );
    let (ra, sb) = (a.clone(), b.clone());
    let echo = microthread::spawn_thread(move || {
        for _ in 0..iters {
            let v = ra.receive().expect("ping");
            sb.send(v + 1).expect("pong");
        }
    });
    let start = Instant::now();
    for i in 0..iters {
        a.send(i).expect("ping");
        black_box(b.receive().expect("pong"));
    }
    let elapsed = start.elapsed();
    echo.join().expect("the echo thread");
    elapsed
}

/// std `mpsc::sync_channel(0)` (std's rendezvous channel) between two plain threads.
pub fn mpsc_ping_pong(iters: u64) -> Duration {
    let (tx1, rx1) = mpsc::sync_channel::<u64>(0);
    let (tx2, rx2) = mpsc::sync_channel::<u64>(0);
    let echo = std::thread::spawn(move || {
        for _ in 0..iters {
            let v = rx1.recv().expect("ping");
            tx2.send(v + 1).expect("pong");
        }
    });
    let start = Instant::now();
    for i in 0..iters {
        tx1.send(i).expect("ping");
        black_box(rx2.recv().expect("pong"));
    }
    let elapsed = start.elapsed();
    echo.join().expect("the echo thread");
    elapsed
}

// ---------------------------------------------------------------------------------------------
// Worker pool: `POOL_THREADS` threads take `jobs` tiny jobs from one shared channel and send
// the results back on another; the time is from the first job sent to the last result taken.

/// microthread: each worker thread's main tasklet is its one worker; on this thread a feeder
/// tasklet sends the jobs (then one stop message per worker) while the main tasklet collects
/// the results (the shape of examples/worker_pool.rs).
pub fn microthread_pool(jobs: u64) -> Duration {
    use microthread::{scheduler, spawn, spawn_thread, Channel};
    scheduler::init_thread();
    let job_channel = Channel::<Option<u64>>::new();
    let results = Channel::<u64>::new();
    let workers: Vec<_> = (0..POOL_THREADS)
        .map(|_| {
            let (jobs, results) = (job_channel.clone(), results.clone());
            spawn_thread(move || {
                while let Some(job) = jobs.receive().expect("a job") {
                    results
                        .send(tiny_job(job))
                        .expect("main takes every result");
                }
            })
        })
        .collect();
    let start = Instant::now();
    let (feed, fed) = (job_channel.clone(), Channel::<()>::new());
    let report = fed.clone();
    spawn(move || {
        for job in 1..=jobs {
            feed.send(Some(job)).expect("a worker takes every job");
        }
        for _ in 0..POOL_THREADS {
            feed.send(None).expect("a worker takes every stop");
        }
        report.send(()).expect("main waits for the feeder");
    })
    .expect("the feeder tasklet");
    let mut sum = 0u64;
    for _ in 0..jobs {
        sum = sum.wrapping_add(results.receive().expect("a result"));
    }
    let elapsed = start.elapsed();
    // The feeder's stop messages go out while main waits here (a joining thread runs none of
    // its tasklets).
    fed.receive().expect("the feeder finishes");
    scheduler::run().expect("the feeder ends");
    for w in workers {
        w.join().expect("a worker thread");
    }
    assert_eq!(sum, expected_sum(jobs));
    elapsed
}

/// crossbeam-channel `bounded(0)`: the same rendezvous shape with plain threads (a feeder
/// thread in place of the feeder tasklet; crossbeam's channels are multi-consumer).
pub fn crossbeam_pool(jobs: u64) -> Duration {
    let (job_tx, job_rx) = crossbeam_channel::bounded::<Option<u64>>(0);
    let (result_tx, result_rx) = crossbeam_channel::bounded::<u64>(0);
    let workers: Vec<_> = (0..POOL_THREADS)
        .map(|_| {
            let (jobs, results) = (job_rx.clone(), result_tx.clone());
            std::thread::spawn(move || {
                while let Some(job) = jobs.recv().expect("a job") {
                    results
                        .send(tiny_job(job))
                        .expect("main takes every result");
                }
            })
        })
        .collect();
    let start = Instant::now();
    let feeder = std::thread::spawn(move || {
        for job in 1..=jobs {
            job_tx.send(Some(job)).expect("a worker takes every job");
        }
        for _ in 0..POOL_THREADS {
            job_tx.send(None).expect("a worker takes every stop");
        }
    });
    let mut sum = 0u64;
    for _ in 0..jobs {
        sum = sum.wrapping_add(result_rx.recv().expect("a result"));
    }
    let elapsed = start.elapsed();
    feeder.join().expect("the feeder thread");
    for w in workers {
        w.join().expect("a worker thread");
    }
    assert_eq!(sum, expected_sum(jobs));
    elapsed
}

/// std `mpsc`, the idiomatic pool (the Rust book's): unbounded `mpsc::channel()`s, the job
/// receiver shared behind an `Arc<Mutex<Receiver>>`; main sends every job (it never blocks),
/// then collects.
pub fn mpsc_pool(jobs: u64) -> Duration {
    let (job_tx, job_rx) = mpsc::channel::<Option<u64>>();
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (result_tx, result_rx) = mpsc::channel::<u64>();
    let workers: Vec<_> = (0..POOL_THREADS)
        .map(|_| {
            let (jobs, results) = (job_rx.clone(), result_tx.clone());
            std::thread::spawn(move || loop {
                let job = jobs.lock().unwrap().recv().expect("a job");
                match job {
                    Some(job) => results
                        .send(tiny_job(job))
                        .expect("main takes every result"),
                    None => break,
                }
            })
        })
        .collect();
    let start = Instant::now();
    for job in 1..=jobs {
        job_tx.send(Some(job)).expect("the workers live");
    }
    for _ in 0..POOL_THREADS {
        job_tx.send(None).expect("the workers live");
    }
    let mut sum = 0u64;
    for _ in 0..jobs {
        sum = sum.wrapping_add(result_rx.recv().expect("a result"));
    }
    let elapsed = start.elapsed();
    for w in workers {
        w.join().expect("a worker thread");
    }
    assert_eq!(sum, expected_sum(jobs));
    elapsed
}

/// std `mpsc::sync_channel(0)`: std's rendezvous channel in the same shape as crossbeam's
/// (a feeder thread; the job receiver behind a mutex).
pub fn mpsc_rendezvous_pool(jobs: u64) -> Duration {
    let (job_tx, job_rx) = mpsc::sync_channel::<Option<u64>>(0);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (result_tx, result_rx) = mpsc::sync_channel::<u64>(0);
    let workers: Vec<_> = (0..POOL_THREADS)
        .map(|_| {
            let (jobs, results) = (job_rx.clone(), result_tx.clone());
            std::thread::spawn(move || loop {
                let job = jobs.lock().unwrap().recv().expect("a job");
                match job {
                    Some(job) => results
                        .send(tiny_job(job))
                        .expect("main takes every result"),
                    None => break,
                }
            })
        })
        .collect();
    let start = Instant::now();
    let feeder = std::thread::spawn(move || {
        for job in 1..=jobs {
            job_tx.send(Some(job)).expect("the workers live");
        }
        for _ in 0..POOL_THREADS {
            job_tx.send(None).expect("the workers live");
        }
    });
    let mut sum = 0u64;
    for _ in 0..jobs {
        sum = sum.wrapping_add(result_rx.recv().expect("a result"));
    }
    let elapsed = start.elapsed();
    feeder.join().expect("the feeder thread");
    for w in workers {
        w.join().expect("a worker thread");
    }
    assert_eq!(sum, expected_sum(jobs));
    elapsed
}

/// microthread with `depth` feeder tasklets and `depth` collector tasklets on the main
/// thread: each job channel end then has up to `depth` partners queued, so a worker's receive
/// and send find one waiting instead of blocking (how Stackless code buffers a channel: a
/// rendezvous channel with several tasklets queued on it).
pub fn microthread_pool_queued(jobs: u64, depth: u64) -> Duration {
    use microthread::{scheduler, spawn, spawn_thread, Channel};
    assert!(
        jobs % depth == 0,
        "the jobs split evenly between the tasklets"
    );
    scheduler::init_thread();
    let job_channel = Channel::<Option<u64>>::new();
    let results = Channel::<u64>::new();
    let workers: Vec<_> = (0..POOL_THREADS)
        .map(|_| {
            let (jobs, results) = (job_channel.clone(), results.clone());
            spawn_thread(move || {
                while let Some(job) = jobs.receive().expect("a job") {
                    results
                        .send(tiny_job(job))
                        .expect("main takes every result");
                }
            })
        })
        .collect();
    let start = Instant::now();
    let sums = Channel::<u64>::new();
    for k in 0..depth {
        let feed = job_channel.clone();
        spawn(move || {
            for job in (k + 1..=jobs).step_by(depth as usize) {
                feed.send(Some(job)).expect("a worker takes every job");
            }
        })
        .expect("a feeder tasklet");
        let (results, sums) = (results.clone(), sums.clone());
        spawn(move || {
            let mut sum = 0u64;
            for _ in 0..jobs / depth {
                sum = sum.wrapping_add(results.receive().expect("a result"));
            }
            sums.send(sum).expect("main takes every sum");
        })
        .expect("a collector tasklet");
    }
    let sum = (0..depth).fold(0u64, |s, _| s.wrapping_add(sums.receive().expect("a sum")));
    let elapsed = start.elapsed();
    for _ in 0..POOL_THREADS {
        job_channel.send(None).expect("a worker takes every stop");
    }
    scheduler::run().expect("the feeders and collectors have ended");
    for w in workers {
        w.join().expect("a worker thread");
    }
    assert_eq!(sum, expected_sum(jobs));
    elapsed
}
