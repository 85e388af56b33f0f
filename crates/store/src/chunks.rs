//! Reading chunks from a block's segment objects by range reads
//! (specs/tsdb-blocks.md §2): the references a query needs are looked up in
//! the chunk cache, the misses of each segment are grouped into partitions
//! (nearby chunks share one read, no read longer than a budget), each record
//! is decoded from its partition's bytes, fetched again when it is longer
//! than the size estimate, and checked against its CRC-32C.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use hearth_model::chunkenc::Encoding;
use hearth_objstore::object_store::path::Path;
use hearth_objstore::Bucket;
use hearth_tsdb::block::chunks::SEGMENT_HEADER_SIZE;
use hearth_tsdb::block::ChunkRef;
use hearth_tsdb::encoding::crc32c;
use ulid::Ulid;

use crate::cache::{CachedChunk, Caches};
use crate::metrics::{FetchKind, StoreMetrics};
use crate::options::StoreOptions;
use crate::{Error, Result};

/// Bytes of a record besides its data: at most 5 for the length varint
/// (lengths fit 32 bits), 1 for the encoding, 4 for the CRC.
const MAX_RECORD_OVERHEAD: u64 = 5 + 1 + 4;

/// One chunk segment object of a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Segment {
    pub path: Path,
    pub size: u64,
}

/// One range read: `[start, end)` of a segment, covering the chunks at
/// `chunks` (indices into the sorted offsets it was planned from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Partition {
    pub start: u64,
    pub end: u64,
    pub chunks: Range<usize>,
}

/// How range reads are planned.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FetchPlan {
    pub gap: u64,
    pub estimate: u64,
    pub max_range: u64,
}

impl FetchPlan {
    pub fn from_options(o: &StoreOptions) -> Self {
        Self {
            gap: o.chunk_fetch_gap_bytes,
            estimate: o.chunk_size_estimate.max(MAX_RECORD_OVERHEAD),
            max_range: o.max_fetch_range_bytes.max(1),
        }
    }
}

/// Groups sorted, unique record offsets of one segment of `segment_size`
/// bytes into range reads. Each record is assumed to end `estimate` bytes
/// after its offset (or at the segment's end); a record joins the current
/// read when it starts within `gap` of the read's end and the read stays
/// within `max_range`.
pub(crate) fn partition(offsets: &[u64], segment_size: u64, plan: FetchPlan) -> Vec<Partition> {
    let mut out: Vec<Partition> = Vec::new();
    for (i, &off) in offsets.iter().enumerate() {
        let end = off.saturating_add(plan.estimate).min(segment_size).max(off);
        match out.last_mut() {
            Some(p)
                if off <= p.end.saturating_add(plan.gap)
                    && end.saturating_sub(p.start) <= plan.max_range =>
            {
                p.end = p.end.max(end);
                p.chunks.end = i + 1;
            }
            _ => out.push(Partition {
                start: off,
                end,
                chunks: i..i + 1,
            }),
        }
    }
    out
}

/// A chunk record decoded from the front of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Record<'a> {
    Complete {
        encoding: Encoding,
        data: &'a [u8],
    },
    /// The buffer ends inside the record; it needs this many bytes in all
    /// (a guess when even the length was cut off).
    Incomplete {
        needed: u64,
    },
}

/// Decodes the record at the start of `buf`: `uvarint len | encoding |
/// data | be32 crc32c(encoding | data)`.
pub(crate) fn parse_record(buf: &[u8]) -> std::result::Result<Record<'_>, String> {
    let mut len: u64 = 0;
    let mut varint_len = None;
    for (i, &b) in buf.iter().take(10).enumerate() {
        len |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            varint_len = Some(i + 1);
            break;
        }
    }
    let Some(varint_len) = varint_len else {
        if buf.len() >= 10 {
            return Err("bad record length".into());
        }
        return Ok(Record::Incomplete {
            needed: buf.len() as u64 + MAX_RECORD_OVERHEAD,
        });
    };
    if len > u64::from(u32::MAX) {
        return Err(format!("record length {len} overflows"));
    }
    let total = varint_len as u64 + 1 + len + 4;
    let Ok(total_usize) = usize::try_from(total) else {
        return Err(format!("record length {len} overflows"));
    };
    if buf.len() < total_usize {
        return Ok(Record::Incomplete { needed: total });
    }
    let covered = &buf[varint_len..total_usize - 4];
    let crc = u32::from_be_bytes(
        buf[total_usize - 4..total_usize]
            .try_into()
            .expect("four bytes by construction"),
    );
    if crc32c(covered) != crc {
        return Err("checksum mismatch".into());
    }
    let encoding = Encoding::from_byte(covered[0]).map_err(|e| format!("chunk encoding: {e}"))?;
    Ok(Record::Complete {
        encoding,
        data: &covered[1..],
    })
}

