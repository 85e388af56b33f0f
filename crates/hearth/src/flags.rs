//! Flag value parsers shared by subcommands: Prometheus durations and sizes.

/// Parses a Prometheus duration (`2h`, `15d`, `90s`) into milliseconds.
pub fn duration_ms(v: &str) -> Result<i64, String> {
    hearth_api::params::parse_prometheus_duration(v)
        .ok_or_else(|| format!("invalid duration {v:?}"))
}

/// Checks a Prometheus duration and keeps its text (for status reports).
pub fn duration_text(v: &str) -> Result<String, String> {
    duration_ms(v).map(|_| v.to_string())
}

/// Parses a Prometheus byte size (`512MB`, `1GB`, `0`) into bytes: units
/// B, KB, MB, GB, TB, PB, EB, powers of 1024 as in Prometheus.
pub fn bytes(v: &str) -> Result<u64, String> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("invalid size {v:?}"))?;
    let mult: u64 = match unit {
        "" | "B" => 1,
        "KB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        "TB" => 1 << 40,
        "PB" => 1 << 50,
        "EB" => 1 << 60,
        _ => return Err(format!("invalid size unit in {v:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {v:?} overflows"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(bytes("512MB").unwrap(), 512 << 20);
        assert_eq!(bytes("0").unwrap(), 0);
        assert!(bytes("1XB").is_err());
        assert_eq!(duration_ms("2h").unwrap(), 7_200_000);
        assert!(duration_ms("2x").is_err());
    }
}
