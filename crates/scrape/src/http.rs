//! The scrape request: a job's HTTP client (auth, proxy, redirects, TLS
//! from `tls_config`), the headers Prometheus 3 sends (`Accept` from
//! `scrape_protocols`, `Accept-Encoding`, `User-Agent`,
//! `X-Prometheus-Scrape-Timeout-Seconds`), and reading the answer within
//! `body_size_limit`, gunzipped.

use std::io::Read;
use std::sync::Arc;

use hearth_config::http::HttpClientConfig;
use hearth_config::{NameValidationScheme, ScrapeConfig, ScrapeProtocol};
use parking_lot::Mutex;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, ACCEPT_ENCODING, AUTHORIZATION};

use hearth_discovery::tls::{
    describe_request_error, tls_client_config, tls_file_digests, TlsFileDigests,
};

use crate::error::{Error, Result};

/// The `User-Agent` of scrapes.
pub const USER_AGENT: &str = concat!("Hearth/", env!("CARGO_PKG_VERSION"));

/// Prometheus 3's default `scrape_protocols`.
const DEFAULT_PROTOCOLS: [ScrapeProtocol; 4] = [
    ScrapeProtocol::OpenMetricsText1_0_0,
    ScrapeProtocol::OpenMetricsText0_0_1,
    ScrapeProtocol::PrometheusText1_0_0,
    ScrapeProtocol::PrometheusText0_0_4,
];

/// Prometheus 3's default `scrape_protocols` with native-histogram scraping
/// (`scrape_native_histograms: true`): protobuf first, the only format that
/// carries native histograms. Hearth reads their classic series.
const NATIVE_HISTOGRAM_PROTOCOLS: [ScrapeProtocol; 5] = [
    ScrapeProtocol::PrometheusProto,
    ScrapeProtocol::OpenMetricsText1_0_0,
    ScrapeProtocol::OpenMetricsText0_0_1,
    ScrapeProtocol::PrometheusText1_0_0,
    ScrapeProtocol::PrometheusText0_0_4,
];

/// The protocols a job offers, in order of preference: its
/// `scrape_protocols` (inherited from `global` when unset), else Prometheus
/// 3's default, which asks for protobuf first only when the job scrapes
/// native histograms.
pub fn scrape_protocols(job: &ScrapeConfig) -> &[ScrapeProtocol] {
    match &job.scrape_protocols {
        Some(protocols) => protocols,
        None if job.scrape_native_histograms == Some(true) => &NATIVE_HISTOGRAM_PROTOCOLS,
        None => &DEFAULT_PROTOCOLS,
    }
}

/// Prometheus 3's `acceptHeader`: each protocol's media range, with
/// `escaping=` on the 1.0.0 text formats and decreasing q-values from 0.6,
/// then `*/*`. `None` is the default protocol list (without protobuf).
pub fn accept_header(protocols: Option<&[ScrapeProtocol]>, escaping: &str) -> String {
    let protocols = protocols.unwrap_or(&DEFAULT_PROTOCOLS);
    let mut weight = 6;
    let mut parts = Vec::new();
    for protocol in protocols {
        let range = match protocol {
            ScrapeProtocol::PrometheusProto => {
                "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;\
                 encoding=delimited"
                    .to_string()
            }
            ScrapeProtocol::OpenMetricsText1_0_0 => {
                format!("application/openmetrics-text;version=1.0.0;escaping={escaping}")
            }
            ScrapeProtocol::OpenMetricsText0_0_1 => {
                "application/openmetrics-text;version=0.0.1".to_string()
            }
            ScrapeProtocol::PrometheusText1_0_0 => {
                format!("text/plain;version=1.0.0;escaping={escaping}")
            }
            ScrapeProtocol::PrometheusText0_0_4 => "text/plain;version=0.0.4".to_string(),
        };
        parts.push(format!("{range};q=0.{weight}"));
        weight -= 1;
    }
    parts.push(format!("*/*;q=0.{weight}"));
    parts.join(",")
}

/// The `escaping=` scheme a job asks for: its `metric_name_escaping_scheme`,
/// else `allow-utf-8` under UTF-8 validation and `underscores` under legacy.
pub fn escaping_scheme(job: &ScrapeConfig, global: Option<NameValidationScheme>) -> String {
    if !job.metric_name_escaping_scheme.is_empty() {
        return job.metric_name_escaping_scheme.clone();
    }
    match job.metric_name_validation_scheme.or(global) {
        Some(NameValidationScheme::Legacy) => "underscores".into(),
        _ => "allow-utf-8".into(),
    }
}

/// A scrape answer that was read in full.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub body: Vec<u8>,
    pub content_type: String,
}

