//! Resolving label matchers to series IDs, as Prometheus's
//! `PostingsForMatchers` does, over any index that implements
//! [`PostingsSource`]: a persisted block's index and the in-memory head alike.
//!
//! Postings are sorted, deduplicated `Vec<u64>` of series IDs, combined with
//! [`intersect`], [`merge`] and [`subtract`]. The semantics are Prometheus's:
//!
//! * a matcher that does not match the empty string (`a="x"`, `a=~".+"`,
//!   `a!=""`) requires the label, and its postings are intersected;
//! * a negative matcher on a required label (`a!="x"` together with it not
//!   matching "") subtracts the postings of the values it rejects;
//! * a matcher that matches the empty string (`a=""`, `a!="x"`, `a=~"x|"`,
//!   `a!~".+"`) selects series *without* the label as well as those with a
//!   matching value, so it subtracts the postings of every value it rejects;
//! * if no matcher contributes a positive list, the all-postings list is
//!   the starting point; an empty matcher list selects nothing.

use hearth_model::{MatchOp, Matcher};

use crate::Result;

/// An index that can answer postings queries. Implemented by the block
/// index reader and by the head's in-memory index.
///
/// Contract: every returned list is sorted ascending without duplicates,
/// and an absent label pair yields an empty list, not an error. IDs are the
/// implementation's own series references.
pub trait PostingsSource {
    /// Series having label `name` with value `value`.
    fn postings(&self, name: &str, value: &str) -> Result<Vec<u64>>;

    /// Every series.
    fn all_postings(&self) -> Result<Vec<u64>>;

    /// The values label `name` takes, sorted and unique (no empty value).
    fn label_values(&self, name: &str) -> Result<Vec<String>>;

    /// Series having label `name` with any of `values`. The default merges
    /// one [`PostingsSource::postings`] call per value.
    fn postings_for_values(&self, name: &str, values: &[&str]) -> Result<Vec<u64>> {
        let mut all = Vec::new();
        for v in values {
            all.extend(self.postings(name, v)?);
        }
        all.sort_unstable();
        all.dedup();
        Ok(all)
    }
}

/// Series IDs matching every matcher, sorted ascending.
pub fn postings_for_matchers<S: PostingsSource + ?Sized>(
    src: &S,
    matchers: &[Matcher],
) -> Result<Vec<u64>> {
    if matchers.is_empty() {
        return Ok(Vec::new());
    }
    // Names some matcher requires to be set; e.g. in {l=~".+", l!="1"} the
    // second matcher can then subtract just the postings of l="1".
    let must_be_set = |name: &str| {
        matchers
            .iter()
            .any(|m| m.name == name && !m.matches_empty())
    };

    let mut positive: Vec<Vec<u64>> = Vec::new();
    let mut negative: Vec<Vec<u64>> = Vec::new();
    for m in matchers {
        let is_not = matches!(m.op, MatchOp::NotEqual | MatchOp::RegexNoMatch);
        if must_be_set(&m.name) {
            if is_not && m.matches_empty() {
                // l!="foo" with l required: subtract l="foo".
                negative.push(postings_of_rejected_values(src, m)?);
            } else {
                // l="a", l=~"a.*", l!="": intersect the matching values.
                let p = postings_of_matching_values(src, m)?;
                if p.is_empty() {
                    return Ok(Vec::new());
                }
                positive.push(p);
            }
        } else {
            // l="", l=~"a|", l!="a": series without l match too, so subtract
            // the series whose value is rejected.
            negative.push(postings_of_rejected_values(src, m)?);
        }
    }
    if positive.is_empty() {
        positive.push(src.all_postings()?);
    }
    positive.sort_by_key(Vec::len);
    let mut result = positive.swap_remove(0);
    for p in &positive {
        if result.is_empty() {
            break;
        }
        result = intersect(&result, p);
    }
    for n in &negative {
        if result.is_empty() {
            break;
        }
        result = subtract(&result, n);
    }
    Ok(result)
}

