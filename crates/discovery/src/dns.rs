//! `dns_sd_configs`: targets from SRV, A, AAAA, MX or NS lookups of each
//! configured name every `refresh_interval`, with the name servers, search
//! list and `ndots` of `/etc/resolv.conf` (through `hickory-resolver`, with
//! its cache off so every refresh asks the servers).

use std::net::SocketAddr;
use std::time::Duration;

use hearth_config::discovery::{DnsRecordType, DnsSdConfig};
use hearth_model::Labels;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};

use crate::{join_host_port, Error, GroupSender, Result, TargetGroup, ADDRESS_LABEL};

pub const NAME_LABEL: &str = "__meta_dns_name";
pub const SRV_RECORD_TARGET_LABEL: &str = "__meta_dns_srv_record_target";
pub const SRV_RECORD_PORT_LABEL: &str = "__meta_dns_srv_record_port";
pub const MX_RECORD_TARGET_LABEL: &str = "__meta_dns_mx_record_target";
pub const NS_RECORD_TARGET_LABEL: &str = "__meta_dns_ns_record_target";

/// One `dns_sd_configs` entry.
#[derive(Clone)]
pub struct DnsDiscovery {
    names: Vec<String>,
    record_type: DnsRecordType,
    port: u16,
    refresh_interval: Duration,
    resolver: TokioResolver,
}

impl std::fmt::Debug for DnsDiscovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsDiscovery")
            .field("names", &self.names)
            .field("record_type", &self.record_type)
            .field("port", &self.port)
            .finish()
    }
}

impl DnsDiscovery {
    /// Resolves with the system's configuration (`/etc/resolv.conf`).
    pub fn new(config: &DnsSdConfig) -> Result<Self> {
        let mut builder = TokioResolver::builder_tokio().map_err(|e| Error::Dns {
            name: "/etc/resolv.conf".into(),
            message: format!("read resolver configuration: {e}"),
        })?;
        builder.options_mut().cache_size = 0;
        let resolver = builder.build().map_err(|e| Error::Dns {
            name: config.names.join(","),
            message: format!("build resolver: {e}"),
        })?;
        Ok(Self::with_resolver(config, resolver))
    }

    /// Resolves by asking `servers` over UDP (a local server in tests).
    pub fn with_name_servers(config: &DnsSdConfig, servers: &[SocketAddr]) -> Result<Self> {
        let name_servers = servers
            .iter()
            .map(|server| {
                let mut connection = ConnectionConfig::udp();
                connection.port = server.port();
                NameServerConfig::new(server.ip(), true, vec![connection])
            })
            .collect();
        let mut builder = Resolver::builder_with_config(
            ResolverConfig::from_name_servers(name_servers),
            TokioRuntimeProvider::default(),
        );
        builder.options_mut().cache_size = 0;
        builder.options_mut().timeout = Duration::from_secs(2);
        let resolver = builder.build().map_err(|e| Error::Dns {
            name: config.names.join(","),
            message: format!("build resolver: {e}"),
        })?;
        Ok(Self::with_resolver(config, resolver))
    }

    fn with_resolver(config: &DnsSdConfig, resolver: TokioResolver) -> Self {
        DnsDiscovery {
            names: config.names.clone(),
            record_type: config.record_type(),
            port: config.port,
            refresh_interval: config.refresh_interval.as_std(),
            resolver,
        }
    }

    /// Resolves every name now and then every refresh interval, sending
    /// the groups of the names that resolved; a name whose lookup failed
    /// keeps its previous targets.
    pub async fn run(self, updates: GroupSender) {
        loop {
            let mut lookups = tokio::task::JoinSet::new();
            for (index, name) in self.names.iter().enumerate() {
                let this = self.clone();
                let name = name.clone();
                lookups.spawn(async move { (index, this.resolve(&name).await) });
            }
            let mut groups = Vec::new();
            while let Some(done) = lookups.join_next().await {
                match done {
                    Ok((index, Ok(group))) => groups.push((index, group)),
                    Ok((_, Err(e))) => {
                        tracing::error!(error = %e, "DNS discovery: keeping previous targets")
                    }
                    Err(e) => tracing::error!(error = %e, "DNS discovery: lookup task failed"),
                }
            }
            groups.sort_by_key(|(index, _)| *index);
            if !groups.is_empty()
                && updates
                    .send(groups.into_iter().map(|(_, g)| g).collect())
                    .is_err()
            {
                return;
            }
            tokio::time::sleep(self.refresh_interval.max(Duration::from_millis(100))).await;
        }
    }

    /// The group of one name: one target per answer record of the asked
    /// type (CNAMEs skipped); no records or NXDOMAIN give an empty group.
    pub async fn resolve(&self, name: &str) -> Result<TargetGroup> {
        let record_type = match self.record_type {
            DnsRecordType::Srv => RecordType::SRV,
            DnsRecordType::A => RecordType::A,
            DnsRecordType::Aaaa => RecordType::AAAA,
            DnsRecordType::Mx => RecordType::MX,
            DnsRecordType::Ns => RecordType::NS,
        };
        let lookup = match self.resolver.lookup(name, record_type).await {
            Ok(lookup) => lookup,
            Err(e) if is_empty_answer(&e) => return Ok(TargetGroup::empty(name)),
            Err(e) => {
                return Err(Error::Dns {
                    name: name.to_string(),
                    message: e.to_string(),
                })
            }
        };
        let port = self.port.to_string();
        let targets = lookup
            .answers()
            .iter()
            .filter_map(|record| {
                let mut labels = vec![(NAME_LABEL, name.to_string())];
                let address = match &record.data {
                    RData::SRV(srv) => {
                        let target = srv.target.to_string();
                        let address = join_host_port(target.trim_end_matches('.'), srv.port);
                        labels.push((SRV_RECORD_TARGET_LABEL, target));
                        labels.push((SRV_RECORD_PORT_LABEL, srv.port.to_string()));
                        address
                    }
                    RData::A(a) => join_host_port(&a.0.to_string(), &port),
                    RData::AAAA(aaaa) => join_host_port(&aaaa.0.to_string(), &port),
                    RData::MX(mx) => {
                        let target = mx.exchange.to_string();
                        let address = join_host_port(target.trim_end_matches('.'), &port);
                        labels.push((MX_RECORD_TARGET_LABEL, target));
                        address
                    }
                    RData::NS(ns) => {
                        let target = ns.0.to_string();
                        let address = join_host_port(target.trim_end_matches('.'), &port);
                        labels.push((NS_RECORD_TARGET_LABEL, target));
                        address
                    }
                    _ => return None,
                };
                labels.push((ADDRESS_LABEL, address));
                Some(Labels::new(labels))
            })
            .collect();
        Ok(TargetGroup {
            source: name.to_string(),
            targets,
            labels: Labels::empty(),
        })
    }
}

/// A NOERROR answer without records or an NXDOMAIN: the name has no
/// targets (rather than a failed lookup).
fn is_empty_answer(error: &NetError) -> bool {
    error.is_no_records_found() || error.is_nx_domain()
}

#[cfg(test)]
mod tests;