/// The HTTP side of a job's scrapes.
#[derive(Debug, Clone)]
pub(crate) struct Scraper {
    client: Arc<Mutex<JobClient>>,
    job: String,
    headers: HeaderMap,
    auth: Auth,
    body_size_limit: u64,
}

#[derive(Debug, Clone)]
enum Auth {
    None,
    Basic {
        username: String,
        password: String,
        password_file: String,
    },
    Authorization {
        kind: String,
        credentials: String,
        credentials_file: String,
    },
}

impl Scraper {
    pub fn new(job: &ScrapeConfig, global_scheme: Option<NameValidationScheme>) -> Scraper {
        let escaping = escaping_scheme(job, global_scheme);
        let mut headers = HeaderMap::new();
        let accept = accept_header(Some(scrape_protocols(job)), &escaping);
        if let Ok(v) = HeaderValue::from_str(&accept) {
            headers.insert(ACCEPT, v);
        }
        headers.insert(
            ACCEPT_ENCODING,
            HeaderValue::from_static(if job.enable_compression {
                "gzip"
            } else {
                "identity"
            }),
        );
        headers.insert(
            reqwest::header::USER_AGENT,
            HeaderValue::from_static(USER_AGENT),
        );
        let timeout_seconds = job.scrape_timeout.as_millis() as f64 / 1000.0;
        if let Ok(v) = HeaderValue::from_str(&timeout_seconds.to_string()) {
            headers.insert("X-Prometheus-Scrape-Timeout-Seconds", v);
        }
        let http = &job.http_client;
        let auth = if let Some(b) = &http.basic_auth {
            Auth::Basic {
                username: b.username.clone(),
                password: b.password.expose().to_string(),
                password_file: b.password_file.clone(),
            }
        } else if let Some(a) = &http.authorization {
            Auth::Authorization {
                kind: if a.kind.is_empty() {
                    "Bearer".into()
                } else {
                    a.kind.clone()
                },
                credentials: a.credentials.expose().to_string(),
                credentials_file: a.credentials_file.clone(),
            }
        } else {
            Auth::None
        };
        Scraper {
            client: Arc::new(Mutex::new(JobClient::new(&job.http_client))),
            job: job.job_name.clone(),
            headers,
            auth,
            body_size_limit: job.body_size_limit.bytes(),
        }
    }

    /// GETs `url` and reads the whole answer. The caller bounds the time.
    pub async fn fetch(&self, url: &str) -> Result<Fetched> {
        let client = self
            .client
            .lock()
            .current()
            .map_err(|message| Error::Client {
                job: self.job.clone(),
                message,
            })?;
        let request_error = |e: &dyn std::fmt::Display| Error::Request {
            url: url.to_string(),
            message: e.to_string(),
        };
        let send_error = |e: reqwest::Error| Error::Request {
            url: url.to_string(),
            message: describe_request_error(&e),
        };
        let mut request = client.get(url).headers(self.headers.clone());
        match &self.auth {
            Auth::None => {}
            Auth::Basic {
                username,
                password,
                password_file,
            } => {
                let password = if password_file.is_empty() {
                    password.trim().to_string()
                } else {
                    read_secret(password_file).map_err(|e| request_error(&e))?
                };
                request = request.basic_auth(username, Some(password));
            }
            Auth::Authorization {
                kind,
                credentials,
                credentials_file,
            } => {
                let credentials = if credentials_file.is_empty() {
                    credentials.trim().to_string()
                } else {
                    read_secret(credentials_file).map_err(|e| request_error(&e))?
                };
                let value = HeaderValue::from_str(&format!("{kind} {credentials}"))
                    .map_err(|e| request_error(&e))?;
                request = request.header(AUTHORIZATION, value);
            }
        }
        let mut response = request.send().await.map_err(send_error)?;
        if response.status() != reqwest::StatusCode::OK {
            let status = response.status();
            return Err(Error::Status(format!(
                "{} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or_default()
            )));
        }
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let content_type = header(reqwest::header::CONTENT_TYPE);
        let gzip = header(reqwest::header::CONTENT_ENCODING).eq_ignore_ascii_case("gzip");
        let limit = self.body_size_limit;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(send_error)? {
            body.extend_from_slice(&chunk);
            if !gzip && limit > 0 && body.len() as u64 >= limit {
                return Err(Error::BodySizeLimit);
            }
        }
        if gzip {
            body = gunzip(&body, limit)?;
        }
        Ok(Fetched { body, content_type })
    }
}

/// A job's reqwest client, rebuilt when a file of its `tls_config` changes.
#[derive(Debug)]
struct JobClient {
    config: HttpClientConfig,
    client: std::result::Result<reqwest::Client, String>,
    tls_files: TlsFileDigests,
}

