//! StoreAPI over real gRPC on loopback ports: the acceptance suite against
//! `StoreServer` over Hearth's TSDB (head only, and blocks plus head), the
//! `GrpcStore` client against the TSDB's own answers, batches, frames of
//! long series, warnings and error codes.

use std::sync::Arc;

use async_trait::async_trait;
use hearth_model::chunkenc::Encoding;
use hearth_model::{Labels, MatchOp, Matcher, Sample, Timestamp};
use hearth_proto::thanos::store_client::StoreClient;
use hearth_proto::thanos::{self as pb, series_response};
use hearth_storage_api::{
    Error as StorageError, LabelsResult, Queryable, SelectHints, Series, SeriesChunk,
    SeriesSamples, SeriesSet,
};
use hearth_storeapi::acceptance::{self, DATASET_END, DATASET_START};
use hearth_storeapi::external_labels::relabel_series;
use hearth_storeapi::server::MAX_FRAME_BYTES;
use hearth_storeapi::{serve, GrpcStore, Store, StoreInfo, StoreServer};
use hearth_tsdb::db::{Db, DbOptions};
use prost::Message;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running server: its address, and how to stop it.
struct Running {
    addr: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), hearth_storeapi::Error>>>,
}

impl Running {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server result");
        }
    }
}

async fn start(
    queryable: Arc<dyn Queryable>,
    external: Labels,
    info: hearth_storeapi::InfoProvider,
) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local address").to_string();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = StoreServer::new(queryable, external, info);
    let task = tokio::spawn(serve(listener, server, async {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stop: Some(stop),
        task: Some(task),
    }
}

fn static_info(external: &Labels, min_time: i64) -> hearth_storeapi::InfoProvider {
    let info = StoreInfo {
        component: "test".into(),
        label_sets: if external.is_empty() {
            Vec::new()
        } else {
            vec![external.clone()]
        },
        min_time,
        max_time: i64::MAX,
        supports_without_replica_labels: true,
    };
    Arc::new(move || info.clone())
}

/// A TSDB holding the acceptance dataset; with `blocks`, the first two
/// hours are cut into a block (one more sample three hours later makes the
/// head compactable), the last sample stays in the head.
fn tsdb(blocks: bool) -> (tempfile::TempDir, Arc<Db>) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = Db::open(dir.path(), DbOptions::default()).expect("open db");
    db.append_batch(&acceptance::dataset())
        .expect("append dataset");
    if blocks {
        let later = SeriesSamples {
            labels: Labels::new([("__name__", "up"), ("instance", "host-1"), ("job", "api")]),
            samples: vec![Sample::new(DATASET_START + 3 * 3_600_000 + 1, 1.0)],
        };
        db.append_batch(&[later]).expect("append later sample");
        let written = db.compact().expect("compact");
        assert_eq!(written.len(), 1, "one block cut from the head");
        assert_eq!(db.blocks().len(), 1);
    }
    (dir, Arc::new(db))
}

fn db_info(db: &Arc<Db>, external: &Labels) -> hearth_storeapi::InfoProvider {
    let db = Arc::clone(db);
    let label_sets = if external.is_empty() {
        Vec::new()
    } else {
        vec![external.clone()]
    };
    Arc::new(move || StoreInfo {
        component: "scrape".into(),
        label_sets: label_sets.clone(),
        min_time: db
            .blocks()
            .iter()
            .map(|b| b.meta().min_time)
            .chain([db.head().min_time()])
            .min()
            .unwrap_or(i64::MAX),
        max_time: i64::MAX,
        supports_without_replica_labels: true,
    })
}

fn external() -> Labels {
    Labels::new([("cluster", "c1"), ("replica", "a")])
}

async fn run_acceptance(external: Labels, blocks: bool) {
    let (_dir, db) = tsdb(blocks);
    let server = start(db.clone(), external.clone(), db_info(&db, &external)).await;
    let result = acceptance::check(&server.addr, &external, DATASET_START, DATASET_END).await;
    server.stop().await;
    if let Err(failures) = result {
        panic!("acceptance failures:\n{failures}");
    }
}

