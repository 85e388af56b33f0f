//! Blocks written by `BlockWriter` read back through `Block`: samples,
//! stats, matchers, label queries, tombstones, chunk cutting, atomicity and
//! corruption handling.

use std::collections::BTreeMap;
use std::path::Path;

use hearth_model::chunkenc::{Encoding, XorIterator};
use hearth_model::{Labels, MatchOp, Matcher, Sample, STALE_NAN};
use hearth_tsdb::block::{
    chunks_from_samples, is_block_dir, Block, BlockCompaction, BlockWriter, Interval, Tombstones,
};
use proptest::prelude::*;
use ulid::Ulid;

const HOUR: i64 = 3_600_000;

type Data = BTreeMap<Labels, Vec<Sample>>;

fn write_block(parent: &Path, data: &Data, min_time: i64, max_time: i64, chunk_range: i64) -> Ulid {
    let id = Ulid::new();
    let mut w = BlockWriter::new(parent, id, min_time, max_time).unwrap();
    for (labels, samples) in data {
        w.add_series(labels, &chunks_from_samples(samples, chunk_range).unwrap())
            .unwrap();
    }
    w.finish(BlockCompaction::default()).unwrap();
    id
}

fn read_all(block: &Block, mint: i64, maxt: i64) -> Data {
    let all = Matcher::new(MatchOp::RegexMatch, "__name__", ".*").unwrap();
    block
        .select(&[all], mint, maxt, false)
        .unwrap()
        .into_iter()
        .map(|s| {
            let samples = s.samples(mint, maxt).unwrap();
            (s.labels, samples)
        })
        .collect()
}

fn bits(samples: &[Sample]) -> Vec<(i64, u64)> {
    samples.iter().map(|s| (s.t, s.v.to_bits())).collect()
}

fn sample_data() -> Data {
    let mut data = Data::new();
    for job in ["api", "db", "web"] {
        for i in 0..4 {
            let labels = Labels::new([
                ("__name__", "requests_total"),
                ("job", job),
                ("instance", &format!("i{i}")),
            ]);
            let samples = (0..480)
                .map(|k| Sample::new(k * 15_000, (k * i) as f64))
                .collect();
            data.insert(labels, samples);
        }
    }
    data.insert(
        Labels::new([("__name__", "up"), ("job", "api")]),
        vec![
            Sample::new(0, 1.0),
            Sample::new(60_000, STALE_NAN),
            Sample::new(2 * HOUR - 1, -0.0),
        ],
    );
    data
}

#[test]
fn samples_stats_and_layout_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let data = sample_data();
    let id = write_block(dir.path(), &data, 0, 2 * HOUR, 2 * HOUR);

    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![id.to_string()],
        "only the finished block remains"
    );
    let block_dir = dir.path().join(id.to_string());
    assert!(is_block_dir(&id.to_string()));
    for f in ["meta.json", "index", "tombstones", "chunks/000001"] {
        assert!(block_dir.join(f).exists(), "{f} missing");
    }
    assert_eq!(
        std::fs::read(block_dir.join("tombstones")).unwrap().len(),
        9
    );

    let block = Block::open(&block_dir).unwrap();
    let meta = block.meta();
    assert_eq!(meta.ulid, id);
    assert_eq!((meta.min_time, meta.max_time), (0, 2 * HOUR));
    assert_eq!(meta.stats.num_series, 13);
    assert_eq!(meta.stats.num_samples, 12 * 480 + 3);
    assert_eq!(
        meta.stats.num_chunks,
        12 * 4 + 1,
        "480 samples at 15 s make four chunks of 120"
    );
    assert_eq!(meta.compaction.level, 1);
    assert_eq!(meta.compaction.sources, vec![id]);

    let got = read_all(&block, i64::MIN, i64::MAX);
    assert_eq!(got.len(), data.len());
    for ((gl, gs), (wl, ws)) in got.iter().zip(&data) {
        assert_eq!(gl, wl);
        assert_eq!(bits(gs), bits(ws), "{gl}");
    }
}

