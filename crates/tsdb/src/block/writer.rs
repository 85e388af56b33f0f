//! Building a block directory atomically, and cutting samples into chunks
//! the way Prometheus does.
//!
//! [`BlockWriter`] writes into `<ULID>.tmp-for-creation/`: chunk records go
//! to the segment files as series arrive (in label order), the series' label
//! sets and chunk metas are kept in memory, and [`BlockWriter::finish`]
//! writes the index, `meta.json` and an empty `tombstones`, fsyncs, and
//! renames the directory to `<ULID>`. Any error, or dropping the writer
//! before `finish`, removes the temporary directory: a ULID-named directory
//! is always a complete block.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hearth_model::chunkenc::{Encoding, XorChunk, MAX_XOR_CHUNK_BYTES, TARGET_SAMPLES_PER_CHUNK};
use hearth_model::{Labels, Sample, Timestamp};
use hearth_storage_api::SeriesChunk;
use ulid::Ulid;

use super::chunks::{ChunkWriter, DEFAULT_SEGMENT_SIZE};
use super::index::{ChunkMeta, IndexWriter};
use super::meta::{BlockCompaction, BlockMeta, BlockStats};
use super::tombstones::Tombstones;
use super::{sync_dir, CHUNKS_DIRNAME, INDEX_FILENAME, TMP_FOR_CREATION_SUFFIX};
use crate::{Error, Result};

/// A chunk handed to [`BlockWriter::add_series`]: its closed time range,
/// encoding and bytes (header included). The same type selects return, so
/// compaction can pass chunks through without copying.
pub type ChunkToWrite = SeriesChunk;

/// Writes one block. See the module documentation for the protocol.
pub struct BlockWriter {
    ulid: Ulid,
    parent: PathBuf,
    tmp_dir: PathBuf,
    min_time: Timestamp,
    max_time: Timestamp,
    chunks: Option<ChunkWriter>,
    series: Vec<(Labels, Vec<ChunkMeta>)>,
    stats: BlockStats,
    /// Set once an I/O error left the files in an unknown state.
    failed: bool,
    /// Set once the directory was renamed (or removed): nothing to clean.
    done: bool,
}

impl BlockWriter {
    /// Starts block `ulid` covering `[min_time, max_time)` in `parent_dir`.
    pub fn new(
        parent_dir: &Path,
        ulid: Ulid,
        min_time: Timestamp,
        max_time: Timestamp,
    ) -> Result<Self> {
        Self::with_segment_size(parent_dir, ulid, min_time, max_time, DEFAULT_SEGMENT_SIZE)
    }

    /// Like [`BlockWriter::new`] with a custom chunk segment size limit.
    pub fn with_segment_size(
        parent_dir: &Path,
        ulid: Ulid,
        min_time: Timestamp,
        max_time: Timestamp,
        segment_size: u64,
    ) -> Result<Self> {
        if min_time >= max_time {
            return Err(Error::InvalidArgument(format!(
                "block {ulid}: min time {min_time} is not before max time {max_time}"
            )));
        }
        let final_dir = parent_dir.join(ulid.to_string());
        if final_dir.exists() {
            return Err(Error::InvalidArgument(format!(
                "block {} already exists",
                final_dir.display()
            )));
        }
        let tmp_dir = parent_dir.join(format!("{ulid}{TMP_FOR_CREATION_SUFFIX}"));
        if tmp_dir.exists() {
            std::fs::remove_dir_all(&tmp_dir).map_err(Error::io("remove stale dir", &tmp_dir))?;
        }
        std::fs::create_dir_all(&tmp_dir).map_err(Error::io("create dir", &tmp_dir))?;
        let mut w = Self {
            ulid,
            parent: parent_dir.to_path_buf(),
            tmp_dir,
            min_time,
            max_time,
            chunks: None,
            series: Vec::new(),
            stats: BlockStats::default(),
            failed: false,
            done: false,
        };
        // On error `w` is dropped here and removes the directory.
        w.chunks = Some(ChunkWriter::with_segment_size(
            &w.tmp_dir.join(CHUNKS_DIRNAME),
            segment_size,
        )?);
        Ok(w)
    }

    pub fn ulid(&self) -> Ulid {
        self.ulid
    }

