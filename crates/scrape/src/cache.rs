//! A target's scrape cache, as Prometheus's `scrapeCache`: owned by the
//! target's loop and kept from scrape to scrape, it maps the series text of
//! a sample line (its name and label block, as exposed; in the protobuf
//! format, a key of the series' name and labels) to the series it
//! becomes after `honor_labels`, the target labels and
//! `metric_relabel_configs` (or to "dropped by relabeling"), so that a line
//! seen before costs one hash lookup and no label work. It also tracks, per
//! series, the scrape iteration that last saw it: the series of the previous
//! scrape that the current one did not see get stale markers, and a series
//! seen twice in one scrape is a duplicate, without any map rebuilt per
//! scrape.
//!
//! The text entries depend on the job's rules and the target's labels: a
//! loop that replaces another (a reload) calls [`ScrapeCache::invalidate`],
//! which forgets them but keeps the series, so that staleness carries on.
//! Entries not seen in the last [`MAX_IDLE_SCRAPES`] scrapes are evicted,
//! and series that no entry maps to once they have had their stale marker.

use std::collections::HashMap;
use std::sync::Arc;

use foldhash::fast::RandomState;
use hearth_exposition::{Format, MetricType};
use hearth_model::{Labels, Sample, Timestamp, STALE_NAN};
use hearth_storage_api::SeriesSamples;
use hearth_tsdb::head::MemSeries;

/// Scrapes after which an entry that was not seen again is evicted.
pub(crate) const MAX_IDLE_SCRAPES: u64 = 4;

/// Where a series text leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cached {
    /// Dropped by metric relabeling.
    Dropped,
    /// The series with this id.
    Series(SeriesId),
}

/// A series of the cache; valid until the series is evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SeriesId(u32);

#[derive(Debug)]
struct TextEntry {
    /// The family type the text was parsed under (`le` and `quantile` are
    /// normalised in histograms and summaries only).
    metric_type: MetricType,
    cached: Cached,
    /// The last iteration that saw the text.
    last_seen: u64,
    /// Its position in the last scrape's order of texts, if it was there.
    order_pos: Option<usize>,
}

/// A text of a scrape, in exposition order.
#[derive(Debug, Clone, Copy)]
struct OrderedText {
    /// Its bytes in the order's buffer.
    start: usize,
    end: usize,
    /// Its entry.
    entry: u32,
}

/// The texts of one scrape in exposition order, end to end in one buffer:
/// targets expose their series in the same order scrape after scrape, so
/// the next line is predicted by the previous scrape's order, which is
/// read sequentially and hashes nothing.
#[derive(Debug, Default)]
struct TextOrder {
    texts: Vec<OrderedText>,
    bytes: Vec<u8>,
}

impl TextOrder {
    fn clear(&mut self) {
        self.texts.clear();
        self.bytes.clear();
    }

    fn push(&mut self, text: &[u8], entry: u32) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(text);
        self.texts.push(OrderedText {
            start,
            end: self.bytes.len(),
            entry,
        });
    }

    /// The entry of the text at `pos` when it is `text`.
    #[inline]
    fn get(&self, pos: usize, text: &[u8]) -> Option<u32> {
        let o = self.texts.get(pos)?;
        (self.bytes[o.start..o.end] == *text).then_some(o.entry)
    }
}

#[derive(Debug)]
struct SeriesEntry {
    labels: Labels,
    /// The last iteration that saw the series (0: never).
    seen: u64,
    /// Whether the series takes part in staleness tracking, as of `seen`.
    tracked: bool,
    /// `seen` and `tracked` before the current scrape changed them, to undo a
    /// failed scrape.
    prev_seen: u64,
    prev_tracked: bool,
    /// Index of the series in the current scrape's batch, when `seen` is the
    /// current iteration.
    batch: usize,
    /// Text entries that lead here.
    refs: u32,
    /// The head series the labels were last appended to.
    head: Option<Arc<MemSeries>>,
    /// False once evicted (the slot is free for reuse).
    live: bool,
}

/// What a sample line of the current scrape found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// First time in this scrape; whether the previous scrape had it.
    First { in_previous: bool },
    /// Already seen in this scrape, at this batch index.
    Again { batch: usize },
}

