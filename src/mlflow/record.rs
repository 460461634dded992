//! What waits in the MLflow outbox (`_lakebuild/mlflow.json`): references into the lake,
//! never copies of it, so a record is small and its delivery reads the materialization
//! as the lake holds it. Found from the commit records: a partition whose outcome is
//! `Built` is a new materialization (a run); restores and cut-offs are not.

use crate::core::record::PartitionOutcome;
use crate::engine::project::Project;
use crate::op::tracking::Tracked;
use anyhow::Result;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// One materialization of a tracked asset: an MLflow run and a registered version
    /// ([`Tracked::Run`]), or metrics logged to the run of the model it scored
    /// ([`Tracked::ModelMetrics`]).
    Run {
        asset: String,
        /// The lake version (Delta table version) that committed it.
        version: i64,
        partition: String,
        key: String,
        content_hash: String,
    },
    /// A lakebuild alias now names `version` of `asset`: the same alias in MLflow.
    Alias {
        asset: String,
        alias: String,
        version: i64,
    },
    /// A finished trial of a tuning study (`lakebuild tune`): an MLflow run nested under
    /// the study's run, with the trial's params, its objective and intermediate values.
    Trial(Box<TrialRecord>),
}

/// What a tuning trial's MLflow run holds (small: no copy of the model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialRecord {
    pub asset: String,
    pub study: String,
    pub number: u64,
    /// complete, pruned or fail.
    pub state: String,
    pub params: std::collections::BTreeMap<String, String>,
    pub objective: String,
    pub value: Option<f64>,
    /// (step, value); `None` for a diverged (NaN) step.
    pub intermediate: Vec<(u64, Option<f64>)>,
    /// Where its materialization is (absent for a pruned or failed trial).
    pub key: Option<String>,
    pub origin: Option<String>,
    pub version: Option<i64>,
    pub error: Option<String>,
    pub started_ms: i64,
    pub ended_ms: i64,
}

/// How `asset`'s materializations are tracked: as its op says, and as runs of their own
/// when its rule names an `[mlflow]` home (a team's model trained by a `command` op).
pub fn tracked_as(project: &Project, asset: &str) -> Tracked {
    let Some(rule) = project.rules.get(asset) else {
        return Tracked::No;
    };
    match project
        .registry
        .find(&rule.op)
        .map_or(Tracked::No, |op| op.tracked())
    {
        Tracked::No if rule.tracking.is_some() => Tracked::Run,
        t => t,
    }
}

/// Whether `asset` is tracked at all.
pub fn tracked(project: &Project, asset: &str) -> bool {
    tracked_as(project, asset) != Tracked::No
}

/// Whether `asset`'s materializations are runs and registered model versions, whose
/// aliases are kept in step with MLflow's.
pub fn registers_models(project: &Project, asset: &str) -> bool {
    tracked_as(project, asset) == Tracked::Run
}

/// The runs of tracked `asset` in its log: every `Built` partition, oldest first; only
/// those of build `run_id` when given. Of a model's scores ([`Tracked::ModelMetrics`],
/// rebuilt day after day as labels arrive) a backfill takes each partition's latest only.
pub fn runs(project: &Project, asset: &str, run_id: Option<&str>) -> Result<Vec<Record>> {
    let all = built(project, asset, run_id)?;
    if run_id.is_some() || tracked_as(project, asset) != Tracked::ModelMetrics {
        return Ok(all);
    }
    let mut latest: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    for r in &all {
        if let Record::Run {
            partition, version, ..
        } = r
        {
            latest.insert(partition.clone(), *version);
        }
    }
    Ok(all
        .into_iter()
        .filter(|r| match r {
            Record::Run {
                partition, version, ..
            } => latest.get(partition) == Some(version),
            Record::Alias { .. } | Record::Trial(_) => true,
        })
        .collect())
}

fn built(project: &Project, asset: &str, run_id: Option<&str>) -> Result<Vec<Record>> {
    let state = crate::lake::log::load(&project.lake.table(asset))?;
    let mut out = Vec::new();
    for (version, commit) in &state.commits {
        if run_id.is_some_and(|r| r != commit.run_id) {
            continue;
        }
        for p in commit
            .partitions
            .iter()
            .filter(|p| p.outcome == PartitionOutcome::Built)
        {
            out.push(Record::Run {
                asset: asset.to_string(),
                version: *version,
                partition: p.id.to_string(),
                key: p.key.clone(),
                content_hash: p.content_hash.clone(),
            });
        }
    }
    Ok(out)
}
