//! `hearth tools`: offline tools on data directories, like promtool's.
//!
//! * `create-blocks-from openmetrics FILE DIR`: backfill, as `promtool tsdb
//!   create-blocks-from openmetrics`: one block per aligned block-duration
//!   window, `maxTime` = last sample + 1, level 1.
//! * `promqltest FILE...`: Prometheus's PromQL conformance scripts.
//! * `tsdb dump DIR`: every sample of a data directory (blocks, head and
//!   WAL), one line each, like `promtool tsdb dump`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Parser as _;
use hearth_exposition::{Entry, Format, Parser};
use hearth_model::{Labels, Sample};
use hearth_storage_api::SelectHints;
use hearth_tsdb::block::{chunks_from_samples, BlockCompaction, BlockWriter};
use hearth_tsdb::db::{Db, DbOptions};

use crate::flags;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Tool,
}

#[derive(clap::Subcommand, Debug)]
enum Tool {
    /// Create blocks from data in another format.
    #[command(name = "create-blocks-from")]
    CreateBlocksFrom {
        #[command(subcommand)]
        source: BlockSource,
    },
    /// Inspect a data directory.
    Tsdb {
        #[command(subcommand)]
        command: TsdbTool,
    },
    /// Run Prometheus's PromQL test scripts (`.test` files) against Hearth's
    /// engine: per-file and total evals passed and failed, each failure as
    /// FILE:LINE with the expected and actual result.
    Promqltest {
        /// The script files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// GET a URL and exit 0 on a 2xx answer, 1 otherwise: the health check
    /// of an image that has no shell and no curl. With `--tcp`, only
    /// connect to `host:port`.
    Probe {
        /// e.g. `http://127.0.0.1:10902/-/ready`, or `host:port` with `--tcp`.
        target: String,
        /// Succeed once a TCP connection to `target` (`host:port`) is open.
        #[arg(long = "tcp")]
        tcp: bool,
        /// How long to wait for the answer.
        #[arg(long = "timeout", default_value = "5s", value_parser = flags::duration_ms)]
        timeout: i64,
    },
    /// Check a `hearth` command line without running it: exit 0 when every
    /// flag parses, else print clap's error and exit 2 (manifests' tests).
    CheckArgs {
        /// The arguments after `hearth`, e.g. `-- ingest --node-id 1 ...`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(clap::Subcommand, Debug)]
enum BlockSource {
    /// Backfill from an OpenMetrics text file (it must end with `# EOF`).
    Openmetrics {
        /// The OpenMetrics input file.
        input: PathBuf,
        /// The data directory to write blocks into.
        #[arg(default_value = "data/")]
        output: PathBuf,
        /// Maximum duration of created blocks (a multiple of 2h, as promtool).
        #[arg(long = "max-block-duration", default_value = "2h", value_parser = flags::duration_ms)]
        max_block_duration: i64,
        /// Print the blocks created.
        #[arg(long = "quiet", default_value_t = false)]
        quiet: bool,
    },
}

#[derive(clap::Subcommand, Debug)]
enum TsdbTool {
    /// Print every sample: `{labels} value timestamp`.
    Dump {
        /// The data directory.
        #[arg(default_value = "data/")]
        dir: PathBuf,
        #[arg(long = "min-time", default_value_t = i64::MIN)]
        min_time: i64,
        #[arg(long = "max-time", default_value_t = i64::MAX)]
        max_time: i64,
        /// `text` prints values like promtool; `bits` prints the value's
        /// IEEE-754 bits in hex (exact for every NaN payload).
        #[arg(long = "format", default_value = "text")]
        format: String,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Tool::CreateBlocksFrom {
            source:
                BlockSource::Openmetrics {
                    input,
                    output,
                    max_block_duration,
                    quiet,
                },
        } => {
            let data =
                std::fs::read(&input).with_context(|| format!("read {}", input.display()))?;
            let blocks = create_blocks_from_openmetrics(&data, &output, max_block_duration)?;
            if !quiet {
                for b in blocks {
                    println!("{b}");
                }
            }
            Ok(())
        }
        Tool::Tsdb {
            command:
                TsdbTool::Dump {
                    dir,
                    min_time,
                    max_time,
                    format,
                },
        } => dump(&dir, min_time, max_time, &format),
        Tool::Probe {
            target,
            tcp,
            timeout,
        } => probe(&target, tcp, timeout),
        Tool::CheckArgs { args } => {
            let argv = std::iter::once("hearth".to_string()).chain(args);
            if let Err(e) = crate::Cli::try_parse_from(argv) {
                e.exit();
            }
            Ok(())
        }
        Tool::Promqltest { files } => {
            let code = hearth_promqltest::main_with_args(&files);
            if code != 0 {
                std::process::exit(code);
            }
            Ok(())
        }
    }
}

/// `tools probe`: one GET, success on 2xx (or one TCP connect).
fn probe(target: &str, tcp: bool, timeout_ms: i64) -> anyhow::Result<()> {
    let timeout = std::time::Duration::from_millis(timeout_ms.max(1) as u64);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if tcp {
        return rt.block_on(async {
            match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(target)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(anyhow::Error::new(e).context(format!("connect {target}"))),
                Err(_) => bail!("connect {target}: timed out"),
            }
        });
    }
    let status = rt.block_on(async {
        reqwest::Client::builder()
            .timeout(timeout)
            .build()?
            .get(target)
            .send()
            .await
            .map(|r| r.status())
    });
    let status = status.with_context(|| format!("GET {target}"))?;
    if !status.is_success() {
        bail!("GET {target}: {status}");
    }
    Ok(())
}

/// Parses an OpenMetrics exposition with timestamps into sorted series.
fn parse_openmetrics(data: &[u8]) -> anyhow::Result<BTreeMap<Labels, Vec<Sample>>> {
    let mut series: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
    let mut saw_eof = false;
    for entry in Parser::new(data, Format::OpenMetrics) {
        match entry.context("parse OpenMetrics input")? {
            Entry::Series {
                labels,
                value,
                timestamp,
                ..
            } => {
                let Some(t) = timestamp else {
                    bail!(
                        "sample without a timestamp for series {labels}: backfill needs timestamps"
                    );
                };
                series
                    .entry(labels)
                    .or_default()
                    .push(Sample::new(t, value));
            }
            Entry::Eof => saw_eof = true,
            _ => {}
        }
    }
    if !saw_eof {
        bail!("parse OpenMetrics input: data does not end with # EOF");
    }
    for (labels, samples) in series.iter_mut() {
        samples.sort_by_key(|s| s.t);
        let mut deduped: Vec<Sample> = Vec::with_capacity(samples.len());
        for s in samples.drain(..) {
            match deduped.last() {
                Some(last) if last.t == s.t && last.v.to_bits() == s.v.to_bits() => {}
                Some(last) if last.t == s.t => {
                    bail!("series {labels}: two different values at timestamp {}", s.t)
                }
                _ => deduped.push(s),
            }
        }
        *samples = deduped;
    }
    Ok(series)
}

/// Writes one block per aligned `block_duration` window that has samples.
pub fn create_blocks_from_openmetrics(
    data: &[u8],
    output: &std::path::Path,
    block_duration: i64,
) -> anyhow::Result<Vec<String>> {
    if block_duration <= 0 {
        bail!("max block duration must be positive");
    }
    let series = parse_openmetrics(data)?;
    std::fs::create_dir_all(output).with_context(|| format!("create {}", output.display()))?;
    let mut windows: BTreeMap<i64, Vec<(&Labels, &[Sample])>> = BTreeMap::new();
    for (labels, samples) in &series {
        let mut rest: &[Sample] = samples;
        while let Some(first) = rest.first() {
            let start = first.t.div_euclid(block_duration) * block_duration;
            let n = rest
                .iter()
                .take_while(|s| s.t < start + block_duration)
                .count();
            windows.entry(start).or_default().push((labels, &rest[..n]));
            rest = &rest[n..];
        }
    }
    let mut created = Vec::new();
    for (_, members) in windows {
        let mint = members
            .iter()
            .map(|(_, s)| s[0].t)
            .min()
            .expect("windows are non-empty");
        let maxt = members
            .iter()
            .map(|(_, s)| s[s.len() - 1].t)
            .max()
            .expect("windows are non-empty")
            + 1;
        let ulid = ulid::Ulid::new();
        let mut w = BlockWriter::new(output, ulid, mint, maxt)?;
        for (labels, samples) in members {
            w.add_series(labels, &chunks_from_samples(samples, block_duration)?)?;
        }
        let meta = w.finish(BlockCompaction {
            level: 1,
            sources: vec![ulid],
            ..BlockCompaction::default()
        })?;
        created.push(format!(
            "BLOCK ULID {} MIN TIME {} MAX TIME {} NUM SAMPLES {} NUM SERIES {}",
            meta.ulid, meta.min_time, meta.max_time, meta.stats.num_samples, meta.stats.num_series
        ));
    }
    Ok(created)
}

fn dump(dir: &std::path::Path, min_time: i64, max_time: i64, format: &str) -> anyhow::Result<()> {
    let bits = match format {
        "text" => false,
        "bits" => true,
        other => bail!("unknown dump format {other:?}: use text or bits"),
    };
    if !dir.is_dir() {
        bail!("no data directory at {}", dir.display());
    }
    let db =
        Db::open(dir, DbOptions::default()).with_context(|| format!("open {}", dir.display()))?;
    let series = db.select_sync(
        &[hearth_tsdb::compact::all_series_matcher()],
        SelectHints::new(min_time, max_time),
    )?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for s in series {
        let labels = s.labels.to_string();
        for x in s.samples(min_time, max_time)? {
            if bits {
                writeln!(out, "{labels} {:016x} {}", x.v.to_bits(), x.t)?;
            } else {
                writeln!(
                    out,
                    "{labels} {} {}",
                    hearth_exposition::float::format_go_float(x.v),
                    x.t
                )?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;

    /// Answers one HTTP request with `status`.
    fn serve_once(status: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf);
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        });
        format!("http://{address}/-/ready")
    }

    #[test]
    fn probe_succeeds_on_2xx_only() {
        assert!(probe(&serve_once("200 OK"), false, 2000).is_ok());
        let err = probe(&serve_once("503 Service Unavailable"), false, 2000).unwrap_err();
        assert!(err.to_string().contains("503"), "{err}");
    }

    #[test]
    fn tcp_probe_needs_a_listener() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        assert!(probe(&address, true, 2000).is_ok());
        drop(listener);
        assert!(probe(&address, true, 2000).is_err());
    }

    #[test]
    fn check_args_parses_as_the_binary_does() {
        let parses = |args: &[&str]| {
            crate::Cli::try_parse_from(std::iter::once("hearth").chain(args.iter().copied()))
                .is_ok()
        };
        assert!(parses(&[
            "ingest",
            "--node-id-from-hostname",
            "--peers=1=a:1"
        ]));
        assert!(!parses(&[
            "ingest",
            "--node-id=1",
            "--node-id-from-hostname",
            "--peers=1=a:1"
        ]));
        assert!(!parses(&["store", "--no-such-flag"]));
    }
}
