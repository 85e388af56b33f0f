//! The querier against in-process stores: the proxy's selection, fan-out,
//! partial responses, merge and deduplication, and the endpoint set's
//! discovery, health checks and status.

mod query {
    pub mod endpoints;
    pub mod proxy;
    pub mod support;
}
