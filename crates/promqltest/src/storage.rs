//! The storage evals read: the loaded float samples in a TSDB head
//! ([`hearth_tsdb::head::Head`]) behind [`Queryable`], and the start
//! timestamps of `@st` lines beside it.
//!
//! The storage API carries XOR (float) chunks only, so native histograms
//! (`{{…}}`, and the NHCBs `load_with_nhcb` would build) are parsed but not
//! stored; evals after such loads are flagged as native-histogram evals by
//! the runner.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use hearth_model::{Labels, Matcher, Timestamp};
use hearth_storage_api::{LabelsResult, Queryable, SelectHints, SeriesSet};
use hearth_tsdb::head::Head;
use hearth_tsdb::postings::PostingsSource;

use crate::series::{SeriesLine, Slot};

/// In-memory storage for one script; clones share the data.
#[derive(Clone)]
pub struct ScriptStorage {
    head: Arc<Head>,
    /// Per series, start time by sample time (non-zero ones only: zero
    /// means none).
    start_times: Arc<Mutex<HashMap<Labels, BTreeMap<Timestamp, Timestamp>>>>,
}

impl Default for ScriptStorage {
    fn default() -> Self {
        Self::new()
    }
}

impl ScriptStorage {
    pub fn new() -> Self {
        // One chunk range spanning every scripted time.
        Self {
            head: Arc::new(Head::new(i64::MAX / 4)),
            start_times: Default::default(),
        }
    }

    /// Drops everything (`clear`).
    pub fn clear(&mut self) {
        *self = Self::new();
    }

    /// Appends a `load` block's float samples, slot i at `i * step_ms`, and
    /// their start times (`start_timestamps`: per series, an offset from
    /// each slot's time). Checks the whole block first, so a conflicting
    /// block stores nothing.
    pub fn load(
        &self,
        step_ms: i64,
        series: &[SeriesLine],
        start_timestamps: &[(Labels, Vec<Option<i64>>)],
    ) -> Result<(), String> {
        let mut batch: Vec<(&Labels, Vec<(Timestamp, f64)>)> = Vec::new();
        for s in series {
            let mut samples = Vec::new();
            for (i, slot) in s.slots.iter().enumerate() {
                if let Slot::Float(v) = slot {
                    let t = (i as i64)
                        .checked_mul(step_ms)
                        .ok_or_else(|| format!("{}: timestamp out of range", s.labels))?;
                    samples.push((t, *v));
                }
            }
            if samples.is_empty() {
                continue;
            }
            if let Some(existing) = self.head.get(&s.labels) {
                if let Some(last) = existing.last_timestamp() {
                    if samples[0].0 <= last {
                        let stored = self.floats(&s.labels, samples[0].0, last)?;
                        for (t, v) in &samples {
                            if let Some(old) = stored.get(t) {
                                if old.to_bits() != v.to_bits() {
                                    return Err(format!(
                                        "{}: duplicate sample at {t} with another value",
                                        s.labels
                                    ));
                                }
                            } else if *t <= last {
                                return Err(format!("{}: out-of-order sample at {t}", s.labels));
                            }
                        }
                    }
                }
            }
            batch.push((&s.labels, samples));
        }
        for (labels, samples) in batch {
            let (series, _) = self.head.get_or_create(labels);
            for (t, v) in samples {
                self.head
                    .append(&series, t, v)
                    .map_err(|e| format!("{labels}: append at {t}: {e}"))?;
            }
        }
        let mut start_times = self.start_times.lock().expect("not poisoned");
        for (labels, offsets) in start_timestamps {
            let per_series = start_times.entry(labels.clone()).or_default();
            for (i, off) in offsets.iter().enumerate() {
                let Some(off) = off else { continue };
                let t = (i as i64).saturating_mul(step_ms);
                let st = t.saturating_add(*off);
                if st != 0 {
                    per_series.insert(t, st);
                }
            }
        }
        Ok(())
    }

