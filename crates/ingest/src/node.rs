//! One replica of one raft group: a [`RaftNode`] is a task that owns raft-rs's
//! `RawNode` over a durable [`LogStore`] and drives it, alone, through the
//! Ready loop; everything else talks to it through channels.
//!
//! Inputs: ticks (its own interval), raft messages from peers (the inbox a
//! [`Router`] fills; dropped when full, raft retransmits), and commands from
//! [`NodeHandle`]s (proposals, configuration changes, snapshot and
//! leadership-transfer requests). After each wake-up the node takes whatever
//! else is queued, so that one fsync covers many proposals, then handles the
//! Ready in the order raft-rs documents (see `RaftNode::handle_ready`).
//!
//! A proposal resolves when its entry is committed (durable on a quorum)
//! and applied to the local [`StateMachine`]; it fails with `NotLeader`
//! (with a hint) on a follower, and with `Dropped` when its entry lost to
//! another leader's. Every `snapshot_interval_entries` applied entries (or
//! `snapshot_interval_bytes` of them) the node snapshots the state machine
//! and compacts its log; a replica that is too far behind, or new, receives
//! that snapshot instead. A replica that lost its directory must come back
//! under a new id (remove the old
//! one, add the new one): raft's leader would otherwise trust it to hold
//! entries it no longer has.
//!
//! On restart the node restores the stored snapshot into the state machine
//! and raft replays the committed entries after it: the log is the WAL.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use protobuf::Message as _;
use raft::eraftpb::{
    ConfChange, ConfChangeType, ConfChangeV2, ConfState, Entry, EntryType, Message, MessageType,
    Snapshot,
};
use raft::{RawNode, SnapshotStatus, StateRole, Storage};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, ProposeError, Result};
use crate::log_store::{LogStore, LogStoreOptions};
use crate::logger::raft_logger;
use crate::state_machine::StateMachine;
use crate::transport::{Envelope, Router, Transport};

/// Inputs taken in one go before a Ready is handled.
const MAX_INPUTS_PER_READY: usize = 1024;

/// How a replica runs. Timing is in ticks of `tick_interval`, as in raft.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The raft group: the shard id.
    pub group_id: u64,
    /// This replica's id within the group; not 0.
    pub node_id: u64,
    pub tick_interval: Duration,
    /// Ticks without hearing from a leader before a follower campaigns
    /// (randomized within `[election_tick, 2 * election_tick)`); also how
    /// long a leader keeps leading without hearing from a quorum.
    pub election_tick: usize,
    /// Ticks between a leader's heartbeats; below `election_tick`.
    pub heartbeat_tick: usize,
    /// The group's voters, used once to bootstrap a fresh log directory.
    /// Empty: the replica joins an existing group and waits for the leader
    /// to send it a snapshot (a new or replaced replica).
    pub initial_voters: Vec<u64>,
    /// A snapshot is taken once this many entries were applied since the
    /// last one.
    pub snapshot_interval_entries: u64,
    /// A snapshot is also taken once the entries applied since the last one
    /// hold this many bytes (the log store keeps live entries in memory).
    pub snapshot_interval_bytes: u64,
    /// Entries kept in the log behind a snapshot, so that a replica lagging
    /// by less catches up from the log rather than a whole snapshot.
    pub retained_log_entries: u64,
    /// Largest append message (bytes of entries); raft sends at least one
    /// entry per message.
    pub max_size_per_msg: u64,
    /// Append messages in flight to one follower.
    pub max_inflight_msgs: usize,
    /// Largest proposal accepted; bigger ones fail with `TooLarge` before
    /// they reach the log (the log store refuses records over 1 GiB).
    pub max_proposal_bytes: usize,
    /// Raft messages queued for the node before new ones are dropped.
    pub inbox_capacity: usize,
    /// Commands queued before proposers wait.
    pub command_capacity: usize,
    pub log_store: LogStoreOptions,
}

