//! An op's output split into partitions, canonically ordered and hashed, and grouped into the rows and files a commit publishes.

use super::batch::Produced;
use super::history_rows::row;
use super::options::BuildOptions;
use super::prepare::Prepared;
use crate::core::canonical::short;
use crate::core::partition::PartitionId;
use crate::core::record::{PartitionOutcome, PartitionRecord};
use crate::engine::checks::CheckResult;
use crate::lake::content_hash::{canonical_order, hash_sorted};
use crate::lake::parquet::normalize_for_delta;
use crate::lake::runs::{RunRow, unique_suffix};
use anyhow::{Result, anyhow, bail};
use polars::prelude::*;
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

/// Splits an op's output by partition, in canonical order, with content hashes.
pub(crate) fn split_and_hash(
    prep: &Prepared,
    asset: &str,
    batch: &[PartitionId],
    df: DataFrame,
) -> Result<Vec<Produced>> {
    let df = normalize_for_delta(df)?;
    let keys = &prep.rule.key_columns;
    let mut parts: Vec<(PartitionId, DataFrame)> = Vec::new();
    if !prep.rule.daily {
        parts.push((PartitionId::Whole, df));
    } else {
        let dc = prep.rule.date_column.as_str();
        let c = df.column(dc).map_err(|_| {
            anyhow!(
                "the output of daily asset '{asset}' has no '{dc}' column (it has {}): add it, or set date_column in {}",
                df.get_column_names().iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                prep.rule.file.display()
            )
        })?;
        if c.dtype() != &DataType::Date {
            bail!("column '{dc}' of '{asset}' is {}, not a date", c.dtype());
        }
        if c.null_count() > 0 {
            bail!(
                "column '{dc}' of '{asset}' has {} null dates",
                c.null_count()
            );
        }
        let mut by_day: BTreeMap<PartitionId, DataFrame> = BTreeMap::new();
        if df.height() > 0 {
            for part in df.partition_by_stable([dc], true)? {
                let day = part
                    .column(dc)?
                    .date()?
                    .as_date_iter()
                    .next()
                    .flatten()
                    .ok_or_else(|| anyhow!("empty partition"))?;
                by_day.insert(PartitionId::Day(day), part);
            }
        }
        if !batch.is_empty() {
            let wanted: BTreeSet<&PartitionId> = batch.iter().collect();
            let extra: Vec<String> = by_day
                .keys()
                .filter(|k| !wanted.contains(k))
                .map(|k| k.to_string())
                .collect();
            if !extra.is_empty() {
                bail!(
                    "op '{}' of '{asset}' returned rows for partitions it was not asked for: {} (asked for {}..{})",
                    prep.rule.op,
                    extra.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
                    batch[0],
                    batch[batch.len() - 1]
                );
            }
            for p in batch {
                by_day.entry(*p).or_insert_with(|| df.clear());
            }
        }
        parts.extend(by_day);
    }
    parts
        .into_par_iter()
        .map(|(id, frame)| {
            let frame = canonical_order(&frame, keys)?;
            let content_hash = hash_sorted(&frame)?.to_hex().to_string();
            Ok(Produced {
                id,
                frame,
                content_hash,
                restated_by: vec![],
            })
        })
        .collect()
}

pub(crate) fn file_name(id: PartitionId, key: &str) -> String {
    format!("part-{id}-{}-{}.parquet", short(key), &unique_suffix()[..8])
}

pub(crate) fn tags(
    id: PartitionId,
    key: &str,
    content_hash: &str,
    run_id: &str,
) -> Vec<(String, String)> {
    vec![
        ("lakebuild.run_id".into(), run_id.to_string()),
        ("lakebuild.partition".into(), id.to_string()),
        ("lakebuild.key".into(), key.to_string()),
        ("lakebuild.content_hash".into(), content_hash.to_string()),
    ]
}

pub(crate) fn group_rows(
    run_id: &str,
    opts: &BuildOptions,
    asset: &str,
    started: i64,
    records: &[PartitionRecord],
    rows: &mut Vec<RunRow>,
    checks: &[CheckResult],
) {
    // The attempt that succeeded: one more than the failed attempts just recorded.
    let attempt = 1 + rows
        .iter()
        .rev()
        .take_while(|r| r.asset == asset && r.outcome == "failed")
        .count();
    for outcome in PartitionOutcome::ALL {
        let name = outcome.as_str();
        let group: Vec<&PartitionRecord> =
            records.iter().filter(|r| r.outcome == outcome).collect();
        if group.is_empty() {
            continue;
        }
        let ids: Vec<PartitionId> = group.iter().map(|r| r.id).collect();
        let key = (group.len() == 1).then(|| group[0].key.as_str());
        let nrows: u64 = group.iter().map(|r| r.rows).sum();
        let bytes: u64 = group.iter().map(|r| r.bytes).sum();
        let mut r = row(
            run_id,
            opts,
            asset,
            name,
            attempt,
            started,
            crate::clock::now_ms(),
            Some((&ids, key, nrows, bytes)),
            None,
        );
        if !checks.is_empty() {
            r.checks = serde_json::to_string(checks).ok();
        }
        rows.push(r);
    }
}
