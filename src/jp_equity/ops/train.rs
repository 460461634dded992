//! Op `train` (asset `trained_model`): reads the whole features and labels assets, runs
//! walk-forward cross-validation and the final fit of ATFT-GAT-FAN ([`crate::jp_equity::model`]),
//! and writes the stored model (tensors, config, feature manifest, CV metrics).

use crate::core::error::UsageError;
use crate::core::rule::Rule;
use crate::jp_equity::features::manifest::{Manifest, Role};
use crate::jp_equity::model::dataset::Panel;
use crate::jp_equity::model::dataset::horizon_tag;
use crate::jp_equity::model::network::{ModelConfig, Network};
use crate::jp_equity::model::store::{Metrics, StoredModel};
use crate::jp_equity::model::train::{Checkpoints, Event, LinearInit, TrainConfig, train};
use crate::op::param::{self, flag, float, int};
use crate::op::tracking::{Tracked, TrackingReport};
use crate::op::{ColumnKind, Op, OpContext, OpInput, OpSpec, ParamSpec, ParamType, Reports};
use anyhow::{Context, Result, anyhow};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use polars::prelude::*;
use serde_json::Value;
use std::io::IsTerminal;
use std::ops::ControlFlow;

pub struct TrainOp;

macro_rules! p {
    ($name:literal, $ty:ident, $doc:literal) => {
        ParamSpec {
            name: $name,
            ty: ParamType::$ty,
            required: false,
            doc: $doc,
        }
    };
}

const PARAMS: &[ParamSpec] = &[
    p!(
        "features",
        Str,
        "the features input (default processed_features)"
    ),
    p!("labels", Str, "the labels input (default labels)"),
    p!("window", Int, "days of history per sample, T (default 20)"),
    p!("hidden", Int, "hidden width H (default 64)"),
    p!("heads", Int, "attention heads (default 4)"),
    p!("frequencies", Int, "FAN frequencies K (default 2)"),
    p!("dropout", Float, "dropout rate in training (default 0.1)"),
    p!(
        "graph_k",
        Int,
        "correlation neighbours per stock (default 15)"
    ),
    p!(
        "graph_lag_k",
        Int,
        "lead-lag partners per stock, directed in-edges by lagged correlation (default 2, 0 = none)"
    ),
    p!(
        "graph_lag_lookback",
        Int,
        "days of lagged return pairs behind the lead-lag partners (default 250; predictions need window = [-lookback, 0])"
    ),
    p!("use_fan", Bool, "ablation switch (default true)"),
    p!("use_temporal", Bool, "ablation switch (default true)"),
    p!("use_gat", Bool, "ablation switch (default true)"),
    p!(
        "use_skip",
        Bool,
        "the linear skip path from the last day's inputs (default true)"
    ),
    p!(
        "use_graph_skip",
        Bool,
        "the linear graph path from the in-neighbours' last-day inputs, weighted by the edge features (default true)"
    ),
    p!(
        "linear_scale",
        Float,
        "scale κ on the linear paths' weights, their learning-rate multiplier under Adam (default 1)"
    ),
    p!(
        "linear_init",
        Str,
        "start of the linear paths: \"ridge\" (closed form on the fit's training days, λ by an inner walk-forward split) or \"zero\" (default ridge)"
    ),
    p!(
        "freeze_linear",
        Bool,
        "keep the linear paths at their start while the rest trains (default false)"
    ),
    p!(
        "horizon_fallback",
        Bool,
        "per horizon, blend the trained network with its ridge start, the weight chosen by the validation folds (default true; needs linear_init = \"ridge\")"
    ),
    p!(
        "blend_steps",
        Int,
        "the blend weights on offer are j / blend_steps, j = 0..=blend_steps (default 4; 1 = the start or the trained network)"
    ),
    p!("seed", Int, "the training seed (default 42)"),
    p!("epochs", Int, "maximum epochs per fold (default 8)"),
    p!(
        "patience",
        Int,
        "early-stopping patience in epochs (default 2)"
    ),
    p!(
        "days_per_epoch",
        Int,
        "training days drawn per epoch (default all)"
    ),
    p!("lr", Float, "AdamW learning rate (default 5e-4)"),
    p!("weight_decay", Float, "AdamW weight decay (default 0.01)"),
    p!("folds", Int, "walk-forward folds (default 5)"),
    p!(
        "embargo",
        Int,
        "trading days between training and validation (default 20)"
    ),
    p!(
        "min_train_days",
        Int,
        "training days of the first fold (default 252)"
    ),
    p!(
        "cv",
        Bool,
        "run cross-validation before the final fit (default true)"
    ),
];

