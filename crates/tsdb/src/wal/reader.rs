//! Reading WAL segments back: fragment parsing, CRC checks, snappy
//! decompression, and replay over a checkpoint plus the segments after it.
//!
//! A segment is read in page-aligned 1 MiB chunks; a record that fits in
//! one fragment and is not compressed is handed out without copying. A
//! segment may be shorter than a whole number of pages (a crashed writer, or
//! a repaired tail): the missing rest of its last page counts as padding, as
//! in Prometheus's reader.
//!
//! Damage (a bad checksum, a truncated fragment, an invalid fragment
//! sequence, non-zero padding, an empty record) found in the *tail* segment, the last one
//! holding data, is a torn write: the reader stops there and reports it in
//! [`WalReader::torn_tail`]. The same damage anywhere else, or in a
//! checkpoint, is [`Error::Corrupt`] naming the file and offset.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::encoding::crc32c;
use crate::wal::{
    checkpoint::last_checkpoint, list_segments, segment_name, tail_segment, FRAGMENT_FIRST,
    FRAGMENT_FULL, FRAGMENT_HEADER_SIZE, FRAGMENT_LAST, FRAGMENT_MIDDLE, FRAGMENT_PAGE_TERM,
    FRAGMENT_TYPE_MASK, PAGE_SIZE, RESERVED_BITS, SNAPPY_FLAG, ZSTD_FLAG,
};
use crate::{Error, Result};

/// Bytes read from a segment file at a time; a whole number of pages.
const READ_CHUNK: usize = 32 * PAGE_SIZE;

/// Where a record lives after [`SegmentScanner::next`] found it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RecordLoc {
    /// `buf[start..end]`: one uncompressed full fragment.
    Chunk(usize, usize),
    /// The reassembled multi-fragment record.
    Assembled,
    /// The decompressed record.
    Decompressed,
}

/// A problem found while scanning a segment, at the start of the record (or
/// padding) it spoils.
#[derive(Debug, Clone)]
pub(crate) struct Damage {
    pub offset: u64,
    pub reason: String,
}

/// The outcome of one [`SegmentScanner::next`] call.
#[derive(Debug)]
pub(crate) enum Scanned {
    /// A record spanning `[start, end)` of the segment.
    Record {
        loc: RecordLoc,
        start: u64,
        end: u64,
    },
    /// The segment ended cleanly.
    End,
    /// The segment is damaged from `Damage::offset` on.
    Damaged(Damage),
}

/// Reads the records of one segment file at a time. Buffers are reused
/// across segments.
pub(crate) struct SegmentScanner {
    file: Option<File>,
    path: PathBuf,
    buf: Vec<u8>,
    /// File offset of `buf[0]`; always a multiple of [`READ_CHUNK`].
    buf_start: u64,
    /// Valid bytes in `buf`.
    buf_len: usize,
    pos: usize,
    eof: bool,
    assembled: Vec<u8>,
    decompressed: Vec<u8>,
    decoder: snap::raw::Decoder,
}

impl SegmentScanner {
    pub(crate) fn new() -> Self {
        Self {
            file: None,
            path: PathBuf::new(),
            buf: vec![0; READ_CHUNK],
            buf_start: 0,
            buf_len: 0,
            pos: 0,
            eof: false,
            assembled: Vec::new(),
            decompressed: Vec::new(),
            decoder: snap::raw::Decoder::new(),
        }
    }

    /// Starts reading the segment at `path`.
    pub(crate) fn open(&mut self, path: &Path) -> Result<()> {
        let file = File::open(path).map_err(Error::io("open wal segment", path))?;
        self.file = Some(file);
        self.path = path.to_path_buf();
        self.buf_start = 0;
        self.buf_len = 0;
        self.pos = 0;
        self.eof = false;
        Ok(())
    }

    pub(crate) fn close(&mut self) {
        self.file = None;
    }

    pub(crate) fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// The bytes of a record returned by [`SegmentScanner::next`].
    pub(crate) fn record(&self, loc: RecordLoc) -> &[u8] {
        match loc {
            RecordLoc::Chunk(start, end) => &self.buf[start..end],
            RecordLoc::Assembled => &self.assembled,
            RecordLoc::Decompressed => &self.decompressed,
        }
    }

