//! Where endpoint addresses come from: static addresses, Thanos file SD
//! files (re-read when their modification time or size changes) and DNS
//! names (`dns+host:port` for A/AAAA, `dnssrv+name` for SRV). A source that
//! fails keeps the addresses it last had, so a DNS hiccup or a half-written
//! file does not drop healthy stores.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};

use crate::{Error, Result};

/// One configured or discovered address, classified by its prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Address {
    /// `host:port`, used as is.
    Plain(String),
    /// `dns+host:port`: every A and AAAA address of `host`, with `port`.
    Dns { host: String, port: u16 },
    /// `dnssrv+name` (or `dnssrvnoa+name`): every SRV record's
    /// `target:port`.
    DnsSrv(String),
}

impl Address {
    pub(crate) fn parse(address: &str) -> Result<Address> {
        let bad = |message: &str| Error::Address {
            address: address.to_string(),
            message: message.to_string(),
        };
        if let Some(name) = address
            .strip_prefix("dnssrv+")
            .or_else(|| address.strip_prefix("dnssrvnoa+"))
        {
            if name.is_empty() {
                return Err(bad("empty SRV name"));
            }
            return Ok(Address::DnsSrv(name.to_string()));
        }
        if let Some(host_port) = address.strip_prefix("dns+") {
            let (host, port) = split_host_port(host_port).ok_or_else(|| bad("want host:port"))?;
            return Ok(Address::Dns {
                host: host.to_string(),
                port,
            });
        }
        if split_host_port(address).is_none() {
            return Err(bad("want host:port, dns+host:port or dnssrv+name"));
        }
        Ok(Address::Plain(address.to_string()))
    }
}

/// Splits `host:port` or `[v6]:port`.
fn split_host_port(s: &str) -> Option<(&str, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port = port.parse().ok()?;
    (!host.is_empty()).then_some((host, port))
}

/// `host:port`, bracketing IPv6 hosts.
fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// What identifies a version of a file: modification time and size.
type Stamp = (SystemTime, u64);

#[derive(Debug, Default)]
struct FileState {
    stamp: Option<Stamp>,
    targets: Vec<String>,
}

/// One Thanos file SD target group; other keys (`labels`) are ignored.
#[derive(Debug, serde::Deserialize)]
struct TargetGroup {
    #[serde(default)]
    targets: Vec<String>,
}

/// The state of discovery between refreshes: file versions and their
/// targets, last good DNS answers, the resolver.
pub(crate) struct Discovery {
    files: HashMap<PathBuf, FileState>,
    dns: HashMap<String, Vec<String>>,
    dns_servers: Vec<SocketAddr>,
    resolver: Option<TokioResolver>,
}

impl Discovery {
    pub(crate) fn new(dns_servers: Vec<SocketAddr>) -> Self {
        Discovery {
            files: HashMap::new(),
            dns: HashMap::new(),
            dns_servers,
            resolver: None,
        }
    }

    /// Every concrete address now: static ones, those of the files, with
    /// DNS names resolved. Problems are logged; the affected source keeps
    /// its previous addresses.
    pub(crate) async fn resolve(
        &mut self,
        addresses: &[String],
        files: &[PathBuf],
    ) -> BTreeSet<String> {
        let mut specs: Vec<String> = addresses.to_vec();
        for path in files {
            specs.extend(self.file_targets(path));
        }
        let mut out = BTreeSet::new();
        for spec in specs {
            match Address::parse(spec.trim()) {
                Ok(Address::Plain(a)) => {
                    out.insert(a);
                }
                Ok(dns) => out.extend(self.resolve_dns(&spec, dns).await),
                Err(e) => tracing::warn!(error = %e, "skipping endpoint"),
            }
        }
        out
    }

    /// The targets of a file, re-read only when it changed.
    fn file_targets(&mut self, path: &Path) -> Vec<String> {
        let state = self.files.entry(path.to_path_buf()).or_default();
        let stamp = match std::fs::metadata(path) {
            Ok(m) => m.modified().ok().map(|t| (t, m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A removed file has no targets (as in Prometheus).
                *state = FileState::default();
                return Vec::new();
            }
            Err(e) => {
                let e = Error::ReadFile {
                    path: path.to_path_buf(),
                    source: e,
                };
                tracing::warn!(error = %e, "keeping the file's previous endpoints");
                return state.targets.clone();
            }
        };
        if stamp.is_some() && stamp == state.stamp {
            return state.targets.clone();
        }
        match read_file_targets(path) {
            Ok(targets) => {
                state.stamp = stamp;
                state.targets = targets;
            }
            Err(e) => tracing::warn!(error = %e, "keeping the file's previous endpoints"),
        }
        state.targets.clone()
    }

    async fn resolve_dns(&mut self, spec: &str, address: Address) -> Vec<String> {
        let result = match self.resolver() {
            Ok(resolver) => match &address {
                Address::Dns { host, port } => resolve_host(&resolver, host, *port).await,
                Address::DnsSrv(name) => resolve_srv(&resolver, name).await,
                Address::Plain(a) => Ok(vec![a.clone()]),
            },
            Err(e) => Err(e),
        };
        match result {
            Ok(addresses) => {
                self.dns.insert(spec.to_string(), addresses.clone());
                addresses
            }
            Err(e) => {
                tracing::warn!(error = %e, "keeping the name's previous endpoints");
                self.dns.get(spec).cloned().unwrap_or_default()
            }
        }
    }

    /// The resolver, built on first use: from `/etc/resolv.conf`, or asking
    /// the configured servers. Its cache is off so that every refresh sees
    /// changes.
    fn resolver(&mut self) -> Result<TokioResolver> {
        if let Some(r) = &self.resolver {
            return Ok(r.clone());
        }
        let dns_error = |message: String| Error::Dns {
            name: "resolver".into(),
            message,
        };
        let mut builder = if self.dns_servers.is_empty() {
            TokioResolver::builder_tokio()
                .map_err(|e| dns_error(format!("read resolver configuration: {e}")))?
        } else {
            let servers = self
                .dns_servers
                .iter()
                .map(|server| {
                    let mut connection = ConnectionConfig::udp();
                    connection.port = server.port();
                    NameServerConfig::new(server.ip(), true, vec![connection])
                })
                .collect();
            Resolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                TokioRuntimeProvider::default(),
            )
        };
        builder.options_mut().cache_size = 0;
        builder.options_mut().timeout = Duration::from_secs(5);
        let resolver = builder
            .build()
            .map_err(|e| dns_error(format!("build resolver: {e}")))?;
        self.resolver = Some(resolver.clone());
        Ok(resolver)
    }
}

