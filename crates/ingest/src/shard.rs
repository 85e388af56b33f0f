//! A shard's replicated state: one TSDB head per tenant, fed by the shard's
//! committed raft entries ([`Command`]s) in log order on every replica.
//!
//! Applying is deterministic: the same entries give the same heads on every
//! replica, and an entry is refused (on every replica) exactly when it would
//! be refused anywhere. A write is all or nothing per shard: every sample is
//! checked first (Prometheus's rules: out of order, duplicate timestamp with
//! another value, older than the head's window), then all are appended.
//! Re-sent samples are dropped as duplicates even when newer ones followed
//! (the sample stored at that time is looked up), so a write retried after
//! a lost answer is acknowledged again and stores nothing twice.
//!
//! Cutting a block is a command too ([`CutBlock`], proposed by the leader
//! with the block's ULID): every replica persists the same head range as the
//! same block in its blocks directory and truncates its head at the same
//! point. A [`BlockUploaded`] command records that the leader put the block
//! in object storage, so no later leader uploads it again.
//!
//! A snapshot is every tenant's head as XOR chunks plus the list of blocks,
//! with the files of those not uploaded yet; restoring re-appends the
//! samples and writes the missing blocks.
//!
//! Applying fails only deterministically (a malformed command, a rejected
//! sample); a local failure (disk full, I/O error) would let this replica
//! diverge from the others, so it stops the process instead.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hearth_model::chunkenc::Encoding;
use hearth_model::{Labels, Sample};
use hearth_storage_api::{AppendStats, ChunkSamples, SeriesChunk};
use hearth_tsdb::block::{Block, BlockCompaction, BlockWriter};
use hearth_tsdb::head::{check_order, AppendCheck, Head, MemSeries};
use parking_lot::RwLock;
use prost::Message as _;
use ulid::Ulid;

use crate::proto::ingest::{
    command, BlockFile, BlockUploaded, Command, CutBlock, Label, ShardSnapshot, SnapshotBlock,
    SnapshotChunk, SnapshotSeries, TenantSnapshot,
};
use crate::state_machine::StateMachine;
use crate::wire::{parse_write_command, WriteView};

/// Prometheus's block range, the default: heads cut their chunks at its
/// multiples and blocks span one.
pub const DEFAULT_BLOCK_DURATION_MS: i64 = 2 * 60 * 60 * 1000;

/// One tenant's head in a shard.
pub type TenantHeads = BTreeMap<String, Arc<Head>>;

/// A block cut from a tenant's head on this replica.
#[derive(Clone)]
pub struct LocalBlock {
    pub ulid: Ulid,
    pub tenant: String,
    pub min_time: i64,
    pub max_time: i64,
    /// Recorded through raft: it is in object storage.
    pub uploaded: bool,
    pub dir: PathBuf,
    /// The opened block; `None` when this replica has no copy (it was
    /// restored from a snapshot after the block was uploaded).
    pub block: Option<Arc<Block>>,
}

/// The heads and blocks of one shard replica, shared between the raft node
/// that applies entries to them and the readers.
#[derive(Clone)]
pub struct ShardData {
    block_duration: i64,
    tenants: Arc<RwLock<TenantHeads>>,
    blocks: Arc<RwLock<BTreeMap<Ulid, LocalBlock>>>,
    /// A block was uploaded since the last look: the log can be compacted.
    uploaded_since: Arc<AtomicBool>,
}

impl Default for ShardData {
    fn default() -> Self {
        Self::new(DEFAULT_BLOCK_DURATION_MS)
    }
}

impl ShardData {
    /// Empty, with heads whose chunks and blocks span `block_duration` ms.
    pub fn new(block_duration: i64) -> Self {
        Self {
            block_duration,
            tenants: Arc::default(),
            blocks: Arc::default(),
            uploaded_since: Arc::default(),
        }
    }

    pub fn block_duration(&self) -> i64 {
        self.block_duration
    }

    /// The blocks cut on this replica, oldest ULID first.
    pub fn blocks(&self) -> Vec<LocalBlock> {
        self.blocks.read().values().cloned().collect()
    }

    /// Whether a block upload was applied since the last call.
    pub fn take_uploaded(&self) -> bool {
        self.uploaded_since.swap(false, Ordering::AcqRel)
    }

