//! From a scrape body to the samples to append, as Prometheus's
//! `scrapeLoop.append`: parse, merge the target labels (`honor_labels`,
//! `exported_` renaming), `metric_relabel_configs`, label limits, explicit
//! timestamps (`honor_timestamps`), duplicates within the scrape and
//! `sample_limit`; and the metric metadata of `# HELP`/`# TYPE`/`# UNIT`.

use std::collections::BTreeMap;

use hearth_config::RelabelConfig;
use hearth_exposition::{Entry, Format, Parser, RawEntry};
use hearth_model::{Labels, LabelsBuilder, Sample, Timestamp};
use hearth_storage_api::SeriesSamples;

use crate::cache::{Cached, ScrapeCache, Seen, SeriesId};
use crate::error::Error;

/// The per-scrape settings of a job.
#[derive(Debug, Clone, Default)]
pub(crate) struct SampleRules {
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    pub track_timestamps_staleness: bool,
    pub metric_relabel_configs: Vec<RelabelConfig>,
    pub sample_limit: u64,
    pub label_limit: u64,
    pub label_name_length_limit: u64,
    pub label_value_length_limit: u64,
}

/// Metadata of one metric family, from its `# TYPE`, `# HELP` and `# UNIT`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetricMetadata {
    pub metric: String,
    /// `counter`, `gauge`, ..., `unknown`.
    pub metric_type: String,
    pub help: String,
    pub unit: String,
}

/// A scrape body turned into samples.
#[derive(Debug, Default)]
pub(crate) struct Processed {
    /// One entry per series, in exposition order, with the series' samples.
    pub batch: Vec<SeriesSamples>,
    /// Per batch entry: whether the series takes part in staleness tracking
    /// (no explicit timestamp, or `track_timestamps_staleness`).
    pub tracked: Vec<bool>,
    /// Per batch entry: whether the previous scrape had the series.
    pub in_previous: Vec<bool>,
    /// Per batch entry: the series in the scrape cache.
    pub ids: Vec<SeriesId>,
    /// Every sample line (`scrape_samples_scraped`).
    pub total: usize,
    /// Samples left after metric relabeling (`..._post_metric_relabeling`).
    pub post_relabel: usize,
    /// Samples of a series already seen in this scrape at the same time.
    pub duplicates: usize,
    pub metadata: BTreeMap<String, MetricMetadata>,
}

/// A scrape body that failed, with the counts reached.
#[derive(Debug)]
pub(crate) struct Failed {
    pub error: Error,
    pub total: usize,
    pub post_relabel: usize,
}

