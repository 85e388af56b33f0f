//! The durable raft log of one replica, which is also the ingester's WAL: a
//! raft-rs [`Storage`] backed by a directory.
//!
//! Layout of the directory:
//! - `<seq>.seg`: append-only segment files (`HRTHRLG1`, then records framed
//!   with a CRC each, see `record`). Entries, hard states, compaction marks
//!   and snapshot resets are all records, so one fsync makes a whole raft
//!   `Ready` durable. A segment is sealed (fsynced) when it passes
//!   `segment_bytes`, and the next one starts with the log's current state
//!   (compaction mark, hard state, configuration), so that deleting older
//!   segments never loses state.
//! - `snapshot`: the last snapshot (raft metadata and the state machine's
//!   bytes), replaced atomically (see `snapshot_file`).
//!
//! Writes go to a buffer; nothing is durable until [`LogStore::sync`] (or the
//! job of [`LogStore::prepare_sync`]) returns, and the node calls it before it
//! acknowledges or sends anything that must survive a crash. On open, the
//! segments are replayed in order; a torn record at the end of the last
//! segment (a crash mid-write) is truncated, any other damage is an error,
//! so a reopen restores exactly what was synced (and perhaps more).
//!
//! All live entries are also kept in memory, which bounds the log to what a
//! snapshot interval produces: the node snapshots and compacts regularly.

mod record;
mod snapshot_file;

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

use crate::error::{Error, Result};
use record::{Record, RecordKind, Tail};
use snapshot_file::sync_dir;

const SEGMENT_MAGIC: &[u8; 8] = b"HRTHRLG1";
const SEGMENT_SUFFIX: &str = ".seg";

/// Tuning of a [`LogStore`].
#[derive(Debug, Clone)]
pub struct LogStoreOptions {
    /// A segment is sealed and a new one started once it is this large; the
    /// granularity at which compaction frees disk space.
    pub segment_bytes: u64,
}

impl Default for LogStoreOptions {
    fn default() -> Self {
        Self {
            segment_bytes: 64 << 20,
        }
    }
}

/// An index in the log and the term of the entry there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Position {
    index: u64,
    term: u64,
}

/// A sealed segment: fsynced, read-only, deleted once compaction passes it.
#[derive(Debug)]
struct SealedSegment {
    path: PathBuf,
    /// The highest entry index written in it (0 when it holds no entries).
    max_index: u64,
}

/// The segment being appended to.
#[derive(Debug)]
struct ActiveSegment {
    seq: u64,
    path: PathBuf,
    file: Arc<File>,
    /// Records encoded but not yet written to the file.
    buf: Vec<u8>,
    /// Bytes written to the file (`buf` comes on top).
    file_len: u64,
    max_index: u64,
}

/// fsyncs what a [`LogStore`] has written, apart from the store, so that the
/// node can run it on a blocking thread without lending out the store.
#[derive(Debug)]
#[must_use = "nothing is durable until the job runs"]
pub struct SyncJob {
    file: Arc<File>,
    path: PathBuf,
}

impl SyncJob {
    /// Blocks until everything written before the job was made is on disk.
    pub fn run(self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(Error::io("sync raft log", &self.path))
    }
}

/// The durable raft log, hard state, configuration and snapshot of one
/// replica; see the module documentation.
#[derive(Debug)]
pub struct LogStore {
    dir: PathBuf,
    options: LogStoreOptions,
    hard_state: HardState,
    /// The configuration at the restart point: the snapshot's, or the
    /// bootstrap one. Changes after it are re-applied from the log on restart.
    conf_state: ConfState,
    /// Entries up to here are compacted away.
    compacted: Position,
    /// Live entries: `entries[i].index == compacted.index + 1 + i`.
    entries: VecDeque<Entry>,
    snapshot: Snapshot,
    sealed: Vec<SealedSegment>,
    active: ActiveSegment,
    /// A write failed part-way: the file may hold a partial record, so
    /// appending more would turn a torn tail into corruption.
    poisoned: bool,
    /// raft asked for a snapshot newer than the stored one (see
    /// [`LogStore::take_snapshot_wanted`]).
    snapshot_wanted: AtomicBool,
}

impl LogStore {
    /// Opens (or creates) the log store in `dir`, replaying its segments and
    /// truncating a torn tail left by a crash.
    pub fn open(dir: impl Into<PathBuf>, options: LogStoreOptions) -> Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(Error::io("create raft log directory", &dir))?;
        let snapshot = snapshot_file::load(&dir)?;
        let segments = list_segments(&dir)?;
        let (replay, sealed, last) = replay_segments(&dir, &segments)?;
        let active = match last {
            Some((seq, path, max_index)) => open_active(seq, path, max_index)?,
            None => {
                let next_seq = segments.last().map_or(1, |(seq, _)| seq + 1);
                ActiveSegment::create(&dir, next_seq, &[])?
            }
        };
        let mut store = LogStore {
            dir,
            options,
            hard_state: replay.hard_state,
            conf_state: replay.conf_state,
            compacted: replay.compacted,
            entries: replay.entries,
            snapshot: Snapshot::default(),
            sealed,
            active,
            poisoned: false,
            snapshot_wanted: AtomicBool::new(false),
        };
        store.reconcile_snapshot(snapshot)?;
        // Restate the log's state in the active segment, so that it never
        // depends on older segments that compaction may delete (its own
        // header may be missing after a crash during its creation).
        let header = state_records(store.compacted, &store.hard_state, &store.conf_state)?;
        store.active.buf.extend_from_slice(&header);
        // raft-rs would panic on such a hard state.
        if store.hard_state.commit > store.last_index() {
            return Err(Error::Corrupt {
                path: store.dir.clone(),
                offset: 0,
                reason: format!(
                    "commit index {} is past the last entry {}",
                    store.hard_state.commit,
                    store.last_index()
                ),
            });
        }
        Ok(store)
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether nothing was ever written: no entries, hard state,
    /// configuration or snapshot. A fresh store is bootstrapped with
    /// [`LogStore::initialize`] or joins a group by receiving a snapshot.
    pub fn is_fresh(&self) -> bool {
        self.last_index() == 0
            && self.hard_state == HardState::default()
            && self.conf_state == ConfState::default()
            && self.snapshot.is_empty()
    }

