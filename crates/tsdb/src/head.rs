//! The head: the in-memory, appendable part of the database.
//!
//! Each series keeps its samples as XOR chunks, cut the way Prometheus cuts
//! them (120-sample target, never across a chunk-range boundary, at most
//! 1024 bytes). Closed chunks are immutable shared bytes, so a query copies
//! only the open chunk. In-memory postings answer matchers.
//!
//! The head knows nothing of the WAL: [`crate::db::Db`] logs a batch first and
//! then applies it here, and replays the WAL into a fresh head at startup.
//! Sample acceptance follows Prometheus (specs/tsdb-blocks.md §7.3).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use hearth_model::chunkenc::{Encoding, XorChunk, MAX_XOR_CHUNK_BYTES, TARGET_SAMPLES_PER_CHUNK};
use hearth_model::{Labels, Matcher, Timestamp};
use hearth_storage_api::{Series, SeriesChunk};
use parking_lot::{Mutex, RwLock};

use crate::postings::{postings_for_matchers, PostingsSource};
use crate::{Error, Result};

/// Number of lock stripes of the label-set → series map.
const STRIPES: usize = 256;

/// A closed, immutable chunk.
#[derive(Debug, Clone)]
struct ClosedChunk {
    mint: Timestamp,
    maxt: Timestamp,
    data: Arc<[u8]>,
}

/// The open chunk samples are appended to.
#[derive(Debug)]
struct OpenChunk {
    chunk: XorChunk,
    mint: Timestamp,
    maxt: Timestamp,
    /// A sample at or after this time starts a new chunk.
    next_at: Timestamp,
}

/// A series' samples. In the order an append reads them (`repr(C)`): the
/// last sample, the open chunk, then the closed ones.
#[derive(Debug, Default)]
#[repr(C)]
struct SeriesData {
    /// The last appended sample, for the order and duplicate checks.
    last: Option<(Timestamp, u64)>,
    open: Option<OpenChunk>,
    closed: Vec<ClosedChunk>,
}

impl SeriesData {
    /// Appends one sample under the series' lock: the order check again
    /// (a concurrent appender may have come first), then the chunk.
    fn append(&mut self, t: Timestamp, v: f64, chunk_range: i64) -> Result<bool> {
        if check_order(self.last, t, v)? == AppendCheck::Duplicate {
            return Ok(false);
        }
        let cut = match &self.open {
            None => true,
            Some(o) => {
                t >= o.next_at
                    || o.chunk.num_samples() >= 2 * TARGET_SAMPLES_PER_CHUNK
                    || o.chunk.bytes().len() > MAX_XOR_CHUNK_BYTES
            }
        };
        if cut {
            if let Some(o) = self.open.take() {
                self.closed.push(ClosedChunk {
                    mint: o.mint,
                    maxt: o.maxt,
                    data: Arc::from(o.chunk.into_bytes()),
                });
            }
            self.open = Some(OpenChunk {
                chunk: XorChunk::new(),
                mint: t,
                maxt: t,
                next_at: range_for_timestamp(t, chunk_range),
            });
        }
        let o = self.open.as_mut().expect("an open chunk was ensured above");
        o.chunk.append(t, v)?;
        o.maxt = t;
        // Prometheus predicts the chunk's end once it holds a quarter of the
        // target, spreading the rest of the range evenly.
        if o.chunk.num_samples() == TARGET_SAMPLES_PER_CHUNK / 4 {
            o.next_at = compute_chunk_end(o.mint, o.maxt, o.next_at);
        }
        self.last = Some((t, v.to_bits()));
        Ok(true)
    }
}

/// One series in the head.
///
/// `repr(C)`, in the order an append reads the fields: id, flags, lock and
/// last sample share the first cache line or two, which is what checking a
/// sample touches (an append touches 100,000 series a scrape, each one
/// likely a cache miss).
#[derive(Debug)]
#[repr(C)]
pub struct MemSeries {
    pub id: u64,
    /// Whether the series' WAL record is known to be logged. Until it is,
    /// every writer that appends to the series logs the record too, so no
    /// sample record can reach the WAL ahead of its series record.
    logged: AtomicBool,
    /// Set when truncation removed the series from the head: a handle kept
    /// by a caller ([`crate::db::Db::append_with_series`]) is then stale.
    removed: AtomicBool,
    data: Mutex<SeriesData>,
    pub labels: Labels,
}

