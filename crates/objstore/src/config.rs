//! The bucket configuration in Thanos's objstore format
//! (`--objstore.config-file`): `type` (`S3` or `FILESYSTEM`, case
//! insensitive as in Thanos), `config` with the provider's fields, and an
//! optional `prefix` under which every object lives. Unknown types and
//! fields are errors naming them, with their line and column.
//!
//! ```yaml
//! type: S3
//! config:
//!   bucket: hearth
//!   endpoint: 127.0.0.1:9000     # host[:port], no scheme, as in Thanos
//!   access_key: hearth
//!   secret_key: hearth-secret
//!   insecure: true               # http instead of https
//! prefix: tenant-a
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;
use object_store::{ClientOptions, ObjectStore, RetryConfig};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Deserializer};

use crate::{Error, Result};

/// Bucket types Thanos knows that Hearth does not implement (yet).
const UNSUPPORTED_TYPES: &[&str] = &[
    "GCS",
    "AZURE",
    "SWIFT",
    "COS",
    "ALIYUNOSS",
    "BOS",
    "OCI",
    "OBS",
];

/// A parsed objstore configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketConfig {
    pub provider: ProviderConfig,
    /// Every object lives under this prefix (empty: the bucket's root).
    pub prefix: String,
}

/// The `type` and `config` of a bucket.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderConfig {
    S3(Box<S3Config>),
    Filesystem(FilesystemConfig),
}

/// `type: S3`, with the fields of Thanos's S3 client.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub bucket: String,
    /// `host[:port]` without scheme, e.g. `s3.amazonaws.com` or
    /// `127.0.0.1:9000`. A value with a scheme is accepted too.
    pub endpoint: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub access_key: String,
    #[serde(default)]
    pub secret_key: String,
    #[serde(default)]
    pub session_token: String,
    /// Plain http instead of https.
    #[serde(default)]
    pub insecure: bool,
    /// `auto` (default), `path` or `virtual-hosted`. Auto uses path style,
    /// which every S3-compatible server supports.
    #[serde(default)]
    pub bucket_lookup_type: String,
    /// Size of the parts of a multipart upload, in bytes; files larger than
    /// one part are uploaded in parts. Thanos's default: 64 MiB.
    #[serde(default)]
    pub part_size: u64,
    /// Retries of transient errors (timeouts, 5xx, refused connections);
    /// Thanos's default: 10.
    #[serde(default)]
    pub max_retries: Option<u32>,
    #[serde(default)]
    pub http_config: HttpConfig,
    /// Must be false: version 2 signatures are not supported.
    #[serde(default)]
    pub signature_version2: bool,
    /// Accepted for compatibility with Thanos configs; no effect.
    #[serde(default)]
    pub aws_sdk_auth: Option<IgnoredAny>,
    /// Accepted for compatibility with Thanos configs; no effect.
    #[serde(default)]
    pub put_user_metadata: Option<IgnoredAny>,
    /// Accepted for compatibility with Thanos configs; no effect.
    #[serde(default)]
    pub trace: Option<IgnoredAny>,
    /// Accepted for compatibility with Thanos configs; no effect.
    #[serde(default)]
    pub list_objects_version: Option<IgnoredAny>,
    /// Accepted for compatibility with Thanos configs; no effect.
    #[serde(default)]
    pub send_content_md5: Option<IgnoredAny>,
    /// Accepted for compatibility with Thanos configs; no effect.
    #[serde(default)]
    pub disable_multipart: Option<IgnoredAny>,
}

