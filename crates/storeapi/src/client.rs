//! The StoreAPI client: a remote `thanos.Store` + `thanos.info.Info`
//! endpoint (Hearth's or Thanos's) as a [`Store`], so that the querier fans
//! out to remote and in-process stores alike.
//!
//! A select collects the whole `Series` stream: `series` and `batch`
//! messages are both accepted, consecutive frames of one series are merged,
//! warnings become [`SeriesSet::warnings`], and gRPC errors become the
//! storage errors they stand for ([`storage_from_status`]). Requests use the
//! ABORT partial-response strategy: the querier decides itself whether a
//! failed store is a warning or an error.

use std::time::Duration;

use async_trait::async_trait;
use hearth_model::{Matcher, Timestamp};
use hearth_proto::thanos::info::info_client::InfoClient;
use hearth_proto::thanos::info::InfoRequest;
use hearth_proto::thanos::store_client::StoreClient;
use hearth_proto::thanos::{self as pb, series_response};
use hearth_storage_api::{
    Error as StorageError, LabelsResult, Queryable, Result, SelectHints, Series, SeriesSet,
};
use tonic::codec::CompressionEncoding;
use tonic::transport::{Channel, Endpoint};

use crate::convert::{
    aggregates_for_func, labels_from_proto, matchers_to_proto, series_from_proto,
};
use crate::error::{storage_from_status, Error};
use crate::external_labels::{merge_equal_neighbours, remove_labels_and_sort};
use crate::{Store, StoreInfo};

/// How long connecting to a store may take before the request fails (a
/// dead store should cost a query seconds, not the OS's TCP timeout).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest message accepted from a store. Thanos sets no limit
/// (`MaxInt32`); tonic's default of 4 MiB would fail on large batches.
pub const MAX_RECEIVE_BYTES: usize = i32::MAX as usize;

/// Series per `batch` message asked from servers that support batching
/// (Thanos ≥ 0.41, Hearth): fewer, larger messages for short series.
pub const SERIES_BATCH_SIZE: i64 = 64;

/// A remote StoreAPI endpoint. Cheap to clone (one shared HTTP/2 channel).
#[derive(Clone)]
pub struct GrpcStore {
    address: String,
    store: StoreClient<Channel>,
    info: InfoClient<Channel>,
}

impl GrpcStore {
    /// A store at `address` (`host:port` or `http://host:port`), connected
    /// on first use and reconnected after failures. Must be called within a
    /// Tokio runtime (the channel spawns its worker task).
    pub fn connect_lazy(address: &str) -> Result<Self, Error> {
        let uri = if address.contains("://") {
            address.to_string()
        } else {
            format!("http://{address}")
        };
        let endpoint = Endpoint::from_shared(uri).map_err(|e| Error::InvalidAddress {
            address: address.to_string(),
            reason: e.to_string(),
        })?;
        let channel = endpoint
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .connect_lazy();
        let store = StoreClient::new(channel.clone())
            .max_decoding_message_size(MAX_RECEIVE_BYTES)
            .accept_compressed(CompressionEncoding::Gzip);
        let info = InfoClient::new(channel)
            .max_decoding_message_size(MAX_RECEIVE_BYTES)
            .accept_compressed(CompressionEncoding::Gzip);
        Ok(Self {
            address: address.to_string(),
            store,
            info,
        })
    }

    /// The address the store was created with.
    pub fn address(&self) -> &str {
        &self.address
    }

    fn status_error(&self, status: &tonic::Status) -> StorageError {
        storage_from_status(&self.address, status)
    }

    /// A response Hearth cannot use (unknown chunk encoding, aggregate
    /// chunk without raw data): the store's fault, named in the error.
    fn invalid_response(&self, e: Error) -> StorageError {
        StorageError::Internal(format!("store {}: {e}", self.address))
    }

    fn series_request(
        &self,
        matchers: &[Matcher],
        hints: &SelectHints,
        without_replica_labels: &[String],
    ) -> pb::SeriesRequest {
        pb::SeriesRequest {
            min_time: hints.mint,
            max_time: hints.maxt,
            matchers: matchers_to_proto(matchers),
            max_resolution_window: 0,
            aggregates: aggregates_for_func(hints.func)
                .into_iter()
                .map(|a| a as i32)
                .collect(),
            // Both the deprecated flag and the strategy, for old servers.
            partial_response_disabled: true,
            partial_response_strategy: pb::PartialResponseStrategy::Abort as i32,
            skip_chunks: hints.skip_chunks,
            query_hints: hints.func.map(|f| pb::QueryHints {
                func: Some(pb::Func {
                    name: f.to_string(),
                }),
                ..Default::default()
            }),
            without_replica_labels: without_replica_labels.to_vec(),
            limit: i64::try_from(hints.limit).unwrap_or(i64::MAX),
            response_batch_size: SERIES_BATCH_SIZE,
            ..Default::default()
        }
    }

