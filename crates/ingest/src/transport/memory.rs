//! An in-process network for tests, in the spirit of raft-rs's and TiKV's
//! simulated transports: every replica (node id) gets a [`Router`] and a
//! [`MemTransport`], and messages between them can be dropped (an isolated
//! node), cut by partitions, or delayed. Messages are encoded and decoded
//! like on the wire, so the codec is exercised too.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Envelope, Router, Transport};

/// The shared network: routers per node id, and the faults in force.
#[derive(Debug, Clone, Default)]
pub struct MemNetwork {
    inner: Arc<Mutex<NetworkState>>,
}

#[derive(Debug, Default)]
struct NetworkState {
    routers: HashMap<u64, Router>,
    /// Nodes that neither send nor receive.
    isolated: HashSet<u64>,
    /// When set, only nodes in the same set talk to each other.
    partition: Option<Vec<HashSet<u64>>>,
    delay: Duration,
    dropped: u64,
}

impl NetworkState {
    fn blocked(&self, from: u64, to: u64) -> bool {
        if self.isolated.contains(&from) || self.isolated.contains(&to) {
            return true;
        }
        match &self.partition {
            Some(sets) => !sets.iter().any(|s| s.contains(&from) && s.contains(&to)),
            None => false,
        }
    }
}

impl MemNetwork {
    pub fn new() -> Self {
        Self::default()
    }

    /// The router of node `node_id` (created on first use): where its
    /// replicas register and where messages to it are delivered.
    pub fn router(&self, node_id: u64) -> Router {
        self.lock().routers.entry(node_id).or_default().clone()
    }

    /// A transport sending on behalf of node `node_id`.
    pub fn transport(&self, node_id: u64) -> MemTransport {
        MemTransport {
            network: self.clone(),
            node_id,
        }
    }

    /// Cuts `node_id` off: everything to or from it is dropped.
    pub fn isolate(&self, node_id: u64) {
        self.lock().isolated.insert(node_id);
    }

    /// Only nodes within the same set can talk; nodes in no set talk to no one.
    pub fn partition(&self, sets: &[&[u64]]) {
        self.lock().partition = Some(sets.iter().map(|s| s.iter().copied().collect()).collect());
    }

    /// Delays every message by `delay`.
    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// Removes every fault: isolation, partitions, delay.
    pub fn heal(&self) {
        let mut state = self.lock();
        state.isolated.clear();
        state.partition = None;
        state.delay = Duration::ZERO;
    }

    /// How many messages the faults dropped so far.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NetworkState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Sends on behalf of one node of a [`MemNetwork`].
#[derive(Debug, Clone)]
pub struct MemTransport {
    network: MemNetwork,
    node_id: u64,
}

impl Transport for MemTransport {
    fn send(&self, envelope: Envelope) {
        let (router, delay) = {
            let mut state = self.network.lock();
            if state.blocked(self.node_id, envelope.to) {
                state.dropped += 1;
                return;
            }
            let Some(router) = state.routers.get(&envelope.to).cloned() else {
                state.dropped += 1;
                return;
            };
            (router, state.delay)
        };
        if delay.is_zero() {
            router.deliver(&envelope);
        } else if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                tokio::time::sleep(delay).await;
                router.deliver(&envelope);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::Delivery;
    use raft::eraftpb::Message;
    use tokio::sync::mpsc;

    fn envelope(from: u64, to: u64) -> Envelope {
        let m = Message {
            from,
            to,
            ..Default::default()
        };
        Envelope::encode(1, &m).expect("encode")
    }

    #[test]
    fn faults_drop_messages() {
        let network = MemNetwork::new();
        let (tx, mut rx) = mpsc::channel(16);
        network.router(2).register(1, 2, tx);
        let from1 = network.transport(1);
        let from3 = network.transport(3);

        from1.send(envelope(1, 2));
        assert!(rx.try_recv().is_ok());

        network.isolate(2);
        from1.send(envelope(1, 2));
        assert!(rx.try_recv().is_err());

        network.heal();
        network.partition(&[&[1], &[2, 3]]);
        from1.send(envelope(1, 2));
        assert!(rx.try_recv().is_err());
        from3.send(envelope(3, 2));
        assert!(rx.try_recv().is_ok());
        assert_eq!(network.dropped(), 2);

        network.heal();
        assert_eq!(
            network.router(2).deliver(&envelope(1, 2)),
            Delivery::Delivered
        );
    }

    #[tokio::test]
    async fn delays_messages() {
        let network = MemNetwork::new();
        let (tx, mut rx) = mpsc::channel(16);
        network.router(2).register(1, 2, tx);
        network.set_delay(Duration::from_millis(50));
        let started = tokio::time::Instant::now();
        network.transport(1).send(envelope(1, 2));
        assert!(rx.try_recv().is_err());
        rx.recv().await.expect("delivered later");
        assert!(started.elapsed() >= Duration::from_millis(50));
    }
}
