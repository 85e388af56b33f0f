//! Replica deduplication (specs/storeapi.md §7): after the proxy has merged
//! the copies of a series coming from several replicas into one series whose
//! chunk list interleaves them, turn that back into one stream of samples.
//!
//! Pipeline, per run of series with equal labels:
//! 1. [`split_overlapping`] cuts each series' chunks into the fewest
//!    non-overlapping "virtual replicas" (greedy, in chunk order).
//! 2. One virtual replica in total: the series passes through untouched
//!    (no decoding, no re-encoding).
//! 3. Otherwise the replicas are decoded (only chunks meeting the query's
//!    range, lazily as the merge reaches them), merged with the
//!    [`DedupFunc`], and re-encoded as XOR chunks of at most
//!    [`hearth_model::chunkenc::TARGET_SAMPLES_PER_CHUNK`] samples.
//!
//! The penalty merge is a left-deep fold of pairwise `PenaltyPair`s over
//! leaf `Replica` iterators, so that deduplicating `k` replicas is exactly
//! `P(…P(P(r0, r1), r2)…, r(k−1))` as Thanos computes it.

use std::str::FromStr;

use hearth_model::chunkenc::{Encoding, XorIterator};
use hearth_model::{is_stale_nan, Labels, Sample, Timestamp};
use hearth_storage_api::{ChunkEncoder, SelectHints, Series, SeriesChunk};

use crate::{Error, Result};

/// How the copies of one series are merged (`--deduplication.func`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DedupFunc {
    /// Stay on one replica and switch only across gaps (independently
    /// scraped HA pairs, whose timestamps differ by milliseconds).
    #[default]
    Penalty,
    /// Union of all samples by timestamp (replicas holding identical
    /// samples, e.g. replicated writes).
    Chain,
}

impl FromStr for DedupFunc {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "penalty" => Ok(DedupFunc::Penalty),
            "chain" => Ok(DedupFunc::Chain),
            other => Err(format!(
                "unknown deduplication function {other:?} (penalty, chain)"
            )),
        }
    }
}

/// Penalty imposed on the other replica after the first emitted sample.
const INITIAL_PENALTY_MS: i64 = 5000;

/// Counters are lifted across replica switches only when the function
/// directly around the selector reads them as counters; anywhere else the
/// adjustment would distort the values.
pub fn needs_counter_adjustment(func: Option<&str>) -> bool {
    matches!(func, Some("rate" | "irate" | "increase" | "resets"))
}

/// Deduplicates a sorted series set: each run of series with equal labels
/// becomes one series. `hints` bound the decoded samples (`mint`, `maxt`),
/// choose counter adjustment (`func`) and, with `skip_chunks`, reduce the
/// work to combining the runs.
pub fn dedup_series_set(
    series: Vec<Series>,
    hints: &SelectHints,
    func: DedupFunc,
) -> Result<Vec<Series>> {
    let counter_adjust = needs_counter_adjustment(hints.func);
    let mut out = Vec::with_capacity(series.len());
    let mut run: Vec<Series> = Vec::new();
    for s in series {
        if run.first().is_some_and(|r| r.labels != s.labels) {
            out.push(dedup_run(
                std::mem::take(&mut run),
                hints,
                func,
                counter_adjust,
            )?);
        }
        run.push(s);
    }
    if !run.is_empty() {
        out.push(dedup_run(run, hints, func, counter_adjust)?);
    }
    Ok(out)
}

/// One group (§7.1 step 3): the virtual replicas of every series of the
/// run, in order, merged into one series.
fn dedup_run(
    mut run: Vec<Series>,
    hints: &SelectHints,
    func: DedupFunc,
    counter_adjust: bool,
) -> Result<Series> {
    if hints.skip_chunks {
        return Ok(combine(run));
    }
    if run.len() == 1 {
        let series = run.pop().expect("run has one series");
        return dedup_series(series, hints.mint, hints.maxt, func, counter_adjust);
    }
    let replicas: Vec<Vec<&SeriesChunk>> = run
        .iter()
        .flat_map(|s| split_overlapping(&s.chunks))
        .collect();
    if replicas.len() <= 1 {
        return Ok(combine(run));
    }
    let chunks = merge_replicas(
        &run[0].labels,
        replicas,
        hints.mint,
        hints.maxt,
        func,
        counter_adjust,
    )?;
    let mut series = combine(run);
    series.chunks = chunks;
    Ok(series)
}