impl NodeConfig {
    /// Defaults for replica `node_id` of group `group_id`: 100 ms ticks,
    /// elections after 1-2 s, heartbeats every 200 ms.
    pub fn new(group_id: u64, node_id: u64) -> Self {
        Self {
            group_id,
            node_id,
            tick_interval: Duration::from_millis(100),
            election_tick: 10,
            heartbeat_tick: 2,
            initial_voters: Vec::new(),
            snapshot_interval_entries: 10_000,
            snapshot_interval_bytes: 64 << 20,
            retained_log_entries: 1_000,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            max_proposal_bytes: 64 << 20,
            inbox_capacity: 4096,
            command_capacity: 1024,
            log_store: LogStoreOptions::default(),
        }
    }

    fn validate(&self) -> Result<()> {
        let invalid = |reason: &str| {
            Err(Error::InvalidArgument(format!(
                "raft node {} of group {}: {reason}",
                self.node_id, self.group_id
            )))
        };
        if self.node_id == 0 {
            return invalid("node id 0 is reserved");
        }
        if self.tick_interval.is_zero() {
            return invalid("tick interval must be positive");
        }
        if self.heartbeat_tick == 0 || self.election_tick <= self.heartbeat_tick {
            return invalid("need 0 < heartbeat_tick < election_tick");
        }
        if self.snapshot_interval_entries == 0 {
            return invalid("snapshot interval must be positive");
        }
        if self.max_proposal_bytes >= (1 << 30) {
            return invalid("max proposal size must stay below 1 GiB");
        }
        if self.inbox_capacity == 0 || self.command_capacity == 0 {
            return invalid("queue capacities must be positive");
        }
        Ok(())
    }

    fn raft_config(&self, applied: u64) -> raft::Config {
        raft::Config {
            id: self.node_id,
            election_tick: self.election_tick,
            heartbeat_tick: self.heartbeat_tick,
            applied,
            max_size_per_msg: self.max_size_per_msg,
            max_inflight_msgs: self.max_inflight_msgs,
            // A leader cut off from a quorum steps down, so a minority never
            // keeps a leader that accepts (and never acknowledges) proposals.
            check_quorum: true,
            // A replica rejoining after a partition does not force an election.
            pre_vote: true,
            ..raft::Config::default()
        }
    }
}

/// A replica's role in its group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Role {
    #[default]
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

impl From<StateRole> for Role {
    fn from(role: StateRole) -> Self {
        match role {
            StateRole::Follower => Role::Follower,
            StateRole::PreCandidate => Role::PreCandidate,
            StateRole::Candidate => Role::Candidate,
            StateRole::Leader => Role::Leader,
        }
    }
}

/// A replica's state as last published by its task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeStatus {
    pub group_id: u64,
    pub node_id: u64,
    pub role: Role,
    /// The leader this replica follows (itself when leading), if known.
    pub leader_id: Option<u64>,
    pub term: u64,
    pub commit: u64,
    pub applied: u64,
    pub first_index: u64,
    pub last_index: u64,
    pub snapshot_index: u64,
    /// Voters of the configuration in force.
    pub voters: Vec<u64>,
    /// Per replica, the highest index known to be in its log; only filled
    /// on the leader.
    pub match_index: BTreeMap<u64, u64>,
}

/// What a proposal resolves to: the entry's log index.
type ProposeReply = oneshot::Sender<std::result::Result<u64, ProposeError>>;

/// A request to the node's task.
#[derive(Debug)]
enum Command {
    Propose {
        data: Vec<u8>,
        reply: ProposeReply,
    },
    ConfChange {
        change: ConfChangeV2,
        reply: ProposeReply,
    },
    Snapshot {
        reply: oneshot::Sender<Result<u64>>,
    },
    TransferLeader {
        to: u64,
    },
}

/// What kind of entry a pending proposal put in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProposalKind {
    Normal,
    ConfChange,
}

/// A proposal waiting for its entry to be applied.
#[derive(Debug)]
struct Pending {
    term: u64,
    kind: ProposalKind,
    reply: ProposeReply,
}

/// The cloneable way to talk to a running [`RaftNode`].
#[derive(Debug, Clone)]
pub struct NodeHandle {
    commands: mpsc::Sender<Command>,
    status: watch::Receiver<NodeStatus>,
}

