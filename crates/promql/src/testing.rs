//! Test support: an in-memory [`Queryable`] whose series are encoded into
//! XOR chunks, and a loader for promqltest's series notation
//! (`metric{a="b"} 0+10x5 _ stale`).

use std::sync::Arc;

use async_trait::async_trait;
use hearth_model::chunkenc::{Encoding, XorChunk};
use hearth_model::{Labels, LabelsBuilder, Matcher, Timestamp, METRIC_NAME, STALE_NAN};
use hearth_storage_api::{
    LabelsResult, Queryable, Result, SelectHints, Series, SeriesChunk, SeriesSet,
};
use promql_parser::parser::Expr;

/// Series held in memory.
#[derive(Default)]
pub struct MemStorage {
    series: Vec<(Labels, Vec<(i64, f64)>)>,
}

impl MemStorage {
    /// Loads series in promqltest notation with samples every `step_ms`
    /// from 0, like a `load <step>` block.
    pub fn load(step_ms: i64, lines: &[&str]) -> Self {
        let mut s = Self::default();
        for line in lines {
            let (sel, vals) = split_series(line);
            let labels = parse_labels(sel);
            let mut samples = Vec::new();
            let mut i = 0i64;
            for item in vals.split_whitespace() {
                for v in expand(item) {
                    if let Some(v) = v {
                        samples.push((i * step_ms, v));
                    }
                    i += 1;
                }
            }
            s.series.push((labels, samples));
        }
        s.series.sort_by(|a, b| a.0.cmp(&b.0));
        s
    }
}

fn split_series(line: &str) -> (&str, &str) {
    let line = line.trim();
    let end = match line.find('}') {
        Some(i) => i + 1,
        None => line.find(char::is_whitespace).unwrap_or(line.len()),
    };
    (&line[..end], &line[end..])
}

fn parse_labels(sel: &str) -> Labels {
    let Ok(Expr::VectorSelector(vs)) = promql_parser::parser::parse(sel) else {
        panic!("bad series selector {sel}");
    };
    let mut b = LabelsBuilder::new();
    if let Some(n) = &vs.name {
        b.set(METRIC_NAME, n);
    }
    for m in &vs.matchers.matchers {
        b.set(&m.name, &m.value);
    }
    b.build()
}

fn num(s: &str) -> f64 {
    match s {
        "Inf" | "+Inf" | "inf" => f64::INFINITY,
        "-Inf" | "-inf" => f64::NEG_INFINITY,
        "NaN" | "nan" => f64::NAN,
        x => x.parse().unwrap_or_else(|_| panic!("bad number {x}")),
    }
}

/// Expands one value item: `_`, `stale`, `v`, `_xN`, `vxN`, `a+bxN`, `a-bxN`.
fn expand(item: &str) -> Vec<Option<f64>> {
    if item == "_" {
        return vec![None];
    }
    if item == "stale" {
        return vec![Some(STALE_NAN)];
    }
    let Some((head, n)) = item.rsplit_once('x') else {
        return vec![Some(num(item))];
    };
    let n: usize = n.parse().unwrap_or_else(|_| panic!("bad count in {item}"));
    if head == "_" {
        return vec![None; n + 1];
    }
    // Find the operator after the first character (which may be a sign).
    let op_at = head[1..].find(['+', '-']).map(|i| i + 1);
    match op_at {
        None => vec![Some(num(head)); n + 1],
        Some(i) => {
            let a = num(&head[..i]);
            let b = num(&head[i + 1..]);
            let b = if &head[i..=i] == "-" { -b } else { b };
            (0..=n).map(|k| Some(a + b * k as f64)).collect()
        }
    }
}

#[async_trait]
impl Queryable for MemStorage {
    async fn select(&self, matchers: &[Matcher], hints: SelectHints) -> Result<SeriesSet> {
        let mut out = Vec::new();
        for (labels, samples) in &self.series {
            if !matchers
                .iter()
                .all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
            {
                continue;
            }
            let in_range: Vec<(i64, f64)> = samples
                .iter()
                .copied()
                .filter(|(t, _)| *t >= hints.mint && *t <= hints.maxt)
                .collect();
            let mut chunks = Vec::new();
            for part in in_range.chunks(50) {
                let mut c = XorChunk::new();
                for &(t, v) in part {
                    c.append(t, v).expect("append to test chunk");
                }
                chunks.push(SeriesChunk {
                    mint: part[0].0,
                    maxt: part[part.len() - 1].0,
                    encoding: Encoding::Xor,
                    data: Arc::from(c.into_bytes()),
                });
            }
            if !chunks.is_empty() {
                out.push(Series::new(labels.clone(), chunks));
            }
        }
        Ok(SeriesSet {
            series: out,
            warnings: Vec::new(),
        })
    }

    async fn label_names(
        &self,
        _matchers: &[Matcher],
        _mint: Timestamp,
        _maxt: Timestamp,
    ) -> Result<LabelsResult> {
        Ok(LabelsResult::default())
    }

    async fn label_values(
        &self,
        _name: &str,
        _matchers: &[Matcher],
        _mint: Timestamp,
        _maxt: Timestamp,
    ) -> Result<LabelsResult> {
        Ok(LabelsResult::default())
    }
}