/// The series of a run as one: the first one's labels, every chunk and
/// start time.
fn combine(mut run: Vec<Series>) -> Series {
    if run.len() == 1 {
        return run.pop().expect("run has one series");
    }
    let mut rest = run.into_iter();
    let mut first = rest
        .next()
        .unwrap_or_else(|| Series::new(Labels::empty(), Vec::new()));
    for s in rest {
        first.chunks.extend(s.chunks);
        first.start_times.extend(s.start_times);
    }
    first.chunks.sort_by_key(|c| (c.mint, c.maxt));
    first.start_times.sort_by_key(|&(t, _)| t);
    first.start_times.dedup_by_key(|&mut (t, _)| t);
    first
}

/// Deduplicates one series whose chunks (sorted by `mint`) may interleave
/// several replicas. A series that is one non-overlapping chunk sequence is
/// returned as is; otherwise its samples in `[mint, maxt]` are merged and
/// re-encoded.
pub fn dedup_series(
    series: Series,
    mint: Timestamp,
    maxt: Timestamp,
    func: DedupFunc,
    counter_adjust: bool,
) -> Result<Series> {
    let replicas = split_overlapping(&series.chunks);
    if replicas.len() <= 1 {
        return Ok(series);
    }
    let chunks = merge_replicas(&series.labels, replicas, mint, maxt, func, counter_adjust)?;
    Ok(Series {
        labels: series.labels,
        chunks,
        start_times: series.start_times,
    })
}

/// Merges virtual replicas (in group order) into XOR chunks.
fn merge_replicas(
    labels: &Labels,
    replicas: Vec<Vec<&SeriesChunk>>,
    mint: Timestamp,
    maxt: Timestamp,
    func: DedupFunc,
    counter_adjust: bool,
) -> Result<Vec<SeriesChunk>> {
    let leaves = replicas
        .into_iter()
        .map(|chunks| Replica::from_chunks(chunks, mint, maxt, counter_adjust))
        .collect();
    let mut encoder = ChunkEncoder::default();
    let merged = match func {
        DedupFunc::Penalty => penalty(leaves, |s| encode(&mut encoder, s)),
        DedupFunc::Chain => chain(leaves, |s| encode(&mut encoder, s)),
    };
    merged.map_err(|message| Error::Dedup {
        series: labels.to_string(),
        message,
    })?;
    Ok(encoder.finish())
}

fn encode(encoder: &mut ChunkEncoder, s: Sample) -> Result<(), String> {
    encoder
        .push(s)
        .map_err(|e| format!("encode sample at {}: {e}", s.t))
}

/// Splits chunks into the fewest non-overlapping sequences, greedily: each
/// chunk joins the first sequence whose last chunk ends before it starts,
/// or starts a new one (§7.1 step 2). Chunks are taken in `(mint, maxt)`
/// order whatever order they come in.
pub fn split_overlapping(chunks: &[SeriesChunk]) -> Vec<Vec<&SeriesChunk>> {
    let mut ordered: Vec<&SeriesChunk> = chunks.iter().collect();
    if !ordered
        .windows(2)
        .all(|w| (w[0].mint, w[0].maxt) <= (w[1].mint, w[1].maxt))
    {
        ordered.sort_by_key(|c| (c.mint, c.maxt));
    }
    let mut replicas: Vec<Vec<&SeriesChunk>> = Vec::new();
    for c in ordered {
        let free = replicas
            .iter_mut()
            .find(|r| r.last().is_some_and(|last| last.maxt < c.mint));
        match free {
            Some(r) => r.push(c),
            None => replicas.push(vec![c]),
        }
    }
    replicas
}

