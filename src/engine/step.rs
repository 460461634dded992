//! One step: the stale partitions of one asset in batches, each batch one op run over its inputs' windows.

use super::batch::Output;
use super::history_rows::reused_row;
use super::options::{BuildOptions, StepSummary};
use super::prepare::{may_restore, prepare_to_run, reprepare, restorable_file};
use super::publish::publish;
use super::restore::restore;
use super::retry::run_with_retry;
use crate::core::partition::PartitionId;
use crate::core::plan::Assessment;
use crate::engine::progress::Progress;
use crate::engine::project::{Project, States};
use crate::lake::runs::RunRow;
use anyhow::Result;
use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

pub(crate) fn run_step(
    project: &Project,
    states: &States,
    asset: &str,
    opts: &BuildOptions,
    run_id: &str,
    progress: &Progress,
) -> Result<(StepSummary, Vec<RunRow>)> {
    let t0 = Instant::now();
    let started = crate::clock::now_ms();
    let mut prep = prepare_to_run(project, states, asset, opts)?;
    let mut summary = StepSummary {
        asset: asset.to_string(),
        ..Default::default()
    };
    let mut rows = Vec::new();
    let table_dir = project.lake.table(asset);

    if prep.discovered {
        let reasons = prep.source_reasons(opts.force);
        if reasons.is_empty() {
            summary.fresh = prep.state.current.len();
            rows.push(reused_row(run_id, opts, asset, started));
        } else {
            tracing::info!(
                asset,
                "import runs: {}",
                reasons
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            let bar = progress.step(asset, 1);
            let result = run_with_retry(
                &prep,
                asset,
                vec![],
                &BTreeSet::new(),
                project,
                run_id,
                &mut summary,
                &mut rows,
                opts,
            );
            bar.finish_and_clear();
            match result {
                Ok(out) => {
                    let produced = out.produced;
                    let gone: Vec<PartitionId> = prep
                        .state
                        .current
                        .keys()
                        .filter(|k| !produced.iter().any(|p| p.id == **k))
                        .copied()
                        .collect();
                    publish(
                        &prep,
                        asset,
                        &table_dir,
                        run_id,
                        Output {
                            produced,
                            events: out.events,
                            checks: out.checks,
                        },
                        &gone,
                        &[],
                        &mut summary,
                        &mut rows,
                        opts,
                        started,
                    )?;
                }
                Err(e) => summary.failed = Some(format!("{e:#}")),
            }
            // Only a run that may have committed changes what later steps read.
            states.reload(asset)?;
        }
        summary.duration_ms = t0.elapsed().as_millis() as i64;
        return Ok((summary, rows));
    }

    let assessments = prep.assess_all(asset, opts, false);
    let (fresh, stale): (Vec<_>, Vec<_>) = assessments.into_iter().partition(|a| a.fresh());
    summary.fresh = fresh.len();
    let obsolete = prep.obsolete();
    if stale.is_empty() && obsolete.is_empty() {
        rows.push(reused_row(run_id, opts, asset, started));
        summary.duration_ms = t0.elapsed().as_millis() as i64;
        return Ok((summary, rows));
    }

    // Reuse before recompute: an older version holding the same key, or a tuning trial
    // that built it (the asset's variants table: its file is copied in first).
    let mut restores = Vec::new();
    let mut compute: Vec<Assessment> = Vec::new();
    let variants = super::variant::VariantKeys::new(project, asset);
    for a in stale {
        if !may_restore(&a, opts.force) {
            compute.push(a);
            continue;
        }
        if let Some(k) = restorable_file(&prep.state, &a.key) {
            restores.push((a, k.clone()));
            continue;
        }
        match variants.restorable(&a.key)? {
            Some((s, k)) => {
                super::variant::copy_file(&s.table, &table_dir, &k.record.file)?;
                restores.push((a, k.clone()));
            }
            None => compute.push(a),
        }
    }
    if !restores.is_empty() || !obsolete.is_empty() {
        restore(
            &prep,
            asset,
            &table_dir,
            run_id,
            &restores,
            &obsolete,
            &mut summary,
            &mut rows,
            opts,
            started,
        )?;
        if !compute.is_empty() {
            // The batches see the table as restored: a source may restate what was
            // restored, and keys against it.
            prep = reprepare(project, states, asset, opts, &prep.ingredients.digest)?;
        }
    }
    if compute.is_empty() {
        states.reload(asset)?;
        summary.duration_ms = t0.elapsed().as_millis() as i64;
        return Ok((summary, rows));
    }

    // Contiguous runs of stale partitions, in batches.
    let index: HashMap<PartitionId, usize> = prep
        .targets
        .iter()
        .enumerate()
        .map(|(i, p)| (*p, i))
        .collect();
    let mut batches: Vec<Vec<Assessment>> = Vec::new();
    for a in compute {
        let i = index.get(&a.id).copied().unwrap_or(0);
        let extend = batches.last().is_some_and(|b: &Vec<Assessment>| {
            b.len() < opts.batch_size.max(1)
                && b.last()
                    .is_some_and(|l| index.get(&l.id).copied().unwrap_or(0) + 1 == i)
        });
        if extend {
            if let Some(b) = batches.last_mut() {
                b.push(a);
            }
        } else {
            batches.push(vec![a]);
        }
    }
    let total: usize = batches.iter().map(|b| b.len()).sum();
    let bar = progress.step(asset, total as u64);
    // What a source may not restate: the partitions this step recomputes (other batches
    // fetch them now).
    let settled: BTreeSet<PartitionId> = batches.iter().flatten().map(|a| a.id).collect();
    for batch in batches {
        let ids: Vec<PartitionId> = batch.iter().map(|a| a.id).collect();
        bar.set_message(format!("{}..{}", ids[0], ids[ids.len() - 1]));
        match run_with_retry(
            &prep,
            asset,
            ids.clone(),
            &settled,
            project,
            run_id,
            &mut summary,
            &mut rows,
            opts,
        ) {
            Ok(out) => {
                let restated = !out.events.is_empty();
                publish(
                    &prep,
                    asset,
                    &table_dir,
                    run_id,
                    out,
                    &[],
                    &batch,
                    &mut summary,
                    &mut rows,
                    opts,
                    started,
                )?;
                if restated {
                    // Later batches restate from, and key against, what this one published.
                    prep = reprepare(project, states, asset, opts, &prep.ingredients.digest)?;
                }
                bar.inc(ids.len() as u64);
            }
            Err(e) => {
                summary.failed = Some(format!("{e:#}"));
                break;
            }
        }
    }
    bar.finish_and_clear();
    states.reload(asset)?;
    summary.duration_ms = t0.elapsed().as_millis() as i64;
    Ok((summary, rows))
}
