//! Choosing a parser from a scrape response's `Content-Type`, as Prometheus
//! does (exposition spec §4.4).
//!
//! Only the media type counts; its parameters (`version`, `charset`,
//! `escaping`) are checked for syntax, as Go's `mime.ParseMediaType` does, but
//! ignored. `text/plain` of any version is the text format,
//! `application/openmetrics-text` of any version is OpenMetrics and
//! `application/vnd.google.protobuf` is the protobuf format (Prometheus
//! does not check its `proto=` and `encoding=` either).

use crate::entry::Format;
use crate::error::{Error, Result};

const OPENMETRICS: &str = "application/openmetrics-text";
const TEXT: &str = "text/plain";
const PROTOBUF: &str = "application/vnd.google.protobuf";

/// Prometheus 2's choice, which never fails: OpenMetrics when the media type
/// is `application/openmetrics-text`, protobuf when it is
/// `application/vnd.google.protobuf`, else (missing, unparsable or any other
/// type) the text format.
pub fn format_from_content_type(content_type: &str) -> Format {
    match media_type(content_type) {
        Ok(m) if m == OPENMETRICS => Format::OpenMetrics,
        Ok(m) if m == PROTOBUF => Format::PrometheusProto,
        _ => Format::Text004,
    }
}

/// Prometheus 3's choice: `application/openmetrics-text`, `text/plain` and
/// `application/vnd.google.protobuf` pick their parser; a missing (empty),
/// unparsable or other content type uses `fallback` (the job's
/// `fallback_scrape_protocol`) when set, and otherwise fails the scrape.
pub fn negotiate_format(content_type: &str, fallback: Option<Format>) -> Result<Format> {
    let unsupported = |reason: String| Error::UnsupportedContentType {
        content_type: content_type.to_string(),
        reason,
    };
    let no_fallback = |problem: &str| {
        fallback.ok_or_else(|| {
            unsupported(format!(
                "{problem} and no fallback_scrape_protocol specified for target"
            ))
        })
    };
    if content_type.is_empty() {
        return no_fallback("non-compliant scrape target sending blank Content-Type");
    }
    match media_type(content_type) {
        Err(reason) => no_fallback(&format!("cannot parse Content-Type ({reason})")),
        Ok(m) if m == OPENMETRICS => Ok(Format::OpenMetrics),
        Ok(m) if m == TEXT => Ok(Format::Text004),
        Ok(m) if m == PROTOBUF => Ok(Format::PrometheusProto),
        Ok(_) => no_fallback("received unsupported Content-Type"),
    }
}

/// Go's `mime.ParseMediaType`, keeping only the lowercased media type.
fn media_type(value: &str) -> Result<String, &'static str> {
    let (base, mut params) = match value.find(';') {
        Some(i) => (&value[..i], &value[i..]),
        None => (value, ""),
    };
    let media = base.trim().to_ascii_lowercase();
    let (kind, rest) = consume_token(&media);
    if kind.is_empty() {
        return Err("no media type");
    }
    if !rest.is_empty() {
        let Some(rest) = rest.strip_prefix('/') else {
            return Err("expected slash after first token");
        };
        let (subtype, rest) = consume_token(rest);
        if subtype.is_empty() {
            return Err("expected token after slash");
        }
        if !rest.is_empty() {
            return Err("unexpected content after media subtype");
        }
    }
    let mut seen: Vec<(String, String)> = Vec::new();
    loop {
        params = params.trim_start();
        if params.is_empty() {
            break;
        }
        match consume_param(params) {
            Some((key, value, rest)) => {
                if seen.iter().any(|(k, v)| *k == key && *v != value) {
                    return Err("duplicate parameter name");
                }
                seen.push((key, value));
                params = rest;
            }
            None if params.trim() == ";" => break,
            None => return Err("invalid media parameter"),
        }
    }
    Ok(media)
}

/// RFC 2045 token characters: printable ASCII except tspecials and space.
fn is_token_char(c: char) -> bool {
    c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?=".contains(c)
}

fn consume_token(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !is_token_char(c)).unwrap_or(s.len());
    s.split_at(end)
}

/// `; key = value` (value a token or quoted string), lowercased key.
fn consume_param(s: &str) -> Option<(String, String, &str)> {
    let rest = s.trim_start().strip_prefix(';')?.trim_start();
    let (key, rest) = consume_token(rest);
    if key.is_empty() {
        return None;
    }
    let rest = rest.trim_start().strip_prefix('=')?.trim_start();
    let (value, rest) = if let Some(quoted) = rest.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        loop {
            match chars.next()? {
                (i, '"') => break (value, &quoted[i + 1..]),
                (_, '\\') => value.push(chars.next()?.1),
                (_, c) => value.push(c),
            }
        }
    } else {
        let (value, rest) = consume_token(rest);
        if value.is_empty() {
            return None;
        }
        (value.to_string(), rest)
    };
    Some((key.to_ascii_lowercase(), value, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_2_falls_back_to_text() {
        for (ct, want) in [
            (
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                Format::OpenMetrics,
            ),
            (
                "application/openmetrics-text;version=0.0.1",
                Format::OpenMetrics,
            ),
            ("Application/OpenMetrics-Text", Format::OpenMetrics),
            ("text/plain; version=0.0.4; charset=utf-8", Format::Text004),
            (
                "text/plain; version=1.0.0; escaping=allow-utf-8",
                Format::Text004,
            ),
            ("", Format::Text004),
            ("text/html", Format::Text004),
            ("application/openmetrics-text; version", Format::Text004),
            ("garbage/", Format::Text004),
            (
                "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; \
                 encoding=delimited",
                Format::PrometheusProto,
            ),
        ] {
            assert_eq!(format_from_content_type(ct), want, "{ct:?}");
        }
    }

    #[test]
    fn prometheus_3_needs_a_known_type_or_a_fallback() {
        let ok = |ct: &str, fb| negotiate_format(ct, fb).unwrap();
        assert_eq!(
            ok(
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                None
            ),
            Format::OpenMetrics
        );
        assert_eq!(ok("text/plain", None), Format::Text004);
        assert_eq!(ok("text/plain;version=0.0.4;", None), Format::Text004);
        assert_eq!(ok("text/plain; charset=\"utf-8\"", None), Format::Text004);
        assert_eq!(ok("", Some(Format::OpenMetrics)), Format::OpenMetrics);
        assert_eq!(ok("text/html", Some(Format::Text004)), Format::Text004);
        assert_eq!(
            ok("text/plain; version", Some(Format::OpenMetrics)),
            Format::OpenMetrics
        );
        for ct in [
            "",
            "text/html",
            "text/plain; version",
            "text/plain; a=1; a=2",
            "/plain",
        ] {
            let err = negotiate_format(ct, None).unwrap_err();
            assert!(
                matches!(err, Error::UnsupportedContentType { .. }),
                "{ct:?}: {err}"
            );
        }
        let proto = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; \
                     encoding=delimited";
        assert_eq!(ok(proto, None), Format::PrometheusProto);
        assert_eq!(ok(proto, Some(Format::Text004)), Format::PrometheusProto);
        assert_eq!(
            ok("application/vnd.google.protobuf", None),
            Format::PrometheusProto
        );
        assert_eq!(
            ok("", Some(Format::PrometheusProto)),
            Format::PrometheusProto
        );
    }
}
