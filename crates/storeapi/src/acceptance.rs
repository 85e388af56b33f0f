//! The StoreAPI acceptance suite: what every StoreAPI implementation (TSDB
//! head and blocks, store gateway, sidecar) must answer over the wire, as
//! Thanos's `testStoreAPIsAcceptance` does for its stores.
//!
//! An implementation's test loads [`dataset`] into its storage, serves it
//! (with some external labels) on a loopback port and calls [`check`]. The
//! suite talks to the server with the raw generated gRPC client, so it sees
//! exactly what a Thanos querier would: message order, frames, batches,
//! chunk bytes and hashes. Every expectation is computed from the dataset
//! itself, relabeled by the external labels the way specs/storeapi.md §3.2
//! says (the external value wins over a stored label of the same name).
//!
//! Checked on every `Series` answer (the wire guarantees of §3.3):
//! - labels inside each series are sorted by name, unique, with non-empty
//!   names and values;
//! - series come in ascending label order, one series at a time (frames of
//!   a long series are consecutive messages with equal labels);
//! - every chunk has raw XOR data, a `hash` that is 0 or the xxhash64 of
//!   the data, `min_time`/`max_time` equal to its first/last sample, and the
//!   chunks of a series are sorted by `min_time`;
//! - `skip_chunks` answers carry no chunks.
//!
//! Time ranges: for a query over `[a, b]`, a series with dataset samples in
//! the range must be present and its decoded samples within the range must
//! equal the dataset's (chunks overlapping the range are sent whole;
//! samples outside it are not compared); a series whose samples all lie
//! before `a` or all after `b` must be absent; a series with samples on both
//! sides but none inside may appear (one of its chunks may span the range)
//! but then without samples in the range.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use hearth_model::chunkenc::XorIterator;
use hearth_model::{Labels, MatchOp, Matcher, Sample, Timestamp};
use hearth_proto::thanos::info::info_client::InfoClient;
use hearth_proto::thanos::info::InfoRequest;
use hearth_proto::thanos::store_client::StoreClient;
use hearth_proto::thanos::{self as pb, series_response};
use hearth_storage_api::SeriesSamples;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

use crate::convert::{chunk_hash, labels_from_proto, matchers_to_proto};
use crate::external_labels::extend_labels;

/// First sample time of the dataset: 2025-01-01T00:00:00Z, a multiple of
/// two hours (the TSDB's block range), so the data fills one block range.
pub const DATASET_START: Timestamp = 1_735_689_600_000;
/// Last sample time of the dataset (inclusive): two hours later.
pub const DATASET_END: Timestamp = DATASET_START + 120 * MINUTE;
/// Time between two samples of a series.
pub const DATASET_INTERVAL: i64 = 15_000;

const MINUTE: i64 = 60_000;

/// The fixed dataset every implementation serves: 36 series over several
/// metric names and label names (including a stored `replica` and a stored
/// `cluster` label, names that are often external labels), samples every
/// 15 s over two hours; some series start late, end early or have a gap of
/// 40 minutes, one holds NaN, ±Inf, −0 and extreme values. Sorted by labels.
pub fn dataset() -> Vec<SeriesSamples> {
    let mut out = Vec::new();
    let mut k = 0.0;
    let mut next_rate = || {
        k += 1.0;
        k
    };
    for instance in ["host-1", "host-2", "host-3"] {
        for method in ["GET", "POST"] {
            for code in ["200", "500"] {
                let rate = next_rate();
                out.push(full(
                    &[
                        ("__name__", "http_requests_total"),
                        ("code", code),
                        ("instance", instance),
                        ("job", "api"),
                        ("method", method),
                    ],
                    move |i| i as f64 * rate,
                ));
            }
        }
    }
    for (instance, path) in [("host-1", "/"), ("host-2", "/a b\"c/é")] {
        let rate = next_rate();
        out.push(full(
            &[
                ("__name__", "http_requests_total"),
                ("code", "200"),
                ("instance", instance),
                ("job", "web"),
                ("method", "GET"),
                ("path", path),
            ],
            move |i| i as f64 * rate + 0.5,
        ));
    }
    for (job, instance) in [
        ("api", "host-1"),
        ("api", "host-2"),
        ("api", "host-3"),
        ("web", "host-1"),
        ("web", "host-2"),
    ] {
        out.push(full(
            &[("__name__", "up"), ("instance", instance), ("job", job)],
            |_| 1.0,
        ));
    }
    // A target down for 40 minutes: no samples at all in the gap.
    out.push(samples(
        &[("__name__", "up"), ("instance", "host-1"), ("job", "batch")],
        0,
        120 * MINUTE,
        Some((40 * MINUTE, 80 * MINUTE)),
        |_| 1.0,
    ));
    for instance in ["host-1", "host-2"] {
        for cpu in ["0", "1"] {
            for mode in ["idle", "user"] {
                let rate = next_rate();
                out.push(full(
                    &[
                        ("__name__", "node_cpu_seconds_total"),
                        ("cpu", cpu),
                        ("instance", instance),
                        ("mode", mode),
                    ],
                    move |i| i as f64 * 0.015 * rate,
                ));
            }
        }
    }
    // Stored labels named like common external labels.
    for (instance, replica) in [("host-1", "r1"), ("host-2", "r2")] {
        out.push(full(
            &[
                ("__name__", "scrape_duration_seconds"),
                ("instance", instance),
                ("job", "api"),
                ("replica", replica),
            ],
            |i| 0.01 + ((i % 7) as f64) * 0.001,
        ));
    }
    out.push(full(
        &[
            ("__name__", "legacy_metric"),
            ("cluster", "stored"),
            ("instance", "host-1"),
        ],
        |i| (i as f64 * 0.1).sin() * 100.0,
    ));
    out.push(full(
        &[("__name__", "special_values"), ("kind", "floats")],
        |i| match i % 6 {
            0 => f64::NAN,
            1 => f64::INFINITY,
            2 => f64::NEG_INFINITY,
            3 => -0.0,
            4 => 1e-300,
            _ => f64::MAX,
        },
    ));
    out.push(samples(
        &[("__name__", "late_start"), ("job", "batch")],
        90 * MINUTE,
        120 * MINUTE,
        None,
        |i| i as f64,
    ));
    out.push(samples(
        &[("__name__", "early_end"), ("job", "batch")],
        0,
        20 * MINUTE,
        None,
        |i| i as f64,
    ));
    out.push(samples(
        &[("__name__", "with_gap"), ("job", "batch")],
        0,
        120 * MINUTE,
        Some((40 * MINUTE, 80 * MINUTE)),
        |i| (i % 10) as f64,
    ));
    // One sample every five minutes.
    let mut sparse = samples(
        &[("__name__", "sparse"), ("job", "batch")],
        5 * MINUTE,
        115 * MINUTE,
        None,
        |i| i as f64 * 2.0,
    );
    sparse.samples = sparse.samples.into_iter().step_by(20).collect();
    out.push(sparse);
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    out
}

