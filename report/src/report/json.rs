//! Just enough JSON writing for one flat object: string, number and boolean members.

use std::fmt::Write;

/// A JSON object being written, members in insertion order.
#[derive(Default)]
pub struct Object {
    members: Vec<(String, String)>,
}

impl Object {
    /// An empty object.
    pub fn new() -> Object {
        Object::default()
    }

    /// Adds a string member.
    pub fn string(&mut self, key: &str, value: &str) -> &mut Object {
        self.members.push((key.to_string(), quote(value)));
        self
    }

    /// Adds a number member; NaN and infinities (not JSON numbers) become `null`.
    pub fn number(&mut self, key: &str, value: f64) -> &mut Object {
        self.members.push((key.to_string(), number(value)));
        self
    }

    /// Adds an integer member.
    pub fn integer(&mut self, key: &str, value: u64) -> &mut Object {
        self.members.push((key.to_string(), value.to_string()));
        self
    }

    /// Adds a boolean member.
    pub fn boolean(&mut self, key: &str, value: bool) -> &mut Object {
        self.members.push((key.to_string(), value.to_string()));
        self
    }

    /// The object as pretty-printed JSON (two-space indent), without a trailing newline.
    pub fn render(&self) -> String {
        if self.members.is_empty() {
            return "{}".to_string();
        }
        let mut out = String::from("{\n");
        for (i, (key, value)) in self.members.iter().enumerate() {
            let comma = if i + 1 < self.members.len() { "," } else { "" };
            let _ = writeln!(out, "  {}: {value}{comma}", quote(key));
        }
        out.push('}');
        out
    }
}

/// `s` as a JSON string literal.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `x` as a JSON number with three decimals (trailing zeros trimmed), or `null`.
pub fn number(x: f64) -> String {
    if !x.is_finite() {
        return "null".to_string();
    }
    let s = format!("{x:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        assert_eq!(quote("a\"b\\c\nd\u{1}"), r#""a\"b\\c\nd\u0001""#);
        assert_eq!(quote("AMD EPYC™"), "\"AMD EPYC™\"");
    }

    #[test]
    fn numbers() {
        assert_eq!(number(4.0), "4");
        assert_eq!(number(4.125), "4.125");
        assert_eq!(number(4.1), "4.1");
        assert_eq!(number(10732.0), "10732");
        assert_eq!(number(-0.0001), "0");
        assert_eq!(number(f64::NAN), "null");
        assert_eq!(number(f64::INFINITY), "null");
    }

    #[test]
    fn object() {
        let mut o = Object::new();
        o.string("arch", "x86_64")
            .number("x_ns", 1.5)
            .integer("n", 3)
            .boolean("b", false);
        assert_eq!(
            o.render(),
            "{\n  \"arch\": \"x86_64\",\n  \"x_ns\": 1.5,\n  \"n\": 3,\n  \"b\": false\n}"
        );
        assert_eq!(Object::new().render(), "{}");
    }
}
