//! The text table: one line per row (more where its label wraps or it has a second peer),
//! columns
//!
//! ```text
//! row | ours: median (min..max) | peer | peer median | ours/peer | goal
//! ```
//!
//! Every column's width comes from its widest cell, so the numbers stay in their columns
//! whatever the labels; labels longer than the label column's limit wrap at spaces, the
//! numbers on their first line.

use super::peered::RowResult;
use super::{format_ns, Measurement};

/// The column headings.
const HEADINGS: [&str; 6] = [
    "row",
    "ours: median (min..max)",
    "peer",
    "peer median",
    "ours/peer",
    "goal",
];

/// Which columns are right-aligned (the numbers).
const RIGHT: [bool; 6] = [false, false, false, true, true, false];

/// `label` in lines of at most `width` characters, broken at spaces (a longer word stands on
/// a line of its own).
pub fn wrap(label: &str, width: usize) -> Vec<String> {
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

/// `median (min..max)`.
fn ours_cell(m: &Measurement) -> String {
    format!(
        "{} ({}..{})",
        format_ns(m.median()),
        format_ns(m.min()),
        format_ns(m.max())
    )
}

/// The goal cell: `<= 0.2 met`, `<= 0.2 not met`, or just the goal without a ratio.
fn goal_cell(goal: f64, met: Option<bool>) -> String {
    // `1.0`, not `1`: a ratio.
    let goal = if goal.fract() == 0.0 {
        format!("{goal:.1}")
    } else {
        goal.to_string()
    };
    match met {
        Some(true) => format!("<= {goal} met"),
        Some(false) => format!("<= {goal} not met"),
        None => format!("<= {goal}"),
    }
}

/// The cells of one result: a line per label line or per peer, whichever are more.
fn lines_of(r: &RowResult, label_width: usize) -> Vec<[String; 6]> {
    let label = wrap(r.row.label, label_width);
    let n = label.len().max(r.peers.len()).max(1);
    (0..n)
        .map(|i| {
            let mut cells: [String; 6] = Default::default();
            cells[0] = label.get(i).cloned().unwrap_or_default();
            if i == 0 {
                cells[1] = ours_cell(&r.ours);
            }
            if let Some(p) = r.peers.get(i) {
                cells[2] = p.peer.name.to_string();
                cells[3] = match &p.measurement {
                    Some(m) => format_ns(m.median()),
                    None => "n/a".to_string(),
                };
                let ratio = p.ratio(&r.ours);
                cells[4] = if ratio.is_finite() {
                    format!("{ratio:.2}")
                } else {
                    "n/a".to_string()
                };
                if let Some(goal) = p.peer.goal {
                    cells[5] = goal_cell(goal, p.goal_met(&r.ours));
                }
            }
            cells
        })
        .collect()
}

/// The table of `results`, labels wrapped at `max_label_width`, each line without trailing
/// spaces and ending in a newline.
pub fn render(results: &[RowResult], max_label_width: usize) -> String {
    let label_width = results
        .iter()
        .map(|r| r.row.label.chars().count())
        .chain([HEADINGS[0].len()])
        .max()
        .unwrap_or(0)
        .min(max_label_width.max(HEADINGS[0].len()));
    let mut lines: Vec<[String; 6]> = vec![HEADINGS.map(String::from)];
    for r in results {
        lines.extend(lines_of(r, label_width));
    }
    let mut widths = [0usize; 6];
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in &lines {
        let mut text = String::new();
        for (i, cell) in line.iter().enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            if RIGHT[i] {
                text.push_str(&format!("{cell:>w$}", w = widths[i]));
            } else {
                text.push_str(&format!("{cell:<w$}", w = widths[i]));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::peered::{Peer, PeerResult, RowResult};
    use super::super::{Measurement, Row};
    use super::*;

    fn nothing(_: u64) -> f64 {
        0.0
    }
    fn no_peer(_: u64) -> std::time::Duration {
        std::time::Duration::ZERO
    }

    pub(crate) fn measured(runs: &[f64]) -> Measurement {
        Measurement {
            runs: runs.to_vec(),
            iterations: 1000,
        }
    }

    /// A test peer: its name, its runs (`None`: n/a) and its goal.
    pub(crate) type TestPeer = (&'static str, Option<&'static [f64]>, Option<f64>);

    /// A result with the given label, our runs, and peers.
    pub(crate) fn result(
        key: &'static str,
        label: &'static str,
        ours: &[f64],
        peers: &[TestPeer],
    ) -> RowResult {
        RowResult {
            row: Row {
                key,
                label,
                measure: nothing,
            },
            ours: measured(ours),
            peers: peers
                .iter()
                .map(|&(name, runs, goal)| PeerResult {
                    peer: Peer {
                        name,
                        measure: runs.map(|_| no_peer as fn(u64) -> std::time::Duration),
                        goal,
                        needs_real_cpu: false,
                    },
                    measurement: runs.map(measured),
                })
                .collect(),
            pinned_cpu: Some(0),
        }
    }

    pub(crate) fn sample() -> Vec<RowResult> {
        vec![
            result(
                "switch_round_trip_ns",
                "switch round trip (resume + suspend)",
                &[2.05, 2.0, 2.5],
                &[
                    ("corosensei", Some(&[1.74, 1.7, 1.9]), Some(1.0)),
                    ("context", None, None),
                ],
            ),
            result(
                "long_ns",
                "a label far longer than the label column may be, so that it must wrap onto \
                 several lines of the table while its numbers stay in their columns",
                &[37311.0, 7425.0, 61422.0],
                &[("crossbeam bounded(0)", Some(&[9000.0]), Some(1.0))],
            ),
            result("tick_ns", "tick", &[0.5], &[]),
        ]
    }

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

    /// The start of every column is the same on every line, whatever the label lengths.
    #[test]
    fn columns_are_aligned_whatever_the_labels() {
        let table = render(&sample(), 40);
        let lines: Vec<&str> = table.lines().collect();
        let header = lines[0];
        let col = |name: &str| header.find(name).expect(name);
        let (ours, peer) = (col("ours:"), col("peer "));
        // Right-aligned columns end where their heading ends.
        let median_end = col("peer median") + "peer median".len();
        let ratio_end = col("ours/peer") + "ours/peer".len();
        let goal = col("goal");
        for line in &lines[1..] {
            assert!(
                line.chars().count() <= header.chars().count() + 20,
                "{line}"
            );
            // Labels stay left of the ours column.
            assert!(
                !line.get(..ours).unwrap_or(line).trim_end().contains("  "),
                "{line}"
            );
            for number in [
                "2.05 (2.00..2.50)",
                "37,311 (7,425..61,422)",
                "0.50 (0.50..0.50)",
            ] {
                if let Some(at) = line.find(number) {
                    assert_eq!(at, ours, "{line}");
                }
            }
            for name in ["corosensei", "context", "crossbeam bounded(0)"] {
                if let Some(at) = line.find(name) {
                    assert_eq!(at, peer, "{line}");
                }
            }
            for (value, end) in [("1.74", median_end), ("9,000", median_end)] {
                if let Some(at) = line.find(value) {
                    assert_eq!(at + value.len(), end, "{line}");
                }
            }
            for ratio in ["1.18", "4.15"] {
                if let Some(at) = line.find(ratio) {
                    assert_eq!(at + ratio.len(), ratio_end, "{line}");
                }
            }
            if let Some(at) = line.find("<= 1.0") {
                assert_eq!(at, goal, "{line}");
            }
        }
        // The long label wrapped, every word kept, and the numbers are on its first line.
        let long = lines
            .iter()
            .position(|l| l.starts_with("a label far"))
            .unwrap();
        assert!(lines[long].contains("37,311 (7,425..61,422)"));
        assert!(lines[long].contains("<= 1.0 not met"), "{}", lines[long]);
        let words: Vec<&str> = lines[long..]
            .iter()
            .take_while(|l| !l.starts_with("tick"))
            .map(|l| l.get(..ours).unwrap_or(l))
            .collect();
        assert_eq!(
            words
                .join(" ")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
            sample()[1]
                .row
                .label
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        );
        // The second peer has a line of its own, its numbers n/a.
        let context = lines.iter().find(|l| l.contains("context")).unwrap();
        assert!(context.contains("n/a"), "{context}");
        assert!(lines
            .iter()
            .any(|l| l.contains("1.18") && l.contains("<= 1.0 not met")));
    }
}
