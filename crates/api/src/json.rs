//! JSON writing the way Prometheus's encoder does it: label sets with
//! minimal escaping, other strings with `<`, `>` and `&` escaped too, and
//! the response envelope with optional warnings.

use axum::response::{IntoResponse, Response};
use hearth_model::Labels;

/// Appends `s` as a JSON string. `html_safe` escapes `<`, `>` and `&` as
/// Go's standard encoder does for ordinary strings.
pub fn write_str(out: &mut String, s: &str, html_safe: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' if html_safe => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            '\u{2028}' | '\u{2029}' if html_safe => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends a label set as a JSON object.
pub fn write_labels(out: &mut String, labels: &Labels) {
    out.push('{');
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, l.name, false);
        out.push(':');
        write_str(out, l.value, false);
    }
    out.push('}');
}

/// Appends an array of strings.
pub fn write_str_array(out: &mut String, values: &[String], html_safe: bool) {
    out.push('[');
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, v, html_safe);
    }
    out.push(']');
}

/// Prometheus keeps at most this many warnings, then says how many it cut.
const MAX_WARNINGS: usize = 10;

/// A success envelope around pre-rendered `data` JSON.
pub fn success(data: &str, warnings: &[String]) -> Response {
    success_with_infos(data, warnings, &[])
}

/// A success envelope with warnings and info-level annotations, each list
/// cut to ten entries plus a line saying how many were omitted.
pub fn success_with_infos(data: &str, warnings: &[String], infos: &[String]) -> Response {
    let mut body = String::with_capacity(data.len() + 64);
    body.push_str(r#"{"status":"success","data":"#);
    body.push_str(data);
    for (key, list, what) in [("warnings", warnings, "warning"), ("infos", infos, "info")] {
        if list.is_empty() {
            continue;
        }
        body.push_str(",\"");
        body.push_str(key);
        body.push_str("\":");
        let mut shown: Vec<String> = list.iter().take(MAX_WARNINGS).cloned().collect();
        if list.len() > MAX_WARNINGS {
            shown.push(format!(
                "{} more {what} annotations omitted",
                list.len() - MAX_WARNINGS
            ));
        }
        write_str_array(&mut body, &shown, true);
    }
    body.push('}');
    ([("content-type", "application/json")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_go() {
        let mut s = String::new();
        write_str(&mut s, "a<b>&\"\\\n\u{1}é", true);
        assert_eq!(s, r#""a\u003cb\u003e\u0026\"\\\n\u0001é""#);
        let mut s = String::new();
        write_labels(&mut s, &Labels::new([("a", "<x>"), ("__name__", "up")]));
        assert_eq!(s, r#"{"__name__":"up","a":"<x>"}"#);
    }
}
