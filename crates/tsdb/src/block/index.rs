//! A block's `index` file, format version 2 (specs/tsdb-blocks.md §4): the
//! symbol table, one entry per series (labels as symbol references plus its
//! chunks' time ranges and references), a postings list per label pair, the
//! postings offset table and the 52-byte TOC.
//!
//! [`IndexWriter`] writes the layout Prometheus 3.7+ writes (no legacy label
//! index sections); [`IndexReader`] maps the file and reads that layout as
//! well as Prometheus 2.42's (a `""` symbol, label index sections and a label
//! offset table, padding between sections), reaching every section through
//! the TOC and checking every CRC as it goes. Like Prometheus, the reader
//! keeps only every 32nd symbol offset and every 32nd postings-table entry
//! per label name in memory.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use hearth_model::Labels;

use super::chunks::ChunkRef;
use super::FileBytes;
use crate::encoding::{crc32c, Decbuf, Encbuf};
use crate::postings::PostingsSource;
use crate::{Error, Result};

/// Magic number at the start of an index file.
pub const INDEX_MAGIC: u32 = 0xBAAA_D700;
/// The index format version Hearth writes.
pub const INDEX_VERSION_2: u8 = 2;
/// Bytes of the index header: magic and version.
pub const INDEX_HEADER_SIZE: usize = 5;
/// Bytes of the TOC at the end of the file.
pub const TOC_SIZE: usize = 52;
/// Series entries start at multiples of this; a series' ID is offset / 16.
pub const SERIES_ALIGNMENT: u64 = 16;
/// Every how many entries readers keep a symbol or postings-table offset.
const SAMPLING: usize = 32;

/// A chunk as the index describes it: its closed time range and where its
/// record is in the chunk segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkMeta {
    pub mint: i64,
    pub maxt: i64,
    pub chunk_ref: ChunkRef,
}

/// The table of contents: absolute offsets of the sections (0 = absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Toc {
    pub symbols: u64,
    pub series: u64,
    pub label_indices: u64,
    pub label_indices_table: u64,
    pub postings: u64,
    pub postings_table: u64,
}

impl Toc {
    fn encode(&self) -> Encbuf {
        let mut e = Encbuf::with_capacity(TOC_SIZE);
        for v in [
            self.symbols,
            self.series,
            self.label_indices,
            self.label_indices_table,
            self.postings,
            self.postings_table,
        ] {
            e.put_be64(v);
        }
        let crc = crc32c(e.get());
        e.put_be32(crc);
        e
    }

    fn decode(b: &[u8]) -> Result<Self> {
        let mut d = Decbuf::new(b, "index TOC");
        let want = crc32c(&b[..b.len().saturating_sub(4)]);
        let toc = Toc {
            symbols: d.be64()?,
            series: d.be64()?,
            label_indices: d.be64()?,
            label_indices_table: d.be64()?,
            postings: d.be64()?,
            postings_table: d.be64()?,
        };
        if d.be32()? != want {
            return Err(Error::Corrupt("index TOC: checksum mismatch".into()));
        }
        Ok(toc)
    }
}

/// Writes an index file. Symbols come first and must be complete and
/// sorted; series follow in strictly ascending label order; `finish` writes
/// the postings and the TOC.
pub struct IndexWriter {
    path: PathBuf,
    out: BufWriter<File>,
    pos: u64,
    toc: Toc,
    symbols: HashMap<Box<str>, u32>,
    last_series: Option<Labels>,
    last_chunk_ref: Option<ChunkRef>,
    /// (name symbol, value symbol) → series IDs; symbol order is byte order,
    /// so the map iterates in the postings-table order.
    postings: BTreeMap<(u32, u32), Vec<u32>>,
    all_postings: Vec<u32>,
    buf: Encbuf,
    body: Encbuf,
}

