//! The stored model (the `trained_model` asset, MODEL.md "Stored model"): one row per
//! tensor (`name`, `kind` = "tensor", `shape`, `dtype` = "f32", little-endian `bytes`),
//! plus JSON rows (`kind` = "json") for the config, the feature manifest it was trained
//! on, the label columns and the CV metrics. Loading checks the tensors against the
//! config's layout, and [`StoredModel::check_features`] refuses data whose feature list
//! differs, naming the difference.

use super::network::{ModelConfig, Network};
use super::train::{EpochLog, FoldReport, TrainConfig};
use crate::jp_equity::features::manifest::Manifest;
use anyhow::{Context, Result, anyhow, bail};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

/// The CV metrics and training log stored with a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub folds: Vec<FoldReport>,
    pub final_epochs: usize,
    pub final_log: Vec<EpochLog>,
    pub train_last: chrono::NaiveDate,
    /// Per horizon, whether the model predicts it as its ridge start (the horizon
    /// fallback); empty for models stored before it existed.
    #[serde(default)]
    pub horizons_from_start: Vec<bool>,
    /// Per horizon, the trained network's weight in the blend with its ridge start;
    /// empty for models stored before the blend.
    #[serde(default)]
    pub horizon_weights: Vec<f64>,
}

impl Metrics {
    /// The cross-validated RankIC: the mean over folds and horizons of each fold's
    /// validation RankIC (what `model list` shows), or over folds at one horizon (`5d`).
    pub fn cv_rank_ic(&self, horizon: Option<&str>) -> Option<f64> {
        let ics: Vec<f64> = self
            .folds
            .iter()
            .flat_map(|f| f.horizons.iter())
            .filter(|h| {
                horizon
                    .is_none_or(|t| crate::jp_equity::model::dataset::horizon_tag(&h.horizon) == t)
            })
            .map(|h| h.rank_ic)
            .collect();
        (!ics.is_empty()).then(|| ics.iter().sum::<f64>() / ics.len() as f64)
    }
}

/// A trained model as stored in the lake.
#[derive(Debug, Clone)]
pub struct StoredModel {
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub features: Manifest,
    pub labels: Vec<String>,
    pub metrics: Metrics,
    pub params: Vec<f32>,
}

impl StoredModel {
    /// A short content id of the weights (blake3), the "model id" predictions record.
    pub fn id(&self) -> String {
        let mut h = blake3::Hasher::new();
        for v in &self.params {
            h.update(&v.to_le_bytes());
        }
        h.finalize().to_hex()[..16].to_string()
    }

    pub fn to_frame(&self) -> Result<DataFrame> {
        let net = Network::new(self.model.clone()).map_err(|e| anyhow!(e))?;
        let r = &net.ranges;
        let mut name = Vec::new();
        let mut kind = Vec::new();
        let mut shape = Vec::new();
        let mut dtype = Vec::new();
        let mut bytes: Vec<Vec<u8>> = Vec::new();
        for (n, range) in r.named() {
            name.push(n.to_string());
            kind.push("tensor");
            shape.push(format!("[{}]", range.len()));
            dtype.push("f32");
            bytes.push(
                self.params[range]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            );
        }
        let config = serde_json::json!({ "model": self.model, "train": self.train });
        let json_rows = [
            ("config", serde_json::to_string(&config)?),
            ("features", self.features.to_json()),
            ("labels", serde_json::to_string(&self.labels)?),
            ("metrics", serde_json::to_string(&self.metrics)?),
        ];
        for (n, text) in json_rows {
            name.push(n.to_string());
            kind.push("json");
            shape.push(String::new());
            dtype.push("json");
            bytes.push(text.into_bytes());
        }
        let bytes: Vec<&[u8]> = bytes.iter().map(|b| b.as_slice()).collect();
        Ok(
            df!("name" => name, "kind" => kind, "shape" => shape, "dtype" => dtype, "bytes" => bytes)?,
        )
    }

    pub fn from_frame(df: &DataFrame) -> Result<StoredModel> {
        let names = crate::jp_equity::frames::column(df, "name")?.str()?.clone();
        let blobs = crate::jp_equity::frames::column(df, "bytes")?
            .binary()?
            .clone();
        let get = |n: &str| -> Result<&[u8]> {
            names
                .iter()
                .zip(blobs.iter())
                .find(|(k, _)| *k == Some(n))
                .and_then(|(_, b)| b)
                .ok_or_else(|| anyhow!("stored model has no row '{n}': rebuild trained_model"))
        };
        let json = |n: &str| -> Result<serde_json::Value> {
            serde_json::from_slice(get(n)?)
                .with_context(|| format!("stored model row '{n}' is not valid JSON"))
        };
        let config = json("config")?;
        let model: ModelConfig =
            serde_json::from_value(config["model"].clone()).context("stored model config")?;
        let train: TrainConfig =
            serde_json::from_value(config["train"].clone()).context("stored training config")?;
        let features = Manifest::from_json(std::str::from_utf8(get("features")?)?)?;
        let labels: Vec<String> = serde_json::from_value(json("labels")?)?;
        let metrics: Metrics = serde_json::from_value(json("metrics")?)?;
        let net = Network::new(model.clone()).map_err(|e| anyhow!("stored model config: {e}"))?;
        let r = &net.ranges;
        let mut params = vec![0f32; net.n_params()];
        for (n, range) in r.named() {
            // A block the config leaves empty may be absent (models stored before it).
            if range.is_empty() && get(n).is_err() {
                continue;
            }
            let b = get(n)?;
            if b.len() != range.len() * 4 {
                bail!(
                    "stored tensor '{n}' holds {} values but the config needs {}: the model is corrupt or from another version",
                    b.len() / 4,
                    range.len()
                );
            }
            for (dst, chunk) in params[range].iter_mut().zip(b.chunks_exact(4)) {
                *dst = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            }
        }
        Ok(StoredModel {
            model,
            train,
            features,
            labels,
            metrics,
            params,
        })
    }

    /// Ok when `data` (the features asset's manifest) is what the model was trained on.
    pub fn check_features(&self, data: &Manifest) -> Result<()> {
        self.features.check_same(data).map_err(|e| anyhow!("{e}; retrain the model (lakebuild build trained_model) or restore the feature set it was trained on"))
    }
}
