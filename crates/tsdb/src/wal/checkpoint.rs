//! WAL checkpoints (spec §6.3): a compacted copy of the WAL up to a segment,
//! so that old segments can be deleted without losing the series they
//! declared.
//!
//! `checkpoint.NNNNNNNN` is a directory in the segment format holding, for
//! every segment up to and including N (and the previous checkpoint), the
//! series records of series still alive, the samples at or after the
//! truncation time and the tombstones that still matter. It is written as
//! `checkpoint.NNNNNNNN.tmp`, fsynced, renamed into place, and older
//! checkpoints are then deleted. Replay reads the newest checkpoint, then the
//! segments after N.
//!
//! Records of other types (exemplars, metadata, histograms, which Hearth does
//! not decode) are dropped, as Prometheus drops types it does not know.

use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::wal::record::{
    decode_samples, decode_series, decode_tombstones, encode_samples, encode_series,
    encode_tombstones, record_type, RefSample, RefSeries, Stone, SAMPLES, SERIES, TOMBSTONES,
};
use crate::wal::{segment_name, sync_dir, Wal, WalOptions, WalReader};
use crate::{Error, Result};

/// The prefix of checkpoint directory names.
pub const CHECKPOINT_PREFIX: &str = "checkpoint.";

/// Encoded bytes collected before they are logged to the checkpoint.
const BATCH_BYTES: usize = 1024 * 1024;

/// What a checkpoint kept and dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckpointStats {
    pub total_series: usize,
    pub dropped_series: usize,
    pub total_samples: usize,
    pub dropped_samples: usize,
    pub total_tombstones: usize,
    pub dropped_tombstones: usize,
    /// Records of types Hearth does not decode, dropped whole.
    pub dropped_records: usize,
}

/// The directory of checkpoint `index` in `wal_dir`.
pub fn checkpoint_dir(wal_dir: &Path, index: u32) -> PathBuf {
    wal_dir.join(format!("{CHECKPOINT_PREFIX}{}", segment_name(index)))
}

/// Parses `checkpoint.NNNNNNNN` (not `.tmp` or other suffixes).
fn parse_checkpoint_name(name: &str) -> Option<u32> {
    let digits = name.strip_prefix(CHECKPOINT_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Every checkpoint in `wal_dir` with its index, unsorted.
fn list_checkpoints(wal_dir: &Path) -> Result<Vec<(PathBuf, u32)>> {
    let entries = match fs::read_dir(wal_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list wal checkpoints in", wal_dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(Error::io("list wal checkpoints in", wal_dir))?;
        let name = entry.file_name();
        let Some(index) = name.to_str().and_then(parse_checkpoint_name) else {
            continue;
        };
        out.push((entry.path(), index));
    }
    Ok(out)
}

/// The newest checkpoint in `wal_dir` and its index, if there is one.
pub fn last_checkpoint(wal_dir: &Path) -> Result<Option<(PathBuf, u32)>> {
    let Some((path, index)) = list_checkpoints(wal_dir)?.into_iter().max_by_key(|c| c.1) else {
        return Ok(None);
    };
    let meta = fs::metadata(&path).map_err(Error::io("stat wal checkpoint", &path))?;
    if !meta.is_dir() {
        return Err(Error::Corrupt(format!(
            "wal checkpoint {} is not a directory",
            path.display()
        )));
    }
    Ok(Some((path, index)))
}

/// Deletes the checkpoints with an index below `before`.
pub fn delete_checkpoints(wal_dir: &Path, before: u32) -> Result<()> {
    for (path, index) in list_checkpoints(wal_dir)? {
        if index < before {
            fs::remove_dir_all(&path).map_err(Error::io("delete wal checkpoint", &path))?;
        }
    }
    Ok(())
}

/// Writes `checkpoint.<to>` from the previous checkpoint and the segments
/// `from..=to` of `wal_dir`, keeping the series for which `keep_series`
/// holds, samples with `t >= mint` and tombstones with an interval ending at
/// or after `mint`. Older checkpoints are deleted afterwards; the segments
/// are not (call [`Wal::truncate`] with `to + 1`).
///
/// Segments at or below the previous checkpoint are skipped; `from` beyond
/// the segment after it would leave a gap and is an error. Damage in the
/// segments read, even a torn tail, fails the checkpoint: the head could not
/// know which series were lost.
pub fn checkpoint(
    wal_dir: &Path,
    from: u32,
    to: u32,
    keep_series: impl Fn(u64) -> bool,
    mint: i64,
) -> Result<CheckpointStats> {
    let previous = last_checkpoint(wal_dir)?;
    let mut from = from;
    if let Some((path, n)) = &previous {
        if to < *n {
            return Err(Error::InvalidArgument(format!(
                "checkpoint wal {} up to segment {to}: {} is newer",
                wal_dir.display(),
                path.display()
            )));
        }
        let next = n.saturating_add(1);
        if from > next {
            return Err(Error::InvalidArgument(format!(
                "checkpoint wal {} from segment {from}: gap after {} (expected to start at {next})",
                wal_dir.display(),
                path.display()
            )));
        }
        from = next;
    }
    let reader = WalReader::with_checkpoint(
        previous.as_ref().map(|(p, _)| p.as_path()),
        wal_dir,
        from,
        Some(to),
    )?;

    let final_dir = checkpoint_dir(wal_dir, to);
    let tmp_dir = PathBuf::from(format!("{}.tmp", final_dir.display()));
    if tmp_dir.exists() {
        fs::remove_dir_all(&tmp_dir).map_err(Error::io("delete stale wal checkpoint", &tmp_dir))?;
    }
    fs::create_dir_all(&tmp_dir).map_err(Error::io("create wal checkpoint", &tmp_dir))?;
    let stats = match write_checkpoint(reader, &tmp_dir, keep_series, mint) {
        Ok(stats) => stats,
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp_dir);
            return Err(e);
        }
    };
    sync_dir(&tmp_dir)?;
    if final_dir.exists() {
        fs::remove_dir_all(&final_dir).map_err(Error::io("replace wal checkpoint", &final_dir))?;
    }
    fs::rename(&tmp_dir, &final_dir)
        .map_err(Error::io("rename wal checkpoint into place", &tmp_dir))?;
    sync_dir(wal_dir)?;
    // Leftover older checkpoints only take space: replay picks the newest.
    if let Err(e) = delete_checkpoints(wal_dir, to) {
        tracing::error!(wal = %wal_dir.display(), error = %e, "delete old wal checkpoints");
    }
    Ok(stats)
}

