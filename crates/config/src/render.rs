//! Writing YAML the way Prometheus prints its configuration
//! (`/api/v1/status/config`): Go's `yaml.v2` over libyaml's emitter.
//!
//! Values are first serialised (with serde) into a [`Node`] tree, then
//! written out with `yaml.v2`'s choices: fields in declaration order,
//! sequences inside mappings not indented, strings plain unless they would
//! read back as another type (then double-quoted) or libyaml forbids plain
//! style (then single-, else double-quoted), strings with line breaks as
//! literal blocks, and long lines folded at spaces past column 80.

use std::fmt::{self, Write as _};

use serde::ser::{self, Serialize};

/// The serde newtype name that asks for a flow sequence (`[a, b]`), as
/// Prometheus prints `source_labels`.
pub(crate) const FLOW_SEQ: &str = "$hearth_config::flow_seq";

/// Serialises a list of strings in flow style.
pub(crate) struct FlowSeq<'a>(pub &'a [String]);

impl Serialize for FlowSeq<'_> {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_struct(FLOW_SEQ, self.0)
    }
}

/// For `#[serde(serialize_with)]` on `Vec<String>` fields printed in flow style.
pub(crate) fn flow_seq<S: ser::Serializer>(v: &[String], s: S) -> Result<S::Ok, S::Error> {
    FlowSeq(v).serialize(s)
}

/// A YAML document tree.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq { items: Vec<Node>, flow: bool },
    Map(Vec<(String, Node)>),
}

/// Renders `value` as a YAML document in `yaml.v2`'s style.
pub(crate) fn to_yaml<T: Serialize + ?Sized>(value: &T) -> String {
    let node = value
        .serialize(NodeSerializer)
        .expect("configuration types serialise to plain YAML nodes");
    let mut w = Writer::default();
    match &node {
        Node::Map(entries) if !entries.is_empty() => w.entries(entries, 0, false),
        Node::Seq { items, flow: false } if !items.is_empty() => w.items(items, 0, false),
        other => {
            w.inline(other, 0);
            w.newline();
        }
    }
    w.out
}

#[derive(Debug)]
pub(crate) struct RenderError(String);

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RenderError {}

impl ser::Error for RenderError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        RenderError(msg.to_string())
    }
}

struct NodeSerializer;

type NodeResult = Result<Node, RenderError>;

impl ser::Serializer for NodeSerializer {
    type Ok = Node;
    type Error = RenderError;
    type SerializeSeq = SeqBuilder;
    type SerializeTuple = SeqBuilder;
    type SerializeTupleStruct = SeqBuilder;
    type SerializeTupleVariant = SeqBuilder;
    type SerializeMap = MapBuilder;
    type SerializeStruct = MapBuilder;
    type SerializeStructVariant = MapBuilder;

