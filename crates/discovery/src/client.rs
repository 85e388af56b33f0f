//! The HTTP client of the HTTP-based providers (HTTP SD, Kubernetes,
//! Consul), built from Prometheus's `<http_client_config>`: redirects,
//! proxies, TLS (`tls_config`, rebuilt when its files change), and the
//! basic-auth or `Authorization` header, whose secret files are read on
//! every request as Prometheus does.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearth_config::http::HttpClientConfig;
use reqwest::RequestBuilder;

use crate::tls::{tls_client_config, tls_file_digests, TlsFileDigests};
use crate::{Error, Result};

/// The `User-Agent` of discovery requests.
pub(crate) const USER_AGENT: &str = concat!("Hearth/", env!("CARGO_PKG_VERSION"));

/// A reqwest client plus the credentials it adds to each request.
#[derive(Debug, Clone)]
pub(crate) struct HttpClient {
    client: Arc<Mutex<BuiltClient>>,
    config: HttpClientConfig,
    timeout: Option<Duration>,
}

/// The reqwest client and the state of the TLS files it was built from.
#[derive(Debug)]
struct BuiltClient {
    client: reqwest::Client,
    tls_files: TlsFileDigests,
}

impl HttpClient {
    /// A client whose requests time out after `timeout` (none when `None`,
    /// for watches and blocking queries that set their own).
    pub(crate) fn new(config: &HttpClientConfig, timeout: Option<Duration>) -> Result<Self> {
        if config.oauth2.is_some() {
            return Err(Error::Client(
                "oauth2 is not supported by discovery yet".into(),
            ));
        }
        let tls_files = tls_file_digests(&config.tls_config);
        let client = build_client(config, timeout)?;
        Ok(HttpClient {
            client: Arc::new(Mutex::new(BuiltClient { client, tls_files })),
            config: config.clone(),
            timeout,
        })
    }

    /// A GET request to `url` with the configured credentials.
    pub(crate) fn get(&self, url: &str) -> Result<RequestBuilder> {
        let request = self.current()?.get(url);
        self.authorize(request, url)
    }

    /// The client, rebuilt first if a file of `tls_config` changed; while
    /// the new files do not make a client, the error and no request.
    fn current(&self) -> Result<reqwest::Client> {
        let mut built = self
            .client
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let tls_files = tls_file_digests(&self.config.tls_config);
        if tls_files != built.tls_files {
            built.client = build_client(&self.config, self.timeout)?;
            built.tls_files = tls_files;
        }
        Ok(built.client.clone())
    }

    fn authorize(&self, request: RequestBuilder, url: &str) -> Result<RequestBuilder> {
        if let Some(basic) = &self.config.basic_auth {
            let password = if basic.password_file.is_empty() {
                basic.password.expose().to_string()
            } else {
                read_secret(&basic.password_file, url)?
            };
            return Ok(request.basic_auth(&basic.username, Some(password)));
        }
        if let Some(auth) = &self.config.authorization {
            let credentials = if auth.credentials_file.is_empty() {
                auth.credentials.expose().to_string()
            } else {
                read_secret(&auth.credentials_file, url)?
            };
            let kind = if auth.kind.is_empty() {
                "Bearer"
            } else {
                &auth.kind
            };
            return Ok(request.header(
                reqwest::header::AUTHORIZATION,
                format!("{kind} {credentials}"),
            ));
        }
        Ok(request)
    }
}

/// The reqwest client of `config`; requests time out after `timeout`.
fn build_client(config: &HttpClientConfig, timeout: Option<Duration>) -> Result<reqwest::Client> {
    let tls = tls_client_config(&config.tls_config).map_err(Error::Client)?;
    let mut builder = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .use_preconfigured_tls(tls);
    if let Some(timeout) = timeout {
        builder = builder.timeout(timeout);
    }
    if !config.follow_redirects {
        builder = builder.redirect(reqwest::redirect::Policy::none());
    }
    if !config.proxy_url.is_empty() {
        let proxy = reqwest::Proxy::all(&config.proxy_url)
            .map_err(|e| Error::Client(format!("proxy_url {}: {e}", config.proxy_url)))?
            .no_proxy(reqwest::NoProxy::from_string(&config.no_proxy));
        builder = builder.proxy(proxy);
    } else if !config.proxy_from_environment {
        builder = builder.no_proxy();
    }
    builder.build().map_err(|e| Error::Client(e.to_string()))
}

/// A secret file's content without surrounding whitespace.
pub(crate) fn read_secret(path: &str, url: &str) -> Result<String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| Error::http(url, format!("read secret file {path}: {e}")))
}
