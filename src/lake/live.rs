//! A running build's progress, for readers in other processes (`lakebuild serve`):
//! `_lakebuild/live/<run id>.json` holds the run's steps and how far each has got. The
//! build rewrites it atomically when a step moves and at least every
//! [`HEARTBEAT`]; it removes it when it ends. A build killed with SIGKILL leaves its file,
//! which readers ignore once its heartbeat is older than [`STALE_AFTER`]: liveness by
//! heartbeat, not by a lock or a pid, so a reader holds nothing and needs no access to the
//! writer's host.

use super::state_file::write_json;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often a running build rewrites its file when nothing moved.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// A file whose heartbeat is older than this is a dead build's.
pub const STALE_AFTER: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LiveRun {
    pub run_id: String,
    pub trigger: String,
    pub pid: u32,
    /// Milliseconds since the epoch.
    pub started_at: i64,
    /// The last heartbeat, milliseconds since the epoch.
    pub updated_at: i64,
    pub steps: Vec<LiveStep>,
}

/// One step of a running build.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LiveStep {
    pub asset: String,
    /// Partitions done and to do.
    pub done: u64,
    pub total: u64,
    /// What it is working on, e.g. the batch's first and last partition.
    pub message: String,
    pub started_at: i64,
    /// Set when the step ended (its outcome is in the history once the run ends).
    pub ended_at: Option<i64>,
}

fn dir(lake_root: &Path) -> PathBuf {
    lake_root.join("_lakebuild").join("live")
}

/// Writes `run`'s file (atomically).
pub fn write(lake_root: &Path, run: &LiveRun) -> Result<()> {
    write_json(&dir(lake_root).join(format!("{}.json", run.run_id)), run)
}

/// Removes `run_id`'s file: the run ended.
pub fn remove(lake_root: &Path, run_id: &str) {
    let _ = std::fs::remove_file(dir(lake_root).join(format!("{run_id}.json")));
}

/// The builds running now (heartbeat within [`STALE_AFTER`] of `now_ms`), oldest first.
/// A file being replaced or unreadable is skipped: the next read sees it.
pub fn running(lake_root: &Path, now_ms: i64) -> Vec<LiveRun> {
    let Ok(entries) = std::fs::read_dir(dir(lake_root)) else {
        return vec![];
    };
    let mut out: Vec<LiveRun> = entries
        .flatten()
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.ends_with(".json") && !n.starts_with('.')
        })
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|t| serde_json::from_str::<LiveRun>(&t).ok())
        .filter(|r| now_ms - r.updated_at <= STALE_AFTER.as_millis() as i64)
        .collect();
    out.sort_by(|a, b| (a.started_at, &a.run_id).cmp(&(b.started_at, &b.run_id)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_live_until_removed_or_its_heartbeat_is_stale() -> Result<()> {
        let lake = tempfile::tempdir()?;
        let now = crate::clock::now_ms();
        let run = LiveRun {
            run_id: "r1".into(),
            trigger: "manual".into(),
            pid: 1,
            started_at: now,
            updated_at: now,
            steps: vec![LiveStep {
                asset: "a".into(),
                done: 1,
                total: 3,
                ..LiveStep::default()
            }],
        };
        write(lake.path(), &run)?;
        assert_eq!(running(lake.path(), now), vec![run.clone()]);
        let later = now + STALE_AFTER.as_millis() as i64 + 1;
        assert!(
            running(lake.path(), later).is_empty(),
            "a killed build's file"
        );
        remove(lake.path(), "r1");
        assert!(running(lake.path(), now).is_empty());
        Ok(())
    }
}