    fn floats(
        &self,
        labels: &Labels,
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<BTreeMap<Timestamp, f64>, String> {
        let matchers: Vec<Matcher> = labels
            .iter()
            .map(|l| Matcher::equal(l.name, l.value))
            .collect();
        let mut out = BTreeMap::new();
        for s in self
            .head
            .select(&matchers, mint, maxt, false)
            .map_err(|e| e.to_string())?
        {
            if &s.labels != labels {
                continue;
            }
            for sample in s.samples(mint, maxt).map_err(|e| e.to_string())? {
                out.insert(sample.t, sample.v);
            }
        }
        Ok(out)
    }
}

fn storage_error(e: impl std::fmt::Display) -> hearth_storage_api::Error {
    hearth_storage_api::Error::Internal(e.to_string())
}

#[async_trait]
impl Queryable for ScriptStorage {
    async fn select(
        &self,
        matchers: &[Matcher],
        hints: SelectHints,
    ) -> hearth_storage_api::Result<SeriesSet> {
        let mut series = self
            .head
            .select(matchers, hints.mint, hints.maxt, hints.skip_chunks)
            .map_err(storage_error)?;
        if hints.limit > 0 {
            series.truncate(hints.limit);
        }
        let start_times = self.start_times.lock().expect("not poisoned");
        for s in &mut series {
            if let Some(sts) = start_times.get(&s.labels) {
                s.start_times = sts
                    .range(hints.mint..=hints.maxt)
                    .map(|(t, st)| (*t, *st))
                    .collect();
            }
        }
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
        let values = if matchers.is_empty() {
            self.head.label_names()
        } else {
            let mut names: Vec<String> = Vec::new();
            for s in self
                .head
                .select(matchers, mint, maxt, true)
                .map_err(storage_error)?
            {
                names.extend(s.labels.iter().map(|l| l.name.to_string()));
            }
            names.sort();
            names.dedup();
            names
        };
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
        let values = if matchers.is_empty() {
            PostingsSource::label_values(self.head.as_ref(), name).map_err(storage_error)?
        } else {
            let mut values: Vec<String> = Vec::new();
            for s in self
                .head
                .select(matchers, mint, maxt, true)
                .map_err(storage_error)?
            {
                if let Some(v) = s.labels.get(name) {
                    values.push(v.to_string());
                }
            }
            values.sort();
            values.dedup();
            values
        };
        Ok(LabelsResult {
            values,
            warnings: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::parse_series_line;

    fn block(lines: &[&str]) -> Vec<SeriesLine> {
        lines
            .iter()
            .map(|l| parse_series_line(l).expect("parses"))
            .collect()
    }

    #[tokio::test]
    async fn loads_and_selects() {
        let st = ScriptStorage::new();
        let a1 = Labels::new([("__name__", "a"), ("x", "1")]);
        st.load(
            60_000,
            &block(&["a{x=\"1\"} 1 _ 3 stale", "a{x=\"2\"} 5"]),
            &[(a1, vec![None, None, Some(-30_000), Some(-180_000)])],
        )
        .expect("loads");
        let set = st
            .select(
                &[Matcher::equal("__name__", "a")],
                SelectHints::new(0, 1_000_000),
            )
            .await
            .expect("selects");
        assert_eq!(set.series.len(), 2);
        let samples = set.series[0].samples(0, 1_000_000).expect("decodes");
        let ts: Vec<i64> = samples.iter().map(|s| s.t).collect();
        assert_eq!(ts, vec![0, 120_000, 180_000]);
        assert!(hearth_model::is_stale_nan(samples[2].v));
        // Start times: slot 2 at 120 s - 30 s; slot 3's is 0, meaning none.
        assert_eq!(set.series[0].start_times, vec![(120_000, 90_000)]);
        assert!(set.series[1].start_times.is_empty());
        // A second block may fill later slots, not rewrite earlier ones.
        st.load(60_000, &block(&["a{x=\"2\"} _ 6"]), &[])
            .expect("later slots load");
        assert!(st.load(60_000, &block(&["a{x=\"2\"} 7"]), &[]).is_err());
        let names = st.label_names(&[], 0, 1).await.expect("names");
        assert_eq!(names.values, vec!["__name__", "x"]);
        let vals = st.label_values("x", &[], 0, 1).await.expect("values");
        assert_eq!(vals.values, vec!["1", "2"]);
    }
}
