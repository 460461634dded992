//! Publishing: write the files, audit them with the rule's checks, then commit them in one Delta commit with lakebuild's record.

use super::batch::Output;
use super::options::{BuildOptions, StepSummary};
use super::output::{file_name, group_rows, tags};
use super::prepare::Prepared;
use super::restatement::restatements_of;
use crate::core::partition::PartitionId;
use crate::core::plan::{Assessment, partition_key};
use crate::core::record::{
    CommitRecord, PartitionOutcome, PartitionRecord, RECORD_FORMAT, RestatementRecord,
    restatement_digest,
};
use crate::lake::parquet::schema_record;
use crate::lake::runs::RunRow;
use crate::lake::{failpoint, parquet, table};
use anyhow::Result;
use polars::prelude::*;
use rayon::prelude::*;
use std::collections::HashMap;

/// Commits to the asset's table with the op's table properties.
pub(crate) fn commit_to_table(
    prep: &Prepared,
    table_dir: &std::path::Path,
    schema: &Schema,
    adds: &[table::NewFile],
    removes: &[table::OldFile],
    record: &CommitRecord,
) -> Result<i64> {
    let properties = prep.op.table_properties(&prep.rule.params);
    table::commit(table_dir, schema, adds, removes, record, &properties)
}

/// The lakebuild record of a commit of `partitions` (and of `removed` ones).
pub(crate) fn commit_record(
    prep: &Prepared,
    asset: &str,
    run_id: &str,
    schema: &Schema,
    partitions: Vec<PartitionRecord>,
    removed: &[PartitionId],
    restatements: Vec<RestatementRecord>,
) -> CommitRecord {
    CommitRecord {
        format: RECORD_FORMAT,
        run_id: run_id.to_string(),
        asset: asset.to_string(),
        rule: prep.ingredients.clone(),
        schema: schema_record(schema),
        partitions,
        removed: removed.to_vec(),
        committed_at: chrono::Utc::now().to_rfc3339(),
        restatements,
    }
}

