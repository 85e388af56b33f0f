//! The StoreAPI server: any [`Queryable`] plus external labels served as
//! `thanos.Store` and `thanos.info.Info` (specs/storeapi.md §3).
//!
//! A request's matchers on external labels are decided here (§3.2), the
//! storage is asked with the rest, and the answer is relabeled (external
//! labels added, `without_replica_labels` removed, re-sorted, §3.4) before
//! it is streamed one series at a time, long series split into frames of
//! about 1 MiB and optionally packed into `batch` messages (§3.3).

use std::collections::{BTreeSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use hearth_model::{Labels, Matcher};
use hearth_proto::thanos::info::info_server::{
    Info as InfoService, InfoServer as InfoServiceServer,
};
use hearth_proto::thanos::info::{self as infopb, InfoRequest, InfoResponse};
use hearth_proto::thanos::store_server::{
    Store as StoreService, StoreServer as StoreServiceServer,
};
use hearth_proto::thanos::{self as pb, series_response};
use hearth_storage_api::{Queryable, SelectHints, Series};
use prost::Message;
use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use crate::convert::{chunk_to_proto, labels_to_proto, matchers_from_proto};
use crate::error::{status_from_storage, Error};
use crate::external_labels::{relabel_series, strip_external_matchers};
use crate::StoreInfo;

/// Where the `Info` answer comes from: called on every `Info` request, so
/// the time range can follow the data.
pub type InfoProvider = Arc<dyn Fn() -> StoreInfo + Send + Sync>;

/// Target size of one `series` (or `batch`) message: labels plus chunks.
/// Thanos cuts at the same size; it keeps messages well below gRPC's
/// common 4 MiB receive limit.
pub const MAX_FRAME_BYTES: usize = 1 << 20;

/// The error for a request whose only matchers were on external labels.
const NO_MATCHERS: &str = "no matchers specified (excluding external labels)";

/// StoreAPI and Info over one [`Queryable`]. Cheap to clone.
#[derive(Clone)]
pub struct StoreServer {
    inner: Arc<Inner>,
}

struct Inner {
    queryable: Arc<dyn Queryable>,
    external_labels: Labels,
    info: InfoProvider,
}

type SeriesStream = Pin<Box<dyn Stream<Item = Result<pb::SeriesResponse, Status>> + Send>>;

impl StoreServer {
    /// `external_labels` are added to every series (§3.2); `info` answers
    /// `Info` (component name, label sets, time range).
    pub fn new(queryable: Arc<dyn Queryable>, external_labels: Labels, info: InfoProvider) -> Self {
        Self {
            inner: Arc::new(Inner {
                queryable,
                external_labels,
                info,
            }),
        }
    }

    /// Both services as routes, gzip-compressed requests accepted (answers
    /// are not compressed: chunks barely compress and it costs CPU): for
    /// [`serve`] or to mount beside other gRPC services.
    pub fn into_routes(self) -> Routes {
        let store =
            StoreServiceServer::new(self.clone()).accept_compressed(CompressionEncoding::Gzip);
        let info = InfoServiceServer::new(self).accept_compressed(CompressionEncoding::Gzip);
        Routes::new(store).add_service(info)
    }
}

/// Serves `server` on `listener` until `shutdown` completes, then lets
/// requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    server: StoreServer,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .add_routes(server.into_routes())
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}

/// The status for a storage failure, logged here when it is the storage's
/// fault (the client only sees the message).
fn storage_status(e: &hearth_storage_api::Error) -> Status {
    let status = status_from_storage(e);
    if status.code() == tonic::Code::Internal {
        tracing::warn!(error = %e, "StoreAPI request failed in the storage");
    }
    status
}

/// A request's `limit` (0 or negative = none) as a count.
fn limit_of(limit: i64) -> usize {
    if limit <= 0 {
        0
    } else {
        usize::try_from(limit).unwrap_or(usize::MAX)
    }
}

