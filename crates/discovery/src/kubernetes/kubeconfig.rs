//! `kubeconfig_file`: how to reach the API server according to a
//! kubeconfig file's current context, as Prometheus gets it from client-go's
//! `clientcmd.BuildConfigFromFlags("", path)`. Supported: the cluster's
//! `server`, `certificate-authority(-data)`, `insecure-skip-tls-verify`,
//! `tls-server-name` and `proxy-url`; the user's `client-certificate(-data)`,
//! `client-key(-data)`, `token`, `tokenFile` and `username`/`password`.
//! Credential plugins (`exec`, `auth-provider`) and impersonation (`as`,
//! ...) are refused when discovery starts, naming the field. Relative file
//! paths are taken from the kubeconfig's directory, as client-go's
//! `ResolveLocalPaths` does; the context's `namespace` is not used
//! (Prometheus takes namespaces from `namespaces` only).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hearth_config::http::{BasicAuth, HttpClientConfig, TlsConfig};
use hearth_config::Secret;
use serde::{Deserialize, Deserializer};

use super::token::BearerToken;
use super::ApiServerAccess;
use crate::{Error, Result};

/// What goes wrong in a kubeconfig, said without its path (the caller adds
/// it).
type KubeconfigResult<T> = std::result::Result<T, String>;

/// The access the kubeconfig at `path` gives. A file that cannot be read
/// is [`Error::Read`]; anything wrong in it, or in the files it names, is
/// [`Error::Parse`] of the kubeconfig.
pub(crate) fn load(path: &Path) -> Result<ApiServerAccess> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.into(),
        source,
    })?;
    let dir = path.parent().unwrap_or(Path::new(""));
    access(&text, dir).map_err(|message| Error::Parse {
        path: path.into(),
        message,
    })
}

/// The access given by the current context of the kubeconfig `text`,
/// whose relative paths are relative to `dir`.
pub(crate) fn access(text: &str, dir: &Path) -> KubeconfigResult<ApiServerAccess> {
    let config = parse(text)?;
    let clusters = by_name("clusters", &config.clusters, |c| &c.name)?;
    let users = by_name("users", &config.users, |u| &u.name)?;
    let contexts = by_name("contexts", &config.contexts, |c| &c.name)?;

    let context_name = &config.current_context;
    if context_name.is_empty() {
        return Err("current-context is not set".into());
    }
    let context = &contexts
        .get(context_name.as_str())
        .ok_or_else(|| format!("current-context {context_name:?}: no such context"))?
        .context;
    let cluster_name = &context.cluster;
    let cluster = &clusters
        .get(cluster_name.as_str())
        .ok_or_else(|| format!("context {context_name:?}: no cluster {cluster_name:?}"))?
        .cluster;
    let user = match users.get(context.user.as_str()) {
        Some(user) => user.user.clone(),
        None => {
            if !context.user.is_empty() {
                // client-go goes on without credentials too.
                tracing::warn!(
                    context = context_name.as_str(),
                    user = context.user.as_str(),
                    "kubeconfig: the context's user is not defined, using no credentials"
                );
            }
            User::default()
        }
    };

    let mut http_client = HttpClientConfig::default();
    apply_cluster(cluster, dir, &mut http_client)
        .map_err(|e| format!("cluster {cluster_name:?}: {e}"))?;
    let token = apply_user(&user, dir, &mut http_client)
        .map_err(|e| format!("user {:?}: {e}", context.user))?;
    let server = server_url(&cluster.server, &http_client.tls_config)
        .map_err(|e| format!("cluster {cluster_name:?}: {e}"))?;
    Ok(ApiServerAccess {
        server,
        http_client,
        token,
    })
}

/// The kubeconfig YAML, checking that it is a `v1` `Config` when it says
/// what it is. An empty file is an empty configuration.
fn parse(text: &str) -> KubeconfigResult<Kubeconfig> {
    if text.trim().is_empty() {
        return Ok(Kubeconfig::default());
    }
    let config: Kubeconfig = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
    if !config.api_version.is_empty() && config.api_version != "v1" {
        return Err(format!(
            "apiVersion {:?} is not supported (v1 is)",
            config.api_version
        ));
    }
    if !config.kind.is_empty() && config.kind != "Config" {
        return Err(format!(
            "kind {:?} is not a kubeconfig (Config)",
            config.kind
        ));
    }
    Ok(config)
}