/// One target's cache; see the module documentation.
#[derive(Debug, Default)]
pub(crate) struct ScrapeCache {
    /// Series text → its entry in `entries`.
    texts: HashMap<Box<[u8]>, u32, RandomState>,
    entries: Vec<TextEntry>,
    free_entries: Vec<u32>,
    /// The last scrape's texts, and the current one's so far.
    order: TextOrder,
    next_order: TextOrder,
    /// Where in `order` the next line is expected.
    cursor: usize,
    /// The format `order` was parsed in.
    format: Option<Format>,
    series: Vec<SeriesEntry>,
    free: Vec<u32>,
    by_labels: HashMap<Labels, u32, RandomState>,
    /// The last appended batch, for the next scrape to reuse.
    spare_batch: Vec<SeriesSamples>,
    /// The current (or last) scrape's iteration, from 1.
    iteration: u64,
    /// The iteration whose series are the previous scrape's: `None` when
    /// there are none to go stale (no scrape yet, or the last one failed).
    previous: Option<u64>,
}

impl ScrapeCache {
    /// Forgets what series texts become (the rules or the target changed),
    /// keeping the series and their staleness state.
    pub(crate) fn invalidate(&mut self) {
        self.texts.clear();
        self.entries.clear();
        self.free_entries.clear();
        self.order.clear();
        self.next_order.clear();
        for s in &mut self.series {
            s.refs = 0;
        }
    }

    /// Starts a scrape.
    pub(crate) fn begin(&mut self) {
        self.iteration += 1;
        self.cursor = 0;
        self.next_order.clear();
    }

    /// Declares the format of the body being parsed: the previous order
    /// predicts its lines only when that was parsed in the same format.
    pub(crate) fn set_format(&mut self, format: Format) {
        if self.format == Some(format) {
            return;
        }
        for e in &self.order.texts {
            self.entries[e.entry as usize].order_pos = None;
        }
        self.order.clear();
        self.format = Some(format);
    }

    /// The series text expected next: the one at the same place in the
    /// previous scrape's order (empty: none). It was returned by a parser of
    /// the format given to [`ScrapeCache::set_format`].
    #[inline]
    pub(crate) fn predicted(&self) -> &[u8] {
        self.order
            .texts
            .get(self.cursor)
            .map_or(&[], |o| &self.order.bytes[o.start..o.end])
    }

    /// What `text` (parsed in a family of type `metric_type`) became when it
    /// was last seen; marks it seen. The lines of a scrape are looked up in
    /// exposition order.
    #[inline]
    pub(crate) fn lookup(&mut self, text: &[u8], metric_type: MetricType) -> Option<Cached> {
        let index = match self.order.get(self.cursor, text) {
            Some(index) => index,
            None => *self.texts.get(text)?,
        };
        let entry = &mut self.entries[index as usize];
        if entry.metric_type != metric_type {
            return None;
        }
        entry.last_seen = self.iteration;
        // Follows the previous order from this text on, wherever it was.
        self.cursor = entry.order_pos.map_or(self.cursor, |pos| pos + 1);
        let cached = entry.cached;
        self.next_order.push(text, index);
        Some(cached)
    }

    /// Remembers that `text` becomes `labels` (`None`: dropped), returning
    /// where it leads.
    pub(crate) fn insert(
        &mut self,
        text: &[u8],
        metric_type: MetricType,
        labels: Option<Labels>,
    ) -> Cached {
        let cached = match labels {
            None => Cached::Dropped,
            Some(labels) => {
                let id = self.series_for(labels);
                self.series[id as usize].refs += 1;
                Cached::Series(SeriesId(id))
            }
        };
        let entry = TextEntry {
            metric_type,
            cached,
            last_seen: self.iteration,
            order_pos: None,
        };
        let index = match self.texts.get(text) {
            Some(&index) => {
                let old = std::mem::replace(&mut self.entries[index as usize], entry);
                self.release(old.cached);
                index
            }
            None => {
                let index = match self.free_entries.pop() {
                    Some(index) => {
                        self.entries[index as usize] = entry;
                        index
                    }
                    None => {
                        let index =
                            u32::try_from(self.entries.len()).expect("fewer than 2^32 texts");
                        self.entries.push(entry);
                        index
                    }
                };
                self.texts.insert(text.into(), index);
                index
            }
        };
        self.next_order.push(text, index);
        cached
    }