/// A series with a sample every interval over the whole two hours.
fn full(labels: &[(&str, &str)], value: impl Fn(usize) -> f64) -> SeriesSamples {
    samples(labels, 0, 120 * MINUTE, None, value)
}

/// A series with a sample every interval in `[from, to]` (offsets from
/// [`DATASET_START`]) except strictly inside `gap`; `value(i)` for the
/// `i`-th interval since the start.
fn samples(
    labels: &[(&str, &str)],
    from: i64,
    to: i64,
    gap: Option<(i64, i64)>,
    value: impl Fn(usize) -> f64,
) -> SeriesSamples {
    let samples = (0..)
        .map(|i: usize| (i, i as i64 * DATASET_INTERVAL))
        .take_while(|&(_, offset)| offset <= to)
        .filter(|&(_, offset)| offset >= from)
        .filter(|&(_, offset)| gap.is_none_or(|(g0, g1)| offset <= g0 || offset >= g1))
        .map(|(i, offset)| Sample::new(DATASET_START + offset, value(i)))
        .collect();
    SeriesSamples {
        labels: Labels::new(labels.iter().copied()),
        samples,
    }
}

/// Runs every check against the StoreAPI server at `addr` (`host:port`).
///
/// The server must hold [`dataset`] at least within `[mint, maxt]` (it may
/// hold more of it, or all), with `external_labels` as its external labels,
/// and support `without_replica_labels`. The external labels must not make
/// two dataset series equal. Queries stay within `[mint, maxt]`.
///
/// Returns every failed check, one per line, each starting with the
/// check's name.
pub async fn check(
    addr: &str,
    external_labels: &Labels,
    mint: Timestamp,
    maxt: Timestamp,
) -> Result<(), String> {
    check_data(addr, external_labels, mint, maxt, dataset()).await
}

/// [`check`] against `data`: [`dataset`] as a server's path in changed it
/// in a way the server is not to blame for (remote write 1.0 cannot carry
/// `-0.0`: protobuf 3 omits a double equal to 0, in Go as in prost, so
/// Prometheus stores `+0.0`).
pub async fn check_data(
    addr: &str,
    external_labels: &Labels,
    mint: Timestamp,
    maxt: Timestamp,
    data: Vec<SeriesSamples>,
) -> Result<(), String> {
    let suite = Suite::connect(addr, external_labels, mint, maxt, data).await?;
    let mut report = Report::default();
    report.record("series_equal_matcher", suite.series_equal_matcher().await);
    report.record(
        "series_not_equal_matcher",
        suite.series_not_equal_matcher().await,
    );
    report.record("series_regex_matcher", suite.series_regex_matcher().await);
    report.record(
        "series_not_regex_matcher",
        suite.series_not_regex_matcher().await,
    );
    report.record(
        "series_empty_value_matcher",
        suite.series_empty_value_matcher().await,
    );
    report.record(
        "external_label_matchers",
        suite.external_label_matchers().await,
    );
    report.record("no_matchers", suite.no_matchers().await);
    report.record("invalid_matchers", suite.invalid_matchers().await);
    report.record("time_ranges", suite.time_ranges().await);
    report.record("skip_chunks", suite.skip_chunks().await);
    report.record(
        "without_replica_labels",
        suite.without_replica_labels().await,
    );
    report.record("limit", suite.limit().await);
    report.record("batched_responses", suite.batched_responses().await);
    report.record("label_names", suite.label_names().await);
    report.record("label_values", suite.label_values().await);
    report.record("info", suite.info().await);
    report.finish()
}