/// The penalty merge of sample lists (one per replica, each strictly
/// increasing in time), for callers and tests that have samples rather than
/// chunks.
pub fn penalty_merge(replicas: Vec<Vec<Sample>>, counter_adjust: bool) -> Vec<Sample> {
    let mut out = Vec::new();
    let leaves = replicas
        .into_iter()
        .map(|s| Replica::from_samples(s, counter_adjust))
        .collect();
    // Decoded samples cannot fail to decode.
    let _ = penalty(leaves, |s| {
        out.push(s);
        Ok(())
    });
    out
}

/// The chain merge of sample lists (one per replica, each strictly
/// increasing in time).
pub fn chain_merge(replicas: Vec<Vec<Sample>>) -> Vec<Sample> {
    let mut out = Vec::new();
    let leaves = replicas
        .into_iter()
        .map(|s| Replica::from_samples(s, false))
        .collect();
    let _ = chain(leaves, |s| {
        out.push(s);
        Ok(())
    });
    out
}

/// What the merge algorithms need from a replica or a pair of them (the
/// iterator contract of §7.2, floats only: other encodings fail to decode).
trait DedupIterator {
    /// Advances one sample; false when exhausted.
    fn next(&mut self) -> bool;
    /// Advances until the current sample's time is `>= t` (no effect if it
    /// already is); false when exhausted.
    fn seek(&mut self, t: Timestamp) -> bool;
    /// The current sample (meaningful after `next`/`seek` returned true).
    fn at(&self) -> Sample;
    /// Lifts a counter that is behind `v` (no effect unless the leaves
    /// adjust counters).
    fn adjust(&mut self, v: f64);
    /// The first decoding error met, if any.
    fn take_error(&mut self) -> Option<String>;
}

/// Where a leaf stands in its samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    NotStarted,
    At(usize),
    Done,
}

/// One replica's samples in `[mint, maxt]`, decoded a chunk at a time as
/// the merge reaches it; chunks that a seek jumps over are never decoded.
/// Timestamps are kept strictly increasing even if chunks lie about their
/// ranges.
struct Replica<'a> {
    chunks: std::vec::IntoIter<&'a SeriesChunk>,
    samples: Vec<Sample>,
    position: Position,
    mint: Timestamp,
    maxt: Timestamp,
    /// The last decoded timestamp: later samples must be newer.
    floor: Option<Timestamp>,
    counter_adjust: bool,
    /// Added to every value (§7.2 "counter adjustment").
    err_adjust: f64,
    error: Option<String>,
}

impl<'a> Replica<'a> {
    fn from_chunks(
        chunks: Vec<&'a SeriesChunk>,
        mint: Timestamp,
        maxt: Timestamp,
        counter_adjust: bool,
    ) -> Self {
        let in_range: Vec<&SeriesChunk> = chunks
            .into_iter()
            .filter(|c| c.maxt >= mint && c.mint <= maxt)
            .collect();
        Replica {
            chunks: in_range.into_iter(),
            samples: Vec::new(),
            position: Position::NotStarted,
            mint,
            maxt,
            floor: None,
            counter_adjust,
            err_adjust: 0.0,
            error: None,
        }
    }

    fn from_samples(samples: Vec<Sample>, counter_adjust: bool) -> Replica<'static> {
        Replica {
            chunks: Vec::new().into_iter(),
            samples,
            position: Position::NotStarted,
            mint: Timestamp::MIN,
            maxt: Timestamp::MAX,
            floor: None,
            counter_adjust,
            err_adjust: 0.0,
            error: None,
        }
    }

    /// Replaces the buffer with the next chunk's samples; false when no
    /// chunk is left or it fails to decode (the error is kept).
    fn load_next_chunk(&mut self, skip_before: Timestamp) -> bool {
        for chunk in self.chunks.by_ref() {
            // A chunk ending before the target holds nothing wanted.
            if chunk.maxt < skip_before {
                continue;
            }
            self.samples.clear();
            if let Err(e) = decode_chunk(chunk, self.mint, self.maxt, self.floor, &mut self.samples)
            {
                self.error = Some(e);
                self.samples.clear();
                return false;
            }
            if let Some(last) = self.samples.last() {
                self.floor = Some(last.t);
                return true;
            }
        }
        self.samples.clear();
        false
    }
}

