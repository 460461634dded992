//! What an experiment tracker records of one materialization of a model-producing op
//! ([`super::Op::tracking`]): its resolved params, metric histories, tags and artifacts,
//! derived from the published output alone, so that a build, a later delivery and a
//! backfill of an old version all record the same thing. Tracker-neutral: the MLflow
//! layer maps it onto runs, and another tracker could too.

use std::collections::BTreeMap;

/// How an op's materializations reach a tracker ([`super::Op::tracked`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracked {
    No,
    /// Each materialization is a run of its own and a version of a registered model (a
    /// trained model).
    Run,
    /// Each materialization adds its metrics to the run of the model it scored (an
    /// evaluation, live monitoring): [`TrackingReport::model_run`] names that run.
    ModelMetrics,
}

/// One metric value; `step` orders a history (an epoch, a fold, a trading day).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricPoint {
    pub key: String,
    pub value: f64,
    pub step: i64,
    /// When it was measured (ms since the epoch), when that is a fact of the data (a
    /// trading day); otherwise the tracker uses the commit's time.
    pub timestamp_ms: Option<i64>,
}

/// A file to attach, its path relative to the run's artifact root.
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    pub path: String,
    pub bytes: Vec<u8>,
}

/// Everything a tracker records of one materialization.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrackingReport {
    /// Resolved params (every one that determined the output), as text.
    pub params: BTreeMap<String, String>,
    pub metrics: Vec<MetricPoint>,
    pub tags: BTreeMap<String, String>,
    pub artifacts: Vec<Artifact>,
    /// For [`Tracked::ModelMetrics`]: the run the metrics belong to, as a tag and its
    /// value (e.g. `lakebuild.model_id` and the scored model's id); `None` when the
    /// output names no model (nothing is recorded).
    pub model_run: Option<(String, String)>,
}

impl TrackingReport {
    /// Adds `value` under `key` at `step` when it is a finite number (trackers refuse
    /// NaN and infinities, and an undefined metric is better left out than faked).
    pub fn metric(&mut self, key: impl Into<String>, value: f64, step: i64) {
        self.metric_at(key, value, step, None);
    }

    /// [`TrackingReport::metric`] with the time it was measured.
    pub fn metric_at(
        &mut self,
        key: impl Into<String>,
        value: f64,
        step: i64,
        timestamp_ms: Option<i64>,
    ) {
        if value.is_finite() {
            self.metrics.push(MetricPoint {
                key: key.into(),
                value,
                step,
                timestamp_ms,
            });
        }
    }

    /// Adds every leaf of a JSON object as a param, nested keys joined by `.`, arrays
    /// and `null` written as JSON text.
    pub fn params_from_json(&mut self, prefix: &str, value: &serde_json::Value) {
        match value {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    self.params_from_json(&key, v);
                }
            }
            serde_json::Value::String(s) => {
                self.params.insert(prefix.to_string(), s.clone());
            }
            other => {
                self.params.insert(prefix.to_string(), other.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn params_flatten_and_undefined_metrics_are_left_out() {
        let mut r = TrackingReport::default();
        r.params_from_json(
            "",
            &json!({"lr": 0.0005, "linear_init": "ridge", "days_per_epoch": null, "graph": {"k": 15}}),
        );
        assert_eq!(r.params["lr"], "0.0005");
        assert_eq!(r.params["linear_init"], "ridge");
        assert_eq!(r.params["days_per_epoch"], "null");
        assert_eq!(r.params["graph.k"], "15");
        r.metric("a", f64::NAN, 0);
        r.metric("a", f64::INFINITY, 1);
        r.metric("a", 0.5, 2);
        assert_eq!(
            r.metrics,
            vec![MetricPoint {
                key: "a".into(),
                value: 0.5,
                step: 2,
                timestamp_ms: None
            }]
        );
    }
}
