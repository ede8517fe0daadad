//! `microthread`: the switch-latency report for the machine it runs on.
//!
//! `cargo run --release` prints a table; `--json` prints one JSON object; `--help` says the
//! rest. The rows live in [`report::rows::ROWS`].

mod report;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use report::peered::{self, RowResult};
use report::{clock, json, rows::ROWS, scale::SCALE_ROWS, svg, sysinfo, table, Iterations, Row};

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

PEERS: beside the rows that have one, the same operation of another crate, measured in the
same run: corosensei 0.3 and context 3 (switch, coroutine spawn), may 0.3 with one worker
(schedule(), tasklet spawn and one-thread channel rows), crossbeam-channel bounded(0) (the
cross-thread ping-pong), std::sync::mpsc with plain threads, unbounded and sync_channel(0)
(the worker pool on a rendezvous Channel: no goal, sync_channel(0) is its like-for-like
peer), unbounded and sync_channel(256) (the same pool on a BufferedChannel of 256 jobs,
whose goal is issue 13's: within 2x of the unbounded mpsc). Each side is calibrated on its
own, then their runs alternate (ours, peer, ours, peer, ...), and the ratio is ours / peer
of the medians; the goal column gives issue 13's goal for that ratio where it has one.
One-thread rows run with the process pinned to one CPU (sched_setaffinity), the
cross-thread and time-slice rows unpinned. A peer that does not build for this target
(context on riscv64) or cannot run here (may under qemu-user) shows as n/a.
Go (report/go/loops.go, `go run`, GOMAXPROCS=1, pinned as the row) is a further peer of
tasklet spawn and the one-thread channel rows, its runs in a process of its own; without
`go` the report says so in one line and those rows show no Go.

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
                     \"rustc\"     the compiler's `rustc --version` at build time
                     \"commit\"    `git rev-parse HEAD` at build time, or \"unknown\"
                     \"timestamp\" when the report ran, UTC, RFC 3339
                     \"peers\"     true if the peers were measured
                     \"go\"        the report's Go line (Go's version, or why there
                                 are no Go numbers), when a row has Go beside it
                   and for each row KEY (all numbers; times in ns per operation):
                     KEY               the median over the runs
                     KEY_min, KEY_max  the fastest and the slowest run
                     KEY_iterations    iterations per run
                     KEY_pinned_cpu    the CPU the process was pinned to, or null
                   and for each peer of the row (the first unsuffixed, the second with a
                   2 after \"peer\", \"ratio\" and \"goal\": KEY_peer2, KEY_ratio2, ...):
                     KEY_peer_name     the peer and its loop
                     KEY_peer          its median (null when n/a here)
                     KEY_peer_min, KEY_peer_max, KEY_peer_iterations
                     KEY_ratio         KEY / KEY_peer (null when n/a)
                     KEY_goal          the goal for KEY_ratio (at most), if there is one
  --svg FILE       Also write the report as an SVG chart to FILE: per row a bar for ours
                   and for each peer (median), whiskers from min to max, log time axis.
  --no-peers       Measure our rows only.
  --peers          Measure the peers even with --iterations (which otherwise leaves them
                   out: instruction counts of a row must not include its peer's loop).
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

Exit status: 0 on success, 1 if the SVG file cannot be written, 2 on a usage error.
",
        version = env!("CARGO_PKG_VERSION"),
        target = RUN_TARGET.as_millis(),
    )
}

/// Whether to measure the peers.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Peers {
    /// With calibrated runs, not with `--iterations` (instruction counts).
    Default,
    /// `--peers`.
    Always,
    /// `--no-peers`.
    Never,
}

/// What the command line asked for.
struct Options {
    json: bool,
    svg: Option<std::path::PathBuf>,
    peers: Peers,
    rows: Vec<&'static Row>,
    iterations: Iterations,
    runs: usize,
}

