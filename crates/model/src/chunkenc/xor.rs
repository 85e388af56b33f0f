//! The XOR float chunk (encoding 1), bit for bit as Prometheus writes it.
//!
//! Layout: `num_samples be16`, then a bit stream: `t0` varint and `v0` raw
//! bits, `t1 - t0` uvarint and `v1` XOR-coded, then delta-of-delta
//! timestamps and XOR-coded values (specs/tsdb-blocks.md §3).

use super::bstream::{BitReader, BitWriter};
use crate::{Error, Result, Sample, Timestamp};

/// An XOR chunk being written or read: its bytes include the 2-byte header.
#[derive(Debug, Clone)]
pub struct XorChunk {
    stream: BitWriter,
    /// The encoder's state after the last sample; `None` until recovered
    /// for a chunk read from bytes.
    state: Option<AppendState>,
}

impl Default for XorChunk {
    fn default() -> Self {
        Self::new()
    }
}

impl XorChunk {
    /// An empty chunk (header only, zero samples).
    pub fn new() -> Self {
        let mut w = BitWriter::new();
        w.write_byte(0);
        w.write_byte(0);
        Self {
            stream: w,
            state: Some(AppendState::default()),
        }
    }

    /// Wraps stored chunk bytes. They are checked lazily, by iteration.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        if bytes.len() < 2 {
            return Err(Error::CorruptChunk(
                "xor chunk shorter than its header".into(),
            ));
        }
        Ok(Self {
            stream: BitWriter::from_bytes(bytes, 0),
            state: None,
        })
    }

    pub fn bytes(&self) -> &[u8] {
        self.stream.bytes()
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.stream.into_bytes()
    }

    pub fn num_samples(&self) -> usize {
        let b = self.stream.bytes();
        u16::from_be_bytes([b[0], b[1]]) as usize
    }

    pub fn iter(&self) -> XorIterator<'_> {
        XorIterator::new(self.stream.bytes())
    }

    /// An appender positioned after the last sample.
    pub fn appender(&mut self) -> Result<XorAppender<'_>> {
        self.recover_state()?;
        Ok(XorAppender { chunk: self })
    }

    /// Appends one sample. For a chunk read from bytes, the first append
    /// decodes the samples once to recover the encoder's state.
    #[inline]
    pub fn append(&mut self, t: Timestamp, v: f64) -> Result<()> {
        self.recover_state()?;
        let n = self.num_samples();
        if n == u16::MAX as usize {
            return Err(Error::ChunkFull("xor chunk holds 65535 samples".into()));
        }
        let s = self.state.as_mut().expect("state recovered above");
        encode_sample(&mut self.stream, s, n, t, v);
        let count = (n + 1) as u16;
        self.stream.bytes_mut()[..2].copy_from_slice(&count.to_be_bytes());
        Ok(())
    }

    /// The last sample's timestamp and value, if any.
    pub fn last(&mut self) -> Result<Option<(Timestamp, f64)>> {
        self.recover_state()?;
        let s = self.state.as_ref().expect("state recovered above");
        Ok((self.num_samples() > 0).then_some((s.t, s.v)))
    }

    fn recover_state(&mut self) -> Result<()> {
        if self.state.is_some() {
            return Ok(());
        }
        let mut state = AppendState::default();
        let n = self.num_samples();
        if n > 0 {
            let mut it = self.iter();
            let mut prev_t = 0;
            for i in 0..n {
                let s = it
                    .next()
                    .ok_or_else(|| Error::CorruptChunk("fewer samples than header".into()))??;
                if i > 0 {
                    state.t_delta = (s.t as u64).wrapping_sub(prev_t as u64);
                }
                prev_t = s.t;
                state.t = s.t;
                state.v = s.v;
            }
            state.leading = it.leading;
            state.trailing = it.trailing;
            // The bits the iterator did not consume in the last byte are free.
            let used_bits = it.reader_pos();
            let total = self.stream.bytes().len() * 8;
            let free = total - used_bits;
            if free >= 8 {
                return Err(Error::CorruptChunk("xor chunk has trailing bytes".into()));
            }
            let bytes = std::mem::take(self.stream.bytes_mut());
            self.stream = BitWriter::from_bytes(bytes, free as u8);
        }
        self.state = Some(state);
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
struct AppendState {
    t: Timestamp,
    v: f64,
    t_delta: u64,
    leading: u8,
    trailing: u8,
}

impl Default for AppendState {
    fn default() -> Self {
        Self {
            t: 0,
            v: 0.0,
            t_delta: 0,
            leading: 0xff,
            trailing: 0,
        }
    }
}

/// Appends samples to an [`XorChunk`]. Timestamps should increase; the
/// encoding itself tolerates anything (wrapping arithmetic).
pub struct XorAppender<'a> {
    chunk: &'a mut XorChunk,
}