type CheckResult = Result<(), String>;

/// The failed checks.
#[derive(Default)]
struct Report {
    failures: Vec<String>,
}

impl Report {
    fn record(&mut self, name: &str, result: CheckResult) {
        if let Err(e) = result {
            self.failures.push(format!("{name}: {e}"));
        }
    }

    fn finish(self) -> CheckResult {
        if self.failures.is_empty() {
            Ok(())
        } else {
            Err(self.failures.join("\n"))
        }
    }
}

/// A dataset series as the server must return it.
struct Expected {
    /// Stored labels extended by the external labels.
    labels: Labels,
    samples: Vec<Sample>,
}

/// A `Series` call that did not give a usable answer.
enum CallError {
    /// The server answered with an error status.
    Status(tonic::Status),
    /// The answer broke a wire guarantee.
    Violation(String),
}

impl From<CallError> for String {
    fn from(e: CallError) -> String {
        match e {
            CallError::Status(s) => format!("request failed: {:?}: {}", s.code(), s.message()),
            CallError::Violation(v) => v,
        }
    }
}

/// A `Series` answer after the wire checks, frames merged.
struct Received {
    series: Vec<ReceivedSeries>,
    /// How many `batch` messages there were.
    batches: usize,
}

struct ReceivedSeries {
    labels: Labels,
    chunks: Vec<pb::AggrChunk>,
}

/// What a query must (and may) return: by the labels as returned.
struct Want {
    series: BTreeMap<Labels, WantSeries>,
    mint: Timestamp,
    maxt: Timestamp,
}

struct WantSeries {
    /// It has samples in the range: it must be returned.
    required: bool,
    /// Its samples within the range; `None` when several dataset series
    /// became this one (after label removal) and samples are not compared.
    samples: Option<Vec<Sample>>,
}

struct Suite {
    store: StoreClient<Channel>,
    info: InfoClient<Channel>,
    external: Labels,
    mint: Timestamp,
    maxt: Timestamp,
    data: Vec<Expected>,
}

fn matcher(op: MatchOp, name: &str, value: &str) -> Matcher {
    Matcher::new(op, name, value).expect("the suite's regexes are valid")
}

fn eq(name: &str, value: &str) -> Matcher {
    Matcher::equal(name, value)
}

fn re(name: &str, value: &str) -> Matcher {
    matcher(MatchOp::RegexMatch, name, value)
}

fn matches_all(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers
        .iter()
        .all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
}

fn in_range(samples: &[Sample], mint: Timestamp, maxt: Timestamp) -> Vec<Sample> {
    samples
        .iter()
        .filter(|s| s.t >= mint && s.t <= maxt)
        .copied()
        .collect()
}

/// Up to five problems, and how many more there were.
fn summarize(problems: Vec<String>) -> CheckResult {
    if problems.is_empty() {
        return Ok(());
    }
    let mut out = problems
        .iter()
        .take(5)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if problems.len() > 5 {
        let _ = write!(out, "; and {} more", problems.len() - 5);
    }
    Err(out)
}

fn expect_status(what: &str, result: Result<Received, CallError>, code: Code) -> CheckResult {
    match result {
        Err(CallError::Status(s)) if s.code() == code => Ok(()),
        Err(CallError::Status(s)) => Err(format!(
            "{what}: want {code:?}, got {:?}: {}",
            s.code(),
            s.message()
        )),
        Err(CallError::Violation(v)) => Err(format!("{what}: want {code:?}, got {v}")),
        Ok(r) => Err(format!(
            "{what}: want {code:?}, got {} series",
            r.series.len()
        )),
    }
}

fn expect_label_status<T>(what: &str, result: Result<T, tonic::Status>, code: Code) -> CheckResult {
    match result {
        Err(s) if s.code() == code => Ok(()),
        Err(s) => Err(format!(
            "{what}: want {code:?}, got {:?}: {}",
            s.code(),
            s.message()
        )),
        Ok(_) => Err(format!("{what}: want {code:?}, got an answer")),
    }
}

/// Checks a wire label set: sorted by name, unique, nothing empty.
fn wire_labels(labels: &[pb::Label]) -> Result<Labels, String> {
    let l = labels_from_proto(labels);
    let sorted_unique = labels.windows(2).all(|w| w[0].name < w[1].name);
    let non_empty = labels
        .iter()
        .all(|l| !l.name.is_empty() && !l.value.is_empty());
    if !sorted_unique || !non_empty {
        let raw: Vec<String> = labels
            .iter()
            .map(|l| format!("{}={:?}", l.name, l.value))
            .collect();
        return Err(format!(
            "series labels not sorted, not unique or empty: [{}]",
            raw.join(", ")
        ));
    }
    Ok(l)
}