/// The entries of a named list by name; a name twice is an error, as in
/// client-go's conversion of the v1 lists.
fn by_name<'a, T>(
    list: &str,
    entries: &'a [T],
    name: impl Fn(&T) -> &String,
) -> KubeconfigResult<BTreeMap<&'a str, &'a T>> {
    let mut named = BTreeMap::new();
    for entry in entries {
        if named.insert(name(entry).as_str(), entry).is_some() {
            return Err(format!("{list}: duplicate name {:?}", name(entry)));
        }
    }
    Ok(named)
}

/// Puts the cluster's TLS and proxy settings into `http_client`.
fn apply_cluster(
    cluster: &Cluster,
    dir: &Path,
    http_client: &mut HttpClientConfig,
) -> KubeconfigResult<()> {
    let tls = &mut http_client.tls_config;
    if !cluster.certificate_authority_data.is_empty() {
        // client-go: the data overrides the file.
        tls.ca = decode_pem(
            "certificate-authority-data",
            &cluster.certificate_authority_data,
        )?;
    } else if !cluster.certificate_authority.is_empty() {
        tls.ca_file = readable_file("certificate-authority", &cluster.certificate_authority, dir)?;
    }
    if cluster.insecure_skip_tls_verify && !(tls.ca.is_empty() && tls.ca_file.is_empty()) {
        return Err(
            "specifying a root certificates file with the insecure flag is not allowed".into(),
        );
    }
    tls.insecure_skip_verify = cluster.insecure_skip_tls_verify;
    tls.server_name = cluster.tls_server_name.clone();
    // client-go uses the proxy of the environment unless `proxy-url` is set.
    http_client.proxy_url = cluster.proxy_url.clone();
    http_client.proxy_from_environment = cluster.proxy_url.is_empty();
    Ok(())
}

