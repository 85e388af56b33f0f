//! The hot path's `Write` commands (`proto/hearth/ingest.proto`) encoded
//! and read by hand: every replica reads every committed write, and prost
//! would allocate a `String` per label name and value only for them to be
//! copied into `Labels` (a profile put half of an ingester's CPU in the
//! allocator). The view borrows names and values from the entry.
//!
//! The bytes are the protobuf encoding prost reads too (tests check both
//! ways); fields this reader does not know are skipped.

use hearth_model::{Labels, Sample};

/// A `Command` holding a `Write`, read in place.
#[derive(Debug, PartialEq)]
pub struct WriteView<'a> {
    pub tenant: &'a str,
    pub series: Vec<SeriesView<'a>>,
}

/// One series of a [`WriteView`]: labels in the order they were written.
#[derive(Debug, PartialEq)]
pub struct SeriesView<'a> {
    pub labels: Vec<(&'a str, &'a str)>,
    pub samples: Vec<Sample>,
}

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// Reads `data` as a `Command`: `Ok(Some)` for a `Write`, `Ok(None)` for
/// any other command (read with prost by the caller), `Err` when it is
/// not a valid encoding.
pub fn parse_write_command(data: &[u8]) -> Result<Option<WriteView<'_>>, String> {
    let mut r = Reader(data);
    let mut write = None;
    while !r.0.is_empty() {
        let (field, wire) = r.key()?;
        match (field, wire) {
            (1, LEN) => write = Some(parse_write(r.bytes()?)?),
            (2 | 3, LEN) => {
                r.bytes()?;
                write = None;
            }
            _ => r.skip(wire)?,
        }
    }
    Ok(write)
}

fn parse_write(data: &[u8]) -> Result<WriteView<'_>, String> {
    let mut r = Reader(data);
    let mut view = WriteView {
        tenant: "",
        series: Vec::new(),
    };
    while !r.0.is_empty() {
        match r.key()? {
            (1, LEN) => view.tenant = r.str()?,
            (2, LEN) => view.series.push(parse_series(r.bytes()?)?),
            (_, wire) => r.skip(wire)?,
        }
    }
    Ok(view)
}

