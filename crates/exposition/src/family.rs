//! Which metric family a sample belongs to, and the OpenMetrics rules on
//! families that only a strict parser enforces.
//!
//! Prometheus attaches a family's metadata to the samples that follow its
//! metadata lines when their names fit the family's type
//! ([`is_series_part_of_family`], the suffix rules `_total`, `_bucket`,
//! `_count`, `_sum`, `_gcount`, `_gsum`, `_info`); this crate also counts
//! `_created` as part of counter, histogram and summary families
//! ([`belongs_to_family`]). Prometheus's parsers enforce nothing more, so
//! neither does [`crate::Parser`] by default. In strict mode it also checks
//! what the OpenMetrics 1.0 specification requires of families: metadata at
//! most once and before the samples, families not interleaved, sample names
//! the family's type allows, exemplars only on `_total` and `_bucket`
//! samples and within the 128-character label budget, no unit on info and
//! stateset families.

use std::collections::HashMap;

use hearth_model::Labels;

use crate::entry::MetricType;

/// Prometheus's `isSeriesPartOfFamily` (scrape loop): whether a sample named
/// `series` takes the metadata of family `family` of type `metric_type`.
/// Counters match with or without `_total` on either name; histograms cut
/// `_bucket`, `_sum` or `_count`; gauge histograms `_bucket`, `_gsum` or
/// `_gcount`; summaries `_sum` or `_count`; infos `_info` on either name;
/// other types need the exact name.
pub fn is_series_part_of_family(series: &str, family: &str, metric_type: MetricType) -> bool {
    if !series.starts_with(family) {
        return false;
    }
    let (family, got) = match metric_type {
        MetricType::Counter => (cut(family, &["_total"]), cut(series, &["_total"])),
        MetricType::Histogram => (family, cut(series, &["_bucket", "_sum", "_count"])),
        MetricType::GaugeHistogram => (family, cut(series, &["_bucket", "_gsum", "_gcount"])),
        MetricType::Summary => (family, cut(series, &["_sum", "_count"])),
        MetricType::Info => (cut(family, &["_info"]), cut(series, &["_info"])),
        MetricType::Gauge | MetricType::Stateset | MetricType::Unknown => (family, series),
    };
    family == got
}

/// [`is_series_part_of_family`], plus the OpenMetrics `_created` sample of
/// counter (`foo_created` for family `foo` or `foo_total`), histogram and
/// summary families.
pub fn belongs_to_family(series: &str, family: &str, metric_type: MetricType) -> bool {
    if is_series_part_of_family(series, family, metric_type) {
        return true;
    }
    let base = match metric_type {
        MetricType::Counter => cut(family, &["_total"]),
        MetricType::Histogram | MetricType::Summary => family,
        _ => return false,
    };
    series.strip_prefix(base) == Some("_created")
}

/// The name without the first of `suffixes` it ends with (Go's chain of
/// `strings.CutSuffix`).
fn cut<'s>(name: &'s str, suffixes: &[&str]) -> &'s str {
    suffixes
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name)
}

/// The sample names OpenMetrics 1.0 allows in a family of each type.
fn conformant_member(series: &str, family: &str, metric_type: MetricType) -> bool {
    let Some(suffix) = series.strip_prefix(family) else {
        return false;
    };
    match metric_type {
        MetricType::Counter => matches!(suffix, "_total" | "_created"),
        MetricType::Gauge | MetricType::Stateset | MetricType::Unknown => suffix.is_empty(),
        MetricType::Histogram => matches!(suffix, "_bucket" | "_count" | "_sum" | "_created"),
        MetricType::GaugeHistogram => matches!(suffix, "_bucket" | "_gcount" | "_gsum"),
        MetricType::Summary => matches!(suffix, "" | "_count" | "_sum" | "_created"),
        MetricType::Info => suffix == "_info",
    }
}

/// The longest combined length, in code points, of an exemplar's label
/// names and values (OpenMetrics 1.0; Prometheus's exemplar storage rejects
/// longer ones).
pub const EXEMPLAR_MAX_LABEL_SET_LENGTH: usize = 128;

/// The combined number of code points of all label names and values.
pub fn label_set_length(labels: &Labels) -> usize {
    labels
        .iter()
        .map(|l| l.name.chars().count() + l.value.chars().count())
        .sum()
}

/// Which metadata line a family saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Metadata {
    Type(MetricType),
    Help,
    /// Whether the unit is non-empty.
    Unit(bool),
}

impl Metadata {
    fn keyword(self) -> &'static str {
        match self {
            Metadata::Type(_) => "TYPE",
            Metadata::Help => "HELP",
            Metadata::Unit(_) => "UNIT",
        }
    }
}

/// The family samples are currently attributed to, and in strict mode the
/// record of every family so far.
#[derive(Debug, Default)]
pub(crate) struct Families {
    name: String,
    metric_type: MetricType,
    conformance: Option<Box<Conformance>>,
}

