use std::collections::HashMap;
use std::sync::Mutex;

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::*;
use crate::testing::{labels, next_update};

/// The fake Consul's state: one index for everything, the catalog, the
/// health entries per service, and every request seen (path, query,
/// token).
#[derive(Default)]
struct Fake {
    index: u64,
    catalog: Value,
    health: HashMap<String, Value>,
    requests: Vec<(String, String, String)>,
}

type Shared = Arc<Mutex<Fake>>;

/// Answers once the index passes the request's `index` (a blocking query),
/// or after 5 s.
async fn blocking(
    state: &Shared,
    path: String,
    query: Option<String>,
    headers: &HeaderMap,
    body: impl Fn(&Fake) -> Value,
) -> ([(&'static str, String); 1], Json<Value>) {
    let query = query.unwrap_or_default();
    let token = headers
        .get("x-consul-token")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    state
        .lock()
        .unwrap()
        .requests
        .push((path, query.clone(), token));
    let asked: u64 = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("index="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        {
            let fake = state.lock().unwrap();
            if fake.index > asked || Instant::now() > deadline {
                return (
                    [("X-Consul-Index", fake.index.to_string())],
                    Json(body(&fake)),
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn serve(state: Shared) -> String {
    let app = Router::new()
        .route(
            "/v1/agent/self",
            get(|| async { Json(json!({"Config": {"Datacenter": "dc1"}})) }),
        )
        .route(
            "/v1/catalog/services",
            get(
                |State(s): State<Shared>, RawQuery(q): RawQuery, h: HeaderMap| async move {
                    blocking(&s, "catalog".into(), q, &h, |f| f.catalog.clone()).await
                },
            ),
        )
        .route(
            "/v1/health/service/{name}",
            get(
                |State(s): State<Shared>,
                 Path(name): Path<String>,
                 RawQuery(q): RawQuery,
                 h: HeaderMap| async move {
                    let key = name.clone();
                    blocking(&s, name, q, &h, move |f| {
                        f.health.get(&key).cloned().unwrap_or(json!([]))
                    })
                    .await
                },
            ),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address.to_string()
}

fn web_entry(port: u16, status: &str) -> Value {
    json!({
        "Node": {
            "Node": "node-1", "Address": "10.1.1.1", "Datacenter": "dc1",
            "TaggedAddresses": {"lan": "10.1.1.1", "wan-ipv4": "1.2.3.4"},
            "Meta": {"rack": "r1", "os.version": "12"}
        },
        "Service": {
            "ID": format!("web-{port}"), "Service": "web", "Tags": ["prod", "http"],
            "Address": "", "Port": port, "Meta": {"version": "v2"}
        },
        "Checks": [
            {"CheckID": "serfHealth", "Status": "passing"},
            {"CheckID": "service:web", "Status": status}
        ]
    })
}

/// The latest group per source of a provider's updates.
struct Latest {
    rx: mpsc::UnboundedReceiver<Vec<TargetGroup>>,
    groups: HashMap<String, TargetGroup>,
}

impl Latest {
    /// Receives updates until the group of `service` satisfies `check`.
    async fn group(&mut self, service: &str, check: impl Fn(&TargetGroup) -> bool) -> TargetGroup {
        loop {
            if let Some(group) = self.groups.get(service).filter(|g| check(g)) {
                return group.clone();
            }
            for group in next_update(&mut self.rx).await {
                self.groups.insert(group.source.clone(), group);
            }
        }
    }
}

#[tokio::test]
async fn services_health_labels_blocking_queries_and_removal() {
    let state: Shared = Arc::default();
    {
        let mut fake = state.lock().unwrap();
        fake.index = 10;
        fake.catalog = json!({"web": ["prod", "http"], "db": ["prod"], "dev": ["test"]});
        fake.health
            .insert("web".into(), json!([web_entry(8080, "passing")]));
        fake.health.insert(
            "db".into(),
            json!([{
                "Node": {"Node": "node-2", "Address": "10.1.1.2"},
                "Service": {"ID": "db1", "Service": "db", "Tags": ["prod"],
                            "Address": "10.9.9.9", "Port": 5432},
                "Checks": [{"CheckID": "_service_maintenance:db1", "Status": "critical"}]
            }]),
        );
    }
    let server = serve(state.clone()).await;
    let config: ConsulSdConfig = serde_saphyr::from_str(&format!(
        "server: '{server}'\ntoken: secret\ntags: [prod]\nnode_meta: {{rack: r1}}\n\
         refresh_interval: 50ms\n"
    ))
    .unwrap();
    let discovery = ConsulDiscovery::new(&config).unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(discovery.run(tx));
    let mut latest = Latest {
        rx,
        groups: HashMap::new(),
    };

    let web = latest.group("web", |_| true).await;
    assert_eq!(
        web.labels,
        labels(&[
            ("__meta_consul_service", "web"),
            ("__meta_consul_dc", "dc1")
        ])
    );
    assert_eq!(
        web.targets,
        vec![labels(&[
            ("__address__", "10.1.1.1:8080"),
            ("__meta_consul_address", "10.1.1.1"),
            ("__meta_consul_node", "node-1"),
            ("__meta_consul_tags", ",prod,http,"),
            ("__meta_consul_service_port", "8080"),
            ("__meta_consul_service_id", "web-8080"),
            ("__meta_consul_health", "passing"),
            ("__meta_consul_metadata_rack", "r1"),
            ("__meta_consul_metadata_os_version", "12"),
            ("__meta_consul_service_metadata_version", "v2"),
            ("__meta_consul_tagged_address_lan", "10.1.1.1"),
            ("__meta_consul_tagged_address_wan_ipv4", "1.2.3.4"),
        ])]
    );
    let db = latest.group("db", |_| true).await;
    assert_eq!(db.targets[0].get("__address__"), Some("10.9.9.9:5432"));
    assert_eq!(
        db.targets[0].get("__meta_consul_service_address"),
        Some("10.9.9.9")
    );
    assert_eq!(
        db.targets[0].get("__meta_consul_health"),
        Some("maintenance")
    );

    // The watchers now block on index 10; a change answers them at once.
    tokio::time::sleep(Duration::from_millis(200)).await;
    {
        let fake = state.lock().unwrap();
        let blocked = fake
            .requests
            .iter()
            .any(|(path, query, _)| path == "web" && query.contains("index=10"));
        assert!(blocked, "no blocking query: {:?}", fake.requests);
        for (path, query, token) in &fake.requests {
            assert_eq!(token, "secret");
            assert!(query.contains("dc=dc1"), "{query}");
            assert!(query.contains("stale"), "{query}");
            assert!(query.contains("node-meta=rack%3Ar1"), "{query}");
            assert!(query.contains("wait=120000ms"), "{query}");
            if path == "web" {
                assert!(query.contains("tag=prod"), "{query}");
            }
        }
        assert!(!fake.requests.iter().any(|(path, _, _)| path == "dev"));
    }
    let changed = Instant::now();
    {
        let mut fake = state.lock().unwrap();
        fake.index = 11;
        fake.health.insert(
            "web".into(),
            json!([web_entry(8080, "passing"), web_entry(8081, "warning")]),
        );
    }
    let web = latest.group("web", |g| g.targets.len() == 2).await;
    assert!(changed.elapsed() < Duration::from_secs(2));
    assert_eq!(web.targets[1].get("__meta_consul_health"), Some("warning"));

    // A service leaving the catalog gets an empty group.
    {
        let mut fake = state.lock().unwrap();
        fake.index = 12;
        fake.catalog = json!({"web": ["prod", "http"]});
    }
    latest.group("db", |g| g.targets.is_empty()).await;
}

#[test]
fn aggregated_status_order() {
    let check = |id: &str, status: &str| HealthCheck {
        check_id: id.into(),
        status: status.into(),
    };
    assert_eq!(aggregated_status(&[]), "passing");
    assert_eq!(
        aggregated_status(&[check("a", "passing"), check("b", "warning")]),
        "warning"
    );
    assert_eq!(
        aggregated_status(&[check("a", "critical"), check("b", "warning")]),
        "critical"
    );
    assert_eq!(
        aggregated_status(&[
            check("_node_maintenance", "critical"),
            check("b", "passing")
        ]),
        "maintenance"
    );
}
