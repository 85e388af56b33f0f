//! Hearth's ingester: each shard is a raft group (raft-rs) whose durable
//! raft log is the WAL, so a write is acknowledged only once a quorum of
//! replicas has it on disk.
//!
//! This crate is built bottom up:
//! - [`log_store`]: the durable raft log of one replica (segments with a CRC
//!   per record, hard state, snapshot, compaction).
//! - [`node`]: one task per replica that owns raft-rs's `RawNode` and drives
//!   its Ready loop, applying committed entries to a [`StateMachine`].
//! - [`transport`]: how replicas reach each other: a trait, an in-memory
//!   network with fault injection for tests, and gRPC.
//! - [`shard`]: what a shard's replicas apply: one TSDB head per tenant.
//! - [`ingester`]: the shards placed on one ingester, the write path
//!   (split by shard, propose on or forward to each shard's leader) and
//!   reads over the local heads.

pub mod error;
pub mod ingester;
pub mod log_store;
mod logger;
pub mod node;
pub mod proto;
pub mod shard;
pub mod state_machine;
pub mod transport;
pub mod wire;

/// raft-rs, whose message and configuration types appear in this crate's API.
pub use raft;

pub use error::{Error, ProposeError, Result};
pub use ingester::{Ingester, IngesterConfig, WriteError};
pub use log_store::{LogStore, LogStoreOptions};
pub use node::{NodeConfig, NodeHandle, NodeStatus, RaftNode, Role};
pub use state_machine::StateMachine;
pub use transport::{Envelope, Router, Transport};
