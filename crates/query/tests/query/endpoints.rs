//! The endpoint set: static addresses, files, DNS, health and status.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hearth_query::{EndpointConfig, EndpointSet, Proxy, QueryOptions};
use hearth_storage_api::{Queryable, SelectHints};
use hearth_storeapi::Store;
use hearth_test_utils::dns::{serve, Zone};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::rdata::{A, AAAA, SRV};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::support::*;

fn fixed_clock() -> hearth_query::endpoints::Clock {
    Arc::new(|| 1_714_564_800_123)
}

#[tokio::test]
async fn static_endpoints_and_status_json() {
    let sidecar = TestStore::memory(Vec::new(), &[("cluster", "eu"), ("replica", "a")]);
    sidecar.set_range(1000, i64::MAX);
    let mut store = TestStore::new(Arc::new(MemQueryable(Vec::new())), &[("cluster", "eu")]);
    store.component = "store".into();
    let store = Arc::new(store);
    store.set_range(0, 5000);
    let stores = [
        ("sidecar:10901", sidecar.clone()),
        ("gateway:10901", store.clone()),
    ];
    let config = EndpointConfig {
        addresses: vec![
            "sidecar:10901".into(),
            "gateway:10901".into(),
            "gone:10901".into(),
        ],
        ..EndpointConfig::default()
    };
    let set = EndpointSet::new(config, factory(&stores)).with_clock(fixed_clock());
    assert!(set.healthy().is_empty());
    set.refresh().await;
    let healthy: Vec<String> = set.healthy().into_iter().map(|s| s.name).collect();
    assert_eq!(healthy, ["gateway:10901", "sidecar:10901"]);

    let status = serde_json::to_value(set.status()).unwrap();
    assert_eq!(
        status,
        json!({
            "sidecar": [{
                "name": "sidecar:10901",
                "lastCheck": "2024-05-01T12:00:00.123Z",
                "lastError": null,
                "labelSets": [{"cluster": "eu", "replica": "a"}],
                "minTime": 1000,
                "maxTime": i64::MAX,
            }],
            "store": [{
                "name": "gateway:10901",
                "lastCheck": "2024-05-01T12:00:00.123Z",
                "lastError": null,
                "labelSets": [{"cluster": "eu"}],
                "minTime": 0,
                "maxTime": 5000,
            }],
            "unknown": [{
                "name": "gone:10901",
                "lastCheck": "2024-05-01T12:00:00.123Z",
                "lastError": "info: storage unavailable: connection refused",
                "labelSets": [],
                "minTime": i64::MIN,
                "maxTime": i64::MAX,
            }],
        })
    );
}

#[tokio::test]
async fn an_unhealthy_endpoint_is_not_queried_until_it_recovers() {
    let up = || {
        vec![hearth_storage_api::Series::new(
            labels(&[("__name__", "up")]),
            chunks(&scrapes(0, 60_000, 15_000)),
        )]
    };
    let good = TestStore::memory(up(), &[("replica", "a")]);
    let bad = TestStore::memory(up(), &[("replica", "b")]);
    let set = endpoint_set(&[("good:1", good.clone()), ("bad:1", bad.clone())]).await;
    bad.fail_info.store(true, Ordering::SeqCst);
    set.refresh().await;

    let status = set.status();
    let entry = status["sidecar"]
        .iter()
        .find(|s| s.name == "bad:1")
        .unwrap();
    assert!(entry
        .last_error
        .as_deref()
        .unwrap()
        .contains("connection refused"));
    // The last good answer stays on the status page.
    assert_eq!(entry.label_sets, [labels(&[("replica", "b")])]);

    let proxy = Proxy::new(set.clone(), QueryOptions::default());
    let query = proxy.with_options(QueryOptions {
        dedup: false,
        ..QueryOptions::default()
    });
    let out = query
        .select(&[matcher("__name__", "up")], SelectHints::new(0, 60_000))
        .await
        .unwrap();
    assert_eq!(out.series.len(), 1);
    assert_eq!((good.calls(), bad.calls()), (1, 0));

    bad.fail_info.store(false, Ordering::SeqCst);
    set.refresh().await;
    let out = query
        .select(&[matcher("__name__", "up")], SelectHints::new(0, 60_000))
        .await
        .unwrap();
    assert_eq!(out.series.len(), 2);
    assert_eq!(bad.calls(), 1);
}

#[tokio::test]
async fn a_slow_info_makes_an_endpoint_unhealthy() {
    let slow = TestStore::memory(Vec::new(), &[]);
    *slow.info_delay.lock() = Some(Duration::from_secs(30));
    let config = EndpointConfig {
        addresses: vec!["slow:1".into()],
        info_timeout: Duration::from_millis(100),
        ..EndpointConfig::default()
    };
    let set = EndpointSet::new(config, factory(&[("slow:1", slow)]));
    set.refresh().await;
    assert!(set.healthy().is_empty());
    let status = set.status();
    let error = status["unknown"][0].last_error.clone().unwrap();
    assert!(error.contains("no answer within"), "{error}");
}

