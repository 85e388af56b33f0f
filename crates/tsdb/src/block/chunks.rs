//! A block's `chunks/` directory: numbered segment files of CRC-protected
//! chunk records (specs/tsdb-blocks.md §2).
//!
//! Each segment starts with `85 BD 40 DD 01 00 00 00`; records follow back
//! to back as `uvarint len | encoding byte | data | crc32c(encoding, data)`.
//! A chunk is addressed by a [`ChunkRef`], `(segment index << 32) | offset`,
//! where the segment index is the file's 0-based position in the sorted
//! listing. [`ChunkWriter`] appends records, cutting a new segment when the
//! current one would exceed its size limit; [`ChunkReader`] maps the
//! segments and resolves references with full bounds and CRC checks.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use hearth_model::chunkenc::Encoding;

use super::{sync_dir, FileBytes};
use crate::encoding::{crc32c, Decbuf, Encbuf};
use crate::{Error, Result};

/// Magic number at the start of every chunk segment.
pub const SEGMENT_MAGIC: u32 = 0x85BD_40DD;
/// Chunk segment format version.
pub const SEGMENT_VERSION: u8 = 1;
/// Bytes of a segment header: magic, version, 3 bytes of padding.
pub const SEGMENT_HEADER_SIZE: u64 = 8;
/// Prometheus's default segment size limit, 512 MiB.
pub const DEFAULT_SEGMENT_SIZE: u64 = 512 * 1024 * 1024;
/// The smallest segment size limit Prometheus accepts, 1 MiB.
pub const MIN_SEGMENT_SIZE: u64 = 1024 * 1024;

/// The pessimistic size Prometheus counts for one record when deciding to
/// cut: the longest length varint, the encoding byte, the data, the CRC.
fn record_size_bound(data_len: usize) -> u64 {
    5 + 1 + data_len as u64 + 4
}

/// A reference to a chunk record: `(segment index << 32) | offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ChunkRef(pub u64);

impl ChunkRef {
    pub fn new(segment: u32, offset: u32) -> Self {
        Self(((segment as u64) << 32) | offset as u64)
    }

    /// The 0-based position of the segment among the block's segment files.
    pub fn segment(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// The byte offset of the record's length field within its segment.
    pub fn offset(self) -> u32 {
        self.0 as u32
    }
}

/// The file name of the segment with 1-based sequence number `seq`.
pub fn segment_file_name(seq: u32) -> String {
    format!("{seq:06}")
}

/// Writes chunk records into segment files `000001`, `000002`, … of a
/// directory. Segments are fsynced by [`ChunkWriter::close`]; dropping the
/// writer without closing leaves partial files for the caller to remove.
pub struct ChunkWriter {
    dir: PathBuf,
    segment_size: u64,
    /// Closed segments, kept for the fsync at close.
    finished: Vec<PathBuf>,
    current: Option<(PathBuf, BufWriter<File>)>,
    /// Bytes in the current segment, header included.
    offset: u64,
    record: Encbuf,
}

impl ChunkWriter {
    /// A writer into `dir` (created if missing) with the default 512 MiB
    /// segment size.
    pub fn new(dir: &Path) -> Result<Self> {
        Self::with_segment_size(dir, DEFAULT_SEGMENT_SIZE)
    }

