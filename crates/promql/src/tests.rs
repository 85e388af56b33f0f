//! Engine tests; expectations follow Prometheus 3's behaviour (most are
//! taken from its `promql/promqltest/testdata` scripts).

use crate::testing::MemStorage;
use crate::{Engine, EngineOptions, Error, Value};

fn engine() -> Engine {
    Engine::new(EngineOptions {
        enable_experimental_functions: true,
        ..EngineOptions::default()
    })
}

const M: i64 = 60_000;

async fn instant(s: &MemStorage, q: &str, t_ms: i64) -> Value {
    match engine().instant_query(s, q, t_ms).await {
        Ok(r) => r.value,
        Err(e) => panic!("{q}: {e}"),
    }
}

async fn instant_err(s: &MemStorage, q: &str, t_ms: i64) -> Error {
    match engine().instant_query(s, q, t_ms).await {
        Ok(r) => panic!("{q}: expected error, got {:?}", r.value),
        Err(e) => e,
    }
}

/// A vector as sorted `labels value` strings.
fn vector(v: &Value) -> Vec<String> {
    let Value::Vector(v) = v else {
        panic!("expected vector, got {v:?}");
    };
    let mut out: Vec<String> = v.iter().map(|s| format!("{} {}", s.metric, s.f)).collect();
    out.sort();
    out
}

fn scalar(v: &Value) -> f64 {
    match v {
        Value::Scalar { v, .. } => *v,
        other => panic!("expected scalar, got {other:?}"),
    }
}