    /// Bootstraps a fresh store with the group's initial configuration,
    /// durably. Every initial member must be bootstrapped with the same one.
    pub fn initialize(&mut self, conf_state: ConfState) -> Result<()> {
        if !self.is_fresh() {
            return Err(Error::InvalidArgument(format!(
                "initialize raft log {}: it is not empty",
                self.dir.display()
            )));
        }
        self.write_message(RecordKind::ConfState, &conf_state)?;
        self.conf_state = conf_state;
        self.sync()
    }

    /// The persisted hard state (term, vote, commit).
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The configuration at the restart point (see the field's doc).
    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    /// The stored snapshot (empty when none was taken or received).
    pub fn snapshot_ref(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Index of the stored snapshot, 0 when there is none: where a restarted
    /// replica resumes applying.
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }

    /// Whether raft asked for a snapshot newer than the stored one since the
    /// last call; the node then takes one.
    pub fn take_snapshot_wanted(&self) -> bool {
        self.snapshot_wanted.swap(false, Ordering::Relaxed)
    }

    /// Appends `entries`, replacing any entries at or after the first one's
    /// index (a new leader's log wins over an uncommitted suffix). Buffered
    /// until the next sync.
    pub fn append(&mut self, entries: &[Entry]) -> Result<()> {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Ok(());
        };
        if first.index <= self.compacted.index {
            return Err(Error::InvalidArgument(format!(
                "append entry {} over the compacted log (compacted up to {})",
                first.index, self.compacted.index
            )));
        }
        if first.index > self.last_index() + 1 {
            return Err(Error::InvalidArgument(format!(
                "append entry {} leaves a gap after the last entry {}",
                first.index,
                self.last_index()
            )));
        }
        if entries.windows(2).any(|w| w[1].index != w[0].index + 1) {
            return Err(Error::InvalidArgument(
                "append entries with non-consecutive indexes".to_string(),
            ));
        }
        if self.active.size() >= self.options.segment_bytes {
            self.rotate()?;
        }
        for entry in entries {
            self.write_message(RecordKind::Entry, entry)?;
        }
        self.entries
            .truncate((first.index - self.compacted.index - 1) as usize);
        self.entries.extend(entries.iter().cloned());
        self.active.max_index = self.active.max_index.max(last.index);
        Ok(())
    }

    /// Records a new hard state. Buffered until the next sync.
    pub fn set_hard_state(&mut self, hard_state: HardState) -> Result<()> {
        self.write_message(RecordKind::HardState, &hard_state)?;
        self.hard_state = hard_state;
        Ok(())
    }

    /// Records a new commit index (raft's light ready reports one without a
    /// full hard state). Buffered until the next sync.
    pub fn set_commit(&mut self, commit: u64) -> Result<()> {
        let mut hard_state = self.hard_state.clone();
        hard_state.commit = commit;
        self.set_hard_state(hard_state)
    }

    /// Replaces the log with a snapshot received from the leader, durably:
    /// the snapshot file first, then a reset of the log, then an fsync, and
    /// only then are the old segments deleted.
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<()> {
        let meta = snapshot.get_metadata();
        if meta.index <= self.compacted.index {
            return Err(Error::InvalidArgument(format!(
                "apply snapshot at {}: the log is already compacted up to {}",
                meta.index, self.compacted.index
            )));
        }
        snapshot_file::store(&self.dir, &snapshot)?;
        self.reset_to(snapshot)?;
        self.sync()?;
        self.delete_sealed_segments(u64::MAX)
    }

    /// Stores a snapshot the local state machine took at an applied (hence
    /// committed) index; the log stays, [`LogStore::compact`] trims it.
    pub fn save_snapshot(&mut self, snapshot: Snapshot) -> Result<()> {
        let meta = snapshot.get_metadata();
        if meta.index < self.snapshot_index() || meta.index > self.hard_state.commit {
            return Err(Error::InvalidArgument(format!(
                "save snapshot at {}: outside the stored snapshot {} and the commit index {}",
                meta.index,
                self.snapshot_index(),
                self.hard_state.commit
            )));
        }
        if self.term_at(meta.index) != Some(meta.term) {
            return Err(Error::InvalidArgument(format!(
                "save snapshot at {} with term {}: the log has term {:?} there",
                meta.index,
                meta.term,
                self.term_at(meta.index)
            )));
        }
        snapshot_file::store(&self.dir, &snapshot)?;
        self.conf_state = meta.get_conf_state().clone();
        self.snapshot = snapshot;
        Ok(())
    }

