//! Records written by `Wal` come back from `WalReader` unchanged and in
//! order, across page and segment boundaries, with and without snappy, after
//! reopening, cutting and truncating, and under concurrent writers. Also
//! checks the byte layout of fragments against Prometheus's writer.

use std::path::Path;
use std::sync::Arc;

use hearth_tsdb::encoding::crc32c;
use hearth_tsdb::wal::{list_segments, Wal, WalOptions, WalReader, PAGE_SIZE};
use proptest::prelude::*;

fn read_all(dir: &Path) -> Vec<Vec<u8>> {
    let mut r = WalReader::open(dir).unwrap();
    let mut out = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        out.push(rec.to_vec());
    }
    assert_eq!(r.torn_tail(), None);
    out
}

fn opts(pages: u64, compress: bool) -> WalOptions {
    WalOptions {
        segment_size: pages * PAGE_SIZE as u64,
        compress,
        fsync_on_log: false,
    }
}

/// A record of `len` bytes: compressible (runs) or not (pseudo-random).
fn make_record(len: usize, seed: u64, compressible: bool) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|i| {
            if compressible {
                ((i / 64) as u64 ^ seed) as u8
            } else {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            }
        })
        .collect()
}

#[derive(Debug, Clone)]
enum Op {
    Log(Vec<(usize, bool)>),
    Cut,
    Reopen,
}

fn arb_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        4 => 1usize..64,
        4 => 64usize..4_000,
        2 => 30_000usize..70_000,
        1 => 100_000usize..260_000,
    ]
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => proptest::collection::vec((arb_len(), any::<bool>()), 1..6).prop_map(Op::Log),
        1 => Just(Op::Cut),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn records_round_trip(ops in proptest::collection::vec(arb_op(), 1..16), compress in any::<bool>(), pages in 1u64..5) {
        let dir = tempfile::tempdir().unwrap();
        let o = opts(pages, compress);
        let mut wal = Wal::open(dir.path(), o.clone()).unwrap();
        let mut want: Vec<Vec<u8>> = Vec::new();
        for op in ops {
            match op {
                Op::Log(batch) => {
                    let recs: Vec<Vec<u8>> =
                        batch.iter().map(|&(len, c)| make_record(len, want.len() as u64, c)).collect();
                    let refs: Vec<&[u8]> = recs.iter().map(Vec::as_slice).collect();
                    wal.log(&refs).unwrap();
                    want.extend(recs);
                }
                Op::Cut => {
                    let (_, last) = wal.segments();
                    prop_assert_eq!(wal.next_segment().unwrap(), last + 1);
                }
                Op::Reopen => {
                    drop(wal);
                    wal = Wal::open(dir.path(), o.clone()).unwrap();
                }
            }
        }
        // Readable while the writer is still open, and after it closed.
        prop_assert_eq!(read_all(dir.path()), want.clone());
        wal.close().unwrap();
        prop_assert_eq!(read_all(dir.path()), want);

        // Only oversized records make a segment larger than the limit, and
        // then the record starts the segment.
        for s in list_segments(dir.path()).unwrap() {
            let len = std::fs::metadata(&s.path).unwrap().len();
            if len > o.segment_size {
                let mut r = WalReader::open_range(dir.path(), s.index, Some(s.index)).unwrap();
                r.next_record().unwrap().unwrap();
                prop_assert_eq!(r.position().start, 0);
            }
        }
    }
}

#[test]
fn fragments_are_laid_out_like_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), opts(2, false)).unwrap();
    // 40 000 bytes: a first fragment filling page 0, a last one in page 1.
    let big = make_record(40_000, 1, false);
    wal.log(&[&big]).unwrap();
    let seg = std::fs::read(dir.path().join("00000000")).unwrap();
    let first_len = PAGE_SIZE - 7;
    assert_eq!(seg[0], 2, "first fragment");
    assert_eq!(u16::from_be_bytes([seg[1], seg[2]]) as usize, first_len);
    assert_eq!(
        u32::from_be_bytes(seg[3..7].try_into().unwrap()),
        crc32c(&big[..first_len])
    );
    assert_eq!(&seg[7..PAGE_SIZE], &big[..first_len]);
    assert_eq!(seg[PAGE_SIZE], 4, "last fragment");
    let last_len = 40_000 - first_len;
    assert_eq!(
        u16::from_be_bytes([seg[PAGE_SIZE + 1], seg[PAGE_SIZE + 2]]) as usize,
        last_len
    );
    // The partial page is written without padding.
    assert_eq!(seg.len(), PAGE_SIZE + 7 + last_len);

    // A record leaving fewer than 7 bytes in the page: the rest is padded.
    let fill = PAGE_SIZE - (7 + last_len) - 7 - 3;
    wal.log(&[&make_record(fill, 2, false)]).unwrap();
    let seg = std::fs::read(dir.path().join("00000000")).unwrap();
    assert_eq!(seg.len(), 2 * PAGE_SIZE);
    assert_eq!(&seg[2 * PAGE_SIZE - 3..], &[0, 0, 0]);

    // No room in the 2-page segment: a new segment is cut.
    wal.log(&[b"x"]).unwrap();
    assert_eq!(wal.segments(), (0, 1));
    let seg1 = std::fs::read(dir.path().join("00000001")).unwrap();
    let mut want = vec![1, 0, 1];
    want.extend_from_slice(&crc32c(b"x").to_be_bytes());
    want.push(b'x');
    assert_eq!(seg1, want);

    // Closing pads the last page, so finished segments are whole pages.
    wal.close().unwrap();
    assert_eq!(
        std::fs::metadata(dir.path().join("00000001"))
            .unwrap()
            .len(),
        PAGE_SIZE as u64
    );
}

