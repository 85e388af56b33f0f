//! Leveled compaction and retention, as Prometheus plans them
//! (specs/tsdb-blocks.md §7.4, §7.5).
//!
//! [`plan`] picks the next set of blocks to merge: overlapping blocks first,
//! then aligned groups of the smallest range that is full or fully behind
//! the newest block. [`merge_blocks`] writes their union: chunks that do not
//! overlap are copied verbatim; overlapping ones are decoded, deduplicated
//! by timestamp and re-encoded.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::sync::Arc;

use hearth_model::Timestamp;
use hearth_storage_api::Series;
use ulid::Ulid;

use crate::block::{
    chunks_from_samples, Block, BlockCompaction, BlockDesc, BlockMeta, BlockWriter, ChunkToWrite,
};
use crate::db::merge_series;
use crate::Result;

/// Prometheus's compaction ranges: `min × 3^k` for k in 0..10, those not
/// above `max`.
pub fn ranges(min: i64, max: i64) -> Vec<i64> {
    let mut out = Vec::new();
    let mut r = min;
    for _ in 0..10 {
        if r > max {
            break;
        }
        out.push(r);
        r = r.saturating_mul(3);
    }
    if out.is_empty() {
        out.push(min);
    }
    out
}

/// The blocks to compact next, if any.
pub fn plan(metas: &[BlockMeta], ranges: &[i64]) -> Option<Vec<Ulid>> {
    let mut sorted: Vec<&BlockMeta> = metas.iter().filter(|m| !m.compaction.failed).collect();
    sorted.sort_by_key(|m| (m.min_time, m.ulid));
    if let Some(group) = overlapping(&sorted) {
        return Some(group);
    }
    if sorted.len() < 2 {
        return None;
    }
    // The newest block is left alone: it backs up fresh data.
    let newest = sorted
        .iter()
        .map(|m| m.min_time)
        .max()
        .expect("at least two blocks");
    let newest_idx = sorted
        .iter()
        .rposition(|m| m.min_time == newest)
        .expect("newest exists");
    let rest: Vec<&BlockMeta> = sorted
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != newest_idx)
        .map(|(_, m)| *m)
        .collect();
    for &r in ranges.iter().skip(1) {
        for group in split_by_range(&rest, r) {
            if group.len() < 2 {
                continue;
            }
            let gmin = group.iter().map(|m| m.min_time).min().expect("non-empty");
            let gmax = group.iter().map(|m| m.max_time).max().expect("non-empty");
            if gmax - gmin == r || gmax <= newest {
                return Some(group.iter().map(|m| m.ulid).collect());
            }
        }
    }
    None
}

fn overlapping(sorted: &[&BlockMeta]) -> Option<Vec<Ulid>> {
    let mut group: Vec<Ulid> = Vec::new();
    let mut max = i64::MIN;
    for m in sorted {
        if !group.is_empty() && m.min_time < max {
            group.push(m.ulid);
            max = max.max(m.max_time);
            continue;
        }
        if group.len() >= 2 {
            return Some(group);
        }
        group = vec![m.ulid];
        max = m.max_time;
    }
    (group.len() >= 2).then_some(group)
}

/// Groups blocks by the `r`-aligned window holding them entirely.
fn split_by_range<'a>(sorted: &[&'a BlockMeta], r: i64) -> Vec<Vec<&'a BlockMeta>> {
    let mut groups: Vec<Vec<&BlockMeta>> = Vec::new();
    let mut current_t0 = None;
    for m in sorted {
        let t0 = m.min_time.div_euclid(r) * r;
        if m.max_time > t0 + r {
            continue;
        }
        if current_t0 != Some(t0) {
            groups.push(Vec::new());
            current_t0 = Some(t0);
        }
        groups.last_mut().expect("pushed above").push(m);
    }
    groups
}

