//! Floats as Prometheus reads and writes them in expositions.
//!
//! Reading follows Go's `strconv.ParseFloat(s, 64)` ([`parse_go_float`]),
//! which Prometheus uses for `le`/`quantile` label values, and Prometheus's
//! stricter sample-value rule on top of it ([`parse_value`]: no hex floats, no
//! `_` digit separators). Writing follows Go's shortest `%g`
//! (`FormatFloat(x, 'g', -1, 64)`, [`write_go_float`]) and the OpenMetrics
//! canonical form Prometheus 3 gives `le` and `quantile` values
//! ([`write_openmetrics_float`]).
//!
//! Decimal conversion itself is Rust's correctly rounded `f64::from_str`;
//! this module only decides which spellings Go accepts, so the two agree on
//! every value.

use std::fmt::Write as _;

/// Why a float did not parse, with Go's wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FloatError {
    /// Not a float in Go's grammar.
    #[error("invalid syntax")]
    Syntax,
    /// A well-formed number too large for an `f64` (Go returns `ErrRange`).
    #[error("value out of range")]
    Range,
    /// `p`, `P` or `_`: hex floats and digit separators, refused by Prometheus.
    #[error("unsupported character in float")]
    UnsupportedCharacter,
}

impl FloatError {
    /// The message, as a static string.
    pub fn as_str(self) -> &'static str {
        match self {
            FloatError::Syntax => "invalid syntax",
            FloatError::Range => "value out of range",
            FloatError::UnsupportedCharacter => "unsupported character in float",
        }
    }
}

/// Reads a sample, exemplar or OpenMetrics timestamp value the way
/// Prometheus's text parsers do: Go's `ParseFloat`, but refusing any input
/// containing `p`, `P` or `_`. NaN is returned as it parses; callers store the
/// normal NaN bits.
pub fn parse_value(s: &[u8]) -> Result<f64, FloatError> {
    // Fast path: plain unsigned integers up to 15 digits are exact in an f64.
    if !s.is_empty() && s.len() <= 15 {
        let mut v: u64 = 0;
        let mut all_digits = true;
        for &b in s {
            let d = b.wrapping_sub(b'0');
            if d > 9 {
                all_digits = false;
                break;
            }
            v = v * 10 + d as u64;
        }
        if all_digits {
            return Ok(v as f64);
        }
    }
    if s.iter().any(|&b| matches!(b, b'p' | b'P' | b'_')) {
        return Err(FloatError::UnsupportedCharacter);
    }
    parse_go_float(s)
}

/// Go's `strconv.ParseFloat(s, 64)`: decimal and hexadecimal (`0x1.8p3`)
/// floats, `_` between digits, `inf`/`infinity` with an optional sign and
/// `nan` without one, all case-insensitive. Overflow is [`FloatError::Range`].
pub fn parse_go_float(s: &[u8]) -> Result<f64, FloatError> {
    if let Some(v) = special(s) {
        return Ok(v);
    }
    let (neg, body) = match s.first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if body.len() > 2 && body[0] == b'0' && body[1] | 0x20 == b'x' {
        return parse_hex(s, neg, &body[2..]);
    }
    parse_decimal(s)
}

/// Go's `special`: infinities and NaN, which must make up the whole input.
fn special(s: &[u8]) -> Option<f64> {
    let (sign, rest, signed) = match s.first()? {
        b'+' => (1.0, &s[1..], true),
        b'-' => (-1.0, &s[1..], true),
        _ => (1.0, s, false),
    };
    if rest.eq_ignore_ascii_case(b"inf") || rest.eq_ignore_ascii_case(b"infinity") {
        return Some(sign * f64::INFINITY);
    }
    if !signed && rest.eq_ignore_ascii_case(b"nan") {
        return Some(f64::NAN);
    }
    None
}

