//! Scrapes over HTTPS with `tls_config`, against in-process rustls servers
//! whose certificates (a CA, server and client certificates) are made at
//! test time: trusted CA files, unknown CAs, names, expiry,
//! `insecure_skip_verify`, `server_name`, mutual TLS, `min_version`, and a
//! CA file that changes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hearth_config::Config;
use hearth_discovery::{TargetGroup, TargetSets};
use hearth_model::{Labels, MatchOp, Matcher};
use hearth_scrape::{ScrapeManager, ScrapeOptions, TargetHealth};
use hearth_storage_api::SelectHints;
use hearth_tsdb::db::{Db, DbOptions};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BODY: &str = "# TYPE tls_metric gauge\ntls_metric 42\n";

/// A certificate authority that issues server and client certificates.
struct Authority {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A PEM certificate and its PEM private key.
struct Issued {
    cert: String,
    key: String,
}

impl Authority {
    fn new(name: &str) -> Authority {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Authority { cert, key }
    }

    fn pem(&self) -> String {
        self.cert.pem()
    }

    fn issue(&self, names: &[&str], purpose: ExtendedKeyUsagePurpose) -> Issued {
        self.issue_with(names, purpose, |_| {})
    }

    fn issue_with(
        &self,
        names: &[&str],
        purpose: ExtendedKeyUsagePurpose,
        adjust: impl FnOnce(&mut CertificateParams),
    ) -> Issued {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, "test");
        params.extended_key_usages = vec![purpose];
        adjust(&mut params);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Issued {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    fn server(&self, names: &[&str]) -> Issued {
        self.issue(names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    fn client(&self) -> Issued {
        self.issue(&["client.test"], ExtendedKeyUsagePurpose::ClientAuth)
    }
}

/// How a test server does TLS.
struct ServerTls<'a> {
    identity: &'a Issued,
    /// Clients must present a certificate of this CA.
    client_ca: Option<&'a Authority>,
    tls12_only: bool,
}

impl<'a> ServerTls<'a> {
    fn new(identity: &'a Issued) -> Self {
        ServerTls {
            identity,
            client_ca: None,
            tls12_only: false,
        }
    }
}

/// An HTTPS exporter on a loopback port answering every request with
/// [`BODY`]; counts the requests it answered.
struct Exporter {
    addr: SocketAddr,
    served: Arc<AtomicU64>,
}

impl Exporter {
    async fn start(tls: ServerTls<'_>) -> Exporter {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: &[&rustls::SupportedProtocolVersion] = if tls.tls12_only {
            &[&rustls::version::TLS12]
        } else {
            &[&rustls::version::TLS12, &rustls::version::TLS13]
        };
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .unwrap();
        let builder = match tls.client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(ca.cert.der().clone()).unwrap();
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let certs = CertificateDer::pem_slice_iter(tls.identity.cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(tls.identity.key.as_bytes()).unwrap();
        let config = builder.with_single_cert(certs, key).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = Arc::new(AtomicU64::new(0));
        let counter = served.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut stream = match acceptor.accept(stream).into_fallible().await {
                        Ok(stream) => stream,
                        Err((_, mut tcp)) => {
                            // Let the client read the alert before the
                            // connection closes (closing with its request
                            // unread would reset the connection instead).
                            let mut sink = Vec::new();
                            let drain = tcp.read_to_end(&mut sink);
                            let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
                            return;
                        }
                    };
                    if read_request_head(&mut stream).await.is_none() {
                        return;
                    }
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{BODY}",
                        BODY.len()
                    );
                    if stream.write_all(response.as_bytes()).await.is_ok() {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                    let _ = stream.shutdown().await;
                });
            }
        });
        Exporter { addr, served }
    }

    fn served(&self) -> u64 {
        self.served.load(Ordering::SeqCst)
    }
}

/// Reads up to the blank line ending a request's head; `None` if the
/// connection fails or closes first.
async fn read_request_head(stream: &mut (impl AsyncReadExt + Unpin)) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Some(head)
}

