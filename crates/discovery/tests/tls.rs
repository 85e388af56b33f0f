//! HTTP discovery over HTTPS with `tls_config`, against an in-process
//! rustls server whose CA and certificate are made at test time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hearth_config::discovery::HttpSdConfig;
use hearth_discovery::http::HttpDiscovery;
use hearth_model::Labels;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const GROUPS: &str = r#"[{"targets":["node:9100"],"labels":{"env":"test"}}]"#;

/// A self-signed CA and a certificate for 127.0.0.1 it issued, as PEM:
/// (CA, server certificate, server key).
fn certificates() -> (String, String, String) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// An HTTPS server on a loopback port answering every request with
/// [`GROUPS`] as JSON.
async fn serve(cert: &str, key: &str) -> SocketAddr {
    let certs = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let mut stream = match acceptor.accept(stream).into_fallible().await {
                    Ok(stream) => stream,
                    Err((_, mut tcp)) => {
                        // Keep the connection until the client has read the alert.
                        let mut sink = Vec::new();
                        let drain = tcp.read_to_end(&mut sink);
                        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
                        return;
                    }
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{GROUPS}",
                    GROUPS.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    addr
}

fn discovery(addr: SocketAddr, tls_lines: &[String]) -> HttpDiscovery {
    let mut yaml = format!("url: https://{addr}/sd\n");
    if !tls_lines.is_empty() {
        yaml.push_str("tls_config:\n");
        for line in tls_lines {
            yaml.push_str(&format!("  {line}\n"));
        }
    }
    let config: HttpSdConfig = serde_saphyr::from_str(&yaml).unwrap();
    HttpDiscovery::new(&config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_sd_over_https_trusts_the_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates();
    let (other_ca, _, _) = certificates();
    let addr = serve(&cert, &key).await;
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();
    let ca_line = format!("ca_file: {:?}", ca_file.display().to_string());

    let groups = discovery(addr, std::slice::from_ref(&ca_line))
        .fetch()
        .await
        .unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(
        groups[0].targets,
        vec![Labels::new([("__address__", "node:9100")])]
    );
    assert_eq!(groups[0].labels.get("env"), Some("test"));
    assert_eq!(
        groups[0].labels.get("__meta_url"),
        Some(format!("https://{addr}/sd").as_str())
    );

    // A test CA is not among the system's, nor is it another test CA.
    assert!(discovery(addr, &[]).fetch().await.is_err());
    let wrong = discovery(addr, &[format!("ca: {other_ca:?}")]);
    assert!(wrong.fetch().await.is_err());
    let insecure = discovery(addr, &["insecure_skip_verify: true".to_string()]);
    assert_eq!(insecure.fetch().await.unwrap().len(), 1);

    // The CA file is read again when it changes.
    std::fs::write(&ca_file, &other_ca).unwrap();
    let rotating = discovery(addr, &[ca_line]);
    assert!(rotating.fetch().await.is_err());
    std::fs::write(&ca_file, &ca).unwrap();
    assert_eq!(rotating.fetch().await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_unreadable_ca_file_fails_the_provider() {
    let config: HttpSdConfig = serde_saphyr::from_str(
        "url: https://127.0.0.1:1/sd\ntls_config:\n  ca_file: /nonexistent/ca.pem\n",
    )
    .unwrap();
    let error = HttpDiscovery::new(&config).unwrap_err().to_string();
    assert_eq!(
        error,
        "configure HTTP client: tls_config: read ca_file /nonexistent/ca.pem: \
         No such file or directory (os error 2)"
    );
}
