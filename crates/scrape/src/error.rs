//! Why a scrape, a target or a scrape pool failed, with Prometheus's
//! messages (they are what `/api/v1/targets` shows as `lastError`).

/// A failure of the scraper.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request could not be sent or its answer not read
    /// (`Get "http://h:9100/metrics": context deadline exceeded`).
    #[error("Get {url:?}: {message}")]
    Request { url: String, message: String },
    /// The target answered with a status other than 200.
    #[error("server returned HTTP status {0}")]
    Status(String),
    /// The (uncompressed) body reached `body_size_limit`.
    #[error("body size limit exceeded")]
    BodySizeLimit,
    /// A gzip body that does not decode.
    #[error("decompress gzip body: {0}")]
    Gzip(String),
    /// No parser for the response's Content-Type, or a malformed body.
    #[error(transparent)]
    Exposition(#[from] hearth_exposition::Error),
    /// More samples after metric relabeling than `sample_limit`.
    #[error("sample limit exceeded")]
    SampleLimit,
    /// A series with more labels than `label_limit`.
    #[error(
        "label_limit exceeded (metric: {metric:.50}, number of labels: {count}, limit: {limit})"
    )]
    LabelLimit {
        metric: String,
        count: usize,
        limit: u64,
    },
    /// A label name longer than `label_name_length_limit`.
    #[error(
        "label_name_length_limit exceeded (metric: {metric:.50}, label name: {name:.50}, \
         length: {length}, limit: {limit})"
    )]
    LabelNameLength {
        metric: String,
        name: String,
        length: usize,
        limit: u64,
    },
    /// A label value longer than `label_value_length_limit`.
    #[error(
        "label_value_length_limit exceeded (metric: {metric:.50}, label name: {name:.50}, \
         value: {value:.50?}, length: {length}, limit: {limit})"
    )]
    LabelValueLength {
        metric: String,
        name: String,
        value: String,
        length: usize,
        limit: u64,
    },
    /// A series left without a metric name by metric relabeling.
    #[error("missing metric name (__name__ label)")]
    MissingMetricName,
    /// More targets in the job than `target_limit`: every target fails.
    #[error("target_limit exceeded (number of targets: {count}, limit: {limit})")]
    TargetLimit { count: usize, limit: u64 },
    /// The job's HTTP client settings cannot be honoured.
    #[error("build HTTP client for job {job}: {message}")]
    Client { job: String, message: String },
    /// The database refused a whole write.
    #[error("append scraped samples: {0}")]
    Storage(#[from] hearth_tsdb::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
