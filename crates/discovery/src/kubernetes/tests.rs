use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::*;
use crate::testing::{addresses, labels, next_update};

fn pod(name: &str, ip: &str, ports: Value) -> Value {
    json!({
        "metadata": {
            "name": name, "namespace": "default", "uid": format!("uid-{name}"),
            "resourceVersion": "2",
            "labels": {"app": "web", "app.kubernetes.io/name": "web"},
            "annotations": {"prometheus.io/scrape": "true"},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "web-rs", "controller": true}]
        },
        "spec": {
            "nodeName": "node-1",
            "containers": [
                {"name": "app", "image": "img:1", "ports": ports},
                {"name": "sidecar", "image": "side:1"}
            ]
        },
        "status": {
            "phase": "Running", "podIP": ip, "hostIP": "192.168.1.1",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "app", "containerID": "containerd://abc"}]
        }
    })
}

fn items(resource: &str) -> Value {
    match resource {
        "pods" => json!([pod(
            "web-1",
            "10.0.0.5",
            json!([
                {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}
            ])
        )]),
        "services" => json!([{
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10",
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
        }]),
        "endpoints" => json!([{
            "metadata": {"name": "web", "namespace": "default"},
            "subsets": [{
                "addresses": [{"ip": "10.0.0.5", "nodeName": "node-1",
                               "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "default"}}],
                "notReadyAddresses": [{"ip": "10.0.0.6"}],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
            }]
        }]),
        "endpointslices" => json!([{
            "metadata": {"name": "web-abc", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [{
                "addresses": ["10.0.0.5"],
                "conditions": {"ready": true, "serving": true, "terminating": false},
                "nodeName": "node-1", "zone": "z1",
                "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "default"}
            }],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
        }]),
        "nodes" => json!([{
            "metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1"}},
            "spec": {"providerID": "aws:///i-1"},
            "status": {
                "addresses": [{"type": "Hostname", "address": "node-1"},
                              {"type": "InternalIP", "address": "192.168.1.1"}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}
            }
        }]),
        _ => json!([]),
    }
}

/// A fake API server: lists at resource version 1; a pod watch from
/// version 1 streams the addition of pod `web-2`; other watches stay open
/// for a while with nothing. Records every request's path and query.
async fn serve(requests: Arc<Mutex<Vec<String>>>) -> String {
    serve_checking_token(requests, None).await
}

/// [`serve`], answering 401 to requests without `Authorization: Bearer
/// <token>` when a token is given.
async fn serve_checking_token(
    requests: Arc<Mutex<Vec<String>>>,
    token: Option<&'static str>,
) -> String {
    let app = Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
        let requests = requests.clone();
        async move {
            let query = uri.query().unwrap_or("").to_string();
            requests
                .lock()
                .unwrap()
                .push(format!("{}?{query}", uri.path()));
            if let Some(token) = token {
                let authorization = headers.get("authorization").and_then(|v| v.to_str().ok());
                if authorization != Some(format!("Bearer {token}").as_str()) {
                    return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
                }
            }
            let resource = uri.path().rsplit('/').next().unwrap_or("").to_string();
            if !query.contains("watch=1") {
                let list = json!({"metadata": {"resourceVersion": "1"}, "items": items(&resource)});
                return list.to_string().into_response();
            }
            if resource == "pods" && query.contains("resourceVersion=1") {
                let ports = json!([{"name": "http", "containerPort": 8080, "protocol": "TCP"}]);
                let event = json!({"type": "ADDED", "object": pod("web-2", "10.0.0.7", ports)});
                return format!("{event}\n").into_response();
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
            String::new().into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

fn discovery(server: &str, yaml: &str) -> KubernetesDiscovery {
    let config: KubernetesSdConfig =
        serde_saphyr::from_str(&format!("api_server: {server}\n{yaml}")).unwrap();
    KubernetesDiscovery::new(&config).unwrap()
}

/// The groups of the first update.
async fn first_groups(discovery: KubernetesDiscovery) -> Vec<TargetGroup> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(discovery.run(tx));
    next_update(&mut rx).await
}

const POD_META: [(&str, &str); 15] = [
    ("__meta_kubernetes_namespace", "default"),
    ("__meta_kubernetes_pod_name", "web-1"),
    ("__meta_kubernetes_pod_ip", "10.0.0.5"),
    ("__meta_kubernetes_pod_ready", "true"),
    ("__meta_kubernetes_pod_phase", "Running"),
    ("__meta_kubernetes_pod_node_name", "node-1"),
    ("__meta_kubernetes_pod_host_ip", "192.168.1.1"),
    ("__meta_kubernetes_pod_uid", "uid-web-1"),
    ("__meta_kubernetes_pod_label_app", "web"),
    ("__meta_kubernetes_pod_labelpresent_app", "true"),
    ("__meta_kubernetes_pod_label_app_kubernetes_io_name", "web"),
    (
        "__meta_kubernetes_pod_labelpresent_app_kubernetes_io_name",
        "true",
    ),
    (
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape",
        "true",
    ),
    (
        "__meta_kubernetes_pod_annotationpresent_prometheus_io_scrape",
        "true",
    ),
    ("__meta_kubernetes_pod_controller_kind", "ReplicaSet"),
];

#[tokio::test]
async fn pod_role_lists_then_watches() {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let server = serve(requests.clone()).await;
    let discovery = discovery(
        &server,
        "role: pod\nnamespaces: {names: [default]}\nselectors: [{role: pod, label: app=web, field: status.phase=Running}]\n",
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(discovery.run(tx));
    let groups = next_update(&mut rx).await;
    assert_eq!(groups.len(), 1);
    let group = &groups[0];
    assert_eq!(group.source, "pod/default/web-1");
    let mut want = POD_META.to_vec();
    want.push(("__meta_kubernetes_pod_controller_name", "web-rs"));
    assert_eq!(group.labels, labels(&want));
    let container = [
        ("__meta_kubernetes_pod_container_name", "app"),
        ("__meta_kubernetes_pod_container_id", "containerd://abc"),
        ("__meta_kubernetes_pod_container_image", "img:1"),
        ("__meta_kubernetes_pod_container_init", "false"),
    ];
    let mut http = container.to_vec();
    http.extend([
        ("__address__", "10.0.0.5:8080"),
        ("__meta_kubernetes_pod_container_port_number", "8080"),
        ("__meta_kubernetes_pod_container_port_name", "http"),
        ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
    ]);
    assert_eq!(group.targets[0], labels(&http));
    assert_eq!(
        addresses(group),
        ["10.0.0.5:8080", "10.0.0.5:9090", "10.0.0.5"]
    );
    assert_eq!(
        group.targets[2],
        labels(&[
            ("__address__", "10.0.0.5"),
            ("__meta_kubernetes_pod_container_name", "sidecar"),
            ("__meta_kubernetes_pod_container_image", "side:1"),
            ("__meta_kubernetes_pod_container_init", "false"),
        ])
    );

    // The watch adds a pod.
    let groups = next_update(&mut rx).await;
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].source, "pod/default/web-2");
    assert_eq!(addresses(&groups[0]), ["10.0.0.7:8080", "10.0.0.7"]);

    let requests = requests.lock().unwrap();
    assert!(
        requests[0].starts_with("/api/v1/namespaces/default/pods?"),
        "{requests:?}"
    );
    assert!(
        requests[0].contains("labelSelector=app%3Dweb"),
        "{requests:?}"
    );
    assert!(
        requests[0].contains("fieldSelector=status.phase%3DRunning"),
        "{requests:?}"
    );
    assert!(requests
        .iter()
        .any(|r| r.contains("watch=1") && r.contains("resourceVersion=1")));
}

#[tokio::test]
async fn service_role() {
    let server = serve(Arc::default()).await;
    let groups = first_groups(discovery(&server, "role: service\n")).await;
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].source, "svc/default/web");
    assert_eq!(
        groups[0].labels,
        labels(&[
            ("__meta_kubernetes_namespace", "default"),
            ("__meta_kubernetes_service_name", "web"),
            ("__meta_kubernetes_service_label_app", "web"),
            ("__meta_kubernetes_service_labelpresent_app", "true"),
        ])
    );
    assert_eq!(
        groups[0].targets,
        vec![labels(&[
            ("__address__", "web.default.svc:80"),
            ("__meta_kubernetes_service_port_name", "http"),
            ("__meta_kubernetes_service_port_number", "80"),
            ("__meta_kubernetes_service_port_protocol", "TCP"),
            ("__meta_kubernetes_service_type", "ClusterIP"),
            ("__meta_kubernetes_service_cluster_ip", "10.96.0.10"),
        ])]
    );
}

