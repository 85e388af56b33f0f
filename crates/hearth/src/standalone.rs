//! `hearth standalone`: the scraper, the TSDB, remote write, the HTTP API
//! and the UI in one process on a local directory. Without
//! `--config.file` it scrapes itself.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hearth_api::{ApiMetrics, ApiState};
use hearth_tsdb::db::{default_max_block_duration, Db, DbOptions};
use tokio_util::sync::CancellationToken;

use crate::flags;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Prometheus configuration file (scrape jobs, discovery, relabeling).
    /// Without one, the server scrapes itself every 15 s.
    #[arg(long = "config.file", env = "HEARTH_CONFIG_FILE")]
    config_file: Option<std::path::PathBuf>,
    /// Object storage configuration (Thanos's format: `type: S3` or
    /// `FILESYSTEM`): every completed block is uploaded there, once.
    /// Local compaction is then off (max block duration = min), as Thanos's
    /// sidecar requires; the configuration's `global.external_labels` are
    /// the blocks' labels and must not be empty.
    #[arg(long = "objstore.config-file", env = "HEARTH_OBJSTORE_CONFIG_FILE")]
    objstore_config_file: Option<std::path::PathBuf>,
    /// Enable shutdown and reload via HTTP request (`POST /-/reload`).
    #[arg(long = "web.enable-lifecycle", default_value_t = false)]
    enable_lifecycle: bool,
    /// Base path for metrics storage.
    #[arg(
        long = "storage.tsdb.path",
        env = "HEARTH_STORAGE_PATH",
        default_value = "data/"
    )]
    storage_path: std::path::PathBuf,
    /// Address of the StoreAPI (gRPC) over the local TSDB, for `hearth
    /// query` (Thanos uses :10901). Off unless given.
    #[arg(long = "grpc-address", env = "HEARTH_GRPC_ADDRESS")]
    grpc_address: Option<SocketAddr>,
    /// Address to listen on for the API and UI.
    #[arg(
        long = "web.listen-address",
        env = "HEARTH_LISTEN_ADDRESS",
        default_value = "0.0.0.0:9090"
    )]
    listen_address: SocketAddr,
    /// How long to retain samples in storage (Prometheus duration; 0 = no time retention).
    #[arg(long = "storage.tsdb.retention.time", default_value = "15d", value_parser = flags::duration_text)]
    retention_time: String,
    /// Maximum number of bytes of blocks to keep (`512MB`, `0` = no size retention).
    #[arg(long = "storage.tsdb.retention.size", default_value = "0", value_parser = flags::bytes)]
    retention_size: u64,
    /// Minimum duration of a data block before being persisted (also the head chunk range).
    #[arg(long = "storage.tsdb.min-block-duration", default_value = "2h", value_parser = flags::duration_ms)]
    min_block_duration: i64,
    /// Maximum duration compacted blocks may span (default: 10% of retention time, at most 31d).
    #[arg(long = "storage.tsdb.max-block-duration", value_parser = flags::duration_ms)]
    max_block_duration: Option<i64>,
    /// fsync the WAL before acknowledging writes (survives power loss, not only a crash).
    #[arg(long = "storage.tsdb.wal-fsync", default_value_t = false)]
    wal_fsync: bool,
    /// Compress WAL records with Snappy.
    #[arg(long = "storage.tsdb.wal-compression", default_value_t = true, action = clap::ArgAction::Set)]
    wal_compression: bool,
    /// The maximum lookback duration for retrieving metrics during expression evaluations.
    #[arg(long = "query.lookback-delta", default_value = "5m", value_parser = flags::duration_ms)]
    lookback_delta: i64,
    /// Maximum time a query may take before being aborted.
    #[arg(long = "query.timeout", default_value = "2m", value_parser = flags::duration_ms)]
    query_timeout: i64,
    /// Maximum number of samples a single query can load into memory.
    #[arg(long = "query.max-samples", default_value_t = 50_000_000)]
    query_max_samples: usize,
    /// How often to check whether the head can be compacted into a block.
    #[arg(long = "storage.tsdb.compaction-interval", default_value = "1m", value_parser = flags::duration_ms, hide = true)]
    compaction_interval: i64,
}