impl Families {
    pub(crate) fn new(strict: bool) -> Self {
        Self {
            conformance: strict.then(Box::default),
            ..Self::default()
        }
    }

    /// Records a metadata line; in strict mode, errors with a message when it
    /// breaks an OpenMetrics rule.
    pub(crate) fn on_metadata(&mut self, family: &str, metadata: Metadata) -> Result<(), String> {
        if family != self.name {
            self.name.clear();
            self.name.push_str(family);
            self.metric_type = MetricType::Unknown;
        }
        if let Metadata::Type(t) = metadata {
            self.metric_type = t;
        }
        match &mut self.conformance {
            Some(c) => c.on_metadata(family, metadata),
            None => Ok(()),
        }
    }

    /// The type of the family a sample named `series` belongs to; in strict
    /// mode, errors with a message when the sample breaks an OpenMetrics rule.
    pub(crate) fn on_series(
        &mut self,
        series: &str,
        exemplar: Option<&Labels>,
    ) -> Result<MetricType, String> {
        if let Some(c) = &mut self.conformance {
            return c.on_series(series, exemplar);
        }
        if self.metric_type != MetricType::Unknown
            && belongs_to_family(series, &self.name, self.metric_type)
        {
            Ok(self.metric_type)
        } else {
            Ok(MetricType::Unknown)
        }
    }
}

/// What a strict parser remembers of the families it has seen.
#[derive(Debug, Default)]
struct Conformance {
    /// Every family so far, with its type.
    seen: HashMap<String, MetricType>,
    current: Option<FamilyState>,
}

#[derive(Debug)]
struct FamilyState {
    name: String,
    metric_type: MetricType,
    has_type: bool,
    has_help: bool,
    has_unit: bool,
    has_nonempty_unit: bool,
    has_samples: bool,
}

impl FamilyState {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            metric_type: MetricType::Unknown,
            has_type: false,
            has_help: false,
            has_unit: false,
            has_nonempty_unit: false,
            has_samples: false,
        }
    }
}

impl Conformance {
    fn on_metadata(&mut self, family: &str, metadata: Metadata) -> Result<(), String> {
        let keyword = metadata.keyword();
        match self.current.as_ref() {
            Some(cur) if cur.name == family => {
                if cur.has_samples {
                    return Err(format!(
                        "{keyword} of metric family {family:?} after its samples"
                    ));
                }
                let seen = match metadata {
                    Metadata::Type(_) => cur.has_type,
                    Metadata::Help => cur.has_help,
                    Metadata::Unit(_) => cur.has_unit,
                };
                if seen {
                    return Err(format!("duplicate {keyword} of metric family {family:?}"));
                }
            }
            _ => {
                if self.seen.contains_key(family) {
                    return Err(format!(
                        "{keyword} of metric family {family:?} after other families: \
                         families must not be interleaved"
                    ));
                }
                self.seen.insert(family.to_string(), MetricType::Unknown);
                self.current = Some(FamilyState::new(family));
            }
        }
        let current = self
            .current
            .as_mut()
            .expect("the family was made current above");
        match metadata {
            Metadata::Type(t) => {
                current.has_type = true;
                current.metric_type = t;
                if let Some(seen) = self.seen.get_mut(family) {
                    *seen = t;
                }
            }
            Metadata::Help => current.has_help = true,
            Metadata::Unit(nonempty) => {
                current.has_unit = true;
                current.has_nonempty_unit = nonempty;
            }
        }
        if current.has_nonempty_unit
            && matches!(current.metric_type, MetricType::Info | MetricType::Stateset)
        {
            return Err(format!(
                "metric family {family:?} of type {} must not have a unit",
                current.metric_type
            ));
        }
        Ok(())
    }

    fn on_series(&mut self, series: &str, exemplar: Option<&Labels>) -> Result<MetricType, String> {
        let member = self
            .current
            .as_ref()
            .is_some_and(|cur| conformant_member(series, &cur.name, cur.metric_type));
        let metric_type = if member {
            let cur = self.current.as_mut().expect("membership was checked above");
            cur.has_samples = true;
            cur.metric_type
        } else {
            if let Some(cur) = self.current.as_ref().filter(|cur| cur.name == series) {
                return Err(format!(
                    "sample name {series:?} is not valid in {} family {:?}",
                    cur.metric_type, cur.name
                ));
            }
            if let Some(family) = self.earlier_family_of(series) {
                return Err(format!(
                    "sample {series:?} of metric family {family:?} after other families: \
                     families must not be interleaved"
                ));
            }
            self.seen.insert(series.to_string(), MetricType::Unknown);
            let mut state = FamilyState::new(series);
            state.has_samples = true;
            self.current = Some(state);
            MetricType::Unknown
        };
        if let Some(labels) = exemplar {
            let allowed = match metric_type {
                MetricType::Counter => series.ends_with("_total"),
                MetricType::Histogram | MetricType::GaugeHistogram => series.ends_with("_bucket"),
                _ => false,
            };
            if !allowed {
                return Err(format!(
                    "exemplar on sample {series:?} of a {metric_type} family: exemplars are \
                     allowed only on counter _total and histogram _bucket samples"
                ));
            }
            let length = label_set_length(labels);
            if length > EXEMPLAR_MAX_LABEL_SET_LENGTH {
                return Err(format!(
                    "exemplar labels of sample {series:?} have {length} characters, more than \
                     {EXEMPLAR_MAX_LABEL_SET_LENGTH}"
                ));
            }
        }
        Ok(metric_type)
    }