    /// The temporary directory being written.
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp_dir
    }

    /// Adds a series with its chunks, in time order. Calls must come in
    /// strictly ascending label order. A series with no chunks is skipped.
    /// Chunks must lie within the block, not overlap, and be XOR or
    /// histogram chunks with a sample-count header. A rejected series
    /// leaves the writer usable; an I/O error fails it for good.
    pub fn add_series(&mut self, labels: &Labels, chunks: &[ChunkToWrite]) -> Result<()> {
        if self.failed {
            return Err(Error::InvalidArgument(format!(
                "block {}: writer failed earlier",
                self.ulid
            )));
        }
        if chunks.is_empty() {
            return Ok(());
        }
        self.validate_series(labels, chunks)?;
        let writer = self
            .chunks
            .as_mut()
            .expect("chunk writer exists until finish");
        let mut metas = Vec::with_capacity(chunks.len());
        for c in chunks {
            match writer.write_chunk(c.encoding, &c.data) {
                Ok(chunk_ref) => metas.push(ChunkMeta {
                    mint: c.mint,
                    maxt: c.maxt,
                    chunk_ref,
                }),
                Err(e) => {
                    self.failed = true;
                    return Err(e);
                }
            }
            self.stats.num_samples += chunk_num_samples(&c.data);
        }
        self.stats.num_chunks += chunks.len() as u64;
        self.stats.num_series += 1;
        self.series.push((labels.clone(), metas));
        Ok(())
    }

    fn validate_series(&self, labels: &Labels, chunks: &[ChunkToWrite]) -> Result<()> {
        let invalid = |reason: String| Error::InvalidSeries {
            series: labels.to_string(),
            reason,
        };
        if labels.is_empty() {
            return Err(invalid("empty label set".into()));
        }
        if labels
            .iter()
            .any(|l| l.name.is_empty() || l.value.is_empty())
        {
            return Err(invalid("empty label name or value".into()));
        }
        if let Some((last, _)) = self.series.last() {
            if labels <= last {
                return Err(invalid(format!(
                    "series not in ascending label order: comes after {last}"
                )));
            }
        }
        let mut prev_maxt: Option<Timestamp> = None;
        for c in chunks {
            if c.mint > c.maxt {
                return Err(invalid(format!("chunk mint {} > maxt {}", c.mint, c.maxt)));
            }
            if c.mint < self.min_time || c.maxt >= self.max_time {
                return Err(invalid(format!(
                    "chunk [{}, {}] outside block range [{}, {})",
                    c.mint, c.maxt, self.min_time, self.max_time
                )));
            }
            if prev_maxt.is_some_and(|m| c.mint <= m) {
                return Err(invalid(format!(
                    "chunk starting at {} overlaps the previous chunk",
                    c.mint
                )));
            }
            if c.data.len() < 2 || chunk_num_samples(&c.data) == 0 {
                return Err(invalid("chunk has no samples".into()));
            }
            prev_maxt = Some(c.maxt);
        }
        Ok(())
    }

    /// Writes the index, `meta.json` and an empty `tombstones`, and moves
    /// the block to `<parent>/<ULID>`. `compaction.level` 0 becomes 1 and
    /// empty `sources` become `[ulid]` (a level-1 block lists itself);
    /// sources are sorted. A block without series is refused: Prometheus
    /// never persists one.
    pub fn finish(mut self, compaction: BlockCompaction) -> Result<BlockMeta> {
        if self.failed {
            return Err(Error::InvalidArgument(format!(
                "block {}: writer failed earlier",
                self.ulid
            )));
        }
        if self.series.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "block {}: no series with samples to write",
                self.ulid
            )));
        }
        let meta = self.write_rest(compaction)?;
        let dst = self.parent.join(self.ulid.to_string());
        std::fs::rename(&self.tmp_dir, &dst).map_err(Error::io("rename", &self.tmp_dir))?;
        self.done = true;
        sync_dir(&self.parent)?;
        Ok(meta)
    }

    fn write_rest(&mut self, mut compaction: BlockCompaction) -> Result<BlockMeta> {
        self.chunks
            .take()
            .expect("chunk writer exists until finish")
            .close()?;

        let series = std::mem::take(&mut self.series);
        let mut symbols: BTreeSet<&str> = BTreeSet::new();
        for (labels, _) in &series {
            for l in labels.iter() {
                symbols.insert(l.name);
                symbols.insert(l.value);
            }
        }
        let mut index =
            IndexWriter::new(&self.tmp_dir.join(INDEX_FILENAME), symbols.iter().copied())?;
        for (labels, metas) in &series {
            index.add_series(labels, metas)?;
        }
        index.finish()?;

        compaction.level = compaction.level.max(1);
        if compaction.sources.is_empty() {
            compaction.sources.push(self.ulid);
        }
        compaction.sources.sort();
        compaction.sources.dedup();
        let meta = BlockMeta {
            ulid: self.ulid,
            min_time: self.min_time,
            max_time: self.max_time,
            stats: self.stats.clone(),
            compaction,
            version: super::meta::META_VERSION_1,
            thanos: None,
        };
        meta.write_to_dir(&self.tmp_dir)?;
        Tombstones::new().write_to_dir(&self.tmp_dir)?;
        sync_dir(&self.tmp_dir)?;
        Ok(meta)
    }
}