async fn vec_at(s: &MemStorage, q: &str, t_ms: i64) -> Vec<String> {
    vector(&instant(s, q, t_ms).await)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn http() -> MemStorage {
    MemStorage::load(
        5 * M,
        &[
            r#"http_requests{job="api-server", instance="0", group="production"} 0+10x10"#,
            r#"http_requests{job="api-server", instance="1", group="production"} 0+20x10"#,
            r#"http_requests{job="api-server", instance="0", group="canary"} 0+30x10"#,
            r#"http_requests{job="api-server", instance="1", group="canary"} 0+40x10"#,
            r#"http_requests{job="app-server", instance="0", group="production"} 0+50x10"#,
            r#"http_requests{job="app-server", instance="1", group="production"} 0+60x10"#,
            r#"http_requests{job="app-server", instance="0", group="canary"} 0+70x10"#,
            r#"http_requests{job="app-server", instance="1", group="canary"} 0+80x10"#,
        ],
    )
}

#[tokio::test]
async fn literals() {
    let s = MemStorage::default();
    assert_eq!(scalar(&instant(&s, "1 + 2 * 3", 0).await), 7.0);
    assert_eq!(scalar(&instant(&s, "2 ^ 3 ^ 2", 0).await), 512.0);
    assert_eq!(scalar(&instant(&s, "-5 % 3", 0).await), -2.0);
    assert_eq!(scalar(&instant(&s, "1 > bool 2", 0).await), 0.0);
    assert_eq!(
        instant(&s, r#""hello""#, 1000).await,
        Value::String {
            t: 1000,
            v: "hello".into()
        }
    );
    assert_eq!(scalar(&instant(&s, "time()", 90_000).await), 90.0);
}

#[tokio::test]
async fn instant_selector_lookback_and_staleness() {
    let s = MemStorage::load(
        M,
        &[
            r#"metric{a="1"} 1 2 stale"#,
            r#"metric{a="2"} 5 _ _ _ _ _ _ 6"#,
        ],
    );
    assert_eq!(
        vec_at(&s, "metric", M).await,
        vec![
            r#"{__name__="metric", a="1"} 2"#,
            r#"{__name__="metric", a="2"} 5"#
        ]
    );
    // The stale marker at 2m hides a="1"; a="2" is still within 5m.
    assert_eq!(
        vec_at(&s, "metric", 2 * M).await,
        vec![r#"{__name__="metric", a="2"} 5"#]
    );
    // Lookback is left-open: the sample at 0 is out at exactly 5m.
    assert_eq!(
        vec_at(&s, r#"metric{a="2"}"#, 5 * M).await,
        Vec::<String>::new()
    );
    assert_eq!(
        vec_at(&s, r#"metric{a="2"}"#, 5 * M - 1).await,
        vec![r#"{__name__="metric", a="2"} 5"#]
    );
}

#[tokio::test]
async fn range_selector_is_left_open() {
    let s = MemStorage::load(M, &[r#"metric 1 2 3 4"#]);
    let Value::Matrix(m) = instant(&s, "metric[2m]", 3 * M).await else {
        panic!("expected matrix");
    };
    assert_eq!(m.len(), 1);
    let ts: Vec<i64> = m[0].floats.iter().map(|p| p.t).collect();
    assert_eq!(ts, vec![2 * M, 3 * M]);
}

#[tokio::test]
async fn offset_and_at() {
    let s = MemStorage::load(M, &[r#"metric 0+1x10"#]);
    assert_eq!(
        vec_at(&s, "metric offset 2m", 5 * M).await,
        vec![r#"{__name__="metric"} 3"#]
    );
    assert_eq!(
        vec_at(&s, "metric @ 120", 5 * M).await,
        vec![r#"{__name__="metric"} 2"#]
    );
    assert_eq!(
        vec_at(&s, "metric @ 240 offset 1m", 0).await,
        vec![r#"{__name__="metric"} 3"#]
    );
    assert_eq!(
        vec_at(&s, "metric offset -1m", 5 * M).await,
        vec![r#"{__name__="metric"} 6"#]
    );
    let r = engine()
        .range_query(&s, "metric @ end()", 0, 4 * M, 2 * M)
        .await
        .unwrap();
    let Value::Matrix(m) = r.value else {
        panic!("expected matrix");
    };
    assert_eq!(
        m[0].floats.iter().map(|p| p.f).collect::<Vec<_>>(),
        vec![4.0, 4.0, 4.0]
    );
}

#[tokio::test]
async fn arithmetic_drops_metric_name() {
    let s = http();
    assert_eq!(
        vec_at(
            &s,
            r#"http_requests{job="api-server", group="canary"} * 2"#,
            50 * M
        )
        .await,
        vec![
            r#"{group="canary", instance="0", job="api-server"} 600"#,
            r#"{group="canary", instance="1", job="api-server"} 800"#,
        ]
    );
    // Comparisons without bool keep the name and the lhs value.
    assert_eq!(
        vec_at(&s, r#"http_requests{job="api-server"} > 250"#, 50 * M).await,
        vec![
            r#"{__name__="http_requests", group="canary", instance="0", job="api-server"} 300"#,
            r#"{__name__="http_requests", group="canary", instance="1", job="api-server"} 400"#,
        ]
    );
    assert_eq!(
        vec_at(
            &s,
            r#"300 < bool http_requests{job="api-server", group="canary"}"#,
            50 * M
        )
        .await,
        vec![
            r#"{group="canary", instance="0", job="api-server"} 0"#,
            r#"{group="canary", instance="1", job="api-server"} 1"#,
        ]
    );
}

#[tokio::test]
async fn vector_matching() {
    let s = http();
    assert_eq!(
        vec_at(
            &s,
            r#"http_requests{group="canary"} - on(instance, job) http_requests{group="production"}"#,
            50 * M
        )
        .await,
        vec![
            r#"{instance="0", job="api-server"} 200"#,
            r#"{instance="0", job="app-server"} 200"#,
            r#"{instance="1", job="api-server"} 200"#,
            r#"{instance="1", job="app-server"} 200"#,
        ]
    );
    assert_eq!(
        vec_at(
            &s,
            r#"http_requests{group="canary"} / ignoring(group) http_requests{group="production"}"#,
            50 * M
        )
        .await,
        vec![
            r#"{instance="0", job="api-server"} 3"#,
            r#"{instance="0", job="app-server"} 1.4"#,
            r#"{instance="1", job="api-server"} 2"#,
            r#"{instance="1", job="app-server"} 1.3333333333333333"#,
        ]
    );
    // group_left copies the listed labels from the one side.
    assert_eq!(
        vec_at(
            &s,
            r#"http_requests{job="api-server"} / on(job) group_left sum by (job) (http_requests)"#,
            50 * M
        )
        .await
        .len(),
        4
    );
    let e = instant_err(&s, r#"http_requests / on(job) http_requests"#, 50 * M).await;
    assert!(
        e.to_string().starts_with(r#"found duplicate series for the match group {job="api-server"} on the right hand-side of the operation"#),
        "{e}"
    );
    assert!(e.to_string().ends_with(
        ";many-to-many matching not allowed: matching labels must be unique on one side"
    ));
    let e = instant_err(
        &s,
        r#"sum by (job, instance) (http_requests) / on(job) group_left(instance) sum by (job) (http_requests)"#,
        50 * M,
    )
    .await;
    assert_eq!(
        e,
        Error::Execution(
            "multiple matches for labels: grouping labels must ensure unique matches".into()
        )
    );
}

#[tokio::test]
async fn set_operators() {
    let s = http();
    assert_eq!(
        vec_at(
            &s,
            r#"http_requests{group="canary"} and http_requests{instance="0"}"#,
            50 * M
        )
        .await
        .len(),
        2
    );
    assert_eq!(
        vec_at(
            &s,
            r#"http_requests{group="canary"} unless http_requests{instance="0"}"#,
            50 * M
        )
        .await
        .len(),
        2
    );
    assert_eq!(
        vec_at(
            &s,
            r#"http_requests{group="canary"} or on(instance) http_requests{group="production"}"#,
            50 * M
        )
        .await
        .len(),
        4
    );
}

#[tokio::test]
async fn aggregations() {
    let s = http();
    assert_eq!(
        vec_at(&s, "sum by (job) (http_requests)", 50 * M).await,
        vec![r#"{job="api-server"} 1000"#, r#"{job="app-server"} 2600"#]
    );
    assert_eq!(
        vec_at(&s, "avg without (instance, group) (http_requests)", 50 * M).await,
        vec![r#"{job="api-server"} 250"#, r#"{job="app-server"} 650"#]
    );
    assert_eq!(
        vec_at(&s, "count(http_requests)", 50 * M).await,
        vec![r#"{} 8"#]
    );
    assert_eq!(
        vec_at(&s, "max by (group) (http_requests)", 50 * M).await,
        vec![r#"{group="canary"} 800"#, r#"{group="production"} 600"#]
    );
    assert_eq!(
        vec_at(&s, "min(http_requests)", 50 * M).await,
        vec![r#"{} 100"#]
    );
    assert_eq!(
        vec_at(&s, "group(http_requests)", 50 * M).await,
        vec![r#"{} 1"#]
    );
    assert_eq!(
        vec_at(&s, r#"stddev(http_requests{job="api-server"})"#, 50 * M).await,
        vec!["{} 111.8033988749895".to_string()]
    );
    let Value::Vector(v) = instant(&s, r#"stdvar(http_requests{job="api-server"})"#, 50 * M).await
    else {
        panic!()
    };
    assert!(close(v[0].f, 12500.0));
    assert_eq!(
        vec_at(&s, "topk by (job) (1, http_requests)", 50 * M).await,
        vec![
            r#"{__name__="http_requests", group="canary", instance="1", job="api-server"} 400"#,
            r#"{__name__="http_requests", group="canary", instance="1", job="app-server"} 800"#,
        ]
    );
    assert_eq!(
        vec_at(&s, "bottomk(2, http_requests)", 50 * M).await,
        vec![
            r#"{__name__="http_requests", group="production", instance="0", job="api-server"} 100"#,
            r#"{__name__="http_requests", group="production", instance="1", job="api-server"} 200"#,
        ]
    );
    assert_eq!(
        vec_at(
            &s,
            r#"quantile(0.5, http_requests{job="api-server"})"#,
            50 * M
        )
        .await,
        vec![r#"{} 250"#]
    );
    assert_eq!(
        vec_at(
            &s,
            r#"count_values("v", http_requests{job="api-server"} > 250)"#,
            50 * M
        )
        .await,
        vec![r#"{v="300"} 1"#, r#"{v="400"} 1"#]
    );
    assert_eq!(
        vec_at(&s, "limitk(3, http_requests)", 50 * M).await.len(),
        3
    );
}

#[tokio::test]
async fn rate_increase_delta() {
    let s = MemStorage::load(
        5 * M,
        &[
            r#"http_requests_total{path="/foo"} 0+10x10"#,
            r#"http_requests_total{path="/bar"} 0+10x5 0+10x4"#,
            r#"http_requests_total{path="/dings"} 10+10x10"#,
            r#"http_requests_total{path="/bumms"} 1+10x10"#,
        ],
    );
    assert_eq!(
        vec_at(&s, "increase(http_requests_total[50m])", 50 * M).await,
        vec![
            // 80 raw increase (one reset) extrapolated by 50m/45m.
            r#"{path="/bar"} 88.88888888888889"#,
            r#"{path="/bumms"} 100"#,
            r#"{path="/dings"} 100"#,
            r#"{path="/foo"} 100"#,
        ]
    );
    let v = instant(&s, r#"rate(http_requests_total{path="/foo"}[50m])"#, 50 * M).await;
    let Value::Vector(v) = v else { panic!() };
    assert!(close(v[0].f, 100.0 / 3000.0));
    assert_eq!(
        vec_at(
            &s,
            r#"delta(http_requests_total{path="/foo"}[50m])"#,
            50 * M
        )
        .await,
        vec![r#"{path="/foo"} 100"#]
    );
    assert_eq!(
        vec_at(
            &s,
            r#"irate(http_requests_total{path="/foo"}[50m])"#,
            50 * M
        )
        .await,
        vec![format!(r#"{{path="/foo"}} {}"#, 10.0 / 300.0)]
    );
    assert_eq!(
        vec_at(
            &s,
            r#"idelta(http_requests_total{path="/foo"}[50m])"#,
            50 * M
        )
        .await,
        vec![r#"{path="/foo"} 10"#]
    );
    assert_eq!(
        vec_at(
            &s,
            r#"resets(http_requests_total{path="/bar"}[50m])"#,
            50 * M
        )
        .await,
        vec![r#"{path="/bar"} 1"#]
    );
    assert_eq!(
        vec_at(
            &s,
            r#"changes(http_requests_total{path="/bar"}[50m])"#,
            50 * M
        )
        .await,
        vec![r#"{path="/bar"} 9"#]
    );
}

#[tokio::test]
async fn deriv_and_predict_linear() {
    let s = MemStorage::load(5 * M, &[r#"testcounter_reset_middle_total 0+10x4 0+10x5"#]);
    let s2 = MemStorage::load(M, &[r#"m 0+60x10"#]);
    assert_eq!(vec_at(&s2, "deriv(m[5m])", 10 * M).await, vec!["{} 1"]);
    assert_eq!(
        vec_at(&s2, "predict_linear(m[5m], 60)", 10 * M).await,
        vec!["{} 660"]
    );
    assert_eq!(
        vec_at(
            &s,
            "predict_linear(testcounter_reset_middle_total[50m], 3600)",
            50 * M
        )
        .await
        .len(),
        1
    );
}

#[tokio::test]
async fn over_time_functions() {
    let s = MemStorage::load(M, &[r#"m 1 2 3 4 5"#]);
    for (q, want) in [
        ("sum_over_time(m[5m])", 15.0),
        ("avg_over_time(m[5m])", 3.0),
        ("min_over_time(m[5m])", 1.0),
        ("max_over_time(m[5m])", 5.0),
        ("count_over_time(m[3m])", 3.0),
        ("last_over_time(m[5m])", 5.0),
        ("quantile_over_time(0.5, m[5m])", 3.0),
        ("stdvar_over_time(m[5m])", 2.0),
        ("present_over_time(m[5m])", 1.0),
    ] {
        let Value::Vector(v) = instant(&s, q, 4 * M).await else {
            panic!()
        };
        assert_eq!(v.len(), 1, "{q}");
        assert!(close(v[0].f, want), "{q}: {} != {want}", v[0].f);
    }
    // last_over_time keeps the name.
    assert_eq!(
        vec_at(&s, "last_over_time(m[5m])", 4 * M).await,
        vec![r#"{__name__="m"} 5"#]
    );
    assert_eq!(
        vec_at(&s, "absent_over_time(m[5m])", 4 * M).await,
        Vec::<String>::new()
    );
    assert_eq!(
        vec_at(&s, r#"absent_over_time(nope{job="x"}[5m])"#, 4 * M).await,
        vec![r#"{job="x"} 1"#]
    );
}

#[tokio::test]
async fn math_and_label_functions() {
    let s = MemStorage::load(M, &[r#"m{a="x-1", b="y"} -2.5"#]);
    assert_eq!(
        vec_at(&s, "abs(m)", 0).await,
        vec![r#"{a="x-1", b="y"} 2.5"#]
    );
    assert_eq!(
        vec_at(&s, "ceil(m)", 0).await,
        vec![r#"{a="x-1", b="y"} -2"#]
    );
    assert_eq!(
        vec_at(&s, "round(m)", 0).await,
        vec![r#"{a="x-1", b="y"} -2"#]
    );
    assert_eq!(
        vec_at(&s, "clamp(m, -1, 1)", 0).await,
        vec![r#"{a="x-1", b="y"} -1"#]
    );
    assert_eq!(vec_at(&s, "clamp(m, 1, -1)", 0).await, Vec::<String>::new());
    assert_eq!(
        vec_at(&s, "sgn(m)", 0).await,
        vec![r#"{a="x-1", b="y"} -1"#]
    );
    assert_eq!(
        vec_at(&s, r#"label_replace(m, "c", "$1", "a", "x-(.*)")"#, 0).await,
        vec![r#"{__name__="m", a="x-1", b="y", c="1"} -2.5"#]
    );
    assert_eq!(
        vec_at(&s, r#"label_join(m, "c", ",", "a", "b")"#, 0).await,
        vec![r#"{__name__="m", a="x-1", b="y", c="x-1,y"} -2.5"#]
    );
    assert_eq!(scalar(&instant(&s, "scalar(m)", 0).await), -2.5);
    assert_eq!(vec_at(&s, "vector(1)", 0).await, vec!["{} 1"]);
    assert_eq!(
        vec_at(&s, "timestamp(m)", 2 * M).await,
        vec![r#"{a="x-1", b="y"} 0"#]
    );
    assert_eq!(vec_at(&s, "absent(m)", 0).await, Vec::<String>::new());
    assert_eq!(
        vec_at(&s, r#"absent(nope{a="b", c=~"d"})"#, 0).await,
        vec![r#"{a="b"} 1"#]
    );
}

#[tokio::test]
async fn date_functions() {
    let s = MemStorage::default();
    // 2017-07-13T11:58:20Z is 1499947100.
    for (f, want) in [
        ("year", 2017.0),
        ("month", 7.0),
        ("day_of_month", 13.0),
        ("day_of_week", 4.0),
        ("day_of_year", 194.0),
        ("days_in_month", 31.0),
        ("hour", 11.0),
        ("minute", 58.0),
    ] {
        let q = format!("{f}(vector(1499947100))");
        assert_eq!(vec_at(&s, &q, 0).await, vec![format!("{{}} {want}")], "{q}");
    }
}

#[tokio::test]
async fn sort_functions() {
    let s = MemStorage::load(M, &[r#"m{i="10"} 3"#, r#"m{i="9"} 1"#, r#"m{i="a"} 2"#]);
    let Value::Vector(v) = instant(&s, "sort_desc(m)", 0).await else {
        panic!()
    };
    assert_eq!(
        v.iter().map(|s| s.f).collect::<Vec<_>>(),
        vec![3.0, 2.0, 1.0]
    );
    let Value::Vector(v) = instant(&s, r#"sort_by_label(m, "i")"#, 0).await else {
        panic!()
    };
    let order: Vec<&str> = v.iter().map(|s| s.metric.get("i").unwrap_or("")).collect();
    assert_eq!(order, vec!["9", "10", "a"]);
}

#[tokio::test]
async fn histogram_quantile_classic() {
    let s = MemStorage::load(
        5 * M,
        &[
            r#"testhistogram_bucket{le="0.1", start="positive"} 0+5x10"#,
            r#"testhistogram_bucket{le=".2", start="positive"} 0+7x10"#,
            r#"testhistogram_bucket{le="1e0", start="positive"} 0+11x10"#,
            r#"testhistogram_bucket{le="+Inf", start="positive"} 0+12x10"#,
        ],
    );
    let v = instant(
        &s,
        "histogram_quantile(0.5, rate(testhistogram_bucket[10m]))",
        50 * M,
    )
    .await;
    let Value::Vector(v) = v else { panic!() };
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].metric.to_string(), r#"{start="positive"}"#);
    // rank 6 of 12 falls in (0.1, 0.2]: 0.1 + 0.1 * (1/2).
    assert!(close(v[0].f, 0.15), "{}", v[0].f);
}

#[tokio::test]
async fn subqueries() {
    let s = MemStorage::load(M, &[r#"m 0+1x20"#]);
    let Value::Matrix(m) = instant(&s, "m[5m:1m]", 10 * M).await else {
        panic!()
    };
    let ts: Vec<i64> = m[0].floats.iter().map(|p| p.t / M).collect();
    assert_eq!(ts, vec![6, 7, 8, 9, 10]);
    assert_eq!(
        vec_at(&s, "sum_over_time(m[5m:2m])", 10 * M).await,
        vec!["{} 24"]
    );
    assert_eq!(vec_at(&s, "rate(m[5m:1m])", 10 * M).await.len(), 1);
}

#[tokio::test]
async fn range_query_steps() {
    let s = MemStorage::load(M, &[r#"m{a="1"} 0+1x5"#, r#"m{a="2"} 10 stale"#]);
    let r = engine()
        .range_query(&s, "m * 2", 0, 4 * M, M)
        .await
        .unwrap();
    let Value::Matrix(m) = r.value else { panic!() };
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].metric.to_string(), r#"{a="1"}"#);
    assert_eq!(
        m[0].floats.iter().map(|p| p.f).collect::<Vec<_>>(),
        vec![0.0, 2.0, 4.0, 6.0, 8.0]
    );
    assert_eq!(m[1].floats.len(), 1);
    let r = engine()
        .range_query(&s, "time()", 0, 2 * M, M)
        .await
        .unwrap();
    let Value::Matrix(m) = r.value else { panic!() };
    assert_eq!(
        m[0].floats.iter().map(|p| p.f).collect::<Vec<_>>(),
        vec![0.0, 60.0, 120.0]
    );
    assert!(matches!(
        engine().range_query(&s, "m[5m]", 0, M, M).await,
        Err(Error::Execution(_))
    ));
}

#[tokio::test]
async fn errors() {
    let s = http();
    assert!(matches!(
        engine().instant_query(&s, "sum(", 0).await,
        Err(Error::Parse(_))
    ));
    // Dropping the name makes two series collide.
    let s2 = MemStorage::load(M, &[r#"a{x="1"} 1"#, r#"b{x="1"} 2"#]);
    assert_eq!(
        instant_err(&s2, r#"abs({x="1"})"#, 0).await,
        Error::Execution("vector cannot contain metrics with the same labelset".into())
    );
    let delayed = Engine::new(EngineOptions {
        enable_delayed_name_removal: true,
        ..EngineOptions::default()
    });
    let r = delayed
        .instant_query(
            &s2,
            r#"label_replace(abs({x="1"}), "__name__", "n_$1", "__name__", "(.*)")"#,
            0,
        )
        .await
        .unwrap();
    assert_eq!(vector(&r.value).len(), 2);
    assert!(matches!(
        delayed.instant_query(&s2, r#"abs({x="1"})"#, 0).await,
        Err(Error::Execution(_))
    ));
}

#[tokio::test]
async fn fill_modifiers() {
    let s = MemStorage::load(
        5 * M,
        &[
            r#"left{label="a"} 10"#,
            r#"left{label="c"} 30"#,
            r#"right{label="a"} 100"#,
            r#"right{label="d"} 400"#,
        ],
    );
    assert_eq!(
        vec_at(&s, "left + fill(0) right", 0).await,
        vec![
            r#"{label="a"} 110"#,
            r#"{label="c"} 30"#,
            r#"{label="d"} 400"#
        ]
    );
    assert_eq!(
        vec_at(&s, "left + fill_left(5) right", 0).await,
        vec![r#"{label="a"} 110"#, r#"{label="d"} 405"#]
    );
    assert_eq!(
        vec_at(&s, "left == fill(30) right", 0).await,
        vec![r#"{__name__="left", label="c"} 30"#]
    );
}

#[tokio::test]
async fn query_context_functions() {
    let s = MemStorage::default();
    let r = engine()
        .range_query(
            &s,
            "start() + end() + step() + range()",
            60_000,
            180_000,
            60_000,
        )
        .await
        .unwrap();
    let Value::Matrix(m) = r.value else { panic!() };
    assert_eq!(
        m[0].floats.iter().map(|p| p.f).collect::<Vec<_>>(),
        vec![420.0; 3]
    );
    assert_eq!(scalar(&instant(&s, "max_of(1, 3)", 0).await), 3.0);
    assert!(scalar(&instant(&s, "min_of(1, NaN)", 0).await).is_nan());
}

#[tokio::test]
async fn histogram_fraction_classic() {
    let s = MemStorage::load(
        5 * M,
        &[
            r#"h_bucket{le="1"} 1"#,
            r#"h_bucket{le="2"} 3"#,
            r#"h_bucket{le="3"} 6"#,
            r#"h_bucket{le="+Inf"} 100"#,
        ],
    );
    let Value::Vector(v) = instant(&s, "histogram_fraction(0, 1.5, h_bucket)", 0).await else {
        panic!()
    };
    assert!(close(v[0].f, 0.02), "{}", v[0].f);
    let Value::Vector(v) = instant(&s, "histogram_fraction(400, +Inf, h_bucket)", 0).await else {
        panic!()
    };
    assert!(close(v[0].f, 0.94), "{}", v[0].f);
}

#[tokio::test]
async fn annotations_carry_positions() {
    let s = http();
    let r = engine()
        .instant_query(&s, "quantile(2, http_requests)", 50 * M)
        .await
        .unwrap();
    assert_eq!(
        r.warnings,
        vec!["PromQL warning: quantile value should be between 0 and 1, got 2 (1:10)"]
    );
    let r = engine()
        .range_query(&s, "sum(sort(http_requests))", 0, M, M)
        .await
        .unwrap();
    assert_eq!(
        r.warnings,
        vec!["PromQL warning: sort is ineffective for range queries since results are always ordered by labels (1:5)"]
    );
}

#[tokio::test]
async fn delayed_name_removal_follows_aggregations() {
    let s = MemStorage::load(
        M,
        &[r#"a_total{env="1"} 0+1x10"#, r#"b_total{env="1"} 0+2x10"#],
    );
    let delayed = Engine::new(EngineOptions {
        enable_delayed_name_removal: true,
        ..EngineOptions::default()
    });
    // The name survives until the end, so grouping by it keeps two groups
    // that collide once it is dropped.
    assert!(matches!(
        delayed
            .instant_query(&s, r#"sum by (__name__) (rate({env="1"}[5m]))"#, 10 * M)
            .await,
        Err(Error::Execution(_))
    ));
    let r = delayed
        .instant_query(&s, r#"sum by (__name__) (a_total)"#, 10 * M)
        .await
        .unwrap();
    assert_eq!(vector(&r.value), vec![r#"{__name__="a_total"} 10"#]);
}

#[test]
fn query_futures_are_send() {
    fn assert_send<T: Send>(_: T) {}
    let s = MemStorage::default();
    let e = engine();
    assert_send(e.instant_query(&s, "1", 0));
    assert_send(e.range_query(&s, "1", 0, 1, 1));
}

#[tokio::test]
async fn info_enriches_with_target_info() {
    let s = MemStorage::load(
        M,
        &[
            r#"metric{instance="a", job="1"} 1 2 3 4"#,
            r#"target_info{instance="a", job="1", version="old"} 1 1 stale"#,
            r#"target_info{instance="a", job="1", version="new"} _ _ 1 1"#,
        ],
    );
    assert_eq!(
        vec_at(&s, "info(metric)", M).await,
        vec![r#"{__name__="metric", instance="a", job="1", version="old"} 2"#]
    );
    assert_eq!(
        vec_at(&s, "info(metric)", 3 * M).await,
        vec![r#"{__name__="metric", instance="a", job="1", version="new"} 4"#]
    );
    // The info series is read as of the base's @ time.
    assert_eq!(
        vec_at(&s, "info(metric @ 60)", 3 * M).await,
        vec![r#"{__name__="metric", instance="a", job="1", version="old"} 2"#]
    );
    assert_eq!(
        vec_at(&s, r#"info(metric, {version=~"x.+"})"#, M).await,
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn anchored_and_smoothed_selectors() {
    // Samples every 15s: 1 2 3 4 5 9 10 11 12 13.
    let s = MemStorage::load(15_000, &["metric 1+1x4 9+1x4"]);
    let at = |q: &'static str, t: i64| {
        let s = &s;
        async move {
            let Value::Vector(v) = instant(s, q, t).await else {
                panic!()
            };
            v.first().map(|x| x.f)
        }
    };
    assert_eq!(at("increase(metric[1m] anchored)", 80_000).await, Some(7.0));
    assert_eq!(at("increase(metric[1m] anchored)", 5_000).await, Some(0.0));
    let v = at("increase(metric[1m] smoothed)", 65_000).await.unwrap();
    assert!(close(v, 5.0), "{v}");
    let v = at("metric smoothed", 5_000).await.unwrap();
    assert!(close(v, 1.0 + 1.0 / 3.0), "{v}");
    assert!(matches!(
        engine().instant_query(&s, "max_over_time(metric[1m] smoothed)", 0).await,
        Err(Error::Parse(m)) if m == "smoothed modifier can only be used with: delta, increase, rate - not with max_over_time"
    ));
}

#[tokio::test]
async fn extreme_times_do_not_overflow() {
    let s = MemStorage::load(M, &["m 0+1x5"]);
    for q in [
        "m",
        "rate(m[5m] @ 100000000000000)",
        "m offset -1000w",
        "max_over_time(m[1000w:1w])",
    ] {
        let _ = engine().instant_query(&s, q, i64::MAX).await;
        let _ = engine().instant_query(&s, q, i64::MIN).await;
        let _ = engine()
            .range_query(&s, q, i64::MAX - 10, i64::MAX, 1)
            .await;
    }
}

#[tokio::test]
async fn info_accepts_empty_matching_selectors() {
    let s = MemStorage::load(
        M,
        &[
            r#"metric{instance="a", job="1"} 1"#,
            r#"target_info{instance="a", job="1", data="x"} 1"#,
        ],
    );
    assert_eq!(
        vec_at(&s, r#"info(metric, {data=~".*"})"#, 0).await,
        vec![r#"{__name__="metric", data="x", instance="a", job="1"} 1"#]
    );
}

#[tokio::test]
async fn histogram_quantiles_labels_each_quantile() {
    let s = MemStorage::load(
        5 * M,
        &[
            r#"h_bucket{le="2"} 1"#,
            r#"h_bucket{le="4"} 2"#,
            r#"h_bucket{le="+Inf"} 2"#,
        ],
    );
    assert_eq!(
        vec_at(&s, r#"histogram_quantiles(h_bucket, "q", 0, 0.5, 1)"#, 0).await,
        vec![r#"{q="0.0"} 0"#, r#"{q="0.5"} 2"#, r#"{q="1.0"} 4"#]
    );
}

#[tokio::test]
async fn duration_expressions_are_evaluated() {
    let s = MemStorage::load(10_000, &["m 0+1x20"]);
    assert_eq!(
        vec_at(&s, "count_over_time(m[30s+30s])", 100_000).await,
        vec!["{} 6"]
    );
    assert_eq!(
        vec_at(&s, "m offset (10 * 2)", 100_000).await,
        vec![r#"{__name__="m"} 8"#]
    );
    let r = engine()
        .range_query(&s, "count_over_time(m[step()*2])", 50_000, 60_000, 10_000)
        .await
        .unwrap();
    let Value::Matrix(m) = r.value else { panic!() };
    assert_eq!(
        m[0].floats.iter().map(|p| p.f).collect::<Vec<_>>(),
        vec![2.0, 2.0]
    );
    // A query the parser refuses for other reasons keeps its own error.
    assert_eq!(
        instant_err(&s, "m[5m+1m", 0).await,
        Error::Parse(promql_parser::parser::parse("m[5m+1m").unwrap_err())
    );
}

#[tokio::test]
async fn step_invariant_range_queries_repeat_the_pinned_value() {
    let s = MemStorage::load(60_000, &["m 0+1x20"]);
    let r = engine()
        .range_query(&s, "m @ 300", 0, 600_000, 60_000)
        .await
        .unwrap();
    let Value::Matrix(m) = r.value else {
        panic!("a range query returns a matrix")
    };
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].floats.len(), 11);
    assert!(m[0].floats.iter().all(|p| p.f == 5.0));
    assert_eq!(m[0].floats[3].t, 180_000);
    // time() makes it step-dependent again.
    let r = engine()
        .range_query(&s, "m @ 300 + time()", 0, 600_000, 60_000)
        .await
        .unwrap();
    let Value::Matrix(m) = r.value else {
        panic!("a range query returns a matrix")
    };
    assert_eq!(m[0].floats[1].f, 5.0 + 60.0);
    assert_eq!(m[0].floats[2].f, 5.0 + 120.0);
}