    /// Reads the next chunk of the file; false at end of file.
    fn refill(&mut self) -> Result<bool> {
        if self.eof {
            return Ok(false);
        }
        self.buf_start += self.buf_len as u64;
        self.buf_len = 0;
        self.pos = 0;
        let file = self
            .file
            .as_mut()
            .expect("refill is only called on an open segment");
        while self.buf_len < READ_CHUNK {
            match file.read(&mut self.buf[self.buf_len..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.buf_len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("read wal segment", &self.path)(e)),
            }
        }
        Ok(self.buf_len > 0)
    }

    fn decompress(&mut self, compressed: Compressed) -> std::result::Result<(), String> {
        let input = match compressed {
            Compressed::Chunk(start, end) => &self.buf[start..end],
            Compressed::Assembled => &self.assembled[..],
        };
        let n = snap::raw::decompress_len(input).map_err(|e| format!("decompress record: {e}"))?;
        // Snappy expands at most ~21x (a 3-byte copy of 64 bytes); a larger
        // claim is garbage and must not make us allocate it.
        if n > input.len().saturating_mul(32).saturating_add(1024) {
            return Err(format!(
                "decompress record: implausible length {n} for {} bytes",
                input.len()
            ));
        }
        self.decompressed.resize(n, 0);
        self.decoder
            .decompress(input, &mut self.decompressed)
            .map_err(|e| format!("decompress record: {e}"))?;
        Ok(())
    }

