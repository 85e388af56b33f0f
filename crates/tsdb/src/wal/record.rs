//! WAL record bodies in Prometheus's format (spec §6.2): series, samples and
//! tombstones, encoded exactly as Prometheus's `record.Encoder` writes them.
//!
//! The first byte of a record is its type. Sample and tombstone times are
//! signed varints (the upstream doc says uvarint; the code, which wins, uses
//! zig-zag varints), sample refs and times are deltas against the first
//! sample, which is itself repeated with deltas (0, 0). Values are raw f64
//! bits, so NaN payloads such as the staleness marker survive bit-exact.
//!
//! Decoding never panics: malformed input yields [`Error::Corrupt`].

use hearth_model::Labels;

use crate::encoding::{Decbuf, Encbuf};
use crate::{Error, Result};

/// Record type: series (ref and label set).
pub const SERIES: u8 = 1;
/// Record type: float samples.
pub const SAMPLES: u8 = 2;
/// Record type: tombstones (deleted time ranges).
pub const TOMBSTONES: u8 = 3;
/// Record type: exemplars (not decoded by Hearth).
pub const EXEMPLARS: u8 = 4;
/// Record type: m-map markers (out-of-order WBL only).
pub const MMAP_MARKERS: u8 = 5;
/// Record type: metric metadata (not decoded by Hearth).
pub const METADATA: u8 = 6;
/// Record type: native histogram samples (not decoded by Hearth).
pub const HISTOGRAM_SAMPLES: u8 = 7;
/// Record type: float native histogram samples (not decoded by Hearth).
pub const FLOAT_HISTOGRAM_SAMPLES: u8 = 8;

/// A series as logged when it is created in the head: its head reference
/// (`HeadSeriesRef`) and its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefSeries {
    pub ref_: u64,
    pub labels: Labels,
}

/// One float sample of the series with head reference `ref_`.
///
/// Equality compares value bits, so the staleness marker differs from other
/// NaNs and identical NaNs are equal.
#[derive(Debug, Clone, Copy)]
pub struct RefSample {
    pub ref_: u64,
    pub t: i64,
    pub v: f64,
}

impl PartialEq for RefSample {
    fn eq(&self, other: &Self) -> bool {
        self.ref_ == other.ref_ && self.t == other.t && self.v.to_bits() == other.v.to_bits()
    }
}

impl Eq for RefSample {}

/// Deleted time ranges (closed intervals `[mint, maxt]`) of one series.
///
/// On disk each interval is a separate entry; decoding yields one `Stone`
/// per entry, as Prometheus does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stone {
    pub ref_: u64,
    pub intervals: Vec<(i64, i64)>,
}

/// A decoded WAL record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Series(Vec<RefSeries>),
    Samples(Vec<RefSample>),
    Tombstones(Vec<Stone>),
    /// A record type Hearth does not decode (exemplars, metadata,
    /// histograms, or a type from a future Prometheus).
    Unknown(u8),
}

impl Record {
    /// Decodes a record of any type; types other than series, samples and
    /// tombstones come back as [`Record::Unknown`].
    pub fn decode(rec: &[u8]) -> Result<Record> {
        match record_type(rec) {
            None => Err(Error::Corrupt("wal record: empty record".into())),
            Some(SERIES) => {
                let mut out = Vec::new();
                decode_series(rec, &mut out)?;
                Ok(Record::Series(out))
            }
            Some(SAMPLES) => {
                let mut out = Vec::new();
                decode_samples(rec, &mut out)?;
                Ok(Record::Samples(out))
            }
            Some(TOMBSTONES) => {
                let mut out = Vec::new();
                decode_tombstones(rec, &mut out)?;
                Ok(Record::Tombstones(out))
            }
            Some(t) => Ok(Record::Unknown(t)),
        }
    }

    /// The encoded record. An `Unknown` record has no body and encodes to
    /// nothing.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        self.encode_into(&mut buf);
        buf
    }

    /// Appends the encoded record to `buf`.
    pub fn encode_into(&self, buf: &mut Vec<u8>) {
        match self {
            Record::Series(s) => encode_series(s, buf),
            Record::Samples(s) => encode_samples(s, buf),
            Record::Tombstones(s) => encode_tombstones(s, buf),
            Record::Unknown(_) => {}
        }
    }
}

/// The type byte of a record, `None` for an empty record.
pub fn record_type(rec: &[u8]) -> Option<u8> {
    rec.first().copied()
}

fn with_encbuf(buf: &mut Vec<u8>, f: impl FnOnce(&mut Encbuf)) {
    let mut e = Encbuf {
        buf: std::mem::take(buf),
    };
    f(&mut e);
    *buf = e.buf;
}

/// Appends a series record: type, then per series `ref` be64, the number of
/// labels as uvarint and each name and value as uvarint-prefixed strings.
pub fn encode_series(series: &[RefSeries], buf: &mut Vec<u8>) {
    with_encbuf(buf, |e| {
        e.put_u8(SERIES);
        for s in series {
            e.put_be64(s.ref_);
            // Counted separately: `Labels::len` walks the set anyway.
            e.put_uvarint(s.labels.len() as u64);
            for l in s.labels.iter() {
                e.put_uvarint_str(l.name.as_bytes());
                e.put_uvarint_str(l.value.as_bytes());
            }
        }
    });
}

