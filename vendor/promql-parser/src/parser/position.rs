// Hearth patch: this module is Hearth's (see HEARTH_PATCHES.md, patch 2).

//! Parse errors with the position Prometheus reports them at.
//!
//! Prometheus prints a parse error as `LINE:COL: parse error: MSG`, where
//! LINE counts from 1 and COL is the byte offset of the offending token in
//! its line, plus one. This module holds the error type carrying that byte
//! offset; the [`Node`] the grammar builds (an [`Expr`] with where it starts
//! and the first error Prometheus's type checks would find in it, reported
//! only when the whole query parsed, as in Prometheus); the parser's context
//! (errors in the order they were found, the lexemes); and Prometheus's
//! wording of a syntax error: `unexpected <token>[ in <context>[, expected
//! <what>]]`.

use std::cell::RefCell;

use lrpar::Lexeme;

use crate::parser::ast::{check_node, check_unary_plus, hollow};
use crate::parser::lex::LexemeType;
use crate::parser::token::*;
use crate::parser::Expr;

/// A parse error at byte offset `pos` of the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PosError {
    pub(crate) pos: usize,
    pub(crate) msg: String,
}

impl PosError {
    pub(crate) fn new(pos: usize, msg: impl Into<String>) -> Self {
        Self {
            pos,
            msg: msg.into(),
        }
    }

    /// Prometheus's rendering: `LINE:COL: parse error: MSG`.
    pub(crate) fn render(&self, input: &str) -> String {
        format!("{}: parse error: {}", position(input, self.pos), self.msg)
    }
}

/// Errors of helpers that know no position; the grammar gives every error
/// it can a position, this is for what cannot fail in practice.
impl From<String> for PosError {
    fn from(msg: String) -> Self {
        Self::new(0, msg)
    }
}

/// `LINE:COL` of byte offset `pos` as Prometheus counts them (lines from 1,
/// columns in bytes from 1); `unknown position` for an empty query.
pub(crate) fn position(input: &str, pos: usize) -> String {
    if input.is_empty() {
        return "unknown position".into();
    }
    if pos > input.len() {
        return "invalid position".into();
    }
    let before = &input.as_bytes()[..pos];
    let line = 1 + before.iter().filter(|b| **b == b'\n').count();
    let col = match before.iter().rposition(|b| *b == b'\n') {
        Some(nl) => pos - nl,
        None => pos + 1,
    };
    format!("{line}:{col}")
}

/// An operand as its parent's check sees it: where it starts and the first
/// error of its own subtree, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Kid {
    pub(crate) start: usize,
    pub(crate) check: Option<PosError>,
}

impl Kid {
    pub(crate) fn ok(start: usize) -> Self {
        Self { start, check: None }
    }

    pub(crate) fn result(&self) -> Result<(), PosError> {
        match &self.check {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

/// An expression with where it starts and the first error Prometheus's
/// type checks would find in it, in their order (reported only when the
/// whole query parsed, as in Prometheus).
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) expr: Expr,
    pub(crate) start: usize,
    pub(crate) check: Option<PosError>,
}

impl Node {
    /// A node checked from its operands' checks (`kids`, see
    /// [`check_node`]); `op` is a binary operator's position or the `[` of
    /// a range or subquery.
    pub(crate) fn new(mut expr: Expr, start: usize, op: usize, kids: Vec<Kid>) -> Self {
        let check = check_node(&mut expr, start, op, &kids);
        if check.is_some() {
            hollow(&mut expr);
        }
        Self { expr, start, check }
    }

    pub(crate) fn leaf(expr: Expr, start: usize) -> Self {
        Self::new(expr, start, start, Vec::new())
    }

    /// A unary `+`, which the parser drops: the operand with the check of
    /// the `+` starting at `start`.
    pub(crate) fn plus(operand: Node, start: usize) -> Self {
        let (mut expr, kid) = operand.split();
        let check = check_unary_plus(&expr, start, &kid);
        if check.is_some() {
            hollow(&mut expr);
        }
        Self { expr, start, check }
    }

    /// The same node with its expression changed by a modifier (`offset`,
    /// `@`) that changes neither where it starts nor its checks.
    pub(crate) fn try_map(
        self,
        f: impl FnOnce(Expr) -> Result<Expr, PosError>,
    ) -> Result<Self, PosError> {
        Ok(Self {
            expr: f(self.expr)?,
            ..self
        })
    }

