//! Remote-write requests on the receiver side: pick the protocol from the
//! headers, decompress the snappy block within Prometheus's limits, decode
//! the protobuf and turn it into Hearth's model with Prometheus 3's
//! validation rules. Pure functions, no HTTP; the HTTP layer maps
//! [`RemoteWriteError::http_status`] to its answer.
//!
//! What happens to bad input (Prometheus 3 receiver behaviour unless noted):
//!
//! | Input | Result |
//! |---|---|
//! | `Content-Type` other than `application/x-protobuf` (optionally with `proto=prometheus.WriteRequest` or `proto=io.prometheus.write.v2.Request`) | 415; a missing one means 1.0 |
//! | `Content-Encoding` other than `snappy` | 415; a missing one means snappy |
//! | compressed body over 32 MiB | 413 (the HTTP layer normally stops reading first) |
//! | snappy header announcing more than 32 MiB | 400, before allocating |
//! | corrupt or truncated snappy, invalid protobuf | 400 for the whole request |
//! | 1.0 series without `__name__` (or with an empty one), with an empty label name, a label name or value that is not UTF-8, or a label name twice | series skipped and counted, request goes on |
//! | the same for a 2.0 series, or a symbol reference out of range or an odd number of label references | series skipped and counted; [`DecodedWrite::rejection`] then yields a 400 to answer after writing the rest |
//! | 2.0 series mixing samples and histograms, or carrying neither | accepted (Prometheus does not check either) |
//! | unsorted labels | sorted |
//! | labels with an empty value | dropped (empty means absent) |
//! | native histograms | not stored yet: counted, see [`HistogramPolicy`] |
//! | exemplars | not stored yet: counted, never an error (Prometheus ignores exemplar append errors) |
//!
//! Prometheus decodes with gogo-protobuf, which does not check that `string`
//! fields are UTF-8, and then drops the series whose labels are not valid
//! UTF-8. prost would fail the whole message instead, so the receiver decodes
//! through the `Bytes`-based views in `wire` and checks UTF-8 per series.
//! Invalid UTF-8 in 1.0 metadata drops that metadata entry. Label names are
//! checked with Prometheus 3's UTF-8 scheme (any non-empty UTF-8), not the
//! legacy `[a-zA-Z_][a-zA-Z0-9_]*`.
//!
//! Sample values keep their exact bits, so the stale marker
//! (`0x7FF0000000000002`) survives decoding.

mod wire;

#[cfg(test)]
mod tests;

use std::fmt;

use hearth_model::{Labels, Sample, METRIC_NAME};
use prost::bytes::Bytes;
use prost::Message;

use crate::error::{RemoteWriteError, Result};
use crate::{prometheus, write_v2};

pub use crate::prometheus::metric_metadata::MetricType;

/// Prometheus's cap on the compressed request body.
pub const MAX_COMPRESSED_BYTES: usize = 32 << 20;
/// Prometheus's cap on the decoded request size, as announced by the snappy
/// header.
pub const MAX_DECODED_BYTES: usize = 32 << 20;
/// How many invalid series are described in [`DecodedWrite::invalid_series`]
/// (all of them are counted).
pub const MAX_INVALID_SERIES_DETAILS: usize = 10;
/// Names, values and whole label sets in error messages are cut to about
/// this many characters.
const MAX_LABELS_DISPLAY_BYTES: usize = 256;

/// Media type of both remote-write versions.
pub const CONTENT_TYPE_PROTOBUF: &str = "application/x-protobuf";
/// The `proto=` parameter naming the 1.0 message.
pub const PROTO_MESSAGE_V1: &str = "prometheus.WriteRequest";
/// The `proto=` parameter naming the 2.0 message.
pub const PROTO_MESSAGE_V2: &str = "io.prometheus.write.v2.Request";
/// The `Content-Encoding` both versions use.
pub const CONTENT_ENCODING_SNAPPY: &str = "snappy";