/// `[+-]? digits [. digits] ([eE] [+-]? digits)?` with at least one mantissa
/// digit and Go's underscore rule, converted by Rust's correctly rounded parser.
fn parse_decimal(s: &[u8]) -> Result<f64, FloatError> {
    let mut i = 0;
    if matches!(s.first(), Some(b'+' | b'-')) {
        i = 1;
    }
    let mut saw_digits = false;
    let mut saw_dot = false;
    let mut underscores = false;
    while i < s.len() {
        match s[i] {
            b'0'..=b'9' => saw_digits = true,
            b'_' => underscores = true,
            b'.' if !saw_dot => saw_dot = true,
            _ => break,
        }
        i += 1;
    }
    if !saw_digits {
        return Err(FloatError::Syntax);
    }
    if i < s.len() && s[i] | 0x20 == b'e' {
        i += 1;
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !s.get(i).is_some_and(u8::is_ascii_digit) {
            return Err(FloatError::Syntax);
        }
        while i < s.len() && (s[i].is_ascii_digit() || s[i] == b'_') {
            underscores |= s[i] == b'_';
            i += 1;
        }
    }
    if i != s.len() {
        return Err(FloatError::Syntax);
    }
    let v = if underscores {
        if !underscore_ok(s) {
            return Err(FloatError::Syntax);
        }
        let stripped: String = s
            .iter()
            .filter(|&&b| b != b'_')
            .map(|&b| b as char)
            .collect();
        stripped.parse::<f64>()
    } else {
        // The grammar above admits only ASCII.
        std::str::from_utf8(s)
            .map_err(|_| FloatError::Syntax)?
            .parse::<f64>()
    };
    match v {
        Ok(v) if v.is_infinite() => Err(FloatError::Range),
        Ok(v) => Ok(v),
        Err(_) => Err(FloatError::Syntax),
    }
}

/// Go's `underscoreOK`: underscores only between digits, or between a base
/// prefix and a digit.
fn underscore_ok(s: &[u8]) -> bool {
    // What the previous character was: ^ start, 0 digit or prefix, _ , ! other.
    let mut saw = b'^';
    let s = match s.first() {
        Some(b'+' | b'-') => &s[1..],
        _ => s,
    };
    let mut i = 0;
    let mut hex = false;
    if s.len() >= 2 && s[0] == b'0' && matches!(s[1] | 0x20, b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = s[1] | 0x20 == b'x';
    }
    while i < s.len() {
        let c = s[i];
        i += 1;
        if c.is_ascii_digit() || hex && (b'a'..=b'f').contains(&(c | 0x20)) {
            saw = b'0';
            continue;
        }
        if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
            continue;
        }
        if saw == b'_' {
            return false;
        }
        saw = b'!';
    }
    saw != b'_'
}

/// Go's `readFloat` for base 16 followed by `atofHex`: the mantissa keeps 16
/// hex digits (later non-zero digits set a sticky bit), the `p` exponent is
/// mandatory, and the result is rounded half to even once.
fn parse_hex(s: &[u8], neg: bool, digits: &[u8]) -> Result<f64, FloatError> {
    const MAX_MANT_DIGITS: i64 = 16;
    let mut mantissa: u64 = 0;
    let (mut nd, mut nd_mant, mut dp): (i64, i64, i64) = (0, 0, 0);
    let (mut saw_dot, mut saw_digits, mut trunc, mut underscores) = (false, false, false, false);
    let mut i = 0;
    while i < digits.len() {
        let c = digits[i];
        let value = match c {
            b'_' => {
                underscores = true;
                i += 1;
                continue;
            }
            b'.' if !saw_dot => {
                saw_dot = true;
                dp = nd;
                i += 1;
                continue;
            }
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' | b'A'..=b'F' => (c | 0x20) - b'a' + 10,
            _ => break,
        };
        saw_digits = true;
        i += 1;
        if value == 0 && nd == 0 {
            // Leading zeros.
            dp -= 1;
            continue;
        }
        nd += 1;
        if nd_mant < MAX_MANT_DIGITS {
            mantissa = mantissa * 16 + value as u64;
            nd_mant += 1;
        } else if value != 0 {
            trunc = true;
        }
    }
    if !saw_digits {
        return Err(FloatError::Syntax);
    }
    if !saw_dot {
        dp = nd;
    }
    dp *= 4;
    nd_mant *= 4;
    if i >= digits.len() || digits[i] | 0x20 != b'p' {
        return Err(FloatError::Syntax);
    }
    i += 1;
    let mut esign = 1;
    match digits.get(i) {
        Some(b'+') => i += 1,
        Some(b'-') => {
            i += 1;
            esign = -1;
        }
        _ => {}
    }
    if !digits.get(i).is_some_and(u8::is_ascii_digit) {
        return Err(FloatError::Syntax);
    }
    let mut e: i64 = 0;
    while i < digits.len() && (digits[i].is_ascii_digit() || digits[i] == b'_') {
        if digits[i] == b'_' {
            underscores = true;
        } else if e < 10000 {
            e = e * 10 + (digits[i] - b'0') as i64;
        }
        i += 1;
    }
    if i != digits.len() {
        return Err(FloatError::Syntax);
    }
    dp += e * esign;
    if underscores && !underscore_ok(s) {
        return Err(FloatError::Syntax);
    }
    let exp = if mantissa != 0 { dp - nd_mant } else { 0 };
    atof_hex(mantissa, exp, neg, trunc)
}

