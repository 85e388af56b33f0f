//! Hearth's scraper, as Prometheus 3 scrapes: target groups from service
//! discovery become targets ([`target`], Prometheus's `PopulateLabels`), each
//! target gets its own scrape loop that fetches its metrics ([`http`]),
//! turns them into samples ([`process`]: `honor_labels`, metric relabeling,
//! limits, duplicates) and appends them to the TSDB with the report series
//! (`up`, `scrape_*`) and staleness markers, and the [`ScrapeManager`] runs
//! one pool of loops per job, follows configuration reloads and discovery
//! updates, and answers the targets and metadata APIs.
//!
//! The specifications are `shared/specs/exposition-format.md` §4–5 and
//! `shared/specs/prometheus-config.md` §5 and §7.

mod cache;
pub mod error;
pub mod http;
pub mod manager;
pub mod process;
mod scrape_loop;
pub mod target;

pub use error::{Error, Result};
pub use manager::{
    ActiveTarget, DroppedTarget, ScrapeManager, ScrapeOptions, TargetMetadata, TargetsSnapshot,
};
pub use process::MetricMetadata;
pub use scrape_loop::TargetHealth;
pub use target::{populate_labels, targets_from_groups, Populated, Target};
