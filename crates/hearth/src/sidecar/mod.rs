//! `hearth sidecar`: beside an unmodified Prometheus, serves its data over
//! StoreAPI (remote read for everything not yet in the bucket) and ships
//! its completed blocks to object storage, as Thanos's sidecar does.

pub mod prometheus;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::routing::get;
use hearth_model::Labels;
use hearth_storeapi::StoreInfo;
use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;

use self::prometheus::PrometheusClient;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// URL of the Prometheus server beside this sidecar.
    #[arg(long = "prometheus.url", default_value = "http://localhost:9090")]
    prometheus_url: String,
    /// Prometheus's data directory (`--storage.tsdb.path`): its completed
    /// blocks are shipped from there.
    #[arg(long = "tsdb.path", default_value = "./data")]
    tsdb_path: PathBuf,
    /// Object storage configuration (Thanos's format). Without one the
    /// sidecar only serves StoreAPI.
    #[arg(long = "objstore.config-file")]
    objstore_config_file: Option<PathBuf>,
    /// Also upload compacted blocks (Prometheus then must not delete them
    /// before they are shipped).
    #[arg(long = "shipper.upload-compacted", default_value_t = false)]
    upload_compacted: bool,
    /// Address of the StoreAPI (gRPC).
    #[arg(long = "grpc-address", default_value = "0.0.0.0:10901")]
    grpc_address: SocketAddr,
    /// Address of the probes and `/metrics`.
    #[arg(long = "http-address", default_value = "0.0.0.0:10902")]
    http_address: SocketAddr,
    /// How often completed blocks are looked for and Prometheus's oldest
    /// data time refreshed.
    #[arg(long = "sync-interval", default_value = "30s", value_parser = crate::flags::duration_ms)]
    sync_interval: i64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    crate::standalone::cancel_on_signal(&shutdown);

    let prom = Arc::new(PrometheusClient::new(&args.prometheus_url)?);
    let external = match wait_for_prometheus(&prom, &shutdown).await {
        Some(labels) => labels,
        None => return Ok(()),
    };
    anyhow::ensure!(
        !external.is_empty(),
        "Prometheus at {} has no global.external_labels; the sidecar needs them to tell its data from other Prometheus servers'",
        args.prometheus_url
    );
    let mut registry = prometheus_client::registry::Registry::default();
    let shipper = match &args.objstore_config_file {
        None => None,
        Some(path) => {
            check_block_durations(&prom).await?;
            let bucket = hearth_objstore::Bucket::from_config_file(path).with_context(|| {
                format!("load the object storage configuration {}", path.display())
            })?;
            bucket.register_metrics(&mut registry);
            Some(
                hearth_objstore::Shipper::new(
                    args.tsdb_path.clone(),
                    bucket,
                    external.clone(),
                    hearth_objstore::block::source::SIDECAR,
                )
                .with_upload_compacted(args.upload_compacted),
            )
        }
    };

    let external_labels = Labels::new(external.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let min_time = Arc::new(RwLock::new(
        oldest_data(&prom, &args.tsdb_path)
            .await
            .unwrap_or(i64::MAX),
    ));
    let info = {
        let min_time = min_time.clone();
        let labels = external_labels.clone();
        Arc::new(move || StoreInfo {
            component: "sidecar".to_string(),
            label_sets: vec![labels.clone()],
            min_time: *min_time.read(),
            max_time: i64::MAX,
            supports_without_replica_labels: true,
        })
    };
    let server = hearth_storeapi::server::StoreServer::new(prom.clone(), external_labels, info);
    let grpc_listener = tokio::net::TcpListener::bind(args.grpc_address)
        .await
        .with_context(|| format!("listen on {}", args.grpc_address))?;
    tracing::info!(address = %grpc_listener.local_addr()?, "StoreAPI listening");
    let grpc_shutdown = shutdown.clone();
    let grpc = tokio::spawn(hearth_storeapi::server::serve(
        grpc_listener,
        server,
        async move { grpc_shutdown.cancelled().await },
    ));

    let http_listener = tokio::net::TcpListener::bind(args.http_address)
        .await
        .with_context(|| format!("listen on {}", args.http_address))?;
    tracing::info!(address = %http_listener.local_addr()?, "HTTP listening");
    let http_shutdown = shutdown.clone();
    let app = probes_router("Hearth sidecar", Arc::new(registry));
    let http = tokio::spawn(async move {
        axum::serve(http_listener, app)
            .with_graceful_shutdown(async move { http_shutdown.cancelled().await })
            .await
    });

    let every = Duration::from_millis(args.sync_interval.max(100) as u64);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
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
        match oldest_data(&prom, &args.tsdb_path).await {
            Some(t) => *min_time.write() = t,
            None => tracing::debug!("Prometheus has no data yet"),
        }
    }
    grpc.await?.context("serve StoreAPI")?;
    http.await?.context("serve HTTP")?;
    Ok(())
}

/// Waits until Prometheus answers and returns its external labels; `None`
/// when shut down first.
async fn wait_for_prometheus(
    prom: &PrometheusClient,
    shutdown: &CancellationToken,
) -> Option<BTreeMap<String, String>> {
    loop {
        match prom.external_labels().await {
            Ok(labels) => return Some(labels),
            Err(e) => tracing::warn!(error = %e, "Prometheus is not answering yet; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// Thanos's rule: blocks are uploaded uncompacted, so Prometheus must not
/// compact (min and max block durations equal).
async fn check_block_durations(prom: &PrometheusClient) -> anyhow::Result<()> {
    let min = prom.flag("storage.tsdb.min-block-duration").await?;
    let max = prom.flag("storage.tsdb.max-block-duration").await?;
    anyhow::ensure!(
        min.is_some() && min == max,
        "Prometheus compacts its blocks (storage.tsdb.min-block-duration={} and max-block-duration={}); \
         run it with equal min and max block durations (2h) so that the sidecar can ship them",
        min.as_deref().unwrap_or("?"),
        max.as_deref().unwrap_or("?"),
    );
    Ok(())
}

/// The oldest time Prometheus may have data for: its oldest local block,
/// else its head's oldest sample.
async fn oldest_data(prom: &PrometheusClient, tsdb_path: &Path) -> Option<i64> {
    let blocks = oldest_block(tsdb_path);
    let head = match prom.head_min_time().await {
        Ok(t) => t,
        Err(e) => {
            tracing::debug!(error = %e, "head statistics unavailable");
            None
        }
    };
    match (blocks, head) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn oldest_block(tsdb_path: &Path) -> Option<i64> {
    let entries = std::fs::read_dir(tsdb_path).ok()?;
    entries
        .filter_map(|e| e.ok())
        .filter(|e| hearth_tsdb::block::is_block_dir(&e.file_name().to_string_lossy()))
        .filter_map(|e| hearth_tsdb::block::meta::BlockMeta::read_from_dir(&e.path()).ok())
        .map(|m| m.min_time)
        .min()
}

/// `/-/healthy`, `/-/ready` and `/metrics` of a component without the
/// query API.
pub(crate) fn probes_router(
    component: &'static str,
    registry: Arc<prometheus_client::registry::Registry>,
) -> axum::Router {
    axum::Router::new()
        .route(
            "/-/healthy",
            get(move || async move { format!("{component} is Healthy.\n") }),
        )
        .route(
            "/-/ready",
            get(move || async move { format!("{component} is Ready.\n") }),
        )
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move { hearth_api::metrics::render(&registry) }
            }),
        )
}
