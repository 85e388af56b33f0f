//! The raft transport over gRPC (`hearth.raft.Raft/Send`, see
//! `proto/hearth/raft.proto`).
//!
//! Client: one bounded queue and one worker task per peer node, created on
//! the first message to it, over a lazily connected channel. `send` only
//! pushes onto the queue (dropping when it is full), so a slow or dead peer
//! never blocks a Ready loop; the worker drains the queue into batches and
//! sends one batch at a time, backing off after failures.
//!
//! Server: [`RaftService`] hands every envelope of a batch to the local
//! [`Router`], which routes by group id.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Endpoint;
use tonic::{Request, Response, Status};

use super::{Delivery, Envelope, Router, Transport};
use crate::error::{Error, Result};
use crate::proto::raft_client::RaftClient;
use crate::proto::raft_server::{Raft, RaftServer};
use crate::proto::{Ack, RaftBatch, RaftEnvelope};

/// Tuning of the gRPC transport's client side.
#[derive(Debug, Clone)]
pub struct GrpcTransportConfig {
    /// Messages queued per peer before new ones are dropped.
    pub queue_capacity: usize,
    /// Most messages sent in one batch.
    pub max_batch: usize,
    /// Largest gRPC message sent or accepted (snapshots travel in one).
    pub max_message_bytes: usize,
    pub connect_timeout: Duration,
    /// Deadline of one batch.
    pub request_timeout: Duration,
    /// First wait after a failed batch; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for GrpcTransportConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 4096,
            max_batch: 256,
            max_message_bytes: 256 << 20,
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(5),
            min_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_secs(1),
        }
    }
}

/// Sends raft messages to peers over gRPC; see the module documentation.
#[derive(Clone)]
pub struct GrpcTransport {
    inner: Arc<Mutex<Peers>>,
    config: GrpcTransportConfig,
    resolver: Option<Resolver>,
}

/// Finds the address of a node that was not set with `set_peer`.
pub type Resolver = Arc<dyn Fn(u64) -> Option<String> + Send + Sync>;

impl std::fmt::Debug for GrpcTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcTransport")
            .field("config", &self.config)
            .field("resolver", &self.resolver.is_some())
            .finish()
    }
}

#[derive(Debug, Default)]
struct Peers {
    addresses: HashMap<u64, String>,
    queues: HashMap<u64, mpsc::Sender<RaftEnvelope>>,
}

impl GrpcTransport {
    pub fn new(config: GrpcTransportConfig) -> Self {
        Self {
            inner: Arc::default(),
            config,
            resolver: None,
        }
    }

    /// Asks `resolver` for the address of nodes not set with `set_peer`
    /// (the ingester: a replica id names its ingester).
    pub fn with_resolver(mut self, resolver: Resolver) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// Sets the address (`host:port` or a URL) of node `node_id`, replacing
    /// any previous one and its connection.
    pub fn set_peer(&self, node_id: u64, address: impl Into<String>) -> Result<()> {
        let address = address.into();
        endpoint(&address, &self.config)?;
        let mut peers = self.lock();
        peers.addresses.insert(node_id, address);
        peers.queues.remove(&node_id);
        Ok(())
    }

