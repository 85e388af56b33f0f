//! A series as storages return it: labels plus encoded chunks, and the
//! iterator that turns a series' chunks into one stream of samples.

use std::sync::Arc;

use hearth_model::chunkenc::{Encoding, XorChunk, XorIterator, TARGET_SAMPLES_PER_CHUNK};
use hearth_model::{Labels, Sample, Timestamp};

use crate::{Error, Result};

/// One encoded chunk of a series, with its closed time interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesChunk {
    pub mint: Timestamp,
    pub maxt: Timestamp,
    pub encoding: Encoding,
    pub data: Arc<[u8]>,
}

impl SeriesChunk {
    /// The sample count an XOR chunk states in its header (big-endian u16),
    /// 0 for a chunk too short to have one.
    pub fn num_samples(&self) -> usize {
        self.data
            .get(..2)
            .map_or(0, |b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
}

/// A series: its labels and its chunks ordered by `mint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub labels: Labels,
    pub chunks: Vec<SeriesChunk>,
    /// Start timestamps (Prometheus 3's "ST": when the counter behind a
    /// sample started counting) as `(sample time, start time)`, ascending
    /// by sample time; samples without one are absent. Only the PromQL test
    /// scripts' storage (`@st` lines) has them so far; the TSDB keeps none.
    pub start_times: Vec<(Timestamp, Timestamp)>,
}

impl Series {
    pub fn new(labels: Labels, chunks: Vec<SeriesChunk>) -> Self {
        Self {
            labels,
            chunks,
            start_times: Vec::new(),
        }
    }

    /// The series' float samples within `[mint, maxt]`, in time order, with
    /// overlapping chunks merged (one sample per timestamp, the first
    /// chunk's wins).
    pub fn samples(&self, mint: Timestamp, maxt: Timestamp) -> Result<Vec<Sample>> {
        decode_merged(&self.chunks, mint, maxt)
    }
}

/// Cuts samples (ascending times) into XOR chunks of at most
/// [`TARGET_SAMPLES_PER_CHUNK`] samples: for stores that get samples rather
/// than chunks (remote read's SAMPLES answers, the querier's merged
/// replicas).
#[derive(Default)]
pub struct ChunkEncoder {
    done: Vec<SeriesChunk>,
    current: Option<(XorChunk, Timestamp, Timestamp)>,
}

impl ChunkEncoder {
    /// Appends a sample; a time not after the previous one is an error.
    pub fn push(&mut self, s: Sample) -> hearth_model::Result<()> {
        if self
            .current
            .as_ref()
            .is_some_and(|(c, _, _)| c.num_samples() >= TARGET_SAMPLES_PER_CHUNK)
        {
            self.cut();
        }
        let (chunk, _, maxt) = self
            .current
            .get_or_insert_with(|| (XorChunk::new(), s.t, s.t));
        chunk.append(s.t, s.v)?;
        *maxt = s.t;
        Ok(())
    }

    fn cut(&mut self) {
        if let Some((chunk, mint, maxt)) = self.current.take() {
            self.done.push(SeriesChunk {
                mint,
                maxt,
                encoding: Encoding::Xor,
                data: chunk.into_bytes().into(),
            });
        }
    }

    /// The chunks, the last one closed.
    pub fn finish(mut self) -> Vec<SeriesChunk> {
        self.cut();
        self.done
    }
}

/// Decodes a series' chunks into samples within a range, merging overlaps.
pub struct ChunkSamples {
    samples: std::vec::IntoIter<Sample>,
    error: Option<Error>,
}

impl ChunkSamples {
    pub fn new(chunks: &[SeriesChunk], mint: Timestamp, maxt: Timestamp) -> Self {
        match decode_merged(chunks, mint, maxt) {
            Ok(s) => Self {
                samples: s.into_iter(),
                error: None,
            },
            Err(e) => Self {
                samples: Vec::new().into_iter(),
                error: Some(e),
            },
        }
    }
}

fn decode_chunk(
    c: &SeriesChunk,
    mint: Timestamp,
    maxt: Timestamp,
    out: &mut Vec<Sample>,
) -> Result<()> {
    if c.encoding != Encoding::Xor {
        return Err(Error::Corrupt(format!(
            "unsupported chunk encoding {:?}",
            c.encoding
        )));
    }
    for s in XorIterator::new(&c.data) {
        let s = s.map_err(|e| Error::Corrupt(e.to_string()))?;
        if s.t > maxt {
            break;
        }
        if s.t >= mint {
            out.push(s);
        }
    }
    Ok(())
}

fn decode_merged(chunks: &[SeriesChunk], mint: Timestamp, maxt: Timestamp) -> Result<Vec<Sample>> {
    // The chunks' own sample counts: enough to allocate once.
    let capacity: usize = chunks
        .iter()
        .filter(|c| c.maxt >= mint && c.mint <= maxt)
        .map(SeriesChunk::num_samples)
        .sum();
    let mut out = Vec::with_capacity(capacity);
    let mut sorted = true;
    let mut last_maxt = Timestamp::MIN;
    for c in chunks {
        if c.maxt < mint || c.mint > maxt {
            continue;
        }
        if c.mint <= last_maxt {
            sorted = false;
        }
        last_maxt = last_maxt.max(c.maxt);
        decode_chunk(c, mint, maxt, &mut out)?;
    }
    if !sorted {
        // Stable sort keeps the earliest chunk's sample first among equals.
        out.sort_by_key(|s| s.t);
        out.dedup_by_key(|s| s.t);
    }
    Ok(out)
}

impl Iterator for ChunkSamples {
    type Item = Result<Sample>;

    fn next(&mut self) -> Option<Result<Sample>> {
        if let Some(e) = self.error.take() {
            return Some(Err(e));
        }
        self.samples.next().map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_model::chunkenc::XorChunk;

    fn chunk(samples: &[(i64, f64)]) -> SeriesChunk {
        let mut c = XorChunk::new();
        let mut a = c.appender().unwrap();
        for &(t, v) in samples {
            a.append(t, v).unwrap();
        }
        SeriesChunk {
            mint: samples[0].0,
            maxt: samples.last().unwrap().0,
            encoding: Encoding::Xor,
            data: Arc::from(c.into_bytes()),
        }
    }

    #[test]
    fn merges_overlapping_chunks_and_clips_range() {
        let s = Series::new(
            Labels::new([("a", "b")]),
            vec![
                chunk(&[(1, 1.0), (3, 3.0), (5, 5.0)]),
                chunk(&[(2, 2.0), (3, 9.0), (6, 6.0)]),
            ],
        );
        let got: Vec<(i64, f64)> = s
            .samples(2, 5)
            .unwrap()
            .iter()
            .map(|s| (s.t, s.v))
            .collect();
        assert_eq!(got, vec![(2, 2.0), (3, 3.0), (5, 5.0)]);
    }
}