/// The model config of the params, for the given input widths.
pub fn model_config(
    params: &Value,
    features: usize,
    masks: usize,
    horizons: usize,
) -> Result<ModelConfig, String> {
    let mut c = ModelConfig::new(int(params, "window", 20)?, features, masks, horizons);
    c.hidden = int(params, "hidden", c.hidden)?;
    c.heads = int(params, "heads", c.heads)?;
    c.frequencies = int(params, "frequencies", c.frequencies)?;
    c.dropout = float(params, "dropout", c.dropout)?;
    c.graph_k = int(params, "graph_k", c.graph_k)?;
    c.graph_lag_k = int(params, "graph_lag_k", c.graph_lag_k)?;
    c.graph_lag_lookback = int(params, "graph_lag_lookback", c.graph_lag_lookback)?;
    c.use_fan = flag(params, "use_fan", true);
    c.use_temporal = flag(params, "use_temporal", true);
    c.use_gat = flag(params, "use_gat", true);
    c.use_skip = flag(params, "use_skip", true);
    c.use_graph_skip = flag(params, "use_graph_skip", true);
    c.linear_scale = float(params, "linear_scale", c.linear_scale)?;
    c.validate()?;
    Ok(c)
}

pub fn train_config(params: &Value) -> Result<TrainConfig, String> {
    let d = TrainConfig::default();
    Ok(TrainConfig {
        seed: int(params, "seed", d.seed as usize)? as u64,
        epochs: int(params, "epochs", d.epochs)?.max(1),
        patience: int(params, "patience", d.patience)?.max(1),
        days_per_epoch: params
            .get("days_per_epoch")
            .map(|_| int(params, "days_per_epoch", 0))
            .transpose()?
            .map(|k| k.max(1)),
        lr: float(params, "lr", d.lr)?,
        weight_decay: float(params, "weight_decay", d.weight_decay)?,
        folds: int(params, "folds", d.folds)?.max(1),
        embargo: int(params, "embargo", d.embargo)?,
        min_train_days: int(params, "min_train_days", d.min_train_days)?,
        cv: flag(params, "cv", d.cv),
        linear_init: match param::str_or(params, "linear_init", "ridge") {
            "ridge" => LinearInit::Ridge,
            "zero" => LinearInit::Zero,
            other => {
                return Err(format!(
                    "params.linear_init = {other:?}: use \"ridge\" or \"zero\""
                ));
            }
        },
        freeze_linear: flag(params, "freeze_linear", d.freeze_linear),
        horizon_fallback: flag(params, "horizon_fallback", d.horizon_fallback),
        blend_steps: int(params, "blend_steps", d.blend_steps)?.max(1),
        ..d
    })
    .and_then(|c: TrainConfig| {
        if c.min_train_days == 0 {
            return Err("params.min_train_days must be at least 1".into());
        }
        if !(c.lr.is_finite() && c.lr > 0.0) {
            return Err(format!("params.lr = {} must be a positive number", c.lr));
        }
        Ok(c)
    })
}

pub fn input_name<'a>(params: &'a Value, k: &str, d: &'a str) -> &'a str {
    param::str_or(params, k, d)
}

/// The feature manifest of the features input, read from its table.
pub(super) fn input_manifest(ctx: &OpContext, input: &OpInput) -> Result<Manifest> {
    if input.partitions.is_empty() {
        return Err(UsageError(format!(
            "{}: input '{}' has no partitions yet: build it first",
            ctx.rule.file.display(),
            input.asset
        ))
        .into());
    }
    Manifest::read(&input.table)
}

/// Model columns of a manifest: the z-scores and the family flags.
pub fn model_columns(m: &Manifest) -> (Vec<String>, Vec<String>) {
    let f = m.model_inputs().iter().map(|c| c.name.clone()).collect();
    let k = m
        .columns
        .iter()
        .filter(|c| c.role == Role::Valid)
        .map(|c| c.name.clone())
        .collect();
    (f, k)
}