/// Appends a samples record: type, and unless empty the first sample's ref
/// and time as be64, then per sample (the first included) the ref and time
/// deltas as signed varints and the value bits as be64.
pub fn encode_samples(samples: &[RefSample], buf: &mut Vec<u8>) {
    with_encbuf(buf, |e| {
        e.put_u8(SAMPLES);
        let Some(first) = samples.first() else { return };
        e.put_be64(first.ref_);
        e.put_be64_signed(first.t);
        for s in samples {
            // Go computes `int64(ref) - int64(first.Ref)` with wrapping.
            e.put_varint((s.ref_ as i64).wrapping_sub(first.ref_ as i64));
            e.put_varint(s.t.wrapping_sub(first.t));
            e.put_be64(s.v.to_bits());
        }
    });
}

/// Appends a tombstones record: type, then per interval of every stone
/// `ref` be64, `mint` and `maxt` as signed varints.
pub fn encode_tombstones(stones: &[Stone], buf: &mut Vec<u8>) {
    with_encbuf(buf, |e| {
        e.put_u8(TOMBSTONES);
        for s in stones {
            for &(mint, maxt) in &s.intervals {
                e.put_be64(s.ref_);
                e.put_varint(mint);
                e.put_varint(maxt);
            }
        }
    });
}

fn expect_type<'a>(rec: &'a [u8], want: u8, what: &'static str) -> Result<Decbuf<'a>> {
    let mut d = Decbuf::new(rec, what);
    let t = d.u8()?;
    if t != want {
        return Err(Error::Corrupt(format!(
            "{what}: record type {t}, expected {want}"
        )));
    }
    Ok(d)
}

/// Decodes a series record, appending to `out`. Label sets that are not
/// sorted are sorted (as Prometheus's decoder does); repeated names keep the
/// last value and empty values are dropped.
pub fn decode_series(rec: &[u8], out: &mut Vec<RefSeries>) -> Result<()> {
    let mut d = expect_type(rec, SERIES, "wal series record")?;
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    while !d.is_empty() {
        let ref_ = d.be64()?;
        let n = d.uvarint()?;
        pairs.clear();
        for _ in 0..n {
            let name = d.uvarint_str()?;
            let value = d.uvarint_str()?;
            pairs.push((name, value));
        }
        let canonical =
            pairs.iter().all(|(_, v)| !v.is_empty()) && pairs.windows(2).all(|w| w[0].0 < w[1].0);
        let labels = if canonical {
            Labels::from_sorted(pairs.iter().copied())
        } else {
            Labels::new(pairs.iter().copied())
        };
        out.push(RefSeries { ref_, labels });
    }
    Ok(())
}

/// Decodes a samples record, appending to `out`.
pub fn decode_samples(rec: &[u8], out: &mut Vec<RefSample>) -> Result<()> {
    let mut d = expect_type(rec, SAMPLES, "wal samples record")?;
    if d.is_empty() {
        return Ok(());
    }
    let base_ref = d.be64()? as i64;
    let base_t = d.be64()? as i64;
    // Each sample takes at least 10 bytes.
    out.reserve(d.remaining() / 10);
    while !d.is_empty() {
        let dref = d.varint()?;
        let dt = d.varint()?;
        let v = f64::from_bits(d.be64()?);
        out.push(RefSample {
            ref_: base_ref.wrapping_add(dref) as u64,
            t: base_t.wrapping_add(dt),
            v,
        });
    }
    Ok(())
}

