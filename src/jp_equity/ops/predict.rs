//! Op `predict` (asset `predictions`, daily): for every stock with a full input window on
//! the date, the five quantiles and the point prediction (the median) per horizon, from the
//! stored model, with the model's id and whether the date lies in its training range.

use super::train::{input_manifest, input_name, model_columns, read_features};
use crate::core::error::UsageError;
use crate::core::partition::Coverage;
use crate::core::rule::Rule;
use crate::jp_equity::model::dataset::{Panel, horizon_tag};
use crate::jp_equity::model::heads::QUANTILES;
use crate::jp_equity::model::network::Network;
use crate::jp_equity::model::store::StoredModel;
use crate::op::{Op, OpContext, OpSpec, ParamSpec, ParamType};
use anyhow::{Context, Result, anyhow};
use polars::prelude::*;
use std::collections::HashMap;

pub struct PredictOp;

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "model",
        ty: ParamType::Str,
        required: false,
        doc: "the model input (default trained_model)",
    },
    ParamSpec {
        name: "features",
        ty: ParamType::Str,
        required: false,
        doc: "the features input (default processed_features)",
    },
];

/// `0.05` → `q05`.
pub fn quantile_tag(q: f64) -> String {
    format!("q{:02}", (q * 100.0).round() as i64)
}

impl OpSpec for PredictOp {
    fn name(&self) -> &'static str {
        "predict"
    }

    fn code_version(&self) -> &'static str {
        crate::op_code_version!(
            "jp_equity/ops/train.rs",
            "jp_equity/model/network.rs",
            "jp_equity/model/dataset.rs",
            "jp_equity/model/store.rs",
            "jp_equity/frames.rs"
        )
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn validate(&self, rule: &Rule) -> Vec<(usize, String)> {
        let mut errs = Vec::new();
        let m = input_name(&rule.params, "model", "trained_model");
        let f = input_name(&rule.params, "features", "processed_features");
        if !rule.inputs.iter().any(|i| i.asset == m) {
            errs.push((
                1,
                format!("op predict needs the input '{m}': add {{ asset = \"{m}\" }}"),
            ));
        }
        match rule.inputs.iter().find(|i| i.asset == f) {
            None => errs.push((1, format!("op predict needs the input '{f}': add {{ asset = \"{f}\", window = [-19, 0], full = true }}"))),
            Some(i) => match i.coverage {
                Coverage::Window(a, 0) if a < 0 && i.full.is_some_and(|(_, end)| end == 0) => {}
                c => errs.push((i.line, format!("input '{f}': predict reads the model's window of past days up to the date, e.g. window = [-19, 0], full = true (not {c})"))),
            },
        }
        errs
    }
}

impl Op for PredictOp {
    fn run(&self, ctx: &OpContext) -> Result<DataFrame> {
        let file = ctx.rule.file.display().to_string();
        let usage = |e: String| anyhow!(UsageError(format!("{file}: {e}")));
        let m_name = input_name(&ctx.params, "model", "trained_model");
        let f_name = input_name(&ctx.params, "features", "processed_features");
        let m_in = ctx
            .input(m_name)
            .ok_or_else(|| usage(format!("op predict needs the input '{m_name}'")))?;
        let f_in = ctx
            .input(f_name)
            .ok_or_else(|| usage(format!("op predict needs the input '{f_name}'")))?;
        let model_df = m_in
            .scan()?
            .collect()
            .map_err(anyhow::Error::from)
            .context("cannot read the model")?;
        let model = StoredModel::from_frame(&model_df)?;
        let manifest = input_manifest(ctx, f_in)?;
        model
            .check_features(&manifest)
            .map_err(|e| usage(format!("model '{m_name}' cannot read '{f_name}': {e}")))?;
        let t = model.model.t;
        // The window must hold the model's input window and its graph's lead-lag history,
        // as training saw them.
        let days = t.max(model.model.graph().history_days());
        if let Coverage::Window(a, _) = f_in.coverage
            && ((-a) as usize) + 1 < days
        {
            return Err(usage(format!(
                "the model reads {days} days (input window {t}, lead-lag lookback {}): give '{f_name}' window = [-{}, 0]",
                model.model.graph_lag_lookback,
                days - 1
            )));
        }
        // Every predicted date has the model's whole input window (the lead-lag history
        // may be shorter at the data's start, as in training).
        let required = ctx
            .rule
            .inputs
            .iter()
            .find(|i| i.asset == f_in.asset)
            .and_then(|i| i.full);
        if let Some((a, _)) = required
            && ((-a) as usize) + 1 < t
        {
            return Err(usage(format!(
                "the model's input window is {t} days: give '{f_name}' full = true or full = [-{}, 0]",
                t - 1
            )));
        }
        let (features, masks) = model_columns(&manifest);
        let df = read_features("predict", f_in, &features, &masks)?;
        let panel = Panel::from_frames(&df, None, &features, &masks, &model.labels)?;
        let net = Network::new(model.model.clone()).map_err(usage)?;
        let id = model.id();
        let train_last = model.metrics.train_last;
        let index: HashMap<chrono::NaiveDate, usize> = panel
            .dates
            .iter()
            .enumerate()
            .map(|(i, d)| (*d, i))
            .collect();
        let hz = model.labels.len();
        let mut dates = Vec::new();
        let mut codes = Vec::new();
        let mut cols: Vec<Vec<f32>> = vec![Vec::new(); hz * (QUANTILES.len() + 1)];
        for out in &ctx.partitions {
            let Some(d) = out.date() else { continue };
            let Some(&i) = index.get(&d) else { continue };
            let Some(s) = panel.sample(i, t, &net.cfg.graph()) else {
                continue;
            };
            let (q, _) = net.forward(&model.params, &s.input, None);
            for (row, &stock) in s.stocks.iter().enumerate() {
                dates.push(d);
                codes.push(panel.codes[stock].clone());
                for h in 0..hz {
                    let base = (row * hz + h) * QUANTILES.len();
                    for k in 0..QUANTILES.len() {
                        cols[h * (QUANTILES.len() + 1) + k].push(q[base + k]);
                    }
                    cols[h * (QUANTILES.len() + 1) + QUANTILES.len()]
                        .push(q[base + crate::jp_equity::model::heads::MEDIAN]);
                }
            }
        }
        let n = dates.len();
        let mut columns: Vec<Column> = vec![
            Column::new("Date".into(), dates.clone()),
            Column::new("Code".into(), codes),
        ];
        for (h, label) in model.labels.iter().enumerate() {
            let tag = horizon_tag(label);
            for (k, q) in QUANTILES.iter().enumerate() {
                columns.push(Column::new(
                    format!("pred_{tag}_{}", quantile_tag(*q)).into(),
                    std::mem::take(&mut cols[h * (QUANTILES.len() + 1) + k]),
                ));
            }
            columns.push(Column::new(
                format!("pred_{tag}").into(),
                std::mem::take(&mut cols[h * (QUANTILES.len() + 1) + QUANTILES.len()]),
            ));
        }
        columns.push(Column::new("model_id".into(), vec![id.as_str(); n]));
        columns.push(Column::new(
            "in_sample".into(),
            dates
                .iter()
                .map(|d| *d <= train_last)
                .collect::<Vec<bool>>(),
        ));
        Ok(DataFrame::new_infer_height(columns)?)
    }
}
