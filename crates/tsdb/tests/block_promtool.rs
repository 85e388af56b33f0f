//! Blocks against the reference implementation: Prometheus 2.42's
//! `promtool` (Debian's `prometheus` package) must accept and decode the
//! blocks Hearth writes, and Hearth must read the blocks promtool writes.
//!
//! These tests fail, rather than skip, when `promtool` is not on `PATH`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use hearth_model::{Labels, MatchOp, Matcher, Sample, STALE_NAN};
use hearth_tsdb::block::{chunks_from_samples, is_block_dir, Block, BlockCompaction, BlockWriter};
use ulid::Ulid;

const HOUR: i64 = 3_600_000;

fn promtool(args: &[&str]) -> Output {
    let out = Command::new("promtool")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run promtool ({e}): these tests need Prometheus 2.42's promtool on PATH; \
             install it with `apt-get install -y prometheus`"
            )
        });
    assert!(
        out.status.success(),
        "promtool {} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Values that stress the XOR encoding and the text round trip.
fn tricky_values() -> Vec<f64> {
    vec![
        -0.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        STALE_NAN,
        f64::NAN,
        1e300,
        -1e300,
        1.0,
        f64::from_bits(1.0f64.to_bits() + 1),
        1.0,
        f64::MIN_POSITIVE / 4.0,
        f64::MAX,
        0.1,
        -123.456,
        0.0,
    ]
}

/// Timestamps starting below zero whose deltas walk every delta-of-delta
/// bucket edge (specs/tsdb-blocks.md §9.1).
fn dod_edge_timestamps() -> Vec<i64> {
    let dods: [i64; 19] = [
        0,
        1,
        -1,
        8192,
        -8191,
        8193,
        -8192,
        65536,
        -65535,
        65537,
        -65536,
        524288,
        -524287,
        524289,
        -524288,
        1_000_000_000,
        -1_000_000_000,
        0,
        3,
    ];
    let mut ts = vec![-3 * HOUR, -3 * HOUR + 1000];
    let mut delta = 1000;
    for d in dods {
        delta += d;
        ts.push(ts.last().expect("non-empty") + delta);
    }
    ts
}

type Data = BTreeMap<Labels, Vec<Sample>>;

fn written_data() -> (Data, BTreeMap<Labels, i64>) {
    let mut data = Data::new();
    // Per series, the chunk range to cut with.
    let mut ranges = BTreeMap::new();

    let values = tricky_values();
    let tricky = Labels::new([("__name__", "tricky"), ("kind", "dod_edges")]);
    let samples: Vec<Sample> = dod_edge_timestamps()
        .iter()
        .enumerate()
        .map(|(i, &t)| Sample::new(t, values[i % values.len()]))
        .collect();
    data.insert(tricky.clone(), samples);
    // One chunk, so that every delta-of-delta is encoded inside it.
    ranges.insert(tricky, 1 << 50);

    let ulps = Labels::new([("__name__", "tricky"), ("kind", "ulps")]);
    let one = 1.0f64.to_bits();
    data.insert(
        ulps.clone(),
        (0..300)
            .map(|k| Sample::new(-HOUR + k * 15_000, f64::from_bits(one + (k as u64 % 3))))
            .collect(),
    );
    ranges.insert(ulps, 2 * HOUR);

    for i in 0..300i64 {
        let labels = Labels::new([
            ("__name__", format!("metric_{}", i % 7).as_str()),
            ("instance", format!("host-{i:03}").as_str()),
            ("job", if i % 3 == 0 { "node" } else { "app" }),
        ]);
        let samples = (0..(20 + i % 50))
            .map(|k| {
                let v = match k % 5 {
                    0 => (i * k) as f64,
                    1 => (i as f64).sqrt() * k as f64,
                    2 => -((k * 1000) as f64) / 3.0,
                    3 => values[(i + k) as usize % values.len()],
                    _ => 1e-300 * k as f64,
                };
                Sample::new(-2 * HOUR + i * 7 + k * 30_000, v)
            })
            .collect();
        data.insert(labels.clone(), samples);
        ranges.insert(labels, 2 * HOUR);
    }
    (data, ranges)
}

/// Parses `promtool tsdb dump` lines: `{labels} value timestamp`.
fn parse_dump(text: &str) -> BTreeMap<String, Vec<(i64, String)>> {
    let mut out: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let mut parts = line.rsplitn(3, ' ');
        let ts = parts
            .next()
            .expect("timestamp")
            .parse::<i64>()
            .unwrap_or_else(|e| panic!("{line}: {e}"));
        let value = parts
            .next()
            .unwrap_or_else(|| panic!("no value in {line:?}"))
            .to_string();
        let labels = parts
            .next()
            .unwrap_or_else(|| panic!("no labels in {line:?}"))
            .to_string();
        out.entry(labels).or_default().push((ts, value));
    }
    for samples in out.values_mut() {
        samples.sort_by_key(|s| s.0);
    }
    out
}

