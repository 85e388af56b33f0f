//! Answering selects and label queries over the served blocks
//! (specs/storeapi.md §3.1–3.3, §3.7).
//!
//! Per block in the time range whose external labels do not contradict the
//! matchers, the matchers on external labels are dropped (satisfied) and the
//! rest resolved through the index's postings ([`postings_for_matchers`],
//! the TSDB's own evaluation, over a postings cache). Series keep the chunk
//! metas overlapping the range and get the block's external labels (which
//! win over stored labels of the same name; the rewriting is the StoreAPI
//! crate's, shared with every other store). Series of all blocks are then
//! merged by label set and cut to the limit before any chunk is read, so
//! chunks are fetched only for series that are returned.
//!
//! A block that cannot be read (damaged files, bucket errors) is left out
//! of the answer and reported as a warning naming it; the other blocks'
//! data is returned. A query touching only such blocks returns no series
//! and the warnings.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use futures::StreamExt;
use hearth_model::{Labels, Matcher, Timestamp};
use hearth_storage_api::{LabelsResult, SelectHints, Series, SeriesChunk, SeriesSet};
use hearth_storeapi::external_labels::{extend_labels, strip_external_matchers};
use hearth_tsdb::block::{ChunkMeta, IndexReader};
use hearth_tsdb::postings::{postings_for_matchers, PostingsSource};
use ulid::Ulid;

use crate::block::{BucketBlock, LoadedBlock};
use crate::cache::{CachedChunk, CachedSeries, Caches};
use crate::store::BucketStore;
use crate::{Error, Result};

/// A block's index answering postings lookups through the postings cache.
struct CachedPostings<'a> {
    block: Ulid,
    index: &'a IndexReader,
    caches: &'a Caches,
}

impl PostingsSource for CachedPostings<'_> {
    fn postings(&self, name: &str, value: &str) -> hearth_tsdb::Result<Vec<u64>> {
        if let Some(list) = self.caches.postings(self.block, name, value) {
            return Ok(list.to_vec());
        }
        let list = self.index.postings(name, value)?;
        self.caches
            .put_postings(self.block, name, value, Arc::from(list.as_slice()));
        Ok(list)
    }

    fn all_postings(&self) -> hearth_tsdb::Result<Vec<u64>> {
        self.postings("", "")
    }

    fn label_values(&self, name: &str) -> hearth_tsdb::Result<Vec<String>> {
        self.index.label_values(name)
    }
}

/// One series of one block: labels with the external labels, and the
/// chunk metas overlapping the query range.
#[derive(Debug)]
struct BlockSeries {
    labels: Labels,
    chunks: Vec<ChunkMeta>,
}

/// A query's view of one block.
struct BlockQuery {
    block: Arc<BucketBlock>,
    matchers: Vec<Matcher>,
}

/// Series of one block matching `matchers` with chunks in `[mint, maxt]`,
/// sorted by their extended labels, at most `limit` (0: all). Reads the
/// mapped index: run it on a blocking thread.
fn block_series(
    block: &BucketBlock,
    loaded: &LoadedBlock,
    caches: &Caches,
    matchers: &[Matcher],
    mint: Timestamp,
    maxt: Timestamp,
    limit: usize,
) -> Result<Vec<BlockSeries>> {
    let id = block.id();
    let src = CachedPostings {
        block: id,
        index: &loaded.index,
        caches,
    };
    let ids = postings_for_matchers(&src, matchers).map_err(|e| Error::from_tsdb(id, e))?;
    // Without external labels the index order is the answer's order, so
    // the limit can stop the walk early.
    let early_stop = limit > 0 && block.external_labels.is_empty();
    let mut out = Vec::new();
    for sid in ids {
        if early_stop && out.len() == limit {
            break;
        }
        let series = match caches.series(id, sid) {
            Some(s) => s,
            None => {
                let (labels, chunks) = loaded
                    .index
                    .series(sid)
                    .map_err(|e| Error::from_tsdb(id, e))?;
                let s = Arc::new(CachedSeries { labels, chunks });
                caches.put_series(id, sid, Arc::clone(&s));
                s
            }
        };
        let chunks: Vec<ChunkMeta> = series
            .chunks
            .iter()
            .filter(|c| c.maxt >= mint && c.mint <= maxt)
            .copied()
            .collect();
        if chunks.is_empty() {
            continue;
        }
        out.push(BlockSeries {
            labels: extend_labels(&series.labels, &block.external_labels, &[]),
            chunks,
        });
    }
    // External labels can reorder series (a set that was a prefix of
    // another may now sort after it).
    if !out.is_sorted_by(|a, b| a.labels <= b.labels) {
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
    }
    if limit > 0 {
        out.truncate(limit);
    }
    Ok(out)
}

