//! The `hearth` binary: one subcommand per component. Only this crate knows
//! every component; each subcommand lives in its own module.

mod flags;
mod ingest;
mod query;
mod scraping;
mod sidecar;
mod standalone;
mod store;
mod tools;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "hearth",
    version,
    about = "A horizontally scalable, Prometheus-compatible monitoring system"
)]
pub(crate) struct Cli {
    /// Log filter, e.g. `info` or `hearth_tsdb=debug`.
    #[arg(
        long = "log.level",
        env = "HEARTH_LOG",
        default_value = "info",
        global = true
    )]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Everything in one process on a local directory: scraper, TSDB, remote write, PromQL, the HTTP API and the UI.
    Standalone(standalone::Args),
    /// The scraper into a local TSDB, without the query API (for the distributed setup, where the sidecar ships its blocks).
    Scrape(standalone::Args),
    /// Beside an unmodified Prometheus: serves its data over StoreAPI and ships its blocks to object storage.
    Sidecar(sidecar::Args),
    /// The store gateway: every block of a bucket over StoreAPI.
    Store(store::Args),
    /// The querier: PromQL and the HTTP API over StoreAPI endpoints, replicas deduplicated.
    Query(query::Args),
    /// A raft-replicated ingester: remote write into shards replicated over the ingesters, served over StoreAPI.
    Ingest(ingest::Args),
    /// Offline tools: backfill blocks from OpenMetrics.
    Tools(tools::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&cli.log_level)?)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Command::Standalone(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(standalone::run(args, standalone::Mode::Standalone))
        }
        Command::Scrape(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(standalone::run(args, standalone::Mode::Scrape))
        }
        Command::Sidecar(args) => runtime()?.block_on(sidecar::run(args)),
        Command::Store(args) => runtime()?.block_on(store::run(args)),
        Command::Query(args) => runtime()?.block_on(query::run(args)),
        Command::Ingest(args) => runtime()?.block_on(ingest::run(args)),
        Command::Tools(args) => tools::run(args),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