/// Decodes one wire chunk after checking it: raw XOR data, hash, bounds.
fn decode_chunk(labels: &Labels, c: &pb::AggrChunk) -> Result<Vec<Sample>, String> {
    let at = || format!("series {labels}, chunk [{}, {}]", c.min_time, c.max_time);
    let raw = c
        .raw
        .as_ref()
        .ok_or_else(|| format!("{}: no raw chunk", at()))?;
    if raw.r#type != pb::chunk::Encoding::Xor as i32 {
        return Err(format!("{}: encoding {} is not XOR", at(), raw.r#type));
    }
    if raw.hash != 0 && raw.hash != chunk_hash(&raw.data) {
        return Err(format!("{}: hash is not the xxhash64 of the data", at()));
    }
    let samples = XorIterator::new(&raw.data)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", at()))?;
    match (samples.first(), samples.last()) {
        (Some(first), Some(last)) if first.t == c.min_time && last.t == c.max_time => Ok(samples),
        (Some(first), Some(last)) => {
            Err(format!("{}: holds samples [{}, {}]", at(), first.t, last.t))
        }
        _ => Err(format!("{}: empty chunk", at())),
    }
}

/// A received series' samples in `[mint, maxt]`, overlapping chunks merged
/// (one sample per timestamp, the first chunk's).
fn received_samples(
    s: &ReceivedSeries,
    mint: Timestamp,
    maxt: Timestamp,
) -> Result<Vec<Sample>, String> {
    let mut out = Vec::new();
    for c in &s.chunks {
        out.extend(decode_chunk(&s.labels, c)?);
    }
    out.sort_by_key(|s| s.t);
    out.dedup_by_key(|s| s.t);
    Ok(in_range(&out, mint, maxt))
}

/// Where two sample lists first differ.
fn sample_difference(got: &[Sample], want: &[Sample]) -> String {
    let at = got
        .iter()
        .zip(want)
        .position(|(g, w)| g != w)
        .unwrap_or(got.len().min(want.len()));
    format!(
        "got {} samples, want {}; first difference at #{at}: got {:?}, want {:?}",
        got.len(),
        want.len(),
        got.get(at),
        want.get(at)
    )
}

impl Suite {
    async fn connect(
        addr: &str,
        external: &Labels,
        mint: Timestamp,
        maxt: Timestamp,
        dataset: Vec<SeriesSamples>,
    ) -> Result<Self, String> {
        let uri = if addr.contains("://") {
            addr.to_string()
        } else {
            format!("http://{addr}")
        };
        let channel = Endpoint::from_shared(uri)
            .map_err(|e| format!("invalid address {addr:?}: {e}"))?
            .connect()
            .await
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        let data: Vec<Expected> = dataset
            .into_iter()
            .map(|s| Expected {
                labels: extend_labels(&s.labels, external, &[]),
                samples: s.samples,
            })
            .collect();
        let distinct: BTreeSet<&Labels> = data.iter().map(|e| &e.labels).collect();
        if distinct.len() != data.len() {
            return Err(format!(
                "external labels {external} make dataset series equal; choose other names"
            ));
        }
        Ok(Self {
            store: StoreClient::new(channel.clone()).max_decoding_message_size(usize::MAX),
            info: InfoClient::new(channel).max_decoding_message_size(usize::MAX),
            external: external.clone(),
            mint,
            maxt,
            data,
        })
    }

    fn request(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> pb::SeriesRequest {
        pb::SeriesRequest {
            min_time: mint,
            max_time: maxt,
            matchers: matchers_to_proto(matchers),
            ..Default::default()
        }
    }

    /// Sends a `Series` request and checks the wire guarantees of the
    /// answer (module docs), merging the frames of each series.
    async fn call(&self, req: pb::SeriesRequest) -> Result<Received, CallError> {
        let skip_chunks = req.skip_chunks;
        let mut stream = self
            .store
            .clone()
            .series(req)
            .await
            .map_err(CallError::Status)?
            .into_inner();
        let mut received = Received {
            series: Vec::new(),
            batches: 0,
        };
        while let Some(msg) = stream.message().await.map_err(CallError::Status)? {
            match msg.result {
                Some(series_response::Result::Series(s)) => {
                    push_frame(&mut received, &s, skip_chunks).map_err(CallError::Violation)?
                }
                Some(series_response::Result::Batch(b)) => {
                    received.batches += 1;
                    for s in &b.series {
                        push_frame(&mut received, s, skip_chunks).map_err(CallError::Violation)?;
                    }
                }
                Some(series_response::Result::Warning(_))
                | Some(series_response::Result::Hints(_))
                | None => {}
            }
        }
        for s in &received.series {
            if !s.chunks.is_sorted_by_key(|c| c.min_time) {
                return Err(CallError::Violation(format!(
                    "series {}: chunks not sorted by min_time",
                    s.labels
                )));
            }
        }
        Ok(received)
    }

    /// The dataset series matching `matchers` for a query over
    /// `[mint, maxt]`, with labels mapped by `relabel` (series mapped to
    /// the same labels become one, its samples not compared).
    fn want_with(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
        relabel: impl Fn(&Labels) -> Labels,
    ) -> Want {
        let mut series: BTreeMap<Labels, WantSeries> = BTreeMap::new();
        for e in self
            .data
            .iter()
            .filter(|e| matches_all(matchers, &e.labels))
        {
            let samples = in_range(&e.samples, mint, maxt);
            let required = !samples.is_empty();
            let spans = e.samples.first().is_some_and(|s| s.t < mint)
                && e.samples.last().is_some_and(|s| s.t > maxt);
            if !required && !spans {
                continue;
            }
            series
                .entry(relabel(&e.labels))
                .and_modify(|w| {
                    w.required |= required;
                    w.samples = None;
                })
                .or_insert(WantSeries {
                    required,
                    samples: Some(samples),
                });
        }
        Want { series, mint, maxt }
    }

    fn want(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Want {
        self.want_with(matchers, mint, maxt, Labels::clone)
    }

    /// Compares an answer with what is wanted: no unexpected series, every
    /// required one present, and (unless labels only) the samples within
    /// the range equal.
    fn compare(&self, got: &Received, want: &Want, samples: bool) -> CheckResult {
        let mut problems = Vec::new();
        let mut seen = BTreeSet::new();
        for s in &got.series {
            seen.insert(&s.labels);
            let Some(w) = want.series.get(&s.labels) else {
                problems.push(format!("unexpected series {}", s.labels));
                continue;
            };
            let Some(want_samples) = w.samples.as_ref().filter(|_| samples) else {
                continue;
            };
            match received_samples(s, want.mint, want.maxt) {
                Ok(got_samples) if &got_samples == want_samples => {}
                Ok(got_samples) => problems.push(format!(
                    "series {}: {}",
                    s.labels,
                    sample_difference(&got_samples, want_samples)
                )),
                Err(e) => problems.push(e),
            }
        }
        for (labels, w) in &want.series {
            if w.required && !seen.contains(labels) {
                problems.push(format!("missing series {labels}"));
            }
        }
        summarize(problems)
    }

    /// Runs a query over the full range and compares it with the dataset.
    async fn query(&self, matchers: &[Matcher]) -> CheckResult {
        let what = matchers_text(matchers);
        let got = self
            .call(self.request(matchers, self.mint, self.maxt))
            .await
            .map_err(|e| format!("{what}: {}", String::from(e)))?;
        let want = self.want(matchers, self.mint, self.maxt);
        if want.series.is_empty() {
            return Err(format!("{what}: the suite expects series here"));
        }
        self.compare(&got, &want, true)
            .map_err(|e| format!("{what}: {e}"))
    }

    /// `=` selects exactly the series with that value, with all their
    /// samples in the range.
    async fn series_equal_matcher(&self) -> CheckResult {
        self.query(&[eq("__name__", "http_requests_total")]).await?;
        self.query(&[eq("__name__", "up"), eq("job", "batch")])
            .await
    }

    /// `!=` also selects series without the label (missing = "").
    async fn series_not_equal_matcher(&self) -> CheckResult {
        self.query(&[
            re("__name__", "http_requests_total|up"),
            matcher(MatchOp::NotEqual, "method", "POST"),
        ])
        .await?;
        self.query(&[
            eq("__name__", "up"),
            matcher(MatchOp::NotEqual, "job", "api"),
        ])
        .await
    }

    /// `=~` is fully anchored; alternations, classes and a matcher on a
    /// non-name label alone work.
    async fn series_regex_matcher(&self) -> CheckResult {
        self.query(&[
            re("__name__", "node_.+"),
            re("mode", "idle|user"),
            re("cpu", "0"),
        ])
        .await?;
        self.query(&[re("instance", "host-[12]")]).await?;
        self.query(&[re("__name__", "http_.*"), re("path", ".*é")])
            .await
    }

    /// `!~` selects series without the label too.
    async fn series_not_regex_matcher(&self) -> CheckResult {
        self.query(&[
            re("__name__", ".+"),
            matcher(MatchOp::RegexNoMatch, "job", "api|web"),
        ])
        .await
    }

    /// `label=""` and `label=~""` select series without that label.
    async fn series_empty_value_matcher(&self) -> CheckResult {
        self.query(&[eq("__name__", "up"), eq("method", "")])
            .await?;
        self.query(&[eq("__name__", "http_requests_total"), re("path", "")])
            .await
    }

    /// §3.2: a matcher on an external label that matches its value is
    /// satisfied (same answer as without it); one that does not match makes
    /// the answer empty, not an error; only external-label matchers is
    /// `InvalidArgument`. The external value wins over a stored label of the
    /// same name (checked through the expected labels of every query).
    async fn external_label_matchers(&self) -> CheckResult {
        let up = eq("__name__", "up");
        for l in self.external.iter() {
            self.query(&[up.clone(), eq(l.name, l.value)]).await?;
            self.query(&[up.clone(), re(l.name, ".+")]).await?;
            self.query(&[re("__name__", ".+"), re(l.name, &regex_escape(l.value))])
                .await?;
            let other = matcher(MatchOp::NotEqual, l.name, l.value);
            let got = self
                .call(self.request(&[up.clone(), other.clone()], self.mint, self.maxt))
                .await
                .map_err(String::from)?;
            if !got.series.is_empty() {
                return Err(format!(
                    "{}: want no series, got {}",
                    matchers_text(&[up.clone(), other]),
                    got.series.len()
                ));
            }
            let only = [eq(l.name, l.value)];
            expect_status(
                &matchers_text(&only),
                self.call(self.request(&only, self.mint, self.maxt)).await,
                Code::InvalidArgument,
            )?;
        }
        // A stored label of an external label's name is not matched on.
        if let Some(value) = self.external.get("cluster") {
            if value != "stored" {
                let stored = [eq("__name__", "legacy_metric"), eq("cluster", "stored")];
                let got = self
                    .call(self.request(&stored, self.mint, self.maxt))
                    .await
                    .map_err(String::from)?;
                if !got.series.is_empty() {
                    return Err(format!(
                        "{}: the stored value of external label cluster matched",
                        matchers_text(&stored)
                    ));
                }
            }
        }
        Ok(())
    }

    /// A request without any matcher is `InvalidArgument`.
    async fn no_matchers(&self) -> CheckResult {
        expect_status(
            "{}",
            self.call(self.request(&[], self.mint, self.maxt)).await,
            Code::InvalidArgument,
        )
    }

    /// A regex that does not compile, or an unknown matcher type, is
    /// `InvalidArgument`.
    async fn invalid_matchers(&self) -> CheckResult {
        let mut req = self.request(&[eq("__name__", "up")], self.mint, self.maxt);
        req.matchers.push(pb::LabelMatcher {
            r#type: pb::label_matcher::Type::Re as i32,
            name: "job".into(),
            value: "(".into(),
        });
        expect_status(
            "job=~\"(\"",
            self.call(req.clone()).await,
            Code::InvalidArgument,
        )?;
        if let Some(m) = req.matchers.last_mut() {
            m.r#type = 42;
        }
        expect_status(
            "matcher type 42",
            self.call(req).await,
            Code::InvalidArgument,
        )
    }

    /// §3.1: for sub-ranges (second hour, first ten minutes, inside the
    /// 40-minute gap, a single sample time, between two sample times), the
    /// time-range rule of the module docs holds for every series.
    async fn time_ranges(&self) -> CheckResult {
        let at = |m: i64| DATASET_START + m * MINUTE;
        let ranges = [
            (at(60), at(120)),
            (at(0), at(10)),
            (at(45), at(75)),
            (at(30), at(30)),
            (at(30) + 1, at(30) + DATASET_INTERVAL - 1),
            (self.mint, self.maxt),
        ];
        let all = [re("__name__", ".+")];
        let mut tested = 0;
        for (a, b) in ranges {
            let (a, b) = (a.max(self.mint), b.min(self.maxt));
            if a > b {
                continue;
            }
            tested += 1;
            let got = self
                .call(self.request(&all, a, b))
                .await
                .map_err(|e| format!("[{a}, {b}]: {}", String::from(e)))?;
            self.compare(&got, &self.want(&all, a, b), true)
                .map_err(|e| format!("[{a}, {b}]: {e}"))?;
        }
        if tested == 0 {
            return Err(format!(
                "[{}, {}] does not overlap the dataset's time range",
                self.mint, self.maxt
            ));
        }
        Ok(())
    }

    /// `skip_chunks`: the same series, labels only.
    async fn skip_chunks(&self) -> CheckResult {
        let all = [re("__name__", ".+")];
        let mut req = self.request(&all, self.mint, self.maxt);
        req.skip_chunks = true;
        let got = self.call(req).await.map_err(String::from)?;
        self.compare(&got, &self.want(&all, self.mint, self.maxt), false)
    }

    /// §3.4: the named labels (external ones and stored ones, here every
    /// external label name, `replica` and `instance`) are gone from every
    /// series, the stream is sorted after the removal, series that became
    /// equal come as one (or adjacent frames), and series that stayed
    /// distinct keep their samples.
    async fn without_replica_labels(&self) -> CheckResult {
        let mut names: Vec<String> = self.external.iter().map(|l| l.name.to_string()).collect();
        names.extend(["replica".to_string(), "instance".to_string()]);
        names.sort();
        names.dedup();
        let all = [re("__name__", ".+")];
        for skip_chunks in [false, true] {
            let mut req = self.request(&all, self.mint, self.maxt);
            req.without_replica_labels = names.clone();
            req.skip_chunks = skip_chunks;
            let got = self.call(req).await.map_err(String::from)?;
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let want = self.want_with(&all, self.mint, self.maxt, |l| l.without(&refs));
            self.compare(&got, &want, !skip_chunks)
                .map_err(|e| format!("without {names:?}: {e}"))?;
        }
        Ok(())
    }

    /// `limit`: at most that many series, all of them expected ones.
    async fn limit(&self) -> CheckResult {
        let matchers = [eq("__name__", "http_requests_total")];
        let mut req = self.request(&matchers, self.mint, self.maxt);
        req.limit = 3;
        let got = self.call(req).await.map_err(String::from)?;
        if got.series.is_empty() || got.series.len() > 3 {
            return Err(format!("limit 3: got {} series", got.series.len()));
        }
        let want = self.want(&matchers, self.mint, self.maxt);
        let unexpected: Vec<String> = got
            .series
            .iter()
            .filter(|s| !want.series.contains_key(&s.labels))
            .map(|s| format!("unexpected series {}", s.labels))
            .collect();
        summarize(unexpected)
    }

    /// §3.3: with `response_batch_size`, the answer (in `series` or `batch`
    /// messages, either is allowed) is the same series and samples.
    async fn batched_responses(&self) -> CheckResult {
        let all = [re("__name__", ".+")];
        let mut req = self.request(&all, self.mint, self.maxt);
        req.response_batch_size = 7;
        let got = self.call(req).await.map_err(String::from)?;
        self.compare(&got, &self.want(&all, self.mint, self.maxt), true)
    }

    async fn call_label_names(
        &self,
        matchers: &[Matcher],
        without: &[String],
        limit: i64,
    ) -> Result<Vec<String>, tonic::Status> {
        let req = pb::LabelNamesRequest {
            start: self.mint,
            end: self.maxt,
            matchers: matchers_to_proto(matchers),
            without_replica_labels: without.to_vec(),
            limit,
            ..Default::default()
        };
        Ok(self
            .store
            .clone()
            .label_names(req)
            .await?
            .into_inner()
            .names)
    }

    async fn call_label_values(
        &self,
        label: &str,
        matchers: &[Matcher],
        without: &[String],
    ) -> Result<Vec<String>, tonic::Status> {
        let req = pb::LabelValuesRequest {
            label: label.to_string(),
            start: self.mint,
            end: self.maxt,
            matchers: matchers_to_proto(matchers),
            without_replica_labels: without.to_vec(),
            ..Default::default()
        };
        Ok(self
            .store
            .clone()
            .label_values(req)
            .await?
            .into_inner()
            .values)
    }

    /// What label names/values may come back for `matchers` over the full
    /// range: at least those of series with samples in the range, at most
    /// those of any matching series (stores answer at block granularity).
    fn label_bounds(
        &self,
        matchers: &[Matcher],
        of: impl Fn(&Labels) -> Vec<String>,
    ) -> (BTreeSet<String>, BTreeSet<String>) {
        let mut lower = BTreeSet::new();
        let mut upper = BTreeSet::new();
        for e in self
            .data
            .iter()
            .filter(|e| matches_all(matchers, &e.labels))
        {
            let found = of(&e.labels);
            if e.samples
                .iter()
                .any(|s| s.t >= self.mint && s.t <= self.maxt)
            {
                lower.extend(found.iter().cloned());
            }
            upper.extend(found);
        }
        (lower, upper)
    }

    /// §3.7 names: sorted and unique, between the bounds of
    /// [`Self::label_bounds`] (external label names included), empty when an
    /// external-label matcher does not match, without the
    /// `without_replica_labels`, at most `limit`.
    async fn label_names(&self) -> CheckResult {
        let names_of = |l: &Labels| l.iter().map(|l| l.name.to_string()).collect::<Vec<_>>();
        for matchers in [
            vec![],
            vec![eq("__name__", "up")],
            vec![re("job", "api|web")],
        ] {
            let what = matchers_text(&matchers);
            let got = self
                .call_label_names(&matchers, &[], 0)
                .await
                .map_err(|s| format!("{what}: {:?}: {}", s.code(), s.message()))?;
            let (lower, upper) = self.label_bounds(&matchers, names_of);
            check_between(&what, &got, &lower, &upper)?;
        }
        let mut without: Vec<String> = self.external.iter().map(|l| l.name.to_string()).collect();
        without.push("replica".into());
        let got = self
            .call_label_names(&[], &without, 0)
            .await
            .map_err(|s| format!("without {without:?}: {}", s.message()))?;
        if let Some(n) = got.iter().find(|n| without.contains(n)) {
            return Err(format!("without {without:?}: got name {n}"));
        }
        if got.is_empty() {
            return Err(format!("without {without:?}: no names"));
        }
        let got = self
            .call_label_names(&[], &[], 2)
            .await
            .map_err(|s| format!("limit 2: {}", s.message()))?;
        if got.is_empty() || got.len() > 2 {
            return Err(format!("limit 2: got {} names", got.len()));
        }
        for l in self.external.iter() {
            let other = [matcher(MatchOp::NotEqual, l.name, l.value)];
            let got = self
                .call_label_names(&other, &[], 0)
                .await
                .map_err(|s| format!("{}: {}", matchers_text(&other), s.message()))?;
            if !got.is_empty() {
                return Err(format!(
                    "{}: want no names, got {got:?}",
                    matchers_text(&other)
                ));
            }
        }
        Ok(())
    }

    /// §3.7 values: sorted and unique, between the bounds; an external
    /// label's values are just its value (never a stored value of that
    /// name), and none when no series matches the other matchers; an empty
    /// label name is `InvalidArgument`; a non-matching external-label
    /// matcher or a label in `without_replica_labels` gives no values.
    async fn label_values(&self) -> CheckResult {
        let cases: Vec<(&str, Vec<Matcher>)> = vec![
            ("job", vec![]),
            ("instance", vec![eq("__name__", "up"), eq("job", "api")]),
            ("path", vec![]),
            ("replica", vec![]),
            ("__name__", vec![re("job", ".+")]),
        ];
        for (label, matchers) in cases {
            let what = format!("{label} {}", matchers_text(&matchers));
            let got = self
                .call_label_values(label, &matchers, &[])
                .await
                .map_err(|s| format!("{what}: {:?}: {}", s.code(), s.message()))?;
            let (lower, upper) = self.label_bounds(&matchers, |l| {
                l.get(label).map(str::to_string).into_iter().collect()
            });
            check_between(&what, &got, &lower, &upper)?;
        }
        for l in self.external.iter() {
            for (matchers, want) in [
                (vec![], vec![l.value.to_string()]),
                (vec![eq("__name__", "up")], vec![l.value.to_string()]),
                (vec![eq("__name__", "no_such_metric")], vec![]),
                (vec![matcher(MatchOp::NotEqual, l.name, l.value)], vec![]),
            ] {
                let what = format!("{} {}", l.name, matchers_text(&matchers));
                let got = self
                    .call_label_values(l.name, &matchers, &[])
                    .await
                    .map_err(|s| format!("{what}: {:?}: {}", s.code(), s.message()))?;
                if got != want {
                    return Err(format!("{what}: got {got:?}, want {want:?}"));
                }
            }
        }
        let got = self
            .call_label_values("job", &[], &["job".to_string()])
            .await
            .map_err(|s| format!("job without [job]: {}", s.message()))?;
        if !got.is_empty() {
            return Err(format!("job without [job]: got {got:?}"));
        }
        expect_label_status(
            "empty label name",
            self.call_label_values("", &[], &[]).await,
            Code::InvalidArgument,
        )
    }

    /// §3.9: `store` is announced with `supports_without_replica_labels`,
    /// the label sets include the external labels, and the time range
    /// covers the data in `[mint, maxt]`.
    async fn info(&self) -> CheckResult {
        let resp = self
            .info
            .clone()
            .info(InfoRequest {})
            .await
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
            .into_inner();
        let store = resp.store.ok_or("no store info")?;
        if !store.supports_without_replica_labels {
            return Err("supports_without_replica_labels is false".into());
        }
        if !self.external.is_empty() {
            let sets: Vec<Labels> = resp
                .label_sets
                .iter()
                .map(|s| labels_from_proto(&s.labels))
                .collect();
            if !sets.contains(&self.external) {
                return Err(format!(
                    "label sets {sets:?} do not include {}",
                    self.external
                ));
            }
        }
        let times = self
            .data
            .iter()
            .flat_map(|e| e.samples.iter().map(|s| s.t))
            .filter(|&t| t >= self.mint && t <= self.maxt);
        let (first, last) = times.fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)));
        if store.min_time > first || store.max_time < last {
            return Err(format!(
                "time range [{}, {}] does not cover the data [{first}, {last}]",
                store.min_time, store.max_time
            ));
        }
        Ok(())
    }
}

