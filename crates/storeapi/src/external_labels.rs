//! How a store's external labels and a request's replica labels rewrite
//! matchers and series (specs/storeapi.md §3.2, §3.4).
//!
//! External labels are not stored: matchers on them are decided against the
//! store's values before the storage sees the request, and every returned
//! series is extended by them (the external value winning over a stored
//! label of the same name). Replica labels named in
//! `without_replica_labels` are then removed and the series re-sorted, so
//! that copies of one series from several replicas end up adjacent.

use hearth_model::{Labels, Matcher};
use hearth_storage_api::Series;

/// Decides the matchers on external label names against the external
/// values. `None`: one of them rejects its value, so the request matches
/// nothing. Otherwise the matchers left for the storage (a matcher on an
/// external label name is satisfied and dropped).
pub fn strip_external_matchers(matchers: Vec<Matcher>, external: &Labels) -> Option<Vec<Matcher>> {
    if external.is_empty() {
        return Some(matchers);
    }
    let mut remaining = Vec::with_capacity(matchers.len());
    for m in matchers {
        match external.get(&m.name) {
            Some(value) if !m.matches(value) => return None,
            Some(_) => {}
            None => remaining.push(m),
        }
    }
    Some(remaining)
}

/// `stored` extended by `external` (the external value wins on a shared
/// name), without the names in `without`. Both inputs are sorted, so this
/// is one merge.
pub fn extend_labels(stored: &Labels, external: &Labels, without: &[String]) -> Labels {
    let keep = |name: &str| !without.iter().any(|w| w == name);
    let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(stored.len() + external.len());
    let mut s = stored.iter().peekable();
    let mut e = external.iter().peekable();
    loop {
        let next = match (s.peek(), e.peek()) {
            (None, None) => break,
            (Some(_), None) => s.next(),
            (None, Some(_)) => e.next(),
            (Some(a), Some(b)) => match a.name.cmp(b.name) {
                std::cmp::Ordering::Less => s.next(),
                std::cmp::Ordering::Greater => e.next(),
                std::cmp::Ordering::Equal => {
                    s.next();
                    e.next()
                }
            },
        };
        if let Some(l) = next {
            if keep(l.name) {
                pairs.push((l.name, l.value));
            }
        }
    }
    Labels::from_sorted(pairs)
}

/// Rewrites the labels of series a storage returned into what the StoreAPI
/// sends: extended by `external`, without `without`, sorted by the new
/// labels (stable), series whose labels became equal merged into one with
/// their chunks in `mint` order. Chunks of every series end up sorted by
/// `mint`.
pub fn relabel_series(
    mut series: Vec<Series>,
    external: &Labels,
    without: &[String],
) -> Vec<Series> {
    if !external.is_empty() || !without.is_empty() {
        for s in &mut series {
            s.labels = extend_labels(&s.labels, external, without);
        }
        sort_by_labels(&mut series);
        series = merge_equal_neighbours(series);
    }
    for s in &mut series {
        if !s.chunks.is_sorted_by_key(|c| c.mint) {
            s.chunks.sort_by_key(|c| c.mint);
        }
    }
    series
}

