//! `meta.json`: a block's identity, time range, statistics and compaction
//! lineage (specs/tsdb-blocks.md §1.2, Thanos section §8.2).
//!
//! Reading accepts any key order and ignores unknown keys, as both Go
//! readers do; unknown keys of the `thanos` section are kept so that a
//! Thanos meta survives a read-modify-write. Writing follows Go's
//! `json.MarshalIndent(meta, "", "\t")`: Go's field order, tab indentation,
//! `<`, `>`, `&`, U+2028 and U+2029 escaped, and no trailing newline.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use ulid::Ulid;

use super::{parse_ulid_strict, write_file_atomic, META_FILENAME};
use crate::{Error, Result};

/// The only meta format version that exists.
pub const META_VERSION_1: u32 = 1;

/// Hint of a block built from the out-of-order head.
pub const HINT_FROM_OUT_OF_ORDER: &str = "from-out-of-order";

/// The contents of a block's `meta.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockMeta {
    #[serde(with = "ulid_text")]
    pub ulid: Ulid,
    /// Inclusive lower bound of the block's samples.
    #[serde(rename = "minTime")]
    pub min_time: i64,
    /// Exclusive upper bound of the block's samples.
    #[serde(rename = "maxTime")]
    pub max_time: i64,
    #[serde(default)]
    pub stats: BlockStats,
    #[serde(default)]
    pub compaction: BlockCompaction,
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thanos: Option<ThanosMeta>,
}

/// Counts over the block's contents; each is omitted from JSON when zero.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockStats {
    #[serde(rename = "numSamples", default, skip_serializing_if = "is_zero")]
    pub num_samples: u64,
    /// Prometheus 3.6+ only; Hearth leaves it zero (omitted) like 2.42.
    #[serde(rename = "numFloatSamples", default, skip_serializing_if = "is_zero")]
    pub num_float_samples: u64,
    /// Prometheus 3.6+ only; Hearth leaves it zero (omitted) like 2.42.
    #[serde(
        rename = "numHistogramSamples",
        default,
        skip_serializing_if = "is_zero"
    )]
    pub num_histogram_samples: u64,
    #[serde(rename = "numSeries", default, skip_serializing_if = "is_zero")]
    pub num_series: u64,
    #[serde(rename = "numChunks", default, skip_serializing_if = "is_zero")]
    pub num_chunks: u64,
    /// Number of tombstone intervals, summed over series.
    #[serde(rename = "numTombstones", default, skip_serializing_if = "is_zero")]
    pub num_tombstones: u64,
}

/// Where a block comes from: its compaction level and source blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockCompaction {
    /// 1 for a block cut from the head or backfilled; max(inputs) + 1 for a
    /// compaction output.
    #[serde(default)]
    pub level: u32,
    /// Every level-1 block whose data is included, sorted; a level-1 block
    /// lists itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "ulid_list")]
    pub sources: Vec<Ulid>,
    /// Set on compaction inputs whose output would be empty.
    #[serde(default, skip_serializing_if = "is_false")]
    pub deletable: bool,
    /// The direct inputs of the compaction that produced this block.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<BlockDesc>,
    /// Set on inputs of a compaction that failed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub failed: bool,
    /// Sorted hints such as [`HINT_FROM_OUT_OF_ORDER`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<String>,
}

/// A compaction parent: another block's ID and range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDesc {
    #[serde(with = "ulid_text")]
    pub ulid: Ulid,
    #[serde(rename = "minTime")]
    pub min_time: i64,
    #[serde(rename = "maxTime")]
    pub max_time: i64,
}

/// The `thanos` section: the well-known fields typed, everything else
/// (`index_stats`, `upload_time`, `rewrites`, `extensions`, future keys)
/// kept verbatim in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThanosMeta {
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub version: u32,
    /// External labels of the producer. `null` reads as empty.
    #[serde(default, deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub downsample: ThanosDownsample,
    #[serde(default, deserialize_with = "null_as_default")]
    pub source: String,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub segment_files: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub files: Vec<ThanosFile>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// `thanos.downsample`: the block's resolution in milliseconds (0 = raw).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThanosDownsample {
    #[serde(default)]
    pub resolution: i64,
}

/// One entry of `thanos.files`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThanosFile {
    pub rel_path: String,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub size_bytes: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<serde_json::Value>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// ULIDs as their 26-character upper-case text, parsed strictly.
mod ulid_text {
    use super::*;

