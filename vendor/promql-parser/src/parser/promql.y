// Copyright 2019 The Prometheus Authors
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
//     http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

// This file is deriven from generated_parser.y at [1] with the following differences:
//
// - no empty rule
// - no series descriptions rule
//
// [1] https://github.com/prometheus/prometheus/blob/v2.45.0/promql/parser/generated_parser.y

%token EQL
BLANK
COLON
COMMA
COMMENT
DURATION
EOF
ERROR
IDENTIFIER
LEFT_BRACE
LEFT_BRACKET
LEFT_PAREN
OPEN_HIST
CLOSE_HIST
METRIC_IDENTIFIER
NUMBER
RIGHT_BRACE
RIGHT_BRACKET
RIGHT_PAREN
SEMICOLON
SPACE
STRING
TIMES

// Operators.
%token OPERATORS_START
ADD
DIV
EQLC
EQL_REGEX
GTE
GTR
LAND
LOR
LSS
LTE
LUNLESS
MOD
MUL
NEQ
NEQ_REGEX
POW
SUB
AT
ATAN2
%token OPERATORS_END

// Aggregators.
%token AGGREGATORS_START
AVG
BOTTOMK
COUNT
COUNT_VALUES
GROUP
MAX
MIN
QUANTILE
STDDEV
STDVAR
SUM
TOPK
LIMITK
LIMIT_RATIO
%token AGGREGATORS_END

// Keywords.
%token KEYWORDS_START
BOOL
BY
GROUP_LEFT
GROUP_RIGHT
FILL
FILL_LEFT
FILL_RIGHT
IGNORING
OFFSET
SMOOTHED
ANCHORED
ON
WITHOUT
%token KEYWORDS_END

// Preprocessors.
%token PREPROCESSOR_START
START
END
STEP
%token PREPROCESSOR_END

// Start symbols for the generated parser.
%token STARTSYMBOLS_START
START_METRIC
START_SERIES_DESCRIPTION
START_EXPRESSION
START_METRIC_SELECTOR
%token STARTSYMBOLS_END

%expect-unused 'BLANK' 'COMMENT' 'ERROR' 'SEMICOLON' 'SPACE' 'TIMES' 'OPEN_HIST' 'CLOSE_HIST'
%expect-unused 'OPERATORS_START' 'OPERATORS_END' 'AGGREGATORS_START' 'AGGREGATORS_END'
%expect-unused 'KEYWORDS_START' 'KEYWORDS_END' 'PREPROCESSOR_START' 'PREPROCESSOR_END'
%expect-unused 'STEP' 'STARTSYMBOLS_START'
%expect-unused 'START_METRIC' 'START_SERIES_DESCRIPTION' 'START_EXPRESSION' 'START_METRIC_SELECTOR' 'STARTSYMBOLS_END'
%expect-unused 'SMOOTHED' 'ANCHORED'

%expect 5

%start start
%parse-param ctx: &'input ParseCtx

// Operators are listed with increasing precedence.
%left LOR
%left LAND LUNLESS
%left EQLC GTE GTR LSS LTE NEQ
%left ADD SUB
%left MUL DIV MOD ATAN2
%right POW

// Offset and At modifiers do not have associativity.
%nonassoc OFFSET AT GROUP_LEFT GROUP_RIGHT

// This ensures that it is always attempted to parse range or subquery selectors when a left
// bracket is encountered.
%right LEFT_BRACKET

// left_paren has higher precedence than group_left/group_right, to fix the reduce/shift conflict.
// if group_left/group_right is followed by left_paren, the parser will shift instead of reduce
%right LEFT_PAREN

%%
// Hearth patch (HEARTH_PATCHES.md, patch 2): expressions carry the positions
// of their parts (`Node`), errors carry the byte offset Prometheus reports
// them at (`PosError`, recorded in `ctx` in the order they are found), and
// the type checks run once after the parse (`check_ast` in `parse`), as in
// Prometheus.
start -> Result<Node, PosError>:
                expr { $1 }
        |       expr EOF { $1 }
        |       EOF { Err(ctx.fail(0, "no expression found in input")) }
;