/// Postings of the series whose value of `m.name` matches `m` (series
/// without the label are never included).
fn postings_of_matching_values<S: PostingsSource + ?Sized>(
    src: &S,
    m: &Matcher,
) -> Result<Vec<u64>> {
    if let Some(values) = m.exact_values() {
        return src.postings_for_values(&m.name, &values);
    }
    let values = src.label_values(&m.name)?;
    let matching: Vec<&str> = values
        .iter()
        .map(String::as_str)
        .filter(|v| m.matches(v))
        .collect();
    if matching.is_empty() {
        return Ok(Vec::new());
    }
    src.postings_for_values(&m.name, &matching)
}

/// Postings of the series that have label `m.name` with a value `m` rejects.
fn postings_of_rejected_values<S: PostingsSource + ?Sized>(
    src: &S,
    m: &Matcher,
) -> Result<Vec<u64>> {
    // The inverse of != is =, and of !~ a literal set is that set: one lookup.
    match m.op {
        MatchOp::NotEqual => return src.postings(&m.name, &m.value),
        MatchOp::RegexNoMatch => {
            if let Some(values) =
                Matcher::new(MatchOp::RegexMatch, m.name.as_str(), m.value.as_str())
                    .ok()
                    .as_ref()
                    .and_then(Matcher::exact_values)
            {
                return src.postings_for_values(&m.name, &values);
            }
        }
        _ => {}
    }
    let values = src.label_values(&m.name)?;
    let rejected: Vec<&str> = values
        .iter()
        .map(String::as_str)
        .filter(|v| !m.matches(v))
        .collect();
    if rejected.is_empty() {
        return Ok(Vec::new());
    }
    src.postings_for_values(&m.name, &rejected)
}

