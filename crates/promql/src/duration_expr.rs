//! Duration expressions (`x[26m+4m]`, `offset (2 * 1m)`, `[step()]`,
//! `[min_of(step()+1, 1h)]`), which `promql-parser` does not read: before
//! parsing, every range, subquery step and `offset` operand that is not a
//! plain duration literal is evaluated and replaced by a millisecond
//! literal. Plain literals are left alone so that positions do not move.

/// What the query-context functions return, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DurationContext {
    pub step_ms: i64,
    pub range_ms: i64,
}

/// Rewrites the duration expressions of `q`; errors carry the parser-like
/// message for an expression that does not evaluate.
pub(crate) fn rewrite(q: &str, ctx: DurationContext) -> Result<String, String> {
    let b = q.as_bytes();
    let mut out = String::with_capacity(q.len());
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' | b'`' => i = skip_string(b, i),
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'{' => {
                i += 1;
                while i < b.len() && b[i] != b'}' {
                    if matches!(b[i], b'"' | b'\'' | b'`') {
                        i = skip_string(b, i);
                    } else {
                        i += 1;
                    }
                }
                i += 1;
            }
            b'[' => {
                let Some(close) = matching_bracket(b, i) else {
                    return Ok(q.to_string());
                };
                let inner = &q[i + 1..close];
                let parts = split_top_level_colon(inner);
                let mut rewritten = Vec::with_capacity(parts.len());
                let mut changed = false;
                for p in &parts {
                    if p.trim().is_empty() || is_plain_duration(p.trim()) {
                        rewritten.push(p.to_string());
                    } else {
                        let v = eval_full(p, ctx)?;
                        rewritten.push(ms_literal(v)?);
                        changed = true;
                    }
                }
                if changed {
                    out.push_str(&q[copied..=i]);
                    out.push_str(&rewritten.join(":"));
                    copied = close;
                }
                i = close + 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
                {
                    i += 1;
                }
                if &q[start..i] != "offset" {
                    continue;
                }
                let mut j = i;
                while j < b.len() && b[j].is_ascii_whitespace() {
                    j += 1;
                }
                let mut p = Parser { s: q, pos: j, ctx };
                let Ok(v) = p.signed_atom() else {
                    continue;
                };
                let operand = q[j..p.pos].trim();
                let plain = operand.strip_prefix('-').unwrap_or(operand).trim_start();
                if is_plain_duration(plain) {
                    continue;
                }
                out.push_str(&q[copied..j]);
                out.push_str(&ms_literal_signed(v)?);
                copied = p.pos;
                i = p.pos;
            }
            _ => i += 1,
        }
    }
    out.push_str(&q[copied.min(q.len())..]);
    Ok(out)
}

fn skip_string(b: &[u8], mut i: usize) -> usize {
    let q = b[i];
    i += 1;
    while i < b.len() && b[i] != q {
        if b[i] == b'\\' && q != b'`' {
            i += 1;
        }
        i += 1;
    }
    i + 1
}