#[tokio::test]
async fn endpoints_role_with_pod_and_service_labels() {
    let server = serve(Arc::default()).await;
    let groups = first_groups(discovery(&server, "role: endpoints\n")).await;
    assert_eq!(groups.len(), 1);
    let group = &groups[0];
    assert_eq!(group.source, "endpoints/default/web");
    assert_eq!(
        group.labels.get("__meta_kubernetes_endpoints_name"),
        Some("web")
    );
    assert_eq!(
        group.labels.get("__meta_kubernetes_service_name"),
        Some("web")
    );
    assert_eq!(
        group.labels.get("__meta_kubernetes_namespace"),
        Some("default")
    );
    assert_eq!(
        addresses(group),
        ["10.0.0.5:8080", "10.0.0.6:8080", "10.0.0.5:9090"]
    );
    let ready = &group.targets[0];
    let mut want: Vec<(&str, &str)> = POD_META.to_vec();
    want.extend([
        ("__meta_kubernetes_pod_controller_name", "web-rs"),
        ("__address__", "10.0.0.5:8080"),
        ("__meta_kubernetes_endpoint_port_name", "http"),
        ("__meta_kubernetes_endpoint_port_protocol", "TCP"),
        ("__meta_kubernetes_endpoint_ready", "true"),
        ("__meta_kubernetes_endpoint_address_target_kind", "Pod"),
        ("__meta_kubernetes_endpoint_address_target_name", "web-1"),
        ("__meta_kubernetes_endpoint_node_name", "node-1"),
        ("__meta_kubernetes_pod_container_name", "app"),
        ("__meta_kubernetes_pod_container_image", "img:1"),
        ("__meta_kubernetes_pod_container_port_name", "http"),
        ("__meta_kubernetes_pod_container_port_number", "8080"),
        ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
        ("__meta_kubernetes_pod_container_init", "false"),
    ]);
    assert_eq!(*ready, labels(&want));
    assert_eq!(
        group.targets[1],
        labels(&[
            ("__address__", "10.0.0.6:8080"),
            ("__meta_kubernetes_endpoint_port_name", "http"),
            ("__meta_kubernetes_endpoint_port_protocol", "TCP"),
            ("__meta_kubernetes_endpoint_ready", "false"),
        ])
    );
    // The pod's port no endpoint covers.
    let uncovered = &group.targets[2];
    assert_eq!(
        uncovered.get("__meta_kubernetes_pod_container_port_name"),
        Some("metrics")
    );
    assert_eq!(uncovered.get("__meta_kubernetes_pod_name"), Some("web-1"));
    assert_eq!(uncovered.get("__meta_kubernetes_endpoint_ready"), None);
}