    pub(crate) fn kid(&self) -> Kid {
        Kid {
            start: self.start,
            check: self.check.clone(),
        }
    }

    pub(crate) fn split(self) -> (Expr, Kid) {
        let kid = self.kid();
        (self.expr, kid)
    }
}

/// What the grammar's actions share: the query, its lexemes and the errors
/// found while parsing, in the order Prometheus would find them.
pub struct ParseCtx {
    input: String,
    lexemes: Vec<LexemeType>,
    errors: RefCell<Vec<PosError>>,
}

impl ParseCtx {
    pub(crate) fn new(input: &str, lexemes: Vec<LexemeType>) -> Self {
        Self {
            input: input.to_string(),
            lexemes,
            errors: RefCell::new(Vec::new()),
        }
    }

    /// Records an error found while parsing and returns it.
    pub(crate) fn fail(&self, pos: usize, msg: impl Into<String>) -> PosError {
        let e = PosError::new(pos, msg);
        self.errors.borrow_mut().push(e.clone());
        e
    }

    /// The errors recorded so far, first found first.
    pub(crate) fn take_errors(&self) -> Vec<PosError> {
        std::mem::take(&mut *self.errors.borrow_mut())
    }

    /// The index of the first lexeme starting at or after byte `pos`
    /// (`lexemes.len()` when there is none: the end of input).
    pub(crate) fn lexeme_index(&self, pos: usize) -> usize {
        self.lexemes
            .iter()
            .position(|l| l.span().start() >= pos)
            .unwrap_or(self.lexemes.len())
    }

    /// Records Prometheus's syntax error for the `k`th lexeme from the one
    /// starting at `pos`: `unexpected <token> in <context>, expected …`.
    pub(crate) fn unexpected_from(&self, pos: usize, k: usize) -> PosError {
        let e = self.syntax_error(self.lexeme_index(pos).saturating_add(k));
        self.errors.borrow_mut().push(e.clone());
        e
    }

    /// The syntax error for the lexeme at `idx` (the end of input when
    /// `idx` is past the last lexeme), without recording it.
    pub(crate) fn syntax_error(&self, idx: usize) -> PosError {
        let (pos, desc) = match self.lexemes.get(idx) {
            Some(l) if l.tok_id() != T_EOF => {
                let span = l.span();
                let text = self.input.get(span.start()..span.end()).unwrap_or("");
                (span.start(), describe_token(l.tok_id(), text))
            }
            _ => (self.input.len(), "end of input".to_string()),
        };
        let context = syntax_context(&self.lexemes, idx);
        PosError::new(pos, format!("unexpected {desc}{context}"))
    }
}

/// How Prometheus names a token in `unexpected …` (its `Item.desc`).
pub(crate) fn describe_token(id: TokenId, text: &str) -> String {
    match id {
        T_EOF => "end of input".into(),
        T_IDENTIFIER => format!("identifier {}", go_quote(text)),
        T_METRIC_IDENTIFIER => format!("metric identifier {}", go_quote(text)),
        T_NUMBER => format!("number {}", item_text(text)),
        T_STRING => format!("string {}", item_text(text)),
        T_DURATION => format!("duration {}", item_text(text)),
        T_BOOL | T_BY | T_GROUP_LEFT | T_GROUP_RIGHT | T_IGNORING | T_OFFSET | T_ON | T_WITHOUT
        | T_SMOOTHED | T_ANCHORED | T_FILL | T_FILL_LEFT | T_FILL_RIGHT => {
            format!("<{text}>")
        }
        id if TokenType::new(id).is_operator() => format!("<op:{text}>"),
        id if TokenType::new(id).is_aggregator() => format!("<aggr:{text}>"),
        _ => item_text(text),
    }
}

/// Prometheus's `Item.String` for literals and punctuation: quoted, cut to
/// ten characters followed by `...` when longer than ten bytes.
fn item_text(text: &str) -> String {
    if text.len() > 10 {
        let cut: String = text.chars().take(10).collect();
        format!("{}...", go_quote(&cut))
    } else {
        go_quote(text)
    }
}

/// Go's `%q` of a string (`strconv.Quote`).
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        push_go_escaped(&mut out, c, '"');
    }
    out.push('"');
    out
}

