//! The tracking file of a `command` op: how a team's own training program (a PyTorch
//! script, say) reports its run to an experiment tracker through lakebuild. The program
//! writes `$LAKEBUILD_OUTPUT_DIR/tracking.json` beside its output:
//!
//! ```json
//! {
//!   "params": {"lr": 0.001, "hidden": 64, "optimizer": "adamw"},
//!   "metrics": [{"key": "val_loss", "value": 0.31, "step": 3}],
//!   "tags": {"framework": "pytorch"},
//!   "artifacts": ["model/weights.safetensors", "model/config.json"]
//! }
//! ```
//!
//! Every field is optional. `params` values may be any JSON (text as is, the rest as
//! JSON text); a metric's `step` defaults to 0 and it may carry `timestamp` (ms since the
//! epoch); tag names starting with `lakebuild.` are lakebuild's own. `artifacts` are
//! paths relative to the output folder (keep them out of its top level, or give them
//! another ending than `.parquet` / `.csv`, which are read as the output). After a
//! successful run the file and the artifacts are checked and kept in the lake with the
//! output ([`crate::lake::attachments`]); with `[mlflow]` in the rule each
//! materialization is an MLflow run with these params, metrics and tags, its artifacts
//! under `model/`, and a version of the registered model.

use crate::op::tracking::{Artifact, TrackingReport};
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Component, Path};

/// The file's name, in the output folder and among the attachments.
pub const FILE: &str = "tracking.json";
/// Where the artifacts go among the attachments.
const ARTIFACTS: &str = "artifacts";

/// MLflow's limits: a key's length, a param's and a tag's value length.
const MAX_KEY: usize = 250;
const MAX_PARAM: usize = 6000;
const MAX_TAG: usize = 8000;

/// A param as the tracker shows it: text as is, anything else as JSON.
fn param_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrackingFile {
    #[serde(default)]
    params: BTreeMap<String, Value>,
    #[serde(default)]
    metrics: Vec<FileMetric>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    artifacts: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMetric {
    key: String,
    value: f64,
    #[serde(default)]
    step: i64,
    #[serde(default)]
    timestamp: Option<i64>,
}

fn parse(path: &Path) -> Result<TrackingFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file: TrackingFile = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a valid tracking file (fields: params, metrics [{{key, value, step}}], tags, artifacts)",
            path.display()
        )
    })?;
    let keys = file
        .params
        .keys()
        .map(|k| ("param", k))
        .chain(file.metrics.iter().map(|m| ("metric", &m.key)))
        .chain(file.tags.keys().map(|k| ("tag", k)));
    for (what, key) in keys {
        let allowed = |c: char| c.is_ascii_alphanumeric() || "_-. /".contains(c);
        if key.is_empty() || key.len() > MAX_KEY || !key.chars().all(allowed) {
            bail!(
                "{}: {what} '{key}': a name is 1 to {MAX_KEY} letters, digits, _ - . / or spaces (MLflow's rule)",
                path.display()
            );
        }
    }
    for (k, v) in &file.params {
        let text = param_text(v);
        if text.len() > MAX_PARAM {
            bail!(
                "{}: param '{k}' is {} characters long; MLflow keeps at most {MAX_PARAM}: log it as an artifact instead",
                path.display(),
                text.len()
            );
        }
    }
    for (k, v) in &file.tags {
        if v.len() > MAX_TAG {
            bail!(
                "{}: tag '{k}' is {} characters long; MLflow keeps at most {MAX_TAG}",
                path.display(),
                v.len()
            );
        }
    }
    if let Some(t) = file.tags.keys().find(|t| t.starts_with("lakebuild.")) {
        bail!(
            "{}: tag '{t}': names starting with lakebuild. are lakebuild's own; choose another",
            path.display()
        );
    }
    for a in &file.artifacts {
        let p = Path::new(a);
        let plain = p.components().all(|c| matches!(c, Component::Normal(_)));
        if a.is_empty() || !plain {
            bail!(
                "{}: artifact '{a}': give a path inside the output folder, relative and without ..",
                path.display()
            );
        }
    }
    Ok(file)
}