impl JobClient {
    fn new(config: &HttpClientConfig) -> JobClient {
        JobClient {
            config: config.clone(),
            tls_files: tls_file_digests(&config.tls_config),
            client: build_client(config),
        }
    }

    /// The client for the next scrape, or why there is none.
    fn current(&mut self) -> std::result::Result<reqwest::Client, String> {
        let tls_files = tls_file_digests(&self.config.tls_config);
        if tls_files != self.tls_files {
            self.tls_files = tls_files;
            self.client = build_client(&self.config);
        }
        self.client.clone()
    }
}

fn build_client(http: &HttpClientConfig) -> std::result::Result<reqwest::Client, String> {
    if http.oauth2.is_some() {
        return Err("oauth2 is not supported".into());
    }
    let redirects = if http.follow_redirects {
        reqwest::redirect::Policy::limited(10)
    } else {
        reqwest::redirect::Policy::none()
    };
    let mut builder = reqwest::Client::builder()
        .redirect(redirects)
        .use_preconfigured_tls(tls_client_config(&http.tls_config)?);
    if !http.proxy_url.is_empty() {
        let proxy = reqwest::Proxy::all(&http.proxy_url).map_err(|e| e.to_string())?;
        let proxy = proxy.no_proxy(reqwest::NoProxy::from_string(&http.no_proxy));
        builder = builder.proxy(proxy);
    } else if !http.proxy_from_environment {
        builder = builder.no_proxy();
    }
    builder.build().map_err(|e| e.to_string())
}

fn read_secret(path: &str) -> std::io::Result<String> {
    Ok(std::fs::read_to_string(path)?.trim().to_string())
}

/// Decodes a gzip body, failing once the output reaches `limit` (0 = none).
fn gunzip(compressed: &[u8], limit: u64) -> Result<Vec<u8>> {
    let decoder = flate2::read::GzDecoder::new(compressed);
    let mut out = Vec::new();
    let read = if limit > 0 {
        decoder.take(limit).read_to_end(&mut out)
    } else {
        let mut decoder = decoder;
        decoder.read_to_end(&mut out)
    };
    read.map_err(|e| Error::Gzip(e.to_string()))?;
    if limit > 0 && out.len() as u64 >= limit {
        return Err(Error::BodySizeLimit);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_accept_header_is_prometheus_3s() {
        assert_eq!(
            accept_header(None, "allow-utf-8"),
            "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,\
             application/openmetrics-text;version=0.0.1;q=0.5,\
             text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,\
             text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
        );
    }

    #[test]
    fn configured_protocols_keep_their_order() {
        assert_eq!(
            accept_header(
                Some(&[
                    ScrapeProtocol::PrometheusText0_0_4,
                    ScrapeProtocol::OpenMetricsText1_0_0
                ]),
                "underscores"
            ),
            "text/plain;version=0.0.4;q=0.6,\
             application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.5,*/*;q=0.4"
        );
    }

    #[test]
    fn protobuf_is_offered_when_configured() {
        assert_eq!(
            accept_header(
                Some(&[
                    ScrapeProtocol::PrometheusProto,
                    ScrapeProtocol::PrometheusText0_0_4
                ]),
                "allow-utf-8"
            ),
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;\
             encoding=delimited;q=0.6,text/plain;version=0.0.4;q=0.5,*/*;q=0.4"
        );
    }

    #[test]
    fn native_histograms_put_protobuf_first_by_default() {
        let job = |yaml: &str| {
            let config =
                hearth_config::Config::parse(&format!("scrape_configs:\n  - job_name: j\n{yaml}"))
                    .expect("valid config");
            config.scrape_configs[0].clone()
        };
        let plain = job("");
        assert_eq!(scrape_protocols(&plain), DEFAULT_PROTOCOLS);
        let native = job("    scrape_native_histograms: true\n");
        assert_eq!(
            accept_header(Some(scrape_protocols(&native)), "allow-utf-8"),
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;\
             encoding=delimited;q=0.6,\
             application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,\
             application/openmetrics-text;version=0.0.1;q=0.4,\
             text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,\
             text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
        );
        let configured = job(
            "    scrape_native_histograms: true\n    scrape_protocols: [PrometheusText0.0.4]\n",
        );
        assert_eq!(
            scrape_protocols(&configured),
            [ScrapeProtocol::PrometheusText0_0_4]
        );
    }

    #[test]
    fn gunzip_respects_the_limit() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&[b'a'; 1000]).unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(gunzip(&gz, 0).unwrap().len(), 1000);
        assert_eq!(gunzip(&gz, 1001).unwrap().len(), 1000);
        assert!(matches!(gunzip(&gz, 1000), Err(Error::BodySizeLimit)));
        assert!(matches!(gunzip(b"nope", 0), Err(Error::Gzip(_))));
    }
}
