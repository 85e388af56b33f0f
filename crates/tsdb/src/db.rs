//! The database: a data directory with a WAL, a head and persisted blocks.
//!
//! Writes are all-or-nothing batches: every sample is checked first, then
//! the batch is logged to the WAL, then applied to the head, and only then
//! acknowledged. At startup the WAL is replayed into a fresh head, so a
//! crash at any moment loses nothing that was acknowledged.
//!
//! [`Db::compact`] cuts the head into blocks once it spans more than 1.5
//! block ranges, truncates the head and the WAL behind them, merges blocks
//! by Prometheus's leveled plan and applies retention.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use hearth_model::{Labels, Matcher, Timestamp};
use hearth_storage_api::{
    AppendStats, Appendable, LabelsResult, Queryable, SelectHints, Series, SeriesSamples, SeriesSet,
};
use parking_lot::{Mutex, RwLock};

use crate::block::{Block, BlockCompaction, BlockWriter};
use crate::head::{check_order, AppendCheck, Head, MemSeries};
use crate::wal::record::{encode_samples, Record, RefSample, RefSeries};
use crate::wal::{Wal, WalOptions, WalReader};
use crate::{compact, Error, Result};

const HOUR_MS: i64 = 3_600_000;

/// Options of a database, named after Prometheus's flags.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// `--storage.tsdb.min-block-duration`: block range and head chunk range.
    pub min_block_duration: i64,
    /// `--storage.tsdb.max-block-duration`: the largest compacted block.
    pub max_block_duration: i64,
    /// `--storage.tsdb.retention.time` in milliseconds (0 = none).
    pub retention_time: i64,
    /// `--storage.tsdb.retention.size` in bytes (0 = none).
    pub retention_size: u64,
    pub wal_segment_size: u64,
    pub wal_compression: bool,
    /// fsync the WAL before acknowledging (power-loss durability; a process
    /// crash loses nothing either way).
    pub wal_fsync: bool,
}

impl Default for DbOptions {
    fn default() -> Self {
        let retention = 15 * 24 * HOUR_MS;
        Self {
            min_block_duration: 2 * HOUR_MS,
            max_block_duration: default_max_block_duration(retention),
            retention_time: retention,
            retention_size: 0,
            wal_segment_size: 128 << 20,
            wal_compression: true,
            wal_fsync: false,
        }
    }
}

/// Prometheus's default: 10 % of the retention time, at most 31 days.
pub fn default_max_block_duration(retention: i64) -> i64 {
    if retention <= 0 {
        return 31 * 24 * HOUR_MS;
    }
    (retention / 10).min(31 * 24 * HOUR_MS)
}

/// How a batch treats rejected samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendMode {
    /// Any rejected sample fails the whole batch; nothing is stored.
    AllOrNothing,
    /// Rejected samples are reported one by one; the rest is stored.
    KeepValid,
}

/// A sample the head refused: which one and why.
#[derive(Debug)]
pub struct RejectedSample {
    /// Index of the series in the batch.
    pub series: usize,
    /// Index of the sample in that series.
    pub sample: usize,
    /// The rule it broke: `OutOfBounds`, `OutOfOrderSample`,
    /// `DuplicateSampleForTimestamp` or `InvalidSeries`.
    pub error: Error,
}

/// What an append did.
#[derive(Debug, Default)]
pub struct AppendOutcome {
    pub stats: AppendStats,
    /// Per-sample rejections ([`AppendMode::KeepValid`] only), in batch order.
    pub rejected: Vec<RejectedSample>,
}

/// A Prometheus-compatible TSDB in one directory.
pub struct Db {
    dir: PathBuf,
    opts: DbOptions,
    head: Head,
    wal: Wal,
    blocks: RwLock<Vec<Arc<Block>>>,
    /// Held shared by appends from check to apply and exclusively by head
    /// compaction while it raises the head's lower bound.
    append_gate: RwLock<()>,
    /// One compaction at a time.
    compact_lock: Mutex<()>,
    /// WAL series refs from replay that map to another head series id, so
    /// that checkpoints keep their records while their samples are kept.
    wal_aliases: Mutex<HashMap<u64, u64>>,
    /// The locked `lock` file: one process per data directory.
    _lock: std::fs::File,
}

