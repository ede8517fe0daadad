//! Scenario tests for a tasklet's life: bound but not alive (Stackless `tasklet(f)`), `setup`,
//! `unbind` (Stackless `bind(None)`), their errors (reference Appendix A) and state
//! transitions (Appendix B), and the order in which a thread's leftover tasklets are killed
//! when it ends (reference §4: oldest first).

use std::sync::{Arc, Mutex};

use microthread::scheduler::{self, schedule, schedule_remove, spawn};
use microthread::Tasklet;

mod common;
use common::on_thread;

/// Logs `name` into a log shared with the test's thread when dropped.
struct Logs(Arc<Mutex<Vec<String>>>, &'static str);

impl Drop for Logs {
    fn drop(&mut self) {
        self.0.lock().unwrap().push(self.1.to_string());
    }
}

#[test]
fn a_thread_kills_its_leftover_tasklets_oldest_first() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    on_thread(move || {
        // Started and scheduled, never run and paused, started and paused, never run and
        // scheduled, started and scheduled: in creation order.
        let a = Logs(l.clone(), "A");
        spawn(move || {
            let _a = a;
            loop {
                schedule().unwrap();
            }
        })
        .unwrap();
        let b = Logs(l.clone(), "B");
        // A handle kept past the thread's end: with none left, B would be discarded at once.
        std::mem::forget(Tasklet::new(move || drop(b)).unwrap());
        let c = Logs(l.clone(), "C");
        spawn(move || {
            let _c = c;
            schedule_remove().unwrap();
        })
        .unwrap();
        schedule().unwrap();
        let d = Logs(l.clone(), "D");
        let keep_d = spawn(move || drop(d)).unwrap();
        let e = Logs(l.clone(), "E");
        let keep_e = spawn(move || {
            let _e = e;
            loop {
                schedule().unwrap();
            }
        })
        .unwrap();
        // D has not run yet; E runs once, then main ends the thread with both scheduled.
        keep_e.run().unwrap();
        assert!(keep_d.alive() && !keep_d.started());
        assert!(keep_e.started());
        assert!(l.lock().unwrap().is_empty());
    });
    assert_eq!(*log.lock().unwrap(), ["A", "B", "C", "D", "E"]);
}
