//! The bearer token sent to the API server: fixed (a kubeconfig's `token`)
//! or read from a file on every request (a kubeconfig's `tokenFile`, the
//! in-cluster service-account token), because those files are rotated
//! while discovery runs.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use hearth_config::Secret;

use crate::{Error, Result};

/// A bearer token, as client-go's bearer round tripper with its cached
/// file token source: with a file, its current content is used, and the
/// last token known (read before, or the fixed one) while the file cannot
/// be read or is empty.
#[derive(Debug, Clone)]
pub(crate) struct BearerToken {
    file: Option<PathBuf>,
    /// The fixed token, or the last one read from `file`; shared by the
    /// clones of one discovery so that every list and watch task sees it.
    last: Arc<Mutex<Secret>>,
}

impl BearerToken {
    /// A token that never changes.
    pub(crate) fn fixed(token: impl Into<String>) -> Self {
        BearerToken {
            file: None,
            last: Arc::new(Mutex::new(Secret::new(token))),
        }
    }

    /// A token read from `file` on every request; `initial` (may be empty)
    /// stands in while the file cannot be read.
    pub(crate) fn from_file(file: impl Into<PathBuf>, initial: impl Into<String>) -> Self {
        BearerToken {
            file: Some(file.into()),
            last: Arc::new(Mutex::new(Secret::new(initial))),
        }
    }

    /// The token for a request to `url`: the file's content when it has
    /// one, else the last token known; an error only when there is none.
    pub(crate) fn current(&self, url: &str) -> Result<String> {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(file) = &self.file else {
            return Ok(last.expose().to_string());
        };
        let problem = match std::fs::read_to_string(file) {
            Ok(content) if !content.trim().is_empty() => {
                let token = content.trim().to_string();
                *last = Secret::new(token.clone());
                return Ok(token);
            }
            Ok(_) => "it is empty".to_string(),
            Err(e) => e.to_string(),
        };
        if last.is_empty() {
            return Err(Error::http(
                url,
                format!("read token file {}: {problem}", file.display()),
            ));
        }
        tracing::warn!(
            file = %file.display(),
            problem,
            "kubernetes discovery: cannot read the token file, using the last token"
        );
        Ok(last.expose().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_token_stays() {
        assert_eq!(BearerToken::fixed("abc").current("u").unwrap(), "abc");
    }

    #[test]
    fn a_file_token_is_read_on_every_request_and_falls_back_to_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        let token = BearerToken::from_file(&file, "");
        let error = token.current("http://k").unwrap_err().to_string();
        assert!(
            error.starts_with(&format!(
                "request http://k: read token file {}: ",
                file.display()
            )),
            "{error}"
        );

        std::fs::write(&file, "one\n").unwrap();
        assert_eq!(token.current("u").unwrap(), "one");
        std::fs::write(&file, "two").unwrap();
        assert_eq!(token.clone().current("u").unwrap(), "two");
        // Rotation in progress: the file is briefly missing or empty.
        std::fs::write(&file, "").unwrap();
        assert_eq!(token.current("u").unwrap(), "two");
        std::fs::remove_file(&file).unwrap();
        assert_eq!(token.current("u").unwrap(), "two");

        // A kubeconfig's `token` beside its `tokenFile` stands in at first.
        let token = BearerToken::from_file(&file, "fixed");
        assert_eq!(token.current("u").unwrap(), "fixed");
        std::fs::write(&file, "from-file").unwrap();
        assert_eq!(token.current("u").unwrap(), "from-file");
    }

    #[test]
    fn debug_output_hides_the_token() {
        let debug = format!("{:?}", BearerToken::fixed("hunter2"));
        assert!(!debug.contains("hunter2"), "{debug}");
    }
}