/// Reads a Thanos file SD file: a JSON (`.json`) or YAML list of
/// `{targets: [...]}`. An empty file has no targets.
fn read_file_targets(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let parse_error = |message: String| Error::ParseFile {
        path: path.to_path_buf(),
        message,
    };
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let groups: Vec<TargetGroup> = if is_json {
        serde_json::from_str(&text).map_err(|e| parse_error(e.to_string()))?
    } else {
        serde_saphyr::from_str(&text).map_err(|e| parse_error(e.to_string()))?
    };
    Ok(groups.into_iter().flat_map(|g| g.targets).collect())
}

async fn resolve_host(resolver: &TokioResolver, host: &str, port: u16) -> Result<Vec<String>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![join_host_port(&ip.to_string(), port)]);
    }
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for record_type in [RecordType::A, RecordType::AAAA] {
        match lookup(resolver, host, record_type).await {
            Ok(records) => out.extend(records.into_iter().filter_map(|data| match data {
                RData::A(a) => Some(join_host_port(&a.0.to_string(), port)),
                RData::AAAA(aaaa) => Some(join_host_port(&aaaa.0.to_string(), port)),
                _ => None,
            })),
            Err(e) => errors.push(e),
        }
    }
    // One family failing while the other answers is a partial answer, not
    // a failure; both failing is.
    if errors.len() == 2 {
        return Err(errors.swap_remove(0));
    }
    Ok(out)
}

async fn resolve_srv(resolver: &TokioResolver, name: &str) -> Result<Vec<String>> {
    let records = lookup(resolver, name, RecordType::SRV).await?;
    Ok(records
        .into_iter()
        .filter_map(|data| match data {
            RData::SRV(srv) => Some(join_host_port(
                srv.target.to_string().trim_end_matches('.'),
                srv.port,
            )),
            _ => None,
        })
        .collect())
}

/// The answer records of one lookup; NXDOMAIN and empty answers are no
/// records rather than a failure.
async fn lookup(
    resolver: &TokioResolver,
    name: &str,
    record_type: RecordType,
) -> Result<Vec<RData>> {
    match resolver.lookup(name, record_type).await {
        Ok(lookup) => Ok(lookup.answers().iter().map(|r| r.data.clone()).collect()),
        Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(Vec::new()),
        Err(e) => Err(Error::Dns {
            name: name.to_string(),
            message: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_by_prefix() {
        assert_eq!(
            Address::parse("store:10901").unwrap(),
            Address::Plain("store:10901".into())
        );
        assert_eq!(
            Address::parse("dns+store.svc:10901").unwrap(),
            Address::Dns {
                host: "store.svc".into(),
                port: 10901
            }
        );
        assert_eq!(
            Address::parse("dns+[::1]:10901").unwrap(),
            Address::Dns {
                host: "::1".into(),
                port: 10901
            }
        );
        assert_eq!(
            Address::parse("dnssrv+_grpc._tcp.store.svc").unwrap(),
            Address::DnsSrv("_grpc._tcp.store.svc".into())
        );
        assert!(Address::parse("dns+store.svc").is_err());
        assert!(Address::parse("dns+store.svc:http").is_err());
        assert!(Address::parse("dnssrv+").is_err());
        assert!(Address::parse("").is_err());
        assert!(Address::parse("store").is_err());
    }

    #[test]
    fn file_targets_from_yaml_and_json() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("stores.yml");
        std::fs::write(
            &yaml,
            "- targets: ['a:1', 'b:2']\n  labels: {x: y}\n- targets: [c:3]\n",
        )
        .unwrap();
        assert_eq!(read_file_targets(&yaml).unwrap(), ["a:1", "b:2", "c:3"]);
        let json = dir.path().join("stores.json");
        std::fs::write(&json, r#"[{"targets": ["d:4"]}]"#).unwrap();
        assert_eq!(read_file_targets(&json).unwrap(), ["d:4"]);
        std::fs::write(&json, "not json").unwrap();
        assert!(read_file_targets(&json).is_err());
    }
}
