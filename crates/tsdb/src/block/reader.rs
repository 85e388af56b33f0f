//! Opening a persisted block and answering selects and label queries on it.
//!
//! [`Block::open`] parses `meta.json` and `tombstones` and maps the index
//! and every chunk segment. [`Block::select`] resolves matchers through the
//! index's postings ([`crate::postings`]), keeps the chunks that overlap the
//! requested range, and applies tombstones: a chunk entirely deleted is
//! dropped, a chunk partly deleted is re-encoded without the deleted
//! samples. Corrupt data fails the select with an error naming the block;
//! it never panics.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hearth_model::chunkenc::{Encoding, XorChunk, XorIterator};
use hearth_model::{Labels, Matcher, Timestamp};
use hearth_storage_api::{Series, SeriesChunk};

use super::chunks::ChunkReader;
use super::index::{ChunkMeta, IndexReader};
use super::meta::BlockMeta;
use super::tombstones::{Intervals, Tombstones};
use super::{CHUNKS_DIRNAME, INDEX_FILENAME};
use crate::postings::postings_for_matchers;
use crate::{Error, Result};

/// An open, immutable block.
#[derive(Debug)]
pub struct Block {
    dir: PathBuf,
    meta: BlockMeta,
    index: IndexReader,
    chunks: ChunkReader,
    tombstones: Tombstones,
}

impl Block {
    /// Opens the block in `dir`: reads `meta.json` and `tombstones` (absent
    /// means none), maps and validates the index and chunk segments.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let meta = BlockMeta::read_from_dir(&dir)?;
        let block_err = |e: Error| match e {
            Error::Corrupt(reason) => Error::CorruptBlock {
                block: meta.ulid.to_string(),
                reason,
            },
            other => other,
        };
        let index = IndexReader::open(&dir.join(INDEX_FILENAME)).map_err(block_err)?;
        let chunks = ChunkReader::open(&dir.join(CHUNKS_DIRNAME)).map_err(block_err)?;
        let tombstones = Tombstones::read_from_dir(&dir).map_err(block_err)?;
        Ok(Self {
            dir,
            meta,
            index,
            chunks,
            tombstones,
        })
    }

    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn index(&self) -> &IndexReader {
        &self.index
    }

    pub fn chunks(&self) -> &ChunkReader {
        &self.chunks
    }

    pub fn tombstones(&self) -> &Tombstones {
        &self.tombstones
    }

    fn corrupt(&self, e: Error) -> Error {
        match e {
            Error::Corrupt(reason) | Error::CorruptBlock { reason, .. } => Error::CorruptBlock {
                block: self.meta.ulid.to_string(),
                reason,
            },
            Error::Model(m) => Error::CorruptBlock {
                block: self.meta.ulid.to_string(),
                reason: m.to_string(),
            },
            other => other,
        }
    }

    /// Series matching every matcher with chunks overlapping `[mint, maxt]`
    /// (closed), sorted by labels, tombstones applied. Chunks are whole (the
    /// caller clips samples to the range). With `skip_chunks` the series
    /// carry no chunks but are still filtered by range and tombstones.
    pub fn select(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
        skip_chunks: bool,
    ) -> Result<Vec<Series>> {
        let ids = postings_for_matchers(&self.index, matchers).map_err(|e| self.corrupt(e))?;
        let mut out = Vec::new();
        for id in ids {
            let (labels, metas) = self.index.series(id).map_err(|e| self.corrupt(e))?;
            let deleted = self.tombstones.get(id);
            let metas: Vec<ChunkMeta> = metas
                .into_iter()
                .filter(|c| c.maxt >= mint && c.mint <= maxt)
                .filter(|c| !deleted.is_some_and(|d| d.covers(c.mint, c.maxt)))
                .collect();
            if metas.is_empty() {
                continue;
            }
            if skip_chunks {
                out.push(Series::new(labels, Vec::new()));
                continue;
            }
            let mut chunks = Vec::with_capacity(metas.len());
            for m in &metas {
                if let Some(c) = self.load_chunk(&labels, m, deleted)? {
                    chunks.push(c);
                }
            }
            if !chunks.is_empty() {
                out.push(Series::new(labels, chunks));
            }
        }
        if !out.is_sorted_by(|a, b| a.labels < b.labels) {
            out.sort_by(|a, b| a.labels.cmp(&b.labels));
        }
        Ok(out)
    }

    /// Reads one chunk, re-encoding it without deleted samples when a
    /// tombstone overlaps it. `None` when every sample was deleted.
    fn load_chunk(
        &self,
        labels: &Labels,
        m: &ChunkMeta,
        deleted: Option<&Intervals>,
    ) -> Result<Option<SeriesChunk>> {
        let series_err = |e: Error| {
            let e = self.corrupt(e);
            match e {
                Error::CorruptBlock { block, reason } => Error::CorruptBlock {
                    block,
                    reason: format!("series {labels}: {reason}"),
                },
                other => other,
            }
        };
        let (encoding, data) = self.chunks.chunk(m.chunk_ref).map_err(series_err)?;
        let Some(deleted) = deleted.filter(|d| d.overlaps(m.mint, m.maxt)) else {
            return Ok(Some(SeriesChunk {
                mint: m.mint,
                maxt: m.maxt,
                encoding,
                data: Arc::from(data),
            }));
        };
        if encoding != Encoding::Xor {
            return Err(series_err(Error::Corrupt(format!(
                "deleting samples from {encoding:?} chunks is not supported"
            ))));
        }
        let mut kept = XorChunk::new();
        let (mut first, mut last) = (None, None);
        for s in XorIterator::new(data) {
            let s = s.map_err(|e| series_err(Error::Model(e)))?;
            if deleted.contains(s.t) {
                continue;
            }
            kept.appender()
                .and_then(|mut a| a.append(s.t, s.v))
                .map_err(|e| series_err(Error::Model(e)))?;
            first.get_or_insert(s.t);
            last = Some(s.t);
        }
        Ok(match (first, last) {
            (Some(mint), Some(maxt)) => Some(SeriesChunk {
                mint,
                maxt,
                encoding: Encoding::Xor,
                data: Arc::from(kept.into_bytes()),
            }),
            _ => None,
        })
    }

    /// Label names of the series matching `matchers` (all series when
    /// empty), sorted and unique.
    pub fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>> {
        if matchers.is_empty() {
            return Ok(self.index.label_names());
        }
        let ids = postings_for_matchers(&self.index, matchers).map_err(|e| self.corrupt(e))?;
        let mut names = std::collections::BTreeSet::new();
        for id in ids {
            let (labels, _) = self.index.series(id).map_err(|e| self.corrupt(e))?;
            for l in labels.iter() {
                if !names.contains(l.name) {
                    names.insert(l.name.to_string());
                }
            }
        }
        Ok(names.into_iter().collect())
    }

    /// Values of label `name` over the series matching `matchers` (all
    /// series when empty), sorted and unique.
    pub fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>> {
        if matchers.is_empty() {
            return self.index.label_values(name).map_err(|e| self.corrupt(e));
        }
        let ids = postings_for_matchers(&self.index, matchers).map_err(|e| self.corrupt(e))?;
        let mut values = std::collections::BTreeSet::new();
        for id in ids {
            let (labels, _) = self.index.series(id).map_err(|e| self.corrupt(e))?;
            if let Some(v) = labels.get(name) {
                if !values.contains(v) {
                    values.insert(v.to_string());
                }
            }
        }
        Ok(values.into_iter().collect())
    }
}