impl NodeHandle {
    /// Proposes `data`; resolves with the entry's index once it is committed
    /// and applied here.
    pub async fn propose(&self, data: impl Into<Vec<u8>>) -> Result<u64, ProposeError> {
        let (reply, outcome) = oneshot::channel();
        let data = data.into();
        self.send(Command::Propose { data, reply }).await?;
        outcome.await.map_err(|_| ProposeError::Shutdown)?
    }

    /// Proposes a configuration change; resolves once it is applied here.
    /// A change that enters a joint configuration with `auto_leave` off must
    /// be followed by an empty one to leave it.
    pub async fn propose_conf_change(&self, change: ConfChangeV2) -> Result<u64, ProposeError> {
        let (reply, outcome) = oneshot::channel();
        self.send(Command::ConfChange { change, reply }).await?;
        outcome.await.map_err(|_| ProposeError::Shutdown)?
    }

    /// Adds replica `node_id` as a voter (through the leader, this replica).
    pub async fn add_voter(&self, node_id: u64) -> Result<u64, ProposeError> {
        self.propose_conf_change(single_change(node_id, ConfChangeType::AddNode))
            .await
    }

    /// Adds replica `node_id` as a learner: it receives the log but does not
    /// vote, e.g. while it catches up before it is promoted.
    pub async fn add_learner(&self, node_id: u64) -> Result<u64, ProposeError> {
        self.propose_conf_change(single_change(node_id, ConfChangeType::AddLearnerNode))
            .await
    }

    /// Removes replica `node_id` from the group.
    pub async fn remove_node(&self, node_id: u64) -> Result<u64, ProposeError> {
        self.propose_conf_change(single_change(node_id, ConfChangeType::RemoveNode))
            .await
    }

    /// Snapshots the state machine now and compacts the log; returns the
    /// snapshot's index.
    pub async fn snapshot(&self) -> Result<u64> {
        let (reply, outcome) = oneshot::channel();
        self.commands
            .send(Command::Snapshot { reply })
            .await
            .map_err(|_| Error::Shutdown)?;
        outcome.await.map_err(|_| Error::Shutdown)?
    }

    /// Asks the leader (this replica) to hand leadership to `to`, e.g.
    /// before a planned restart. No-op on a follower.
    pub async fn transfer_leader(&self, to: u64) -> Result<()> {
        self.commands
            .send(Command::TransferLeader { to })
            .await
            .map_err(|_| Error::Shutdown)
    }

    /// The role and the leader of the last published status, without
    /// copying the rest (the write path asks on every shard part).
    pub fn leadership(&self) -> (Role, Option<u64>) {
        let status = self.status.borrow();
        (status.role, status.leader_id)
    }

    /// The last published status; never waits for the node.
    pub fn status(&self) -> NodeStatus {
        self.status.borrow().clone()
    }

    /// A receiver that sees every status change.
    pub fn watch_status(&self) -> watch::Receiver<NodeStatus> {
        self.status.clone()
    }

    async fn send(&self, command: Command) -> Result<(), ProposeError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| ProposeError::Shutdown)
    }
}

/// A configuration change of one replica.
fn single_change(node_id: u64, change_type: ConfChangeType) -> ConfChangeV2 {
    let mut change = ConfChangeV2::default();
    change.set_changes(
        vec![raft::prelude::ConfChangeSingle {
            node_id,
            change_type,
            ..Default::default()
        }]
        .into(),
    );
    change
}

/// One replica; see the module documentation. Create with
/// [`RaftNode::open`], then drive with [`RaftNode::run`] on its own task.
pub struct RaftNode<S: StateMachine> {
    config: NodeConfig,
    raw: RawNode<LogStore>,
    state_machine: S,
    transport: Arc<dyn Transport>,
    router: Router,
    inbox_sender: mpsc::Sender<Message>,
    inbox: mpsc::Receiver<Message>,
    commands: mpsc::Receiver<Command>,
    commands_open: bool,
    /// Proposals by log index.
    pending: BTreeMap<u64, Pending>,
    /// The leader term in which a heartbeat past the local log was last
    /// reported, so it is logged once per term rather than per heartbeat.
    lost_log_reported_term: u64,
    /// Followers a snapshot was handed to the transport for, to report to
    /// raft once the Ready is done.
    snapshots_sent: Vec<u64>,
    /// Bytes of entries applied since the last snapshot.
    applied_bytes_since_snapshot: u64,
    status: watch::Sender<NodeStatus>,
}

