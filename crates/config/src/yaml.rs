//! Reading YAML: strict parsing with `serde-saphyr`, and the serde helpers
//! that give Go's `yaml.v2` meaning to nulls and omitted fields.
//!
//! `serde-saphyr` was chosen over the alternatives because it is maintained
//! (several releases in 2026), pure Rust (no `unsafe-libyaml` port), reports
//! errors with line and column, rejects duplicate keys by default (as
//! Prometheus's strict `yaml.v2` does) and reads YAML 1.1 booleans (`yes`,
//! `on`) and unquoted numbers into strings the way `yaml.v2` does.
//! `serde_yaml` is deprecated and `serde_yml` unmaintained; `serde_yaml_ng` and
//! `serde_norway` (forks of `serde_yaml`) had no release since 2024.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::{Error, Result};

/// Parses `text` into `T` with unknown fields and duplicate keys rejected
/// (given `deny_unknown_fields` on `T`'s types); `None` for an empty
/// document (nothing, only comments, or `~`). Errors start with the path of
/// the offending field and end with its line and column:
/// `scrape_configs[1].scrape_interval: not a valid duration string: "1.5s"
/// at line 7, column 22`.
pub(crate) fn from_str_opt<T: DeserializeOwned>(text: &str) -> Result<Option<T>> {
    let options = serde_saphyr::options! { with_snippet: false };
    let mut path = String::new();
    let parsed = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde_path_to_error::deserialize::<_, Option<T>>(de).map_err(|e| {
            path = e.path().to_string();
            e.into_inner()
        })
    });
    parsed.map_err(|e| match path.as_str() {
        "" | "." | "?" => Error::Yaml(e.to_string()),
        _ => Error::Yaml(format!("{path}: {e}")),
    })
}

/// [`from_str_opt`] for a document that must not be empty.
#[cfg(test)]
pub(crate) fn from_str<T: DeserializeOwned>(text: &str) -> Result<T> {
    from_str_opt(text)?.ok_or_else(|| Error::Yaml("empty document".into()))
}

/// For `#[serde(deserialize_with)]`: a YAML null gives the type's zero
/// value, as `yaml.v2` does (`labels:` with nothing after it is an empty
/// map, `replacement:` an empty string), while an absent field still gets
/// the field's `#[serde(default)]`.
pub(crate) fn zero_if_null<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

pub(crate) fn is_true(b: &bool) -> bool {
    *b
}

pub(crate) fn is_zero(n: &u64) -> bool {
    *n == 0
}

pub(crate) fn default_true() -> bool {
    true
}
