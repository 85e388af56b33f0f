//! The report: one row per fault and a summary, as `report.md` (Markdown
//! tables) and `report.json` (the same data), and the verdict with its
//! reasons.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::checks::CheckOutcome;
use crate::faults::FaultKind;
use crate::load::WriteTotals;
use crate::probes::ProbeCounts;

/// A leader kill must not keep writes out longer than this, at p99.
pub const LEADER_KILL_RECOVERY_LIMIT: Duration = Duration::from_secs(5);

/// A fault after which writes took longer than this (seconds) to go
/// through again gets its failed attempts listed in the Markdown notes.
const SLOW_RECOVERY_S: f64 = 3.0;

/// One fault and what it did.
#[derive(Clone, Debug, Serialize)]
pub struct FaultRow {
    pub number: usize,
    pub fault: FaultKind,
    pub target: String,
    pub started_s: f64,
    pub length_s: f64,
    /// From injection to the acknowledgement of the first write first
    /// attempted after it; none if no write went through within a minute
    /// of healing.
    pub recovery_s: Option<f64>,
    pub writes_failed: usize,
    /// Each failed write attempt of the window: seconds after the
    /// injection, the ingester and why.
    pub write_failures: Vec<String>,
    pub queries: ProbeCounts,
    /// Distinct warnings of the partial answers, with their counts.
    pub partial_warnings: Vec<(String, usize)>,
    /// Distinct errors of the failed probes, with their counts.
    pub query_failures: Vec<(String, usize)>,
    pub check: CheckOutcome,
    pub notes: Vec<String>,
    /// Why the fault could not be run or healed, if so.
    pub error: Option<String>,
}

/// Recovery times of a set of faults.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Recovery {
    pub count: usize,
    /// Faults after which no write went through.
    pub never: usize,
    pub p50_s: f64,
    pub p99_s: f64,
    pub max_s: f64,
}

impl Recovery {
    pub fn of(times: &[Option<f64>]) -> Recovery {
        let mut sorted: Vec<f64> = times.iter().flatten().copied().collect();
        sorted.sort_by(f64::total_cmp);
        Recovery {
            count: times.len(),
            never: times.iter().filter(|t| t.is_none()).count(),
            p50_s: percentile(&sorted, 0.50),
            p99_s: percentile(&sorted, 0.99),
            max_s: sorted.last().copied().unwrap_or(0.0),
        }
    }
}

/// The nearest-rank percentile `p` (0..=1) of ascending values; 0 if none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// How the run was set up.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    pub project: String,
    /// The `run` label of the series written.
    pub run: String,
    pub seed: u64,
    pub duration_s: f64,
    pub faults: usize,
    pub fault_length_s: f64,
    pub s3_outage_s: f64,
    /// Series written per tenant.
    pub series: BTreeMap<String, usize>,
    pub shards: u64,
}

/// The suite's verdict.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Verdict {
    pub passed: bool,
    pub reasons: Vec<String>,
}

/// Everything the run found.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub settings: Settings,
    pub run_s: f64,
    pub faults: Vec<FaultRow>,
    pub faults_by_kind: BTreeMap<String, usize>,
    pub writes: BTreeMap<String, WriteTotals>,
    /// Samples acknowledged (requests times series), all tenants.
    pub acknowledged_samples: usize,
    pub leader_kill_recovery: Recovery,
    pub recovery_by_kind: BTreeMap<String, Recovery>,
    pub queries: ProbeCounts,
    /// Distinct warnings of partial answers over the run, with counts.
    pub partial_warnings: Vec<(String, usize)>,
    /// Distinct errors of failed probes over the run, with counts.
    pub query_failures: Vec<(String, usize)>,
    /// Distinct wrong answers over the run, with counts.
    pub anomalies: Vec<(String, usize)>,
    /// Wrong answers that came without warnings (a partial answer may
    /// miss series; a full one may not): each fails the run.
    pub wrong_full_answers: usize,
    pub final_check: CheckOutcome,
    pub verdict: Verdict,
}