    /// The series with these labels, added when new.
    fn series_for(&mut self, labels: Labels) -> u32 {
        if let Some(&id) = self.by_labels.get(&labels) {
            return id;
        }
        let entry = SeriesEntry {
            labels: labels.clone(),
            seen: 0,
            tracked: false,
            prev_seen: 0,
            prev_tracked: false,
            batch: 0,
            refs: 0,
            head: None,
            live: true,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.series[id as usize] = entry;
                id
            }
            None => {
                let id = u32::try_from(self.series.len()).expect("fewer than 2^32 series");
                self.series.push(entry);
                id
            }
        };
        self.by_labels.insert(labels, id);
        id
    }

    fn release(&mut self, cached: Cached) {
        if let Cached::Series(SeriesId(id)) = cached {
            let s = &mut self.series[id as usize];
            s.refs = s.refs.saturating_sub(1);
        }
    }

    pub(crate) fn labels(&self, id: SeriesId) -> &Labels {
        &self.series[id.0 as usize].labels
    }

    /// Marks series `id` seen by the current scrape, at batch index `batch`
    /// when it is its first time in this scrape.
    #[inline]
    pub(crate) fn see(&mut self, id: SeriesId, batch: usize, tracked: bool) -> Seen {
        let iteration = self.iteration;
        let previous = self.previous;
        let s = &mut self.series[id.0 as usize];
        if s.seen == iteration {
            return Seen::Again { batch: s.batch };
        }
        let in_previous = previous == Some(s.seen);
        s.prev_seen = s.seen;
        s.prev_tracked = s.tracked;
        s.seen = iteration;
        s.tracked = tracked;
        s.batch = batch;
        Seen::First { in_previous }
    }

    /// A batch to fill, with the entries of the last one to reuse.
    pub(crate) fn take_batch(&mut self) -> Vec<SeriesSamples> {
        std::mem::take(&mut self.spare_batch)
    }

    /// Keeps an appended batch for the next scrape to reuse.
    pub(crate) fn recycle_batch(&mut self, batch: Vec<SeriesSamples>) {
        self.spare_batch = batch;
    }

    /// The head series handles of `ids`, taken out of the cache for an
    /// append ([`hearth_tsdb::db::Db::append_with_series`]).
    pub(crate) fn take_heads(&mut self, ids: &[SeriesId]) -> Vec<Option<Arc<MemSeries>>> {
        ids.iter()
            .map(|id| self.series[id.0 as usize].head.take())
            .collect()
    }

    /// Puts back the handles of `ids` after the append.
    pub(crate) fn put_heads(&mut self, ids: &[SeriesId], heads: Vec<Option<Arc<MemSeries>>>) {
        for (id, head) in ids.iter().zip(heads) {
            self.series[id.0 as usize].head = head;
        }
    }

    /// Stale markers at `t` for the tracked series of the previous scrape
    /// that the current one did not see.
    pub(crate) fn stale_unseen(&self, t: Timestamp) -> Vec<SeriesSamples> {
        let Some(previous) = self.previous else {
            return Vec::new();
        };
        self.series
            .iter()
            .filter(|s| s.live && s.tracked && s.seen == previous)
            .map(|s| stale_marker(&s.labels, t))
            .collect()
    }

    /// Ends a scrape whose series were appended: they are the previous
    /// scrape's from now on. Evicts what has not been seen for a while.
    pub(crate) fn commit(&mut self) {
        self.previous = Some(self.iteration);
        for e in &self.order.texts {
            self.entries[e.entry as usize].order_pos = None;
        }
        std::mem::swap(&mut self.order, &mut self.next_order);
        self.next_order.clear();
        for (pos, e) in self.order.texts.iter().enumerate() {
            self.entries[e.entry as usize].order_pos = Some(pos);
        }
        if self.iteration.is_multiple_of(MAX_IDLE_SCRAPES) {
            self.evict();
        }
    }

    /// Ends a scrape that failed (or whose append failed): its marks are
    /// undone, and the previous scrape's series stay until
    /// [`ScrapeCache::stale_all`] or [`ScrapeCache::forget_previous`].
    pub(crate) fn abort(&mut self) {
        let iteration = self.iteration;
        for s in &mut self.series {
            if s.seen == iteration {
                s.seen = s.prev_seen;
                s.tracked = s.prev_tracked;
            }
        }
    }

    /// Stale markers at `t` for every tracked series of the previous scrape,
    /// after which there is no previous scrape.
    pub(crate) fn stale_all(&mut self, t: Timestamp) -> Vec<SeriesSamples> {
        let Some(previous) = self.previous.take() else {
            return Vec::new();
        };
        self.series
            .iter()
            .filter(|s| s.live && s.tracked && s.seen == previous)
            .map(|s| stale_marker(&s.labels, t))
            .collect()
    }

    /// No previous scrape from now on, without stale markers.
    pub(crate) fn forget_previous(&mut self) {
        self.previous = None;
    }

    /// Drops text entries idle for [`MAX_IDLE_SCRAPES`] scrapes or more,
    /// then series that no entry leads to and that are not the previous
    /// scrape's.
    fn evict(&mut self) {
        let oldest = self.iteration.saturating_sub(MAX_IDLE_SCRAPES);
        let mut released = Vec::new();
        let entries = &mut self.entries;
        let free_entries = &mut self.free_entries;
        self.texts.retain(|_, &mut index| {
            let e = &entries[index as usize];
            let keep = e.last_seen > oldest;
            if !keep {
                released.push(e.cached);
                free_entries.push(index);
            }
            keep
        });
        for cached in released {
            self.release(cached);
        }
        for (id, s) in self.series.iter_mut().enumerate() {
            if s.live && s.refs == 0 && self.previous != Some(s.seen) {
                s.live = false;
                self.by_labels.remove(&s.labels);
                s.labels = Labels::empty();
                s.head = None;
                self.free.push(id as u32);
            }
        }
    }

    /// Number of text entries and live series, for tests.
    #[cfg(test)]
    pub(crate) fn len(&self) -> (usize, usize) {
        (self.texts.len(), self.by_labels.len())
    }
}

