//! The WAL writer: appends records as page-aligned fragments to the active
//! segment, cuts segments, fsyncs, truncates, and repairs a torn tail on open.
//!
//! Every [`Wal::log`] call ends with one `write(2)` of all its bytes (more
//! only for batches over 4 MiB or across a segment cut), so a process killed
//! after `log` returned loses nothing; durability against power loss needs
//! [`Wal::sync`] or [`WalOptions::fsync_on_log`]. Writers share a mutex, so
//! callers that batch many records into one `log` call get one system call
//! for the batch. With `fsync_on_log`, concurrent callers
//! share fsyncs (group commit): a caller whose bytes were already covered by
//! another caller's fsync returns without one of its own.
//!
//! Finished segments are fsynced by a background thread, as Prometheus does,
//! so that cutting a segment does not stall writers; [`Wal::sync`] waits for
//! those fsyncs too.
//!
//! Opening a WAL scans its tail segment (the last with data); a record
//! spoilt by a crash (bad checksum, truncated fragment, partial page of
//! garbage) is cut off by truncating the file where that record starts, and
//! writing continues in a new segment, as Prometheus does after a repair.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use parking_lot::Mutex;

use crate::encoding::crc32c;
use crate::wal::reader::{Scanned, SegmentScanner};
use crate::wal::{
    checkpoint::last_checkpoint, list_segments, segment_path, sync_dir, tail_segment,
    DEFAULT_SEGMENT_SIZE, FRAGMENT_FIRST, FRAGMENT_FULL, FRAGMENT_HEADER_SIZE, FRAGMENT_LAST,
    FRAGMENT_MIDDLE, PAGE_SIZE, SNAPPY_FLAG,
};
use crate::{Error, Result};

/// Pending bytes above which a long `log` batch is written out before the
/// batch ends, to bound memory.
const FLUSH_THRESHOLD: usize = 4 * 1024 * 1024;

/// How a [`Wal`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalOptions {
    /// Segment size in bytes; a positive multiple of [`PAGE_SIZE`]. A record
    /// larger than a segment gets a segment of its own, larger than this.
    pub segment_size: u64,
    /// Snappy-compress records (skipped for a record it does not shrink).
    pub compress: bool,
    /// Fsync before [`Wal::log`] returns, for callers that must survive a
    /// power loss. Concurrent callers share fsyncs.
    pub fsync_on_log: bool,
}

impl Default for WalOptions {
    /// 128 MiB segments, snappy on (as Prometheus 2.42), no fsync per log.
    fn default() -> Self {
        Self {
            segment_size: DEFAULT_SEGMENT_SIZE,
            compress: true,
            fsync_on_log: false,
        }
    }
}

/// A write-ahead log open for appending. `Send + Sync`: share it by
/// reference or `Arc`.
pub struct Wal {
    dir: PathBuf,
    options: WalOptions,
    writer: Mutex<Writer>,
    /// The highest `log` sequence number known to be durable. Held while
    /// fsyncing, so that concurrent callers wait for one fsync and share it.
    synced: Mutex<u64>,
    syncer: Syncer,
}

/// State of the active segment, behind the `Wal`'s writer mutex.
struct Writer {
    dir: PathBuf,
    segment: Arc<File>,
    path: PathBuf,
    index: u32,
    first: u32,
    pages_per_segment: u64,
    compress: bool,
    /// Bytes of the active segment handed to the OS.
    written: u64,
    /// Bytes appended after `written`, not yet handed to the OS.
    pending: Vec<u8>,
    compressed: Vec<u8>,
    encoder: snap::raw::Encoder,
    /// Number of `log` calls whose bytes are all handed to the OS.
    seq: u64,
    /// Why the writer can no longer write, after a failure it could not undo.
    broken: Option<String>,
}