/// What [`Head::append_run`] appended: samples (duplicates of the last
/// one are not counted) and their time range.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AppendedRun {
    pub samples: usize,
    pub range: Option<(Timestamp, Timestamp)>,
}

/// What an append check found for one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendCheck {
    /// New sample: append it.
    Append,
    /// Same timestamp, identical value bits: silently dropped.
    Duplicate,
}

impl MemSeries {
    fn new(id: u64, labels: Labels) -> Self {
        Self {
            id,
            logged: AtomicBool::new(false),
            removed: AtomicBool::new(false),
            data: Mutex::new(SeriesData::default()),
            labels,
        }
    }

    /// Whether truncation removed the series from the head.
    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    pub fn is_logged(&self) -> bool {
        self.logged.load(Ordering::Acquire)
    }

    pub fn mark_logged(&self) {
        self.logged.store(true, Ordering::Release);
    }

    /// The last sample as (time, value bits), if any.
    pub fn last_sample(&self) -> Option<(Timestamp, u64)> {
        self.data.lock().last
    }

    /// The last sample's timestamp, if any.
    pub fn last_timestamp(&self) -> Option<Timestamp> {
        self.data.lock().last.map(|(t, _)| t)
    }

    /// Checks a sample against the series' last one (Prometheus's rules),
    /// given the last sample of the same batch if there is one.
    pub fn check(
        &self,
        t: Timestamp,
        v: f64,
        pending_last: Option<(Timestamp, u64)>,
    ) -> Result<AppendCheck> {
        let last = pending_last.or(self.data.lock().last);
        check_order(last, t, v)
    }

    /// Appends a sample that passed [`MemSeries::check`]. Re-checks under
    /// the lock, so concurrent appenders cannot break the order.
    fn append(&self, t: Timestamp, v: f64, chunk_range: i64) -> Result<bool> {
        self.data.lock().append(t, v, chunk_range)
    }

    /// The value bits of the sample at exactly `t`, if the series has one
    /// (decodes the chunk holding `t`: for the rare retried write, not for
    /// the hot path).
    pub fn sample_bits_at(&self, t: Timestamp) -> Option<u64> {
        let chunks = self.chunks(t, t);
        hearth_storage_api::ChunkSamples::new(&chunks, t, t)
            .filter_map(|s| s.ok())
            .find(|s| s.t == t)
            .map(|s| s.v.to_bits())
    }

    /// Copies the chunks overlapping `[mint, maxt]`.
    fn chunks(&self, mint: Timestamp, maxt: Timestamp) -> Vec<SeriesChunk> {
        let d = self.data.lock();
        let mut out = Vec::new();
        for c in &d.closed {
            if c.maxt >= mint && c.mint <= maxt {
                out.push(SeriesChunk {
                    mint: c.mint,
                    maxt: c.maxt,
                    encoding: Encoding::Xor,
                    data: c.data.clone(),
                });
            }
        }
        if let Some(o) = &d.open {
            if o.maxt >= mint && o.mint <= maxt && o.chunk.num_samples() > 0 {
                out.push(SeriesChunk {
                    mint: o.mint,
                    maxt: o.maxt,
                    encoding: Encoding::Xor,
                    data: Arc::from(o.chunk.bytes()),
                });
            }
        }
        out
    }

    /// Drops chunks that end before `mint`; true when nothing is left.
    fn truncate_before(&self, mint: Timestamp) -> bool {
        let mut d = self.data.lock();
        d.closed.retain(|c| c.maxt >= mint);
        if d.open.as_ref().is_some_and(|o| o.maxt < mint) {
            d.open = None;
        }
        d.closed.is_empty() && d.open.is_none()
    }

    fn chunk_count(&self) -> usize {
        let d = self.data.lock();
        d.closed.len() + usize::from(d.open.is_some())
    }
}

fn find(stripe: &SeriesByHash, hash: u64, labels: &Labels) -> Option<Arc<MemSeries>> {
    stripe
        .get(&hash)?
        .iter()
        .find(|s| &s.labels == labels)
        .cloned()
}