struct Harness {
    dir: tempfile::TempDir,
    db: Arc<Db>,
    manager: ScrapeManager,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Db::open(dir.path().join("db"), DbOptions::default()).unwrap());
        let manager = ScrapeManager::new(db.clone(), ScrapeOptions::default());
        Harness { dir, db, manager }
    }

    /// Writes `content` to a file of the test directory, returning its path.
    fn file(&self, name: &str, content: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    /// Applies https `jobs` (YAML list items) with a 200 ms interval and
    /// points each job at one target.
    fn start(&self, jobs: &str, targets: &[(&str, String)]) {
        let yaml = format!("global:\n  scrape_interval: 200ms\nscrape_configs:\n{jobs}");
        let config = Config::parse(&yaml).expect("valid config");
        self.manager.apply_config(&config);
        let mut sets = TargetSets::new();
        for (job, address) in targets {
            sets.insert(
                job.to_string(),
                vec![TargetGroup {
                    source: "test".into(),
                    targets: vec![Labels::new([("__address__", address.as_str())])],
                    labels: Labels::empty(),
                }],
            );
        }
        self.manager.sync(&sets);
    }

    fn values(&self, name: &str, job: &str) -> Vec<f64> {
        let matchers = [
            Matcher::new(MatchOp::Equal, "__name__", name).unwrap(),
            Matcher::new(MatchOp::Equal, "job", job).unwrap(),
        ];
        self.db
            .select_sync(&matchers, SelectHints::new(i64::MIN, i64::MAX))
            .unwrap()
            .into_iter()
            .flat_map(|s| s.samples(i64::MIN, i64::MAX).unwrap())
            .map(|s| s.v)
            .collect()
    }

    /// The health, last error and scrape URL of the job's one target.
    fn target(&self, job: &str) -> (TargetHealth, String, String) {
        let snapshot = self.manager.targets();
        let t = snapshot
            .active
            .iter()
            .find(|t| t.scrape_pool == job)
            .unwrap_or_else(|| panic!("no target of job {job}"));
        (t.health, t.last_error.clone(), t.scrape_url.clone())
    }

    /// Waits until every job was scraped twice.
    async fn wait_scraped(&self, jobs: &[&str]) {
        wait_for("two scrapes of every job", || {
            jobs.iter().all(|job| self.values("up", job).len() >= 2)
        })
        .await;
    }

    fn assert_up(&self, job: &str) {
        let (health, error, _) = self.target(job);
        assert_eq!(
            (health, error.as_str()),
            (TargetHealth::Up, ""),
            "job {job}"
        );
        assert!(
            self.values("up", job).iter().all(|v| *v == 1.0),
            "job {job}"
        );
        let metric = self.values("tls_metric", job);
        assert!(
            !metric.is_empty() && metric.iter().all(|v| *v == 42.0),
            "job {job}"
        );
    }

    /// Asserts the job's target is down and returns its last error.
    fn assert_down(&self, job: &str) -> String {
        let (health, error, _) = self.target(job);
        assert_eq!(health, TargetHealth::Down, "job {job}: {error}");
        assert!(
            self.values("up", job).iter().all(|v| *v == 0.0),
            "job {job}"
        );
        assert!(self.values("tls_metric", job).is_empty(), "job {job}");
        error
    }
}

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A job scraping over https with the given `tls_config` lines (each
/// indented for the block).
fn https_job(name: &str, tls_lines: &[String]) -> String {
    let mut job = format!("  - job_name: {name}\n    scheme: https\n");
    if !tls_lines.is_empty() {
        job.push_str("    tls_config:\n");
        for line in tls_lines {
            job.push_str(&format!("      {line}\n"));
        }
    }
    job
}

fn path_line(key: &str, path: &Path) -> String {
    format!("{key}: {:?}", path.display().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_ca_file_scrapes_samples() {
    let h = Harness::new();
    let ca = Authority::new("test CA");
    let server = ca.server(&["localhost", "127.0.0.1"]);
    let exporter = Exporter::start(ServerTls::new(&server)).await;
    let ca_file = h.file("ca.pem", &ca.pem());
    // Two certificates in the file: an unrelated CA first.
    let bundle = h.file("bundle.pem", &(Authority::new("other").pem() + &ca.pem()));
    let port = exporter.addr.port();
    let jobs = https_job("by_ip", &[path_line("ca_file", &ca_file)])
        + &https_job("by_name", &[path_line("ca_file", &ca_file)])
        + &https_job("bundle", &[path_line("ca_file", &bundle)])
        + &https_job("inline_ca", &[format!("ca: {:?}", ca.pem())]);
    h.start(
        &jobs,
        &[
            ("by_ip", format!("127.0.0.1:{port}")),
            ("by_name", format!("localhost:{port}")),
            ("bundle", format!("127.0.0.1:{port}")),
            ("inline_ca", format!("127.0.0.1:{port}")),
        ],
    );
    h.wait_scraped(&["by_ip", "by_name", "bundle", "inline_ca"])
        .await;
    for job in ["by_ip", "by_name", "bundle", "inline_ca"] {
        h.assert_up(job);
    }
    assert_eq!(
        h.target("by_ip").2,
        format!("https://127.0.0.1:{port}/metrics")
    );
    assert!(exporter.served() >= 8);
    h.manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_failures_mark_the_target_down_with_the_cause() {
    let h = Harness::new();
    let ca = Authority::new("test CA");
    let other_ca = Authority::new("other CA");
    let good = ca.server(&["localhost", "127.0.0.1"]);
    let wrong_name = ca.server(&["elsewhere.test"]);
    let expired = ca.issue_with(
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
        |p| {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        },
    );
    let good_server = Exporter::start(ServerTls::new(&good)).await;
    let wrong_name_server = Exporter::start(ServerTls::new(&wrong_name)).await;
    let expired_server = Exporter::start(ServerTls::new(&expired)).await;
    let ca_file = h.file("ca.pem", &ca.pem());
    let other_ca_file = h.file("other.pem", &other_ca.pem());
    let jobs = https_job("unknown_ca", &[path_line("ca_file", &other_ca_file)])
        + &https_job("system_roots", &[])
        + &https_job("wrong_name", &[path_line("ca_file", &ca_file)])
        + &https_job("expired", &[path_line("ca_file", &ca_file)])
        + &https_job(
            "missing_ca_file",
            &[path_line("ca_file", &h.dir.path().join("nope.pem"))],
        );
    let good_addr = good_server.addr.to_string();
    h.start(
        &jobs,
        &[
            ("unknown_ca", good_addr.clone()),
            ("system_roots", good_addr.clone()),
            ("wrong_name", wrong_name_server.addr.to_string()),
            ("expired", expired_server.addr.to_string()),
            ("missing_ca_file", good_addr.clone()),
        ],
    );
    let jobs = [
        "unknown_ca",
        "system_roots",
        "wrong_name",
        "expired",
        "missing_ca_file",
    ];
    h.wait_scraped(&jobs).await;
    for job in jobs {
        h.assert_down(job);
    }
    let url = format!("https://{good_addr}/metrics");
    assert_eq!(
        h.assert_down("unknown_ca"),
        format!(
            "Get {url:?}: tls: invalid peer certificate: certificate signed by unknown authority"
        )
    );
    assert_eq!(
        h.assert_down("system_roots"),
        h.assert_down("unknown_ca"),
        "a test CA is not among the system's"
    );
    let error = h.assert_down("wrong_name");
    assert!(
        error.contains("tls: invalid peer certificate: certificate not valid for name"),
        "{error}"
    );
    let error = h.assert_down("expired");
    assert!(
        error.contains("tls: invalid peer certificate: certificate expired"),
        "{error}"
    );
    let error = h.assert_down("missing_ca_file");
    assert!(
        error.starts_with("build HTTP client for job missing_ca_file: tls_config: read ca_file ")
            && error.contains("nope.pem"),
        "{error}"
    );
    assert_eq!(good_server.served(), 0);
    assert_eq!(wrong_name_server.served(), 0);
    assert_eq!(expired_server.served(), 0);
    h.manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_skip_verify_accepts_any_certificate() {
    let h = Harness::new();
    let ca = Authority::new("unknown CA");
    let server = ca.server(&["elsewhere.test"]);
    let exporter = Exporter::start(ServerTls::new(&server)).await;
    let jobs = https_job("insecure", &["insecure_skip_verify: true".to_string()])
        + &https_job("checked", &[]);
    let addr = exporter.addr.to_string();
    h.start(&jobs, &[("insecure", addr.clone()), ("checked", addr)]);
    h.wait_scraped(&["insecure", "checked"]).await;
    h.assert_up("insecure");
    h.assert_down("checked");
    h.manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_name_replaces_the_url_host_in_verification() {
    let h = Harness::new();
    let ca = Authority::new("test CA");
    let server = ca.server(&["metrics.internal.test"]);
    let exporter = Exporter::start(ServerTls::new(&server)).await;
    let ca_file = h.file("ca.pem", &ca.pem());
    let jobs = https_job(
        "named",
        &[
            path_line("ca_file", &ca_file),
            "server_name: metrics.internal.test".to_string(),
        ],
    ) + &https_job(
        "misnamed",
        &[
            path_line("ca_file", &ca_file),
            "server_name: other.internal.test".to_string(),
        ],
    ) + &https_job("unnamed", &[path_line("ca_file", &ca_file)]);
    let addr = exporter.addr.to_string();
    h.start(
        &jobs,
        &[
            ("named", addr.clone()),
            ("misnamed", addr.clone()),
            ("unnamed", addr),
        ],
    );
    h.wait_scraped(&["named", "misnamed", "unnamed"]).await;
    h.assert_up("named");
    for job in ["misnamed", "unnamed"] {
        let error = h.assert_down(job);
        assert!(error.contains("certificate not valid for name"), "{error}");
    }
    h.manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_the_client_certificate() {
    let h = Harness::new();
    let ca = Authority::new("test CA");
    let server = ca.server(&["127.0.0.1"]);
    let client = ca.client();
    let stranger = Authority::new("stranger CA").client();
    let exporter = Exporter::start(ServerTls {
        client_ca: Some(&ca),
        ..ServerTls::new(&server)
    })
    .await;
    let ca_line = path_line("ca_file", &h.file("ca.pem", &ca.pem()));
    let cert_line = path_line("cert_file", &h.file("client.pem", &client.cert));
    let key_line = path_line("key_file", &h.file("client-key.pem", &client.key));
    let stranger_cert = path_line("cert_file", &h.file("stranger.pem", &stranger.cert));
    let stranger_key = path_line("key_file", &h.file("stranger-key.pem", &stranger.key));
    let jobs = https_job("anonymous", std::slice::from_ref(&ca_line))
        + &https_job("stranger", &[ca_line.clone(), stranger_cert, stranger_key])
        + &https_job("with_files", &[ca_line.clone(), cert_line, key_line])
        + &https_job(
            "inline",
            &[
                ca_line,
                format!("cert: {:?}", client.cert),
                format!("key: {:?}", client.key),
            ],
        );
    let addr = exporter.addr.to_string();
    let jobs_names = ["anonymous", "stranger", "with_files", "inline"];
    let targets: Vec<(&str, String)> = jobs_names.iter().map(|j| (*j, addr.clone())).collect();
    h.start(&jobs, &targets);
    h.wait_scraped(&jobs_names).await;
    h.assert_up("with_files");
    h.assert_up("inline");
    let error = h.assert_down("anonymous");
    assert!(
        error.contains("tls: received fatal alert: CertificateRequired"),
        "{error}"
    );
    let error = h.assert_down("stranger");
    assert!(
        error.contains("tls: received fatal alert: UnknownCA"),
        "{error}"
    );
    h.manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_version_refuses_older_servers() {
    let h = Harness::new();
    let ca = Authority::new("test CA");
    let server = ca.server(&["127.0.0.1"]);
    let exporter = Exporter::start(ServerTls {
        tls12_only: true,
        ..ServerTls::new(&server)
    })
    .await;
    let ca_line = path_line("ca_file", &h.file("ca.pem", &ca.pem()));
    let jobs = https_job("tls12", &[ca_line.clone(), "min_version: TLS12".into()])
        + &https_job("tls13", &[ca_line, "min_version: TLS13".into()]);
    let addr = exporter.addr.to_string();
    h.start(&jobs, &[("tls12", addr.clone()), ("tls13", addr)]);
    h.wait_scraped(&["tls12", "tls13"]).await;
    h.assert_up("tls12");
    let error = h.assert_down("tls13");
    assert!(
        error.contains("tls: received fatal alert: ProtocolVersion"),
        "{error}"
    );
    h.manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_ca_file_is_read_again() {
    let h = Harness::new();
    let ca = Authority::new("test CA");
    let server = ca.server(&["127.0.0.1"]);
    let exporter = Exporter::start(ServerTls::new(&server)).await;
    let ca_file = h.file("ca.pem", &Authority::new("old CA").pem());
    let jobs = https_job("rotating", &[path_line("ca_file", &ca_file)]);
    h.start(&jobs, &[("rotating", exporter.addr.to_string())]);
    h.wait_scraped(&["rotating"]).await;
    let error = h.assert_down("rotating");
    assert!(error.contains("unknown authority"), "{error}");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    wait_for("a scrape with the new CA", || {
        !h.values("tls_metric", "rotating").is_empty()
    })
    .await;
    assert_eq!(h.target("rotating").0, TargetHealth::Up);
    h.manager.stop().await;
}