/// Parses `body` in `format` and applies the job's rules for a target with
/// public labels `target`, scraped at `scrape_time`, as the scrape `cache`
/// has begun ([`ScrapeCache::begin`]): series texts seen before take their
/// labels from the cache, the others are added to it.
pub(crate) fn process(
    body: &[u8],
    format: Format,
    target: &Labels,
    rules: &SampleRules,
    scrape_time: Timestamp,
    cache: &mut ScrapeCache,
) -> Result<Processed, Failed> {
    let mut out = Processed {
        // Last scrape's batch, its entries and their sample vectors reused.
        batch: cache.take_batch(),
        ..Processed::default()
    };
    let mut used = 0;
    let mut sample_limit_exceeded = false;
    let mut parser = Parser::new(body, format);
    cache.set_format(format);
    let fail = |error: Error, out: &Processed| Failed {
        error,
        total: out.total,
        post_relabel: out.post_relabel,
    };
    loop {
        let raw = match parser.next_raw_predicted(cache.predicted()) {
            Ok(Some(RawEntry::Series(raw))) => raw,
            Ok(Some(RawEntry::Other(entry))) => {
                match entry {
                    Entry::Type {
                        family,
                        metric_type,
                    } => {
                        metadata_entry(&mut out.metadata, &family).metric_type =
                            metric_type.as_str().to_string();
                    }
                    Entry::Help { family, text } => {
                        metadata_entry(&mut out.metadata, &family).help = text.into_owned();
                    }
                    Entry::Unit { family, unit } => {
                        metadata_entry(&mut out.metadata, &family).unit = unit.into_owned();
                    }
                    Entry::Series { .. } | Entry::Comment(_) | Entry::Eof => {}
                }
                continue;
            }
            Ok(None) => break,
            Err(e) => return Err(fail(e.into(), &out)),
        };
        let cached = match cache.lookup(&raw.text, raw.metric_type) {
            Some(cached) => {
                out.total += 1;
                cached
            }
            None => {
                let labels = match parser.series_labels() {
                    Ok(labels) => labels,
                    Err(e) => return Err(fail(e.into(), &out)),
                };
                out.total += 1;
                match mutate_sample_labels(&labels, target, rules) {
                    None => cache.insert(&raw.text, raw.metric_type, None),
                    Some(series) => {
                        // Only series that pass are cached: the others fail
                        // the scrape each time they are seen.
                        if series.metric_name().is_none() {
                            return Err(fail(Error::MissingMetricName, &out));
                        }
                        if let Err(e) = check_label_limits(&series, rules) {
                            return Err(fail(e, &out));
                        }
                        cache.insert(&raw.text, raw.metric_type, Some(series))
                    }
                }
            }
        };
        let Cached::Series(id) = cached else {
            continue;
        };
        out.post_relabel += 1;
        if rules.sample_limit > 0 && out.post_relabel as u64 > rules.sample_limit {
            // Keep parsing to count the samples, append nothing.
            sample_limit_exceeded = true;
        }
        if sample_limit_exceeded {
            continue;
        }
        let explicit = raw.timestamp.filter(|_| rules.honor_timestamps);
        let t = explicit.unwrap_or(scrape_time);
        let tracked = explicit.is_none() || rules.track_timestamps_staleness;
        match cache.see(id, used, tracked) {
            Seen::Again { batch } => {
                let samples = &mut out.batch[batch].samples;
                if samples.iter().any(|s| s.t == t) {
                    out.duplicates += 1;
                } else {
                    samples.push(Sample::new(t, raw.value));
                }
            }
            Seen::First { in_previous } => {
                let labels = cache.labels(id);
                let sample = Sample::new(t, raw.value);
                match out.batch.get_mut(used) {
                    Some(s) => {
                        if s.labels != *labels {
                            s.labels = labels.clone();
                        }
                        s.samples.clear();
                        s.samples.push(sample);
                    }
                    None => out.batch.push(SeriesSamples {
                        labels: labels.clone(),
                        samples: vec![sample],
                    }),
                }
                used += 1;
                out.tracked.push(tracked);
                out.in_previous.push(in_previous);
                out.ids.push(id);
            }
        }
    }
    if sample_limit_exceeded {
        return Err(fail(Error::SampleLimit, &out));
    }
    out.batch.truncate(used);
    Ok(out)
}

fn metadata_entry<'m>(
    metadata: &'m mut BTreeMap<String, MetricMetadata>,
    family: &str,
) -> &'m mut MetricMetadata {
    metadata
        .entry(family.to_string())
        .or_insert_with(|| MetricMetadata {
            metric: family.to_string(),
            metric_type: "unknown".into(),
            ..MetricMetadata::default()
        })
}

/// Prometheus's `mutateSampleLabels`: target labels merged per
/// `honor_labels`, then metric relabeling. `None` when relabeling drops it.
pub(crate) fn mutate_sample_labels(
    scraped: &Labels,
    target: &Labels,
    rules: &SampleRules,
) -> Option<Labels> {
    let mut b = scraped.builder();
    if rules.honor_labels {
        for l in target.iter() {
            if !scraped.has(l.name) {
                b.set(l.name, l.value);
            }
        }
    } else {
        let mut conflicts = Vec::new();
        for l in target.iter() {
            if let Some(existing) = scraped.get(l.name).filter(|v| !v.is_empty()) {
                conflicts.push((l.name.to_string(), existing.to_string()));
            }
            b.set(l.name, l.value);
        }
        resolve_conflicts(&mut b, conflicts);
    }
    let merged = b.build();
    if rules.metric_relabel_configs.is_empty() {
        return Some(merged);
    }
    hearth_config::relabel(&merged, &rules.metric_relabel_configs)
}

