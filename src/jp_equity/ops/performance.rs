//! Op `performance` (asset `prediction_performance`, daily): live model monitoring. Each
//! day's out-of-sample predictions joined with the labels as they arrive (the 1-day label
//! a day later, the 20-day one 20 trading days later: a partition is re-keyed each time
//! its labels grow), with the daily IC and RankIC per horizon and their 20- and 60-day
//! rolling means over the days whose labels have arrived. A rule check on the rolling
//! RankIC (severity "warn") reports decay; alerts announce it. Each row names the model
//! whose predictions it scored (`model_id`), and with MLflow tracking on, each day's
//! figures are logged to that model's run (`score_tracking::live`).

use super::train::input_name;
use crate::core::error::UsageError;
use crate::core::partition::Coverage;
use crate::core::rule::Rule;
use crate::jp_equity::model::dataset::{dates_of, f64_values, horizon_tag, join_stock_days};
use crate::jp_equity::model::metrics::{daily_pairs, day_metrics};
use crate::op::tracking::{Tracked, TrackingReport};
use crate::op::{ColumnKind, Op, OpContext, OpSpec, ParamSpec, ParamType};
use anyhow::{Result, anyhow};
use chrono::NaiveDate;
use polars::prelude::*;
use serde_json::Value;
use std::collections::BTreeMap;

pub struct PerformanceOp;

/// Per rolling window: the mean IC, mean RankIC and days of each output row.
type Rolling = (Vec<Option<f64>>, Vec<Option<f64>>, Vec<i32>);

/// Rolling windows, in trading days.
pub const WINDOWS: [usize; 2] = [20, 60];

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "predictions",
        ty: ParamType::Str,
        required: false,
        doc: "the predictions input (default predictions)",
    },
    ParamSpec {
        name: "labels",
        ty: ParamType::Str,
        required: false,
        doc: "the labels input (default labels)",
    },
    ParamSpec {
        name: "in_sample",
        ty: ParamType::Bool,
        required: false,
        doc: "also score predictions of days the model trained on (default false)",
    },
];

impl OpSpec for PerformanceOp {
    fn name(&self) -> &'static str {
        "performance"
    }

    fn code_version(&self) -> &'static str {
        crate::op_code_version!("jp_equity/model/metrics.rs", "jp_equity/frames.rs")
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn validate(&self, rule: &Rule) -> Vec<(usize, String)> {
        let mut errs = Vec::new();
        let need = WINDOWS[1] as i64 - 1;
        for (k, d) in [("predictions", "predictions"), ("labels", "labels")] {
            let name = input_name(&rule.params, k, d);
            match rule.inputs.iter().find(|i| i.asset == name) {
                None => errs.push((1, format!("op performance needs the input '{name}': add {{ asset = \"{name}\", window = [-{need}, 0] }}"))),
                Some(i) => match i.coverage {
                    Coverage::Window(a, 0) if -a >= need => {}
                    c => errs.push((i.line, format!("input '{name}': the {}-day rolling metrics read window = [-{need}, 0] (not {c})", WINDOWS[1]))),
                },
            }
        }
        errs
    }
}

impl Op for PerformanceOp {
    fn tracked(&self) -> Tracked {
        Tracked::ModelMetrics
    }

    fn tracking(
        &self,
        _params: &Value,
        frame: &DataFrame,
        _attachments: &std::path::Path,
    ) -> Result<TrackingReport> {
        super::score_tracking::live(frame)
    }