    /// Scans to the next record, the end of the segment, or damage.
    pub(crate) fn next(&mut self) -> Result<Scanned> {
        // Offset of the first fragment of a record being assembled.
        let mut record_start: Option<u64> = None;
        let mut record_compressed = false;
        loop {
            if self.pos >= self.buf_len && !self.refill()? {
                return Ok(match record_start {
                    Some(offset) => Scanned::Damaged(Damage {
                        offset,
                        reason: "segment ends inside a record".into(),
                    }),
                    None => Scanned::End,
                });
            }
            let frag_start = self.buf_start + self.pos as u64;
            let damage = move |reason: String| {
                Ok(Scanned::Damaged(Damage {
                    offset: record_start.unwrap_or(frag_start),
                    reason,
                }))
            };
            let page_off = (frag_start % PAGE_SIZE as u64) as usize;
            let page_rest = PAGE_SIZE - page_off;
            let header = self.buf[self.pos];

            if header & FRAGMENT_TYPE_MASK == FRAGMENT_PAGE_TERM {
                // The rest of the page is padding. Chunks are page-aligned, so
                // a page cut short here is the end of the file.
                let n = page_rest.min(self.buf_len - self.pos);
                if self.buf[self.pos..self.pos + n].iter().any(|&b| b != 0) {
                    return damage("non-zero byte in page padding".into());
                }
                self.pos += n;
                continue;
            }
            if header & RESERVED_BITS != 0 {
                return damage(format!(
                    "reserved bits set in fragment header {header:#04x}"
                ));
            }
            let typ = header & FRAGMENT_TYPE_MASK;
            if page_rest < FRAGMENT_HEADER_SIZE {
                return damage("fragment header crosses a page boundary".into());
            }
            if self.buf_len - self.pos < FRAGMENT_HEADER_SIZE {
                return damage("truncated fragment header".into());
            }
            let h = &self.buf[self.pos..self.pos + FRAGMENT_HEADER_SIZE];
            let length = u16::from_be_bytes([h[1], h[2]]) as usize;
            let crc = u32::from_be_bytes([h[3], h[4], h[5], h[6]]);
            if FRAGMENT_HEADER_SIZE + length > page_rest {
                return damage(format!(
                    "fragment of {length} bytes crosses a page boundary"
                ));
            }
            let data_start = self.pos + FRAGMENT_HEADER_SIZE;
            let data_end = data_start + length;
            if data_end > self.buf_len {
                return damage("truncated fragment".into());
            }
            let actual = crc32c(&self.buf[data_start..data_end]);
            if actual != crc {
                return damage(format!(
                    "fragment checksum {actual:#010x}, expected {crc:#010x}"
                ));
            }
            if header & ZSTD_FLAG != 0 {
                // A sound fragment of a Prometheus 2.46+ WAL with zstd on.
                return Err(Error::Corrupt(format!(
                    "wal segment {} at offset {frag_start}: zstd-compressed records are not supported",
                    self.path.display()
                )));
            }
            let compressed = header & SNAPPY_FLAG != 0;
            match (record_start.is_some(), typ) {
                (false, FRAGMENT_FULL) => {
                    if length == 0 {
                        // No writer logs empty records; this is a flipped
                        // bit in page padding.
                        return damage("empty record".into());
                    }
                    self.pos = data_end;
                    let end = self.buf_start + data_end as u64;
                    if !compressed {
                        return Ok(Scanned::Record {
                            loc: RecordLoc::Chunk(data_start, data_end),
                            start: frag_start,
                            end,
                        });
                    }
                    if let Err(reason) = self.decompress(Compressed::Chunk(data_start, data_end)) {
                        return Ok(Scanned::Damaged(Damage {
                            offset: frag_start,
                            reason,
                        }));
                    }
                    return Ok(Scanned::Record {
                        loc: RecordLoc::Decompressed,
                        start: frag_start,
                        end,
                    });
                }
                (false, FRAGMENT_FIRST) => {
                    record_start = Some(frag_start);
                    record_compressed = compressed;
                    self.assembled.clear();
                    self.assembled
                        .extend_from_slice(&self.buf[data_start..data_end]);
                    self.pos = data_end;
                }
                (true, FRAGMENT_MIDDLE | FRAGMENT_LAST) => {
                    if compressed != record_compressed {
                        return damage("fragments of one record disagree on compression".into());
                    }
                    self.assembled
                        .extend_from_slice(&self.buf[data_start..data_end]);
                    self.pos = data_end;
                    if typ == FRAGMENT_LAST {
                        let start = record_start.expect("inside a record");
                        if self.assembled.is_empty() {
                            return damage("empty record".into());
                        }
                        let end = self.buf_start + data_end as u64;
                        if !compressed {
                            return Ok(Scanned::Record {
                                loc: RecordLoc::Assembled,
                                start,
                                end,
                            });
                        }
                        if let Err(reason) = self.decompress(Compressed::Assembled) {
                            return Ok(Scanned::Damaged(Damage {
                                offset: start,
                                reason,
                            }));
                        }
                        return Ok(Scanned::Record {
                            loc: RecordLoc::Decompressed,
                            start,
                            end,
                        });
                    }
                }
                (inside, t) => {
                    let what = match t {
                        FRAGMENT_FULL => "full",
                        FRAGMENT_FIRST => "first",
                        FRAGMENT_MIDDLE => "middle",
                        FRAGMENT_LAST => "last",
                        _ => "unknown",
                    };
                    let place = if inside {
                        "inside a record"
                    } else {
                        "at the start of a record"
                    };
                    return damage(format!("unexpected {what} fragment (type {t}) {place}"));
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Compressed {
    Chunk(usize, usize),
    Assembled,
}

/// A torn write at the end of the WAL, where a replay stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// Index of the tail segment.
    pub segment: u32,
    /// Offset in the segment where the spoilt record (or padding) starts;
    /// everything before it was read.
    pub offset: u64,
    pub reason: String,
}

/// Where the record last returned by [`WalReader::next_record`] lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecordPosition {
    /// Whether it came from the checkpoint (then `segment` indexes the
    /// checkpoint's own segments).
    pub in_checkpoint: bool,
    pub segment: u32,
    /// Offset of its first fragment header.
    pub start: u64,
    /// Offset just past its last fragment.
    pub end: u64,
}

#[derive(Debug, Clone)]
struct Source {
    path: PathBuf,
    index: u32,
    in_checkpoint: bool,
    /// Damage here is a torn tail rather than corruption.
    tail: bool,
}

/// Reads the records of a WAL in order. See the module docs for how damage
/// is treated.
pub struct WalReader {
    sources: Vec<Source>,
    /// Position in `sources` of the open segment, or of the next to open.
    current: usize,
    scanner: SegmentScanner,
    torn: Option<TornTail>,
    done: bool,
    position: RecordPosition,
}

impl WalReader {
    /// A replay of `dir` as the head does it: the newest checkpoint, then
    /// the segments after it. Segments covered by the checkpoint are
    /// skipped; a gap between the checkpoint and the first segment after it
    /// is an error.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        match last_checkpoint(dir)? {
            Some((cp_dir, n)) => {
                let from = n.checked_add(1).ok_or_else(|| {
                    Error::Corrupt(format!(
                        "wal {}: checkpoint index {n} is too large",
                        dir.display()
                    ))
                })?;
                let segments = list_segments(dir)?;
                if let Some(first) = segments.first() {
                    if first.index > from {
                        return Err(Error::Corrupt(format!(
                            "wal {}: segments start at {} but checkpoint.{} covers only up to {}",
                            dir.display(),
                            segment_name(first.index),
                            segment_name(n),
                            segment_name(n)
                        )));
                    }
                }
                Self::with_checkpoint(Some(&cp_dir), dir, from, None)
            }
            None => Self::with_checkpoint(None, dir, 0, None),
        }
    }

    /// Reads the segments `from..=to` of `dir` (all from `from` on when
    /// `to` is `None`), without any checkpoint.
    pub fn open_range(dir: impl AsRef<Path>, from: u32, to: Option<u32>) -> Result<Self> {
        Self::with_checkpoint(None, dir.as_ref(), from, to)
    }

    /// Reads every segment of `checkpoint_dir` (if any; damage there is
    /// always corruption), then segments `from..=to` of `dir`.
    pub fn with_checkpoint(
        checkpoint_dir: Option<&Path>,
        dir: &Path,
        from: u32,
        to: Option<u32>,
    ) -> Result<Self> {
        let mut sources = Vec::new();
        if let Some(cp) = checkpoint_dir {
            for s in list_segments(cp)? {
                sources.push(Source {
                    path: s.path,
                    index: s.index,
                    in_checkpoint: true,
                    tail: false,
                });
            }
        }
        let segments = list_segments(dir)?;
        let tail = tail_segment(&segments)?;
        for (i, s) in segments.into_iter().enumerate() {
            if s.index < from || to.is_some_and(|to| s.index > to) {
                continue;
            }
            sources.push(Source {
                path: s.path,
                index: s.index,
                in_checkpoint: false,
                tail: Some(i) == tail,
            });
        }
        Ok(Self {
            sources,
            current: 0,
            scanner: SegmentScanner::new(),
            torn: None,
            done: false,
            position: RecordPosition::default(),
        })
    }

    /// The next record, or `None` at the end of the WAL (or at a torn tail).
    /// The slice is valid until the next call.
    pub fn next_record(&mut self) -> Result<Option<&[u8]>> {
        loop {
            if self.done {
                return Ok(None);
            }
            if !self.scanner.is_open() {
                let Some(source) = self.sources.get(self.current) else {
                    self.done = true;
                    return Ok(None);
                };
                let path = source.path.clone();
                self.scanner.open(&path)?;
            }
            let source = &self.sources[self.current];
            match self.scanner.next()? {
                Scanned::Record { loc, start, end } => {
                    self.position = RecordPosition {
                        in_checkpoint: source.in_checkpoint,
                        segment: source.index,
                        start,
                        end,
                    };
                    return Ok(Some(self.scanner.record(loc)));
                }
                Scanned::End => {
                    self.scanner.close();
                    self.current += 1;
                }
                Scanned::Damaged(d) if source.tail => {
                    tracing::warn!(
                        segment = %source.path.display(),
                        offset = d.offset,
                        reason = %d.reason,
                        "wal ends with a torn write; replay stops there"
                    );
                    self.torn = Some(TornTail {
                        segment: source.index,
                        offset: d.offset,
                        reason: d.reason,
                    });
                    self.scanner.close();
                    self.done = true;
                    return Ok(None);
                }
                Scanned::Damaged(d) => {
                    let what = if source.in_checkpoint {
                        "wal checkpoint segment"
                    } else {
                        "wal segment"
                    };
                    return Err(Error::Corrupt(format!(
                        "{what} {} at offset {}: {}",
                        source.path.display(),
                        d.offset,
                        d.reason
                    )));
                }
            }
        }
    }

    /// The torn write that ended the replay, if there was one.
    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.torn.as_ref()
    }