/// A label set of the answer and, per block (index into the blocks that
/// answered), the chunk metas it contributes.
struct SeriesGroup {
    labels: Labels,
    parts: Vec<(usize, Vec<ChunkMeta>)>,
}

/// Merges the blocks' sorted series by label set, in order, keeping the
/// first `limit` sets (0: all).
fn group_series(per_block: Vec<Vec<BlockSeries>>, limit: usize) -> Vec<SeriesGroup> {
    let mut all: Vec<(usize, BlockSeries)> = per_block
        .into_iter()
        .enumerate()
        .flat_map(|(i, s)| s.into_iter().map(move |s| (i, s)))
        .collect();
    // Stable: equal sets keep block order.
    all.sort_by(|a, b| a.1.labels.cmp(&b.1.labels));
    let mut groups: Vec<SeriesGroup> = Vec::new();
    for (i, s) in all {
        match groups.last_mut() {
            Some(g) if g.labels == s.labels => g.parts.push((i, s.chunks)),
            _ => {
                if limit > 0 && groups.len() == limit {
                    break;
                }
                groups.push(SeriesGroup {
                    labels: s.labels,
                    parts: vec![(i, s.chunks)],
                });
            }
        }
    }
    groups
}

/// The warning for a block left out of an answer.
fn block_warning(id: Ulid, e: &Error) -> String {
    match e {
        Error::CorruptBlock { .. } => format!("skipped {e}"),
        _ => format!("skipped block {id}: {e}"),
    }
}

impl BucketStore {
    /// The blocks a query over `[mint, maxt]` with `matchers` must read,
    /// with the matchers each must evaluate. With `need_matchers`, a block
    /// left with no matcher is a bad request (specs/storeapi.md §3.2 4.).
    fn block_queries(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
        need_matchers: bool,
    ) -> Result<Vec<BlockQuery>> {
        let mut out = Vec::new();
        for block in self.snapshot_blocks() {
            if !block.overlaps(mint, maxt) {
                continue;
            }
            let Some(matchers) = strip_external_matchers(matchers.to_vec(), &block.external_labels)
            else {
                continue;
            };
            if need_matchers && matchers.is_empty() {
                return Err(Error::BadRequest(
                    "no matchers specified (excluding external labels)".into(),
                ));
            }
            out.push(BlockQuery { block, matchers });
        }
        Ok(out)
    }

    /// Opens the block and looks up its matching series.
    async fn lookup_block(
        &self,
        q: BlockQuery,
        mint: Timestamp,
        maxt: Timestamp,
        limit: usize,
    ) -> Result<(Arc<LoadedBlock>, Vec<BlockSeries>)> {
        let loaded = q.block.open(&self.load_context()).await?;
        let caches = &self.inner.caches;
        let lookup = || block_series(&q.block, &loaded, caches, &q.matchers, mint, maxt, limit);
        // In place: a hand-over to the blocking pool and back cost more than
        // a small lookup in the mapped index. On a multi-threaded runtime the
        // worker's other tasks move to another thread meanwhile.
        let series = match tokio::runtime::Handle::current().runtime_flavor() {
            tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(lookup)?,
            _ => lookup()?,
        };
        Ok((loaded, series))
    }

    /// Runs `lookup_block` on every block query, `query_concurrency` at a
    /// time, in block order. Failures become warnings.
    async fn lookup_blocks(
        &self,
        queries: Vec<BlockQuery>,
        mint: Timestamp,
        maxt: Timestamp,
        limit: usize,
        warnings: &mut Vec<String>,
    ) -> Vec<(Ulid, Arc<LoadedBlock>, Vec<BlockSeries>)> {
        let results: Vec<(Ulid, Result<_>)> = futures::stream::iter(queries)
            .map(|q| async move {
                let id = q.block.id();
                (id, self.lookup_block(q, mint, maxt, limit).await)
            })
            .buffered(self.inner.options.query_concurrency.max(1))
            .collect()
            .await;
        let mut out = Vec::with_capacity(results.len());
        for (id, r) in results {
            match r {
                Ok((loaded, series)) => out.push((id, loaded, series)),
                Err(e) => warnings.push(self.block_failed(id, &e)),
            }
        }
        out
    }

