//! `microthread`: the switch-latency report for the machine it runs on.
//!
//! `cargo run --release` prints a table; `--json` prints one JSON object; `--help` says the
//! rest. The rows live in [`report::rows::ROWS`].

mod report;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use report::{json, rows::ROWS, scale::SCALE_ROWS, sysinfo, Iterations, Measurement, Row};

/// How long one calibrated run takes.
const RUN_TARGET: Duration = Duration::from_millis(60);
/// Runs per row unless `--runs` says otherwise.
const DEFAULT_RUNS: usize = 9;

fn help() -> String {
    let mut keys = String::new();
    for row in ROWS {
        keys.push_str(&format!("  {:<30} {}\n", row.key, row.label));
    }
    keys.push_str("\nSCALE ROWS (only with --row; one run of 1,000,000 tasklets, a few seconds and\nabout 5 GB; --iterations N sets the tasklet count):\n");
    for row in SCALE_ROWS {
        keys.push_str(&format!("  {:<32} {}\n", row.key, row.label));
    }
    format!(
        "\
microthread {version}: switch-latency report for this machine

USAGE:
  cargo run --release [-- OPTIONS]
  microthread [OPTIONS]

Each row is measured in {DEFAULT_RUNS} runs (see --runs). A run's iteration count is calibrated
so that one run takes about {target} ms, unless --iterations fixes it. The report prints the
median, the fastest and the slowest run, in nanoseconds per operation. The machine's noise
shows in min..max: compare ratios from one report, not absolute times across reports.

OPTIONS:
  --json           Print one JSON object on stdout instead of the table. Members:
                     \"arch\"      std::env::consts::ARCH
                     \"cpu\"       the \"model name\" of /proc/cpuinfo, or \"unknown\"
                                 (under qemu-user it is the host's CPU)
                     \"emulated\"  true if /proc/cpuinfo describes an x86 CPU but this
                                 binary is for another arch (qemu-user): times are not
                                 the target's
                     \"debug_build\" true for a build without optimisations
                     \"runs\"      runs per row
                   and for each row KEY (all numbers; times in ns per operation):
                     KEY               the median over the runs
                     KEY_min, KEY_max  the fastest and the slowest run
                     KEY_iterations    iterations per run
  --row KEY        Measure only this row (repeatable; the trailing \"_ns\" may be left out).
  --only KEY       Same as --row.
  --iterations N   Exactly N iterations per run, no calibration.
  --runs R         R runs per row (default {DEFAULT_RUNS}).
  --list           List the row keys and exit.
  -h, --help       Print this help and exit.

ROWS:
{keys}
INSTRUCTION COUNTS (callgrind):
  With --iterations N a row performs exactly R x N operations plus a fixed setup, so the
  instructions per operation are (Ir(2N) - Ir(N)) / (R x N), e.g. for the switch:
    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg1.out \\
      target/release/microthread --row switch_round_trip --runs 1 --iterations 100000
  then the same with 200000, and subtract the \"summary:\" totals of the two files.

Exit status: 0 on success, 2 on a usage error.
",
        version = env!("CARGO_PKG_VERSION"),
        target = RUN_TARGET.as_millis(),
    )
}

/// What the command line asked for.
struct Options {
    json: bool,
    rows: Vec<&'static Row>,
    iterations: Iterations,
    runs: usize,
}

enum Command {
    Report(Options),
    Help,
    List,
}

fn find_row(name: &str) -> Option<&'static Row> {
    ROWS.iter()
        .find(|r| r.key == name || r.key.strip_suffix("_ns") == Some(name))
        .or_else(|| {
            // A scale row by its key or by any prefix of it ending a word (`spawn_1m`).
            SCALE_ROWS
                .iter()
                .find(|r| r.key == name || r.key.starts_with(&format!("{name}_")))
        })
}

fn parse_count(flag: &str, value: Option<String>) -> Result<u64, String> {
    let value = value.ok_or_else(|| format!("{flag} needs a value"))?;
    match value.replace('_', "").parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{flag} needs a positive integer, not `{value}`")),
    }
}

fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut json = false;
    let mut selected: Vec<&'static Row> = Vec::new();
    let mut iterations = Iterations::Calibrated(RUN_TARGET);
    let mut runs = DEFAULT_RUNS;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        // Accept `--flag=value` as well as `--flag value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let takes_value = matches!(
            flag.as_str(),
            "--row" | "--only" | "--iterations" | "--runs"
        );
        if inline.is_some() && !takes_value {
            return Err(format!("{flag} takes no value"));
        }
        let mut value = || inline.clone().or_else(|| args.next());
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--list" => return Ok(Command::List),
            "--json" => json = true,
            "--row" | "--only" => {
                let name = value().ok_or_else(|| format!("{flag} needs a row key"))?;
                let row = find_row(&name).ok_or_else(|| {
                    let keys: Vec<&str> = ROWS.iter().map(|r| r.key).collect();
                    format!("no row `{name}`; the rows are: {}", keys.join(", "))
                })?;
                if !selected.iter().any(|r| r.key == row.key) {
                    selected.push(row);
                }
            }
            "--iterations" => iterations = Iterations::Fixed(parse_count(&flag, value())?),
            "--runs" => {
                runs = usize::try_from(parse_count(&flag, value())?)
                    .map_err(|_| "--runs is too large".to_string())?
            }
            _ => return Err(format!("unknown argument `{arg}`")),
        }
    }
    // Report order is table order, whatever order --row named them in. Any scale row
    // brings the others (one run measures all three).
    let rows = if selected.is_empty() {
        ROWS.iter().collect()
    } else {
        let scale = selected
            .iter()
            .any(|s| SCALE_ROWS.iter().any(|r| r.key == s.key));
        ROWS.iter()
            .filter(|r| selected.iter().any(|s| s.key == r.key))
            .chain(SCALE_ROWS.iter().filter(|_| scale))
            .collect()
    };
    Ok(Command::Report(Options {
        json,
        rows,
        iterations,
        runs,
    }))
}

fn main() -> ExitCode {
    // Die quietly of SIGPIPE, like other command-line tools, when the reader goes away
    // (`microthread | head`), instead of panicking in `println!`.
    // SAFETY: setting a signal's disposition to the default has no preconditions; no other
    // thread exists yet.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let options = match parse(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            print!("{}", help());
            return ExitCode::SUCCESS;
        }
        Ok(Command::List) => {
            for row in ROWS {
                println!("{}\t{}", row.key, row.label);
            }
            return ExitCode::SUCCESS;
        }
        Ok(Command::Report(options)) => options,
        Err(e) => {
            eprintln!("microthread: {e}\nTry `microthread --help`.");
            return ExitCode::from(2);
        }
    };
    run(&options);
    ExitCode::SUCCESS
}

/// The report's label column at its widest: longer labels wrap onto several lines.
const MAX_LABEL_WIDTH: usize = 72;

/// `label` in lines of at most `width` characters, broken at spaces (a longer word stands on
/// a line of its own).
fn wrap(label: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in label.split_whitespace() {
        let line = lines.last_mut().expect("never empty");
        if line.is_empty() {
            line.push_str(word);
        } else if line.chars().count() + 1 + word.chars().count() <= width {
            line.push(' ');
            line.push_str(word);
        } else {
            lines.push(word.to_string());
        }
    }
    lines
}