impl XorAppender<'_> {
    pub fn append(&mut self, t: Timestamp, v: f64) -> Result<()> {
        self.chunk.append(t, v)
    }
}

/// Writes sample number `n` (0-based) of a chunk.
#[inline]
fn encode_sample(w: &mut BitWriter, s: &mut AppendState, n: usize, t: Timestamp, v: f64) {
    match n {
        0 => {
            let mut buf = [0u8; 10];
            let len = put_varint(&mut buf, t);
            for &b in &buf[..len] {
                w.write_byte(b);
            }
            w.write_bits(v.to_bits(), 64);
        }
        1 => {
            let delta = (t as u64).wrapping_sub(s.t as u64);
            let mut buf = [0u8; 10];
            let len = put_uvarint(&mut buf, delta);
            for &b in &buf[..len] {
                w.write_byte(b);
            }
            write_xor_value(w, s.v, v, &mut s.leading, &mut s.trailing);
            s.t_delta = delta;
        }
        _ => {
            let delta = (t as u64).wrapping_sub(s.t as u64);
            let dod = delta.wrapping_sub(s.t_delta) as i64;
            if dod == 0 {
                w.write_bit(false);
            } else if bit_range(dod, 14) {
                w.write_bits(0b10, 2);
                w.write_bits(dod as u64, 14);
            } else if bit_range(dod, 17) {
                w.write_bits(0b110, 3);
                w.write_bits(dod as u64, 17);
            } else if bit_range(dod, 20) {
                w.write_bits(0b1110, 4);
                w.write_bits(dod as u64, 20);
            } else {
                w.write_bits(0b1111, 4);
                w.write_bits(dod as u64, 64);
            }
            write_xor_value(w, s.v, v, &mut s.leading, &mut s.trailing);
            s.t_delta = delta;
        }
    }
    s.t = t;
    s.v = v;
}

/// Whether `x` fits the asymmetric `n`-bit range `[-(2^(n-1) - 1), 2^(n-1)]`.
#[inline]
fn bit_range(x: i64, nbits: u32) -> bool {
    -((1i64 << (nbits - 1)) - 1) <= x && x <= 1i64 << (nbits - 1)
}

#[inline]
fn write_xor_value(w: &mut BitWriter, prev: f64, v: f64, leading: &mut u8, trailing: &mut u8) {
    let x = prev.to_bits() ^ v.to_bits();
    if x == 0 {
        w.write_bit(false);
        return;
    }
    w.write_bit(true);
    let mut lz = x.leading_zeros() as u8;
    let tz = x.trailing_zeros() as u8;
    if lz >= 32 {
        lz = 31;
    }
    if *leading != 0xff && lz >= *leading && tz >= *trailing {
        w.write_bit(false);
        w.write_bits(x >> *trailing, 64 - *leading as u32 - *trailing as u32);
        return;
    }
    *leading = lz;
    *trailing = tz;
    w.write_bit(true);
    w.write_bits(lz as u64, 5);
    let sig = 64 - lz as u32 - tz as u32;
    // 64 significant bits are written as 0 in the 6-bit field.
    w.write_bits(sig as u64, 6);
    w.write_bits(x >> tz, sig);
}

fn put_uvarint(buf: &mut [u8; 10], mut v: u64) -> usize {
    let mut i = 0;
    while v >= 0x80 {
        buf[i] = (v as u8) | 0x80;
        v >>= 7;
        i += 1;
    }
    buf[i] = v as u8;
    i + 1
}

fn put_varint(buf: &mut [u8; 10], v: i64) -> usize {
    put_uvarint(buf, ((v << 1) ^ (v >> 63)) as u64)
}

/// Decodes the samples of an XOR chunk's bytes (header included).
pub struct XorIterator<'a> {
    reader: BitReader<'a>,
    total: usize,
    read: usize,
    t: Timestamp,
    v: f64,
    t_delta: u64,
    leading: u8,
    trailing: u8,
    failed: bool,
}

