//! In-process stores for the tests: a [`Queryable`] (a TSDB in a temporary
//! directory or a list of series) behind external labels, answering `Info`
//! like a sidecar, counting its calls and failing or stalling on demand.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hearth_model::chunkenc::{Encoding, XorChunk, XorIterator};
use hearth_model::{Labels, Matcher, Sample, Timestamp};
use hearth_query::{EndpointConfig, EndpointSet, StoreFactory};
use hearth_storage_api::{
    Error, LabelsResult, Queryable, Result, SelectHints, Series, SeriesChunk, SeriesSamples,
    SeriesSet,
};
use hearth_storeapi::{Store, StoreInfo};
use hearth_tsdb::db::{Db, DbOptions};
use parking_lot::Mutex;

/// Series held in memory, answering like a TSDB: matchers on stored labels,
/// chunks meeting the range.
pub struct MemQueryable(pub Vec<Series>);

fn matches(labels: &Labels, matchers: &[Matcher]) -> bool {
    matchers
        .iter()
        .all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
}

#[async_trait]
impl Queryable for MemQueryable {
    async fn select(&self, matchers: &[Matcher], hints: SelectHints) -> Result<SeriesSet> {
        let mut series: Vec<Series> = self
            .0
            .iter()
            .filter(|s| matches(&s.labels, matchers))
            .map(|s| {
                let mut s = s.clone();
                s.chunks
                    .retain(|c| !hints.skip_chunks && c.maxt >= hints.mint && c.mint <= hints.maxt);
                s
            })
            .filter(|s| hints.skip_chunks || !s.chunks.is_empty())
            .collect();
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(SeriesSet {
            series,
            warnings: Vec::new(),
        })
    }

    async fn label_names(
        &self,
        matchers: &[Matcher],
        _: Timestamp,
        _: Timestamp,
    ) -> Result<LabelsResult> {
        let names: BTreeSet<String> = self
            .0
            .iter()
            .filter(|s| matches(&s.labels, matchers))
            .flat_map(|s| {
                s.labels
                    .iter()
                    .map(|l| l.name.to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        Ok(LabelsResult {
            values: names.into_iter().collect(),
            warnings: Vec::new(),
        })
    }

    async fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        _: Timestamp,
        _: Timestamp,
    ) -> Result<LabelsResult> {
        let values: BTreeSet<String> = self
            .0
            .iter()
            .filter(|s| matches(&s.labels, matchers))
            .filter_map(|s| s.labels.get(name).map(str::to_string))
            .collect();
        Ok(LabelsResult {
            values: values.into_iter().collect(),
            warnings: Vec::new(),
        })
    }
}

/// A store: external labels over a [`Queryable`] (specs/storeapi.md §3.2),
/// with call counters and switches for failures.
pub struct TestStore {
    inner: Arc<dyn Queryable>,
    external: Labels,
    pub min_time: Mutex<Timestamp>,
    pub max_time: Mutex<Timestamp>,
    pub component: String,
    /// select, label_names and label_values calls.
    pub calls: AtomicUsize,
    pub info_calls: AtomicUsize,
    pub fail: AtomicBool,
    pub fail_info: AtomicBool,
    pub delay: Mutex<Option<Duration>>,
    pub info_delay: Mutex<Option<Duration>>,
    _dir: Option<tempfile::TempDir>,
}

impl TestStore {
    pub fn new(inner: Arc<dyn Queryable>, external: &[(&str, &str)]) -> Self {
        TestStore {
            inner,
            external: Labels::new(external.iter().copied()),
            min_time: Mutex::new(i64::MIN),
            max_time: Mutex::new(i64::MAX),
            component: "sidecar".into(),
            calls: AtomicUsize::new(0),
            info_calls: AtomicUsize::new(0),
            fail: AtomicBool::new(false),
            fail_info: AtomicBool::new(false),
            delay: Mutex::new(None),
            info_delay: Mutex::new(None),
            _dir: None,
        }
    }

    /// A store over series in memory.
    pub fn memory(series: Vec<Series>, external: &[(&str, &str)]) -> Arc<Self> {
        Arc::new(Self::new(Arc::new(MemQueryable(series)), external))
    }

    /// A store over a TSDB in a temporary directory holding `data`.
    pub fn tsdb(data: Vec<SeriesSamples>, external: &[(&str, &str)]) -> Arc<Self> {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), DbOptions::default()).unwrap();
        db.append_batch(&data).unwrap();
        let mut store = Self::new(Arc::new(db), external);
        store._dir = Some(dir);
        Arc::new(store)
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn set_range(&self, min: Timestamp, max: Timestamp) {
        *self.min_time.lock() = min;
        *self.max_time.lock() = max;
    }

    /// Counts the call, waits, fails if asked to.
    async fn enter(&self) -> Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let delay = *self.delay.lock();
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        if self.fail.load(Ordering::SeqCst) {
            return Err(Error::Unavailable("connection refused".into()));
        }
        Ok(())
    }