fn truncate<T>(v: &mut Vec<T>, limit: i64) {
    let limit = limit_of(limit);
    if limit > 0 {
        v.truncate(limit);
    }
}

impl Inner {
    /// The request's matchers left for the storage, `None` when the
    /// external labels rule the request out.
    fn storage_matchers(
        &self,
        matchers: &[pb::LabelMatcher],
    ) -> Result<Option<Vec<Matcher>>, Status> {
        let matchers = matchers_from_proto(matchers)?;
        Ok(strip_external_matchers(matchers, &self.external_labels))
    }

    async fn series(&self, req: pb::SeriesRequest) -> Result<SeriesStream, Status> {
        let Some(matchers) = self.storage_matchers(&req.matchers)? else {
            return Ok(Box::pin(futures::stream::empty()));
        };
        if matchers.is_empty() {
            return Err(Status::invalid_argument(NO_MATCHERS));
        }
        let without = &req.without_replica_labels;
        // Removing labels can merge series, so the storage's own limit is
        // exact only without removal.
        let storage_limit = if without.is_empty() {
            limit_of(req.limit)
        } else {
            0
        };
        let hints = SelectHints {
            mint: req.min_time,
            maxt: req.max_time,
            skip_chunks: req.skip_chunks,
            limit: storage_limit,
            func: None,
        };
        let set = self
            .queryable
            .select(&matchers, hints)
            .await
            .map_err(|e| storage_status(&e))?;
        let mut series = relabel_series(set.series, &self.external_labels, without);
        truncate(&mut series, req.limit);

        let warnings = set.warnings.into_iter().map(|w| pb::SeriesResponse {
            result: Some(series_response::Result::Warning(w)),
        });
        let batch_size = usize::try_from(req.response_batch_size).unwrap_or(0);
        let frames = Responses::new(series, req.skip_chunks, batch_size);
        Ok(Box::pin(futures::stream::iter(
            warnings.chain(frames).map(Ok),
        )))
    }

    async fn label_names(
        &self,
        req: pb::LabelNamesRequest,
    ) -> Result<pb::LabelNamesResponse, Status> {
        let Some(matchers) = self.storage_matchers(&req.matchers)? else {
            return Ok(pb::LabelNamesResponse::default());
        };
        let found = self
            .queryable
            .label_names(&matchers, req.start, req.end)
            .await
            .map_err(|e| storage_status(&e))?;
        let mut names: BTreeSet<String> = found.values.into_iter().collect();
        if !names.is_empty() {
            names.extend(self.external_labels.iter().map(|l| l.name.to_string()));
        }
        let mut names: Vec<String> = names
            .into_iter()
            .filter(|n| !req.without_replica_labels.contains(n))
            .collect();
        truncate(&mut names, req.limit);
        Ok(pb::LabelNamesResponse {
            names,
            warnings: found.warnings,
            hints: None,
        })
    }

    async fn label_values(
        &self,
        req: pb::LabelValuesRequest,
    ) -> Result<pb::LabelValuesResponse, Status> {
        if req.label.is_empty() {
            return Err(Status::invalid_argument(
                "label name parameter cannot be empty",
            ));
        }
        let Some(matchers) = self.storage_matchers(&req.matchers)? else {
            return Ok(pb::LabelValuesResponse::default());
        };
        if req.without_replica_labels.contains(&req.label) {
            return Ok(pb::LabelValuesResponse::default());
        }
        let (mut values, warnings) = match self.external_labels.get(&req.label) {
            Some(value) => self.external_value(value, &matchers, &req).await?,
            None => {
                let found = self
                    .queryable
                    .label_values(&req.label, &matchers, req.start, req.end)
                    .await
                    .map_err(|e| storage_status(&e))?;
                (found.values, found.warnings)
            }
        };
        truncate(&mut values, req.limit);
        Ok(pb::LabelValuesResponse {
            values,
            warnings,
            hints: None,
        })
    }