expr -> Result<Node, PosError>:
                aggregate_expr { $1 }
        |       at_expr { $1 }
        |       binary_expr { $1 }
        |       function_call { $1 }
        |       matrix_selector { $1 }
        |       number_literal { $1 }
        |       offset_expr { $1 }
        |       paren_expr { $1 }
        |       string_literal { $1 }
        |       subquery_expr { $1 }
        |       unary_expr  { $1 }
        |       vector_selector  { $1 }
;

/*
 * Aggregations.
 */
aggregate_expr -> Result<Node, PosError>:
                aggregate_op aggregate_modifier function_call_body
                {
                        aggregate(ctx, $span.start(), $1, Some($2), $3)
                }
        |       aggregate_op function_call_body aggregate_modifier
                {
                        aggregate(ctx, $span.start(), $1, Some($3), $2)
                }
        |       aggregate_op function_call_body
                {
                        aggregate(ctx, $span.start(), $1, None, $2)
                }
;

aggregate_modifier -> Result<LabelModifier, PosError>:
                BY grouping_labels { Ok(LabelModifier::Include($2?)) }
        |       WITHOUT grouping_labels { Ok(LabelModifier::Exclude($2?)) }
;

/*
 * Binary expressions.
 */
// Operator precedence only works if each of those is listed separately.
binary_expr -> Result<Node, PosError>:
                expr ADD       bin_modifier expr { binary($1, $2, $3, $4) }
        |       expr ATAN2   bin_modifier expr { binary($1, $2, $3, $4) }
        |       expr DIV     bin_modifier expr { binary($1, $2, $3, $4) }
        |       expr EQLC    bin_modifier expr { binary($1, $2, $3, $4) }
        |       expr GTE     bin_modifier expr { binary($1, $2, $3, $4) }
        |       expr GTR     bin_modifier expr { binary($1, $2, $3, $4) }
        |       expr LAND    bin_modifier expr { binary($1, $2, $3, $4) }
        |       expr LOR     bin_modifier expr { binary($1, $2, $3, $4) }
        |       expr LSS     bin_modifier expr { binary($1, $2, $3, $4) }
        |       expr LTE     bin_modifier expr { binary($1, $2, $3, $4) }
        |       expr LUNLESS bin_modifier expr { binary($1, $2, $3, $4) }
        |       expr MOD     bin_modifier expr { binary($1, $2, $3, $4) }
        |       expr MUL     bin_modifier expr { binary($1, $2, $3, $4) }
        |       expr NEQ     bin_modifier expr { binary($1, $2, $3, $4) }
        |       expr POW     bin_modifier expr { binary($1, $2, $3, $4) }
        |       expr SUB     bin_modifier expr { binary($1, $2, $3, $4) }
;

// Using left recursion for the modifier rules, helps to keep the parser stack small and
// reduces allocations
bin_modifier -> Result<Option<BinModifier>, PosError>:
                fill_modifiers { $1 }
;

bool_modifier -> Result<Option<BinModifier>, PosError>:
                { Ok(None) }
        |       BOOL
                {
                        let modifier = BinModifier::default().with_return_bool(true);
                        Ok(Some(modifier))
                }
;

on_or_ignoring -> Result<Option<BinModifier>, PosError>:
                bool_modifier IGNORING grouping_labels
                {
                        Ok(update_optional_matching($1?, Some(LabelModifier::Exclude($3?))))
                }
        |       bool_modifier ON grouping_labels
                {
                        Ok(update_optional_matching($1?, Some(LabelModifier::Include($3?))))
                }
;

group_modifiers -> Result<Option<BinModifier>, PosError>:
                bool_modifier { $1 }
        |       on_or_ignoring { $1 }
        |       on_or_ignoring GROUP_LEFT grouping_labels
                {
                        Ok(update_optional_card($1?, VectorMatchCardinality::ManyToOne($3?)))
                }
        |       on_or_ignoring GROUP_RIGHT grouping_labels
                {
                        Ok(update_optional_card($1?, VectorMatchCardinality::OneToMany($3?)))
                }
        |       on_or_ignoring GROUP_LEFT
                {
                        Ok(update_optional_card($1?, VectorMatchCardinality::ManyToOne(Labels::new(vec![]))))
                }
        |       on_or_ignoring GROUP_RIGHT
                {
                        Ok(update_optional_card($1?, VectorMatchCardinality::OneToMany(Labels::new(vec![]))))
                }
        |       GROUP_LEFT grouping_labels { Err(ctx.unexpected_from($span.start(), 0)) }
        |       GROUP_RIGHT grouping_labels { Err(ctx.unexpected_from($span.start(), 0)) }