    fn serialize_bool(self, v: bool) -> NodeResult {
        Ok(Node::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> NodeResult {
        Ok(Node::Int(v.into()))
    }
    fn serialize_i16(self, v: i16) -> NodeResult {
        Ok(Node::Int(v.into()))
    }
    fn serialize_i32(self, v: i32) -> NodeResult {
        Ok(Node::Int(v.into()))
    }
    fn serialize_i64(self, v: i64) -> NodeResult {
        Ok(Node::Int(v.into()))
    }
    fn serialize_u8(self, v: u8) -> NodeResult {
        Ok(Node::Int(v.into()))
    }
    fn serialize_u16(self, v: u16) -> NodeResult {
        Ok(Node::Int(v.into()))
    }
    fn serialize_u32(self, v: u32) -> NodeResult {
        Ok(Node::Int(v.into()))
    }
    fn serialize_u64(self, v: u64) -> NodeResult {
        Ok(Node::Int(v.into()))
    }
    fn serialize_f32(self, v: f32) -> NodeResult {
        Ok(Node::Float(v.into()))
    }
    fn serialize_f64(self, v: f64) -> NodeResult {
        Ok(Node::Float(v))
    }
    fn serialize_char(self, v: char) -> NodeResult {
        Ok(Node::Str(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> NodeResult {
        Ok(Node::Str(v.to_string()))
    }
    fn serialize_bytes(self, _: &[u8]) -> NodeResult {
        Err(ser::Error::custom("bytes are not supported"))
    }
    fn serialize_none(self) -> NodeResult {
        Ok(Node::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> NodeResult {
        v.serialize(self)
    }
    fn serialize_unit(self) -> NodeResult {
        Ok(Node::Null)
    }
    fn serialize_unit_struct(self, _: &'static str) -> NodeResult {
        Ok(Node::Null)
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> NodeResult {
        Ok(Node::Str(variant.to_string()))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        v: &T,
    ) -> NodeResult {
        let node = v.serialize(self)?;
        match node {
            Node::Seq { items, .. } if name == FLOW_SEQ => Ok(Node::Seq { items, flow: true }),
            other => Ok(other),
        }
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        v: &T,
    ) -> NodeResult {
        Ok(Node::Map(vec![(variant.to_string(), v.serialize(self)?)]))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<SeqBuilder, RenderError> {
        Ok(SeqBuilder(Vec::with_capacity(len.unwrap_or(0))))
    }
    fn serialize_tuple(self, len: usize) -> Result<SeqBuilder, RenderError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        len: usize,
    ) -> Result<SeqBuilder, RenderError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        len: usize,
    ) -> Result<SeqBuilder, RenderError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<MapBuilder, RenderError> {
        Ok(MapBuilder::default())
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<MapBuilder, RenderError> {
        Ok(MapBuilder::default())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<MapBuilder, RenderError> {
        Ok(MapBuilder::default())
    }
}

struct SeqBuilder(Vec<Node>);

impl SeqBuilder {
    fn push<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), RenderError> {
        self.0.push(v.serialize(NodeSerializer)?);
        Ok(())
    }
    fn finish(self) -> NodeResult {
        Ok(Node::Seq {
            items: self.0,
            flow: false,
        })
    }
}

impl ser::SerializeSeq for SeqBuilder {
    type Ok = Node;
    type Error = RenderError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), RenderError> {
        self.push(v)
    }
    fn end(self) -> NodeResult {
        self.finish()
    }
}

impl ser::SerializeTuple for SeqBuilder {
    type Ok = Node;
    type Error = RenderError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), RenderError> {
        self.push(v)
    }
    fn end(self) -> NodeResult {
        self.finish()
    }
}

impl ser::SerializeTupleStruct for SeqBuilder {
    type Ok = Node;
    type Error = RenderError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), RenderError> {
        self.push(v)
    }
    fn end(self) -> NodeResult {
        self.finish()
    }
}

impl ser::SerializeTupleVariant for SeqBuilder {
    type Ok = Node;
    type Error = RenderError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), RenderError> {
        self.push(v)
    }
    fn end(self) -> NodeResult {
        self.finish()
    }
}

#[derive(Default)]
struct MapBuilder {
    entries: Vec<(String, Node)>,
    key: Option<String>,
}

/// Map keys are scalars; they are written as strings.
fn key_string(node: Node) -> Result<String, RenderError> {
    match node {
        Node::Str(s) => Ok(s),
        Node::Int(i) => Ok(i.to_string()),
        Node::Bool(b) => Ok(b.to_string()),
        other => Err(ser::Error::custom(format!("unsupported map key {other:?}"))),
    }
}

impl ser::SerializeMap for MapBuilder {
    type Ok = Node;
    type Error = RenderError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), RenderError> {
        self.key = Some(key_string(k.serialize(NodeSerializer)?)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), RenderError> {
        let key = self
            .key
            .take()
            .ok_or_else(|| ser::Error::custom("map value without a key"))?;
        self.entries.push((key, v.serialize(NodeSerializer)?));
        Ok(())
    }
    fn end(self) -> NodeResult {
        Ok(Node::Map(self.entries))
    }
}

impl ser::SerializeStruct for MapBuilder {
    type Ok = Node;
    type Error = RenderError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), RenderError> {
        self.entries
            .push((key.to_string(), v.serialize(NodeSerializer)?));
        Ok(())
    }
    fn end(self) -> NodeResult {
        Ok(Node::Map(self.entries))
    }
}

impl ser::SerializeStructVariant for MapBuilder {
    type Ok = Node;
    type Error = RenderError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), RenderError> {
        ser::SerializeStruct::serialize_field(self, key, v)
    }
    fn end(self) -> NodeResult {
        Ok(Node::Map(self.entries))
    }
}

/// libyaml's `best_width`: plain and quoted scalars and flow sequences are
/// folded at the first space past this column.
const BEST_WIDTH: usize = 80;

/// How a string scalar is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
}

/// Where a scalar is written, which changes what libyaml allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    /// A block mapping value or sequence item.
    Block,
    /// An item of a flow sequence.
    Flow,
    /// A mapping key.
    Key,
}

