//! From discovered target groups to scrape targets: Prometheus 3's
//! `PopulateLabels` (defaults, target relabeling, address and interval
//! checks, `instance`), the scrape URL, the target's identity and the
//! offset of its scrapes within the interval.

use std::collections::BTreeMap;
use std::str::FromStr;

use hearth_config::{relabel, Duration, ScrapeConfig};
use hearth_discovery::TargetGroup;
use hearth_model::{Labels, LabelsBuilder};

const ADDRESS: &str = "__address__";
const SCHEME: &str = "__scheme__";
const METRICS_PATH: &str = "__metrics_path__";
const SCRAPE_INTERVAL: &str = "__scrape_interval__";
const SCRAPE_TIMEOUT: &str = "__scrape_timeout__";
const PARAM_PREFIX: &str = "__param_";
const META_PREFIX: &str = "__meta_";
const RESERVED_PREFIX: &str = "__";

/// A target to scrape: its labels after relabeling, the labels it was
/// discovered with, and what its scrapes use.
#[derive(Debug, Clone)]
pub struct Target {
    /// After relabeling, without `__meta_*`, still with the other `__`
    /// labels (`__address__`, `__scheme__`, `__param_*`, ...).
    labels: Labels,
    /// Before relabeling, with `__meta_*` and the job defaults.
    discovered_labels: Labels,
    url: String,
    interval: Duration,
    timeout: Duration,
    hash: u64,
}

impl Target {
    /// The labels attached to the target's samples: every label not
    /// starting with `__`.
    pub fn labels(&self) -> Labels {
        Labels::from_sorted(
            self.labels
                .iter()
                .filter(|l| !l.name.starts_with(RESERVED_PREFIX))
                .map(|l| (l.name, l.value)),
        )
    }

    /// The full label set after relabeling, internal labels included.
    pub fn internal_labels(&self) -> &Labels {
        &self.labels
    }

    pub fn discovered_labels(&self) -> &Labels {
        &self.discovered_labels
    }

    /// `<__scheme__>://<__address__><__metrics_path__>?<params>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The identity of the target within its job: its labels and URL.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// How long after `now_ns` (nanoseconds since the epoch) the first scrape
    /// is due, as Prometheus's `Target.offset`: scrapes happen at
    /// `(hash ^ seed) mod interval` past every multiple of the interval in
    /// absolute time, so a restarted loop keeps its phase.
    pub fn offset(&self, seed: u64, now_ns: u128) -> std::time::Duration {
        let interval = self.interval.as_std().as_nanos().max(1);
        let base = interval - now_ns % interval;
        let offset = u128::from(self.hash ^ seed) % interval;
        let mut next = base + offset;
        if next > interval {
            next -= interval;
        }
        std::time::Duration::from_nanos(u64::try_from(next).unwrap_or(u64::MAX))
    }
}

/// What [`populate_labels`] made of one discovered target.
#[derive(Debug, Clone)]
pub enum Populated {
    Target(Target),
    /// Dropped by relabeling; kept with its discovered labels for the API.
    Dropped(Labels),
}

/// Prometheus 3's `PopulateLabels` for one target of a group of job `job`.
/// An error means the target is neither scraped nor listed as dropped.
pub fn populate_labels(
    job: &ScrapeConfig,
    group_labels: &Labels,
    target_labels: &Labels,
) -> Result<Populated, String> {
    let mut b = LabelsBuilder::new();
    for l in group_labels.iter() {
        b.set(l.name, l.value);
    }
    for l in target_labels.iter() {
        b.set(l.name, l.value);
    }
    let interval = job.scrape_interval.to_string();
    let timeout = job.scrape_timeout.to_string();
    for (name, value) in [
        ("job", job.job_name.as_str()),
        (SCRAPE_INTERVAL, interval.as_str()),
        (SCRAPE_TIMEOUT, timeout.as_str()),
        (METRICS_PATH, job.metrics_path.as_str()),
        (SCHEME, job.scheme.as_str()),
    ] {
        if b.get(name).is_none() {
            b.set(name, value);
        }
    }
    for (key, values) in &job.params {
        let name = format!("{PARAM_PREFIX}{key}");
        if let Some(first) = values.first() {
            if b.get(&name).is_none() {
                b.set(&name, first);
            }
        }
    }
    let discovered = b.build();
    let Some(relabeled) = relabel(&discovered, &job.relabel_configs) else {
        return Ok(Populated::Dropped(discovered));
    };
    let Some(address) = relabeled.get(ADDRESS).map(str::to_string) else {
        return Err("no address".into());
    };
    if address.contains('/') {
        return Err(format!("{address:?} is not a valid hostname"));
    }
    let interval_text = relabeled.get(SCRAPE_INTERVAL).unwrap_or_default();
    let interval = Duration::from_str(interval_text)
        .map_err(|e| format!("error parsing scrape interval: {e}"))?;
    if interval.is_zero() {
        return Err("scrape interval cannot be 0".into());
    }
    let timeout_text = relabeled.get(SCRAPE_TIMEOUT).unwrap_or_default();
    let timeout = Duration::from_str(timeout_text)
        .map_err(|e| format!("error parsing scrape timeout: {e}"))?;
    if timeout.is_zero() {
        return Err("scrape timeout cannot be 0".into());
    }
    if timeout > interval {
        return Err(format!(
            "scrape timeout cannot be greater than scrape interval ({timeout_text:?} > \
             {interval_text:?})"
        ));
    }
    let mut b = LabelsBuilder::new();
    for l in relabeled.iter() {
        if !l.name.starts_with(META_PREFIX) {
            b.set(l.name, l.value);
        }
    }
    if b.get("instance").is_none() {
        b.set("instance", &address);
    }
    let labels = b.build();
    let url = scrape_url(&labels, &job.params);
    let hash = target_hash(&labels, &url);
    Ok(Populated::Target(Target {
        labels,
        discovered_labels: discovered,
        url,
        interval,
        timeout,
        hash,
    }))
}