;

fill_modifiers -> Result<Option<BinModifier>, PosError>:
                 group_modifiers { $1 }
        |        group_modifiers FILL fill_value
                 {
                         let fill = $3?;
                         Ok(update_optional_fill($1?, VectorMatchFillValues::new(fill, fill)))
                 }
        |        group_modifiers FILL_LEFT fill_value
                 {
                         Ok(update_optional_fill($1?, VectorMatchFillValues::default().with_lhs($3?)))
                 }
        |        group_modifiers FILL_RIGHT fill_value
                 {
                         Ok(update_optional_fill($1?, VectorMatchFillValues::default().with_rhs($3?)))
                 }
        |        group_modifiers FILL_LEFT fill_value FILL_RIGHT fill_value
                 {
                         Ok(update_optional_fill($1?, VectorMatchFillValues::new($3?, $5?)))
                 }
        |        group_modifiers FILL_RIGHT fill_value FILL_LEFT fill_value
                 {
                         Ok(update_optional_fill($1?, VectorMatchFillValues::new($5?, $3?)))
                 }
;

grouping_labels -> Result<Labels, PosError>:
                LEFT_PAREN grouping_label_list RIGHT_PAREN { $2 }
        |       LEFT_PAREN grouping_label_list COMMA RIGHT_PAREN { $2 }
        |       LEFT_PAREN RIGHT_PAREN { Ok(Labels::new(vec![])) }
;

grouping_label_list -> Result<Labels, PosError>:
                grouping_label_list COMMA grouping_label { Ok($1?.append($3?.val)) }
        |       grouping_label { Ok(Labels::new(vec![&$1?.val])) }
;

grouping_label -> Result<Token, PosError>:
                maybe_label
                {
                        let token = $1?;
                        if is_label(&token.val) {
                            Ok(token)
                        } else {
                            let desc = describe_token(token.id(), &token.val);
                            Err(ctx.fail($span.start(), format!("unexpected {desc} in grouping opts, expected label")))
                        }
                }
        |       STRING {
                        let name = unquote_string($lexer.span_str($span)).map_err(|e| ctx.fail($span.start(), e))?;
                        Ok(Token::new(T_IDENTIFIER, name))
                }
;

fill_value -> Result<f64, PosError>:
                LEFT_PAREN NUMBER RIGHT_PAREN
                {
                        match $2 {
                            Ok(tok) => parse_str_radix($lexer.span_str(tok.span())).map_err(|e| ctx.fail($span.start(), e)),
                            Err(_) => Err(ctx.fail($span.start(), "Number expected for fill value")),
                        }
                }
        |       LEFT_PAREN ADD NUMBER RIGHT_PAREN
                {
                        match $3 {
                            Ok(tok) => parse_str_radix($lexer.span_str(tok.span())).map_err(|e| ctx.fail($span.start(), e)),
                            Err(_) => Err(ctx.fail($span.start(), "Number expected for fill value")),
                        }
                }
        |       LEFT_PAREN SUB NUMBER RIGHT_PAREN
                {
                        match $3 {
                            Ok(tok) => parse_str_radix($lexer.span_str(tok.span())).map(|v| -v).map_err(|e| ctx.fail($span.start(), e)),
                            Err(_) => Err(ctx.fail($span.start(), "Number expected for fill value")),
                        }
                }
;

/*
 * Function calls.
 */
