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
//! A snapshot is every tenant's head as XOR chunks; restoring re-appends
//! their samples.

use std::collections::BTreeMap;
use std::sync::Arc;

use hearth_model::chunkenc::Encoding;
use hearth_model::{Labels, Sample};
use hearth_storage_api::{AppendStats, ChunkSamples, SeriesChunk};
use hearth_tsdb::head::{check_order, AppendCheck, Head, MemSeries};
use parking_lot::RwLock;
use prost::Message as _;

use crate::proto::ingest::{
    command, Command, Label, Sample as PbSample, Series as PbSeries, ShardSnapshot, SnapshotChunk,
    SnapshotSeries, TenantSnapshot, Write,
};
use crate::state_machine::StateMachine;

/// Heads cut their chunks at multiples of this (Prometheus's block range).
pub const CHUNK_RANGE_MS: i64 = 2 * 60 * 60 * 1000;

/// One tenant's head in a shard.
pub type TenantHeads = BTreeMap<String, Arc<Head>>;

/// The heads of one shard replica, shared between the raft node that
/// applies entries to them and the readers.
#[derive(Clone, Default)]
pub struct ShardData {
    tenants: Arc<RwLock<TenantHeads>>,
}

impl ShardData {
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
            .or_insert_with(|| Arc::new(Head::new(CHUNK_RANGE_MS)))
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
}

impl ShardStateMachine {
    pub fn new(shard: u64, data: ShardData) -> Self {
        Self { shard, data }
    }

    fn apply_write(&self, write: &Write) -> Result<AppendStats, String> {
        let head = self.data.head_for(&write.tenant);
        let min_valid = head.append_min_valid();
        let mut stats = AppendStats::default();
        // Check everything first: a write is all or nothing.
        let mut plan: Vec<(Labels, Option<Arc<MemSeries>>, Vec<Sample>)> =
            Vec::with_capacity(write.series.len());
        for s in &write.series {
            let labels = labels_from_pb(&s.labels);
            let existing = head.get(&labels);
            let mut last = existing.as_ref().and_then(|m| m.last_sample());
            let mut fresh = Vec::with_capacity(s.samples.len());
            for x in &s.samples {
                match check_order(last, x.timestamp, x.value) {
                    Ok(AppendCheck::Append) => {
                        if x.timestamp < min_valid {
                            return Err(format!(
                                "out of bounds: sample at {} for series {labels} is older than {min_valid}",
                                x.timestamp
                            ));
                        }
                        fresh.push(Sample::new(x.timestamp, x.value));
                        last = Some((x.timestamp, x.value.to_bits()));
                    }
                    Ok(AppendCheck::Duplicate) => stats.duplicates_dropped += 1,
                    Err(e) => {
                        // A re-sent sample older than the newest one: a
                        // duplicate when the stored sample at its time
                        // has its value.
                        let stored = existing
                            .as_ref()
                            .and_then(|m| m.sample_bits_at(x.timestamp));
                        if stored == Some(x.value.to_bits())
                            && fresh.last().is_none_or(|f| f.t < x.timestamp)
                        {
                            stats.duplicates_dropped += 1;
                            continue;
                        }
                        return Err(format!(
                            "{e}: sample at {} for series {labels}",
                            x.timestamp
                        ));
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
        let command = Command::decode(data).map_err(|e| format!("decode command: {e}"))?;
        match command.command {
            Some(command::Command::Write(w)) => self.apply_write(&w).map(|_| ()),
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
        Ok(ShardSnapshot {
            shard: self.shard,
            tenants,
        }
        .encode_to_vec())
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), String> {
        let snapshot =
            ShardSnapshot::decode(data).map_err(|e| format!("decode shard snapshot: {e}"))?;
        let mut tenants = TenantHeads::new();
        for t in snapshot.tenants {
            let head = Arc::new(Head::new(CHUNK_RANGE_MS));
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
        self.data.replace(tenants);
        Ok(())
    }
}

/// Encodes one tenant's series (all of one shard) as a write command.
pub fn write_command(tenant: &str, series: &[(&Labels, &[Sample])]) -> Vec<u8> {
    Command {
        command: Some(command::Command::Write(Write {
            tenant: tenant.to_string(),
            series: series
                .iter()
                .map(|(labels, samples)| PbSeries {
                    labels: labels_to_pb(labels),
                    samples: samples
                        .iter()
                        .map(|s| PbSample {
                            timestamp: s.t,
                            value: s.v,
                        })
                        .collect(),
                })
                .collect(),
        })),
    }
    .encode_to_vec()
}

/// The stats of a write command once applied, recomputed by the leader for
/// its answer: the number of samples it carries.
pub fn samples_in_command(data: &[u8]) -> usize {
    match Command::decode(data) {
        Ok(Command {
            command: Some(command::Command::Write(w)),
        }) => w.series.iter().map(|s| s.samples.len()).sum(),
        _ => 0,
    }
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

fn labels_from_pb(labels: &[Label]) -> Labels {
    Labels::from_sorted(labels.iter().map(|l| (l.name.as_str(), l.value.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(tenant: &str, labels: &Labels, samples: &[(i64, f64)]) -> Vec<u8> {
        let samples: Vec<Sample> = samples.iter().map(|&(t, v)| Sample::new(t, v)).collect();
        write_command(tenant, &[(labels, &samples)])
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
        let data = ShardData::default();
        let mut sm = ShardStateMachine::new(0, data.clone());
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
        let data = ShardData::default();
        let mut sm = ShardStateMachine::new(0, data.clone());
        let a = Labels::new([("__name__", "a")]);
        let b = Labels::new([("__name__", "b")]);
        sm.apply(1, &write("t", &a, &[(2000, 2.0)])).expect("first");
        let samples_b = [Sample::new(5000, 5.0)];
        let samples_a = [Sample::new(1000, 1.0)];
        let bad = write_command("t", &[(&b, &samples_b), (&a, &samples_a)]);
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
        let data = ShardData::default();
        let mut sm = ShardStateMachine::new(0, data.clone());
        let a = Labels::new([("__name__", "a")]);
        sm.apply(1, &write("x", &a, &[(1000, 1.0)])).expect("x");
        sm.apply(2, &write("y", &a, &[(500, 7.0)])).expect("y");
        assert_eq!(stored(&data, "x", &a), vec![(1000, 1.0)]);
        assert_eq!(stored(&data, "y", &a), vec![(500, 7.0)]);
    }

    #[test]
    fn snapshot_and_restore_round_trip() {
        let data = ShardData::default();
        let mut sm = ShardStateMachine::new(3, data.clone());
        let a = Labels::new([("__name__", "a"), ("k", "v")]);
        let samples: Vec<(i64, f64)> = (0..500).map(|i| (i * 15_000, i as f64)).collect();
        sm.apply(1, &write("t", &a, &samples)).expect("write");
        let snap = sm.snapshot().expect("snapshot");

        let other = ShardData::default();
        let mut restored = ShardStateMachine::new(3, other.clone());
        restored
            .apply(1, &write("old", &a, &[(1, 1.0)]))
            .expect("old");
        restored.restore(&snap).expect("restore");
        assert_eq!(stored(&other, "t", &a), samples);
        assert_eq!(other.heads().len(), 1, "restore replaces the whole state");
        assert!(restored.restore(b"\xff\xff").is_err());
    }
}