#[tokio::test]
async fn acceptance_over_the_tsdb_head_with_external_labels() {
    run_acceptance(external(), false).await;
}

#[tokio::test]
async fn acceptance_over_the_tsdb_head_without_external_labels() {
    run_acceptance(Labels::empty(), false).await;
}

#[tokio::test]
async fn acceptance_over_tsdb_blocks_and_head() {
    run_acceptance(external(), true).await;
}

#[tokio::test]
async fn acceptance_over_part_of_the_time_range() {
    let external = Labels::new([("region", "eu")]);
    let (_dir, db) = tsdb(false);
    let server = start(db.clone(), external.clone(), db_info(&db, &external)).await;
    let half = DATASET_START + 3_600_000;
    let result = acceptance::check(&server.addr, &external, half, DATASET_END).await;
    server.stop().await;
    if let Err(failures) = result {
        panic!("acceptance failures:\n{failures}");
    }
}

#[tokio::test]
async fn the_suite_catches_a_store_that_ignores_external_labels() {
    // Served without external labels but checked as if it had some: the
    // suite must notice.
    let (_dir, db) = tsdb(false);
    let server = start(db.clone(), Labels::empty(), db_info(&db, &Labels::empty())).await;
    let result = acceptance::check(&server.addr, &external(), DATASET_START, DATASET_END).await;
    server.stop().await;
    let failures = result.expect_err("the suite passed a wrong store");
    assert!(failures.contains("external_label_matchers"), "{failures}");
    assert!(failures.contains("info"), "{failures}");
}

fn re(name: &str, value: &str) -> Matcher {
    Matcher::new(MatchOp::RegexMatch, name, value).expect("valid regex")
}

#[tokio::test]
async fn grpc_store_answers_as_the_tsdb_does() {
    let ext = external();
    let (_dir, db) = tsdb(true);
    let server = start(db.clone(), ext.clone(), db_info(&db, &ext)).await;
    let store = GrpcStore::connect_lazy(&server.addr).expect("client");

    let all = [re("__name__", ".+")];
    let cases: Vec<(Vec<Matcher>, SelectHints)> = vec![
        (all.to_vec(), SelectHints::new(DATASET_START, DATASET_END)),
        (
            vec![Matcher::equal("__name__", "legacy_metric")],
            SelectHints::new(DATASET_START, DATASET_END),
        ),
        (
            vec![Matcher::equal("job", "batch")],
            SelectHints::new(DATASET_START + 45 * 60_000, DATASET_START + 75 * 60_000),
        ),
        (
            all.to_vec(),
            SelectHints::new(DATASET_START, DATASET_END).series_only(),
        ),
        (all.to_vec(), {
            let mut h = SelectHints::new(DATASET_START, DATASET_END);
            h.limit = 5;
            h.func = Some("rate");
            h
        }),
    ];
    for (matchers, hints) in cases {
        let got = store.select(&matchers, hints).await.expect("select");
        let local = db.select(&matchers, hints).await.expect("local select");
        let want = relabel_series(local.series, &ext, &[]);
        assert_eq!(got.series, want, "{matchers:?} {hints:?}");
        assert!(got.warnings.is_empty());
    }

    // The external value wins over the stored one.
    let legacy = store
        .select(
            &[Matcher::equal("__name__", "legacy_metric")],
            SelectHints::new(DATASET_START, DATASET_END),
        )
        .await
        .expect("select");
    assert_eq!(legacy.series[0].labels.get("cluster"), Some("c1"));

    // Replica labels removed by the server, stored and external alike.
    let without = vec!["replica".to_string(), "instance".to_string()];
    let hints = SelectHints::new(DATASET_START, DATASET_END);
    let got = store
        .select_without(&all, hints, &without)
        .await
        .expect("select without");
    let local = db.select(&all, hints).await.expect("local select");
    assert_eq!(got.series, relabel_series(local.series, &ext, &without));
    assert!(got.series.iter().all(|s| !s.labels.has("replica")));

    // Samples decode to the dataset's.
    let data = acceptance::dataset();
    let special = data
        .iter()
        .find(|s| s.labels.metric_name() == Some("special_values"))
        .expect("special series");
    let got = store
        .select(
            &[Matcher::equal("__name__", "special_values")],
            SelectHints::new(DATASET_START, DATASET_END),
        )
        .await
        .expect("select");
    assert_eq!(
        got.series[0]
            .samples(DATASET_START, DATASET_END)
            .expect("decode"),
        special.samples
    );

    server.stop().await;
}

