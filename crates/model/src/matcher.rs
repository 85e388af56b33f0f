//! Label matchers (`=`, `!=`, `=~`, `!~`) with Prometheus's semantics.
//!
//! Regexes are fully anchored and `.` matches a newline, as Prometheus's
//! `^(?s:<re>)$`. Patterns are Go RE2 syntax; Rust's `regex` crate accepts
//! the same syntax, but `\d`, `\w`, `\s`, `\b` (and their negations) are
//! Unicode-aware there and ASCII-only in Go, so they are rewritten to their
//! ASCII classes before compiling.

use std::fmt;

use regex::Regex;

use crate::{Error, Result};

/// The four matching operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    Equal,
    NotEqual,
    RegexMatch,
    RegexNoMatch,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::RegexMatch => "=~",
            MatchOp::RegexNoMatch => "!~",
        }
    }
}

/// A matcher on one label. A missing label matches as the empty string.
#[derive(Clone)]
pub struct Matcher {
    pub op: MatchOp,
    pub name: String,
    pub value: String,
    regex: Option<Regex>,
    /// For regexes that are a plain alternation of literals (`a|b|c`), those
    /// literals: lets indexes answer with a few postings lookups.
    set: Option<Vec<String>>,
    /// For regexes that are a literal followed by `.*` (`foo_.*`), the
    /// literal: a prefix test instead of running the regex.
    prefix: Option<String>,
}

impl Matcher {
    pub fn new(op: MatchOp, name: impl Into<String>, value: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let value = value.into();
        let (regex, set, prefix) = match op {
            MatchOp::RegexMatch | MatchOp::RegexNoMatch => {
                let set = literal_alternatives(&value);
                let prefix = literal_prefix(&value);
                // The fast forms are valid regexes by construction.
                let regex = match (&set, &prefix) {
                    (None, None) => Some(compile_anchored(&value)?),
                    _ => None,
                };
                (regex, set, prefix)
            }
            _ => (None, None, None),
        };
        Ok(Self {
            op,
            name,
            value,
            regex,
            set,
            prefix,
        })
    }

    /// `name="value"`, which cannot fail.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            op: MatchOp::Equal,
            name: name.into(),
            value: value.into(),
            regex: None,
            set: None,
            prefix: None,
        }
    }

    pub fn matches(&self, v: &str) -> bool {
        match self.op {
            MatchOp::Equal => v == self.value,
            MatchOp::NotEqual => v != self.value,
            MatchOp::RegexMatch => self.regex_matches(v),
            MatchOp::RegexNoMatch => !self.regex_matches(v),
        }
    }

    fn regex_matches(&self, v: &str) -> bool {
        if let Some(set) = &self.set {
            return set.iter().any(|s| s == v);
        }
        if let Some(prefix) = &self.prefix {
            return v.starts_with(prefix.as_str());
        }
        self.regex
            .as_ref()
            .expect("regex matchers always hold a compiled regex")
            .is_match(v)
    }

    /// Whether a series without this label (value "") matches.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// For `=` or a literal-alternation `=~`: the exact values that match.
    pub fn exact_values(&self) -> Option<Vec<&str>> {
        match self.op {
            MatchOp::Equal => Some(vec![self.value.as_str()]),
            MatchOp::RegexMatch => self
                .set
                .as_ref()
                .map(|s| s.iter().map(String::as_str).collect()),
            _ => None,
        }
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.op == other.op && self.name == other.name && self.value == other.value
    }
}

impl Eq for Matcher {}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op.as_str(), self.value)
    }
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Compiles a Go-syntax pattern as Prometheus does: `^(?s:<re>)$`.
/// Compiled regexes are remembered process-wide (up to
/// [`REGEX_CACHE_ENTRIES`] patterns, then the cache starts over): queries
/// repeat their patterns, and compiling costs more than most small queries.
pub fn compile_anchored(pattern: &str) -> Result<Regex> {
    static CACHE: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, Regex>>> =
        std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(r) = cache.lock().ok().and_then(|c| c.get(pattern).cloned()) {
        return Ok(r);
    }
    let r = compile_anchored_uncached(pattern)?;
    if let Ok(mut c) = cache.lock() {
        if c.len() >= REGEX_CACHE_ENTRIES {
            c.clear();
        }
        c.insert(pattern.to_string(), r.clone());
    }
    Ok(r)
}

/// How many compiled patterns [`compile_anchored`] keeps.
pub const REGEX_CACHE_ENTRIES: usize = 4096;

fn compile_anchored_uncached(pattern: &str) -> Result<Regex> {
    let translated = translate_go_classes(pattern);
    Regex::new(&format!("^(?s:{translated})$")).map_err(|e| Error::InvalidRegex {
        pattern: pattern.to_string(),
        reason: e
            .to_string()
            .lines()
            .last()
            .unwrap_or("invalid")
            .trim()
            .to_string(),
    })
}