/// Prometheus's order and duplicate check of a sample against the last one
/// (time, value bits) of its series, if any.
pub fn check_order(last: Option<(Timestamp, u64)>, t: Timestamp, v: f64) -> Result<AppendCheck> {
    match last {
        Some((lt, _)) if t < lt => Err(Error::OutOfOrderSample),
        Some((lt, lv)) if t == lt => {
            if lv == v.to_bits() {
                Ok(AppendCheck::Duplicate)
            } else {
                Err(Error::DuplicateSampleForTimestamp)
            }
        }
        _ => Ok(AppendCheck::Append),
    }
}

/// The end of the chunk range containing `t`: `(t / w) * w + w` with Go's
/// truncating division.
pub fn range_for_timestamp(t: Timestamp, w: i64) -> Timestamp {
    (t / w) * w + w
}

/// Prometheus's `computeChunkEndTime`.
fn compute_chunk_end(start: Timestamp, cur: Timestamp, max: Timestamp) -> Timestamp {
    let n = (max - start) as f64 / ((cur - start + 1) as f64 * 4.0);
    if n <= 1.0 {
        return max;
    }
    start + ((max - start) as f64 / n.floor()) as i64
}

/// In-memory postings: label name → value → sorted series ids.
#[derive(Debug, Default)]
struct MemPostings {
    map: HashMap<Box<str>, HashMap<Box<str>, Vec<u64>>>,
}

impl MemPostings {
    fn add(&mut self, id: u64, labels: &Labels) {
        for l in labels.iter() {
            let list = self
                .map
                .entry(l.name.into())
                .or_default()
                .entry(l.value.into())
                .or_default();
            insert_sorted(list, id);
        }
        let all = self
            .map
            .entry("".into())
            .or_default()
            .entry("".into())
            .or_default();
        insert_sorted(all, id);
    }

    fn remove(&mut self, ids: &std::collections::HashSet<u64>) {
        for values in self.map.values_mut() {
            for list in values.values_mut() {
                list.retain(|id| !ids.contains(id));
            }
            values.retain(|_, l| !l.is_empty());
        }
        self.map.retain(|_, v| !v.is_empty());
    }
}

fn insert_sorted(list: &mut Vec<u64>, id: u64) {
    if list.last().is_none_or(|&l| l < id) {
        list.push(id);
    } else if let Err(pos) = list.binary_search(&id) {
        list.insert(pos, id);
    }
}

/// A hasher for keys that are hashes already.
#[derive(Default)]
struct PrehashedHasher(u64);

impl std::hash::Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | b as u64;
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// Label-set hash → the series with that hash (almost always one).
type SeriesByHash =
    HashMap<u64, Vec<Arc<MemSeries>>, std::hash::BuildHasherDefault<PrehashedHasher>>;

/// The head of the database.
pub struct Head {
    chunk_range: i64,
    stripes: Vec<Mutex<SeriesByHash>>,
    by_id: RwLock<BTreeMap<u64, Arc<MemSeries>>>,
    postings: RwLock<MemPostings>,
    next_id: AtomicU64,
    min_time: AtomicI64,
    max_time: AtomicI64,
    /// No sample older than this is accepted (the newest block's maxTime).
    min_valid_time: AtomicI64,
}

impl Head {
    /// An empty head whose chunks never span `chunk_range` boundaries.
    pub fn new(chunk_range: i64) -> Self {
        Self {
            chunk_range,
            stripes: (0..STRIPES)
                .map(|_| Mutex::new(SeriesByHash::default()))
                .collect(),
            by_id: RwLock::new(BTreeMap::new()),
            postings: RwLock::new(MemPostings::default()),
            next_id: AtomicU64::new(1),
            min_time: AtomicI64::new(i64::MAX),
            max_time: AtomicI64::new(i64::MIN),
            min_valid_time: AtomicI64::new(i64::MIN),
        }
    }

    pub fn chunk_range(&self) -> i64 {
        self.chunk_range
    }

    /// Smallest sample time in the head (`i64::MAX` when empty).
    pub fn min_time(&self) -> Timestamp {
        self.min_time.load(Ordering::Acquire)
    }

    /// Largest sample time in the head (`i64::MIN` when empty).
    pub fn max_time(&self) -> Timestamp {
        self.max_time.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.max_time() == i64::MIN
    }

    pub fn min_valid_time(&self) -> Timestamp {
        self.min_valid_time.load(Ordering::Acquire)
    }

    pub fn set_min_valid_time(&self, t: Timestamp) {
        self.min_valid_time.fetch_max(t, Ordering::AcqRel);
    }