    /// The tenants' heads as they are now.
    pub fn heads(&self) -> Vec<(String, Arc<Head>)> {
        self.tenants
            .read()
            .iter()
            .map(|(t, h)| (t.clone(), h.clone()))
            .collect()
    }

    fn head_for(&self, tenant: &str) -> Arc<Head> {
        if let Some(h) = self.tenants.read().get(tenant) {
            return h.clone();
        }
        self.tenants
            .write()
            .entry(tenant.to_string())
            .or_insert_with(|| Arc::new(Head::new(self.block_duration)))
            .clone()
    }

    fn replace(&self, tenants: TenantHeads) {
        *self.tenants.write() = tenants;
    }
}

/// The state machine of one shard replica.
pub struct ShardStateMachine {
    shard: u64,
    data: ShardData,
    /// Where this replica's blocks are written.
    blocks_dir: PathBuf,
}

impl ShardStateMachine {
    /// The state machine over `data`, writing blocks under `blocks_dir`
    /// (created when missing).
    pub fn new(shard: u64, data: ShardData, blocks_dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&blocks_dir)?;
        Ok(Self {
            shard,
            data,
            blocks_dir,
        })
    }

    /// Writes the head range of `cut` as a block (unless this replica wrote
    /// it before a restart) and truncates the head behind it.
    fn apply_cut(&self, cut: &CutBlock) -> Result<(), String> {
        let ulid = Ulid::from_string(&cut.ulid)
            .map_err(|e| format!("cut block: invalid ULID {:?}: {e}", cut.ulid))?;
        if cut.min_time >= cut.max_time {
            return Err(format!(
                "cut block {ulid}: min time {} is not before max time {}",
                cut.min_time, cut.max_time
            ));
        }
        if self.data.blocks.read().contains_key(&ulid) {
            return Ok(());
        }
        let Some(head) = self.data.tenants.read().get(&cut.tenant).cloned() else {
            return Ok(());
        };
        head.set_min_valid_time(cut.max_time);
        let series = head.series_for_block(cut.min_time, cut.max_time);
        if !series.is_empty() {
            let dir = self.blocks_dir.join(ulid.to_string());
            if !dir.join("meta.json").exists() {
                write_block(&self.blocks_dir, ulid, cut, &series).unwrap_or_else(|e| {
                    fatal(self.shard, &format!("write block {}: {e}", dir.display()))
                });
            }
            let block = Block::open(&dir).unwrap_or_else(|e| {
                fatal(self.shard, &format!("open block {}: {e}", dir.display()))
            });
            tracing::info!(shard = self.shard, tenant = %cut.tenant, block = %ulid,
                min_time = cut.min_time, max_time = cut.max_time, series = series.len(), "block cut");
            self.data.blocks.write().insert(
                ulid,
                LocalBlock {
                    ulid,
                    tenant: cut.tenant.clone(),
                    min_time: cut.min_time,
                    max_time: cut.max_time,
                    uploaded: false,
                    dir,
                    block: Some(Arc::new(block)),
                },
            );
        }
        head.truncate(cut.max_time);
        Ok(())
    }

    fn apply_uploaded(&self, uploaded: &BlockUploaded) -> Result<(), String> {
        let ulid = Ulid::from_string(&uploaded.ulid)
            .map_err(|e| format!("block uploaded: invalid ULID {:?}: {e}", uploaded.ulid))?;
        if let Some(b) = self.data.blocks.write().get_mut(&ulid) {
            b.uploaded = true;
        }
        self.data.uploaded_since.store(true, Ordering::Release);
        Ok(())
    }

    fn apply_write(&self, write: &WriteView<'_>) -> Result<AppendStats, String> {
        let head = self.data.head_for(write.tenant);
        let min_valid = head.append_min_valid();
        let mut stats = AppendStats::default();
        // Check everything first: a write is all or nothing.
        let mut plan: Vec<(Labels, Option<Arc<MemSeries>>, Vec<Sample>)> =
            Vec::with_capacity(write.series.len());
        for s in &write.series {
            if !s.labels.windows(2).all(|w| w[0].0 < w[1].0) {
                return Err(format!("labels not sorted or not unique: {:?}", s.labels));
            }
            let labels = Labels::from_sorted(s.labels.iter().copied());
            let existing = head.get(&labels);
            let mut last = existing.as_ref().and_then(|m| m.last_sample());
            let mut fresh = Vec::with_capacity(s.samples.len());
            for x in &s.samples {
                match check_order(last, x.t, x.v) {
                    Ok(AppendCheck::Append) => {
                        if x.t < min_valid {
                            return Err(format!(
                                "out of bounds: sample at {} for series {labels} is older than {min_valid}",
                                x.t
                            ));
                        }
                        fresh.push(*x);
                        last = Some((x.t, x.v.to_bits()));
                    }
                    Ok(AppendCheck::Duplicate) => stats.duplicates_dropped += 1,
                    Err(e) => {
                        // A re-sent sample older than the newest one: a
                        // duplicate when the stored sample at its time
                        // has its value.
                        let stored = existing.as_ref().and_then(|m| m.sample_bits_at(x.t));
                        if stored == Some(x.v.to_bits()) && fresh.last().is_none_or(|f| f.t < x.t) {
                            stats.duplicates_dropped += 1;
                            continue;
                        }
                        return Err(format!("{e}: sample at {} for series {labels}", x.t));
                    }
                }
            }
            plan.push((labels, existing, fresh));
        }
        for (labels, existing, samples) in plan {
            if samples.is_empty() {
                continue;
            }
            let series = match existing {
                Some(s) => s,
                None => {
                    let (s, created) = head.get_or_create(&labels);
                    stats.series_created += usize::from(created);
                    s
                }
            };
            for x in samples {
                // Checked above against the same state; the node applies
                // alone, so nothing changed in between.
                if head
                    .append(&series, x.t, x.v)
                    .map_err(|e| format!("append to series {labels}: {e}"))?
                {
                    stats.samples_appended += 1;
                } else {
                    stats.duplicates_dropped += 1;
                }
            }
        }
        Ok(stats)
    }
}