/// IDs present in both sorted lists.
pub fn intersect(a: &[u64], b: &[u64]) -> Vec<u64> {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let mut out = Vec::with_capacity(small.len());
    // Galloping would help for very skewed sizes; a linear merge with binary
    // search on the large side is within a log factor and simple.
    if large.len() > 16 * small.len().max(1) {
        for x in small {
            if large.binary_search(x).is_ok() {
                out.push(*x);
            }
        }
        return out;
    }
    let (mut i, mut j) = (0, 0);
    while i < small.len() && j < large.len() {
        match small[i].cmp(&large[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(small[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// IDs present in any of the sorted lists, sorted and unique.
pub fn merge(lists: &[&[u64]]) -> Vec<u64> {
    let mut out: Vec<u64> = Vec::with_capacity(lists.iter().map(|l| l.len()).sum());
    for l in lists {
        out.extend_from_slice(l);
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// IDs of sorted list `a` that are not in sorted list `b`.
pub fn subtract(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len());
    let mut j = 0;
    for &x in a {
        while j < b.len() && b[j] < x {
            j += 1;
        }
        if j < b.len() && b[j] == x {
            continue;
        }
        out.push(x);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_model::Labels;
    use proptest::collection::{btree_map, btree_set, vec};
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    /// A naive index over label sets; series ID = position.
    struct MemIndex {
        series: Vec<Labels>,
    }

    impl PostingsSource for MemIndex {
        fn postings(&self, name: &str, value: &str) -> Result<Vec<u64>> {
            Ok((0..self.series.len() as u64)
                .filter(|&i| self.series[i as usize].get(name) == Some(value))
                .collect())
        }

        fn all_postings(&self) -> Result<Vec<u64>> {
            Ok((0..self.series.len() as u64).collect())
        }

        fn label_values(&self, name: &str) -> Result<Vec<String>> {
            let set: BTreeSet<String> = self
                .series
                .iter()
                .filter_map(|l| l.get(name).map(str::to_string))
                .collect();
            Ok(set.into_iter().collect())
        }
    }

    fn index() -> MemIndex {
        MemIndex {
            series: vec![
                Labels::new([("__name__", "up"), ("job", "a")]),
                Labels::new([("__name__", "up"), ("job", "b"), ("env", "prod")]),
                Labels::new([("__name__", "up"), ("env", "dev")]),
                Labels::new([("__name__", "down"), ("job", "a"), ("env", "prod")]),
            ],
        }
    }

    fn select(ms: &[Matcher]) -> Vec<u64> {
        postings_for_matchers(&index(), ms).unwrap()
    }

    fn m(op: MatchOp, n: &str, v: &str) -> Matcher {
        Matcher::new(op, n, v).unwrap()
    }

    #[test]
    fn prometheus_semantics() {
        use MatchOp::*;
        assert_eq!(select(&[m(Equal, "__name__", "up")]), vec![0, 1, 2]);
        assert_eq!(
            select(&[m(Equal, "__name__", "up"), m(Equal, "job", "")]),
            vec![2]
        );
        assert_eq!(
            select(&[m(Equal, "__name__", "up"), m(NotEqual, "job", "a")]),
            vec![1, 2]
        );
        assert_eq!(
            select(&[m(Equal, "__name__", "up"), m(NotEqual, "job", "")]),
            vec![0, 1]
        );
        assert_eq!(
            select(&[m(RegexMatch, "job", ".+"), m(NotEqual, "job", "a")]),
            vec![1]
        );
        assert_eq!(select(&[m(RegexMatch, "env", "prod|")]), vec![0, 1, 3]);
        assert_eq!(select(&[m(RegexNoMatch, "env", "prod")]), vec![0, 2]);
        assert_eq!(select(&[m(RegexNoMatch, "env", ".*")]), Vec::<u64>::new());
        assert_eq!(select(&[m(RegexMatch, "env", ".*")]), vec![0, 1, 2, 3]);
        assert_eq!(select(&[m(Equal, "nope", "")]), vec![0, 1, 2, 3]);
        assert_eq!(select(&[m(Equal, "nope", "x")]), Vec::<u64>::new());
        assert_eq!(
            select(&[
                m(RegexMatch, "__name__", "d.*"),
                m(RegexMatch, "job", "a|b")
            ]),
            vec![3]
        );
        assert_eq!(select(&[]), Vec::<u64>::new());
    }

    #[test]
    fn set_operations() {
        assert_eq!(intersect(&[1, 3, 5, 7], &[3, 4, 5]), vec![3, 5]);
        let big: Vec<u64> = (0..1000).collect();
        assert_eq!(intersect(&[5, 999, 2000], &big), vec![5, 999]);
        assert_eq!(merge(&[&[1, 4], &[2, 4, 9], &[]]), vec![1, 2, 4, 9]);
        assert_eq!(subtract(&[1, 2, 3, 4], &[0, 2, 4, 8]), vec![1, 3]);
    }

    fn matches_labels(ms: &[Matcher], l: &Labels) -> bool {
        ms.iter().all(|m| m.matches(l.get(&m.name).unwrap_or("")))
    }

    proptest! {
        #[test]
        fn agrees_with_matching_each_series(
            sets in vec(btree_map("[abc]", "[xyz]{1,2}", 0..3), 1..20),
            raw in vec((0usize..4, "[abc]", "[xyz|.*+]{0,3}"), 1..4),
        ) {
            let series: Vec<Labels> =
                sets.iter().map(|m: &BTreeMap<String, String>| Labels::new(m.iter())).collect();
            let ops = [MatchOp::Equal, MatchOp::NotEqual, MatchOp::RegexMatch, MatchOp::RegexNoMatch];
            let ms: Vec<Matcher> = raw
                .iter()
                .filter_map(|(o, n, v)| Matcher::new(ops[*o], n.as_str(), v.as_str()).ok())
                .collect();
            prop_assume!(!ms.is_empty());
            let idx = MemIndex { series: series.clone() };
            let got = postings_for_matchers(&idx, &ms).unwrap();
            let want: Vec<u64> = (0..series.len() as u64)
                .filter(|&i| matches_labels(&ms, &series[i as usize]))
                .collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn set_ops_match_btreesets(a in btree_set(0u64..200, 0..80), b in btree_set(0u64..200, 0..80)) {
            let av: Vec<u64> = a.iter().copied().collect();
            let bv: Vec<u64> = b.iter().copied().collect();
            prop_assert_eq!(intersect(&av, &bv), a.intersection(&b).copied().collect::<Vec<_>>());
            prop_assert_eq!(subtract(&av, &bv), a.difference(&b).copied().collect::<Vec<_>>());
            prop_assert_eq!(merge(&[&av, &bv]), a.union(&b).copied().collect::<Vec<_>>());
        }
    }
}