/// After a successful run: if the program wrote a tracking file into `out_dir`, checks it
/// and copies it and its artifacts into `attachments`. Nothing when there is none.
pub fn collect(out_dir: &Path, attachments: &Path) -> Result<()> {
    let path = out_dir.join(FILE);
    if !path.exists() {
        return Ok(());
    }
    let file = parse(&path)?;
    std::fs::create_dir_all(attachments.join(ARTIFACTS))
        .with_context(|| format!("cannot create {}", attachments.display()))?;
    for a in &file.artifacts {
        let from = out_dir.join(a);
        if !from.is_file() {
            bail!(
                "{}: artifact '{a}' was not written: the program must write {} before it exits",
                path.display(),
                from.display()
            );
        }
        let to = attachments.join(ARTIFACTS).join(a);
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::copy(&from, &to)
            .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    }
    std::fs::copy(&path, attachments.join(FILE))
        .with_context(|| format!("cannot keep {}", path.display()))?;
    Ok(())
}

/// What the tracker records of a materialization whose run left `attachments`.
pub fn report(attachments: &Path) -> Result<TrackingReport> {
    let path = attachments.join(FILE);
    let mut r = TrackingReport::default();
    if !path.exists() {
        return Ok(r);
    }
    let file = parse(&path)?;
    for (k, v) in &file.params {
        r.params.insert(k.clone(), param_text(v));
    }
    for m in &file.metrics {
        r.metric_at(m.key.clone(), m.value, m.step, m.timestamp);
    }
    r.tags = file.tags.clone();
    for a in &file.artifacts {
        let from = attachments.join(ARTIFACTS).join(a);
        let bytes =
            std::fs::read(&from).with_context(|| format!("cannot read {}", from.display()))?;
        r.artifacts.push(Artifact {
            path: format!("model/{a}"),
            bytes,
        });
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tracking_file_is_kept_with_its_artifacts_and_read_back() -> Result<()> {
        let out = tempfile::tempdir()?;
        let kept = tempfile::tempdir()?;
        let att = kept.path().join("a");
        collect(out.path(), &att)?;
        assert!(!att.exists(), "no tracking file: nothing kept");
        std::fs::create_dir_all(out.path().join("model"))?;
        std::fs::write(out.path().join("model").join("w.bin"), [7u8, 8, 9])?;
        std::fs::write(
            out.path().join(FILE),
            r#"{"params": {"lr": 0.001, "opt": "adamw"}, "metrics": [{"key": "val_loss", "value": 0.5, "step": 2}, {"key": "x", "value": 1.0}], "tags": {"framework": "pytorch"}, "artifacts": ["model/w.bin"]}"#,
        )?;
        collect(out.path(), &att)?;
        let r = report(&att)?;
        assert_eq!(r.params["lr"], "0.001");
        assert_eq!(r.params["opt"], "adamw");
        assert_eq!(
            r.metrics
                .iter()
                .map(|m| (m.key.as_str(), m.value, m.step))
                .collect::<Vec<_>>(),
            vec![("val_loss", 0.5, 2), ("x", 1.0, 0)]
        );
        assert_eq!(r.tags["framework"], "pytorch");
        assert_eq!(r.artifacts[0].path, "model/model/w.bin");
        assert_eq!(r.artifacts[0].bytes, vec![7, 8, 9]);
        Ok(())
    }

    #[test]
    fn a_bad_tracking_file_names_the_file_and_what_is_wrong() -> Result<()> {
        let out = tempfile::tempdir()?;
        let att = out.path().join("att");
        let err = |text: &str| -> String {
            let _ = std::fs::write(out.path().join(FILE), text);
            collect(out.path(), &att)
                .err()
                .map(|e| format!("{e:#}"))
                .unwrap_or_default()
        };
        let e = err(r#"{"parms": {}}"#);
        assert!(
            e.contains("tracking.json is not a valid tracking file") && e.contains("parms"),
            "{e}"
        );
        let e = err(r#"{"artifacts": ["../secret"]}"#);
        assert!(
            e.contains("artifact '../secret'") && e.contains("without .."),
            "{e}"
        );
        let e = err(r#"{"artifacts": ["missing.bin"]}"#);
        assert!(e.contains("artifact 'missing.bin' was not written"), "{e}");
        let e = err(r#"{"params": {"lr!": 1}}"#);
        assert!(
            e.contains("param 'lr!'") && e.contains("MLflow's rule"),
            "{e}"
        );
        let long = format!(r#"{{"params": {{"notes": "{}"}}}}"#, "x".repeat(6001));
        let e = err(&long);
        assert!(e.contains("param 'notes' is 6001 characters long"), "{e}");
        let e = err(r#"{"tags": {"lakebuild.key": "x"}}"#);
        assert!(e.contains("lakebuild's own"), "{e}");
        Ok(())
    }
}