/// Rewrites Go's ASCII-only Perl classes into explicit ASCII classes.
fn translate_go_classes(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        if c == '\\' {
            let Some(&n) = chars.peek() else {
                out.push(c);
                break;
            };
            chars.next();
            let (inside, outside) = match n {
                'd' => ("0-9", "[0-9]"),
                'D' => ("[^0-9]", "[^0-9]"),
                'w' => ("0-9A-Za-z_", "[0-9A-Za-z_]"),
                'W' => ("[^0-9A-Za-z_]", "[^0-9A-Za-z_]"),
                's' => ("\\t\\n\\f\\r ", "[\\t\\n\\f\\r ]"),
                'S' => ("[^\\t\\n\\f\\r ]", "[^\\t\\n\\f\\r ]"),
                'b' if !in_class => ("", "(?-u:\\b)"),
                'B' if !in_class => ("", "(?-u:\\B)"),
                _ => {
                    out.push('\\');
                    out.push(n);
                    continue;
                }
            };
            out.push_str(if in_class { inside } else { outside });
            continue;
        }
        if in_class {
            if c == ']' {
                in_class = false;
            } else if c == '[' && chars.peek() == Some(&':') {
                // POSIX class like [:alpha:], copied through.
                out.push(c);
                for p in chars.by_ref() {
                    out.push(p);
                    if p == ']' {
                        break;
                    }
                }
                continue;
            }
        } else if c == '[' {
            in_class = true;
            out.push(c);
            // A leading '^' and a leading ']' are literal parts of the class.
            if chars.peek() == Some(&'^') {
                out.push(chars.next().expect("peeked"));
            }
            if chars.peek() == Some(&']') {
                out.push_str("\\]");
                chars.next();
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// `a|b|c` made only of literal characters: the alternatives.
/// `foo.*` → `foo` (with `.` matching anything, `.*` is any suffix).
fn literal_prefix(pattern: &str) -> Option<String> {
    const META: &[char] = &[
        '\\', '.', '+', '*', '?', '(', ')', '[', ']', '{', '}', '^', '$', '|',
    ];
    let lit = pattern.strip_suffix(".*")?;
    (!lit.contains(META)).then(|| lit.to_string())
}

fn literal_alternatives(pattern: &str) -> Option<Vec<String>> {
    const META: &[char] = &[
        '\\', '.', '+', '*', '?', '(', ')', '[', ']', '{', '}', '^', '$',
    ];
    if pattern.contains(META) {
        return None;
    }
    Some(pattern.split('|').map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(op: MatchOp, v: &str) -> Matcher {
        Matcher::new(op, "x", v).unwrap()
    }

    #[test]
    fn regex_is_fully_anchored() {
        let r = m(MatchOp::RegexMatch, "foo|bar");
        assert!(r.matches("foo"));
        assert!(!r.matches("foobar"));
        assert!(!m(MatchOp::RegexMatch, "o+").matches("foo"));
        assert!(m(MatchOp::RegexNoMatch, "o+").matches("foo"));
    }

    #[test]
    fn prefix_patterns_match_as_their_regexes() {
        let r = m(MatchOp::RegexMatch, "demo_disk_.*");
        assert!(r.prefix.is_some() && r.regex.is_none());
        for v in [
            "demo_disk_",
            "demo_disk_usage",
            "demo_disk_\nx",
            "demo_dis",
            "xdemo_disk_",
            "",
        ] {
            let re = compile_anchored_uncached("demo_disk_.*").unwrap();
            assert_eq!(r.matches(v), re.is_match(v), "{v:?}");
        }
        assert!(m(MatchOp::RegexNoMatch, "a.*").matches("b"));
        assert!(m(MatchOp::RegexMatch, ".*").matches(""));
        // Not literal prefixes: regexes.
        assert!(m(MatchOp::RegexMatch, "a.b.*").prefix.is_none());
        assert!(m(MatchOp::RegexMatch, "a|b.*").prefix.is_none());
        assert!(!m(MatchOp::RegexMatch, "a|b.*").matches("ax"));
    }

    #[test]
    fn dot_matches_newline() {
        assert!(m(MatchOp::RegexMatch, "a.b").matches("a\nb"));
    }

    #[test]
    fn perl_classes_are_ascii_only() {
        assert!(m(MatchOp::RegexMatch, r"\d+").matches("123"));
        assert!(!m(MatchOp::RegexMatch, r"\d").matches("٣"));
        assert!(!m(MatchOp::RegexMatch, r"\w").matches("é"));
        assert!(m(MatchOp::RegexMatch, r"\W").matches("é"));
        assert!(m(MatchOp::RegexMatch, r"[\d_]+").matches("1_2"));
        assert!(m(MatchOp::RegexMatch, r"[^\d]").matches("a"));
        assert!(!m(MatchOp::RegexMatch, r"\s").matches("\u{a0}"));
        assert!(!m(MatchOp::RegexMatch, r"\s").matches("\u{b}"));
        assert!(m(MatchOp::RegexMatch, r"[\]a]+").matches("]a"));
        assert!(m(MatchOp::RegexMatch, r"[[:alpha:]\d]+").matches("a1"));
        assert!(m(MatchOp::RegexMatch, r"a\.b").matches("a.b"));
        assert!(m(MatchOp::RegexMatch, r".*\bb").matches("a b"));
        // Go's \b is ASCII: é is not a word character, so a boundary precedes b.
        assert!(m(MatchOp::RegexMatch, r".*\bb").matches("éb"));
        assert!(!m(MatchOp::RegexMatch, r".*\bb").matches("ab"));
        assert!(!m(MatchOp::RegexMatch, r"a\.b").matches("axb"));
    }

    #[test]
    fn empty_value_semantics() {
        assert!(Matcher::equal("x", "").matches_empty());
        assert!(m(MatchOp::RegexMatch, ".*").matches_empty());
        assert!(!m(MatchOp::RegexMatch, ".+").matches_empty());
        assert!(m(MatchOp::NotEqual, "a").matches_empty());
    }

    #[test]
    fn literal_sets_are_detected() {
        assert_eq!(
            m(MatchOp::RegexMatch, "a|b").exact_values(),
            Some(vec!["a", "b"])
        );
        assert_eq!(m(MatchOp::RegexMatch, "a.*").exact_values(), None);
    }

    #[test]
    fn invalid_regex_is_an_error() {
        let e = Matcher::new(MatchOp::RegexMatch, "x", "(").unwrap_err();
        assert!(matches!(e, Error::InvalidRegex { .. }));
    }
}
