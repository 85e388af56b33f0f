//! The scraper of `standalone` and `scrape`: prometheus.yml (or the default
//! that scrapes this process), service discovery feeding the scrape
//! manager, reloads (SIGHUP, `POST /-/reload`), and the targets API's view
//! of it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use hearth_api::status::StatusInfo;
use hearth_api::targets::{self, Health, TargetsSource};
use hearth_config::Config;
use hearth_scrape::{ScrapeManager, ScrapeOptions, TargetHealth};
use hearth_tsdb::db::Db;
use parking_lot::Mutex;

/// The configuration used without `--config.file`: scrape this process.
pub fn default_config(listen: SocketAddr) -> String {
    let port = listen.port();
    format!(
        "# Hearth's default configuration: scrape this server itself.\n\
         global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\n\
         scrape_configs:\n  - job_name: hearth\n    static_configs:\n      - targets: [\"localhost:{port}\"]\n"
    )
}

/// Discovery and scraping under one (reloadable) configuration.
pub struct Scraping {
    config_file: Option<PathBuf>,
    listen: SocketAddr,
    discovery: hearth_discovery::Manager,
    scrape: Arc<ScrapeManager>,
    status: Arc<StatusInfo>,
    /// Serialises reloads.
    reloading: Mutex<()>,
    /// `global.external_labels` of the configuration in force.
    external_labels: Mutex<std::collections::BTreeMap<String, String>>,
    clock: hearth_api::Clock,
}

impl Scraping {
    /// Loads the configuration (failing when it does not load, as
    /// Prometheus at startup) and starts discovery and scraping into `db`.
    /// Must be called within the Tokio runtime.
    pub fn start(
        config_file: Option<PathBuf>,
        listen: SocketAddr,
        db: Arc<Db>,
        status: Arc<StatusInfo>,
        clock: hearth_api::Clock,
    ) -> anyhow::Result<Arc<Scraping>> {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty());
        let offset_seed = hostname.as_deref().map_or(0, |h| {
            hearth_model::Labels::new([("host", h)]).stable_hash()
        });
        let scraping = Arc::new(Scraping {
            config_file,
            listen,
            discovery: hearth_discovery::Manager::new(),
            scrape: Arc::new(ScrapeManager::new(
                db,
                ScrapeOptions {
                    offset_seed,
                    hostname,
                },
            )),
            status,
            reloading: Mutex::new(()),
            external_labels: Mutex::default(),
            clock,
        });
        scraping.load()?;
        // Discovery updates flow to the scrape manager.
        let mut updates = scraping.discovery.subscribe();
        let scrape = scraping.scrape.clone();
        tokio::spawn(async move {
            loop {
                let sets = updates.borrow_and_update().clone();
                scrape.sync(&sets);
                if updates.changed().await.is_err() {
                    return;
                }
            }
        });
        Ok(scraping)
    }

    /// Reads and applies the configuration; on error nothing changes.
    fn load(&self) -> anyhow::Result<()> {
        let _one_at_a_time = self.reloading.lock();
        let config = match &self.config_file {
            Some(path) => Config::load_file(path)?,
            None => Config::parse(&default_config(self.listen))?,
        };
        self.scrape.apply_config(&config);
        self.discovery.apply(&config.scrape_configs);
        *self.external_labels.lock() = config.global.external_labels.clone();
        let mut status = self.status.config.write();
        status.yaml = config.to_yaml_redacted();
        status.last_reload_ok = true;
        status.last_load_ms = (self.clock)();
        Ok(())
    }

    /// `global.external_labels` of the configuration in force.
    pub fn external_labels(&self) -> std::collections::BTreeMap<String, String> {
        self.external_labels.lock().clone()
    }

    /// Stops scraping (no stale markers: the series resume on restart).
    pub async fn stop(&self) {
        self.scrape.stop().await;
    }

    /// Reloads on every SIGHUP, logging failures, until the process ends.
    pub fn reload_on_sighup(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            let Ok(mut hup) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                tracing::warn!("cannot listen for SIGHUP: reload with POST /-/reload");
                return;
            };
            while hup.recv().await.is_some() {
                let me = me.clone();
                match tokio::task::spawn_blocking(move || hearth_api::Reload::reload(&*me)).await {
                    Ok(Ok(())) => tracing::info!("configuration reloaded (SIGHUP)"),
                    Ok(Err(e)) => tracing::error!(error = %e, "configuration reload failed"),
                    Err(e) => tracing::error!(error = %e, "configuration reload panicked"),
                }
            }
        });
    }
}

impl hearth_api::Reload for Scraping {
    fn reload(&self) -> Result<(), String> {
        match self.load() {
            Ok(()) => Ok(()),
            Err(e) => {
                self.status.config.write().last_reload_ok = false;
                Err(format!("{e:#}"))
            }
        }
    }
}

fn health(h: TargetHealth) -> Health {
    match h {
        TargetHealth::Up => Health::Up,
        TargetHealth::Down => Health::Down,
        TargetHealth::Unknown => Health::Unknown,
    }
}

fn system_time_ms(t: std::time::SystemTime) -> i64 {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

impl TargetsSource for Scraping {
    fn targets(&self) -> targets::TargetsSnapshot {
        let s = self.scrape.targets();
        let mut pools: Vec<String> = s.dropped_counts.keys().cloned().collect();
        pools.extend(s.active.iter().map(|t| t.scrape_pool.clone()));
        pools.sort();
        pools.dedup();
        targets::TargetsSnapshot {
            active: s
                .active
                .into_iter()
                .map(|t| targets::ActiveTarget {
                    discovered_labels: t.discovered_labels,
                    labels: t.labels,
                    scrape_pool: t.scrape_pool,
                    scrape_url: t.scrape_url,
                    global_url: t.global_url,
                    last_error: t.last_error,
                    last_scrape_ms: t.last_scrape.map(system_time_ms),
                    last_scrape_duration_seconds: t.last_scrape_duration.as_secs_f64(),
                    health: health(t.health),
                    scrape_interval: t.scrape_interval,
                    scrape_timeout: t.scrape_timeout,
                })
                .collect(),
            dropped: s
                .dropped
                .into_iter()
                .map(|d| targets::DroppedTarget {
                    discovered_labels: d.discovered_labels,
                    scrape_pool: d.scrape_pool,
                })
                .collect(),
            dropped_counts: s.dropped_counts,
            pools,
        }
    }

    fn metadata(&self) -> Vec<targets::TargetMetadata> {
        let mut out = Vec::new();
        for t in self.scrape.metadata() {
            for m in t.metadata {
                out.push(targets::TargetMetadata {
                    target: t.labels.clone(),
                    metric: m.metric,
                    metric_type: m.metric_type,
                    help: m.help,
                    unit: m.unit,
                });
            }
        }
        out
    }
}
