//! Retries of a failed batch: transient errors only, with the rule's backoff (one implementation).

use super::batch::{Output, concat_frames, op_inputs, resume_dir};
use super::history_rows::failed_row;
use super::options::{BuildOptions, StepSummary};
use super::output::split_and_hash;
use super::prepare::Prepared;
use super::restatement::restated_partitions;
use crate::core::error::{Transience, UsageError, transience};
use crate::core::partition::PartitionId;
use crate::engine::checks::{CheckResult, run_checks};
use crate::engine::project::Project;
use crate::lake::attachments;
use crate::lake::runs::{RunRow, unique_suffix};
use crate::op::OpContext;
use anyhow::{Context, Result, bail};
use polars::prelude::*;
use std::collections::BTreeSet;

#[allow(clippy::too_many_arguments)]
pub(crate) fn run_with_retry(
    prep: &Prepared,
    asset: &str,
    batch: Vec<PartitionId>,
    settled: &BTreeSet<PartitionId>,
    project: &Project,
    run_id: &str,
    summary: &mut StepSummary,
    rows: &mut Vec<RunRow>,
    opts: &BuildOptions,
) -> Result<Output> {
    let attempts = prep.rule.retry.attempts.max(1) as usize;
    let mut attempt = 0;
    loop {
        attempt += 1;
        summary.attempts += 1;
        let started = crate::clock::now_ms();
        let scratch = project
            .lake
            .scratch(run_id)
            .join(format!("{asset}-{}", unique_suffix()));
        std::fs::create_dir_all(&scratch)
            .with_context(|| format!("cannot create {}", scratch.display()))?;
        let inputs = op_inputs(prep, project, &batch);
        let bytes_read: i64 = inputs
            .iter()
            .flat_map(|i| i.partitions.iter())
            .filter_map(|(_, f)| std::fs::metadata(f).ok())
            .map(|m| m.len() as i64)
            .sum();
        summary.bytes_read = bytes_read;
        let resume = resume_dir(project, asset, prep, &batch, &inputs);
        let ctx = OpContext {
            rule: prep.rule,
            params: prep.rule.params.clone(),
            partitions: batch.clone(),
            inputs,
            project_root: &project.root,
            scratch: scratch.clone(),
            resume: resume.clone(),
            sources: &prep.sources,
            attachments: scratch.join("attachments"),
            cache: project
                .lake
                .op_cache(prep.op.name(), prep.op.code_version()),
            // Under the current rule only: a restated partition is recorded under it.
            published: prep
                .state
                .current
                .iter()
                .filter(|(id, c)| {
                    (batch.contains(id) || !settled.contains(id))
                        && c.commit.rule.digest == prep.ingredients.digest
                })
                .map(|(id, c)| (*id, prep.state.table.join(&c.record().file)))
                .collect(),
            reports: prep.reports.as_deref(),
        };
        summary.ops_run += 1;
        let result = prep.op.run(&ctx).and_then(|df| {
            let restated = prep.op.restate(&ctx, &df)?;
            let mut produced = split_and_hash(prep, asset, &batch, df)?;
            let hashes: Vec<&str> = produced.iter().map(|p| p.content_hash.as_str()).collect();
            let owner = attachments::owner(&ctx.attachments, asset, &hashes)?.map(str::to_string);
            let mut events = vec![];
            if let Some(r) = restated {
                if batch.is_empty() {
                    bail!(
                        "op '{}' of '{asset}' restated partitions on a run without a batch",
                        prep.rule.op
                    );
                }
                produced.extend(restated_partitions(prep, asset, &ctx, r.rows, &r.events)?);
                events = r.events;
            }
            Ok((produced, events, owner))
        });
        // The scratch goes when this attempt ends, however it ends; the run's
        // attachments are kept from it once its checks passed.
        let _scratch = RemoveOnDrop(scratch.clone());
        if result.is_ok() {
            let _ = std::fs::remove_dir_all(&resume);
        }
        match result {
            Ok((produced, events, owner)) => {
                let whole = concat_frames(&produced)?;
                let parts: Vec<(PartitionId, DataFrame)> =
                    produced.iter().map(|p| (p.id, p.frame.clone())).collect();
                let previous = |id: PartitionId| {
                    let (pid, c) = prep.state.current.range(..id).next_back()?;
                    Some((*pid, c.record().rows))
                };
                let checks = run_checks(&prep.rule.checks, &whole, asset, &parts, &previous);
                let failed: Vec<&CheckResult> =
                    checks.iter().filter(|c| c.blocking_failure()).collect();
                if !failed.is_empty() {
                    let msg = failed
                        .iter()
                        .map(|c| format!("check '{}' failed: {}", c.name, c.detail))
                        .collect::<Vec<_>>()
                        .join("\n");
                    summary.checks = checks.clone();
                    let mut r = failed_row(run_id, opts, asset, attempt, started, &batch, &msg);
                    r.checks = serde_json::to_string(&checks).ok();
                    r.bytes_read = bytes_read;
                    rows.push(r);
                    bail!("{msg}\nnothing was published for {asset}");
                }
                summary.checks = checks.clone();
                if let Some(hash) = owner {
                    let committed = |h: &str| {
                        prep.state
                            .commits
                            .values()
                            .any(|c| c.partitions.iter().any(|p| p.content_hash == h))
                    };
                    attachments::keep(
                        &project.lake.root,
                        asset,
                        &ctx.attachments,
                        &hash,
                        committed,
                    )?;
                }
                return Ok(Output {
                    produced,
                    events,
                    checks,
                });
            }
            Err(e) => {
                let msg = format!("{e:#}");
                let transient = transience(&e) == Transience::Transient;
                let mut r = failed_row(run_id, opts, asset, attempt, started, &batch, &msg);
                r.bytes_read = bytes_read;
                rows.push(r);
                if transient && attempt < attempts {
                    let delay = prep.rule.retry.delay(attempt, crate::clock::jitter());
                    tracing::warn!(
                        asset,
                        attempt,
                        "transient failure, retrying in {delay:?}: {msg}"
                    );
                    std::thread::sleep(delay);
                    continue;
                }
                if e.chain().any(|c| c.is::<UsageError>()) {
                    return Err(e);
                }
                return Err(e.context(format!(
                    "{asset} failed after {attempt} attempt(s){}",
                    if transient {
                        ""
                    } else {
                        " (not retried: the error is permanent)"
                    }
                )));
            }
        }
    }
}

/// Removes a folder when dropped (an attempt's scratch).
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