#[test]
fn compression_sets_the_snappy_flag_only_when_it_helps() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), opts(4, true)).unwrap();
    let compressible = vec![7u8; 1000];
    let random = make_record(100, 3, false);
    wal.log(&[&compressible, &random]).unwrap();
    let seg = std::fs::read(dir.path().join("00000000")).unwrap();
    assert_eq!(seg[0], 1 | 0x08);
    let n = u16::from_be_bytes([seg[1], seg[2]]) as usize;
    assert!(n < 100, "compressed to {n} bytes");
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&seg[7..7 + n])
        .unwrap();
    assert_eq!(raw, compressible);
    assert_eq!(seg[7 + n], 1, "incompressible record stays raw");
    drop(wal);
    assert_eq!(read_all(dir.path()), vec![compressible, random]);
}

#[test]
fn reopening_starts_a_new_segment_and_truncate_deletes_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), opts(1, true)).unwrap();
    wal.log(&[b"a"]).unwrap();
    assert_eq!(wal.segments(), (0, 0));
    drop(wal);
    let wal = Wal::open(dir.path(), opts(1, true)).unwrap();
    assert_eq!(wal.segments(), (0, 1));
    wal.log(&[b"b"]).unwrap();
    assert_eq!(wal.next_segment().unwrap(), 2);
    wal.log(&[b"c"]).unwrap();
    assert!(
        wal.truncate(3).is_err(),
        "the active segment cannot be deleted"
    );
    wal.truncate(2).unwrap();
    assert_eq!(wal.segments(), (2, 2));
    assert_eq!(list_segments(dir.path()).unwrap().len(), 1);
    assert_eq!(read_all(dir.path()), vec![b"c".to_vec()]);
}

#[test]
fn empty_records_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), opts(1, true)).unwrap();
    assert!(wal.log(&[b"a", b""]).is_err());
    wal.log(&[b"b"]).unwrap();
    drop(wal);
    assert_eq!(read_all(dir.path()), vec![b"b".to_vec()]);
}

#[test]
fn invalid_segment_size_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    for size in [0, 1000, PAGE_SIZE as u64 + 1] {
        let o = WalOptions {
            segment_size: size,
            ..WalOptions::default()
        };
        assert!(Wal::open(dir.path(), o).is_err());
    }
}

#[test]
fn concurrent_writers_keep_every_record_and_their_order() {
    for fsync_on_log in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let o = WalOptions {
            fsync_on_log,
            ..opts(2, true)
        };
        let wal = Arc::new(Wal::open(dir.path(), o).unwrap());
        let threads = 8u32;
        let per_thread = if fsync_on_log { 50u32 } else { 500 };
        std::thread::scope(|s| {
            for t in 0..threads {
                let wal = Arc::clone(&wal);
                s.spawn(move || {
                    for i in 0..per_thread {
                        let mut rec = Vec::new();
                        rec.extend_from_slice(&t.to_be_bytes());
                        rec.extend_from_slice(&i.to_be_bytes());
                        rec.resize(8 + (i as usize * 37) % 3000, t as u8);
                        wal.log(&[&rec, &rec[..8]]).unwrap();
                    }
                });
            }
        });
        wal.sync().unwrap();
        let mut next = vec![0u32; threads as usize];
        let recs = read_all(dir.path());
        assert_eq!(recs.len(), (threads * per_thread * 2) as usize);
        for pair in recs.chunks(2) {
            // A batch is never interleaved with another.
            assert_eq!(&pair[0][..8], &pair[1][..]);
            let t = u32::from_be_bytes(pair[0][..4].try_into().unwrap()) as usize;
            let i = u32::from_be_bytes(pair[0][4..8].try_into().unwrap());
            assert_eq!(i, next[t], "thread {t} out of order");
            next[t] += 1;
        }
    }
}

#[test]
fn wal_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Wal>();
}
