//! The write-ahead log, byte-compatible with Prometheus's `wlog` (spec §6.1–6.3).
//!
//! A WAL directory holds numbered segment files (`00000000`, `00000001`, …,
//! eight digits, consecutive) and at most one live checkpoint directory
//! (`checkpoint.NNNNNNNN`, see [`mod@checkpoint`]). A segment is a sequence of
//! 32 KiB pages without any header; each record (optionally snappy-compressed
//! as a whole) is cut into fragments that never cross a page boundary and
//! never a segment boundary. Each fragment has a 7-byte header: a type byte
//! (full/first/middle/last in bits 0–2, snappy flag `0x08`), a be16 length and
//! a be32 CRC-32C of the fragment's payload.
//!
//! * [`Wal`] appends records (every [`Wal::log`] call hands its bytes to the
//!   OS with `write(2)` before returning, so a killed process loses nothing
//!   that `log` acknowledged), cuts segments, fsyncs, truncates, and repairs
//!   a torn tail when it is opened.
//! * [`WalReader`] replays a directory: the newest checkpoint, then the
//!   segments after it. Damage in the last segment holding data is a torn
//!   write and ends the replay cleanly; damage anywhere else is
//!   [`Error::Corrupt`] naming the file and offset.
//! * [`record`] encodes and decodes the record bodies (series, samples,
//!   tombstones) exactly as Prometheus does.
//! * [`mod@checkpoint`] compacts old segments into a checkpoint.
//!
//! Hearth reads a WAL written by Prometheus (2.42 writes snappy records by
//! default) and Prometheus reads ours. Zstd-compressed records (an opt-in of
//! Prometheus 2.46+) are reported as unsupported.

use std::fs;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

pub mod checkpoint;
pub mod reader;
pub mod record;
pub mod writer;

pub use checkpoint::{checkpoint, last_checkpoint, CheckpointStats};
pub use reader::{RecordPosition, TornTail, WalReader};
pub use record::{Record, RefSample, RefSeries, Stone};
pub use writer::{Wal, WalOptions};

/// Size of a WAL page. Fragments never cross a page boundary.
pub const PAGE_SIZE: usize = 32 * 1024;
/// Size of a fragment header: type byte, be16 length, be32 CRC-32C.
pub const FRAGMENT_HEADER_SIZE: usize = 7;
/// Default segment size, as in Prometheus.
pub const DEFAULT_SEGMENT_SIZE: u64 = 128 * 1024 * 1024;

/// Fragment type bits of the header byte.
pub(crate) const FRAGMENT_TYPE_MASK: u8 = 0x07;
/// Header flag: the record is snappy-compressed (block format).
pub(crate) const SNAPPY_FLAG: u8 = 0x08;
/// Header flag: the record is zstd-compressed (Prometheus 2.46+, unsupported).
pub(crate) const ZSTD_FLAG: u8 = 0x10;
/// Header bits no writer sets.
pub(crate) const RESERVED_BITS: u8 = 0xE0;

/// Fragment types (bits 0–2 of the header byte).
pub(crate) const FRAGMENT_PAGE_TERM: u8 = 0;
pub(crate) const FRAGMENT_FULL: u8 = 1;
pub(crate) const FRAGMENT_FIRST: u8 = 2;
pub(crate) const FRAGMENT_MIDDLE: u8 = 3;
pub(crate) const FRAGMENT_LAST: u8 = 4;

/// The file name of segment `index`: eight zero-padded decimal digits.
pub fn segment_name(index: u32) -> String {
    format!("{index:08}")
}

/// The path of segment `index` in `dir`.
pub fn segment_path(dir: &Path, index: u32) -> PathBuf {
    dir.join(segment_name(index))
}

/// One segment file found in a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    pub index: u32,
    pub path: PathBuf,
}

/// Lists the segment files of `dir` (names made only of decimal digits),
/// sorted by index. Fails when the indexes are not consecutive, as
/// Prometheus does. A missing directory has no segments.
pub fn list_segments(dir: &Path) -> Result<Vec<SegmentFile>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list wal segments in", dir)(e)),
    };
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(Error::io("list wal segments in", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(index) = name.parse::<u32>() else {
            continue;
        };
        segments.push(SegmentFile {
            index,
            path: entry.path(),
        });
    }
    segments.sort_by_key(|s| s.index);
    for pair in segments.windows(2) {
        if pair[0].index.checked_add(1) != Some(pair[1].index) {
            return Err(Error::Corrupt(format!(
                "wal {}: segments are not sequential ({} is followed by {})",
                dir.display(),
                segment_name(pair[0].index),
                segment_name(pair[1].index)
            )));
        }
    }
    Ok(segments)
}

/// The first and last segment index in `dir`, or `None` when it has none.
pub fn segment_range(dir: &Path) -> Result<Option<(u32, u32)>> {
    let segments = list_segments(dir)?;
    Ok(match (segments.first(), segments.last()) {
        (Some(first), Some(last)) => Some((first.index, last.index)),
        _ => None,
    })
}

/// The position in `segments` of the segment a torn write may end: the last
/// segment with data. Segments after it are empty (a writer that crashed
/// right after cutting a new segment leaves one).
pub(crate) fn tail_segment(segments: &[SegmentFile]) -> Result<Option<usize>> {
    for (i, s) in segments.iter().enumerate().rev() {
        let len = fs::metadata(&s.path)
            .map_err(Error::io("stat wal segment", &s.path))?
            .len();
        if len > 0 {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

/// Fsyncs a directory so that file creations, renames and deletions in it
/// survive a power loss.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    let f = fs::File::open(dir).map_err(Error::io("open directory for fsync", dir))?;
    f.sync_all().map_err(Error::io("fsync directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_have_eight_digits() {
        assert_eq!(segment_name(0), "00000000");
        assert_eq!(segment_name(123), "00000123");
        assert_eq!(segment_name(u32::MAX), "4294967295");
    }

    #[test]
    fn listing_ignores_other_files_and_requires_consecutive_indexes() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "00000003",
            "00000004",
            "00000005",
            "checkpoint.00000002",
            "00000006.repair",
            "x",
        ] {
            fs::write(dir.path().join(name), b"").unwrap();
        }
        let segs = list_segments(dir.path()).unwrap();
        assert_eq!(
            segs.iter().map(|s| s.index).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        assert_eq!(segment_range(dir.path()).unwrap(), Some((3, 5)));

        fs::write(dir.path().join("00000007"), b"").unwrap();
        let err = list_segments(dir.path()).unwrap_err();
        assert!(err.to_string().contains("not sequential"), "{err}");
    }

    #[test]
    fn missing_directory_has_no_segments() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(segment_range(&dir.path().join("nope")).unwrap(), None);
    }
}
