//! `lakebuild retry RUN`: what a run left undone. The last attempt of each asset in the run
//! decides whether it failed (a failed or skipped step); the retry builds exactly those
//! assets over the partition range their failed rows name, reusing everything that
//! succeeded.

use crate::core::error::UsageError;
use crate::engine::BuildOptions;
use crate::lake::runs::RunRow;
use anyhow::Result;
use chrono::NaiveDate;
use std::collections::BTreeMap;

/// The build options that retry `run_id`, or `None` when nothing in it failed. A run the
/// history does not know is a usage error.
pub fn retry_options(
    rows: &[RunRow],
    run_id: &str,
    today: NaiveDate,
    progress: bool,
) -> Result<Option<BuildOptions>> {
    let mine: Vec<&RunRow> = rows.iter().filter(|r| r.run_id == run_id).collect();
    if mine.is_empty() {
        return Err(UsageError(format!(
            "no run '{run_id}' in the history: see lakebuild history"
        ))
        .into());
    }
    if mine.iter().all(|r| r.is_variant()) {
        return Err(UsageError(format!(
            "run '{run_id}' is a tuning trial ({}): run `lakebuild tune` again, which resumes its study",
            mine[0].trigger
        ))
        .into());
    }
    let mut last: BTreeMap<&str, &RunRow> = BTreeMap::new();
    for r in &mine {
        last.insert(r.asset.as_str(), r);
    }
    let failed: Vec<&RunRow> = last.values().copied().filter(|r| r.failed()).collect();
    if failed.is_empty() {
        return Ok(None);
    }
    let parse = |s: &Option<String>| {
        s.as_deref()
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
    };
    let from = failed.iter().filter_map(|r| parse(&r.partition_from)).min();
    let to = failed.iter().filter_map(|r| parse(&r.partition_to)).max();
    Ok(Some(BuildOptions {
        targets: failed.iter().map(|r| r.asset.clone()).collect(),
        from,
        to: to.or(from),
        trigger: format!("retry:{run_id}"),
        lock_timeout: super::jobs::env_lock_timeout(),
        batch_size: super::jobs::env_batch_size(),
        today,
        progress,
        ..Default::default()
    }))
}