/// Moves each conflicting scraped label to `exported_<name>`, prefixing
/// again while that name is taken; shortest names first.
fn resolve_conflicts(b: &mut LabelsBuilder, mut conflicts: Vec<(String, String)>) {
    conflicts.sort_by_key(|(name, _)| name.len());
    for (name, value) in conflicts {
        let mut new_name = name;
        loop {
            new_name = format!("exported_{new_name}");
            if b.get(&new_name).is_none_or(str::is_empty) {
                b.set(&new_name, &value);
                break;
            }
        }
    }
}

/// The labels of a report series (`up`, `scrape_*`): the target labels,
/// overriding, plus the name.
pub(crate) fn report_labels(name: &str, target: &Labels) -> Labels {
    let mut b = LabelsBuilder::new();
    b.set(hearth_model::METRIC_NAME, name);
    for l in target.iter() {
        b.set(l.name, l.value);
    }
    b.build()
}

fn check_label_limits(series: &Labels, rules: &SampleRules) -> Result<(), Error> {
    let metric = || series.metric_name().unwrap_or_default().to_string();
    if rules.label_limit > 0 && series.len() as u64 > rules.label_limit {
        return Err(Error::LabelLimit {
            metric: metric(),
            count: series.len(),
            limit: rules.label_limit,
        });
    }
    if rules.label_name_length_limit == 0 && rules.label_value_length_limit == 0 {
        return Ok(());
    }
    for l in series.iter() {
        let limit = rules.label_name_length_limit;
        if limit > 0 && l.name.len() as u64 > limit {
            return Err(Error::LabelNameLength {
                metric: metric(),
                name: l.name.to_string(),
                length: l.name.len(),
                limit,
            });
        }
        let limit = rules.label_value_length_limit;
        if limit > 0 && l.value.len() as u64 > limit {
            return Err(Error::LabelValueLength {
                metric: metric(),
                name: l.name.to_string(),
                value: l.value.to_string(),
                length: l.value.len(),
                limit,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::new(pairs.iter().copied())
    }

    /// One scrape with a fresh cache.
    fn process_once(
        body: &[u8],
        format: Format,
        target: &Labels,
        rules: &SampleRules,
        scrape_time: Timestamp,
    ) -> Result<Processed, Failed> {
        let mut cache = ScrapeCache::default();
        cache.begin();
        process(body, format, target, rules, scrape_time, &mut cache)
    }

    fn rules() -> SampleRules {
        SampleRules {
            honor_timestamps: true,
            ..SampleRules::default()
        }
    }

    #[test]
    fn exported_prefix_repeats_shortest_name_first() {
        let target = labels(&[("job", "db"), ("instance", "h:9187")]);
        let scraped = labels(&[("__name__", "m"), ("job", "pg"), ("exported_job", "x")]);
        assert_eq!(
            mutate_sample_labels(&scraped, &target, &rules()),
            Some(labels(&[
                ("__name__", "m"),
                ("exported_exported_job", "pg"),
                ("exported_job", "x"),
                ("instance", "h:9187"),
                ("job", "db"),
            ]))
        );
    }

    #[test]
    fn honor_labels_keeps_scraped_values() {
        let target = labels(&[("job", "db"), ("instance", "h:9187")]);
        let scraped = labels(&[("__name__", "m"), ("job", "pg")]);
        let rules = SampleRules {
            honor_labels: true,
            ..rules()
        };
        assert_eq!(
            mutate_sample_labels(&scraped, &target, &rules),
            Some(labels(&[
                ("__name__", "m"),
                ("instance", "h:9187"),
                ("job", "pg")
            ]))
        );
    }

    #[test]
    fn duplicates_keep_the_first_sample() {
        let body = b"a 1\na 2\nb{x=\"1\"} 3\nb{x=\"1\"} 4 5000\n";
        let out = process_once(
            body,
            Format::Text004,
            &labels(&[("job", "j")]),
            &rules(),
            1000,
        )
        .expect("valid body");
        assert_eq!(out.total, 4);
        assert_eq!(out.post_relabel, 4);
        assert_eq!(out.duplicates, 1);
        assert_eq!(out.batch.len(), 2);
        assert_eq!(out.batch[0].samples, vec![Sample::new(1000, 1.0)]);
        assert_eq!(
            out.batch[1].samples,
            vec![Sample::new(1000, 3.0), Sample::new(5000, 4.0)]
        );
        assert_eq!(out.tracked, vec![true, true]);
    }

    #[test]
    fn explicit_timestamps_are_not_tracked_unless_asked() {
        let body = b"a 1 5000\n";
        let target = labels(&[("job", "j")]);
        let out = process_once(body, Format::Text004, &target, &rules(), 1000).unwrap();
        assert_eq!(out.batch[0].samples, vec![Sample::new(5000, 1.0)]);
        assert_eq!(out.tracked, vec![false]);
        let ignore = SampleRules {
            honor_timestamps: false,
            ..rules()
        };
        let out = process_once(body, Format::Text004, &target, &ignore, 1000).unwrap();
        assert_eq!(out.batch[0].samples, vec![Sample::new(1000, 1.0)]);
        assert_eq!(out.tracked, vec![true]);
    }

    #[test]
    fn sample_limit_counts_everything_and_fails() {
        let body = b"a 1\nb 2\nc 3\n";
        let limited = SampleRules {
            sample_limit: 2,
            ..rules()
        };
        let failed =
            process_once(body, Format::Text004, &Labels::empty(), &limited, 0).unwrap_err();
        assert!(matches!(failed.error, Error::SampleLimit));
        assert_eq!(failed.total, 3);
        assert_eq!(failed.post_relabel, 3);
    }

    #[test]
    fn label_limits_fail_the_scrape() {
        let body = b"a{x=\"long-value\"} 1\n";
        let target = labels(&[("job", "j")]);
        for (rule, message) in [
            (
                SampleRules {
                    label_limit: 2,
                    ..rules()
                },
                "label_limit exceeded (metric: a, number of labels: 3, limit: 2)",
            ),
            (
                SampleRules {
                    label_value_length_limit: 5,
                    ..rules()
                },
                "label_value_length_limit exceeded (metric: a, label name: x, value: \
                 \"long-value\", length: 10, limit: 5)",
            ),
            (
                SampleRules {
                    label_name_length_limit: 3,
                    ..rules()
                },
                "label_name_length_limit exceeded (metric: a, label name: __name__, length: 8, \
                 limit: 3)",
            ),
        ] {
            let failed = process_once(body, Format::Text004, &target, &rule, 0).unwrap_err();
            assert_eq!(failed.error.to_string(), message);
        }
    }

    #[test]
    fn metadata_is_collected() {
        let body = b"# TYPE a_seconds counter\n# UNIT a_seconds seconds\n# HELP a_seconds Help \
                     text.\na_seconds_total 1\n# EOF\n";
        let out = process_once(body, Format::OpenMetrics, &Labels::empty(), &rules(), 0).unwrap();
        assert_eq!(
            out.metadata.get("a_seconds"),
            Some(&MetricMetadata {
                metric: "a_seconds".into(),
                metric_type: "counter".into(),
                help: "Help text.".into(),
                unit: "seconds".into(),
            })
        );
    }
}