    /// Drops the entries before `index`, durably, and deletes the sealed
    /// segments that then hold nothing live. Entries must stay reachable
    /// through a snapshot, so `index` may not pass the stored snapshot's
    /// index + 1.
    pub fn compact(&mut self, index: u64) -> Result<()> {
        if index <= self.first_index_inner() {
            return Ok(());
        }
        if index > self.last_index() + 1 {
            return Err(Error::InvalidArgument(format!(
                "compact up to {index}: past the last entry {}",
                self.last_index()
            )));
        }
        if index > self.snapshot_index() + 1 {
            return Err(Error::InvalidArgument(format!(
                "compact up to {index}: past the snapshot at {}",
                self.snapshot_index()
            )));
        }
        let term = self
            .term_at(index - 1)
            .expect("index - 1 lies between the compacted index and the last entry");
        let position = Position {
            index: index - 1,
            term,
        };
        self.write_position(RecordKind::Compact, position)?;
        let drop = (position.index - self.compacted.index) as usize;
        self.entries.drain(..drop);
        self.compacted = position;
        self.sync()?;
        self.delete_sealed_segments(position.index)
    }

    /// Writes the buffered records to the file and returns the fsync to run,
    /// so the node can wait for it on a blocking thread.
    pub fn prepare_sync(&mut self) -> Result<SyncJob> {
        self.flush()?;
        Ok(SyncJob {
            file: Arc::clone(&self.active.file),
            path: self.active.path.clone(),
        })
    }

    /// Makes everything written so far durable (write and fsync).
    pub fn sync(&mut self) -> Result<()> {
        self.prepare_sync()?.run()
    }

    fn first_index_inner(&self) -> u64 {
        self.compacted.index + 1
    }

    fn last_index(&self) -> u64 {
        self.compacted.index + self.entries.len() as u64
    }

    /// The term of entry `index`, if it is the compaction point or live.
    fn term_at(&self, index: u64) -> Option<u64> {
        if index == self.compacted.index {
            return Some(self.compacted.term);
        }
        let offset = index.checked_sub(self.first_index_inner())?;
        self.entries.get(offset as usize).map(|e| e.term)
    }

    /// Brings the log in line with the snapshot file after a replay: a
    /// snapshot the log does not contain was received and stored just before
    /// a crash, so the reset it implies is completed now.
    fn reconcile_snapshot(&mut self, snapshot: Snapshot) -> Result<()> {
        if snapshot.is_empty() {
            return Ok(());
        }
        let meta = snapshot.get_metadata();
        if meta.index < self.compacted.index {
            return Err(Error::Corrupt {
                path: self.dir.join(snapshot_file::FILE_NAME),
                offset: 0,
                reason: format!(
                    "snapshot at {} is older than the log's start {}",
                    meta.index, self.compacted.index
                ),
            });
        }
        if self.term_at(meta.index) == Some(meta.term) {
            let mut hard_state = self.hard_state.clone();
            hard_state.commit = hard_state.commit.max(meta.index);
            hard_state.term = hard_state.term.max(meta.term);
            self.hard_state = hard_state;
            self.conf_state = meta.get_conf_state().clone();
            self.snapshot = snapshot;
            return Ok(());
        }
        self.reset_to(snapshot)?;
        self.sync()
    }

    /// Drops every entry and restarts the log after `snapshot`, recording it.
    fn reset_to(&mut self, snapshot: Snapshot) -> Result<()> {
        let meta = snapshot.get_metadata();
        let position = Position {
            index: meta.index,
            term: meta.term,
        };
        let mut hard_state = self.hard_state.clone();
        hard_state.commit = hard_state.commit.max(meta.index);
        hard_state.term = hard_state.term.max(meta.term);
        let conf_state = meta.get_conf_state().clone();
        self.write_position(RecordKind::Reset, position)?;
        self.write_message(RecordKind::HardState, &hard_state)?;
        self.write_message(RecordKind::ConfState, &conf_state)?;
        self.entries.clear();
        self.compacted = position;
        self.hard_state = hard_state;
        self.conf_state = conf_state;
        self.snapshot = snapshot;
        Ok(())
    }

    /// Deletes the oldest sealed segments whose entries are all at or below
    /// `up_to`. Called only after the record that makes them dead is synced.
    fn delete_sealed_segments(&mut self, up_to: u64) -> Result<()> {
        let dead = self
            .sealed
            .iter()
            .take_while(|s| s.max_index <= up_to)
            .count();
        if dead == 0 {
            return Ok(());
        }
        for segment in self.sealed.drain(..dead) {
            fs::remove_file(&segment.path)
                .map_err(Error::io("delete raft log segment", &segment.path))?;
        }
        sync_dir(&self.dir)
    }

    /// Seals the active segment and starts the next, which opens with the
    /// log's current state so older segments can go without losing it.
    fn rotate(&mut self) -> Result<()> {
        self.sync()?;
        let header = state_records(self.compacted, &self.hard_state, &self.conf_state)?;
        let next = ActiveSegment::create(&self.dir, self.active.seq + 1, &header)?;
        let old = std::mem::replace(&mut self.active, next);
        self.sealed.push(SealedSegment {
            path: old.path,
            max_index: old.max_index,
        });
        Ok(())
    }

    fn write_message(&mut self, kind: RecordKind, message: &impl protobuf::Message) -> Result<()> {
        self.check_poisoned()?;
        encode_message(&mut self.active.buf, kind, message)
    }

    fn write_position(&mut self, kind: RecordKind, position: Position) -> Result<()> {
        self.check_poisoned()?;
        encode_position_record(&mut self.active.buf, kind, position);
        Ok(())
    }