fn parse_series(data: &[u8]) -> Result<SeriesView<'_>, String> {
    let mut r = Reader(data);
    let mut series = SeriesView {
        labels: Vec::with_capacity(8),
        samples: Vec::with_capacity(1),
    };
    while !r.0.is_empty() {
        match r.key()? {
            (1, LEN) => {
                let mut l = Reader(r.bytes()?);
                let (mut name, mut value) = ("", "");
                while !l.0.is_empty() {
                    match l.key()? {
                        (1, LEN) => name = l.str()?,
                        (2, LEN) => value = l.str()?,
                        (_, wire) => l.skip(wire)?,
                    }
                }
                series.labels.push((name, value));
            }
            (2, LEN) => {
                let mut s = Reader(r.bytes()?);
                let (mut t, mut v) = (0i64, 0f64);
                while !s.0.is_empty() {
                    match s.key()? {
                        (1, VARINT) => t = s.varint()? as i64,
                        (2, FIXED64) => v = f64::from_bits(s.fixed64()?),
                        (_, wire) => s.skip(wire)?,
                    }
                }
                series.samples.push(Sample::new(t, v));
            }
            (_, wire) => r.skip(wire)?,
        }
    }
    Ok(series)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for (i, b) in self.0.iter().enumerate().take(10) {
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                self.0 = &self.0[i + 1..];
                return Ok(v);
            }
        }
        Err("truncated or overlong varint".into())
    }

    fn key(&mut self) -> Result<(u64, u8), String> {
        let k = self.varint()?;
        Ok((k >> 3, (k & 7) as u8))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.0.len() {
            return Err(format!("field of {n} bytes past the end"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.varint()?;
        self.take(usize::try_from(n).map_err(|_| "length too large".to_string())?)
    }

    fn str(&mut self) -> Result<&'a str, String> {
        std::str::from_utf8(self.bytes()?).map_err(|e| format!("string field: {e}"))
    }

    fn fixed64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    fn skip(&mut self, wire: u8) -> Result<(), String> {
        match wire {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            LEN => self.bytes().map(drop),
            FIXED32 => self.take(4).map(drop),
            w => Err(format!("unsupported wire type {w}")),
        }
    }
}

/// Encodes a `Command` holding a `Write` of `series` for `tenant`.
pub fn encode_write_command(tenant: &str, series: &[(&Labels, &[Sample])]) -> Vec<u8> {
    let label_len = |n: &str, v: &str| field_len(1, n.len()) + field_len(2, v.len());
    let series_len = |labels: &Labels, samples: &[Sample]| -> usize {
        labels
            .iter()
            .map(|l| field_len(1, label_len(l.name, l.value)))
            .sum::<usize>()
            + samples
                .iter()
                .map(|s| field_len(2, sample_len(s)))
                .sum::<usize>()
    };
    let write_len = field_len(1, tenant.len())
        + series
            .iter()
            .map(|(l, s)| field_len(2, series_len(l, s)))
            .sum::<usize>();
    let mut out = Vec::with_capacity(field_len(1, write_len));
    put_len_key(&mut out, 1, write_len);
    put_len_key(&mut out, 1, tenant.len());
    out.extend_from_slice(tenant.as_bytes());
    for (labels, samples) in series {
        put_len_key(&mut out, 2, series_len(labels, samples));
        for l in labels.iter() {
            put_len_key(&mut out, 1, label_len(l.name, l.value));
            put_len_key(&mut out, 1, l.name.len());
            out.extend_from_slice(l.name.as_bytes());
            put_len_key(&mut out, 2, l.value.len());
            out.extend_from_slice(l.value.as_bytes());
        }
        for s in samples.iter() {
            put_len_key(&mut out, 2, sample_len(s));
            put_varint(&mut out, 1 << 3 | u64::from(VARINT));
            put_varint(&mut out, s.t as u64);
            put_varint(&mut out, 2 << 3 | u64::from(FIXED64));
            out.extend_from_slice(&s.v.to_bits().to_le_bytes());
        }
    }
    out
}

fn sample_len(s: &Sample) -> usize {
    1 + varint_len(s.t as u64) + 1 + 8
}

/// Bytes of a length-delimited field (small field numbers: one key byte).
fn field_len(_field: u64, len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

fn put_len_key(out: &mut Vec<u8>, field: u64, len: usize) {
    put_varint(out, field << 3 | u64::from(LEN));
    put_varint(out, len as u64);
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;
    use crate::proto::ingest::{command, Command, Label, Sample as PbSample, Series, Write};

    fn example() -> (Labels, Vec<Sample>, Labels, Vec<Sample>) {
        (
            Labels::new([("__name__", "up"), ("job", "node"), ("x", "y")]),
            vec![
                Sample::new(-5, 1.5),
                Sample::new(1_700_000_000_000, f64::NAN),
            ],
            Labels::new([("__name__", "é".to_string()), ("a", "b".repeat(300))]),
            vec![Sample::new(0, 0.0)],
        )
    }

    #[test]
    fn prost_reads_what_we_write() {
        let (a, sa, b, sb) = example();
        let bytes = encode_write_command("team", &[(&a, &sa), (&b, &sb)]);
        let decoded = Command::decode(bytes.as_slice()).expect("prost decodes it");
        let Some(command::Command::Write(w)) = decoded.command else {
            panic!("a write command");
        };
        assert_eq!(w.tenant, "team");
        assert_eq!(w.series.len(), 2);
        assert_eq!(w.series[0].labels.len(), 3);
        assert_eq!(w.series[0].labels[1].value, "node");
        assert_eq!(w.series[0].samples[0].timestamp, -5);
        assert!(w.series[0].samples[1].value.is_nan());
        assert_eq!(w.series[1].labels[1].value.len(), 300);
    }

    #[test]
    fn we_read_what_prost_writes() {
        let prost_bytes = Command {
            command: Some(command::Command::Write(Write {
                tenant: "t".into(),
                series: vec![Series {
                    labels: vec![
                        Label {
                            name: "__name__".into(),
                            value: "m".into(),
                        },
                        Label {
                            name: "k".into(),
                            value: String::new(),
                        },
                    ],
                    samples: vec![
                        PbSample {
                            timestamp: 0,
                            value: 0.0,
                        },
                        PbSample {
                            timestamp: -1,
                            value: 2.0,
                        },
                    ],
                }],
            })),
        }
        .encode_to_vec();
        let view = parse_write_command(&prost_bytes)
            .expect("valid")
            .expect("a write");
        assert_eq!(view.tenant, "t");
        assert_eq!(view.series[0].labels, vec![("__name__", "m"), ("k", "")]);
        assert_eq!(
            view.series[0].samples,
            vec![Sample::new(0, 0.0), Sample::new(-1, 2.0)]
        );
    }

    #[test]
    fn round_trips_and_refuses_garbage() {
        let (a, sa, b, sb) = example();
        let bytes = encode_write_command("", &[(&a, &sa), (&b, &sb)]);
        let view = parse_write_command(&bytes)
            .expect("valid")
            .expect("a write");
        let labels: Vec<Labels> = view
            .series
            .iter()
            .map(|s| Labels::from_sorted(s.labels.iter().copied()))
            .collect();
        assert_eq!(labels, vec![a, b]);
        assert_eq!(view.series[1].samples, sb);
        for cut in [1, bytes.len() / 2, bytes.len() - 1] {
            assert!(parse_write_command(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(parse_write_command(&[0x0f]).is_err(), "wire type 7");
        // Other commands are left to prost.
        let other = crate::shard::block_uploaded_command(ulid::Ulid::new());
        assert_eq!(parse_write_command(&other).expect("valid"), None);
    }
}
