//! Bit streams, most significant bit first, as Prometheus's `bstream`.

use crate::{Error, Result};

/// An append-only bit stream backed by a byte vector.
#[derive(Debug, Clone, Default)]
pub struct BitWriter {
    bytes: Vec<u8>,
    /// Free bits in the last byte (0 means a new byte is needed).
    free: u8,
}

impl BitWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Continues a stream whose last byte has `free` unused low bits.
    pub fn from_bytes(bytes: Vec<u8>, free: u8) -> Self {
        Self { bytes, free }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn bytes_mut(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    pub fn free_bits(&self) -> u8 {
        self.free
    }

    #[inline]
    pub fn write_bit(&mut self, bit: bool) {
        if self.free == 0 {
            self.bytes.push(0);
            self.free = 8;
        }
        if bit {
            let last = self.bytes.len() - 1;
            self.bytes[last] |= 1 << (self.free - 1);
        }
        self.free -= 1;
    }

    /// Writes one whole byte (used while the stream is byte aligned and not).
    #[inline]
    pub fn write_byte(&mut self, b: u8) {
        if self.free == 0 {
            self.bytes.push(b);
            return;
        }
        let last = self.bytes.len() - 1;
        self.bytes[last] |= b >> (8 - self.free);
        self.bytes.push(b << self.free);
    }

    /// Writes the low `nbits` bits of `v`, most significant first.
    #[inline]
    pub fn write_bits(&mut self, v: u64, mut nbits: u32) {
        debug_assert!(nbits <= 64);
        if nbits == 0 {
            return;
        }
        let mut v = v << (64 - nbits);
        while nbits >= 8 {
            self.write_byte((v >> 56) as u8);
            v <<= 8;
            nbits -= 8;
        }
        while nbits > 0 {
            self.write_bit((v >> 63) == 1);
            v <<= 1;
            nbits -= 1;
        }
    }
}

/// Reads a bit stream written by [`BitWriter`].
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    bytes: &'a [u8],
    /// Position in bits from the start.
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    fn eof() -> Error {
        Error::CorruptChunk("unexpected end of chunk data".into())
    }

    #[inline]
    pub fn read_bit(&mut self) -> Result<bool> {
        let byte = *self.bytes.get(self.pos / 8).ok_or_else(Self::eof)?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1 == 1;
        self.pos += 1;
        Ok(bit)
    }

    /// The next bits, left-aligned: at least 57 valid bits (fewer near the
    /// end, where the rest reads as zeros). Does not advance.
    #[inline]
    pub fn peek(&self) -> u64 {
        let byte = self.pos / 8;
        let word = match self.bytes.get(byte..byte + 8) {
            Some(w) => u64::from_be_bytes(w.try_into().expect("8 bytes")),
            None => {
                let mut buf = [0u8; 8];
                let rest = self.bytes.get(byte..).unwrap_or(&[]);
                buf[..rest.len()].copy_from_slice(rest);
                u64::from_be_bytes(buf)
            }
        };
        word << (self.pos % 8)
    }

    /// Bits left to read.
    #[inline]
    pub fn remaining(&self) -> usize {
        (self.bytes.len() * 8).saturating_sub(self.pos)
    }

    /// Skips `nbits` bits already checked to be there (see [`Self::peek`]).
    #[inline]
    pub fn consume(&mut self, nbits: usize) {
        debug_assert!(nbits <= self.remaining());
        self.pos += nbits;
    }

    /// Reads `nbits` bits (at most 64) as an unsigned number.
    #[inline]
    pub fn read_bits(&mut self, nbits: u32) -> Result<u64> {
        debug_assert!(nbits <= 64);
        if nbits as usize > self.remaining() {
            return Err(Self::eof());
        }
        if nbits == 0 {
            return Ok(0);
        }
        if nbits <= 57 {
            let v = self.peek() >> (64 - nbits);
            self.pos += nbits as usize;
            return Ok(v);
        }
        let hi = self.peek() >> 32;
        self.pos += 32;
        let lo_bits = nbits - 32;
        let lo = self.peek() >> (64 - lo_bits);
        self.pos += lo_bits as usize;
        Ok((hi << lo_bits) | lo)
    }

    /// Bits consumed so far.
    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn read_byte(&mut self) -> Result<u8> {
        Ok(self.read_bits(8)? as u8)
    }

    /// Reads a Go `binary.Uvarint` from the stream, byte by byte.
    pub fn read_uvarint(&mut self) -> Result<u64> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.read_byte()?;
            if i == 9 && b > 1 {
                return Err(Error::CorruptChunk("uvarint overflows 64 bits".into()));
            }
            v |= ((b & 0x7f) as u64) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(Error::CorruptChunk("uvarint too long".into()))
    }

    /// Reads a Go `binary.Varint` (zig-zag).
    pub fn read_varint(&mut self) -> Result<i64> {
        let u = self.read_uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_round_trip_across_byte_edges() {
        let mut w = BitWriter::new();
        w.write_bit(true);
        w.write_bits(0b1011, 4);
        w.write_byte(0xA5);
        w.write_bits(u64::MAX, 64);
        w.write_bits(0x1234, 13);
        let mut r = BitReader::new(w.bytes());
        assert!(r.read_bit().unwrap());
        assert_eq!(r.read_bits(4).unwrap(), 0b1011);
        assert_eq!(r.read_byte().unwrap(), 0xA5);
        assert_eq!(r.read_bits(64).unwrap(), u64::MAX);
        assert_eq!(r.read_bits(13).unwrap(), 0x1234 & 0x1fff);
        assert!(r.read_bits(8).is_err());
    }
}
