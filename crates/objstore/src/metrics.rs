//! Per-operation metrics of a bucket client, in the shape of Thanos's
//! `thanos_objstore_bucket_operations_total` and
//! `thanos_objstore_bucket_operation_failures_total`, named
//! `hearth_objstore_bucket_*`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// The operations of a bucket, named as Thanos names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Get,
    GetRange,
    Exists,
    Upload,
    Delete,
    Iter,
    Attributes,
}

impl Operation {
    /// The `operation` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Get => "get",
            Operation::GetRange => "get_range",
            Operation::Exists => "exists",
            Operation::Upload => "upload",
            Operation::Delete => "delete",
            Operation::Iter => "iter",
            Operation::Attributes => "attributes",
        }
    }
}

/// Labels of the per-operation counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub bucket: String,
    pub operation: &'static str,
}

/// Counters of a bucket client. Clones share the counters.
#[derive(Debug, Clone, Default)]
pub struct BucketMetrics {
    /// Operations started (one per call, whatever the retries).
    pub operations: Family<OperationLabels, Counter>,
    /// Operations that failed after their retries; a get of a missing
    /// object is not a failure, as in Thanos.
    pub failures: Family<OperationLabels, Counter>,
    /// Attempts retried after a transient error.
    pub retries: Family<OperationLabels, Counter>,
}

impl BucketMetrics {
    /// Registers the counters as `hearth_objstore_bucket_operations_total`,
    /// `..._operation_failures_total` and `..._operation_retries_total`.
    pub fn register(&self, registry: &mut Registry) {
        let sub = registry.sub_registry_with_prefix("hearth_objstore_bucket");
        sub.register(
            "operations",
            "Bucket operations, by operation",
            self.operations.clone(),
        );
        sub.register(
            "operation_failures",
            "Bucket operations that failed after retries, by operation",
            self.failures.clone(),
        );
        sub.register(
            "operation_retries",
            "Bucket operation attempts retried after a transient error, by operation",
            self.retries.clone(),
        );
    }

    /// The count of `operation` in `family`, for tests and logs.
    pub fn count(family: &Family<OperationLabels, Counter>, bucket: &str, op: Operation) -> u64 {
        family
            .get_or_create(&OperationLabels {
                bucket: bucket.to_string(),
                operation: op.as_str(),
            })
            .get()
    }
}