#[derive(Default)]
struct Writer {
    out: String,
    column: usize,
}

impl Writer {
    fn push(&mut self, s: &str) {
        for c in s.chars() {
            self.push_char(c);
        }
    }

    fn push_char(&mut self, c: char) {
        self.out.push(c);
        if c == '\n' {
            self.column = 0;
        } else {
            self.column += 1;
        }
    }

    fn newline(&mut self) {
        self.push_char('\n');
    }

    /// libyaml's `write_indent`: a line break unless at the start of an
    /// empty line, then spaces up to `indent`.
    fn indent(&mut self, indent: usize) {
        if self.column > 0 {
            self.newline();
        }
        while self.column < indent {
            self.push_char(' ');
        }
    }

    /// The entries of a block mapping whose keys sit at column `indent`. With
    /// `first_inline` the first key continues the current line (after `- `).
    fn entries(&mut self, entries: &[(String, Node)], indent: usize, first_inline: bool) {
        for (i, (key, value)) in entries.iter().enumerate() {
            if i > 0 || !first_inline {
                self.indent(indent);
            }
            self.scalar(key, Context::Key, indent);
            self.push_char(':');
            match value {
                Node::Map(e) if !e.is_empty() => {
                    self.newline();
                    self.entries(e, indent + 2, false);
                }
                // yaml.v2 does not indent a sequence inside a mapping.
                Node::Seq { items, flow: false } if !items.is_empty() => {
                    self.newline();
                    self.items(items, indent, false);
                }
                other => {
                    self.push_char(' ');
                    self.inline(other, indent + 2);
                    self.newline();
                }
            }
        }
    }

    /// The items of a block sequence whose dashes sit at column `indent`.
    fn items(&mut self, items: &[Node], indent: usize, first_inline: bool) {
        for (i, item) in items.iter().enumerate() {
            if i > 0 || !first_inline {
                self.indent(indent);
            }
            self.push("- ");
            match item {
                Node::Map(e) if !e.is_empty() => self.entries(e, indent + 2, true),
                Node::Seq { items, flow: false } if !items.is_empty() => {
                    self.items(items, indent + 2, true)
                }
                other => {
                    self.inline(other, indent + 2);
                    self.newline();
                }
            }
        }
    }

