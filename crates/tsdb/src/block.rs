//! Block directories in Prometheus's on-disk format (specs/tsdb-blocks.md
//! §1–5): the unit the head is cut into, compaction merges, and Thanos ships.
//!
//! A block is a directory named by its ULID holding `meta.json` ([`meta`]),
//! `chunks/000001…` segment files ([`chunks`]), an `index` ([`index`]) and a
//! `tombstones` file ([`tombstones`]). [`writer::BlockWriter`] builds one
//! atomically under `<ULID>.tmp-for-creation/`; [`reader::Block`] opens one
//! (its files memory-mapped) and answers selects. Blocks we write open in
//! Prometheus 2.42 and Thanos; blocks they write open here.

pub mod chunks;
pub mod index;
pub mod meta;
pub mod reader;
pub mod tombstones;
pub mod writer;

use std::fs::File;
use std::ops::Deref;
use std::path::Path;

use memmap2::Mmap;
use ulid::Ulid;

use crate::{Error, Result};

pub use chunks::{ChunkReader, ChunkRef, ChunkWriter};
pub use index::{ChunkMeta, IndexReader, IndexWriter};
pub use meta::{BlockCompaction, BlockDesc, BlockMeta, BlockStats, ThanosMeta};
pub use reader::Block;
pub use tombstones::{Interval, Intervals, Tombstones};
pub use writer::{chunks_from_samples, BlockWriter, ChunkToWrite};

/// File name of a block's metadata.
pub const META_FILENAME: &str = "meta.json";
/// File name of a block's index.
pub const INDEX_FILENAME: &str = "index";
/// Directory name of a block's chunk segments.
pub const CHUNKS_DIRNAME: &str = "chunks";
/// File name of a block's tombstones.
pub const TOMBSTONES_FILENAME: &str = "tombstones";
/// Suffix of a block directory being written.
pub const TMP_FOR_CREATION_SUFFIX: &str = ".tmp-for-creation";
/// Suffix of a block directory being deleted.
pub const TMP_FOR_DELETION_SUFFIX: &str = ".tmp-for-deletion";

/// Parses a ULID the way Prometheus's `ulid.ParseStrict` does: 26 Crockford
/// base32 characters (either case, no I, L, O or U) whose value fits 128 bits.
pub fn parse_ulid_strict(s: &str) -> Option<Ulid> {
    let first = *s.as_bytes().first()?;
    // The first character carries only 3 bits: anything above '7' overflows.
    if !(b'0'..=b'7').contains(&first) {
        return None;
    }
    Ulid::from_string(s).ok()
}

/// Whether a directory entry name is a block: exactly a ULID. Transient
/// names (`<ULID>.tmp-for-creation`, `<ULID>.tmp-for-deletion`, legacy
/// `<ULID>.tmp`) are not.
pub fn is_block_dir(name: &str) -> bool {
    parse_ulid_strict(name).is_some()
}

/// The bytes of an immutable block file: memory-mapped, or owned (for
/// empty files, which cannot be mapped, and for tests).
pub enum FileBytes {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl FileBytes {
    /// Maps `path` read-only.
    pub fn map(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(Error::io("open", path))?;
        let len = file.metadata().map_err(Error::io("stat", path))?.len();
        if len == 0 {
            return Ok(FileBytes::Owned(Vec::new()));
        }
        // SAFETY: block files are immutable once their directory carries a
        // ULID name; nothing in Hearth writes or truncates them afterwards.
        // An outside process truncating the file would fault the reader,
        // which is the same contract Prometheus has.
        let map = unsafe { Mmap::map(&file) }.map_err(Error::io("mmap", path))?;
        Ok(FileBytes::Mapped(map))
    }
}

impl Deref for FileBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Mapped(m) => m,
            FileBytes::Owned(v) => v,
        }
    }
}

impl std::fmt::Debug for FileBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FileBytes({} bytes)", self.len())
    }
}

/// Fsyncs a directory so that renames and creations inside it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    let d = File::open(dir).map_err(Error::io("open dir", dir))?;
    d.sync_all().map_err(Error::io("fsync dir", dir))
}

/// Writes `data` to `dir/name` atomically: `name.tmp`, fsync, rename, fsync
/// of the directory.
pub(crate) fn write_file_atomic(dir: &Path, name: &str, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = dir.join(format!("{name}.tmp"));
    let dst = dir.join(name);
    let mut f = File::create(&tmp).map_err(Error::io("create", &tmp))?;
    f.write_all(data).map_err(Error::io("write", &tmp))?;
    f.sync_all().map_err(Error::io("fsync", &tmp))?;
    drop(f);
    std::fs::rename(&tmp, &dst).map_err(Error::io("rename", &tmp))?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_dir_names_are_strict_ulids() {
        assert!(is_block_dir("01HK1FDPTK4TFF59TDWH9EDD1R"));
        assert!(is_block_dir("01hk1fdptk4tff59tdwh9edd1r"));
        assert!(!is_block_dir("01HK1FDPTK4TFF59TDWH9EDD1R.tmp-for-creation"));
        assert!(!is_block_dir("01HK1FDPTK4TFF59TDWH9EDD1R.tmp-for-deletion"));
        assert!(!is_block_dir("01HK1FDPTK4TFF59TDWH9EDD1R.tmp"));
        assert!(!is_block_dir("81HK1FDPTK4TFF59TDWH9EDD1R"));
        assert!(!is_block_dir("01HK1FDPTK4TFF59TDWH9EDD1I"));
        assert!(!is_block_dir("01HK1FDPTK4TFF59TDWH9EDD1"));
        assert!(!is_block_dir("wal"));
        assert!(!is_block_dir(""));
        let id = parse_ulid_strict("01HK1FDPTK4TFF59TDWH9EDD1R").unwrap();
        assert_eq!(id.timestamp_ms(), 1_704_078_007_123);
    }
}
