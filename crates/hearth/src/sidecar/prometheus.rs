//! The sidecar's view of its Prometheus: series by remote read (streamed XOR
//! chunks, specs/remote-write.md Part C), label names and values by the
//! HTTP API, external labels and block flags from the status API.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use hearth_model::chunkenc::Encoding;
use hearth_model::{Labels, MatchOp, Matcher, Sample, Timestamp};
use hearth_proto::prometheus as pb;
use hearth_storage_api::{
    ChunkEncoder, Error, LabelsResult, Queryable, Result, SelectHints, Series, SeriesChunk,
    SeriesSet,
};
use hearth_tsdb::encoding::{crc32c, Decbuf};
use prost::Message;

/// Frames above this are refused (Prometheus's client default, 5e7 bytes).
const MAX_FRAME_BYTES: u64 = 50_000_000;

/// The content type of a STREAMED_XOR_CHUNKS answer.
const STREAMED_CONTENT_TYPE: &str = "application/x-streamed-protobuf";

/// A Prometheus server reached over HTTP.
#[derive(Debug, Clone)]
pub struct PrometheusClient {
    base: String,
    http: reqwest::Client,
}

impl PrometheusClient {
    /// A client of the Prometheus at `url` (`http://host:9090`).
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("hearth-sidecar/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            base: url.trim_end_matches('/').to_string(),
            http,
        })
    }

    /// `global.external_labels` of the running configuration.
    pub async fn external_labels(&self) -> anyhow::Result<BTreeMap<String, String>> {
        #[derive(serde::Deserialize)]
        struct Config {
            #[serde(default)]
            global: Global,
        }
        #[derive(serde::Deserialize, Default)]
        struct Global {
            #[serde(default)]
            external_labels: BTreeMap<String, String>,
        }
        let data = self.api_get("/api/v1/status/config", &[]).await?;
        let yaml = data["yaml"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("status/config answer without yaml"))?;
        // Only the labels matter: unknown fields are ignored on purpose, so
        // that a newer Prometheus's configuration still reads.
        let config: Config = serde_saphyr::from_str(yaml)
            .map_err(|e| anyhow::anyhow!("parse Prometheus's configuration: {e}"))?;
        Ok(config.global.external_labels)
    }

    /// The value of one command-line flag (`storage.tsdb.min-block-duration`).
    pub async fn flag(&self, name: &str) -> anyhow::Result<Option<String>> {
        let data = self.api_get("/api/v1/status/flags", &[]).await?;
        Ok(data[name].as_str().map(str::to_string))
    }

    /// The head's oldest sample time, when the head holds any.
    pub async fn head_min_time(&self) -> anyhow::Result<Option<i64>> {
        let data = self.api_get("/api/v1/status/tsdb", &[]).await?;
        let head = &data["headStats"];
        let (Some(min), Some(series)) = (head["minTime"].as_i64(), head["numSeries"].as_u64())
        else {
            return Ok(None);
        };
        Ok((series > 0 && min < i64::MAX).then_some(min))
    }

    async fn api_get(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<serde_json::Value> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .query(query)
            .send()
            .await?;
        let status = resp.status();
        let body: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| anyhow::anyhow!("{path}: answer is not JSON ({status}): {e}"))?;
        if body["status"] != "success" {
            anyhow::bail!(
                "{path}: {status}: {}",
                body["error"].as_str().unwrap_or("unknown error")
            );
        }
        Ok(body["data"].clone())
    }

    /// One remote-read query, preferring streamed chunks.
    async fn read(&self, query: pb::Query) -> Result<Vec<Series>> {
        let request = pb::ReadRequest {
            queries: vec![query],
            accepted_response_types: vec![
                pb::read_request::ResponseType::StreamedXorChunks as i32,
                pb::read_request::ResponseType::Samples as i32,
            ],
        };
        let body = snap::raw::Encoder::new()
            .compress_vec(&request.encode_to_vec())
            .map_err(|e| Error::Internal(format!("compress read request: {e}")))?;
        let resp = self
            .http
            .post(format!("{}/api/v1/read", self.base))
            .header("Content-Encoding", "snappy")
            .header("Accept-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Read-Version", "0.1.0")
            .body(body)
            .send()
            .await
            .map_err(|e| Error::Unavailable(format!("remote read: {e}")))?;
        let status = resp.status();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| Error::Unavailable(format!("remote read: {e}")))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes);
            let msg = format!("remote read: {status}: {}", text.trim());
            return Err(if status.is_client_error() {
                Error::BadRequest(msg)
            } else {
                Error::Unavailable(msg)
            });
        }
        if content_type.starts_with(STREAMED_CONTENT_TYPE) {
            decode_streamed(&bytes)
        } else {
            decode_samples(&bytes)
        }
    }
}

