//! A block's `tombstones` file: deleted time intervals per series
//! (specs/tsdb-blocks.md §5).
//!
//! Layout: magic `0x0130BA30`, version 1, then entries `series ID uvarint |
//! mint varint | maxt varint`, then a CRC-32C over the entries only. An empty
//! file is exactly 9 bytes; a missing file means no deletions. Intervals are
//! closed, and a series' overlapping or adjacent intervals coalesce.

use std::collections::BTreeMap;
use std::path::Path;

use super::{write_file_atomic, TOMBSTONES_FILENAME};
use crate::encoding::{crc32c, Decbuf, Encbuf};
use crate::{Error, Result};

/// Magic number at the start of a tombstones file.
pub const TOMBSTONES_MAGIC: u32 = 0x0130_BA30;
/// Tombstones format version.
pub const TOMBSTONES_VERSION: u8 = 1;

/// A closed time interval `[mint, maxt]` of deleted samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interval {
    pub mint: i64,
    pub maxt: i64,
}

impl Interval {
    pub fn new(mint: i64, maxt: i64) -> Self {
        Self { mint, maxt }
    }

    pub fn contains(&self, t: i64) -> bool {
        self.mint <= t && t <= self.maxt
    }

    /// Whether `[mint, maxt]` overlaps this interval.
    pub fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        self.mint <= maxt && mint <= self.maxt
    }
}

/// A sorted list of disjoint, non-adjacent intervals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Intervals(Vec<Interval>);

impl Intervals {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `iv`, merging it with every interval it overlaps or touches
    /// (`a.maxt + 1 >= b.mint`). Intervals with `mint > maxt` are ignored.
    pub fn add(&mut self, iv: Interval) {
        if iv.mint > iv.maxt {
            return;
        }
        let mut merged = iv;
        // First interval that is not entirely before `iv` (allowing adjacency).
        let start = self
            .0
            .partition_point(|x| x.maxt.saturating_add(1) < iv.mint);
        let mut end = start;
        while end < self.0.len() && self.0[end].mint <= merged.maxt.saturating_add(1) {
            merged.mint = merged.mint.min(self.0[end].mint);
            merged.maxt = merged.maxt.max(self.0[end].maxt);
            end += 1;
        }
        self.0.splice(start..end, [merged]);
    }

    pub fn as_slice(&self) -> &[Interval] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether sample time `t` is deleted.
    pub fn contains(&self, t: i64) -> bool {
        let i = self.0.partition_point(|x| x.maxt < t);
        self.0.get(i).is_some_and(|x| x.contains(t))
    }

    /// Whether all of `[mint, maxt]` is deleted.
    pub fn covers(&self, mint: i64, maxt: i64) -> bool {
        let i = self.0.partition_point(|x| x.maxt < mint);
        self.0
            .get(i)
            .is_some_and(|x| x.mint <= mint && maxt <= x.maxt)
    }

    /// Whether any of `[mint, maxt]` is deleted.
    pub fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        let i = self.0.partition_point(|x| x.maxt < mint);
        self.0.get(i).is_some_and(|x| x.overlaps(mint, maxt))
    }
}

/// Deleted intervals keyed by series ID.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tombstones {
    series: BTreeMap<u64, Intervals>,
}

impl Tombstones {
    pub fn new() -> Self {
        Self::default()
    }

    /// Deletes `iv` from series `id`.
    pub fn add(&mut self, id: u64, iv: Interval) {
        if iv.mint > iv.maxt {
            return;
        }
        self.series.entry(id).or_default().add(iv);
    }

    /// The deleted intervals of series `id`, if any.
    pub fn get(&self, id: u64) -> Option<&Intervals> {
        self.series.get(&id)
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Total number of intervals, `meta.json`'s `numTombstones`.
    pub fn num_intervals(&self) -> u64 {
        self.series.values().map(|i| i.len() as u64).sum()
    }

    /// Series IDs and their intervals, by ID.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &Intervals)> {
        self.series.iter().map(|(id, i)| (*id, i))
    }

