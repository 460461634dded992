//! The run history of a killed run, rebuilt from the Delta log. A step's history row is
//! appended when the step ends, but a kill can fall between a step's commit and its row
//! (or inside the history's own append). So every build marks itself running
//! (`_lakebuild/running/<run id>.json`, with its trigger) and removes the mark when its
//! history is written. The next build, holding the lake lock (so no marked run is still
//! alive), reads the commits each dead run made from every asset's log and appends a row
//! for each commit the history lacks: `history`, `stats` and SLAs never lose a committed
//! step. A build that ends normally leaves no mark, so this costs nothing then.

use super::project::{Project, States};
use crate::core::record::{CommitRecord, PartitionOutcome};
use crate::lake::Lake;
use crate::lake::runs::{self, RunRow};
use crate::lake::state_file::{read_json, write_json};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::PathBuf;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Mark {
    run_id: String,
    trigger: String,
}

fn dir(lake: &Lake) -> PathBuf {
    lake.root.join("_lakebuild").join("running")
}

/// Marks `run_id` as running (before its first commit).
pub fn begin(lake: &Lake, run_id: &str, trigger: &str) -> Result<()> {
    let mark = Mark {
        run_id: run_id.to_string(),
        trigger: trigger.to_string(),
    };
    write_json(&dir(lake).join(format!("{run_id}.json")), &mark)
}

/// The run's history is written: forget the mark.
pub fn end(lake: &Lake, run_id: &str) {
    let _ = std::fs::remove_file(dir(lake).join(format!("{run_id}.json")));
}

/// Appends the missing rows of every dead run (all marks but `current`), then forgets
/// their marks. Returns how many rows were recovered.
pub fn recover(project: &Project, states: &States, current: &str) -> Result<usize> {
    let Ok(entries) = std::fs::read_dir(dir(&project.lake)) else {
        return Ok(0);
    };
    let mut dead: Vec<(PathBuf, Mark)> = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let mark: Mark = read_json(&path)?;
        if mark.run_id != current && !mark.run_id.is_empty() {
            dead.push((path, mark));
        }
    }
    if dead.is_empty() {
        return Ok(0);
    }
    let recorded: BTreeSet<(String, String)> = runs::read_all(&project.lake)?
        .into_iter()
        .map(|r| (r.run_id, r.asset))
        .collect();
    let mut rows = Vec::new();
    for asset in &project.rules.order {
        let state = states.get(asset)?;
        for mark in dead.iter().map(|(_, m)| m) {
            if recorded.contains(&(mark.run_id.clone(), asset.clone())) {
                continue;
            }
            for commit in state.commits.values().filter(|c| c.run_id == mark.run_id) {
                rows.extend(rows_of(commit, &mark.trigger));
            }
        }
    }
    runs::append(&project.lake, &rows)?;
    for (path, _) in dead {
        let _ = std::fs::remove_file(path);
    }
    if !rows.is_empty() {
        tracing::info!(
            "recovered {} history row(s) of killed runs from the Delta log",
            rows.len()
        );
    }
    Ok(rows.len())
}

/// The rows a step that made `commit` would have written: one per outcome, at the commit's
/// time (its duration and resource use died with the process).
fn rows_of(commit: &CommitRecord, trigger: &str) -> Vec<RunRow> {
    let at = chrono::DateTime::parse_from_rfc3339(&commit.committed_at)
        .map(|t| t.timestamp_millis())
        .unwrap_or(0);
    let mut out = Vec::new();
    for outcome in PartitionOutcome::ALL {
        let name = outcome.as_str();
        let group: Vec<_> = commit
            .partitions
            .iter()
            .filter(|p| p.outcome == outcome)
            .collect();
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            continue;
        };
        out.push(RunRow {
            run_id: commit.run_id.clone(),
            trigger: trigger.to_string(),
            asset: commit.asset.clone(),
            partition_from: Some(first.id.to_string()),
            partition_to: Some(last.id.to_string()),
            partitions: group.len() as i64,
            key: (group.len() == 1).then(|| first.key.clone()),
            outcome: name.to_string(),
            attempt: 1,
            started_at: at,
            ended_at: at,
            duration_ms: 0,
            rows: group.iter().map(|p| p.rows as i64).sum(),
            bytes: group.iter().map(|p| p.bytes as i64).sum(),
            bytes_read: 0,
            peak_memory_bytes: 0,
            cpu_ms: 0,
            error: None,
            checks: None,
        });
    }
    out
}
