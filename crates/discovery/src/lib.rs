//! Service discovery as Prometheus's `discovery` package: each
//! `*_sd_configs` entry of a scrape job is a provider that keeps a set of
//! target groups up to date; the manager gathers the latest groups of every
//! provider per job and publishes them as [`TargetSets`].
//!
//! Every provider has `new(&config)` and `async fn run(self, updates:
//! GroupSender)`: it sends lists of groups, each replacing the previous
//! group with the same `source` (a group without targets removes it), and
//! runs until the task is dropped or the receiver goes away.

use std::collections::BTreeMap;

use hearth_model::Labels;

mod client;
pub mod consul;
pub mod dns;
pub mod error;
pub mod file;
pub mod http;
pub mod kubernetes;
pub mod manager;
pub mod static_config;
#[cfg(test)]
mod testing;
pub mod tls;

pub use error::{Error, Result};
pub use manager::Manager;

/// Prometheus's `targetgroup.Group`: targets sharing a source and common
/// labels.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TargetGroup {
    /// Identifies the group within its provider (a file name and index, a
    /// DNS name, a Kubernetes object); a group with the same source replaces
    /// the previous one.
    pub source: String,
    /// One label set per target, each holding at least `__address__`, and
    /// the provider's `__meta_*` labels.
    pub targets: Vec<Labels>,
    /// Labels common to every target of the group (a static config's
    /// `labels`, a file's group labels, provider meta labels).
    pub labels: Labels,
}

/// The latest target groups of every job: job name to the groups of all
/// its providers, in provider order.
pub type TargetSets = BTreeMap<String, Vec<TargetGroup>>;

/// Where a provider sends its updates: lists of groups, each replacing the
/// earlier group of the same source.
pub type GroupSender = tokio::sync::mpsc::UnboundedSender<Vec<TargetGroup>>;

/// The label holding a target's address.
pub const ADDRESS_LABEL: &str = "__address__";

impl TargetGroup {
    /// A group without targets: sent for a source that vanished, it removes
    /// that source's previous group.
    pub fn empty(source: impl Into<String>) -> Self {
        TargetGroup {
            source: source.into(),
            ..TargetGroup::default()
        }
    }
}

/// `strutil.SanitizeLabelName`: every character outside `[a-zA-Z0-9_]`
/// becomes `_`.
pub(crate) fn sanitize_label_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Go's `net.JoinHostPort`: IPv6 addresses (anything holding a `:`) are
/// bracketed.
pub(crate) fn join_host_port(host: &str, port: impl std::fmt::Display) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Labels from name/value pairs, leaving out the empty values (an empty
/// label is an absent one).
pub(crate) fn labels_without_empty(pairs: Vec<(String, String)>) -> Labels {
    Labels::new(pairs.into_iter().filter(|(_, v)| !v.is_empty()))
}
