//! Op `evaluate` (asset `model_evaluation`): the stored model's walk-forward validation
//! metrics as rows, one per fold, horizon and validation day (PIPELINE.md section 4:
//! IC, RankIC, decile spread, hit rate, stocks), plus, where the market's planted
//! component exists (`synthetic_truth`), the oracle IC of that day and horizon: the ceiling
//! a perfect model of the planted signal would reach. With MLflow tracking on, these
//! figures are logged to the evaluated model's run (`score_tracking::evaluation`).

use super::train::input_name;
use crate::core::error::UsageError;
use crate::core::rule::Rule;
use crate::jp_equity::model::dataset::{f64_values, join_stock_days};
use crate::jp_equity::model::metrics::{daily_pairs, pearson};
use crate::jp_equity::model::store::StoredModel;
use crate::op::tracking::{Tracked, TrackingReport};
use crate::op::{ColumnKind, Op, OpContext, OpSpec, ParamSpec, ParamType};
use anyhow::{Context, Result, anyhow};
use polars::prelude::*;
use serde_json::Value;
use std::collections::HashMap;

pub struct EvaluateOp;

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "model",
        ty: ParamType::Str,
        required: false,
        doc: "the model input (default trained_model)",
    },
    ParamSpec {
        name: "labels",
        ty: ParamType::Str,
        required: false,
        doc: "the labels input, for the oracle IC (default labels)",
    },
    ParamSpec {
        name: "truth",
        ty: ParamType::Str,
        required: false,
        doc: "the planted component, when the market has one (default synthetic_truth)",
    },
];

/// Daily oracle IC per (date, label column): Pearson of `planted_next` with the label.
fn oracle(
    truth: DataFrame,
    labels: DataFrame,
    label_cols: &[String],
) -> Result<HashMap<(i32, String), f64>> {
    let truth = truth.lazy().select([
        col("Code"),
        col("Date"),
        col("planted_next").cast(DataType::Float64),
    ]);
    let joined = join_stock_days(
        truth,
        labels.lazy(),
        "the planted component with the labels",
    )?;
    let dates: Vec<i32> = joined
        .column("Date")?
        .cast(&DataType::Int32)?
        .i32()?
        .iter()
        .map(|d| d.unwrap_or(0))
        .collect();
    let planted = f64_values(&joined, "planted_next")?;
    let mut out = HashMap::new();
    for label in label_cols {
        let y = f64_values(&joined, label)?;
        for (day, a, b) in daily_pairs(&dates, &planted, &y) {
            if a.len() >= crate::jp_equity::model::metrics::MIN_STOCKS
                && let Some(ic) = pearson(&a, &b)
            {
                out.insert((day, label.clone()), ic);
            }
        }
    }
    Ok(out)
}

impl OpSpec for EvaluateOp {
    fn name(&self) -> &'static str {
        "evaluate"
    }

    fn code_version(&self) -> &'static str {
        crate::op_code_version!(
            "jp_equity/model/store.rs",
            "jp_equity/model/metrics.rs",
            "jp_equity/frames.rs"
        )
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn validate(&self, rule: &Rule) -> Vec<(usize, String)> {
        let m = input_name(&rule.params, "model", "trained_model");
        if rule.inputs.iter().any(|i| i.asset == m) {
            Vec::new()
        } else {
            vec![(
                1,
                format!("op evaluate needs the input '{m}': add {{ asset = \"{m}\" }}"),
            )]
        }
    }
}

impl Op for EvaluateOp {
    fn tracked(&self) -> Tracked {
        Tracked::ModelMetrics
    }

    fn tracking(
        &self,
        _params: &Value,
        frame: &DataFrame,
        _attachments: &std::path::Path,
    ) -> Result<TrackingReport> {
        super::score_tracking::evaluation(frame)
    }

    fn run(&self, ctx: &OpContext) -> Result<DataFrame> {
        let file = ctx.rule.file.display().to_string();
        let m_name = input_name(&ctx.params, "model", "trained_model");
        let m_in = ctx.input(m_name).ok_or_else(|| {
            anyhow!(UsageError(format!(
                "{file}: op evaluate needs the input '{m_name}'"
            )))
        })?;
        let model = StoredModel::from_frame(
            &m_in
                .scan()?
                .collect()
                .map_err(anyhow::Error::from)
                .context("cannot read the model")?,
        )?;
        let truth = ctx.input(input_name(&ctx.params, "truth", "synthetic_truth"));
        let labels = ctx.input(input_name(&ctx.params, "labels", "labels"));
        let oracle = match (truth, labels) {
            (Some(t), Some(l)) if !t.partitions.is_empty() && !l.partitions.is_empty() => {
                t.expect_columns(
                    "evaluate",
                    &[
                        ("Date", ColumnKind::Date),
                        ("planted_next", ColumnKind::Numeric),
                    ],
                )?;
                t.expect_same_keys("evaluate", l, &["Code", "Date"])?;
                oracle(t.scan()?.collect()?, l.scan()?.collect()?, &model.labels)?
            }
            _ => HashMap::new(),
        };
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).ok_or_else(|| anyhow!("epoch"))?;
        let id = model.id();
        let (mut fold, mut horizon, mut date, mut n) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut ic, mut rank_ic, mut spread, mut hit, mut oracle_ic) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for f in &model.metrics.folds {
            for d in &f.days {
                fold.push(f.fold as i32 + 1);
                horizon.push(d.horizon.clone());
                date.push(d.date);
                n.push(d.n as i32);
                ic.push(d.ic);
                rank_ic.push(d.rank_ic);
                spread.push(d.spread);
                hit.push(d.hit_rate);
                let key = ((d.date - epoch).num_days() as i32, d.horizon.clone());
                oracle_ic.push(oracle.get(&key).copied());
            }
        }
        let rows = fold.len();
        Ok(df!(
            "fold" => fold,
            "horizon" => horizon,
            "Date" => date,
            "stocks" => n,
            "ic" => ic,
            "rank_ic" => rank_ic,
            "decile_spread" => spread,
            "hit_rate" => hit,
            "oracle_ic" => oracle_ic,
            "model_id" => vec![id.as_str(); rows],
        )?)
    }
}
