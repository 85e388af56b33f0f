//! The database over its life: appends, head compaction into blocks, WAL
//! truncation, reopening, leveled compaction and retention. Every sample
//! written must be read back at every step.

use hearth_model::{Labels, Sample};
use hearth_storage_api::{SelectHints, SeriesSamples};
use hearth_tsdb::compact::all_series_matcher;
use hearth_tsdb::db::{Db, DbOptions};

const MIN: i64 = 60_000;

fn opts() -> DbOptions {
    DbOptions {
        min_block_duration: 10 * MIN,
        max_block_duration: 90 * MIN,
        retention_time: 0,
        retention_size: 0,
        wal_segment_size: 64 * 1024,
        ..DbOptions::default()
    }
}

fn write(db: &Db, series: usize, from: i64, to: i64, step: i64) -> Vec<(Labels, Sample)> {
    let mut written = Vec::new();
    let mut t = from;
    while t < to {
        let batch: Vec<SeriesSamples> = (0..series)
            .map(|i| {
                let labels = Labels::new([("__name__", "m"), ("i", &i.to_string())]);
                let s = Sample::new(t, (t / 1000) as f64 + i as f64);
                written.push((labels.clone(), s));
                SeriesSamples {
                    labels,
                    samples: vec![s],
                }
            })
            .collect();
        db.append_batch(&batch).unwrap();
        t += step;
    }
    written
}

fn read_all(db: &Db) -> Vec<(Labels, Sample)> {
    let mut out = Vec::new();
    for s in db
        .select_sync(
            &[all_series_matcher()],
            SelectHints::new(i64::MIN, i64::MAX),
        )
        .unwrap()
    {
        for x in s.samples(i64::MIN, i64::MAX).unwrap() {
            out.push((s.labels.clone(), x));
        }
    }
    out
}

fn sorted(mut v: Vec<(Labels, Sample)>) -> Vec<(Labels, i64, u64)> {
    let mut k: Vec<_> = v.drain(..).map(|(l, s)| (l, s.t, s.v.to_bits())).collect();
    k.sort();
    k
}

#[test]
fn head_compaction_reopen_and_leveled_compaction_keep_every_sample() {
    let dir = tempfile::tempdir().unwrap();
    let written;
    {
        let db = Db::open(dir.path(), opts()).unwrap();
        // 100 minutes of data at 15 s for 5 series: compactable into blocks.
        written = write(&db, 5, 0, 100 * MIN, 15_000);
        let made = db.compact().unwrap();
        assert!(!made.is_empty(), "no block was cut");
        assert!(!db.blocks().is_empty());
        // The head keeps only the last 1.5 ranges or so.
        assert!(
            db.head().min_time() >= 80 * MIN,
            "head min {}",
            db.head().min_time()
        );
        assert_eq!(sorted(read_all(&db)), sorted(written.clone()));
        db.close().unwrap();
    }
    // Reopen: blocks plus the replayed (checkpointed, truncated) WAL.
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(sorted(read_all(&db)), sorted(written.clone()));
    // Blocks were merged into larger ones by the leveled plan.
    let levels: Vec<u32> = db
        .blocks()
        .iter()
        .map(|b| b.meta().compaction.level)
        .collect();
    assert!(
        levels.iter().any(|&l| l >= 2),
        "no leveled compaction happened: {levels:?}"
    );
    // Blocks never overlap after compaction.
    let blocks = db.blocks();
    for w in blocks.windows(2) {
        assert!(w[0].meta().max_time <= w[1].meta().min_time);
    }
    // Old samples are out of bounds now.
    let late = SeriesSamples {
        labels: Labels::new([("__name__", "m"), ("i", "0")]),
        samples: vec![Sample::new(MIN, 1.0)],
    };
    assert!(db.append_batch(&[late]).is_err());
}

#[test]
fn retention_by_time_drops_old_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts();
    o.retention_time = 30 * MIN;
    o.max_block_duration = 10 * MIN;
    let db = Db::open(dir.path(), o).unwrap();
    write(&db, 2, 0, 120 * MIN, 30_000);
    db.compact().unwrap();
    let oldest = db.blocks().iter().map(|b| b.meta().min_time).min().unwrap();
    let newest_max = db.blocks().iter().map(|b| b.meta().max_time).max().unwrap();
    assert!(
        newest_max - oldest <= 40 * MIN,
        "blocks beyond retention remain: {oldest}..{newest_max}"
    );
    // Nothing in the head was lost to retention.
    let all = read_all(&db);
    assert!(all.iter().any(|(_, s)| s.t == 120 * MIN - 30_000));
}