#[test]
fn matchers_ranges_and_label_queries() {
    let dir = tempfile::tempdir().unwrap();
    let id = write_block(dir.path(), &sample_data(), 0, 2 * HOUR, 2 * HOUR);
    let block = Block::open(dir.path().join(id.to_string())).unwrap();
    let m = |op, n: &str, v: &str| Matcher::new(op, n, v).unwrap();

    let api = block
        .select(&[m(MatchOp::Equal, "job", "api")], 0, 2 * HOUR, false)
        .unwrap();
    assert_eq!(api.len(), 5);
    assert!(api.windows(2).all(|w| w[0].labels < w[1].labels));

    let no_instance = block
        .select(&[m(MatchOp::Equal, "instance", "")], 0, 2 * HOUR, false)
        .unwrap();
    assert_eq!(no_instance.len(), 1);
    assert_eq!(no_instance[0].labels.metric_name(), Some("up"));

    let not_db = block
        .select(
            &[
                m(MatchOp::RegexMatch, "__name__", "req.*"),
                m(MatchOp::NotEqual, "job", "db"),
            ],
            0,
            1,
            true,
        )
        .unwrap();
    assert_eq!(not_db.len(), 8);
    assert!(
        not_db.iter().all(|s| s.chunks.is_empty()),
        "skip_chunks returns labels only"
    );

    // Only chunks overlapping the range are returned: [31 min, 32 min] hits
    // the second chunk (samples 120..239) alone.
    let narrow = block
        .select(
            &[m(MatchOp::Equal, "instance", "i1")],
            31 * 60_000,
            32 * 60_000,
            false,
        )
        .unwrap();
    assert_eq!(narrow.len(), 3);
    for s in &narrow {
        assert_eq!(s.chunks.len(), 1);
        assert_eq!(
            (s.chunks[0].mint, s.chunks[0].maxt),
            (120 * 15_000, 239 * 15_000)
        );
    }
    // `up` has samples at 0, 1 min and 2 h - 1 ms: nothing in [2 min, 1 h].
    let up = block
        .select(
            &[m(MatchOp::Equal, "__name__", "up")],
            2 * 60_000,
            HOUR,
            false,
        )
        .unwrap();
    assert_eq!(up.len(), 1, "one chunk spans the range");
    assert!(up[0].samples(2 * 60_000, HOUR).unwrap().is_empty());
    assert!(block
        .select(
            &[m(MatchOp::Equal, "__name__", "up")],
            2 * HOUR,
            3 * HOUR,
            false
        )
        .unwrap()
        .is_empty());

    assert_eq!(
        block.label_names(&[]).unwrap(),
        vec!["__name__", "instance", "job"]
    );
    assert_eq!(
        block
            .label_names(&[m(MatchOp::Equal, "__name__", "up")])
            .unwrap(),
        vec!["__name__", "job"]
    );
    assert_eq!(
        block.label_values("job", &[]).unwrap(),
        vec!["api", "db", "web"]
    );
    assert_eq!(
        block
            .label_values("instance", &[m(MatchOp::Equal, "job", "db")])
            .unwrap(),
        vec!["i0", "i1", "i2", "i3"]
    );
    assert_eq!(
        block
            .label_values("job", &[m(MatchOp::Equal, "__name__", "up")])
            .unwrap(),
        vec!["api"]
    );
    assert!(block.label_values("nope", &[]).unwrap().is_empty());
}

#[test]
fn tombstones_delete_samples_chunks_and_series() {
    let dir = tempfile::tempdir().unwrap();
    let data = sample_data();
    let id = write_block(dir.path(), &data, 0, 2 * HOUR, 2 * HOUR);
    let block_dir = dir.path().join(id.to_string());
    let block = Block::open(&block_dir).unwrap();
    let ids = block.index().postings("", "").unwrap();
    let series_of = |id: u64| block.index().series(id).unwrap().0;

    // Series 0: delete its second chunk entirely and part of its third.
    // Series 1: delete everything. The last series (`up`): delete t = 60 s.
    let mut t = Tombstones::new();
    t.add(ids[0], Interval::new(120 * 15_000, 239 * 15_000));
    t.add(ids[0], Interval::new(250 * 15_000, 260 * 15_000));
    t.add(ids[1], Interval::new(i64::MIN, i64::MAX));
    let up_id = *ids.last().unwrap();
    t.add(up_id, Interval::new(60_000, 60_000));
    t.write_to_dir(&block_dir).unwrap();
    let (s0, s1, up) = (series_of(ids[0]), series_of(ids[1]), series_of(up_id));
    drop(block);

    let block = Block::open(&block_dir).unwrap();
    assert_eq!(block.tombstones().num_intervals(), 4);
    let got = read_all(&block, i64::MIN, i64::MAX);
    assert!(
        !got.contains_key(&s1),
        "a fully deleted series is not returned"
    );
    assert_eq!(got.len(), data.len() - 1);
    let want0: Vec<Sample> = data[&s0]
        .iter()
        .copied()
        .filter(|s| {
            !(120..=239).contains(&(s.t / 15_000)) && !(250..=260).contains(&(s.t / 15_000))
        })
        .collect();
    assert_eq!(bits(&got[&s0]), bits(&want0));
    let all = Matcher::new(MatchOp::RegexMatch, "__name__", ".+").unwrap();
    let series = block.select(&[all], i64::MIN, i64::MAX, false).unwrap();
    let s0_chunks = &series.iter().find(|s| s.labels == s0).unwrap().chunks;
    assert_eq!(s0_chunks.len(), 3, "the deleted chunk is dropped");
    assert_eq!(s0_chunks[1].mint, 240 * 15_000);
    assert_eq!(s0_chunks[1].maxt, 359 * 15_000);
    assert_eq!(XorIterator::new(&s0_chunks[1].data).count(), 120 - 11);
    assert_eq!(
        bits(&got[&up]),
        bits(&[Sample::new(0, 1.0), Sample::new(2 * HOUR - 1, -0.0)])
    );
}