pub(super) fn read_features(
    op: &str,
    input: &OpInput,
    features: &[String],
    masks: &[String],
) -> Result<DataFrame> {
    let mut expected = vec![
        ("Code", ColumnKind::Str),
        ("Date", ColumnKind::Date),
        ("S33", ColumnKind::Str),
    ];
    expected.extend(features.iter().map(|f| (f.as_str(), ColumnKind::Numeric)));
    expected.extend(masks.iter().map(|m| (m.as_str(), ColumnKind::Bool)));
    input.expect_columns(op, &expected)?;
    let mut cols = vec![col("Code"), col("Date"), col("S33")];
    cols.extend(features.iter().chain(masks).map(|c| col(c.as_str())));
    input
        .scan()?
        .select(cols)
        .collect()
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot read the model's columns from '{}'", input.asset))
}

/// A terminal progress bar per fold with the loss and validation RankIC, and a log line
/// per epoch.
/// The horizon a `cv_rank_ic_<h>` objective names (`None`: the mean over horizons).
fn objective_horizon(objective: &str) -> Option<&str> {
    objective.strip_prefix("cv_rank_ic_")
}

/// The progress bar and log lines of a training, and the tuning study's reports: each
/// CV fold's validation RankIC (the objective's: the mean over horizons or one horizon)
/// after every epoch, at step `fold × epochs + epoch`; a pruned trial stops there. An
/// epoch whose loss diverged is reported as NaN (Optuna's pruners prune it).
fn progress<'a>(
    reports: Option<&'a dyn Reports>,
    epochs: usize,
    horizons: &'a [String],
) -> impl FnMut(Event) -> ControlFlow<()> + 'a {
    let on = std::io::stderr().is_terminal();
    let mut bar = ProgressBar::hidden();
    let mut running = 0.0;
    let mut label = String::new();
    move |e| match e {
        Event::Start {
            fold,
            epochs,
            steps,
        } => {
            bar.finish_and_clear();
            label = fold.map_or("final fit".to_string(), |f| format!("fold {}", f + 1));
            bar = if on {
                ProgressBar::with_draw_target(
                    Some((epochs * steps) as u64),
                    ProgressDrawTarget::stderr(),
                )
            } else {
                ProgressBar::hidden()
            };
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>12} [{bar:30}] {pos}/{len} days {msg} ({elapsed})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(label.clone());
            ControlFlow::Continue(())
        }
        Event::Step { loss } => {
            running = if bar.position() == 0 {
                loss
            } else {
                0.95 * running + 0.05 * loss
            };
            bar.inc(1);
            bar.set_message(format!("loss {running:.4}"));
            ControlFlow::Continue(())
        }
        Event::Diverged { fold, epoch } => {
            // Reported as NaN: Optuna's pruners prune a trial whose values are NaN.
            if let (Some(r), Some(fold)) = (reports, fold) {
                let at = format!("fold {} epoch {} (diverged)", fold + 1, epoch + 1);
                r.report((fold * epochs + epoch) as u64, f64::NAN, &at);
            }
            ControlFlow::Continue(())
        }
        Event::Resumed { folds, fit } => {
            let at = fit.map_or(String::new(), |(f, e)| {
                let what = f.map_or("the final fit".to_string(), |f| format!("fold {}", f + 1));
                format!(", {what} at epoch {}", e + 1)
            });
            tracing::info!("resumed training from its checkpoint: {folds} folds done{at}");
            ControlFlow::Continue(())
        }
        Event::Epoch {
            fold,
            epoch,
            loss,
            valid_rank_ic,
            by_horizon,
        } => {
            let ic = valid_rank_ic.map_or(String::new(), |v| format!(", valid RankIC {v:+.4}"));
            bar.set_message(format!("epoch {} loss {loss:.4}{ic}", epoch + 1));
            tracing::info!("train {label} epoch {}: loss {loss:.4}{ic}", epoch + 1);
            let (Some(r), Some(fold)) = (reports, fold) else {
                return ControlFlow::Continue(());
            };
            let value = match objective_horizon(r.objective()) {
                None => valid_rank_ic,
                Some(h) => horizons
                    .iter()
                    .position(|l| horizon_tag(l) == h)
                    .and_then(|i| by_horizon.get(i).copied().flatten()),
            };
            match value {
                Some(v)
                    if r.report(
                        (fold * epochs + epoch) as u64,
                        v,
                        &format!("fold {} epoch {}", fold + 1, epoch + 1),
                    ) =>
                {
                    ControlFlow::Break(())
                }
                _ => ControlFlow::Continue(()),
            }
        }
    }
}