/// Adds a `Series` message to the answer: a new series, or the next frame
/// of the previous one; out-of-order series are a violation.
fn push_frame(received: &mut Received, s: &pb::Series, skip_chunks: bool) -> Result<(), String> {
    let labels = wire_labels(&s.labels)?;
    if skip_chunks && !s.chunks.is_empty() {
        return Err(format!("series {labels}: chunks despite skip_chunks"));
    }
    match received.series.last_mut() {
        Some(last) if last.labels == labels => {
            last.chunks.extend(s.chunks.iter().cloned());
            return Ok(());
        }
        Some(last) if last.labels > labels => {
            return Err(format!("series not sorted: {labels} after {}", last.labels));
        }
        _ => {}
    }
    received.series.push(ReceivedSeries {
        labels,
        chunks: s.chunks.clone(),
    });
    Ok(())
}

/// Checks a names/values answer: sorted, unique, `lower ⊆ got ⊆ upper`.
fn check_between(
    what: &str,
    got: &[String],
    lower: &BTreeSet<String>,
    upper: &BTreeSet<String>,
) -> CheckResult {
    if !got.windows(2).all(|w| w[0] < w[1]) {
        return Err(format!("{what}: not sorted or not unique: {got:?}"));
    }
    let got_set: BTreeSet<String> = got.iter().cloned().collect();
    let missing: Vec<&String> = lower.difference(&got_set).collect();
    let extra: Vec<&String> = got_set.difference(upper).collect();
    if !missing.is_empty() || !extra.is_empty() {
        return Err(format!("{what}: missing {missing:?}, unexpected {extra:?}"));
    }
    Ok(())
}