    /// Where the record last returned lies.
    pub fn position(&self) -> RecordPosition {
        self.position
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::{Wal, WalOptions};
    use proptest::prelude::*;

    fn fragment(header: u8, data: &[u8]) -> Vec<u8> {
        let mut f = vec![header];
        f.extend_from_slice(&(data.len() as u16).to_be_bytes());
        f.extend_from_slice(&crc32c(data).to_be_bytes());
        f.extend_from_slice(data);
        f
    }

    fn scan_all(path: &Path) -> (Vec<Vec<u8>>, Option<Damage>) {
        let mut s = SegmentScanner::new();
        s.open(path).unwrap();
        let mut out = Vec::new();
        loop {
            match s.next().unwrap() {
                Scanned::Record { loc, .. } => out.push(s.record(loc).to_vec()),
                Scanned::End => return (out, None),
                Scanned::Damaged(d) => return (out, Some(d)),
            }
        }
    }

    #[test]
    fn reads_handmade_fragments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000");
        let compressed = snap::raw::Encoder::new().compress_vec(&[5u8; 300]).unwrap();
        let mut seg = fragment(FRAGMENT_FULL, b"one");
        seg.extend(fragment(FRAGMENT_FULL | SNAPPY_FLAG, &compressed));
        seg.extend(fragment(FRAGMENT_FIRST, b"tw"));
        seg.extend(fragment(FRAGMENT_MIDDLE, b""));
        seg.extend(fragment(FRAGMENT_LAST, b"o"));
        seg.resize(PAGE_SIZE, 0);
        seg.extend(fragment(FRAGMENT_FULL, b"three"));
        std::fs::write(&path, &seg).unwrap();
        let (recs, damage) = scan_all(&path);
        assert!(damage.is_none(), "{damage:?}");
        assert_eq!(
            recs,
            vec![
                b"one".to_vec(),
                vec![5u8; 300],
                b"two".to_vec(),
                b"three".to_vec()
            ]
        );
    }