    /// A writer with a custom segment size limit, between 1 MiB and 4 GiB
    /// (offsets are 32-bit). Smaller values are allowed for tests.
    pub fn with_segment_size(dir: &Path, segment_size: u64) -> Result<Self> {
        if segment_size > u32::MAX as u64 {
            return Err(Error::InvalidArgument(format!(
                "chunk segment size {segment_size} exceeds 4 GiB"
            )));
        }
        std::fs::create_dir_all(dir).map_err(Error::io("create dir", dir))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            segment_size,
            finished: Vec::new(),
            current: None,
            offset: 0,
            record: Encbuf::with_capacity(1100),
        })
    }

    /// The number of segment files created so far.
    pub fn num_segments(&self) -> usize {
        self.finished.len() + usize::from(self.current.is_some())
    }

    fn cut(&mut self) -> Result<()> {
        self.finish_segment()?;
        let seq = u32::try_from(self.finished.len() + 1)
            .map_err(|_| Error::InvalidArgument("too many chunk segments".into()))?;
        let path = self.dir.join(segment_file_name(seq));
        let file = File::create(&path).map_err(Error::io("create", &path))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let mut header = Encbuf::with_capacity(8);
        header.put_be32(SEGMENT_MAGIC);
        header.put_u8(SEGMENT_VERSION);
        header.put_bytes(&[0, 0, 0]);
        w.write_all(header.get())
            .map_err(Error::io("write", &path))?;
        self.current = Some((path, w));
        self.offset = SEGMENT_HEADER_SIZE;
        Ok(())
    }

    fn finish_segment(&mut self) -> Result<()> {
        if let Some((path, w)) = self.current.take() {
            let file = w.into_inner().map_err(|e| Error::Io {
                op: "flush",
                path: path.clone(),
                source: e.into_error(),
            })?;
            file.sync_all().map_err(Error::io("fsync", &path))?;
            self.finished.push(path);
        }
        Ok(())
    }

    /// Appends one chunk record and returns its reference. The first record
    /// of a segment is always accepted, however large; later ones cut a new
    /// segment when the pessimistic record size would overflow the limit.
    pub fn write_chunk(&mut self, encoding: Encoding, data: &[u8]) -> Result<ChunkRef> {
        if data.len() > u32::MAX as usize / 2 {
            return Err(Error::InvalidArgument(format!(
                "chunk of {} bytes is too large",
                data.len()
            )));
        }
        let needs_cut = match self.current {
            None => true,
            Some(_) => {
                self.offset > SEGMENT_HEADER_SIZE
                    && self.offset + record_size_bound(data.len()) > self.segment_size
            }
        };
        if needs_cut {
            self.cut()?;
        }
        let segment = u32::try_from(self.num_segments() - 1)
            .map_err(|_| Error::InvalidArgument("too many chunk segments".into()))?;
        let offset = u32::try_from(self.offset).map_err(|_| {
            Error::InvalidArgument(format!(
                "chunk segment offset {} exceeds 4 GiB",
                self.offset
            ))
        })?;

        self.record.reset();
        self.record.put_uvarint(data.len() as u64);
        let crc_start = self.record.len();
        self.record.put_u8(encoding.as_byte());
        self.record.put_bytes(data);
        let crc = crc32c(&self.record.get()[crc_start..]);
        self.record.put_be32(crc);

        let (path, w) = self.current.as_mut().expect("a segment is open after cut");
        w.write_all(self.record.get())
            .map_err(Error::io("write", path.as_path()))?;
        self.offset += self.record.len() as u64;
        Ok(ChunkRef::new(segment, offset))
    }

    /// Flushes and fsyncs every segment and the directory.
    pub fn close(mut self) -> Result<()> {
        self.finish_segment()?;
        sync_dir(&self.dir)
    }
}

/// Resolves chunk references against a block's mapped segment files.
#[derive(Debug)]
pub struct ChunkReader {
    segments: Vec<FileBytes>,
}

