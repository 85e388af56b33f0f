//! Errors of the ingester's raft layer: I/O on the log store with the path
//! involved, corrupt log or snapshot files, codec failures, raft-rs errors,
//! and the outcomes a proposer can see (`ProposeError`).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corrupt raft log {path} at offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("{what}: {source}")]
    Codec {
        what: &'static str,
        source: protobuf::ProtobufError,
    },
    #[error("raft group {group}: {source}")]
    Raft { group: u64, source: raft::Error },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("state machine: {0}")]
    StateMachine(String),
    #[error("raft log sync task of group {group}: {reason}")]
    SyncTask { group: u64, reason: String },
    #[error("raft node has shut down")]
    Shutdown,
}

impl Error {
    /// An I/O error while doing `op` on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    /// A protobuf encode or decode error while doing `what`.
    pub fn codec(what: &'static str) -> impl FnOnce(protobuf::ProtobufError) -> Error {
        move |source| Error::Codec { what, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a proposal was not acknowledged. Only `Ok` from a proposal means the
/// entry is committed in a quorum's durable log and applied locally; every
/// error here means "not known to be committed", and the caller retries
/// (through the leader when `NotLeader` names one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// This replica is not the leader; `leader` is the one it knows of, if any.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<u64> },
    /// The entry was not committed at its index (a new leader replaced it), or
    /// raft refused it (leadership transfer, uncommitted-size limit), or its
    /// fate was hidden by a snapshot: it may or may not have been committed.
    #[error("proposal dropped")]
    Dropped,
    /// The entry committed but the state machine rejected it (deterministically,
    /// on every replica).
    #[error("proposal rejected by the state machine: {0}")]
    Rejected(String),
    /// The proposal is larger than the node accepts; it was not proposed.
    #[error("proposal of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// The node stopped before the outcome was known.
    #[error("raft node shut down")]
    Shutdown,
}
