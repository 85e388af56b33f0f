//! `hearth store`: the store gateway. Serves every block of a bucket over
//! StoreAPI, as Thanos's store: blocks found by periodic syncs, deletion
//! marks honoured, index headers on local disk loaded on first use,
//! size-bounded caches for postings, series and chunks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hearth_model::Labels;
use hearth_store::{BucketStore, StoreOptions};
use tokio_util::sync::CancellationToken;

use crate::flags;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Object storage configuration (Thanos's format: `type: S3` or `FILESYSTEM`).
    #[arg(long = "objstore.config-file")]
    objstore_config_file: PathBuf,
    /// Local directory for index headers.
    #[arg(long = "data-dir", default_value = "./data")]
    data_dir: PathBuf,
    /// Address of the StoreAPI (gRPC).
    #[arg(long = "grpc-address", default_value = "0.0.0.0:10901")]
    grpc_address: SocketAddr,
    /// Address of the probes and `/metrics`.
    #[arg(long = "http-address", default_value = "0.0.0.0:10902")]
    http_address: SocketAddr,
    /// How often the bucket is listed for new, deleted and marked blocks.
    #[arg(long = "sync-block-duration", default_value = "3m", value_parser = flags::duration_ms)]
    sync_interval: i64,
    /// How long a block with a deletion mark is still served (the
    /// compactor deletes it after its own delay).
    #[arg(long = "ignore-deletion-marks-delay", default_value = "24h", value_parser = flags::duration_ms)]
    ignore_deletion_marks_delay: i64,
    /// A block's index is unmapped after it was not used this long (0 = never).
    #[arg(long = "store.index-header-lazy-load-idle-timeout", default_value = "5m", value_parser = flags::duration_ms)]
    index_idle_timeout: i64,
    /// Bytes of chunks kept in memory.
    #[arg(long = "store.chunk-cache-size", default_value = "256MB", value_parser = flags::bytes)]
    chunk_cache_bytes: u64,
    /// Bytes of postings lists kept in memory.
    #[arg(long = "store.postings-cache-size", default_value = "128MB", value_parser = flags::bytes)]
    postings_cache_bytes: u64,
    /// Bytes of series (labels and chunk references) kept in memory.
    #[arg(long = "store.series-cache-size", default_value = "128MB", value_parser = flags::bytes)]
    series_cache_bytes: u64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    crate::standalone::cancel_on_signal(&shutdown);

    let bucket = hearth_objstore::Bucket::from_config_file(&args.objstore_config_file)
        .with_context(|| {
            format!(
                "load the object storage configuration {}",
                args.objstore_config_file.display()
            )
        })?;
    let mut registry = prometheus_client::registry::Registry::default();
    bucket.register_metrics(&mut registry);
    let options = StoreOptions {
        ignore_deletion_marks_delay: Duration::from_millis(
            args.ignore_deletion_marks_delay.max(0) as u64
        ),
        index_header_idle_timeout: Duration::from_millis(args.index_idle_timeout.max(0) as u64),
        chunk_cache_bytes: args.chunk_cache_bytes,
        postings_cache_bytes: args.postings_cache_bytes,
        series_cache_bytes: args.series_cache_bytes,
        ..StoreOptions::default()
    };
    let store = Arc::new(
        BucketStore::new(bucket, args.data_dir.clone(), options)
            .with_context(|| format!("open the store's directory {}", args.data_dir.display()))?,
    );
    store.register_metrics(&mut registry);
    // The first sync before serving, so that the first Info tells the
    // truth; a bucket that cannot be listed yet is retried by the loop.
    match store.sync().await {
        Ok(stats) => tracing::info!(?stats, "initial sync"),
        Err(e) => tracing::warn!(error = %e, "initial sync failed; retrying at the next interval"),
    }
    let sync = store.spawn_sync(
        Duration::from_millis(args.sync_interval.max(100) as u64),
        shutdown.clone().cancelled_owned(),
    );

    let info = {
        let store = store.clone();
        // The gRPC server announces (and does) the replica-label removal.
        Arc::new(move || store.store_info())
    };
    let server = hearth_storeapi::StoreServer::new(store.clone(), Labels::empty(), info);
    let grpc_listener = tokio::net::TcpListener::bind(args.grpc_address)
        .await
        .with_context(|| format!("listen on {}", args.grpc_address))?;
    tracing::info!(address = %grpc_listener.local_addr()?, "StoreAPI listening");
    let grpc_shutdown = shutdown.clone();
    let grpc = tokio::spawn(hearth_storeapi::serve(grpc_listener, server, async move {
        grpc_shutdown.cancelled().await
    }));

    let http_listener = tokio::net::TcpListener::bind(args.http_address)
        .await
        .with_context(|| format!("listen on {}", args.http_address))?;
    tracing::info!(address = %http_listener.local_addr()?, "HTTP listening");
    let app = crate::sidecar::probes_router("Hearth store", Arc::new(registry));
    let http_shutdown = shutdown.clone();
    axum::serve(http_listener, app)
        .with_graceful_shutdown(async move { http_shutdown.cancelled().await })
        .await
        .context("serve HTTP")?;
    shutdown.cancel();
    grpc.await?.context("serve StoreAPI")?;
    sync.await?;
    Ok(())
}
