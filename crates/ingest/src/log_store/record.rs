//! The record framing of log segments: each record is
//! `[u32 LE length][u32 LE crc32c][u8 kind][payload]`, where `length` counts
//! the kind byte and the payload and the CRC covers both, so a torn or
//! corrupted record is detected on its own. Parsing tells a torn tail (the
//! end of the file after a crash mid-write, which is truncated) from
//! corruption with valid-looking data after it (an error).

use bytes::Bytes;

/// Bytes before the kind byte: length and CRC.
const FRAME_HEADER_LEN: usize = 8;

/// Upper bound on one record, so that a corrupt length is not trusted to
/// allocate gigabytes; raft entries are far smaller.
pub(crate) const MAX_RECORD_LEN: usize = 1 << 30;

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum RecordKind {
    /// A raft `Entry` (raft-rs's protobuf codec). Replaces any entry at the
    /// same or a later index.
    Entry = 1,
    /// A raft `HardState`; the last one wins.
    HardState = 2,
    /// A raft `ConfState` (the bootstrap configuration, or the one of a
    /// snapshot); the last one wins.
    ConfState = 3,
    /// Entries up to and including `index` are compacted away; `term` is the
    /// term of entry `index`. Later entries stay.
    Compact = 4,
    /// The whole log is replaced by a snapshot at `index` / `term`: every
    /// entry is dropped.
    Reset = 5,
}

impl RecordKind {
    fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            1 => RecordKind::Entry,
            2 => RecordKind::HardState,
            3 => RecordKind::ConfState,
            4 => RecordKind::Compact,
            5 => RecordKind::Reset,
            _ => return None,
        })
    }
}

