//! The small lexical pieces the script language shares with PromQL and Go:
//! durations, numbers, Go-quoted strings and label sets.

use hearth_model::Labels;

/// Parses a Prometheus duration (`5m`, `1h30m`, `100ms`, `0`) into
/// milliseconds. No sign, no fractions.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err("empty duration".into());
    }
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 24 * 3_600_000),
        ("w", 7 * 24 * 3_600_000),
        ("d", 24 * 3_600_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total: i64 = 0;
    let mut last_unit = usize::MAX;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(format!("invalid duration {s:?}"));
        }
        let n: i64 = s[start..i]
            .parse()
            .map_err(|_| format!("invalid duration {s:?}"))?;
        let ustart = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[ustart..i];
        let Some(idx) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(format!("invalid duration {s:?}: unknown unit {unit:?}"));
        };
        if last_unit != usize::MAX && idx <= last_unit {
            return Err(format!("invalid duration {s:?}: units out of order"));
        }
        last_unit = idx;
        total = n
            .checked_mul(UNITS[idx].1)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("duration {s:?} out of range"))?;
    }
    Ok(total)
}

/// Parses a float as Go's `strconv.ParseFloat` does for the forms the
/// scripts use: decimals, exponents, `Inf`/`NaN` in any case, with a sign.
pub fn parse_float(s: &str) -> Option<f64> {
    if s.is_empty() || s.contains('_') {
        return None;
    }
    let body = s.trim_start_matches(['+', '-']);
    if body.len() + 1 < s.len() {
        return None;
    }
    if body.starts_with(|c: char| c.is_ascii_alphabetic()) {
        let neg = s.starts_with('-');
        return match body.to_ascii_lowercase().as_str() {
            "inf" | "infinity" => Some(if neg {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            }),
            "nan" => Some(f64::NAN),
            _ => None,
        };
    }
    s.parse().ok()
}

/// Parses a whole line as a number the way the Go runner's scalar check
/// does: first `strconv.ParseInt(s, 0, 64)` (base prefixes `0x`, `0o`,
/// `0b`, a leading `0` for octal), then `strconv.ParseFloat`.
pub fn parse_scalar_line(s: &str) -> Option<f64> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let int = if let Some(h) = lower.strip_prefix("0x") {
        i64::from_str_radix(&h.replace('_', ""), 16).ok()
    } else if let Some(o) = lower.strip_prefix("0o") {
        i64::from_str_radix(&o.replace('_', ""), 8).ok()
    } else if let Some(b) = lower.strip_prefix("0b") {
        i64::from_str_radix(&b.replace('_', ""), 2).ok()
    } else if lower.len() > 1 && lower.starts_with('0') && lower.bytes().all(|c| c.is_ascii_digit())
    {
        i64::from_str_radix(&lower[1..], 8).ok()
    } else if !lower.is_empty() && lower.bytes().all(|c| c.is_ascii_digit()) {
        lower.parse::<i64>().ok()
    } else {
        None
    };
    if let Some(i) = int {
        let v = i as f64;
        return Some(if neg { -v } else { v });
    }
    parse_float(s)
}

/// Reads a Go/PromQL string literal (`"…"`, `'…'` or `` `…` ``) at the start
/// of `s`; returns the unquoted text and the number of bytes consumed.
pub fn read_quoted(s: &str) -> Result<(String, usize), String> {
    let mut chars = s.char_indices();
    let Some((_, quote)) = chars.next() else {
        return Err("expected a quoted string".into());
    };
    if !matches!(quote, '"' | '\'' | '`') {
        return Err(format!("expected a quoted string at {s:?}"));
    }
    let mut out = String::new();
    if quote == '`' {
        for (i, c) in chars {
            if c == '`' {
                return Ok((out, i + 1));
            }
            out.push(c);
        }
        return Err("unterminated raw string".into());
    }
    while let Some((i, c)) = chars.next() {
        if c == quote {
            return Ok((out, i + 1));
        }
        if c == '\n' {
            return Err("newline in string".into());
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some((_, e)) = chars.next() else {
            break;
        };
        let mut hex = |n: usize| -> Result<u32, String> {
            let mut v = 0u32;
            for _ in 0..n {
                let d = chars
                    .next()
                    .and_then(|(_, c)| c.to_digit(16))
                    .ok_or("invalid escape in string")?;
                v = v * 16 + d;
            }
            Ok(v)
        };
        match e {
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\x0b'),
            '\\' => out.push('\\'),
            '\'' | '"' => out.push(e),
            'x' => {
                let v = hex(2)?;
                out.push(char::from_u32(v).ok_or("invalid escape")?);
            }
            'u' => {
                let v = hex(4)?;
                out.push(char::from_u32(v).ok_or("invalid unicode escape")?);
            }
            'U' => {
                let v = hex(8)?;
                out.push(char::from_u32(v).ok_or("invalid unicode escape")?);
            }
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    let d = chars
                        .next()
                        .and_then(|(_, c)| c.to_digit(8))
                        .ok_or("invalid octal escape")?;
                    v = v * 8 + d;
                }
                out.push(char::from_u32(v).ok_or("invalid octal escape")?);
            }
            other => return Err(format!("unknown escape sequence \\{other}")),
        }
    }
    Err("unterminated string".into())
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