/// The flags as `/api/v1/status/flags` reports them.
fn flags_map(args: &Args) -> std::collections::BTreeMap<String, String> {
    let mut m = std::collections::BTreeMap::new();
    let mut put = |k: &str, v: String| {
        m.insert(k.to_string(), v);
    };
    put(
        "config.file",
        args.config_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    );
    put("web.enable-lifecycle", args.enable_lifecycle.to_string());
    put(
        "objstore.config-file",
        args.objstore_config_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    );
    put("storage.tsdb.path", args.storage_path.display().to_string());
    put("web.listen-address", args.listen_address.to_string());
    put(
        "grpc-address",
        args.grpc_address.map(|a| a.to_string()).unwrap_or_default(),
    );
    put("storage.tsdb.retention.time", args.retention_time.clone());
    put(
        "storage.tsdb.retention.size",
        args.retention_size.to_string(),
    );
    put(
        "storage.tsdb.min-block-duration",
        format!("{}ms", args.min_block_duration),
    );
    put(
        "storage.tsdb.max-block-duration",
        args.max_block_duration
            .map(|d| format!("{d}ms"))
            .unwrap_or_default(),
    );
    put("storage.tsdb.wal-fsync", args.wal_fsync.to_string());
    put(
        "storage.tsdb.wal-compression",
        args.wal_compression.to_string(),
    );
    put("query.lookback-delta", format!("{}ms", args.lookback_delta));
    put("query.timeout", format!("{}ms", args.query_timeout));
    put("query.max-samples", args.query_max_samples.to_string());
    m
}

/// What the process serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Everything: remote write, PromQL and the metadata API, the UI.
    Standalone,
    /// `hearth scrape`: scraping into the local TSDB; the HTTP server has
    /// the probes, `/metrics`, reload, the targets and status endpoints.
    Scrape,
}