/// Decodes the samples of `chunk` in `[mint, maxt]` newer than `floor`.
fn decode_chunk(
    chunk: &SeriesChunk,
    mint: Timestamp,
    maxt: Timestamp,
    floor: Option<Timestamp>,
    out: &mut Vec<Sample>,
) -> Result<(), String> {
    if chunk.encoding != Encoding::Xor {
        return Err(format!(
            "chunk [{}, {}] has encoding {:?}, which cannot be decoded",
            chunk.mint, chunk.maxt, chunk.encoding
        ));
    }
    let mut last = floor;
    for sample in XorIterator::new(&chunk.data) {
        let sample = sample.map_err(|e| format!("chunk [{}, {}]: {e}", chunk.mint, chunk.maxt))?;
        if sample.t > maxt {
            break;
        }
        if sample.t < mint || last.is_some_and(|l| sample.t <= l) {
            continue;
        }
        last = Some(sample.t);
        out.push(sample);
    }
    Ok(())
}

impl DedupIterator for Replica<'_> {
    fn next(&mut self) -> bool {
        let next = match self.position {
            Position::NotStarted => 0,
            Position::At(i) => i + 1,
            Position::Done => return false,
        };
        if next < self.samples.len() {
            self.position = Position::At(next);
            return true;
        }
        if self.load_next_chunk(Timestamp::MIN) {
            self.position = Position::At(0);
            return true;
        }
        self.position = Position::Done;
        false
    }

    fn seek(&mut self, t: Timestamp) -> bool {
        let mut from = match self.position {
            Position::NotStarted => 0,
            Position::At(i) if self.samples[i].t >= t => return true,
            Position::At(i) => i + 1,
            Position::Done => return false,
        };
        loop {
            if let Some(rest) = self.samples.get(from..) {
                let skip = rest.partition_point(|s| s.t < t);
                if skip < rest.len() {
                    self.position = Position::At(from + skip);
                    return true;
                }
            }
            if !self.load_next_chunk(t) {
                self.position = Position::Done;
                return false;
            }
            from = 0;
        }
    }

    fn at(&self) -> Sample {
        let Position::At(i) = self.position else {
            return Sample::new(Timestamp::MIN, f64::NAN);
        };
        let s = self.samples[i];
        // Adding 0 would turn -0 into +0, and arithmetic on the stale
        // marker (a signalling NaN) would quieten it into an ordinary NaN.
        if self.err_adjust == 0.0 || is_stale_nan(s.v) {
            return s;
        }
        Sample::new(s.t, s.v + self.err_adjust)
    }

    fn adjust(&mut self, v: f64) {
        if !self.counter_adjust {
            return;
        }
        let current = self.at().v;
        if v > current {
            self.err_adjust += v - current;
        }
    }

    fn take_error(&mut self) -> Option<String> {
        self.error.take()
    }
}

/// `P(a, b)` of §7.2: stays on one child and hands over to the other only
/// when the current one's next sample lies beyond a penalty of twice the
/// last step.
struct PenaltyPair<'a> {
    a: Box<dyn DedupIterator + 'a>,
    b: Box<dyn DedupIterator + 'a>,
    a_ok: bool,
    b_ok: bool,
    /// Time of the last emitted sample, `i64::MIN` before the first.
    last_t: Timestamp,
    pen_a: i64,
    pen_b: i64,
    use_a: bool,
    /// The last `next` produced a sample.
    valid: bool,
}

impl<'a> PenaltyPair<'a> {
    fn new(mut a: Box<dyn DedupIterator + 'a>, mut b: Box<dyn DedupIterator + 'a>) -> Self {
        let a_ok = a.next();
        let b_ok = b.next();
        PenaltyPair {
            a,
            b,
            a_ok,
            b_ok,
            last_t: Timestamp::MIN,
            pen_a: 0,
            pen_b: 0,
            use_a: true,
            valid: false,
        }
    }

