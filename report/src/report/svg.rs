//! `--svg FILE`: the report as a chart, written by hand. Each row with a time (its key has
//! `_ns`) is a group of horizontal bars, ours first and then each peer: the bar runs to the
//! median, a whisker spans min..max. The time axis is logarithmic (one gridline per decade),
//! so a 1 ns row and a 10 µs row are both readable on one chart.

use std::fmt::Write;

use super::format_ns;
use super::peered::RowResult;
use super::Measurement;

const WIDTH: f64 = 960.0;
/// Left of the bars (the series names stand left of it).
const BARS_LEFT: f64 = 250.0;
/// Room right of the bars for the value labels.
const BARS_RIGHT: f64 = WIDTH - 110.0;
const BAR_HEIGHT: f64 = 14.0;
const BAR_GAP: f64 = 4.0;
const ROW_LABEL_HEIGHT: f64 = 20.0;
const ROW_GAP: f64 = 12.0;
const TOP: f64 = 56.0;

/// `s` with the characters XML reserves escaped.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The rows the chart shows: those measured in time, not in % or bytes.
fn charted(r: &RowResult) -> bool {
    r.row.key.contains("_ns")
}

/// A positive finite time, or `None`.
fn positive(x: f64) -> Option<f64> {
    (x.is_finite() && x > 0.0).then_some(x)
}

/// The log scale: the decades `lo..hi` (powers of ten) that hold every value.
struct Scale {
    lo: i32,
    hi: i32,
}

impl Scale {
    fn of(values: impl Iterator<Item = f64>) -> Scale {
        let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.filter_map(positive) {
            min = min.min(v);
            max = max.max(v);
        }
        if !min.is_finite() {
            return Scale { lo: 0, hi: 1 };
        }
        let lo = min.log10().floor() as i32;
        let hi = (max.log10().ceil() as i32).max(lo + 1);
        Scale { lo, hi }
    }

    /// The x of `ns` (values at or below zero sit at the left edge).
    fn x(&self, ns: f64) -> f64 {
        let decades = f64::from(self.hi - self.lo);
        let at = positive(ns).map_or(f64::from(self.lo), f64::log10);
        let t = ((at - f64::from(self.lo)) / decades).clamp(0.0, 1.0);
        BARS_LEFT + t * (BARS_RIGHT - BARS_LEFT)
    }
}

/// A decade's label: `1 ns`, `10 ns`, `100 ns`, `1 µs`, ... (`0.1 ns` below).
fn decade_label(exponent: i32) -> String {
    let units = ["ns", "µs", "ms", "s"];
    if exponent < 0 {
        return format!("{} ns", 10f64.powi(exponent));
    }
    let unit = (exponent / 3).min(3) as usize;
    let value = 10u64.pow((exponent - 3 * unit as i32) as u32);
    format!("{value} {}", units[unit])
}

/// One series: its name and measurement (`None`: the peer is n/a, with the reason).
struct Series<'a> {
    name: &'a str,
    ours: bool,
    measurement: Result<&'a Measurement, &'static str>,
}

fn series(r: &RowResult) -> Vec<Series<'_>> {
    let mut s = vec![Series {
        name: "microthread",
        ours: true,
        measurement: Ok(&r.ours),
    }];
    for p in &r.peers {
        s.push(Series {
            name: p.peer.name,
            ours: false,
            measurement: p.measurement.as_ref().ok_or(p.missing().unwrap_or("n/a")),
        });
    }
    s
}