/// Go's `atofHex` for float64.
fn atof_hex(mut mantissa: u64, mut exp: i64, neg: bool, trunc: bool) -> Result<f64, FloatError> {
    const MANT_BITS: u32 = 52;
    const EXP_BITS: u32 = 11;
    const BIAS: i64 = -1023;
    let max_exp = (1i64 << EXP_BITS) + BIAS - 2;
    let min_exp = BIAS + 1;
    exp += MANT_BITS as i64;
    while mantissa != 0 && mantissa >> (MANT_BITS + 2) == 0 {
        mantissa <<= 1;
        exp -= 1;
    }
    if trunc {
        mantissa |= 1;
    }
    while mantissa >> (1 + MANT_BITS + 2) != 0 {
        mantissa = (mantissa >> 1) | (mantissa & 1);
        exp += 1;
    }
    while mantissa > 1 && exp < min_exp - 2 {
        mantissa = (mantissa >> 1) | (mantissa & 1);
        exp += 1;
    }
    let mut round = mantissa & 3;
    mantissa >>= 2;
    round |= mantissa & 1;
    exp += 2;
    if round == 3 {
        mantissa += 1;
        if mantissa == 1 << (1 + MANT_BITS) {
            mantissa >>= 1;
            exp += 1;
        }
    }
    if mantissa >> MANT_BITS == 0 {
        exp = BIAS;
    }
    if exp > max_exp {
        return Err(FloatError::Range);
    }
    let mut bits = mantissa & ((1 << MANT_BITS) - 1);
    bits |= (((exp - BIAS) as u64) & ((1 << EXP_BITS) - 1)) << MANT_BITS;
    if neg {
        bits |= 1 << (MANT_BITS + EXP_BITS);
    }
    Ok(f64::from_bits(bits))
}

/// Converts a float to an `i64` the way Go's `int64(f)` does on amd64:
/// truncation toward zero, and `i64::MIN` for NaN and out-of-range values.
pub(crate) fn go_f64_to_i64(f: f64) -> i64 {
    // -2^63 is representable; 2^63 is the first value past i64::MAX.
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    if (-TWO_POW_63..TWO_POW_63).contains(&f) {
        f as i64
    } else {
        i64::MIN
    }
}

/// A fixed buffer for one float's `{:e}` rendering (at most 24 bytes).
struct ExpBuf {
    buf: [u8; 32],
    len: usize,
}

