//! A worker pool over several threads: jobs go in through one channel, results come out
//! through another, and every job is accounted for exactly once. Each worker thread
//! ([`microthread::spawn_thread`]) runs several worker tasklets; channels are the handles
//! that cross threads.
//!
//! ```text
//! cargo run --release --example worker_pool [THREADS [TASKLETS_PER_THREAD [JOBS]]]   # default 3 4 2000
//! ```
//!
//! Stackless has one interpreter lock, so its pools are tasklets of one thread that wait on
//! I/O; here the worker threads run at the same time. The shape is the same:
//!
//! ```text
//! def worker(jobs, results):
//!     while True:
//!         job = jobs.receive()
//!         if job is None: return             # one stop message per worker
//!         results.send((job, collatz_steps(job)))
//! ```
//!
//! Two rules of blocking channels shape `main`. A send blocks until a receiver takes the
//! value, so the jobs are fed by a tasklet of their own while the main tasklet collects
//! results (feeding all jobs first would block the feeder forever once every worker waits
//! to hand in a result). And `close()` wakes nobody, so each worker gets a stop message
//! (`None`) instead.
//!
//! Running it is a test: it asserts that every job came back once with the right answer and
//! that the threads' counts add up.

use microthread::{scheduler, spawn, spawn_thread, Channel};

/// The job: the number of Collatz steps from `n` down to 1.
fn collatz_steps(mut n: u64) -> u32 {
    let mut steps = 0;
    while n != 1 {
        n = if n % 2 == 0 { n / 2 } else { 3 * n + 1 };
        steps += 1;
    }
    steps
}

/// A result: the job, its answer, and which thread computed it.
type Done = (u64, u32, usize);

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .map(|a| a.parse().expect("arguments are numbers"))
        .unwrap_or(default)
}

fn main() -> std::io::Result<()> {
    let threads = arg(1, 3);
    let per_thread = arg(2, 4);
    let jobs_count = arg(3, 2000) as u64;
    assert!(threads >= 1 && per_thread >= 1 && jobs_count >= 1);
    let jobs = Channel::<Option<u64>>::new();
    let results = Channel::<Done>::new();

    let pool: Vec<_> = (0..threads)
        .map(|thread| {
            let (jobs, results) = (jobs.clone(), results.clone());
            spawn_thread(move || {
                // Each worker tasklet says how many jobs it did on `finished`, a channel
                // of this thread only.
                let finished = Channel::<usize>::new();
                for _ in 0..per_thread {
                    let (jobs, results, finished) =
                        (jobs.clone(), results.clone(), finished.clone());
                    spawn(move || {
                        let mut done = 0;
                        while let Some(job) = jobs.receive().expect("jobs arrive") {
                            results
                                .send((job, collatz_steps(job), thread))
                                .expect("main takes every result");
                            done += 1;
                        }
                        finished.send(done).unwrap();
                    })
                    .expect("a worker tasklet");
                }
                // While every worker waits for another thread, this thread sleeps.
                (0..per_thread)
                    .map(|_| finished.receive().expect("every worker finishes"))
                    .sum::<usize>()
            })
        })
        .collect();

    // The feeder is a tasklet of this thread; it reports on `fed`, a channel of this thread.
    let fed = Channel::<usize>::new();
    let (feed, report) = (jobs.clone(), fed.clone());
    spawn(move || {
        let sent = feed.send_sequence((1..=jobs_count).map(Some)).unwrap();
        // One stop message per worker tasklet.
        let stops = feed.send_sequence((0..threads * per_thread).map(|_| None));
        assert_eq!(stops.unwrap(), threads * per_thread);
        report.send(sent).unwrap();
    })?;
    let mut answers = vec![None; jobs_count as usize + 1];
    let mut by_thread = vec![0usize; threads];
    for _ in 0..jobs_count {
        let (job, steps, thread) = results.receive().expect("a result");
        assert!(
            answers[job as usize].replace(steps).is_none(),
            "job {job} came back twice"
        );
        by_thread[thread] += 1;
    }
    // Wait for the feeder before joining: a thread blocked in `join` runs none of its
    // tasklets, so the stop messages would never go out (and the workers, with nobody left
    // to wake them, would get `Error::Deadlock`).
    let sent = fed.receive().expect("the feeder finishes");
    scheduler::run().unwrap(); // the feeder, runnable again after its report, ends
    let counted: Vec<usize> = pool
        .into_iter()
        .map(|h| h.join().expect("no worker thread panics"))
        .collect();

    println!(
        "{jobs_count} jobs on {threads} threads x {per_thread} tasklets; per thread: {by_thread:?}"
    );
    let longest = (1..=jobs_count)
        .max_by_key(|&n| answers[n as usize])
        .unwrap();
    println!(
        "longest Collatz chain below {}: {longest} ({} steps)",
        jobs_count + 1,
        answers[longest as usize].unwrap()
    );

    assert_eq!(sent as u64, jobs_count);
    for n in 1..=jobs_count {
        assert_eq!(answers[n as usize], Some(collatz_steps(n)), "job {n}");
    }
    assert_eq!(
        counted, by_thread,
        "each thread's own count matches what main saw"
    );
    assert_eq!(counted.iter().sum::<usize>() as u64, jobs_count);
    assert_eq!((jobs.balance(), results.balance()), (0, 0));
    assert_eq!(scheduler::runcount(), 1, "only main is left");
    println!("ok");
    Ok(())
}
