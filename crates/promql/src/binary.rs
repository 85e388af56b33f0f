//! Binary operators: arithmetic and comparisons between scalars and
//! vectors, vector matching (`on`, `ignoring`, `group_left`, `group_right`)
//! and the set operators `and`, `or`, `unless`, with Prometheus's errors.

use std::collections::{HashMap, HashSet};

use hearth_model::{Labels, LabelsBuilder, METRIC_NAME};
use promql_parser::label::Labels as ParserLabels;
use promql_parser::parser::{BinModifier, BinaryExpr, LabelModifier, VectorMatchCardinality};

use crate::eval::{Evaluator, NAME_LABELS};
use crate::{Error, Result, Sample, Value};

/// The kind of a binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Arithmetic,
    Comparison,
    Set,
}

fn op_kind(op: &str) -> OpKind {
    match op {
        "==" | "!=" | ">" | "<" | ">=" | "<=" => OpKind::Comparison,
        "and" | "or" | "unless" => OpKind::Set,
        _ => OpKind::Arithmetic,
    }
}

/// Applies an arithmetic operator.
pub(crate) fn arith(op: &str, l: f64, r: f64) -> f64 {
    match op {
        "+" => l + r,
        "-" => l - r,
        "*" => l * r,
        "/" => l / r,
        "%" => l % r,
        "^" => l.powf(r),
        "atan2" => l.atan2(r),
        _ => f64::NAN,
    }
}

/// Applies a comparison operator.
pub(crate) fn compare(op: &str, l: f64, r: f64) -> bool {
    match op {
        "==" => l == r,
        "!=" => l != r,
        ">" => l > r,
        "<" => l < r,
        ">=" => l >= r,
        "<=" => l <= r,
        _ => false,
    }
}

/// How two vectors' samples are matched.
struct Matching {
    card: VectorMatchCardinality,
    /// `fill_left`: the value of a missing left-hand sample.
    fill_lhs: Option<f64>,
    /// `fill_right`: the value of a missing right-hand sample.
    fill_rhs: Option<f64>,
    on: bool,
    labels: Vec<String>,
    include: Vec<String>,
}

fn parser_labels(l: &ParserLabels) -> Vec<String> {
    l.labels.to_vec()
}

fn matching(m: &Option<BinModifier>, set_op: bool) -> Matching {
    let (card, on, labels) = match m {
        None => (
            if set_op {
                VectorMatchCardinality::ManyToMany
            } else {
                VectorMatchCardinality::OneToOne
            },
            false,
            Vec::new(),
        ),
        Some(m) => {
            let (on, labels) = match &m.matching {
                Some(LabelModifier::Include(l)) => (true, parser_labels(l)),
                Some(LabelModifier::Exclude(l)) => (false, parser_labels(l)),
                None => (false, Vec::new()),
            };
            let card = if set_op {
                VectorMatchCardinality::ManyToMany
            } else {
                m.card.clone()
            };
            (card, on, labels)
        }
    };
    let include = card.labels().map(parser_labels).unwrap_or_default();
    let fills = m
        .as_ref()
        .map(|m| m.fill_values.clone())
        .unwrap_or_default();
    Matching {
        card,
        fill_lhs: fills.lhs,
        fill_rhs: fills.rhs,
        on,
        labels,
        include,
    }
}

/// The matching signature of a label set: the `on` labels, or every label
/// but `__name__` and the `ignoring` labels.
fn signature(m: &Labels, on: bool, names: &[String]) -> Labels {
    if on {
        Labels::from_sorted(
            m.iter()
                .filter(|l| names.iter().any(|n| n == l.name))
                .map(|l| (l.name, l.value)),
        )
    } else {
        Labels::from_sorted(
            m.iter()
                .filter(|l| l.name != METRIC_NAME && !names.iter().any(|n| n == l.name))
                .map(|l| (l.name, l.value)),
        )
    }
}