/// `config.http_config` of an S3 bucket.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Idle connections are closed after this (Thanos: `1m30s`).
    #[serde(default, deserialize_with = "duration_opt")]
    pub idle_conn_timeout: Option<Duration>,
    /// Timeout of a whole request (Thanos: `2m`, for the response header).
    #[serde(default, deserialize_with = "duration_opt")]
    pub response_header_timeout: Option<Duration>,
    /// Timeout of connecting (Thanos's `tls_handshake_timeout` is the
    /// closest: `10s`).
    #[serde(default, deserialize_with = "duration_opt")]
    pub tls_handshake_timeout: Option<Duration>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
    #[serde(default)]
    pub max_idle_conns_per_host: Option<usize>,
    /// Accepted for compatibility with Thanos configs; no effect.
    #[serde(default)]
    pub expect_continue_timeout: Option<IgnoredAny>,
    /// Accepted for compatibility with Thanos configs; no effect.
    #[serde(default)]
    pub max_idle_conns: Option<IgnoredAny>,
    /// Accepted for compatibility with Thanos configs; no effect.
    #[serde(default)]
    pub max_conns_per_host: Option<IgnoredAny>,
    /// Accepted for compatibility with Thanos configs; no effect.
    #[serde(default)]
    pub disable_compression: Option<IgnoredAny>,
}

/// `type: FILESYSTEM`: objects are files under `directory`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesystemConfig {
    pub directory: PathBuf,
}

/// Thanos's default part size of multipart uploads.
pub const DEFAULT_PART_SIZE: u64 = 64 << 20;
/// The smallest part S3 accepts (except the last).
pub const MIN_PART_SIZE: u64 = 5 << 20;
/// Thanos's default number of retries of an S3 operation.
pub const DEFAULT_MAX_RETRIES: u32 = 10;

/// First pass: the top level alone, to learn the type.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopLevel {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    #[allow(dead_code)]
    config: Option<IgnoredAny>,
    #[serde(default)]
    #[allow(dead_code)]
    prefix: Option<String>,
}

/// Second pass: the top level with the provider's typed config.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Typed<C> {
    #[serde(rename = "type")]
    #[allow(dead_code)]
    kind: String,
    config: C,
    #[serde(default, deserialize_with = "null_as_default")]
    prefix: String,
}

impl BucketConfig {
    /// Parses Thanos's objstore YAML.
    pub fn from_yaml(text: &str) -> Result<Self> {
        let top: TopLevel = parse_yaml(text)?;
        let kind = top.kind.to_ascii_uppercase();
        match kind.as_str() {
            "S3" => {
                let typed: Typed<S3Config> = parse_yaml(text)?;
                typed.config.validate()?;
                Ok(BucketConfig {
                    provider: ProviderConfig::S3(Box::new(typed.config)),
                    prefix: typed.prefix,
                })
            }
            "FILESYSTEM" => {
                let typed: Typed<FilesystemConfig> = parse_yaml(text)?;
                if typed.config.directory.as_os_str().is_empty() {
                    return Err(Error::Config("config.directory: must not be empty".into()));
                }
                Ok(BucketConfig {
                    provider: ProviderConfig::Filesystem(typed.config),
                    prefix: typed.prefix,
                })
            }
            k if UNSUPPORTED_TYPES.contains(&k) => Err(Error::Config(format!(
                "type: bucket type {:?} is not supported (supported: S3, FILESYSTEM)",
                top.kind
            ))),
            _ => Err(Error::Config(format!(
                "type: unknown bucket type {:?} (supported: S3, FILESYSTEM)",
                top.kind
            ))),
        }
    }

    /// Reads and parses an objstore YAML file.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::io("read bucket config", path, e))?;
        Self::from_yaml(&text).map_err(|e| match e {
            Error::Config(m) => Error::Config(format!("{}: {m}", path.display())),
            e => e,
        })
    }

    /// A short description for logs and the `bucket` metric label:
    /// `s3:<bucket>` or `filesystem:<directory>`.
    pub fn name(&self) -> String {
        match &self.provider {
            ProviderConfig::S3(c) => format!("s3:{}", c.bucket),
            ProviderConfig::Filesystem(c) => format!("filesystem:{}", c.directory.display()),
        }
    }

    /// Builds the `object_store` client, under the prefix if any. The S3
    /// client's own retries are off: [`crate::Bucket`] retries.
    pub fn build_store(&self) -> Result<Arc<dyn ObjectStore>> {
        let store: Arc<dyn ObjectStore> = match &self.provider {
            ProviderConfig::S3(c) => Arc::new(c.build()?),
            ProviderConfig::Filesystem(c) => {
                std::fs::create_dir_all(&c.directory)
                    .map_err(|e| Error::io("create bucket directory", &c.directory, e))?;
                let fs = LocalFileSystem::new_with_prefix(&c.directory)
                    .map_err(|e| Error::Config(format!("config.directory: {e}")))?
                    .with_automatic_cleanup(true);
                Arc::new(fs)
            }
        };
        let prefix = self.prefix.trim_matches('/');
        if prefix.is_empty() {
            Ok(store)
        } else {
            Ok(Arc::new(PrefixStore::new(store, prefix)))
        }
    }

    /// The part size of multipart uploads.
    pub fn part_size(&self) -> u64 {
        match &self.provider {
            ProviderConfig::S3(c) if c.part_size > 0 => c.part_size.max(MIN_PART_SIZE),
            _ => DEFAULT_PART_SIZE,
        }
    }

    /// Attempts of an operation failing with transient errors.
    pub fn max_attempts(&self) -> u32 {
        match &self.provider {
            ProviderConfig::S3(c) => c.max_retries.unwrap_or(DEFAULT_MAX_RETRIES) + 1,
            ProviderConfig::Filesystem(_) => 1,
        }
    }
}

