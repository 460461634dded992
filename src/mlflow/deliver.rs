//! Delivering one outbox record to MLflow, idempotently: a record delivered twice (a
//! kill between the server's answer and the outbox's rewrite) finds what the first
//! delivery made, by the `lakebuild.key` tag of its run and the `lakebuild.content_hash`
//! tag of its registered version, and makes nothing new.
//!
//! A run: the experiment (the rule's `[mlflow] experiment`, else the asset's name), the
//! run with lakebuild's tags, the op's [`TrackingReport`](crate::op::tracking::TrackingReport)
//! (params, metric histories, tags, artifacts) with timestamps from the commit, the run
//! finished at the commit's time, then a version of the registered model (the rule's
//! `[mlflow] registered_model`, else the asset's name) with the run as its source. An
//! alias: the registered version holding the content of the lake version it names.
//!
//! The scores of a model ([`Tracked::ModelMetrics`]: `model_evaluation`,
//! `prediction_performance`) are no run of their own: their metrics go to the run of the
//! model they scored, found by the tag the op names (`lakebuild.model_id`), with the
//! trading day as the step and its date as the timestamp where the op gives one, so that
//! a partition delivered again adds nothing (MLflow keeps one point per key, step,
//! timestamp and value).

use super::client::{Client, Failure, Res, pairs, tag, text};
use super::record::{Record, TrialRecord};
use crate::core::partition::PartitionId;
use crate::engine::project::Project;
use crate::lake::outbox::Delivery;
use crate::op::tracking::Tracked;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};

/// The MLflow names of an asset: its experiment and its registered model.
pub fn homes(project: &Project, asset: &str) -> (String, String) {
    let t = project.rules.get(asset).and_then(|r| r.tracking.clone());
    let t = t.unwrap_or_default();
    (
        t.experiment.unwrap_or_else(|| asset.to_string()),
        t.registered_model.unwrap_or_else(|| asset.to_string()),
    )
}

/// The model runs found by their tag during one delivery round (a day of live metrics
/// each: one search per model, not per day).
#[derive(Default)]
pub struct ModelRuns(HashMap<(String, String), String>);

pub fn deliver(
    project: &Project,
    client: &Client,
    model_runs: &mut ModelRuns,
    record: &Record,
) -> Delivery {
    let done = match record {
        Record::Run {
            asset,
            version,
            partition,
            key,
            content_hash,
        } => run(
            project,
            client,
            model_runs,
            asset,
            *version,
            partition,
            key,
            content_hash,
        ),
        Record::Alias {
            asset,
            alias,
            version,
        } => alias_(project, client, asset, alias, *version),
        Record::Trial(t) => trial(project, client, t),
    };
    match done {
        Ok(()) => Delivery::Delivered,
        Err(Failure::Refused { code, message }) => Delivery::Rejected(format!("{code}: {message}")),
        Err(Failure::Down(m)) | Err(Failure::Credentials(m)) => Delivery::Retry(m),
    }
}

/// A problem with the lake side of a record: it can never be delivered.
fn lake(message: impl std::fmt::Display) -> Failure {
    Failure::Refused {
        code: "LAKE".into(),
        message: message.to_string(),
    }
}