    fn check_poisoned(&self) -> Result<()> {
        if self.poisoned {
            return Err(Error::InvalidArgument(format!(
                "raft log {} failed a write earlier; reopen it",
                self.active.path.display()
            )));
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.check_poisoned()?;
        if self.active.buf.is_empty() {
            return Ok(());
        }
        if let Err(e) = (&*self.active.file).write_all(&self.active.buf) {
            self.poisoned = true;
            return Err(Error::io("write raft log", &self.active.path)(e));
        }
        self.active.file_len += self.active.buf.len() as u64;
        self.active.buf.clear();
        Ok(())
    }
}

impl ActiveSegment {
    /// Creates segment `seq` holding `header` records, durably.
    fn create(dir: &Path, seq: u64, header: &[u8]) -> Result<Self> {
        let path = dir.join(segment_name(seq));
        let mut file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(Error::io("create raft log segment", &path))?;
        file.write_all(SEGMENT_MAGIC)
            .and_then(|()| file.write_all(header))
            .and_then(|()| file.sync_data())
            .map_err(Error::io("write raft log segment", &path))?;
        sync_dir(dir)?;
        Ok(ActiveSegment {
            seq,
            path,
            file: Arc::new(file),
            buf: Vec::new(),
            file_len: (SEGMENT_MAGIC.len() + header.len()) as u64,
            max_index: 0,
        })
    }

    /// Bytes in the file plus the buffered ones.
    fn size(&self) -> u64 {
        self.file_len + self.buf.len() as u64
    }
}

/// Reopens the last segment for appending, after replay truncated any torn
/// tail.
fn open_active(seq: u64, path: PathBuf, max_index: u64) -> Result<ActiveSegment> {
    let file = OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(Error::io("open raft log segment", &path))?;
    let file_len = file
        .metadata()
        .map_err(Error::io("stat raft log segment", &path))?
        .len();
    Ok(ActiveSegment {
        seq,
        path,
        file: Arc::new(file),
        buf: Vec::new(),
        file_len,
        max_index,
    })
}

fn segment_name(seq: u64) -> String {
    format!("{seq:020}{SEGMENT_SUFFIX}")
}

/// The segment files of `dir`, oldest first.
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut segments = Vec::new();
    for dirent in fs::read_dir(dir).map_err(Error::io("list raft log directory", dir))? {
        let dirent = dirent.map_err(Error::io("list raft log directory", dir))?;
        let name = dirent.file_name();
        let Some(seq) = name
            .to_str()
            .and_then(|n| n.strip_suffix(SEGMENT_SUFFIX))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        segments.push((seq, dirent.path()));
    }
    segments.sort_unstable();
    Ok(segments)
}

/// The records that restate the log's state at the start of a segment.
fn state_records(
    compacted: Position,
    hard_state: &HardState,
    conf_state: &ConfState,
) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    encode_position_record(&mut buf, RecordKind::Compact, compacted);
    encode_message(&mut buf, RecordKind::HardState, hard_state)?;
    encode_message(&mut buf, RecordKind::ConfState, conf_state)?;
    Ok(buf)
}

fn encode_position_record(buf: &mut Vec<u8>, kind: RecordKind, position: Position) {
    record::encode::<std::convert::Infallible>(buf, kind, |b| {
        record::encode_position(b, position.index, position.term);
        Ok(())
    })
    .unwrap_or_else(|never| match never {});
}

/// Appends `message` as a record; refuses one that a reader would take for
/// corruption.
fn encode_message(
    buf: &mut Vec<u8>,
    kind: RecordKind,
    message: &impl protobuf::Message,
) -> Result<()> {
    let size = message.compute_size() as usize;
    if size >= record::MAX_RECORD_LEN {
        return Err(Error::InvalidArgument(format!(
            "raft log record of {size} bytes exceeds the limit of {} bytes",
            record::MAX_RECORD_LEN
        )));
    }
    record::encode(buf, kind, |b| message.write_to_vec(b))
        .map_err(Error::codec("encode raft log record"))
}

/// The log's state while segments are replayed.
#[derive(Debug, Default)]
struct Replay {
    hard_state: HardState,
    conf_state: ConfState,
    compacted: Position,
    entries: VecDeque<Entry>,
    /// Entries up to here were skipped by a gap (the older segments that held
    /// them were deleted); a later compaction mark must cover them, or the
    /// log lost entries.
    missing_up_to: Option<u64>,
}

impl Replay {
    /// Applies one record; returns the index of an entry record.
    fn apply(&mut self, record: &Record) -> std::result::Result<Option<u64>, String> {
        match record.kind {
            RecordKind::Entry => {
                let entry = Entry::parse_from_carllerche_bytes(&record.payload)
                    .map_err(|e| format!("decode entry: {e}"))?;
                let index = entry.index;
                self.apply_entry(entry);
                return Ok(Some(index));
            }
            RecordKind::HardState => {
                self.hard_state = HardState::parse_from_bytes(&record.payload)
                    .map_err(|e| format!("decode hard state: {e}"))?;
            }
            RecordKind::ConfState => {
                self.conf_state = ConfState::parse_from_bytes(&record.payload)
                    .map_err(|e| format!("decode configuration: {e}"))?;
            }
            RecordKind::Compact => {
                let (index, term) =
                    record::decode_position(&record.payload).ok_or("invalid compaction record")?;
                self.apply_compact(Position { index, term });
            }
            RecordKind::Reset => {
                let (index, term) =
                    record::decode_position(&record.payload).ok_or("invalid reset record")?;
                self.entries.clear();
                self.compacted = Position { index, term };
                self.missing_up_to = None;
            }
        }
        Ok(None)
    }

