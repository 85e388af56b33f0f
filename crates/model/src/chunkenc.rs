//! Chunk encodings of the TSDB format (specs/tsdb-blocks.md §2.3, §3).
//!
//! [`Encoding`] names the encoding byte stored beside every chunk; the XOR
//! float encoding (Gorilla, as Prometheus writes it, bit for bit) lives in
//! [`xor`]. Histogram encodings (2 and 3) are recognised but not decoded yet:
//! readers report them per series as unsupported.

pub mod bstream;
pub mod xor;

pub use xor::{XorAppender, XorChunk, XorIterator};

use crate::{Error, Result};

/// The encoding byte of a chunk record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Encoding {
    Xor = 1,
    Histogram = 2,
    FloatHistogram = 3,
}

impl Encoding {
    pub fn from_byte(b: u8) -> Result<Self> {
        match b {
            1 => Ok(Encoding::Xor),
            2 => Ok(Encoding::Histogram),
            3 => Ok(Encoding::FloatHistogram),
            other => Err(Error::UnsupportedEncoding(other)),
        }
    }

    pub fn as_byte(self) -> u8 {
        self as u8
    }
}

/// Samples a new chunk aims for, as Prometheus's head (`samples-per-chunk`).
pub const TARGET_SAMPLES_PER_CHUNK: usize = 120;
/// A chunk is cut once it has this many bytes (1024 minus the worst case of
/// one more sample), so float chunks stay at or below 1024 bytes.
pub const MAX_XOR_CHUNK_BYTES: usize = 1024 - 19;
