//! `prometheus.yml` for Hearth: the typed configuration of the scraper, the
//! rule engine's alert sending and remote storage, loaded with Prometheus's
//! defaults, inheritance and validation messages, printed back the way
//! Prometheus prints it (`/api/v1/status/config`, secrets redacted), and
//! relabeling with Prometheus 3's semantics.
//!
//! ```
//! let config = hearth_config::Config::parse(
//!     "scrape_configs:\n  - job_name: node\n    static_configs: [{targets: ['h:9100']}]\n",
//! )
//! .unwrap();
//! let job = config.scrape_config("node").unwrap();
//! assert_eq!(job.scrape_interval.to_string(), "1m");
//! assert_eq!(job.scrape_timeout.to_string(), "10s");
//! ```
//!
//! Where Prometheus 2.42 (the reference binary on our machines) and 3.x
//! differ, this crate follows 3.x: UTF-8 label names, `.` matching a newline
//! in relabel regexes, `replace` leaving labels alone when the expanded
//! target name is invalid, Alertmanager API v1 rejected, remote-write queue
//! defaults, and external labels expanded from the environment.

mod config;
pub mod discovery;
pub mod duration;
pub mod error;
pub mod http;
pub mod relabel;
mod render;
pub mod size;
mod yaml;

pub use config::{
    AlertingConfig, AlertmanagerConfig, Config, ExemplarsConfig, GlobalConfig, MetadataConfig,
    NameValidationScheme, QueueConfig, RemoteReadConfig, RemoteWriteConfig, ScrapeConfig,
    ScrapeProtocol, StorageConfig, TracingConfig, TsdbConfig,
};
pub use discovery::ServiceDiscoveryConfigs;
pub use duration::Duration;
pub use error::{Error, Result};
pub use http::{HttpClientConfig, Secret};
pub use relabel::{process as relabel, Action, RelabelConfig};
pub use size::ByteSize;