    fn apply_entry(&mut self, entry: Entry) {
        if entry.index <= self.compacted.index {
            return;
        }
        let next = self.compacted.index + 1 + self.entries.len() as u64;
        if entry.index > next {
            // The segments holding the entries before this one are gone;
            // legitimate only if a compaction mark later covers them.
            self.entries.clear();
            self.compacted = Position {
                index: entry.index - 1,
                term: 0,
            };
            self.missing_up_to = Some(entry.index - 1);
        } else {
            self.entries
                .truncate((entry.index - self.compacted.index - 1) as usize);
        }
        self.entries.push_back(entry);
    }

    fn apply_compact(&mut self, position: Position) {
        if position.index < self.compacted.index {
            return;
        }
        let drop = (position.index - self.compacted.index).min(self.entries.len() as u64);
        self.entries.drain(..drop as usize);
        self.compacted = position;
        if self.missing_up_to.is_some_and(|m| m <= position.index) {
            self.missing_up_to = None;
        }
    }
}

/// The last segment, to append to: sequence number, path, highest entry.
type LastSegment = (u64, PathBuf, u64);

/// Replays `segments` in order; returns the log's state, the sealed
/// segments, and the last one (none if it was empty and removed).
fn replay_segments(
    dir: &Path,
    segments: &[(u64, PathBuf)],
) -> Result<(Replay, Vec<SealedSegment>, Option<LastSegment>)> {
    let mut replay = Replay::default();
    let mut sealed = Vec::new();
    let mut last = None;
    for (i, (seq, path)) in segments.iter().enumerate() {
        let is_last = i + 1 == segments.len();
        let Some(max_index) = replay_segment(path, is_last, &mut replay)? else {
            continue;
        };
        if is_last {
            last = Some((*seq, path.clone(), max_index));
        } else {
            sealed.push(SealedSegment {
                path: path.clone(),
                max_index,
            });
        }
    }
    if let Some(missing) = replay.missing_up_to {
        return Err(Error::Corrupt {
            path: dir.to_path_buf(),
            offset: 0,
            reason: format!("raft log entries up to {missing} are missing"),
        });
    }
    Ok((replay, sealed, last))
}

/// Replays one segment into `replay`. Returns the highest entry index in it,
/// or `None` for an empty last segment (a crash right after its creation),
/// which is removed. A torn tail of the last segment is truncated.
fn replay_segment(path: &Path, is_last: bool, replay: &mut Replay) -> Result<Option<u64>> {
    let data = Bytes::from(fs::read(path).map_err(Error::io("read raft log segment", path))?);
    let corrupt = |offset: u64, reason: String| Error::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason,
    };
    if data.len() < SEGMENT_MAGIC.len() || &data[..SEGMENT_MAGIC.len()] != SEGMENT_MAGIC {
        let torn_header = data.len() < SEGMENT_MAGIC.len() && SEGMENT_MAGIC.starts_with(&data);
        if is_last && torn_header {
            fs::remove_file(path).map_err(Error::io("remove empty raft log segment", path))?;
            return Ok(None);
        }
        return Err(corrupt(0, "not a raft log segment".to_string()));
    }
    let (records, tail) = record::parse(&data, SEGMENT_MAGIC.len());
    let mut max_index = 0;
    for record in &records {
        let index = replay
            .apply(record)
            .map_err(|reason| corrupt(record.offset, reason))?;
        max_index = max_index.max(index.unwrap_or(0));
    }
    match tail {
        Tail::Clean => {}
        Tail::Torn { offset } if is_last => truncate(path, offset)?,
        Tail::Torn { offset } => {
            return Err(corrupt(
                offset,
                "torn record in a sealed segment".to_string(),
            ))
        }
        Tail::Corrupt { offset, reason } => return Err(corrupt(offset, reason)),
    }
    Ok(Some(max_index))
}

/// Cuts a torn tail off a segment, durably.
fn truncate(path: &Path, len: u64) -> Result<()> {
    tracing::warn!(path = %path.display(), len, "truncating torn raft log tail");
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(Error::io("open raft log segment", path))?;
    file.set_len(len)
        .and_then(|()| file.sync_all())
        .map_err(Error::io("truncate raft log segment", path))
}