/// Removes the labels named in `names` from every series and re-sorts
/// (stable); series that became equal stay adjacent and separate. What the
/// [`crate::Store`] defaults and a proxy do for a store that cannot.
pub fn remove_labels_and_sort(series: &mut [Series], names: &[String]) {
    if names.is_empty() {
        return;
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    for s in series.iter_mut() {
        if names.iter().any(|n| s.labels.has(n)) {
            s.labels = s.labels.without(&names);
        }
    }
    sort_by_labels(series);
}

fn sort_by_labels(series: &mut [Series]) {
    if !series.is_sorted_by(|a, b| a.labels <= b.labels) {
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
    }
}

/// Merges adjacent series with equal labels (their chunks concatenated,
/// then sorted by `mint`, stable).
pub fn merge_equal_neighbours(series: Vec<Series>) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::with_capacity(series.len());
    let mut merged_any = false;
    for s in series {
        match out.last_mut() {
            Some(last) if last.labels == s.labels => {
                last.chunks.extend(s.chunks);
                last.start_times.extend(s.start_times);
                merged_any = true;
            }
            _ => out.push(s),
        }
    }
    if merged_any {
        for s in &mut out {
            s.chunks.sort_by_key(|c| c.mint);
            s.start_times.sort_by_key(|&(t, _)| t);
            s.start_times.dedup_by_key(|&mut (t, _)| t);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hearth_model::chunkenc::Encoding;
    use hearth_model::MatchOp;
    use hearth_storage_api::SeriesChunk;

    use super::*;

    fn chunk(mint: i64) -> SeriesChunk {
        SeriesChunk {
            mint,
            maxt: mint + 1,
            encoding: Encoding::Xor,
            data: Arc::from(vec![0u8, 0]),
        }
    }

    #[test]
    fn external_matchers_are_decided_and_dropped() {
        let ext = Labels::new([("cluster", "c1"), ("replica", "a")]);
        let job = Matcher::equal("job", "api");
        let got = strip_external_matchers(vec![Matcher::equal("cluster", "c1"), job.clone()], &ext);
        assert_eq!(got, Some(vec![job.clone()]));
        let re = Matcher::new(MatchOp::RegexMatch, "replica", "a|b").unwrap();
        assert_eq!(strip_external_matchers(vec![re], &ext), Some(vec![]));
        let other = Matcher::equal("cluster", "c2");
        assert_eq!(strip_external_matchers(vec![other, job], &ext), None);
    }

    #[test]
    fn external_values_win_and_without_removes_both_kinds() {
        let stored = Labels::new([("__name__", "up"), ("cluster", "stored"), ("zone", "z")]);
        let ext = Labels::new([("cluster", "c1"), ("replica", "a")]);
        assert_eq!(
            extend_labels(&stored, &ext, &[]),
            Labels::new([
                ("__name__", "up"),
                ("cluster", "c1"),
                ("replica", "a"),
                ("zone", "z")
            ])
        );
        assert_eq!(
            extend_labels(&stored, &ext, &["replica".into(), "zone".into()]),
            Labels::new([("__name__", "up"), ("cluster", "c1")])
        );
    }

    #[test]
    fn relabeling_resorts_and_merges_series_that_became_equal() {
        let a = Series::new(Labels::new([("a", "1"), ("r", "x")]), vec![chunk(10)]);
        let b = Series::new(Labels::new([("a", "1"), ("r", "y")]), vec![chunk(5)]);
        let c = Series::new(Labels::new([("a", "0"), ("z", "1")]), vec![chunk(1)]);
        let out = relabel_series(vec![a, b, c], &Labels::empty(), &["r".into(), "z".into()]);
        let labels: Vec<String> = out.iter().map(|s| s.labels.to_string()).collect();
        assert_eq!(labels, vec![r#"{a="0"}"#, r#"{a="1"}"#]);
        let mints: Vec<i64> = out[1].chunks.iter().map(|c| c.mint).collect();
        assert_eq!(mints, vec![5, 10]);
    }

    #[test]
    fn removal_keeps_equal_series_apart_and_sorted() {
        let mut series = vec![
            Series::new(Labels::new([("a", "2"), ("r", "x")]), vec![]),
            Series::new(Labels::new([("a", "1"), ("r", "y")]), vec![chunk(1)]),
            Series::new(Labels::new([("a", "1"), ("r", "x")]), vec![chunk(2)]),
        ];
        remove_labels_and_sort(&mut series, &["r".into()]);
        let got: Vec<(String, usize)> = series
            .iter()
            .map(|s| {
                (
                    s.labels.to_string(),
                    s.chunks.first().map_or(0, |c| c.mint as usize),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (r#"{a="1"}"#.to_string(), 1),
                (r#"{a="1"}"#.to_string(), 2),
                (r#"{a="2"}"#.to_string(), 0)
            ]
        );
    }
}