/// Go's `%g` text of a value, parsed back bit-exactly; NaNs compare by text.
fn assert_same_value(labels: &str, t: i64, text: &str, want: f64) {
    if want.is_nan() {
        assert_eq!(text, "NaN", "{labels} @{t}");
        return;
    }
    let got = match text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other
            .parse::<f64>()
            .unwrap_or_else(|e| panic!("{labels} @{t}: value {other:?}: {e}")),
    };
    assert_eq!(
        got.to_bits(),
        want.to_bits(),
        "{labels} @{t}: promtool printed {text}, wrote {want:e}"
    );
}

#[test]
fn promtool_reads_blocks_we_write() {
    let (data, ranges) = written_data();
    let min = data.values().map(|s| s[0].t).min().expect("data");
    let max = data
        .values()
        .map(|s| s.last().expect("samples").t)
        .max()
        .expect("data")
        + 1;

    let tmp = tempfile::tempdir().expect("tempdir");
    let db = tmp.path().join("data");
    std::fs::create_dir_all(db.join("wal")).expect("mkdir");
    let id = Ulid::new();
    let mut w = BlockWriter::new(&db, id, min, max).expect("writer");
    for (labels, samples) in &data {
        w.add_series(
            labels,
            &chunks_from_samples(samples, ranges[labels]).expect("chunks"),
        )
        .expect("add series");
    }
    let meta = w.finish(BlockCompaction::default()).expect("finish");
    let total: usize = data.values().map(Vec::len).sum();
    assert_eq!(meta.stats.num_samples, total as u64);

    let db_str = db.to_str().expect("utf-8 path");
    let list = String::from_utf8(promtool(&["tsdb", "list", db_str]).stdout).expect("utf-8");
    let row = list
        .lines()
        .find(|l| l.starts_with(&id.to_string()))
        .unwrap_or_else(|| panic!("block missing:\n{list}"));
    // ULID, min time, max time, duration, samples, chunks, series, size.
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols.len(), 8, "{row}");
    assert_eq!(cols[1], min.to_string(), "{row}");
    assert_eq!(cols[2], max.to_string(), "{row}");
    assert_eq!(cols[4], total.to_string(), "{row}");
    assert_eq!(cols[5], meta.stats.num_chunks.to_string(), "{row}");
    assert_eq!(cols[6], data.len().to_string(), "{row}");

    let analyze = promtool(&["tsdb", "analyze", "--extended", db_str, &id.to_string()]);
    let analyze = String::from_utf8_lossy(&analyze.stdout);
    assert!(analyze.contains(&format!("Block ID: {id}")), "{analyze}");
    assert!(
        analyze.contains(&format!("Series: {}", data.len())),
        "{analyze}"
    );

    // dump opens the directory as a database: work on a copy.
    let copy = tmp.path().join("copy");
    std::fs::create_dir_all(copy.join("wal")).expect("mkdir");
    copy_dir(&db.join(id.to_string()), &copy.join(id.to_string()));
    let dump = promtool(&[
        "tsdb",
        "dump",
        &format!("--min-time={}", i64::MIN),
        &format!("--max-time={}", i64::MAX),
        copy.to_str().expect("utf-8 path"),
    ]);
    let dumped = parse_dump(&String::from_utf8(dump.stdout).expect("utf-8"));
    assert_eq!(dumped.len(), data.len(), "series count");
    let tricky: Vec<&str> = dumped[r#"{__name__="tricky", kind="dod_edges"}"#]
        .iter()
        .map(|(_, v)| v.as_str())
        .collect();
    for text in [
        "-0",
        "+Inf",
        "-Inf",
        "NaN",
        "1e+300",
        "-1e+300",
        "1.7976931348623157e+308",
    ] {
        assert!(tricky.contains(&text), "{text} not in {tricky:?}");
    }
    for (labels, samples) in &data {
        let key = labels.to_string();
        let got = dumped
            .get(&key)
            .unwrap_or_else(|| panic!("{key} missing from the dump"));
        assert_eq!(got.len(), samples.len(), "{key}");
        for ((t, text), want) in got.iter().zip(samples) {
            assert_eq!(*t, want.t, "{key}");
            assert_same_value(&key, *t, text, want.v);
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        let dst = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).expect("copy");
        }
    }
}