fn run(options: &Options) {
    let arch = std::env::consts::ARCH;
    let cpu = sysinfo::cpu_model();
    let emulated = sysinfo::emulated();
    let debug_build = cfg!(debug_assertions);
    // The widest label sets the first column (up to MAX_LABEL_WIDTH: longer labels wrap, with
    // the numbers on their last line), so the numbers stay in their columns.
    let label_width = options
        .rows
        .iter()
        .map(|r| r.label.chars().count())
        .max()
        .unwrap_or(0)
        .min(MAX_LABEL_WIDTH);

    if !options.json {
        println!(
            "microthread {} switch-latency report",
            env!("CARGO_PKG_VERSION")
        );
        println!("arch: {arch}");
        println!(
            "stack guards: {}",
            microthread::stack::guard_mechanism().name()
        );
        if emulated {
            println!("cpu:  {cpu} (the host's: this looks like qemu-user emulation)");
        } else {
            println!("cpu:  {cpu}");
        }
        match options.iterations {
            Iterations::Calibrated(t) => println!(
                "runs: {} per row, each calibrated to ~{} ms; ns per operation",
                options.runs,
                t.as_millis()
            ),
            Iterations::Fixed(n) => println!(
                "runs: {} per row, {} iterations each; ns per operation",
                options.runs,
                report::group_thousands(n)
            ),
        }
        if debug_build {
            println!("warning: a debug build; use `cargo run --release` for real numbers");
        }
        println!();
        println!(
            "{:<width$} {:>9} {:>9} {:>9} {:>14}",
            "",
            "median",
            "min",
            "max",
            "iterations/run",
            width = label_width
        );
    }

    let started = Instant::now();
    let mut results: Vec<(&Row, Measurement)> = Vec::new();
    for &row in &options.rows {
        let m = if SCALE_ROWS.iter().any(|r| r.key == row.key) {
            // One run, never calibrated: the scale run is cached per process.
            let n = match options.iterations {
                Iterations::Fixed(n) => n,
                Iterations::Calibrated(_) => report::scale::DEFAULT_TASKLETS,
            };
            report::measure(row, 1, Iterations::Fixed(n))
        } else {
            report::measure(row, options.runs, options.iterations)
        };
        if !options.json {
            let lines = wrap(row.label, label_width);
            let (last, before) = lines.split_last().expect("wrap gives at least one line");
            for line in before {
                println!("{line}");
            }
            println!(
                "{:<width$} {:>9} {:>9} {:>9} {:>14}",
                last,
                report::format_ns(m.median()),
                report::format_ns(m.min()),
                report::format_ns(m.max()),
                report::group_thousands(m.iterations),
                width = label_width
            );
        }
        results.push((row, m));
    }

    if options.json {
        let mut o = json::Object::new();
        o.string("arch", arch)
            .string("cpu", &cpu)
            .boolean("emulated", emulated)
            .boolean("debug_build", debug_build)
            .string(
                "guard_mechanism",
                microthread::stack::guard_mechanism().name(),
            )
            .integer("runs", options.runs as u64);
        for (row, m) in &results {
            o.number(row.key, m.median())
                .number(&format!("{}_min", row.key), m.min())
                .number(&format!("{}_max", row.key), m.max())
                .integer(&format!("{}_iterations", row.key), m.iterations);
        }
        println!("{}", o.render());
    } else {
        println!();
        println!(
            "({:.1} s; noisy machine? compare the ratios, and see min..max)",
            started.elapsed().as_secs_f64()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_labels_wrap_at_spaces_within_the_column_and_keep_every_word() {
        let label = "4 CPU-bound tasklets, 1 ms slices, round robin: smallest share of the ticks";
        let lines = wrap(label, 30);
        assert!(lines.len() > 1);
        assert!(lines.iter().all(|l| l.chars().count() <= 30), "{lines:?}");
        assert_eq!(lines.join(" "), label);
        assert_eq!(wrap("short", 30), ["short"]);
        assert_eq!(
            wrap("a-word-longer-than-the-column x", 5),
            ["a-word-longer-than-the-column", "x"]
        );
    }

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| a.to_string()).collect()
    }

    fn report(s: &[&str]) -> Options {
        match parse(args(s)) {
            Ok(Command::Report(o)) => o,
            _ => panic!("not a report: {s:?}"),
        }
    }

    #[test]
    fn defaults() {
        let o = report(&[]);
        assert!(!o.json);
        assert_eq!(o.rows.len(), ROWS.len());
        assert_eq!(o.runs, DEFAULT_RUNS);
        assert!(matches!(o.iterations, Iterations::Calibrated(_)));
    }

    #[test]
    fn flags() {
        let o = report(&[
            "--json",
            "--iterations",
            "100_000",
            "--runs=1",
            "--only",
            "switch_round_trip",
        ]);
        assert!(o.json);
        assert!(matches!(o.iterations, Iterations::Fixed(100_000)));
        assert_eq!(o.runs, 1);
        assert_eq!(o.rows.len(), 1);
        assert_eq!(o.rows[0].key, "switch_round_trip_ns");
        let o = report(&["--row=spawn_ns", "--row", "switch_round_trip_ns"]);
        let keys: Vec<&str> = o.rows.iter().map(|r| r.key).collect();
        assert_eq!(keys, ["switch_round_trip_ns", "spawn_ns"]);
        assert!(matches!(parse(args(&["--help"])), Ok(Command::Help)));
        // A scale row is opt-in, by key or by its prefix, and brings the other two.
        assert!(report(&[]).rows.iter().all(|r| !r.key.contains("1m")));
        let o = report(&["--row", "spawn_1m"]);
        let keys: Vec<&str> = o.rows.iter().map(|r| r.key).collect();
        let scale: Vec<&str> = SCALE_ROWS.iter().map(|r| r.key).collect();
        assert_eq!(keys, scale);
        assert_eq!(keys[0], "spawn_1m_ns_per_tasklet");
        assert!(keys.contains(&"rss_per_suspended_tasklet_bytes"));
        assert!(matches!(parse(args(&["--list"])), Ok(Command::List)));
    }

    #[test]
    fn errors() {
        for bad in [
            &["--frobnicate"][..],
            &["--iterations"],
            &["--iterations", "0"],
            &["--iterations", "x"],
            &["--runs", "-1"],
            &["--row", "nope"],
            &["--json=1"],
            &["stray"],
        ] {
            assert!(parse(args(bad)).is_err(), "{bad:?}");
        }
    }
}