/// The chart of `results` as an SVG document; `title` heads it.
pub fn render(results: &[RowResult], title: &str) -> String {
    let rows: Vec<&RowResult> = results.iter().filter(|r| charted(r)).collect();
    let scale = Scale::of(rows.iter().flat_map(|r| {
        series(r)
            .into_iter()
            .filter_map(|s| s.measurement.ok())
            .flat_map(|m| [m.min(), m.max(), m.median()])
            .collect::<Vec<_>>()
    }));
    let bars: usize = rows.iter().map(|r| 1 + r.peers.len()).sum();
    let height = TOP
        + rows.len() as f64 * (ROW_LABEL_HEIGHT + ROW_GAP)
        + bars as f64 * (BAR_HEIGHT + BAR_GAP)
        + 30.0;

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="sans-serif" font-size="12">"#
    );
    out.push_str(
        "<style>.ours{fill:#2b6cb0}.peer{fill:#c05621}.whisker{stroke:#222;stroke-width:1.2}\
         .grid{stroke:#ccc;stroke-width:1}.na{fill:#888;font-style:italic}</style>\n",
    );
    let _ = writeln!(
        out,
        r#"<rect x="0" y="0" width="{WIDTH}" height="{height:.0}" fill="white"/>"#
    );
    let _ = writeln!(
        out,
        r#"<text x="10" y="20" font-size="15" font-weight="bold">{}</text>"#,
        escape(title)
    );
    let _ = writeln!(
        out,
        r#"<text x="10" y="38" fill="dimgray">ns per operation, log scale; bar: median, whisker: min..max; blue: microthread, orange: its peers</text>"#
    );
    // Gridlines, one per decade, labelled at the top.
    for e in scale.lo..=scale.hi {
        let x = scale.x(10f64.powi(e));
        let _ = writeln!(
            out,
            r#"<line class="grid" x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}"/>"#,
            TOP - 4.0,
            height - 24.0
        );
        let _ = writeln!(
            out,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="dimgray">{}</text>"#,
            height - 10.0,
            escape(&decade_label(e))
        );
    }

    let mut y = TOP;
    for r in &rows {
        let _ = writeln!(
            out,
            r#"<text x="10" y="{:.1}" font-weight="bold">{}</text>"#,
            y + 14.0,
            escape(r.row.label)
        );
        y += ROW_LABEL_HEIGHT;
        for s in series(r) {
            let mid = y + BAR_HEIGHT / 2.0;
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                BARS_LEFT - 6.0,
                mid + 4.0,
                escape(s.name)
            );
            match s.measurement {
                Ok(m) => {
                    let class = if s.ours { "bar ours" } else { "bar peer" };
                    let end = scale.x(m.median());
                    let _ = writeln!(
                        out,
                        r#"<rect class="{class}" x="{BARS_LEFT:.1}" y="{y:.1}" width="{:.1}" height="{BAR_HEIGHT:.1}"><title>{}: median {} ns, min {} ns, max {} ns</title></rect>"#,
                        (end - BARS_LEFT).max(1.0),
                        escape(s.name),
                        format_ns(m.median()),
                        format_ns(m.min()),
                        format_ns(m.max())
                    );
                    let (x0, x1) = (scale.x(m.min()), scale.x(m.max()));
                    let _ = writeln!(
                        out,
                        r#"<path class="whisker" d="M{x0:.1} {mid:.1}H{x1:.1}M{x0:.1} {:.1}V{:.1}M{x1:.1} {:.1}V{:.1}"/>"#,
                        mid - 4.0,
                        mid + 4.0,
                        mid - 4.0,
                        mid + 4.0
                    );
                    let _ = writeln!(
                        out,
                        r#"<text x="{:.1}" y="{:.1}">{} ns</text>"#,
                        x1.max(end) + 6.0,
                        mid + 4.0,
                        format_ns(m.median())
                    );
                }
                Err(why) => {
                    let _ = writeln!(
                        out,
                        r#"<text class="na" x="{:.1}" y="{:.1}">{}</text>"#,
                        BARS_LEFT + 4.0,
                        mid + 4.0,
                        escape(why)
                    );
                }
            }
            y += BAR_HEIGHT + BAR_GAP;
        }
        y += ROW_GAP;
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::super::table::tests::{result, sample};
    use super::*;

    /// The tags of an XML-ish text, checked to nest: returns the element names in order of
    /// opening, or an error naming the first mismatch.
    fn elements(text: &str) -> Result<Vec<String>, String> {
        let mut stack: Vec<String> = Vec::new();
        let mut opened = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find('<') {
            let end = rest[start..].find('>').ok_or("an unclosed tag")? + start;
            let tag = &rest[start + 1..end];
            rest = &rest[end + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                match stack.pop() {
                    Some(open) if open == name.trim() => {}
                    other => return Err(format!("</{name}> closes {other:?}")),
                }
            } else {
                let name: String = tag
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '/')
                    .collect();
                if name.is_empty() {
                    return Err(format!("a tag without a name: <{tag}>"));
                }
                // Attributes come in name="value" pairs: an even number of quotes.
                if tag.matches('"').count() % 2 != 0 {
                    return Err(format!("unbalanced quotes in <{tag}>"));
                }
                opened.push(name.clone());
                if !tag.ends_with('/') {
                    stack.push(name);
                }
            }
        }
        if stack.is_empty() {
            Ok(opened)
        } else {
            Err(format!("never closed: {stack:?}"))
        }
    }

    #[test]
    fn the_tag_checker_finds_mismatches() {
        assert!(elements("<a><b/></a>").is_ok());
        assert!(elements("<a><b></a>").is_err());
        assert!(elements("<a>").is_err());
        assert!(elements("<a x=\"1></a>").is_err());
    }

    #[test]
    fn one_bar_per_row_and_per_measured_peer_balanced_and_finite() {
        let mut results = sample();
        // A row that is not a time is left out; a label with XML's characters is escaped.
        results.push(result("fair_pct", "fairness <%>", &[25.0], &[]));
        results.push(result(
            "x_ns",
            "a < b & \"c\"",
            &[1500.0, 1000.0, 2000.0],
            &[("peer & co", Some(&[3000.0]), None)],
        ));
        let svg = render(&results, "microthread report: <test>");
        let names = elements(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        assert_eq!(names.first().map(String::as_str), Some("svg"));
        // Rows with `_ns`: switch, long, tick, x: four bars of ours.
        assert_eq!(svg.matches(r#"class="bar ours""#).count(), 4);
        // Measured peers: corosensei, crossbeam, peer & co (context is n/a).
        assert_eq!(svg.matches(r#"class="bar peer""#).count(), 3);
        assert_eq!(svg.matches(r#"class="whisker""#).count(), 7);
        assert!(svg.contains("n/a on this target"), "{svg}");
        assert!(!svg.contains("fairness"));
        assert!(svg.contains("a &lt; b &amp; &quot;c&quot;"));
        for bad in ["NaN", "inf", "-0.0 "] {
            assert!(!svg.contains(bad), "{bad} in\n{svg}");
        }
        // The log axis spans every value: 0.5 ns to 61 µs is 0.1 ns .. 100 µs.
        assert!(
            svg.contains(">0.1 ns<") && svg.contains(">100 µs<"),
            "{svg}"
        );
        // Every bar's width is positive and inside the chart.
        for part in svg.split(r#"width=""#).skip(2) {
            let w: f64 = part[..part.find('"').unwrap()].parse().unwrap();
            assert!(w > 0.0 && w <= WIDTH, "{w}");
        }
    }

    #[test]
    fn decades() {
        assert_eq!(decade_label(0), "1 ns");
        assert_eq!(decade_label(2), "100 ns");
        assert_eq!(decade_label(3), "1 µs");
        assert_eq!(decade_label(7), "10 ms");
        assert_eq!(decade_label(-1), "0.1 ns");
        let s = Scale::of([1.0, 1000.0].into_iter());
        assert_eq!((s.lo, s.hi), (0, 3));
        assert_eq!(s.x(1.0), BARS_LEFT);
        assert_eq!(s.x(1000.0), BARS_RIGHT);
        assert_eq!(s.x(f64::NAN), BARS_LEFT);
        let empty = Scale::of(std::iter::empty());
        assert_eq!((empty.lo, empty.hi), (0, 1));
    }
}
