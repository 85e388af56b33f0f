//! The bucket client: an `object_store` behind retries with backoff for
//! transient errors (timeouts, 5xx, refused connections; never 404 or 403),
//! per-operation counters, and multipart upload of large files.

use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::{BucketConfig, DEFAULT_PART_SIZE};
use crate::metrics::{BucketMetrics, Operation, OperationLabels};
use crate::{Error, Result};

/// How often and how long to retry an operation that failed with a
/// transient error. Backoff doubles from `initial_backoff` up to
/// `max_backoff`.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, including the first (1: no retries).
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }
}

/// A bucket: the object store, its name for logs and metrics, the retry
/// policy and the counters. Cheap to clone; clones share everything.
#[derive(Debug, Clone)]
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    name: String,
    retry: RetryPolicy,
    part_size: u64,
    metrics: BucketMetrics,
}

impl Bucket {
    /// A bucket over any object store, with the default retry policy.
    pub fn new(store: Arc<dyn ObjectStore>, name: impl Into<String>) -> Self {
        Self {
            store,
            name: name.into(),
            retry: RetryPolicy::default(),
            part_size: DEFAULT_PART_SIZE,
            metrics: BucketMetrics::default(),
        }
    }

    /// The bucket a parsed objstore configuration describes.
    pub fn from_config(config: &BucketConfig) -> Result<Self> {
        let retry = RetryPolicy {
            max_attempts: config.max_attempts(),
            ..RetryPolicy::default()
        };
        Ok(Self::new(config.build_store()?, config.name())
            .with_retry(retry)
            .with_part_size(config.part_size()))
    }

    /// The bucket of an objstore YAML document.
    pub fn from_yaml(text: &str) -> Result<Self> {
        Self::from_config(&BucketConfig::from_yaml(text)?)
    }

