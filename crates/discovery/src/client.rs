//! The HTTP client of the HTTP-based providers (HTTP SD, Kubernetes,
//! Consul), built from Prometheus's `<http_client_config>`: redirects,
//! proxies, and the basic-auth or `Authorization` header, whose secret
//! files are read on every request as Prometheus does.

use std::time::Duration;

use hearth_config::http::HttpClientConfig;
use reqwest::RequestBuilder;

use crate::{Error, Result};

/// The `User-Agent` of discovery requests.
pub(crate) const USER_AGENT: &str = concat!("Hearth/", env!("CARGO_PKG_VERSION"));

/// A reqwest client plus the credentials it adds to each request.
#[derive(Debug, Clone)]
pub(crate) struct HttpClient {
    client: reqwest::Client,
    config: HttpClientConfig,
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
        if !config.tls_config.is_zero() {
            return Err(Error::Client(
                "tls_config is not supported: Hearth's discovery is built without TLS".into(),
            ));
        }
        let mut builder = reqwest::Client::builder().user_agent(USER_AGENT);
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
        let client = builder.build().map_err(|e| Error::Client(e.to_string()))?;
        Ok(HttpClient {
            client,
            config: config.clone(),
        })
    }

    /// A GET request to `url` with the configured credentials.
    pub(crate) fn get(&self, url: &str) -> Result<RequestBuilder> {
        let request = self.client.get(url);
        self.authorize(request, url)
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

/// A secret file's content without surrounding whitespace.
pub(crate) fn read_secret(path: &str, url: &str) -> Result<String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| Error::http(url, format!("read secret file {path}: {e}")))
}