impl Evaluator<'_> {
    pub(crate) fn eval_binary(&mut self, b: &BinaryExpr, t: i64) -> Result<Value> {
        let op = b.op.to_string();
        let kind = op_kind(&op);
        let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
        let lhs = self.eval(&b.lhs, t)?;
        let rhs = self.eval(&b.rhs, t)?;
        match (lhs, rhs) {
            (Value::Scalar { v: l, .. }, Value::Scalar { v: r, .. }) => {
                let v = match kind {
                    OpKind::Comparison => {
                        if compare(&op, l, r) {
                            1.0
                        } else {
                            0.0
                        }
                    }
                    _ => arith(&op, l, r),
                };
                Ok(Value::Scalar { t, v })
            }
            (Value::Vector(l), Value::Scalar { v: r, .. }) => {
                self.vector_scalar(&op, kind, return_bool, l, r, false)
            }
            (Value::Scalar { v: l, .. }, Value::Vector(r)) => {
                self.vector_scalar(&op, kind, return_bool, r, l, true)
            }
            (Value::Vector(l), Value::Vector(r)) => {
                let m = matching(&b.modifier, kind == OpKind::Set);
                match op.as_str() {
                    "and" => Ok(Value::Vector(and_unless(l, r, &m, true))),
                    "unless" => Ok(Value::Vector(and_unless(l, r, &m, false))),
                    "or" => Ok(Value::Vector(or(l, r, &m))),
                    _ => self.vector_vector(&op, kind, return_bool, l, r, &m),
                }
            }
            (l, r) => Err(Error::Execution(format!(
                "binary expression must contain only scalar and instant vector types, got {} and {}",
                l.type_name(),
                r.type_name()
            ))),
        }
    }

    /// A vector and a scalar; `swap` when the scalar is on the left.
    fn vector_scalar(
        &mut self,
        op: &str,
        kind: OpKind,
        return_bool: bool,
        vec: Vec<Sample>,
        scalar: f64,
        swap: bool,
    ) -> Result<Value> {
        let mut out = Vec::with_capacity(vec.len());
        for mut s in vec {
            let (l, r) = if swap { (scalar, s.f) } else { (s.f, scalar) };
            let (value, keep) = match kind {
                OpKind::Comparison => {
                    let keep = compare(op, l, r);
                    if return_bool {
                        (if keep { 1.0 } else { 0.0 }, true)
                    } else {
                        // The vector's value is kept, whichever side it is on.
                        (s.f, keep)
                    }
                }
                _ => (arith(op, l, r), true),
            };
            if !keep {
                continue;
            }
            s.f = value;
            if kind == OpKind::Arithmetic || return_bool {
                self.drop_metric_name(&mut s);
            }
            out.push(s);
        }
        self.check_duplicates(&out)?;
        Ok(Value::Vector(out))
    }

    fn vector_vector(
        &mut self,
        op: &str,
        kind: OpKind,
        return_bool: bool,
        lhs: Vec<Sample>,
        rhs: Vec<Sample>,
        m: &Matching,
    ) -> Result<Value> {
        let one_to_many = matches!(m.card, VectorMatchCardinality::OneToMany(_));
        let (lhs, rhs) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };
        let mut right: HashMap<Labels, Sample> = HashMap::new();
        let mut right_order: Vec<Labels> = Vec::new();
        for rs in rhs {
            let sig = signature(&rs.metric, m.on, &m.labels);
            if let Some(dup) = right.get(&sig) {
                let side = if one_to_many { "left" } else { "right" };
                return Err(Error::Execution(format!(
                    "found duplicate series for the match group {sig} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                    dup.metric, rs.metric
                )));
            }
            right_order.push(sig.clone());
            right.insert(sig, rs);
        }
        let empty = Sample {
            metric: Labels::empty(),
            t: 0,
            f: 0.0,
            h: None,
            drop_name: false,
        };
        let mut matched_one: HashSet<Labels> = HashSet::new();
        let mut matched_many: HashMap<Labels, HashSet<Labels>> = HashMap::new();
        let mut out = Vec::new();
        for ls in &lhs {
            let sig = signature(&ls.metric, m.on, &m.labels);
            let filled;
            let rs = match right.get(&sig) {
                Some(rs) => rs,
                None => match m.fill_rhs {
                    Some(f) => {
                        filled = Sample { f, ..empty.clone() };
                        &filled
                    }
                    None => continue,
                },
            };
            let (fl, fr) = if one_to_many {
                (rs.f, ls.f)
            } else {
                (ls.f, rs.f)
            };
            let (mut value, keep) = match kind {
                OpKind::Comparison => (fl, compare(op, fl, fr)),
                _ => (arith(op, fl, fr), true),
            };
            if return_bool {
                value = if keep { 1.0 } else { 0.0 };
            } else if !keep {
                continue;
            }
            let mut b = LabelsBuilder::new();
            for l in ls.metric.iter() {
                b.set(l.name, l.value);
            }
            let drop_now = kind == OpKind::Arithmetic
                || (return_bool && !self.opts.enable_delayed_name_removal);
            if drop_now {
                for n in NAME_LABELS {
                    b.del(n);
                }
            }
            if matches!(m.card, VectorMatchCardinality::OneToOne) {
                if m.on {
                    let keep: Vec<String> = ls
                        .metric
                        .iter()
                        .map(|l| l.name.to_string())
                        .filter(|n| !m.labels.contains(n))
                        .collect();
                    for n in keep {
                        b.del(&n);
                    }
                } else {
                    for n in &m.labels {
                        b.del(n);
                    }
                }
            }
            for n in &m.include {
                match rs.metric.get(n) {
                    Some(v) => b.set(n, v),
                    None => b.del(n),
                };
            }
            let metric = b.build();
            if matches!(m.card, VectorMatchCardinality::OneToOne) {
                if !matched_one.insert(sig) {
                    return Err(Error::Execution(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
                    ));
                }
            } else {
                let inserted = matched_many.entry(sig).or_default();
                if !inserted.insert(metric.clone()) {
                    return Err(Error::Execution(
                        "multiple matches for labels: grouping labels must ensure unique matches"
                            .into(),
                    ));
                }
            }
            let drop_name =
                return_bool || (kind == OpKind::Comparison && ls.drop_name && !one_to_many);
            out.push(Sample {
                metric,
                t: ls.t,
                f: value,
                h: None,
                drop_name: drop_name && self.opts.enable_delayed_name_removal,
            });
        }
        if let Some(fill) = m.fill_lhs {
            for sig in right_order {
                if matched_one.contains(&sig) || matched_many.contains_key(&sig) {
                    continue;
                }
                let Some(rs) = right.get(&sig) else {
                    continue;
                };
                let (fl, fr) = if one_to_many {
                    (rs.f, fill)
                } else {
                    (fill, rs.f)
                };
                let (mut value, keep) = match kind {
                    OpKind::Comparison => (fl, compare(op, fl, fr)),
                    _ => (arith(op, fl, fr), true),
                };
                if return_bool {
                    value = if keep { 1.0 } else { 0.0 };
                } else if !keep {
                    continue;
                }
                out.push(Sample {
                    metric: sig,
                    t: rs.t,
                    f: value,
                    h: None,
                    drop_name: false,
                });
            }
        }
        Ok(Value::Vector(out))
    }
}

fn set_signature(s: &Sample, m: &Matching) -> Labels {
    signature(&s.metric, m.on, &m.labels)
}

fn and_unless(lhs: Vec<Sample>, rhs: Vec<Sample>, m: &Matching, and: bool) -> Vec<Sample> {
    let right: HashSet<Labels> = rhs.iter().map(|s| set_signature(s, m)).collect();
    lhs.into_iter()
        .filter(|s| right.contains(&set_signature(s, m)) == and)
        .collect()
}

fn or(lhs: Vec<Sample>, rhs: Vec<Sample>, m: &Matching) -> Vec<Sample> {
    let left: HashSet<Labels> = lhs.iter().map(|s| set_signature(s, m)).collect();
    let mut out = lhs;
    out.extend(
        rhs.into_iter()
            .filter(|s| !left.contains(&set_signature(s, m))),
    );
    out
}
