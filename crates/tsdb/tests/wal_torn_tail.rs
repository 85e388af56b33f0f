//! Crash damage: a WAL whose last segment was cut short at any byte, or
//! has a flipped byte, still opens; every record before the damage is read
//! back, nothing after it is, and writing goes on in a new segment. The same
//! damage in an earlier segment is an error naming the segment and offset.

use std::fs;
use std::path::Path;

use hearth_tsdb::wal::{list_segments, segment_path, Wal, WalOptions, WalReader, PAGE_SIZE};
use hearth_tsdb::Error;

struct Written {
    records: Vec<Vec<u8>>,
    /// (segment, start, end) of each record.
    positions: Vec<(u32, u64, u64)>,
}

fn opts(compress: bool) -> WalOptions {
    WalOptions {
        segment_size: 2 * PAGE_SIZE as u64,
        compress,
        fsync_on_log: false,
    }
}

fn record(i: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| (i * 31 + j * 7 + (j * j) % 13) as u8)
        .collect()
}

/// Writes small records filling a few segments, then in the last segment a
/// record spanning two pages followed by a few small ones.
fn write_wal(dir: &Path, compress: bool, close: bool) -> Written {
    let wal = Wal::open(dir, opts(compress)).unwrap();
    let mut records = Vec::new();
    for i in 0..60 {
        records.push(record(i, 50 + (i * 997) % 3000));
    }
    // Make the multi-page record start a fresh segment.
    let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    wal.log(&refs).unwrap();
    wal.next_segment().unwrap();
    // Pseudo-random, so that snappy cannot shrink it below a page.
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let big: Vec<u8> = (0..45_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    records.push(big);
    for i in 0..4 {
        records.push(record(100 + i, 20 + i * 40));
    }
    let refs: Vec<&[u8]> = records[60..].iter().map(Vec::as_slice).collect();
    wal.log(&refs).unwrap();
    if close {
        wal.close().unwrap();
    } else {
        drop(wal);
    }

    let mut r = WalReader::open(dir).unwrap();
    let mut positions = Vec::new();
    let mut got = 0;
    while let Some(rec) = r.next_record().unwrap() {
        assert_eq!(rec, &records[got][..]);
        let p = r.position();
        positions.push((p.segment, p.start, p.end));
        got += 1;
    }
    assert_eq!(got, records.len());
    Written { records, positions }
}

/// Reads the whole WAL, returning the records and whether a torn tail was
/// reported (and where).
fn read(dir: &Path) -> (Vec<Vec<u8>>, Option<u64>) {
    let mut r = WalReader::open(dir).unwrap();
    let mut out = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        out.push(rec.to_vec());
    }
    (out, r.torn_tail().map(|t| t.offset))
}

/// Removes the segments after `last`, which an earlier `Wal::open` created.
fn remove_segments_after(dir: &Path, last: u32) {
    for s in list_segments(dir).unwrap() {
        if s.index > last {
            fs::remove_file(s.path).unwrap();
        }
    }
}

/// Damages the last segment with `damage` for each offset in `offsets`, then
/// checks reading, repairing and writing on.
fn check_damage(
    dir: &Path,
    w: &Written,
    offsets: impl Iterator<Item = u64>,
    damage: impl Fn(&[u8], u64) -> Vec<u8>,
    must_report: bool,
    repair_every: usize,
) {
    let last = w.positions.last().unwrap().0;
    let path = segment_path(dir, last);
    let original = fs::read(&path).unwrap();
    let mut checked = 0;
    for off in offsets {
        remove_segments_after(dir, last);
        fs::write(&path, damage(&original, off)).unwrap();
        // Records that end at or before the damage survive.
        let keep = w
            .positions
            .iter()
            .filter(|&&(seg, _, end)| seg < last || end <= off)
            .count();
        let want = &w.records[..keep];

        let (got, torn) = read(dir);
        assert_eq!(
            got.len(),
            keep,
            "damage at {off}: read {} records, want {keep} (torn {torn:?})",
            got.len()
        );
        assert!(got == want, "damage at {off}: records differ");
        if let Some(t) = torn {
            assert!(t <= off, "damage at {off} reported at {t}");
        } else {
            assert!(!must_report, "damage at {off} not reported");
        }

        checked += 1;
        // Repairing fsyncs, which is slow: not every damage is repaired.
        if checked % repair_every != 0 {
            continue;
        }
        let damaged_len = fs::metadata(&path).unwrap().len();
        let wal = Wal::open(dir, opts(true)).unwrap();
        // The repair cuts the file where the reader stopped.
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            torn.unwrap_or(damaged_len),
            "damage at {off}"
        );
        assert_eq!(
            wal.segments().1,
            last + 1,
            "writing goes on in a new segment"
        );
        wal.log(&[b"after repair"]).unwrap();
        drop(wal);
        let (got, torn) = read(dir);
        assert_eq!(torn, None, "damage at {off}: still torn after repair");
        assert_eq!(got.len(), keep + 1);
        assert!(
            got[..keep] == *want,
            "damage at {off}: records differ after repair"
        );
        assert_eq!(got[keep], b"after repair");
    }
    assert!(checked > 0);
    remove_segments_after(dir, last);
    fs::write(&path, &original).unwrap();
}