pub async fn run(args: Args, mode: Mode) -> anyhow::Result<()> {
    let started = hearth_api::system_clock()();
    let retention_time = flags::duration_ms(&args.retention_time).map_err(anyhow::Error::msg)?;
    // Blocks shipped to object storage are compacted there, not here.
    let shipping = args.objstore_config_file.is_some();
    let opts = DbOptions {
        min_block_duration: args.min_block_duration,
        max_block_duration: if shipping {
            args.min_block_duration
        } else {
            args.max_block_duration.unwrap_or_else(|| {
                default_max_block_duration(retention_time).max(args.min_block_duration)
            })
        },
        retention_time,
        retention_size: args.retention_size,
        wal_fsync: args.wal_fsync,
        wal_compression: args.wal_compression,
        ..DbOptions::default()
    };
    let ready = Arc::new(AtomicBool::new(false));
    let mut registry = prometheus_client::registry::Registry::default();
    // Filled below once the storage is open.
    let metrics = Arc::new(ApiMetrics::new(&mut registry));

    let listener = tokio::net::TcpListener::bind(args.listen_address)
        .await
        .with_context(|| format!("listen on {}", args.listen_address))?;
    tracing::info!(address = %listener.local_addr()?, "listening");

    let path = args.storage_path.clone();
    let db = tokio::task::spawn_blocking(move || Db::open(&path, opts))
        .await?
        .with_context(|| format!("open storage at {}", args.storage_path.display()))?;
    let db = Arc::new(db);

    registry.register_collector(Box::new(TsdbCollector(db.clone())));
    let status = Arc::new(hearth_api::status::StatusInfo {
        flags: flags_map(&args),
        config: Default::default(),
        storage_retention: args.retention_time.clone(),
        start_time: started,
        tsdb: Some(Arc::new(TsdbStatus(db.clone()))),
    });
    let clock = hearth_api::system_clock();
    let scraping = crate::scraping::Scraping::start(
        args.config_file.clone(),
        args.listen_address,
        db.clone(),
        status.clone(),
        clock.clone(),
    )
    .context("load the configuration")?;
    scraping.reload_on_sighup();
    let shipper = match &args.objstore_config_file {
        None => None,
        Some(path) => {
            let bucket = hearth_objstore::Bucket::from_config_file(path).with_context(|| {
                format!("load the object storage configuration {}", path.display())
            })?;
            let labels = scraping.external_labels();
            anyhow::ensure!(
                !labels.is_empty(),
                "shipping blocks to object storage needs global.external_labels in the configuration"
            );
            Some(Arc::new(hearth_objstore::Shipper::new(
                args.storage_path.clone(),
                bucket,
                labels,
                hearth_objstore::block::source::SIDECAR,
            )))
        }
    };
    let state = ApiState {
        component: match mode {
            Mode::Standalone => "Hearth standalone",
            Mode::Scrape => "Hearth scraper",
        },
        queryable: db.clone(),
        scoped: None,
        engine_options: hearth_promql::EngineOptions {
            lookback_delta_ms: args.lookback_delta,
            timeout: Duration::from_millis(args.query_timeout.max(1) as u64),
            max_samples: args.query_max_samples,
            ..hearth_promql::EngineOptions::default()
        },
        appendable: Some(db.clone()),
        ready: ready.clone(),
        metrics,
        metadata: Arc::default(),
        status,
        reloader: args
            .enable_lifecycle
            .then(|| scraping.clone() as Arc<dyn hearth_api::Reload>),
        targets: Some(scraping.clone()),
        registry: Arc::new(registry),
        clock,
    };
    let shutdown = CancellationToken::new();
    let store_api = match args.grpc_address {
        None => None,
        Some(addr) => Some(
            serve_store_api(
                addr,
                db.clone(),
                scraping.external_labels(),
                mode,
                shutdown.clone(),
            )
            .await?,
        ),
    };
    let app = match mode {
        Mode::Standalone => hearth_api::router(state),
        Mode::Scrape => hearth_api::scraper_router(state),
    };
    ready.store(true, std::sync::atomic::Ordering::Release);

    let compactor = tokio::spawn(compaction_loop(
        db.clone(),
        shipper,
        Duration::from_millis(args.compaction_interval.max(100) as u64),
        shutdown.clone(),
    ));
    cancel_on_signal(&shutdown);
    let server_shutdown = shutdown.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { server_shutdown.cancelled().await })
        .await
        .context("serve HTTP")?;
    shutdown.cancel();
    scraping.stop().await;
    compactor.await?;
    if let Some(store_api) = store_api {
        store_api.await?.context("serve StoreAPI")?;
    }
    db.close().context("close storage")?;
    Ok(())
}

