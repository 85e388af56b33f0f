//! Label sets: sorted, immutable, cheap to clone, hash and compare.
//!
//! A [`Labels`] packs all names and values into one shared byte buffer
//! (`len name len value ...`, lengths as LEB128), like Prometheus's
//! `stringlabels`. Cloning is a reference-count increment; a series in the
//! head costs one allocation for its whole label set.
//!
//! Ordering is Prometheus's `labels.Compare`: label by label, name then value,
//! and a set that is a prefix of another sorts first.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::METRIC_NAME;

/// One owned name/value pair, used to build label sets.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    pub name: String,
    pub value: String,
}

impl Label {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A borrowed name/value pair yielded by [`Labels::iter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LabelRef<'a> {
    pub name: &'a str,
    pub value: &'a str,
}

/// An immutable label set, sorted by name, names unique.
#[derive(Clone)]
pub struct Labels {
    buf: Arc<[u8]>,
}

fn put_uvarint(out: &mut Vec<u8>, mut v: usize) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a LEB128 length written by [`put_uvarint`]; the buffer is trusted.
fn get_uvarint(buf: &[u8], pos: &mut usize) -> usize {
    let mut v = 0usize;
    let mut shift = 0;
    loop {
        let b = buf[*pos];
        *pos += 1;
        v |= ((b & 0x7f) as usize) << shift;
        if b < 0x80 {
            return v;
        }
        shift += 7;
    }
}

fn get_str<'a>(buf: &'a [u8], pos: &mut usize) -> &'a str {
    let len = get_uvarint(buf, pos);
    let bytes = &buf[*pos..*pos + len];
    *pos += len;
    debug_assert!(std::str::from_utf8(bytes).is_ok());
    // SAFETY: only `Labels::from_sorted` writes the buffer, it writes whole
    // `&str`s, and `pos` only ever lands on the boundaries it wrote (this
    // function is the only reader). Checking again on every read cost a
    // tenth of a PromQL query's time.
    unsafe { std::str::from_utf8_unchecked(bytes) }
}

impl Labels {
    /// The empty label set.
    pub fn empty() -> Self {
        Self {
            buf: Arc::from(Vec::new()),
        }
    }

    /// Builds a set from pairs in any order. When a name repeats, the last
    /// value wins; pairs with an empty value are dropped (empty means absent).
    pub fn new<N: AsRef<str>, V: AsRef<str>>(pairs: impl IntoIterator<Item = (N, V)>) -> Self {
        let mut b = LabelsBuilder::new();
        for (n, v) in pairs {
            b.set(n.as_ref(), v.as_ref());
        }
        b.build()
    }

    /// Builds a set from pairs that are already sorted by name with unique
    /// names and non-empty values. Callers that cannot guarantee that use
    /// [`Labels::new`]; this is checked in debug builds.
    pub fn from_sorted<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut buf = Vec::with_capacity(64);
        let mut prev: Option<&str> = None;
        for (n, v) in pairs {
            debug_assert!(
                prev.is_none_or(|p| p < n),
                "labels not sorted or not unique"
            );
            prev = Some(n);
            put_uvarint(&mut buf, n.len());
            buf.extend_from_slice(n.as_bytes());
            put_uvarint(&mut buf, v.len());
            buf.extend_from_slice(v.as_bytes());
        }
        Self {
            buf: Arc::from(buf),
        }
    }

    pub fn iter(&self) -> LabelsIter<'_> {
        LabelsIter {
            buf: &self.buf,
            pos: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// The value of label `name`, if the set has it.
    pub fn get(&self, name: &str) -> Option<&str> {
        for l in self.iter() {
            match l.name.cmp(name) {
                Ordering::Less => continue,
                Ordering::Equal => return Some(l.value),
                Ordering::Greater => return None,
            }
        }
        None
    }

    /// The value of `__name__`, if any.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Bytes used by the packed representation (for memory accounting).
    pub fn byte_size(&self) -> usize {
        self.buf.len()
    }

    pub fn to_vec(&self) -> Vec<Label> {
        self.iter().map(|l| Label::new(l.name, l.value)).collect()
    }

    /// A builder that starts from this set.
    pub fn builder(&self) -> LabelsBuilder {
        let mut b = LabelsBuilder::new();
        for l in self.iter() {
            b.set(l.name, l.value);
        }
        b
    }

    /// This set without the given label names.
    pub fn without(&self, names: &[&str]) -> Labels {
        Labels::from_sorted(
            self.iter()
                .filter(|l| !names.contains(&l.name))
                .map(|l| (l.name, l.value)),
        )
    }

    /// The identity of this set's buffer: equal for clones of one set,
    /// different for sets built separately (even when equal). Valid while
    /// the set (or a clone) lives; for caches that hold a clone.
    pub fn ptr_id(&self) -> usize {
        Arc::as_ptr(&self.buf) as *const u8 as usize
    }

    /// A stable 64-bit hash of the set (XXH3 over the packed buffer), the
    /// same on every platform and in every process: usable for sharding.
    pub fn stable_hash(&self) -> u64 {
        xxhash_rust::xxh3::xxh3_64(&self.buf)
    }
}

impl Default for Labels {
    fn default() -> Self {
        Self::empty()
    }
}

/// Iterator over a label set's pairs in name order.
pub struct LabelsIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for LabelsIter<'a> {
    type Item = LabelRef<'a>;

    fn next(&mut self) -> Option<LabelRef<'a>> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let name = get_str(self.buf, &mut self.pos);
        let value = get_str(self.buf, &mut self.pos);
        Some(LabelRef { name, value })
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = LabelRef<'a>;
    type IntoIter = LabelsIter<'a>;

    fn into_iter(self) -> LabelsIter<'a> {
        self.iter()
    }
}

impl PartialEq for Labels {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.buf, &other.buf) || self.buf == other.buf
    }
}

impl Eq for Labels {}

impl Hash for Labels {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.buf.hash(state);
    }
}

impl Ord for Labels {
    fn cmp(&self, other: &Self) -> Ordering {
        self.iter().cmp(other.iter())
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Prometheus's `labels.String()`: `{a="1", b="2"}` with Go-quoted values.
impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, l) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}={:?}", l.name, l.value)?;
        }
        f.write_str("}")
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Labels {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        for l in self.iter() {
            m.serialize_entry(l.name, l.value)?;
        }
        m.end()
    }
}

/// Builds a label set by setting and deleting names; sorts on `build`.
#[derive(Debug, Default, Clone)]
pub struct LabelsBuilder {
    pairs: Vec<(String, String)>,
}

impl LabelsBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` to `value`; an empty value deletes the label.
    pub fn set(&mut self, name: &str, value: &str) -> &mut Self {
        if value.is_empty() {
            return self.del(name);
        }
        match self.pairs.iter_mut().find(|(n, _)| n == name) {
            Some(p) => p.1 = value.to_string(),
            None => self.pairs.push((name.to_string(), value.to_string())),
        }
        self
    }

    pub fn del(&mut self, name: &str) -> &mut Self {
        self.pairs.retain(|(n, _)| n != name);
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn build(&self) -> Labels {
        let mut sorted: Vec<&(String, String)> = self.pairs.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        Labels::from_sorted(sorted.into_iter().map(|(n, v)| (n.as_str(), v.as_str())))
    }
}

/// Prometheus 3's label-name rule (UTF-8 validation scheme): any non-empty
/// valid UTF-8 string. `&str` is always valid UTF-8, so only emptiness is
/// checked here; byte input is checked by its decoder.
pub fn is_valid_label_name(name: &str) -> bool {
    !name.is_empty()
}

/// The legacy (Prometheus 2) label-name rule `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_legacy_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The legacy metric-name rule `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_legacy_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn new_sorts_dedups_and_drops_empty_values() {
        let l = Labels::new([("b", "2"), ("a", "1"), ("b", "3"), ("c", "")]);
        assert_eq!(l.to_string(), r#"{a="1", b="3"}"#);
        assert_eq!(l.get("b"), Some("3"));
        assert_eq!(l.get("c"), None);
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn ordering_is_prometheus_compare() {
        let a = Labels::new([("a", "1")]);
        let ab = Labels::new([("a", "1"), ("b", "1")]);
        let b = Labels::new([("b", "0")]);
        assert!(a < ab);
        assert!(ab < b);
        assert!(Labels::empty() < a);
    }

    #[test]
    fn without_removes_names() {
        let l = Labels::new([("a", "1"), ("replica", "x"), ("z", "2")]);
        assert_eq!(
            l.without(&["replica"]),
            Labels::new([("a", "1"), ("z", "2")])
        );
    }

    #[test]
    fn legacy_name_rules() {
        assert!(is_legacy_label_name("_ok1"));
        assert!(!is_legacy_label_name("1bad"));
        assert!(!is_legacy_label_name("a:b"));
        assert!(is_legacy_metric_name("a:b_c"));
        assert!(!is_legacy_metric_name(""));
    }

    proptest! {
        #[test]
        fn round_trips_and_orders_like_vectors(
            mut pairs in proptest::collection::btree_map("[a-z]{1,4}", "\\PC{1,6}", 0..6),
            other in proptest::collection::btree_map("[a-z]{1,4}", "\\PC{1,6}", 0..6),
        ) {
            let l = Labels::new(pairs.iter());
            let back: Vec<(String, String)> = l.iter().map(|x| (x.name.to_string(), x.value.to_string())).collect();
            let want: Vec<(String, String)> = pairs.clone().into_iter().collect();
            prop_assert_eq!(&back, &want);
            let o = Labels::new(other.iter());
            let ov: Vec<(String, String)> = other.into_iter().collect();
            prop_assert_eq!(l.cmp(&o), want.cmp(&ov));
            pairs.clear();
        }
    }
}