impl std::fmt::Write for ExpBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Appends `f` in Go's `FormatFloat(f, 'g', -1, 64)` form: the shortest
/// digits that read back to `f`, in exponent form (`1.5e+06`, `1e-05`) when
/// the decimal exponent is below -4 or at least 6, else plain (`123456`,
/// `0.0001`). `NaN`, `+Inf`, `-Inf` as Prometheus writes them.
pub fn write_go_float(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("NaN");
        return;
    }
    if f.is_infinite() {
        out.push_str(if f > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    if f == 0.0 {
        out.push_str(if f.is_sign_negative() { "-0" } else { "0" });
        return;
    }
    let mut buf = ExpBuf {
        buf: [0; 32],
        len: 0,
    };
    write!(buf, "{:e}", f.abs()).expect("an f64 in {:e} form fits in 32 bytes");
    // `d[.ddd]e[-]x`: shortest round-trip digits and the leading digit's exponent.
    let rendered = &buf.buf[..buf.len];
    let e_at = rendered
        .iter()
        .position(|&b| b == b'e')
        .expect("{:e} output has an exponent");
    let (mantissa, exponent) = (&rendered[..e_at], &rendered[e_at + 1..]);
    let mut digits = [0u8; 24];
    let mut nd = 0;
    for &b in mantissa.iter().filter(|&&b| b != b'.') {
        digits[nd] = b;
        nd += 1;
    }
    let digits = &digits[..nd];
    let (exp_neg, exp_digits) = match exponent.first() {
        Some(b'-') => (true, &exponent[1..]),
        _ => (false, exponent),
    };
    let exp_abs = exp_digits
        .iter()
        .fold(0i32, |acc, &b| acc * 10 + (b - b'0') as i32);
    let exp = if exp_neg { -exp_abs } else { exp_abs };

    if f < 0.0 {
        out.push('-');
    }
    let push_digits = |out: &mut String, d: &[u8]| out.extend(d.iter().map(|&b| b as char));
    if !(-4..6).contains(&exp) {
        push_digits(out, &digits[..1]);
        if nd > 1 {
            out.push('.');
            push_digits(out, &digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        if exp_abs < 10 {
            out.push('0');
        }
        write!(out, "{exp_abs}").expect("writing to a String cannot fail");
    } else if exp >= 0 {
        let int_len = exp as usize + 1;
        if nd <= int_len {
            push_digits(out, digits);
            out.extend(std::iter::repeat_n('0', int_len - nd));
        } else {
            push_digits(out, &digits[..int_len]);
            out.push('.');
            push_digits(out, &digits[int_len..]);
        }
    } else {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
        push_digits(out, digits);
    }
}

/// [`write_go_float`] into a new string.
pub fn format_go_float(f: f64) -> String {
    let mut s = String::new();
    write_go_float(&mut s, f);
    s
}

/// Appends `f` in the OpenMetrics canonical form Prometheus 3 gives `le` and
/// `quantile` values: Go's shortest `%g` with `.0` appended when it has
/// neither `.` nor an exponent (`1.0`, `0.0` for ±0, `100000.0`, `1e+06`,
/// `0.25`, `1e-05`, `+Inf`, `-Inf`, `NaN`).
pub fn write_openmetrics_float(out: &mut String, f: f64) {
    let start = out.len();
    write_go_float(out, f);
    if f.is_finite() && f == 0.0 {
        // Go's formatOpenMetricsFloat special-cases 0 (so -0 too) as "0.0".
        out.truncate(start);
        out.push_str("0.0");
        return;
    }
    if f.is_finite() && !out[start..].bytes().any(|b| b == b'.' || b == b'e') {
        out.push_str(".0");
    }
}

/// [`write_openmetrics_float`] into a new string.
pub fn format_openmetrics_float(f: f64) -> String {
    let mut s = String::new();
    write_openmetrics_float(&mut s, f);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(s: &str) -> f64 {
        parse_go_float(s.as_bytes()).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn go_accepts_decimal_special_hex_and_underscores() {
        assert_eq!(ok("1"), 1.0);
        assert_eq!(ok("-2.5"), -2.5);
        assert_eq!(ok(".5"), 0.5);
        assert_eq!(ok("5."), 5.0);
        assert_eq!(ok("+1e3"), 1000.0);
        assert_eq!(ok("1E-3"), 0.001);
        assert_eq!(ok("1.458255915e9"), 1.458255915e9);
        assert_eq!(ok("inf"), f64::INFINITY);
        assert_eq!(ok("+Inf"), f64::INFINITY);
        assert_eq!(ok("-INFINITY"), f64::NEG_INFINITY);
        assert!(ok("NaN").is_nan());
        assert!(ok("nan").is_nan());
        assert_eq!(ok("0x1p3"), 8.0);
        assert_eq!(ok("0x1.8p1"), 3.0);
        assert_eq!(ok("-0X.8P0"), -0.5);
        assert_eq!(ok("0x0.01p0"), 1.0 / 256.0);
        assert_eq!(ok("1_000"), 1000.0);
        assert_eq!(ok("1_23.50_0_0e+1_2"), 1.235e14);
        assert_eq!(ok("0x_1p0"), 1.0);
        assert_eq!(ok("1e-400"), 0.0);
        assert_eq!(ok("0x1p-1074"), f64::from_bits(1));
        assert_eq!(ok("0x1.fffffffffffffp1023"), f64::MAX);
        assert_eq!(ok("0x1.00000000000008p0"), 1.0, "ties round to even");
        assert_eq!(ok("0x1.00000000000018p0"), 1.0 + 2.0 * f64::EPSILON);
        assert_eq!(
            ok("0x1.000000000000080000001p0"),
            1.0 + f64::EPSILON,
            "sticky bit"
        );
    }

    #[test]
    fn go_rejects_what_go_rejects() {
        for s in [
            "",
            "+",
            "-",
            ".",
            "e5",
            "1e",
            "1e+",
            "1..2",
            "1.2.3",
            "+nan",
            "-NaN",
            "infin",
            "in",
            "0x",
            "0x1",
            "0x1.8",
            "0xp1",
            "_1",
            "1_",
            "1__0",
            "1_.5",
            "1._5",
            "-_1",
            " 1",
            "1 ",
            "1,5",
            "0x1p",
            "1e5.5",
            "true",
            "Infinityy",
        ] {
            assert_eq!(
                parse_go_float(s.as_bytes()),
                Err(FloatError::Syntax),
                "{s:?}"
            );
        }
        assert_eq!(parse_go_float(b"1e400"), Err(FloatError::Range));
        assert_eq!(parse_go_float(b"-1e400"), Err(FloatError::Range));
        assert_eq!(parse_go_float(b"0x1p1024"), Err(FloatError::Range));
        assert_eq!(
            parse_go_float(b"1e99999999999999999999"),
            Err(FloatError::Range)
        );
    }

    #[test]
    fn prometheus_values_refuse_hex_and_separators() {
        assert_eq!(parse_value(b"1_2"), Err(FloatError::UnsupportedCharacter));
        assert_eq!(
            parse_value(b"0x1p-3"),
            Err(FloatError::UnsupportedCharacter)
        );
        assert_eq!(
            parse_value(b"0x1P-3"),
            Err(FloatError::UnsupportedCharacter)
        );
        assert_eq!(parse_value(b"0x10"), Err(FloatError::Syntax));
        assert_eq!(parse_value(b"123456789012345"), Ok(123456789012345.0));
        assert_eq!(
            parse_value(b"12345678901234567890"),
            Ok(12345678901234567890.0)
        );
        assert_eq!(parse_value(b"-0"), Ok(-0.0));
        assert!(parse_value(b"-0").is_ok_and(|v| v.is_sign_negative()));
    }

    #[test]
    fn go_shortest_g_formatting() {
        for (f, want) in [
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (-1.0, "-1"),
            (2.5, "2.5"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (17560473.0, "1.7560473e+07"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (0.000123, "0.000123"),
            (1e21, "1e+21"),
            (1e100, "1e+100"),
            (-1.5e-300, "-1.5e-300"),
            (100000.0, "100000"),
            (1e6, "1e+06"),
            (0.1, "0.1"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::from_bits(1), "5e-324"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ] {
            assert_eq!(format_go_float(f), want, "{f:?}");
        }
    }

    #[test]
    fn openmetrics_canonical_formatting() {
        for (f, want) in [
            (1.0, "1.0"),
            (0.0, "0.0"),
            (-0.0, "0.0"),
            (-1.0, "-1.0"),
            (10.0, "10.0"),
            (100000.0, "100000.0"),
            (1000000.0, "1e+06"),
            (0.25, "0.25"),
            (0.00001, "1e-05"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(format_openmetrics_float(f), want, "{f:?}");
        }
    }

    #[test]
    fn go_int_conversion_truncates_and_saturates_like_amd64() {
        assert_eq!(go_f64_to_i64(1520879607789.9), 1520879607789);
        assert_eq!(go_f64_to_i64(-1.9), -1);
        assert_eq!(go_f64_to_i64(9.3e18), i64::MIN);
        assert_eq!(go_f64_to_i64(i64::MIN as f64), i64::MIN);
        assert_eq!(go_f64_to_i64(f64::NAN), i64::MIN);
    }

    proptest! {
        #[test]
        fn formatted_floats_parse_back_bit_for_bit(bits in any::<u64>()) {
            let f = f64::from_bits(bits);
            let s = format_go_float(f);
            let back = parse_value(s.as_bytes()).expect("formatted floats parse");
            if f.is_nan() {
                prop_assert!(back.is_nan());
            } else {
                prop_assert_eq!(back.to_bits(), f.to_bits(), "{}", s);
            }
        }

        #[test]
        fn decimal_parsing_agrees_with_rust(s in "[+-]?[0-9]{0,25}(\\.[0-9]{0,25})?([eE][+-]?[0-9]{1,3})?") {
            let want = s.parse::<f64>().ok().filter(|v| v.is_finite());
            prop_assert_eq!(parse_go_float(s.as_bytes()).ok(), want);
        }
    }
}
