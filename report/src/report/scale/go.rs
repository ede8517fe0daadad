//! Go beside the scale rows: `report/go/scale.go` run once per process with `go run` (when
//! `go` is on the `PATH`; `ci/go-peers.sh` installs Debian's `golang-go` where it is
//! missing). Its numbers come back as `key value` lines; a missing Go prints one line saying
//! how to install it, and its rows show `-`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::process::Command;

/// The Go program, by its absolute path (the report may run from any directory).
const PROGRAM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/go/scale.go");

thread_local! {
    /// The run's numbers by key, for the tasklet count it was run with.
    static CACHE: RefCell<Option<(u64, HashMap<String, f64>)>> = const { RefCell::new(None) };
}

/// Runs the Go program for `tasklets` goroutines and the rings of `rings` (once per process
/// and tasklet count), or says why not (once) and gives nothing.
fn numbers(tasklets: u64, rings: &[u64]) -> HashMap<String, f64> {
    if let Some(m) = CACHE.with(|c| {
        c.borrow()
            .as_ref()
            .filter(|e| e.0 == tasklets)
            .map(|e| e.1.clone())
    }) {
        return m;
    }
    let mut args = vec![PROGRAM.to_string(), tasklets.to_string()];
    args.extend(rings.iter().map(u64::to_string));
    let out = Command::new("go")
        .arg("run")
        .args(&args)
        .env("GOMAXPROCS", "1")
        .output();
    let map = match out {
        Err(_) => {
            println!("Go: not installed (apt-get install golang-go)");
            HashMap::new()
        }
        Ok(o) if !o.status.success() => {
            println!(
                "Go: `go run {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&o.stderr).trim()
            );
            HashMap::new()
        }
        Ok(o) => parse(&String::from_utf8_lossy(&o.stdout)),
    };
    if let Some(v) = map.get("go_version") {
        println!("Go: go{v} beside ours, GOMAXPROCS=1 (one thread, as our scheduler)");
    }
    CACHE.with(|c| *c.borrow_mut() = Some((tasklets, map.clone())));
    map
}

/// `key value` lines into a map; other lines are skipped. (`go_version 1.19.8` gives 1.19.)
fn parse(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            let v = if k == "go_version" {
                v.split('.').take(2).collect::<Vec<_>>().join(".")
            } else {
                v.to_string()
            };
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// Go's number `key` for a run of `tasklets` goroutines and the given rings, NaN if Go did
/// not give it.
pub fn number(tasklets: u64, rings: &[u64], key: &str) -> f64 {
    numbers(tasklets, rings)
        .get(key)
        .copied()
        .unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_programs_lines_parse() {
        let m = parse("go_version 1.19.8\nspawn_ns 21950.5\nnoise\nring_10_ns 1054.6\n");
        assert_eq!(m["spawn_ns"], 21950.5);
        assert_eq!(m["ring_10_ns"], 1054.6);
        assert_eq!(m["go_version"], 1.19);
        assert!(!m.contains_key("noise"));
        assert!(std::path::Path::new(PROGRAM).exists());
    }
}