    /// A scalar, an empty collection or a flow sequence on the current line;
    /// `indent` is where folded continuation lines start.
    fn inline(&mut self, node: &Node, indent: usize) {
        match node {
            Node::Null => self.push("null"),
            Node::Bool(b) => self.push(if *b { "true" } else { "false" }),
            Node::Int(i) => self.push(&i.to_string()),
            Node::Float(f) => self.push(&go_format_float(*f)),
            Node::Str(s) => self.scalar(s, Context::Block, indent),
            Node::Map(e) if e.is_empty() => self.push("{}"),
            Node::Seq { items, .. } if items.is_empty() => self.push("[]"),
            Node::Seq { items, .. } => {
                self.push_char('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.push_char(',');
                    }
                    if self.column > BEST_WIDTH {
                        self.indent(indent);
                    } else if i > 0 {
                        self.push_char(' ');
                    }
                    match item {
                        Node::Str(s) => self.scalar(s, Context::Flow, indent + 2),
                        other => self.inline(other, indent + 2),
                    }
                }
                self.push_char(']');
            }
            // Block collections are written by `entries` and `items`.
            Node::Map(_) => unreachable!("non-empty mappings are written in block style"),
        }
    }

    fn scalar(&mut self, s: &str, context: Context, indent: usize) {
        let allow_breaks = context != Context::Key;
        match choose_style(s, context) {
            Style::Plain => self.plain(s, allow_breaks, indent),
            Style::SingleQuoted => self.single_quoted(s, allow_breaks, indent),
            Style::DoubleQuoted => self.double_quoted(s, allow_breaks, indent),
            Style::Literal => self.literal(s, indent),
        }
    }

    fn plain(&mut self, s: &str, allow_breaks: bool, indent: usize) {
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                let next_is_space = chars.get(i + 1) == Some(&' ');
                if allow_breaks && !spaces && self.column > BEST_WIDTH && !next_is_space {
                    self.indent(indent);
                } else {
                    self.push_char(c);
                }
                spaces = true;
            } else {
                self.push_char(c);
                spaces = false;
            }
        }
    }

    fn single_quoted(&mut self, s: &str, allow_breaks: bool, indent: usize) {
        let chars: Vec<char> = s.chars().collect();
        self.push_char('\'');
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                let breakable = i != 0 && i != chars.len() - 1 && chars.get(i + 1) != Some(&' ');
                if allow_breaks && !spaces && self.column > BEST_WIDTH && breakable {
                    self.indent(indent);
                } else {
                    self.push_char(c);
                }
                spaces = true;
            } else {
                self.push_char(c);
                if c == '\'' {
                    self.push_char('\'');
                }
                spaces = false;
            }
        }
        self.push_char('\'');
    }

    fn double_quoted(&mut self, s: &str, allow_breaks: bool, indent: usize) {
        let chars: Vec<char> = s.chars().collect();
        self.push_char('"');
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if !is_printable(c) || c == '\u{feff}' || is_break(c) || c == '"' || c == '\\' {
                self.push(&escape(c));
                spaces = false;
            } else if c == ' ' {
                let breakable = i != 0 && i != chars.len() - 1;
                if allow_breaks && !spaces && self.column > BEST_WIDTH && breakable {
                    self.indent(indent);
                    if chars.get(i + 1) == Some(&' ') {
                        self.push_char('\\');
                    }
                } else {
                    self.push_char(c);
                }
                spaces = true;
            } else {
                self.push_char(c);
                spaces = false;
            }
        }
        self.push_char('"');
    }

    /// A literal block (`|`), with libyaml's indentation and chomping hints.
    fn literal(&mut self, s: &str, indent: usize) {
        self.push_char('|');
        if s.starts_with([' ', '\n']) {
            self.push_char('2');
        }
        let chomp = if !s.ends_with('\n') {
            "-"
        } else if s == "\n" || s[..s.len() - 1].ends_with('\n') {
            "+"
        } else {
            ""
        };
        self.push(chomp);
        self.newline();
        let mut at_line_start = true;
        for c in s.chars() {
            if c == '\n' {
                self.newline();
                at_line_start = true;
            } else {
                if at_line_start {
                    self.indent(indent);
                    at_line_start = false;
                }
                self.push_char(c);
            }
        }
        // The caller ends the line; a trailing break was already written.
        if s.ends_with('\n') {
            self.out.pop();
            self.column = 1;
        }
    }
}