impl<'a> XorIterator<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        let (total, body) = if bytes.len() >= 2 {
            (
                u16::from_be_bytes([bytes[0], bytes[1]]) as usize,
                &bytes[2..],
            )
        } else {
            (0, &bytes[..0])
        };
        Self {
            reader: BitReader::new(body),
            total,
            read: 0,
            t: 0,
            v: 0.0,
            t_delta: 0,
            leading: 0,
            trailing: 0,
            failed: bytes.len() < 2,
        }
    }

    /// Bits consumed so far, counting the 2-byte header.
    fn reader_pos(&self) -> usize {
        16 + self.reader.pos()
    }

    fn read_value(&mut self) -> Result<()> {
        if !self.reader.read_bit()? {
            return Ok(());
        }
        if self.reader.read_bit()? {
            let header = self.reader.read_bits(11)?;
            self.leading = (header >> 6) as u8;
            let mut sig = (header & 0x3f) as u8;
            if sig == 0 {
                sig = 64;
            }
            if self.leading as u32 + sig as u32 > 64 {
                return Err(Error::CorruptChunk("xor window exceeds 64 bits".into()));
            }
            self.trailing = 64 - self.leading - sig;
        }
        let sig = 64 - self.leading as u32 - self.trailing as u32;
        let bits = self.reader.read_bits(sig)?;
        let x = if self.trailing >= 64 {
            0
        } else {
            bits << self.trailing
        };
        self.v = f64::from_bits(self.v.to_bits() ^ x);
        Ok(())
    }

    fn read_next(&mut self) -> Result<Sample> {
        match self.read {
            0 => {
                self.t = self.reader.read_varint()?;
                self.v = f64::from_bits(self.reader.read_bits(64)?);
            }
            1 => {
                self.t_delta = self.reader.read_uvarint()?;
                self.t = (self.t as u64).wrapping_add(self.t_delta) as i64;
                self.read_value()?;
            }
            _ => {
                // The prefix: up to four bits, ended by a zero or by the
                // fourth one.
                let ones = self.reader.peek().leading_ones().min(4) as usize;
                let len = if ones == 4 { 4 } else { ones + 1 };
                if len > self.reader.remaining() {
                    return Err(Error::CorruptChunk("unexpected end of chunk data".into()));
                }
                self.reader.consume(len);
                let nbits = match ones {
                    0 => 0,
                    1 => 14,
                    2 => 17,
                    3 => 20,
                    _ => 64,
                };
                let mut dod: i64 = 0;
                if nbits > 0 {
                    let u = self.reader.read_bits(nbits)?;
                    dod = if nbits == 64 {
                        u as i64
                    } else if u > 1 << (nbits - 1) {
                        (u as i64) - (1i64 << nbits)
                    } else {
                        u as i64
                    };
                }
                self.t_delta = self.t_delta.wrapping_add(dod as u64);
                self.t = (self.t as u64).wrapping_add(self.t_delta) as i64;
                self.read_value()?;
            }
        }
        self.read += 1;
        Ok(Sample::new(self.t, self.v))
    }
}