#[tokio::test]
async fn endpoints_from_a_file_that_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stores.yml");
    std::fs::write(&path, "- targets: ['a:1']\n").unwrap();
    let stores: Vec<(&str, Arc<TestStore>)> = ["a:1", "b:1", "c:1"]
        .into_iter()
        .map(|n| (n, TestStore::memory(Vec::new(), &[])))
        .collect();
    let config = EndpointConfig {
        files: vec![path.clone()],
        ..EndpointConfig::default()
    };
    let set = EndpointSet::new(config, factory(&stores));
    set.refresh().await;
    assert_eq!(set.addresses(), ["a:1"]);

    std::fs::write(&path, "- targets: ['a:1', 'b:1']\n- targets: ['c:1']\n").unwrap();
    set.refresh().await;
    assert_eq!(set.addresses(), ["a:1", "b:1", "c:1"]);
    // The same store object is kept for an address that stays.
    let before = Arc::as_ptr(&set.healthy()[0].store) as *const ();
    set.refresh().await;
    assert_eq!(Arc::as_ptr(&set.healthy()[0].store) as *const (), before);

    // A broken file keeps the previous targets.
    std::fs::write(&path, "- targets: [unterminated\n").unwrap();
    set.refresh().await;
    assert_eq!(set.addresses(), ["a:1", "b:1", "c:1"]);

    // A removed file has no targets.
    std::fs::remove_file(&path).unwrap();
    set.refresh().await;
    assert!(set.addresses().is_empty());
}

#[tokio::test]
async fn background_refresh_follows_the_file_and_stops_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stores.json");
    std::fs::write(&path, r#"[{"targets": ["a:1"]}]"#).unwrap();
    let stores = [
        ("a:1", TestStore::memory(Vec::new(), &[])),
        ("b:1", TestStore::memory(Vec::new(), &[])),
    ];
    let config = EndpointConfig {
        files: vec![path.clone()],
        ..EndpointConfig::default()
    };
    let set = Arc::new(EndpointSet::new(config, factory(&stores)));
    let shutdown = CancellationToken::new();
    let task = set.spawn_refresh(Duration::from_millis(100), shutdown.clone());
    wait_for(|| set.addresses() == ["a:1"]).await;
    std::fs::write(&path, r#"[{"targets": ["a:1", "b:1"]}]"#).unwrap();
    wait_for(|| set.healthy().len() == 2).await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("refresh task stops on shutdown")
        .unwrap();
}

async fn wait_for(mut condition: impl FnMut() -> bool) {
    for _ in 0..100 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not met within 5s");
}

#[tokio::test]
async fn endpoints_from_dns_a_aaaa_and_srv() {
    let zone: Zone = Arc::default();
    {
        let mut z = zone.lock().unwrap();
        z.insert(
            ("stores.example.com.".into(), RecordType::A),
            Ok(vec![
                RData::A(A(Ipv4Addr::new(10, 0, 0, 1))),
                RData::A(A(Ipv4Addr::new(10, 0, 0, 2))),
            ]),
        );
        z.insert(
            ("stores.example.com.".into(), RecordType::AAAA),
            Ok(vec![RData::AAAA(AAAA(Ipv6Addr::LOCALHOST))]),
        );
        z.insert(
            ("_grpc._tcp.example.com.".into(), RecordType::SRV),
            Ok(vec![RData::SRV(SRV::new(
                1,
                1,
                10905,
                Name::from_str("sidecar.example.com.").unwrap(),
            ))]),
        );
    }
    let server = serve(zone.clone()).await;
    let config = EndpointConfig {
        addresses: vec![
            "dns+stores.example.com:10901".into(),
            "dnssrv+_grpc._tcp.example.com".into(),
            "dns+missing.example.com:10901".into(),
        ],
        dns_servers: vec![server],
        ..EndpointConfig::default()
    };
    // Every address answers Info.
    let factory: hearth_query::StoreFactory =
        Arc::new(|_: &str| -> Arc<dyn Store> { TestStore::memory(Vec::new(), &[]) });
    let set = EndpointSet::new(config, factory);
    set.refresh().await;
    let expected = [
        "10.0.0.1:10901",
        "10.0.0.2:10901",
        "[::1]:10901",
        "sidecar.example.com:10905",
    ];
    assert_eq!(set.addresses(), expected);
    assert_eq!(set.healthy().len(), 4);

    // A failing server: the previous answers are kept.
    zone.lock().unwrap().insert(
        ("_grpc._tcp.example.com.".into(), RecordType::SRV),
        Err(ResponseCode::ServFail),
    );
    set.refresh().await;
    assert_eq!(set.addresses(), expected);

    // A changed answer shows at the next refresh (no cache).
    zone.lock().unwrap().insert(
        ("stores.example.com.".into(), RecordType::A),
        Ok(vec![RData::A(A(Ipv4Addr::new(10, 0, 0, 3)))]),
    );
    set.refresh().await;
    assert_eq!(
        set.addresses(),
        ["10.0.0.3:10901", "[::1]:10901", "sidecar.example.com:10905"]
    );
}