impl IndexWriter {
    /// Creates `path` and writes the header and the symbol table. `symbols`
    /// must be strictly ascending (byte order) and contain every label name
    /// and value of the series to come.
    pub fn new<'a>(path: &Path, symbols: impl IntoIterator<Item = &'a str>) -> Result<Self> {
        let file = File::create(path).map_err(Error::io("create", path))?;
        let mut w = Self {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(1 << 20, file),
            pos: 0,
            toc: Toc::default(),
            symbols: HashMap::new(),
            last_series: None,
            last_chunk_ref: None,
            postings: BTreeMap::new(),
            all_postings: Vec::new(),
            buf: Encbuf::with_capacity(4096),
            body: Encbuf::with_capacity(4096),
        };
        let mut header = Encbuf::with_capacity(INDEX_HEADER_SIZE);
        header.put_be32(INDEX_MAGIC);
        header.put_u8(INDEX_VERSION_2);
        w.write(header.get())?;

        w.toc.symbols = w.pos;
        let mut table = Encbuf::with_capacity(4096);
        table.put_be32(0); // #symbols, patched below
        let mut prev: Option<&str> = None;
        let mut count: u32 = 0;
        for s in symbols {
            if prev.is_some_and(|p| p >= s) {
                return Err(Error::InvalidArgument(format!(
                    "index symbols not strictly ascending: {:?} after {:?}",
                    s,
                    prev.unwrap_or_default()
                )));
            }
            prev = Some(s);
            w.symbols.insert(s.into(), count);
            table.put_uvarint_str(s.as_bytes());
            count = count
                .checked_add(1)
                .ok_or_else(|| Error::InvalidArgument("too many symbols".into()))?;
        }
        table.buf[..4].copy_from_slice(&count.to_be_bytes());
        w.write_section(table.get())?;
        w.toc.series = w.pos;
        Ok(w)
    }

    fn write(&mut self, b: &[u8]) -> Result<()> {
        self.out
            .write_all(b)
            .map_err(Error::io("write", &self.path))?;
        self.pos += b.len() as u64;
        Ok(())
    }

    /// Writes `be32 len | body | crc32c(body)`.
    fn write_section(&mut self, body: &[u8]) -> Result<()> {
        let len = u32::try_from(body.len()).map_err(|_| {
            Error::InvalidArgument(format!(
                "index section of {} bytes exceeds 4 GiB",
                body.len()
            ))
        })?;
        self.write(&len.to_be_bytes())?;
        self.write(body)?;
        self.write(&crc32c(body).to_be_bytes())
    }

    fn pad_to(&mut self, alignment: u64) -> Result<()> {
        let rem = self.pos % alignment;
        if rem != 0 {
            let zeros = [0u8; 16];
            self.write(&zeros[..(alignment - rem) as usize])?;
        }
        Ok(())
    }

    fn symbol_ref(&self, s: &str, labels: &Labels) -> Result<u32> {
        self.symbols
            .get(s)
            .copied()
            .ok_or_else(|| Error::InvalidSeries {
                series: labels.to_string(),
                reason: format!("symbol {s:?} missing from the index symbol table"),
            })
    }

    /// Appends a series and returns its ID (offset / 16). Series must come
    /// in strictly ascending label order, with at least one chunk; chunks
    /// must be ordered, non-overlapping, with globally increasing refs.
    pub fn add_series(&mut self, labels: &Labels, chunks: &[ChunkMeta]) -> Result<u64> {
        let invalid = |reason: String| Error::InvalidSeries {
            series: labels.to_string(),
            reason,
        };
        if labels.is_empty() {
            return Err(invalid("empty label set".into()));
        }
        if let Some(last) = &self.last_series {
            if labels <= last {
                return Err(invalid(format!("out of order: not after {last}")));
            }
        }
        validate_chunk_metas(chunks, self.last_chunk_ref).map_err(invalid)?;

        self.body.reset();
        let mut pairs = Vec::with_capacity(8);
        self.body.put_uvarint(labels.len() as u64);
        for l in labels.iter() {
            if l.name.is_empty() || l.value.is_empty() {
                return Err(invalid("empty label name or value".into()));
            }
            let n = self.symbol_ref(l.name, labels)?;
            let v = self.symbol_ref(l.value, labels)?;
            self.body.put_uvarint(n as u64);
            self.body.put_uvarint(v as u64);
            pairs.push((n, v));
        }
        encode_chunk_metas(&mut self.body, chunks);

        self.pad_to(SERIES_ALIGNMENT)?;
        let id = u32::try_from(self.pos / SERIES_ALIGNMENT).map_err(|_| {
            Error::InvalidArgument("index exceeds 64 GiB: series IDs overflow".into())
        })?;
        self.buf.reset();
        self.buf.put_uvarint(self.body.len() as u64);
        self.buf.put_bytes(self.body.get());
        self.buf.put_be32(crc32c(self.body.get()));
        let entry = std::mem::take(&mut self.buf);
        let res = self.write(entry.get());
        self.buf = entry;
        res?;

        for p in pairs {
            self.postings.entry(p).or_default().push(id);
        }
        self.all_postings.push(id);
        self.last_series = Some(labels.clone());
        self.last_chunk_ref = chunks.last().map(|c| c.chunk_ref);
        Ok(id as u64)
    }

    fn write_postings_list(&mut self, ids: &[u32]) -> Result<()> {
        self.buf.reset();
        self.buf.put_be32(ids.len() as u32);
        for &id in ids {
            self.buf.put_be32(id);
        }
        let list = std::mem::take(&mut self.buf);
        let res = self.write_section(list.get());
        self.buf = list;
        res
    }

    /// Writes the postings lists, the postings offset table and the TOC,
    /// then flushes and fsyncs the file.
    pub fn finish(mut self) -> Result<()> {
        // Legacy label index sections are not written (Prometheus 3.7+):
        // their TOC entry is the end of the series.
        self.toc.label_indices = self.pos;
        self.toc.postings = self.pos;
        self.pad_to(4)?;

        let symbols = std::mem::take(&mut self.symbols);
        let mut names: Vec<&str> = vec![""; symbols.len()];
        for (s, &i) in &symbols {
            names[i as usize] = s;
        }
        let mut table = Encbuf::with_capacity(64 * 1024);
        let entries = u32::try_from(self.postings.len() + 1)
            .map_err(|_| Error::InvalidArgument("too many postings lists".into()))?;
        table.put_be32(entries);

        let all = std::mem::take(&mut self.all_postings);
        put_table_entry(&mut table, "", "", self.pos);
        self.write_postings_list(&all)?;
        let postings = std::mem::take(&mut self.postings);
        for ((n, v), ids) in &postings {
            put_table_entry(&mut table, names[*n as usize], names[*v as usize], self.pos);
            self.write_postings_list(ids)?;
        }
        drop(names);

        self.toc.postings_table = self.pos;
        self.toc.label_indices_table = self.pos;
        self.write_section(table.get())?;
        let toc = self.toc.encode();
        self.write(toc.get())?;

        let file = self.out.into_inner().map_err(|e| Error::Io {
            op: "flush",
            path: self.path.clone(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(Error::io("fsync", &self.path))
    }
}

fn put_table_entry(table: &mut Encbuf, name: &str, value: &str, offset: u64) {
    table.put_uvarint(2);
    table.put_uvarint_str(name.as_bytes());
    table.put_uvarint_str(value.as_bytes());
    table.put_uvarint(offset);
}

/// Checks the writer's chunk rules; the message says what is wrong.
fn validate_chunk_metas(
    chunks: &[ChunkMeta],
    prev_ref: Option<ChunkRef>,
) -> std::result::Result<(), String> {
    if chunks.is_empty() {
        return Err("series has no chunks".into());
    }
    let mut prev_ref = prev_ref;
    let mut prev_maxt: Option<i64> = None;
    for c in chunks {
        if c.mint > c.maxt {
            return Err(format!("chunk mint {} > maxt {}", c.mint, c.maxt));
        }
        if prev_maxt.is_some_and(|m| c.mint <= m) {
            return Err(format!(
                "chunk starting at {} overlaps the previous one",
                c.mint
            ));
        }
        if prev_ref.is_some_and(|r| c.chunk_ref <= r) {
            return Err(format!("chunk ref {:#x} does not increase", c.chunk_ref.0));
        }
        prev_maxt = Some(c.maxt);
        prev_ref = Some(c.chunk_ref);
    }
    Ok(())
}

/// The chunk part of a series entry (§4.4): count, then the first chunk
/// absolute and the others as deltas.
fn encode_chunk_metas(e: &mut Encbuf, chunks: &[ChunkMeta]) {
    e.put_uvarint(chunks.len() as u64);
    let Some(first) = chunks.first() else { return };
    e.put_varint(first.mint);
    e.put_uvarint(first.maxt.wrapping_sub(first.mint) as u64);
    e.put_uvarint(first.chunk_ref.0);
    let mut prev = first;
    for c in &chunks[1..] {
        e.put_uvarint(c.mint.wrapping_sub(prev.maxt) as u64);
        e.put_uvarint(c.maxt.wrapping_sub(c.mint) as u64);
        e.put_varint(c.chunk_ref.0.wrapping_sub(prev.chunk_ref.0) as i64);
        prev = c;
    }
}

/// One label name's slice of the postings offset table.
#[derive(Debug)]
struct NameEntries {
    /// Number of entries (values) for the name.
    count: usize,
    /// Every 32nd entry, starting with the first: value, index within the
    /// name, and file offset of the entry.
    samples: Vec<(Box<str>, usize, usize)>,
}

/// A mapped, validated index file.
#[derive(Debug)]
pub struct IndexReader {
    data: FileBytes,
    toc: Toc,
    version: u8,
    /// File offset of the first symbol entry.
    symbols_start: usize,
    num_symbols: u32,
    /// File offsets of symbols 0, 32, 64, …
    symbol_samples: Vec<usize>,
    names: BTreeMap<Box<str>, NameEntries>,
}

impl IndexReader {
    /// Maps and opens `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let data = FileBytes::map(path)?;
        Self::from_file_bytes(data).map_err(|e| match e {
            Error::Corrupt(msg) => Error::Corrupt(format!("index {}: {msg}", path.display())),
            other => other,
        })
    }

    /// Opens an index held in memory.
    pub fn from_bytes(data: Vec<u8>) -> Result<Self> {
        Self::from_file_bytes(FileBytes::Owned(data))
    }

    fn from_file_bytes(data: FileBytes) -> Result<Self> {
        if data.len() < INDEX_HEADER_SIZE + TOC_SIZE {
            return Err(Error::Corrupt(format!(
                "index of {} bytes is too short",
                data.len()
            )));
        }
        let mut d = Decbuf::new(&data, "index header");
        let magic = d.be32()?;
        if magic != INDEX_MAGIC {
            return Err(Error::Corrupt(format!("bad index magic {magic:#010x}")));
        }
        let version = d.u8()?;
        match version {
            2 | 3 => {}
            1 => {
                return Err(Error::Corrupt(
                    "index format version 1 is not supported".into(),
                ))
            }
            v => return Err(Error::Corrupt(format!("unknown index format version {v}"))),
        }
        let toc = Toc::decode(&data[data.len() - TOC_SIZE..])?;
        let mut r = Self {
            data,
            toc,
            version,
            symbols_start: 0,
            num_symbols: 0,
            symbol_samples: Vec::new(),
            names: BTreeMap::new(),
        };
        r.read_symbols()?;
        r.read_postings_table()?;
        Ok(r)
    }

    pub fn version(&self) -> u8 {
        self.version
    }

    pub fn toc(&self) -> &Toc {
        &self.toc
    }

    /// The body of the `be32 len | body | crc` section at `offset`, checked.
    fn section(&self, offset: u64, what: &'static str) -> Result<&[u8]> {
        let off = usize::try_from(offset)
            .map_err(|_| Error::Corrupt(format!("{what}: offset out of range")))?;
        if off > self.data.len() {
            return Err(Error::Corrupt(format!(
                "{what}: offset {off} past the end of the file"
            )));
        }
        let mut d = Decbuf::new(&self.data[off..], what);
        let len = d.be32()? as usize;
        let body = d.bytes(len)?;
        let crc = d.be32()?;
        if crc32c(body) != crc {
            return Err(Error::Corrupt(format!(
                "{what} at offset {off}: checksum mismatch"
            )));
        }
        Ok(body)
    }

    fn read_symbols(&mut self) -> Result<()> {
        let start = self.toc.symbols;
        let body = self.section(start, "index symbol table")?;
        let mut d = Decbuf::new(body, "index symbol table");
        let count = d.be32()?;
        let base = start as usize + 4;
        let mut samples = Vec::with_capacity(count as usize / SAMPLING + 1);
        for i in 0..count as usize {
            if i % SAMPLING == 0 {
                samples.push(base + d.position());
            }
            d.uvarint_str()?;
        }
        self.symbols_start = base + 4;
        self.num_symbols = count;
        self.symbol_samples = samples;
        Ok(())
    }

    fn read_postings_table(&mut self) -> Result<()> {
        let start = self.toc.postings_table;
        let body = self.section(start, "index postings offset table")?;
        let base = start as usize + 4;
        let mut d = Decbuf::new(body, "index postings offset table");
        let count = d.be32()?;
        let mut names: BTreeMap<Box<str>, NameEntries> = BTreeMap::new();
        let mut current: Option<(Box<str>, NameEntries)> = None;
        let mut last_value: Option<&str> = None;
        for _ in 0..count {
            let pos = base + d.position();
            let (name, value, _) = read_table_entry(&mut d)?;
            let same_name = current.as_ref().is_some_and(|(n, _)| &**n == name);
            if !same_name {
                if let Some((n, e)) = current.take() {
                    names.insert(n, e);
                }
                if names.contains_key(name) {
                    return Err(Error::Corrupt(format!(
                        "postings offset table: label name {name:?} is not contiguous"
                    )));
                }
                current = Some((
                    name.into(),
                    NameEntries {
                        count: 0,
                        samples: Vec::new(),
                    },
                ));
                last_value = None;
            }
            let (_, e) = current.as_mut().expect("set above");
            if last_value.is_some_and(|l| l >= value) {
                return Err(Error::Corrupt(format!(
                    "postings offset table: values of {name:?} not sorted"
                )));
            }
            if e.count % SAMPLING == 0 {
                e.samples.push((value.into(), e.count, pos));
            }
            e.count += 1;
            last_value = Some(value);
        }
        if let Some((n, e)) = current.take() {
            names.insert(n, e);
        }
        self.names = names;
        Ok(())
    }

    /// Decodes table entries of `name` starting at sample `from` (an index
    /// into its samples), calling `f` with each value and list offset until
    /// it returns `false` or the name's entries end.
    fn walk_values(
        &self,
        e: &NameEntries,
        from: usize,
        mut f: impl FnMut(&str, u64) -> Result<bool>,
    ) -> Result<()> {
        let (_, start_index, start_pos) = &e.samples[from];
        let mut d = Decbuf::new(&self.data[*start_pos..], "index postings offset table");
        for _ in *start_index..e.count {
            let (_, value, offset) = read_table_entry(&mut d)?;
            if !f(value, offset)? {
                break;
            }
        }
        Ok(())
    }

    /// The symbol with index `i`.
    pub fn symbol(&self, i: u32) -> Result<&str> {
        if i >= self.num_symbols {
            return Err(Error::Corrupt(format!(
                "index symbol {i} out of range ({} symbols)",
                self.num_symbols
            )));
        }
        let pos = self.symbol_samples[i as usize / SAMPLING];
        let mut d = Decbuf::new(&self.data[pos..], "index symbol table");
        for _ in 0..i as usize % SAMPLING {
            d.uvarint_bytes()?;
        }
        d.uvarint_str()
    }

    pub fn num_symbols(&self) -> u32 {
        self.num_symbols
    }

    /// Every symbol in order (for compaction, which merges symbol tables).
    pub fn symbols(&self) -> impl Iterator<Item = Result<&str>> + '_ {
        let mut d = Decbuf::new(&self.data[self.symbols_start..], "index symbol table");
        (0..self.num_symbols).map(move |_| d.uvarint_str())
    }

    /// Label names present in the block, sorted.
    pub fn label_names(&self) -> Vec<String> {
        self.names
            .keys()
            .filter(|n| !n.is_empty())
            .map(|n| n.to_string())
            .collect()
    }

    /// Values of label `name`, sorted; empty when the name is absent.
    pub fn label_values(&self, name: &str) -> Result<Vec<String>> {
        let Some(e) = self.names.get(name) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(e.count);
        self.walk_values(e, 0, |v, _| {
            out.push(v.to_string());
            Ok(true)
        })?;
        Ok(out)
    }

    /// File offset of the postings list of `name=value`, if present.
    fn postings_offset(&self, name: &str, value: &str) -> Result<Option<u64>> {
        let Some(e) = self.names.get(name) else {
            return Ok(None);
        };
        let idx = e.samples.partition_point(|(v, _, _)| &**v <= value);
        if idx == 0 {
            return Ok(None);
        }
        let mut found = None;
        self.walk_values(e, idx - 1, |v, off| {
            if v == value {
                found = Some(off);
            }
            Ok(v < value)
        })?;
        Ok(found)
    }

    /// Series IDs having `name=value`, ascending; `("", "")` gives all.
    pub fn postings(&self, name: &str, value: &str) -> Result<Vec<u64>> {
        match self.postings_offset(name, value)? {
            Some(off) => self.read_postings_list(off),
            None => Ok(Vec::new()),
        }
    }

    fn read_postings_list(&self, offset: u64) -> Result<Vec<u64>> {
        let body = self.section(offset, "index postings list")?;
        let mut d = Decbuf::new(body, "index postings list");
        let n = d.be32()? as usize;
        if d.remaining() != n.saturating_mul(4) {
            return Err(Error::Corrupt(format!(
                "postings list at {offset}: length does not match {n} entries"
            )));
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let id = d.be32()? as u64;
            if out.last().is_some_and(|&l| l >= id) {
                return Err(Error::Corrupt(format!(
                    "postings list at {offset}: IDs not ascending"
                )));
            }
            out.push(id);
        }
        Ok(out)
    }

    /// The labels and chunk metas of series `id`.
    pub fn series(&self, id: u64) -> Result<(Labels, Vec<ChunkMeta>)> {
        let corrupt = |msg: String| Error::Corrupt(format!("index series {id}: {msg}"));
        let off = id
            .checked_mul(SERIES_ALIGNMENT)
            .and_then(|o| usize::try_from(o).ok())
            .filter(|&o| o >= INDEX_HEADER_SIZE && o < self.data.len())
            .ok_or_else(|| corrupt("reference out of bounds".into()))?;
        let mut d = Decbuf::new(&self.data[off..], "index series entry");
        let len = d.uvarint()?;
        let len = usize::try_from(len).map_err(|_| corrupt("length overflows".into()))?;
        let body = d.bytes(len)?;
        let crc = d.be32()?;
        if crc32c(body) != crc {
            return Err(corrupt("checksum mismatch".into()));
        }
        let mut d = Decbuf::new(body, "index series entry");
        let nlabels = d.uvarint()? as usize;
        let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(nlabels.min(d.remaining() / 2));
        for _ in 0..nlabels {
            let name = self.symbol(d.uvarint32()?)?;
            let value = self.symbol(d.uvarint32()?)?;
            if pairs.last().is_some_and(|(prev, _)| *prev >= name) {
                return Err(corrupt(format!("label names not sorted at {name:?}")));
            }
            pairs.push((name, value));
        }
        let labels = Labels::from_sorted(pairs);
        let nchunks = d.uvarint()? as usize;
        let mut chunks = Vec::with_capacity(nchunks.min(d.remaining() / 3));
        if nchunks > 0 {
            let mint = d.varint()?;
            let maxt = (d.uvarint()? as i64).wrapping_add(mint);
            let chunk_ref = d.uvarint()?;
            chunks.push(ChunkMeta {
                mint,
                maxt,
                chunk_ref: ChunkRef(chunk_ref),
            });
            let (mut prev_maxt, mut prev_ref) = (maxt, chunk_ref);
            for _ in 1..nchunks {
                let mint = (d.uvarint()? as i64).wrapping_add(prev_maxt);
                let maxt = (d.uvarint()? as i64).wrapping_add(mint);
                let chunk_ref = (d.varint()? as u64).wrapping_add(prev_ref);
                chunks.push(ChunkMeta {
                    mint,
                    maxt,
                    chunk_ref: ChunkRef(chunk_ref),
                });
                (prev_maxt, prev_ref) = (maxt, chunk_ref);
            }
        }
        Ok((labels, chunks))
    }
}