    /// The oldest timestamp an append may have: Prometheus's
    /// `max(head.maxTime - chunkRange/2, minValidTime)`.
    pub fn append_min_valid(&self) -> Timestamp {
        let max = self.max_time();
        let by_head = if max == i64::MIN {
            i64::MIN
        } else {
            max - self.chunk_range / 2
        };
        by_head.max(self.min_valid_time())
    }

    pub fn num_series(&self) -> usize {
        self.by_id.read().len()
    }

    /// The series with these labels, if the head has it.
    pub fn get(&self, labels: &Labels) -> Option<Arc<MemSeries>> {
        let hash = labels.stable_hash();
        find(&self.stripe(hash).lock(), hash, labels)
    }

    pub fn get_by_id(&self, id: u64) -> Option<Arc<MemSeries>> {
        self.by_id.read().get(&id).cloned()
    }

    fn stripe(&self, hash: u64) -> &Mutex<SeriesByHash> {
        &self.stripes[(hash as usize) % STRIPES]
    }

    /// The series with these labels, created when missing. The boolean is
    /// true when it was created (the caller logs it to the WAL).
    pub fn get_or_create(&self, labels: &Labels) -> (Arc<MemSeries>, bool) {
        self.get_or_create_inner(labels, None)
    }

    /// As [`Head::get_or_create`], reusing `id` for a new series when it is
    /// free (WAL replay keeps the logged ids).
    pub fn get_or_create_with_id(&self, labels: &Labels, id: u64) -> (Arc<MemSeries>, bool) {
        self.get_or_create_inner(labels, Some(id))
    }

    fn get_or_create_inner(&self, labels: &Labels, wanted: Option<u64>) -> (Arc<MemSeries>, bool) {
        let hash = labels.stable_hash();
        let mut stripe = self.stripe(hash).lock();
        if let Some(s) = find(&stripe, hash, labels) {
            return (s, false);
        }
        // The id is chosen and taken under the id map's write lock: series
        // created at the same time in other stripes never share an id.
        let mut by_id = self.by_id.write();
        let id = match wanted {
            Some(id) if id != 0 && !by_id.contains_key(&id) => {
                self.next_id.fetch_max(id + 1, Ordering::AcqRel);
                id
            }
            _ => loop {
                let id = self.next_id.fetch_add(1, Ordering::AcqRel);
                if !by_id.contains_key(&id) {
                    break id;
                }
            },
        };
        let series = Arc::new(MemSeries::new(id, labels.clone()));
        by_id.insert(id, series.clone());
        drop(by_id);
        stripe.entry(hash).or_default().push(series.clone());
        self.postings.write().add(id, labels);
        (series, true)
    }

    /// Appends a sample already checked (and logged) by the caller.
    /// Returns false when it was a silently dropped duplicate.
    pub fn append(&self, series: &MemSeries, t: Timestamp, v: f64) -> Result<bool> {
        let appended = series.append(t, v, self.chunk_range)?;
        if appended {
            self.min_time.fetch_min(t, Ordering::AcqRel);
            self.max_time.fetch_max(t, Ordering::AcqRel);
        }
        Ok(appended)
    }

    /// Appends samples of one series already checked (and logged) by the
    /// caller, in order, under one lock of the series. Unlike
    /// [`Head::append`] it leaves the head's time range to the caller
    /// ([`Head::extend_time_range`], once per batch). On a refused sample
    /// (a concurrent appender came first) returns the error and its time;
    /// the samples before it stay appended.
    pub fn append_run(
        &self,
        series: &MemSeries,
        samples: impl IntoIterator<Item = (Timestamp, f64)>,
    ) -> std::result::Result<AppendedRun, (Error, Timestamp)> {
        let mut d = series.data.lock();
        let mut out = AppendedRun::default();
        for (t, v) in samples {
            match d.append(t, v, self.chunk_range) {
                Ok(true) => {
                    out.samples += 1;
                    out.range = Some(out.range.map_or((t, t), |(a, b)| (a.min(t), b.max(t))));
                }
                Ok(false) => {}
                Err(e) => return Err((e, t)),
            }
        }
        Ok(out)
    }

    /// Widens the head's time range to cover samples appended with
    /// [`Head::append_run`].
    pub fn extend_time_range(&self, mint: Timestamp, maxt: Timestamp) {
        self.min_time.fetch_min(mint, Ordering::AcqRel);
        self.max_time.fetch_max(maxt, Ordering::AcqRel);
    }