fn matching_bracket(b: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0;
    for (k, &c) in b.iter().enumerate().skip(open) {
        match c {
            b'[' => depth += 1,
            b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
    }
    None
}

fn split_top_level_colon(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut last = 0;
    for (k, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ':' if depth == 0 => {
                parts.push(&s[last..k]);
                last = k + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[last..]);
    parts
}

/// A duration literal the parser reads itself (`5m`, `1h30m`, `500ms`).
fn is_plain_duration(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || !b[0].is_ascii_digit() {
        return false;
    }
    let mut i = 0;
    let mut any_unit = false;
    while i < b.len() {
        let st = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == st {
            return false;
        }
        let us = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        if !matches!(&s[us..i], "ms" | "s" | "m" | "h" | "d" | "w" | "y") {
            return false;
        }
        any_unit = true;
    }
    any_unit
}

fn ms_literal(seconds: f64) -> Result<String, String> {
    let ms = (seconds * 1000.0).round();
    if !ms.is_finite() || ms <= 0.0 || ms > 9.0e15 {
        return Err(format!("invalid duration: {seconds}s"));
    }
    Ok(format!("{}ms", ms as i64))
}

fn ms_literal_signed(seconds: f64) -> Result<String, String> {
    let ms = (seconds * 1000.0).round();
    if !ms.is_finite() || ms.abs() > 9.0e15 {
        return Err(format!("invalid duration: {seconds}s"));
    }
    let ms = ms as i64;
    if ms == 0 {
        // The parser rejects zero durations but reads a bare 0.
        Ok("0".into())
    } else if ms < 0 {
        Ok(format!("-{}ms", -ms))
    } else {
        Ok(format!("{ms}ms"))
    }
}

fn eval_full(s: &str, ctx: DurationContext) -> Result<f64, String> {
    let mut p = Parser { s, pos: 0, ctx };
    let v = p.expr()?;
    p.ws();
    if p.pos != s.len() {
        return Err(format!(
            "unexpected character in duration expression: {s:?}"
        ));
    }
    Ok(v)
}

/// Recursive descent over duration arithmetic; values in seconds.
struct Parser<'a> {
    s: &'a str,
    pos: usize,
    ctx: DurationContext,
}

impl Parser<'_> {
    fn ws(&mut self) {
        let b = self.s.as_bytes();
        while self.pos < b.len() && b[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.as_bytes().get(self.pos).copied()
    }

    fn expr(&mut self) -> Result<f64, String> {
        let mut v = self.term()?;
        while let Some(c @ (b'+' | b'-')) = self.peek() {
            self.pos += 1;
            let r = self.term()?;
            v = if c == b'+' { v + r } else { v - r };
        }
        Ok(v)
    }

    fn term(&mut self) -> Result<f64, String> {
        let mut v = self.unary()?;
        while let Some(c @ (b'*' | b'/' | b'%')) = self.peek() {
            self.pos += 1;
            let r = self.unary()?;
            v = match c {
                b'*' => v * r,
                b'/' => v / r,
                _ => v % r,
            };
        }
        Ok(v)
    }

    fn unary(&mut self) -> Result<f64, String> {
        match self.peek() {
            Some(b'-') => {
                self.pos += 1;
                Ok(-self.unary()?)
            }
            Some(b'+') => {
                self.pos += 1;
                self.unary()
            }
            _ => self.power(),
        }
    }

    fn power(&mut self) -> Result<f64, String> {
        let base = self.atom()?;
        if self.peek() == Some(b'^') {
            self.pos += 1;
            let e = self.unary()?;
            return Ok(base.powf(e));
        }
        Ok(base)
    }

    /// An `offset` operand: an optional sign and one atom.
    fn signed_atom(&mut self) -> Result<f64, String> {
        match self.peek() {
            Some(b'-') => {
                self.pos += 1;
                Ok(-self.signed_atom()?)
            }
            Some(b'+') => {
                self.pos += 1;
                self.signed_atom()
            }
            _ => self.atom(),
        }
    }

    fn atom(&mut self) -> Result<f64, String> {
        let b = self.s.as_bytes();
        match self.peek() {
            Some(b'(') => {
                self.pos += 1;
                let v = self.expr()?;
                if self.peek() != Some(b')') {
                    return Err("missing ) in duration expression".into());
                }
                self.pos += 1;
                Ok(v)
            }
            Some(c) if c.is_ascii_digit() || c == b'.' => {
                let mut total = 0.0;
                loop {
                    let st = self.pos;
                    while self.pos < b.len()
                        && (b[self.pos].is_ascii_digit() || b[self.pos] == b'.')
                    {
                        self.pos += 1;
                    }
                    let n: f64 = self.s[st..self.pos]
                        .parse()
                        .map_err(|_| format!("bad number {:?}", &self.s[st..self.pos]))?;
                    let us = self.pos;
                    while self.pos < b.len() && b[self.pos].is_ascii_alphabetic() {
                        self.pos += 1;
                    }
                    let unit = match &self.s[us..self.pos] {
                        "" => return Ok(total + n),
                        "ms" => 0.001,
                        "s" => 1.0,
                        "m" => 60.0,
                        "h" => 3600.0,
                        "d" => 86_400.0,
                        "w" => 604_800.0,
                        "y" => 31_536_000.0,
                        u => return Err(format!("bad duration unit {u:?}")),
                    };
                    total += n * unit;
                    if self.pos >= b.len() || !b[self.pos].is_ascii_digit() {
                        return Ok(total);
                    }
                }
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let st = self.pos;
                while self.pos < b.len()
                    && (b[self.pos].is_ascii_alphanumeric() || b[self.pos] == b'_')
                {
                    self.pos += 1;
                }
                let name = &self.s[st..self.pos];
                if self.peek() != Some(b'(') {
                    return Err(format!("unexpected {name:?} in duration expression"));
                }
                self.pos += 1;
                let mut args = Vec::new();
                if self.peek() != Some(b')') {
                    loop {
                        args.push(self.expr()?);
                        match self.peek() {
                            Some(b',') => self.pos += 1,
                            _ => break,
                        }
                    }
                }
                if self.peek() != Some(b')') {
                    return Err("missing ) in duration expression".into());
                }
                self.pos += 1;
                match (name, args.as_slice()) {
                    ("step", []) => Ok(self.ctx.step_ms as f64 / 1000.0),
                    ("range", []) => Ok(self.ctx.range_ms as f64 / 1000.0),
                    ("min_of", [a, rest @ ..]) => Ok(rest.iter().fold(*a, |x, y| x.min(*y))),
                    ("max_of", [a, rest @ ..]) => Ok(rest.iter().fold(*a, |x, y| x.max(*y))),
                    _ => Err(format!("unknown function {name:?} in duration expression")),
                }
            }
            _ => Err("unexpected end of duration expression".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: DurationContext = DurationContext {
        step_ms: 5000,
        range_ms: 10_000,
    };

    #[test]
    fn rewrites_only_expressions() {
        assert_eq!(rewrite("rate(x[5m])", CTX).unwrap(), "rate(x[5m])");
        assert_eq!(rewrite("x[26m+4m]", CTX).unwrap(), "x[1800000ms]");
        assert_eq!(rewrite("x[2m*(10+5)]", CTX).unwrap(), "x[1800000ms]");
        assert_eq!(
            rewrite("x[step()+1:20*500ms]", CTX).unwrap(),
            "x[6000ms:10000ms]"
        );
        assert_eq!(rewrite("x[min_of(step()+1,1h)]", CTX).unwrap(), "x[6000ms]");
        assert_eq!(
            rewrite("x offset (100 + 2)", CTX).unwrap(),
            "x offset 102000ms"
        );
        assert_eq!(
            rewrite("x offset 2 ^ 2", CTX).unwrap(),
            "x offset 2000ms ^ 2"
        );
        assert_eq!(rewrite("x offset -5m", CTX).unwrap(), "x offset -5m");
        assert_eq!(
            rewrite("x offset -step()", CTX).unwrap(),
            "x offset -5000ms"
        );
        assert_eq!(
            rewrite(r#"x{a="[1+1]"}[5m]"#, CTX).unwrap(),
            r#"x{a="[1+1]"}[5m]"#
        );
    }
}