/// Appends one framed record to `buf`; `write_payload` appends the payload.
pub(crate) fn encode<E>(
    buf: &mut Vec<u8>,
    kind: RecordKind,
    write_payload: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<(), E> {
    let start = buf.len();
    buf.extend_from_slice(&[0; FRAME_HEADER_LEN]);
    buf.push(kind as u8);
    if let Err(e) = write_payload(buf) {
        buf.truncate(start);
        return Err(e);
    }
    let body = &buf[start + FRAME_HEADER_LEN..];
    // The length fits: records are bounded by what raft hands us, far below 4 GiB.
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let crc = crc32c::crc32c(body);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// The payload of `Compact` and `Reset`: an index and its term.
pub(crate) fn encode_position(buf: &mut Vec<u8>, index: u64, term: u64) {
    buf.extend_from_slice(&index.to_le_bytes());
    buf.extend_from_slice(&term.to_le_bytes());
}

/// Decodes the payload of `Compact` and `Reset`.
pub(crate) fn decode_position(payload: &[u8]) -> Option<(u64, u64)> {
    let index = u64::from_le_bytes(payload.get(0..8)?.try_into().ok()?);
    let term = u64::from_le_bytes(payload.get(8..16)?.try_into().ok()?);
    (payload.len() == 16).then_some((index, term))
}

/// One record read back from a segment.
#[derive(Debug)]
pub(crate) struct Record {
    /// Byte offset of the record's frame in the segment.
    pub offset: u64,
    pub kind: RecordKind,
    pub payload: Bytes,
}

/// How the records of a segment end.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Tail {
    /// Every byte belongs to a valid record.
    Clean,
    /// The record at `offset` is incomplete or garbled and nothing but zeros
    /// follows it: a write interrupted by a crash. The file should be
    /// truncated there.
    Torn { offset: u64 },
    /// The record at `offset` is invalid but data follows it: the file was
    /// damaged after it was written.
    Corrupt { offset: u64, reason: String },
}

/// Splits `data[start..]` into records, stopping at the first invalid one.
///
/// An invalid record is a torn tail when no valid record follows it: a
/// crash interrupted the last write, and the space after it holds zeros or
/// a partial record. When a valid record does follow, the file was damaged
/// in the middle (a torn write never leaves complete records behind it in
/// an append-only file), and truncating there would drop synced data.
pub(crate) fn parse(data: &Bytes, start: usize) -> (Vec<Record>, Tail) {
    let mut records = Vec::new();
    let mut pos = start;
    while pos < data.len() {
        match parse_one(data, pos) {
            Ok((record, next)) => {
                records.push(record);
                pos = next;
            }
            Err(reason) => {
                let offset = pos as u64;
                let tail = if (pos + 1..data.len()).any(|p| parse_one(data, p).is_ok()) {
                    Tail::Corrupt { offset, reason }
                } else {
                    Tail::Torn { offset }
                };
                return (records, tail);
            }
        }
    }
    (records, Tail::Clean)
}

/// Parses the record at `pos`; on success, also returns where it ends.
fn parse_one(data: &Bytes, pos: usize) -> Result<(Record, usize), String> {
    let Some(header) = data.get(pos..pos + FRAME_HEADER_LEN) else {
        return Err("incomplete record header".to_string());
    };
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let body_start = pos + FRAME_HEADER_LEN;
    if len == 0 || len > MAX_RECORD_LEN {
        return Err(format!("invalid record length {len}"));
    }
    let body_end = body_start + len;
    if body_end > data.len() {
        return Err("record extends past the end of the file".to_string());
    }
    let body = &data[body_start..body_end];
    // The kind first: it rejects most garbage without a checksum over it.
    let Some(kind) = RecordKind::from_byte(body[0]) else {
        return Err(format!("unknown record kind {}", body[0]));
    };
    if crc32c::crc32c(body) != crc {
        return Err("record checksum mismatch".to_string());
    }
    let record = Record {
        offset: pos as u64,
        kind,
        payload: data.slice(body_start + 1..body_end),
    };
    Ok((record, body_end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(records: &[(RecordKind, &[u8])]) -> Vec<u8> {
        let mut buf = Vec::new();
        for (kind, payload) in records {
            encode::<()>(&mut buf, *kind, |b| {
                b.extend_from_slice(payload);
                Ok(())
            })
            .expect("infallible payload");
        }
        buf
    }

    #[test]
    fn round_trips_records() {
        let buf = framed(&[(RecordKind::Entry, b"abc"), (RecordKind::HardState, b"")]);
        let (records, tail) = parse(&Bytes::from(buf), 0);
        assert_eq!(tail, Tail::Clean);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].kind, RecordKind::Entry);
        assert_eq!(&records[0].payload[..], b"abc");
        assert_eq!(records[1].kind, RecordKind::HardState);
        assert_eq!(records[1].offset, 12);
    }

    #[test]
    fn a_cut_last_record_is_a_torn_tail() {
        let buf = framed(&[(RecordKind::Entry, b"abc"), (RecordKind::Entry, b"defgh")]);
        for cut in 13..buf.len() {
            let (records, tail) = parse(&Bytes::copy_from_slice(&buf[..cut]), 0);
            assert_eq!(records.len(), 1, "cut at {cut}");
            assert_eq!(tail, Tail::Torn { offset: 12 }, "cut at {cut}");
        }
    }

    #[test]
    fn zeros_after_the_last_record_are_a_torn_tail() {
        let mut buf = framed(&[(RecordKind::Entry, b"abc")]);
        buf.extend_from_slice(&[0; 64]);
        let (records, tail) = parse(&Bytes::from(buf), 0);
        assert_eq!(records.len(), 1);
        assert_eq!(tail, Tail::Torn { offset: 12 });
    }

    #[test]
    fn a_damaged_record_followed_by_data_is_corruption() {
        let mut buf = framed(&[(RecordKind::Entry, b"abc"), (RecordKind::Entry, b"def")]);
        buf[10] ^= 0xff;
        let (records, tail) = parse(&Bytes::from(buf), 0);
        assert!(records.is_empty());
        assert!(matches!(tail, Tail::Corrupt { offset: 0, .. }), "{tail:?}");
    }

    #[test]
    fn a_damaged_length_followed_by_data_is_corruption() {
        let mut buf = framed(&[
            (RecordKind::Entry, b"abc"),
            (RecordKind::Entry, b"def"),
            (RecordKind::Entry, b"ghi"),
        ]);
        // The second record claims to run past the end of the file.
        buf[12..16].copy_from_slice(&1000u32.to_le_bytes());
        let (records, tail) = parse(&Bytes::from(buf), 0);
        assert_eq!(records.len(), 1);
        assert!(matches!(tail, Tail::Corrupt { offset: 12, .. }), "{tail:?}");
    }

    #[test]
    fn positions_round_trip() {
        let mut buf = Vec::new();
        encode_position(&mut buf, 7, 3);
        assert_eq!(decode_position(&buf), Some((7, 3)));
        assert_eq!(decode_position(&buf[..15]), None);
    }
}
