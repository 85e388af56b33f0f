//! The TLS side of `tls_config` (Prometheus's `config.NewTLSConfig`) for
//! every HTTP client of discovery and scraping: rustls configurations with
//! the CA, client certificate, `server_name` and versions of a
//! `tls_config`, digests of its files (clients are rebuilt when they
//! change), and a description of a failed request naming its TLS cause.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};

use hearth_config::http::{TlsConfig, TlsVersion};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

pub type TlsResult<T> = std::result::Result<T, String>;

/// A digest of the content of each file a `tls_config` names, in the order
/// ca_file, cert_file, key_file; `None` for a file that cannot be read.
pub type TlsFileDigests = Vec<Option<u64>>;

/// What the files of `tls` hold now: a client is rebuilt when this changes,
/// as Prometheus re-reads its CA, certificate and key when they change (it
/// compares their content too: a rewrite may keep the size and mtime).
pub fn tls_file_digests(tls: &TlsConfig) -> TlsFileDigests {
    [&tls.ca_file, &tls.cert_file, &tls.key_file]
        .into_iter()
        .filter(|path| !path.is_empty())
        .map(|path| {
            std::fs::read(path).ok().map(|content| {
                let mut hasher = std::hash::DefaultHasher::new();
                content.hash(&mut hasher);
                hasher.finish()
            })
        })
        .collect()
}

/// The rustls configuration of a `tls_config` (Prometheus's
/// `config.NewTLSConfig`): the CA (`ca`/`ca_file`) as the only roots when
/// given, else the system's; the client certificate and key; the name the
/// server's certificate must be valid for (`server_name`, else the URL's
/// host); `insecure_skip_verify`; the protocol versions from `min_version`
/// and `max_version` (rustls speaks TLS 1.2 and 1.3 only).
pub fn tls_client_config(tls: &TlsConfig) -> TlsResult<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions = tls_versions(tls)?;
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_config: {e}"))?;
    let check = if tls.insecure_skip_verify {
        ChainCheck::Skip
    } else {
        let roots = if tls.ca.is_empty() && tls.ca_file.is_empty() {
            system_roots()
        } else {
            Arc::new(ca_roots(tls)?)
        };
        if roots.is_empty() {
            ChainCheck::NoRoots
        } else {
            let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| format!("tls_config: certificate verifier: {e}"))?;
            ChainCheck::WebPki(verifier)
        }
    };
    let server_name = if tls.server_name.is_empty() {
        None
    } else {
        let name = ServerName::try_from(tls.server_name.clone())
            .map_err(|e| format!("tls_config: server_name {:?}: {e}", tls.server_name))?;
        Some(name)
    };
    let verifier = ServerVerifier {
        check,
        server_name,
        provider,
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut config = match client_identity(tls)? {
        Some((certs, key)) => builder
            .with_client_auth_cert(certs, key)
            .map_err(|e| format!("tls_config: client certificate: {e}"))?,
        None => builder.with_no_client_auth(),
    };
    // reqwest is built without HTTP/2.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn tls_version_name(version: TlsVersion) -> &'static str {
    match version {
        TlsVersion::Tls10 => "TLS10",
        TlsVersion::Tls11 => "TLS11",
        TlsVersion::Tls12 => "TLS12",
        TlsVersion::Tls13 => "TLS13",
    }
}

/// The protocol versions `min_version` ..= `max_version` allow, TLS 1.2 at
/// least (Prometheus's default minimum; rustls has nothing older).
fn tls_versions(tls: &TlsConfig) -> TlsResult<Vec<&'static rustls::SupportedProtocolVersion>> {
    if let (Some(min), Some(max)) = (tls.min_version, tls.max_version) {
        if max < min {
            return Err(format!(
                "tls_config: max_version {} must be greater than or equal to min_version {}",
                tls_version_name(max),
                tls_version_name(min)
            ));
        }
    }
    let min = tls.min_version.unwrap_or(TlsVersion::Tls12);
    let max = tls.max_version.unwrap_or(TlsVersion::Tls13);
    if max < TlsVersion::Tls12 {
        return Err(format!(
            "tls_config: max_version {} is not supported (TLS12 and TLS13 are)",
            tls_version_name(max)
        ));
    }
    let mut versions = Vec::new();
    if min <= TlsVersion::Tls12 {
        versions.push(&rustls::version::TLS12);
    }
    versions.push(&rustls::version::TLS13);
    if max < TlsVersion::Tls13 {
        versions.pop();
    }
    Ok(versions)
}

/// The system's trusted certificates, loaded once per process (as Go loads
/// its system pool once).
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let loaded = rustls_native_certs::load_native_certs();
            for error in &loaded.errors {
                tracing::warn!(%error, "loading the system's trusted certificates");
            }
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(loaded.certs);
            Arc::new(roots)
        })
        .clone()
}

/// The PEM text of an inline value or of a file, with what to call it in
/// errors; `None` when neither is set.
fn pem_source(inline: &str, file: &str, key: &str) -> TlsResult<Option<(Vec<u8>, String)>> {
    if !file.is_empty() {
        let what = format!("{key}_file {file}");
        let pem = std::fs::read(file).map_err(|e| format!("tls_config: read {what}: {e}"))?;
        Ok(Some((pem, what)))
    } else if !inline.is_empty() {
        Ok(Some((inline.as_bytes().to_vec(), key.to_string())))
    } else {
        Ok(None)
    }
}