    fn block_failed(&self, id: Ulid, e: &Error) -> String {
        self.inner.metrics.block_query_failures.inc();
        tracing::warn!(block = %id, error = %e, "block left out of a query");
        block_warning(id, e)
    }

    /// [`hearth_storage_api::Queryable::select`].
    pub(crate) async fn select_series(
        &self,
        matchers: &[Matcher],
        hints: SelectHints,
    ) -> Result<SeriesSet> {
        if matchers.is_empty() {
            return Err(Error::BadRequest("no matchers specified".into()));
        }
        let (mint, maxt) = (hints.mint, hints.maxt);
        let queries = self.block_queries(matchers, mint, maxt, true)?;
        let mut warnings = Vec::new();
        let found = self
            .lookup_blocks(queries, mint, maxt, hints.limit, &mut warnings)
            .await;
        let (blocks, per_block): (Vec<_>, Vec<_>) = found
            .into_iter()
            .map(|(id, loaded, series)| ((id, loaded), series))
            .unzip();
        let groups = group_series(per_block, hints.limit);
        if hints.skip_chunks {
            self.inner.caches.publish_sizes();
            let series = groups
                .into_iter()
                .map(|g| Series::new(g.labels, Vec::new()))
                .collect();
            return Ok(SeriesSet { series, warnings });
        }
        let chunks = self
            .fetch_group_chunks(&blocks, &groups, &mut warnings)
            .await;
        self.inner.caches.publish_sizes();
        let series = assemble(groups, &chunks);
        Ok(SeriesSet { series, warnings })
    }

    /// Fetches, per block, the chunks the groups need from it; `None` for
    /// a block that failed (and a warning).
    async fn fetch_group_chunks(
        &self,
        blocks: &[(Ulid, Arc<LoadedBlock>)],
        groups: &[SeriesGroup],
        warnings: &mut Vec<String>,
    ) -> Vec<Option<HashMap<u64, CachedChunk>>> {
        let mut refs: Vec<Vec<hearth_tsdb::block::ChunkRef>> = vec![Vec::new(); blocks.len()];
        for g in groups {
            for (i, metas) in &g.parts {
                refs[*i].extend(metas.iter().map(|m| m.chunk_ref));
            }
        }
        let fetcher = self.chunk_fetcher();
        let fetcher = &fetcher;
        let results: Vec<Result<HashMap<u64, CachedChunk>>> =
            futures::stream::iter(blocks.iter().cloned().zip(refs))
                .map(|((id, loaded), refs)| async move {
                    fetcher.fetch(id, &loaded.segments, refs).await
                })
                .buffered(self.inner.options.query_concurrency.max(1))
                .collect()
                .await;
        results
            .into_iter()
            .zip(blocks)
            .map(|(r, (id, _))| match r {
                Ok(map) => Some(map),
                Err(e) => {
                    if e.is_corruption() {
                        // Load failures are counted when loading; damaged
                        // chunks only show here.
                        self.inner.metrics.corrupt_blocks.inc();
                        tracing::error!(block = %id, error = %e, "damaged chunks in block");
                    }
                    warnings.push(self.block_failed(*id, &e));
                    None
                }
            })
            .collect()
    }