impl ChunkReader {
    /// Maps every segment of `dir`: the entries whose names are unsigned
    /// integers, in name order, each checked for magic and version.
    pub fn open(dir: &Path) -> Result<Self> {
        let entries = std::fs::read_dir(dir).map_err(Error::io("list", dir))?;
        let mut names = Vec::new();
        for e in entries {
            let e = e.map_err(Error::io("list", dir))?;
            let name = e.file_name();
            if let Some(name) = name.to_str() {
                if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
                    names.push(name.to_string());
                }
            }
        }
        // Go's os.ReadDir order: by name.
        names.sort();
        let mut segments = Vec::with_capacity(names.len());
        for name in names {
            let path = dir.join(&name);
            let bytes = FileBytes::map(&path)?;
            check_segment_header(&bytes)
                .map_err(|e| Error::Corrupt(format!("chunk segment {}: {e}", path.display())))?;
            segments.push(bytes);
        }
        Ok(Self { segments })
    }

    /// A reader over in-memory segments (for tests and tools).
    pub fn from_segments(segments: Vec<Vec<u8>>) -> Result<Self> {
        for (i, s) in segments.iter().enumerate() {
            check_segment_header(s)
                .map_err(|e| Error::Corrupt(format!("chunk segment {i}: {e}")))?;
        }
        Ok(Self {
            segments: segments.into_iter().map(FileBytes::Owned).collect(),
        })
    }

    pub fn num_segments(&self) -> usize {
        self.segments.len()
    }

    /// The encoding and bytes of the chunk at `r`, after checking bounds and
    /// the CRC. Corrupt input is an error, never a panic.
    pub fn chunk(&self, r: ChunkRef) -> Result<(Encoding, &[u8])> {
        let corrupt = |msg: &str| {
            Error::Corrupt(format!(
                "chunk {:#x} (segment {}, offset {}): {msg}",
                r.0,
                r.segment(),
                r.offset()
            ))
        };
        let seg = self
            .segments
            .get(r.segment() as usize)
            .ok_or_else(|| corrupt("segment does not exist"))?;
        let offset = r.offset() as usize;
        if offset < SEGMENT_HEADER_SIZE as usize || offset.saturating_add(5) > seg.len() {
            return Err(corrupt("offset out of bounds"));
        }
        let mut d = Decbuf::new(&seg[offset..], "chunk record");
        let len = d.uvarint().map_err(|_| corrupt("bad length"))?;
        let len = usize::try_from(len).map_err(|_| corrupt("length overflows"))?;
        let body_start = d.position();
        if len.checked_add(5).is_none_or(|need| need > d.remaining()) {
            return Err(corrupt("record runs past the end of the segment"));
        }
        let enc = d.u8()?;
        let data = d.bytes(len)?;
        let crc = d.be32()?;
        let covered = &seg[offset + body_start..offset + body_start + 1 + len];
        if crc32c(covered) != crc {
            return Err(corrupt("checksum mismatch"));
        }
        let encoding = Encoding::from_byte(enc)?;
        Ok((encoding, data))
    }
}