impl S3Config {
    fn validate(&self) -> Result<()> {
        if self.bucket.is_empty() {
            return Err(Error::Config("config.bucket: must not be empty".into()));
        }
        if self.endpoint.is_empty() {
            return Err(Error::Config("config.endpoint: must not be empty".into()));
        }
        if self.access_key.is_empty() != self.secret_key.is_empty() {
            return Err(Error::Config(
                "config: access_key and secret_key must be set together".into(),
            ));
        }
        if self.signature_version2 {
            return Err(Error::Config(
                "config.signature_version2: version 2 signatures are not supported".into(),
            ));
        }
        match self.bucket_lookup_type.as_str() {
            "" | "auto" | "path" | "virtual-hosted" => Ok(()),
            other => Err(Error::Config(format!(
                "config.bucket_lookup_type: unknown value {other:?} (auto, path, virtual-hosted)"
            ))),
        }
    }

    /// The endpoint URL: `https://<endpoint>`, or `http://` when insecure.
    pub fn endpoint_url(&self) -> String {
        if self.endpoint.contains("://") {
            self.endpoint.clone()
        } else if self.insecure {
            format!("http://{}", self.endpoint)
        } else {
            format!("https://{}", self.endpoint)
        }
    }

    fn build(&self) -> Result<object_store::aws::AmazonS3> {
        let region = if self.region.is_empty() {
            "us-east-1"
        } else {
            &self.region
        };
        let url = self.endpoint_url();
        let mut options = ClientOptions::new()
            .with_allow_http(url.starts_with("http://"))
            .with_allow_invalid_certificates(self.http_config.insecure_skip_verify)
            .with_connect_timeout(
                self.http_config
                    .tls_handshake_timeout
                    .unwrap_or(Duration::from_secs(10)),
            )
            .with_timeout(
                self.http_config
                    .response_header_timeout
                    .unwrap_or(Duration::from_secs(120)),
            )
            .with_pool_idle_timeout(
                self.http_config
                    .idle_conn_timeout
                    .unwrap_or(Duration::from_secs(90)),
            );
        if let Some(n) = self.http_config.max_idle_conns_per_host {
            options = options.with_pool_max_idle_per_host(n);
        }
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&self.bucket)
            .with_endpoint(url)
            .with_region(region)
            .with_virtual_hosted_style_request(self.bucket_lookup_type == "virtual-hosted")
            .with_client_options(options)
            .with_retry(RetryConfig {
                max_retries: 0,
                ..RetryConfig::default()
            });
        if !self.access_key.is_empty() {
            builder = builder
                .with_access_key_id(&self.access_key)
                .with_secret_access_key(&self.secret_key);
        }
        if !self.session_token.is_empty() {
            builder = builder.with_token(&self.session_token);
        }
        builder
            .build()
            .map_err(|e| Error::Config(format!("s3 bucket {:?}: {e}", self.bucket)))
    }
}

