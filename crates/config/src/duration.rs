//! Prometheus's duration type: `1h30m`, `5m`, `10s`, `100ms`, `1d`, `1w`,
//! `1y` or the bare `0`, parsed and rendered exactly as `model.Duration`.

use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

const MS_PER_SECOND: u64 = 1000;
const MS_PER_MINUTE: u64 = 60 * MS_PER_SECOND;
const MS_PER_HOUR: u64 = 60 * MS_PER_MINUTE;
const MS_PER_DAY: u64 = 24 * MS_PER_HOUR;
const MS_PER_WEEK: u64 = 7 * MS_PER_DAY;
const MS_PER_YEAR: u64 = 365 * MS_PER_DAY;

/// Go's `time.Duration` holds nanoseconds in an i64: the largest duration
/// Prometheus accepts, in milliseconds.
const MAX_MS: u64 = (i64::MAX as u64) / 1_000_000;

/// The units in the order they must appear, with their length in ms.
const UNITS: [(&str, u64); 7] = [
    ("y", MS_PER_YEAR),
    ("w", MS_PER_WEEK),
    ("d", MS_PER_DAY),
    ("h", MS_PER_HOUR),
    ("m", MS_PER_MINUTE),
    ("s", MS_PER_SECOND),
    ("ms", 1),
];

/// A non-negative duration with millisecond resolution. Zero is the value of
/// an unset duration field, as in Prometheus (a job's `scrape_interval: 0s`
/// inherits the global one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration {
    millis: u64,
}

impl Duration {
    pub const ZERO: Duration = Duration { millis: 0 };

    pub const fn from_millis(millis: u64) -> Self {
        Self { millis }
    }

    pub const fn from_secs(secs: u64) -> Self {
        Self {
            millis: secs * MS_PER_SECOND,
        }
    }

    pub const fn from_mins(mins: u64) -> Self {
        Self {
            millis: mins * MS_PER_MINUTE,
        }
    }

    pub const fn as_millis(self) -> u64 {
        self.millis
    }

    pub const fn is_zero(&self) -> bool {
        self.millis == 0
    }

    pub fn as_std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.millis)
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.as_std()
    }
}

impl FromStr for Duration {
    type Err = Error;

    /// `model.ParseDuration`: units in the order y w d h m s ms, each at most
    /// once, non-negative integers only; the bare string `0` is zero.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "0" => return Ok(Duration::ZERO),
            "" => return Err(Error::Invalid("empty duration string".into())),
            _ => {}
        }
        let invalid = || Error::Invalid(format!("not a valid duration string: {s:?}"));
        let mut rest = s;
        let mut next_unit = 0;
        let mut total: u64 = 0;
        let mut overflow = false;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(invalid());
            }
            let (number, tail) = rest.split_at(digits);
            // "ms" before "m": the longer unit name is tried first.
            let letters = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit = &tail[..letters];
            let position = UNITS[next_unit..]
                .iter()
                .position(|(name, _)| *name == unit)
                .ok_or_else(invalid)?;
            let (_, mult) = UNITS[next_unit + position];
            next_unit += position + 1;
            // Go compares the count against the largest allowed before it
            // multiplies; a count too long for an int is out of range too.
            match number.parse::<u64>() {
                Ok(n) if n <= MAX_MS / mult => {
                    total = total.saturating_add(n * mult);
                    overflow |= total > MAX_MS;
                }
                _ => overflow = true,
            }
            rest = &tail[letters..];
        }
        if overflow {
            return Err(Error::Invalid("duration out of range".into()));
        }
        Ok(Duration { millis: total })
    }
}

/// `model.Duration.String()`: `0s` for zero; years and weeks only when the
/// duration is an exact multiple of them, then d h m s ms greedily.
impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.millis;
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, mult) in UNITS {
            let exact_only = unit == "y" || unit == "w";
            if exact_only && !ms.is_multiple_of(mult) {
                continue;
            }
            let v = ms / mult;
            if v > 0 {
                write!(f, "{v}{unit}")?;
                ms -= v * mult;
            }
        }
        Ok(())
    }
}

impl serde::Serialize for Duration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A YAML null is the zero duration, as in Go; anything else must parse.
impl<'de> serde::Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(Duration::ZERO),
            Some(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> u64 {
        s.parse::<Duration>().unwrap().as_millis()
    }

    #[test]
    fn parses_every_unit() {
        assert_eq!(ms("0"), 0);
        assert_eq!(ms("0s"), 0);
        assert_eq!(ms("100ms"), 100);
        assert_eq!(ms("10s"), 10_000);
        assert_eq!(ms("5m"), 300_000);
        assert_eq!(ms("1h30m"), 5_400_000);
        assert_eq!(ms("1d"), 86_400_000);
        assert_eq!(ms("1w"), 7 * 86_400_000);
        assert_eq!(ms("1y"), 365 * 86_400_000);
        assert_eq!(
            ms("1y2w3d4h5m6s7ms"),
            ms("1y") + ms("2w") + ms("3d") + 14_706_007
        );
        assert_eq!(ms("90m"), 5_400_000);
        assert_eq!(ms("007s"), 7_000);
    }

    #[test]
    fn rejects_what_prometheus_rejects() {
        for bad in [
            "", "1", "15", "1.5s", "-1s", "1h 30m", "1m1h", "1s1s", "1S", "1ms1s", "s", "1x",
            "1sm", " 1s", "1s ", "+1s", "0x",
        ] {
            let e = bad.parse::<Duration>().unwrap_err().to_string();
            if bad.is_empty() {
                assert_eq!(e, "empty duration string");
            } else {
                assert_eq!(e, format!("not a valid duration string: {bad:?}"), "{bad}");
            }
        }
    }

    #[test]
    fn rejects_durations_beyond_go_range() {
        // 292 years is the largest whole number of years an i64 of ns holds.
        assert!("292y".parse::<Duration>().is_ok());
        let e = "293y".parse::<Duration>().unwrap_err().to_string();
        assert_eq!(e, "duration out of range");
        assert!("99999999999999999999999s".parse::<Duration>().is_err());
        assert!("292y52w".parse::<Duration>().is_err());
    }

    proptest::proptest! {
        /// Whatever Prometheus prints parses back to the same duration.
        #[test]
        fn rendering_round_trips(millis in 0..=MAX_MS) {
            let d = Duration::from_millis(millis);
            proptest::prop_assert_eq!(d.to_string().parse::<Duration>().unwrap(), d);
        }
    }

    #[test]
    fn renders_as_prometheus() {
        for (input, want) in [
            ("0", "0s"),
            ("90s", "1m30s"),
            ("14d", "2w"),
            ("10d", "10d"),
            ("60m", "1h"),
            ("1500ms", "1s500ms"),
            ("365d", "1y"),
            ("366d", "366d"),
            ("1h30m", "1h30m"),
            ("25h", "1d1h"),
        ] {
            assert_eq!(
                input.parse::<Duration>().unwrap().to_string(),
                want,
                "{input}"
            );
        }
    }
}
