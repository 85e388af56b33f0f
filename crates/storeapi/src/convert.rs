//! Conversions between StoreAPI messages (`hearth_proto::thanos`) and
//! Hearth's model: labels, matchers, chunks and series.
//!
//! Messages from the wire are not trusted: unknown enum values and bad
//! regexes are errors, label sets are re-sorted and de-duplicated. Chunk
//! encodings differ by one between Thanos and the TSDB (Thanos value = TSDB
//! value − 1, specs/storeapi.md §4.2).

use std::sync::Arc;

use hearth_model::chunkenc::Encoding;
use hearth_model::{Labels, MatchOp, Matcher};
use hearth_proto::thanos::{self as pb, chunk, label_matcher};
use hearth_storage_api::{Series, SeriesChunk};
use prost::bytes::Bytes;

use crate::error::{Error, Result};

/// A label set as a list of wire labels, in the set's (sorted) order.
pub fn labels_to_proto(labels: &Labels) -> Vec<pb::Label> {
    labels
        .iter()
        .map(|l| pb::Label {
            name: l.name.to_string(),
            value: l.value.to_string(),
        })
        .collect()
}

/// Wire labels as a label set: sorted, the last of repeated names kept,
/// empty values dropped (empty means absent), whatever the sender did.
pub fn labels_from_proto(labels: &[pb::Label]) -> Labels {
    Labels::new(labels.iter().map(|l| (&l.name, &l.value)))
}

pub fn matcher_to_proto(m: &Matcher) -> pb::LabelMatcher {
    let kind = match m.op {
        MatchOp::Equal => label_matcher::Type::Eq,
        MatchOp::NotEqual => label_matcher::Type::Neq,
        MatchOp::RegexMatch => label_matcher::Type::Re,
        MatchOp::RegexNoMatch => label_matcher::Type::Nre,
    };
    pb::LabelMatcher {
        r#type: kind as i32,
        name: m.name.clone(),
        value: m.value.clone(),
    }
}

pub fn matchers_to_proto(matchers: &[Matcher]) -> Vec<pb::LabelMatcher> {
    matchers.iter().map(matcher_to_proto).collect()
}

