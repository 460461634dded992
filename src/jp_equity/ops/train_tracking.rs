//! What an experiment tracker records of a stored model (the `train` op's
//! [`Op::tracking`](crate::op::Op::tracking)), read from the stored model's rows alone:
//!
//! - params: every model and training param as stored (`hidden`, `lr`, …), with `device`
//!   and `precision` (the CPU reference trains in fp32);
//! - metrics: per fold `fold{k}/train_loss`, `fold{k}/valid_rank_ic` (mean over
//!   horizons) and `fold{k}/valid_rank_ic/{h}` (per horizon) with the epoch as step, `final/train_loss` per epoch of the final fit,
//!   per fold and horizon `cv/{h}/{ic,rank_ic,icir,rank_icir,spread,spread_sharpe,hit_rate}`
//!   and `fold{k}`'s `best_epoch` with the fold as step, `cv_rank_ic` (the mean over folds
//!   and horizons, as `lakebuild model list` shows it) and, per horizon,
//!   `blend_weight/{h}` (MODEL.md "Training");
//! - tags: `lakebuild.model_id` (what predictions record), `lakebuild.train_last`;
//! - artifacts under `model/`: `config.json`, `features.json`, `labels.json`,
//!   `metrics.json` and `model.safetensors`, the weights with one F32 tensor per stored
//!   tensor row, byte for byte the lake's.

use crate::jp_equity::model::dataset::horizon_tag;
use crate::jp_equity::model::store::StoredModel;
use crate::op::safetensors::{self, F32Tensor};
use crate::op::tracking::{Artifact, TrackingReport};
use anyhow::{Context, Result};
use polars::prelude::*;
use std::collections::BTreeMap;

pub fn report(frame: &DataFrame) -> Result<TrackingReport> {
    let m = StoredModel::from_frame(frame)?;
    let mut r = TrackingReport::default();
    r.params_from_json("", &serde_json::to_value(&m.model)?);
    r.params_from_json("", &serde_json::to_value(&m.train)?);
    r.params.insert("device".into(), "cpu".into());
    r.params.insert("precision".into(), "fp32".into());
    r.params.insert("labels".into(), m.labels.join(","));
    let metrics = &m.metrics;
    for f in &metrics.folds {
        let k = f.fold + 1;
        for e in &f.epochs {
            let step = e.epoch as i64;
            r.metric(
                format!("fold{k}/train_loss"),
                e.train_loss.unwrap_or(f64::NAN),
                step,
            );
            r.metric(
                format!("fold{k}/valid_rank_ic"),
                e.valid_rank_ic.unwrap_or(f64::NAN),
                step,
            );
            for (label, ic) in m.labels.iter().zip(&e.valid_rank_ic_by_horizon) {
                r.metric(
                    format!("fold{k}/valid_rank_ic/{}", horizon_tag(label)),
                    ic.unwrap_or(f64::NAN),
                    step,
                );
            }
        }
        r.metric("best_epoch", f.best_epoch as f64, k as i64);
        for h in &f.horizons {
            let name = horizon_tag(&h.horizon);
            for (what, v) in [
                ("ic", h.ic),
                ("rank_ic", h.rank_ic),
                ("icir", h.icir),
                ("rank_icir", h.rank_icir),
                ("spread", h.spread),
                ("spread_sharpe", h.spread_sharpe),
                ("hit_rate", h.hit_rate),
            ] {
                r.metric(format!("cv/{name}/{what}"), v, k as i64);
            }
        }
    }
    for e in &metrics.final_log {
        r.metric(
            "final/train_loss",
            e.train_loss.unwrap_or(f64::NAN),
            e.epoch as i64,
        );
    }
    if let Some(ic) = metrics.cv_rank_ic(None) {
        r.metric("cv_rank_ic", ic, 0);
    }
    for (label, w) in m.labels.iter().zip(&metrics.horizon_weights) {
        r.metric(format!("blend_weight/{}", horizon_tag(label)), *w, 0);
    }
    r.tags.insert("lakebuild.model_id".into(), m.id());
    r.tags.insert(
        "lakebuild.train_last".into(),
        metrics.train_last.to_string(),
    );

    // The rows as stored: tensors go into the safetensors file unchanged.
    let names = frame.column("name")?.str()?.clone();
    let kinds = frame.column("kind")?.str()?.clone();
    let blobs = frame.column("bytes")?.binary()?.clone();
    let mut tensors = Vec::new();
    let mut json = BTreeMap::new();
    for ((name, kind), bytes) in names.iter().zip(kinds.iter()).zip(blobs.iter()) {
        let (Some(name), Some(bytes)) = (name, bytes) else {
            continue;
        };
        match kind {
            Some("tensor") => tensors.push(F32Tensor {
                name,
                shape: vec![bytes.len() / 4],
                bytes,
            }),
            Some("json") => {
                json.insert(name, bytes.to_vec());
            }
            _ => {}
        }
    }
    let meta = BTreeMap::from([
        ("format".to_string(), "pt".to_string()),
        ("lakebuild.model_id".to_string(), m.id()),
    ]);
    r.artifacts.push(Artifact {
        path: "model/model.safetensors".into(),
        bytes: safetensors::encode(&tensors, &meta).context("the stored model's tensors")?,
    });
    for (name, bytes) in json {
        r.artifacts.push(Artifact {
            path: format!("model/{name}.json"),
            bytes,
        });
    }
    Ok(r)
}