impl Report {
    /// Fills in the totals and the verdict from the rows and final check.
    pub fn summarize(&mut self) {
        self.faults_by_kind.clear();
        let mut by_kind: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
        for row in &self.faults {
            *self
                .faults_by_kind
                .entry(row.fault.name().into())
                .or_default() += 1;
            by_kind
                .entry(row.fault.name().into())
                .or_default()
                .push(row.recovery_s);
        }
        self.recovery_by_kind = by_kind
            .iter()
            .map(|(k, times)| (k.clone(), Recovery::of(times)))
            .collect();
        self.leader_kill_recovery = self
            .recovery_by_kind
            .get(FaultKind::LeaderKill.name())
            .cloned()
            .unwrap_or_default();
        self.verdict = verdict(self);
    }
}

/// Why the run fails, if it does: acknowledged samples lost, a sample
/// twice or never sent, replicas that differ at the end, tenants' reads
/// mixed, writes refused, a query answered in full but wrong, a leader
/// kill keeping writes out more than 5 s at p99, or a fault the suite
/// could not run.
pub fn verdict(report: &Report) -> Verdict {
    let mut reasons = Vec::new();
    let last = &report.final_check;
    if last.querier.lost > 0 {
        reasons.push(format!(
            "{} acknowledged samples lost (final check): {}",
            last.querier.lost,
            last.querier.problems.join("; ")
        ));
    }
    for row in &report.faults {
        let c = &row.check;
        if c.querier.lost > 0 {
            reasons.push(format!(
                "fault #{} ({}): {} acknowledged samples not readable through the querier 30 s \
                 after healing: {}",
                row.number,
                row.fault.name(),
                c.querier.lost,
                c.querier.problems.join("; ")
            ));
        }
        if let Some(e) = &row.error {
            reasons.push(format!(
                "fault #{} ({}) did not run: {e}",
                row.number,
                row.fault.name()
            ));
        }
        if !c.isolation_problems.is_empty() {
            reasons.push(format!(
                "fault #{}: tenants mixed: {}",
                row.number,
                c.isolation_problems.join("; ")
            ));
        }
    }
    let checks = report
        .faults
        .iter()
        .map(|r| (format!("fault #{}", r.number), &r.check))
        .chain(std::iter::once(("final check".to_string(), last)));
    for (what, c) in checks {
        for (read, s) in [("querier", &c.querier), ("replicas", &c.replica_samples)] {
            if s.duplicates > 0 || s.phantoms > 0 {
                reasons.push(format!(
                    "{what}: {} duplicates, {} phantoms in the {read}' reads: {}",
                    s.duplicates,
                    s.phantoms,
                    s.problems.join("; ")
                ));
            }
        }
    }
    if !last.replicas_identical {
        reasons.push(format!(
            "replicas differ at the end: {}",
            last.replica_problems
                .iter()
                .chain(&last.read_errors)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    if !last.isolation_problems.is_empty() {
        reasons.push(format!(
            "tenants mixed: {}",
            last.isolation_problems.join("; ")
        ));
    }
    let refused: usize = report.writes.values().map(|w| w.refused).sum();
    if refused > 0 {
        reasons.push(format!(
            "{refused} write requests refused (4xx), none expected"
        ));
    }
    if report.wrong_full_answers > 0 {
        reasons.push(format!(
            "{} query probes answered in full but wrong: {}",
            report.wrong_full_answers,
            report
                .anomalies
                .iter()
                .map(|(a, n)| format!("{a} ({n}x)"))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    let kills = &report.leader_kill_recovery;
    if kills.p99_s > LEADER_KILL_RECOVERY_LIMIT.as_secs_f64() {
        reasons.push(format!(
            "leader kills kept writes out {:.1}s at p99 (limit {}s)",
            kills.p99_s,
            LEADER_KILL_RECOVERY_LIMIT.as_secs()
        ));
    }
    if kills.never > 0 {
        reasons.push(format!(
            "after {} leader kills no write went through",
            kills.never
        ));
    }
    Verdict {
        passed: reasons.is_empty(),
        reasons,
    }
}

/// Distinct strings with their counts, most frequent first.
pub fn tally<'a>(items: impl IntoIterator<Item = &'a str>) -> Vec<(String, usize)> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for item in items {
        *counts.entry(item).or_default() += 1;
    }
    let mut out: Vec<(String, usize)> = counts
        .into_iter()
        .map(|(k, n)| (k.to_string(), n))
        .collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn seconds(s: Option<f64>) -> String {
    s.map_or("never".to_string(), |s| format!("{s:.2} s"))
}

/// A table cell: no pipes, no line breaks.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// `report.md`.
pub fn render_markdown(report: &Report) -> String {
    let mut md = String::new();
    let s = &report.settings;
    let _ = writeln!(md, "# Hearth chaos run\n");
    let _ = writeln!(
        md,
        "Project `{}`, run `{}`, seed {}, {:.0} s of load planned ({:.0} s run), {} faults, fault length \
         {:.0} s, S3 outage {:.0} s, {} shards. Series written: {}.\n",
        s.project,
        s.run,
        s.seed,
        s.duration_s,
        report.run_s,
        s.faults,
        s.fault_length_s,
        s.s3_outage_s,
        s.shards,
        s.series
            .iter()
            .map(|(t, n)| format!("{n} for tenant `{t}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        md,
        "**Verdict: {}**\n",
        if report.verdict.passed {
            "PASS"
        } else {
            "FAIL"
        }
    );
    for reason in &report.verdict.reasons {
        let _ = writeln!(md, "- {}", cell(reason));
    }
    if !report.verdict.reasons.is_empty() {
        md.push('\n');
    }

    let _ = writeln!(md, "## Faults\n");
    let _ = writeln!(
        md,
        "| # | fault | target | started (s) | length (s) | time to accept writes again | \
         writes failed | queries failed | queries partial | samples lost | duplicates | \
         replicas identical |"
    );
    let _ = writeln!(
        md,
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for r in &report.faults {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {} | {} |",
            r.number,
            r.fault.name(),
            cell(&r.target),
            r.started_s,
            r.length_s,
            seconds(r.recovery_s),
            r.writes_failed,
            r.queries.failed,
            r.queries.partial,
            r.check.querier.lost,
            r.check.querier.duplicates
                + r.check.querier.phantoms
                + r.check.replica_samples.duplicates
                + r.check.replica_samples.phantoms,
            yes_no(r.check.replicas_identical),
        );
    }
    let _ = writeln!(
        md,
        "\nTime to accept writes again: from the injection to the acknowledgement of the first \
         write first attempted after it. Writes failed: attempts answered 5xx, timed out or not \
         connected, both tenants, from the injection until it was healed and a write went \
         through again; queries: the probes in the same window. Samples lost, duplicates (and phantoms) and replicas: the \
         check after healing, through the querier and each ingester, retried up to 30 s."
    );
    let noted: Vec<&FaultRow> = report
        .faults
        .iter()
        .filter(|r| {
            !r.notes.is_empty()
                || r.error.is_some()
                || !r.check.clean()
                || r.recovery_s.is_some_and(|s| s > SLOW_RECOVERY_S)
        })
        .collect();
    if !noted.is_empty() {
        let _ = writeln!(md, "\nNotes:\n");
        for r in noted {
            let mut notes = r.notes.clone();
            // A slow recovery shows its failed attempts, to explain it.
            if r.recovery_s.is_some_and(|s| s > SLOW_RECOVERY_S) {
                notes.push(format!("failed writes: {}", r.write_failures.join(", ")));
            }
            notes.extend(r.error.iter().map(|e| format!("error: {e}")));
            notes.extend(r.check.querier.problems.iter().cloned());
            notes.extend(r.check.replica_problems.iter().cloned());
            notes.extend(r.check.read_errors.iter().map(|e| format!("read: {e}")));
            let _ = writeln!(md, "- #{}: {}", r.number, cell(&notes.join("; ")));
        }
    }

    let _ = writeln!(md, "\n## Summary\n");
    let _ = writeln!(
        md,
        "Faults by kind: {}.\n",
        report
            .faults_by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        md,
        "| tenant | requests | acknowledged | refused | unknown | failed attempts |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|");
    for (tenant, w) in &report.writes {
        let _ = writeln!(
            md,
            "| {tenant} | {} | {} | {} | {} | {} |",
            w.requests, w.acknowledged, w.refused, w.unknown, w.failed_attempts
        );
    }
    let f = &report.final_check;
    let _ = writeln!(
        md,
        "\nAcknowledged samples: {}. Final check (at {:.1} s, {} tries): {} expected, {} lost, {} \
         duplicates, {} phantoms through the querier; replicas identical: {}; tenant isolation: \
         {}.\n",
        report.acknowledged_samples,
        f.at_s,
        f.tries,
        f.querier.expected,
        f.querier.lost,
        f.querier.duplicates + f.replica_samples.duplicates,
        f.querier.phantoms + f.replica_samples.phantoms,
        yes_no(f.replicas_identical),
        if f.isolation_problems.is_empty() {
            "intact".to_string()
        } else {
            f.isolation_problems.join("; ")
        }
    );
    let _ = writeln!(md, "Time to accept writes again, by kind of fault:\n");
    let _ = writeln!(md, "| fault | count | p50 | p99 | max | never |");
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|");
    for (kind, r) in &report.recovery_by_kind {
        let _ = writeln!(
            md,
            "| {kind} | {} | {:.2} s | {:.2} s | {:.2} s | {} |",
            r.count, r.p50_s, r.p99_s, r.max_s, r.never
        );
    }
    let q = &report.queries;
    let _ = writeln!(
        md,
        "\nQuery probes: {} answered in full, {} partial, {} failed; {} wrong answers.\n",
        q.answered, q.partial, q.failed, q.anomalies
    );
    for (title, tallied) in [
        (
            "Why answers were partial (the querier's warnings)",
            &report.partial_warnings,
        ),
        ("Why probes failed", &report.query_failures),
        ("Wrong answers", &report.anomalies),
    ] {
        if tallied.is_empty() {
            continue;
        }
        let _ = writeln!(md, "{title}:\n");
        for (w, n) in tallied.iter().take(10) {
            let _ = writeln!(md, "- {n}× {}", cell(w));
        }
        md.push('\n');
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::SampleCheck;

    fn row(number: usize, fault: FaultKind, recovery_s: Option<f64>) -> FaultRow {
        FaultRow {
            number,
            fault,
            target: "ingester-2 (leader of shard 1)".into(),
            started_s: 10.0 * number as f64,
            length_s: 3.5,
            recovery_s,
            writes_failed: 2,
            write_failures: vec!["+0.10s http://127.0.0.1:19201/api/v1/write: timeout".into()],
            queries: ProbeCounts {
                answered: 10,
                failed: 1,
                partial: 2,
                anomalies: 0,
            },
            partial_warnings: vec![("store down".into(), 2)],
            query_failures: Vec::new(),
            check: clean_check(),
            notes: Vec::new(),
            error: None,
        }
    }

    fn clean_check() -> CheckOutcome {
        CheckOutcome {
            replicas_identical: true,
            querier: SampleCheck {
                expected: 100,
                ..SampleCheck::default()
            },
            tries: 1,
            ..CheckOutcome::default()
        }
    }

    fn report(rows: Vec<FaultRow>) -> Report {
        let mut r = Report {
            settings: Settings {
                project: "chaos".into(),
                run: "1".into(),
                seed: 1,
                duration_s: 300.0,
                faults: rows.len(),
                fault_length_s: 10.0,
                s3_outage_s: 20.0,
                series: BTreeMap::from([("default-tenant".into(), 64)]),
                shards: 4,
            },
            run_s: 320.0,
            faults: rows,
            faults_by_kind: BTreeMap::new(),
            writes: BTreeMap::from([(
                "default-tenant".into(),
                WriteTotals {
                    requests: 10,
                    acknowledged: 10,
                    ..WriteTotals::default()
                },
            )]),
            acknowledged_samples: 640,
            leader_kill_recovery: Recovery::default(),
            recovery_by_kind: BTreeMap::new(),
            queries: ProbeCounts::default(),
            partial_warnings: vec![("store down".into(), 2)],
            query_failures: vec![("timeout after 10s".into(), 1)],
            anomalies: Vec::new(),
            wrong_full_answers: 0,
            final_check: clean_check(),
            verdict: Verdict::default(),
        };
        r.summarize();
        r
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[3.0], 0.99), 3.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
        let r = Recovery::of(&[Some(1.0), None, Some(3.0)]);
        assert_eq!((r.count, r.never, r.max_s), (3, 1, 3.0));
    }

    #[test]
    fn a_clean_run_passes_and_renders_one_row_per_fault() {
        let r = report(vec![
            row(1, FaultKind::LeaderKill, Some(1.2)),
            row(2, FaultKind::S3Outage, Some(0.1)),
        ]);
        assert!(r.verdict.passed, "{:?}", r.verdict);
        assert_eq!(r.faults_by_kind["leader-kill"], 1);
        assert_eq!(r.leader_kill_recovery.p99_s, 1.2);
        let md = render_markdown(&r);
        assert!(md.contains("**Verdict: PASS**"));
        assert!(md.contains(
            "| 1 | leader-kill | ingester-2 (leader of shard 1) | 10.0 | 3.5 | 1.20 s | 2 | 1 | 2 \
             | 0 | 0 | yes |"
        ));
        assert!(md.contains("| 2 | s3-outage |"));
        assert!(md.contains("- 2× store down"));
        assert!(md.contains("- 1× timeout after 10s"));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["faults"][0]["fault"], "leader-kill");
        assert_eq!(json["verdict"]["passed"], true);
    }

    #[test]
    fn losses_duplicates_slow_leader_kills_and_diverged_replicas_fail() {
        let mut slow = row(1, FaultKind::LeaderKill, Some(7.5));
        slow.check.querier.duplicates = 1;
        let mut r = report(vec![slow, row(2, FaultKind::LeaderKill, None)]);
        r.final_check.querier.lost = 3;
        r.final_check.replicas_identical = false;
        r.final_check.replica_problems = vec!["shard 0: ingesters 1 and 2 differ".into()];
        r.anomalies = vec![("up more than once for [\"query:9090\"]".into(), 1)];
        r.wrong_full_answers = 1;
        r.summarize();
        assert!(!r.verdict.passed);
        let all = r.verdict.reasons.join("\n");
        assert!(all.contains("3 acknowledged samples lost"), "{all}");
        assert!(all.contains("fault #1: 1 duplicates"), "{all}");
        assert!(all.contains("at p99"), "{all}");
        assert!(all.contains("no write went through"), "{all}");
        assert!(all.contains("replicas differ at the end: shard 0"), "{all}");
        assert!(
            all.contains("1 query probes answered in full but wrong: up more than once"),
            "{all}"
        );
        assert!(render_markdown(&r).contains("**Verdict: FAIL**"));
    }

    #[test]
    fn tallies_count_distinct_strings() {
        assert_eq!(
            tally(["b", "a", "b"]),
            vec![("b".to_string(), 2), ("a".to_string(), 1)]
        );
    }
}