/// Go's `%q` of a rune (`strconv.QuoteRune`).
pub(crate) fn go_quote_rune(c: char) -> String {
    let mut out = String::from("'");
    push_go_escaped(&mut out, c, '\'');
    out.push('\'');
    out
}

/// Go's `%#U` of a rune: `U+0071 'q'`, without the quoted form when the rune
/// is not printable.
pub(crate) fn go_unicode(c: char) -> String {
    if c.is_control() {
        format!("U+{:04X}", c as u32)
    } else {
        format!("U+{:04X} '{c}'", c as u32)
    }
}

fn push_go_escaped(out: &mut String, c: char, quote: char) {
    match c {
        '\u{7}' => out.push_str("\\a"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{b}' => out.push_str("\\v"),
        '\\' => out.push_str("\\\\"),
        c if c == quote => {
            out.push('\\');
            out.push(c);
        }
        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
            out.push_str(&format!("\\x{:02x}", c as u32));
        }
        // Go escapes what it does not print: controls, and spaces other
        // than ' ' (approximately its unicode.IsPrint).
        c if c.is_control() || (c.is_whitespace() && c != ' ') => {
            if (c as u32) < 0x10000 {
                out.push_str(&format!("\\u{:04x}", c as u32));
            } else {
                out.push_str(&format!("\\U{:08x}", c as u32));
            }
        }
        c => out.push(c),
    }
}