/// `yaml.v2`'s `is_printable` (libyaml's, on code points).
fn is_printable(c: char) -> bool {
    matches!(c, '\n' | ' '..='~' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}')
        && c != '\u{feff}'
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn escape(c: char) -> String {
    let short = match c {
        '\0' => "0",
        '\u{7}' => "a",
        '\u{8}' => "b",
        '\t' => "t",
        '\n' => "n",
        '\u{b}' => "v",
        '\u{c}' => "f",
        '\r' => "r",
        '\u{1b}' => "e",
        '"' => "\"",
        '\\' => "\\",
        '\u{85}' => "N",
        '\u{a0}' => "_",
        '\u{2028}' => "L",
        '\u{2029}' => "P",
        _ => "",
    };
    if !short.is_empty() {
        return format!("\\{short}");
    }
    let v = c as u32;
    if v <= 0xff {
        format!("\\x{v:02X}")
    } else if v <= 0xffff {
        format!("\\u{v:04X}")
    } else {
        format!("\\U{v:08X}")
    }
}

/// The style `yaml.v2` and libyaml pick for string `s`.
fn choose_style(s: &str, context: Context) -> Style {
    let requested = if s.contains('\n') {
        Style::Literal
    } else if resolves_to_non_string(s) || is_base60_float(s) {
        Style::DoubleQuoted
    } else {
        Style::Plain
    };
    let a = analyze(s);
    let mut style = requested;
    if context == Context::Key && a.multiline {
        style = Style::DoubleQuoted;
    }
    if style == Style::Plain {
        let plain_allowed = match context {
            Context::Flow => a.flow_plain_allowed,
            Context::Block | Context::Key => a.block_plain_allowed,
        };
        if !plain_allowed || (s.is_empty() && context != Context::Block) {
            style = Style::SingleQuoted;
        }
    }
    if style == Style::SingleQuoted && !a.single_quoted_allowed {
        style = Style::DoubleQuoted;
    }
    if style == Style::Literal && (!a.block_allowed || context != Context::Block) {
        style = Style::DoubleQuoted;
    }
    style
}

/// What libyaml's `yaml_emitter_analyze_scalar` allows for a string.
struct Analysis {
    multiline: bool,
    flow_plain_allowed: bool,
    block_plain_allowed: bool,
    single_quoted_allowed: bool,
    block_allowed: bool,
}

fn analyze(s: &str) -> Analysis {
    if s.is_empty() {
        return Analysis {
            multiline: false,
            flow_plain_allowed: false,
            block_plain_allowed: true,
            single_quoted_allowed: true,
            block_allowed: false,
        };
    }
    let chars: Vec<char> = s.chars().collect();
    let is_blank =
        |c: Option<&char>| matches!(c, None | Some(' ' | '\t')) || c.is_some_and(|c| is_break(*c));
    let (mut block_indicators, mut flow_indicators) = (false, false);
    if s.starts_with("---") || s.starts_with("...") {
        block_indicators = true;
        flow_indicators = true;
    }
    let (mut line_breaks, mut special) = (false, false);
    let (mut leading_space, mut leading_break) = (false, false);
    let (mut trailing_space, mut trailing_break) = (false, false);
    let (mut break_space, mut space_break) = (false, false);
    let (mut previous_space, mut previous_break) = (false, false);
    let mut preceded_by_whitespace = true;
    for (i, &c) in chars.iter().enumerate() {
        let followed_by_whitespace = is_blank(chars.get(i + 1));
        let last = i + 1 == chars.len();
        if i == 0 {
            if "#,[]{}&*!|>'\"%@`".contains(c) {
                flow_indicators = true;
                block_indicators = true;
            }
            if c == '?' || c == ':' {
                flow_indicators = true;
                block_indicators |= followed_by_whitespace;
            }
            if c == '-' && followed_by_whitespace {
                flow_indicators = true;
                block_indicators = true;
            }
        } else {
            if ",?[]{}".contains(c) {
                flow_indicators = true;
            }
            if c == ':' {
                flow_indicators = true;
                block_indicators |= followed_by_whitespace;
            }
            if c == '#' && preceded_by_whitespace {
                flow_indicators = true;
                block_indicators = true;
            }
        }
        if !is_printable(c) {
            special = true;
        }
        if is_break(c) {
            line_breaks = true;
        }
        if c == ' ' {
            leading_space |= i == 0;
            trailing_space |= last;
            break_space |= previous_break;
            previous_space = true;
            previous_break = false;
        } else if is_break(c) {
            leading_break |= i == 0;
            trailing_break |= last;
            space_break |= previous_space;
            previous_space = false;
            previous_break = true;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_whitespace = is_blank(Some(&c));
    }
    let mut a = Analysis {
        multiline: line_breaks,
        flow_plain_allowed: true,
        block_plain_allowed: true,
        single_quoted_allowed: true,
        block_allowed: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.flow_plain_allowed = false;
        a.block_plain_allowed = false;
    }
    if trailing_space {
        a.block_allowed = false;
    }
    if break_space {
        a.flow_plain_allowed = false;
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
    }
    if space_break || special {
        a.flow_plain_allowed = false;
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
        a.block_allowed = false;
    }
    if line_breaks {
        a.flow_plain_allowed = false;
        a.block_plain_allowed = false;
    }
    if flow_indicators {
        a.flow_plain_allowed = false;
    }
    if block_indicators {
        a.block_plain_allowed = false;
    }
    a
}

/// Whether `yaml.v2`'s resolver reads the plain scalar `s` as something
/// other than a string (null, bool, number, timestamp, merge key).
fn resolves_to_non_string(s: &str) -> bool {
    const SPECIAL: &[&str] = &[
        "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
        "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
        ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf",
        "-.Inf", "-.INF", "<<",
    ];
    if SPECIAL.contains(&s) {
        return true;
    }
    let Some(first) = s.chars().next() else {
        return true;
    };
    match first {
        '.' => s.parse::<f64>().is_ok() && s[1..].starts_with(|c: char| c.is_ascii_digit()),
        '+' | '-' | '0'..='9' => {
            if first.is_ascii_digit() && is_timestamp(s) {
                return true;
            }
            let plain = s.replace('_', "");
            is_go_int(&plain) || is_yaml_float(&plain) || is_binary_int(&plain)
        }
        _ => false,
    }
}

/// `yaml.v2`'s `isBase60Float`: YAML 1.1 sexagesimal numbers such as
/// `1:20`, `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`.
fn is_base60_float(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (s, fraction) = match s.split_once('.') {
        Some((whole, frac)) => (whole, Some(frac)),
        None => (s, None),
    };
    if fraction.is_some_and(|f| !f.chars().all(|c| c.is_ascii_digit() || c == '_')) {
        return false;
    }
    let mut parts = s.split(':');
    let head = parts.next().unwrap_or("");
    let head_ok = head.starts_with(|c: char| c.is_ascii_digit())
        && head.chars().all(|c| c.is_ascii_digit() || c == '_');
    let mut sexagesimal = parts.peekable();
    if !head_ok || sexagesimal.peek().is_none() {
        return false;
    }
    sexagesimal.all(|p| {
        let b = p.as_bytes();
        match b {
            [d] => d.is_ascii_digit(),
            [t, d] => (b'0'..=b'5').contains(t) && d.is_ascii_digit(),
            _ => false,
        }
    })
}

/// `strconv.ParseInt(s, 0, 64)` or `ParseUint` succeeding, ignoring range.
fn is_go_int(s: &str) -> bool {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (body, radix) = if let Some(r) = digits.strip_prefix("0x").or(digits.strip_prefix("0X")) {
        (r, 16)
    } else if let Some(r) = digits.strip_prefix("0o").or(digits.strip_prefix("0O")) {
        (r, 8)
    } else if let Some(r) = digits.strip_prefix("0b").or(digits.strip_prefix("0B")) {
        (r, 2)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (&digits[1..], 8)
    } else {
        (digits, 10)
    };
    !body.is_empty() && body.chars().all(|c| c.is_digit(radix))
}

/// `yaml.v2`'s `yamlStyleFloat`: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_yaml_float(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => !frac.is_empty() && frac.chars().all(|c| c.is_ascii_digit()),
        Some((int, frac)) => {
            !int.is_empty()
                && int.chars().all(|c| c.is_ascii_digit())
                && frac.chars().all(|c| c.is_ascii_digit())
        }
        None => !mantissa.is_empty() && mantissa.chars().all(|c| c.is_ascii_digit()),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())
    });
    mantissa_ok && exponent_ok
}

