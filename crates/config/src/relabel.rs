//! Relabeling (`relabel_configs`, `metric_relabel_configs`,
//! `alert_relabel_configs`, `write_relabel_configs`) with Prometheus 3's
//! semantics: the actions, the regex anchoring and `$1` expansion, the
//! `hashmod` hash, and the load-time validation with Prometheus's messages.
//!
//! Regexes are Go RE2 syntax compiled as `^(?s:<regex>)$` by
//! [`hearth_model::matcher::compile_anchored`], the translator the PromQL
//! matchers use.

use std::fmt;

use hearth_model::matcher::compile_anchored;
use hearth_model::Labels;
use md5::{Digest, Md5};
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::render::flow_seq;
use crate::yaml::{is_zero, zero_if_null};

/// What a relabel rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
        }
    }

    const ALL: [Action; 11] = [
        Action::Replace,
        Action::Keep,
        Action::Drop,
        Action::KeepEqual,
        Action::DropEqual,
        Action::HashMod,
        Action::LabelMap,
        Action::LabelDrop,
        Action::LabelKeep,
        Action::Lowercase,
        Action::Uppercase,
    ];
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Case-insensitive, as Prometheus (`action: Keep` is accepted).
impl std::str::FromStr for Action {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.to_lowercase();
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == lower)
            .ok_or_else(|| format!("unknown relabel action {s:?}"))
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Option::<String>::deserialize(d)?.unwrap_or_default();
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The default `regex`.
pub const DEFAULT_REGEX: &str = "(.*)";
/// The default `separator`.
pub const DEFAULT_SEPARATOR: &str = ";";
/// The default `replacement`.
pub const DEFAULT_REPLACEMENT: &str = "$1";

/// A relabel regex: the pattern as written, and its anchored compilation.
#[derive(Clone)]
pub struct RelabelRegex {
    pattern: String,
    regex: Regex,
}

impl RelabelRegex {
    pub fn new(pattern: &str) -> Result<Self, String> {
        let regex = compile_anchored(pattern).map_err(|e| e.to_string())?;
        Ok(RelabelRegex {
            pattern: pattern.to_string(),
            regex,
        })
    }

    /// The pattern as configured (without the anchors).
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether the whole of `s` matches.
    pub fn is_match(&self, s: &str) -> bool {
        self.regex.is_match(s)
    }

    /// The anchored regex, for callers that need captures.
    pub fn regex(&self) -> &Regex {
        &self.regex
    }
}

impl Default for RelabelRegex {
    fn default() -> Self {
        RelabelRegex::new(DEFAULT_REGEX).expect("the default relabel regex compiles")
    }
}

impl PartialEq for RelabelRegex {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

impl fmt::Debug for RelabelRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.pattern)
    }
}

impl Serialize for RelabelRegex {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.pattern)
    }
}

/// A null `regex:` is the empty pattern, as in Prometheus.
impl<'de> Deserialize<'de> for RelabelRegex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let pattern = Option::<String>::deserialize(d)?.unwrap_or_default();
        RelabelRegex::new(&pattern).map_err(serde::de::Error::custom)
    }
}

/// One relabel rule, validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawRelabelConfig")]
pub struct RelabelConfig {
    #[serde(serialize_with = "flow_seq", skip_serializing_if = "Vec::is_empty")]
    pub source_labels: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub separator: String,
    pub regex: RelabelRegex,
    #[serde(skip_serializing_if = "is_zero")]
    pub modulus: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub target_label: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub replacement: String,
    pub action: Action,
}

impl Default for RelabelConfig {
    /// `relabel.DefaultRelabelConfig`: a `replace` with the defaults.
    fn default() -> Self {
        RelabelConfig {
            source_labels: Vec::new(),
            separator: DEFAULT_SEPARATOR.into(),
            regex: RelabelRegex::default(),
            modulus: 0,
            target_label: String::new(),
            replacement: DEFAULT_REPLACEMENT.into(),
            action: Action::Replace,
        }
    }
}

fn default_separator() -> String {
    DEFAULT_SEPARATOR.into()
}

fn default_replacement() -> String {
    DEFAULT_REPLACEMENT.into()
}