function_call -> Result<Node, PosError>:
                IDENTIFIER function_call_body
                {
                        let name = lexeme_to_string($lexer, &$1)?;
                        match get_function(&name) {
                            None => Err(ctx.fail($span.start(), format!("unknown function with name {}", go_quote(&name)))),
                            Some(func) => {
                                let (args, kids) = $2?;
                                Ok(Node::new(Expr::new_call(func, args)?, $span.start(), $span.start(), kids))
                            }
                        }
                }
        |       at_modifier_preprocessors function_call_body
                {
                        let name = $1?.val;
                        match get_function(&name) {
                            // `start` and `end` are no functions: Prometheus stops at the `(`.
                            None => Err(ctx.unexpected_from($span.start(), 1)),
                            Some(func) => {
                                let (args, kids) = $2?;
                                Ok(Node::new(Expr::new_call(func, args)?, $span.start(), $span.start(), kids))
                            }
                        }
                }
;

function_call_body -> Result<(FunctionArgs, Vec<Kid>), PosError>:
                LEFT_PAREN function_call_args RIGHT_PAREN { $2 }
        |       LEFT_PAREN RIGHT_PAREN { Ok((FunctionArgs::empty_args(), vec![])) }
;

function_call_args -> Result<(FunctionArgs, Vec<Kid>), PosError>:
                function_call_args COMMA expr
                {
                        let (args, mut kids) = $1?;
                        let (arg, kid) = $3?.split();
                        kids.push(kid);
                        Ok((args.append_args(arg), kids))
                }
        |       expr
                {
                        let (arg, kid) = $1?.split();
                        Ok((FunctionArgs::new_args(arg), vec![kid]))
                }
        |       function_call_args COMMA
                {
                        let comma = $2.map_err(|_| PosError::from(String::from("ParseError")))?;
                        Err(ctx.fail(comma.span().start(), "trailing commas not allowed in function call args"))
                }
;

/*
 * Expressions inside parentheses.
 */
paren_expr -> Result<Node, PosError>:
                LEFT_PAREN expr RIGHT_PAREN
                {
                        let (inner, kid) = $2?.split();
                        Ok(Node::new(Expr::new_paren_expr(inner)?, $span.start(), $span.start(), vec![kid]))
                }
;

/*
 * Offset modifiers.
 */
offset_expr -> Result<Node, PosError>:
                expr OFFSET duration { offset(ctx, $1, $3.map(Offset::Pos)) }
        |       expr OFFSET ADD duration { offset(ctx, $1, $4.map(Offset::Pos)) }
        |       expr OFFSET SUB duration { offset(ctx, $1, $4.map(Offset::Neg)) }
        |       expr OFFSET EOF
                {
                        let eof = $3.map_err(|_| PosError::from(String::from("ParseError")))?;
                        Err(ctx.unexpected_from(eof.span().start(), 0))
                }
;

/*
 * @ modifiers.
 *
 * the original name of this production head is step_invariant_expr
 */
at_expr -> Result<Node, PosError>:
                expr AT number_literal { at(ctx, $1, $3.map(|n| n.expr)) }
        |       expr AT ADD number_literal { at(ctx, $1, $4.map(|n| n.expr)) }
        |       expr AT SUB number_literal { at(ctx, $1, $4.map(|n| -n.expr)) }
        |       expr AT at_modifier_preprocessors LEFT_PAREN RIGHT_PAREN
                {
                        let node = $1?;
                        let start = node.start;
                        let at = AtModifier::try_from($3?).map_err(|e| ctx.fail(start, e))?;
                        node.try_map(|e| e.at_expr(at).map_err(|e| ctx.fail(start, e)))
                }
        |       expr AT EOF
                {
                        let eof = $3.map_err(|_| PosError::from(String::from("ParseError")))?;
                        Err(ctx.unexpected_from(eof.span().start(), 0))
                }
;

at_modifier_preprocessors -> Result<Token, String>:
                START { lexeme_to_token($lexer, $1) }
        |       END { lexeme_to_token($lexer, $1) }
;

/*
 * Subquery and range selectors.
 */
matrix_selector -> Result<Node, PosError>:
                expr LEFT_BRACKET duration RIGHT_BRACKET
                {
                        let node = $1?;
                        let bracket = $2.map_err(|_| PosError::from(String::from("ParseError")))?.span().start();
                        let range = $3?;
                        let expr = Expr::new_matrix_selector(node.expr, range).map_err(|e| ctx.fail(bracket, e))?;
                        Ok(Node::new(expr, node.start, bracket, vec![]))
                }
        |       expr LEFT_BRACKET RIGHT_BRACKET
                {
                        let bracket = $3.map_err(|_| PosError::from(String::from("ParseError")))?.span().start();
                        Err(ctx.fail(bracket, "missing unit character in duration"))
                }
