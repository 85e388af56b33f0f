//! Test helpers: TSDB blocks written by `hearth_tsdb`, and an object store
//! wrapper that records puts and deletes and fails puts on demand.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use hearth_model::{Labels, Sample};
use hearth_objstore::object_store::path::Path;
use hearth_objstore::object_store::{
    self, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use hearth_storage_api::SeriesSamples;
use hearth_tsdb::db::{Db, DbOptions};

pub const MIN: i64 = 60_000;

/// Writes `minutes` of samples of `series` series every 15 s into a TSDB
/// in `dir` with 10-minute blocks, cuts blocks, and closes it. Returns the
/// block directories, oldest first.
pub fn make_blocks(dir: &FsPath, series: usize, minutes: i64) -> Vec<PathBuf> {
    let opts = DbOptions {
        min_block_duration: 10 * MIN,
        max_block_duration: 10 * MIN,
        retention_time: 0,
        retention_size: 0,
        wal_segment_size: 64 * 1024,
        ..DbOptions::default()
    };
    let db = Db::open(dir, opts).unwrap();
    let mut t = 0;
    while t < minutes * MIN {
        let batch: Vec<SeriesSamples> = (0..series)
            .map(|i| SeriesSamples {
                labels: Labels::new([("__name__", "m"), ("i", &i.to_string())]),
                samples: vec![Sample::new(t, (t / 1000) as f64 + i as f64)],
            })
            .collect();
        db.append_batch(&batch).unwrap();
        t += 15_000;
    }
    db.compact().unwrap();
    let mut blocks: Vec<(i64, PathBuf)> = db
        .blocks()
        .iter()
        .map(|b| (b.meta().min_time, b.dir().to_path_buf()))
        .collect();
    db.close().unwrap();
    blocks.sort();
    assert!(blocks.len() >= 2, "expected several blocks, got {blocks:?}");
    blocks.into_iter().map(|(_, p)| p).collect()
}

/// Number of samples readable from a TSDB directory.
pub fn count_samples(dir: &FsPath) -> usize {
    let db = Db::open(dir, DbOptions::default()).unwrap();
    let n = db
        .select_sync(
            &[hearth_tsdb::compact::all_series_matcher()],
            hearth_storage_api::SelectHints::new(i64::MIN, i64::MAX),
        )
        .unwrap()
        .iter()
        .map(|s| s.samples(i64::MIN, i64::MAX).unwrap().len())
        .sum();
    db.close().unwrap();
    n
}

pub fn labels() -> BTreeMap<String, String> {
    [
        ("cluster".to_string(), "eu-1".to_string()),
        ("replica".to_string(), "a".to_string()),
    ]
    .into()
}

/// An object store that records the names of puts and deletes, and fails
/// puts: the next `fail_next_puts` ones, and every put whose name contains
/// `fail_matching`.
#[derive(Debug)]
pub struct Recording {
    inner: Arc<dyn ObjectStore>,
    pub puts: Mutex<Vec<String>>,
    pub deletes: Arc<Mutex<Vec<String>>>,
    pub fail_next_puts: AtomicUsize,
    pub fail_matching: Mutex<Option<String>>,
}

impl Recording {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            puts: Mutex::new(Vec::new()),
            deletes: Arc::new(Mutex::new(Vec::new())),
            fail_next_puts: AtomicUsize::new(0),
            fail_matching: Mutex::new(None),
        })
    }

    pub fn puts(&self) -> Vec<String> {
        self.puts.lock().unwrap().clone()
    }

    fn check_put(&self, location: &Path) -> object_store::Result<()> {
        let fail_count = self
            .fail_next_puts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let fail_match = self
            .fail_matching
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|m| location.as_ref().contains(m.as_str()));
        if fail_count || fail_match {
            return Err(object_store::Error::Generic {
                store: "Recording",
                source: Box::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("injected failure of put {location}"),
                )),
            });
        }
        self.puts.lock().unwrap().push(location.to_string());
        Ok(())
    }
}

impl fmt::Display for Recording {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recording({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for Recording {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.check_put(location)?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.check_put(location)?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<bytes::Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let deletes = self.deletes.clone();
        self.inner
            .delete_stream(locations)
            .map(move |r| {
                if let Ok(p) = &r {
                    deletes.lock().unwrap().push(p.to_string());
                }
                r
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