    /// Sends a `Series` request and collects its whole stream.
    async fn collect_series(&self, request: pb::SeriesRequest) -> Result<SeriesSet> {
        let mut stream = self
            .store
            .clone()
            .series(request)
            .await
            .map_err(|s| self.status_error(&s))?
            .into_inner();
        let mut collected = SeriesCollector::default();
        while let Some(response) = stream.message().await.map_err(|s| self.status_error(&s))? {
            collected
                .add(response)
                .map_err(|e| self.invalid_response(e))?;
        }
        Ok(collected.finish())
    }
}

/// Accumulates a `Series` stream into a [`SeriesSet`].
#[derive(Default)]
struct SeriesCollector {
    series: Vec<Series>,
    warnings: Vec<String>,
}

impl SeriesCollector {
    fn add(&mut self, response: pb::SeriesResponse) -> Result<(), Error> {
        match response.result {
            Some(series_response::Result::Series(s)) => self.push(&s)?,
            Some(series_response::Result::Batch(batch)) => {
                for s in &batch.series {
                    self.push(s)?;
                }
            }
            Some(series_response::Result::Warning(w)) => self.warnings.push(w),
            // Opaque, store-specific hints; nothing Hearth reads.
            Some(series_response::Result::Hints(_)) | None => {}
        }
        Ok(())
    }

    /// Appends a series, or its chunks to the previous one when it is the
    /// next frame of the same series.
    fn push(&mut self, s: &pb::Series) -> Result<(), Error> {
        let s = series_from_proto(s)?;
        match self.series.last_mut() {
            Some(last) if last.labels == s.labels => last.chunks.extend(s.chunks),
            _ => self.series.push(s),
        }
        Ok(())
    }

    /// The set, sorted even if the server did not sort it, with chunks in
    /// `mint` order.
    fn finish(self) -> SeriesSet {
        let mut series = self.series;
        if !series.is_sorted_by(|a, b| a.labels <= b.labels) {
            series.sort_by(|a, b| a.labels.cmp(&b.labels));
            series = merge_equal_neighbours(series);
        }
        for s in &mut series {
            if !s.chunks.is_sorted_by_key(|c| c.mint) {
                s.chunks.sort_by_key(|c| c.mint);
            }
        }
        SeriesSet {
            series,
            warnings: self.warnings,
        }
    }
}

#[async_trait]
impl Queryable for GrpcStore {
    async fn select(&self, matchers: &[Matcher], hints: SelectHints) -> Result<SeriesSet> {
        self.select_without(matchers, hints, &[]).await
    }

    async fn label_names(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<LabelsResult> {
        self.label_names_without(matchers, mint, maxt, &[]).await
    }

    async fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<LabelsResult> {
        self.label_values_without(name, matchers, mint, maxt, &[])
            .await
    }
}

#[async_trait]
impl Store for GrpcStore {
    async fn info(&self) -> Result<StoreInfo> {
        let response = self
            .info
            .clone()
            .info(InfoRequest {})
            .await
            .map_err(|s| self.status_error(&s))?
            .into_inner();
        let store = response.store.unwrap_or(pb::info::StoreInfo {
            // Not a StoreAPI server: a range no query intersects.
            min_time: i64::MAX,
            max_time: i64::MIN,
            ..Default::default()
        });
        Ok(StoreInfo {
            component: response.component_type,
            label_sets: response
                .label_sets
                .iter()
                .map(|set| labels_from_proto(&set.labels))
                .collect(),
            min_time: store.min_time,
            max_time: store.max_time,
            supports_without_replica_labels: store.supports_without_replica_labels,
        })
    }

    /// Sends `without_replica_labels` and removes them here too: a server
    /// that supports the field has done it already (the removal finds
    /// nothing, the sort check passes), one that does not ignored it. Same
    /// result either way, without an `Info` round trip per query.
    async fn select_without(
        &self,
        matchers: &[Matcher],
        hints: SelectHints,
        without_replica_labels: &[String],
    ) -> Result<SeriesSet> {
        let request = self.series_request(matchers, &hints, without_replica_labels);
        let mut set = self.collect_series(request).await?;
        remove_labels_and_sort(&mut set.series, without_replica_labels);
        if hints.limit > 0 {
            set.series.truncate(hints.limit);
        }
        Ok(set)
    }

    async fn label_names_without(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
        without_replica_labels: &[String],
    ) -> Result<LabelsResult> {
        let request = pb::LabelNamesRequest {
            partial_response_disabled: true,
            partial_response_strategy: pb::PartialResponseStrategy::Abort as i32,
            start: mint,
            end: maxt,
            hints: None,
            matchers: matchers_to_proto(matchers),
            without_replica_labels: without_replica_labels.to_vec(),
            limit: 0,
        };
        let response = self
            .store
            .clone()
            .label_names(request)
            .await
            .map_err(|s| self.status_error(&s))?
            .into_inner();
        let mut values = response.names;
        // For servers that ignore the field.
        values.retain(|n| !without_replica_labels.contains(n));
        Ok(LabelsResult {
            values,
            warnings: response.warnings,
        })
    }