/// Reads an identifier (metric or label name) at the start of `s`.
fn read_name(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    if b.is_empty() || !is_name_start(b[0]) {
        return None;
    }
    let end = b.iter().position(|&c| !is_name_char(c)).unwrap_or(b.len());
    Some(&s[..end])
}

/// Reads a series' label set at the start of `s`: `name`, `name{l="v", …}`,
/// `{__name__="m", l="v"}`, `{"utf8.name", l="v"}` or `{}`. Returns the
/// labels and the rest of the text.
pub fn read_labels(s: &str) -> Result<(Labels, &str), String> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut rest = s;
    if let Some(name) = read_name(rest) {
        pairs.push(("__name__".into(), name.to_string()));
        rest = &rest[name.len()..];
    }
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let name = if let Some(n) = read_name(rest) {
                rest = &rest[n.len()..];
                n.to_string()
            } else if rest.starts_with(['"', '\'', '`']) {
                let (n, used) = read_quoted(rest)?;
                rest = &rest[used..];
                n
            } else {
                return Err(format!("unexpected {:?} in label set", first_char(rest)));
            };
            rest = rest.trim_start();
            if rest.starts_with([',', '}']) {
                // A lone quoted name is the metric name.
                pairs.push(("__name__".into(), name));
            } else {
                rest = rest
                    .strip_prefix('=')
                    .filter(|r| !r.starts_with('~'))
                    .ok_or_else(|| format!("expected \"=\" after label name {name:?}"))?
                    .trim_start();
                let (v, used) = read_quoted(rest)?;
                rest = &rest[used..];
                pairs.push((name, v));
            }
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
            } else if !rest.starts_with('}') {
                return Err(format!("unexpected {:?} in label set", first_char(rest)));
            }
        }
    } else if pairs.is_empty() {
        return Err(format!("expected a series, got {:?}", first_char(rest)));
    }
    Ok((Labels::new(pairs), rest))
}

fn first_char(s: &str) -> String {
    s.chars()
        .next()
        .map_or_else(|| "end of line".into(), String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("5m"), Ok(300_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("1m30s500ms"), Ok(90_500));
        assert_eq!(parse_duration("100ms"), Ok(100));
        assert_eq!(parse_duration("1y"), Ok(365 * 86_400_000));
        assert!(parse_duration("-5m").is_err());
        assert!(parse_duration("1.5m").is_err());
        assert!(parse_duration("30s1m").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn scalar_lines() {
        assert_eq!(parse_scalar_line("0x10"), Some(16.0));
        assert_eq!(parse_scalar_line("010"), Some(8.0));
        assert_eq!(parse_scalar_line("-1e3"), Some(-1000.0));
        assert_eq!(parse_scalar_line("+Inf"), Some(f64::INFINITY));
        assert!(parse_scalar_line("NaN").is_some_and(f64::is_nan));
        assert_eq!(parse_scalar_line("{} 1"), None);
        assert_eq!(parse_scalar_line("foo"), None);
    }

    #[test]
    fn quoted() {
        assert_eq!(read_quoted(r#""a\"b" rest"#), Ok(("a\"b".into(), 6)));
        assert_eq!(read_quoted("'x\\n'"), Ok(("x\n".into(), 5)));
        assert_eq!(read_quoted("`a\\b`"), Ok(("a\\b".into(), 5)));
        assert_eq!(read_quoted(r#""\u00e9""#), Ok(("é".into(), 8)));
        assert!(read_quoted("\"open").is_err());
    }

    #[test]
    fn label_sets() {
        let (l, rest) = read_labels(r#"m{b="2", a='1',} 1 2"#).expect("parses");
        assert_eq!(l, Labels::new([("__name__", "m"), ("a", "1"), ("b", "2")]));
        assert_eq!(rest, " 1 2");
        let (l, _) = read_labels(r#"{"my.metric", x="y"} 1"#).expect("parses");
        assert_eq!(l.get("__name__"), Some("my.metric"));
        let (l, _) = read_labels("{} 1").expect("parses");
        assert!(l.is_empty());
        assert!(read_labels(r#"m{a=~"x"} 1"#).is_err());
        assert!(read_labels("1 2").is_err());
    }
}