#[test]
fn rejected_batch_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    let a = Labels::new([("__name__", "a")]);
    let b = Labels::new([("__name__", "b")]);
    db.append_batch(&[SeriesSamples {
        labels: a.clone(),
        samples: vec![Sample::new(1000, 1.0)],
    }])
    .unwrap();
    let bad = vec![
        SeriesSamples {
            labels: b.clone(),
            samples: vec![Sample::new(2000, 1.0)],
        },
        SeriesSamples {
            labels: a.clone(),
            samples: vec![Sample::new(500, 1.0)],
        },
    ];
    assert!(db.append_batch(&bad).is_err());
    assert_eq!(read_all(&db).len(), 1);
    drop(db);
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(read_all(&db).len(), 1);
}

#[test]
fn a_data_directory_is_opened_by_one_process_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    let second = Db::open(dir.path(), opts());
    assert!(
        second.is_err(),
        "a second open of a locked directory succeeded"
    );
    drop(db);
    Db::open(dir.path(), opts()).unwrap();
}

#[test]
fn keep_valid_mode_reports_each_rejected_sample_and_keeps_the_rest() {
    use hearth_tsdb::db::AppendMode;
    use hearth_tsdb::Error;
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    let a = Labels::new([("__name__", "a")]);
    let b = Labels::new([("__name__", "b")]);
    db.append_batch(&[SeriesSamples {
        labels: a.clone(),
        samples: vec![Sample::new(10_000, 1.0)],
    }])
    .unwrap();
    let batch = vec![
        SeriesSamples {
            labels: a.clone(),
            samples: vec![
                Sample::new(5_000, 1.0),  // out of order
                Sample::new(10_000, 2.0), // duplicate timestamp, other value
                Sample::new(10_000, 1.0), // identical duplicate: dropped silently
                Sample::new(11_000, 3.0), // kept
            ],
        },
        SeriesSamples {
            labels: b.clone(),
            samples: vec![Sample::new(12_000, 4.0)],
        },
        SeriesSamples {
            labels: Labels::empty(),
            samples: vec![Sample::new(12_000, 4.0)],
        },
    ];
    let out = db.append(&batch, AppendMode::KeepValid).unwrap();
    let kinds: Vec<(usize, usize, &str)> = out
        .rejected
        .iter()
        .map(|r| {
            let k = match r.error {
                Error::OutOfOrderSample => "order",
                Error::DuplicateSampleForTimestamp => "duplicate",
                Error::InvalidSeries { .. } => "invalid",
                _ => "other",
            };
            (r.series, r.sample, k)
        })
        .collect();
    assert_eq!(
        kinds,
        vec![(0, 0, "order"), (0, 1, "duplicate"), (2, 0, "invalid")]
    );
    assert_eq!(out.stats.samples_appended, 2);
    assert_eq!(out.stats.duplicates_dropped, 1);
    let stored: Vec<(String, i64, f64)> = read_all(&db)
        .into_iter()
        .map(|(l, s)| (l.to_string(), s.t, s.v))
        .collect();
    assert_eq!(
        stored,
        vec![
            ("{__name__=\"a\"}".to_string(), 10_000, 1.0),
            ("{__name__=\"a\"}".to_string(), 11_000, 3.0),
            ("{__name__=\"b\"}".to_string(), 12_000, 4.0),
        ]
    );
    // And it survives a restart exactly.
    drop(db);
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(read_all(&db).len(), 3);
}

#[test]
fn retention_by_size_drops_the_oldest_blocks_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts();
    o.max_block_duration = 10 * MIN;
    let db = Db::open(dir.path(), o.clone()).unwrap();
    write(&db, 20, 0, 120 * MIN, 15_000);
    db.compact().unwrap();
    let blocks = db.blocks();
    assert!(blocks.len() >= 5, "{} blocks", blocks.len());
    let sizes: Vec<u64> = blocks
        .iter()
        .map(|b| hearth_tsdb::db::dir_size(b.dir()))
        .collect();
    let newest_two: u64 = sizes.iter().rev().take(2).sum();
    drop(db);
    o.retention_size = newest_two;
    let db = Db::open(dir.path(), o).unwrap();
    db.compact().unwrap();
    let left = db.blocks();
    assert_eq!(left.len(), 2, "size retention kept {} blocks", left.len());
    assert_eq!(left[1].meta().ulid, blocks.last().unwrap().meta().ulid);
}