/// Writes one block holding the union of `inputs` into `dir`. `None` when
/// the inputs hold no samples at all.
pub fn merge_blocks(dir: &Path, inputs: &[Arc<Block>]) -> Result<Option<BlockMeta>> {
    let mint = inputs.iter().map(|b| b.meta().min_time).min().unwrap_or(0);
    let maxt = inputs.iter().map(|b| b.meta().max_time).max().unwrap_or(0);
    let mut parts = Vec::with_capacity(inputs.len());
    for b in inputs {
        parts.push(b.select(
            &[all_series_matcher()],
            Timestamp::MIN,
            Timestamp::MAX,
            false,
        )?);
    }
    let merged = merge_series(parts);
    if merged.is_empty() {
        return Ok(None);
    }
    let ulid = Ulid::new();
    let mut w = BlockWriter::new(dir, ulid, mint, maxt)?;
    for s in &merged {
        w.add_series(&s.labels, &merge_chunks(s, block_range(inputs))?)?;
    }
    let sources: BTreeSet<Ulid> = inputs
        .iter()
        .flat_map(|b| b.meta().compaction.sources.clone())
        .collect();
    let mut parents: Vec<BlockDesc> = inputs
        .iter()
        .map(|b| BlockDesc {
            ulid: b.meta().ulid,
            min_time: b.meta().min_time,
            max_time: b.meta().max_time,
        })
        .collect();
    parents.sort_by_key(|p| p.min_time);
    let level = inputs
        .iter()
        .map(|b| b.meta().compaction.level)
        .max()
        .unwrap_or(1)
        + 1;
    let meta = w.finish(BlockCompaction {
        level,
        sources: sources.into_iter().collect(),
        parents,
        ..BlockCompaction::default()
    })?;
    tracing::info!(block = %meta.ulid, inputs = inputs.len(), level, "compacted blocks");
    Ok(Some(meta))
}

/// A matcher every series passes: `{__name__=~".*"}`.
pub fn all_series_matcher() -> hearth_model::Matcher {
    hearth_model::Matcher::new(
        hearth_model::MatchOp::RegexMatch,
        hearth_model::METRIC_NAME,
        ".*",
    )
    .expect("\".*\" is a valid regex")
}

/// A series' chunks for the output: copied when none overlap, otherwise
/// re-encoded from the deduplicated samples.
fn merge_chunks(s: &Series, chunk_range: i64) -> Result<Vec<ChunkToWrite>> {
    let overlap = s.chunks.windows(2).any(|w| w[1].mint <= w[0].maxt);
    if !overlap {
        return Ok(s.chunks.clone());
    }
    let samples = s
        .samples(Timestamp::MIN, Timestamp::MAX)
        .map_err(|e| crate::Error::Corrupt(format!("merge series {}: {e}", s.labels)))?;
    chunks_from_samples(&samples, chunk_range)
}

/// The chunk range for re-encoded chunks: the span of the output block.
fn block_range(inputs: &[Arc<Block>]) -> i64 {
    let mint = inputs.iter().map(|b| b.meta().min_time).min().unwrap_or(0);
    let maxt = inputs.iter().map(|b| b.meta().max_time).max().unwrap_or(1);
    (maxt - mint).max(1)
}

/// Blocks to delete for retention, newest first by `minTime`: a block whose
/// `maxTime` lies at least `retention_time` behind the newest block's
/// `maxTime` goes, with every older one (Prometheus 3); then the oldest
/// blocks go while the total size exceeds `retention_size`.
pub fn retention_victims(
    blocks: &[(BlockMeta, u64)],
    retention_time: i64,
    retention_size: u64,
) -> HashSet<Ulid> {
    let mut sorted: Vec<&(BlockMeta, u64)> = blocks.iter().collect();
    sorted.sort_by_key(|(m, _)| std::cmp::Reverse(m.min_time));
    let mut doomed = HashSet::new();
    let Some(newest_max) = sorted.first().map(|(m, _)| m.max_time) else {
        return doomed;
    };
    let mut size: u64 = 0;
    let mut cut = false;
    for (m, bytes) in sorted {
        size += bytes;
        if cut
            || (retention_time > 0 && newest_max - m.max_time >= retention_time)
            || (retention_size > 0 && size > retention_size)
        {
            cut = true;
            doomed.insert(m.ulid);
        }
    }
    doomed
}