;

subquery_expr -> Result<Node, PosError>:
                expr LEFT_BRACKET duration COLON maybe_duration RIGHT_BRACKET
                {
                        let (inner, kid) = $1?.split();
                        let bracket = $2.map_err(|_| PosError::from(String::from("ParseError")))?.span().start();
                        let expr = Expr::new_subquery_expr(inner, $3?, $5?)?;
                        Ok(Node::new(expr, kid.start, bracket, vec![kid]))
                }
;

/*
 * Unary expressions.
 */
unary_expr -> Result<Node, PosError>:
                ADD expr %prec MUL
                {
                        // The parser drops a unary `+`; its operand is still type checked.
                        let node = $2?;
                        let start = $span.start();
                        match node.expr {
                            Expr::NumberLiteral(_) => Ok(Node::leaf(node.expr, start)),
                            _ => Ok(Node::plus(node, start)),
                        }
                }
        |       SUB expr %prec MUL
                {
                        let (inner, kid) = $2?.split();
                        let start = $span.start();
                        match inner {
                            Expr::NumberLiteral(nl) => Ok(Node::leaf(Expr::NumberLiteral(-nl), start)),
                            expr => Ok(Node::new(Expr::Unary(UnaryExpr { expr: Box::new(expr) }), start, start, vec![kid])),
                        }
                }
;

/*
 * Vector selectors.
 */
vector_selector -> Result<Node, PosError>:
                metric_identifier label_matchers
                {
                        Ok(Node::leaf(Expr::new_vector_selector(Some($1?.val), $2?)?, $span.start()))
                }
        |       metric_identifier
                {
                        Ok(Node::leaf(Expr::new_vector_selector(Some($1?.val), Matchers::empty())?, $span.start()))
                }
        |       label_matchers
                {
                        Ok(Node::leaf(Expr::new_vector_selector(None, $1?)?, $span.start()))
                }
;

label_matchers -> Result<Matchers, PosError>:
                LEFT_BRACE label_match_list RIGHT_BRACE { $2 }
        |       LEFT_BRACE label_match_list COMMA RIGHT_BRACE { $2 }
        |       LEFT_BRACE RIGHT_BRACE { Ok(Matchers::empty()) }
        |       LEFT_BRACE COMMA RIGHT_BRACE { Err(ctx.unexpected_from($span.start(), 1)) }
;

label_match_list -> Result<Matchers, PosError>:
                label_match_list COMMA label_matcher { Ok($1?.append($3?)) }
        |       label_match_list LOR label_matcher { Ok($1?.append_or($3?)) }
        |       label_matcher { Ok(Matchers::empty().append($1?)) }
;

// The error alternatives report Prometheus's syntax error at the offending
// token (the k-th of the production).
label_matcher -> Result<Matcher, PosError>:
                IDENTIFIER match_op STRING
                {
                        let name = lexeme_to_string($lexer, &$1)?;
                        let value = unquote_string(&lexeme_to_string($lexer, &$3)?).map_err(|e| ctx.fail($span.start(), e))?;
                        Matcher::new_matcher($2?.id(), name, value).map_err(|e| ctx.fail($span.start(), e))
                }
        |       string_identifier match_op STRING
                {
                        let name = $1?;
                        let value = unquote_string(&lexeme_to_string($lexer, &$3)?).map_err(|e| ctx.fail($span.start(), e))?;
                        Matcher::new_matcher($2?.id(), name, value).map_err(|e| ctx.fail($span.start(), e))
                }
        |       string_identifier
                {
                        Matcher::new_metric_name_matcher($1?).map_err(|e| ctx.fail($span.start(), e))
                }
        |       IDENTIFIER match_op match_op { Err(ctx.unexpected_from($span.start(), 2)) }
        |       string_identifier match_op match_op { Err(ctx.unexpected_from($span.start(), 2)) }
        |       IDENTIFIER match_op match_op STRING { Err(ctx.unexpected_from($span.start(), 2)) }
        |       string_identifier match_op match_op STRING { Err(ctx.unexpected_from($span.start(), 2)) }
        |       IDENTIFIER match_op match_op IDENTIFIER { Err(ctx.unexpected_from($span.start(), 2)) }
        |       string_identifier match_op match_op IDENTIFIER { Err(ctx.unexpected_from($span.start(), 2)) }
        |       IDENTIFIER match_op IDENTIFIER { Err(ctx.unexpected_from($span.start(), 2)) }
        |       string_identifier match_op IDENTIFIER { Err(ctx.unexpected_from($span.start(), 2)) }
        |       IDENTIFIER { Err(ctx.unexpected_from($span.start(), 1)) }