fn is_binary_int(s: &str) -> bool {
    let body = s.strip_prefix("-0b").or(s.strip_prefix("0b"));
    body.is_some_and(|b| !b.is_empty() && b.chars().all(|c| c == '0' || c == '1'))
}

/// `yaml.v2`'s timestamp check: `YYYY-M-D`, optionally followed by a time.
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 8 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return false;
    }
    let mut parts = s[5..].splitn(2, '-');
    let month = parts.next().unwrap_or("");
    let rest = parts.next().unwrap_or("");
    let day_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    let one_or_two_digits =
        |p: &str| (1..=2).contains(&p.len()) && p.bytes().all(|c| c.is_ascii_digit());
    if !one_or_two_digits(month) || !one_or_two_digits(&rest[..day_len]) {
        return false;
    }
    let time = &rest[day_len..];
    time.is_empty() || time.starts_with(['T', 't', ' '])
}

/// `yaml.v2`'s float rendering: Go's `strconv.FormatFloat(f, 'g', -1, 64)`.
fn go_format_float(f: f64) -> String {
    if f.is_nan() {
        return ".nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { ".inf" } else { "-.inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // Shortest round-trip digits and the decimal exponent.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    // Go switches to %e below 1e-4 and, for the shortest form, from 1e6.
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        let mut out = String::new();
        let _ = write!(out, "{mantissa}e{sign}{:02}", exp.abs());
        out
    } else {
        format!("{f}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn style(s: &str) -> Style {
        choose_style(s, Context::Block)
    }

    /// Styles observed in Prometheus 2.42's `/api/v1/status/config` for
    /// these external label values.
    #[test]
    fn picks_yaml_v2_styles() {
        use Style::*;
        for (s, want) in [
            ("&x", SingleQuoted),
            ("@x", SingleQuoted),
            ("!x", SingleQuoted),
            ("{a}", SingleQuoted),
            ("a\\b", Plain),
            ("`x", SingleQuoted),
            ("a:b", Plain),
            ("a: b", SingleQuoted),
            ("a,b", Plain),
            ("a\u{1}b", DoubleQuoted),
            ("---", SingleQuoted),
            ("- x", SingleQuoted),
            ("-x", Plain),
            ("...", SingleQuoted),
            ("2001-12-14", DoubleQuoted),
            (">x", SingleQuoted),
            ("a #b", SingleQuoted),
            ("#b", SingleQuoted),
            ("0x1F", DoubleQuoted),
            ("line1\nline2", Literal),
            ("null", DoubleQuoted),
            ("1.5e3", DoubleQuoted),
            ("0o17", DoubleQuoted),
            ("on", DoubleQuoted),
            ("%x", SingleQuoted),
            ("|x", SingleQuoted),
            ("it's", Plain),
            ("say \"hi\"", Plain),
            ("?x", Plain),
            ("? x", SingleQuoted),
            ("1:20", DoubleQuoted),
            (" lead", SingleQuoted),
            ("*x", SingleQuoted),
            ("a\tb", DoubleQuoted),
            ("~", DoubleQuoted),
            ("trail ", SingleQuoted),
            ("héllo ☃", Plain),
            ("y", DoubleQuoted),
            ("", DoubleQuoted),
            ("0", DoubleQuoted),
            ("1", DoubleQuoted),
            ("10.0.0.1:9100", Plain),
            ("localhost:9090", Plain),
            (";", Plain),
            (",", SingleQuoted),
            ("$1", Plain),
            ("(.*)", Plain),
            ("-1:59.5", DoubleQuoted),
            ("1:60", Plain),
            ("12:34:56", DoubleQuoted),
        ] {
            assert_eq!(style(s), want, "{s:?}");
        }
    }

    #[test]
    fn folds_long_plain_scalars_at_column_80() {
        let long = "aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj kkkk llll mmmm nnnn oooo \
                    pppp qqqq rrrr ssss";
        let node = Node::Map(vec![(
            "global".into(),
            Node::Map(vec![(
                "external_labels".into(),
                Node::Map(vec![
                    ("long".into(), Node::Str(long.into())),
                    ("nl".into(), Node::Str("line1\nline2".into())),
                ]),
            )]),
        )]);
        let mut w = Writer::default();
        if let Node::Map(e) = &node {
            w.entries(e, 0, false);
        }
        assert_eq!(
            w.out,
            "global:\n  external_labels:\n    long: aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii \
             jjjj kkkk llll mmmm nnnn oooo\n      pppp qqqq rrrr ssss\n    nl: |-\n      line1\n      \
             line2\n"
        );
    }

    #[test]
    fn formats_floats_like_go() {
        assert_eq!(go_format_float(0.1), "0.1");
        assert_eq!(go_format_float(1.0), "1");
        assert_eq!(go_format_float(1e21), "1e+21");
        assert_eq!(go_format_float(1e20), "1e+20");
        assert_eq!(go_format_float(123456.0), "123456");
        assert_eq!(go_format_float(1234567.0), "1.234567e+06");
        assert_eq!(go_format_float(0.00001), "1e-05");
        assert_eq!(go_format_float(1.5), "1.5");
    }
}
