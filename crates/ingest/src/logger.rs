//! Routes raft-rs's logging (slog) into `tracing`, tagged with the group and
//! node, so raft's own messages land with the rest of Hearth's logs.
//! raft-rs logs every election step at info; those become debug events
//! here, and the node logs leadership changes itself.

use std::fmt::Write as _;

use slog::{Drain, Level, Never, OwnedKVList, Record, Serializer, KV};

/// A slog drain that emits each record as a `tracing` event.
struct TracingDrain;

impl Drain for TracingDrain {
    type Ok = ();
    type Err = Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), Never> {
        let mut fields = Fields(String::new());
        // Serializing into a String cannot fail; a failure would only lose fields.
        let _ = record.kv().serialize(record, &mut fields);
        let _ = values.serialize(record, &mut fields);
        let message = record.msg();
        let fields = fields.0;
        match record.level() {
            Level::Critical | Level::Error => {
                tracing::error!(target: "raft", "{message}{fields}")
            }
            Level::Warning => tracing::warn!(target: "raft", "{message}{fields}"),
            Level::Info | Level::Debug => tracing::debug!(target: "raft", "{message}{fields}"),
            Level::Trace => tracing::trace!(target: "raft", "{message}{fields}"),
        }
        Ok(())
    }
}

/// Key-value pairs rendered as ` key=value`.
struct Fields(String);

impl Serializer for Fields {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments<'_>) -> slog::Result {
        let _ = write!(self.0, " {key}={val}");
        Ok(())
    }
}

/// The logger handed to raft-rs for one replica.
pub(crate) fn raft_logger(group: u64, node: u64) -> slog::Logger {
    slog::Logger::root(TracingDrain, slog::o!("group" => group, "node" => node))
}