    /// The penalty for the replica not chosen: twice the step from the last
    /// emitted sample, or the initial constant before the first one.
    fn penalty(&self, chosen_t: Timestamp) -> i64 {
        if self.last_t == Timestamp::MIN {
            INITIAL_PENALTY_MS
        } else {
            chosen_t.saturating_sub(self.last_t).saturating_mul(2)
        }
    }
}

impl DedupIterator for PenaltyPair<'_> {
    fn next(&mut self) -> bool {
        let selected_ok = if self.use_a { self.a_ok } else { self.b_ok };
        let prev_value = selected_ok.then(|| self.at().v);
        let prev_use_a = self.use_a;

        let from = self.last_t.saturating_add(1);
        if self.a_ok {
            self.a_ok = self.a.seek(from.saturating_add(self.pen_a));
        }
        if self.b_ok {
            self.b_ok = self.b.seek(from.saturating_add(self.pen_b));
        }

        let result = if !self.a_ok {
            self.use_a = false;
            if self.b_ok {
                self.last_t = self.b.at().t;
                self.pen_b = 0;
            }
            self.b_ok
        } else if !self.b_ok {
            self.use_a = true;
            self.last_t = self.a.at().t;
            self.pen_a = 0;
            true
        } else {
            let ta = self.a.at().t;
            let tb = self.b.at().t;
            self.use_a = ta <= tb;
            if self.use_a {
                self.pen_b = self.penalty(ta);
                self.pen_a = 0;
                self.last_t = ta;
            } else {
                self.pen_a = self.penalty(tb);
                self.pen_b = 0;
                self.last_t = tb;
            }
            true
        };

        if self.use_a != prev_use_a {
            if let Some(v) = prev_value {
                self.adjust(v);
            }
        }
        self.valid = result;
        result
    }

    /// Steps with `next` rather than seeking the children, so that the
    /// penalties and gaps stay in force.
    fn seek(&mut self, t: Timestamp) -> bool {
        loop {
            if self.valid && self.at().t >= t {
                return true;
            }
            if !self.next() {
                return false;
            }
        }
    }

    fn at(&self) -> Sample {
        if self.use_a {
            self.a.at()
        } else {
            self.b.at()
        }
    }

    fn adjust(&mut self, v: f64) {
        if self.a_ok {
            self.a.adjust(v);
        }
        if self.b_ok {
            self.b.adjust(v);
        }
    }

    fn take_error(&mut self) -> Option<String> {
        self.a.take_error().or_else(|| self.b.take_error())
    }
}

/// Runs the penalty merge over `leaves` (in group order), handing every
/// emitted sample to `emit`.
fn penalty(
    leaves: Vec<Replica<'_>>,
    mut emit: impl FnMut(Sample) -> Result<(), String>,
) -> Result<(), String> {
    let mut leaves = leaves.into_iter();
    let Some(first) = leaves.next() else {
        return Ok(());
    };
    let mut root: Box<dyn DedupIterator + '_> = Box::new(first);
    for leaf in leaves {
        root = Box::new(PenaltyPair::new(root, Box::new(leaf)));
    }
    while root.next() {
        emit(root.at())?;
    }
    root.take_error().map_or(Ok(()), Err)
}

/// Runs the chain merge: every timestamp once, in order; on equal
/// timestamps the earliest leaf's sample wins.
fn chain(
    mut leaves: Vec<Replica<'_>>,
    mut emit: impl FnMut(Sample) -> Result<(), String>,
) -> Result<(), String> {
    let mut ok: Vec<bool> = leaves.iter_mut().map(|l| l.next()).collect();
    loop {
        let mut best: Option<(usize, Timestamp)> = None;
        for (i, leaf) in leaves.iter().enumerate() {
            if ok[i] && best.is_none_or(|(_, t)| leaf.at().t < t) {
                best = Some((i, leaf.at().t));
            }
        }
        let Some((i, t)) = best else { break };
        emit(leaves[i].at())?;
        for (leaf, ok) in leaves.iter_mut().zip(ok.iter_mut()) {
            if *ok && leaf.at().t == t {
                *ok = leaf.next();
            }
        }
    }
    for leaf in &mut leaves {
        if let Some(e) = leaf.take_error() {
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
