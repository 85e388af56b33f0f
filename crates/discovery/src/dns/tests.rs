use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::Arc;

use hearth_test_utils::dns::{serve, Zone};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::rdata::{A, AAAA, MX, NS, SRV};
use hickory_resolver::proto::rr::Name;
use tokio::sync::mpsc;

use super::*;
use crate::testing::{addresses, labels, next_update};

fn name(s: &str) -> Name {
    Name::from_str(s).unwrap()
}

fn config(yaml: &str) -> DnsSdConfig {
    serde_saphyr::from_str(yaml).unwrap()
}

#[tokio::test]
async fn srv_records_and_changes_and_failures() {
    let zone: Zone = Arc::default();
    let srv = |port, target: &str| RData::SRV(SRV::new(1, 1, port, name(target)));
    zone.lock().unwrap().insert(
        ("_http._tcp.example.com.".into(), RecordType::SRV),
        Ok(vec![
            srv(8080, "a.example.com."),
            srv(9090, "b.example.com."),
        ]),
    );
    let server = serve(zone.clone()).await;
    let config =
        config("names: [_http._tcp.example.com, missing.example.com]\nrefresh_interval: 200ms\n");
    let discovery = DnsDiscovery::with_name_servers(&config, &[server]).unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(discovery.run(tx));

    let groups = next_update(&mut rx).await;
    assert_eq!(groups.len(), 2);
    let group = &groups[0];
    assert_eq!(group.source, "_http._tcp.example.com");
    assert!(group.labels.is_empty());
    assert_eq!(
        group.targets,
        vec![
            labels(&[
                ("__address__", "a.example.com:8080"),
                ("__meta_dns_name", "_http._tcp.example.com"),
                ("__meta_dns_srv_record_target", "a.example.com."),
                ("__meta_dns_srv_record_port", "8080"),
            ]),
            labels(&[
                ("__address__", "b.example.com:9090"),
                ("__meta_dns_name", "_http._tcp.example.com"),
                ("__meta_dns_srv_record_target", "b.example.com."),
                ("__meta_dns_srv_record_port", "9090"),
            ]),
        ]
    );
    // NXDOMAIN: an empty group, removing the name's targets.
    assert_eq!(groups[1], TargetGroup::empty("missing.example.com"));

    // Answers are not cached: a change shows at the next refresh.
    zone.lock().unwrap().insert(
        ("_http._tcp.example.com.".into(), RecordType::SRV),
        Ok(vec![srv(7070, "c.example.com.")]),
    );
    let groups = loop {
        let groups = next_update(&mut rx).await;
        if addresses(&groups[0]) != ["a.example.com:8080", "b.example.com:9090"] {
            break groups;
        }
    };
    assert_eq!(addresses(&groups[0]), ["c.example.com:7070"]);

    // A failing server: the name is left out of the update.
    zone.lock().unwrap().insert(
        ("_http._tcp.example.com.".into(), RecordType::SRV),
        Err(ResponseCode::ServFail),
    );
    let groups = loop {
        let groups = next_update(&mut rx).await;
        if groups.len() == 1 {
            break groups;
        }
    };
    assert_eq!(groups[0].source, "missing.example.com");
}

#[tokio::test]
async fn a_aaaa_mx_ns_records() {
    let zone: Zone = Arc::default();
    {
        let mut z = zone.lock().unwrap();
        z.insert(
            ("hosts.example.com.".into(), RecordType::A),
            Ok(vec![RData::A(A(Ipv4Addr::new(10, 0, 0, 1)))]),
        );
        z.insert(
            ("hosts.example.com.".into(), RecordType::AAAA),
            Ok(vec![RData::AAAA(AAAA(
                Ipv6Addr::from_str("2001:db8::1").unwrap(),
            ))]),
        );
        z.insert(
            ("example.com.".into(), RecordType::MX),
            Ok(vec![RData::MX(MX::new(10, name("mail.example.com.")))]),
        );
        z.insert(
            ("example.com.".into(), RecordType::NS),
            Ok(vec![RData::NS(NS(name("ns1.example.com.")))]),
        );
    }
    let server = serve(zone).await;
    let cases = [
        (
            "A",
            "hosts.example.com",
            vec![("__address__", "10.0.0.1:9100")],
        ),
        (
            "AAAA",
            "hosts.example.com",
            vec![("__address__", "[2001:db8::1]:9100")],
        ),
        (
            "MX",
            "example.com",
            vec![
                ("__address__", "mail.example.com:9100"),
                ("__meta_dns_mx_record_target", "mail.example.com."),
            ],
        ),
        (
            "NS",
            "example.com",
            vec![
                ("__address__", "ns1.example.com:9100"),
                ("__meta_dns_ns_record_target", "ns1.example.com."),
            ],
        ),
    ];
    for (kind, dns_name, mut want) in cases {
        let config = config(&format!("names: [{dns_name}]\ntype: {kind}\nport: 9100\n"));
        let discovery = DnsDiscovery::with_name_servers(&config, &[server]).unwrap();
        let group = discovery.resolve(dns_name).await.unwrap();
        want.push(("__meta_dns_name", dns_name));
        assert_eq!(group.targets, vec![labels(&want)], "{kind}");
    }
}