/// The targets of a job's groups (Prometheus's `TargetsFromGroup` over all
/// groups): active targets in discovery order, deduplicated by identity,
/// the discovered labels of dropped ones, and the errors of invalid ones.
pub fn targets_from_groups(job: &ScrapeConfig, groups: &[TargetGroup]) -> TargetsFromGroups {
    let mut out = TargetsFromGroups::default();
    for group in groups {
        for (i, target_labels) in group.targets.iter().enumerate() {
            match populate_labels(job, &group.labels, target_labels) {
                Ok(Populated::Target(t)) => {
                    if !out.active.iter().any(|a| a.hash == t.hash) {
                        out.active.push(t);
                    }
                }
                Ok(Populated::Dropped(discovered)) => out.dropped.push(discovered),
                Err(e) => out
                    .errors
                    .push(format!("instance {i} in group {}: {e}", group.source)),
            }
        }
    }
    out
}

/// The result of [`targets_from_groups`].
#[derive(Debug, Default)]
pub struct TargetsFromGroups {
    pub active: Vec<Target>,
    pub dropped: Vec<Labels>,
    pub errors: Vec<String>,
}

/// Prometheus's `Target.URL`: the job's params with the first value of each
/// key replaced (or created) by its `__param_<key>` label, keys sorted.
fn scrape_url(labels: &Labels, job_params: &BTreeMap<String, Vec<String>>) -> String {
    let mut params = job_params.clone();
    for l in labels.iter() {
        if let Some(key) = l.name.strip_prefix(PARAM_PREFIX) {
            match params.get_mut(key) {
                Some(values) if !values.is_empty() => values[0] = l.value.to_string(),
                _ => {
                    params.insert(key.to_string(), vec![l.value.to_string()]);
                }
            }
        }
    }
    let mut url = format!(
        "{}://{}{}",
        labels.get(SCHEME).unwrap_or_default(),
        labels.get(ADDRESS).unwrap_or_default(),
        labels.get(METRICS_PATH).unwrap_or_default()
    );
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (key, values) in &params {
        for value in values {
            query.append_pair(key, value);
        }
    }
    let query = query.finish();
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query);
    }
    url
}

