//! Reading a block's `meta.json` and adding the `thanos` section for upload
//! (specs/tsdb-blocks.md §1.2, §8.2) without depending on the TSDB crate.
//!
//! The top-level members are kept as raw JSON in their order, so every field
//! this crate does not know keeps its exact bytes; only `thanos` is
//! (re)written, in Go's field order. Output is what Thanos writes: tab
//! indentation and a trailing newline.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;
use ulid::Ulid;

use crate::{Error, Result};

/// What the bucket and the shipper need from a `meta.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockMetaSummary {
    pub ulid: Ulid,
    pub min_time: i64,
    pub max_time: i64,
    pub num_samples: u64,
    /// `compaction.level`: 1 for a block cut from the head.
    pub level: u32,
    /// `thanos.labels`, empty when there is no `thanos` section.
    pub labels: BTreeMap<String, String>,
    /// `thanos.downsample.resolution` (0 = raw).
    pub resolution: i64,
    /// `thanos.source`, empty when unknown.
    pub source: String,
}

#[derive(Deserialize)]
struct RawMeta {
    ulid: String,
    #[serde(rename = "minTime")]
    min_time: i64,
    #[serde(rename = "maxTime")]
    max_time: i64,
    #[serde(default)]
    stats: RawStats,
    #[serde(default)]
    compaction: RawCompaction,
    version: u32,
    #[serde(default)]
    thanos: Option<RawThanos>,
}

#[derive(Deserialize, Default)]
struct RawStats {
    #[serde(rename = "numSamples", default)]
    num_samples: u64,
}

#[derive(Deserialize, Default)]
struct RawCompaction {
    #[serde(default)]
    level: u32,
}

#[derive(Deserialize, Default)]
struct RawThanos {
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    downsample: Option<RawDownsample>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    version: u32,
}

#[derive(Deserialize, Default)]
struct RawDownsample {
    #[serde(default)]
    resolution: i64,
}

impl BlockMetaSummary {
    /// Parses a `meta.json`; `what` names it in errors (a path or object
    /// name). The meta `version` must be 1 and the Thanos one 0 or 1.
    pub fn parse(data: &[u8], what: &str) -> Result<Self> {
        let invalid = |message: String| Error::Invalid {
            what: "meta.json",
            path: what.to_string(),
            message,
        };
        let raw: RawMeta = serde_json::from_slice(data).map_err(|e| invalid(e.to_string()))?;
        if raw.version != 1 {
            return Err(invalid(format!("unsupported version {}", raw.version)));
        }
        let ulid = Ulid::from_string(&raw.ulid)
            .map_err(|e| invalid(format!("ulid {:?}: {e}", raw.ulid)))?;
        let thanos = raw.thanos.unwrap_or_default();
        if thanos.version > 1 {
            return Err(invalid(format!(
                "unsupported thanos version {}",
                thanos.version
            )));
        }
        Ok(Self {
            ulid,
            min_time: raw.min_time,
            max_time: raw.max_time,
            num_samples: raw.stats.num_samples,
            level: raw.compaction.level,
            labels: thanos.labels.unwrap_or_default(),
            resolution: thanos.downsample.unwrap_or_default().resolution,
            source: thanos.source.unwrap_or_default(),
        })
    }
}

/// One file of a block as listed in `thanos.files`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct BlockFile {
    /// Relative to the block directory, with `/`: `chunks/000001`, `index`.
    pub rel_path: String,
    /// `None` for `meta.json`, which has no size in `thanos.files`.
    pub size_bytes: Option<u64>,
}

/// What the uploader sets in the `thanos` section.
#[derive(Debug, Clone)]
pub struct ThanosSection<'a> {
    pub labels: &'a BTreeMap<String, String>,
    pub source: &'a str,
    /// Chunk segment file names, sorted (`000001`, ...).
    pub segment_files: &'a [String],
    /// Every uploaded file including `meta.json`; sorted here.
    pub files: &'a [BlockFile],
    /// RFC 3339 time of the upload.
    pub upload_time: &'a str,
}

/// Go's field order of Thanos's `metadata.Thanos`.
const THANOS_ORDER: &[&str] = &[
    "version",
    "labels",
    "downsample",
    "source",
    "segment_files",
    "files",
    "rewrites",
    "index_stats",
    "extensions",
    "upload_time",
];