impl Storage for LogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let first = self.first_index_inner();
        if low < first {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last_index() + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        if low >= high {
            return Ok(Vec::new());
        }
        let max_size = max_size.into().unwrap_or(raft::NO_LIMIT);
        let mut out = Vec::new();
        let mut size = 0u64;
        for entry in self
            .entries
            .range((low - first) as usize..(high - first) as usize)
        {
            size += u64::from(entry.compute_size());
            if !out.is_empty() && size > max_size {
                break;
            }
            out.push(entry.clone());
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx < self.compacted.index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        self.term_at(idx)
            .ok_or(raft::Error::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first_index_inner())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(LogStore::last_index(self))
    }

    /// The stored snapshot, unless it is older than `request_index` or
    /// predates `to` joining the group (raft-rs makes a replica refuse a
    /// snapshot whose configuration lacks it): then a newer one is wanted,
    /// and raft asks again later.
    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let conf = self.snapshot.get_metadata().get_conf_state();
        let includes_to = conf
            .voters
            .iter()
            .chain(&conf.learners)
            .chain(&conf.voters_outgoing)
            .any(|id| *id == to);
        if self.snapshot.is_empty() || self.snapshot_index() < request_index || !includes_to {
            self.snapshot_wanted.store(true, Ordering::Relaxed);
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64, data: &str) -> Entry {
        Entry {
            index,
            term,
            data: Bytes::copy_from_slice(data.as_bytes()),
            ..Default::default()
        }
    }

    fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
        range.map(|i| entry(i, term, &format!("e{i}"))).collect()
    }

    fn hard_state(term: u64, vote: u64, commit: u64) -> HardState {
        HardState {
            term,
            vote,
            commit,
            ..Default::default()
        }
    }

    fn voters(ids: &[u64]) -> ConfState {
        ConfState::from((ids.to_vec(), Vec::<u64>::new()))
    }

    fn snapshot(index: u64, term: u64, data: &'static [u8]) -> Snapshot {
        let mut s = Snapshot {
            data: Bytes::from_static(data),
            ..Default::default()
        };
        s.mut_metadata().index = index;
        s.mut_metadata().term = term;
        s.mut_metadata().set_conf_state(voters(&[1, 2, 3]));
        s
    }

    fn small_segments() -> LogStoreOptions {
        LogStoreOptions { segment_bytes: 256 }
    }

    fn all(store: &LogStore) -> Vec<Entry> {
        let first = store.first_index().expect("first");
        let last = Storage::last_index(store).expect("last");
        store
            .entries(first, last + 1, None, GetEntriesContext::empty(false))
            .expect("entries")
    }

    fn segment_count(dir: &Path) -> usize {
        list_segments(dir).expect("list").len()
    }

    #[test]
    fn reopen_restores_what_was_synced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = LogStore::open(dir.path(), LogStoreOptions::default()).expect("open");
        assert!(store.is_fresh());
        store.initialize(voters(&[1, 2, 3])).expect("initialize");
        store.append(&entries(1..=10, 1)).expect("append");
        store
            .set_hard_state(hard_state(1, 2, 7))
            .expect("hard state");
        store.sync().expect("sync");
        drop(store);

        let store = LogStore::open(dir.path(), LogStoreOptions::default()).expect("reopen");
        assert!(!store.is_fresh());
        assert_eq!(all(&store), entries(1..=10, 1));
        let state = store.initial_state().expect("state");
        assert_eq!(state.hard_state, hard_state(1, 2, 7));
        assert_eq!(state.conf_state, voters(&[1, 2, 3]));
    }

    #[test]
    fn overwriting_a_suffix_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = LogStore::open(dir.path(), small_segments()).expect("open");
        store.append(&entries(1..=10, 1)).expect("append");
        store.append(&entries(6..=8, 2)).expect("overwrite");
        let expected: Vec<Entry> = entries(1..=5, 1)
            .into_iter()
            .chain(entries(6..=8, 2))
            .collect();
        assert_eq!(all(&store), expected);
        store.sync().expect("sync");
        drop(store);
        let store = LogStore::open(dir.path(), small_segments()).expect("reopen");
        assert_eq!(all(&store), expected);
        assert_eq!(store.term(7).expect("term"), 2);
    }

    #[test]
    fn rejects_gaps_and_overwriting_compacted_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = LogStore::open(dir.path(), LogStoreOptions::default()).expect("open");
        assert!(store.append(&entries(2..=3, 1)).is_err());
        store.append(&entries(1..=5, 1)).expect("append");
        store
            .set_hard_state(hard_state(1, 1, 5))
            .expect("hard state");
        store.save_snapshot(snapshot(3, 1, b"s")).expect("snapshot");
        store.compact(4).expect("compact");
        assert!(store.append(&entries(3..=4, 2)).is_err());
        assert!(store.append(&entries(7..=7, 2)).is_err());
    }

    #[test]
    fn a_torn_last_record_is_truncated_on_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = LogStore::open(dir.path(), LogStoreOptions::default()).expect("open");
        store.append(&entries(1..=10, 1)).expect("append");
        store.sync().expect("sync");
        let path = store.active.path.clone();
        drop(store);

        // A crash in the middle of writing the last record: cut it in half.
        let len = fs::metadata(&path).expect("stat").len();
        let last_record_len = {
            let mut buf = Vec::new();
            encode_message(&mut buf, RecordKind::Entry, &entry(10, 1, "e10")).expect("encode");
            buf.len() as u64
        };
        let cut = len - last_record_len / 2;
        OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(cut))
            .expect("truncate");

        let mut store = LogStore::open(dir.path(), LogStoreOptions::default()).expect("reopen");
        assert_eq!(all(&store), entries(1..=9, 1));
        assert_eq!(
            fs::metadata(&path).expect("stat").len(),
            len - last_record_len,
            "the torn record is cut off"
        );
        // The log goes on after the cut, and a second reopen sees both.
        store.append(&entries(10..=11, 2)).expect("append");
        store.sync().expect("sync");
        drop(store);
        let store = LogStore::open(dir.path(), LogStoreOptions::default()).expect("reopen");
        let expected: Vec<Entry> = entries(1..=9, 1)
            .into_iter()
            .chain(entries(10..=11, 2))
            .collect();
        assert_eq!(all(&store), expected);
    }

    #[test]
    fn corruption_in_the_middle_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = LogStore::open(dir.path(), LogStoreOptions::default()).expect("open");
        store.append(&entries(1..=10, 1)).expect("append");
        store.sync().expect("sync");
        let path = store.active.path.clone();
        drop(store);
        let clean = fs::read(&path).expect("read");
        let mut last_record = Vec::new();
        encode_message(&mut last_record, RecordKind::Entry, &entry(10, 1, "e10")).expect("encode");
        // Damage to any byte before the last record, in a length, a checksum
        // or a payload, must be reported, never truncated away.
        for offset in 0..clean.len() - last_record.len() {
            let mut bytes = clean.clone();
            bytes[offset] ^= 0x55;
            fs::write(&path, &bytes).expect("write");
            let err = LogStore::open(dir.path(), LogStoreOptions::default())
                .expect_err(&format!("damage at {offset} goes unnoticed"));
            assert!(matches!(err, Error::Corrupt { .. }), "{err}");
        }
    }

    #[test]
    fn a_torn_record_in_a_sealed_segment_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = LogStore::open(dir.path(), small_segments()).expect("open");
        for i in 1..=20 {
            store.append(&entries(i..=i, 1)).expect("append");
        }
        store.sync().expect("sync");
        let first_segment = store.sealed[0].path.clone();
        drop(store);
        let len = fs::metadata(&first_segment).expect("stat").len();
        OpenOptions::new()
            .write(true)
            .open(&first_segment)
            .and_then(|f| f.set_len(len - 3))
            .expect("truncate");
        let err = LogStore::open(dir.path(), small_segments()).expect_err("torn sealed");
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    }

    #[test]
    fn a_lost_segment_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = LogStore::open(dir.path(), small_segments()).expect("open");
        for i in 1..=40 {
            store.append(&entries(i..=i, 1)).expect("append");
        }
        store.sync().expect("sync");
        let second = store.sealed[1].path.clone();
        drop(store);
        // Not compacted away, yet gone: the entries it held are missing.
        fs::remove_file(&second).expect("remove");
        let err = LogStore::open(dir.path(), small_segments()).expect_err("lost segment");
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    }

    #[test]
    fn an_empty_last_segment_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = LogStore::open(dir.path(), LogStoreOptions::default()).expect("open");
        store.append(&entries(1..=3, 1)).expect("append");
        store.sync().expect("sync");
        drop(store);
        fs::write(dir.path().join(segment_name(2)), b"HRT").expect("write");
        let store = LogStore::open(dir.path(), LogStoreOptions::default()).expect("reopen");
        assert_eq!(all(&store), entries(1..=3, 1));
    }

    #[test]
    fn compaction_deletes_whole_segments_and_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = LogStore::open(dir.path(), small_segments()).expect("open");
        store.initialize(voters(&[1, 2, 3])).expect("initialize");
        for i in 1..=100 {
            store.append(&entries(i..=i, 1)).expect("append");
        }
        store
            .set_hard_state(hard_state(1, 1, 100))
            .expect("hard state");
        store.sync().expect("sync");
        let before = segment_count(dir.path());
        assert!(before > 5, "small segments rotate: {before}");

        // Compaction may not pass the snapshot.
        assert!(store.compact(51).is_err());
        store
            .save_snapshot(snapshot(60, 1, b"state at 60"))
            .expect("snapshot");
        store.compact(61).expect("compact");
        let after = segment_count(dir.path());
        assert!(after < before, "segments deleted: {before} -> {after}");
        assert_eq!(store.first_index().expect("first"), 61);
        assert_eq!(store.term(60).expect("term at the compaction point"), 1);
        assert_eq!(
            store.term(59),
            Err(raft::Error::Store(StorageError::Compacted))
        );
        assert_eq!(
            store.entries(60, 62, None, GetEntriesContext::empty(false)),
            Err(raft::Error::Store(StorageError::Compacted))
        );
        drop(store);

        let store = LogStore::open(dir.path(), small_segments()).expect("reopen");
        assert_eq!(store.first_index().expect("first"), 61);
        assert_eq!(Storage::last_index(&store).expect("last"), 100);
        assert_eq!(all(&store), entries(61..=100, 1));
        assert_eq!(store.term(60).expect("term"), 1);
        assert_eq!(store.snapshot_index(), 60);
        assert_eq!(store.hard_state().commit, 100);
        assert_eq!(store.conf_state(), &voters(&[1, 2, 3]));
    }

    #[test]
    fn storage_contract_terms_and_bounds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = LogStore::open(dir.path(), LogStoreOptions::default()).expect("open");
        // An empty log: first 1, last 0, term(0) = 0.
        assert_eq!(store.first_index().expect("first"), 1);
        assert_eq!(Storage::last_index(&store).expect("last"), 0);
        assert_eq!(store.term(0).expect("term"), 0);
        store.append(&entries(1..=5, 1)).expect("append");
        store.append(&entries(6..=8, 3)).expect("append");
        assert_eq!(store.term(5).expect("term"), 1);
        assert_eq!(store.term(6).expect("term"), 3);
        assert_eq!(
            store.term(9),
            Err(raft::Error::Store(StorageError::Unavailable))
        );
        assert_eq!(
            store.entries(1, 10, None, GetEntriesContext::empty(false)),
            Err(raft::Error::Store(StorageError::Unavailable))
        );
        assert!(store
            .entries(4, 4, None, GetEntriesContext::empty(false))
            .expect("empty range")
            .is_empty());
    }

    #[test]
    fn storage_contract_max_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = LogStore::open(dir.path(), LogStoreOptions::default()).expect("open");
        let ents = entries(1..=5, 1);
        store.append(&ents).expect("append");
        let size = u64::from(ents[0].compute_size());
        let get = |max: Option<u64>| {
            store
                .entries(1, 6, max, GetEntriesContext::empty(false))
                .expect("entries")
                .len()
        };
        assert_eq!(get(None), 5);
        assert_eq!(get(Some(u64::MAX)), 5);
        assert_eq!(get(Some(0)), 1, "always at least one entry");
        assert_eq!(get(Some(size)), 1);
        assert_eq!(get(Some(size * 2)), 2);
        assert_eq!(get(Some(size * 3 - 1)), 2);
        assert_eq!(get(Some(size * 3)), 3);
        // Same answer as raft-rs's own limit.
        let mut limited = ents.clone();
        raft::util::limit_size(&mut limited, Some(size * 3));
        assert_eq!(limited.len(), 3);
    }

    #[test]
    fn applying_a_snapshot_replaces_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = LogStore::open(dir.path(), small_segments()).expect("open");
        for i in 1..=30 {
            store.append(&entries(i..=i, 1)).expect("append");
        }
        store
            .set_hard_state(hard_state(1, 1, 20))
            .expect("hard state");
        store.sync().expect("sync");
        store
            .apply_snapshot(snapshot(50, 4, b"leader state"))
            .expect("apply snapshot");
        assert_eq!(store.first_index().expect("first"), 51);
        assert_eq!(Storage::last_index(&store).expect("last"), 50);
        assert_eq!(store.term(50).expect("term"), 4);
        assert_eq!(store.hard_state().commit, 50);
        assert_eq!(store.hard_state().term, 4);
        assert_eq!(
            store.snapshot(0, 2).expect("snapshot").get_metadata().index,
            50
        );
        assert_eq!(segment_count(dir.path()), 1, "old segments are gone");
        // Older snapshots are refused.
        assert!(store.apply_snapshot(snapshot(40, 4, b"old")).is_err());
        store
            .append(&entries(51..=52, 4))
            .expect("append after snapshot");
        store.sync().expect("sync");
        drop(store);

        let store = LogStore::open(dir.path(), small_segments()).expect("reopen");
        assert_eq!(store.first_index().expect("first"), 51);
        assert_eq!(all(&store), entries(51..=52, 4));
        assert_eq!(
            store.snapshot_ref().data,
            Bytes::from_static(b"leader state")
        );
        assert_eq!(
            store.initial_state().expect("state").conf_state,
            voters(&[1, 2, 3])
        );
    }

    #[test]
    fn a_snapshot_stored_just_before_a_crash_resets_the_log_on_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = LogStore::open(dir.path(), LogStoreOptions::default()).expect("open");
        store.append(&entries(1..=5, 1)).expect("append");
        store.sync().expect("sync");
        drop(store);
        // The snapshot file is written, then the process dies before the
        // log records the reset.
        snapshot_file::store(dir.path(), &snapshot(9, 2, b"received")).expect("store");

        let store = LogStore::open(dir.path(), LogStoreOptions::default()).expect("reopen");
        assert_eq!(store.first_index().expect("first"), 10);
        assert_eq!(Storage::last_index(&store).expect("last"), 9);
        assert_eq!(store.hard_state().commit, 9);
        drop(store);
        let store = LogStore::open(dir.path(), LogStoreOptions::default()).expect("reopen");
        assert_eq!(store.first_index().expect("first"), 10);
    }

    #[test]
    fn a_local_snapshot_keeps_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = LogStore::open(dir.path(), LogStoreOptions::default()).expect("open");
        store.append(&entries(1..=10, 2)).expect("append");
        store
            .set_hard_state(hard_state(2, 1, 8))
            .expect("hard state");
        assert!(store.save_snapshot(snapshot(9, 2, b"past commit")).is_err());
        assert!(store.save_snapshot(snapshot(5, 1, b"wrong term")).is_err());
        store
            .save_snapshot(snapshot(5, 2, b"at 5"))
            .expect("snapshot");
        store.sync().expect("sync");
        drop(store);
        let store = LogStore::open(dir.path(), LogStoreOptions::default()).expect("reopen");
        assert_eq!(all(&store), entries(1..=10, 2));
        assert_eq!(store.snapshot_index(), 5);
    }

    #[test]
    fn asking_for_a_newer_snapshot_than_stored_flags_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = LogStore::open(dir.path(), LogStoreOptions::default()).expect("open");
        assert_eq!(
            store.snapshot(0, 2),
            Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable
            ))
        );
        assert!(store.take_snapshot_wanted());
        assert!(!store.take_snapshot_wanted());
        store.append(&entries(1..=5, 1)).expect("append");
        store
            .set_hard_state(hard_state(1, 1, 5))
            .expect("hard state");
        store.save_snapshot(snapshot(4, 1, b"s")).expect("snapshot");
        assert_eq!(
            store.snapshot(3, 2).expect("snapshot").get_metadata().index,
            4
        );
        assert!(store.snapshot(5, 2).is_err());
        assert!(store.take_snapshot_wanted());
        // A replica added after the snapshot would refuse it.
        assert!(store.snapshot(0, 4).is_err());
        assert!(store.take_snapshot_wanted());
    }

    #[test]
    fn initialize_refuses_a_used_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = LogStore::open(dir.path(), LogStoreOptions::default()).expect("open");
        store.append(&entries(1..=1, 1)).expect("append");
        assert!(store.initialize(voters(&[1])).is_err());
    }
}