/// Write, (audit already done), publish: data files, then one atomic commit.
#[allow(clippy::too_many_arguments)]
pub(crate) fn publish(
    prep: &Prepared,
    asset: &str,
    table_dir: &std::path::Path,
    run_id: &str,
    output: Output,
    gone: &[PartitionId],
    batch: &[Assessment],
    summary: &mut StepSummary,
    rows: &mut Vec<RunRow>,
    opts: &BuildOptions,
    started: i64,
) -> Result<()> {
    let Output {
        mut produced,
        events,
        checks,
    } = output;
    let by_id: HashMap<PartitionId, &Assessment> = batch.iter().map(|a| (a.id, a)).collect();
    let restatements = restatements_of(prep, asset, run_id, &by_id, &mut produced, events);
    let schema = produced
        .first()
        .map(|p| (**p.frame.schema()).clone())
        .unwrap_or_default();
    let written: Vec<Result<(PartitionRecord, table::NewFile, Option<table::OldFile>)>> = produced
        .into_par_iter()
        .map(|mut p| {
            let current = prep.state.current.get(&p.id);
            // Restated now: the restatements covering it so far, and the new ones.
            let restated = if p.restated_by.is_empty() {
                prep.restated_digest(p.id).map(String::from)
            } else {
                let before = prep.state.restatements_covering(p.id, None);
                Some(restatement_digest(
                    before
                        .iter()
                        .map(|(_, r)| r.id.as_str())
                        .chain(p.restated_by.iter().map(String::as_str)),
                ))
            };
            let restated_ref = restated.as_deref();
            let (key, reads) = match by_id.get(&p.id) {
                Some(a) if p.restated_by.is_empty() => (a.key.clone(), a.reads.clone()),
                Some(a) => (
                    partition_key(
                        asset,
                        p.id,
                        &prep.ingredients.digest,
                        &a.reads,
                        restated_ref,
                    ),
                    a.reads.clone(),
                ),
                // Restated by its source: what it read before, under its restatements.
                None if !p.restated_by.is_empty() => {
                    let reads = current
                        .map(|c| c.record().inputs.clone())
                        .unwrap_or_default();
                    (
                        partition_key(asset, p.id, &prep.ingredients.digest, &reads, restated_ref),
                        reads,
                    )
                }
                // A discovered import: no inputs, the rule digest and the id make the key.
                None => (
                    partition_key(asset, p.id, &prep.ingredients.digest, &[], restated_ref),
                    vec![],
                ),
            };
            let unchanged = current.filter(|c| c.record().content_hash == p.content_hash);
            let (file, bytes, outcome, old) = match unchanged {
                // Early cutoff: same content, so keep the file; only its key changes.
                Some(c) => (
                    c.record().file.clone(),
                    c.record().bytes,
                    PartitionOutcome::CutOff,
                    None,
                ),
                None => {
                    let name = file_name(p.id, &key);
                    let bytes = parquet::write(&mut p.frame, &table_dir.join(&name))?;
                    failpoint::hit("publish.file_written");
                    let old = current.map(|c| table::OldFile {
                        path: c.record().file.clone(),
                        size: c.record().bytes as i64,
                    });
                    (name, bytes, PartitionOutcome::Built, old)
                }
            };
            let rec = PartitionRecord {
                id: p.id,
                key: key.clone(),
                content_hash: p.content_hash.clone(),
                file: file.clone(),
                rows: p.frame.height() as u64,
                bytes,
                outcome,
                inputs: reads,
                restated,
            };
            let add = table::NewFile {
                path: file,
                size: bytes as i64,
                rows: p.frame.height() as u64,
                tags: tags(p.id, &key, &p.content_hash, run_id),
                data_change: outcome == PartitionOutcome::Built,
            };
            Ok((rec, add, old))
        })
        .collect();
    let mut records = Vec::new();
    let mut adds = Vec::new();
    let mut removes = Vec::new();
    for w in written {
        let (rec, add, old) = w?;
        records.push(rec);
        adds.push(add);
        removes.extend(old);
    }
    for id in gone {
        if let Some(c) = prep.state.current.get(id) {
            removes.push(table::OldFile {
                path: c.record().file.clone(),
                size: c.record().bytes as i64,
            });
        }
    }
    // A source whose output did not change at all and whose key did not change either:
    // nothing to commit.
    let all_same = records.iter().all(|r| {
        prep.state
            .current
            .get(&r.id)
            .is_some_and(|c| c.record().key == r.key && c.record().content_hash == r.content_hash)
    });
    if all_same && gone.is_empty() && !records.is_empty() {
        // The op ran (forced, or a re-check) and changed nothing: no commit, but the
        // history records the work, as cut off.
        summary.cut_off += records.len();
        let mut cut: Vec<PartitionRecord> = records;
        for r in &mut cut {
            r.outcome = PartitionOutcome::CutOff;
        }
        group_rows(run_id, opts, asset, started, &cut, rows, &checks);
        return Ok(());
    }
    let record = commit_record(
        prep,
        asset,
        run_id,
        &schema,
        records.clone(),
        gone,
        restatements,
    );
    failpoint::hit("publish.before_commit");
    commit_to_table(prep, table_dir, &schema, &adds, &removes, &record)?;
    failpoint::hit("publish.after_commit");
    summary.built += records
        .iter()
        .filter(|r| r.outcome == PartitionOutcome::Built)
        .count();
    summary.cut_off += records
        .iter()
        .filter(|r| r.outcome == PartitionOutcome::CutOff)
        .count();
    summary.removed += gone.len();
    let before = rows.len();
    group_rows(run_id, opts, asset, started, &records, rows, &checks);
    for r in &mut rows[before..] {
        r.bytes_read = summary.bytes_read;
    }
    Ok(())
}
