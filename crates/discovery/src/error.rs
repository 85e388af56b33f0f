//! The errors of discovery: reading and parsing target files, talking to
//! HTTP-based services (HTTP SD, Kubernetes, Consul), DNS lookups and
//! building HTTP clients from their configuration.

use std::path::PathBuf;

/// An error of one discovery provider; providers log it and keep their
/// previous targets.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parse {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("request {url}: {message}")]
    Http { url: String, message: String },
    #[error("resolve {name}: {message}")]
    Dns { name: String, message: String },
    #[error("configure HTTP client: {0}")]
    Client(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn http(url: &str, message: impl std::fmt::Display) -> Self {
        Error::Http {
            url: url.to_string(),
            message: message.to_string(),
        }
    }
}
