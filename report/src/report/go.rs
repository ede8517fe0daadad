//! Running the Go programs of `report/go/` beside our rows: `go run PROGRAM ARGS` with
//! `GOMAXPROCS=1` (one thread runs Go code, as our scheduler), once per process, program and
//! arguments (cached), when `go` is on the `PATH` (`ci/go-peers.sh` installs Debian's
//! `golang-go` where it is missing). A program prints `key value...` lines (one or more
//! numbers after the key) and a `go_version` line; [`status`] is the one line the report
//! prints about Go: its version, or why there are no Go numbers (the rows then show none).
//!
//! Users: the scale rows ([`super::scale`], `report/go/scale.go`) and the Go peers of the
//! one-thread rows ([`super::go_peers`], `report/go/loops.go`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::process::Command;
use std::rc::Rc;

/// What a Go program printed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GoOutput {
    /// `runtime.Version()` without its `go` (`1.19.8`), from the `go_version` line.
    pub version: String,
    /// The numbers after each key, in line order.
    pub values: HashMap<String, Vec<f64>>,
}

impl GoOutput {
    /// The first number of `key`, NaN if the program did not print it.
    pub fn first(&self, key: &str) -> f64 {
        self.values
            .get(key)
            .and_then(|v| v.first())
            .copied()
            .unwrap_or(f64::NAN)
    }
}

/// A Go program's output, or the sentence saying why there is none.
pub type GoRun = Result<Rc<GoOutput>, String>;

/// The program's path under `report/go/`, absolute (the report may run from any directory).
pub fn program(file: &str) -> String {
    format!("{}/go/{file}", env!("CARGO_MANIFEST_DIR"))
}

thread_local! {
    /// Each run so far, by program and arguments.
    static RUNS: RefCell<Vec<(Vec<String>, GoRun)>> = const { RefCell::new(Vec::new()) };
}

/// `text`'s `key number...` lines; lines without a number after the key, or with something
/// else than numbers, are skipped. The `go_version` line gives [`GoOutput::version`].
pub fn parse(text: &str) -> GoOutput {
    let mut out = GoOutput::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some(key) = words.next() else { continue };
        let rest: Vec<&str> = words.collect();
        if key == "go_version" {
            out.version = rest.join(" ");
            continue;
        }
        let numbers: Option<Vec<f64>> = rest.iter().map(|w| w.parse().ok()).collect();
        if let Some(numbers) = numbers.filter(|n| !n.is_empty()) {
            out.values.insert(key.to_string(), numbers);
        }
    }
    out
}

/// Runs `go run PROGRAM ARGS` with the `go` at `go` (a name on the `PATH` or a path).
fn run_uncached(go: &str, args: &[String]) -> GoRun {
    // Looked up first rather than judged by the spawn's error: under qemu-user a failed
    // `exec` is not reported back to the parent, which sees only a child that failed.
    let out = if is_installed(go) {
        Command::new(go)
            .arg("run")
            .args(args)
            .env("GOMAXPROCS", "1")
            .output()
    } else {
        Err(std::io::ErrorKind::NotFound.into())
    };
    match out {
        Err(_) => Err(format!(
            "Go: `{go}` not found (apt-get install golang-go): the rows show no Go numbers"
        )),
        Ok(o) if !o.status.success() => Err(format!(
            "Go: `{go} run {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr)
                .trim()
                .replace('\n', "; ")
        )),
        Ok(o) => Ok(Rc::new(parse(&String::from_utf8_lossy(&o.stdout)))),
    }
}

/// Whether `go` names an executable file: a path, or a name found in a `PATH` directory.
fn is_installed(go: &str) -> bool {
    let executable = |p: &std::path::Path| {
        use std::os::unix::fs::PermissionsExt;
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if go.contains('/') {
        return executable(std::path::Path::new(go));
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| executable(&dir.join(go))))
}

/// [`run`] with the `go` at `go`, cached by program and arguments (not by `go`: one process
/// uses one).
fn run_with(go: &str, program: &str, args: &[String]) -> GoRun {
    let mut key = vec![program.to_string()];
    key.extend(args.iter().cloned());
    if let Some(r) = RUNS.with(|runs| {
        runs.borrow()
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, r)| r.clone())
    }) {
        return r;
    }
    let r = run_uncached(go, &key);
    RUNS.with(|runs| runs.borrow_mut().push((key, r.clone())));
    r
}

/// Runs the Go program `program` (a path, see [`program`]) with `args`, once per process:
/// a later call with the same arguments gives the first one's output. The child inherits
/// this thread's CPU mask (a pinned row's Go runs pinned).
pub fn run(program: &str, args: &[String]) -> GoRun {
    run_with("go", program, args)
}

/// The report's one line about Go, if a Go program was run: the version it ran with, or
/// the first reason there are no Go numbers.
pub fn status() -> Option<String> {
    RUNS.with(|runs| {
        let runs = runs.borrow();
        runs.iter()
            .find_map(|(_, r)| r.as_ref().err().cloned())
            .or_else(|| {
                let version = &runs.first()?.1.as_ref().ok()?.version;
                Some(format!(
                    "Go: go{version} beside ours, GOMAXPROCS=1 (one thread runs Go code, as \
                     our scheduler; one-thread rows pinned to the row's CPU)"
                ))
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_programs_lines_parse() {
        let m = parse(
            "go_version 1.19.8\nspawn_ns 21950.5\nnoise\nring_10_ns 1054.6\n\
             chan_pingpong_ns 392.5 401 388.25\nchan_pingpong_iterations 35274\nbad 1 x\n",
        );
        assert_eq!(m.version, "1.19.8");
        assert_eq!(m.first("spawn_ns"), 21950.5);
        assert_eq!(m.first("ring_10_ns"), 1054.6);
        assert_eq!(m.values["chan_pingpong_ns"], [392.5, 401.0, 388.25]);
        assert_eq!(m.first("chan_pingpong_iterations"), 35274.0);
        assert!(!m.values.contains_key("noise"));
        assert!(!m.values.contains_key("bad"));
        assert!(m.first("missing").is_nan());
        for file in ["scale.go", "loops.go"] {
            assert!(std::path::Path::new(&program(file)).exists(), "{file}");
        }
    }

    /// A missing `go` gives the sentence that says so (once: the run is cached), and the
    /// report's Go line is that sentence.
    #[test]
    fn a_missing_go_says_so_in_one_line() {
        let args = ["-runs".to_string(), "1".to_string()];
        let r = run_with("/nonexistent/go", &program("loops.go"), &args);
        let why = r.expect_err("no go there");
        assert!(why.contains("not found") && !why.contains('\n'), "{why}");
        let again = run_with("go", &program("loops.go"), &args);
        assert_eq!(again.expect_err("cached"), why);
        assert_eq!(status(), Some(why));
    }
}
