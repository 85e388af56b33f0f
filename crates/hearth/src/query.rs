//! `hearth query`: the PromQL engine and the whole HTTP API over a fan-out
//! to StoreAPI endpoints (scrapers, sidecars, store gateways, ingesters),
//! replicas deduplicated, as Thanos's querier.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::routing::get;
use hearth_api::params::Params;
use hearth_api::{ApiError, ApiMetrics, ApiResult, ApiState, ScopedQueryable};
use hearth_query::{DedupFunc, EndpointConfig, EndpointSet, Proxy, QueryOptions};
use hearth_storage_api::Queryable;
use hearth_storeapi::client::GrpcStore;
use hearth_storeapi::Store;
use tokio_util::sync::CancellationToken;

use crate::flags;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A StoreAPI endpoint: `host:port`, `dns+host:port` (A/AAAA records)
    /// or `dnssrv+_grpc._tcp.name` (SRV records). Repeatable.
    #[arg(long = "endpoint")]
    endpoints: Vec<String>,
    /// Files listing endpoints (Thanos's file SD format, YAML or JSON),
    /// re-read when they change. Repeatable.
    #[arg(long = "store.sd-files")]
    sd_files: Vec<PathBuf>,
    /// Labels that tell replicas of one series apart; series differing only
    /// in them are deduplicated. Repeatable.
    #[arg(long = "query.replica-label")]
    replica_labels: Vec<String>,
    /// Restrict every query to the tenant of its `THANOS-TENANT` /
    /// `X-Scope-OrgID` header (`--query.default-tenant-id` without one), by
    /// a matcher on `--query.tenant-label-name`, as Thanos's querier.
    #[arg(long = "query.enforce-tenancy", default_value_t = false)]
    enforce_tenancy: bool,
    #[arg(long = "query.tenant-label-name", default_value = "tenant_id")]
    tenant_label: String,
    #[arg(long = "query.default-tenant-id", default_value = "default-tenant")]
    default_tenant: String,
    /// How replicas are merged: `penalty` (HA scrapers) or `chain`
    /// (replicas with identical samples).
    #[arg(long = "deduplication.func", default_value = "penalty", value_parser = parse_dedup_func)]
    dedup_func: DedupFunc,
    /// Answer with what the healthy stores have, with warnings, when some
    /// fail (per request: `partial_response=`).
    #[arg(long = "query.partial-response", default_value_t = true, action = clap::ArgAction::Set)]
    partial_response: bool,
    /// How long one store may take to answer (0 = no limit).
    #[arg(long = "store.response-timeout", default_value = "0s", value_parser = flags::duration_ms)]
    store_response_timeout: i64,
    /// How often endpoints are resolved and asked for their `Info`.
    #[arg(long = "store.refresh-interval", default_value = "5s", value_parser = flags::duration_ms)]
    refresh_interval: i64,
    /// Address of the HTTP API and UI.
    #[arg(long = "http-address", default_value = "0.0.0.0:10902")]
    http_address: SocketAddr,
    /// The maximum lookback duration for retrieving metrics during expression evaluations.
    #[arg(long = "query.lookback-delta", default_value = "5m", value_parser = flags::duration_ms)]
    lookback_delta: i64,
    /// Maximum time a query may take before being aborted.
    #[arg(long = "query.timeout", default_value = "2m", value_parser = flags::duration_ms)]
    query_timeout: i64,
    /// Maximum number of samples a single query can load into memory.
    #[arg(long = "query.max-samples", default_value_t = 50_000_000)]
    query_max_samples: usize,
}

fn parse_dedup_func(v: &str) -> Result<DedupFunc, String> {
    v.parse()
        .map_err(|_| format!("unknown deduplication function {v:?} (penalty or chain)"))
}

