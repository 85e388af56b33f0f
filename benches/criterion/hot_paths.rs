//! Criterion benchmarks of the hot paths of ingestion and storage:
//! XOR chunk encoding and decoding, label-set building, remote-write
//! decoding, and appending batches to the TSDB (WAL + head).
//!
//!     cargo bench -p hearth-benches

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use hearth_model::chunkenc::{XorChunk, XorIterator};
use hearth_model::{Labels, Sample};
use hearth_proto::prometheus::{Label, Sample as ProtoSample, TimeSeries, WriteRequest};
use hearth_storage_api::SeriesSamples;
use hearth_tsdb::db::{Db, DbOptions};

/// 120 samples at 15 s of a slowly growing counter: a typical chunk.
fn typical_samples() -> Vec<(i64, f64)> {
    (0..120)
        .map(|i| (1_700_000_000_000 + i * 15_000 + (i % 3), (i * 7) as f64))
        .collect()
}

fn xor(c: &mut Criterion) {
    let samples = typical_samples();
    let mut g = c.benchmark_group("xor_chunk");
    g.throughput(Throughput::Elements(samples.len() as u64));
    g.bench_function("encode_120", |b| {
        b.iter(|| {
            let mut chunk = XorChunk::new();
            for &(t, v) in &samples {
                chunk.append(t, v).expect("chunk has room");
            }
            black_box(chunk.bytes().len())
        })
    });
    let mut chunk = XorChunk::new();
    for &(t, v) in &samples {
        chunk.append(t, v).expect("chunk has room");
    }
    let bytes = chunk.into_bytes();
    g.bench_function("decode_120", |b| {
        b.iter(|| {
            let mut sum = 0.0;
            for s in XorIterator::new(black_box(&bytes)) {
                sum += s.expect("valid chunk").v;
            }
            black_box(sum)
        })
    });
    g.finish();
}

fn labels(c: &mut Criterion) {
    let pairs = [
        ("__name__", "http_requests_total"),
        ("code", "200"),
        ("handler", "/api/v1/query"),
        ("instance", "10.0.0.1:9090"),
        ("job", "prometheus"),
        ("method", "get"),
    ];
    c.bench_function("labels/from_sorted_6", |b| {
        b.iter(|| black_box(Labels::from_sorted(black_box(pairs).iter().copied())))
    });
    let l = Labels::from_sorted(pairs.iter().copied());
    c.bench_function("labels/stable_hash_6", |b| {
        b.iter(|| black_box(l.stable_hash()))
    });
}

/// A remote-write request of `series` series with `samples` samples each.
fn write_request(series: usize, samples: usize, t0: i64) -> WriteRequest {
    WriteRequest {
        timeseries: (0..series)
            .map(|i| TimeSeries {
                labels: vec![
                    Label {
                        name: "__name__".into(),
                        value: format!("metric_{}", i % 50),
                    },
                    Label {
                        name: "instance".into(),
                        value: format!("host-{}:9100", i / 50),
                    },
                    Label {
                        name: "job".into(),
                        value: "node".into(),
                    },
                ],
                samples: (0..samples)
                    .map(|k| ProtoSample {
                        value: (i + k) as f64,
                        timestamp: t0 + k as i64 * 15_000,
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn remote_write_decode(c: &mut Criterion) {
    let body = hearth_proto::remote_write::encode_write_request(&write_request(
        2000,
        1,
        1_700_000_000_000,
    ));
    let mut g = c.benchmark_group("remote_write");
    g.throughput(Throughput::Elements(2000));
    g.bench_function("decode_2000_series", |b| {
        b.iter(|| {
            let d = hearth_proto::remote_write::decode_write_request(
                black_box(&body),
                Some("snappy"),
                None,
            )
            .expect("valid body");
            black_box(d.series.len())
        })
    });
    g.finish();
}

fn tsdb_append(c: &mut Criterion) {
    let mut g = c.benchmark_group("tsdb");
    g.throughput(Throughput::Elements(2000));
    g.sample_size(20);
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Db::open(dir.path(), DbOptions::default()).expect("open db");
    let base: Vec<SeriesSamples> = write_request(2000, 0, 0)
        .timeseries
        .iter()
        .map(|ts| SeriesSamples {
            labels: Labels::new(
                ts.labels
                    .iter()
                    .map(|l| (l.name.as_str(), l.value.as_str())),
            ),
            samples: Vec::new(),
        })
        .collect();
    let mut t = 1_700_000_000_000i64;
    g.bench_function("append_batch_2000_series_1_sample", |b| {
        b.iter_batched(
            || {
                t += 15_000;
                base.iter()
                    .map(|s| SeriesSamples {
                        labels: s.labels.clone(),
                        samples: vec![Sample::new(t, t as f64)],
                    })
                    .collect::<Vec<_>>()
            },
            |batch| db.append_batch(&batch).expect("append"),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, xor, labels, remote_write_decode, tsdb_append);
criterion_main!(benches);
