//! Aggregation operators (`sum`, `avg`, `topk`, `quantile`, ...) with
//! `by`/`without` grouping, computed as Prometheus does (Kahan sums,
//! incremental means on overflow, NaN ordering).

use std::collections::HashMap;

use hearth_model::{Labels, LabelsBuilder, METRIC_NAME};
use promql_parser::parser::{AggregateExpr, LabelModifier};

use crate::eval::{prometheus_labels_hash, Evaluator, FastMap};
use crate::functions::{format_go_float, kahan_sum_inc, quantile};
use crate::{Error, Result, Sample, Value};

/// The labels of the group a sample belongs to.
fn group_labels(m: &Labels, modifier: &Option<LabelModifier>) -> Labels {
    match modifier {
        None => Labels::empty(),
        Some(LabelModifier::Include(l)) => Labels::from_sorted(
            m.iter()
                .filter(|x| l.labels.iter().any(|n| n == x.name))
                .map(|x| (x.name, x.value)),
        ),
        Some(LabelModifier::Exclude(l)) => Labels::from_sorted(
            m.iter()
                .filter(|x| x.name != METRIC_NAME && !l.labels.iter().any(|n| n == x.name))
                .map(|x| (x.name, x.value)),
        ),
    }
}

/// Running state of one group.
#[derive(Default)]
struct Group {
    metric: Labels,
    value: f64,
    kahan: f64,
    mean: f64,
    count: f64,
    incremental_mean: bool,
    /// Sum of squared deviations, for `stddev`/`stdvar`.
    aux: f64,
    /// Whether any member's name is to be dropped.
    drop_name: bool,
    members: Vec<Sample>,
}