fn default_action() -> Action {
    Action::Replace
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelabelConfig {
    /// `None` when absent: `labeldrop` rejects even an empty list.
    #[serde(default)]
    source_labels: Option<Vec<String>>,
    #[serde(default = "default_separator", deserialize_with = "zero_if_null")]
    separator: String,
    #[serde(default)]
    regex: RelabelRegex,
    #[serde(default, deserialize_with = "zero_if_null")]
    modulus: u64,
    #[serde(default, deserialize_with = "zero_if_null")]
    target_label: String,
    #[serde(default = "default_replacement", deserialize_with = "zero_if_null")]
    replacement: String,
    #[serde(default = "default_action")]
    action: Action,
}

impl TryFrom<RawRelabelConfig> for RelabelConfig {
    type Error = String;

    fn try_from(raw: RawRelabelConfig) -> Result<Self, String> {
        let has_source_labels = raw.source_labels.is_some();
        let config = RelabelConfig {
            source_labels: raw.source_labels.unwrap_or_default(),
            separator: raw.separator,
            regex: raw.regex,
            modulus: raw.modulus,
            target_label: raw.target_label,
            replacement: raw.replacement,
            action: raw.action,
        };
        config.validate(has_source_labels)?;
        Ok(config)
    }
}

/// Prometheus 3's label-name rule under its default UTF-8 validation: any
/// non-empty string.
fn is_valid_label_name(name: &str) -> bool {
    hearth_model::labels::is_valid_label_name(name)
}

/// Whether a template refers to a capture group (`$1`, `${name}`).
fn has_template_variable(s: &str) -> bool {
    s.contains('$')
}

impl RelabelConfig {
    /// `relabel.Config.Validate` with the UTF-8 name validation scheme.
    fn validate(&self, has_source_labels: bool) -> Result<(), String> {
        use Action::*;
        let action = self.action;
        if let Some(bad) = self.source_labels.iter().find(|l| !is_valid_label_name(l)) {
            return Err(format!("{bad:?} is not a valid label name"));
        }
        if action == HashMod && self.modulus == 0 {
            return Err("relabel configuration for hashmod requires non-zero modulus".into());
        }
        let needs_target = matches!(
            action,
            Replace | HashMod | Lowercase | Uppercase | KeepEqual | DropEqual
        );
        if needs_target && self.target_label.is_empty() {
            return Err(format!(
                "relabel configuration for {action} action requires 'target_label' value"
            ));
        }
        let invalid_target = match action {
            Replace => {
                !has_template_variable(&self.target_label)
                    && !is_valid_label_name(&self.target_label)
            }
            Lowercase | Uppercase | KeepEqual | DropEqual | HashMod => {
                !is_valid_label_name(&self.target_label)
            }
            _ => false,
        };
        if invalid_target {
            return Err(format!(
                "{:?} is invalid 'target_label' for {action} action",
                self.target_label
            ));
        }
        let default_replacement = self.replacement == DEFAULT_REPLACEMENT;
        if matches!(action, Lowercase | Uppercase | KeepEqual | DropEqual) && !default_replacement {
            return Err(format!("'replacement' can not be set for {action} action"));
        }
        if action == LabelMap && !is_valid_label_name(&self.replacement) {
            return Err(format!(
                "{:?} is invalid 'replacement' for {action} action",
                self.replacement
            ));
        }
        let default_separator = self.separator == DEFAULT_SEPARATOR;
        if matches!(action, KeepEqual | DropEqual)
            && (self.regex.as_str() != DEFAULT_REGEX
                || self.modulus != 0
                || !default_separator
                || !default_replacement)
        {
            return Err(format!(
                "{action} action requires only 'source_labels' and `target_label`, and no other \
                 fields"
            ));
        }
        if matches!(action, LabelDrop | LabelKeep)
            && (has_source_labels
                || !self.target_label.is_empty()
                || self.modulus != 0
                || !default_separator
                || !default_replacement)
        {
            return Err(format!(
                "{action} action requires only 'regex', and no other fields"
            ));
        }
        Ok(())
    }

    /// Applies this rule to `b`; false means the object is dropped.
    fn apply(&self, b: &mut GoLabelsBuilder<'_>) -> bool {
        let value = self
            .source_labels
            .iter()
            .map(|name| b.get(name))
            .collect::<Vec<_>>()
            .join(&self.separator);
        match self.action {
            Action::Drop => {
                if self.regex.is_match(&value) {
                    return false;
                }
            }
            Action::Keep => {
                if !self.regex.is_match(&value) {
                    return false;
                }
            }
            Action::DropEqual => {
                if b.get(&self.target_label) == value {
                    return false;
                }
            }
            Action::KeepEqual => {
                if b.get(&self.target_label) != value {
                    return false;
                }
            }
            Action::Replace => self.replace(b, &value),
            Action::Lowercase => b.set(&self.target_label, &go_to_lower(&value)),
            Action::Uppercase => b.set(&self.target_label, &go_to_upper(&value)),
            Action::HashMod => {
                let modulus = hashmod(&value, self.modulus).to_string();
                b.set(&self.target_label, &modulus);
            }
            Action::LabelMap => {
                for (name, v) in b.snapshot() {
                    if let Some(caps) = self.regex.regex().captures(&name) {
                        let mut target = String::new();
                        caps.expand(&self.replacement, &mut target);
                        b.set(&target, &v);
                    }
                }
            }
            Action::LabelDrop => {
                for (name, _) in b.snapshot() {
                    if self.regex.is_match(&name) {
                        b.del(&name);
                    }
                }
            }
            Action::LabelKeep => {
                for (name, _) in b.snapshot() {
                    if !self.regex.is_match(&name) {
                        b.del(&name);
                    }
                }
            }
        }
        true
    }

    /// `replace`: on a match, expand `target_label` and `replacement` with
    /// the captures; an invalid expanded name changes nothing, an empty
    /// replacement deletes the label (Prometheus 3).
    fn replace(&self, b: &mut GoLabelsBuilder<'_>, value: &str) {
        let Some(caps) = self.regex.regex().captures(value) else {
            return;
        };
        let mut target = String::new();
        caps.expand(&self.target_label, &mut target);
        if !is_valid_label_name(&target) {
            return;
        }
        let mut replacement = String::new();
        caps.expand(&self.replacement, &mut replacement);
        if replacement.is_empty() {
            b.del(&target);
        } else {
            b.set(&target, &replacement);
        }
    }
}

/// The `hashmod` value: MD5 of `value`, its last 8 bytes read as a
/// big-endian u64, modulo `modulus` (`binary.BigEndian.Uint64(sum[8:])`).
pub fn hashmod(value: &str, modulus: u64) -> u64 {
    let sum = Md5::digest(value.as_bytes());
    let mut last = [0u8; 8];
    last.copy_from_slice(&sum[8..16]);
    u64::from_be_bytes(last) % modulus
}

/// Go's `strings.ToLower`: each code point through its simple lower-case
/// mapping, without context (no final-sigma rule).
fn go_to_lower(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut lower = c.to_lowercase();
            match (lower.next(), lower.next()) {
                (Some(l), None) => l,
                // Only U+0130 has a longer full mapping; its simple one is 'i'.
                _ => 'i',
            }
        })
        .collect()
}

