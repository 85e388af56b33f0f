//! `/api/v1/parse_query`: the query's syntax tree as JSON, in the shape of
//! Prometheus's `translateAST` (specs/http-api.md §3.8). Prometheus's UI
//! is its only known client.
//!
//! Prometheus writes each node as a Go map, so keys come out sorted; so do
//! they here. Keys Prometheus 3 added for syntax this parser does not read
//! (duration expressions, `anchored`, `smoothed`) are always present, as
//! `null` or `false`.

use std::time::{Duration, SystemTime};

use axum::response::Response;
use promql_parser::label::{MatchOp, Matcher, Matchers};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{
    AggregateExpr, AtModifier, BinaryExpr, Call, Expr, LabelModifier, Offset,
    VectorMatchCardinality, VectorSelector,
};

use crate::error::{ApiError, ApiResult};
use crate::json;
use crate::params::Params;
use crate::query::format_value_plain;

pub async fn handle(params: Params) -> ApiResult<Response> {
    let query = params.get("query").unwrap_or_default();
    let expr =
        promql_parser::parser::parse(query).map_err(|e| ApiError::invalid_param("query", e))?;
    let mut out = String::with_capacity(256);
    write_node(&mut out, &expr);
    Ok(json::success(&out, &[]))
}

/// Appends one node as a JSON object, recursing into its operands.
pub fn write_node(out: &mut String, expr: &Expr) {
    match expr {
        Expr::Aggregate(a) => write_aggregate(out, a),
        Expr::Binary(b) => write_binary(out, b),
        Expr::Call(c) => write_call(out, c),
        Expr::MatrixSelector(m) => {
            let vs = &m.vs;
            out.push('{');
            out.push_str(r#""anchored":false,"matchers":"#);
            write_matchers(out, vs);
            out.push_str(r#","name":"#);
            json::write_str(out, vs.name.as_deref().unwrap_or(""), true);
            out.push_str(r#","offset":"#);
            out.push_str(&offset_ms(vs.offset.as_ref()).to_string());
            out.push_str(r#","offsetExpr":null,"range":"#);
            out.push_str(&millis(m.range).to_string());
            out.push_str(r#","rangeExpr":null,"smoothed":false"#);
            write_at(out, vs.at.as_ref());
            out.push_str(r#","type":"matrixSelector"}"#);
        }
        Expr::Subquery(s) => {
            out.push_str(r#"{"expr":"#);
            write_node(out, &s.expr);
            out.push_str(r#","offset":"#);
            out.push_str(&offset_ms(s.offset.as_ref()).to_string());
            out.push_str(r#","offsetExpr":null,"range":"#);
            out.push_str(&millis(s.range).to_string());
            out.push_str(r#","rangeExpr":null"#);
            // Prometheus writes the start/end marker before the step here:
            // keys are sorted.
            match s.at.as_ref() {
                Some(AtModifier::Start) => out.push_str(r#","startOrEnd":"start""#),
                Some(AtModifier::End) => out.push_str(r#","startOrEnd":"end""#),
                _ => out.push_str(r#","startOrEnd":null"#),
            }
            out.push_str(r#","step":"#);
            out.push_str(&s.step.map(millis).unwrap_or(0).to_string());
            out.push_str(r#","stepExpr":null,"timestamp":"#);
            match s.at.as_ref() {
                Some(AtModifier::At(t)) => out.push_str(&unix_ms(*t).to_string()),
                _ => out.push_str("null"),
            }
            out.push_str(r#","type":"subquery"}"#);
        }
        Expr::NumberLiteral(n) => {
            out.push_str(r#"{"type":"numberLiteral","val":"#);
            json::write_str(out, &format_value_plain(n.val), true);
            out.push('}');
        }
        Expr::StringLiteral(s) => {
            out.push_str(r#"{"type":"stringLiteral","val":"#);
            json::write_str(out, &s.val, true);
            out.push('}');
        }
        Expr::Paren(p) => {
            out.push_str(r#"{"expr":"#);
            write_node(out, &p.expr);
            out.push_str(r#","type":"parenExpr"}"#);
        }
        Expr::Unary(u) => {
            // The parser keeps only unary minus (a unary plus is dropped).
            out.push_str(r#"{"expr":"#);
            write_node(out, &u.expr);
            out.push_str(r#","op":"-","type":"unaryExpr"}"#);
        }
        Expr::VectorSelector(vs) => {
            out.push_str(r#"{"anchored":false,"matchers":"#);
            write_matchers(out, vs);
            out.push_str(r#","name":"#);
            json::write_str(out, vs.name.as_deref().unwrap_or(""), true);
            out.push_str(r#","offset":"#);
            out.push_str(&offset_ms(vs.offset.as_ref()).to_string());
            out.push_str(r#","offsetExpr":null,"smoothed":false"#);
            write_at(out, vs.at.as_ref());
            out.push_str(r#","type":"vectorSelector"}"#);
        }
        // The parser never produces extensions.
        Expr::Extension(_) => out.push_str("null"),
    }
}

fn write_aggregate(out: &mut String, a: &AggregateExpr) {
    out.push_str(r#"{"expr":"#);
    write_node(out, &a.expr);
    out.push_str(r#","grouping":"#);
    let labels = a
        .modifier
        .as_ref()
        .map(|m| m.labels().labels.clone())
        .unwrap_or_default();
    json::write_str_array(out, &labels, true);
    out.push_str(r#","op":"#);
    json::write_str(out, &a.op.to_string(), true);
    out.push_str(r#","param":"#);
    match &a.param {
        Some(p) => write_node(out, p),
        None => out.push_str("null"),
    }
    out.push_str(r#","type":"aggregation","without":"#);
    let without = matches!(a.modifier, Some(LabelModifier::Exclude(_)));
    out.push_str(if without { "true" } else { "false" });
    out.push('}');
}

fn write_binary(out: &mut String, b: &BinaryExpr) {
    out.push_str(r#"{"bool":"#);
    out.push_str(if b.return_bool() { "true" } else { "false" });
    out.push_str(r#","lhs":"#);
    write_node(out, &b.lhs);
    out.push_str(r#","matching":"#);
    // Prometheus drops vector matching unless both sides are vectors.
    if b.lhs.value_type() == ValueType::Vector && b.rhs.value_type() == ValueType::Vector {
        let modifier = b.modifier.clone().unwrap_or_default();
        let card = match &modifier.card {
            VectorMatchCardinality::OneToOne => "one-to-one",
            VectorMatchCardinality::ManyToOne(_) => "many-to-one",
            VectorMatchCardinality::OneToMany(_) => "one-to-many",
            VectorMatchCardinality::ManyToMany => "many-to-many",
        };
        out.push_str(r#"{"card":""#);
        out.push_str(card);
        out.push_str(r#"","fillValues":{"lhs":"#);
        write_fill(out, modifier.fill_values.lhs);
        out.push_str(r#","rhs":"#);
        write_fill(out, modifier.fill_values.rhs);
        out.push_str(r#"},"include":"#);
        let include = modifier
            .card
            .labels()
            .map(|l| l.labels.clone())
            .unwrap_or_default();
        json::write_str_array(out, &include, true);
        out.push_str(r#","labels":"#);
        let labels = modifier
            .matching
            .as_ref()
            .map(|m| m.labels().labels.clone())
            .unwrap_or_default();
        json::write_str_array(out, &labels, true);
        out.push_str(r#","on":"#);
        let on = matches!(modifier.matching, Some(LabelModifier::Include(_)));
        out.push_str(if on { "true" } else { "false" });
        out.push('}');
    } else {
        out.push_str("null");
    }
    out.push_str(r#","op":"#);
    json::write_str(out, &b.op.to_string(), true);
    out.push_str(r#","rhs":"#);
    write_node(out, &b.rhs);
    out.push_str(r#","type":"binaryExpr"}"#);
}

/// A fill value is a JSON number; JSON has no NaN or infinities, so those
/// are written as Prometheus writes sample values, in a string.
fn write_fill(out: &mut String, v: Option<f64>) {
    match v {
        None => out.push_str("null"),
        Some(v) if v.is_finite() => out.push_str(&format_value_plain(v)),
        Some(v) => json::write_str(out, &format_value_plain(v), true),
    }
}

fn write_call(out: &mut String, c: &Call) {
    out.push_str(r#"{"args":["#);
    for (i, arg) in c.args.args.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_node(out, arg);
    }
    out.push_str(r#"],"func":{"argTypes":["#);
    for (i, t) in c.func.arg_types.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::write_str(out, &t.to_string(), true);
    }
    out.push_str(r#"],"name":"#);
    json::write_str(out, c.func.name, true);
    out.push_str(r#","returnType":"#);
    json::write_str(out, &c.func.return_type.to_string(), true);
    out.push_str(r#","variadic":"#);
    out.push_str(&c.func.variadic.to_string());
    out.push_str(r#"},"type":"call"}"#);
}

/// The matchers as Prometheus lists them: those in braces, then the one for
/// a metric name written before them.
fn write_matchers(out: &mut String, vs: &VectorSelector) {
    let Matchers {
        matchers,
        or_matchers,
    } = &vs.matchers;
    let mut all: Vec<&Matcher> = matchers
        .iter()
        .chain(or_matchers.iter().flatten())
        .collect();
    let name_matcher = vs
        .name
        .as_ref()
        .map(|n| Matcher::new(MatchOp::Equal, "__name__", n));
    all.extend(name_matcher.as_ref());
    out.push('[');
    for (i, m) in all.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r#"{"name":"#);
        json::write_str(out, &m.name, true);
        out.push_str(r#","type":"#);
        let op = match m.op {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Re(_) => "=~",
            MatchOp::NotRe(_) => "!~",
        };
        json::write_str(out, op, true);
        out.push_str(r#","value":"#);
        json::write_str(out, &m.value, true);
        out.push('}');
    }
    out.push(']');
}

/// `"startOrEnd"` and `"timestamp"` of a selector's `@` modifier.
fn write_at(out: &mut String, at: Option<&AtModifier>) {
    match at {
        Some(AtModifier::Start) => out.push_str(r#","startOrEnd":"start","timestamp":null"#),
        Some(AtModifier::End) => out.push_str(r#","startOrEnd":"end","timestamp":null"#),
        Some(AtModifier::At(t)) => {
            out.push_str(r#","startOrEnd":null,"timestamp":"#);
            out.push_str(&unix_ms(*t).to_string());
        }
        None => out.push_str(r#","startOrEnd":null,"timestamp":null"#),
    }
}

fn millis(d: Duration) -> i128 {
    d.as_millis() as i128
}

fn offset_ms(offset: Option<&Offset>) -> i128 {
    match offset {
        Some(Offset::Pos(d)) => millis(*d),
        Some(Offset::Neg(d)) => -millis(*d),
        None => 0,
    }
}

/// Milliseconds since the epoch, negative before it.
fn unix_ms(t: SystemTime) -> i128 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => millis(d),
        Err(e) => -millis(e.duration()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ast(q: &str) -> serde_json::Value {
        let mut out = String::new();
        write_node(&mut out, &promql_parser::parser::parse(q).unwrap());
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{q}: {e}: {out}"))
    }

    #[test]
    fn keys_are_sorted_like_go_maps() {
        let mut out = String::new();
        let q = r#"sum by (job) (rate(foo{a="b"}[5m] offset 1m)) / on(job) group_left(x) bar @ 10 > bool 2"#;
        write_node(&mut out, &promql_parser::parser::parse(q).unwrap());
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        // serde_json's map keeps keys sorted; the text must already be
        // (serde_json does not escape `<`, `>` and `&` as Go does).
        let plain = out
            .replace("\\u003c", "<")
            .replace("\\u003e", ">")
            .replace("\\u0026", "&");
        assert_eq!(v.to_string(), plain);
    }

    #[test]
    fn selectors_list_the_name_matcher_last() {
        let v = ast(r#"foo{a=~"x.*"}"#);
        assert_eq!(
            v["matchers"],
            serde_json::json!([
                {"name": "a", "type": "=~", "value": "x.*"},
                {"name": "__name__", "type": "=", "value": "foo"}
            ])
        );
        let v = ast("foo[5m] offset -1m @ start()");
        assert_eq!(v["type"], "matrixSelector");
        assert_eq!(v["range"], 300_000);
        assert_eq!(v["offset"], -60_000);
        assert_eq!(v["startOrEnd"], "start");
        assert_eq!(v["timestamp"], serde_json::Value::Null);
    }

    #[test]
    fn scalar_operands_have_no_matching() {
        assert_eq!(ast("foo * 2")["matching"], serde_json::Value::Null);
        assert_eq!(ast("foo and bar")["matching"]["card"], "many-to-many");
        assert_eq!(ast("-1.5e-7")["val"], "-0.00000015");
    }
}