#[tokio::test]
async fn grpc_store_labels_and_info() {
    let ext = external();
    let (_dir, db) = tsdb(false);
    let server = start(db.clone(), ext.clone(), db_info(&db, &ext)).await;
    let store = GrpcStore::connect_lazy(&format!("http://{}", server.addr)).expect("client");

    let names = store
        .label_names(&[], DATASET_START, DATASET_END)
        .await
        .expect("names");
    let mut want = db
        .label_names(&[], DATASET_START, DATASET_END)
        .await
        .expect("local names")
        .values;
    want.extend(ext.iter().map(|l| l.name.to_string()));
    want.sort();
    want.dedup();
    assert_eq!(names.values, want);

    let without = store
        .label_names_without(&[], DATASET_START, DATASET_END, &["replica".into()])
        .await
        .expect("names without");
    assert!(!without.values.contains(&"replica".to_string()));
    assert!(without.values.contains(&"cluster".to_string()));

    let up = [Matcher::equal("__name__", "up")];
    let jobs = store
        .label_values("job", &up, DATASET_START, DATASET_END)
        .await
        .expect("values");
    assert_eq!(jobs.values, vec!["api", "batch", "web"]);
    let cluster = store
        .label_values("cluster", &[], DATASET_START, DATASET_END)
        .await
        .expect("values");
    assert_eq!(cluster.values, vec!["c1"]);
    let none = store
        .label_values_without(
            "replica",
            &[],
            DATASET_START,
            DATASET_END,
            &["replica".into()],
        )
        .await
        .expect("values without");
    assert!(none.values.is_empty());

    let info = store.info().await.expect("info");
    assert_eq!(info.component, "scrape");
    assert_eq!(info.label_sets, vec![ext]);
    assert_eq!(info.min_time, DATASET_START);
    assert_eq!(info.max_time, i64::MAX);
    assert!(info.supports_without_replica_labels);

    server.stop().await;
}

async fn raw_client(addr: &str) -> StoreClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    StoreClient::new(channel).max_decoding_message_size(usize::MAX)
}

/// All messages of a `Series` call.
async fn raw_series(addr: &str, req: pb::SeriesRequest) -> Vec<pb::SeriesResponse> {
    let mut stream = raw_client(addr)
        .await
        .series(req)
        .await
        .expect("series")
        .into_inner();
    let mut out = Vec::new();
    while let Some(m) = stream.message().await.expect("message") {
        out.push(m);
    }
    out
}

fn all_request() -> pb::SeriesRequest {
    pb::SeriesRequest {
        min_time: DATASET_START,
        max_time: DATASET_END,
        matchers: vec![pb::LabelMatcher {
            r#type: pb::label_matcher::Type::Re as i32,
            name: "__name__".into(),
            value: ".+".into(),
        }],
        ..Default::default()
    }
}

#[tokio::test]
async fn batches_carry_the_same_series_as_single_messages() {
    let (_dir, db) = tsdb(false);
    let server = start(db.clone(), external(), db_info(&db, &external())).await;

    let single = raw_series(&server.addr, all_request()).await;
    let mut req = all_request();
    req.response_batch_size = 10;
    let batched = raw_series(&server.addr, req).await;

    let singles: Vec<pb::Series> = single
        .into_iter()
        .map(|m| match m.result {
            Some(series_response::Result::Series(s)) => s,
            other => panic!("want series messages, got {other:?}"),
        })
        .collect();
    let mut sizes = Vec::new();
    let flattened: Vec<pb::Series> = batched
        .into_iter()
        .flat_map(|m| match m.result {
            Some(series_response::Result::Batch(b)) => {
                sizes.push(b.series.len());
                b.series
            }
            other => panic!("want batch messages, got {other:?}"),
        })
        .collect();
    assert_eq!(singles.len(), 36);
    assert_eq!(sizes, vec![10, 10, 10, 6]);
    assert_eq!(flattened, singles);
    server.stop().await;
}