    /// The matchers left after the external labels took theirs, or `None`
    /// when an external label contradicts them.
    fn inner_matchers(&self, matchers: &[Matcher]) -> Option<Vec<Matcher>> {
        let mut rest = Vec::new();
        for m in matchers {
            match self.external.get(&m.name) {
                Some(v) if !m.matches(v) => return None,
                Some(_) => {}
                None => rest.push(m.clone()),
            }
        }
        Some(rest)
    }

    fn with_external(&self, labels: &Labels) -> Labels {
        let mut b = labels.builder();
        for l in self.external.iter() {
            b.set(l.name, l.value);
        }
        b.build()
    }
}

#[async_trait]
impl Queryable for TestStore {
    async fn select(&self, matchers: &[Matcher], hints: SelectHints) -> Result<SeriesSet> {
        self.enter().await?;
        let Some(rest) = self.inner_matchers(matchers) else {
            return Ok(SeriesSet::default());
        };
        let mut set = self.inner.select(&rest, hints).await?;
        for s in &mut set.series {
            s.labels = self.with_external(&s.labels);
        }
        set.series.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(set)
    }

    async fn label_names(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<LabelsResult> {
        self.enter().await?;
        let Some(rest) = self.inner_matchers(matchers) else {
            return Ok(LabelsResult::default());
        };
        let mut r = self.inner.label_names(&rest, mint, maxt).await?;
        if !r.values.is_empty() {
            r.values
                .extend(self.external.iter().map(|l| l.name.to_string()));
            r.values.sort();
            r.values.dedup();
        }
        Ok(r)
    }

    async fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<LabelsResult> {
        self.enter().await?;
        let Some(rest) = self.inner_matchers(matchers) else {
            return Ok(LabelsResult::default());
        };
        if let Some(v) = self.external.get(name) {
            return Ok(LabelsResult {
                values: vec![v.to_string()],
                warnings: Vec::new(),
            });
        }
        self.inner.label_values(name, &rest, mint, maxt).await
    }
}

#[async_trait]
impl Store for TestStore {
    async fn info(&self) -> Result<StoreInfo> {
        self.info_calls.fetch_add(1, Ordering::SeqCst);
        let delay = *self.info_delay.lock();
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        if self.fail_info.load(Ordering::SeqCst) {
            return Err(Error::Unavailable("connection refused".into()));
        }
        Ok(StoreInfo {
            component: self.component.clone(),
            label_sets: if self.external.is_empty() {
                Vec::new()
            } else {
                vec![self.external.clone()]
            },
            min_time: *self.min_time.lock(),
            max_time: *self.max_time.lock(),
            supports_without_replica_labels: false,
        })
    }
}

/// A factory handing out the given stores by address; any other address
/// gets a store whose `Info` fails (nothing listens there).
pub fn factory(stores: &[(&str, Arc<TestStore>)]) -> StoreFactory {
    let stores: HashMap<String, Arc<TestStore>> = stores
        .iter()
        .map(|(name, s)| (name.to_string(), Arc::clone(s)))
        .collect();
    Arc::new(move |address: &str| -> Arc<dyn Store> {
        match stores.get(address) {
            Some(s) => Arc::clone(s) as Arc<dyn Store>,
            None => {
                let s = TestStore::memory(Vec::new(), &[]);
                s.fail.store(true, Ordering::SeqCst);
                s.fail_info.store(true, Ordering::SeqCst);
                s
            }
        }
    })
}

/// An endpoint set over static addresses, refreshed once.
pub async fn endpoint_set(stores: &[(&str, Arc<TestStore>)]) -> Arc<EndpointSet> {
    let config = EndpointConfig {
        addresses: stores.iter().map(|(name, _)| name.to_string()).collect(),
        ..EndpointConfig::default()
    };
    let set = Arc::new(EndpointSet::new(config, factory(stores)));
    set.refresh().await;
    set
}

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(pairs.iter().copied())
}

pub fn matcher(name: &str, value: &str) -> Matcher {
    Matcher::equal(name, value)
}

/// Samples every `step` ms from `from` (inclusive) to `to` (exclusive),
/// valued by their time in seconds.
pub fn scrapes(from: i64, to: i64, step: i64) -> Vec<Sample> {
    (from..to)
        .step_by(step as usize)
        .map(|t| Sample::new(t, t as f64 / 1000.0))
        .collect()
}

/// XOR chunks of at most 120 samples.
pub fn chunks(samples: &[Sample]) -> Vec<SeriesChunk> {
    samples
        .chunks(120)
        .map(|part| {
            let mut c = XorChunk::new();
            for s in part {
                c.append(s.t, s.v).unwrap();
            }
            SeriesChunk {
                mint: part[0].t,
                maxt: part[part.len() - 1].t,
                encoding: Encoding::Xor,
                data: Arc::from(c.into_bytes()),
            }
        })
        .collect()
}

/// A series' samples in order, overlapping chunks merged as the engine
/// reads them.
pub fn decode(series: &Series) -> Vec<Sample> {
    series.samples(i64::MIN, i64::MAX).unwrap()
}

/// Every sample of every chunk, in chunk order, overlaps included.
pub fn raw_samples(series: &Series) -> Vec<Sample> {
    series
        .chunks
        .iter()
        .flat_map(|c| XorIterator::new(&c.data).map(|s| s.unwrap()))
        .collect()
}