impl Evaluator<'_> {
    pub(crate) fn eval_aggregate(&mut self, a: &AggregateExpr, t: i64) -> Result<Value> {
        let op = a.op.to_string();
        let param = match &a.param {
            Some(p) => Some(self.eval(p, t)?),
            None => None,
        };
        let input = self.eval_vector(&a.expr, t)?;
        let param_f = match &param {
            Some(Value::Scalar { v, .. }) => Some(*v),
            _ => None,
        };
        let param_s = match &param {
            Some(Value::String { v, .. }) => Some(v.clone()),
            _ => None,
        };
        match op.as_str() {
            "topk" | "bottomk" | "limitk" => {
                let k = param_f.unwrap_or(f64::NAN);
                if k.is_nan() {
                    return Err(Error::Execution("Parameter value is NaN".into()));
                }
                if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&k) {
                    return Err(Error::Execution(format!(
                        "Scalar value {} overflows int64",
                        format_go_float(k)
                    )));
                }
                let k = k as i64;
                if k < 1 {
                    return Ok(Value::Vector(Vec::new()));
                }
                let groups = self.group(input, &a.modifier);
                let mut out = Vec::new();
                for mut g in groups {
                    match op.as_str() {
                        "topk" => g.members.sort_by(|x, y| cmp_nan_last(x.f, y.f, true)),
                        "bottomk" => g.members.sort_by(|x, y| cmp_nan_last(x.f, y.f, false)),
                        _ => {}
                    }
                    out.extend(g.members.into_iter().take(k as usize).map(|mut s| {
                        s.t = t;
                        s
                    }));
                }
                Ok(Value::Vector(out))
            }
            "limit_ratio" => {
                let r = param_f.unwrap_or(f64::NAN);
                if r.is_nan() {
                    return Err(Error::Execution("Ratio value is NaN".into()));
                }
                let r = if (-1.0..=1.0).contains(&r) {
                    r
                } else {
                    let capped = r.clamp(-1.0, 1.0);
                    let pos = self.param_position("limit_ratio");
                    self.warn(
                        format!(
                            "ratio value should be between -1 and 1, got {}, capping to {}",
                            format_go_float(r),
                            format_go_float(capped)
                        ),
                        pos,
                    );
                    capped
                };
                let groups = self.group(input, &a.modifier);
                let mut out = Vec::new();
                for g in groups {
                    for s in g.members {
                        let sample_offset =
                            prometheus_labels_hash(&s.metric) as f64 / u64::MAX as f64;
                        let keep = (r >= 0.0 && sample_offset < r)
                            || (r < 0.0 && sample_offset >= 1.0 + r);
                        if keep {
                            out.push(s);
                        }
                    }
                }
                Ok(Value::Vector(out))
            }
            "count_values" => {
                let label = param_s.unwrap_or_default();
                if !hearth_model::labels::is_valid_label_name(&label) {
                    return Err(Error::Execution(format!("invalid label name {label:?}")));
                }
                let mut order: Vec<Labels> = Vec::new();
                let mut counts: HashMap<Labels, f64> = HashMap::new();
                for s in input {
                    let g = group_labels(&s.metric, &a.modifier);
                    let mut b = LabelsBuilder::new();
                    for l in g.iter() {
                        b.set(l.name, l.value);
                    }
                    b.set(&label, &format_go_float(s.f));
                    let m = b.build();
                    let c = counts.entry(m.clone()).or_insert_with(|| {
                        order.push(m);
                        0.0
                    });
                    *c += 1.0;
                }
                Ok(Value::Vector(
                    order
                        .into_iter()
                        .map(|m| {
                            let f = counts.get(&m).copied().unwrap_or(0.0);
                            Sample {
                                metric: m,
                                t,
                                f,
                                h: None,
                                drop_name: false,
                            }
                        })
                        .collect(),
                ))
            }
            "quantile" => {
                let q = param_f.unwrap_or(f64::NAN);
                if !(0.0..=1.0).contains(&q) {
                    let pos = self.param_position("quantile");
                    self.warn(
                        format!(
                            "quantile value should be between 0 and 1, got {}",
                            format_go_float(q)
                        ),
                        pos,
                    );
                }
                let groups = self.group(input, &a.modifier);
                Ok(Value::Vector(
                    groups
                        .into_iter()
                        .map(|g| {
                            let vals: Vec<f64> = g.members.iter().map(|s| s.f).collect();
                            Sample {
                                metric: g.metric,
                                t,
                                f: quantile(q, vals),
                                h: None,
                                drop_name: g.drop_name,
                            }
                        })
                        .collect(),
                ))
            }
            _ => self.simple_aggregate(&op, input, &a.modifier, t),
        }
    }

    /// Groups samples, keeping first-seen group order.
    /// The group key of `m`, remembered across steps (per aggregation node:
    /// `modifier` is the node's own field).
    fn group_key(&self, m: &Labels, modifier: &Option<LabelModifier>) -> Labels {
        let node = modifier as *const Option<LabelModifier> as usize;
        self.labels_cache
            .get(node, m, |m| group_labels(m, modifier))
    }

    fn group(&self, input: Vec<Sample>, modifier: &Option<LabelModifier>) -> Vec<Group> {
        let mut idx: FastMap<Labels, usize> = FastMap::default();
        let mut groups: Vec<Group> = Vec::new();
        for s in input {
            let g = self.group_key(&s.metric, modifier);
            let i = *idx.entry(g.clone()).or_insert_with(|| {
                groups.push(Group {
                    metric: g,
                    ..Group::default()
                });
                groups.len() - 1
            });
            groups[i].drop_name |= s.drop_name;
            groups[i].members.push(s);
        }
        groups
    }

    fn simple_aggregate(
        &mut self,
        op: &str,
        input: Vec<Sample>,
        modifier: &Option<LabelModifier>,
        t: i64,
    ) -> Result<Value> {
        let mut idx: FastMap<Labels, usize> = FastMap::default();
        let mut groups: Vec<Group> = Vec::new();
        for s in input {
            let f = s.f;
            let g = self.group_key(&s.metric, modifier);
            let i = match idx.get(&g) {
                Some(i) => *i,
                None => {
                    groups.push(Group {
                        metric: g.clone(),
                        value: f,
                        mean: f,
                        count: 1.0,
                        aux: if f.is_finite() { 0.0 } else { f64::NAN },
                        drop_name: s.drop_name,
                        ..Group::default()
                    });
                    idx.insert(g, groups.len() - 1);
                    continue;
                }
            };
            let gr = &mut groups[i];
            gr.count += 1.0;
            gr.drop_name |= s.drop_name;
            match op {
                "sum" => {
                    (gr.value, gr.kahan) = kahan_sum_inc(f, gr.value, gr.kahan);
                }
                "avg" => {
                    if !gr.incremental_mean {
                        let (nv, nc) = kahan_sum_inc(f, gr.value, gr.kahan);
                        if !nv.is_infinite() {
                            gr.value = nv;
                            gr.kahan = nc;
                            continue;
                        }
                        gr.incremental_mean = true;
                        gr.mean = gr.value / (gr.count - 1.0);
                        gr.kahan /= gr.count - 1.0;
                    }
                    let q = (gr.count - 1.0) / gr.count;
                    (gr.mean, gr.kahan) = kahan_sum_inc(f / gr.count, q * gr.mean, q * gr.kahan);
                }
                "max" if gr.value < f || gr.value.is_nan() => gr.value = f,
                "min" if gr.value > f || gr.value.is_nan() => gr.value = f,
                "stddev" | "stdvar" if !f.is_finite() => gr.aux = f64::NAN,
                "stddev" | "stdvar" => {
                    let delta = f - (gr.mean + gr.kahan);
                    (gr.mean, gr.kahan) = kahan_sum_inc(delta / gr.count, gr.mean, gr.kahan);
                    gr.aux += delta * (f - (gr.mean + gr.kahan));
                }
                _ => {}
            }
        }
        let out = groups
            .into_iter()
            .map(|g| {
                let f = match op {
                    "sum" => g.value + g.kahan,
                    "avg" => {
                        if g.incremental_mean {
                            g.mean + g.kahan
                        } else {
                            g.value / g.count + g.kahan / g.count
                        }
                    }
                    "count" => g.count,
                    "group" => 1.0,
                    "stdvar" => g.aux / g.count,
                    "stddev" => (g.aux / g.count).sqrt(),
                    _ => g.value,
                };
                Sample {
                    metric: g.metric,
                    t,
                    f,
                    h: None,
                    drop_name: g.drop_name,
                }
            })
            .collect();
        Ok(Value::Vector(out))
    }
}

/// Orders values ascending (or descending), NaNs last either way.
fn cmp_nan_last(a: f64, b: f64, descending: bool) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ if descending => b.partial_cmp(&a).unwrap_or(Ordering::Equal),
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}