/// Size limits applied while decoding a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted compressed body (413 above).
    pub max_compressed_bytes: usize,
    /// Largest accepted decoded size announced by the snappy header (400
    /// above).
    pub max_decoded_bytes: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_compressed_bytes: MAX_COMPRESSED_BYTES,
            max_decoded_bytes: MAX_DECODED_BYTES,
        }
    }
}

/// Which remote-write message a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteProtocol {
    /// `prometheus.WriteRequest`.
    V1,
    /// `io.prometheus.write.v2.Request`.
    V2,
}

impl WriteProtocol {
    /// The `Content-Type` a sender of this version sends.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::V1 => CONTENT_TYPE_PROTOBUF,
            Self::V2 => "application/x-protobuf;proto=io.prometheus.write.v2.Request",
        }
    }

    /// The `X-Prometheus-Remote-Write-Version` header value of this version.
    pub fn version_header(self) -> &'static str {
        match self {
            Self::V1 => "0.1.0",
            Self::V2 => "2.0.0",
        }
    }
}

/// What the receiver does with native-histogram samples while Hearth cannot
/// store them. The HTTP layer picks one and passes it to
/// [`DecodedWrite::rejection`].
///
/// Prometheus 3 with native-histogram ingestion off answers such a 1.0
/// request with a 5xx, which makes senders retry forever; neither choice here
/// copies that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistogramPolicy {
    /// Write the float samples and drop the histograms. A 1.0 request then
    /// succeeds; a 2.0 request is answered 400 with the counts, since 2.0
    /// requires a non-2xx answer to any partial write.
    Drop,
    /// Refuse requests carrying histograms with a 400: a 1.0 request is not
    /// written at all (1.0 writes are all-or-nothing); a 2.0 request gets its
    /// float samples written, as for [`HistogramPolicy::Drop`].
    Reject,
}

/// Hearth's choice until native histograms are stored: keep the float data of
/// mixed workloads flowing.
pub const DEFAULT_HISTOGRAM_POLICY: HistogramPolicy = HistogramPolicy::Drop;

/// A decoded, validated remote-write request.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedWrite {
    pub protocol: WriteProtocol,
    /// Valid series that carry float samples, in request order. The same
    /// label set may appear more than once.
    pub series: Vec<WriteSeries>,
    /// 1.0 metadata entries (2.0 carries metadata per series).
    pub metadata: Vec<WriteMetadata>,
    /// Series dropped for invalid labels (or, in 2.0, invalid references).
    pub skipped_invalid_series: usize,
    /// Float and histogram samples in those series.
    pub skipped_invalid_samples: usize,
    /// Histogram samples of valid series, not stored (see [`HistogramPolicy`]).
    pub histograms_dropped: usize,
    /// Exemplars of the request, not stored.
    pub exemplars_dropped: usize,
    /// The first [`MAX_INVALID_SERIES_DETAILS`] skipped series and why.
    pub invalid_series: Vec<InvalidSeries>,
}

/// One valid series of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteSeries {
    /// Sorted, unique names, no empty values, `__name__` present.
    pub labels: Labels,
    /// Float samples as sent (oldest first if the sender follows the spec),
    /// values bit for bit.
    pub samples: Vec<Sample>,
    /// 2.0 per-series metadata, when the sender set any.
    pub metadata: Option<WriteMetadata>,
}

/// Metadata of one metric family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteMetadata {
    /// 1.0: the family name as sent; 2.0: the series' `__name__`.
    pub metric_family_name: String,
    pub metric_type: MetricType,
    pub help: String,
    pub unit: String,
}

/// A series that was skipped, for logs and error bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSeries {
    /// Position in the request's `timeseries`.
    pub index: usize,
    /// The label set as sent, lossily printed and cut short.
    pub labels: String,
    pub reason: InvalidSeriesReason,
}

impl fmt::Display for InvalidSeries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "series {} {}: {}", self.index, self.labels, self.reason)
    }
}