fn target_hash(labels: &Labels, url: &str) -> u64 {
    let mut bytes = labels.stable_hash().to_be_bytes().to_vec();
    bytes.extend_from_slice(url.as_bytes());
    xxhash_rust::xxh3::xxh3_64(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(yaml: &str) -> ScrapeConfig {
        let config = hearth_config::Config::parse(yaml).expect("valid config");
        config.scrape_configs[0].clone()
    }

    fn populate(job: &ScrapeConfig, target: &[(&str, &str)]) -> Result<Populated, String> {
        populate_labels(job, &Labels::empty(), &Labels::new(target.iter().copied()))
    }

    #[test]
    fn defaults_and_instance() {
        let job = job("scrape_configs:\n  - job_name: node\n    scrape_interval: 5s\n");
        let Ok(Populated::Target(t)) = populate(&job, &[("__address__", "h:9100")]) else {
            panic!("expected a target");
        };
        assert_eq!(
            t.labels(),
            Labels::new([("instance", "h:9100"), ("job", "node")])
        );
        assert_eq!(t.url(), "http://h:9100/metrics");
        assert_eq!(t.interval(), Duration::from_secs(5));
        assert_eq!(t.timeout(), Duration::from_secs(5));
        assert_eq!(t.discovered_labels().get("__scrape_interval__"), Some("5s"));
        assert_eq!(t.discovered_labels().get("__scrape_timeout__"), Some("5s"));
        assert_eq!(t.discovered_labels().get("__scheme__"), Some("http"));
    }

    #[test]
    fn no_default_port_in_prometheus_3() {
        let job = job("scrape_configs:\n  - job_name: j\n");
        let Ok(Populated::Target(t)) = populate(&job, &[("__address__", "hostnoport")]) else {
            panic!("expected a target");
        };
        assert_eq!(t.url(), "http://hostnoport/metrics");
        assert_eq!(t.labels().get("instance"), Some("hostnoport"));
    }

    #[test]
    fn params_only_when_absent_and_url_query() {
        let job = job("scrape_configs:\n  - job_name: j\n    params: {module: [a, b], x: [1]}\n");
        let Ok(Populated::Target(t)) = populate(
            &job,
            &[("__address__", "h:1"), ("__param_module", "discovered")],
        ) else {
            panic!("expected a target");
        };
        assert_eq!(t.url(), "http://h:1/metrics?module=discovered&module=b&x=1");
        let Ok(Populated::Target(t)) = populate(&job, &[("__address__", "h:1")]) else {
            panic!("expected a target");
        };
        assert_eq!(t.url(), "http://h:1/metrics?module=a&module=b&x=1");
        assert_eq!(t.discovered_labels().get("__param_module"), Some("a"));
    }

    #[test]
    fn relabel_drop_keeps_discovered_labels() {
        let job = job(
            "scrape_configs:\n  - job_name: j\n    relabel_configs:\n      - source_labels: \
             [__meta_x]\n        regex: drop\n        action: drop\n",
        );
        let Ok(Populated::Dropped(d)) =
            populate(&job, &[("__address__", "h:1"), ("__meta_x", "drop")])
        else {
            panic!("expected a dropped target");
        };
        assert_eq!(d.get("__meta_x"), Some("drop"));
        assert_eq!(d.get("job"), Some("j"));
        let Ok(Populated::Target(t)) =
            populate(&job, &[("__address__", "h:1"), ("__meta_x", "keep")])
        else {
            panic!("expected a target");
        };
        assert!(t.internal_labels().get("__meta_x").is_none());
        assert_eq!(t.discovered_labels().get("__meta_x"), Some("keep"));
    }

    #[test]
    fn invalid_targets() {
        let job = job(
            "scrape_configs:\n  - job_name: j\n    scrape_interval: 10s\n    relabel_configs:\n      \
             - source_labels: [__meta_t]\n        target_label: __scrape_timeout__\n",
        );
        assert_eq!(
            populate(&job, &[("__address__", "h:1"), ("__meta_t", "1m")])
                .err()
                .as_deref(),
            Some("scrape timeout cannot be greater than scrape interval (\"1m\" > \"10s\")")
        );
        assert_eq!(
            populate(&job, &[("__address__", "http://h:1"), ("__meta_t", "1s")])
                .err()
                .as_deref(),
            Some("\"http://h:1\" is not a valid hostname")
        );
        assert_eq!(
            populate(&job, &[("__meta_t", "1s")]).err().as_deref(),
            Some("no address")
        );
    }

    #[test]
    fn group_labels_lose_to_target_labels_and_duplicates_merge() {
        let job = job("scrape_configs:\n  - job_name: j\n");
        let group = TargetGroup {
            source: "s".into(),
            targets: vec![
                Labels::new([("__address__", "a:1"), ("env", "target")]),
                Labels::new([("__address__", "a:1"), ("env", "target")]),
                Labels::new([("__address__", "b:1")]),
            ],
            labels: Labels::new([("env", "group"), ("instance", "fixed")]),
        };
        let out = targets_from_groups(&job, &[group]);
        assert_eq!(out.active.len(), 2);
        assert_eq!(out.active[0].labels().get("env"), Some("target"));
        assert_eq!(out.active[1].labels().get("env"), Some("group"));
        assert_eq!(out.active[1].labels().get("instance"), Some("fixed"));
        assert_ne!(out.active[0].hash(), out.active[1].hash());
    }

    #[test]
    fn offset_is_pinned_to_absolute_time() {
        let job = job("scrape_configs:\n  - job_name: j\n    scrape_interval: 10s\n");
        let Ok(Populated::Target(t)) = populate(&job, &[("__address__", "h:1")]) else {
            panic!("expected a target");
        };
        let interval = 10_000_000_000u128;
        for now in [0u128, 3_000_000_000, 1_700_000_000_123_456_789] {
            let next = now + t.offset(7, now).as_nanos();
            assert_eq!(next % interval, u128::from(t.hash() ^ 7) % interval);
            assert!(t.offset(7, now).as_nanos() <= interval);
        }
    }
}