/// A storage with a fixed answer.
struct Fixed(Result<SeriesSet, StorageError>);

#[async_trait]
impl Queryable for Fixed {
    async fn select(&self, _: &[Matcher], _: SelectHints) -> hearth_storage_api::Result<SeriesSet> {
        self.0.clone()
    }

    async fn label_names(
        &self,
        _: &[Matcher],
        _: Timestamp,
        _: Timestamp,
    ) -> hearth_storage_api::Result<LabelsResult> {
        self.0.clone().map(|_| LabelsResult::default())
    }

    async fn label_values(
        &self,
        _: &str,
        _: &[Matcher],
        _: Timestamp,
        _: Timestamp,
    ) -> hearth_storage_api::Result<LabelsResult> {
        self.0.clone().map(|_| LabelsResult::default())
    }
}

/// A series of `n` chunks of 1000 arbitrary bytes (the server and client
/// pass chunk bytes through without decoding them).
fn long_series(n: usize) -> Series {
    let chunks = (0..n)
        .map(|i| SeriesChunk {
            mint: i as i64 * 1000,
            maxt: i as i64 * 1000 + 999,
            encoding: Encoding::Xor,
            data: Arc::from((0..1000).map(|b| (b * 7 + i) as u8).collect::<Vec<u8>>()),
        })
        .collect();
    Series::new(Labels::new([("__name__", "long")]), chunks)
}