;

/*
 * Metric descriptions.
 */
metric_identifier -> Result<Token, String>:
                AVG { lexeme_to_token($lexer, $1) }
        |       BOTTOMK { lexeme_to_token($lexer, $1) }
        |       BY { lexeme_to_token($lexer, $1) }
        |       COUNT { lexeme_to_token($lexer, $1) }
        |       COUNT_VALUES { lexeme_to_token($lexer, $1) }
        |       FILL { lexeme_to_token($lexer, $1) }
        |       FILL_LEFT { lexeme_to_token($lexer, $1) }
        |       FILL_RIGHT { lexeme_to_token($lexer, $1) }
        |       GROUP { lexeme_to_token($lexer, $1) }
        |       IDENTIFIER { lexeme_to_token($lexer, $1) }
        |       LAND { lexeme_to_token($lexer, $1) }
        |       LOR { lexeme_to_token($lexer, $1) }
        |       LUNLESS { lexeme_to_token($lexer, $1) }
        |       MAX { lexeme_to_token($lexer, $1) }
        |       METRIC_IDENTIFIER { lexeme_to_token($lexer, $1) }
        |       MIN { lexeme_to_token($lexer, $1) }
        |       OFFSET { lexeme_to_token($lexer, $1) }
        |       QUANTILE { lexeme_to_token($lexer, $1) }
        |       STDDEV { lexeme_to_token($lexer, $1) }
        |       STDVAR { lexeme_to_token($lexer, $1) }
        |       SUM { lexeme_to_token($lexer, $1) }
        |       TOPK { lexeme_to_token($lexer, $1) }
        |       LIMITK { lexeme_to_token($lexer, $1) }
        |       LIMIT_RATIO { lexeme_to_token($lexer, $1) }
        |       WITHOUT { lexeme_to_token($lexer, $1) }
        |       START { lexeme_to_token($lexer, $1) }
        |       END { lexeme_to_token($lexer, $1) }
;

/*
 * Series descriptions (only used by unit tests).
 * Note: this is not supported yet.
 */

/*
 * Keyword lists.
 */
aggregate_op -> Result<Token, String>:
                AVG { lexeme_to_token($lexer, $1) }
        |       BOTTOMK { lexeme_to_token($lexer, $1) }
        |       COUNT { lexeme_to_token($lexer, $1) }
        |       COUNT_VALUES { lexeme_to_token($lexer, $1) }
        |       GROUP { lexeme_to_token($lexer, $1) }
        |       MAX { lexeme_to_token($lexer, $1) }
        |       MIN { lexeme_to_token($lexer, $1) }
        |       QUANTILE { lexeme_to_token($lexer, $1) }
        |       STDDEV { lexeme_to_token($lexer, $1) }
        |       STDVAR { lexeme_to_token($lexer, $1) }
        |       SUM { lexeme_to_token($lexer, $1) }
        |       TOPK { lexeme_to_token($lexer, $1) }
        |       LIMITK { lexeme_to_token($lexer, $1) }
        |       LIMIT_RATIO { lexeme_to_token($lexer, $1) }
;

