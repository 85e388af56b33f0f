//! The HTTP client block that Prometheus inlines into scrape jobs,
//! Alertmanager sets, remote storage and HTTP-based discovery
//! (`prometheus/common`'s `HTTPClientConfig`): authentication, TLS, proxy
//! and redirects, with its validation and `<secret>` redaction.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::yaml::{is_false, zero_if_null};

/// A string that is shown as `<secret>` when the configuration is printed
/// or debug-formatted. [`Secret::expose`] gives the value.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value itself, for the code that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "<secret>"
        })
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "<secret>" })
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Secret(
            Option::<String>::deserialize(d)?.unwrap_or_default(),
        ))
    }
}

/// `basic_auth`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    #[serde(default, deserialize_with = "zero_if_null")]
    pub username: String,
    #[serde(default, skip_serializing_if = "Secret::is_empty")]
    pub password: Secret,
    #[serde(
        default,
        deserialize_with = "zero_if_null",
        skip_serializing_if = "String::is_empty"
    )]
    pub password_file: String,
}

/// `authorization`: the `Authorization: <type> <credentials>` header.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    /// `Bearer` unless set.
    #[serde(
        rename = "type",
        default,
        deserialize_with = "zero_if_null",
        skip_serializing_if = "String::is_empty"
    )]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Secret::is_empty")]
    pub credentials: Secret,
    #[serde(
        default,
        deserialize_with = "zero_if_null",
        skip_serializing_if = "String::is_empty"
    )]
    pub credentials_file: String,
}

/// `oauth2`: the client-credentials grant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2 {
    #[serde(default, deserialize_with = "zero_if_null")]
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Secret::is_empty")]
    pub client_secret: Secret,
    #[serde(default, deserialize_with = "zero_if_null")]
    pub client_secret_file: String,
    #[serde(
        default,
        deserialize_with = "zero_if_null",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub scopes: Vec<String>,
    #[serde(default, deserialize_with = "zero_if_null")]
    pub token_url: String,
    #[serde(
        default,
        deserialize_with = "zero_if_null",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub endpoint_params: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "zero_if_null",
        skip_serializing_if = "TlsConfig::is_zero"
    )]
    pub tls_config: TlsConfig,
    #[serde(
        default,
        deserialize_with = "zero_if_null",
        skip_serializing_if = "String::is_empty"
    )]
    pub proxy_url: String,
}

/// A TLS protocol version for `min_version` / `max_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum TlsVersion {
    #[serde(rename = "TLS10")]
    Tls10,
    #[serde(rename = "TLS11")]
    Tls11,
    #[serde(rename = "TLS12")]
    Tls12,
    #[serde(rename = "TLS13")]
    Tls13,
}

impl<'de> Deserialize<'de> for TlsVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "TLS10" => Ok(TlsVersion::Tls10),
            "TLS11" => Ok(TlsVersion::Tls11),
            "TLS12" => Ok(TlsVersion::Tls12),
            "TLS13" => Ok(TlsVersion::Tls13),
            _ => Err(serde::de::Error::custom(format!(
                "unknown TLS version: {s}"
            ))),
        }
    }
}

/// `tls_config`. The inline `ca`, `cert` and `key` are Prometheus 3's
/// alternatives to the files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawTlsConfig")]
pub struct TlsConfig {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ca: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cert: String,
    #[serde(skip_serializing_if = "Secret::is_empty")]
    pub key: Secret,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ca_file: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cert_file: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub key_file: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub server_name: String,
    pub insecure_skip_verify: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_version: Option<TlsVersion>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_version: Option<TlsVersion>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTlsConfig {
    #[serde(default, deserialize_with = "zero_if_null")]
    ca: String,
    #[serde(default, deserialize_with = "zero_if_null")]
    cert: String,
    #[serde(default)]
    key: Secret,
    #[serde(default, deserialize_with = "zero_if_null")]
    ca_file: String,
    #[serde(default, deserialize_with = "zero_if_null")]
    cert_file: String,
    #[serde(default, deserialize_with = "zero_if_null")]
    key_file: String,
    #[serde(default, deserialize_with = "zero_if_null")]
    server_name: String,
    #[serde(default, deserialize_with = "zero_if_null")]
    insecure_skip_verify: bool,
    #[serde(default)]
    min_version: Option<TlsVersion>,
    #[serde(default)]
    max_version: Option<TlsVersion>,
}

impl TryFrom<RawTlsConfig> for TlsConfig {
    type Error = String;