/// Go's `strings.ToUpper`: each code point through its simple upper-case
/// mapping. Code points whose full mapping is several characters (`ß`,
/// ligatures) have no simple mapping and stay as they are.
fn go_to_upper(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut upper = c.to_uppercase();
            match (upper.next(), upper.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        })
        .collect()
}

/// Applies `configs` in order to `labels`, as `relabel.Process`. `None`
/// when a rule dropped the object or nothing is left of its labels.
pub fn process(labels: &Labels, configs: &[RelabelConfig]) -> Option<Labels> {
    if configs.is_empty() {
        return (!labels.is_empty()).then(|| labels.clone());
    }
    let mut b = GoLabelsBuilder::new(labels);
    for config in configs {
        if !config.apply(&mut b) {
            return None;
        }
    }
    let out = b.build();
    (!out.is_empty()).then_some(out)
}

/// Go's `labels.Builder`: the base set, the labels set since (in the order
/// they were first set) and the names deleted. Its iteration order (base
/// labels first, then the added ones) decides which of two `labelmap`
/// sources writing the same label wins, so it is reproduced here.
struct GoLabelsBuilder<'a> {
    base: &'a Labels,
    add: Vec<(String, String)>,
    del: Vec<String>,
}

impl<'a> GoLabelsBuilder<'a> {
    fn new(base: &'a Labels) -> Self {
        GoLabelsBuilder {
            base,
            add: Vec::new(),
            del: Vec::new(),
        }
    }

    fn get(&self, name: &str) -> String {
        if let Some((_, v)) = self.add.iter().find(|(n, _)| n == name) {
            return v.clone();
        }
        if self.del.iter().any(|n| n == name) {
            return String::new();
        }
        self.base.get(name).unwrap_or("").to_string()
    }

