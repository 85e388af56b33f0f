//! How raft replicas reach each other. A node hands every outgoing raft
//! message to a [`Transport`], which must never block the node's Ready loop:
//! it queues or drops (raft retransmits whatever is lost). On the receiving
//! side, a [`Router`] hands incoming messages to the local replica of their
//! group.
//!
//! Messages travel as [`Envelope`]s: group, sender, receiver, and the raft-rs
//! `Message` encoded by raft-rs's own codec, so the wire format does not
//! depend on raft-rs's protobuf version. Two transports: [`memory`] (one
//! process, with faults to inject, for tests) and [`grpc`].

pub mod grpc;
pub mod memory;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use protobuf::Message as _;
use raft::eraftpb::Message;
use tokio::sync::mpsc;

use crate::error::{Error, Result};

/// A raft message between two replicas of one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The raft group (the shard id).
    pub group_id: u64,
    pub from: u64,
    pub to: u64,
    /// The raft-rs `Message`, encoded by raft-rs's codec.
    pub message: Bytes,
}

impl Envelope {
    /// Wraps `message` of `group_id` for sending.
    pub fn encode(group_id: u64, message: &Message) -> Result<Self> {
        let bytes = message
            .write_to_bytes()
            .map_err(Error::codec("encode raft message"))?;
        Ok(Envelope {
            group_id,
            from: message.from,
            to: message.to,
            message: Bytes::from(bytes),
        })
    }

    /// The raft message inside, checked against the envelope's addresses.
    pub fn decode(&self) -> Result<Message> {
        let message = Message::parse_from_carllerche_bytes(&self.message)
            .map_err(Error::codec("decode raft message"))?;
        if message.from != self.from || message.to != self.to {
            return Err(Error::InvalidArgument(format!(
                "raft message {} -> {} in an envelope {} -> {}",
                message.from, message.to, self.from, self.to
            )));
        }
        Ok(message)
    }
}

/// Sends raft messages to other replicas.
pub trait Transport: Send + Sync + 'static {
    /// Queues `envelope` for replica `envelope.to`. Never blocks and never
    /// fails: when the peer is unknown, unreachable or its queue is full,
    /// the message is dropped and raft retransmits.
    fn send(&self, envelope: Envelope);
}

impl<T: Transport + ?Sized> Transport for Arc<T> {
    fn send(&self, envelope: Envelope) {
        (**self).send(envelope)
    }
}

/// What became of an incoming message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Delivered,
    /// No replica of the group runs here.
    UnknownGroup,
    /// The group's local replica has another node id.
    WrongNode,
    /// The replica's inbox is full (or it is shutting down); dropped.
    Dropped,
    /// The bytes are not a raft message.
    Malformed,
}

/// The inbox of one local replica, as registered with a [`Router`].
#[derive(Debug, Clone)]
struct Inbox {
    node_id: u64,
    sender: mpsc::Sender<Message>,
}

/// Hands incoming raft messages to the local replica of their group. One
/// per process (per ingester), shared by the server side of the transport
/// and by every node it hosts.
#[derive(Debug, Clone, Default)]
pub struct Router {
    inboxes: Arc<RwLock<HashMap<u64, Inbox>>>,
}

impl Router {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `sender` the inbox of replica `node_id` of `group_id`,
    /// replacing a previous one (a restarted replica).
    pub fn register(&self, group_id: u64, node_id: u64, sender: mpsc::Sender<Message>) {
        let mut inboxes = self.inboxes.write().unwrap_or_else(|e| e.into_inner());
        inboxes.insert(group_id, Inbox { node_id, sender });
    }

    /// Removes the inbox of `group_id` if it is still `sender` (a newer
    /// replica may have replaced it).
    pub fn unregister(&self, group_id: u64, sender: &mpsc::Sender<Message>) {
        let mut inboxes = self.inboxes.write().unwrap_or_else(|e| e.into_inner());
        if inboxes
            .get(&group_id)
            .is_some_and(|inbox| inbox.sender.same_channel(sender))
        {
            inboxes.remove(&group_id);
        }
    }

    /// Decodes `envelope` and queues it for its replica without waiting.
    pub fn deliver(&self, envelope: &Envelope) -> Delivery {
        let inbox = {
            let inboxes = self.inboxes.read().unwrap_or_else(|e| e.into_inner());
            match inboxes.get(&envelope.group_id) {
                Some(inbox) if inbox.node_id == envelope.to => inbox.clone(),
                Some(_) => return Delivery::WrongNode,
                None => return Delivery::UnknownGroup,
            }
        };
        let message = match envelope.decode() {
            Ok(message) => message,
            Err(e) => {
                tracing::debug!(group = envelope.group_id, from = envelope.from, error = %e, "dropping raft message");
                return Delivery::Malformed;
            }
        };
        match inbox.sender.try_send(message) {
            Ok(()) => Delivery::Delivered,
            Err(_) => Delivery::Dropped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::eraftpb::MessageType;

    fn heartbeat(from: u64, to: u64) -> Message {
        let mut m = Message {
            from,
            to,
            term: 3,
            ..Default::default()
        };
        m.set_msg_type(MessageType::MsgHeartbeat);
        m
    }

    #[test]
    fn envelopes_round_trip() {
        let envelope = Envelope::encode(7, &heartbeat(1, 2)).expect("encode");
        assert_eq!((envelope.group_id, envelope.from, envelope.to), (7, 1, 2));
        assert_eq!(envelope.decode().expect("decode"), heartbeat(1, 2));
        let forged = Envelope { to: 3, ..envelope };
        assert!(forged.decode().is_err());
    }

    #[test]
    fn routes_by_group_and_node() {
        let router = Router::new();
        let (tx, mut rx) = mpsc::channel(1);
        router.register(7, 2, tx.clone());
        let envelope = Envelope::encode(7, &heartbeat(1, 2)).expect("encode");
        assert_eq!(router.deliver(&envelope), Delivery::Delivered);
        assert_eq!(rx.try_recv().expect("queued"), heartbeat(1, 2));
        assert_eq!(
            router.deliver(&Envelope::encode(8, &heartbeat(1, 2)).expect("encode")),
            Delivery::UnknownGroup
        );
        assert_eq!(
            router.deliver(&Envelope::encode(7, &heartbeat(1, 3)).expect("encode")),
            Delivery::WrongNode
        );
        assert_eq!(router.deliver(&envelope), Delivery::Delivered);
        assert_eq!(router.deliver(&envelope), Delivery::Dropped, "inbox full");
        let garbage = Envelope {
            message: Bytes::from_static(b"\xff\xff"),
            ..envelope
        };
        assert_eq!(router.deliver(&garbage), Delivery::Malformed);
        router.unregister(7, &tx);
        assert_eq!(router.deliver(&garbage), Delivery::UnknownGroup);
    }
}
