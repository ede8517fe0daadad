//! The report's own tests: its command line (`parse`) and its JSON object (`to_json`).

use super::*;

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
    // Peers: by default with calibrated runs only; --peers and --no-peers decide.
    assert!(report(&[]).with_peers());
    assert!(!report(&["--iterations", "10"]).with_peers());
    assert!(report(&["--iterations", "10", "--peers"]).with_peers());
    assert!(!report(&["--no-peers"]).with_peers());
    let o = report(&["--svg", "/tmp/x.svg"]);
    assert_eq!(o.svg.as_deref(), Some(std::path::Path::new("/tmp/x.svg")));
    assert!(report(&["--svg=a.svg"]).svg.is_some());
}

#[test]
fn json_keeps_every_member_and_adds_the_peers_and_the_build() {
    let h = Header {
        arch: "x86_64",
        cpu: "AMD EPYC".into(),
        emulated: false,
        debug_build: false,
        guard_mechanism: "mprotect",
        rustc: "rustc 1.95.0",
        commit: "0123abc",
        timestamp: clock::rfc3339_utc(0),
    };
    let results = report::table::tests::sample();
    let text = to_json(&h, 9, true, Some("Go: go1.19.8 beside ours"), &results);
    let member = |k: &str| {
        let needle = format!("\n  \"{k}\": ");
        let at = text
            .find(&needle)
            .unwrap_or_else(|| panic!("no {k} in {text}"));
        let rest = &text[at + needle.len()..];
        rest[..rest.find('\n').unwrap()]
            .trim_end_matches(',')
            .to_string()
    };
    for (k, v) in [
        ("arch", "\"x86_64\""),
        ("cpu", "\"AMD EPYC\""),
        ("emulated", "false"),
        ("debug_build", "false"),
        ("guard_mechanism", "\"mprotect\""),
        ("runs", "9"),
        ("rustc", "\"rustc 1.95.0\""),
        ("commit", "\"0123abc\""),
        ("timestamp", "\"1970-01-01T00:00:00Z\""),
        ("peers", "true"),
        ("go", "\"Go: go1.19.8 beside ours\""),
        ("switch_round_trip_ns", "2.05"),
        ("switch_round_trip_ns_min", "2"),
        ("switch_round_trip_ns_max", "2.5"),
        ("switch_round_trip_ns_iterations", "1000"),
        ("switch_round_trip_ns_pinned_cpu", "0"),
        ("switch_round_trip_ns_peer_name", "\"corosensei\""),
        ("switch_round_trip_ns_peer", "1.74"),
        ("switch_round_trip_ns_peer_min", "1.7"),
        ("switch_round_trip_ns_peer_max", "1.9"),
        ("switch_round_trip_ns_peer_iterations", "1000"),
        ("switch_round_trip_ns_ratio", "1.178"),
        ("switch_round_trip_ns_goal", "1"),
        ("switch_round_trip_ns_peer2_name", "\"context\""),
        ("switch_round_trip_ns_peer2", "null"),
        ("switch_round_trip_ns_ratio2", "null"),
        ("tick_ns", "0.5"),
    ] {
        assert_eq!(member(k), v, "{k}");
    }
    // No goal where none is given; no peer members for a row without peers.
    assert!(!text.contains("switch_round_trip_ns_goal2"));
    assert!(!text.contains("tick_ns_peer"));
    assert!(!text.contains("tick_ns_ratio"));
    // Every key is unique.
    let keys: Vec<&str> = text.lines().filter_map(|l| l.split('"').nth(1)).collect();
    for (i, k) in keys.iter().enumerate() {
        assert!(!keys[..i].contains(k), "duplicate {k}");
    }
}

#[test]
fn the_build_is_named() {
    assert!(env!("MICROTHREAD_REPORT_RUSTC").starts_with("rustc "));
    let commit = env!("MICROTHREAD_REPORT_COMMIT");
    assert!(
        commit == "unknown"
            || (commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "{commit}"
    );
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
        &["--svg"],
        &["--peers=1"],
        &["stray"],
    ] {
        assert!(parse(args(bad)).is_err(), "{bad:?}");
    }
}