fn matchers_text(matchers: &[Matcher]) -> String {
    let inner: Vec<String> = matchers.iter().map(Matcher::to_string).collect();
    format!("{{{}}}", inner.join(", "))
}

/// `value` as a regex matching only itself.
fn regex_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_is_sorted_distinct_and_varied() {
        let data = dataset();
        assert_eq!(data.len(), 36);
        assert!(data.windows(2).all(|w| w[0].labels < w[1].labels));
        for s in &data {
            assert!(
                s.samples.windows(2).all(|w| w[0].t < w[1].t),
                "{}",
                s.labels
            );
            assert!(s.samples.first().is_some_and(|x| x.t >= DATASET_START));
            assert!(s.samples.last().is_some_and(|x| x.t <= DATASET_END));
        }
        let gap = data
            .iter()
            .find(|s| s.labels.metric_name() == Some("with_gap"))
            .unwrap();
        assert!(!gap
            .samples
            .iter()
            .any(|s| s.t > DATASET_START + 40 * MINUTE && s.t < DATASET_START + 80 * MINUTE));
        let sparse = data
            .iter()
            .find(|s| s.labels.metric_name() == Some("sparse"))
            .unwrap();
        assert!(sparse.samples.len() < 30);
    }

    #[test]
    fn regex_escape_matches_only_the_value() {
        let v = "a.b|c(d)";
        let m = re("x", &regex_escape(v));
        assert!(m.matches(v));
        assert!(!m.matches("aXb|c(d)"));
    }
}
