//! Checkpoints keep the series the caller keeps, the samples and tombstones
//! at or after the truncation time, replace older checkpoints, and replay
//! reads the newest checkpoint before the segments after it.

use std::fs;
use std::path::Path;

use hearth_model::Labels;
use hearth_tsdb::wal::checkpoint::{checkpoint_dir, delete_checkpoints};
use hearth_tsdb::wal::{
    checkpoint, last_checkpoint, list_segments, segment_path, CheckpointStats, Record, RefSample,
    RefSeries, Stone, Wal, WalOptions, WalReader, PAGE_SIZE,
};

fn opts() -> WalOptions {
    WalOptions {
        segment_size: PAGE_SIZE as u64,
        compress: true,
        fsync_on_log: false,
    }
}

fn series(r: u64) -> RefSeries {
    RefSeries {
        ref_: r,
        labels: Labels::new([("__name__", "m"), ("i", &r.to_string())]),
    }
}

fn log(wal: &Wal, rec: Record) {
    wal.log(&[&rec.encode()]).unwrap();
}

fn decode_all(mut r: WalReader) -> Vec<Record> {
    let mut out = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        out.push(Record::decode(rec).unwrap());
    }
    assert_eq!(r.torn_tail(), None);
    out
}

/// Series 1..=10 in segment 0; samples t = 0..10 for each, one segment per
/// timestamp; tombstones ending at 3 and at 8.
fn populate(wal: &Wal) {
    log(wal, Record::Series((1..=10).map(series).collect()));
    for t in 0..10 {
        wal.next_segment().unwrap();
        log(
            wal,
            Record::Samples(
                (1..=10)
                    .map(|r| RefSample {
                        ref_: r,
                        t,
                        v: t as f64,
                    })
                    .collect(),
            ),
        );
    }
    log(
        wal,
        Record::Tombstones(vec![
            Stone {
                ref_: 2,
                intervals: vec![(0, 3)],
            },
            Stone {
                ref_: 4,
                intervals: vec![(0, 8)],
            },
        ]),
    );
    // An exemplar record: not decoded by Hearth, dropped by checkpoints.
    wal.log(&[&[4, 0, 0, 0, 0, 0, 0, 0, 1]]).unwrap();
}

#[test]
fn checkpoint_filters_and_replay_reads_it_first() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), opts()).unwrap();
    populate(&wal);
    let last = wal.next_segment().unwrap();
    log(
        &wal,
        Record::Samples(vec![RefSample {
            ref_: 2,
            t: 100,
            v: 1.5,
        }]),
    );
    assert_eq!(last, 11);

    let to = last - 1;
    let stats = checkpoint(dir.path(), 0, to, |r| r % 2 == 0, 5).unwrap();
    assert_eq!(
        stats,
        CheckpointStats {
            total_series: 10,
            dropped_series: 5,
            total_samples: 100,
            dropped_samples: 50,
            total_tombstones: 2,
            dropped_tombstones: 1,
            dropped_records: 1,
        }
    );
    let cp = checkpoint_dir(dir.path(), to);
    assert_eq!(last_checkpoint(dir.path()).unwrap(), Some((cp.clone(), to)));
    assert!(!Path::new(&format!("{}.tmp", cp.display())).exists());

    let got =
        decode_all(WalReader::with_checkpoint(Some(&cp), dir.path(), u32::MAX, None).unwrap());
    let mut want = vec![Record::Series(
        [2, 4, 6, 8, 10].into_iter().map(series).collect(),
    )];
    for t in 5..10 {
        want.push(Record::Samples(
            (1..=10)
                .map(|r| RefSample {
                    ref_: r,
                    t,
                    v: t as f64,
                })
                .collect(),
        ));
    }
    want.push(Record::Tombstones(vec![Stone {
        ref_: 4,
        intervals: vec![(0, 8)],
    }]));
    assert_eq!(got, want);

    // Before truncation replay skips the segments the checkpoint covers.
    let after = Record::Samples(vec![RefSample {
        ref_: 2,
        t: 100,
        v: 1.5,
    }]);
    want.push(after.clone());
    assert_eq!(decode_all(WalReader::open(dir.path()).unwrap()), want);
    wal.truncate(to + 1).unwrap();
    assert_eq!(wal.segments(), (last, last));
    assert_eq!(decode_all(WalReader::open(dir.path()).unwrap()), want);

    // A second checkpoint reads the first, then replaces it.
    log(&wal, Record::Series(vec![series(12)]));
    let last2 = wal.next_segment().unwrap();
    let stats = checkpoint(dir.path(), last, last2 - 1, |r| r != 4, 6).unwrap();
    assert_eq!(stats.total_series, 6);
    assert_eq!(stats.dropped_series, 1);
    assert_eq!(stats.total_samples, 51);
    assert_eq!(stats.dropped_samples, 10);
    assert_eq!(
        last_checkpoint(dir.path()).unwrap().map(|c| c.1),
        Some(last2 - 1)
    );
    assert!(!cp.exists(), "older checkpoint deleted");
    wal.truncate(last2).unwrap();
    let got = decode_all(WalReader::open(dir.path()).unwrap());
    let mut want = vec![Record::Series(
        [2, 6, 8, 10].into_iter().map(series).collect(),
    )];
    for t in 6..10 {
        want.push(Record::Samples(
            (1..=10)
                .map(|r| RefSample {
                    ref_: r,
                    t,
                    v: t as f64,
                })
                .collect(),
        ));
    }
    want.push(Record::Tombstones(vec![Stone {
        ref_: 4,
        intervals: vec![(0, 8)],
    }]));
    want.push(after);
    want.push(Record::Series(vec![series(12)]));
    assert_eq!(got, want);

    // Reopening after everything was checkpointed numbers on after it.
    drop(wal);
    let wal = Wal::open(dir.path(), opts()).unwrap();
    assert_eq!(wal.segments().1, last2 + 1);
}