#[allow(clippy::too_many_arguments)]
fn run(
    project: &Project,
    client: &Client,
    model_runs: &mut ModelRuns,
    asset: &str,
    version: i64,
    partition: &str,
    key: &str,
    content_hash: &str,
) -> Res<()> {
    let table = project.lake.table(asset);
    let state = crate::lake::log::load(&table).map_err(|e| lake(format!("{e:#}")))?;
    let commit = state
        .commits
        .get(&version)
        .ok_or_else(|| lake(format!("{asset} has no version {version} any more")))?;
    let rec = commit
        .partitions
        .iter()
        .find(|p| p.key == key)
        .ok_or_else(|| {
            lake(format!(
                "{asset} version {version} has no partition {partition}"
            ))
        })?;
    let op = project.registry.find(&commit.rule.op).ok_or_else(|| {
        lake(format!(
            "op '{}' of {asset} is not in this build of lakebuild",
            commit.rule.op
        ))
    })?;
    let frame = crate::lake::parquet::scan_files(&[table.join(&rec.file)])
        .and_then(|lf| Ok(lf.collect()?))
        .map_err(|e| lake(format!("{asset} version {version}: its file cannot be read ({e:#}); was it garbage-collected?")))?;
    let report = op
        .tracking(
            &commit.rule.params,
            &frame,
            &crate::lake::attachments::dir(&project.lake.root, asset, content_hash),
        )
        .map_err(|e| lake(format!("{asset} version {version}: {e:#}")))?;
    let at_ms = state.timestamps.get(&version).copied().unwrap_or(0);
    let metrics: Vec<Value> = report
        .metrics
        .iter()
        .map(|m| json!({"key": m.key, "value": m.value, "step": m.step, "timestamp": m.timestamp_ms.unwrap_or(at_ms)}))
        .collect();
    if super::record::tracked_as(project, asset) == Tracked::ModelMetrics {
        let Some((tag_key, tag_value)) = &report.model_run else {
            return Ok(());
        };
        let Some(target) = model_run(project, client, model_runs, tag_key, tag_value)? else {
            return Err(Failure::Refused {
                code: "NO_MODEL_RUN".into(),
                message: format!(
                    "{asset} version {version} scores the model with {tag_key} = {tag_value}, which has no MLflow run: run `lakebuild mlflow sync` to record every model version, then its scores"
                ),
            });
        };
        return client.log_batch(&target, Vec::new(), Vec::new(), metrics);
    }
    let (experiment_name, model_name) = homes(project, asset);
    let experiment = client.experiment(&experiment_name)?;

    let mut tags: BTreeMap<String, String> = BTreeMap::from([
        ("lakebuild.asset".into(), asset.to_string()),
        ("lakebuild.version".into(), version.to_string()),
        ("lakebuild.partition".into(), partition.to_string()),
        ("lakebuild.key".into(), key.to_string()),
        ("lakebuild.content_hash".into(), content_hash.to_string()),
        ("lakebuild.run_id".into(), commit.run_id.clone()),
        ("lakebuild.op".into(), commit.rule.op.clone()),
        (
            "lakebuild.code_version".into(),
            commit.rule.code_version.clone(),
        ),
        ("lakebuild.rule_digest".into(), commit.rule.digest.clone()),
        ("lakebuild.committed_at".into(), commit.committed_at.clone()),
        ("mlflow.source.name".into(), "lakebuild".into()),
        ("mlflow.source.type".into(), "JOB".into()),
    ]);
    for i in &rec.inputs {
        tags.insert(
            format!("lakebuild.input.{}.version", i.asset),
            i.version.to_string(),
        );
        tags.insert(
            format!("lakebuild.input.{}.content_hash", i.asset),
            i.digest.clone(),
        );
    }
    tags.extend(report.tags.clone());

    let found = client.runs_tagged(std::slice::from_ref(&experiment), "lakebuild.key", key)?;
    let info = match found.into_iter().next() {
        Some(info) => info,
        None => {
            let name = if rec.id == PartitionId::Whole {
                format!("{asset} v{version}")
            } else {
                format!("{asset} {partition} v{version}")
            };
            client.create_run(&experiment, &name, at_ms, pairs(&tags))?
        }
    };
    let run_id = text(&info["run_id"]);
    client.log_batch(&run_id, pairs(&report.params), pairs(&tags), metrics)?;
    let artifact_uri = text(&info["artifact_uri"]);
    for a in &report.artifacts {
        client.upload(&artifact_uri, &a.path, a.bytes.clone())?;
    }
    client.finish_run(&run_id, at_ms)?;

    // The registered version of this content (one per distinct content).
    client.registered_model(&model_name)?;
    let versions = client.versions(&model_name)?;
    if !versions
        .iter()
        .any(|v| tag(v, "lakebuild.content_hash") == Some(content_hash))
    {
        let mut vtags = BTreeMap::from([
            ("lakebuild.asset".to_string(), asset.to_string()),
            ("lakebuild.version".to_string(), version.to_string()),
            (
                "lakebuild.content_hash".to_string(),
                content_hash.to_string(),
            ),
            ("lakebuild.key".to_string(), key.to_string()),
        ]);
        if let Some(id) = report.tags.get("lakebuild.model_id") {
            vtags.insert("lakebuild.model_id".into(), id.clone());
        }
        let source = format!("{}/model", artifact_uri.trim_end_matches('/'));
        client.create_version(&model_name, &source, &run_id, pairs(&vtags))?;
    }
    Ok(())
}

/// The run of the model whose tag `key` is `value`, in the experiments of the project's
/// model assets: the first one made when the same model was recorded more than once.
fn model_run(
    project: &Project,
    client: &Client,
    cache: &mut ModelRuns,
    key: &str,
    value: &str,
) -> Res<Option<String>> {
    let wanted = (key.to_string(), value.to_string());
    if let Some(found) = cache.0.get(&wanted) {
        return Ok(Some(found.clone()));
    }
    let mut experiments = Vec::new();
    for asset in &project.rules.order {
        if super::record::registers_models(project, asset) {
            let (name, _) = homes(project, asset);
            if let Some(id) = client.find_experiment(&name)?
                && !experiments.contains(&id)
            {
                experiments.push(id);
            }
        }
    }
    let found = if experiments.is_empty() {
        None
    } else {
        client
            .runs_tagged(&experiments, key, value)?
            .first()
            .map(|info| text(&info["run_id"]))
    };
    // Only what was found: a model missing now may be recorded later in the same round.
    if let Some(run) = &found {
        cache.0.insert(wanted, run.clone());
    }
    Ok(found)
}