    /// Forgets node `node_id`; its worker ends once its queue is drained.
    pub fn remove_peer(&self, node_id: u64) {
        let mut peers = self.lock();
        peers.addresses.remove(&node_id);
        peers.queues.remove(&node_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Peers> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The queue of `node_id`, starting its worker on first use. `None` when
    /// the address is unknown or no runtime is there to run the worker.
    fn queue(&self, node_id: u64) -> Option<mpsc::Sender<RaftEnvelope>> {
        let mut peers = self.lock();
        if let Some(queue) = peers.queues.get(&node_id) {
            if !queue.is_closed() {
                return Some(queue.clone());
            }
        }
        let address = match peers.addresses.get(&node_id) {
            Some(a) => a.clone(),
            None => (self.resolver.as_ref()?)(node_id)?,
        };
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (sender, receiver) = mpsc::channel(self.config.queue_capacity);
        runtime.spawn(run_peer(node_id, address, receiver, self.config.clone()));
        peers.queues.insert(node_id, sender.clone());
        Some(sender)
    }
}

impl Transport for GrpcTransport {
    fn send(&self, envelope: Envelope) {
        let to = envelope.to;
        let Some(queue) = self.queue(to) else {
            tracing::debug!(to, "no address for raft peer; dropping message");
            return;
        };
        let envelope = RaftEnvelope {
            group_id: envelope.group_id,
            from: envelope.from,
            to: envelope.to,
            message: envelope.message,
        };
        if queue.try_send(envelope).is_err() {
            tracing::debug!(to, "raft peer queue full; dropping message");
        }
    }
}

/// Sends the queued messages of one peer, a batch at a time, until the
/// transport forgets the peer.
async fn run_peer(
    node_id: u64,
    address: String,
    mut queue: mpsc::Receiver<RaftEnvelope>,
    config: GrpcTransportConfig,
) {
    let endpoint = match endpoint(&address, &config) {
        Ok(endpoint) => endpoint,
        Err(e) => {
            tracing::warn!(node_id, error = %e, "invalid raft peer address");
            return;
        }
    };
    let mut client = RaftClient::new(endpoint.connect_lazy())
        .max_encoding_message_size(config.max_message_bytes)
        .max_decoding_message_size(config.max_message_bytes);
    let mut backoff = config.min_backoff;
    while let Some(first) = queue.recv().await {
        let mut envelopes = vec![first];
        while envelopes.len() < config.max_batch {
            match queue.try_recv() {
                Ok(envelope) => envelopes.push(envelope),
                Err(_) => break,
            }
        }
        match client.send(RaftBatch { envelopes }).await {
            Ok(_) => backoff = config.min_backoff,
            Err(status) => {
                tracing::debug!(node_id, address, error = %status, "sending raft messages failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(config.max_backoff);
            }
        }
    }
}

/// The channel settings for a peer at `address` (`host:port` or a URL).
fn endpoint(address: &str, config: &GrpcTransportConfig) -> Result<Endpoint> {
    Ok(peer_endpoint(address)?
        .connect_timeout(config.connect_timeout)
        .timeout(config.request_timeout)
        .tcp_nodelay(true))
}

/// The endpoint of an ingester at `address` (`host:port` or a URL), for
/// raft messages and the ingesters' own RPCs alike.
pub fn peer_endpoint(address: &str) -> Result<Endpoint> {
    let url = if address.contains("://") {
        address.to_string()
    } else {
        format!("http://{address}")
    };
    Endpoint::from_shared(url)
        .map_err(|e| Error::InvalidArgument(format!("ingester address {address:?}: {e}")))
}

/// The server side: delivers incoming batches through a [`Router`].
#[derive(Debug, Clone)]
pub struct RaftService {
    router: Router,
}

impl RaftService {
    pub fn new(router: Router) -> Self {
        Self { router }
    }

    /// The tonic service, accepting messages up to `max_message_bytes`: to
    /// mount beside other gRPC services, or for [`serve`].
    pub fn into_server(self, max_message_bytes: usize) -> RaftServer<Self> {
        RaftServer::new(self)
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes)
    }
}

#[tonic::async_trait]
impl Raft for RaftService {
    async fn send(
        &self,
        request: Request<RaftBatch>,
    ) -> std::result::Result<Response<Ack>, Status> {
        for envelope in request.into_inner().envelopes {
            let envelope = Envelope {
                group_id: envelope.group_id,
                from: envelope.from,
                to: envelope.to,
                message: envelope.message,
            };
            let delivery = self.router.deliver(&envelope);
            if delivery != Delivery::Delivered {
                tracing::trace!(
                    group = envelope.group_id,
                    to = envelope.to,
                    ?delivery,
                    "raft message not delivered"
                );
            }
        }
        Ok(Response::new(Ack {}))
    }
}

/// Serves the raft service of `router` on `listener` until `shutdown`
/// completes.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    max_message_bytes: usize,
    shutdown: impl Future<Output = ()> + Send,
) -> std::result::Result<(), tonic::transport::Error> {
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .add_service(RaftService::new(router).into_server(max_message_bytes))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_invalid_peer_addresses() {
        let transport = GrpcTransport::new(GrpcTransportConfig::default());
        assert!(transport.set_peer(2, "127.0.0.1:9000").is_ok());
        assert!(transport.set_peer(2, "http://ingest-2:9000").is_ok());
        assert!(transport.set_peer(3, "not a uri").is_err());
    }

    #[tokio::test]
    async fn drops_messages_for_unknown_peers_without_blocking() {
        let transport = GrpcTransport::new(GrpcTransportConfig {
            queue_capacity: 1,
            ..GrpcTransportConfig::default()
        });
        let message = raft::eraftpb::Message {
            from: 1,
            to: 2,
            ..Default::default()
        };
        let envelope = Envelope::encode(1, &message).expect("encode");
        transport.send(envelope.clone());
        // A peer that never answers: its queue fills and later messages drop.
        transport.set_peer(2, "127.0.0.1:1").expect("address");
        for _ in 0..100 {
            transport.send(envelope.clone());
        }
    }
}