/// Why a series was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidSeriesReason {
    /// No `__name__` label, or an empty one.
    MissingMetricName,
    EmptyLabelName,
    /// A label name or value (or 2.0 metadata string) is not valid UTF-8.
    InvalidUtf8,
    DuplicateLabelName(String),
    /// 2.0: `labels_refs` has an odd length.
    OddLabelRefs(usize),
    /// 2.0: a reference past the end of `symbols`.
    SymbolOutOfRange {
        symbol_ref: u32,
        symbols: usize,
    },
}

impl fmt::Display for InvalidSeriesReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingMetricName => f.write_str("missing metric name"),
            Self::EmptyLabelName => f.write_str("empty label name"),
            Self::InvalidUtf8 => f.write_str("label or metadata string is not valid UTF-8"),
            Self::DuplicateLabelName(name) => write!(f, "duplicate label name {name:?}"),
            Self::OddLabelRefs(n) => write!(f, "odd number of label references ({n})"),
            Self::SymbolOutOfRange {
                symbol_ref,
                symbols,
            } => {
                write!(
                    f,
                    "symbol reference {symbol_ref} outside of symbols table (size {symbols})"
                )
            }
        }
    }
}

/// The part of a decoded request that is refused, carried by
/// [`RemoteWriteError::Rejected`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub invalid_series: usize,
    /// Float and histogram samples of the invalid series.
    pub invalid_samples: usize,
    /// Histogram samples refused by the [`HistogramPolicy`].
    pub histograms: usize,
    /// Up to [`MAX_INVALID_SERIES_DETAILS`] descriptions of invalid series.
    pub details: Vec<String>,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        if self.invalid_series > 0 {
            write!(
                f,
                "rejected {} invalid series with {} samples: {}",
                self.invalid_series,
                self.invalid_samples,
                self.details.join("; ")
            )?;
            if self.details.len() < self.invalid_series {
                write!(f, "; and {} more", self.invalid_series - self.details.len())?;
            }
            sep = "; ";
        }
        if self.histograms > 0 {
            write!(
                f,
                "{sep}rejected {} native histogram samples: native histograms are not supported yet",
                self.histograms
            )?;
        }
        Ok(())
    }
}

impl DecodedWrite {
    fn new(protocol: WriteProtocol) -> Self {
        Self {
            protocol,
            series: Vec::new(),
            metadata: Vec::new(),
            skipped_invalid_series: 0,
            skipped_invalid_samples: 0,
            histograms_dropped: 0,
            exemplars_dropped: 0,
            invalid_series: Vec::new(),
        }
    }

    /// Float samples in the valid series.
    pub fn sample_count(&self) -> usize {
        self.series.iter().map(|s| s.samples.len()).sum()
    }

    /// What the receiver must refuse, if anything, as an error to answer
    /// with (always 400).
    ///
    /// * 1.0: invalid series are skipped silently (never a rejection). With
    ///   [`HistogramPolicy::Reject`] and histograms present, the rejection
    ///   means: write nothing, answer 400.
    /// * 2.0: invalid series or dropped histograms make a partial write:
    ///   write [`DecodedWrite::series`], then answer 400 with this error and
    ///   the written-count headers.
    pub fn rejection(&self, policy: HistogramPolicy) -> Option<RemoteWriteError> {
        let (invalid_series, histograms) = match (self.protocol, policy) {
            (WriteProtocol::V1, HistogramPolicy::Drop) => (0, 0),
            (WriteProtocol::V1, HistogramPolicy::Reject) => (0, self.histograms_dropped),
            (WriteProtocol::V2, _) => (self.skipped_invalid_series, self.histograms_dropped),
        };
        if invalid_series == 0 && histograms == 0 {
            return None;
        }
        let invalid_samples = if invalid_series > 0 {
            self.skipped_invalid_samples
        } else {
            0
        };
        let details = if invalid_series > 0 {
            self.invalid_series
                .iter()
                .map(ToString::to_string)
                .collect()
        } else {
            Vec::new()
        };
        Some(RemoteWriteError::Rejected(Rejection {
            invalid_series,
            invalid_samples,
            histograms,
            details,
        }))
    }