/// Returns `meta` with its `thanos` section set for upload: `labels`,
/// `source`, `segment_files`, `files` and `upload_time` replaced,
/// `downsample` kept if present (else `{"resolution": 0}`), other Thanos
/// members kept. Every other top-level member keeps its bytes and position.
pub fn with_thanos_section(
    meta: &[u8],
    what: &str,
    section: &ThanosSection<'_>,
) -> Result<Vec<u8>> {
    let invalid = |message: String| Error::Invalid {
        what: "meta.json",
        path: what.to_string(),
        message,
    };
    let top: OrderedObject = serde_json::from_slice(meta).map_err(|e| invalid(e.to_string()))?;
    let existing: Vec<(String, Box<RawValue>)> = match top.0.iter().find(|(k, _)| k == "thanos") {
        Some((_, raw)) if raw.get().trim() != "null" => {
            serde_json::from_str::<OrderedObject>(raw.get())
                .map_err(|e| invalid(format!("thanos: {e}")))?
                .0
        }
        _ => Vec::new(),
    };
    let mut files = section.files.to_vec();
    files.sort();
    let mut set: BTreeMap<&str, Entry> = BTreeMap::new();
    set.insert("labels", Entry::Value(serde_json::json!(section.labels)));
    set.insert("source", Entry::Value(Value::from(section.source)));
    set.insert(
        "segment_files",
        Entry::Value(serde_json::json!(section.segment_files)),
    );
    set.insert(
        "files",
        Entry::Value(Value::Array(
            files
                .iter()
                .map(|f| {
                    let mut o = serde_json::Map::new();
                    o.insert("rel_path".into(), Value::from(f.rel_path.clone()));
                    if let Some(size) = f.size_bytes {
                        o.insert("size_bytes".into(), Value::from(size));
                    }
                    Value::Object(o)
                })
                .collect(),
        )),
    );
    set.insert(
        "upload_time",
        Entry::Value(Value::from(section.upload_time)),
    );
    if !existing.iter().any(|(k, _)| k == "downsample") {
        set.insert(
            "downsample",
            Entry::Value(serde_json::json!({ "resolution": 0 })),
        );
    }
    let mut thanos: Vec<(String, Entry)> = Vec::new();
    for key in THANOS_ORDER {
        if let Some(e) = set.remove(key) {
            thanos.push((key.to_string(), e));
        } else if let Some((_, raw)) = existing.iter().find(|(k, _)| k == key) {
            thanos.push((key.to_string(), Entry::Raw(raw.clone())));
        }
    }
    for (k, raw) in &existing {
        if !THANOS_ORDER.contains(&k.as_str()) {
            thanos.push((k.clone(), Entry::Raw(raw.clone())));
        }
    }
    let mut out: Vec<(String, Entry)> = Vec::new();
    for (k, raw) in top.0 {
        if k != "thanos" {
            out.push((k, Entry::Raw(raw)));
        }
    }
    out.push(("thanos".into(), Entry::Map(thanos)));
    let mut buf = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, formatter);
    Entry::Map(out)
        .serialize(&mut ser)
        .expect("serialising JSON into memory cannot fail");
    buf.push(b'\n');
    Ok(buf)
}

/// A JSON object with its members in document order, values raw.
struct OrderedObject(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for OrderedObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Box<RawValue>>()? {
                    members.push((k, v));
                }
                Ok(OrderedObject(members))
            }
        }
        d.deserialize_map(V)
    }
}

enum Entry {
    Raw(Box<RawValue>),
    Value(Value),
    Map(Vec<(String, Entry)>),
}