impl<S: StateMachine> RaftNode<S> {
    /// Opens the replica's log in `dir` (bootstrapping it with
    /// `initial_voters` when fresh), restores the state machine from the
    /// stored snapshot, and registers the replica's inbox with `router`.
    pub fn open(
        config: NodeConfig,
        dir: impl Into<PathBuf>,
        mut state_machine: S,
        transport: Arc<dyn Transport>,
        router: Router,
    ) -> Result<(Self, NodeHandle)> {
        config.validate()?;
        let group = config.group_id;
        let mut store = LogStore::open(dir, config.log_store.clone())?;
        if store.is_fresh() && !config.initial_voters.is_empty() {
            store.initialize(ConfState::from((
                config.initial_voters.clone(),
                Vec::<u64>::new(),
            )))?;
        }
        if !store.snapshot_ref().is_empty() {
            state_machine
                .restore(&store.snapshot_ref().data)
                .map_err(Error::StateMachine)?;
        }
        // The state machine is at the snapshot; raft replays from there.
        let applied = store.snapshot_index();
        let raft_config = config.raft_config(applied);
        let raw = RawNode::new(&raft_config, store, &raft_logger(group, config.node_id))
            .map_err(|source| Error::Raft { group, source })?;

        let (inbox_sender, inbox) = mpsc::channel(config.inbox_capacity);
        let (command_sender, commands) = mpsc::channel(config.command_capacity);
        let (status, status_receiver) = watch::channel(NodeStatus::default());
        router.register(group, config.node_id, inbox_sender.clone());
        let mut node = RaftNode {
            config,
            raw,
            state_machine,
            transport,
            router,
            inbox_sender,
            inbox,
            commands,
            commands_open: true,
            pending: BTreeMap::new(),
            lost_log_reported_term: 0,
            snapshots_sent: Vec::new(),
            applied_bytes_since_snapshot: 0,
            status,
        };
        node.publish_status();
        let handle = NodeHandle {
            commands: command_sender,
            status: status_receiver,
        };
        Ok((node, handle))
    }