/// Strict YAML parsing as in `hearth-config`: errors start with the path of
/// the offending field and end with its line and column.
fn parse_yaml<T: DeserializeOwned>(text: &str) -> Result<T> {
    let options = serde_saphyr::options! { with_snippet: false };
    let mut path = String::new();
    let parsed = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde_path_to_error::deserialize::<_, Option<T>>(de).map_err(|e| {
            path = e.path().to_string();
            e.into_inner()
        })
    });
    match parsed {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err(Error::Config("empty document".into())),
        Err(e) => Err(Error::Config(match path.as_str() {
            "" | "." | "?" => e.to_string(),
            _ => format!("{path}: {e}"),
        })),
    }
}

fn null_as_default<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn duration_opt<'de, D>(d: D) -> std::result::Result<Option<Duration>, D::Error>
where
    D: Deserializer<'de>,
{
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) => parse_duration(&s)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// Parses a Go/Prometheus duration such as `90s`, `1m30s`, `500ms`, `2h`.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let bad = || format!("not a valid duration string: {s:?}");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            "d" => Duration::from_secs(86400),
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += unit * u32::try_from(n).map_err(|_| bad())?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_thanos_s3_config() {
        let c = BucketConfig::from_yaml(
            "type: s3\nconfig:\n  bucket: hearth\n  endpoint: 127.0.0.1:9000\n  \
             access_key: hearth\n  secret_key: hearth-secret\n  insecure: true\n  \
             region: eu-west-1\n  http_config:\n    idle_conn_timeout: 1m30s\n  \
             trace:\n    enable: true\nprefix: tenant-a\n",
        )
        .unwrap();
        let ProviderConfig::S3(s3) = &c.provider else {
            panic!("not s3: {c:?}")
        };
        assert_eq!(s3.bucket, "hearth");
        assert_eq!(s3.endpoint_url(), "http://127.0.0.1:9000");
        assert_eq!(
            s3.http_config.idle_conn_timeout,
            Some(Duration::from_secs(90))
        );
        assert_eq!(c.prefix, "tenant-a");
        assert_eq!(c.max_attempts(), 11);
        c.build_store().unwrap();
    }

    #[test]
    fn secure_endpoint_uses_https() {
        let s3 = S3Config {
            endpoint: "s3.amazonaws.com".into(),
            ..S3Config::default()
        };
        assert_eq!(s3.endpoint_url(), "https://s3.amazonaws.com");
    }

    #[test]
    fn parses_filesystem_config() {
        let c =
            BucketConfig::from_yaml("type: FILESYSTEM\nconfig:\n  directory: /tmp/b\n").unwrap();
        assert_eq!(
            c.provider,
            ProviderConfig::Filesystem(FilesystemConfig {
                directory: "/tmp/b".into()
            })
        );
        assert_eq!(c.prefix, "");
    }

    fn err(yaml: &str) -> String {
        BucketConfig::from_yaml(yaml).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_offending_field_or_type() {
        let e = err("type: FILESYSTEM\nconfig:\n  directory: /tmp/b\n  dir: x\n");
        assert!(e.contains("dir"), "{e}");
        let e = err("type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  acces_key: x\n");
        assert!(e.contains("acces_key"), "{e}");
        let e =
            err("type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  http_config:\n    bogus: 1\n");
        assert!(e.contains("bogus"), "{e}");
        let e = err("type: MINIO\nconfig: {}\n");
        assert!(e.contains("unknown bucket type \"MINIO\""), "{e}");
        let e = err("type: GCS\nconfig: {}\n");
        assert!(e.contains("not supported"), "{e}");
        let e = err("type: FILESYSTEM\nconfig:\n  directory: x\nprefixx: a\n");
        assert!(e.contains("prefixx"), "{e}");
        let e = err("config:\n  directory: x\n");
        assert!(e.contains("type"), "{e}");
        let e = err("type: S3\nconfig:\n  endpoint: e\n");
        assert!(e.contains("bucket"), "{e}");
        let e = err("type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  access_key: a\n");
        assert!(e.contains("secret_key"), "{e}");
        let e = err(
            "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  http_config:\n    \
             idle_conn_timeout: soon\n",
        );
        assert!(e.contains("idle_conn_timeout"), "{e}");
        assert!(err("").contains("empty"));
    }

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("1.5s").is_err());
        assert!(parse_duration("").is_err());
    }
}