    /// An already finished family that a sample named `series` would belong to.
    /// A finished family that a sample named `series` belongs to, if any.
    fn earlier_family_of(&self, series: &str) -> Option<String> {
        const SUFFIXES: [&str; 9] = [
            "", "_total", "_created", "_bucket", "_count", "_sum", "_gcount", "_gsum", "_info",
        ];
        SUFFIXES
            .iter()
            .filter_map(|suffix| series.strip_suffix(suffix))
            .find(|family| {
                self.seen
                    .get(*family)
                    .is_some_and(|t| conformant_member(series, family, *t))
            })
            .map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MetricType::*;

    #[test]
    fn prometheus_suffix_rules() {
        assert!(is_series_part_of_family("foo_total", "foo", Counter));
        assert!(is_series_part_of_family("foo_total", "foo_total", Counter));
        assert!(is_series_part_of_family("foo", "foo", Counter));
        assert!(!is_series_part_of_family("foo_created", "foo", Counter));
        assert!(is_series_part_of_family("h_bucket", "h", Histogram));
        assert!(is_series_part_of_family("h_sum", "h", Histogram));
        assert!(is_series_part_of_family("h_count", "h", Histogram));
        assert!(is_series_part_of_family("h", "h", Histogram));
        assert!(!is_series_part_of_family("h_bucket", "h_bucket", Histogram));
        assert!(is_series_part_of_family("g_gsum", "g", GaugeHistogram));
        assert!(!is_series_part_of_family("g_sum", "g", GaugeHistogram));
        assert!(is_series_part_of_family("s_count", "s", Summary));
        assert!(!is_series_part_of_family("s_bucket", "s", Summary));
        assert!(is_series_part_of_family("b_info", "b", Info));
        assert!(is_series_part_of_family("b_info", "b_info", Info));
        assert!(is_series_part_of_family("b", "b", Info));
        assert!(!is_series_part_of_family("foo_bar", "foo", Gauge));
        assert!(!is_series_part_of_family("fo", "foo", Gauge));
    }

    #[test]
    fn created_samples_belong_to_their_family() {
        assert!(belongs_to_family("foo_created", "foo", Counter));
        assert!(belongs_to_family("foo_created", "foo_total", Counter));
        assert!(belongs_to_family("h_created", "h", Histogram));
        assert!(belongs_to_family("s_created", "s", Summary));
        assert!(!belongs_to_family("g_created", "g", Gauge));
        assert!(!belongs_to_family("g_created", "g", GaugeHistogram));
    }

    #[test]
    fn conformant_names_per_type() {
        assert!(conformant_member("foo_total", "foo", Counter));
        assert!(!conformant_member("foo", "foo", Counter));
        assert!(!conformant_member("h", "h", Histogram));
        assert!(conformant_member("s", "s", Summary));
        assert!(conformant_member("i_info", "i", Info));
        assert!(!conformant_member("i", "i", Info));
        assert!(conformant_member("g_gcount", "g", GaugeHistogram));
    }

    #[test]
    fn strict_families_reject_late_metadata_and_interleaving() {
        let mut f = Families::new(true);
        f.on_metadata("a", Metadata::Type(Counter)).unwrap();
        assert_eq!(f.on_series("a_total", None), Ok(Counter));
        assert!(f
            .on_metadata("a", Metadata::Help)
            .unwrap_err()
            .contains("after its samples"));

        let mut f = Families::new(true);
        f.on_metadata("a", Metadata::Type(Gauge)).unwrap();
        assert!(f
            .on_metadata("a", Metadata::Type(Gauge))
            .unwrap_err()
            .contains("duplicate"));

        let mut f = Families::new(true);
        f.on_metadata("a", Metadata::Type(Counter)).unwrap();
        f.on_series("a_total", None).unwrap();
        f.on_series("b", None).unwrap();
        assert!(f
            .on_series("a_total", None)
            .unwrap_err()
            .contains("interleaved"));
        assert!(
            f.on_series("b", None).is_ok(),
            "b is still the current family"
        );
        assert!(f
            .on_metadata("a", Metadata::Help)
            .unwrap_err()
            .contains("interleaved"));
    }
}