impl Serialize for Entry {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Entry::Raw(r) => r.serialize(s),
            Entry::Value(v) => v.serialize(s),
            Entry::Map(members) => {
                let mut m = s.serialize_map(Some(members.len()))?;
                for (k, v) in members {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMETHEUS_META: &str = "{\n\t\"ulid\": \"01HK1FDPTK4TFF59TDWH9EDD1R\",\n\t\"minTime\": 1704067200000,\n\t\"maxTime\": 1704074400000,\n\t\"stats\": {\n\t\t\"numSamples\": 19200000,\n\t\t\"numSeries\": 40000,\n\t\t\"numChunks\": 160000\n\t},\n\t\"compaction\": {\n\t\t\"level\": 1,\n\t\t\"sources\": [\n\t\t\t\"01HK1FDPTK4TFF59TDWH9EDD1R\"\n\t\t]\n\t},\n\t\"version\": 1\n}";

    #[test]
    fn adds_thanos_section_keeping_other_bytes() {
        let labels: BTreeMap<String, String> = [
            ("cluster".to_string(), "eu-1".to_string()),
            ("replica".into(), "a".into()),
        ]
        .into();
        let segments = vec!["000001".to_string()];
        let files = vec![
            BlockFile {
                rel_path: "meta.json".into(),
                size_bytes: None,
            },
            BlockFile {
                rel_path: "index".into(),
                size_bytes: Some(6543210),
            },
            BlockFile {
                rel_path: "chunks/000001".into(),
                size_bytes: Some(102345678),
            },
        ];
        let out = with_thanos_section(
            PROMETHEUS_META.as_bytes(),
            "test",
            &ThanosSection {
                labels: &labels,
                source: "sidecar",
                segment_files: &segments,
                files: &files,
                upload_time: "2024-01-01T10:31:12.345678901Z",
            },
        )
        .unwrap();
        let out = String::from_utf8(out).unwrap();
        let expected = format!(
            "{},\n\t\"thanos\": {{\n\t\t\"labels\": {{\n\t\t\t\"cluster\": \"eu-1\",\n\t\t\t\"replica\": \"a\"\n\t\t}},\n\t\t\"downsample\": {{\n\t\t\t\"resolution\": 0\n\t\t}},\n\t\t\"source\": \"sidecar\",\n\t\t\"segment_files\": [\n\t\t\t\"000001\"\n\t\t],\n\t\t\"files\": [\n\t\t\t{{\n\t\t\t\t\"rel_path\": \"chunks/000001\",\n\t\t\t\t\"size_bytes\": 102345678\n\t\t\t}},\n\t\t\t{{\n\t\t\t\t\"rel_path\": \"index\",\n\t\t\t\t\"size_bytes\": 6543210\n\t\t\t}},\n\t\t\t{{\n\t\t\t\t\"rel_path\": \"meta.json\"\n\t\t\t}}\n\t\t],\n\t\t\"upload_time\": \"2024-01-01T10:31:12.345678901Z\"\n\t}}\n}}\n",
            PROMETHEUS_META.strip_suffix("\n}").unwrap()
        );
        assert_eq!(out, expected);
        let s = BlockMetaSummary::parse(out.as_bytes(), "test").unwrap();
        assert_eq!(s.labels, labels);
        assert_eq!(s.source, "sidecar");
        assert_eq!(s.level, 1);
        assert_eq!(s.num_samples, 19200000);
    }

    #[test]
    fn keeps_existing_thanos_members() {
        let meta = r#"{"ulid":"01HK1FDPTK4TFF59TDWH9EDD1R","minTime":0,"maxTime":1,"stats":{},"compaction":{"level":2},"version":1,"thanos":{"labels":{"a":"b"},"downsample":{"resolution":300000},"source":"compactor","index_stats":{"series_max_size":512},"custom":true}}"#;
        let labels: BTreeMap<String, String> = [("x".to_string(), "y".to_string())].into();
        let out = with_thanos_section(
            meta.as_bytes(),
            "t",
            &ThanosSection {
                labels: &labels,
                source: "bucket.upload",
                segment_files: &[],
                files: &[],
                upload_time: "t",
            },
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["thanos"]["downsample"]["resolution"], 300000);
        assert_eq!(v["thanos"]["labels"], serde_json::json!({"x": "y"}));
        assert_eq!(v["thanos"]["index_stats"]["series_max_size"], 512);
        assert_eq!(v["thanos"]["custom"], true);
        assert_eq!(v["compaction"]["level"], 2);
    }

    #[test]
    fn rejects_bad_versions() {
        let m = r#"{"ulid":"01HK1FDPTK4TFF59TDWH9EDD1R","minTime":0,"maxTime":1,"version":2}"#;
        assert!(BlockMetaSummary::parse(m.as_bytes(), "x").is_err());
        let m = r#"{"ulid":"01HK1FDPTK4TFF59TDWH9EDD1R","minTime":0,"maxTime":1,"version":1,"thanos":{"version":2}}"#;
        assert!(BlockMetaSummary::parse(m.as_bytes(), "x").is_err());
        assert!(BlockMetaSummary::parse(b"{", "x").is_err());
    }
}