/// Every byte of the last few records and the page boundaries of the
/// multi-page record, plus a sample of the rest.
fn interesting_offsets(w: &Written, file_len: u64) -> Vec<u64> {
    let last = w.positions.last().unwrap().0;
    let in_last: Vec<_> = w.positions.iter().filter(|p| p.0 == last).collect();
    let small_start = in_last[1].1;
    let records_end = in_last.last().unwrap().2;
    // Every byte of the small records and just past them, then a sample of
    // the padding up to the end of the file.
    let mut offs: Vec<u64> = (small_start..=(records_end + 64).min(file_len)).collect();
    offs.extend((records_end..=file_len).step_by(499));
    offs.push(file_len);
    for b in [0u64, PAGE_SIZE as u64] {
        offs.extend(b.saturating_sub(8)..(b + 16).min(file_len));
    }
    offs.extend((0..small_start).step_by(997));
    offs.sort_unstable();
    offs.dedup();
    offs
}

#[test]
fn truncating_the_last_segment_anywhere_loses_only_what_follows() {
    for compress in [false, true] {
        for close in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let w = write_wal(dir.path(), compress, close);
            let last = w.positions.last().unwrap().0;
            let len = fs::metadata(segment_path(dir.path(), last)).unwrap().len();
            let offs = interesting_offsets(&w, len);
            check_damage(
                dir.path(),
                &w,
                offs.into_iter(),
                |b, off| b[..off as usize].to_vec(),
                false,
                1,
            );
        }
    }
}

#[test]
fn a_flipped_byte_in_the_last_segment_loses_only_what_follows() {
    for compress in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let w = write_wal(dir.path(), compress, true);
        let last = w.positions.last().unwrap().0;
        let len = fs::metadata(segment_path(dir.path(), last)).unwrap().len();
        let offs: Vec<u64> = interesting_offsets(&w, len)
            .into_iter()
            .filter(|&o| o < len)
            .collect();
        for mask in [0xFFu8, 0x01, 0x40] {
            let flip = |b: &[u8], off: u64| {
                let mut b = b.to_vec();
                b[off as usize] ^= mask;
                b
            };
            check_damage(dir.path(), &w, offs.iter().copied(), flip, true, 4);
        }
    }
}

#[test]
fn garbage_after_the_last_record_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let w = write_wal(dir.path(), true, false);
    let last = w.positions.last().unwrap().0;
    let path = segment_path(dir.path(), last);
    let mut bytes = fs::read(&path).unwrap();
    let end = bytes.len() as u64;
    // A partly written page of non-zero junk, as a crash of the page cache
    // might leave.
    bytes.extend(std::iter::repeat_n(0xAB, 5000));
    fs::write(&path, &bytes).unwrap();
    let (got, torn) = read(dir.path());
    assert_eq!(got, w.records);
    assert_eq!(torn, Some(end));
    drop(Wal::open(dir.path(), opts(true)).unwrap());
    assert_eq!(fs::metadata(&path).unwrap().len(), end);
    assert_eq!(read(dir.path()), (w.records.clone(), None));
}

#[test]
fn a_torn_segment_followed_only_by_empty_segments_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let w = write_wal(dir.path(), false, false);
    let last = w.positions.last().unwrap().0;
    let path = segment_path(dir.path(), last);
    let bytes = fs::read(&path).unwrap();
    let (_, start, _) = *w.positions.last().unwrap();
    fs::write(&path, &bytes[..start as usize + 10]).unwrap();
    // A crash right after cutting a new segment leaves it empty.
    fs::write(segment_path(dir.path(), last + 1), b"").unwrap();
    let n = w.records.len() - 1;
    let (got, torn) = read(dir.path());
    assert_eq!(got, w.records[..n]);
    assert_eq!(torn, Some(start));
    let wal = Wal::open(dir.path(), opts(true)).unwrap();
    assert_eq!(wal.segments().1, last + 2);
    drop(wal);
    assert_eq!(fs::metadata(&path).unwrap().len(), start);
    assert_eq!(read(dir.path()), (w.records[..n].to_vec(), None));
}

#[test]
fn damage_in_an_earlier_segment_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let w = write_wal(dir.path(), true, false);
    let (seg, start, end) = w.positions[3];
    assert!(seg < w.positions.last().unwrap().0);
    let path = segment_path(dir.path(), seg);
    let original = fs::read(&path).unwrap();

    for (what, bytes) in [
        ("flip", {
            let mut b = original.clone();
            b[(start + end) as usize / 2] ^= 0x10;
            b
        }),
        ("cut", original[..(start + 3) as usize].to_vec()),
    ] {
        fs::write(&path, &bytes).unwrap();
        // Opening only looks at the tail; the replay finds the damage.
        drop(Wal::open(dir.path(), opts(true)).unwrap());
        let mut r = WalReader::open(dir.path()).unwrap();
        let err = loop {
            match r.next_record() {
                Ok(Some(_)) => {}
                Ok(None) => panic!("{what}: corruption not detected"),
                Err(e) => break e,
            }
        };
        assert!(matches!(err, Error::Corrupt(_)), "{what}: {err}");
        let msg = err.to_string();
        assert!(msg.contains(&format!("{seg:08}")), "{what}: {msg}");
        assert!(msg.contains(&format!("offset {start}")), "{what}: {msg}");
    }
}

#[test]
fn a_gap_between_segments_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_wal(dir.path(), true, true);
    fs::remove_file(segment_path(dir.path(), 1)).unwrap();
    assert!(WalReader::open(dir.path()).is_err());
    assert!(Wal::open(dir.path(), opts(true)).is_err());
}