impl Wal {
    /// Opens (creating if needed) the WAL in `dir`: repairs a torn tail and
    /// starts a new segment after the last one.
    pub fn open(dir: impl AsRef<Path>, options: WalOptions) -> Result<Wal> {
        let dir = dir.as_ref().to_path_buf();
        if options.segment_size < PAGE_SIZE as u64
            || !options.segment_size.is_multiple_of(PAGE_SIZE as u64)
        {
            return Err(Error::InvalidArgument(format!(
                "wal segment size {} is not a positive multiple of the {PAGE_SIZE}-byte page",
                options.segment_size
            )));
        }
        fs::create_dir_all(&dir).map_err(Error::io("create wal directory", &dir))?;
        let segments = list_segments(&dir)?;
        if let Some(tail) = tail_segment(&segments)? {
            repair_tail(&segments[tail].path)?;
        }
        let index = match segments.last() {
            Some(last) => last.index.checked_add(1).ok_or_else(|| {
                Error::Corrupt(format!(
                    "wal {}: no segment index after {}",
                    dir.display(),
                    last.index
                ))
            })?,
            // After a checkpoint and a truncation, numbering goes on after
            // the checkpoint so that replay does not skip the new segment.
            None => match last_checkpoint(&dir)? {
                Some((_, n)) => n.saturating_add(1),
                None => 0,
            },
        };
        let first = segments.first().map_or(index, |s| s.index);
        let (segment, path) = create_segment(&dir, index)?;
        sync_dir(&dir)?;
        let writer = Writer {
            dir: dir.clone(),
            segment,
            path,
            index,
            first,
            pages_per_segment: options.segment_size / PAGE_SIZE as u64,
            compress: options.compress,
            written: 0,
            pending: Vec::new(),
            compressed: Vec::new(),
            encoder: snap::raw::Encoder::new(),
            seq: 0,
            broken: None,
        };
        Ok(Wal {
            dir,
            options,
            writer: Mutex::new(writer),
            synced: Mutex::new(0),
            syncer: Syncer::start()?,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn options(&self) -> &WalOptions {
        &self.options
    }

    /// Appends `records` in order and hands them to the OS before returning
    /// (and fsyncs them with [`WalOptions::fsync_on_log`]). On error, some of
    /// the records may have been written.
    ///
    /// Records must not be empty: an empty record would look like one
    /// flipped bit in page padding, so readers treat it as damage.
    pub fn log(&self, records: &[&[u8]]) -> Result<()> {
        if records.iter().any(|r| r.is_empty()) {
            return Err(Error::InvalidArgument(format!(
                "log an empty record to wal {}",
                self.dir.display()
            )));
        }
        let seq = {
            let mut w = self.writer.lock();
            w.check_usable()?;
            let result = records
                .iter()
                .try_for_each(|rec| w.append(rec, &self.syncer))
                .and_then(|()| w.flush());
            if let Err(e) = result {
                w.abandon_pending();
                return Err(e);
            }
            w.seq += 1;
            w.seq
        };
        if self.options.fsync_on_log {
            self.sync_through(seq)?;
        }
        Ok(())
    }

    /// Fsyncs everything logged so far, in every segment.
    pub fn sync(&self) -> Result<()> {
        self.sync_through(u64::MAX)
    }

    /// Makes `log` call number `seq` durable, unless a concurrent fsync
    /// already did; `u64::MAX` always fsyncs.
    fn sync_through(&self, seq: u64) -> Result<()> {
        let mut synced = self.synced.lock();
        if *synced >= seq {
            return Ok(());
        }
        let (file, path, target) = {
            let w = self.writer.lock();
            (Arc::clone(&w.segment), w.path.clone(), w.seq)
        };
        // Segments finished before this one are fsynced in the background.
        self.syncer.barrier()?;
        file.sync_data()
            .map_err(Error::io("fsync wal segment", &path))?;
        *synced = target;
        Ok(())
    }

    /// Ends the active segment (padding its last page) and starts a new
    /// one. Returns the new segment's index: every record logged before is
    /// in a lower segment.
    pub fn next_segment(&self) -> Result<u32> {
        let mut w = self.writer.lock();
        w.check_usable()?;
        if let Err(e) = w.cut(&self.syncer) {
            w.abandon_pending();
            return Err(e);
        }
        Ok(w.index)
    }

    /// The first and last (active) segment index.
    pub fn segments(&self) -> (u32, u32) {
        let w = self.writer.lock();
        (w.first, w.index)
    }

    /// Deletes the segments below `before`, oldest first. The active
    /// segment cannot be deleted.
    pub fn truncate(&self, before: u32) -> Result<()> {
        let active = self.writer.lock().index;
        if before > active {
            return Err(Error::InvalidArgument(format!(
                "truncate wal {} before segment {before}: segment {active} is active",
                self.dir.display()
            )));
        }
        for s in list_segments(&self.dir)? {
            if s.index >= before {
                break;
            }
            fs::remove_file(&s.path).map_err(Error::io("delete wal segment", &s.path))?;
        }
        let mut w = self.writer.lock();
        w.first = w.first.max(before);
        Ok(())
    }

    /// Pads the active segment's last page, fsyncs everything and stops the
    /// background fsync thread.
    pub fn close(mut self) -> Result<()> {
        {
            let mut w = self.writer.lock();
            if w.broken.is_none() {
                w.pad_page();
                if let Err(e) = w.flush() {
                    w.abandon_pending();
                    return Err(e);
                }
            }
        }
        self.sync()?;
        self.syncer.stop()
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        // Every `log` call writes its bytes before returning, so there is
        // nothing to flush; finish the queued background fsyncs.
        if let Err(e) = self.syncer.stop() {
            tracing::error!(wal = %self.dir.display(), error = %e, "fsync of a finished wal segment failed");
        }
    }
}

impl Writer {
    /// Logical length of the active segment.
    fn len(&self) -> u64 {
        self.written + self.pending.len() as u64
    }

    fn page_offset(&self) -> usize {
        (self.len() % PAGE_SIZE as u64) as usize
    }

    /// Fails once a write failure could not be undone.
    fn check_usable(&self) -> Result<()> {
        match &self.broken {
            None => Ok(()),
            Some(why) => Err(Error::Io {
                op: "write to wal segment (unusable after an earlier failure)",
                path: self.path.clone(),
                source: std::io::Error::other(why.clone()),
            }),
        }
    }

    /// Zero-fills the rest of the current page.
    fn pad_page(&mut self) {
        let off = self.page_offset();
        if off != 0 {
            self.pending.resize(self.pending.len() + PAGE_SIZE - off, 0);
        }
    }

    /// Appends one record to `pending`, cutting a new segment first when it
    /// does not fit in the rest of this one.
    fn append(&mut self, rec: &[u8], syncer: &Syncer) -> Result<()> {
        if PAGE_SIZE - self.page_offset() < FRAGMENT_HEADER_SIZE {
            self.pad_page();
        }
        let mut compressed = std::mem::take(&mut self.compressed);
        let result = self.append_inner(rec, &mut compressed, syncer);
        self.compressed = compressed;
        result?;
        if self.pending.len() >= FLUSH_THRESHOLD {
            self.flush()?;
        }
        Ok(())
    }

    fn append_inner(
        &mut self,
        rec: &[u8],
        compressed: &mut Vec<u8>,
        syncer: &Syncer,
    ) -> Result<()> {
        let mut data = rec;
        let mut flag = 0;
        if self.compress && !rec.is_empty() {
            compressed.resize(snap::raw::max_compress_len(rec.len()), 0);
            // Only fails for inputs above 4 GiB; such a record is logged as is.
            if let Ok(n) = self.encoder.compress(rec, compressed) {
                if n < rec.len() {
                    data = &compressed[..n];
                    flag = SNAPPY_FLAG;
                }
            }
        }

        // Room left in this segment: the rest of this page and every page
        // after it, less a fragment header each.
        let page_room = (PAGE_SIZE - self.page_offset() - FRAGMENT_HEADER_SIZE) as i128;
        let done_pages = (self.len() / PAGE_SIZE as u64) as i128;
        let left = page_room
            + (PAGE_SIZE - FRAGMENT_HEADER_SIZE) as i128
                * (self.pages_per_segment as i128 - done_pages - 1);
        if data.len() as i128 > left && self.len() > 0 {
            self.cut(syncer)?;
        }

        let mut rest = data;
        let mut first = true;
        loop {
            let room = PAGE_SIZE - self.page_offset() - FRAGMENT_HEADER_SIZE;
            let n = rest.len().min(room);
            let (part, tail) = rest.split_at(n);
            let typ = match (first, tail.is_empty()) {
                (true, true) => FRAGMENT_FULL,
                (true, false) => FRAGMENT_FIRST,
                (false, true) => FRAGMENT_LAST,
                (false, false) => FRAGMENT_MIDDLE,
            };
            self.pending.push(typ | flag);
            self.pending.extend_from_slice(&(n as u16).to_be_bytes());
            self.pending.extend_from_slice(&crc32c(part).to_be_bytes());
            self.pending.extend_from_slice(part);
            let off = self.page_offset();
            if off != 0 && PAGE_SIZE - off < FRAGMENT_HEADER_SIZE {
                self.pad_page();
            }
            rest = tail;
            first = false;
            if rest.is_empty() {
                return Ok(());
            }
        }
    }

    /// Hands `pending` to the OS with one `write(2)` (more if it is short).
    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        (&*self.segment)
            .write_all(&self.pending)
            .map_err(Error::io("write wal segment", &self.path))?;
        self.written += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// Drops what a failed `log` left in `pending` and cuts the segment back
    /// to its last complete write, so that no partial batch stays behind.
    fn abandon_pending(&mut self) {
        self.pending.clear();
        if let Err(e) = self.segment.set_len(self.written) {
            let why = format!("truncate {} after a failed write: {e}", self.path.display());
            tracing::error!(wal = %self.dir.display(), error = %why, "wal is unusable");
            self.broken = Some(why);
        }
    }

    /// Finishes the active segment and starts the next one.
    fn cut(&mut self, syncer: &Syncer) -> Result<()> {
        self.pad_page();
        self.flush()?;
        let next = self.index.checked_add(1).ok_or_else(|| {
            Error::Corrupt(format!(
                "wal {}: no segment index after {}",
                self.dir.display(),
                self.index
            ))
        })?;
        let (segment, path) = create_segment(&self.dir, next)?;
        let old = std::mem::replace(&mut self.segment, segment);
        let old_path = std::mem::replace(&mut self.path, path);
        syncer.send(SyncJob::File(old, old_path));
        syncer.send(SyncJob::Dir(self.dir.clone()));
        self.index = next;
        self.written = 0;
        Ok(())
    }
}

fn create_segment(dir: &Path, index: u32) -> Result<(Arc<File>, PathBuf)> {
    let path = segment_path(dir, index);
    let file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(&path)
        .map_err(Error::io("create wal segment", &path))?;
    Ok((Arc::new(file), path))
}

/// Cuts off a torn write at the end of the segment at `path`: the file is
/// truncated where the first damaged record starts.
fn repair_tail(path: &Path) -> Result<()> {
    let mut scanner = SegmentScanner::new();
    scanner.open(path)?;
    loop {
        match scanner.next()? {
            Scanned::Record { .. } => {}
            Scanned::End => return Ok(()),
            Scanned::Damaged(d) => {
                scanner.close();
                let file = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(Error::io("open wal segment for repair", path))?;
                let len = file
                    .metadata()
                    .map_err(Error::io("stat wal segment", path))?
                    .len();
                tracing::warn!(
                    segment = %path.display(),
                    offset = d.offset,
                    dropped_bytes = len.saturating_sub(d.offset),
                    reason = %d.reason,
                    "wal segment ends with a torn write; truncating it"
                );
                file.set_len(d.offset)
                    .map_err(Error::io("truncate torn wal segment", path))?;
                file.sync_all()
                    .map_err(Error::io("fsync repaired wal segment", path))?;
                return Ok(());
            }
        }
    }
}

enum SyncJob {
    /// Fsync a finished segment, then close it.
    File(Arc<File>, PathBuf),
    /// Fsync a directory after a segment was created in it.
    Dir(PathBuf),
    /// Reply once every earlier job is done, with the first error since the
    /// last barrier.
    Barrier(mpsc::Sender<Option<Error>>),
}

/// The background thread that fsyncs finished segments.
struct Syncer {
    tx: Option<mpsc::Sender<SyncJob>>,
    handle: Option<JoinHandle<Option<Error>>>,
}

impl Syncer {
    fn start() -> Result<Self> {
        let (tx, rx) = mpsc::channel::<SyncJob>();
        let handle = std::thread::Builder::new()
            .name("wal-fsync".into())
            .spawn(move || {
                let mut error: Option<Error> = None;
                for job in rx {
                    let result = match job {
                        SyncJob::File(file, path) => file
                            .sync_all()
                            .map_err(Error::io("fsync wal segment", path)),
                        SyncJob::Dir(dir) => sync_dir(&dir),
                        SyncJob::Barrier(reply) => {
                            let _ = reply.send(error.take());
                            continue;
                        }
                    };
                    if let Err(e) = result {
                        tracing::error!(error = %e, "background wal fsync failed");
                        error.get_or_insert(e);
                    }
                }
                error
            })
            .map_err(|e| Error::Io {
                op: "spawn wal fsync thread",
                path: PathBuf::new(),
                source: e,
            })?;
        Ok(Self {
            tx: Some(tx),
            handle: Some(handle),
        })
    }

    fn send(&self, job: SyncJob) {
        let tx = self
            .tx
            .as_ref()
            .expect("the fsync thread runs until the wal is closed");
        // The thread only exits when `tx` is dropped.
        let _ = tx.send(job);
    }

    /// Waits until every job sent so far is done.
    fn barrier(&self) -> Result<()> {
        let (reply_tx, reply_rx) = mpsc::channel();
        self.send(SyncJob::Barrier(reply_tx));
        match reply_rx.recv() {
            Ok(None) => Ok(()),
            Ok(Some(e)) => Err(e),
            Err(_) => Err(Error::Closed),
        }
    }

    /// Finishes the queued jobs and ends the thread.
    fn stop(&mut self) -> Result<()> {
        self.tx = None;
        match self.handle.take().map(|h| h.join()) {
            None | Some(Ok(None)) => Ok(()),
            Some(Ok(Some(e))) => Err(e),
            Some(Err(_)) => Err(Error::Io {
                op: "join wal fsync thread",
                path: PathBuf::new(),
                source: std::io::Error::other("thread panicked"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::WalReader;

    fn read_all(dir: &Path) -> Vec<Vec<u8>> {
        let mut r = WalReader::open(dir).unwrap();
        let mut out = Vec::new();
        while let Some(rec) = r.next_record().unwrap() {
            out.push(rec.to_vec());
        }
        out
    }

    fn uncompressed(pages: u64) -> WalOptions {
        WalOptions {
            segment_size: pages * PAGE_SIZE as u64,
            compress: false,
            fsync_on_log: false,
        }
    }

    #[test]
    fn exactly_one_header_left_in_a_page_gets_an_empty_first_fragment() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), uncompressed(4)).unwrap();
        let a = vec![0xAA; PAGE_SIZE - 2 * FRAGMENT_HEADER_SIZE];
        let b = vec![0xBB; 100];
        wal.log(&[&a, &b]).unwrap();
        let seg = fs::read(segment_path(dir.path(), 0)).unwrap();
        let at = PAGE_SIZE - FRAGMENT_HEADER_SIZE;
        assert_eq!(&seg[at..at + 3], &[FRAGMENT_FIRST, 0, 0]);
        assert_eq!(seg[PAGE_SIZE], FRAGMENT_LAST);
        drop(wal);
        assert_eq!(read_all(dir.path()), vec![a, b]);
    }

    #[test]
    fn fewer_than_seven_bytes_left_are_padding() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), uncompressed(4)).unwrap();
        let a = vec![0xAA; PAGE_SIZE - FRAGMENT_HEADER_SIZE - 6];
        wal.log(&[&a]).unwrap();
        assert_eq!(
            fs::metadata(segment_path(dir.path(), 0)).unwrap().len(),
            PAGE_SIZE as u64
        );
        wal.log(&[b"b"]).unwrap();
        let seg = fs::read(segment_path(dir.path(), 0)).unwrap();
        assert_eq!(&seg[PAGE_SIZE - 6..PAGE_SIZE], &[0; 6]);
        assert_eq!(seg[PAGE_SIZE], FRAGMENT_FULL);
    }

    #[test]
    fn a_record_larger_than_a_segment_gets_a_segment_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), uncompressed(1)).unwrap();
        let big = vec![7u8; 3 * PAGE_SIZE];
        wal.log(&[b"a", &big, b"b"]).unwrap();
        assert_eq!(wal.segments(), (0, 2));
        let len = |i| fs::metadata(segment_path(dir.path(), i)).unwrap().len();
        assert_eq!(len(0), PAGE_SIZE as u64, "finished segments are padded");
        assert!(len(1) > 3 * PAGE_SIZE as u64);
        drop(wal);
        assert_eq!(
            read_all(dir.path()),
            vec![b"a".to_vec(), big, b"b".to_vec()]
        );
    }

    #[test]
    fn sync_and_fsync_on_log_work_across_segment_cuts() {
        let dir = tempfile::tempdir().unwrap();
        let opts = WalOptions {
            fsync_on_log: true,
            ..uncompressed(1)
        };
        let wal = Wal::open(dir.path(), opts).unwrap();
        for i in 0..10u8 {
            wal.log(&[&vec![i; 20_000]]).unwrap();
        }
        wal.sync().unwrap();
        assert_eq!(wal.segments(), (0, 9));
        wal.close().unwrap();
        assert_eq!(read_all(dir.path()).len(), 10);
    }
}