#[tokio::test]
async fn long_series_are_split_into_frames_and_merged_back() {
    let series = long_series(3000);
    let other = Series::new(Labels::new([("__name__", "short")]), long_series(2).chunks);
    let set = SeriesSet {
        series: vec![series.clone(), other.clone()],
        warnings: Vec::new(),
    };
    let fixed = Arc::new(Fixed(Ok(set)));
    let server = start(fixed, Labels::empty(), static_info(&Labels::empty(), 0)).await;

    for batch_size in [0, 64] {
        let mut req = all_request();
        req.min_time = 0;
        req.max_time = i64::MAX;
        req.response_batch_size = batch_size;
        let messages = raw_series(&server.addr, req).await;
        let frames: Vec<pb::Series> = messages
            .iter()
            .inspect(|m| {
                assert!(
                    m.encoded_len() <= MAX_FRAME_BYTES + 64,
                    "{}",
                    m.encoded_len()
                )
            })
            .flat_map(|m| match &m.result {
                Some(series_response::Result::Series(s)) => vec![s.clone()],
                Some(series_response::Result::Batch(b)) => b.series.clone(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        let long_frames = frames
            .iter()
            .filter(|f| f.labels[0].value == "long")
            .count();
        assert!(long_frames >= 3, "{long_frames} frames for ~3 MB");
        // One series at a time: all frames of `long` before `short`.
        let firsts: Vec<&str> = frames.iter().map(|f| f.labels[0].value.as_str()).collect();
        assert!(firsts.is_sorted(), "{firsts:?}");
        assert!(frames
            .iter()
            .flat_map(|f| &f.chunks)
            .all(|c| c.raw.as_ref().is_some_and(|r| r.hash == xxhash(&r.data))));
    }

    let store = GrpcStore::connect_lazy(&server.addr).expect("client");
    let got = store
        .select(&[re("__name__", ".+")], SelectHints::new(0, i64::MAX))
        .await
        .expect("select");
    assert_eq!(got.series, vec![series, other]);
    server.stop().await;
}

fn xxhash(data: &[u8]) -> u64 {
    hearth_storeapi::convert::chunk_hash(data)
}

#[tokio::test]
async fn warnings_reach_the_client() {
    let set = SeriesSet {
        series: vec![Series::new(Labels::new([("__name__", "a")]), Vec::new())],
        warnings: vec!["block 01J: partial".into()],
    };
    let server = start(
        Arc::new(Fixed(Ok(set))),
        Labels::empty(),
        static_info(&Labels::empty(), 0),
    )
    .await;
    let store = GrpcStore::connect_lazy(&server.addr).expect("client");
    let got = store
        .select(&[re("__name__", ".+")], SelectHints::new(0, 10))
        .await
        .expect("select");
    assert_eq!(got.warnings, vec!["block 01J: partial".to_string()]);
    assert_eq!(got.series.len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn storage_errors_map_to_grpc_codes_and_back() {
    for (error, code) in [
        (
            StorageError::Internal("disk on fire".into()),
            tonic::Code::Internal,
        ),
        (
            StorageError::BadRequest("bad range".into()),
            tonic::Code::InvalidArgument,
        ),
        (
            StorageError::Unavailable("closing".into()),
            tonic::Code::Unavailable,
        ),
    ] {
        let server = start(
            Arc::new(Fixed(Err(error.clone()))),
            Labels::empty(),
            static_info(&Labels::empty(), 0),
        )
        .await;
        let status = raw_client(&server.addr)
            .await
            .series(all_request())
            .await
            .expect_err("an error status");
        assert_eq!(status.code(), code, "{error:?}");

        let store = GrpcStore::connect_lazy(&server.addr).expect("client");
        let got = store
            .select(&[re("__name__", ".+")], SelectHints::new(0, 10))
            .await
            .expect_err("select fails");
        assert_eq!(
            std::mem::discriminant(&got),
            std::mem::discriminant(&error),
            "{got:?}"
        );
        assert!(got.to_string().contains(&server.addr), "{got}");
        server.stop().await;
    }
}

#[tokio::test]
async fn an_unreachable_store_is_unavailable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address").to_string();
    drop(listener);
    let store = GrpcStore::connect_lazy(&addr).expect("client");
    let err = store
        .select(&[re("__name__", ".+")], SelectHints::new(0, 10))
        .await
        .expect_err("nothing listens");
    assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
    assert!(matches!(
        store.info().await,
        Err(StorageError::Unavailable(_))
    ));
}

/// A storage that breaks one rule of the contract, to show the acceptance
/// suite notices.
struct Broken {
    db: Arc<Db>,
    fault: Fault,
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Answers every select over all time.
    IgnoresTimeRange,
    /// Loses the last chunk of every series.
    DropsLastChunk,
    /// Reports a label name no series has.
    InventsLabelName,
}

#[async_trait]
impl Queryable for Broken {
    async fn select(
        &self,
        matchers: &[Matcher],
        mut hints: SelectHints,
    ) -> hearth_storage_api::Result<SeriesSet> {
        if let Fault::IgnoresTimeRange = self.fault {
            hints.mint = i64::MIN;
            hints.maxt = i64::MAX;
        }
        let mut set = self.db.select(matchers, hints).await?;
        if let Fault::DropsLastChunk = self.fault {
            for s in &mut set.series {
                s.chunks.pop();
            }
        }
        Ok(set)
    }

    async fn label_names(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> hearth_storage_api::Result<LabelsResult> {
        let mut names = self.db.label_names(matchers, mint, maxt).await?;
        if let Fault::InventsLabelName = self.fault {
            names.values.push("zzz_invented".into());
        }
        Ok(names)
    }

    async fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> hearth_storage_api::Result<LabelsResult> {
        self.db.label_values(name, matchers, mint, maxt).await
    }
}

#[tokio::test]
async fn the_suite_catches_broken_storages() {
    for (fault, failing_check) in [
        (Fault::IgnoresTimeRange, "time_ranges"),
        (Fault::DropsLastChunk, "series_equal_matcher"),
        (Fault::InventsLabelName, "label_names"),
    ] {
        let (_dir, db) = tsdb(false);
        let ext = external();
        let broken = Arc::new(Broken {
            db: db.clone(),
            fault,
        });
        let server = start(broken, ext.clone(), db_info(&db, &ext)).await;
        let result = acceptance::check(&server.addr, &ext, DATASET_START, DATASET_END).await;
        server.stop().await;
        let failures = result.expect_err("the suite passed a broken storage");
        assert!(failures.contains(failing_check), "{fault:?}: {failures}");
    }
}
