//! PromQL parser + evaluator: any input string is parsed and, when it
//! parses, evaluated as an instant and a range query over a small fixed
//! data set. Errors are fine; panics, hangs and aborts are bugs.
#![no_main]

use std::sync::OnceLock;

use hearth_promql::{Engine, EngineOptions};
use hearth_promqltest::series::parse_series_line;
use hearth_promqltest::storage::ScriptStorage;
use libfuzzer_sys::fuzz_target;

const DATA: &[&str] = &[
    r#"http_requests{job="api", instance="a", code="200"} 0+10x30"#,
    r#"http_requests{job="api", instance="b", code="500"} 0+1x10 0+2x20"#,
    r#"temperature{room="x"} 1 2 _ NaN Inf -Inf stale 4 5 -3"#,
    r#"bucket{le="0.1"} 0+1x30"#,
    r#"bucket{le="1"} 0+3x30"#,
    r#"bucket{le="+Inf"} 0+5x30"#,
];

struct Fixture {
    rt: tokio::runtime::Runtime,
    storage: ScriptStorage,
    engine: Engine,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let storage = ScriptStorage::new();
        let lines: Vec<_> = DATA.iter().map(|l| parse_series_line(l).expect("fixture parses")).collect();
        storage.load(60_000, &lines, &[]).expect("fixture loads");
        let opts = EngineOptions {
            timeout: std::time::Duration::from_secs(2),
            max_samples: 1_000_000,
            enable_experimental_functions: true,
            ..EngineOptions::default()
        };
        Fixture {
            rt: tokio::runtime::Builder::new_current_thread().build().expect("runtime"),
            storage,
            engine: Engine::new(opts),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else { return };
    if query.len() > 512 || promql_parser::parser::parse(query).is_err() {
        return;
    }
    let f = fixture();
    let _ = f.rt.block_on(f.engine.instant_query(&f.storage, query, 10 * 60_000));
    let _ = f.rt.block_on(f.engine.range_query(&f.storage, query, 0, 30 * 60_000, 60_000));
});