    fn run(&self, ctx: &OpContext) -> Result<DataFrame> {
        let file = ctx.rule.file.display().to_string();
        let p_name = input_name(&ctx.params, "predictions", "predictions");
        let l_name = input_name(&ctx.params, "labels", "labels");
        let p_in = ctx.input(p_name).ok_or_else(|| {
            anyhow!(UsageError(format!(
                "{file}: op performance needs the input '{p_name}'"
            )))
        })?;
        let l_in = ctx.input(l_name).ok_or_else(|| {
            anyhow!(UsageError(format!(
                "{file}: op performance needs the input '{l_name}'"
            )))
        })?;
        let in_sample = ctx
            .params
            .get("in_sample")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let mut wanted = vec![("Date", ColumnKind::Date)];
        if !in_sample {
            wanted.push(("in_sample", ColumnKind::Bool));
        }
        p_in.expect_columns("performance", &wanted)?;
        l_in.expect_columns("performance", &[("Date", ColumnKind::Date)])?;
        p_in.expect_same_keys("performance", l_in, &["Code", "Date"])?;
        let mut preds = p_in.scan()?;
        if !in_sample {
            preds = preds.filter(col("in_sample").not());
        }
        let joined = join_stock_days(preds, l_in.scan()?, "the predictions with the labels")?;
        let labels: Vec<String> = joined
            .get_column_names()
            .iter()
            .map(|c| c.to_string())
            .filter(|c| {
                c.starts_with("fwd_ret_")
                    && joined.column(&format!("pred_{}", horizon_tag(c))).is_ok()
            })
            .collect();
        let day = dates_of(&joined)?;
        // The model each day's predictions came from (what a tracker files them under).
        let model_of_day: BTreeMap<NaiveDate, String> =
            match joined.column("model_id").ok().and_then(|c| c.str().ok()) {
                Some(ids) => day
                    .iter()
                    .zip(ids.iter())
                    .filter_map(|(d, id)| Some((*d, id?.to_string())))
                    .collect(),
                None => BTreeMap::new(),
            };
        // Daily metrics per (date, horizon).
        let mut daily: BTreeMap<(NaiveDate, String), (usize, f64, f64)> = BTreeMap::new();
        for label in &labels {
            let tag = horizon_tag(label).to_string();
            let (pred, y) = (
                f64_values(&joined, &format!("pred_{tag}"))?,
                f64_values(&joined, label)?,
            );
            for (d, a, b) in daily_pairs(&day, &pred, &y) {
                if let Some(m) = day_metrics(&a, &b) {
                    daily.insert((d, tag.clone()), (m.n, m.ic, m.rank_ic));
                }
            }
        }
        // Every window date of the batch, for the rolling means.
        let window_dates: Vec<NaiveDate> = p_in
            .partitions
            .iter()
            .filter_map(|(p, _)| p.date())
            .collect();
        let (mut out_date, mut out_h, mut n, mut ic, mut ric) =
            (vec![], vec![], vec![], vec![], vec![]);
        let mut out_model: Vec<Option<String>> = vec![];
        let mut rolling: Vec<Rolling> = WINDOWS.iter().map(|_| (vec![], vec![], vec![])).collect();
        for out in &ctx.partitions {
            let Some(d) = out.date() else { continue };
            let upto: Vec<NaiveDate> = window_dates.iter().copied().filter(|x| *x <= d).collect();
            for label in &labels {
                let tag = horizon_tag(label).to_string();
                let today = daily.get(&(d, tag.clone()));
                out_date.push(d);
                out_model.push(model_of_day.get(&d).cloned());
                out_h.push(tag.clone());
                n.push(today.map(|t| t.0 as i32));
                ic.push(today.map(|t| t.1));
                ric.push(today.map(|t| t.2));
                for (w, r) in WINDOWS.iter().zip(rolling.iter_mut()) {
                    let last: Vec<&(usize, f64, f64)> = upto
                        .iter()
                        .rev()
                        .take(*w)
                        .filter_map(|x| daily.get(&(*x, tag.clone())))
                        .collect();
                    let k = last.len();
                    let mean = |f: fn(&(usize, f64, f64)) -> f64| {
                        (k > 0).then(|| last.iter().map(|t| f(t)).sum::<f64>() / k as f64)
                    };
                    r.0.push(mean(|t| t.1));
                    r.1.push(mean(|t| t.2));
                    r.2.push(k as i32);
                }
            }
        }
        let mut cols = vec![
            Column::new("Date".into(), out_date),
            Column::new("horizon".into(), out_h),
            Column::new("stocks".into(), n),
            Column::new("ic".into(), ic),
            Column::new("rank_ic".into(), ric),
        ];
        for (w, r) in WINDOWS.iter().zip(rolling) {
            cols.push(Column::new(format!("ic_{w}d").into(), r.0));
            cols.push(Column::new(format!("rank_ic_{w}d").into(), r.1));
            cols.push(Column::new(format!("days_{w}d").into(), r.2));
        }
        cols.push(Column::new("model_id".into(), out_model));
        Ok(DataFrame::new_infer_height(cols)?)
    }
}
