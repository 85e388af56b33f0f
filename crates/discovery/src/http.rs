//! `http_sd_configs`: target groups fetched from an HTTP endpoint every
//! `refresh_interval`, in the file-discovery JSON format. A failed fetch
//! keeps the previous groups.

use std::time::Duration;

use hearth_config::discovery::{HttpSdConfig, StaticConfig};

use crate::client::HttpClient;
use crate::static_config::group_from_static;
use crate::{Error, GroupSender, Result, TargetGroup};

/// The group label holding the URL the group was fetched from.
pub const URL_LABEL: &str = "__meta_url";

/// One `http_sd_configs` entry.
#[derive(Debug, Clone)]
pub struct HttpDiscovery {
    url: String,
    client: HttpClient,
    refresh_interval: Duration,
}

impl HttpDiscovery {
    /// Fails on HTTP client settings Hearth does not support (oauth2, TLS).
    pub fn new(config: &HttpSdConfig) -> Result<Self> {
        let refresh_interval = config.refresh_interval.as_std();
        // The refresh interval is also the request timeout, as in Prometheus.
        let timeout = (!refresh_interval.is_zero()).then_some(refresh_interval);
        Ok(HttpDiscovery {
            url: config.url.clone(),
            client: HttpClient::new(&config.http_client, timeout)?,
            refresh_interval,
        })
    }

    /// Fetches now and then every refresh interval; sends the groups of
    /// each successful fetch, with empty groups for indices that vanished.
    pub async fn run(self, updates: GroupSender) {
        let mut previous_count = 0;
        loop {
            match self.fetch().await {
                Ok(mut groups) => {
                    let count = groups.len();
                    groups.extend(
                        (count..previous_count).map(|i| TargetGroup::empty(self.source(i))),
                    );
                    previous_count = count;
                    if updates.send(groups).is_err() {
                        return;
                    }
                }
                Err(e) => tracing::error!(error = %e, "HTTP discovery: keeping previous targets"),
            }
            tokio::time::sleep(self.refresh_interval.max(Duration::from_millis(10))).await;
        }
    }

    fn source(&self, index: usize) -> String {
        format!("{}:{index}", self.url)
    }

    /// One GET, as Prometheus's `http.Discovery.Refresh`.
    pub async fn fetch(&self) -> Result<Vec<TargetGroup>> {
        let url = &self.url;
        let response = self
            .client
            .get(url)?
            .header(reqwest::header::ACCEPT, "application/json")
            .header(
                "X-Prometheus-Refresh-Interval-Seconds",
                format_seconds(self.refresh_interval),
            )
            .send()
            .await
            .map_err(|e| Error::http(url, e))?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(Error::http(
                url,
                format!("server returned HTTP status {}", response.status()),
            ));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !is_json_content_type(content_type) {
            return Err(Error::http(
                url,
                format!("unsupported content type {content_type:?}"),
            ));
        }
        let body = response.bytes().await.map_err(|e| Error::http(url, e))?;
        let configs: Vec<StaticConfig> =
            serde_json::from_slice(&body).map_err(|e| Error::http(url, e))?;
        Ok(configs
            .iter()
            .enumerate()
            .map(|(i, c)| group_from_static(c, self.source(i), Some((URL_LABEL, url))))
            .collect())
    }
}

/// Go's `strconv.FormatFloat(seconds, 'f', -1, 64)`: `60`, `0.5`.
fn format_seconds(d: Duration) -> String {
    let seconds = d.as_secs_f64();
    if seconds.fract() == 0.0 {
        format!("{}", seconds as u64)
    } else {
        format!("{seconds}")
    }
}

/// `^(?i:application\/json(;\s*charset=("utf-8"|utf-8))?)$`.
fn is_json_content_type(value: &str) -> bool {
    let value = value.to_ascii_lowercase();
    let Some(rest) = value.strip_prefix("application/json") else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    let Some(rest) = rest.strip_prefix(';') else {
        return false;
    };
    matches!(rest.trim_start(), "charset=utf-8" | "charset=\"utf-8\"")
}

#[cfg(test)]
mod tests;