/// Go's OpenMetrics text of a value.
fn om_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v:e}")
    }
}

#[test]
fn we_read_blocks_promtool_writes() {
    // Five hours of 15 s samples starting at an unaligned time: several 2 h
    // blocks with unaligned min/max times and uneven chunks.
    let start_s: i64 = 1_700_000_123;
    let values = tricky_values();
    let mut expected = Data::new();
    let mut text = String::new();
    for (family, kind) in [("temperature", "gauge"), ("pressure", "gauge")] {
        text.push_str(&format!(
            "# HELP {family} A test gauge.\n# TYPE {family} {kind}\n"
        ));
        for room in ["attic", "cellar", "hall"] {
            let labels = Labels::new([("__name__", family), ("room", room)]);
            let mut samples = Vec::new();
            for k in 0..(5 * 240) {
                let v = match k % 9 {
                    0 => values[(k / 9) % values.len()],
                    _ => (k as f64) * 0.25 - 100.0,
                };
                if v.to_bits() == STALE_NAN.to_bits() {
                    continue; // the text format cannot carry the stale marker
                }
                let t = start_s + k as i64 * 15;
                text.push_str(&format!(
                    "{family}{{room=\"{room}\"}} {} {t}\n",
                    om_value(v)
                ));
                samples.push(Sample::new(t * 1000, v));
            }
            expected.insert(labels, samples);
        }
    }
    text.push_str("# EOF\n");

    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("input.om");
    std::fs::write(&input, text).expect("write input");
    let out = tmp.path().join("blocks");
    promtool(&[
        "tsdb",
        "create-blocks-from",
        "openmetrics",
        input.to_str().expect("utf-8 path"),
        out.to_str().expect("utf-8 path"),
    ]);

    let mut got = Data::new();
    let mut blocks = 0;
    for e in std::fs::read_dir(&out).expect("read output") {
        let name = e
            .expect("entry")
            .file_name()
            .into_string()
            .expect("utf-8 name");
        if !is_block_dir(&name) {
            continue;
        }
        blocks += 1;
        let block =
            Block::open(out.join(&name)).unwrap_or_else(|e| panic!("open block {name}: {e}"));
        let meta = block.meta().clone();
        // Prometheus 2.42's layout: a "" symbol, and legacy label index
        // sections plus a label offset table that the reader skips.
        assert_eq!(block.index().symbol(0).expect("symbol 0"), "");
        let toc = block.index().toc();
        assert!(toc.label_indices_table < toc.postings_table, "{toc:?}");
        assert!(toc.label_indices < toc.postings, "{toc:?}");
        let all = Matcher::new(MatchOp::RegexMatch, "__name__", ".+").expect("matcher");
        let series = block
            .select(&[all], meta.min_time, meta.max_time - 1, false)
            .expect("select");
        let mut n = 0;
        for s in series {
            let samples = s.samples(i64::MIN, i64::MAX).expect("decode");
            assert!(
                samples
                    .iter()
                    .all(|x| meta.min_time <= x.t && x.t < meta.max_time),
                "{name}"
            );
            n += samples.len() as u64;
            got.entry(s.labels).or_default().extend(samples);
        }
        assert_eq!(
            n, meta.stats.num_samples,
            "block {name}: samples vs meta.json"
        );
        assert_eq!(
            block.label_values("room", &[]).expect("values"),
            vec!["attic", "cellar", "hall"]
        );
    }
    assert!(blocks >= 3, "expected several 2 h blocks, got {blocks}");
    assert_eq!(got.len(), expected.len());
    for (labels, want) in &expected {
        let mut samples = got
            .remove(labels)
            .unwrap_or_else(|| panic!("{labels} missing"));
        samples.sort_by_key(|s| s.t);
        assert_eq!(samples.len(), want.len(), "{labels}");
        for (g, w) in samples.iter().zip(want) {
            assert_eq!(g.t, w.t, "{labels}");
            if w.v.is_nan() {
                assert!(g.v.is_nan(), "{labels} @{}", w.t);
            } else {
                assert_eq!(g.v.to_bits(), w.v.to_bits(), "{labels} @{}", w.t);
            }
        }
    }
}
