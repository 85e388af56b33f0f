//! Hearth's protobuf messages and the remote-write request decoder.
//!
//! The messages are generated at build time from the workspace's `proto/`
//! directory (see `build.rs`; no `protoc` needed):
//!
//! * [`prometheus`]: package `prometheus`, remote write 1.0
//!   ([`prometheus::WriteRequest`]) and remote read
//!   ([`prometheus::ReadRequest`], [`prometheus::ChunkedReadResponse`], ...).
//! * [`write_v2`]: package `io.prometheus.write.v2`, remote write 2.0
//!   ([`write_v2::Request`]).
//! * [`client`]: package `io.prometheus.client`, the client data model that
//!   targets send in the protobuf exposition format
//!   ([`client::MetricFamily`]); `hearth-exposition` parses it.
//! * [`thanos`]: package `thanos`, Thanos's StoreAPI messages and the
//!   `thanos.Store` gRPC service ([`thanos::store_client::StoreClient`],
//!   [`thanos::store_server::StoreServer`]); [`thanos::info`]: package
//!   `thanos.info`, the `thanos.info.Info` service. Wire compatible with
//!   Thanos (shared/specs/storeapi.md).
//!
//! [`remote_write`] turns a receiver's request body into Hearth's model
//! (`hearth_model::Labels`, `hearth_model::Sample`) with Prometheus 3's
//! validation rules, and encodes requests for senders and tests. Each proto
//! package gets one module here (a nested package, like `thanos.info`, a
//! nested module, so that prost's `super::` paths resolve).

pub mod error;
pub mod remote_write;

pub use error::{RemoteWriteError, Result};

/// Package `prometheus`: remote write 1.0 and remote read messages.
#[allow(clippy::all, missing_docs)]
pub mod prometheus {
    include!(concat!(env!("OUT_DIR"), "/prometheus.rs"));
}

/// Package `io.prometheus.write.v2`: remote write 2.0 messages.
#[allow(clippy::all, missing_docs)]
pub mod write_v2 {
    include!(concat!(env!("OUT_DIR"), "/io.prometheus.write.v2.rs"));
}

/// Package `io.prometheus.client`: the metric families of the protobuf
/// exposition format (client_model's `metrics.proto`).
#[allow(clippy::all, missing_docs)]
pub mod client {
    include!(concat!(env!("OUT_DIR"), "/io.prometheus.client.rs"));
}

/// Package `thanos`: StoreAPI messages (labels, matchers, series, chunks) and
/// the `thanos.Store` service's client and server.
#[allow(clippy::all, missing_docs)]
pub mod thanos {
    include!(concat!(env!("OUT_DIR"), "/thanos.rs"));

    /// Package `thanos.info`: the `thanos.info.Info` service's messages,
    /// client and server.
    #[allow(clippy::all, missing_docs)]
    pub mod info {
        include!(concat!(env!("OUT_DIR"), "/thanos.info.rs"));
    }
}