    fn skip(
        &mut self,
        index: usize,
        reason: InvalidSeriesReason,
        data: usize,
        labels: impl FnOnce() -> String,
    ) {
        self.skipped_invalid_series += 1;
        self.skipped_invalid_samples += data;
        if self.invalid_series.len() < MAX_INVALID_SERIES_DETAILS {
            self.invalid_series.push(InvalidSeries {
                index,
                labels: labels(),
                reason,
            });
        }
    }
}

/// Decodes a remote-write request body with the default (Prometheus) limits.
///
/// `content_encoding` and `content_type` are the request's header values,
/// `None` when absent. See the module documentation for what each kind of
/// bad input yields.
pub fn decode_write_request(
    body: &[u8],
    content_encoding: Option<&str>,
    content_type: Option<&str>,
) -> Result<DecodedWrite> {
    decode_write_request_with_limits(
        body,
        content_encoding,
        content_type,
        DecodeLimits::default(),
    )
}

/// [`decode_write_request`] with explicit size limits.
pub fn decode_write_request_with_limits(
    body: &[u8],
    content_encoding: Option<&str>,
    content_type: Option<&str>,
    limits: DecodeLimits,
) -> Result<DecodedWrite> {
    let protocol = parse_content_type(content_type)?;
    check_content_encoding(content_encoding)?;
    let raw = Bytes::from(decompress_snappy_block(body, limits)?);
    match protocol {
        WriteProtocol::V1 => decode_v1(raw),
        WriteProtocol::V2 => decode_v2(raw),
    }
}

/// Picks the protocol from `Content-Type`: missing or `application/x-protobuf`
/// is 1.0, `proto=io.prometheus.write.v2.Request` is 2.0, anything else is
/// [`RemoteWriteError::UnsupportedContentType`] (415), as in Prometheus 3.
/// Media type, parameter names and spaces around `;` and `=` are compared
/// leniently (RFC 9110 makes them case-insensitive).
pub fn parse_content_type(content_type: Option<&str>) -> Result<WriteProtocol> {
    let Some(header) = content_type.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(WriteProtocol::V1);
    };
    let unsupported = || RemoteWriteError::UnsupportedContentType {
        content_type: header.to_string(),
    };
    let mut parts = header.split(';');
    let media_type = parts.next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case(CONTENT_TYPE_PROTOBUF) {
        return Err(unsupported());
    }
    let mut protocol = WriteProtocol::V1;
    for param in parts {
        let Some((name, value)) = param.split_once('=') else {
            return Err(unsupported());
        };
        if !name.trim().eq_ignore_ascii_case("proto") {
            continue;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        protocol = match value {
            PROTO_MESSAGE_V1 => WriteProtocol::V1,
            PROTO_MESSAGE_V2 => WriteProtocol::V2,
            _ => return Err(unsupported()),
        };
    }
    Ok(protocol)
}

/// Accepts a missing, empty or `snappy` `Content-Encoding`; anything else is
/// [`RemoteWriteError::UnsupportedEncoding`] (415).
pub fn check_content_encoding(content_encoding: Option<&str>) -> Result<()> {
    match content_encoding.map(str::trim) {
        None | Some("") => Ok(()),
        Some(e) if e.eq_ignore_ascii_case(CONTENT_ENCODING_SNAPPY) => Ok(()),
        Some(e) => Err(RemoteWriteError::UnsupportedEncoding {
            encoding: e.to_string(),
        }),
    }
}