    async fn label_values_without(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
        without_replica_labels: &[String],
    ) -> Result<LabelsResult> {
        if without_replica_labels.iter().any(|n| n == name) {
            return Ok(LabelsResult::default());
        }
        let request = pb::LabelValuesRequest {
            label: name.to_string(),
            partial_response_disabled: true,
            partial_response_strategy: pb::PartialResponseStrategy::Abort as i32,
            start: mint,
            end: maxt,
            hints: None,
            matchers: matchers_to_proto(matchers),
            without_replica_labels: without_replica_labels.to_vec(),
            limit: 0,
        };
        let response = self
            .store
            .clone()
            .label_values(request)
            .await
            .map_err(|s| self.status_error(&s))?
            .into_inner();
        Ok(LabelsResult {
            values: response.values,
            warnings: response.warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use hearth_model::Labels;

    use super::*;
    use crate::convert::labels_to_proto;

    fn wire_series(labels: &Labels, mints: &[i64]) -> pb::Series {
        pb::Series {
            labels: labels_to_proto(labels),
            chunks: mints
                .iter()
                .map(|&t| pb::AggrChunk {
                    min_time: t,
                    max_time: t,
                    raw: Some(pb::Chunk {
                        r#type: pb::chunk::Encoding::Xor as i32,
                        data: prost::bytes::Bytes::from_static(&[0, 0]),
                        hash: 0,
                    }),
                    ..Default::default()
                })
                .collect(),
        }
    }

    fn series(s: pb::Series) -> pb::SeriesResponse {
        pb::SeriesResponse {
            result: Some(series_response::Result::Series(s)),
        }
    }

    #[test]
    fn frames_batches_and_warnings_are_collected() {
        let a = Labels::new([("a", "1")]);
        let b = Labels::new([("a", "2")]);
        let mut c = SeriesCollector::default();
        c.add(series(wire_series(&a, &[1, 2]))).unwrap();
        c.add(pb::SeriesResponse {
            result: Some(series_response::Result::Warning("partial".into())),
        })
        .unwrap();
        c.add(pb::SeriesResponse {
            result: Some(series_response::Result::Batch(pb::SeriesBatch {
                series: vec![wire_series(&a, &[3]), wire_series(&b, &[1])],
            })),
        })
        .unwrap();
        let set = c.finish();
        assert_eq!(set.warnings, vec!["partial".to_string()]);
        assert_eq!(set.series.len(), 2);
        let mints: Vec<i64> = set.series[0].chunks.iter().map(|c| c.mint).collect();
        assert_eq!(mints, vec![1, 2, 3]);
    }

    #[test]
    fn histogram_chunks_are_kept_and_unknown_encodings_fail() {
        let mut s = wire_series(&Labels::new([("a", "1")]), &[1]);
        if let Some(raw) = s.chunks[0].raw.as_mut() {
            raw.r#type = pb::chunk::Encoding::FloatHistogram as i32;
        }
        let mut c = SeriesCollector::default();
        c.add(series(s.clone())).unwrap();
        assert_eq!(
            c.finish().series[0].chunks[0].encoding,
            hearth_model::chunkenc::Encoding::FloatHistogram
        );
        if let Some(raw) = s.chunks[0].raw.as_mut() {
            raw.r#type = 17;
        }
        let err = SeriesCollector::default().add(series(s)).unwrap_err();
        assert!(
            err.to_string().contains("unknown chunk encoding 17"),
            "{err}"
        );
    }

    #[test]
    fn unsorted_streams_are_sorted() {
        let mut c = SeriesCollector::default();
        for v in ["3", "1", "2", "1"] {
            c.add(series(wire_series(
                &Labels::new([("a", v)]),
                &[v.parse().unwrap()],
            )))
            .unwrap();
        }
        let set = c.finish();
        let got: Vec<String> = set.series.iter().map(|s| s.labels.to_string()).collect();
        assert_eq!(got, vec![r#"{a="1"}"#, r#"{a="2"}"#, r#"{a="3"}"#]);
    }

    #[tokio::test]
    async fn addresses_with_and_without_scheme_are_accepted() {
        assert!(GrpcStore::connect_lazy("127.0.0.1:1").is_ok());
        assert!(GrpcStore::connect_lazy("http://127.0.0.1:1").is_ok());
        assert!(matches!(
            GrpcStore::connect_lazy("not a uri"),
            Err(Error::InvalidAddress { .. })
        ));
    }
}