impl OpSpec for TrainOp {
    fn name(&self) -> &'static str {
        "train"
    }

    fn code_version(&self) -> &'static str {
        crate::op_code_version!(
            "jp_equity/model/mod.rs",
            "jp_equity/model/network.rs",
            "jp_equity/model/fan.rs",
            "jp_equity/model/grn.rs",
            "jp_equity/model/lstm.rs",
            "jp_equity/model/attention.rs",
            "jp_equity/model/graph.rs",
            "jp_equity/model/gat.rs",
            "jp_equity/model/heads.rs",
            "jp_equity/model/loss.rs",
            "jp_equity/model/optim.rs",
            "jp_equity/model/train.rs",
            "jp_equity/model/dataset.rs",
            "jp_equity/model/walk_forward.rs",
            "jp_equity/model/metrics.rs",
            "jp_equity/model/store.rs",
            "jp_equity/model/layers.rs",
            "jp_equity/model/linalg.rs",
            "jp_equity/model/real.rs",
            "jp_equity/model/params.rs",
            "jp_equity/model/ridge.rs",
            "jp_equity/frames.rs"
        )
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn validate(&self, rule: &Rule) -> Vec<(usize, String)> {
        let mut errs = Vec::new();
        if rule.daily {
            errs.push((
                1,
                "op train writes one model: remove partitioned = \"daily\"".to_string(),
            ));
        }
        for k in ["features", "labels"] {
            let name = input_name(
                &rule.params,
                k,
                if k == "features" {
                    "processed_features"
                } else {
                    "labels"
                },
            );
            if !rule.inputs.iter().any(|i| i.asset == name) {
                errs.push((
                    1,
                    format!(
                        "op train needs the input '{name}': add {{ asset = \"{name}\" }} to inputs"
                    ),
                ));
            }
        }
        if let Err(e) = model_config(&rule.params, 1, 1, 1).and_then(|_| train_config(&rule.params))
        {
            errs.push((1, e));
        }
        errs
    }

    fn objectives(&self) -> &'static [&'static str] {
        &["cv_rank_ic", "cv_rank_ic_1d", "cv_rank_ic_5d"]
    }

    /// `cv_rank_ic` (the mean over folds and horizons, as `model list` shows it) or
    /// `cv_rank_ic_<h>` for one label horizon (`cv_rank_ic_5d`).
    fn check_objective(&self, name: &str) -> Result<(), String> {
        let horizon_ok = |h: &str| {
            h.strip_suffix('d')
                .and_then(|d| d.parse::<usize>().ok())
                .is_some_and(|d| d > 0)
        };
        match objective_horizon(name) {
            None if name == "cv_rank_ic" => Ok(()),
            Some(h) if horizon_ok(h) => Ok(()),
            _ => Err(
                "op 'train' reports cv_rank_ic (the cross-validated RankIC, mean over horizons) or cv_rank_ic_<h> for one horizon, e.g. cv_rank_ic_1d"
                    .into(),
            ),
        }
    }
}

impl Op for TrainOp {
    fn objective(&self, frame: &DataFrame, objective: &str) -> Result<f64> {
        let m = StoredModel::from_frame(frame)?;
        let horizon = objective_horizon(objective);
        m.metrics.cv_rank_ic(horizon).ok_or_else(|| {
            anyhow!(
                "the model has no cross-validated RankIC{} (its horizons: {}; folds: {})",
                horizon.map_or(String::new(), |h| format!(" at {h}")),
                m.labels
                    .iter()
                    .map(|l| horizon_tag(l))
                    .collect::<Vec<_>>()
                    .join(", "),
                m.metrics.folds.len()
            )
        })
    }

    /// Each CV fold's validation RankIC after every stored epoch, at step
    /// `fold × epochs + epoch`: what [`progress`] reported while training.
    fn intermediate(&self, frame: &DataFrame, objective: &str) -> Result<Vec<(u64, f64)>> {
        let m = StoredModel::from_frame(frame)?;
        let column =
            objective_horizon(objective).map(|h| m.labels.iter().position(|l| horizon_tag(l) == h));
        let mut out = Vec::new();
        for f in &m.metrics.folds {
            for e in &f.epochs {
                let value = match column {
                    None => e.valid_rank_ic,
                    Some(i) => i.and_then(|i| e.valid_rank_ic_by_horizon.get(i).copied().flatten()),
                };
                if let Some(v) = value.filter(|v| v.is_finite()) {
                    out.push(((f.fold * m.train.epochs + e.epoch) as u64, v));
                }
            }
        }
        Ok(out)
    }