/// Series from a STREAMED_XOR_CHUNKS body: frames of
/// `uvarint(len) || crc32c_be(msg) || msg`; a series split over frames is
/// joined again.
pub fn decode_streamed(body: &[u8]) -> Result<Vec<Series>> {
    let corrupt = |e: hearth_tsdb::Error| Error::Corrupt(e.to_string());
    let mut d = Decbuf::new(body, "remote read frame");
    let mut out: Vec<Series> = Vec::new();
    while !d.is_empty() {
        let len = d.uvarint().map_err(corrupt)?;
        if len > MAX_FRAME_BYTES {
            return Err(Error::Corrupt(format!(
                "remote read: frame of {len} bytes exceeds the limit of {MAX_FRAME_BYTES}"
            )));
        }
        let want = d.be32().map_err(corrupt)?;
        let msg = d.bytes(len as usize).map_err(corrupt)?;
        if crc32c(msg) != want {
            return Err(Error::Corrupt("remote read: corrupted frame".into()));
        }
        let frame = pb::ChunkedReadResponse::decode(msg)
            .map_err(|e| Error::Corrupt(format!("remote read: decode frame: {e}")))?;
        for s in frame.chunked_series {
            let labels = labels_from(&s.labels);
            let chunks = s
                .chunks
                .into_iter()
                .map(chunk_from)
                .collect::<Result<Vec<_>>>()?;
            match out.last_mut() {
                Some(last) if last.labels == labels => last.chunks.extend(chunks),
                _ => out.push(Series::new(labels, chunks)),
            }
        }
    }
    Ok(out)
}

/// Series from a SAMPLES body (snappy-compressed `ReadResponse`), encoded
/// into XOR chunks.
fn decode_samples(body: &[u8]) -> Result<Vec<Series>> {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| Error::Corrupt(format!("remote read: snappy: {e}")))?;
    let resp = pb::ReadResponse::decode(raw.as_slice())
        .map_err(|e| Error::Corrupt(format!("remote read: decode: {e}")))?;
    let mut out = Vec::new();
    for result in resp.results {
        for ts in result.timeseries {
            let mut chunks = ChunkEncoder::default();
            for s in &ts.samples {
                chunks
                    .push(Sample::new(s.timestamp, s.value))
                    .map_err(|e| Error::Corrupt(format!("remote read: {e}")))?;
            }
            out.push(Series::new(labels_from(&ts.labels), chunks.finish()));
        }
    }
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(out)
}

fn labels_from(labels: &[pb::Label]) -> Labels {
    Labels::new(labels.iter().map(|l| (l.name.as_str(), l.value.as_str())))
}