fn read_table_entry<'a>(d: &mut Decbuf<'a>) -> Result<(&'a str, &'a str, u64)> {
    let n = d.uvarint()?;
    if n != 2 {
        return Err(Error::Corrupt(format!(
            "postings offset table: entry with {n} keys, want 2"
        )));
    }
    let name = d.uvarint_str()?;
    let value = d.uvarint_str()?;
    let offset = d.uvarint()?;
    Ok((name, value, offset))
}

/// The index answers postings queries for [`crate::postings`].
impl PostingsSource for IndexReader {
    fn postings(&self, name: &str, value: &str) -> Result<Vec<u64>> {
        IndexReader::postings(self, name, value)
    }

    fn all_postings(&self) -> Result<Vec<u64>> {
        IndexReader::postings(self, "", "")
    }

    fn label_values(&self, name: &str) -> Result<Vec<String>> {
        IndexReader::label_values(self, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// Writes `series` (sorted) with one chunk meta each and returns the
    /// index bytes.
    fn write_index(series: &[(Labels, Vec<ChunkMeta>)]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        let mut symbols = BTreeSet::new();
        for (l, _) in series {
            for p in l.iter() {
                symbols.insert(p.name.to_string());
                symbols.insert(p.value.to_string());
            }
        }
        let mut w = IndexWriter::new(&path, symbols.iter().map(String::as_str)).unwrap();
        for (l, c) in series {
            w.add_series(l, c).unwrap();
        }
        w.finish().unwrap();
        std::fs::read(&path).unwrap()
    }

    fn metas(n: usize, base_ref: u64) -> Vec<ChunkMeta> {
        (0..n as i64)
            .map(|i| ChunkMeta {
                mint: i * 100 - 50,
                maxt: i * 100 + 40,
                chunk_ref: ChunkRef(base_ref + i as u64 * 30),
            })
            .collect()
    }

    fn sample_series() -> Vec<(Labels, Vec<ChunkMeta>)> {
        let mut out = Vec::new();
        for i in 0..100u64 {
            let l = Labels::new([
                ("__name__", "m"),
                ("i", &format!("{i:03}")),
                ("odd", if i % 2 == 1 { "y" } else { "" }),
            ]);
            out.push((l, metas(1 + (i % 3) as usize, 8 + i * 1000)));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    #[test]
    fn layout_follows_the_spec() {
        let bytes = write_index(&sample_series());
        assert_eq!(&bytes[..5], &[0xBA, 0xAA, 0xD7, 0x00, 0x02]);
        let r = IndexReader::from_bytes(bytes.clone()).unwrap();
        let toc = *r.toc();
        assert_eq!(toc.symbols, 5);
        // TOC.series is the exact end of the symbol table.
        let sym_len = u32::from_be_bytes(bytes[5..9].try_into().unwrap()) as u64;
        assert_eq!(toc.series, 5 + 4 + sym_len + 4);
        assert_eq!(toc.label_indices_table, toc.postings_table);
        assert!(toc.postings >= toc.label_indices);
        // The first postings table entry is the all-postings key.
        let mut d = Decbuf::new(&bytes[toc.postings_table as usize + 8..], "t");
        let (n, v, off) = read_table_entry(&mut d).unwrap();
        assert_eq!((n, v), ("", ""));
        assert_eq!(off, toc.postings.next_multiple_of(4));
        assert_eq!(r.postings("", "").unwrap().len(), 100);
        assert_eq!(r.version(), 2);
    }

    #[test]
    fn reads_back_series_postings_and_values() {
        let series = sample_series();
        let r = IndexReader::from_bytes(write_index(&series)).unwrap();
        let all = r.postings("", "").unwrap();
        assert_eq!(all.len(), series.len());
        for (id, (l, c)) in all.iter().zip(&series) {
            assert_eq!(r.series(*id).unwrap(), (l.clone(), c.clone()));
        }
        assert_eq!(r.label_names(), vec!["__name__", "i", "odd"]);
        let values = r.label_values("i").unwrap();
        assert_eq!(values.len(), 100);
        assert!(values.windows(2).all(|w| w[0] < w[1]));
        for (k, v) in values.iter().enumerate() {
            let p = r.postings("i", v).unwrap();
            assert_eq!(p.len(), 1, "value {v}");
            assert_eq!(
                r.series(p[0]).unwrap().0.get("i"),
                Some(v.as_str()),
                "entry {k}"
            );
        }
        assert_eq!(r.postings("odd", "y").unwrap().len(), 50);
        assert!(r.postings("i", "100").unwrap().is_empty());
        assert!(r.postings("i", "").unwrap().is_empty());
        assert!(r.postings("nope", "x").unwrap().is_empty());
        assert!(r.label_values("nope").unwrap().is_empty());
        let syms: Vec<&str> = r.symbols().collect::<Result<_>>().unwrap();
        assert_eq!(syms.len() as u32, r.num_symbols());
        for (i, s) in syms.iter().enumerate() {
            assert_eq!(r.symbol(i as u32).unwrap(), *s);
        }
        assert!(r.symbol(r.num_symbols()).is_err());
    }

    #[test]
    fn writer_rejects_misuse() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        assert!(IndexWriter::new(&path, ["b", "a"]).is_err());
        let mut w = IndexWriter::new(&path, ["a", "b", "c"]).unwrap();
        let ab = Labels::new([("a", "b")]);
        let ac = Labels::new([("a", "c")]);
        assert!(w.add_series(&ab, &[]).is_err());
        assert!(w
            .add_series(&Labels::new([("a", "zz")]), &metas(1, 8))
            .is_err());
        w.add_series(&ac, &metas(1, 8)).unwrap();
        assert!(w.add_series(&ab, &metas(1, 100)).is_err());
        assert!(w.add_series(&ac, &metas(1, 100)).is_err());
        let overlapping = vec![
            ChunkMeta {
                mint: 0,
                maxt: 10,
                chunk_ref: ChunkRef(200),
            },
            ChunkMeta {
                mint: 10,
                maxt: 20,
                chunk_ref: ChunkRef(300),
            },
        ];
        assert!(w
            .add_series(&Labels::new([("b", "c")]), &overlapping)
            .is_err());
        assert!(
            w.add_series(&Labels::new([("b", "c")]), &metas(1, 8))
                .is_err(),
            "refs must increase"
        );
        w.add_series(&Labels::new([("b", "c")]), &metas(2, 100))
            .unwrap();
        w.finish().unwrap();
    }

    #[test]
    fn corruption_is_detected_not_panicked_on() {
        let bytes = write_index(&sample_series());
        for i in (0..bytes.len()).step_by(7) {
            let mut b = bytes.clone();
            b[i] ^= 0x5a;
            if let Ok(r) = IndexReader::from_bytes(b) {
                exercise(&r);
            }
        }
        for cut in [0, 4, 5, 56, bytes.len() / 2, bytes.len() - 1] {
            assert!(IndexReader::from_bytes(bytes[..cut].to_vec()).is_err());
        }
    }

    /// Calls every read method; results are ignored, panics are not.
    fn exercise(r: &IndexReader) {
        let _ = r.symbols().count();
        for n in r.label_names() {
            for v in r.label_values(&n).unwrap_or_default() {
                let _ = r.postings(&n, &v);
            }
        }
        if let Ok(all) = r.postings("", "") {
            for id in all {
                let _ = r.series(id);
            }
        }
        for id in [0, 1, 2, 1000, u64::MAX / 8, u64::MAX] {
            let _ = r.series(id);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn random_label_sets_round_trip(
            sets in proptest::collection::btree_set(
                proptest::collection::btree_map("[a-e_]{1,3}", "\\PC{1,5}", 1..5), 1..60),
            nchunks in proptest::collection::vec(1usize..5, 60),
        ) {
            let mut base = 8u64;
            let series: Vec<(Labels, Vec<ChunkMeta>)> = sets.iter().zip(&nchunks).map(|(m, n)| {
                let c = metas(*n, base);
                base += 1000;
                (Labels::new(m.iter()), c)
            }).collect();
            let mut sorted = series.clone();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            let r = IndexReader::from_bytes(write_index(&sorted)).unwrap();
            let all = r.postings("", "").unwrap();
            prop_assert_eq!(all.len(), sorted.len());
            for (id, (l, c)) in all.iter().zip(&sorted) {
                prop_assert_eq!(&r.series(*id).unwrap(), &(l.clone(), c.clone()));
                for p in l.iter() {
                    prop_assert!(r.postings(p.name, p.value).unwrap().contains(id));
                }
            }
            let names: BTreeSet<String> =
                sorted.iter().flat_map(|(l, _)| l.iter().map(|p| p.name.to_string())).collect();
            prop_assert_eq!(r.label_names(), names.iter().cloned().collect::<Vec<_>>());
            for n in &names {
                let want: BTreeSet<String> =
                    sorted.iter().filter_map(|(l, _)| l.get(n).map(str::to_string)).collect();
                let want: Vec<String> = want.into_iter().collect();
                prop_assert_eq!(r.label_values(n).unwrap(), want);
            }
        }

        #[test]
        fn garbage_never_panics(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut b = vec![0xBA, 0xAA, 0xD7, 0x00, 0x02];
            b.extend(&body);
            if let Ok(r) = IndexReader::from_bytes(b) {
                exercise(&r);
            }
            if let Ok(r) = IndexReader::from_bytes(body) {
                exercise(&r);
            }
        }
    }
}