/// What the parser was inside of when it met an unexpected token, and what
/// it expected there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    /// An aggregation operator up to the `)` of its arguments.
    Aggregation {
        body_open: bool,
    },
    /// `by`, `without`, `on`, `ignoring`, `group_left`, `group_right`
    /// waiting for their `(`.
    GroupingKeyword,
    /// Inside the parentheses of grouping labels.
    GroupingList,
    /// A function call's or a plain parenthesis.
    Paren {
        closes_aggregation: bool,
    },
    Offset,
    At(AtStage),
    Braces,
    Brackets {
        colon: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AtStage {
    Start,
    AfterPreprocessor,
    InParen,
}

/// The ` in <context>, expected <what>` part of Prometheus's syntax error
/// for the lexeme at `idx`, from the constructs open before it. Prometheus
/// takes it from the error rule of the innermost construct on its parser's
/// stack that has one; the constructs are followed here over the lexemes
/// the parser accepted.
fn syntax_context(lexemes: &[LexemeType], idx: usize) -> String {
    let id = |j: usize| lexemes.get(j).map(|l| l.tok_id());
    let mut stack: Vec<Frame> = Vec::new();
    for (j, lexeme) in lexemes.iter().enumerate().take(idx) {
        let t = lexeme.tok_id();
        // `group_left` and `group_right` may go without labels.
        if stack.last() == Some(&Frame::GroupingKeyword) && t != T_LEFT_PAREN {
            stack.pop();
        }
        match t {
            t if TokenType::new(t).is_aggregator()
                && matches!(id(j + 1), Some(T_LEFT_PAREN | T_BY | T_WITHOUT)) =>
            {
                stack.push(Frame::Aggregation { body_open: false })
            }
            T_BY | T_WITHOUT | T_ON | T_IGNORING | T_GROUP_LEFT | T_GROUP_RIGHT => {
                stack.push(Frame::GroupingKeyword)
            }
            T_LEFT_PAREN => match stack.last_mut() {
                Some(f @ Frame::GroupingKeyword) => *f = Frame::GroupingList,
                Some(Frame::Aggregation { body_open }) if !*body_open => {
                    *body_open = true;
                    stack.push(Frame::Paren {
                        closes_aggregation: true,
                    });
                }
                Some(Frame::At(stage @ AtStage::AfterPreprocessor)) => *stage = AtStage::InParen,
                _ => stack.push(Frame::Paren {
                    closes_aggregation: false,
                }),
            },
            T_RIGHT_PAREN => match stack.last() {
                Some(Frame::GroupingList) | Some(Frame::At(AtStage::InParen)) => {
                    stack.pop();
                }
                Some(Frame::Paren { closes_aggregation }) => {
                    let closes = *closes_aggregation;
                    stack.pop();
                    if closes {
                        stack.pop();
                    }
                }
                _ => {}
            },
            T_LEFT_BRACE => stack.push(Frame::Braces),
            T_RIGHT_BRACE if stack.last() == Some(&Frame::Braces) => {
                stack.pop();
            }
            T_LEFT_BRACKET => stack.push(Frame::Brackets { colon: false }),
            T_COLON => {
                if let Some(Frame::Brackets { colon }) = stack.last_mut() {
                    *colon = true;
                }
            }
            T_RIGHT_BRACKET => {
                if matches!(stack.last(), Some(Frame::Brackets { .. })) {
                    stack.pop();
                }
            }
            T_OFFSET => stack.push(Frame::Offset),
            T_AT => stack.push(Frame::At(AtStage::Start)),
            T_NUMBER | T_DURATION
                if matches!(
                    stack.last(),
                    Some(Frame::Offset | Frame::At(AtStage::Start))
                ) =>
            {
                stack.pop();
            }
            T_START | T_END => {
                if let Some(Frame::At(stage @ AtStage::Start)) = stack.last_mut() {
                    *stage = AtStage::AfterPreprocessor;
                }
            }
            _ => {}
        }
    }
    let prev = idx.checked_sub(1).and_then(id);
    let before_prev = idx.checked_sub(2).and_then(id);
    for frame in stack.iter().rev() {
        let (context, expected) = match frame {
            Frame::Paren { .. } => continue,
            Frame::Aggregation { .. } => ("aggregation", ""),
            Frame::GroupingKeyword => ("grouping opts", "\"(\""),
            Frame::GroupingList => match prev {
                Some(T_LEFT_PAREN | T_COMMA) => ("grouping opts", "label"),
                _ => ("grouping opts", "\",\" or \")\""),
            },
            Frame::Offset => ("offset", "duration"),
            Frame::At(_) => ("@", "timestamp"),
            Frame::Braces => match prev {
                Some(T_LEFT_BRACE | T_COMMA | T_LOR) => ("label matching", "identifier or \"}\""),
                Some(T_EQL | T_NEQ | T_EQL_REGEX | T_NEQ_REGEX) => ("label matching", "string"),
                Some(T_IDENTIFIER)
                    if matches!(before_prev, Some(T_LEFT_BRACE | T_COMMA | T_LOR)) =>
                {
                    ("label matching", "label matching operator")
                }
                _ => ("label matching", "\",\" or \"}\""),
            },
            Frame::Brackets { colon: false } => match prev {
                Some(T_LEFT_BRACKET) => ("subquery selector", "duration"),
                _ => ("subquery or range", "\":\" or \"]\""),
            },
            Frame::Brackets { colon: true } => match prev {
                Some(T_COLON) => ("subquery selector", "duration or \"]\""),
                _ => ("subquery selector", "\"]\""),
            },
        };
        return if expected.is_empty() {
            format!(" in {context}")
        } else {
            format!(" in {context}, expected {expected}")
        };
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_bytes_and_lines() {
        assert_eq!(position("foo{", 4), "1:5");
        assert_eq!(position("\"é\" foo", 5), "1:6");
        assert_eq!(position("1 +\n  foo[5m]", 6), "2:3");
        assert_eq!(position("foo\n", 4), "2:1");
        assert_eq!(position("", 0), "unknown position");
        assert_eq!(position("a", 2), "invalid position");
    }

    #[test]
    fn quoting_follows_go() {
        assert_eq!(go_quote("a\"b\\\n\u{1}é"), r#""a\"b\\\n\x01é""#);
        assert_eq!(go_quote_rune('\''), r"'\''");
        assert_eq!(go_quote_rune('~'), "'~'");
        assert_eq!(go_unicode('q'), "U+0071 'q'");
        assert_eq!(go_unicode('\u{0}'), "U+0000");
        assert_eq!(go_quote_rune('\u{2028}'), r"'\u2028'");
        assert_eq!(item_text("\"abcdefghijklmnop\""), r#""\"abcdefghi"..."#);
        assert_eq!(item_text("123456789012345"), r#""1234567890"..."#);
    }
}