/// The certificates of `ca` or `ca_file`, every one of them trusted.
fn ca_roots(tls: &TlsConfig) -> TlsResult<RootCertStore> {
    let Some((pem, what)) = pem_source(&tls.ca, &tls.ca_file, "ca")? else {
        return Ok(RootCertStore::empty());
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("tls_config: parse {what}: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("tls_config: use {what}: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "tls_config: unable to use specified CA cert {what}: no PEM certificate in it"
        ));
    }
    Ok(roots)
}

/// A client certificate chain and its private key.
type ClientIdentity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// The client certificate chain and its key, if configured.
fn client_identity(tls: &TlsConfig) -> TlsResult<Option<ClientIdentity>> {
    let cert = pem_source(&tls.cert, &tls.cert_file, "cert")?;
    let key = pem_source(tls.key.expose(), &tls.key_file, "key")?;
    let ((cert, cert_what), (key, key_what)) = match (cert, key) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        _ => {
            return Err(
                "tls_config: a client certificate needs both a certificate and a key".to_string(),
            )
        }
    };
    let certs = CertificateDer::pem_slice_iter(&cert)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| format!("tls_config: parse {cert_what}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("tls_config: no PEM certificate in {cert_what}"));
    }
    let key = PrivateKeyDer::from_pem_slice(&key)
        .map_err(|e| format!("tls_config: parse {key_what}: {e}"))?;
    Ok(Some((certs, key)))
}

/// How a server's certificate chain is checked.
#[derive(Debug)]
enum ChainCheck {
    /// Against the roots, for the expected name.
    WebPki(Arc<WebPkiServerVerifier>),
    /// No trusted certificate at all: every chain is from an unknown CA.
    NoRoots,
    /// `insecure_skip_verify`: any chain is accepted.
    Skip,
}

/// The server certificate check: the chain as [`ChainCheck`] says, for
/// `server_name` when set (instead of the URL's host), and the handshake
/// signatures always.
#[derive(Debug)]
struct ServerVerifier {
    check: ChainCheck,
    server_name: Option<ServerName<'static>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match &self.check {
            ChainCheck::WebPki(verifier) => verifier.verify_server_cert(
                end_entity,
                intermediates,
                self.server_name.as_ref().unwrap_or(server_name),
                ocsp_response,
                now,
            ),
            ChainCheck::NoRoots => Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            )),
            ChainCheck::Skip => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What went wrong with a request, from its causes: the TLS failure when
/// there is one (`tls: invalid peer certificate: certificate signed by
/// unknown authority`), else the chain of causes below reqwest's own
/// "error sending request" (`client error (Connect): tcp connect error:
/// Connection refused`).
pub fn describe_request_error(error: &reqwest::Error) -> String {
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(tls) = as_tls_error(cause) {
            return describe_tls_error(tls);
        }
        let text = cause.to_string();
        if causes.last() != Some(&text) {
            causes.push(text);
        }
        source = cause.source();
    }
    if causes.is_empty() {
        error.to_string()
    } else {
        causes.join(": ")
    }
}

/// The rustls error behind `error`, looking through the io errors and
/// boxes that carry it (an io::Error's `source` skips what it wraps).
fn as_tls_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = error.downcast_ref::<rustls::Error>() {
        Some(tls)
    } else if let Some(inner) = error
        .downcast_ref::<std::io::Error>()
        .and_then(|e| e.get_ref())
    {
        as_tls_error(inner)
    } else {
        None
    }
}

fn describe_tls_error(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "tls: invalid peer certificate: certificate signed by unknown authority".into()
        }
        other => format!("tls: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_versions_follow_min_and_max() {
        let versions = |min, max| {
            let tls = TlsConfig {
                min_version: min,
                max_version: max,
                ..TlsConfig::default()
            };
            tls_versions(&tls).map(|v| v.iter().map(|v| v.version).collect::<Vec<_>>())
        };
        let (v12, v13) = (
            rustls::ProtocolVersion::TLSv1_2,
            rustls::ProtocolVersion::TLSv1_3,
        );
        assert_eq!(versions(None, None).unwrap(), [v12, v13]);
        assert_eq!(versions(Some(TlsVersion::Tls10), None).unwrap(), [v12, v13]);
        assert_eq!(versions(Some(TlsVersion::Tls13), None).unwrap(), [v13]);
        assert_eq!(versions(None, Some(TlsVersion::Tls12)).unwrap(), [v12]);
        assert_eq!(
            versions(None, Some(TlsVersion::Tls11)).unwrap_err(),
            "tls_config: max_version TLS11 is not supported (TLS12 and TLS13 are)"
        );
        assert_eq!(
            versions(Some(TlsVersion::Tls13), Some(TlsVersion::Tls12)).unwrap_err(),
            "tls_config: max_version TLS12 must be greater than or equal to min_version TLS13"
        );
    }

    #[test]
    fn tls_material_errors_name_the_setting() {
        let tls = TlsConfig {
            ca: "not a certificate".into(),
            ..TlsConfig::default()
        };
        assert_eq!(
            tls_client_config(&tls).unwrap_err(),
            "tls_config: unable to use specified CA cert ca: no PEM certificate in it"
        );
        let tls = TlsConfig {
            cert: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into(),
            key: hearth_config::Secret::new("nothing"),
            ..TlsConfig::default()
        };
        let error = tls_client_config(&tls).unwrap_err();
        assert!(error.starts_with("tls_config: "), "{error}");
        let tls = TlsConfig {
            server_name: "not a name!".into(),
            ..TlsConfig::default()
        };
        assert!(tls_client_config(&tls)
            .unwrap_err()
            .starts_with("tls_config: server_name \"not a name!\""));
    }
}