    /// `TLSConfig.Validate` of Prometheus 3's `prometheus/common`.
    fn try_from(r: RawTlsConfig) -> Result<Self, String> {
        if !r.ca.is_empty() && !r.ca_file.is_empty() {
            return Err("at most one of ca and ca_file must be configured".into());
        }
        if !r.cert.is_empty() && !r.cert_file.is_empty() {
            return Err("at most one of cert and cert_file must be configured".into());
        }
        if !r.key.is_empty() && !r.key_file.is_empty() {
            return Err("at most one of key and key_file must be configured".into());
        }
        let has_cert = !r.cert.is_empty() || !r.cert_file.is_empty();
        let has_key = !r.key.is_empty() || !r.key_file.is_empty();
        if has_cert && !has_key {
            return Err(
                "exactly one of key or key_file must be configured when a client \
                        certificate is configured"
                    .into(),
            );
        }
        if has_key && !has_cert {
            return Err(
                "exactly one of cert or cert_file must be configured when a client \
                        key is configured"
                    .into(),
            );
        }
        Ok(TlsConfig {
            ca: r.ca,
            cert: r.cert,
            key: r.key,
            ca_file: r.ca_file,
            cert_file: r.cert_file,
            key_file: r.key_file,
            server_name: r.server_name,
            insecure_skip_verify: r.insecure_skip_verify,
            min_version: r.min_version,
            max_version: r.max_version,
        })
    }
}

impl TlsConfig {
    /// Whether nothing is set (Prometheus then omits the block).
    pub fn is_zero(&self) -> bool {
        *self == TlsConfig::default()
    }
}

/// The inlined HTTP client keys of a scrape job, an Alertmanager set, a
/// remote endpoint or an HTTP-based discovery. The deprecated `bearer_token`
/// and `bearer_token_file` are turned into [`Authorization`] with type
/// `Bearer`, as Prometheus does.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpClientConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<OAuth2>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub proxy_url: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub no_proxy: String,
    #[serde(skip_serializing_if = "is_false")]
    pub proxy_from_environment: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub proxy_connect_header: BTreeMap<String, Vec<Secret>>,
    #[serde(skip_serializing_if = "TlsConfig::is_zero")]
    pub tls_config: TlsConfig,
    pub follow_redirects: bool,
    pub enable_http2: bool,
}

impl Default for HttpClientConfig {
    /// `config.DefaultHTTPClientConfig`: follow redirects, allow HTTP/2.
    fn default() -> Self {
        HttpClientConfig {
            basic_auth: None,
            authorization: None,
            oauth2: None,
            proxy_url: String::new(),
            no_proxy: String::new(),
            proxy_from_environment: false,
            proxy_connect_header: BTreeMap::new(),
            tls_config: TlsConfig::default(),
            follow_redirects: true,
            enable_http2: true,
        }
    }
}

/// The HTTP client keys as read from YAML, before validation.
pub(crate) struct HttpClientFields {
    pub basic_auth: Option<BasicAuth>,
    pub authorization: Option<Authorization>,
    pub oauth2: Option<OAuth2>,
    pub bearer_token: Secret,
    pub bearer_token_file: String,
    pub proxy_url: String,
    pub no_proxy: String,
    pub proxy_from_environment: bool,
    pub proxy_connect_header: BTreeMap<String, Vec<Secret>>,
    pub tls_config: TlsConfig,
    pub follow_redirects: Option<bool>,
    pub enable_http2: Option<bool>,
}

