//! Replay speed: writes 1 M series and 10 M samples (1 000 series or 1 000
//! samples per record, snappy on, 128 MiB segments) and times reading them
//! back, with and without decoding. Ignored by default; run it with
//!
//! ```text
//! cargo test --release -p hearth-tsdb --test wal_replay_speed -- --ignored --nocapture
//! ```

use std::time::Instant;

use hearth_model::Labels;
use hearth_tsdb::wal::record::{self, RefSample, RefSeries};
use hearth_tsdb::wal::{Record, Wal, WalOptions, WalReader};

const SERIES: u64 = 1_000_000;
const SAMPLES_PER_SERIES: u64 = 10;
const PER_RECORD: u64 = 1_000;

#[test]
#[ignore = "benchmark: run with --release -- --ignored --nocapture"]
fn replay_one_million_series_and_ten_million_samples() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    let mut buf = Vec::new();
    for chunk in 0..SERIES / PER_RECORD {
        let series: Vec<RefSeries> = (chunk * PER_RECORD..(chunk + 1) * PER_RECORD)
            .map(|r| {
                let name = format!("metric_{}", r % 100);
                let instance = format!("host-{}.example.com:9100", r / 100 % 1000);
                let id = r.to_string();
                RefSeries {
                    ref_: r,
                    labels: Labels::new([
                        ("__name__", name.as_str()),
                        ("instance", &instance),
                        ("job", "node"),
                        ("id", &id),
                    ]),
                }
            })
            .collect();
        buf.clear();
        record::encode_series(&series, &mut buf);
        wal.log(&[&buf]).unwrap();
    }
    for k in 0..SAMPLES_PER_SERIES {
        let t = 1_700_000_000_000 + k as i64 * 15_000;
        for chunk in 0..SERIES / PER_RECORD {
            let samples: Vec<RefSample> = (chunk * PER_RECORD..(chunk + 1) * PER_RECORD)
                .map(|r| RefSample {
                    ref_: r,
                    t: t + (r % 7) as i64,
                    v: (r * 3 + k) as f64 * 0.5,
                })
                .collect();
            buf.clear();
            record::encode_samples(&samples, &mut buf);
            wal.log(&[&buf]).unwrap();
        }
    }
    wal.close().unwrap();
    let write_secs = started.elapsed().as_secs_f64();
    let bytes: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();

    // Raw records only (fragments, CRCs, snappy).
    let started = Instant::now();
    let mut reader = WalReader::open(dir.path()).unwrap();
    let (mut records, mut record_bytes) = (0u64, 0u64);
    while let Some(rec) = reader.next_record().unwrap() {
        records += 1;
        record_bytes += rec.len() as u64;
    }
    let read_secs = started.elapsed().as_secs_f64();

    // Full replay: records decoded into reused buffers, as a head does.
    let started = Instant::now();
    let mut reader = WalReader::open(dir.path()).unwrap();
    let (mut series, mut samples) = (Vec::new(), Vec::new());
    let (mut n_series, mut n_samples) = (0u64, 0u64);
    while let Some(rec) = reader.next_record().unwrap() {
        match record::record_type(rec) {
            Some(record::SERIES) => {
                series.clear();
                record::decode_series(rec, &mut series).unwrap();
                n_series += series.len() as u64;
            }
            Some(record::SAMPLES) => {
                samples.clear();
                record::decode_samples(rec, &mut samples).unwrap();
                n_samples += samples.len() as u64;
            }
            _ => {}
        }
    }
    let replay_secs = started.elapsed().as_secs_f64();

    // The convenience decoder, allocating per record.
    let started = Instant::now();
    let mut reader = WalReader::open(dir.path()).unwrap();
    let mut n = 0u64;
    while let Some(rec) = reader.next_record().unwrap() {
        if let Record::Samples(s) = Record::decode(rec).unwrap() {
            n += s.len() as u64;
        }
    }
    let decode_alloc_secs = started.elapsed().as_secs_f64();

    assert_eq!(n_series, SERIES);
    assert_eq!(n_samples, SERIES * SAMPLES_PER_SERIES);
    assert_eq!(n, n_samples);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "write: {write_secs:.2}s, {:.0} MiB on disk ({:.0} MiB of records, {records} records)",
        mib(bytes),
        mib(record_bytes)
    );
    println!(
        "read records only: {read_secs:.2}s ({:.0} MiB/s of records)",
        mib(record_bytes) / read_secs
    );
    println!(
        "replay with decoding: {replay_secs:.2}s ({:.1} M samples/s, {:.2} M series/s equivalent)",
        n_samples as f64 / 1e6 / replay_secs,
        n_series as f64 / 1e6 / replay_secs
    );
    println!("replay with Record::decode: {decode_alloc_secs:.2}s");
}