/// Serves the local TSDB over StoreAPI on `addr` until `shutdown`: the
/// head and the local blocks, with the configuration's external labels.
async fn serve_store_api(
    addr: SocketAddr,
    db: Arc<Db>,
    external: std::collections::BTreeMap<String, String>,
    mode: Mode,
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listen on {addr}"))?;
    tracing::info!(address = %listener.local_addr()?, "StoreAPI listening");
    let labels = hearth_model::Labels::new(external.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let component = match mode {
        Mode::Standalone => "standalone",
        Mode::Scrape => "scrape",
    };
    let info = {
        let db = db.clone();
        let labels = labels.clone();
        Arc::new(move || hearth_storeapi::StoreInfo {
            component: component.to_string(),
            label_sets: if labels.is_empty() {
                Vec::new()
            } else {
                vec![labels.clone()]
            },
            min_time: oldest_sample(&db),
            max_time: i64::MAX,
            supports_without_replica_labels: true,
        })
    };
    let server = hearth_storeapi::server::StoreServer::new(db, labels, info);
    Ok(tokio::spawn(async move {
        hearth_storeapi::server::serve(listener, server, async move { shutdown.cancelled().await })
            .await
            .map_err(anyhow::Error::from)
    }))
}

/// The oldest sample time over blocks and head; `i64::MAX` when empty
/// (an empty store is never selected).
fn oldest_sample(db: &Db) -> i64 {
    let head = db.head();
    let head_min = if head.is_empty() {
        i64::MAX
    } else {
        head.min_time()
    };
    db.blocks()
        .iter()
        .map(|b| b.meta().min_time)
        .fold(head_min, i64::min)
}

/// `/api/v1/status/tsdb` from the head's statistics.
struct TsdbStatus(Arc<Db>);

impl hearth_api::status::TsdbStatusSource for TsdbStatus {
    fn tsdb_status(&self, limit: usize) -> hearth_api::status::TsdbStatus {
        let head = self.0.head();
        let s = head.stats(limit);
        hearth_api::status::TsdbStatus {
            num_series: s.num_series,
            num_label_pairs: s.num_label_pairs,
            chunk_count: s.chunk_count,
            min_time: if head.is_empty() { 0 } else { head.min_time() },
            max_time: if head.is_empty() { 0 } else { head.max_time() },
            series_count_by_metric_name: s.series_count_by_metric_name,
            label_value_count_by_label_name: s.label_value_count_by_label_name,
            memory_in_bytes_by_label_name: s.memory_in_bytes_by_label_name,
            series_count_by_label_value_pair: s.series_count_by_label_value_pair,
        }
    }
}

/// The TSDB's gauges, read at scrape time.
struct TsdbCollector(Arc<Db>);

impl std::fmt::Debug for TsdbCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TsdbCollector")
    }
}

impl prometheus_client::collector::Collector for TsdbCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder<'_>,
    ) -> std::fmt::Result {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::gauge::ConstGauge;
        let head = self.0.head();
        let blocks = self.0.blocks();
        let gauges: [(&str, &str, i64); 4] = [
            (
                "hearth_tsdb_head_series",
                "Series in the head",
                head.num_series() as i64,
            ),
            (
                "hearth_tsdb_head_min_time_ms",
                "Smallest sample time in the head",
                if head.is_empty() { 0 } else { head.min_time() },
            ),
            (
                "hearth_tsdb_head_max_time_ms",
                "Largest sample time in the head",
                if head.is_empty() { 0 } else { head.max_time() },
            ),
            (
                "hearth_tsdb_blocks_loaded",
                "Persisted blocks loaded",
                blocks.len() as i64,
            ),
        ];
        for (name, help, value) in gauges {
            let g = ConstGauge::new(value);
            let e = encoder.encode_descriptor(name, help, None, g.metric_type())?;
            g.encode(e)?;
        }
        Ok(())
    }
}

/// Compacts the head into blocks every `every`, then ships completed blocks
/// when there is a shipper (a failed upload is retried at the next round).
async fn compaction_loop(
    db: Arc<Db>,
    shipper: Option<Arc<hearth_objstore::Shipper>>,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let db = db.clone();
        match tokio::task::spawn_blocking(move || db.compact()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "compaction failed"),
            Err(e) => tracing::error!(error = %e, "compaction task panicked"),
        }
        if let Some(shipper) = &shipper {
            match shipper.sync().await {
                Ok(stats) if !stats.uploaded.is_empty() => {
                    tracing::info!(uploaded = stats.uploaded.len(), "blocks shipped")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "shipping blocks failed; retrying next round"),
            }
        }
    }
}

/// Cancels `shutdown` on SIGINT or SIGTERM (every subcommand's way out).
pub(crate) fn cancel_on_signal(shutdown: &CancellationToken) {
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        signal.cancel();
    });
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