    /// The bucket of an objstore YAML file (`--objstore.config-file`).
    pub fn from_config_file(path: impl AsRef<std::path::Path>) -> Result<Self> {
        Self::from_config(&BucketConfig::from_file(path)?)
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Files larger than `part_size` are uploaded in parts of that size.
    pub fn with_part_size(mut self, part_size: u64) -> Self {
        self.part_size = part_size.max(1);
        self
    }

    /// Registers the per-operation counters.
    pub fn register_metrics(&self, registry: &mut Registry) {
        self.metrics.register(registry);
    }

    pub fn metrics(&self) -> &BucketMetrics {
        &self.metrics
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The underlying object store, without retries or metrics.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The count of an operation's calls, failures or retries.
    pub fn operation_count(&self, op: Operation) -> (u64, u64, u64) {
        let m = &self.metrics;
        (
            BucketMetrics::count(&m.operations, &self.name, op),
            BucketMetrics::count(&m.failures, &self.name, op),
            BucketMetrics::count(&m.retries, &self.name, op),
        )
    }

    /// Runs `attempt` until it succeeds, fails with a permanent error, or
    /// the attempts are spent; counts the operation and its outcome.
    async fn run<T, F, Fut>(&self, op: Operation, path: &Path, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = object_store::Result<T>>,
    {
        let labels = OperationLabels {
            bucket: self.name.clone(),
            operation: op.as_str(),
        };
        self.metrics.operations.get_or_create(&labels).inc();
        let mut backoff = self.retry.initial_backoff;
        let mut n = 1;
        loop {
            match attempt().await {
                Ok(v) => return Ok(v),
                Err(e) if n < self.retry.max_attempts && is_transient(&e) => {
                    tracing::warn!(
                        bucket = %self.name, operation = op.as_str(), path = %path,
                        attempt = n, error = %e, "transient bucket error, retrying"
                    );
                    self.metrics.retries.get_or_create(&labels).inc();
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.retry.max_backoff);
                    n += 1;
                }
                Err(e) => {
                    if !matches!(e, object_store::Error::NotFound { .. }) {
                        self.metrics.failures.get_or_create(&labels).inc();
                    }
                    return Err(Error::Object {
                        operation: op.as_str(),
                        path: path.to_string(),
                        source: e,
                    });
                }
            }
        }
    }

    /// The whole object.
    pub async fn get(&self, path: &Path) -> Result<Bytes> {
        self.run(Operation::Get, path, || async {
            self.store.get(path).await?.bytes().await
        })
        .await
    }

    /// The whole object, or `None` if it does not exist.
    pub async fn get_opt(&self, path: &Path) -> Result<Option<Bytes>> {
        match self.get(path).await {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Bytes `range` of the object.
    pub async fn get_range(&self, path: &Path, range: Range<u64>) -> Result<Bytes> {
        self.run(Operation::GetRange, path, || {
            self.store.get_range(path, range.clone())
        })
        .await
    }

    /// Whether the object exists.
    pub async fn exists(&self, path: &Path) -> Result<bool> {
        self.run(Operation::Exists, path, || async {
            match self.store.head(path).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// Size and modification time of the object.
    pub async fn attributes(&self, path: &Path) -> Result<ObjectMeta> {
        self.run(Operation::Attributes, path, || self.store.head(path))
            .await
    }

    /// Writes the object (replacing any previous one).
    pub async fn put(&self, path: &Path, data: Bytes) -> Result<()> {
        self.run(Operation::Upload, path, || {
            self.store.put(path, PutPayload::from_bytes(data.clone()))
        })
        .await
        .map(|_| ())
    }

    /// Writes the object unless it exists; whether it was written. Not
    /// atomic against a concurrent writer, as Thanos's markers.
    pub async fn put_if_absent(&self, path: &Path, data: Bytes) -> Result<bool> {
        if self.exists(path).await? {
            return Ok(false);
        }
        self.put(path, data).await?;
        Ok(true)
    }

    /// Uploads a local file; in parts when it is larger than the part size.
    /// Returns its size.
    pub async fn upload_file(&self, path: &Path, local: &std::path::Path) -> Result<u64> {
        let size = tokio::fs::metadata(local)
            .await
            .map_err(|e| Error::io("stat", local, e))?
            .len();
        if size <= self.part_size {
            let data = tokio::fs::read(local)
                .await
                .map_err(|e| Error::io("read", local, e))?;
            self.put(path, Bytes::from(data)).await?;
            return Ok(size);
        }
        // A local read error is not retried: it would not go away.
        let local_error = std::sync::Mutex::new(None);
        let r = self
            .run(Operation::Upload, path, || async {
                let r = self.multipart_upload(path, local).await;
                if let Err(MultipartError::Local(e)) = r {
                    *local_error.lock().expect("not poisoned") = Some(e);
                    return Ok(());
                }
                r.map_err(|e| match e {
                    MultipartError::Store(e) => e,
                    MultipartError::Local(_) => unreachable!("handled above"),
                })
            })
            .await;
        if let Some(e) = local_error.into_inner().expect("not poisoned") {
            return Err(Error::io("read", local, e));
        }
        r.map(|_| size)
    }

    async fn multipart_upload(
        &self,
        path: &Path,
        local: &std::path::Path,
    ) -> std::result::Result<(), MultipartError> {
        let mut file = tokio::fs::File::open(local)
            .await
            .map_err(MultipartError::Local)?;
        let upload = self
            .store
            .put_multipart(path)
            .await
            .map_err(MultipartError::Store)?;
        let part_size = usize::try_from(self.part_size).unwrap_or(usize::MAX);
        let mut writer = WriteMultipart::new_with_chunk_size(upload, part_size);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match file.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(MultipartError::Local(e));
                }
            };
            if let Err(e) = writer.wait_for_capacity(4).await {
                let _ = writer.abort().await;
                return Err(MultipartError::Store(e));
            }
            writer.write(&buf[..n]);
        }
        writer.finish().await.map_err(MultipartError::Store)?;
        Ok(())
    }

    /// Downloads the object into a local file (created or truncated) and
    /// fsyncs it; returns its size.
    pub async fn download_file(&self, path: &Path, local: &std::path::Path) -> Result<u64> {
        let local_error = std::sync::Mutex::new(None);
        let r = self
            .run(Operation::Get, path, || async {
                let mut stream = self.store.get(path).await?.into_stream();
                let res: std::io::Result<u64> = async {
                    let mut file = tokio::fs::File::create(local).await?;
                    let mut size = 0;
                    while let Some(chunk) =
                        stream.try_next().await.map_err(std::io::Error::other)?
                    {
                        file.write_all(&chunk).await?;
                        size += chunk.len() as u64;
                    }
                    file.sync_all().await?;
                    Ok(size)
                }
                .await;
                match res {
                    Ok(size) => Ok(size),
                    Err(e) => match e.downcast::<object_store::Error>() {
                        Ok(store_error) => Err(store_error),
                        Err(e) => {
                            *local_error.lock().expect("not poisoned") = Some(e);
                            Ok(0)
                        }
                    },
                }
            })
            .await;
        if let Some(e) = local_error.into_inner().expect("not poisoned") {
            return Err(Error::io("write", local, e));
        }
        r
    }

    /// Deletes the object; deleting a missing object succeeds.
    pub async fn delete(&self, path: &Path) -> Result<()> {
        self.run(Operation::Delete, path, || async {
            match self.store.delete(path).await {
                Err(object_store::Error::NotFound { .. }) => Ok(()),
                r => r,
            }
        })
        .await
    }

    /// Every object under `prefix` (recursively), sorted by name.
    pub async fn list(&self, prefix: Option<&Path>) -> Result<Vec<ObjectMeta>> {
        let shown = prefix.cloned().unwrap_or_default();
        let mut objects = self
            .run(Operation::Iter, &shown, || {
                self.store.list(prefix).try_collect::<Vec<_>>()
            })
            .await?;
        objects.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(objects)
    }

    /// The "directories" directly under `prefix` (common prefixes of a
    /// delimited listing), sorted.
    pub async fn list_dirs(&self, prefix: Option<&Path>) -> Result<Vec<Path>> {
        let shown = prefix.cloned().unwrap_or_default();
        let mut dirs = self
            .run(Operation::Iter, &shown, || async {
                Ok(self
                    .store
                    .list_with_delimiter(prefix)
                    .await?
                    .common_prefixes)
            })
            .await?;
        dirs.sort();
        Ok(dirs)
    }
}

enum MultipartError {
    Local(std::io::Error),
    Store(object_store::Error),
}

/// Whether an error may go away on retry: timeouts, refused or reset
/// connections, 5xx, 408 and 429. Missing objects, denied access, bad
/// requests and other 4xx are permanent.
pub fn is_transient(e: &object_store::Error) -> bool {
    match e {
        object_store::Error::Generic { source, .. } => {
            let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
            while let Some(err) = cur {
                if let Some(io) = err.downcast_ref::<std::io::Error>() {
                    use std::io::ErrorKind::*;
                    return !matches!(
                        io.kind(),
                        NotFound | PermissionDenied | InvalidInput | InvalidData | Unsupported
                    );
                }
                if let Some(code) = http_status(&err.to_string()) {
                    return code >= 500 || code == 408 || code == 429;
                }
                cur = err.source();
            }
            true
        }
        _ => false,
    }
}

/// The status code in `object_store`'s HTTP error messages
/// ("... status code: 503 Service Unavailable ...").
fn http_status(message: &str) -> Option<u16> {
    let at = message.find("status code: ")? + "status code: ".len();
    message.get(at..at + 3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(msg: &str) -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: msg.to_string().into(),
        }
    }

    #[test]
    fn classifies_transient_errors() {
        assert!(is_transient(&generic(
            "Error performing PUT in 1s - Server returned non-2xx status code: 503 Service Unavailable"
        )));
        assert!(is_transient(&generic(
            "error sending request: connection refused"
        )));
        assert!(!is_transient(&generic(
            "Server returned non-2xx status code: 400 Bad Request: x"
        )));
        assert!(is_transient(&generic(
            "Server returned non-2xx status code: 429 Too Many Requests"
        )));
        assert!(!is_transient(&object_store::Error::NotFound {
            path: "a".into(),
            source: "gone".into()
        }));
        assert!(!is_transient(&object_store::Error::PermissionDenied {
            path: "a".into(),
            source: "no".into()
        }));
        let io = object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(std::io::Error::from(std::io::ErrorKind::TimedOut)),
        };
        assert!(is_transient(&io));
    }
}