// inside of grouping options label names can be recognized as keywords by the lexer.
// This is a list of keywords that could also be a label name.
maybe_label -> Result<Token, String>:
                AVG { lexeme_to_token($lexer, $1) }
        |       BOOL { lexeme_to_token($lexer, $1) }
        |       BOTTOMK { lexeme_to_token($lexer, $1) }
        |       BY { lexeme_to_token($lexer, $1) }
        |       COUNT { lexeme_to_token($lexer, $1) }
        |       COUNT_VALUES { lexeme_to_token($lexer, $1) }
        |       FILL { lexeme_to_token($lexer, $1) }
        |       FILL_LEFT { lexeme_to_token($lexer, $1) }
        |       FILL_RIGHT { lexeme_to_token($lexer, $1) }
        |       GROUP { lexeme_to_token($lexer, $1) }
        |       GROUP_LEFT { lexeme_to_token($lexer, $1) }
        |       GROUP_RIGHT { lexeme_to_token($lexer, $1) }
        |       IDENTIFIER { lexeme_to_token($lexer, $1) }
        |       IGNORING { lexeme_to_token($lexer, $1) }
        |       LAND { lexeme_to_token($lexer, $1) }
        |       LOR { lexeme_to_token($lexer, $1) }
        |       LUNLESS { lexeme_to_token($lexer, $1) }
        |       MAX { lexeme_to_token($lexer, $1) }
        |       METRIC_IDENTIFIER { lexeme_to_token($lexer, $1) }
        |       MIN { lexeme_to_token($lexer, $1) }
        |       OFFSET { lexeme_to_token($lexer, $1) }
        |       ON { lexeme_to_token($lexer, $1) }
        |       QUANTILE { lexeme_to_token($lexer, $1) }
        |       STDDEV { lexeme_to_token($lexer, $1) }
        |       STDVAR { lexeme_to_token($lexer, $1) }
        |       SUM { lexeme_to_token($lexer, $1) }
        |       TOPK { lexeme_to_token($lexer, $1) }
        |       LIMITK { lexeme_to_token($lexer, $1) }
        |       LIMIT_RATIO { lexeme_to_token($lexer, $1) }
        |       START { lexeme_to_token($lexer, $1) }
        |       END { lexeme_to_token($lexer, $1) }
        |       ATAN2 { lexeme_to_token($lexer, $1) }
;

match_op -> Result<Token, String>:
                EQL { lexeme_to_token($lexer, $1) }
        |       NEQ { lexeme_to_token($lexer, $1) }
        |       EQL_REGEX { lexeme_to_token($lexer, $1) }
        |       NEQ_REGEX { lexeme_to_token($lexer, $1) }
;

/*
 * Literals.
 */
number_literal -> Result<Node, PosError>:
                NUMBER
                {
                        let text = $lexer.span_str($span);
                        let num = parse_str_radix(text).map_err(|_| ctx.fail($span.start(), number_error(text)))?;
                        Ok(Node::leaf(Expr::from(num), $span.start()))
                }
        |       DURATION
                {
                        let duration = parse_duration($lexer.span_str($span)).map_err(|e| ctx.fail($span.start(), e))?;
                        Ok(Node::leaf(Expr::from(duration.as_secs_f64()), $span.start()))
                }
;

string_literal -> Result<Node, PosError>:
                STRING
                {
                        let s = unquote_string(&span_to_string($lexer, $span)).map_err(|e| ctx.fail($span.start(), e))?;
                        Ok(Node::leaf(Expr::from(s), $span.start()))
                }
;

string_identifier -> Result<String, PosError>:
                STRING {
                        unquote_string(&span_to_string($lexer, $span)).map_err(|e| ctx.fail($span.start(), e))
                }
;

duration -> Result<Duration, PosError>:
                DURATION { parse_duration($lexer.span_str($span)).map_err(|e| ctx.fail($span.start(), e)) }
        |       NUMBER
                {
                        let text = $lexer.span_str($span);
                        let num = parse_str_radix(text).map_err(|_| ctx.fail($span.start(), number_error(text)))?;
                        // Hearth patch: an out-of-range number is an error, not a panic.
                        Duration::try_from_secs_f64(num).map_err(|e| ctx.fail($span.start(), format!("not a valid duration {num}: {e}")))
                }
;

/*
 * Wrappers for optional arguments.
 */
maybe_duration -> Result<Option<Duration>, PosError>:
                { Ok(None) }
        |       duration { $1.map(Some) }