/// What fetching needs from the store.
pub(crate) struct ChunkFetcher<'a> {
    pub bucket: &'a Bucket,
    pub caches: &'a Caches,
    pub metrics: &'a StoreMetrics,
    pub plan: FetchPlan,
    pub concurrency: usize,
}

impl ChunkFetcher<'_> {
    /// The chunks at `refs` of block `block`, from the cache or the bucket.
    /// Any damaged record fails the whole call with
    /// [`Error::CorruptBlock`].
    pub async fn fetch(
        &self,
        block: Ulid,
        segments: &[Segment],
        refs: impl IntoIterator<Item = ChunkRef>,
    ) -> Result<HashMap<u64, CachedChunk>> {
        let mut found = HashMap::new();
        let mut missing: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for r in refs {
            if found.contains_key(&r.0) {
                continue;
            }
            match self.caches.chunk(block, r.0) {
                Some(c) => {
                    found.insert(r.0, c);
                }
                None => missing
                    .entry(r.segment())
                    .or_default()
                    .push(u64::from(r.offset())),
            }
        }
        let mut reads = Vec::new();
        for (seg_index, mut offsets) in missing {
            offsets.sort_unstable();
            offsets.dedup();
            let segment = segments.get(seg_index as usize).ok_or_else(|| {
                Error::corrupt(
                    block,
                    format!(
                        "chunk reference to segment {seg_index}, block has {}",
                        segments.len()
                    ),
                )
            })?;
            if let Some(&bad) = offsets
                .iter()
                .find(|&&o| o < SEGMENT_HEADER_SIZE || o.saturating_add(5) > segment.size)
            {
                return Err(Error::corrupt(
                    block,
                    format!(
                        "chunk reference to offset {bad} of {} ({} bytes)",
                        segment.path, segment.size
                    ),
                ));
            }
            for p in partition(&offsets, segment.size, self.plan) {
                let offs = offsets[p.chunks.clone()].to_vec();
                reads.push((seg_index, segment.clone(), p, offs));
            }
        }
        let fetched: Vec<Vec<(u64, CachedChunk)>> = futures::stream::iter(reads)
            .map(|(seg_index, segment, p, offs)| async move {
                self.read_partition(block, seg_index, &segment, p, offs)
                    .await
            })
            .buffer_unordered(self.concurrency.max(1))
            .try_collect()
            .await?;
        for (r, c) in fetched.into_iter().flatten() {
            self.caches.put_chunk(block, r, c.clone());
            found.insert(r, c);
        }
        Ok(found)
    }

    async fn get_range(&self, block: Ulid, segment: &Segment, range: Range<u64>) -> Result<Bytes> {
        let bytes = self
            .bucket
            .get_range(&segment.path, range.clone())
            .await
            .map_err(Error::bucket(format!(
                "read block {block} chunks {}[{}..{}]",
                segment.path, range.start, range.end
            )))?;
        self.metrics.fetched(FetchKind::Chunks, bytes.len() as u64);
        if (bytes.len() as u64) < range.end - range.start {
            return Err(Error::corrupt(
                block,
                format!(
                    "{} is shorter than its listed {} bytes",
                    segment.path, segment.size
                ),
            ));
        }
        Ok(bytes)
    }

    /// Reads one partition and decodes its records.
    async fn read_partition(
        &self,
        block: Ulid,
        seg_index: u32,
        segment: &Segment,
        p: Partition,
        offsets: Vec<u64>,
    ) -> Result<Vec<(u64, CachedChunk)>> {
        let bytes = self.get_range(block, segment, p.start..p.end).await?;
        let mut out = Vec::with_capacity(offsets.len());
        for off in offsets {
            let rel = usize::try_from(off - p.start).expect("offset within a partition read");
            let chunk = self
                .decode_at(block, segment, off, bytes.slice(rel..))
                .await?;
            let r = ChunkRef::new(
                seg_index,
                u32::try_from(off).expect("offsets come from u32 refs"),
            );
            out.push((r.0, chunk));
        }
        Ok(out)
    }

    /// Decodes the record at `off` from `buf` (the bytes from `off` on that
    /// were read), reading more when the record is longer.
    async fn decode_at(
        &self,
        block: Ulid,
        segment: &Segment,
        off: u64,
        mut buf: Bytes,
    ) -> Result<CachedChunk> {
        let corrupt = |reason: String| {
            Error::corrupt(
                block,
                format!("chunk at offset {off} of {}: {reason}", segment.path),
            )
        };
        // Read again at most twice: once when even the length was cut off,
        // once for the whole record.
        for attempt in 0..3 {
            match parse_record(&buf).map_err(corrupt)? {
                Record::Complete { encoding, data } => {
                    return Ok(CachedChunk {
                        encoding,
                        data: Arc::from(data),
                    })
                }
                Record::Incomplete { needed } => {
                    let available = segment.size.saturating_sub(off);
                    let want = needed.min(available);
                    if want <= buf.len() as u64 {
                        return Err(corrupt("record runs past the end of the segment".into()));
                    }
                    if attempt == 2 {
                        break;
                    }
                    self.metrics.chunk_refetches.inc();
                    buf = self.get_range(block, segment, off..off + want).await?;
                }
            }
        }
        Err(corrupt("record length keeps growing".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(encoding: u8, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut n = data.len() as u64;
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
        out.push(encoding);
        out.extend_from_slice(data);
        let mut covered = vec![encoding];
        covered.extend_from_slice(data);
        out.extend_from_slice(&crc32c(&covered).to_be_bytes());
        out
    }

    #[test]
    fn parses_complete_incomplete_and_damaged_records() {
        let data = vec![7u8; 300];
        let rec = record(1, &data);
        assert_eq!(
            parse_record(&rec).unwrap(),
            Record::Complete {
                encoding: Encoding::Xor,
                data: &data
            }
        );
        // Trailing bytes (the next record) are ignored.
        let mut longer = rec.clone();
        longer.extend_from_slice(&[1, 2, 3]);
        assert!(matches!(parse_record(&longer), Ok(Record::Complete { .. })));
        assert_eq!(
            parse_record(&rec[..100]).unwrap(),
            Record::Incomplete {
                needed: rec.len() as u64
            }
        );
        assert!(matches!(
            parse_record(&rec[..1]).unwrap(),
            Record::Incomplete { .. }
        ));
        assert!(matches!(
            parse_record(&[]).unwrap(),
            Record::Incomplete { .. }
        ));
        let mut bad = rec.clone();
        bad[10] ^= 1;
        assert!(parse_record(&bad).unwrap_err().contains("checksum"));
        assert!(parse_record(&record(0xFF, &[1, 2])).is_err());
        assert!(parse_record(&[0xff; 12]).is_err());
    }

    #[test]
    fn partitions_merge_nearby_chunks_within_the_budget() {
        let plan = FetchPlan {
            gap: 100,
            estimate: 50,
            max_range: 1000,
        };
        let parts = partition(&[8, 60, 200, 2000, 2010], 5000, plan);
        assert_eq!(
            parts,
            vec![
                Partition {
                    start: 8,
                    end: 250,
                    chunks: 0..3
                },
                Partition {
                    start: 2000,
                    end: 2060,
                    chunks: 3..5
                },
            ]
        );
        // The segment's end caps the estimate.
        assert_eq!(partition(&[8], 30, plan)[0].end, 30);
        // The range budget splits a dense run.
        let tight = FetchPlan {
            max_range: 120,
            ..plan
        };
        let parts = partition(&[8, 60, 110, 160], 5000, tight);
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.end - p.start <= 120));
        assert_eq!(parts[0].chunks, 0..2);
        assert_eq!(parts[1].chunks, 2..4);
    }
}
