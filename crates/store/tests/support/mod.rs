//! Test helpers: blocks written by `hearth_tsdb`, uploaded to a FILESYSTEM
//! bucket in a temporary directory, and the answers the TSDB itself gives
//! for them.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use futures::stream::BoxStream;
use hearth_model::{Labels, Matcher, Sample, Timestamp};
use hearth_objstore::object_store::local::LocalFileSystem;
use hearth_objstore::object_store::path::Path as ObjectPath;
use hearth_objstore::object_store::{
    self, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use hearth_objstore::{Bucket, RetryPolicy};
use hearth_storage_api::Series;
use hearth_store::{BucketStore, StoreOptions};
use hearth_tsdb::block::{chunks_from_samples, Block, BlockCompaction, BlockWriter};
use ulid::Ulid;

pub const MIN: i64 = 60_000;
pub const HOUR: i64 = 60 * MIN;

/// A bucket directory, a local directory for the store, and a directory
/// to build blocks in, all under one temporary directory.
pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub bucket: Bucket,
    pub bucket_dir: PathBuf,
    pub local_dir: PathBuf,
    pub blocks_dir: PathBuf,
}

impl Fixture {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let bucket_dir = tmp.path().join("bucket");
        let local_dir = tmp.path().join("store");
        let blocks_dir = tmp.path().join("blocks");
        for d in [&bucket_dir, &local_dir, &blocks_dir] {
            std::fs::create_dir_all(d).unwrap();
        }
        let bucket = fs_bucket(&bucket_dir);
        Self {
            tmp,
            bucket,
            bucket_dir,
            local_dir,
            blocks_dir,
        }
    }

    /// A store over the bucket with test-friendly options.
    pub fn store(&self, options: StoreOptions) -> BucketStore {
        BucketStore::new(self.bucket.clone(), &self.local_dir, options).unwrap()
    }

    /// Writes a block of `series` over `[mint, maxt)` and uploads it with
    /// external labels `ext`. Returns its ID and local directory.
    pub async fn add_block(
        &self,
        mint: Timestamp,
        maxt: Timestamp,
        series: &[(Labels, Vec<Sample>)],
        ext: &[(&str, &str)],
    ) -> (Ulid, PathBuf) {
        let dir = write_block(&self.blocks_dir, mint, maxt, series);
        let id = self
            .bucket
            .upload_block(&dir, &ext_map(ext), "test")
            .await
            .unwrap();
        (id, dir)
    }

    /// The bucket object `<ULID>/<rel>` as a local file.
    pub fn object(&self, id: Ulid, rel: &str) -> PathBuf {
        self.bucket_dir.join(id.to_string()).join(rel)
    }
}

pub fn fs_bucket(dir: &Path) -> Bucket {
    let fs = Arc::new(LocalFileSystem::new_with_prefix(dir).unwrap());
    Bucket::new(fs, "test").with_retry(RetryPolicy::none())
}

pub fn test_options() -> StoreOptions {
    StoreOptions {
        ignore_deletion_marks_delay: std::time::Duration::ZERO,
        ..StoreOptions::default()
    }
}

