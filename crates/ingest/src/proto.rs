//! The raft transport's wire messages and gRPC service, generated from
//! `proto/hearth/raft.proto` by `build.rs`: `RaftEnvelope` (group, from, to
//! and a raft-rs message encoded by raft-rs's codec), `RaftBatch`, `Ack`, and
//! the `hearth.raft.Raft` client and server.

#![allow(clippy::all, missing_docs)]

include!(concat!(env!("OUT_DIR"), "/hearth.raft.rs"));

/// Shard commands, snapshots and write forwarding, generated from
/// `proto/hearth/ingest.proto`.
pub mod ingest {
    #![allow(clippy::all, missing_docs)]

    include!(concat!(env!("OUT_DIR"), "/hearth.ingest.rs"));
}
