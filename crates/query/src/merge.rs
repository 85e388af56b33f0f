//! Merging the stores' answers into one sorted series list
//! (specs/storeapi.md §6.3): a k-way merge by labels, identical series
//! combined (from different stores, split frames, or series that became
//! equal when the replica labels were removed), byte-identical chunks kept
//! once and chunks ordered by `(mint, maxt)`.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use hearth_model::Labels;
use hearth_storage_api::{Series, SeriesChunk};

/// Sorts a store's series by labels unless they already are: a store that
/// breaks the contract must not break the merge.
pub fn sort_by_labels(series: &mut [Series]) {
    if !series.windows(2).all(|w| w[0].labels <= w[1].labels) {
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
    }
}

/// The head of one store's remaining series in the merge heap; ties go to
/// the earlier store so that the output does not depend on timing.
struct Head {
    labels: Labels,
    part: usize,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Head {}

impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        self.labels
            .cmp(&other.labels)
            .then(self.part.cmp(&other.part))
    }
}

/// k-way merge of per-store series lists, each sorted by labels, into one
/// sorted list in which every label set appears once with the union of its
/// chunks (see [`normalize_chunks`]). `limit > 0` stops after that many
/// merged series.
pub fn merge_sorted(parts: Vec<Vec<Series>>, limit: usize) -> Vec<Series> {
    let total: usize = parts.iter().map(Vec::len).sum();
    let mut out: Vec<Series> = Vec::with_capacity(if limit > 0 { total.min(limit) } else { total });
    let mut iters: Vec<std::iter::Peekable<std::vec::IntoIter<Series>>> = parts
        .into_iter()
        .map(|p| p.into_iter().peekable())
        .collect();
    let mut heap = BinaryHeap::with_capacity(iters.len());
    for (part, it) in iters.iter_mut().enumerate() {
        if let Some(s) = it.peek() {
            heap.push(Reverse(Head {
                labels: s.labels.clone(),
                part,
            }));
        }
    }
    // Whether the last output series got chunks from more than one input
    // series (only those need their chunks re-sorted and de-duplicated).
    let mut combined = false;
    while let Some(Reverse(head)) = heap.pop() {
        let Some(series) = iters[head.part].next() else {
            continue;
        };
        if let Some(s) = iters[head.part].peek() {
            heap.push(Reverse(Head {
                labels: s.labels.clone(),
                part: head.part,
            }));
        }
        match out.last_mut() {
            Some(last) if last.labels == series.labels => {
                last.chunks.extend(series.chunks);
                last.start_times.extend(series.start_times);
                combined = true;
            }
            _ => {
                if let Some(last) = out.last_mut() {
                    finish(last, combined);
                }
                if limit > 0 && out.len() == limit {
                    return out;
                }
                combined = false;
                out.push(series);
            }
        }
    }
    if let Some(last) = out.last_mut() {
        finish(last, combined);
    }
    out
}

/// Puts a merged series' chunks (and start times) in order.
fn finish(series: &mut Series, combined: bool) {
    normalize_chunks(&mut series.chunks);
    if combined {
        series.start_times.sort_by_key(|&(t, _)| t);
        series.start_times.dedup_by_key(|&mut (t, _)| t);
    }
}

/// Sorts chunks by `(mint, maxt)` (stable: among equal ranges the earlier
/// store's chunk stays first) and drops chunks byte-identical to one kept
/// before. Identical chunks have identical ranges, so only runs of equal
/// ranges need comparing.
pub fn normalize_chunks(chunks: &mut Vec<SeriesChunk>) {
    let key = |c: &SeriesChunk| (c.mint, c.maxt);
    let sorted = chunks.windows(2).all(|w| key(&w[0]) <= key(&w[1]));
    if !sorted {
        chunks.sort_by_key(key);
    }
    let has_equal_ranges = chunks.windows(2).any(|w| key(&w[0]) == key(&w[1]));
    if !has_equal_ranges {
        return;
    }
    let mut kept: Vec<SeriesChunk> = Vec::with_capacity(chunks.len());
    let mut run_start = 0;
    for c in chunks.drain(..) {
        if kept.last().is_none_or(|l| key(l) != key(&c)) {
            run_start = kept.len();
        }
        let duplicate = kept[run_start..]
            .iter()
            .any(|k| k.encoding == c.encoding && k.data == c.data);
        if !duplicate {
            kept.push(c);
        }
    }
    *chunks = kept;
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hearth_model::chunkenc::Encoding;

    use super::*;

    fn chunk(mint: i64, maxt: i64, byte: u8) -> SeriesChunk {
        SeriesChunk {
            mint,
            maxt,
            encoding: Encoding::Xor,
            data: Arc::from(vec![0, 1, byte]),
        }
    }

    fn series(labels: &[(&str, &str)], chunks: Vec<SeriesChunk>) -> Series {
        Series::new(Labels::new(labels.iter().copied()), chunks)
    }

    #[test]
    fn identical_series_merge_and_identical_chunks_are_kept_once() {
        let a = vec![
            series(&[("n", "a")], vec![chunk(0, 10, 1), chunk(20, 30, 2)]),
            series(&[("n", "c")], vec![chunk(0, 10, 1)]),
        ];
        let b = vec![
            series(&[("n", "a")], vec![chunk(0, 10, 1), chunk(5, 15, 3)]),
            series(&[("n", "b")], vec![chunk(0, 10, 9)]),
        ];
        let merged = merge_sorted(vec![a, b], 0);
        let names: Vec<_> = merged.iter().map(|s| s.labels.get("n").unwrap()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        let ranges: Vec<_> = merged[0].chunks.iter().map(|c| (c.mint, c.maxt)).collect();
        assert_eq!(ranges, [(0, 10), (5, 15), (20, 30)]);
    }

    #[test]
    fn same_range_different_bytes_are_both_kept() {
        let mut chunks = vec![chunk(0, 10, 1), chunk(0, 10, 2), chunk(0, 10, 1)];
        normalize_chunks(&mut chunks);
        let bytes: Vec<u8> = chunks.iter().map(|c| c.data[2]).collect();
        assert_eq!(bytes, [1, 2]);
    }

    #[test]
    fn limit_counts_merged_series() {
        let a = vec![series(&[("n", "a")], vec![]), series(&[("n", "b")], vec![])];
        let b = vec![series(&[("n", "a")], vec![]), series(&[("n", "c")], vec![])];
        let merged = merge_sorted(vec![a, b], 2);
        let names: Vec<_> = merged.iter().map(|s| s.labels.get("n").unwrap()).collect();
        assert_eq!(names, ["a", "b"]);
    }
}