impl HttpClientFields {
    /// `HTTPClientConfig.Validate` (and `ProxyConfig.Validate`), filling
    /// unset flags from `defaults`.
    pub(crate) fn into_config(
        self,
        defaults: HttpClientConfig,
    ) -> Result<HttpClientConfig, String> {
        let has_bearer = !self.bearer_token.is_empty() || !self.bearer_token_file.is_empty();
        if !self.bearer_token.is_empty() && !self.bearer_token_file.is_empty() {
            return Err(
                "at most one of bearer_token & bearer_token_file must be configured".into(),
            );
        }
        if (self.basic_auth.is_some() || self.oauth2.is_some()) && has_bearer {
            return Err(
                "at most one of basic_auth, oauth2, bearer_token & bearer_token_file \
                        must be configured"
                    .into(),
            );
        }
        if let Some(b) = &self.basic_auth {
            if !b.password.is_empty() && !b.password_file.is_empty() {
                return Err(
                    "at most one of basic_auth password & password_file must be configured".into(),
                );
            }
        }
        let mut authorization = self.authorization;
        if let Some(a) = &mut authorization {
            if has_bearer {
                return Err(
                    "authorization is not compatible with bearer_token & bearer_token_file".into(),
                );
            }
            if !a.credentials.is_empty() && !a.credentials_file.is_empty() {
                return Err(
                    "at most one of authorization credentials & credentials_file must \
                            be configured"
                        .into(),
                );
            }
            a.kind = a.kind.trim().to_string();
            if a.kind.is_empty() {
                a.kind = "Bearer".into();
            }
            if a.kind.eq_ignore_ascii_case("basic") {
                return Err(
                    r#"authorization type cannot be set to "basic", use "basic_auth" instead"#
                        .into(),
                );
            }
            if self.basic_auth.is_some() || self.oauth2.is_some() {
                return Err(
                    "at most one of basic_auth, oauth2 & authorization must be configured".into(),
                );
            }
        } else if has_bearer {
            authorization = Some(Authorization {
                kind: "Bearer".into(),
                credentials: self.bearer_token,
                credentials_file: self.bearer_token_file,
            });
        }
        if let Some(o) = &self.oauth2 {
            if self.basic_auth.is_some() {
                return Err(
                    "at most one of basic_auth, oauth2 & authorization must be configured".into(),
                );
            }
            if o.client_id.is_empty() {
                return Err("oauth2 client_id must be configured".into());
            }
            if o.client_secret.is_empty() && o.client_secret_file.is_empty() {
                return Err(
                    "either oauth2 client_secret or client_secret_file must be configured".into(),
                );
            }
            if o.token_url.is_empty() {
                return Err("oauth2 token_url must be configured".into());
            }
            if !o.client_secret.is_empty() && !o.client_secret_file.is_empty() {
                return Err(
                    "at most one of oauth2 client_secret & client_secret_file must be configured"
                        .into(),
                );
            }
        }
        if !self.proxy_connect_header.is_empty()
            && !self.proxy_from_environment
            && self.proxy_url.is_empty()
        {
            return Err("if proxy_connect_header is configured, proxy_url or \
                        proxy_from_environment must also be configured"
                .into());
        }
        if self.proxy_from_environment && !self.proxy_url.is_empty() {
            return Err(
                "if proxy_from_environment is configured, proxy_url must not be configured".into(),
            );
        }
        if self.proxy_from_environment && !self.no_proxy.is_empty() {
            return Err(
                "if proxy_from_environment is configured, no_proxy must not be configured".into(),
            );
        }
        if self.proxy_url.is_empty() && !self.no_proxy.is_empty() {
            return Err("if no_proxy is configured, proxy_url must also be configured".into());
        }
        Ok(HttpClientConfig {
            basic_auth: self.basic_auth,
            authorization,
            oauth2: self.oauth2,
            proxy_url: self.proxy_url,
            no_proxy: self.no_proxy,
            proxy_from_environment: self.proxy_from_environment,
            proxy_connect_header: self.proxy_connect_header,
            tls_config: self.tls_config,
            follow_redirects: self.follow_redirects.unwrap_or(defaults.follow_redirects),
            enable_http2: self.enable_http2.unwrap_or(defaults.enable_http2),
        })
    }
}