    fn tracked(&self) -> Tracked {
        Tracked::Run
    }

    fn check_output(&self, frame: &DataFrame) -> Result<()> {
        StoredModel::from_frame(frame).map(|_| ())
    }

    fn tracking(
        &self,
        _params: &Value,
        frame: &DataFrame,
        _attachments: &std::path::Path,
    ) -> Result<TrackingReport> {
        super::train_tracking::report(frame)
    }

    fn run(&self, ctx: &OpContext) -> Result<DataFrame> {
        let file = ctx.rule.file.display().to_string();
        let usage = |e: String| anyhow!(UsageError(format!("{file}: {e}")));
        let f_name = input_name(&ctx.params, "features", "processed_features");
        let l_name = input_name(&ctx.params, "labels", "labels");
        let f_in = ctx
            .input(f_name)
            .ok_or_else(|| usage(format!("op train needs the input '{f_name}'")))?;
        let l_in = ctx
            .input(l_name)
            .ok_or_else(|| usage(format!("op train needs the input '{l_name}'")))?;
        let manifest = input_manifest(ctx, f_in)?;
        let (features, masks) = model_columns(&manifest);
        let labels_df = l_in
            .scan()?
            .collect()
            .map_err(anyhow::Error::from)
            .context("cannot read the labels")?;
        let horizons: Vec<String> = labels_df
            .get_column_names()
            .iter()
            .map(|c| c.to_string())
            .filter(|c| c.starts_with("fwd_ret_"))
            .collect();
        if horizons.is_empty() {
            return Err(usage(format!(
                "input '{l_name}' has no fwd_ret_* columns: is it a labels asset?"
            )));
        }
        let features_df = read_features("train", f_in, &features, &masks)?;
        let panel =
            Panel::from_frames(&features_df, Some(&labels_df), &features, &masks, &horizons)?;
        drop(features_df);
        drop(labels_df);
        let model = model_config(&ctx.params, features.len(), masks.len(), horizons.len())
            .map_err(usage)?;
        let tcfg = train_config(&ctx.params).map_err(usage)?;
        let n_params = Network::new(model.clone()).map_err(usage)?.n_params();
        tracing::info!(
            "training on {} days × {} stocks, {} features + {} masks, {} parameters",
            panel.dates.len(),
            panel.codes.len(),
            features.len(),
            masks.len(),
            n_params
        );
        let checkpoint = ctx.resume.join("checkpoint.json");
        let trained = train(
            &model,
            &tcfg,
            &panel,
            &Checkpoints {
                file: Some(&checkpoint),
            },
            &mut progress(ctx.reports, tcfg.epochs, &horizons),
        )
        .map_err(usage)?;
        let stored = StoredModel {
            model,
            train: tcfg,
            features: manifest,
            labels: horizons,
            metrics: Metrics {
                folds: trained.folds,
                final_epochs: trained.final_epochs,
                final_log: trained.final_log,
                train_last: trained.train_last,
                horizons_from_start: trained.weights.iter().map(|w| *w == 0.0).collect(),
                horizon_weights: trained.weights,
            },
            params: trained.params,
        };
        stored.to_frame()
    }
}

#[cfg(test)]
mod tests {
    /// A model source file left out of the code version would let a change to it reuse
    /// models trained by the old code. Every file of `model/` counts (the GPU code and
    /// the test helpers aside: the CPU training does not run them).
    #[test]
    fn the_code_version_covers_every_model_source_file() {
        let text = include_str!("train.rs");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/jp_equity/model");
        let mut missing = Vec::new();
        for entry in std::fs::read_dir(&dir).expect("src/jp_equity/model is readable") {
            let name = entry.expect("a directory entry").file_name();
            let Some(name) = name.to_str().filter(|n| n.ends_with(".rs")) else {
                continue;
            };
            if name != "gradcheck.rs" && !text.contains(&format!("\"jp_equity/model/{name}\"")) {
                missing.push(name.to_string());
            }
        }
        assert!(
            missing.is_empty(),
            "the train op's code version leaves out {missing:?}"
        );
    }
}
