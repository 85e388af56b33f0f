//! Byte sizes as Prometheus writes them (`body_size_limit: 10MB`): the
//! base-2 units of `alecthomas/units`, parsed and rendered as it does.

use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

/// Unit prefixes, smallest first; `K` is 1024 in both spellings.
const PREFIXES: [&str; 7] = ["", "K", "M", "G", "T", "P", "E"];

/// A size in bytes. Zero means "no limit" where Prometheus uses it so.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn bytes(self) -> u64 {
        self.0
    }

    pub fn is_zero(&self) -> bool {
        self.0 == 0
    }
}

/// The multiplier of `unit` in one of the two unit families
/// `units.ParseBase2Bytes` tries: `B KiB MiB ...` and `B KB MB ...`.
fn unit_multiplier(unit: &str, binary_suffix: bool) -> Option<f64> {
    if unit == "B" {
        return Some(1.0);
    }
    let suffix = if binary_suffix { "iB" } else { "B" };
    let prefix = unit.strip_suffix(suffix)?;
    let power = PREFIXES.iter().skip(1).position(|p| *p == prefix)? + 1;
    Some(1024f64.powi(power as i32))
}

/// `units.ParseUnit`: `[+-]?(number unit)+`, a number being digits with an
/// optional fraction, or the bare `0`.
fn parse_with_units(s: &str, binary_suffix: bool) -> std::result::Result<f64, String> {
    let invalid = || format!("units: invalid {s}");
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0.0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let number = &rest[..number_len];
        if number.matches('.').count() > 1 || !number.bytes().any(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        // Rust's float syntax accepts `1.` and `.5` as Go's units do.
        let value: f64 = number.parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .bytes()
            .take_while(|b| !(b.is_ascii_digit() || *b == b'.'))
            .count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let mult = unit_multiplier(unit, binary_suffix)
            .ok_or_else(|| format!("units: unknown unit {unit} in {s}"))?;
        total += value * mult;
    }
    Ok(if negative { -total } else { total })
}

impl FromStr for ByteSize {
    type Err = Error;

    /// `units.ParseBase2Bytes`: the `KiB` family first, then the `KB` one;
    /// the unit is mandatory and case-sensitive, fractions and concatenated
    /// parts are allowed (`1.5MB`, `1GB512MB`). Negative sizes, which
    /// Prometheus would accept and ignore, are rejected.
    fn from_str(s: &str) -> Result<Self> {
        let value = parse_with_units(s, true).or_else(|_| parse_with_units(s, false));
        match value {
            Ok(v) if v < 0.0 => Err(Error::Invalid(format!("size {s:?} must not be negative"))),
            Ok(v) if v >= 9.223_372_036_854_776e18 => {
                Err(Error::Invalid("units: overflow parsing unit".into()))
            }
            Ok(v) => Ok(ByteSize(v as u64)),
            Err(e) => Err(Error::Invalid(e)),
        }
    }
}

/// `units.Base2Bytes.String()`: the non-zero parts from the largest unit
/// down, `10MiB`, `1KiB512B`; zero is `0B`.
impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut n = self.0;
        let mut parts = Vec::new();
        for (i, prefix) in PREFIXES.iter().enumerate() {
            if !n.is_multiple_of(1024) || (i == 0 && n == 0) {
                let suffix = if i == 0 { "B" } else { "iB" };
                parts.push(format!("{}{prefix}{suffix}", n % 1024));
            }
            n /= 1024;
            if n == 0 {
                break;
            }
        }
        parts.reverse();
        f.write_str(&parts.concat())
    }
}

impl serde::Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(ByteSize(0)),
            Some(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(s: &str) -> u64 {
        s.parse::<ByteSize>().unwrap().0
    }

    /// Accepted and rejected spellings, checked against promtool 2.42.
    #[test]
    fn parses_like_alecthomas_units() {
        assert_eq!(bytes("0"), 0);
        assert_eq!(bytes("0B"), 0);
        assert_eq!(bytes("1KB"), 1024);
        assert_eq!(bytes("1KiB"), 1024);
        assert_eq!(bytes("10MB"), 10 << 20);
        assert_eq!(bytes("1.5MB"), 3 << 19);
        assert_eq!(bytes("1GB512MB"), (1 << 30) + (512 << 20));
        assert_eq!(bytes(".5KB"), 512);
        assert_eq!(bytes("1.KB"), 1024);
        assert_eq!(bytes("+1KB"), 1024);
        assert_eq!(bytes("1TiB"), 1 << 40);
        assert_eq!(bytes("1EB"), 1 << 60);
        for bad in [
            "100",
            "1kb",
            "1kiB",
            "1kB",
            "1b",
            "1MiB512KB",
            "",
            "KB",
            "1..5KB",
            "8EB",
        ] {
            assert!(bad.parse::<ByteSize>().is_err(), "{bad} should be rejected");
        }
        let e = "1kb".parse::<ByteSize>().unwrap_err().to_string();
        assert_eq!(e, "units: unknown unit kb in 1kb");
        assert!("-1MB".parse::<ByteSize>().is_err());
    }

    proptest::proptest! {
        /// Sizes print in a form that parses back exactly, up to 2^53 bytes:
        /// beyond, the float64 sum Go's parser does too loses the low bits.
        #[test]
        fn rendering_round_trips(n in 0u64..(1 << 53)) {
            proptest::prop_assert_eq!(ByteSize(n).to_string().parse::<ByteSize>().unwrap(), ByteSize(n));
        }
    }

    #[test]
    fn renders_like_base2bytes() {
        for (n, want) in [
            (0, "0B"),
            (1, "1B"),
            (1024, "1KiB"),
            (1536, "1KiB512B"),
            (10 << 20, "10MiB"),
            ((1 << 30) + 1, "1GiB1B"),
        ] {
            assert_eq!(ByteSize(n).to_string(), want);
        }
    }
}