    /// [`hearth_storage_api::Queryable::label_names`]: block granularity for
    /// blocks with no matcher left (every name of the block's index), the
    /// matching series' names otherwise; a block's external label names
    /// come with any name found in it.
    pub(crate) async fn select_label_names(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<LabelsResult> {
        let queries = self.block_queries(matchers, mint, maxt, false)?;
        let (whole, filtered): (Vec<_>, Vec<_>) =
            queries.into_iter().partition(|q| q.matchers.is_empty());
        let mut warnings = Vec::new();
        let mut names = BTreeSet::new();
        for (q, r) in self.open_blocks(whole).await {
            match r {
                Ok(loaded) => {
                    let found = loaded.index.label_names();
                    if !found.is_empty() {
                        names.extend(found);
                        names.extend(q.external_labels.iter().map(|l| l.name.to_string()));
                    }
                }
                Err(e) => warnings.push(self.block_failed(q.id(), &e)),
            }
        }
        for (_, _, series) in self
            .lookup_blocks(filtered, mint, maxt, 0, &mut warnings)
            .await
        {
            for s in series {
                for l in s.labels.iter() {
                    if !names.contains(l.name) {
                        names.insert(l.name.to_string());
                    }
                }
            }
        }
        self.inner.caches.publish_sizes();
        Ok(LabelsResult {
            values: names.into_iter().collect(),
            warnings,
        })
    }

    /// [`hearth_storage_api::Queryable::label_values`]: for a block whose
    /// external labels include `name`, that value alone (when a series
    /// matches, or no matcher is left); otherwise the index's values (no
    /// matcher left) or the matching series' values.
    pub(crate) async fn select_label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<LabelsResult> {
        if name.is_empty() {
            return Err(Error::BadRequest("label name must not be empty".into()));
        }
        let queries = self.block_queries(matchers, mint, maxt, false)?;
        let mut values = BTreeSet::new();
        let mut whole = Vec::new();
        let mut filtered = Vec::new();
        for q in queries {
            match (q.block.external_labels.get(name), q.matchers.is_empty()) {
                (Some(v), true) => {
                    values.insert(v.to_string());
                }
                (_, true) => whole.push(q),
                (_, false) => filtered.push(q),
            }
        }
        let mut warnings = Vec::new();
        for (q, r) in self.open_blocks(whole).await {
            let id = q.id();
            let r = match r {
                Ok(loaded) => {
                    let name = name.to_string();
                    tokio::task::spawn_blocking(move || loaded.index.label_values(&name))
                        .await
                        .map_err(|e| Error::Internal(format!("label values of block {id}: {e}")))
                        .and_then(|r| r.map_err(|e| Error::from_tsdb(id, e)))
                }
                Err(e) => Err(e),
            };
            match r {
                Ok(v) => values.extend(v),
                Err(e) => warnings.push(self.block_failed(id, &e)),
            }
        }
        for (_, _, series) in self
            .lookup_blocks(filtered, mint, maxt, 0, &mut warnings)
            .await
        {
            for s in series {
                if let Some(v) = s.labels.get(name) {
                    if !values.contains(v) {
                        values.insert(v.to_string());
                    }
                }
            }
        }
        self.inner.caches.publish_sizes();
        Ok(LabelsResult {
            values: values.into_iter().collect(),
            warnings,
        })
    }

    /// Opens the blocks of `queries`, `query_concurrency` at a time.
    async fn open_blocks(
        &self,
        queries: Vec<BlockQuery>,
    ) -> Vec<(Arc<BucketBlock>, Result<Arc<LoadedBlock>>)> {
        futures::stream::iter(queries)
            .map(|q| async move {
                let r = q.block.open(&self.load_context()).await;
                (q.block, r)
            })
            .buffered(self.inner.options.query_concurrency.max(1))
            .collect()
            .await
    }
}

/// The answer's series: each group's chunks from the blocks that could be
/// read, ordered by time. A series whose every block failed is left out.
fn assemble(groups: Vec<SeriesGroup>, chunks: &[Option<HashMap<u64, CachedChunk>>]) -> Vec<Series> {
    let mut out = Vec::with_capacity(groups.len());
    for g in groups {
        let mut series_chunks: Vec<SeriesChunk> = Vec::new();
        for (i, metas) in &g.parts {
            let Some(Some(found)) = chunks.get(*i) else {
                continue;
            };
            for m in metas {
                if let Some(c) = found.get(&m.chunk_ref.0) {
                    series_chunks.push(SeriesChunk {
                        mint: m.mint,
                        maxt: m.maxt,
                        encoding: c.encoding,
                        data: Arc::clone(&c.data),
                    });
                }
            }
        }
        if series_chunks.is_empty() {
            continue;
        }
        series_chunks.sort_by_key(|c| (c.mint, c.maxt));
        out.push(Series::new(g.labels, series_chunks));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_merge_equal_sets_and_respect_the_limit() {
        let s = |name: &str, mint: i64| BlockSeries {
            labels: Labels::new([("n", name)]),
            chunks: vec![ChunkMeta {
                mint,
                maxt: mint + 1,
                chunk_ref: hearth_tsdb::block::ChunkRef(8),
            }],
        };
        let groups = group_series(
            vec![vec![s("a", 0), s("c", 0)], vec![s("a", 10), s("b", 10)]],
            0,
        );
        let names: Vec<String> = groups.iter().map(|g| g.labels.to_string()).collect();
        assert_eq!(names, vec!["{n=\"a\"}", "{n=\"b\"}", "{n=\"c\"}"]);
        assert_eq!(groups[0].parts.len(), 2);
        assert_eq!(groups[0].parts[0].0, 0);
        let limited = group_series(
            vec![vec![s("a", 0), s("c", 0)], vec![s("a", 10), s("b", 10)]],
            2,
        );
        assert_eq!(limited.len(), 2);
        assert_eq!(limited[0].parts.len(), 2);
    }
}
