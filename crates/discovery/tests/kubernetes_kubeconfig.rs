//! Kubernetes discovery configured only through `kubeconfig_file`, against
//! a fake API server over TLS that requires a client certificate from its
//! CA and a bearer token; and a broken kubeconfig not stopping the job's
//! other discovery.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Router;
use hearth_config::discovery::{KubernetesSdConfig, StaticConfig};
use hearth_config::ServiceDiscoveryConfigs;
use hearth_discovery::kubernetes::KubernetesDiscovery;
use hearth_discovery::{Manager, TargetGroup};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const TOKEN: &str = "s3cret";
/// The only name the server's certificate is valid for.
const SERVER_NAME: &str = "kubernetes.test";

/// PEM of a test PKI: the CA, the server's certificate and key (for
/// [`SERVER_NAME`]), and a client certificate and key, both issued by the CA.
struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "test cluster CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issue = |name: &str, usage: ExtendedKeyUsagePurpose| {
        let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = issue(SERVER_NAME, ExtendedKeyUsagePurpose::ServerAuth);
    let (client_cert, client_key) = issue("prometheus", ExtendedKeyUsagePurpose::ClientAuth);
    Pki {
        ca: ca.pem(),
        server_cert,
        server_key,
        client_cert,
        client_key,
    }
}

/// Standard base64 with padding, for the kubeconfig's `*-data` fields.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let bytes = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(bytes[0]) << 16) | (u32::from(bytes[1]) << 8) | u32::from(bytes[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// TLS connections whose handshake succeeded (clients without an accepted
/// certificate are dropped here).
struct TlsListener {
    tcp: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, address)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, address);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// A fake API server over TLS: pods are listed as one pod `web-1` with a
/// port 8080, watches stay open with nothing; requests without the bearer
/// [`TOKEN`] get 401.
async fn serve(pki: &Pki) -> SocketAddr {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.ca.as_bytes()).unwrap())
        .unwrap();
    let client_verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let certs = CertificateDer::pem_slice_iter(pki.server_cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(pki.server_key.as_bytes()).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let app = Router::new().fallback(|uri: Uri, headers: HeaderMap| async move {
        let authorization = headers.get("authorization").and_then(|v| v.to_str().ok());
        if authorization != Some(format!("Bearer {TOKEN}").as_str()) {
            return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
        }
        if uri.query().unwrap_or("").contains("watch=1") {
            tokio::time::sleep(Duration::from_secs(5)).await;
            return String::new().into_response();
        }
        let pod = json!({
            "metadata": {"name": "web-1", "namespace": "default", "uid": "u1", "resourceVersion": "1"},
            "spec": {"nodeName": "node-1", "containers": [
                {"name": "app", "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}
            ]},
            "status": {"phase": "Running", "podIP": "10.0.0.5"}
        });
        json!({"metadata": {"resourceVersion": "1"}, "items": [pod]})
            .to_string()
            .into_response()
    });
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = tcp.local_addr().unwrap();
    let listener = TlsListener {
        tcp,
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
    };
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

/// Writes the client's files and a kubeconfig into `dir`: the CA and the
/// client key inline, the client certificate and the token as files named
/// relative to the kubeconfig. Returns the kubeconfig's path.
fn write_kubeconfig(dir: &Path, pki: &Pki, address: SocketAddr, server_name: &str) -> String {
    std::fs::create_dir_all(dir.join("pki")).unwrap();
    std::fs::write(dir.join("pki/client.crt"), &pki.client_cert).unwrap();
    std::fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
    let tls_server_name = if server_name.is_empty() {
        String::new()
    } else {
        format!("    tls-server-name: {server_name}\n")
    };
    let kubeconfig = format!(
        "apiVersion: v1
kind: Config
current-context: test
clusters:
- name: test-cluster
  cluster:
    server: https://{address}
    certificate-authority-data: {ca}
{tls_server_name}users:
- name: prometheus
  user:
    client-certificate: pki/client.crt
    client-key-data: {key}
    tokenFile: token
contexts:
- name: test
  context:
    cluster: test-cluster
    user: prometheus
    namespace: ignored
",
        ca = base64(pki.ca.as_bytes()),
        key = base64(pki.client_key.as_bytes()),
    );
    let path = dir.join("kubeconfig");
    std::fs::write(&path, kubeconfig).unwrap();
    path.display().to_string()
}

fn pod_discovery(kubeconfig: &str) -> KubernetesDiscovery {
    let config: KubernetesSdConfig =
        serde_saphyr::from_str(&format!("role: pod\nkubeconfig_file: {kubeconfig}\n")).unwrap();
    KubernetesDiscovery::new(&config).unwrap()
}

/// The first update of `discovery` within `wait`, if any.
async fn first_update(discovery: KubernetesDiscovery, wait: Duration) -> Option<Vec<TargetGroup>> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(discovery.run(tx));
    tokio::time::timeout(wait, rx.recv()).await.ok().flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_are_discovered_through_a_kubeconfig_only() {
    let pki = pki();
    let address = serve(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write_kubeconfig(dir.path(), &pki, address, SERVER_NAME);

    let groups = first_update(pod_discovery(&kubeconfig), Duration::from_secs(5))
        .await
        .expect("an update within 5 s");
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].source, "pod/default/web-1");
    let addresses: Vec<_> = groups[0]
        .targets
        .iter()
        .map(|t| t.get("__address__").unwrap_or(""))
        .collect();
    assert_eq!(addresses, ["10.0.0.5:8080"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tls_server_name_the_certificate_does_not_match() {
    let pki = pki();
    let address = serve(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    // The server's certificate is for kubernetes.test, not 127.0.0.1.
    let kubeconfig = write_kubeconfig(dir.path(), &pki, address, "");
    let update = first_update(pod_discovery(&kubeconfig), Duration::from_millis(1500)).await;
    assert_eq!(update, None);
}

#[tokio::test]
async fn a_broken_kubeconfig_leaves_the_jobs_other_discovery_running() {
    let kubernetes: KubernetesSdConfig =
        serde_saphyr::from_str("role: pod\nkubeconfig_file: /nonexistent/kubeconfig\n").unwrap();
    assert_eq!(
        KubernetesDiscovery::new(&kubernetes)
            .unwrap_err()
            .to_string(),
        "read /nonexistent/kubeconfig: No such file or directory (os error 2)"
    );
    let configs = ServiceDiscoveryConfigs {
        static_configs: vec![StaticConfig {
            targets: vec!["node:9100".to_string()],
            labels: Default::default(),
        }],
        kubernetes_sd_configs: vec![kubernetes],
        ..Default::default()
    };
    let manager = Manager::with_update_interval(Duration::from_millis(50));
    let mut targets = manager.subscribe();
    manager.apply_jobs([("job".to_string(), configs)]);
    let published = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            targets.changed().await.unwrap();
            let sets = targets.borrow_and_update().clone();
            if let Some(groups) = sets.get("job") {
                return groups.clone();
            }
        }
    })
    .await
    .expect("the job's targets published");
    let addresses: Vec<_> = published
        .iter()
        .flat_map(|g| g.targets.iter())
        .map(|t| t.get("__address__").unwrap_or(""))
        .collect();
    assert_eq!(addresses, ["node:9100"]);
}