#[test]
fn numbering_goes_on_after_a_checkpoint_when_no_segment_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), opts()).unwrap();
    log(&wal, Record::Series(vec![series(1)]));
    wal.next_segment().unwrap();
    checkpoint(dir.path(), 0, 0, |_| true, 0).unwrap();
    drop(wal);
    for s in list_segments(dir.path()).unwrap() {
        fs::remove_file(s.path).unwrap();
    }
    let wal = Wal::open(dir.path(), opts()).unwrap();
    assert_eq!(wal.segments(), (1, 1));
    log(&wal, Record::Series(vec![series(2)]));
    drop(wal);
    let got = decode_all(WalReader::open(dir.path()).unwrap());
    assert_eq!(
        got,
        vec![
            Record::Series(vec![series(1)]),
            Record::Series(vec![series(2)])
        ]
    );
}

#[test]
fn gaps_and_corruption_fail_without_leaving_a_checkpoint_behind() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), opts()).unwrap();
    populate(&wal);
    wal.next_segment().unwrap();
    checkpoint(dir.path(), 0, 2, |_| true, 0).unwrap();

    // The next checkpoint must start right after the last one.
    assert!(checkpoint(dir.path(), 5, 6, |_| true, 0).is_err());
    // Nor go back before it.
    assert!(checkpoint(dir.path(), 0, 1, |_| true, 0).is_err());

    // A damaged segment in the range fails the checkpoint.
    let path = segment_path(dir.path(), 4);
    let mut bytes = fs::read(&path).unwrap();
    bytes[20] ^= 0xFF;
    fs::write(&path, &bytes).unwrap();
    let err = checkpoint(dir.path(), 3, 6, |_| true, 0).unwrap_err();
    assert!(err.to_string().contains("00000004"), "{err}");
    assert_eq!(last_checkpoint(dir.path()).unwrap().map(|c| c.1), Some(2));
    assert!(!checkpoint_dir(dir.path(), 6).exists());
    assert!(!Path::new(&format!("{}.tmp", checkpoint_dir(dir.path(), 6).display())).exists());

    // A damaged checkpoint is corruption, never a torn tail.
    let cp_seg = segment_path(&checkpoint_dir(dir.path(), 2), 0);
    let mut bytes = fs::read(&cp_seg).unwrap();
    bytes[10] ^= 0xFF;
    fs::write(&cp_seg, &bytes).unwrap();
    let mut r = WalReader::open(dir.path()).unwrap();
    let err = r.next_record().unwrap_err();
    assert!(err.to_string().contains("checkpoint"), "{err}");
}

#[test]
fn last_checkpoint_ignores_temporary_directories() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(last_checkpoint(dir.path()).unwrap(), None);
    fs::create_dir(dir.path().join("checkpoint.00000003")).unwrap();
    fs::create_dir(dir.path().join("checkpoint.00000007.tmp")).unwrap();
    fs::create_dir(dir.path().join("checkpoint.00000005")).unwrap();
    assert_eq!(last_checkpoint(dir.path()).unwrap().map(|c| c.1), Some(5));
    delete_checkpoints(dir.path(), 5).unwrap();
    assert!(!dir.path().join("checkpoint.00000003").exists());
    assert!(dir.path().join("checkpoint.00000005").exists());
    fs::write(dir.path().join("checkpoint.00000009"), b"").unwrap();
    assert!(
        last_checkpoint(dir.path()).is_err(),
        "a checkpoint that is a file"
    );
}