impl Drop for BlockWriter {
    fn drop(&mut self) {
        if !self.done {
            // Best effort: a leftover `*.tmp-for-creation` is ignored by
            // readers and removed at the next startup anyway.
            self.chunks.take();
            if let Err(e) = std::fs::remove_dir_all(&self.tmp_dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(dir = %self.tmp_dir.display(), error = %e, "remove unfinished block dir");
                }
            }
        }
    }
}

/// The sample count in a chunk's 2-byte header (XOR and histograms alike).
fn chunk_num_samples(data: &[u8]) -> u64 {
    match data {
        [a, b, ..] => u16::from_be_bytes([*a, *b]) as u64,
        _ => 0,
    }
}

/// Cuts samples, strictly increasing in time, into XOR chunks the way
/// Prometheus's head does (specs/tsdb-blocks.md §3.5):
///
/// * no chunk crosses a multiple of `chunk_range` (pass the block range, 2 h
///   by default, so no chunk crosses a block boundary either; unlike Go's
///   truncating division this holds for negative timestamps too);
/// * at 30 samples the chunk's end is re-predicted so the rest of the range
///   is split into chunks of about 120 samples;
/// * a chunk is cut at 240 samples, or once it is larger than 1005 bytes, so
///   chunks stay within 1024 bytes.
pub fn chunks_from_samples(samples: &[Sample], chunk_range: i64) -> Result<Vec<ChunkToWrite>> {
    if chunk_range <= 0 {
        return Err(Error::InvalidArgument(format!(
            "chunk range {chunk_range} must be positive"
        )));
    }
    if let Some(w) = samples.windows(2).find(|w| w[1].t <= w[0].t) {
        return Err(Error::InvalidArgument(format!(
            "samples not strictly increasing in time: {} after {}",
            w[1].t, w[0].t
        )));
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < samples.len() {
        let start = samples[i].t;
        let mut next_at = range_end(start, chunk_range);
        let mut chunk = XorChunk::new();
        let mut n = 0usize;
        let mut maxt = start;
        while i < samples.len() {
            let s = samples[i];
            if n > 0 {
                if n == TARGET_SAMPLES_PER_CHUNK / 4 {
                    next_at = compute_chunk_end_time(start, maxt, next_at);
                }
                if s.t >= next_at || n >= 2 * TARGET_SAMPLES_PER_CHUNK {
                    break;
                }
            }
            chunk
                .appender()
                .and_then(|mut a| a.append(s.t, s.v))
                .expect("a chunk this writer built, below 65535 samples, accepts appends");
            n += 1;
            maxt = s.t;
            i += 1;
            if chunk.bytes().len() > MAX_XOR_CHUNK_BYTES {
                break;
            }
        }
        out.push(SeriesChunk {
            mint: start,
            maxt,
            encoding: Encoding::Xor,
            data: Arc::from(chunk.into_bytes()),
        });
    }
    Ok(out)
}

/// End of the `width`-wide range containing `t`: the next multiple of
/// `width` above `t` (floor division), saturating at `i64::MAX`.
fn range_end(t: i64, width: i64) -> i64 {
    t.div_euclid(width)
        .checked_add(1)
        .and_then(|k| k.checked_mul(width))
        .unwrap_or(i64::MAX)
}

/// Prometheus's `computeChunkEndTime(start, cur, max, 4)`: once a chunk
/// holds a quarter of its target, spread the rest of the range evenly.
fn compute_chunk_end_time(start: i64, cur: i64, max: i64) -> i64 {
    let n = (max as f64 - start as f64) / ((cur as f64 - start as f64 + 1.0) * 4.0);
    if n <= 1.0 {
        return max;
    }
    let end = start as f64 + (max as f64 - start as f64) / n.floor();
    // `as` saturates; the result is within [start, max] up to rounding.
    (end as i64).min(max)
}