;

%%

use std::time::Duration;
use crate::label::{Labels, Matcher, Matchers};
use crate::parser::{AtModifier, BinModifier, Expr, FunctionArgs, LabelModifier, Offset, UnaryExpr, VectorMatchCardinality, VectorMatchFillValues};
use crate::parser::function::get_function;
use crate::parser::lex::{is_label, LexemeType};
use crate::parser::position::{describe_token, go_quote, Kid, Node, ParseCtx, PosError};
use crate::parser::production::{lexeme_to_string, lexeme_to_token, span_to_string};
use crate::parser::token::{Token, T_IDENTIFIER};
use crate::util::{parse_duration, parse_str_radix, unquote_string};

/// Hearth patch: an aggregation's node; its errors are at the operator.
fn aggregate(
    ctx: &ParseCtx,
    start: usize,
    op: Result<Token, String>,
    modifier: Option<Result<LabelModifier, PosError>>,
    body: Result<(FunctionArgs, Vec<Kid>), PosError>,
) -> Result<Node, PosError> {
    let op = op?;
    let modifier = modifier.transpose()?;
    let (args, kids) = body?;
    let expr = Expr::new_aggregate_expr(op.id(), modifier, args).map_err(|e| ctx.fail(start, e))?;
    Ok(Node::new(expr, start, start, kids))
}

/// Hearth patch: a binary expression's node, with its operator's position.
fn binary(
    lhs: Result<Node, PosError>,
    op: Result<LexemeType, LexemeType>,
    modifier: Result<Option<BinModifier>, PosError>,
    rhs: Result<Node, PosError>,
) -> Result<Node, PosError> {
    let lhs = lhs?;
    let op = op.map_err(|_| PosError::from(String::from("ParseError")))?;
    let modifier = modifier?;
    let rhs = rhs?;
    let (lhs, lhs_kid) = lhs.split();
    let (rhs, rhs_kid) = rhs.split();
    let start = lhs_kid.start;
    let expr = Expr::new_binary_expr(lhs, op.tok_id(), modifier, rhs)?;
    Ok(Node::new(expr, start, op.span().start(), vec![lhs_kid, rhs_kid]))
}

/// Hearth patch: an offset's errors are at the start of the expression it
/// modifies.
fn offset(
    ctx: &ParseCtx,
    node: Result<Node, PosError>,
    offset: Result<Offset, PosError>,
) -> Result<Node, PosError> {
    let node = node?;
    let offset = offset?;
    let start = node.start;
    node.try_map(|e| e.offset_expr(offset).map_err(|e| ctx.fail(start, e)))
}

/// Hearth patch: an `@ <number>`'s errors are at the start of the
/// expression it modifies.
fn at(
    ctx: &ParseCtx,
    node: Result<Node, PosError>,
    number: Result<Expr, PosError>,
) -> Result<Node, PosError> {
    let node = node?;
    let number = number?;
    let start = node.start;
    let at = AtModifier::try_from(number).map_err(|e| ctx.fail(start, e))?;
    node.try_map(|e| e.at_expr(at).map_err(|e| ctx.fail(start, e)))
}

/// Hearth patch: Prometheus's message for a number it cannot parse (Go's
/// `strconv.ParseFloat` error).
fn number_error(text: &str) -> String {
    format!("error parsing number: strconv.ParseFloat: parsing {}: invalid syntax", go_quote(text))
}

fn update_optional_matching(
    modifier: Option<BinModifier>,
    matching: Option<LabelModifier>,
) -> Option<BinModifier> {
    let modifier = modifier.unwrap_or_default();
    Some(modifier.with_matching(matching))
}

fn update_optional_card(
    modifier: Option<BinModifier>,
    card: VectorMatchCardinality,
) -> Option<BinModifier> {
    let modifier = modifier.unwrap_or_default();
    Some(modifier.with_card(card))
}

fn update_optional_fill(
    modifier: Option<BinModifier>,
    fill: VectorMatchFillValues,
) -> Option<BinModifier> {
    let modifier = modifier.unwrap_or_default();
    Some(modifier.with_fill_values(fill))
}