    /// Values of an external label: its one value, when no matcher is left
    /// or some stored series matches the rest in the range (§3.7).
    async fn external_value(
        &self,
        value: &str,
        matchers: &[Matcher],
        req: &pb::LabelValuesRequest,
    ) -> Result<(Vec<String>, Vec<String>), Status> {
        if matchers.is_empty() {
            return Ok((vec![value.to_string()], Vec::new()));
        }
        let mut hints = SelectHints::new(req.start, req.end).series_only();
        hints.limit = 1;
        let set = self
            .queryable
            .select(matchers, hints)
            .await
            .map_err(|e| storage_status(&e))?;
        let values = if set.series.is_empty() {
            Vec::new()
        } else {
            vec![value.to_string()]
        };
        Ok((values, set.warnings))
    }

    fn info(&self) -> InfoResponse {
        let info = (self.info)();
        let label_sets: Vec<pb::ZLabelSet> = info
            .label_sets
            .iter()
            .map(|l| pb::ZLabelSet {
                labels: labels_to_proto(l),
            })
            .collect();
        let tsdb_infos = label_sets
            .iter()
            .map(|l| infopb::TsdbInfo {
                labels: Some(l.clone()),
                min_time: info.min_time,
                max_time: info.max_time,
            })
            .collect();
        InfoResponse {
            label_sets,
            component_type: info.component,
            store: Some(infopb::StoreInfo {
                min_time: info.min_time,
                max_time: info.max_time,
                supports_sharding: false,
                // This server removes them and sorts after, whatever the
                // storage behind it can do.
                supports_without_replica_labels: true,
                tsdb_infos,
                supports_projections: false,
            }),
            ..Default::default()
        }
    }
}

#[tonic::async_trait]
impl StoreService for StoreServer {
    type SeriesStream = SeriesStream;