    /// Series matching `matchers`, sorted by labels, with the chunks that
    /// overlap `[mint, maxt]` (none when `skip_chunks`). Series with no
    /// chunk in the range are left out, as Prometheus's head querier does.
    pub fn select(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
        skip_chunks: bool,
    ) -> Result<Vec<Series>> {
        let ids = postings_for_matchers(self, matchers)?;
        let mut out = Vec::with_capacity(ids.len());
        let by_id = self.by_id.read();
        for id in ids {
            let Some(s) = by_id.get(&id) else { continue };
            let chunks = s.chunks(mint, maxt);
            if chunks.is_empty() {
                continue;
            }
            out.push(Series::new(
                s.labels.clone(),
                if skip_chunks { Vec::new() } else { chunks },
            ));
        }
        drop(by_id);
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    /// Every series with its chunks that end before `maxt` (exclusive),
    /// sorted by labels: the input of a block cut from the head.
    pub fn series_for_block(&self, mint: Timestamp, maxt: Timestamp) -> Vec<Series> {
        let mut series: Vec<Arc<MemSeries>> = self.by_id.read().values().cloned().collect();
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        series
            .into_iter()
            .filter_map(|s| {
                let chunks: Vec<SeriesChunk> = s
                    .chunks(mint, maxt - 1)
                    .into_iter()
                    .filter(|c| c.maxt < maxt && c.mint >= mint)
                    .collect();
                (!chunks.is_empty()).then(|| Series::new(s.labels.clone(), chunks))
            })
            .collect()
    }

    /// Drops everything before `mint` and the series left empty; returns the
    /// ids of the removed series. New samples before `mint` are refused.
    pub fn truncate(&self, mint: Timestamp) -> Vec<u64> {
        self.set_min_valid_time(mint);
        let series: Vec<Arc<MemSeries>> = self.by_id.read().values().cloned().collect();
        let mut removed = std::collections::HashSet::new();
        for s in series {
            if s.truncate_before(mint) {
                let hash = s.labels.stable_hash();
                let mut stripe = self.stripe(hash).lock();
                // Re-check under the stripe lock: an append may have raced in.
                if s.chunk_count() == 0 {
                    if let Some(list) = stripe.get_mut(&hash) {
                        list.retain(|x| x.id != s.id);
                        if list.is_empty() {
                            stripe.remove(&hash);
                        }
                    }
                    self.by_id.write().remove(&s.id);
                    s.removed.store(true, Ordering::Release);
                    removed.insert(s.id);
                }
            }
        }
        if !removed.is_empty() {
            self.postings.write().remove(&removed);
        }
        let new_min = self
            .by_id
            .read()
            .values()
            .filter_map(|s| s.first_timestamp())
            .min();
        // max_time stays: the append window still follows the last sample.
        self.min_time
            .store(new_min.unwrap_or(i64::MAX).max(mint), Ordering::Release);
        removed.into_iter().collect()
    }

    /// Ids of all series (for WAL checkpoints).
    pub fn series_ids(&self) -> std::collections::HashSet<u64> {
        self.by_id.read().keys().copied().collect()
    }
}

impl MemSeries {
    fn first_timestamp(&self) -> Option<Timestamp> {
        let d = self.data.lock();
        d.closed
            .first()
            .map(|c| c.mint)
            .or(d.open.as_ref().map(|o| o.mint))
    }
}

impl PostingsSource for Head {
    fn postings(&self, name: &str, value: &str) -> Result<Vec<u64>> {
        Ok(self
            .postings
            .read()
            .map
            .get(name)
            .and_then(|v| v.get(value))
            .cloned()
            .unwrap_or_default())
    }

    fn all_postings(&self) -> Result<Vec<u64>> {
        self.postings("", "")
    }