/// Decodes a tombstones record, appending one [`Stone`] per entry.
pub fn decode_tombstones(rec: &[u8], out: &mut Vec<Stone>) -> Result<()> {
    let mut d = expect_type(rec, TOMBSTONES, "wal tombstones record")?;
    while !d.is_empty() {
        let ref_ = d.be64()?;
        let mint = d.varint()?;
        let maxt = d.varint()?;
        out.push(Stone {
            ref_,
            intervals: vec![(mint, maxt)],
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_model::STALE_NAN_BITS;
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::new(pairs.iter().copied())
    }

    /// Bytes written by Prometheus's `record.Encoder` (Go) for the same input.
    #[test]
    fn encodes_like_prometheus() {
        let mut buf = Vec::new();
        encode_series(
            &[RefSeries {
                ref_: 1,
                labels: labels(&[("__name__", "up"), ("job", "a")]),
            }],
            &mut buf,
        );
        let mut want = vec![1, 0, 0, 0, 0, 0, 0, 0, 1, 2, 8];
        want.extend_from_slice(b"__name__");
        want.push(2);
        want.extend_from_slice(b"up");
        want.push(3);
        want.extend_from_slice(b"job");
        want.push(1);
        want.extend_from_slice(b"a");
        assert_eq!(buf, want);

        buf.clear();
        encode_samples(
            &[
                RefSample {
                    ref_: 10,
                    t: 1000,
                    v: 1.0,
                },
                RefSample {
                    ref_: 9,
                    t: 999,
                    v: f64::from_bits(STALE_NAN_BITS),
                },
            ],
            &mut buf,
        );
        let mut want = vec![2];
        want.extend_from_slice(&10u64.to_be_bytes());
        want.extend_from_slice(&1000u64.to_be_bytes());
        want.extend_from_slice(&[0, 0]);
        want.extend_from_slice(&1.0f64.to_bits().to_be_bytes());
        // Deltas -1, -1 as zig-zag varints.
        want.extend_from_slice(&[1, 1]);
        want.extend_from_slice(&STALE_NAN_BITS.to_be_bytes());
        assert_eq!(buf, want);

        buf.clear();
        encode_tombstones(
            &[Stone {
                ref_: 5,
                intervals: vec![(-1, 2), (10, 20)],
            }],
            &mut buf,
        );
        let mut want = vec![3];
        want.extend_from_slice(&5u64.to_be_bytes());
        want.extend_from_slice(&[1, 4]);
        want.extend_from_slice(&5u64.to_be_bytes());
        want.extend_from_slice(&[20, 40]);
        assert_eq!(buf, want);
    }

    #[test]
    fn empty_records() {
        let mut buf = Vec::new();
        encode_samples(&[], &mut buf);
        assert_eq!(buf, vec![SAMPLES]);
        assert_eq!(Record::decode(&buf).unwrap(), Record::Samples(vec![]));
        buf.clear();
        encode_series(&[], &mut buf);
        assert_eq!(Record::decode(&buf).unwrap(), Record::Series(vec![]));
        assert!(Record::decode(&[]).is_err());
        assert_eq!(
            Record::decode(&[HISTOGRAM_SAMPLES, 1, 2]).unwrap(),
            Record::Unknown(HISTOGRAM_SAMPLES)
        );
    }

    #[test]
    fn unsorted_labels_are_sorted_on_decode() {
        let mut rec = vec![SERIES];
        rec.extend_from_slice(&7u64.to_be_bytes());
        rec.push(3);
        for s in ["job", "a", "__name__", "up", "empty", ""] {
            rec.push(s.len() as u8);
            rec.extend_from_slice(s.as_bytes());
        }
        let want = RefSeries {
            ref_: 7,
            labels: labels(&[("__name__", "up"), ("job", "a")]),
        };
        assert_eq!(Record::decode(&rec).unwrap(), Record::Series(vec![want]));
    }

    #[test]
    fn wrong_type_and_trailing_garbage_are_errors() {
        let mut buf = Vec::new();
        encode_samples(
            &[RefSample {
                ref_: 1,
                t: 2,
                v: 3.0,
            }],
            &mut buf,
        );
        let mut out = Vec::new();
        assert!(decode_series(&buf, &mut Vec::new()).is_err());
        buf.push(0x80);
        assert!(decode_samples(&buf, &mut out).is_err());
    }

    fn arb_labels() -> impl Strategy<Value = Labels> {
        proptest::collection::btree_map("[a-z_]{1,8}", "\\PC{1,8}", 0..5).prop_map(Labels::new)
    }

    fn arb_record() -> impl Strategy<Value = Record> {
        prop_oneof![
            proptest::collection::vec((any::<u64>(), arb_labels()), 0..8).prop_map(|v| {
                Record::Series(
                    v.into_iter()
                        .map(|(ref_, labels)| RefSeries { ref_, labels })
                        .collect(),
                )
            }),
            proptest::collection::vec((any::<u64>(), any::<i64>(), any::<u64>()), 0..32).prop_map(
                |v| Record::Samples(
                    v.into_iter()
                        .map(|(ref_, t, bits)| RefSample {
                            ref_,
                            t,
                            v: f64::from_bits(bits)
                        })
                        .collect()
                )
            ),
            proptest::collection::vec((any::<u64>(), any::<i64>(), any::<i64>()), 0..8).prop_map(
                |v| Record::Tombstones(
                    v.into_iter()
                        .map(|(ref_, mint, maxt)| Stone {
                            ref_,
                            intervals: vec![(mint, maxt)]
                        })
                        .collect()
                )
            ),
        ]
    }

    proptest! {
        #[test]
        fn records_round_trip(rec in arb_record()) {
            prop_assert_eq!(Record::decode(&rec.encode()).unwrap(), rec);
        }

        #[test]
        fn decoding_garbage_never_panics(ty in 1u8..4, body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut rec = vec![ty];
            rec.extend_from_slice(&body);
            let _ = Record::decode(&rec);
        }

        #[test]
        fn truncated_records_never_panic(rec in arb_record(), cut in any::<prop::sample::Index>()) {
            let buf = rec.encode();
            // A cut at an entry boundary decodes to fewer entries; any other
            // cut is an error. Neither may panic.
            let cut = 1 + cut.index(buf.len());
            let _ = Record::decode(&buf[..cut]);
        }
    }
}
