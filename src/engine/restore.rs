//! Restore before recompute: a materialization an older version holds under the same key is made current again by a commit re-adding its files.

use super::options::{BuildOptions, StepSummary};
use super::output::{group_rows, tags};
use super::prepare::Prepared;
use super::publish::{commit_record, commit_to_table};
use crate::core::partition::PartitionId;
use crate::core::plan::Assessment;
use crate::core::record::{PartitionOutcome, PartitionRecord};
use crate::engine::checks::{CheckResult, run_checks};
use crate::lake::parquet::schema_from_record;
use crate::lake::runs::RunRow;
use crate::lake::{parquet, table};
use anyhow::Result;

/// Makes older materializations with the current keys current again, and drops
/// partitions that left the domain. One commit; no op runs.
#[allow(clippy::too_many_arguments)]
pub(crate) fn restore(
    prep: &Prepared,
    asset: &str,
    table_dir: &std::path::Path,
    run_id: &str,
    restores: &[(Assessment, crate::core::table_state::KeyedFile)],
    obsolete: &[PartitionId],
    summary: &mut StepSummary,
    rows: &mut Vec<RunRow>,
    opts: &BuildOptions,
    started: i64,
) -> Result<()> {
    let mut adds = Vec::new();
    let mut removes = Vec::new();
    let mut records = Vec::new();
    let mut schema = None;
    for (a, k) in restores {
        let mut rec = k.record.clone();
        rec.outcome = PartitionOutcome::Restored;
        rec.inputs = a.reads.clone();
        if schema.is_none() {
            schema = Some(schema_from_record(&k.commit.schema));
        }
        adds.push(table::NewFile {
            path: rec.file.clone(),
            size: rec.bytes as i64,
            rows: rec.rows,
            tags: tags(rec.id, &rec.key, &rec.content_hash, run_id),
            data_change: true,
        });
        if let Some(c) = prep.state.current.get(&a.id)
            && c.record().file != rec.file
        {
            removes.push(table::OldFile {
                path: c.record().file.clone(),
                size: c.record().bytes as i64,
            });
        }
        records.push(rec);
    }
    for id in obsolete {
        if let Some(c) = prep.state.current.get(id) {
            removes.push(table::OldFile {
                path: c.record().file.clone(),
                size: c.record().bytes as i64,
            });
        }
    }
    let schema = match schema {
        Some(s) => s,
        None => prep
            .state
            .last_commit()
            .map(|(_, c)| schema_from_record(&c.schema))
            .unwrap_or_default(),
    };
    let record = commit_record(
        prep,
        asset,
        run_id,
        &schema,
        records.clone(),
        obsolete,
        vec![],
    );
    crate::lake::failpoint::hit("restore.before_commit");
    commit_to_table(prep, table_dir, &schema, &adds, &removes, &record)?;
    summary.restored += records.len();
    summary.removed += obsolete.len();
    let checks = audit_restored(prep, asset, table_dir, &records);
    if !checks.is_empty() {
        summary.checks = checks.clone();
    }
    group_rows(run_id, opts, asset, started, &records, rows, &checks);
    Ok(())
}

/// The rule's checks on restored partitions, read back from their files. The data was
/// checked when it was first published and is the same, so this only reports (for the
/// history and alerts: a rollback resolves what the bad version raised); it never blocks.
pub(crate) fn audit_restored(
    prep: &Prepared,
    asset: &str,
    table_dir: &std::path::Path,
    records: &[PartitionRecord],
) -> Vec<CheckResult> {
    if prep.rule.checks.is_empty() || records.is_empty() {
        return Vec::new();
    }
    let mut parts = Vec::new();
    for r in records {
        match parquet::scan_files(&[table_dir.join(&r.file)]).and_then(|lf| Ok(lf.collect()?)) {
            Ok(df) => parts.push((r.id, df)),
            Err(e) => {
                tracing::warn!("cannot read back restored {asset} {}: {e:#}", r.id);
                return Vec::new();
            }
        }
    }
    let mut whole = parts[0].1.clone();
    for (_, df) in &parts[1..] {
        if whole.vstack_mut(df).is_err() {
            return Vec::new();
        }
    }
    let previous = |id: PartitionId| {
        let (pid, c) = prep.state.current.range(..id).next_back()?;
        Some((*pid, c.record().rows))
    };
    run_checks(&prep.rule.checks, &whole, asset, &parts, &previous)
}
