//! Hearth's storage against the real Prometheus 2.42 tools, both ways:
//! what `hearth standalone` persists (blocks cut from its head, and its WAL)
//! and what `hearth tools create-blocks-from` writes must read back in
//! `promtool tsdb dump` exactly as written, and pass `promtool tsdb
//! analyze`. `scripts/test` installs promtool; a missing one fails here.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::*;

fn promtool() -> &'static str {
    let ok = Command::new("promtool")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "promtool (Debian package `prometheus`) is required: run scripts/test, which installs it"
    );
    "promtool"
}

/// `promtool tsdb dump` of a copy of `data` (it writes into the directory),
/// as a set of `(labels, value text, timestamp)`.
fn promtool_dump(data: &Path) -> BTreeSet<(String, String, i64)> {
    let copy = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .arg("-r")
        .arg(data)
        .arg(copy.path().join("d"))
        .status()
        .unwrap();
    assert!(status.success());
    let dir = copy.path().join("d");
    std::fs::create_dir_all(dir.join("wal")).unwrap();
    let _ = std::fs::remove_file(dir.join("lock"));
    let out = Command::new(promtool())
        .args([
            "tsdb",
            "dump",
            "--min-time=-9223372036854775808",
            "--max-time=9223372036854775807",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool tsdb dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (labels, rest) = l.rsplit_once("} ").expect("dump line has labels");
            let (v, t) = rest.split_once(' ').expect("value and timestamp");
            (format!("{labels}}}"), v.to_string(), t.parse().unwrap())
        })
        .collect()
}

/// The same set from `hearth tools tsdb dump` (text values, as promtool prints them).
fn hearth_dump(data: &Path) -> BTreeSet<(String, String, i64)> {
    let out = Command::new(hearth_bin())
        .args(["tools", "tsdb", "dump"])
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hearth dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (labels, rest) = l.rsplit_once("} ").unwrap();
            let (v, t) = rest.split_once(' ').unwrap();
            (format!("{labels}}}"), v.to_string(), t.parse().unwrap())
        })
        .collect()
}

fn analyze_every_block(data: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(data).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().to_string();
        if !e.path().join("meta.json").exists() {
            continue;
        }
        let out = Command::new(promtool())
            .args(["tsdb", "analyze", "--extended"])
            .arg(data)
            .arg(&name)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool tsdb analyze {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        n += 1;
    }
    n
}

#[test]
fn standalone_blocks_and_wal_read_back_in_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Standalone::start(
        &data,
        &[
            "--storage.tsdb.min-block-duration=5m",
            "--storage.tsdb.compaction-interval=200ms",
        ],
    );
    let client = reqwest::blocking::Client::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let start = now - 40 * 60_000;
    let specials = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, 1e300, 0.1];
    let mut t = start;
    let mut i = 0usize;
    while t < now {
        let ts: Vec<_> = (0..4)
            .map(|k| {
                let v = if k == 3 {
                    specials[i % specials.len()]
                } else {
                    (i * (k + 1)) as f64 * 0.25
                };
                series(&[("__name__", "compat"), ("k", &k.to_string())], &[(t, v)])
            })
            .collect();
        let (status, body) = post_write(&client, &s.url("/api/v1/write"), write_body(ts)).unwrap();
        assert_eq!(status, 204, "{body}");
        t += 15_000;
        i += 1;
    }
    // Wait for the head to be cut into blocks.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !std::fs::read_dir(&data)
        .unwrap()
        .flatten()
        .any(|e| e.path().join("meta.json").exists())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no block was cut from the head"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    s.stop();

    assert!(analyze_every_block(&data) > 0);
    let ours = hearth_dump(&data);
    assert_eq!(ours.len(), i * 4, "hearth lost samples");
    // promtool reads our blocks and replays our WAL (checkpoint included).
    let theirs = promtool_dump(&data);
    assert_eq!(ours, theirs);
}

#[test]
fn backfilled_blocks_read_back_in_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let mut om = String::from("# TYPE http_requests counter\n# HELP http_requests Requests.\n");
    let mut want = BTreeSet::new();
    for code in ["200", "500"] {
        for i in 0..2000i64 {
            let t = 1_700_000_000 + i * 15; // seconds, spans ~8 h: several 2 h blocks
            let v = (i * if code == "200" { 3 } else { 1 }) as f64;
            om.push_str(&format!("http_requests_total{{code=\"{code}\"}} {v} {t}\n"));
            want.insert((
                format!("{{__name__=\"http_requests_total\", code=\"{code}\"}}"),
                format!("{v}"),
                t * 1000,
            ));
        }
    }
    om.push_str("# TYPE temp gauge\ntemp -3.5 1700000000.5\ntemp 1e-7 1700000015\n# EOF\n");
    want.insert((
        "{__name__=\"temp\"}".into(),
        "-3.5".into(),
        1_700_000_000_500,
    ));
    want.insert((
        "{__name__=\"temp\"}".into(),
        "1e-07".into(),
        1_700_000_015_000,
    ));
    let file = dir.path().join("in.om");
    std::fs::write(&file, om).unwrap();
    let out_dir = dir.path().join("blocks");
    let out = Command::new(hearth_bin())
        .args(["tools", "create-blocks-from", "openmetrics"])
        .arg(&file)
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(analyze_every_block(&out_dir) >= 4);
    assert_eq!(promtool_dump(&out_dir), want);
}