#[tokio::test]
async fn endpointslice_role() {
    let server = serve(Arc::default()).await;
    let groups = first_groups(discovery(&server, "role: endpointslice\n")).await;
    assert_eq!(groups.len(), 1);
    let group = &groups[0];
    assert_eq!(group.source, "endpointslice/default/web-abc");
    for (name, value) in [
        ("__meta_kubernetes_endpointslice_name", "web-abc"),
        ("__meta_kubernetes_endpointslice_address_type", "IPv4"),
        (
            "__meta_kubernetes_endpointslice_label_kubernetes_io_service_name",
            "web",
        ),
        ("__meta_kubernetes_service_name", "web"),
        ("__meta_kubernetes_namespace", "default"),
    ] {
        assert_eq!(group.labels.get(name), Some(value), "{name}");
    }
    assert_eq!(addresses(group), ["10.0.0.5:8080", "10.0.0.5:9090"]);
    let target = &group.targets[0];
    for (name, value) in [
        ("__meta_kubernetes_endpointslice_port", "8080"),
        ("__meta_kubernetes_endpointslice_port_name", "http"),
        ("__meta_kubernetes_endpointslice_port_protocol", "TCP"),
        (
            "__meta_kubernetes_endpointslice_endpoint_conditions_ready",
            "true",
        ),
        (
            "__meta_kubernetes_endpointslice_endpoint_conditions_serving",
            "true",
        ),
        (
            "__meta_kubernetes_endpointslice_endpoint_conditions_terminating",
            "false",
        ),
        (
            "__meta_kubernetes_endpointslice_endpoint_node_name",
            "node-1",
        ),
        ("__meta_kubernetes_endpointslice_endpoint_zone", "z1"),
        ("__meta_kubernetes_endpointslice_address_target_kind", "Pod"),
        (
            "__meta_kubernetes_endpointslice_address_target_name",
            "web-1",
        ),
        ("__meta_kubernetes_pod_name", "web-1"),
        ("__meta_kubernetes_pod_container_name", "app"),
    ] {
        assert_eq!(target.get(name), Some(value), "{name}");
    }
}