pub fn ext_map(ext: &[(&str, &str)]) -> BTreeMap<String, String> {
    ext.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Writes a block with `series` (any order) covering `[mint, maxt)`.
pub fn write_block(
    parent: &Path,
    mint: Timestamp,
    maxt: Timestamp,
    series: &[(Labels, Vec<Sample>)],
) -> PathBuf {
    let mut sorted: Vec<&(Labels, Vec<Sample>)> = series.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let id = Ulid::new();
    let mut w = BlockWriter::new(parent, id, mint, maxt).unwrap();
    for (labels, samples) in sorted {
        let chunks = chunks_from_samples(samples, maxt - mint).unwrap();
        w.add_series(labels, &chunks).unwrap();
    }
    w.finish(BlockCompaction::default()).unwrap();
    parent.join(id.to_string())
}

/// `n` series `{__name__="m", i="<k>"}` (plus `extra` labels) with a sample
/// every `step` ms in `[mint, maxt)`.
pub fn series_set(
    n: usize,
    mint: Timestamp,
    maxt: Timestamp,
    step: i64,
    extra: &[(&str, &str)],
) -> Vec<(Labels, Vec<Sample>)> {
    (0..n)
        .map(|k| {
            let mut pairs: Vec<(String, String)> = vec![
                ("__name__".into(), "m".into()),
                ("i".into(), format!("{k:03}")),
            ];
            pairs.extend(extra.iter().map(|(a, b)| (a.to_string(), b.to_string())));
            let samples = (mint..maxt)
                .step_by(step as usize)
                .map(|t| Sample::new(t, (t / 1000) as f64 + k as f64))
                .collect();
            (Labels::new(pairs), samples)
        })
        .collect()
}

/// What the TSDB's own block reader answers for `blocks` (each with its
/// external labels), rewritten as a StoreAPI answer: external labels
/// applied per §3.2, series of all blocks merged by label set.
pub fn expected_select(
    blocks: &[(&Path, &[(&str, &str)])],
    matchers: &[Matcher],
    mint: Timestamp,
    maxt: Timestamp,
) -> Vec<Series> {
    let mut parts = Vec::new();
    for (dir, ext) in blocks {
        let ext = Labels::new(ext.iter().copied());
        let block = Block::open(dir).unwrap();
        if block.meta().min_time > maxt || block.meta().max_time <= mint {
            continue;
        }
        let Some(rest) =
            hearth_storeapi::external_labels::strip_external_matchers(matchers.to_vec(), &ext)
        else {
            continue;
        };
        let series = block.select(&rest, mint, maxt, false).unwrap();
        parts.push(hearth_storeapi::external_labels::relabel_series(
            series,
            &ext,
            &[],
        ));
    }
    hearth_tsdb::db::merge_series(parts)
}

/// Every sample of the series within `[mint, maxt]`, by label set.
pub fn samples_of(
    series: &[Series],
    mint: Timestamp,
    maxt: Timestamp,
) -> Vec<(String, Vec<(i64, f64)>)> {
    series
        .iter()
        .map(|s| {
            (
                s.labels.to_string(),
                s.samples(mint, maxt)
                    .unwrap()
                    .iter()
                    .map(|x| (x.t, x.v))
                    .collect(),
            )
        })
        .collect()
}

/// Whether this process has `path` memory-mapped (Linux).
pub fn is_mapped(path: &Path) -> bool {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let want = path.to_string_lossy();
    maps.lines().any(|l| l.ends_with(want.as_ref()))
}

pub fn eq(name: &str, value: &str) -> Matcher {
    Matcher::equal(name, value)
}

pub fn re(name: &str, value: &str) -> Matcher {
    Matcher::new(hearth_model::MatchOp::RegexMatch, name, value).unwrap()
}

/// An object store that fails listings or range reads on demand, and
/// counts range reads.
#[derive(Debug)]
pub struct Faulty {
    inner: Arc<dyn ObjectStore>,
    pub fail_list: AtomicBool,
    pub fail_range_reads: AtomicBool,
    pub range_reads: AtomicUsize,
}

impl Faulty {
    pub fn new(dir: &Path) -> Arc<Self> {
        Arc::new(Self {
            inner: Arc::new(LocalFileSystem::new_with_prefix(dir).unwrap()),
            fail_list: AtomicBool::new(false),
            fail_range_reads: AtomicBool::new(false),
            range_reads: AtomicUsize::new(0),
        })
    }

    pub fn bucket(self: &Arc<Self>) -> Bucket {
        Bucket::new(self.clone(), "faulty").with_retry(RetryPolicy::none())
    }
}

fn injected(what: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "Faulty",
        source: format!("injected failure of {what}").into(),
    }
}

impl std::fmt::Display for Faulty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Faulty({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for Faulty {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &ObjectPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        if options.range.is_some() {
            self.range_reads.fetch_add(1, Ordering::SeqCst);
            if self.fail_range_reads.load(Ordering::SeqCst) {
                return Err(injected("range read"));
            }
        }
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> object_store::Result<ListResult> {
        if self.fail_list.load(Ordering::SeqCst) {
            return Err(injected("list"));
        }
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