/// The flags as `/api/v1/status/flags` reports them.
fn flags_map(args: &Args) -> std::collections::BTreeMap<String, String> {
    let mut m = std::collections::BTreeMap::new();
    m.insert("endpoint".into(), args.endpoints.join(","));
    m.insert(
        "store.sd-files".into(),
        args.sd_files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(","),
    );
    m.insert("query.replica-label".into(), args.replica_labels.join(","));
    m.insert(
        "query.enforce-tenancy".into(),
        args.enforce_tenancy.to_string(),
    );
    m.insert("query.tenant-label-name".into(), args.tenant_label.clone());
    m.insert(
        "query.default-tenant-id".into(),
        args.default_tenant.clone(),
    );
    m.insert(
        "deduplication.func".into(),
        match args.dedup_func {
            DedupFunc::Penalty => "penalty",
            DedupFunc::Chain => "chain",
        }
        .into(),
    );
    m.insert(
        "query.partial-response".into(),
        args.partial_response.to_string(),
    );
    m.insert(
        "store.response-timeout".into(),
        format!("{}ms", args.store_response_timeout),
    );
    m.insert("http-address".into(), args.http_address.to_string());
    m.insert(
        "query.lookback-delta".into(),
        format!("{}ms", args.lookback_delta),
    );
    m.insert("query.timeout".into(), format!("{}ms", args.query_timeout));
    m.insert(
        "query.max-samples".into(),
        args.query_max_samples.to_string(),
    );
    m
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let started = hearth_api::system_clock()();
    anyhow::ensure!(
        !args.endpoints.is_empty() || !args.sd_files.is_empty(),
        "no endpoints: give --endpoint or --store.sd-files"
    );
    let factory: hearth_query::StoreFactory = Arc::new(|addr: &str| -> Arc<dyn Store> {
        match GrpcStore::connect_lazy(addr) {
            Ok(s) => Arc::new(s),
            Err(e) => Arc::new(Unreachable(format!("{addr}: {e}"))),
        }
    });
    let endpoints = Arc::new(EndpointSet::new(
        EndpointConfig {
            addresses: args.endpoints.clone(),
            files: args.sd_files.clone(),
            ..EndpointConfig::default()
        },
        factory,
    ));
    // Nothing is queried before the first look at the endpoints.
    endpoints.refresh().await;
    let shutdown = CancellationToken::new();
    let refresher = endpoints.spawn_refresh(
        Duration::from_millis(args.refresh_interval.max(100) as u64),
        shutdown.clone(),
    );
    let defaults = QueryOptions {
        dedup: true,
        replica_labels: args.replica_labels.clone(),
        partial_response: args.partial_response,
        dedup_func: args.dedup_func,
        store_timeout: (args.store_response_timeout > 0)
            .then(|| Duration::from_millis(args.store_response_timeout as u64)),
    };
    let proxy = Arc::new(Proxy::new(endpoints.clone(), defaults));

    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Arc::new(ApiMetrics::new(&mut registry));
    let ready = Arc::new(AtomicBool::new(true));
    let state = ApiState {
        component: "Hearth querier",
        queryable: Arc::new(proxy.with_options(proxy.defaults().clone())),
        scoped: Some(Arc::new(RequestOptions {
            proxy: proxy.clone(),
            tenancy: args
                .enforce_tenancy
                .then(|| (args.tenant_label.clone(), args.default_tenant.clone())),
        })),
        engine_options: hearth_promql::EngineOptions {
            lookback_delta_ms: args.lookback_delta,
            timeout: Duration::from_millis(args.query_timeout.max(1) as u64),
            max_samples: args.query_max_samples,
            ..hearth_promql::EngineOptions::default()
        },
        appendable: None,
        ready,
        metrics,
        metadata: Arc::default(),
        status: Arc::new(hearth_api::status::StatusInfo {
            flags: flags_map(&args),
            config: Default::default(),
            storage_retention: String::new(),
            start_time: started,
            tsdb: None,
        }),
        reloader: None,
        targets: None,
        registry: Arc::new(registry),
        clock: hearth_api::system_clock(),
    };
    let stores = endpoints.clone();
    let app = hearth_api::router(state).route(
        "/api/v1/stores",
        get(move || {
            let stores = stores.clone();
            async move {
                axum::Json(serde_json::json!({
                    "status": "success",
                    "data": stores.status(),
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(args.http_address)
        .await
        .with_context(|| format!("listen on {}", args.http_address))?;
    tracing::info!(address = %listener.local_addr()?, "listening");
    crate::standalone::cancel_on_signal(&shutdown);
    let server_shutdown = shutdown.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { server_shutdown.cancelled().await })
        .await
        .context("serve HTTP")?;
    shutdown.cancel();
    refresher.await?;
    Ok(())
}

/// Builds each request's view of the stores from its parameters, as
/// Thanos's API: `dedup`, `partial_response`, `replicaLabels[]`, and its
/// tenant when tenancy is enforced.
struct RequestOptions {
    proxy: Arc<Proxy>,
    /// (tenant label, default tenant) when tenancy is enforced.
    tenancy: Option<(String, String)>,
}

impl ScopedQueryable for RequestOptions {
    fn for_request(&self, params: &Params) -> ApiResult<Arc<dyn Queryable>> {
        let mut opts = self.proxy.defaults().clone();
        if let Some(v) = params.get("dedup").filter(|v| !v.is_empty()) {
            opts.dedup = parse_bool("dedup", v)?;
        }
        if let Some(v) = params.get("partial_response").filter(|v| !v.is_empty()) {
            opts.partial_response = parse_bool("partial_response", v)?;
        }
        let labels = params.get_all("replicaLabels[]");
        if !labels.is_empty() {
            opts.replica_labels = labels.into_iter().map(str::to_string).collect();
        }
        let scoped: Arc<dyn Queryable> = Arc::new(self.proxy.with_options(opts));
        Ok(match &self.tenancy {
            None => scoped,
            Some((label, default)) => Arc::new(hearth_api::tenancy::TenantQueryable::new(
                scoped,
                label,
                params.tenant().unwrap_or(default),
            )),
        })
    }
}

/// Go's `strconv.ParseBool`, which Thanos uses for these parameters.
fn parse_bool(name: &str, v: &str) -> ApiResult<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(ApiError::bad_data(format!(
            "cannot parse parameter {name}: invalid boolean {v:?}"
        ))),
    }
}

/// An endpoint whose address cannot even be turned into a client: always
/// unhealthy, with the reason as its error.
struct Unreachable(String);

#[async_trait::async_trait]
impl Queryable for Unreachable {
    async fn select(
        &self,
        _: &[hearth_model::Matcher],
        _: hearth_storage_api::SelectHints,
    ) -> hearth_storage_api::Result<hearth_storage_api::SeriesSet> {
        Err(hearth_storage_api::Error::Unavailable(self.0.clone()))
    }

    async fn label_names(
        &self,
        _: &[hearth_model::Matcher],
        _: i64,
        _: i64,
    ) -> hearth_storage_api::Result<hearth_storage_api::LabelsResult> {
        Err(hearth_storage_api::Error::Unavailable(self.0.clone()))
    }

    async fn label_values(
        &self,
        _: &str,
        _: &[hearth_model::Matcher],
        _: i64,
        _: i64,
    ) -> hearth_storage_api::Result<hearth_storage_api::LabelsResult> {
        Err(hearth_storage_api::Error::Unavailable(self.0.clone()))
    }
}

#[async_trait::async_trait]
impl Store for Unreachable {
    async fn info(&self) -> hearth_storage_api::Result<hearth_storeapi::StoreInfo> {
        Err(hearth_storage_api::Error::Unavailable(self.0.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_as_go_reads_them() {
        assert!(parse_bool("dedup", "true").unwrap());
        assert!(!parse_bool("dedup", "0").unwrap());
        assert!(parse_bool("dedup", "yes").is_err());
    }
}