fn check_segment_header(b: &[u8]) -> Result<()> {
    if b.len() < SEGMENT_HEADER_SIZE as usize {
        return Err(Error::Corrupt("shorter than its header".into()));
    }
    let mut d = Decbuf::new(b, "chunk segment header");
    let magic = d.be32()?;
    if magic != SEGMENT_MAGIC {
        return Err(Error::Corrupt(format!("bad magic {magic:#010x}")));
    }
    let version = d.u8()?;
    if version != SEGMENT_VERSION {
        return Err(Error::Corrupt(format!("unsupported version {version}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    fn write_all(dir: &Path, segment_size: u64, chunks: &[Vec<u8>]) -> Vec<ChunkRef> {
        let mut w = ChunkWriter::with_segment_size(dir, segment_size).unwrap();
        let refs = chunks
            .iter()
            .map(|c| w.write_chunk(Encoding::Xor, c).unwrap())
            .collect();
        w.close().unwrap();
        refs
    }

    #[test]
    fn record_matches_the_spec_example() {
        let data: Vec<u8> = vec![
            0x00, 0x04, 0x80, 0xa0, 0xab, 0xfe, 0xf9, 0x62, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0x98,
            0x75, 0x30, 0x97, 0xff, 0xe0, 0x7d, 0x36, 0x83,
        ];
        let dir = tempfile::tempdir().unwrap();
        let refs = write_all(
            dir.path(),
            DEFAULT_SEGMENT_SIZE,
            std::slice::from_ref(&data),
        );
        assert_eq!(refs, vec![ChunkRef(8)]);
        let file = std::fs::read(dir.path().join("000001")).unwrap();
        assert_eq!(&file[..8], &[0x85, 0xBD, 0x40, 0xDD, 1, 0, 0, 0]);
        assert_eq!(file[8], 0x19);
        assert_eq!(file[9], 0x01);
        assert_eq!(&file[10..35], &data[..]);
        assert_eq!(&file[35..], &[0xb6, 0xa9, 0x24, 0x9f]);
        let r = ChunkReader::open(dir.path()).unwrap();
        assert_eq!(r.chunk(refs[0]).unwrap(), (Encoding::Xor, &data[..]));
    }

    #[test]
    fn cuts_segments_at_the_size_limit() {
        let dir = tempfile::tempdir().unwrap();
        let chunks: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 40]).collect();
        // Header 8 + records of 46 bytes counted as 50: two fit in 120 bytes.
        let refs = write_all(dir.path(), 120, &chunks);
        let segs: Vec<u32> = refs.iter().map(|r| r.segment()).collect();
        assert_eq!(segs, vec![0, 0, 1, 1, 2, 2, 3, 3, 4, 4]);
        assert_eq!(refs[1].offset(), 8 + 46);
        assert!(refs.windows(2).all(|w| w[0] < w[1]));
        let names: Vec<String> = {
            let mut v: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            names,
            vec!["000001", "000002", "000003", "000004", "000005"]
        );
        let r = ChunkReader::open(dir.path()).unwrap();
        for (c, rf) in chunks.iter().zip(&refs) {
            assert_eq!(r.chunk(*rf).unwrap().1, &c[..]);
        }
    }

    #[test]
    fn an_oversized_first_chunk_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let refs = write_all(dir.path(), 16, &[vec![1; 100], vec![2; 100]]);
        assert_eq!(refs, vec![ChunkRef::new(0, 8), ChunkRef::new(1, 8)]);
    }

    #[test]
    fn corruption_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let refs = write_all(dir.path(), DEFAULT_SEGMENT_SIZE, &[vec![0, 1, 2, 3]]);
        let path = dir.path().join("000001");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[11] ^= 0xff;
        let r = ChunkReader::from_segments(vec![bytes.clone()]).unwrap();
        assert!(r
            .chunk(refs[0])
            .unwrap_err()
            .to_string()
            .contains("checksum"));
        assert!(r.chunk(ChunkRef::new(1, 8)).is_err());
        assert!(r.chunk(ChunkRef::new(0, 4)).is_err());
        assert!(r.chunk(ChunkRef::new(0, 1000)).is_err());
        bytes[0] = 0;
        assert!(ChunkReader::from_segments(vec![bytes]).is_err());
    }

    proptest! {
        // Every segment is fsynced: keep the case count modest.
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn chunks_round_trip(
            chunks in vec(vec(any::<u8>(), 2..300), 1..40),
            size in 256u64..4096,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let refs = write_all(dir.path(), size, &chunks);
            let r = ChunkReader::open(dir.path()).unwrap();
            for (c, rf) in chunks.iter().zip(&refs) {
                let (enc, data) = r.chunk(*rf).unwrap();
                prop_assert_eq!(enc, Encoding::Xor);
                prop_assert_eq!(data, &c[..]);
            }
        }

        #[test]
        fn garbage_never_panics(body in vec(any::<u8>(), 0..64), refs in vec(any::<u64>(), 8)) {
            let mut seg = vec![0x85, 0xBD, 0x40, 0xDD, 1, 0, 0, 0];
            seg.extend(body);
            let len = seg.len() as u64;
            let r = ChunkReader::from_segments(vec![seg]).unwrap();
            for rf in refs {
                let _ = r.chunk(ChunkRef(rf));
                let _ = r.chunk(ChunkRef(rf % len));
            }
        }
    }
}
