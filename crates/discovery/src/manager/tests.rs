use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Path;
use axum::routing::get;
use axum::Router;
use hearth_config::discovery::{HttpSdConfig, StaticConfig};

use super::*;
use crate::testing::addresses;

/// Waits until the published sets satisfy `check`, failing after 5 s.
async fn wait_for(
    rx: &mut watch::Receiver<Arc<TargetSets>>,
    check: impl Fn(&TargetSets) -> bool,
) -> Arc<TargetSets> {
    let found = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let sets = rx.borrow_and_update().clone();
            if check(&sets) {
                return sets;
            }
            rx.changed().await.expect("manager running");
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("not published in time; last {:?}", rx.borrow()))
}

fn static_job(target: &str) -> ServiceDiscoveryConfigs {
    ServiceDiscoveryConfigs {
        static_configs: vec![StaticConfig {
            targets: vec![target.to_string()],
            labels: BTreeMap::new(),
        }],
        ..Default::default()
    }
}

fn http_job(url: &str, refresh: &str) -> ServiceDiscoveryConfigs {
    let config: HttpSdConfig =
        serde_saphyr::from_str(&format!("url: {url}\nrefresh_interval: {refresh}\n")).unwrap();
    ServiceDiscoveryConfigs {
        http_sd_configs: vec![config],
        ..Default::default()
    }
}

/// Serves `/<name>` as one group with target `<name>:80`, counting requests
/// per name.
async fn serve_counting() -> (String, Arc<Mutex<BTreeMap<String, usize>>>) {
    let counts = Arc::new(Mutex::new(BTreeMap::new()));
    let seen = counts.clone();
    let app = Router::new().route(
        "/{name}",
        get(move |Path(name): Path<String>| {
            let seen = seen.clone();
            async move {
                *seen.lock().unwrap().entry(name.clone()).or_insert(0) += 1;
                (
                    [("content-type", "application/json")],
                    format!(r#"[{{"targets": ["{name}:80"]}}]"#),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), counts)
}

fn job_addresses(sets: &TargetSets, job: &str) -> Vec<String> {
    sets.get(job)
        .map(|groups| {
            groups
                .iter()
                .flat_map(|g| addresses(g).into_iter().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn static_targets_are_published_at_once() {
    let manager = Manager::new();
    let mut rx = manager.subscribe();
    assert!(rx.borrow().is_empty());
    manager.apply_jobs([("node".to_string(), static_job("n:9100"))]);
    // Well before the 5 s update interval.
    let sets = tokio::time::timeout(Duration::from_secs(1), async {
        rx.changed().await.unwrap();
        rx.borrow().clone()
    })
    .await
    .expect("published before the update interval");
    assert_eq!(sets["node"].len(), 1);
    assert_eq!(sets["node"][0].source, "0");
    assert_eq!(job_addresses(&sets, "node"), ["n:9100"]);
}

#[tokio::test]
async fn apply_starts_keeps_restarts_and_stops() {
    let (base, counts) = serve_counting().await;
    let count = |name: &str| counts.lock().unwrap().get(name).copied().unwrap_or(0);
    let manager = Manager::with_update_interval(Duration::from_millis(100));
    let mut rx = manager.subscribe();
    manager.apply_jobs([
        ("a".to_string(), http_job(&format!("{base}/a"), "10m")),
        ("b".to_string(), http_job(&format!("{base}/b"), "100ms")),
    ]);
    wait_for(&mut rx, |s| {
        job_addresses(s, "a") == ["a:80"] && job_addresses(s, "b") == ["b:80"]
    })
    .await;
    assert_eq!(count("a"), 1);

    // `a` unchanged keeps its provider, `b` removed stops, `c` starts.
    manager.apply_jobs([
        ("a".to_string(), http_job(&format!("{base}/a"), "10m")),
        ("c".to_string(), static_job("c:1")),
    ]);
    let sets = wait_for(&mut rx, |s| s.contains_key("c") && !s.contains_key("b")).await;
    assert_eq!(job_addresses(&sets, "a"), ["a:80"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b_requests = count("b");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        count("b"),
        b_requests,
        "removed job's provider still polling"
    );
    assert_eq!(count("a"), 1, "unchanged job's provider was restarted");

    // A changed job restarts its providers with the new configuration.
    manager.apply_jobs([
        ("a".to_string(), http_job(&format!("{base}/a2"), "10m")),
        ("c".to_string(), static_job("c:1")),
    ]);
    let sets = wait_for(&mut rx, |s| job_addresses(s, "a") == ["a2:80"]).await;
    assert_eq!(job_addresses(&sets, "c"), ["c:1"]);
    assert_eq!(count("a2"), 1);

    // Dropping the manager stops everything.
    drop(manager);
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn updates_replace_groups_by_source_and_empty_groups_remove() {
    let mut job = Job {
        configs: ServiceDiscoveryConfigs::default(),
        generation: 1,
        providers: vec![(false, Vec::new()), (false, Vec::new())],
        previous: Some(vec![TargetGroup::empty("old")]),
        _tasks: JoinSet::new(),
    };
    let group = |source: &str, address: &str| TargetGroup {
        source: source.into(),
        targets: vec![hearth_model::Labels::new([("__address__", address)])],
        labels: hearth_model::Labels::empty(),
    };
    assert!(job.merge(1, vec![group("x", "1"), group("y", "2")]));
    assert!(job.previous.is_none());
    assert!(!job.all_reported());
    assert!(job.merge(0, vec![group("z", "0")]));
    assert!(job.all_reported());
    assert!(
        !job.merge(1, vec![group("x", "1")]),
        "same group is no change"
    );
    assert!(job.merge(1, vec![group("x", "9"), TargetGroup::empty("y")]));
    let groups = job.groups();
    let sources: Vec<&str> = groups.iter().map(|g| g.source.as_str()).collect();
    assert_eq!(sources, ["z", "x"]);
    assert_eq!(addresses(&groups[1]), ["9"]);
}