    fn label_values(&self, name: &str) -> Result<Vec<String>> {
        let p = self.postings.read();
        let mut v: Vec<String> = p
            .map
            .get(name)
            .map(|m| m.keys().map(|k| k.to_string()).collect())
            .unwrap_or_default();
        v.sort();
        Ok(v)
    }
}

/// The head's cardinality statistics (Prometheus's `PostingsStats`).
#[derive(Debug, Clone, Default)]
pub struct HeadStats {
    pub num_series: u64,
    pub num_label_pairs: u64,
    pub chunk_count: u64,
    pub series_count_by_metric_name: Vec<(String, u64)>,
    pub label_value_count_by_label_name: Vec<(String, u64)>,
    pub memory_in_bytes_by_label_name: Vec<(String, u64)>,
    pub series_count_by_label_value_pair: Vec<(String, u64)>,
}

fn top(mut v: Vec<(String, u64)>, limit: usize) -> Vec<(String, u64)> {
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(limit);
    v
}

impl Head {
    /// Cardinality statistics, each list sorted by value descending and cut
    /// to `limit` entries.
    pub fn stats(&self, limit: usize) -> HeadStats {
        let p = self.postings.read();
        let mut by_metric = Vec::new();
        let mut values_by_name = Vec::new();
        let mut bytes_by_name = Vec::new();
        let mut by_pair = Vec::new();
        let mut pairs = 0u64;
        for (name, values) in &p.map {
            if name.is_empty() {
                continue;
            }
            values_by_name.push((name.to_string(), values.len() as u64));
            let mut bytes = 0u64;
            for (value, ids) in values {
                pairs += 1;
                bytes += (value.len() * ids.len()) as u64;
                by_pair.push((format!("{name}={value}"), ids.len() as u64));
                if &**name == hearth_model::METRIC_NAME {
                    by_metric.push((value.to_string(), ids.len() as u64));
                }
            }
            bytes_by_name.push((name.to_string(), bytes));
        }
        drop(p);
        let chunk_count = self
            .by_id
            .read()
            .values()
            .map(|s| s.chunk_count() as u64)
            .sum();
        HeadStats {
            num_series: self.num_series() as u64,
            num_label_pairs: pairs,
            chunk_count,
            series_count_by_metric_name: top(by_metric, limit),
            label_value_count_by_label_name: top(values_by_name, limit),
            memory_in_bytes_by_label_name: top(bytes_by_name, limit),
            series_count_by_label_value_pair: top(by_pair, limit),
        }
    }

    /// All label names present in the head, sorted.
    pub fn label_names(&self) -> Vec<String> {
        let p = self.postings.read();
        let mut v: Vec<String> = p
            .map
            .keys()
            .filter(|k| !k.is_empty())
            .map(|k| k.to_string())
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_model::MatchOp;

    const HOUR: i64 = 3_600_000;

    /// One test sample: its series' label pairs, time and value.
    type TestSample<'a> = (&'a [(&'a str, &'a str)], i64, f64);