fn chunk_from(c: pb::Chunk) -> Result<SeriesChunk> {
    // Remote read numbers encodings as the TSDB does (XOR = 1).
    let encoding = u8::try_from(c.r#type)
        .ok()
        .and_then(|b| Encoding::from_byte(b).ok())
        .ok_or_else(|| {
            Error::Corrupt(format!(
                "remote read: chunk encoding {} is not supported",
                c.r#type
            ))
        })?;
    Ok(SeriesChunk {
        mint: c.min_time_ms,
        maxt: c.max_time_ms,
        encoding,
        data: Arc::from(c.data.as_ref()),
    })
}

fn matcher_to_pb(m: &Matcher) -> pb::LabelMatcher {
    use pb::label_matcher::Type;
    let t = match m.op {
        MatchOp::Equal => Type::Eq,
        MatchOp::NotEqual => Type::Neq,
        MatchOp::RegexMatch => Type::Re,
        MatchOp::RegexNoMatch => Type::Nre,
    };
    pb::LabelMatcher {
        r#type: t as i32,
        name: m.name.clone(),
        value: m.value.clone(),
    }
}

/// `match[]` selector text for the label APIs.
fn selector_text(matchers: &[Matcher]) -> String {
    let parts: Vec<String> = matchers
        .iter()
        .map(|m| {
            // Bare names where they are legacy names: Prometheus 2 cannot
            // read quoted ones.
            let name = if hearth_model::labels::is_legacy_label_name(&m.name) {
                m.name.clone()
            } else {
                serde_json::to_string(&m.name).unwrap_or_default()
            };
            format!(
                "{}{}{}",
                name,
                m.op.as_str(),
                serde_json::to_string(&m.value).unwrap_or_default()
            )
        })
        .collect();
    format!("{{{}}}", parts.join(","))
}

fn strings(data: serde_json::Value) -> Vec<String> {
    match data {
        serde_json::Value::Array(items) => items
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

fn range_params(
    matchers: &[Matcher],
    mint: Timestamp,
    maxt: Timestamp,
) -> Vec<(&'static str, String)> {
    let mut q = vec![
        ("start", format_seconds(mint)),
        ("end", format_seconds(maxt)),
    ];
    if !matchers.is_empty() {
        q.push(("match[]", selector_text(matchers)));
    }
    q
}

/// Milliseconds as the API's seconds, clamped to what Prometheus accepts.
fn format_seconds(ms: Timestamp) -> String {
    // Prometheus's min/max API times (year -292273086 / 292277025) are out
    // of reach of a float's precision; a wide but exact range suffices.
    let clamped = ms.clamp(-62_135_596_800_000, 253_402_300_799_000);
    format!("{:.3}", clamped as f64 / 1000.0)
}

#[async_trait]
impl Queryable for PrometheusClient {
    async fn select(&self, matchers: &[Matcher], hints: SelectHints) -> Result<SeriesSet> {
        let query = pb::Query {
            start_timestamp_ms: hints.mint,
            end_timestamp_ms: hints.maxt,
            matchers: matchers.iter().map(matcher_to_pb).collect(),
            hints: Some(pb::ReadHints {
                start_ms: hints.mint,
                end_ms: hints.maxt,
                func: hints.func.unwrap_or_default().to_string(),
                ..Default::default()
            }),
        };
        let mut series = self.read(query).await?;
        if hints.skip_chunks {
            for s in &mut series {
                s.chunks.clear();
            }
        }
        if hints.limit > 0 {
            series.truncate(hints.limit);
        }
        Ok(SeriesSet {
            series,
            warnings: Vec::new(),
        })
    }

    async fn label_names(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<LabelsResult> {
        let data = self
            .api_get("/api/v1/labels", &range_params(matchers, mint, maxt))
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        Ok(LabelsResult {
            values: strings(data),
            warnings: Vec::new(),
        })
    }

    async fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<LabelsResult> {
        // Names outside the legacy character set are escaped as in the
        // API's path (`U__` + `_XX_` per byte, Prometheus 3).
        let path = format!("/api/v1/label/{}/values", escape_label_name(name));
        let data = self
            .api_get(&path, &range_params(matchers, mint, maxt))
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        Ok(LabelsResult {
            values: strings(data),
            warnings: Vec::new(),
        })
    }
}

fn escape_label_name(name: &str) -> String {
    if hearth_model::labels::is_legacy_label_name(name) {
        return name.to_string();
    }
    let mut out = String::from("U__");
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if c == '_' {
            out.push_str("__");
        } else {
            out.push_str(&format!("_{:x}_", c as u32));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(msg: &pb::ChunkedReadResponse) -> Vec<u8> {
        let data = msg.encode_to_vec();
        let mut out = hearth_tsdb::encoding::Encbuf::new();
        out.put_uvarint(data.len() as u64);
        out.put_be32(crc32c(&data));
        out.put_bytes(&data);
        out.get().to_vec()
    }

    fn chunk(samples: &[(i64, f64)]) -> pb::Chunk {
        let mut c = ChunkEncoder::default();
        for &(t, v) in samples {
            c.push(Sample::new(t, v)).unwrap();
        }
        let c = c.finish().remove(0);
        pb::Chunk {
            min_time_ms: c.mint,
            max_time_ms: c.maxt,
            r#type: 1,
            data: c.data.to_vec().into(),
        }
    }

    fn series(name: &str, chunks: Vec<pb::Chunk>) -> pb::ChunkedSeries {
        pb::ChunkedSeries {
            labels: vec![pb::Label {
                name: "__name__".into(),
                value: name.into(),
            }],
            chunks,
        }
    }

    #[test]
    fn streamed_frames_join_split_series() {
        let mut body = frame(&pb::ChunkedReadResponse {
            chunked_series: vec![series("a", vec![chunk(&[(1, 1.0), (2, 2.0)])])],
            query_index: 0,
        });
        body.extend(frame(&pb::ChunkedReadResponse {
            chunked_series: vec![series("a", vec![chunk(&[(3, 3.0)])])],
            query_index: 0,
        }));
        body.extend(frame(&pb::ChunkedReadResponse {
            chunked_series: vec![series("b", vec![chunk(&[(1, 5.0)])])],
            query_index: 0,
        }));
        let got = decode_streamed(&body).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].chunks.len(), 2);
        let samples = got[0].samples(i64::MIN, i64::MAX).unwrap();
        assert_eq!(samples.iter().map(|s| s.t).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(got[1].labels.get("__name__"), Some("b"));
    }

    #[test]
    fn corrupt_and_truncated_frames_are_errors() {
        let mut body = frame(&pb::ChunkedReadResponse {
            chunked_series: vec![series("a", vec![chunk(&[(1, 1.0)])])],
            query_index: 0,
        });
        let last = body.len() - 1;
        body[last] ^= 0xff;
        assert!(
            matches!(decode_streamed(&body), Err(Error::Corrupt(m)) if m.contains("corrupted frame"))
        );
        body[last] ^= 0xff;
        // An error text written after streaming began reads as garbage.
        body.extend_from_slice(b"query failed");
        assert!(decode_streamed(&body).is_err());
        let whole = frame(&pb::ChunkedReadResponse::default());
        assert!(decode_streamed(&whole[..whole.len() - 1]).is_err());
    }

    #[test]
    fn unknown_chunk_encodings_are_refused() {
        let mut c = chunk(&[(1, 1.0)]);
        c.r#type = 4;
        let body = frame(&pb::ChunkedReadResponse {
            chunked_series: vec![series("a", vec![c])],
            query_index: 0,
        });
        assert!(decode_streamed(&body).is_err());
    }

    #[test]
    fn selectors_and_times_for_the_label_api() {
        let m = [
            Matcher::equal("__name__", "up"),
            Matcher::new(MatchOp::RegexMatch, "job", "a\"b.*").unwrap(),
        ];
        assert_eq!(selector_text(&m), r#"{__name__="up",job=~"a\"b.*"}"#);
        assert_eq!(format_seconds(1_500), "1.500");
        assert_eq!(format_seconds(-1), "-0.001");
        assert_eq!(escape_label_name("job"), "job");
        assert_eq!(escape_label_name("a.b"), "U__a_2e_b");
    }
}