    /// Setting an empty value deletes the label.
    fn set(&mut self, name: &str, value: &str) {
        if value.is_empty() {
            self.del(name);
            return;
        }
        match self.add.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = value.to_string(),
            None => self.add.push((name.to_string(), value.to_string())),
        }
    }

    fn del(&mut self, name: &str) {
        self.add.retain(|(n, _)| n != name);
        self.del.push(name.to_string());
    }

    /// The current labels in `Builder.Range` order, copied so that the
    /// caller can change the builder while it walks them.
    fn snapshot(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .base
            .iter()
            .filter(|l| {
                !self.del.iter().any(|n| n == l.name) && !self.add.iter().any(|(n, _)| n == l.name)
            })
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .collect();
        out.extend(self.add.iter().cloned());
        out
    }

    fn build(&self) -> Labels {
        if self.add.is_empty() && self.del.is_empty() {
            return self.base.clone();
        }
        Labels::new(self.snapshot())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(yaml: &str) -> RelabelConfig {
        crate::yaml::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"))
    }

    fn rule_err(yaml: &str) -> String {
        crate::yaml::from_str::<RelabelConfig>(yaml)
            .unwrap_err()
            .to_string()
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::new(pairs.iter().copied())
    }

    /// Expected values computed independently with Python:
    /// `int.from_bytes(hashlib.md5(v.encode()).digest()[8:], "big") % m`.
    /// The first three rows are also the spec's vectors verified on 2.42.
    #[test]
    fn hashmod_matches_prometheus() {
        for (value, modulus, want) in [
            ("hostnoport", 10, 2),
            ("hostnoport", 1000, 102),
            ("a.example:1234", 10, 5),
            ("a.example:1234", 1000, 175),
            ("[::1]", 10, 8),
            ("[::1]", 1000, 148),
            ("", 10, 8),
            ("", 1000, 958),
            ("10.0.0.1:9100", 4, 1),
            ("node-exporter:9100", 7, 3),
            ("foo;bar", 1_000_000, 266_750),
            ("日本", 97, 57),
            ("10.0.0.1:9100;x", u64::MAX, 3_493_243_796_654_255_922),
        ] {
            assert_eq!(hashmod(value, modulus), want, "{value} mod {modulus}");
        }
    }

    /// One table row: a rule, an input, and the expected output (`None`:
    /// dropped).
    struct Case {
        name: &'static str,
        rules: &'static str,
        input: &'static [(&'static str, &'static str)],
        want: Option<&'static [(&'static str, &'static str)]>,
    }

    #[test]
    fn every_action() {
        let cases = [
            Case {
                name: "replace with defaults copies the joined source labels",
                rules: "- {source_labels: [a, b], target_label: c}",
                input: &[("a", "1"), ("b", "2")],
                want: Some(&[("a", "1"), ("b", "2"), ("c", "1;2")]),
            },
            Case {
                name: "replace with a missing source and default regex deletes the target",
                rules: "- {source_labels: [nonexistent], target_label: c}",
                input: &[("a", "1"), ("c", "old")],
                want: Some(&[("a", "1")]),
            },
            Case {
                name: "replace without a match changes nothing",
                rules: "- {source_labels: [a], regex: 'x(.*)', target_label: c}",
                input: &[("a", "abc")],
                want: Some(&[("a", "abc")]),
            },
            Case {
                name: "the regex is anchored at both ends",
                rules: "- {source_labels: [a], regex: 'b', target_label: c, replacement: hit}",
                input: &[("a", "abc")],
                want: Some(&[("a", "abc")]),
            },
            Case {
                name: "numbered, braced and named groups; unknown names expand to nothing",
                rules: "- source_labels: [a]\n  regex: '(?P<host>[^:]+):(\\d+)'\n  \
                        target_label: c\n  replacement: '${host}-$2-${1}x-$nope-$$'",
                input: &[("a", "web:80")],
                want: Some(&[("a", "web:80"), ("c", "web-80-webx--$")]),
            },
            Case {
                name: "$1x is the group named 1x, which does not exist",
                rules: "- {source_labels: [a], regex: '(.*)', target_label: c, replacement: '$1x'}",
                input: &[("a", "v")],
                want: Some(&[("a", "v")]),
            },
            Case {
                name: "target_label may hold a reference",
                rules: "- {source_labels: [a], regex: '(.*)=(.*)', target_label: '${1}', \
                        replacement: '$2'}",
                input: &[("a", "team=db")],
                want: Some(&[("a", "team=db"), ("team", "db")]),
            },
            Case {
                name: "a target name that expands empty changes nothing",
                rules: "- {source_labels: [a], regex: '(x?)(.*)', target_label: '$1', \
                        replacement: set}",
                input: &[("a", "v")],
                want: Some(&[("a", "v")]),
            },
            Case {
                name: "a literal replacement without sources sets the label",
                rules: "- {target_label: __address__, replacement: 'blackbox:9115'}",
                input: &[("__address__", "example.org")],
                want: Some(&[("__address__", "blackbox:9115")]),
            },
            Case {
                name: "dot matches a newline (Prometheus 3)",
                rules: "- {source_labels: [a], regex: 'Foo.Bar', target_label: b, replacement: y}",
                input: &[("a", "Foo\nBar")],
                want: Some(&[("a", "Foo\nBar"), ("b", "y")]),
            },
            Case {
                name: "keep keeps a match",
                rules: "- {source_labels: [a], regex: '1|2', action: keep}",
                input: &[("a", "2")],
                want: Some(&[("a", "2")]),
            },
            Case {
                name: "keep drops a non-match",
                rules: "- {source_labels: [a], regex: '1|2', action: keep}",
                input: &[("a", "3")],
                want: None,
            },
            Case {
                name: "keep with a missing label matches the empty string",
                rules: "- {source_labels: [x], regex: '', action: Keep}",
                input: &[("a", "3")],
                want: Some(&[("a", "3")]),
            },
            Case {
                name: "drop drops a match",
                rules: "- {source_labels: [__name__], regex: 'go_.*', action: drop}",
                input: &[("__name__", "go_gc_seconds")],
                want: None,
            },
            Case {
                name: "drop keeps a non-match",
                rules: "- {source_labels: [__name__], regex: 'go_.*', action: drop}",
                input: &[("__name__", "up")],
                want: Some(&[("__name__", "up")]),
            },
            Case {
                name: "keepequal keeps equal values",
                rules: "- {source_labels: [a], target_label: b, action: keepequal}",
                input: &[("a", "x"), ("b", "x")],
                want: Some(&[("a", "x"), ("b", "x")]),
            },
            Case {
                name: "keepequal drops different values (no regex involved)",
                rules: "- {source_labels: [a], target_label: b, action: keepequal}",
                input: &[("a", "x.*"), ("b", "xy")],
                want: None,
            },
            Case {
                name: "dropequal drops equal values",
                rules: "- {source_labels: [a], target_label: b, action: dropequal}",
                input: &[("a", "x"), ("b", "x")],
                want: None,
            },
            Case {
                name: "dropequal keeps different values",
                rules: "- {source_labels: [a], target_label: b, action: dropequal}",
                input: &[("a", "x"), ("b", "y")],
                want: Some(&[("a", "x"), ("b", "y")]),
            },
            Case {
                // md5("10.0.0.1:9100") last 8 bytes mod 4 = 1 (Python, as above).
                name: "hashmod",
                rules: "- {source_labels: [__address__], modulus: 4, target_label: __tmp_shard, \
                        action: hashmod}",
                input: &[("__address__", "10.0.0.1:9100")],
                want: Some(&[("__address__", "10.0.0.1:9100"), ("__tmp_shard", "1")]),
            },
            Case {
                name: "labelmap copies matching labels and keeps the sources",
                rules: "- {action: labelmap, regex: '__meta_x_(.+)', replacement: 'm_${1}'}",
                input: &[("__meta_x_app", "db"), ("__meta_x_zone", "z1"), ("a", "1")],
                want: Some(&[
                    ("__meta_x_app", "db"),
                    ("__meta_x_zone", "z1"),
                    ("a", "1"),
                    ("m_app", "db"),
                    ("m_zone", "z1"),
                ]),
            },
            Case {
                name: "labelmap: the later label in iteration order wins a collision",
                rules: "- {action: labelmap, regex: '[ab]_(x)'}",
                input: &[("a_x", "1"), ("b_x", "2")],
                want: Some(&[("a_x", "1"), ("b_x", "2"), ("x", "2")]),
            },
            Case {
                name: "labelmap: labels set by earlier rules come after the base ones",
                rules: "- {target_label: a_x, replacement: '3'}\n\
                        - {action: labelmap, regex: '[ab]_(x)'}",
                input: &[("a_x", "1"), ("b_x", "2")],
                want: Some(&[("a_x", "3"), ("b_x", "2"), ("x", "3")]),
            },
            Case {
                name: "labeldrop",
                rules: "- {action: labeldrop, regex: 'replica|tmp_.*'}",
                input: &[("a", "1"), ("replica", "r"), ("tmp_x", "t")],
                want: Some(&[("a", "1")]),
            },
            Case {
                name: "labelkeep",
                rules: "- {action: labelkeep, regex: '__name__|job'}",
                input: &[("__name__", "up"), ("instance", "i"), ("job", "j")],
                want: Some(&[("__name__", "up"), ("job", "j")]),
            },
            Case {
                name: "labelkeep that keeps nothing drops the object",
                rules: "- {action: labelkeep, regex: 'nothing'}",
                input: &[("a", "1")],
                want: None,
            },
            Case {
                name: "lowercase",
                rules: "- {source_labels: [a], target_label: a_low, action: lowercase}",
                input: &[("a", "FooÄΣ")],
                want: Some(&[("a", "FooÄΣ"), ("a_low", "fooäσ")]),
            },
            Case {
                name: "uppercase keeps code points without a simple mapping",
                rules: "- {source_labels: [a, b], separator: '|', target_label: u, \
                        action: uppercase}",
                input: &[("a", "straße"), ("b", "x")],
                want: Some(&[("a", "straße"), ("b", "x"), ("u", "STRAßE|X")]),
            },
            Case {
                name: "lowercase of an empty value deletes the target",
                rules: "- {source_labels: [missing], target_label: a, action: lowercase}",
                input: &[("a", "1"), ("b", "2")],
                want: Some(&[("b", "2")]),
            },
            Case {
                name: "each rule sees the previous one's output",
                rules: "- {source_labels: [__address__], target_label: __tmp_x}\n\
                        - {source_labels: [__tmp_x], target_label: addr_copy}",
                input: &[("__address__", "t2:2")],
                want: Some(&[
                    ("__address__", "t2:2"),
                    ("__tmp_x", "t2:2"),
                    ("addr_copy", "t2:2"),
                ]),
            },
            Case {
                name: "Go's \\d is ASCII only",
                rules: "- {source_labels: [a], regex: '\\d+', action: keep}",
                input: &[("a", "٣")],
                want: None,
            },
        ];
        for case in cases {
            let configs: Vec<RelabelConfig> =
                crate::yaml::from_str(case.rules).unwrap_or_else(|e| panic!("{}: {e}", case.name));
            let got = process(&labels(case.input), &configs);
            let want = case.want.map(labels);
            assert_eq!(got, want, "{}", case.name);
        }
    }

    #[test]
    fn the_spec_worked_example() {
        let configs: Vec<RelabelConfig> = crate::yaml::from_str(
            r#"
- action: labelmap
  regex: __meta_x_(.+)
  replacement: m_${1}
- source_labels: [a]
  target_label: a_low
  action: lowercase
- source_labels: [a, b]
  separator: '|'
  target_label: ab
- source_labels: [__address__]
  target_label: __tmp_x
- source_labels: [__tmp_x]
  target_label: addr_copy
"#,
        )
        .unwrap();
        let input = labels(&[
            ("__address__", "t2:2"),
            ("a", "Foo"),
            ("b", "Bar"),
            ("__meta_x_app", "db"),
            ("job", "custom"),
            ("instance", "custom-inst"),
        ]);
        let out = process(&input, &configs).unwrap();
        let public: Vec<(&str, &str)> = out
            .iter()
            .filter(|l| !l.name.starts_with("__"))
            .map(|l| (l.name, l.value))
            .collect();
        assert_eq!(
            public,
            [
                ("a", "Foo"),
                ("a_low", "foo"),
                ("ab", "Foo|Bar"),
                ("addr_copy", "t2:2"),
                ("b", "Bar"),
                ("instance", "custom-inst"),
                ("job", "custom"),
                ("m_app", "db"),
            ]
        );
    }

    #[test]
    fn defaults_and_case_insensitive_action() {
        let r = rule("{target_label: x}");
        assert_eq!(r.action, Action::Replace);
        assert_eq!(r.separator, ";");
        assert_eq!(r.regex.as_str(), "(.*)");
        assert_eq!(r.replacement, "$1");
        assert_eq!(rule("{action: DROP}").action, Action::Drop);
        // An explicitly null regex is the empty pattern, as in Go.
        let r = rule("{target_label: x, regex: }");
        assert!(r.regex.is_match("") && !r.regex.is_match("a"));
    }

    #[test]
    fn validation_errors_are_prometheus_messages() {
        for (yaml, want) in [
            ("{action: foo}", r#"unknown relabel action "foo""#),
            ("{action: ''}", r#"unknown relabel action """#),
            (
                "{action: hashmod, target_label: x}",
                "requires non-zero modulus",
            ),
            (
                "{action: replace}",
                "replace action requires 'target_label' value",
            ),
            (
                "{action: lowercase}",
                "lowercase action requires 'target_label' value",
            ),
            (
                "{action: keepequal}",
                "keepequal action requires 'target_label' value",
            ),
            (
                "{action: hashmod, modulus: 2}",
                "hashmod action requires 'target_label' value",
            ),
            (
                "{action: uppercase, target_label: a, replacement: x}",
                "'replacement' can not be set for uppercase action",
            ),
            (
                "{action: dropequal, target_label: a, regex: x}",
                "dropequal action requires only 'source_labels' and `target_label`",
            ),
            (
                "{action: labeldrop, source_labels: []}",
                "labeldrop action requires only 'regex', and no other fields",
            ),
            (
                "{action: labelkeep, target_label: a}",
                "labelkeep action requires only 'regex', and no other fields",
            ),
            (
                "{action: labeldrop, separator: ','}",
                "labeldrop action requires only 'regex', and no other fields",
            ),
            (
                "{action: labelmap, replacement: ''}",
                r#""" is invalid 'replacement'"#,
            ),
            (
                "{source_labels: [''], target_label: x}",
                r#""" is not a valid label name"#,
            ),
            (
                "{regex: '(abc', target_label: x}",
                "invalid regular expression \"(abc\"",
            ),
            ("{target_label: x, foo: 1}", "unknown field `foo`"),
        ] {
            let e = rule_err(yaml);
            assert!(e.contains(want), "{yaml}: got {e:?}, want {want:?}");
        }
        // Prometheus 3 accepts UTF-8 label names and references in names.
        rule("{target_label: 'a-b.c'}");
        rule("{action: labelmap, replacement: 'a-$1'}");
        rule("{action: labeldrop, separator: ';', replacement: '$1'}");
    }

    fn arbitrary_labels() -> impl proptest::strategy::Strategy<Value = Labels> {
        proptest::collection::btree_map("[a-c_]{1,3}", "[a-z0-9]{1,3}", 1..6)
            .prop_map(|m| Labels::new(m.iter()))
    }

    use proptest::prelude::*;

    proptest! {
        /// `labeldrop` and `labelkeep` with the same regex split a label set
        /// in two; `hashmod` always lands below its modulus.
        #[test]
        fn label_actions_partition_and_hashmod_stays_in_range(
            input in arbitrary_labels(),
            pattern in "[abc_.*|]{0,4}",
            modulus in 1u64..1000,
        ) {
            let Ok(regex) = RelabelRegex::new(&pattern) else { return Ok(()) };
            let with = |action: Action| RelabelConfig {
                regex: regex.clone(),
                action,
                ..RelabelConfig::default()
            };
            let dropped = process(&input, &[with(Action::LabelDrop)]);
            let kept = process(&input, &[with(Action::LabelKeep)]);
            let mut together: Vec<(String, String)> = Vec::new();
            for part in [&dropped, &kept].into_iter().flatten() {
                together.extend(part.iter().map(|l| (l.name.to_string(), l.value.to_string())));
            }
            prop_assert_eq!(Labels::new(together), input.clone());

            let hashed = process(&input, &[RelabelConfig {
                source_labels: vec!["a".into(), "b".into()],
                target_label: "h".into(),
                modulus,
                action: Action::HashMod,
                ..RelabelConfig::default()
            }]).unwrap();
            let h: u64 = hashed.get("h").unwrap().parse().unwrap();
            prop_assert!(h < modulus);
            prop_assert!(hashed.iter().all(|l| !l.value.is_empty()));
        }
    }

    #[test]
    fn no_rules_passes_labels_through() {
        let l = labels(&[("a", "1")]);
        assert_eq!(process(&l, &[]), Some(l));
        assert_eq!(process(&Labels::empty(), &[]), None);
    }
}