    /// Drives the replica until `shutdown` is cancelled or its log fails.
    /// Pending proposals then fail with `Shutdown`; nothing acknowledged is
    /// lost, since acknowledgements follow the fsync.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<()> {
        let mut ticker = tokio::time::interval(self.config.tick_interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let result = loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break Ok(()),
                _ = ticker.tick() => self.tick(),
                Some(message) = self.inbox.recv() => self.step(message),
                command = self.commands.recv(), if self.commands_open => match command {
                    Some(command) => self.handle_command(command),
                    None => self.commands_open = false,
                },
            }
            if let Err(e) = self.process().await {
                break Err(e);
            }
        };
        if let Err(e) = &result {
            tracing::error!(group = self.config.group_id, node = self.config.node_id, error = %e, "raft node stopped");
        }
        self.router
            .unregister(self.config.group_id, &self.inbox_sender);
        result
    }

    /// Takes the queued inputs, handles the Ready, then does the work that
    /// must wait until raft is advanced (snapshot reports and snapshots).
    async fn process(&mut self) -> Result<()> {
        self.take_queued_inputs();
        self.handle_ready().await?;
        // The transports cannot tell whether a follower installed a
        // snapshot; reporting it sent moves the leader to probing the
        // follower, which resends the snapshot if it was lost.
        for to in std::mem::take(&mut self.snapshots_sent) {
            self.raw.report_snapshot(to, SnapshotStatus::Finish);
        }
        self.maybe_snapshot();
        self.publish_status();
        Ok(())
    }

    fn tick(&mut self) {
        self.raw.tick();
        // Proposers that gave up (timed out) no longer need an answer.
        self.pending.retain(|_, p| !p.reply.is_closed());
    }

    fn step(&mut self, message: Message) {
        // raft-rs panics on a heartbeat that commits past the local log. A
        // leader sends one when it believes this replica holds entries it
        // does not: its directory was wiped and it restarted under the same
        // id. Such a replica must rejoin under a new id (remove it, add a
        // new one, which catches up from a snapshot); until then it ignores
        // the leader rather than crash.
        if message.get_msg_type() == MessageType::MsgHeartbeat
            && message.commit > self.raw.raft.raft_log.last_index()
        {
            if std::mem::replace(&mut self.lost_log_reported_term, message.term) == message.term {
                return;
            }
            tracing::error!(
                group = self.config.group_id,
                node = self.config.node_id,
                leader = message.from,
                commit = message.commit,
                last_index = self.raw.raft.raft_log.last_index(),
                "the leader believes this replica holds entries it lost; it must rejoin under a new id"
            );
            return;
        }
        if let Err(e) = self.raw.step(message) {
            tracing::debug!(group = self.config.group_id, node = self.config.node_id, error = %e, "raft refused a message");
        }
    }

    fn take_queued_inputs(&mut self) {
        for _ in 0..MAX_INPUTS_PER_READY {
            if let Ok(message) = self.inbox.try_recv() {
                self.step(message);
            } else if let Ok(command) = self.commands.try_recv() {
                self.handle_command(command);
            } else {
                break;
            }
        }
    }

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::Propose { data, reply } if data.len() > self.config.max_proposal_bytes => {
                let _ = reply.send(Err(ProposeError::TooLarge {
                    size: data.len(),
                    limit: self.config.max_proposal_bytes,
                }));
            }
            Command::Propose { data, reply } => self.propose(ProposalKind::Normal, reply, |raw| {
                raw.propose(Vec::new(), data)
            }),
            Command::ConfChange { change, reply } => {
                self.propose(ProposalKind::ConfChange, reply, |raw| {
                    raw.propose_conf_change(Vec::new(), change)
                })
            }
            Command::Snapshot { reply } => {
                let outcome = self.take_snapshot();
                let _ = reply.send(outcome);
            }
            Command::TransferLeader { to } => self.raw.transfer_leader(to),
        }
    }

    /// Appends a proposal to the leader's log and remembers who waits for it.
    fn propose(
        &mut self,
        kind: ProposalKind,
        reply: ProposeReply,
        append: impl FnOnce(&mut RawNode<LogStore>) -> raft::Result<()>,
    ) {
        if self.raw.raft.state != StateRole::Leader {
            let leader = Some(self.raw.raft.leader_id).filter(|id| *id != raft::INVALID_ID);
            let _ = reply.send(Err(ProposeError::NotLeader { leader }));
            return;
        }
        let last_before = self.raw.raft.raft_log.last_index();
        match append(&mut self.raw) {
            Ok(()) if self.raw.raft.raft_log.last_index() > last_before => {
                let index = self.raw.raft.raft_log.last_index();
                let term = self.raw.raft.term;
                self.pending.insert(index, Pending { term, kind, reply });
            }
            Ok(()) => {
                let _ = reply.send(Err(ProposeError::Dropped));
            }
            Err(e) => {
                tracing::debug!(group = self.config.group_id, error = %e, "raft dropped a proposal");
                let _ = reply.send(Err(ProposeError::Dropped));
            }
        }
    }

    /// Handles one raft Ready in the order of raft-rs's documentation
    /// ("Processing the Ready State" in the crate docs, and
    /// `examples/single_mem_node`), persisting before anything that depends
    /// on it:
    /// 1. send `messages` (only a leader has them: it replicates while it
    ///    writes its own log, raft thesis 10.2.1);
    /// 2. apply a snapshot from the leader (to the log, durably, then to the
    ///    state machine);
    /// 3. append `entries` and 4. record the hard state, then 5. fsync when
    ///    raft says it must (new entries, vote or term);
    /// 6. send `persisted_messages` (votes and append acknowledgements, which
    ///    promise durability);
    /// 7. apply `committed_entries` (raft-rs 0.7 only hands out persisted
    ///    ones; applying after the fsync keeps the order simple);
    /// 8. `advance`, then handle the light ready: record the commit index,
    ///    send its messages, apply its committed entries, `advance_apply`.
    async fn handle_ready(&mut self) -> Result<()> {
        if !self.raw.has_ready() {
            return Ok(());
        }
        let mut ready = self.raw.ready();
        if let Some(soft_state) = ready.ss() {
            self.log_role_change(soft_state.leader_id, soft_state.raft_state);
        }
        self.send_messages(ready.take_messages());
        if !ready.snapshot().is_empty() {
            self.apply_snapshot(ready.snapshot().clone())?;
        }
        self.raw.mut_store().append(ready.entries())?;
        if let Some(hard_state) = ready.hs() {
            self.raw.mut_store().set_hard_state(hard_state.clone())?;
        }
        if ready.must_sync() {
            self.sync().await?;
        }
        self.send_messages(ready.take_persisted_messages());
        self.apply_entries(ready.take_committed_entries());

        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().set_commit(commit)?;
        }
        self.send_messages(light.take_messages());
        self.apply_entries(light.take_committed_entries());
        self.raw.advance_apply();
        Ok(())
    }

    /// fsyncs the log on a blocking thread; the loop waits, so nothing that
    /// depends on durability happens before.
    async fn sync(&mut self) -> Result<()> {
        let job = self.raw.mut_store().prepare_sync()?;
        tokio::task::spawn_blocking(move || job.run())
            .await
            .map_err(|e| Error::SyncTask {
                group: self.config.group_id,
                reason: e.to_string(),
            })?
    }

    fn send_messages(&mut self, messages: Vec<Message>) {
        for message in messages {
            if message.get_msg_type() == MessageType::MsgSnapshot {
                self.snapshots_sent.push(message.to);
            }
            match Envelope::encode(self.config.group_id, &message) {
                Ok(envelope) => self.transport.send(envelope),
                Err(e) => {
                    tracing::warn!(group = self.config.group_id, error = %e, "cannot encode raft message")
                }
            }
        }
    }

    /// Installs the leader's snapshot: durably in the log, then in the state
    /// machine. Proposals it covers can no longer be told apart.
    fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<()> {
        let index = snapshot.get_metadata().index;
        tracing::info!(
            group = self.config.group_id,
            node = self.config.node_id,
            index,
            "installing snapshot from the leader"
        );
        self.raw.mut_store().apply_snapshot(snapshot.clone())?;
        self.state_machine
            .restore(&snapshot.data)
            .map_err(Error::StateMachine)?;
        let covered: Vec<u64> = self.pending.range(..=index).map(|(i, _)| *i).collect();
        for i in covered {
            if let Some(pending) = self.pending.remove(&i) {
                let _ = pending.reply.send(Err(ProposeError::Dropped));
            }
        }
        Ok(())
    }

    /// Applies committed entries in order: normal ones to the state machine,
    /// configuration changes to raft, and answers their proposers.
    fn apply_entries(&mut self, entries: Vec<Entry>) {
        for entry in entries {
            self.applied_bytes_since_snapshot += entry.data.len() as u64;
            let (kind, outcome) = match entry.get_entry_type() {
                EntryType::EntryNormal if entry.data.is_empty() => {
                    // A new leader's empty entry, or a refused conf change.
                    (ProposalKind::Normal, Ok(()))
                }
                EntryType::EntryNormal => (
                    ProposalKind::Normal,
                    self.state_machine.apply(entry.index, &entry.data),
                ),
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                    (ProposalKind::ConfChange, self.apply_conf_change(&entry))
                }
            };
            self.resolve(&entry, kind, outcome);
        }
    }

    /// Applies a committed configuration change; an invalid one is refused
    /// the same way on every replica.
    fn apply_conf_change(&mut self, entry: &Entry) -> std::result::Result<(), String> {
        let applied = if entry.get_entry_type() == EntryType::EntryConfChange {
            let change = ConfChange::parse_from_bytes(&entry.data)
                .map_err(|e| format!("decode conf change: {e}"))?;
            self.raw.apply_conf_change(&change)
        } else {
            let change = ConfChangeV2::parse_from_bytes(&entry.data)
                .map_err(|e| format!("decode conf change: {e}"))?;
            self.raw.apply_conf_change(&change)
        };
        match applied {
            Ok(conf_state) => {
                tracing::info!(group = self.config.group_id, node = self.config.node_id, index = entry.index, voters = ?conf_state.voters, learners = ?conf_state.learners, "applied configuration change");
                Ok(())
            }
            Err(e) => Err(format!("configuration change refused: {e}")),
        }
    }

    /// Answers the proposer of the entry at `entry.index`, if any: success
    /// only if the applied entry is the one it proposed (same term, same
    /// kind; raft turns a refused conf change into an empty normal entry).
    fn resolve(
        &mut self,
        entry: &Entry,
        kind: ProposalKind,
        outcome: std::result::Result<(), String>,
    ) {
        let Some(pending) = self.pending.remove(&entry.index) else {
            return;
        };
        let reply = if pending.term != entry.term || pending.kind != kind {
            Err(ProposeError::Dropped)
        } else {
            outcome
                .map(|()| entry.index)
                .map_err(ProposeError::Rejected)
        };
        let _ = pending.reply.send(reply);
    }

    /// Takes a snapshot when enough entries were applied since the last one
    /// (or raft wants a newer one for a follower); a failure is logged and
    /// retried later, since only compaction waits for it.
    fn maybe_snapshot(&mut self) {
        let applied = self.raw.raft.raft_log.applied;
        let since = applied.saturating_sub(self.raw.store().snapshot_index());
        let wanted = self.raw.store().take_snapshot_wanted();
        let enough = since >= self.config.snapshot_interval_entries
            || self.applied_bytes_since_snapshot >= self.config.snapshot_interval_bytes;
        if since == 0 || !(wanted || enough) {
            return;
        }
        if let Err(e) = self.take_snapshot() {
            tracing::warn!(group = self.config.group_id, node = self.config.node_id, error = %e, "taking a raft snapshot failed");
        }
    }

    /// Snapshots the state machine at the applied index and compacts the log
    /// behind it, keeping `retained_log_entries`.
    fn take_snapshot(&mut self) -> Result<u64> {
        self.applied_bytes_since_snapshot = 0;
        let group = self.config.group_id;
        let applied = self.raw.raft.raft_log.applied;
        if applied <= self.raw.store().snapshot_index() {
            return Ok(self.raw.store().snapshot_index());
        }
        let data = self.state_machine.snapshot().map_err(Error::StateMachine)?;
        let term = self
            .raw
            .store()
            .term(applied)
            .map_err(|source| Error::Raft { group, source })?;
        let mut snapshot = Snapshot {
            data: data.into(),
            ..Default::default()
        };
        let meta = snapshot.mut_metadata();
        meta.index = applied;
        meta.term = term;
        meta.set_conf_state(self.raw.raft.prs().conf().to_conf_state());
        self.raw.mut_store().save_snapshot(snapshot)?;
        let compact_to = (applied + 1).saturating_sub(self.config.retained_log_entries);
        self.raw.mut_store().compact(compact_to)?;
        tracing::debug!(
            group,
            node = self.config.node_id,
            index = applied,
            "took raft snapshot"
        );
        Ok(applied)
    }

    fn log_role_change(&self, leader_id: u64, role: StateRole) {
        tracing::info!(
            group = self.config.group_id,
            node = self.config.node_id,
            term = self.raw.raft.term,
            role = ?role,
            leader = leader_id,
            "raft role changed"
        );
    }

    fn publish_status(&mut self) {
        let raft = &self.raw.raft;
        let role = Role::from(raft.state);
        let match_index = if role == Role::Leader {
            raft.prs()
                .iter()
                .map(|(id, progress)| (*id, progress.matched))
                .collect()
        } else {
            BTreeMap::new()
        };
        let mut voters: Vec<u64> = raft.prs().conf().voters().ids().iter().collect();
        voters.sort_unstable();
        let store = self.raw.store();
        let status = NodeStatus {
            group_id: self.config.group_id,
            node_id: self.config.node_id,
            role,
            leader_id: Some(raft.leader_id).filter(|id| *id != raft::INVALID_ID),
            term: raft.term,
            commit: raft.raft_log.committed,
            applied: raft.raft_log.applied,
            first_index: store.first_index().unwrap_or_default(),
            last_index: raft.raft_log.last_index(),
            snapshot_index: store.snapshot_index(),
            voters,
            match_index,
        };
        self.status.send_if_modified(|current| {
            if *current == status {
                return false;
            }
            *current = status;
            true
        });
    }
}