#[test]
fn writer_enforces_order_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let id = Ulid::new();
    let chunk = chunks_from_samples(&[Sample::new(10, 1.0)], 2 * HOUR).unwrap();
    {
        let mut w = BlockWriter::new(dir.path(), id, 0, 100).unwrap();
        assert!(w.tmp_dir().ends_with(format!("{id}.tmp-for-creation")));
        assert!(w.tmp_dir().exists());
        w.add_series(&Labels::new([("a", "2")]), &chunk).unwrap();
        let err = w
            .add_series(&Labels::new([("a", "1")]), &chunk)
            .unwrap_err();
        assert!(err.to_string().contains("ascending"), "{err}");
        assert!(
            w.add_series(&Labels::new([("a", "2")]), &chunk).is_err(),
            "duplicates are out of order"
        );
        let outside = chunks_from_samples(&[Sample::new(100, 1.0)], 2 * HOUR).unwrap();
        assert!(
            w.add_series(&Labels::new([("a", "3")]), &outside).is_err(),
            "maxTime is exclusive"
        );
        // A rejected series leaves the writer usable; an empty one is skipped.
        w.add_series(&Labels::new([("a", "3")]), &[]).unwrap();
        w.add_series(&Labels::new([("a", "4")]), &chunk).unwrap();
        // Dropped before finish.
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "the tmp dir is removed on drop"
    );

    let w = BlockWriter::new(dir.path(), id, 0, 100).unwrap();
    assert!(
        w.finish(BlockCompaction::default()).is_err(),
        "an empty block is refused"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    assert!(BlockWriter::new(dir.path(), id, 100, 100).is_err());

    let mut w = BlockWriter::new(dir.path(), id, 0, 100).unwrap();
    w.add_series(&Labels::new([("a", "1")]), &chunk).unwrap();
    w.add_series(&Labels::new([("b", "1")]), &[]).unwrap();
    let parent = Ulid::new();
    let meta = w
        .finish(BlockCompaction {
            level: 3,
            sources: vec![parent, id, parent],
            ..BlockCompaction::default()
        })
        .unwrap();
    assert_eq!(meta.stats.num_series, 1);
    assert_eq!(meta.compaction.level, 3);
    let mut want_sources = vec![parent, id];
    want_sources.sort();
    assert_eq!(meta.compaction.sources, want_sources);
    assert_eq!(
        Block::open(dir.path().join(id.to_string())).unwrap().meta(),
        &meta
    );
    assert!(
        BlockWriter::new(dir.path(), id, 0, 100).is_err(),
        "an existing block is not overwritten"
    );
}

#[test]
fn blocks_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Block>();
    assert_send_sync::<BlockWriter>();
}

#[test]
fn corrupt_chunks_fail_the_select_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let id = write_block(dir.path(), &sample_data(), 0, 2 * HOUR, 2 * HOUR);
    let block_dir = dir.path().join(id.to_string());
    let seg = block_dir.join("chunks/000001");
    let mut bytes = std::fs::read(&seg).unwrap();
    let len = bytes.len();
    bytes[len / 2] ^= 0xff;
    std::fs::write(&seg, &bytes).unwrap();
    let block = Block::open(&block_dir).unwrap();
    let all = Matcher::new(MatchOp::RegexMatch, "job", ".+").unwrap();
    let err = block
        .select(std::slice::from_ref(&all), 0, 2 * HOUR, false)
        .unwrap_err();
    assert!(err.to_string().contains(&id.to_string()), "{err}");
    assert!(err.to_string().contains("checksum"), "{err}");
    // Labels-only selects do not read chunks.
    assert_eq!(block.select(&[all], 0, 2 * HOUR, true).unwrap().len(), 13);

    std::fs::write(block_dir.join("index"), b"garbage").unwrap();
    assert!(Block::open(&block_dir).is_err());
    std::fs::remove_file(block_dir.join("meta.json")).unwrap();
    assert!(Block::open(&block_dir).is_err());
}