fn stale_marker(labels: &Labels, t: Timestamp) -> SeriesSamples {
    SeriesSamples {
        labels: labels.clone(),
        samples: vec![Sample::new(t, STALE_NAN)],
    }
}

#[cfg(test)]
mod tests {
    use hearth_config::RelabelConfig;
    use hearth_exposition::Format;

    use super::*;
    use crate::process::{process, Processed, SampleRules};

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::new(pairs.iter().copied())
    }

    fn scrape(cache: &mut ScrapeCache, body: &str, rules: &SampleRules, t: Timestamp) -> Processed {
        cache.begin();
        let target = labels(&[("job", "j")]);
        process(body.as_bytes(), Format::Text004, &target, rules, t, cache).expect("valid body")
    }

    fn names(batch: &[SeriesSamples]) -> Vec<String> {
        batch.iter().map(|s| s.labels.to_string()).collect()
    }

    #[test]
    fn unchanged_lines_hit_and_vanished_series_go_stale() {
        let mut cache = ScrapeCache::default();
        let rules = SampleRules::default();
        let out = scrape(&mut cache, "a 1\nb{x=\"1\"} 2\n", &rules, 1000);
        assert_eq!(out.in_previous, [false, false]);
        assert!(cache.stale_unseen(1000).is_empty());
        cache.commit();
        assert_eq!(cache.len(), (2, 2));

        let out = scrape(&mut cache, "b{x=\"1\"} 3\nc 4\n", &rules, 2000);
        assert_eq!(
            names(&out.batch),
            [
                r#"{__name__="b", job="j", x="1"}"#,
                r#"{__name__="c", job="j"}"#
            ]
        );
        assert_eq!(out.in_previous, [true, false]);
        let stale = cache.stale_unseen(2000);
        assert_eq!(names(&stale), [r#"{__name__="a", job="j"}"#]);
        assert!(hearth_model::is_stale_nan(stale[0].samples[0].v));
        cache.commit();

        // A failed scrape: every series of the previous one goes stale, once.
        cache.begin();
        cache.abort();
        assert_eq!(cache.stale_all(3000).len(), 2);
        assert!(cache.stale_all(3000).is_empty());
        let out = scrape(&mut cache, "b{x=\"1\"} 3\n", &rules, 4000);
        assert_eq!(out.in_previous, [false]);
    }

    #[test]
    fn a_series_evicted_then_exposed_again_is_new() {
        let mut cache = ScrapeCache::default();
        let rules = SampleRules::default();
        scrape(&mut cache, "a 1\nb 1\n", &rules, 0);
        cache.commit();
        // Evicted after MAX_IDLE_SCRAPES idle scrapes, and before twice that.
        for i in 1..2 * MAX_IDLE_SCRAPES {
            let out = scrape(&mut cache, "b 1\n", &rules, i as i64);
            assert_eq!(out.in_previous, [true]);
            assert_eq!(cache.stale_unseen(0).len(), usize::from(i == 1));
            cache.commit();
        }
        assert_eq!(cache.len(), (1, 1));
        let out = scrape(&mut cache, "b 1\na 2\n", &rules, 10);
        assert_eq!(out.in_previous, [true, false]);
        assert_eq!(names(&out.batch)[1], r#"{__name__="a", job="j"}"#);
        assert_eq!(out.batch[1].samples, [Sample::new(10, 2.0)]);
        cache.commit();
        assert_eq!(cache.len(), (2, 2));
    }

    #[test]
    fn duplicates_are_counted_on_every_scrape() {
        let mut cache = ScrapeCache::default();
        let rules = SampleRules::default();
        // Two texts for one series, and one text twice.
        let body = "a{x=\"\"} 1\na 2\nb 1\nb 2\n";
        for t in [1000, 2000] {
            let out = scrape(&mut cache, body, &rules, t);
            assert_eq!(out.duplicates, 2);
            assert_eq!(out.batch.len(), 2);
            assert_eq!(out.batch[0].samples, [Sample::new(t, 1.0)]);
            cache.commit();
        }
        assert_eq!(cache.len(), (3, 2));
    }

    #[test]
    fn new_rules_invalidate_the_texts_but_keep_staleness() {
        let mut cache = ScrapeCache::default();
        let keep_all = SampleRules::default();
        scrape(&mut cache, "a{x=\"1\"} 1\nb 1\n", &keep_all, 1000);
        cache.commit();
        let config = hearth_config::Config::parse(
            "scrape_configs:\n- job_name: j\n  metric_relabel_configs:\n  - regex: x\n    \
             action: labeldrop\n  - source_labels: [__name__]\n    regex: b\n    action: drop\n",
        )
        .expect("valid configuration");
        let drop_x: Vec<RelabelConfig> = config.scrape_configs[0].metric_relabel_configs.clone();
        let rules = SampleRules {
            metric_relabel_configs: drop_x,
            ..SampleRules::default()
        };
        cache.invalidate();
        let out = scrape(&mut cache, "a{x=\"1\"} 2\nb 2\n", &rules, 2000);
        assert_eq!(names(&out.batch), [r#"{__name__="a", job="j"}"#]);
        assert_eq!(out.total, 2);
        assert_eq!(out.post_relabel, 1);
        assert_eq!(out.in_previous, [false]);
        let stale = cache.stale_unseen(2000);
        assert_eq!(
            names(&stale),
            [
                r#"{__name__="a", job="j", x="1"}"#,
                r#"{__name__="b", job="j"}"#
            ]
        );
        cache.commit();
        // The old series go at the next eviction, the new texts stay.
        for t in 3..=2 + MAX_IDLE_SCRAPES as i64 {
            let out = scrape(&mut cache, "a{x=\"1\"} 2\nb 2\n", &rules, t * 1000);
            assert_eq!(out.in_previous, [true]);
            cache.commit();
        }
        assert_eq!(cache.len(), (2, 1));
    }
}
