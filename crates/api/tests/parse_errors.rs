//! PromQL parse errors through the HTTP API, and `/api/v1/parse_query`.
//!
//! The router is driven in-process over an empty storage. Every expected
//! message is what Prometheus 2.42 answered for the same query (its parse
//! error positions are Prometheus 3's too), except where a comment says
//! Prometheus 3 differs.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::Empty;
use hearth_api::router;
use http_body_util::BodyExt;
use tower::ServiceExt;

fn app() -> axum::Router {
    router(common::state(Arc::new(Empty), Default::default(), None))
}

fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

async fn send(req: Request<Body>) -> (StatusCode, serde_json::Value) {
    let resp = app().oneshot(req).await.expect("the router answers");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("a body").to_bytes();
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)));
    (status, json)
}

async fn get(path: &str, pairs: &[(&str, &str)]) -> (StatusCode, serde_json::Value) {
    let uri = format!("{path}?{}", form(pairs));
    send(Request::get(uri).body(Body::empty()).unwrap()).await
}

async fn post(path: &str, pairs: &[(&str, &str)]) -> (StatusCode, serde_json::Value) {
    let req = Request::post(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(form(pairs)))
        .unwrap();
    send(req).await
}

/// Bad queries and Prometheus's message for each (after
/// `invalid parameter "query": `).
const BAD_QUERIES: &[(&str, &str)] = &[
    // Lexical errors, where the lexer stopped.
    ("foo{", "1:5: parse error: unexpected end of input inside braces"),
    ("sum(foo", "1:8: parse error: unclosed left parenthesis"),
    ("foo)", "1:5: parse error: unexpected right parenthesis ')'"),
    ("foo}", "1:4: parse error: unexpected character: '}'"),
    ("foo]", "1:4: parse error: unexpected right bracket ']'"),
    ("foo[5m", "1:7: parse error: unclosed left bracket"),
    ("foo[", "1:5: parse error: missing unit character in duration"),
    ("foo[5x]", r#"1:5: parse error: bad duration syntax: "5""#),
    ("5x", r#"1:1: parse error: bad number or duration syntax: "5""#),
    ("foo{a!}", "1:6: parse error: unexpected character after '!' inside braces: '}'"),
    ("foo{1}", "1:5: parse error: unexpected character inside braces: '1'"),
    ("foo =~ bar", "1:5: parse error: unexpected character after '=': '~'"),
    ("foo;", "1:4: parse error: unexpected character: ';'"),
    ("'unterminated", "1:1: parse error: unterminated quoted string"),
    (r#"foo{a="\q"}"#, "1:7: parse error: unknown escape sequence U+0071 'q'"),
    ("foo[5m:1m:2m]", "1:10: parse error: unexpected colon ':'"),
    // Syntax errors, at the unexpected token.
    ("1 +", "1:4: parse error: unexpected end of input"),
    ("foo bar", r#"1:5: parse error: unexpected identifier "bar""#),
    ("1.2.3", r#"1:4: parse error: unexpected number ".3""#),
    ("* foo", "1:1: parse error: unexpected <op:*>"),
    ("foo bool bar", "1:5: parse error: unexpected <bool>"),
    ("foo offset", "1:11: parse error: unexpected end of input in offset, expected duration"),
    ("foo @ bar", r#"1:7: parse error: unexpected identifier "bar" in @, expected timestamp"#),
    ("sum by foo", r#"1:8: parse error: unexpected identifier "foo" in grouping opts, expected "(""#),
    ("sum by (a) foo", r#"1:12: parse error: unexpected identifier "foo" in aggregation"#),
    ("sum(foo) by (a) by (b)", "1:17: parse error: unexpected <by>"),
    ("sum by (a b) (foo)", r#"1:11: parse error: unexpected identifier "b" in grouping opts, expected "," or ")""#),
    ("sum by (,) (foo)", r#"1:9: parse error: unexpected "," in grouping opts, expected label"#),
    ("foo{a=b}", r#"1:7: parse error: unexpected identifier "b" in label matching, expected string"#),
    ("foo{a=~}", r#"1:8: parse error: unexpected "}" in label matching, expected string"#),
    ("foo{,}", r#"1:5: parse error: unexpected "," in label matching, expected identifier or "}""#),
    ("foo[5m 1m]", r#"1:8: parse error: unexpected duration "1m" in subquery or range, expected ":" or "]""#),
    ("foo \"abcdefghijklmnop\"", r#"1:5: parse error: unexpected string "\"abcdefghi"..."#),
    ("sum(foo,)", "1:8: parse error: trailing commas not allowed in function call args"),
    // Errors of the parser's rules, at the expression they are about.
    ("foo(bar)", r#"1:1: parse error: unknown function with name "foo""#),
    ("sum(foo, bar)", "1:1: parse error: wrong number of arguments for aggregate expression provided, expected 1, got 2"),
    ("foo offset 1m offset 2m", "1:1: parse error: offset may not be set multiple times"),
    ("(foo) @ 5", "1:1: parse error: @ modifier must be preceded by an instant vector selector or range vector selector or a subquery"),
    ("foo offset 1m [5m]", "1:15: parse error: no offset modifiers allowed before range"),
    ("rate(foo[5m])[5m]", "1:14: parse error: ranges only allowed for vector selectors"),
    ("foo[5m1h]", r#"1:5: parse error: not a valid duration string: "5m1h""#),
    // Type checks, once the whole query parsed.
    ("rate(foo)", r#"1:6: parse error: expected type range vector in call to function "rate", got instant vector"#),
    ("abs(1, 2)", r#"1:1: parse error: expected 1 argument(s) in call to "abs", got 2"#),
    ("round()", r#"1:1: parse error: expected at least 1 argument(s) in call to "round", got 0"#),
    ("round(1,2,3)", r#"1:1: parse error: expected at most 2 argument(s) in call to "round", got 3"#),
    ("histogram_quantile(foo, 1)", r#"1:20: parse error: expected type scalar in call to function "histogram_quantile", got instant vector"#),
    ("sum(foo[5m])", "1:5: parse error: expected type instant vector in aggregation expression, got range vector"),
    ("count_values(1, foo)", "1:14: parse error: expected type string in aggregation parameter, got scalar"),
    ("foo[5m] + 1", "1:1: parse error: binary expression must contain only scalar and instant vector types"),
    ("1 + foo[5m]", "1:5: parse error: binary expression must contain only scalar and instant vector types"),
    ("1 == 1", "1:3: parse error: comparisons between scalars must use BOOL modifier"),
    ("foo + bool bar", "1:5: parse error: bool modifier can only be used on comparison operators"),
    ("foo and 1", r#"1:1: parse error: set operator "and" not allowed in binary scalar expression"#),
    ("1 + on(a) foo", "1:1: parse error: vector matching only allowed between instant vectors"),
    ("foo and on(a) group_left bar", r#"1:1: parse error: no grouping allowed for "and" operation"#),
    ("foo + on(a) group_left(a) bar", r#"1:5: parse error: label "a" must not occur in ON and GROUP clause at once"#),
    ("-foo[5m]", r#"1:1: parse error: unary expression only allowed on expressions of type scalar or instant vector, got "range vector""#),
    ("+\"a\"", r#"1:1: parse error: unary expression only allowed on expressions of type scalar or instant vector, got "string""#),
    ("foo[5m][5m:]", "1:1: parse error: subquery is only allowed on instant vector, got matrix instead"),
    ("{}", "1:1: parse error: vector selector must contain at least one non-empty matcher"),
    ("foo{__name__=\"bar\"}", r#"1:1: parse error: metric name must not be set twice: "foo" or "bar""#),
    // Lines and columns count bytes after the last newline.
    ("1 +\n  foo[5m]", "2:3: parse error: binary expression must contain only scalar and instant vector types"),
    ("sum(\n  foo\n  bar\n)", r#"3:3: parse error: unexpected identifier "bar" in aggregation"#),
    ("\"é\" foo", r#"1:6: parse error: unexpected identifier "foo""#),
    // Prometheus 3 has no position for an empty query, 2.42 says 1:1.
    ("", "unknown position: parse error: no expression found in input"),
    ("   ", "1:1: parse error: no expression found in input"),
    ("# only a comment", "1:1: parse error: no expression found in input"),
];

fn expect_bad_data(query: &str, status: StatusCode, body: &serde_json::Value, message: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{query:?}: {body}");
    assert_eq!(body["status"], "error", "{query:?}: {body}");
    assert_eq!(body["errorType"], "bad_data", "{query:?}: {body}");
    assert_eq!(
        body["error"],
        format!("invalid parameter \"query\": {message}"),
        "{query:?}"
    );
}

#[tokio::test]
async fn instant_queries_report_parse_errors_like_prometheus() {
    for &(query, message) in BAD_QUERIES {
        let (status, body) = get("/api/v1/query", &[("query", query), ("time", "100")]).await;
        expect_bad_data(query, status, &body, message);
    }
}

#[tokio::test]
async fn posted_range_queries_report_the_same_errors() {
    for &(query, message) in BAD_QUERIES {
        let (status, body) = post(
            "/api/v1/query_range",
            &[
                ("query", query),
                ("start", "0"),
                ("end", "100"),
                ("step", "10"),
            ],
        )
        .await;
        expect_bad_data(query, status, &body, message);
    }
}

#[tokio::test]
async fn format_and_parse_query_report_the_same_errors() {
    for path in ["/api/v1/format_query", "/api/v1/parse_query"] {
        for &(query, message) in BAD_QUERIES {
            let (status, body) = get(path, &[("query", query)]).await;
            expect_bad_data(query, status, &body, message);
        }
    }
}

#[tokio::test]
async fn rewritten_queries_report_the_error_of_the_original_text() {
    // The engine retries with duration expressions evaluated; when that
    // fails too, the error is the one of the text as written.
    let query = "foo[5m+1m] bar";
    let original = promql_parser::parser::parse(query).unwrap_err();
    assert!(original.starts_with("1:7: parse error: "), "{original}");
    let (status, body) = get("/api/v1/query", &[("query", query)]).await;
    expect_bad_data(query, status, &body, &original);
    // A rewrite that parses is evaluated.
    let (status, body) = get("/api/v1/query", &[("query", "foo[5m+1m]")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn parse_query_answers_the_syntax_tree() {
    let cases: &[(&str, &str)] = &[
        (
            r#"foo{job="a"} offset 1m"#,
            r#"{"anchored":false,"matchers":[{"name":"job","type":"=","value":"a"},{"name":"__name__","type":"=","value":"foo"}],"name":"foo","offset":60000,"offsetExpr":null,"smoothed":false,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"}"#,
        ),
        (
            "rate(foo[5m] @ 100)",
            r#"{"args":[{"anchored":false,"matchers":[{"name":"__name__","type":"=","value":"foo"}],"name":"foo","offset":0,"offsetExpr":null,"range":300000,"rangeExpr":null,"smoothed":false,"startOrEnd":null,"timestamp":100000,"type":"matrixSelector"}],"func":{"argTypes":["matrix"],"name":"rate","returnType":"vector","variadic":0},"type":"call"}"#,
        ),
        (
            "topk by (a) (3, -x)",
            r#"{"expr":{"expr":{"anchored":false,"matchers":[{"name":"__name__","type":"=","value":"x"}],"name":"x","offset":0,"offsetExpr":null,"smoothed":false,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"op":"-","type":"unaryExpr"},"grouping":["a"],"op":"topk","param":{"type":"numberLiteral","val":"3"},"type":"aggregation","without":false}"#,
        ),
        (
            "a / ignoring(b) group_left(c) d",
            r#"{"bool":false,"lhs":{"anchored":false,"matchers":[{"name":"__name__","type":"=","value":"a"}],"name":"a","offset":0,"offsetExpr":null,"smoothed":false,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"matching":{"card":"many-to-one","fillValues":{"lhs":null,"rhs":null},"include":["c"],"labels":["b"],"on":false},"op":"/","rhs":{"anchored":false,"matchers":[{"name":"__name__","type":"=","value":"d"}],"name":"d","offset":0,"offsetExpr":null,"smoothed":false,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"type":"binaryExpr"}"#,
        ),
        (
            "(1 > bool 2) * 1e21",
            r#"{"bool":false,"lhs":{"expr":{"bool":true,"lhs":{"type":"numberLiteral","val":"1"},"matching":null,"op":">","rhs":{"type":"numberLiteral","val":"2"},"type":"binaryExpr"},"type":"parenExpr"},"matching":null,"op":"*","rhs":{"type":"numberLiteral","val":"1000000000000000000000"},"type":"binaryExpr"}"#,
        ),
        (
            r#"max_over_time(x[1h:5m] offset -1m @ end()) or label_join(y, "d", "<&>", "s")"#,
            r#"{"bool":false,"lhs":{"args":[{"expr":{"anchored":false,"matchers":[{"name":"__name__","type":"=","value":"x"}],"name":"x","offset":0,"offsetExpr":null,"smoothed":false,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"offset":-60000,"offsetExpr":null,"range":3600000,"rangeExpr":null,"startOrEnd":"end","step":300000,"stepExpr":null,"timestamp":null,"type":"subquery"}],"func":{"argTypes":["matrix"],"name":"max_over_time","returnType":"vector","variadic":0},"type":"call"},"matching":{"card":"many-to-many","fillValues":{"lhs":null,"rhs":null},"include":[],"labels":[],"on":false},"op":"or","rhs":{"args":[{"anchored":false,"matchers":[{"name":"__name__","type":"=","value":"y"}],"name":"y","offset":0,"offsetExpr":null,"smoothed":false,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},{"type":"stringLiteral","val":"d"},{"type":"stringLiteral","val":"<&>"},{"type":"stringLiteral","val":"s"}],"func":{"argTypes":["vector","string","string","string"],"name":"label_join","returnType":"vector","variadic":-1},"type":"call"},"type":"binaryExpr"}"#,
        ),
    ];
    for &(query, expected) in cases {
        let expected: serde_json::Value = serde_json::from_str(expected).unwrap();
        let (status, body) = get("/api/v1/parse_query", &[("query", query)]).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        assert_eq!(body["status"], "success", "{query}");
        assert_eq!(body["data"], expected, "{query}");
        let (status, posted) = post("/api/v1/parse_query", &[("query", query)]).await;
        assert_eq!(status, StatusCode::OK, "{query}: {posted}");
        assert_eq!(posted, body, "{query}: POST and GET agree");
    }
}

#[tokio::test]
async fn strings_in_the_tree_are_escaped_like_go() {
    let resp = app()
        .oneshot(
            Request::get(format!(
                "/api/v1/parse_query?{}",
                form(&[("query", r#""<&>""#)])
            ))
            .body(Body::empty())
            .unwrap(),
        )
        .await
        .unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        String::from_utf8_lossy(&body),
        r#"{"status":"success","data":{"type":"stringLiteral","val":"\u003c\u0026\u003e"}}"#
    );
}
