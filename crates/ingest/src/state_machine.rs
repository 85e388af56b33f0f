//! What a raft group replicates into: the `StateMachine` every replica
//! applies committed entries to, in log order. For the ingester it will be
//! a shard's TSDB head; tests use simple ones.

/// A deterministic state machine fed by a raft node.
///
/// Every replica applies the same entries in the same order and must end in
/// the same state, so `apply` may fail only deterministically (the same
/// entry fails everywhere, e.g. malformed input): such a failure is reported
/// to the proposer and the entry counts as applied. A state machine that
/// cannot go on (disk full, a bug) should panic or stop the process rather
/// than return an error, since skipping an entry on one replica would make
/// replicas diverge.
pub trait StateMachine: Send + 'static {
    /// Applies the committed entry at log `index`.
    fn apply(&mut self, index: u64, data: &[u8]) -> Result<(), String>;

    /// Serializes the state after the last applied entry; raft ships it to
    /// replicas that are too far behind, and the local log is compacted up
    /// to it.
    fn snapshot(&mut self) -> Result<Vec<u8>, String>;

    /// Replaces the whole state with a snapshot's (on restart, and when the
    /// leader sends a snapshot).
    fn restore(&mut self, data: &[u8]) -> Result<(), String>;
}