impl Iterator for XorIterator<'_> {
    type Item = Result<Sample>;

    #[inline]
    fn next(&mut self) -> Option<Result<Sample>> {
        if self.failed {
            self.failed = false;
            self.total = 0;
            return Some(Err(Error::CorruptChunk(
                "xor chunk shorter than its header".into(),
            )));
        }
        if self.read >= self.total {
            return None;
        }
        match self.read_next() {
            Ok(s) => Some(Ok(s)),
            Err(e) => {
                self.total = 0;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::STALE_NAN;
    use proptest::prelude::*;

    fn encode(samples: &[(i64, f64)]) -> XorChunk {
        let mut c = XorChunk::new();
        let mut a = c.appender().unwrap();
        for &(t, v) in samples {
            a.append(t, v).unwrap();
        }
        c
    }

    fn decode(bytes: &[u8]) -> Vec<Sample> {
        XorIterator::new(bytes).collect::<Result<Vec<_>>>().unwrap()
    }

    #[test]
    fn worked_example_matches_prometheus_bytes() {
        let c = encode(&[
            (1700000000000, 1.0),
            (1700000015000, 1.0),
            (1700000030000, 2.0),
            (1700000045500, 2.5),
        ]);
        let want: Vec<u8> = vec![
            0x00, 0x04, 0x80, 0xa0, 0xab, 0xfe, 0xf9, 0x62, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0x98,
            0x75, 0x30, 0x97, 0xff, 0xe0, 0x7d, 0x36, 0x83,
        ];
        assert_eq!(c.bytes(), &want[..]);
    }

    #[test]
    fn special_values_and_dod_edges_round_trip() {
        let values = [
            -0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            STALE_NAN,
            f64::NAN,
            1e300,
            1.0,
            f64::from_bits(1.0f64.to_bits() + 1),
            f64::MIN_POSITIVE / 2.0,
        ];
        let dods: [i64; 20] = [
            0,
            1,
            -1,
            8192,
            -8191,
            8193,
            -8192,
            65536,
            -65535,
            65537,
            -65536,
            524288,
            -524287,
            524289,
            -524288,
            1_000_000_000,
            -1_000_000_000,
            3,
            0,
            7,
        ];
        let mut samples = vec![(-5_000i64, 0.5), (-4_000, 0.25)];
        let mut delta = 1000i64;
        for (i, dod) in dods.iter().enumerate() {
            delta += dod;
            let t = samples.last().unwrap().0 + delta;
            samples.push((t, values[i % values.len()]));
        }
        let c = encode(&samples);
        let got = decode(c.bytes());
        assert_eq!(got.len(), samples.len());
        for (g, w) in got.iter().zip(&samples) {
            assert_eq!(g.t, w.0);
            assert_eq!(g.v.to_bits(), w.1.to_bits());
        }
    }

    #[test]
    fn appender_resumes_a_chunk_read_from_bytes() {
        let all: Vec<(i64, f64)> = (0..50)
            .map(|i| (i * 15_000 + (i % 3), (i as f64).sin()))
            .collect();
        let first = encode(&all[..17]);
        let mut resumed = XorChunk::from_bytes(first.into_bytes()).unwrap();
        let mut a = resumed.appender().unwrap();
        for &(t, v) in &all[17..] {
            a.append(t, v).unwrap();
        }
        assert_eq!(resumed.bytes(), encode(&all).bytes());
    }

    #[test]
    fn truncated_chunk_is_an_error_not_a_panic() {
        let c = encode(&[(1, 1.0), (2, 2.0), (3, 3.5), (10, -7.0)]);
        for cut in 0..c.bytes().len() {
            let res: Result<Vec<_>> = XorIterator::new(&c.bytes()[..cut]).collect();
            assert!(res.is_err(), "cut at {cut} decoded");
        }
    }

    proptest! {
        #[test]
        fn any_samples_round_trip(
            start in any::<i64>(),
            deltas in proptest::collection::vec(any::<i64>(), 0..300),
            bits in proptest::collection::vec(any::<u64>(), 301),
        ) {
            let mut t = start;
            let mut samples = vec![(t, f64::from_bits(bits[0]))];
            for (i, d) in deltas.iter().enumerate() {
                t = t.wrapping_add(*d);
                samples.push((t, f64::from_bits(bits[i + 1])));
            }
            let c = encode(&samples);
            let got = decode(c.bytes());
            prop_assert_eq!(got.len(), samples.len());
            for (g, w) in got.iter().zip(&samples) {
                prop_assert_eq!(g.t, w.0);
                prop_assert_eq!(g.v.to_bits(), w.1.to_bits());
            }
        }

        #[test]
        fn realistic_samples_round_trip(
            start in -1_000_000_000_000i64..2_000_000_000_000,
            jitter in proptest::collection::vec(-500i64..500, 1..240),
            vals in proptest::collection::vec(-1e6f64..1e6, 240),
        ) {
            let samples: Vec<(i64, f64)> = jitter.iter().enumerate()
                .map(|(i, j)| (start + i as i64 * 15_000 + j, vals[i].round()))
                .collect();
            let got = decode(encode(&samples).bytes());
            let back: Vec<(i64, u64)> = got.iter().map(|s| (s.t, s.v.to_bits())).collect();
            let want: Vec<(i64, u64)> = samples.iter().map(|s| (s.0, s.1.to_bits())).collect();
            prop_assert_eq!(back, want);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            for s in XorIterator::new(&bytes) {
                if s.is_err() { break; }
            }
        }
    }
}
