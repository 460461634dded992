//! Model versions and aliases (`lakebuild model list`, `lakebuild model alias`): every
//! materialization of a model asset is a version of its Delta table; an alias names one,
//! and an input `trained_model@production` reads the version it names.

use crate::core::partition::PartitionId;
use crate::engine::project::Project;
use crate::jp_equity::model::store::StoredModel;
use crate::jp_equity::model::train::HorizonReport;
use crate::lake::aliases;
use crate::lake::parquet;
use anyhow::{Result, bail};
use serde::Serialize;

/// One version of a model asset.
#[derive(Debug, Clone, Serialize)]
pub struct ModelVersion {
    pub version: i64,
    /// The run that built it (a tuning trial's run for a variant).
    pub run_id: String,
    /// When it was committed (RFC 3339, UTC).
    pub committed: Option<String>,
    /// The weights' content id (what `predictions.model_id` records).
    pub model_id: Option<String>,
    /// The last day it trained on.
    pub train_last: Option<chrono::NaiveDate>,
    /// Mean validation RankIC over folds and horizons.
    pub cv_rank_ic: Option<f64>,
    /// Each CV fold's validation range and metrics per horizon.
    pub folds: Vec<FoldMetrics>,
    pub aliases: Vec<String>,
    pub current: bool,
    /// Why the stored model could not be read (e.g. its file was garbage-collected).
    pub unreadable: Option<String>,
}

/// One walk-forward fold's validation metrics.
#[derive(Debug, Clone, Serialize)]
pub struct FoldMetrics {
    pub fold: usize,
    pub valid_first: chrono::NaiveDate,
    pub valid_last: chrono::NaiveDate,
    pub horizons: Vec<HorizonReport>,
}

/// Every version of `asset` that published a model, oldest first.
pub fn list(project: &Project, asset: &str) -> Result<Vec<ModelVersion>> {
    if project.rules.get(asset).is_none() {
        bail!("unknown asset '{asset}': name a model asset such as trained_model");
    }
    let all = aliases::load(&project.lake.root)?;
    versions_in(&project.lake.table(asset), all.get(asset), true)
}

/// The models `lakebuild tune` trained for `asset` (its variants table: one version per
/// trial that trained), oldest first; no alias names them and none is current.
pub fn trials(project: &Project, asset: &str) -> Result<Vec<ModelVersion>> {
    if project.rules.get(asset).is_none() {
        bail!("unknown asset '{asset}': name a model asset such as trained_model");
    }
    let table = crate::engine::variant::side_table(project, asset);
    if !table.exists() {
        return Ok(vec![]);
    }
    versions_in(&table, None, false)
}

/// The versions of the model table `table`, with the aliases `names` gives them.
fn versions_in(
    table: &std::path::Path,
    names: Option<&std::collections::BTreeMap<String, i64>>,
    has_current: bool,
) -> Result<Vec<ModelVersion>> {
    let state = crate::lake::log::load(table)?;
    let current = state
        .current
        .get(&PartitionId::Whole)
        .map(|c| c.version)
        .filter(|_| has_current);
    let mut out = Vec::new();
    for (version, commit) in &state.commits {
        let Some(record) = commit
            .partitions
            .iter()
            .find(|p| p.id == PartitionId::Whole)
        else {
            continue;
        };
        let stored = parquet::scan_files(&[table.join(&record.file)])
            .and_then(|lf| Ok(lf.collect()?))
            .and_then(|df| StoredModel::from_frame(&df));
        let (model_id, train_last, cv_rank_ic, folds, unreadable) = match stored {
            Ok(m) => (
                Some(m.id()),
                Some(m.metrics.train_last),
                m.metrics.cv_rank_ic(None),
                m.metrics
                    .folds
                    .iter()
                    .map(|f| FoldMetrics {
                        fold: f.fold,
                        valid_first: f.valid_first,
                        valid_last: f.valid_last,
                        horizons: f.horizons.clone(),
                    })
                    .collect(),
                None,
            ),
            Err(e) => (None, None, None, vec![], Some(format!("{e:#}"))),
        };
        out.push(ModelVersion {
            version: *version,
            run_id: commit.run_id.clone(),
            committed: state.timestamps.get(version).and_then(|ms| {
                chrono::DateTime::from_timestamp_millis(*ms)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            }),
            model_id,
            train_last,
            cv_rank_ic,
            folds,
            aliases: names
                .map(|n| {
                    n.iter()
                        .filter(|(_, v)| **v == *version)
                        .map(|(k, _)| k.clone())
                        .collect()
                })
                .unwrap_or_default(),
            current: current == Some(*version),
            unreadable,
        });
    }
    Ok(out)
}

pub fn render(asset: &str, versions: &[ModelVersion]) -> String {
    let mut s = format!(
        "{:>7}  {:<20}  {:<16}  {:<10}  {:>9}  aliases\n",
        "version", "committed", "model id", "trained to", "CV RankIC"
    );
    for v in versions {
        let mut tags = v.aliases.clone();
        if v.current {
            tags.insert(0, "latest".into());
        }
        s.push_str(&format!(
            "{:>7}  {:<20}  {:<16}  {:<10}  {:>9}  {}\n",
            v.version,
            v.committed.as_deref().unwrap_or("-"),
            v.model_id.as_deref().unwrap_or("(unreadable)"),
            v.train_last.map_or("-".to_string(), |d| d.to_string()),
            v.cv_rank_ic.map_or("-".to_string(), |x| format!("{x:+.4}")),
            tags.join(", ")
        ));
    }
    if versions.is_empty() {
        s.push_str(&format!("(no versions: build {asset} first)\n"));
    }
    s
}
