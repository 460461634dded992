//! The run-history rows of a step: built, failed or reused.

use super::options::BuildOptions;
use crate::core::partition::PartitionId;
use crate::engine::resources;
use crate::lake::runs::RunRow;

#[allow(clippy::too_many_arguments)]
pub(crate) fn row(
    run_id: &str,
    opts: &BuildOptions,
    asset: &str,
    outcome: &str,
    attempt: usize,
    started: i64,
    ended: i64,
    parts: Option<(&[PartitionId], Option<&str>, u64, u64)>,
    error: Option<String>,
) -> RunRow {
    let (from, to, n, key, rows, bytes) = match parts {
        Some((ids, key, rows, bytes)) => (
            ids.first().map(|p| p.to_string()),
            ids.last().map(|p| p.to_string()),
            ids.len() as i64,
            key.map(String::from),
            rows as i64,
            bytes as i64,
        ),
        None => (None, None, 0, None, 0, 0),
    };
    RunRow {
        run_id: run_id.to_string(),
        trigger: opts.trigger.clone(),
        asset: asset.to_string(),
        partition_from: from,
        partition_to: to,
        partitions: n,
        key,
        outcome: outcome.to_string(),
        attempt: attempt as i64,
        started_at: started,
        ended_at: ended,
        duration_ms: ended - started,
        rows,
        bytes,
        bytes_read: 0,
        peak_memory_bytes: resources::peak_memory_bytes(),
        cpu_ms: resources::cpu_ms(),
        error,
        checks: None,
    }
}

/// The history row of a failed attempt on `batch`.
pub(crate) fn failed_row(
    run_id: &str,
    opts: &BuildOptions,
    asset: &str,
    attempt: usize,
    started: i64,
    batch: &[PartitionId],
    msg: &str,
) -> RunRow {
    let parts = Some((batch, None, 0, 0));
    row(
        run_id,
        opts,
        asset,
        "failed",
        attempt,
        started,
        crate::clock::now_ms(),
        parts,
        Some(msg.to_string()),
    )
}

/// The history row of a step that found everything fresh.
pub(crate) fn reused_row(run_id: &str, opts: &BuildOptions, asset: &str, started: i64) -> RunRow {
    row(
        run_id,
        opts,
        asset,
        "reused",
        1,
        started,
        crate::clock::now_ms(),
        None,
        None,
    )
}