/// Filters the records of `reader` into a new WAL in `dir`.
fn write_checkpoint(
    mut reader: WalReader,
    dir: &Path,
    keep_series: impl Fn(u64) -> bool,
    mint: i64,
) -> Result<CheckpointStats> {
    let wal = Wal::open(dir, WalOptions::default())?;
    let mut stats = CheckpointStats::default();
    let mut series: Vec<RefSeries> = Vec::new();
    let mut samples: Vec<RefSample> = Vec::new();
    let mut stones: Vec<Stone> = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut records: Vec<Range<usize>> = Vec::new();

    while let Some(rec) = reader.next_record()? {
        let start = buf.len();
        match record_type(rec) {
            Some(SERIES) => {
                series.clear();
                decode_series(rec, &mut series)?;
                let total = series.len();
                series.retain(|s| keep_series(s.ref_));
                stats.total_series += total;
                stats.dropped_series += total - series.len();
                if !series.is_empty() {
                    encode_series(&series, &mut buf);
                }
            }
            Some(SAMPLES) => {
                samples.clear();
                decode_samples(rec, &mut samples)?;
                let total = samples.len();
                samples.retain(|s| s.t >= mint);
                stats.total_samples += total;
                stats.dropped_samples += total - samples.len();
                if !samples.is_empty() {
                    encode_samples(&samples, &mut buf);
                }
            }
            Some(TOMBSTONES) => {
                stones.clear();
                decode_tombstones(rec, &mut stones)?;
                let total = stones.len();
                stones.retain(|s| s.intervals.iter().any(|&(_, maxt)| maxt >= mint));
                stats.total_tombstones += total;
                stats.dropped_tombstones += total - stones.len();
                if !stones.is_empty() {
                    encode_tombstones(&stones, &mut buf);
                }
            }
            _ => {
                stats.dropped_records += 1;
                continue;
            }
        }
        if buf.len() > start {
            records.push(start..buf.len());
        }
        if buf.len() >= BATCH_BYTES {
            log_batch(&wal, &buf, &records)?;
            buf.clear();
            records.clear();
        }
    }
    if let Some(torn) = reader.torn_tail() {
        return Err(Error::Corrupt(format!(
            "checkpoint wal: segment {} is torn at offset {}: {}",
            segment_name(torn.segment),
            torn.offset,
            torn.reason
        )));
    }
    log_batch(&wal, &buf, &records)?;
    wal.close()?;
    Ok(stats)
}

fn log_batch(wal: &Wal, buf: &[u8], records: &[Range<usize>]) -> Result<()> {
    let recs: Vec<&[u8]> = records.iter().map(|r| &buf[r.clone()]).collect();
    wal.log(&recs)
}