impl Db {
    /// Opens (or creates) the database in `dir` and replays its WAL.
    pub fn open(dir: impl AsRef<Path>, opts: DbOptions) -> Result<Db> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(Error::io("create data dir", &dir))?;
        let lock = lock_dir(&dir)?;
        remove_tmp_dirs(&dir)?;
        let blocks = load_blocks(&dir)?;
        let head = Head::new(opts.min_block_duration);
        if let Some(max) = blocks.iter().map(|b| b.meta().max_time).max() {
            head.set_min_valid_time(max);
        }
        let wal_dir = dir.join("wal");
        let wal = Wal::open(
            &wal_dir,
            WalOptions {
                segment_size: opts.wal_segment_size,
                compress: opts.wal_compression,
                fsync_on_log: opts.wal_fsync,
            },
        )?;
        let db = Db {
            dir,
            opts,
            head,
            wal,
            blocks: RwLock::new(blocks),
            append_gate: RwLock::new(()),
            compact_lock: Mutex::new(()),
            wal_aliases: Mutex::new(HashMap::new()),
            _lock: lock,
        };
        db.replay_wal(&wal_dir)?;
        Ok(db)
    }

    fn replay_wal(&self, wal_dir: &Path) -> Result<()> {
        let started = std::time::Instant::now();
        let mut refs: HashMap<u64, Arc<MemSeries>> = HashMap::new();
        let mut aliases = HashMap::new();
        let (mut samples, mut skipped) = (0u64, 0u64);
        let min_valid = self.head.min_valid_time();
        let mut reader = WalReader::open(wal_dir)?;
        while let Some(rec) = reader.next_record()? {
            match Record::decode(rec)? {
                Record::Series(series) => {
                    for s in series {
                        let (m, _) = self.head.get_or_create_with_id(&s.labels, s.ref_);
                        if m.id != s.ref_ {
                            aliases.insert(s.ref_, m.id);
                        }
                        refs.insert(s.ref_, m);
                    }
                }
                Record::Samples(list) => {
                    for s in list {
                        let Some(m) = refs.get(&s.ref_) else {
                            skipped += 1;
                            continue;
                        };
                        if s.t < min_valid {
                            skipped += 1;
                            continue;
                        }
                        match self.head.append(m, s.t, s.v) {
                            Ok(_) => samples += 1,
                            Err(_) => skipped += 1,
                        }
                    }
                }
                _ => {}
            }
        }
        *self.wal_aliases.lock() = aliases;
        tracing::info!(
            series = self.head.num_series(),
            samples,
            skipped,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "WAL replay completed"
        );
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn options(&self) -> &DbOptions {
        &self.opts
    }

    pub fn head(&self) -> &Head {
        &self.head
    }

    /// The persisted blocks, oldest first.
    pub fn blocks(&self) -> Vec<Arc<Block>> {
        self.blocks.read().clone()
    }

    /// Appends a batch, all or nothing: on any rejected sample nothing is
    /// stored and the first rejection is the error (remote write 1.0's
    /// rule). On success every sample is in the WAL (handed to the OS, and
    /// fsynced with `wal_fsync`) and the head.
    pub fn append_batch(&self, batch: &[SeriesSamples]) -> Result<AppendStats> {
        let outcome = self.append(batch, AppendMode::AllOrNothing)?;
        Ok(outcome.stats)
    }

    /// Appends a batch. With [`AppendMode::KeepValid`] each rejected sample
    /// gets its own error in the outcome and the rest of the batch is kept
    /// (Prometheus's appender rules, as a scrape uses them).
    pub fn append(&self, batch: &[SeriesSamples], mode: AppendMode) -> Result<AppendOutcome> {
        self.append_inner(batch, None, mode)
    }

    /// As [`Db::append`], with a head series handle per batch entry that the
    /// caller keeps from one append to the next (a scrape loop's cache):
    /// `series[i]`, when set and still in the head, is the series of
    /// `batch[i]` (same labels) and spares looking it up; after the append
    /// every entry that has a series in the head is set to it. All of
    /// [`Db::append`]'s checks and its WAL order apply.
    pub fn append_with_series(
        &self,
        batch: &[SeriesSamples],
        series: &mut [Option<Arc<MemSeries>>],
        mode: AppendMode,
    ) -> Result<AppendOutcome> {
        assert_eq!(
            batch.len(),
            series.len(),
            "one series handle per batch entry"
        );
        self.append_inner(batch, Some(series), mode)
    }

    fn append_inner(
        &self,
        batch: &[SeriesSamples],
        mut handles: Option<&mut [Option<Arc<MemSeries>>]>,
        mode: AppendMode,
    ) -> Result<AppendOutcome> {
        let _gate = self.append_gate.read();
        let min_valid = self.head.append_min_valid();
        let mut outcome = AppendOutcome::default();
        let mut reject = |series: usize, sample: usize, e: Error, labels: &Labels, t| match mode {
            AppendMode::AllOrNothing => Err(sample_error(e, labels, t)),
            AppendMode::KeepValid => {
                outcome.rejected.push(RejectedSample {
                    series,
                    sample,
                    error: e,
                });
                Ok(())
            }
        };
        // Check every sample before anything is written, gathering the kept
        // ones end to end: the passes below read them sequentially instead of
        // going back to each series' own vector (with 100,000 series, each
        // of those reads was a cache miss).
        let mut kept: Vec<RefSample> =
            Vec::with_capacity(batch.iter().map(|s| s.samples.len()).sum());
        let mut runs: Vec<Run> = Vec::with_capacity(batch.len());
        for (i, s) in batch.iter().enumerate() {
            // The series and samples a few entries ahead are scattered over
            // the heap: ask for them now, use them when they have arrived.
            if let Some(ahead) = batch.get(i + PREFETCH_AHEAD) {
                prefetch(ahead.samples.as_ptr());
                if let Some(Some(m)) = handles.as_deref().map(|h| &h[i + PREFETCH_AHEAD]) {
                    prefetch(Arc::as_ptr(m));
                }
            }
            if s.labels.is_empty() {
                for (j, x) in s.samples.iter().enumerate() {
                    let e = Error::InvalidSeries {
                        series: "{}".into(),
                        reason: "empty label set".into(),
                    };
                    reject(i, j, e, &s.labels, x.t)?;
                }
                continue;
            }
            let handle = handles
                .as_deref_mut()
                .and_then(|h| h[i].take())
                .filter(|m| !m.is_removed());
            debug_assert!(handle.as_ref().is_none_or(|m| m.labels == s.labels));
            let found = handle.or_else(|| self.head.get(&s.labels));
            // 0 stands for a series still to be created (ids start at 1).
            let ref_ = found.as_ref().map_or(0, |m| m.id);
            let start = kept.len();
            let mut last = None;
            for (j, x) in s.samples.iter().enumerate() {
                if x.t < min_valid {
                    reject(i, j, Error::OutOfBounds, &s.labels, x.t)?;
                    continue;
                }
                let check = match &found {
                    Some(m) => m.check(x.t, x.v, last),
                    None => check_order(last, x.t, x.v),
                };
                match check {
                    Ok(check) => {
                        if check == AppendCheck::Append {
                            last = Some((x.t, x.v.to_bits()));
                        }
                        // A duplicate goes through too: the head drops it
                        // and counts it.
                        kept.push(RefSample {
                            ref_,
                            t: x.t,
                            v: x.v,
                        });
                    }
                    Err(e) => reject(i, j, e, &s.labels, x.t)?,
                }
            }
            if kept.len() == start {
                // Nothing to store: no series created for it.
                if let (Some(h), Some(m)) = (handles.as_deref_mut(), found) {
                    h[i] = Some(m);
                }
                continue;
            }
            // Once logged, always logged: reading it here is safe.
            let logged = found.as_ref().is_some_and(|m| m.is_logged());
            runs.push(Run {
                series: i,
                m: found,
                logged,
                samples: start..kept.len(),
            });
        }
        // Create the new series, then log, then apply.
        let mut new_series = Vec::new();
        for run in &mut runs {
            let labels = &batch[run.series].labels;
            if run.m.is_none() {
                let (m, created) = self.head.get_or_create(labels);
                if created {
                    outcome.stats.series_created += 1;
                }
                for x in &mut kept[run.samples.clone()] {
                    x.ref_ = m.id;
                }
                run.logged = m.is_logged();
                run.m = Some(m);
            }
            if !run.logged {
                new_series.push(RefSeries {
                    ref_: run.m.as_ref().expect("every run has its series").id,
                    labels: labels.clone(),
                });
            }
        }
        let mut records: Vec<Vec<u8>> = Vec::with_capacity(2);
        if !new_series.is_empty() {
            records.push(Record::Series(new_series).encode());
        }
        if !kept.is_empty() {
            let mut buf = Vec::new();
            encode_samples(&kept, &mut buf);
            records.push(buf);
        }
        let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        self.wal.log(&refs)?;
        let mut range: Option<(Timestamp, Timestamp)> = None;
        let mut failure = None;
        for (k, run) in runs.iter().enumerate() {
            if let Some(Some(ahead)) = runs.get(k + PREFETCH_AHEAD).map(|r| r.m.as_ref()) {
                prefetch(Arc::as_ptr(ahead));
            }
            let m = run.m.as_ref().expect("every run has its series");
            m.mark_logged();
            let samples = &kept[run.samples.clone()];
            match self.head.append_run(m, samples.iter().map(|x| (x.t, x.v))) {
                Ok(appended) => {
                    outcome.stats.samples_appended += appended.samples;
                    outcome.stats.duplicates_dropped += samples.len() - appended.samples;
                    if let Some((mint, maxt)) = appended.range {
                        range =
                            Some(range.map_or((mint, maxt), |(a, b)| (a.min(mint), b.max(maxt))));
                    }
                }
                // A concurrent writer got there first; the WAL holds the
                // sample and replay resolves it the same way.
                Err((e, t)) => {
                    failure = Some(sample_error(e, &batch[run.series].labels, t));
                    break;
                }
            }
        }
        if let Some((mint, maxt)) = range {
            self.head.extend_time_range(mint, maxt);
        }
        if let Some(e) = failure {
            return Err(e);
        }
        if let Some(h) = handles {
            for run in runs {
                h[run.series] = run.m;
            }
        }
        Ok(outcome)
    }

    /// Cuts blocks from the head while it is compactable, then runs leveled
    /// compaction and retention. Returns the blocks written.
    pub fn compact(&self) -> Result<Vec<String>> {
        let _one = self.compact_lock.lock();
        let mut written = Vec::new();
        loop {
            let (hmin, hmax) = (self.head.min_time(), self.head.max_time());
            if self.head.is_empty() || hmin == i64::MAX {
                break;
            }
            let range = self.opts.min_block_duration;
            if hmax - hmin <= range / 2 * 3 {
                break;
            }
            let maxt = crate::head::range_for_timestamp(hmin, range);
            if let Some(id) = self.cut_head_block(hmin, maxt)? {
                written.push(id);
            }
        }
        written.extend(self.compact_blocks()?);
        self.apply_retention()?;
        Ok(written)
    }

    /// Persists `[mint, maxt)` of the head as a block, then truncates the
    /// head and the WAL behind it.
    fn cut_head_block(&self, mint: Timestamp, maxt: Timestamp) -> Result<Option<String>> {
        {
            // No append in flight may still add a sample below maxt.
            let _gate = self.append_gate.write();
            self.head.set_min_valid_time(maxt);
        }
        let series = self.head.series_for_block(mint, maxt);
        let mut id = None;
        if !series.is_empty() {
            let ulid = ulid::Ulid::new();
            let mut w = BlockWriter::new(&self.dir, ulid, mint, maxt)?;
            for s in &series {
                w.add_series(&s.labels, &s.chunks)?;
            }
            let meta = w.finish(BlockCompaction {
                level: 1,
                sources: vec![ulid],
                ..BlockCompaction::default()
            })?;
            let block = Arc::new(Block::open(self.dir.join(meta.ulid.to_string()))?);
            let mut blocks = self.blocks.write();
            blocks.push(block);
            blocks.sort_by_key(|b| b.meta().min_time);
            id = Some(meta.ulid.to_string());
            tracing::info!(block = %meta.ulid, mint, maxt, series = series.len(), "head block written");
        }
        {
            // An append that resolved a series before this point must not
            // add a sample to it after truncation removed it from the head
            // (the sample would be acknowledged and then unreachable).
            let _gate = self.append_gate.write();
            self.head.truncate(maxt);
        }
        self.truncate_wal(maxt)?;
        Ok(id)
    }

    /// Checkpoints the WAL up to a fresh segment, keeping the series still
    /// in the head and the samples at or after `mint`.
    fn truncate_wal(&self, mint: Timestamp) -> Result<()> {
        let new_segment = self.wal.next_segment()?;
        let (first, _) = self.wal.segments();
        if new_segment == 0 || first >= new_segment {
            return Ok(());
        }
        let alive = self.head.series_ids();
        let aliases = self.wal_aliases.lock().clone();
        let keep =
            |r: u64| alive.contains(&r) || aliases.get(&r).is_some_and(|id| alive.contains(id));
        crate::wal::checkpoint(self.wal.dir(), first, new_segment - 1, keep, mint)?;
        self.wal.truncate(new_segment)?;
        Ok(())
    }

    fn compact_blocks(&self) -> Result<Vec<String>> {
        let mut written = Vec::new();
        loop {
            let blocks = self.blocks();
            let metas: Vec<_> = blocks.iter().map(|b| b.meta().clone()).collect();
            let ranges =
                compact::ranges(self.opts.min_block_duration, self.opts.max_block_duration);
            let Some(plan) = compact::plan(&metas, &ranges) else {
                break;
            };
            let inputs: Vec<Arc<Block>> = blocks
                .iter()
                .filter(|b| plan.contains(&b.meta().ulid))
                .cloned()
                .collect();
            let out = compact::merge_blocks(&self.dir, &inputs)?;
            let mut list = self.blocks.write();
            list.retain(|b| !plan.contains(&b.meta().ulid));
            if let Some(meta) = &out {
                list.push(Arc::new(Block::open(self.dir.join(meta.ulid.to_string()))?));
                list.sort_by_key(|b| b.meta().min_time);
                written.push(meta.ulid.to_string());
            }
            drop(list);
            for b in inputs {
                delete_block_dir(b.dir())?;
            }
        }
        Ok(written)
    }

    /// Deletes blocks beyond the time and size retention.
    fn apply_retention(&self) -> Result<()> {
        let blocks = self.blocks();
        let doomed = compact::retention_victims(
            &blocks
                .iter()
                .map(|b| (b.meta().clone(), dir_size(b.dir())))
                .collect::<Vec<_>>(),
            self.opts.retention_time,
            self.opts.retention_size,
        );
        if doomed.is_empty() {
            return Ok(());
        }
        self.blocks
            .write()
            .retain(|b| !doomed.contains(&b.meta().ulid));
        for b in blocks.iter().filter(|b| doomed.contains(&b.meta().ulid)) {
            tracing::info!(block = %b.meta().ulid, "retention: deleting block");
            delete_block_dir(b.dir())?;
        }
        Ok(())
    }

    /// Flushes the WAL to disk. Called at shutdown.
    pub fn close(&self) -> Result<()> {
        self.wal.sync()
    }

    /// Series over head and blocks, merged by labels, chunks in time order.
    pub fn select_sync(&self, matchers: &[Matcher], hints: SelectHints) -> Result<Vec<Series>> {
        let mut parts: Vec<Vec<Series>> = Vec::new();
        for b in self.blocks().iter() {
            let m = b.meta();
            if m.max_time <= hints.mint || m.min_time > hints.maxt {
                continue;
            }
            parts.push(b.select(matchers, hints.mint, hints.maxt, hints.skip_chunks)?);
        }
        parts.push(
            self.head
                .select(matchers, hints.mint, hints.maxt, hints.skip_chunks)?,
        );
        let mut merged = merge_series(parts);
        if hints.limit > 0 {
            merged.truncate(hints.limit);
        }
        Ok(merged)
    }

    pub fn label_names_sync(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<Vec<String>> {
        let mut names = std::collections::BTreeSet::new();
        if matchers.is_empty() {
            names.extend(self.head.label_names());
            for b in self.blocks().iter().filter(|b| overlaps(b, mint, maxt)) {
                names.extend(b.label_names(&[])?);
            }
        } else {
            for s in self.select_sync(matchers, SelectHints::new(mint, maxt).series_only())? {
                names.extend(s.labels.iter().map(|l| l.name.to_string()));
            }
        }
        Ok(names.into_iter().collect())
    }

    pub fn label_values_sync(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<Vec<String>> {
        let mut values = std::collections::BTreeSet::new();
        if matchers.is_empty() {
            use crate::postings::PostingsSource;
            values.extend(self.head.label_values(name)?);
            for b in self.blocks().iter().filter(|b| overlaps(b, mint, maxt)) {
                values.extend(b.label_values(name, &[])?);
            }
        } else {
            for s in self.select_sync(matchers, SelectHints::new(mint, maxt).series_only())? {
                if let Some(v) = s.labels.get(name) {
                    values.insert(v.to_string());
                }
            }
        }
        Ok(values.into_iter().collect())
    }
}

fn overlaps(b: &Block, mint: Timestamp, maxt: Timestamp) -> bool {
    b.meta().max_time > mint && b.meta().min_time <= maxt
}

/// How many batch entries ahead an append prefetches.
const PREFETCH_AHEAD: usize = 8;

/// A hint that `p` will be read soon (a no-op where there is no such
/// instruction).
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults, whatever the address; the second
    // line covers a value that straddles two.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>());
        _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>().wrapping_add(48));
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The kept samples of one batch entry in an append: `samples` is their
/// range in the append's flat list.
struct Run {
    series: usize,
    m: Option<Arc<MemSeries>>,
    /// Whether the series' WAL record is known to be logged.
    logged: bool,
    samples: std::ops::Range<usize>,
}

fn sample_error(e: Error, labels: &Labels, t: Timestamp) -> Error {
    if e.is_sample_rejection() {
        Error::InvalidSeries {
            series: labels.to_string(),
            reason: format!("{e} (timestamp {t})"),
        }
    } else {
        e
    }
}

/// Merges per-source sorted series lists into one sorted list; series with
/// equal labels get their chunks concatenated in time order.
pub fn merge_series(parts: Vec<Vec<Series>>) -> Vec<Series> {
    let mut parts: Vec<Vec<Series>> = parts.into_iter().filter(|p| !p.is_empty()).collect();
    if parts.len() == 1 {
        return parts.pop().expect("one part");
    }
    let mut all: Vec<Series> = parts.into_iter().flatten().collect();
    all.sort_by(|a, b| a.labels.cmp(&b.labels));
    let mut out: Vec<Series> = Vec::with_capacity(all.len());
    for s in all {
        match out.last_mut() {
            Some(last) if last.labels == s.labels => last.chunks.extend(s.chunks),
            _ => out.push(s),
        }
    }
    for s in &mut out {
        s.chunks.sort_by_key(|c| c.mint);
    }
    out
}

/// Takes the data directory's `lock` file, as Prometheus does, so that two
/// processes never write the same directory.
fn lock_dir(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(Error::io("open lock file", &path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::InvalidArgument(format!(
            "lock {}: the data directory is in use by another process",
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::Io {
            op: "lock data dir",
            path,
            source: e,
        }),
    }
}

fn remove_tmp_dirs(dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(Error::io("read data dir", dir))?;
    for e in entries {
        let e = e.map_err(Error::io("read data dir", dir))?;
        let name = e.file_name().to_string_lossy().to_string();
        if name.ends_with(crate::block::TMP_FOR_CREATION_SUFFIX)
            || name.ends_with(crate::block::TMP_FOR_DELETION_SUFFIX)
            || name.ends_with(".tmp")
        {
            let p = e.path();
            if p.is_dir() {
                std::fs::remove_dir_all(&p).map_err(Error::io("remove temporary dir", &p))?;
            }
        }
    }
    Ok(())
}

fn load_blocks(dir: &Path) -> Result<Vec<Arc<Block>>> {
    let mut blocks = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(Error::io("read data dir", dir))?;
    for e in entries {
        let e = e.map_err(Error::io("read data dir", dir))?;
        let name = e.file_name().to_string_lossy().to_string();
        if !crate::block::is_block_dir(&name) || !e.path().is_dir() {
            continue;
        }
        if !e.path().join("meta.json").exists() {
            tracing::warn!(block = %name, "skipping block directory without meta.json");
            continue;
        }
        blocks.push(Arc::new(Block::open(e.path())?));
    }
    // Blocks that are parents of a loaded block were compacted already.
    let parents: std::collections::HashSet<ulid::Ulid> = blocks
        .iter()
        .flat_map(|b| {
            b.meta()
                .compaction
                .parents
                .iter()
                .map(|p| p.ulid)
                .collect::<Vec<_>>()
        })
        .collect();
    let (obsolete, mut live): (Vec<_>, Vec<_>) = blocks
        .into_iter()
        .partition(|b| parents.contains(&b.meta().ulid) || b.meta().compaction.deletable);
    for b in obsolete {
        tracing::info!(block = %b.meta().ulid, "deleting obsolete block");
        delete_block_dir(b.dir())?;
    }
    live.sort_by_key(|b| b.meta().min_time);
    Ok(live)
}

/// Bytes of all files below `dir` (0 for what cannot be read).
pub fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Deletes a block directory atomically: rename to `.tmp-for-deletion`, then
/// remove.
pub fn delete_block_dir(dir: &Path) -> Result<()> {
    let mut tmp = dir.as_os_str().to_owned();
    tmp.push(crate::block::TMP_FOR_DELETION_SUFFIX);
    let tmp = PathBuf::from(tmp);
    std::fs::rename(dir, &tmp).map_err(Error::io("rename block for deletion", dir))?;
    std::fs::remove_dir_all(&tmp).map_err(Error::io("delete block", &tmp))?;
    Ok(())
}

fn storage_error(e: Error) -> hearth_storage_api::Error {
    use hearth_storage_api::Error as S;
    match e {
        e if e.is_sample_rejection() => S::BadRequest(e.to_string()),
        Error::InvalidArgument(m) => S::BadRequest(m),
        e @ (Error::Corrupt(_) | Error::CorruptBlock { .. }) => S::Corrupt(e.to_string()),
        Error::Closed => S::Unavailable("database is closed".into()),
        e => S::Internal(e.to_string()),
    }
}

#[async_trait]
impl Queryable for Db {
    async fn select(
        &self,
        matchers: &[Matcher],
        hints: SelectHints,
    ) -> hearth_storage_api::Result<SeriesSet> {
        let series = self.select_sync(matchers, hints).map_err(storage_error)?;
        Ok(SeriesSet {
            series,
            warnings: Vec::new(),
        })
    }

    async fn label_names(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> hearth_storage_api::Result<LabelsResult> {
        let values = self
            .label_names_sync(matchers, mint, maxt)
            .map_err(storage_error)?;
        Ok(LabelsResult {
            values,
            warnings: Vec::new(),
        })
    }

    async fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> hearth_storage_api::Result<LabelsResult> {
        let values = self
            .label_values_sync(name, matchers, mint, maxt)
            .map_err(storage_error)?;
        Ok(LabelsResult {
            values,
            warnings: Vec::new(),
        })
    }
}

#[async_trait]
impl Appendable for Db {
    async fn append(&self, batch: Vec<SeriesSamples>) -> hearth_storage_api::Result<AppendStats> {
        self.append_batch(&batch).map_err(storage_error)
    }
}

#[cfg(test)]
mod tests {
    use hearth_model::Sample;

    use super::*;

    fn one(labels: &Labels, t: Timestamp, v: f64) -> Vec<SeriesSamples> {
        vec![SeriesSamples {
            labels: labels.clone(),
            samples: vec![Sample::new(t, v)],
        }]
    }

    #[test]
    fn kept_series_handles_keep_every_check_and_follow_truncation() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let a = Labels::new([("__name__", "a")]);
        {
            let db = Db::open(dir.path(), DbOptions::default()).expect("open");
            let mut handles = vec![None];
            let out = db
                .append_with_series(&one(&a, 1000, 1.0), &mut handles, AppendMode::KeepValid)
                .expect("append");
            assert_eq!(out.stats.series_created, 1);
            let first = handles[0].clone().expect("resolved series");
            assert_eq!(first.labels, a);

            // Out of order through the handle: refused, the handle stays.
            let out = db
                .append_with_series(&one(&a, 500, 2.0), &mut handles, AppendMode::KeepValid)
                .expect("append");
            assert!(matches!(out.rejected[0].error, Error::OutOfOrderSample));
            assert!(handles[0].as_ref().is_some_and(|m| Arc::ptr_eq(m, &first)));
            let out = db
                .append_with_series(&one(&a, 2000, 2.0), &mut handles, AppendMode::KeepValid)
                .expect("append");
            assert_eq!(
                (out.stats.samples_appended, out.stats.series_created),
                (1, 0)
            );

            // Truncation removes the series: the stale handle is not used.
            db.head().truncate(10_000);
            assert!(first.is_removed());
            let out = db
                .append_with_series(&one(&a, 20_000, 3.0), &mut handles, AppendMode::KeepValid)
                .expect("append");
            assert_eq!(out.stats.series_created, 1);
            let second = handles[0].clone().expect("resolved series");
            assert!(!second.is_removed());
            assert_ne!(second.id, first.id);
            db.close().expect("close");
        }
        // The new series' record reached the WAL before its sample.
        let db = Db::open(dir.path(), DbOptions::default()).expect("reopen");
        let series = db.head().get(&a).expect("replayed series");
        assert_eq!(series.last_timestamp(), Some(20_000));
    }
}