fn alias_(project: &Project, client: &Client, asset: &str, alias: &str, version: i64) -> Res<()> {
    let state =
        crate::lake::log::load(&project.lake.table(asset)).map_err(|e| lake(format!("{e:#}")))?;
    let hash = state
        .commits
        .get(&version)
        .and_then(|c| c.partitions.iter().find(|p| p.id == PartitionId::Whole))
        .map(|p| p.content_hash.clone())
        .ok_or_else(|| lake(format!("{asset} has no model at version {version}")))?;
    let (_, model_name) = homes(project, asset);
    let versions = client.versions(&model_name)?;
    let Some(v) = versions
        .iter()
        .find(|v| tag(v, "lakebuild.content_hash") == Some(hash.as_str()))
    else {
        return Err(lake(format!(
            "{asset} version {version} is not registered in MLflow yet: run `lakebuild mlflow sync` to register every version"
        )));
    };
    client.set_alias(&model_name, alias, &text(&v["version"]))?;
    super::alias_sync::agreed(project, asset, alias, version).map_err(|e| lake(format!("{e:#}")))
}

/// A tuning trial: the study's run (tag `lakebuild.study_run`, made by the first trial
/// delivered) and the trial's run nested under it (`mlflow.parentRunId`, found again by
/// its tag `lakebuild.trial` = `<study>#<number>`), with the trial's params, the objective
/// (step 0) and its intermediate values (`intermediate/<objective>` by step), finished
/// as the trial ended (a pruned trial FINISHED with `optuna.state` PRUNED, a failed one
/// FAILED). The study's run gets the objective of each complete trial, by trial number.
fn trial(project: &Project, client: &Client, t: &TrialRecord) -> Res<()> {
    let (experiment_name, _) = homes(project, &t.asset);
    let experiment = client.experiment(&experiment_name)?;
    let exps = std::slice::from_ref(&experiment);
    let parent = match client
        .runs_tagged(exps, "lakebuild.study_run", &t.study)?
        .into_iter()
        .next()
    {
        Some(info) => text(&info["run_id"]),
        None => {
            let tags = BTreeMap::from([
                ("lakebuild.study_run".to_string(), t.study.clone()),
                ("lakebuild.asset".to_string(), t.asset.clone()),
                ("lakebuild.objective".to_string(), t.objective.clone()),
                (
                    "mlflow.source.name".to_string(),
                    "lakebuild tune".to_string(),
                ),
                ("mlflow.source.type".to_string(), "JOB".to_string()),
            ]);
            let info = client.create_run(
                &experiment,
                &format!("tune {}", t.study),
                t.started_ms,
                pairs(&tags),
            )?;
            text(&info["run_id"])
        }
    };
    let trial_tag = format!("{}#{}", t.study, t.number);
    let mut tags = BTreeMap::from([
        ("mlflow.parentRunId".to_string(), parent.clone()),
        ("lakebuild.trial".to_string(), trial_tag.clone()),
        ("lakebuild.study".to_string(), t.study.clone()),
        ("lakebuild.asset".to_string(), t.asset.clone()),
        ("optuna.trial_number".to_string(), t.number.to_string()),
        ("optuna.state".to_string(), t.state.to_uppercase()),
        (
            "mlflow.source.name".to_string(),
            "lakebuild tune".to_string(),
        ),
        ("mlflow.source.type".to_string(), "JOB".to_string()),
    ]);
    for (k, v) in [
        ("lakebuild.key", &t.key),
        ("lakebuild.origin", &t.origin),
        ("lakebuild.error", &t.error),
    ] {
        if let Some(v) = v {
            tags.insert(k.to_string(), v.chars().take(5000).collect());
        }
    }
    if let Some(v) = t.version {
        tags.insert("lakebuild.version".into(), v.to_string());
    }
    let run = match client
        .runs_tagged(exps, "lakebuild.trial", &trial_tag)?
        .into_iter()
        .next()
    {
        Some(info) => text(&info["run_id"]),
        None => {
            let info = client.create_run(
                &experiment,
                &format!("{} trial {}", t.study, t.number),
                t.started_ms,
                pairs(&tags),
            )?;
            text(&info["run_id"])
        }
    };
    let mut metrics: Vec<Value> = t
        .intermediate
        .iter()
        .filter_map(|(step, v)| {
            v.map(|v| json!({"key": format!("intermediate/{}", t.objective), "value": v, "step": step, "timestamp": t.ended_ms}))
        })
        .collect();
    if let Some(v) = t.value {
        metrics.push(json!({"key": t.objective, "value": v, "step": 0, "timestamp": t.ended_ms}));
        client.log_batch(
            &parent,
            Vec::new(),
            Vec::new(),
            vec![
                json!({"key": t.objective, "value": v, "step": t.number, "timestamp": t.ended_ms}),
            ],
        )?;
    }
    client.log_batch(&run, pairs(&t.params), pairs(&tags), metrics)?;
    let status = if t.state == "fail" {
        "FAILED"
    } else {
        "FINISHED"
    };
    client.end_run(&run, status, t.ended_ms)?;
    client.end_run(&parent, "FINISHED", t.ended_ms)
}