/// A wire matcher as a model matcher; an unknown type or a regex that does
/// not compile is [`Error::InvalidMessage`].
pub fn matcher_from_proto(m: &pb::LabelMatcher) -> Result<Matcher> {
    let op = match label_matcher::Type::try_from(m.r#type) {
        Ok(label_matcher::Type::Eq) => MatchOp::Equal,
        Ok(label_matcher::Type::Neq) => MatchOp::NotEqual,
        Ok(label_matcher::Type::Re) => MatchOp::RegexMatch,
        Ok(label_matcher::Type::Nre) => MatchOp::RegexNoMatch,
        Err(_) => {
            return Err(Error::InvalidMessage {
                what: "matcher",
                reason: format!("unknown matcher type {} on label {:?}", m.r#type, m.name),
            })
        }
    };
    Matcher::new(op, m.name.clone(), m.value.clone()).map_err(|e| Error::InvalidMessage {
        what: "matcher",
        reason: e.to_string(),
    })
}

pub fn matchers_from_proto(matchers: &[pb::LabelMatcher]) -> Result<Vec<Matcher>> {
    matchers.iter().map(matcher_from_proto).collect()
}

/// The wire encoding of a TSDB chunk encoding (one less).
pub fn encoding_to_proto(e: Encoding) -> chunk::Encoding {
    match e {
        Encoding::Xor => chunk::Encoding::Xor,
        Encoding::Histogram => chunk::Encoding::Histogram,
        Encoding::FloatHistogram => chunk::Encoding::FloatHistogram,
    }
}

/// The TSDB chunk encoding of a wire encoding value. Histogram encodings
/// are kept as they are (whoever decodes the chunk reports them); only a
/// value no Thanos version defines is an error.
pub fn encoding_from_proto(value: i32) -> Result<Encoding> {
    match chunk::Encoding::try_from(value) {
        Ok(chunk::Encoding::Xor) => Ok(Encoding::Xor),
        Ok(chunk::Encoding::Histogram) => Ok(Encoding::Histogram),
        Ok(chunk::Encoding::FloatHistogram) => Ok(Encoding::FloatHistogram),
        Err(_) => Err(Error::InvalidMessage {
            what: "chunk",
            reason: format!("unknown chunk encoding {value}"),
        }),
    }
}

/// The `Chunk.hash` Hearth sends: xxhash64 (seed 0) of the chunk bytes, as
/// Thanos computes it; the querier uses it to drop identical chunks.
pub fn chunk_hash(data: &[u8]) -> u64 {
    xxhash_rust::xxh64::xxh64(data, 0)
}

/// A raw chunk as a wire `AggrChunk`, with its hash. The bytes are shared,
/// not copied.
pub fn chunk_to_proto(c: &SeriesChunk) -> pb::AggrChunk {
    let hash = chunk_hash(&c.data);
    pb::AggrChunk {
        min_time: c.mint,
        max_time: c.maxt,
        raw: Some(pb::Chunk {
            r#type: encoding_to_proto(c.encoding) as i32,
            data: Bytes::from_owner(Arc::clone(&c.data)),
            hash,
        }),
        ..Default::default()
    }
}

/// A wire `AggrChunk`'s raw chunk. Hearth asks for raw data only
/// (`max_resolution_window` 0), so a chunk without one is an error rather
/// than something to skip.
pub fn chunk_from_proto(c: &pb::AggrChunk) -> Result<SeriesChunk> {
    let raw = c.raw.as_ref().ok_or_else(|| Error::InvalidMessage {
        what: "chunk",
        reason: format!(
            "chunk [{}, {}] has no raw data (downsampled aggregates only)",
            c.min_time, c.max_time
        ),
    })?;
    Ok(SeriesChunk {
        mint: c.min_time,
        maxt: c.max_time,
        encoding: encoding_from_proto(raw.r#type)?,
        data: Arc::from(&raw.data[..]),
    })
}

/// A wire series as a model series; an error names the series.
pub fn series_from_proto(s: &pb::Series) -> Result<Series> {
    let labels = labels_from_proto(&s.labels);
    let chunks = s
        .chunks
        .iter()
        .map(chunk_from_proto)
        .collect::<Result<Vec<_>>>()
        .map_err(|e| match e {
            Error::InvalidMessage { what, reason } => Error::InvalidMessage {
                what,
                reason: format!("series {labels}: {reason}"),
            },
            e => e,
        })?;
    Ok(Series::new(labels, chunks))
}

/// The downsampled aggregates to ask for under the PromQL function around
/// a selector (specs/storeapi.md §3.5): only read from downsampled blocks,
/// so harmless for raw data.
pub fn aggregates_for_func(func: Option<&str>) -> Vec<pb::Aggr> {
    let Some(f) = func else {
        return vec![pb::Aggr::Count, pb::Aggr::Sum];
    };
    match f {
        "increase" | "rate" | "irate" | "resets" | "xincrease" | "xrate" => {
            vec![pb::Aggr::Counter]
        }
        f if f == "min" || f.starts_with("min_") => vec![pb::Aggr::Min],
        f if f == "max" || f.starts_with("max_") => vec![pb::Aggr::Max],
        f if f == "count" || f.starts_with("count_") => vec![pb::Aggr::Count],
        f if f.starts_with("sum_") => vec![pb::Aggr::Sum],
        _ => vec![pb::Aggr::Count, pb::Aggr::Sum],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_are_tsdb_minus_one() {
        for e in [Encoding::Xor, Encoding::Histogram, Encoding::FloatHistogram] {
            let wire = encoding_to_proto(e) as i32;
            assert_eq!(wire, i32::from(e.as_byte()) - 1);
            assert_eq!(encoding_from_proto(wire).unwrap(), e);
        }
        assert!(encoding_from_proto(3).is_err());
        assert!(encoding_from_proto(-1).is_err());
    }

    #[test]
    fn matchers_round_trip_and_bad_ones_fail() {
        let ms = vec![
            Matcher::equal("a", "1"),
            Matcher::new(MatchOp::NotEqual, "b", "2").unwrap(),
            Matcher::new(MatchOp::RegexMatch, "c", "x|y").unwrap(),
            Matcher::new(MatchOp::RegexNoMatch, "d", "z.+").unwrap(),
        ];
        assert_eq!(matchers_from_proto(&matchers_to_proto(&ms)).unwrap(), ms);
        let bad_regex = pb::LabelMatcher {
            r#type: label_matcher::Type::Re as i32,
            name: "a".into(),
            value: "(".into(),
        };
        assert!(matcher_from_proto(&bad_regex).is_err());
        let bad_type = pb::LabelMatcher {
            r#type: 9,
            name: "a".into(),
            value: "b".into(),
        };
        assert!(matcher_from_proto(&bad_type).is_err());
    }

    #[test]
    fn wire_labels_are_sorted_and_cleaned() {
        let wire = vec![
            pb::Label {
                name: "b".into(),
                value: "2".into(),
            },
            pb::Label {
                name: "a".into(),
                value: "1".into(),
            },
            pb::Label {
                name: "c".into(),
                value: String::new(),
            },
        ];
        let l = labels_from_proto(&wire);
        assert_eq!(l, Labels::new([("a", "1"), ("b", "2")]));
        assert_eq!(labels_from_proto(&labels_to_proto(&l)), l);
    }

    #[test]
    fn chunks_round_trip_with_hash() {
        let c = SeriesChunk {
            mint: 1,
            maxt: 2,
            encoding: Encoding::Histogram,
            data: Arc::from(&b"\x00\x01abc"[..]),
        };
        let wire = chunk_to_proto(&c);
        let raw = wire.raw.as_ref().unwrap();
        assert_eq!(raw.hash, xxhash_rust::xxh64::xxh64(&c.data, 0));
        assert_eq!(raw.r#type, 1);
        assert_eq!(chunk_from_proto(&wire).unwrap(), c);
        let no_raw = pb::AggrChunk { raw: None, ..wire };
        assert!(chunk_from_proto(&no_raw).is_err());
    }

    #[test]
    fn aggregates_follow_the_enclosing_function() {
        assert_eq!(aggregates_for_func(Some("rate")), vec![pb::Aggr::Counter]);
        assert_eq!(
            aggregates_for_func(Some("min_over_time")),
            vec![pb::Aggr::Min]
        );
        assert_eq!(aggregates_for_func(Some("max")), vec![pb::Aggr::Max]);
        assert_eq!(
            aggregates_for_func(Some("count_over_time")),
            vec![pb::Aggr::Count]
        );
        assert_eq!(
            aggregates_for_func(Some("sum_over_time")),
            vec![pb::Aggr::Sum]
        );
        assert_eq!(
            aggregates_for_func(Some("sum")),
            vec![pb::Aggr::Count, pb::Aggr::Sum]
        );
        assert_eq!(
            aggregates_for_func(None),
            vec![pb::Aggr::Count, pb::Aggr::Sum]
        );
    }
}