/// Decompresses a snappy block, refusing a body over
/// `limits.max_compressed_bytes` and, before allocating, a header announcing
/// more than `limits.max_decoded_bytes`. Also serves remote-read requests.
pub fn decompress_snappy_block(body: &[u8], limits: DecodeLimits) -> Result<Vec<u8>> {
    if body.len() > limits.max_compressed_bytes {
        return Err(RemoteWriteError::BodyTooLarge {
            size: body.len(),
            limit: limits.max_compressed_bytes,
        });
    }
    let announced = match snap::raw::decompress_len(body) {
        Ok(n) => n as u64,
        Err(snap::Error::TooBig { given, .. }) => given,
        Err(source) => return Err(RemoteWriteError::SnappyCorrupt { source }),
    };
    if announced > limits.max_decoded_bytes as u64 {
        return Err(RemoteWriteError::DecodedTooLarge {
            announced,
            limit: limits.max_decoded_bytes,
        });
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(snappy_error)
}

/// Sorts snap's errors into "the input stops early" and everything else.
fn snappy_error(source: snap::Error) -> RemoteWriteError {
    let truncated = match &source {
        snap::Error::Literal { len, src_len, .. } => src_len < len,
        snap::Error::CopyRead { .. } | snap::Error::HeaderMismatch { .. } => true,
        _ => false,
    };
    if truncated {
        RemoteWriteError::SnappyTruncated { source }
    } else {
        RemoteWriteError::SnappyCorrupt { source }
    }
}

/// Compresses `data` as one snappy block (the remote-write body format).
///
/// # Panics
///
/// If `data` is over snappy's block limit (about 4 GiB), far above any
/// message a receiver accepts.
pub fn compress_snappy_block(data: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(data)
        .expect("remote-write messages are far below snappy's 4 GiB block limit")
}

/// Encodes a 1.0 request as a request body: snappy block of the protobuf.
pub fn encode_write_request(request: &prometheus::WriteRequest) -> Vec<u8> {
    compress_snappy_block(&request.encode_to_vec())
}

/// Encodes a 2.0 request as a request body: snappy block of the protobuf.
pub fn encode_write_request_v2(request: &write_v2::Request) -> Vec<u8> {
    compress_snappy_block(&request.encode_to_vec())
}

/// A label set as 1.0 protobuf labels (sorted, as [`Labels`] is).
pub fn labels_to_proto(labels: &Labels) -> Vec<prometheus::Label> {
    labels
        .iter()
        .map(|l| prometheus::Label {
            name: l.name.to_string(),
            value: l.value.to_string(),
        })
        .collect()
}

fn decode_v1(raw: Bytes) -> Result<DecodedWrite> {
    let request = wire::WriteRequest::decode(raw).map_err(|source| RemoteWriteError::Protobuf {
        message: PROTO_MESSAGE_V1,
        source,
    })?;
    let mut out = DecodedWrite::new(WriteProtocol::V1);
    let mut scratch = Vec::new();
    for (index, ts) in request.timeseries.iter().enumerate() {
        out.exemplars_dropped += ts.exemplars.len();
        let pairs = || ts.labels.iter().map(|l| (&l.name[..], &l.value[..]));
        let labels = match build_labels(pairs().map(Ok), &mut scratch) {
            Ok(labels) => labels,
            Err(reason) => {
                let data = ts.samples.len() + ts.histograms.len();
                out.skip(index, reason, data, || display_labels(pairs()));
                continue;
            }
        };
        out.histograms_dropped += ts.histograms.len();
        if !ts.samples.is_empty() {
            let samples = ts
                .samples
                .iter()
                .map(|s| Sample::new(s.timestamp, s.value))
                .collect();
            out.series.push(WriteSeries {
                labels,
                samples,
                metadata: None,
            });
        }
    }
    out.metadata = request.metadata.iter().filter_map(metadata_v1).collect();
    Ok(out)
}

/// A 1.0 metadata entry, or `None` when one of its strings is not UTF-8.
fn metadata_v1(m: &wire::MetricMetadata) -> Option<WriteMetadata> {
    Some(WriteMetadata {
        metric_family_name: std::str::from_utf8(&m.metric_family_name).ok()?.to_string(),
        metric_type: MetricType::try_from(m.r#type).unwrap_or(MetricType::Unknown),
        help: std::str::from_utf8(&m.help).ok()?.to_string(),
        unit: std::str::from_utf8(&m.unit).ok()?.to_string(),
    })
}

fn decode_v2(raw: Bytes) -> Result<DecodedWrite> {
    let request = wire::RequestV2::decode(raw).map_err(|source| RemoteWriteError::Protobuf {
        message: PROTO_MESSAGE_V2,
        source,
    })?;
    let symbols = &request.symbols;
    let mut out = DecodedWrite::new(WriteProtocol::V2);
    let mut scratch = Vec::new();
    for (index, ts) in request.timeseries.iter().enumerate() {
        out.exemplars_dropped += ts.exemplars.len();
        let data = ts.samples.len() + ts.histograms.len();
        let refs = &ts.labels_refs;
        let pairs = || {
            refs.chunks_exact(2)
                .map(|pair| -> Result<_, InvalidSeriesReason> {
                    Ok((symbol(symbols, pair[0])?, symbol(symbols, pair[1])?))
                })
        };
        let printable = || display_labels(pairs().map_while(Result::ok));
        if refs.len() % 2 != 0 {
            out.skip(
                index,
                InvalidSeriesReason::OddLabelRefs(refs.len()),
                data,
                printable,
            );
            continue;
        }
        let labels = match build_labels(pairs(), &mut scratch) {
            Ok(labels) => labels,
            Err(reason) => {
                out.skip(index, reason, data, printable);
                continue;
            }
        };
        let metadata = match ts
            .metadata
            .as_ref()
            .map(|m| metadata_v2(m, symbols, &labels))
            .transpose()
        {
            Ok(metadata) => metadata.flatten(),
            Err(reason) => {
                out.skip(index, reason, data, printable);
                continue;
            }
        };
        out.histograms_dropped += ts.histograms.len();
        if !ts.samples.is_empty() {
            let samples = ts
                .samples
                .iter()
                .map(|s| Sample::new(s.timestamp, s.value))
                .collect();
            out.series.push(WriteSeries {
                labels,
                samples,
                metadata,
            });
        }
    }
    Ok(out)
}

/// Looks up a 2.0 symbol reference.
fn symbol(symbols: &[Bytes], symbol_ref: u32) -> Result<&[u8], InvalidSeriesReason> {
    symbols
        .get(symbol_ref as usize)
        .map(|s| &s[..])
        .ok_or(InvalidSeriesReason::SymbolOutOfRange {
            symbol_ref,
            symbols: symbols.len(),
        })
}

/// 2.0 per-series metadata; `Ok(None)` when the sender set nothing.
fn metadata_v2(
    m: &write_v2::Metadata,
    symbols: &[Bytes],
    labels: &Labels,
) -> Result<Option<WriteMetadata>, InvalidSeriesReason> {
    let text = |symbol_ref: u32| -> Result<&str, InvalidSeriesReason> {
        if symbol_ref == 0 {
            return Ok("");
        }
        std::str::from_utf8(symbol(symbols, symbol_ref)?)
            .map_err(|_| InvalidSeriesReason::InvalidUtf8)
    };
    let (help, unit) = (text(m.help_ref)?, text(m.unit_ref)?);
    // Both enums number the same types the same way.
    let metric_type = MetricType::try_from(m.r#type).unwrap_or(MetricType::Unknown);
    if metric_type == MetricType::Unknown && help.is_empty() && unit.is_empty() {
        return Ok(None);
    }
    Ok(Some(WriteMetadata {
        metric_family_name: labels.metric_name().unwrap_or_default().to_string(),
        metric_type,
        help: help.to_string(),
        unit: unit.to_string(),
    }))
}

/// Validates one series' raw labels and builds the label set, following
/// Prometheus 3: names and values must be UTF-8 and names non-empty; the set
/// is sorted by name; `__name__` must be present and non-empty; names must be
/// unique. Labels with empty values are then dropped. `scratch` is reused
/// between series to avoid an allocation each.
fn build_labels<'a>(
    pairs: impl Iterator<Item = Result<(&'a [u8], &'a [u8]), InvalidSeriesReason>>,
    scratch: &mut Vec<(&'a str, &'a str)>,
) -> Result<Labels, InvalidSeriesReason> {
    scratch.clear();
    for pair in pairs {
        let (name, value) = pair?;
        let name = std::str::from_utf8(name).map_err(|_| InvalidSeriesReason::InvalidUtf8)?;
        let value = std::str::from_utf8(value).map_err(|_| InvalidSeriesReason::InvalidUtf8)?;
        if name.is_empty() {
            return Err(InvalidSeriesReason::EmptyLabelName);
        }
        scratch.push((name, value));
    }
    if !scratch.is_sorted_by(|a, b| a.0 <= b.0) {
        scratch.sort_by(|a, b| a.0.cmp(b.0));
    }
    if !scratch
        .iter()
        .any(|(n, v)| *n == METRIC_NAME && !v.is_empty())
    {
        return Err(InvalidSeriesReason::MissingMetricName);
    }
    if let Some(dup) = scratch.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(InvalidSeriesReason::DuplicateLabelName(
            dup[0].0.to_string(),
        ));
    }
    Ok(Labels::from_sorted(
        scratch.iter().filter(|(_, v)| !v.is_empty()).copied(),
    ))
}

/// Prints raw labels as `{name="value", ...}`, lossily and cut short.
fn display_labels<'a>(pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> String {
    let cut = |bytes: &[u8]| -> String {
        String::from_utf8_lossy(bytes)
            .chars()
            .take(MAX_LABELS_DISPLAY_BYTES)
            .collect()
    };
    let mut out = String::from("{");
    for (i, (name, value)) in pairs.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        if out.len() > MAX_LABELS_DISPLAY_BYTES {
            out.push_str("...");
            break;
        }
        out.push_str(&format!("{}={:?}", cut(name), cut(value)));
    }
    out.push('}');
    out
}