#[tokio::test]
async fn node_role() {
    let server = serve(Arc::default()).await;
    let groups = first_groups(discovery(&server, "role: node\n")).await;
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].source, "node/node-1");
    assert_eq!(
        groups[0].labels,
        labels(&[
            ("__meta_kubernetes_node_name", "node-1"),
            ("__meta_kubernetes_node_provider_id", "aws:///i-1"),
            (
                "__meta_kubernetes_node_label_kubernetes_io_hostname",
                "node-1"
            ),
            (
                "__meta_kubernetes_node_labelpresent_kubernetes_io_hostname",
                "true"
            ),
        ])
    );
    assert_eq!(
        groups[0].targets,
        vec![labels(&[
            ("__address__", "192.168.1.1:10250"),
            ("instance", "node-1"),
            ("__meta_kubernetes_node_address_InternalIP", "192.168.1.1"),
            ("__meta_kubernetes_node_address_Hostname", "node-1"),
        ])]
    );
}

/// A kubeconfig whose current context reaches `server` with the token in
/// the file `token` beside it (a relative path).
fn write_kubeconfig(dir: &std::path::Path, server: &str) -> String {
    let text = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: test\n\
         clusters: [{{name: fake, cluster: {{server: '{server}'}}}}]\n\
         users: [{{name: sa, user: {{tokenFile: token}}}}]\n\
         contexts: [{{name: test, context: {{cluster: fake, user: sa}}}}]\n"
    );
    let path = dir.join("kubeconfig.yaml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn kubeconfig_file_gives_the_server_and_the_token() {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let server = serve_checking_token(requests.clone(), Some("s3cret")).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "s3cret\n").unwrap();
    let kubeconfig = write_kubeconfig(dir.path(), &server);
    let config: KubernetesSdConfig = serde_saphyr::from_str(&format!(
        "role: pod\nkubeconfig_file: {kubeconfig}\nnamespaces: {{names: [default]}}\n"
    ))
    .unwrap();
    let discovery = KubernetesDiscovery::new(&config).unwrap();
    let groups = first_groups(discovery).await;
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].source, "pod/default/web-1");
    assert!(requests.lock().unwrap()[0].starts_with("/api/v1/namespaces/default/pods?"));
}

#[tokio::test]
async fn a_wrong_token_gets_no_targets() {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let server = serve_checking_token(requests.clone(), Some("s3cret")).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "wrong").unwrap();
    let config: KubernetesSdConfig = serde_saphyr::from_str(&format!(
        "role: node\nkubeconfig_file: {}\n",
        write_kubeconfig(dir.path(), &server)
    ))
    .unwrap();
    let mut discovery = KubernetesDiscovery::new(&config).unwrap();
    discovery.retry_delay = Duration::from_millis(50);
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(discovery.run(tx));
    crate::testing::no_update(&mut rx, Duration::from_millis(300)).await;
    // Lists are retried, and the token file is read again for each.
    std::fs::write(dir.path().join("token"), "s3cret").unwrap();
    let groups = next_update(&mut rx).await;
    assert_eq!(groups[0].source, "node/node-1");
    assert!(requests.lock().unwrap().len() >= 2);
}

#[test]
fn kubeconfig_errors_fail_the_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let start = |yaml: &str| {
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, yaml).unwrap();
        let config: KubernetesSdConfig =
            serde_saphyr::from_str(&format!("role: pod\nkubeconfig_file: {}\n", path.display()))
                .unwrap();
        KubernetesDiscovery::new(&config).unwrap_err().to_string()
    };
    let path = dir.path().join("kubeconfig").display().to_string();
    assert_eq!(
        start("current-context: x\n"),
        format!(r#"parse {path}: current-context "x": no such context"#)
    );
    let exec = "current-context: c\n\
                clusters: [{name: k, cluster: {server: 'https://k'}}]\n\
                users: [{name: u, user: {exec: {command: gke-gcloud-auth-plugin}}}]\n\
                contexts: [{name: c, context: {cluster: k, user: u}}]\n";
    assert_eq!(
        start(exec),
        format!(
            r#"parse {path}: user "u": users[].user.exec: credential plugins are not supported by Hearth's kubernetes discovery"#
        )
    );
    // Base64 that is not a PEM certificate fails when the client is built.
    let bad_ca = "current-context: c\n\
                  clusters: [{name: k, cluster: {server: 'https://k', certificate-authority-data: Zm9v}}]\n\
                  contexts: [{name: c, context: {cluster: k}}]\n";
    assert_eq!(
        start(bad_ca),
        format!(
            "configure HTTP client: kubeconfig {path}: tls_config: unable to use specified CA cert ca: \
             no PEM certificate in it"
        )
    );
}