    /// The file's bytes; entries in series-ID order.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encbuf::new();
        e.put_be32(TOMBSTONES_MAGIC);
        e.put_u8(TOMBSTONES_VERSION);
        for (id, ivs) in &self.series {
            for iv in ivs.as_slice() {
                e.put_uvarint(*id);
                e.put_varint(iv.mint);
                e.put_varint(iv.maxt);
            }
        }
        let crc = crc32c(&e.get()[5..]);
        e.put_be32(crc);
        e.buf
    }

    /// Parses a file's bytes: magic, version, CRC over the entries, then the
    /// entries in any order (repeated series merge).
    pub fn decode(b: &[u8]) -> Result<Self> {
        if b.len() < 9 {
            return Err(Error::Corrupt(format!(
                "tombstones: {} bytes is too short",
                b.len()
            )));
        }
        let mut d = Decbuf::new(b, "tombstones");
        let magic = d.be32()?;
        if magic != TOMBSTONES_MAGIC {
            return Err(Error::Corrupt(format!(
                "tombstones: bad magic {magic:#010x}"
            )));
        }
        let version = d.u8()?;
        if version != TOMBSTONES_VERSION {
            return Err(Error::Corrupt(format!(
                "tombstones: unsupported version {version}"
            )));
        }
        let entries = &b[5..b.len() - 4];
        let crc = u32::from_be_bytes(b[b.len() - 4..].try_into().expect("4 bytes"));
        if crc32c(entries) != crc {
            return Err(Error::Corrupt("tombstones: checksum mismatch".into()));
        }
        let mut d = Decbuf::new(entries, "tombstones entry");
        let mut out = Tombstones::new();
        while !d.is_empty() {
            let id = d.uvarint()?;
            let mint = d.varint()?;
            let maxt = d.varint()?;
            out.add(id, Interval { mint, maxt });
        }
        Ok(out)
    }

    /// Reads `dir/tombstones`; a missing file means no tombstones.
    pub fn read_from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join(TOMBSTONES_FILENAME);
        match std::fs::read(&path) {
            Ok(b) => Self::decode(&b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::new()),
            Err(e) => Err(Error::Io {
                op: "read",
                path,
                source: e,
            }),
        }
    }

    /// Writes `dir/tombstones` atomically via `tombstones.tmp`.
    pub fn write_to_dir(&self, dir: &Path) -> Result<()> {
        write_file_atomic(dir, TOMBSTONES_FILENAME, &self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    #[test]
    fn empty_file_is_nine_bytes() {
        assert_eq!(
            Tombstones::new().encode(),
            vec![0x01, 0x30, 0xBA, 0x30, 0x01, 0, 0, 0, 0]
        );
        assert!(Tombstones::decode(&Tombstones::new().encode())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn intervals_merge_when_overlapping_or_adjacent() {
        let mut i = Intervals::new();
        i.add(Interval::new(10, 20));
        i.add(Interval::new(30, 40));
        i.add(Interval::new(21, 25));
        assert_eq!(
            i.as_slice(),
            &[Interval::new(10, 25), Interval::new(30, 40)]
        );
        i.add(Interval::new(0, 35));
        assert_eq!(i.as_slice(), &[Interval::new(0, 40)]);
        i.add(Interval::new(i64::MAX - 1, i64::MAX));
        i.add(Interval::new(i64::MIN, i64::MIN));
        assert_eq!(i.len(), 3);
        assert!(i.contains(i64::MIN) && i.contains(40) && !i.contains(41));
        assert!(i.covers(5, 40) && !i.covers(5, 41));
        assert!(i.overlaps(40, 100) && !i.overlaps(41, 100));
    }

    #[test]
    fn reads_entries_in_any_order_and_merges_repeats() {
        let mut e = Encbuf::new();
        e.put_be32(TOMBSTONES_MAGIC);
        e.put_u8(1);
        for (id, a, b) in [(7u64, 50i64, 60i64), (3, -10, -5), (7, 10, 20), (7, 21, 30)] {
            e.put_uvarint(id);
            e.put_varint(a);
            e.put_varint(b);
        }
        let crc = crc32c(&e.get()[5..]);
        e.put_be32(crc);
        let t = Tombstones::decode(e.get()).unwrap();
        assert_eq!(
            t.get(7).unwrap().as_slice(),
            &[Interval::new(10, 30), Interval::new(50, 60)]
        );
        assert_eq!(t.get(3).unwrap().as_slice(), &[Interval::new(-10, -5)]);
        assert_eq!(t.num_intervals(), 3);
        let mut bad = e.buf.clone();
        bad[6] ^= 1;
        assert!(Tombstones::decode(&bad).is_err());
    }

    #[test]
    fn missing_file_means_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Tombstones::read_from_dir(dir.path()).unwrap().is_empty());
        let mut t = Tombstones::new();
        t.add(1, Interval::new(1, 2));
        t.write_to_dir(dir.path()).unwrap();
        assert_eq!(Tombstones::read_from_dir(dir.path()).unwrap(), t);
    }

    proptest! {
        #[test]
        fn round_trips(entries in vec((0u64..20, any::<i64>(), any::<i64>()), 0..50)) {
            let mut t = Tombstones::new();
            for (id, a, b) in entries {
                t.add(id, Interval::new(a.min(b), a.max(b)));
            }
            prop_assert_eq!(Tombstones::decode(&t.encode()).unwrap(), t);
        }

        #[test]
        fn intervals_match_a_naive_model(ivs in vec((-50i64..50, 0i64..10), 0..12)) {
            let mut i = Intervals::new();
            for (a, len) in &ivs {
                i.add(Interval::new(*a, a + len));
            }
            for t in -60..70 {
                let want = ivs.iter().any(|(a, len)| *a <= t && t <= a + len);
                prop_assert_eq!(i.contains(t), want);
            }
            prop_assert!(i.as_slice().windows(2).all(|w| w[0].maxt + 1 < w[1].mint));
        }

        #[test]
        fn garbage_never_panics(body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Tombstones::decode(&body);
            let mut b = vec![0x01, 0x30, 0xBA, 0x30, 0x01];
            b.extend(&body);
            let crc = crc32c(&b[5..]);
            b.extend(crc.to_be_bytes());
            let _ = Tombstones::decode(&b);
        }
    }
}