    pub fn serialize<S: Serializer>(id: &Ulid, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&id.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Ulid, D::Error> {
        let text = String::deserialize(d)?;
        parse_ulid_strict(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid ULID {text:?}")))
    }
}

/// A list of ULIDs; `null` reads as empty.
mod ulid_list {
    use super::*;

    pub fn serialize<S: Serializer>(ids: &[Ulid], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(ids.iter().map(|id| id.to_string()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Ulid>, D::Error> {
        let texts = Option::<Vec<String>>::deserialize(d)?.unwrap_or_default();
        texts
            .iter()
            .map(|t| {
                parse_ulid_strict(t)
                    .ok_or_else(|| serde::de::Error::custom(format!("invalid ULID {t:?}")))
            })
            .collect()
    }
}

impl BlockMeta {
    /// A level-1 meta for a new block listing itself as its only source.
    pub fn new(ulid: Ulid, min_time: i64, max_time: i64) -> Self {
        Self {
            ulid,
            min_time,
            max_time,
            stats: BlockStats::default(),
            compaction: BlockCompaction {
                level: 1,
                sources: vec![ulid],
                ..BlockCompaction::default()
            },
            version: META_VERSION_1,
            thanos: None,
        }
    }

    /// Parses `meta.json` bytes; `version` must be 1.
    pub fn from_json(data: &[u8]) -> Result<Self> {
        let meta: BlockMeta = serde_json::from_slice(data)
            .map_err(|e| Error::Corrupt(format!("parse meta.json: {e}")))?;
        if meta.version != META_VERSION_1 {
            return Err(Error::Corrupt(format!(
                "unsupported meta.json version {}",
                meta.version
            )));
        }
        Ok(meta)
    }

    /// Encodes as Go's `json.MarshalIndent(meta, "", "\t")` does.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
        self.serialize(&mut ser)
            .expect("serialising a BlockMeta into memory cannot fail");
        let text = String::from_utf8(out).expect("serde_json writes UTF-8");
        // These characters can only occur inside JSON strings, where Go's
        // encoder writes them as escapes; the replacement is exact.
        text.replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026")
            .replace('\u{2028}', "\\u2028")
            .replace('\u{2029}', "\\u2029")
            .into_bytes()
    }

    /// Reads `dir/meta.json`.
    pub fn read_from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join(META_FILENAME);
        let data = std::fs::read(&path).map_err(Error::io("read", &path))?;
        Self::from_json(&data).map_err(|e| Error::CorruptBlock {
            block: dir.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// Writes `dir/meta.json` atomically (`meta.json.tmp`, fsync, rename,
    /// fsync of `dir`).
    pub fn write_to_dir(&self, dir: &Path) -> Result<()> {
        write_file_atomic(dir, META_FILENAME, &self.to_json())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PROMETHEUS_META: &str = "{\n\t\"ulid\": \"01HK1FDPTK4TFF59TDWH9EDD1R\",\n\t\"minTime\": 1704067200000,\n\t\"maxTime\": 1704074400000,\n\t\"stats\": {\n\t\t\"numSamples\": 19200000,\n\t\t\"numSeries\": 40000,\n\t\t\"numChunks\": 160000\n\t},\n\t\"compaction\": {\n\t\t\"level\": 1,\n\t\t\"sources\": [\n\t\t\t\"01HK1FDPTK4TFF59TDWH9EDD1R\"\n\t\t]\n\t},\n\t\"version\": 1\n}";

    #[test]
    fn writes_byte_for_byte_like_go() {
        let meta = BlockMeta::from_json(PROMETHEUS_META.as_bytes()).unwrap();
        assert_eq!(meta.stats.num_samples, 19_200_000);
        assert_eq!(meta.compaction.sources, vec![meta.ulid]);
        assert_eq!(String::from_utf8(meta.to_json()).unwrap(), PROMETHEUS_META);
    }

    #[test]
    fn reads_thanos_meta_with_unknown_keys_in_any_order() {
        let text = r#"{
            "version": 1, "future": {"x": 1},
            "thanos": {"labels": {"cluster": "eu-1"}, "downsample": {"resolution": 0},
                "source": "compactor", "segment_files": ["000001"],
                "files": [{"rel_path": "chunks/000001", "size_bytes": 10}, {"rel_path": "meta.json"}],
                "index_stats": {"series_max_size": 512}, "upload_time": "2024-01-01T10:31:12Z"},
            "compaction": {"level": 2, "sources": ["01HK1FDPTK4TFF59TDWH9EDD1R", "01HK1P9DDR1HEAD8X4A1JH69RE"],
                "parents": [{"ulid": "01HK1FDPTK4TFF59TDWH9EDD1R", "minTime": 0, "maxTime": 7200000}],
                "deletable": true, "failed": true, "hints": ["from-out-of-order"]},
            "stats": {"numSamples": 5, "numFloatSamples": 5},
            "maxTime": 7200000, "minTime": 0, "ulid": "01HK296Q38G7KYHRJXJG7DJ13N"
        }"#;
        let meta = BlockMeta::from_json(text.as_bytes()).unwrap();
        assert_eq!(meta.compaction.level, 2);
        assert!(meta.compaction.deletable && meta.compaction.failed);
        assert_eq!(
            meta.compaction.hints,
            vec![HINT_FROM_OUT_OF_ORDER.to_string()]
        );
        let thanos = meta.thanos.as_ref().unwrap();
        assert_eq!(thanos.labels["cluster"], "eu-1");
        assert_eq!(thanos.files.len(), 2);
        assert!(thanos.extra.contains_key("index_stats"));
        assert!(thanos.extra.contains_key("upload_time"));
        // A round trip keeps everything, including unknown Thanos keys.
        assert_eq!(BlockMeta::from_json(&meta.to_json()).unwrap(), meta);
    }

    #[test]
    fn null_thanos_labels_read_as_empty() {
        let text = r#"{"ulid":"01HK296Q38G7KYHRJXJG7DJ13N","minTime":0,"maxTime":1,"version":1,
            "thanos":{"labels":null,"downsample":{"resolution":300000},"source":"sidecar"}}"#;
        let meta = BlockMeta::from_json(text.as_bytes()).unwrap();
        let thanos = meta.thanos.unwrap();
        assert!(thanos.labels.is_empty());
        assert_eq!(thanos.downsample.resolution, 300_000);
    }

    #[test]
    fn rejects_other_versions_and_bad_ulids() {
        let bad_version =
            r#"{"ulid":"01HK296Q38G7KYHRJXJG7DJ13N","minTime":0,"maxTime":1,"version":2}"#;
        assert!(BlockMeta::from_json(bad_version.as_bytes()).is_err());
        let bad_ulid =
            r#"{"ulid":"81HK296Q38G7KYHRJXJG7DJ13N","minTime":0,"maxTime":1,"version":1}"#;
        assert!(BlockMeta::from_json(bad_ulid.as_bytes()).is_err());
        assert!(BlockMeta::from_json(b"").is_err());
    }

    #[test]
    fn escapes_html_characters_like_go() {
        let mut meta = BlockMeta::new(Ulid::from_parts(1, 2), 0, 1);
        meta.compaction.hints = vec!["a<b>&c".into()];
        let text = String::from_utf8(meta.to_json()).unwrap();
        assert!(text.contains(r#""a\u003cb\u003e\u0026c""#), "{text}");
        assert_eq!(BlockMeta::from_json(text.as_bytes()).unwrap(), meta);
    }

    #[test]
    fn writes_atomically_into_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let meta = BlockMeta::new(Ulid::from_parts(1, 2), -5, 10);
        meta.write_to_dir(dir.path()).unwrap();
        assert!(!dir.path().join("meta.json.tmp").exists());
        assert_eq!(BlockMeta::read_from_dir(dir.path()).unwrap(), meta);
    }

    proptest! {
        #[test]
        fn json_round_trips(
            ts in any::<u64>(), rand_part in any::<u128>(), min in any::<i64>(), max in any::<i64>(),
            stats in proptest::array::uniform6(any::<u64>()), level in 0u32..10,
            hints in proptest::collection::vec("\\PC{0,8}", 0..3), deletable in any::<bool>(),
            labels in proptest::collection::btree_map("\\PC{1,6}", "\\PC{0,6}", 0..3),
        ) {
            let ulid = Ulid::from_parts(ts >> 16, rand_part);
            let mut meta = BlockMeta::new(ulid, min, max);
            meta.stats = BlockStats {
                num_samples: stats[0], num_float_samples: stats[1], num_histogram_samples: stats[2],
                num_series: stats[3], num_chunks: stats[4], num_tombstones: stats[5],
            };
            meta.compaction.level = level;
            meta.compaction.hints = hints;
            meta.compaction.deletable = deletable;
            meta.compaction.parents = vec![BlockDesc { ulid, min_time: min, max_time: max }];
            if !labels.is_empty() {
                meta.thanos = Some(ThanosMeta { labels, source: "test".into(), ..ThanosMeta::default() });
            }
            prop_assert_eq!(BlockMeta::from_json(&meta.to_json()).unwrap(), meta);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = BlockMeta::from_json(&bytes);
        }
    }
}