impl StateMachine for ShardStateMachine {
    fn apply(&mut self, _index: u64, data: &[u8]) -> Result<(), String> {
        if let Some(write) =
            parse_write_command(data).map_err(|e| format!("decode command: {e}"))?
        {
            return self.apply_write(&write).map(|_| ());
        }
        let command = Command::decode(data).map_err(|e| format!("decode command: {e}"))?;
        match command.command {
            Some(command::Command::Write(_)) => unreachable!("read above"),
            Some(command::Command::CutBlock(c)) => self.apply_cut(&c),
            Some(command::Command::BlockUploaded(u)) => self.apply_uploaded(&u),
            None => Err("empty command".to_string()),
        }
    }

    fn snapshot(&mut self) -> Result<Vec<u8>, String> {
        let tenants = self
            .data
            .heads()
            .into_iter()
            .map(|(tenant, head)| TenantSnapshot {
                tenant,
                min_valid_time: head.min_valid_time(),
                series: head
                    .series_for_block(i64::MIN, i64::MAX)
                    .into_iter()
                    .map(|s| SnapshotSeries {
                        labels: labels_to_pb(&s.labels),
                        chunks: s
                            .chunks
                            .iter()
                            .map(|c| SnapshotChunk {
                                min_time: c.mint,
                                max_time: c.maxt,
                                data: c.data.to_vec(),
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect();
        let mut blocks = Vec::new();
        for b in self.data.blocks() {
            let files = if b.uploaded {
                Vec::new()
            } else {
                block_files(&b.dir).map_err(|e| format!("read block {}: {e}", b.dir.display()))?
            };
            blocks.push(SnapshotBlock {
                ulid: b.ulid.to_string(),
                tenant: b.tenant,
                min_time: b.min_time,
                max_time: b.max_time,
                uploaded: b.uploaded,
                files,
            });
        }
        Ok(ShardSnapshot {
            shard: self.shard,
            tenants,
            blocks,
        }
        .encode_to_vec())
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), String> {
        let snapshot =
            ShardSnapshot::decode(data).map_err(|e| format!("decode shard snapshot: {e}"))?;
        let mut tenants = TenantHeads::new();
        for t in snapshot.tenants {
            let head = Arc::new(Head::new(self.data.block_duration));
            head.set_min_valid_time(t.min_valid_time);
            for s in t.series {
                let labels = labels_from_pb(&s.labels);
                let chunks: Vec<SeriesChunk> = s
                    .chunks
                    .into_iter()
                    .map(|c| SeriesChunk {
                        mint: c.min_time,
                        maxt: c.max_time,
                        encoding: Encoding::Xor,
                        data: Arc::from(c.data),
                    })
                    .collect();
                let (series, _) = head.get_or_create(&labels);
                for x in ChunkSamples::new(&chunks, i64::MIN, i64::MAX) {
                    let x = x.map_err(|e| format!("snapshot chunk of {labels}: {e}"))?;
                    head.append(&series, x.t, x.v)
                        .map_err(|e| format!("snapshot sample of {labels}: {e}"))?;
                }
            }
            tenants.insert(t.tenant, head);
        }
        let mut blocks = BTreeMap::new();
        for b in snapshot.blocks {
            let ulid = Ulid::from_string(&b.ulid)
                .map_err(|e| format!("snapshot block {:?}: {e}", b.ulid))?;
            let dir = self.blocks_dir.join(ulid.to_string());
            if !b.uploaded && !dir.join("meta.json").exists() {
                restore_block(&self.blocks_dir, ulid, &b.files).unwrap_or_else(|e| {
                    fatal(self.shard, &format!("restore block {}: {e}", dir.display()))
                });
            }
            let block = if dir.join("meta.json").exists() {
                Some(Arc::new(Block::open(&dir).unwrap_or_else(|e| {
                    fatal(self.shard, &format!("open block {}: {e}", dir.display()))
                })))
            } else {
                None
            };
            blocks.insert(
                ulid,
                LocalBlock {
                    ulid,
                    tenant: b.tenant,
                    min_time: b.min_time,
                    max_time: b.max_time,
                    uploaded: b.uploaded,
                    dir,
                    block,
                },
            );
        }
        self.data.replace(tenants);
        *self.data.blocks.write() = blocks;
        Ok(())
    }
}

/// Stops the process: this replica could not apply a committed entry and
/// must not go on with a state the others do not have. A restart replays
/// the log from the last snapshot.
fn fatal(shard: u64, what: &str) -> ! {
    tracing::error!(shard, "cannot apply a committed entry: {what}; stopping");
    eprintln!("hearth ingest: shard {shard}: cannot apply a committed entry: {what}");
    std::process::abort()
}

fn write_block(
    parent: &Path,
    ulid: Ulid,
    cut: &CutBlock,
    series: &[hearth_storage_api::Series],
) -> hearth_tsdb::Result<()> {
    let stale = parent.join(ulid.to_string());
    if stale.exists() {
        // The writer renames its directory last, with meta.json in it: a
        // directory without meta.json is not a block.
        std::fs::remove_dir_all(&stale)
            .map_err(hearth_tsdb::Error::io("remove incomplete block", &stale))?;
    }
    let mut w = BlockWriter::new(parent, ulid, cut.min_time, cut.max_time)?;
    for s in series {
        w.add_series(&s.labels, &s.chunks)?;
    }
    w.finish(BlockCompaction {
        level: 1,
        sources: vec![ulid],
        ..BlockCompaction::default()
    })?;
    Ok(())
}

/// Every file of a block directory, with paths relative to it.
fn block_files(dir: &Path) -> std::io::Result<Vec<BlockFile>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path);
                continue;
            }
            let name = path
                .strip_prefix(dir)
                .map_err(|e| std::io::Error::other(e.to_string()))?
                .to_string_lossy()
                .into_owned();
            out.push(BlockFile {
                name,
                data: std::fs::read(&path)?,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Writes a block's files from a snapshot into a temporary directory,
/// synced, then renamed: a block is complete once its directory has its
/// final name.
fn restore_block(parent: &Path, ulid: Ulid, files: &[BlockFile]) -> std::io::Result<()> {
    let tmp = parent.join(format!("{ulid}.tmp-for-restore"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    for f in files {
        let rel = Path::new(&f.name);
        if rel
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(std::io::Error::other(format!(
                "block file name {:?} leaves the block",
                f.name
            )));
        }
        let path = tmp.join(rel);
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p)?;
        }
        let mut file = std::fs::File::create(&path)?;
        std::io::Write::write_all(&mut file, &f.data)?;
        file.sync_all()?;
    }
    let dir = parent.join(ulid.to_string());
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::rename(&tmp, &dir)?;
    std::fs::File::open(parent)?.sync_all()
}

/// A command cutting `[min_time, max_time)` of `tenant`'s head as `ulid`.
pub fn cut_block_command(tenant: &str, min_time: i64, max_time: i64, ulid: Ulid) -> Vec<u8> {
    Command {
        command: Some(command::Command::CutBlock(CutBlock {
            tenant: tenant.to_string(),
            min_time,
            max_time,
            ulid: ulid.to_string(),
        })),
    }
    .encode_to_vec()
}

/// A command recording that block `ulid` is in object storage.
pub fn block_uploaded_command(ulid: Ulid) -> Vec<u8> {
    Command {
        command: Some(command::Command::BlockUploaded(BlockUploaded {
            ulid: ulid.to_string(),
        })),
    }
    .encode_to_vec()
}

fn labels_from_pb(labels: &[Label]) -> Labels {
    Labels::from_sorted(labels.iter().map(|l| (l.name.as_str(), l.value.as_str())))
}

fn labels_to_pb(labels: &Labels) -> Vec<Label> {
    labels
        .iter()
        .map(|l| Label {
            name: l.name.to_string(),
            value: l.value.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use hearth_model::{MatchOp, Matcher};

    use super::*;
    use crate::wire::encode_write_command;

    fn write(tenant: &str, labels: &Labels, samples: &[(i64, f64)]) -> Vec<u8> {
        let samples: Vec<Sample> = samples.iter().map(|&(t, v)| Sample::new(t, v)).collect();
        encode_write_command(tenant, &[(labels, &samples)])
    }

    fn stored(data: &ShardData, tenant: &str, labels: &Labels) -> Vec<(i64, f64)> {
        let heads = data.heads();
        let head = &heads.iter().find(|(t, _)| t == tenant).expect("tenant").1;
        let series = head.get(labels).expect("series");
        let chunks = head
            .series_for_block(i64::MIN, i64::MAX)
            .into_iter()
            .find(|s| &s.labels == labels)
            .map(|s| s.chunks)
            .unwrap_or_default();
        assert!(series.last_timestamp().is_some());
        ChunkSamples::new(&chunks, i64::MIN, i64::MAX)
            .map(|s| s.map(|s| (s.t, s.v)).expect("decode"))
            .collect()
    }

    #[test]
    fn a_retried_write_is_acknowledged_and_stored_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = ShardData::default();
        let mut sm = ShardStateMachine::new(0, data.clone(), dir.path().into()).expect("new");
        let a = Labels::new([("__name__", "a")]);
        sm.apply(1, &write("t", &a, &[(1000, 1.0), (2000, 2.0)]))
            .expect("first");
        sm.apply(2, &write("t", &a, &[(3000, 3.0)]))
            .expect("second");
        // The first write again, after newer samples: duplicates.
        sm.apply(3, &write("t", &a, &[(1000, 1.0), (2000, 2.0)]))
            .expect("retry");
        assert_eq!(
            stored(&data, "t", &a),
            vec![(1000, 1.0), (2000, 2.0), (3000, 3.0)]
        );
    }

    #[test]
    fn a_write_with_one_bad_sample_stores_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = ShardData::default();
        let mut sm = ShardStateMachine::new(0, data.clone(), dir.path().into()).expect("new");
        let a = Labels::new([("__name__", "a")]);
        let b = Labels::new([("__name__", "b")]);
        sm.apply(1, &write("t", &a, &[(2000, 2.0)])).expect("first");
        let samples_b = [Sample::new(5000, 5.0)];
        let samples_a = [Sample::new(1000, 1.0)];
        let bad = encode_write_command("t", &[(&b, &samples_b), (&a, &samples_a)]);
        let err = sm.apply(2, &bad).expect_err("out of order");
        assert!(err.contains("out of order"), "{err}");
        assert!(data.heads()[0].1.get(&b).is_none(), "b must not be stored");
        // Another value at a stored time is refused too.
        let err = sm
            .apply(3, &write("t", &a, &[(2000, 9.0)]))
            .expect_err("duplicate timestamp");
        assert!(err.contains("duplicate sample for timestamp"), "{err}");
    }

    #[test]
    fn tenants_are_separate_heads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = ShardData::default();
        let mut sm = ShardStateMachine::new(0, data.clone(), dir.path().into()).expect("new");
        let a = Labels::new([("__name__", "a")]);
        sm.apply(1, &write("x", &a, &[(1000, 1.0)])).expect("x");
        sm.apply(2, &write("y", &a, &[(500, 7.0)])).expect("y");
        assert_eq!(stored(&data, "x", &a), vec![(1000, 1.0)]);
        assert_eq!(stored(&data, "y", &a), vec![(500, 7.0)]);
    }

    #[test]
    fn snapshot_and_restore_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = ShardData::default();
        let mut sm = ShardStateMachine::new(3, data.clone(), dir.path().join("a")).expect("new");
        let a = Labels::new([("__name__", "a"), ("k", "v")]);
        let samples: Vec<(i64, f64)> = (0..500).map(|i| (i * 15_000, i as f64)).collect();
        sm.apply(1, &write("t", &a, &samples)).expect("write");
        let snap = sm.snapshot().expect("snapshot");

        let other = ShardData::default();
        let mut restored =
            ShardStateMachine::new(3, other.clone(), dir.path().join("b")).expect("new");
        restored
            .apply(1, &write("old", &a, &[(1, 1.0)]))
            .expect("old");
        restored.restore(&snap).expect("restore");
        assert_eq!(stored(&other, "t", &a), samples);
        assert_eq!(other.heads().len(), 1, "restore replaces the whole state");
        assert!(restored.restore(b"\xff\xff").is_err());
    }

    #[test]
    fn a_cut_block_leaves_the_head_and_travels_in_snapshots_until_uploaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let range = 10_000;
        let data = ShardData::new(range);
        let mut sm = ShardStateMachine::new(1, data.clone(), dir.path().join("a")).expect("new");
        let a = Labels::new([("__name__", "a")]);
        let samples: Vec<(i64, f64)> = (0..20).map(|i| (i * 1000, i as f64)).collect();
        sm.apply(1, &write("t", &a, &samples)).expect("write");
        let ulid = Ulid::new();
        sm.apply(2, &cut_block_command("t", 0, range, ulid))
            .expect("cut");
        // Applying the same cut again (a replay) changes nothing.
        sm.apply(3, &cut_block_command("t", 0, range, ulid))
            .expect("cut again");
        let blocks = data.blocks();
        assert_eq!(blocks.len(), 1);
        assert!(blocks[0].dir.join("meta.json").exists());
        assert!(!blocks[0].uploaded);
        assert_eq!(
            stored(&data, "t", &a),
            samples[10..].to_vec(),
            "head keeps [10s, 20s)"
        );
        let in_block = blocks[0]
            .block
            .as_ref()
            .expect("opened")
            .select(
                &[Matcher::new(MatchOp::Equal, "__name__", "a").expect("matcher")],
                0,
                range,
                false,
            )
            .expect("select");
        let got: Vec<(i64, f64)> = ChunkSamples::new(&in_block[0].chunks, 0, range)
            .map(|s| s.map(|s| (s.t, s.v)).expect("decode"))
            .collect();
        assert_eq!(got, samples[..10].to_vec());
        let err = sm
            .apply(4, &write("t", &a, &[(5000, 5.0)]))
            .expect_err("a sample in the cut range");
        assert!(err.contains("out of"), "{err}");

        // A replica restored from the snapshot gets the block's files.
        let snap = sm.snapshot().expect("snapshot");
        let other = ShardData::new(range);
        let mut restored =
            ShardStateMachine::new(1, other.clone(), dir.path().join("b")).expect("new");
        restored.restore(&snap).expect("restore");
        let copy = other.blocks();
        assert_eq!(copy.len(), 1);
        assert_eq!(copy[0].ulid, ulid);
        for f in ["meta.json", "index", "chunks/000001"] {
            assert_eq!(
                std::fs::read(copy[0].dir.join(f)).expect("restored file"),
                std::fs::read(blocks[0].dir.join(f)).expect("original file"),
                "{f}"
            );
        }

        // Once uploaded, snapshots carry only its name and range.
        sm.apply(5, &block_uploaded_command(ulid))
            .expect("uploaded");
        assert!(data.take_uploaded());
        assert!(!data.take_uploaded());
        let snap =
            ShardSnapshot::decode(sm.snapshot().expect("snapshot").as_slice()).expect("decode");
        assert!(snap.blocks[0].uploaded);
        assert!(snap.blocks[0].files.is_empty());
    }

    #[test]
    fn restore_refuses_block_files_outside_the_block() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = [BlockFile {
            name: "../escape".into(),
            data: b"x".to_vec(),
        }];
        assert!(restore_block(dir.path(), Ulid::new(), &files).is_err());
        assert!(!dir.path().parent().expect("parent").join("escape").exists());
    }
}