    #[test]
    fn damage_is_reported_at_the_start_of_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000");
        let good = fragment(FRAGMENT_FULL, b"good");
        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "bad snappy length",
                fragment(FRAGMENT_FULL | SNAPPY_FLAG, &[0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
            ),
            ("first without last", fragment(FRAGMENT_FIRST, b"x")),
            ("middle first", fragment(FRAGMENT_MIDDLE, b"x")),
            ("mixed compression", {
                let mut f = fragment(FRAGMENT_FIRST, b"x");
                f.extend(fragment(FRAGMENT_LAST | SNAPPY_FLAG, b"y"));
                f
            }),
            ("reserved bits", fragment(0x41, b"x")),
            ("unknown type", fragment(5, b"x")),
            ("empty record", fragment(FRAGMENT_FULL, b"")),
            ("non-zero padding", vec![0, 0, 1]),
            ("bad crc", {
                let mut f = fragment(FRAGMENT_FULL, b"abc");
                f[3] ^= 1;
                f
            }),
        ];
        for (what, tail) in cases {
            let mut seg = good.clone();
            seg.extend(&tail);
            std::fs::write(&path, &seg).unwrap();
            let (recs, damage) = scan_all(&path);
            assert_eq!(recs, vec![b"good".to_vec()], "{what}");
            let damage = damage.unwrap_or_else(|| panic!("{what}: not detected"));
            assert_eq!(
                damage.offset,
                good.len() as u64,
                "{what}: {}",
                damage.reason
            );
        }
    }

    #[test]
    fn a_fragment_crossing_a_page_boundary_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000");
        let mut seg = fragment(FRAGMENT_FULL, &vec![1; PAGE_SIZE - 17]);
        seg.extend(fragment(FRAGMENT_FULL, b"0123456789"));
        std::fs::write(&path, &seg).unwrap();
        let (recs, damage) = scan_all(&path);
        assert_eq!(recs.len(), 1);
        let damage = damage.unwrap();
        assert_eq!(damage.offset, PAGE_SIZE as u64 - 10);
        assert!(
            damage.reason.contains("crosses a page boundary"),
            "{}",
            damage.reason
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Mangled segments never panic the scanner, and every record it
        /// returns before the damage is one that was written.
        #[test]
        fn mangled_segments_never_panic(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
            cut in any::<prop::sample::Index>(),
            compress in any::<bool>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let opts = WalOptions { segment_size: 4 * PAGE_SIZE as u64, compress, fsync_on_log: false };
            let wal = Wal::open(dir.path(), opts).unwrap();
            let written: Vec<Vec<u8>> = (0..40usize).map(|i| vec![i as u8; 1 + i * 997 % 5000]).collect();
            let refs: Vec<&[u8]> = written.iter().map(Vec::as_slice).collect();
            wal.log(&refs).unwrap();
            drop(wal);
            let path = dir.path().join("00000000");
            let mut seg = std::fs::read(&path).unwrap();
            for (i, b) in edits {
                let i = i.index(seg.len());
                seg[i] = b;
            }
            seg.truncate(cut.index(seg.len() + 1));
            std::fs::write(&path, &seg).unwrap();
            let (recs, _) = scan_all(&path);
            for r in &recs {
                prop_assert!(written.contains(r));
            }
        }
    }
}