/// The API server URL: `server` without a trailing `/`; without a scheme,
/// `https://` when a CA, a client certificate or `insecure-skip-tls-verify`
/// is set and `http://` otherwise (client-go's `DefaultServerURL`).
fn server_url(server: &str, tls: &TlsConfig) -> KubeconfigResult<String> {
    if server.is_empty() {
        return Err("server is not set".into());
    }
    let uses_tls = !tls.ca.is_empty()
        || !tls.ca_file.is_empty()
        || !tls.cert.is_empty()
        || !tls.cert_file.is_empty()
        || tls.insecure_skip_verify;
    let url = if server.contains("://") {
        server.to_string()
    } else if uses_tls {
        format!("https://{server}")
    } else {
        format!("http://{server}")
    };
    let parsed = reqwest::Url::parse(&url).map_err(|e| format!("server {server:?}: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || !parsed.has_host() {
        return Err(format!("server {server:?}: not an http or https URL"));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// Puts the user's client certificate and basic auth into `http_client`;
/// returns the bearer token, if any. Refuses what Hearth cannot do.
fn apply_user(
    user: &User,
    dir: &Path,
    http_client: &mut HttpClientConfig,
) -> KubeconfigResult<Option<BearerToken>> {
    refuse_unsupported(user)?;
    apply_client_certificate(user, dir, http_client)?;
    let has_token = !user.token.is_empty() || !user.token_file.is_empty();
    let has_basic = !user.username.is_empty() || !user.password.is_empty();
    if has_token && has_basic {
        return Err(
            "more than one authentication method (token and username/password), \
             only one is allowed"
                .into(),
        );
    }
    if has_basic {
        http_client.basic_auth = Some(BasicAuth {
            username: user.username.clone(),
            password: user.password.clone(),
            password_file: String::new(),
        });
        return Ok(None);
    }
    if !user.token_file.is_empty() {
        let file = readable_file("tokenFile", &user.token_file, dir)?;
        if user.token.is_empty() {
            // client-go reads the file once when the configuration is built.
            let token = std::fs::read_to_string(&file)
                .map_err(|e| format!("unable to read tokenFile {file}: {e}"))?;
            if token.trim().is_empty() {
                return Err(format!("tokenFile {file} is empty"));
            }
            return Ok(Some(BearerToken::from_file(file, token.trim())));
        }
        return Ok(Some(BearerToken::from_file(file, user.token.expose())));
    }
    if !user.token.is_empty() {
        return Ok(Some(BearerToken::fixed(user.token.expose())));
    }
    Ok(None)
}

/// Credential plugins and impersonation change who discovery acts as;
/// without them the requests would go out with other rights, so they are
/// errors rather than ignored.
fn refuse_unsupported(user: &User) -> KubeconfigResult<()> {
    let unsupported = [
        ("exec", user.exec.is_some(), "credential plugins"),
        (
            "auth-provider",
            user.auth_provider.is_some(),
            "auth providers",
        ),
        ("as", !user.impersonate.is_empty(), "impersonation"),
        ("as-uid", !user.impersonate_uid.is_empty(), "impersonation"),
        (
            "as-groups",
            !user.impersonate_groups.is_empty(),
            "impersonation",
        ),
        (
            "as-user-extra",
            !user.impersonate_extra.is_empty(),
            "impersonation",
        ),
    ];
    match unsupported.iter().find(|(_, set, _)| *set) {
        Some((field, _, what)) => Err(format!(
            "users[].user.{field}: {what} are not supported by Hearth's kubernetes discovery"
        )),
        None => Ok(()),
    }
}

/// The client certificate and key, each from its data or its file (the
/// data overriding the file is an error, as client-go reports it).
fn apply_client_certificate(
    user: &User,
    dir: &Path,
    http_client: &mut HttpClientConfig,
) -> KubeconfigResult<()> {
    let has_cert = !user.client_certificate.is_empty() || !user.client_certificate_data.is_empty();
    let has_key = !user.client_key.is_empty() || !user.client_key_data.is_empty();
    if !has_cert && !has_key {
        return Ok(());
    }
    if !user.client_certificate.is_empty() && !user.client_certificate_data.is_empty() {
        return Err("client-certificate-data and client-certificate are both specified".into());
    }
    if !user.client_key.is_empty() && !user.client_key_data.is_empty() {
        return Err("client-key-data and client-key are both specified".into());
    }
    if !has_key {
        return Err(
            "client-key-data or client-key must be specified to use client-certificate".into(),
        );
    }
    if !has_cert {
        return Err(
            "client-certificate-data or client-certificate must be specified to use client-key"
                .into(),
        );
    }
    let tls = &mut http_client.tls_config;
    if user.client_certificate_data.is_empty() {
        tls.cert_file = readable_file("client-certificate", &user.client_certificate, dir)?;
    } else {
        tls.cert = decode_pem("client-certificate-data", &user.client_certificate_data)?;
    }
    if user.client_key_data.is_empty() {
        tls.key_file = readable_file("client-key", &user.client_key, dir)?;
    } else {
        tls.key = Secret::new(decode_pem(
            "client-key-data",
            user.client_key_data.expose(),
        )?);
    }
    Ok(())
}

/// `path` taken from `dir` when relative, checked to be readable now so
/// that a wrong path fails discovery's start naming the kubeconfig field.
/// The file is read again later (TLS files when they change, the token
/// file on every request).
fn readable_file(field: &str, path: &str, dir: &Path) -> KubeconfigResult<String> {
    let path = resolve_path(path, dir);
    std::fs::File::open(&path)
        .map_err(|e| format!("unable to read {field} {}: {e}", path.display()))?;
    Ok(path.display().to_string())
}

/// client-go's `ResolvePath`: absolute paths stay, relative ones are
/// joined to the kubeconfig's directory.
fn resolve_path(path: &str, dir: &Path) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        dir.join(path)
    }
}

/// The PEM text of a base64 `*-data` field.
fn decode_pem(field: &str, data: &str) -> KubeconfigResult<String> {
    let bytes = decode_base64(data).map_err(|e| format!("{field}: invalid base64: {e}"))?;
    String::from_utf8(bytes).map_err(|_| format!("{field}: the decoded data is not PEM text"))
}

/// Standard base64 with padding, as Go decodes a `[]byte` field; line
/// breaks and other whitespace (from YAML line folding) are skipped.
pub(crate) fn decode_base64(text: &str) -> KubeconfigResult<Vec<u8>> {
    use base64::Engine;
    let symbols: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(symbols)
        .map_err(|e| e.to_string())
}

/// A field that may be `null` (as `kubectl config view` writes empty
/// lists) and then takes its default.
fn null_as_default<'de, D, T>(deserializer: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A kubeconfig file (`apiVersion: v1`, `kind: Config`), only the parts
/// discovery uses; other fields (`preferences`, `extensions`) are ignored
/// as client-go ignores unknown ones.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Kubeconfig {
    #[serde(rename = "apiVersion", deserialize_with = "null_as_default")]
    api_version: String,
    #[serde(deserialize_with = "null_as_default")]
    kind: String,
    #[serde(deserialize_with = "null_as_default")]
    clusters: Vec<NamedCluster>,
    #[serde(deserialize_with = "null_as_default")]
    users: Vec<NamedUser>,
    #[serde(deserialize_with = "null_as_default")]
    contexts: Vec<NamedContext>,
    #[serde(rename = "current-context", deserialize_with = "null_as_default")]
    current_context: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NamedCluster {
    #[serde(deserialize_with = "null_as_default")]
    name: String,
    #[serde(deserialize_with = "null_as_default")]
    cluster: Cluster,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
struct Cluster {
    #[serde(deserialize_with = "null_as_default")]
    server: String,
    #[serde(deserialize_with = "null_as_default")]
    certificate_authority: String,
    #[serde(deserialize_with = "null_as_default")]
    certificate_authority_data: String,
    #[serde(deserialize_with = "null_as_default")]
    insecure_skip_tls_verify: bool,
    #[serde(deserialize_with = "null_as_default")]
    tls_server_name: String,
    #[serde(deserialize_with = "null_as_default")]
    proxy_url: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NamedUser {
    #[serde(deserialize_with = "null_as_default")]
    name: String,
    #[serde(deserialize_with = "null_as_default")]
    user: User,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
struct User {
    #[serde(deserialize_with = "null_as_default")]
    client_certificate: String,
    #[serde(deserialize_with = "null_as_default")]
    client_certificate_data: String,
    #[serde(deserialize_with = "null_as_default")]
    client_key: String,
    #[serde(deserialize_with = "null_as_default")]
    client_key_data: Secret,
    #[serde(deserialize_with = "null_as_default")]
    token: Secret,
    #[serde(rename = "tokenFile", deserialize_with = "null_as_default")]
    token_file: String,
    #[serde(deserialize_with = "null_as_default")]
    username: String,
    #[serde(deserialize_with = "null_as_default")]
    password: Secret,
    /// Only whether it is set matters: it is refused.
    exec: Option<serde::de::IgnoredAny>,
    auth_provider: Option<serde::de::IgnoredAny>,
    #[serde(rename = "as", deserialize_with = "null_as_default")]
    impersonate: String,
    #[serde(rename = "as-uid", deserialize_with = "null_as_default")]
    impersonate_uid: String,
    #[serde(rename = "as-groups", deserialize_with = "null_as_default")]
    impersonate_groups: Vec<String>,
    #[serde(rename = "as-user-extra", deserialize_with = "null_as_default")]
    impersonate_extra: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NamedContext {
    #[serde(deserialize_with = "null_as_default")]
    name: String,
    #[serde(deserialize_with = "null_as_default")]
    context: Context,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Context {
    #[serde(deserialize_with = "null_as_default")]
    cluster: String,
    #[serde(deserialize_with = "null_as_default")]
    user: String,
}

#[cfg(test)]
mod tests;