/// Declares a configuration struct whose YAML mapping holds the HTTP client
/// keys inline, as Go's `yaml:",inline"` does. serde's `flatten` cannot be
/// combined with `deny_unknown_fields` (and buffers values, losing their
/// line numbers), so the macro declares a private `$raw` struct with every
/// key listed for parsing, and the public struct with an `http_client`
/// field at the marked position, which is where Prometheus prints it.
///
/// An optional trailing `..service_discovery,` inlines the discovery
/// blocks (`static_configs`, `*_sd_configs`) the same way, gathered in a
/// [`ServiceDiscoveryConfigs`](crate::discovery::ServiceDiscoveryConfigs)
/// field of that name.
///
/// The public type must have `fn validate(&mut self) -> Result<(), String>`;
/// it runs after the HTTP client block was validated.
macro_rules! inline_http_client {
    (
        $(#[$meta:meta])*
        pub struct $name:ident parsed as $raw:ident with $defaults:path {
            $( $(#[$bmeta:meta])* pub $bfield:ident : $bty:ty, )*
            ..http_client,
            $( $(#[$ameta:meta])* pub $afield:ident : $aty:ty, )*
            $( ..$sd:ident, )?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize)]
        pub struct $name {
            $( $(#[$bmeta])* pub $bfield: $bty, )*
            #[serde(flatten)]
            pub http_client: $crate::http::HttpClientConfig,
            $( $(#[$ameta])* pub $afield: $aty, )*
            $(
                #[serde(flatten)]
                pub $sd: $crate::discovery::ServiceDiscoveryConfigs,
            )?
        }

        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $raw {
            $( $(#[$bmeta])* $bfield: $bty, )*
            $( $(#[$ameta])* $afield: $aty, )*
            #[serde(default)]
            basic_auth: Option<$crate::http::BasicAuth>,
            #[serde(default)]
            authorization: Option<$crate::http::Authorization>,
            #[serde(default)]
            oauth2: Option<$crate::http::OAuth2>,
            #[serde(default)]
            bearer_token: $crate::http::Secret,
            #[serde(default, deserialize_with = "crate::yaml::zero_if_null")]
            bearer_token_file: String,
            #[serde(default, deserialize_with = "crate::yaml::zero_if_null")]
            proxy_url: String,
            #[serde(default, deserialize_with = "crate::yaml::zero_if_null")]
            no_proxy: String,
            #[serde(default, deserialize_with = "crate::yaml::zero_if_null")]
            proxy_from_environment: bool,
            #[serde(default, deserialize_with = "crate::yaml::zero_if_null")]
            proxy_connect_header: std::collections::BTreeMap<String, Vec<$crate::http::Secret>>,
            #[serde(default, deserialize_with = "crate::yaml::zero_if_null")]
            tls_config: $crate::http::TlsConfig,
            #[serde(default)]
            follow_redirects: Option<bool>,
            #[serde(default)]
            enable_http2: Option<bool>,
            $(
                #[serde(skip)]
                $sd: (),
                #[serde(default, deserialize_with = "crate::yaml::zero_if_null")]
                consul_sd_configs: Vec<$crate::discovery::ConsulSdConfig>,
                #[serde(default, deserialize_with = "crate::yaml::zero_if_null")]
                dns_sd_configs: Vec<$crate::discovery::DnsSdConfig>,
                #[serde(default, deserialize_with = "crate::yaml::zero_if_null")]
                file_sd_configs: Vec<$crate::discovery::FileSdConfig>,
                #[serde(default, deserialize_with = "crate::yaml::zero_if_null")]
                http_sd_configs: Vec<$crate::discovery::HttpSdConfig>,
                #[serde(default, deserialize_with = "crate::yaml::zero_if_null")]
                kubernetes_sd_configs: Vec<$crate::discovery::KubernetesSdConfig>,
                #[serde(default, deserialize_with = "crate::yaml::zero_if_null")]
                static_configs: Vec<$crate::discovery::StaticConfig>,
            )?
        }

        impl TryFrom<$raw> for $name {
            type Error = String;

            fn try_from(raw: $raw) -> Result<Self, String> {
                let http_client = $crate::http::HttpClientFields {
                    basic_auth: raw.basic_auth,
                    authorization: raw.authorization,
                    oauth2: raw.oauth2,
                    bearer_token: raw.bearer_token,
                    bearer_token_file: raw.bearer_token_file,
                    proxy_url: raw.proxy_url,
                    no_proxy: raw.no_proxy,
                    proxy_from_environment: raw.proxy_from_environment,
                    proxy_connect_header: raw.proxy_connect_header,
                    tls_config: raw.tls_config,
                    follow_redirects: raw.follow_redirects,
                    enable_http2: raw.enable_http2,
                }
                .into_config($defaults())?;
                let mut config = $name {
                    $( $bfield: raw.$bfield, )*
                    http_client,
                    $( $afield: raw.$afield, )*
                    $(
                        $sd: {
                            let () = raw.$sd;
                            $crate::discovery::ServiceDiscoveryConfigs {
                                consul_sd_configs: raw.consul_sd_configs,
                                dns_sd_configs: raw.dns_sd_configs,
                                file_sd_configs: raw.file_sd_configs,
                                http_sd_configs: raw.http_sd_configs,
                                kubernetes_sd_configs: raw.kubernetes_sd_configs,
                                static_configs: raw.static_configs,
                            }
                        },
                    )?
                };
                config.validate()?;
                Ok(config)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = <$raw as serde::Deserialize>::deserialize(d)?;
                $name::try_from(raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

pub(crate) use inline_http_client;

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> HttpClientFields {
        HttpClientFields {
            basic_auth: None,
            authorization: None,
            oauth2: None,
            bearer_token: Secret::default(),
            bearer_token_file: String::new(),
            proxy_url: String::new(),
            no_proxy: String::new(),
            proxy_from_environment: false,
            proxy_connect_header: BTreeMap::new(),
            tls_config: TlsConfig::default(),
            follow_redirects: None,
            enable_http2: None,
        }
    }

    #[test]
    fn bearer_token_becomes_authorization() {
        let c = HttpClientFields {
            bearer_token: Secret::new("tok"),
            ..fields()
        }
        .into_config(HttpClientConfig::default())
        .unwrap();
        let a = c.authorization.unwrap();
        assert_eq!(a.kind, "Bearer");
        assert_eq!(a.credentials.expose(), "tok");
        assert!(c.follow_redirects && c.enable_http2);
    }

    #[test]
    fn auth_methods_are_exclusive() {
        let basic = Some(BasicAuth {
            username: "u".into(),
            ..BasicAuth::default()
        });
        let e = HttpClientFields {
            basic_auth: basic,
            authorization: Some(Authorization::default()),
            ..fields()
        }
        .into_config(HttpClientConfig::default())
        .unwrap_err();
        assert_eq!(
            e,
            "at most one of basic_auth, oauth2 & authorization must be configured"
        );
        let e = HttpClientFields {
            authorization: Some(Authorization {
                kind: " basic ".into(),
                ..Authorization::default()
            }),
            ..fields()
        }
        .into_config(HttpClientConfig::default())
        .unwrap_err();
        assert!(e.contains("cannot be set to \"basic\""), "{e}");
    }

    #[test]
    fn secrets_do_not_leak_through_debug() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "<secret>");
        assert_eq!(s.expose(), "hunter2");
    }
}