#[test]
fn chunk_cutting_follows_prometheus() {
    // A steady 15 s rate over 2 h: four chunks of exactly 120 samples.
    let steady: Vec<Sample> = (0..480).map(|k| Sample::new(k * 15_000, 1.0)).collect();
    let chunks = chunks_from_samples(&steady, 2 * HOUR).unwrap();
    let counts: Vec<usize> = chunks
        .iter()
        .map(|c| XorIterator::new(&c.data).count())
        .collect();
    assert_eq!(counts, vec![120, 120, 120, 120]);

    // Chunks never cross a range boundary, also for negative timestamps.
    let crossing: Vec<Sample> = (-100..100)
        .map(|k| Sample::new(k * 60_000, k as f64))
        .collect();
    for c in chunks_from_samples(&crossing, HOUR).unwrap() {
        assert_eq!(
            c.mint.div_euclid(HOUR),
            c.maxt.div_euclid(HOUR),
            "[{}, {}]",
            c.mint,
            c.maxt
        );
    }

    // A rate rising after the prediction is cut at 240 samples.
    let mut rising: Vec<Sample> = (0..30).map(|k| Sample::new(k * 60_000, 0.0)).collect();
    rising.extend((0..1000).map(|k| Sample::new(30 * 60_000 + k, 0.0)));
    let counts: Vec<usize> = chunks_from_samples(&rising, 100 * HOUR)
        .unwrap()
        .iter()
        .map(|c| XorIterator::new(&c.data).count())
        .collect();
    assert!(counts.iter().all(|&n| n <= 240), "{counts:?}");
    assert_eq!(counts[0], 240);

    // Incompressible values: chunks are cut by size and stay within 1024 bytes.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let noisy: Vec<Sample> = (0..2000)
        .map(|k| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Sample::new(k * 10, f64::from_bits(x))
        })
        .collect();
    let chunks = chunks_from_samples(&noisy, 2 * HOUR).unwrap();
    assert!(chunks.len() > 2000 / 120);
    assert!(chunks
        .iter()
        .all(|c| c.data.len() <= 1024 && c.encoding == Encoding::Xor));
    let decoded: Vec<Sample> = chunks
        .iter()
        .flat_map(|c| XorIterator::new(&c.data).map(Result::unwrap))
        .collect();
    assert_eq!(bits(&decoded), bits(&noisy));

    assert!(chunks_from_samples(&[Sample::new(2, 0.0), Sample::new(1, 0.0)], HOUR).is_err());
    assert!(chunks_from_samples(&[Sample::new(1, 0.0), Sample::new(1, 0.0)], HOUR).is_err());
    assert!(chunks_from_samples(&[], HOUR).unwrap().is_empty());
    assert!(chunks_from_samples(&steady, 0).is_err());
}

fn arb_data() -> impl Strategy<Value = Data> {
    let labels = proptest::collection::btree_map("[a-c]", "[a-z0-9]{1,3}", 1..4);
    let samples = (
        -10_000i64..10_000,
        proptest::collection::vec((1i64..5_000, any::<u64>()), 1..300),
    );
    proptest::collection::btree_map(labels, samples, 1..12).prop_map(|m| {
        m.into_iter()
            .map(|(l, (start, steps))| {
                let mut t = start;
                let samples = steps
                    .into_iter()
                    .map(|(d, v)| {
                        t += d;
                        Sample::new(t, f64::from_bits(v))
                    })
                    .collect();
                (Labels::new(l.iter()), samples)
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn random_blocks_round_trip(data in arb_data()) {
        let dir = tempfile::tempdir().unwrap();
        let min = data.values().map(|s| s[0].t).min().unwrap();
        let max = data.values().map(|s| s.last().unwrap().t).max().unwrap() + 1;
        let id = Ulid::new();
        let mut w = BlockWriter::new(dir.path(), id, min, max).unwrap();
        for (labels, samples) in &data {
            w.add_series(labels, &chunks_from_samples(samples, 3_600_000).unwrap()).unwrap();
        }
        let meta = w.finish(BlockCompaction::default()).unwrap();
        prop_assert_eq!(meta.stats.num_samples, data.values().map(|s| s.len() as u64).sum::<u64>());
        let block = Block::open(dir.path().join(id.to_string())).unwrap();
        let got: Data = block
            .select(&[Matcher::new(MatchOp::NotEqual, "zz", "x").unwrap()], i64::MIN, i64::MAX, false)
            .unwrap()
            .into_iter()
            .map(|s| { let v = s.samples(i64::MIN, i64::MAX).unwrap(); (s.labels, v) })
            .collect();
        prop_assert_eq!(got.len(), data.len());
        for ((gl, gs), (wl, ws)) in got.iter().zip(&data) {
            prop_assert_eq!(gl, wl);
            prop_assert_eq!(bits(gs), bits(ws));
        }
    }
}