/// Entry point for fuzzers (`cargo fuzz`, or the proptest in `tests.rs`):
/// decodes `data` and checks the output's invariants, panicking only on a bug.
///
/// The first byte chooses: bit 0 the protocol (1.0 or 2.0), bit 1 whether
/// the rest is compressed here first (so mutations reach the protobuf
/// decoder) or passed as the body as is (so they reach snappy).
pub fn fuzz_decode(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let protocol = if selector & 1 == 0 {
        WriteProtocol::V1
    } else {
        WriteProtocol::V2
    };
    let compressed;
    let body = if selector & 2 == 0 {
        rest
    } else {
        compressed = compress_snappy_block(rest);
        &compressed
    };
    let Ok(decoded) = decode_write_request(body, None, Some(protocol.content_type())) else {
        return;
    };
    assert_eq!(decoded.protocol, protocol);
    for series in &decoded.series {
        assert!(series.labels.metric_name().is_some_and(|n| !n.is_empty()));
        let names: Vec<&str> = series.labels.iter().map(|l| l.name).collect();
        assert!(
            names.windows(2).all(|w| w[0] < w[1]),
            "labels not sorted and unique"
        );
        assert!(series
            .labels
            .iter()
            .all(|l| !l.name.is_empty() && !l.value.is_empty()));
        assert!(!series.samples.is_empty());
    }
    assert!(decoded.invalid_series.len() <= decoded.skipped_invalid_series);
    for policy in [HistogramPolicy::Drop, HistogramPolicy::Reject] {
        if let Some(err) = decoded.rejection(policy) {
            assert_eq!(err.http_status(), 400);
            let _ = err.to_string();
        }
    }
}