impl Options {
    /// Whether the peers are measured.
    fn with_peers(&self) -> bool {
        match self.peers {
            Peers::Always => true,
            Peers::Never => false,
            Peers::Default => matches!(self.iterations, Iterations::Calibrated(_)),
        }
    }
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
    let mut svg = None;
    let mut peers = Peers::Default;
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
            "--row" | "--only" | "--iterations" | "--runs" | "--svg"
        );
        if inline.is_some() && !takes_value {
            return Err(format!("{flag} takes no value"));
        }
        let mut value = || inline.clone().or_else(|| args.next());
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--list" => return Ok(Command::List),
            "--json" => json = true,
            "--peers" => peers = Peers::Always,
            "--no-peers" => peers = Peers::Never,
            "--svg" => {
                let file = value().ok_or_else(|| format!("{flag} needs a file name"))?;
                svg = Some(file.into());
            }
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
        svg,
        peers,
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
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("microthread: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The report's label column at its widest: longer labels wrap onto several lines.
const MAX_LABEL_WIDTH: usize = 44;

/// The build and the machine, for the header, the JSON object and the chart's title.
struct Header {
    arch: &'static str,
    cpu: String,
    emulated: bool,
    debug_build: bool,
    guard_mechanism: &'static str,
    rustc: &'static str,
    commit: &'static str,
    timestamp: String,
}

impl Header {
    fn now() -> Header {
        Header {
            arch: std::env::consts::ARCH,
            cpu: sysinfo::cpu_model(),
            emulated: sysinfo::emulated(),
            debug_build: cfg!(debug_assertions),
            guard_mechanism: microthread::stack::guard_mechanism().name(),
            rustc: env!("MICROTHREAD_REPORT_RUSTC"),
            commit: env!("MICROTHREAD_REPORT_COMMIT"),
            timestamp: clock::now(),
        }
    }
}

/// The JSON object of a report: the header's members, then each row's.
fn to_json(
    h: &Header,
    runs: usize,
    with_peers: bool,
    go: Option<&str>,
    results: &[RowResult],
) -> String {
    let mut o = json::Object::new();
    o.string("arch", h.arch)
        .string("cpu", &h.cpu)
        .boolean("emulated", h.emulated)
        .boolean("debug_build", h.debug_build)
        .string("guard_mechanism", h.guard_mechanism)
        .integer("runs", runs as u64)
        .string("rustc", h.rustc)
        .string("commit", h.commit)
        .string("timestamp", &h.timestamp)
        .boolean("peers", with_peers);
    if let Some(go) = go {
        o.string("go", go);
    }
    for r in results {
        let (key, m) = (r.row.key, &r.ours);
        o.number(key, m.median())
            .number(&format!("{key}_min"), m.min())
            .number(&format!("{key}_max"), m.max())
            .integer(&format!("{key}_iterations"), m.iterations)
            .number(
                &format!("{key}_pinned_cpu"),
                r.pinned_cpu.map_or(f64::NAN, |c| c as f64),
            );
        for (i, p) in r.peers.iter().enumerate() {
            let n = if i == 0 {
                String::new()
            } else {
                (i + 1).to_string()
            };
            let peer = format!("{key}_peer{n}");
            o.string(&format!("{peer}_name"), p.peer.name);
            match &p.measurement {
                Some(pm) => {
                    o.number(&peer, pm.median())
                        .number(&format!("{peer}_min"), pm.min())
                        .number(&format!("{peer}_max"), pm.max())
                        .integer(&format!("{peer}_iterations"), pm.iterations);
                }
                None => {
                    o.number(&peer, f64::NAN);
                }
            }
            o.number(&format!("{key}_ratio{n}"), p.ratio(m));
            if let Some(goal) = p.peer.goal {
                o.number(&format!("{key}_goal{n}"), goal);
            }
        }
    }
    o.render()
}

/// Measures every selected row (with its peers if asked), saying which on stderr when that is
/// a terminal.
fn measure_all(options: &Options, emulated: bool) -> Vec<RowResult> {
    // SAFETY: isatty has no preconditions.
    let progress = unsafe { libc::isatty(2) } == 1;
    let total = options.rows.len();
    let mut results = Vec::with_capacity(total);
    for (i, &row) in options.rows.iter().enumerate() {
        if progress {
            eprint!("\r\x1b[K[{}/{total}] {}", i + 1, row.key);
        }
        let r = if SCALE_ROWS.iter().any(|r| r.key == row.key) {
            // One run, never calibrated: the scale run is cached per process.
            let n = match options.iterations {
                Iterations::Fixed(n) => n,
                Iterations::Calibrated(_) => report::scale::DEFAULT_TASKLETS,
            };
            RowResult {
                row: *row,
                ours: report::measure(row, 1, Iterations::Fixed(n)),
                peers: Vec::new(),
                pinned_cpu: None,
            }
        } else {
            peered::measure(
                row,
                options.runs,
                options.iterations,
                options.with_peers(),
                emulated,
            )
        };
        results.push(r);
    }
    if progress {
        eprint!("\r\x1b[K");
    }
    results
}

fn run(options: &Options) -> Result<(), String> {
    let h = Header::now();
    if !options.json {
        println!(
            "microthread {} switch-latency report",
            env!("CARGO_PKG_VERSION")
        );
        println!("arch: {}", h.arch);
        println!("stack guards: {}", h.guard_mechanism);
        if h.emulated {
            println!(
                "cpu:  {} (the host's: this looks like qemu-user emulation)",
                h.cpu
            );
        } else {
            println!("cpu:  {}", h.cpu);
        }
        println!("build: {}, commit {}", h.rustc, h.commit);
        println!("at:   {}", h.timestamp);
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
        if options.with_peers() {
            println!(
                "peers: same run, interleaved with ours; ratio = ours / peer (medians); \
                 one-thread rows pinned to one CPU"
            );
        }
        if h.debug_build {
            println!("warning: a debug build; use `cargo run --release` for real numbers");
        }
        println!();
    }

    let started = Instant::now();
    let results = measure_all(options, h.emulated);

    if let Some(file) = &options.svg {
        let title = format!(
            "microthread {} on {} ({}), {}",
            env!("CARGO_PKG_VERSION"),
            h.cpu,
            h.arch,
            h.timestamp
        );
        std::fs::write(file, svg::render(&results, &title))
            .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    }
    if options.json {
        println!(
            "{}",
            to_json(
                &h,
                options.runs,
                options.with_peers(),
                report::go::status().as_deref(),
                &results
            )
        );
    } else {
        print!("{}", table::render(&results, MAX_LABEL_WIDTH));
        if let Some(go) = report::go::status() {
            println!("{go}");
        }
        println!();
        if let Some(file) = &options.svg {
            println!("chart: {}", file.display());
        }
        println!(
            "({:.1} s; noisy machine? compare the ratios, and see min..max)",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests;
