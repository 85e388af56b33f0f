//! The side-by-side PromQL check of `shared/tools`: the same remote-written
//! data set (promrw.py) goes into a real Prometheus 2.42 and into `hearth
//! standalone`, compare.py runs every query of dev-queries.txt and of our
//! own tests/data/extra-queries.txt against both, and any difference fails
//! the test, except the queries listed (with the reason) in
//! tests/data/prometheus3-differences.txt, where Prometheus 3's semantics,
//! which Hearth follows, differ from 2.42's.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tools() -> PathBuf {
    let dir = repo().join("../shared/tools");
    assert!(
        dir.join("compare.py").exists(),
        "shared/tools not found beside the repository at {}",
        dir.display()
    );
    dir
}

fn python_ready() {
    let ok = Command::new("python3")
        .args(["-c", "import requests, snappy, yaml"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "python3 with requests, python-snappy and pyyaml is required: run scripts/test, which installs them");
}

fn query_lines(path: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

#[test]
fn promql_answers_equal_prometheus_on_the_same_data() {
    python_ready();
    let tools = tools();
    let dir = tempfile::tempdir().unwrap();
    let reference = Prometheus::start(dir.path());
    let prom_port = reference.port;
    let hearth = Standalone::start(&dir.path().join("hearth-data"), &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let end = now / 3600 * 3600;
    let prom = format!("http://127.0.0.1:{prom_port}");
    let ours = format!("http://127.0.0.1:{}", hearth.port);

    let push = Command::new("python3")
        .arg(tools.join("promrw.py"))
        .arg(format!("{prom}/api/v1/write"))
        .arg(format!("{ours}/api/v1/write"))
        .env("PROMRW_END", end.to_string())
        .output()
        .unwrap();
    assert!(
        push.status.success(),
        "promrw.py failed: {}",
        String::from_utf8_lossy(&push.stderr)
    );

    let allowed = query_lines(&repo().join("tests/data/prometheus3-differences.txt"));
    let mut unexpected = Vec::new();
    let mut total_passed = 0;
    for queries in [
        tools.join("dev-queries.txt"),
        repo().join("tests/data/extra-queries.txt"),
    ] {
        let out = Command::new("python3")
            .arg(tools.join("compare.py"))
            .arg(&prom)
            .arg(&ours)
            .arg(&queries)
            .arg((end - 3 * 3600).to_string())
            .arg(end.to_string())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let last = text.lines().last().unwrap_or_default().to_string();
        let passed: usize = last
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "compare.py gave no summary for {}: {text}\n{}",
                    queries.display(),
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        total_passed += passed;
        for line in text.lines().filter(|l| l.starts_with("FAIL ")) {
            // `FAIL query <expr>: ...` or `FAIL query_range <expr>: ...`
            let rest = line.split_once(' ').map(|x| x.1).unwrap_or_default();
            let rest = rest.split_once(' ').map(|x| x.1).unwrap_or_default();
            if !allowed
                .iter()
                .any(|q| rest.starts_with(&format!("{q}:")) || rest == q)
            {
                unexpected.push(line.to_string());
            }
        }
    }
    assert!(
        total_passed > 300,
        "too few comparisons passed: {total_passed}"
    );
    assert!(
        unexpected.is_empty(),
        "answers differ from Prometheus:\n{}",
        unexpected.join("\n")
    );
}