    async fn series(
        &self,
        request: Request<pb::SeriesRequest>,
    ) -> Result<Response<Self::SeriesStream>, Status> {
        self.inner
            .series(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn label_names(
        &self,
        request: Request<pb::LabelNamesRequest>,
    ) -> Result<Response<pb::LabelNamesResponse>, Status> {
        self.inner
            .label_names(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn label_values(
        &self,
        request: Request<pb::LabelValuesRequest>,
    ) -> Result<Response<pb::LabelValuesResponse>, Status> {
        self.inner
            .label_values(request.into_inner())
            .await
            .map(Response::new)
    }
}

#[tonic::async_trait]
impl InfoService for StoreServer {
    async fn info(&self, _request: Request<InfoRequest>) -> Result<Response<InfoResponse>, Status> {
        Ok(Response::new(self.inner.info()))
    }
}

/// The `series`/`batch` messages of a sorted series list, built one at a
/// time as the stream is polled: each series becomes one or more frames
/// ([`split_into_frames`]); with a batch size above 1, consecutive frames
/// are packed into `batch` messages of at most that many frames and about
/// [`MAX_FRAME_BYTES`].
struct Responses {
    series: std::vec::IntoIter<Series>,
    /// Frames of the current series not sent yet.
    queued: VecDeque<pb::Series>,
    skip_chunks: bool,
    batch_size: usize,
}

impl Responses {
    fn new(series: Vec<Series>, skip_chunks: bool, batch_size: usize) -> Self {
        Self {
            series: series.into_iter(),
            queued: VecDeque::new(),
            skip_chunks,
            batch_size,
        }
    }

    fn next_frame(&mut self) -> Option<pb::Series> {
        if self.queued.is_empty() {
            let s = self.series.next()?;
            self.queued = split_into_frames(&s, self.skip_chunks).into();
        }
        self.queued.pop_front()
    }

    fn next_batch(&mut self) -> Option<pb::SeriesBatch> {
        let mut batch = Vec::new();
        let mut bytes = 0;
        while batch.len() < self.batch_size {
            let Some(frame) = self.next_frame() else {
                break;
            };
            let len = frame.encoded_len();
            if !batch.is_empty() && bytes + len > MAX_FRAME_BYTES {
                self.queued.push_front(frame);
                break;
            }
            bytes += len;
            batch.push(frame);
        }
        (!batch.is_empty()).then_some(pb::SeriesBatch { series: batch })
    }
}

impl Iterator for Responses {
    type Item = pb::SeriesResponse;

    fn next(&mut self) -> Option<pb::SeriesResponse> {
        let result = if self.batch_size > 1 {
            series_response::Result::Batch(self.next_batch()?)
        } else {
            series_response::Result::Series(self.next_frame()?)
        };
        Some(pb::SeriesResponse {
            result: Some(result),
        })
    }
}

/// One series as wire frames with identical labels, each holding as many
/// consecutive chunks as fit in [`MAX_FRAME_BYTES`] (at least one).
fn split_into_frames(s: &Series, skip_chunks: bool) -> Vec<pb::Series> {
    let labels = labels_to_proto(&s.labels);
    if skip_chunks || s.chunks.is_empty() {
        return vec![pb::Series {
            labels,
            chunks: Vec::new(),
        }];
    }
    let label_bytes: usize = labels.iter().map(|l| l.encoded_len() + 2).sum();
    let mut frames = Vec::new();
    let mut chunks = Vec::new();
    let mut bytes = label_bytes;
    for c in &s.chunks {
        let chunk = chunk_to_proto(c);
        // The chunk's bytes plus its field tag and length prefix.
        let len = chunk.encoded_len() + 6;
        if !chunks.is_empty() && bytes + len > MAX_FRAME_BYTES {
            frames.push(pb::Series {
                labels: labels.clone(),
                chunks: std::mem::take(&mut chunks),
            });
            bytes = label_bytes;
        }
        bytes += len;
        chunks.push(chunk);
    }
    frames.push(pb::Series { labels, chunks });
    frames
}

#[cfg(test)]
mod tests {
    use hearth_model::chunkenc::Encoding;
    use hearth_storage_api::SeriesChunk;

    use super::*;

    fn big_series(chunks: usize, chunk_bytes: usize) -> Series {
        let chunks = (0..chunks)
            .map(|i| SeriesChunk {
                mint: i as i64 * 10,
                maxt: i as i64 * 10 + 9,
                encoding: Encoding::Xor,
                data: Arc::from(vec![i as u8; chunk_bytes]),
            })
            .collect();
        Series::new(Labels::new([("__name__", "big")]), chunks)
    }

    #[test]
    fn long_series_are_split_into_frames_of_at_most_a_mebibyte() {
        let s = big_series(3000, 1000);
        let frames = split_into_frames(&s, false);
        assert!(frames.len() >= 3, "{} frames", frames.len());
        for f in &frames {
            assert!(f.encoded_len() <= MAX_FRAME_BYTES, "{}", f.encoded_len());
            assert_eq!(f.labels, labels_to_proto(&s.labels));
        }
        let mints: Vec<i64> = frames
            .iter()
            .flat_map(|f| f.chunks.iter().map(|c| c.min_time))
            .collect();
        assert_eq!(mints, s.chunks.iter().map(|c| c.mint).collect::<Vec<_>>());
    }

    #[test]
    fn a_chunk_larger_than_a_frame_is_sent_alone() {
        let frames = split_into_frames(&big_series(3, MAX_FRAME_BYTES), false);
        assert_eq!(frames.len(), 3);
    }

    #[test]
    fn batches_hold_up_to_the_batch_size() {
        let series: Vec<Series> = (0..7)
            .map(|i| Series::new(Labels::new([("i", i.to_string())]), Vec::new()))
            .collect();
        let sizes: Vec<usize> = Responses::new(series, true, 3)
            .map(|r| match r.result {
                Some(series_response::Result::Batch(b)) => b.series.len(),
                other => panic!("not a batch: {other:?}"),
            })
            .collect();
        assert_eq!(sizes, vec![3, 3, 1]);
    }
}