    fn head_with(samples: &[TestSample<'_>]) -> Head {
        let h = Head::new(2 * HOUR);
        for (l, t, v) in samples {
            let (s, _) = h.get_or_create(&Labels::new(l.iter().copied()));
            h.append(&s, *t, *v).unwrap();
        }
        h
    }

    #[test]
    fn append_rules_follow_prometheus() {
        let h = head_with(&[(&[("__name__", "a")], 1000, 1.0)]);
        let s = h.get(&Labels::new([("__name__", "a")])).unwrap();
        assert_eq!(s.check(1000, 1.0, None).unwrap(), AppendCheck::Duplicate);
        assert!(matches!(
            s.check(1000, 2.0, None),
            Err(Error::DuplicateSampleForTimestamp)
        ));
        assert!(matches!(
            s.check(999, 2.0, None),
            Err(Error::OutOfOrderSample)
        ));
        assert_eq!(s.check(1001, 2.0, None).unwrap(), AppendCheck::Append);
        // NaN duplicates compare by bits.
        h.append(&s, 2000, f64::NAN).unwrap();
        assert_eq!(
            s.check(2000, f64::NAN, None).unwrap(),
            AppendCheck::Duplicate
        );
        assert!(s.check(2000, hearth_model::STALE_NAN, None).is_err());
    }

    #[test]
    fn append_run_counts_appends_and_leaves_the_time_range_to_the_caller() {
        let h = head_with(&[(&[("__name__", "a")], 1000, 1.0)]);
        let s = h.get(&Labels::new([("__name__", "a")])).unwrap();
        // The duplicate of the last sample is dropped and not counted.
        let run = h.append_run(&s, [(1000, 1.0), (3000, 2.0)]).unwrap();
        assert_eq!(
            run,
            AppendedRun {
                samples: 1,
                range: Some((3000, 3000))
            }
        );
        assert_eq!(h.max_time(), 1000, "the caller widens the range");
        h.extend_time_range(3000, 3000);
        assert_eq!((h.min_time(), h.max_time()), (1000, 3000));
        // A refused sample stops the run and names its time; the samples
        // before it stay.
        let refused = h
            .append_run(&s, [(4000, 4.0), (3500, 5.0), (5000, 6.0)])
            .unwrap_err();
        assert!(matches!(refused, (Error::OutOfOrderSample, 3500)));
        assert_eq!(s.last_sample(), Some((4000, 4.0f64.to_bits())));
    }

    #[test]
    fn chunks_are_cut_at_range_boundaries_and_near_120_samples() {
        let h = Head::new(2 * HOUR);
        let (s, _) = h.get_or_create(&Labels::new([("__name__", "x")]));
        for i in 0..(4 * 240) {
            h.append(&s, i * 15_000, i as f64).unwrap();
        }
        let chunks = s.chunks(i64::MIN, i64::MAX);
        for c in &chunks {
            assert_eq!(
                range_for_timestamp(c.mint, 2 * HOUR),
                range_for_timestamp(c.maxt, 2 * HOUR)
            );
            let n = hearth_model::chunkenc::XorIterator::new(&c.data).count();
            assert!(n <= 240, "{n}");
        }
        // 480 samples per 2h range at 15s, split as Prometheus does.
        let per_range: Vec<usize> = chunks
            .iter()
            .map(|c| hearth_model::chunkenc::XorIterator::new(&c.data).count())
            .collect();
        assert_eq!(per_range[..4], [120, 120, 120, 120]);
    }

    #[test]
    fn select_uses_postings_and_sorts() {
        let h = head_with(&[
            (&[("__name__", "m"), ("job", "b")], 10, 1.0),
            (&[("__name__", "m"), ("job", "a")], 10, 1.0),
            (&[("__name__", "other"), ("job", "a")], 10, 1.0),
        ]);
        let got = h
            .select(&[Matcher::equal("__name__", "m")], 0, 100, false)
            .unwrap();
        let names: Vec<String> = got.iter().map(|s| s.labels.to_string()).collect();
        assert_eq!(
            names,
            vec![r#"{__name__="m", job="a"}"#, r#"{__name__="m", job="b"}"#]
        );
        let re = Matcher::new(MatchOp::RegexNoMatch, "job", "a").unwrap();
        assert_eq!(h.select(&[re], 0, 100, false).unwrap().len(), 1);
        assert!(h
            .select(&[Matcher::equal("__name__", "m")], 11, 100, false)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn concurrent_creation_gives_every_series_its_own_id() {
        let h = Arc::new(Head::new(2 * HOUR));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let h = h.clone();
                std::thread::spawn(move || {
                    for i in 0..2000 {
                        let l = Labels::new([
                            ("__name__", "m"),
                            ("t", &t.to_string()),
                            ("i", &i.to_string()),
                        ]);
                        let (s, _) = h.get_or_create(&l);
                        h.append(&s, 1000, i as f64).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(h.num_series(), 8000);
        for t in 0..4 {
            for i in 0..2000 {
                let l = Labels::new([
                    ("__name__", "m"),
                    ("t", &t.to_string()),
                    ("i", &i.to_string()),
                ]);
                let found = h
                    .select(
                        &[
                            Matcher::equal("t", t.to_string()),
                            Matcher::equal("i", i.to_string()),
                        ],
                        0,
                        2000,
                        true,
                    )
                    .unwrap();
                assert_eq!(found.len(), 1);
                assert_eq!(found[0].labels, l);
            }
        }
    }

    #[test]
    fn truncate_drops_old_chunks_and_empty_series() {
        let h = head_with(&[
            (&[("__name__", "old")], 1000, 1.0),
            (&[("__name__", "new")], 1000, 1.0),
            (&[("__name__", "new")], 3 * HOUR, 2.0),
        ]);
        let removed = h.truncate(2 * HOUR);
        assert_eq!(removed.len(), 1);
        assert_eq!(h.num_series(), 1);
        assert_eq!(h.label_values("__name__").unwrap(), vec!["new".to_string()]);
        assert_eq!(h.min_time(), 3 * HOUR);
        assert_eq!(h.append_min_valid(), 2 * HOUR);
    }
}
