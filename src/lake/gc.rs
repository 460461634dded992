//! Garbage collection: data files that no version of a table references (left by a
//! crash or a failed check) and files that left the current version longer ago than the
//! retention period. Runs under the lake lock, so no writer is mid-commit.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct GcReport {
    pub table: String,
    pub orphans_removed: usize,
    pub expired_removed: usize,
    pub bytes_freed: u64,
    pub kept_for_retention: usize,
    /// Attachment folders removed with the materializations they belonged to
    /// ([`super::attachments::collect`]).
    pub attachments_removed: usize,
}

/// Collects one table. `dry_run` reports without deleting.
pub fn collect(table: &Path, retention: Duration, dry_run: bool) -> Result<GcReport> {
    collect_keeping(table, retention, dry_run, &[])
}

/// [`collect`], never removing the files of the table's `pinned` versions (the versions
/// aliases such as `production` point to: inputs `asset@alias` read them).
pub fn collect_keeping(
    table: &Path,
    retention: Duration,
    dry_run: bool,
    pinned: &[i64],
) -> Result<GcReport> {
    let state = crate::lake::log::load(table)?;
    let asset = table
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let pinned_files: std::collections::BTreeSet<String> = pinned
        .iter()
        .flat_map(|v| crate::core::plan::InputView::at(&asset, &state, *v).files)
        .collect();
    let mut report = GcReport {
        table: table.display().to_string(),
        ..Default::default()
    };
    if state.version.is_none() {
        return Ok(report);
    }
    let now_ms = crate::clock::now_ms();
    for entry in walkdir::WalkDir::new(table).min_depth(1) {
        let entry = entry.with_context(|| format!("walking {}", table.display()))?;
        let rel = entry.path().strip_prefix(table).unwrap_or(entry.path());
        let rel_s = rel.to_string_lossy().replace('\\', "/");
        if !entry.file_type().is_file() || rel_s.starts_with("_delta_log") {
            continue;
        }
        if super::log_snapshot::is_leftover(&rel_s) {
            // A log snapshot's temporary file that a killed reader left. A live reader's
            // (it holds no lock) is seconds old.
            let meta = entry.metadata().ok();
            if meta
                .as_ref()
                .is_some_and(|m| older_than(m, Duration::from_secs(600)))
            {
                report.bytes_freed += meta.map_or(0, |m| m.len());
                report.orphans_removed += 1;
                if !dry_run {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
            continue;
        }
        if !rel_s.ends_with(".parquet") {
            continue;
        }
        if state.active_files.contains_key(&rel_s) || pinned_files.contains(&rel_s) {
            continue;
        }
        // Never committed (an orphan of a crash or a failed check): removed at once, since
        // gc holds the lake lock and no writer is mid-commit. Referenced by an older
        // version: kept for time travel and restores until it has been out of the current
        // version for the retention period.
        let (remove, orphan) = match state.removed_at().get(&rel_s) {
            Some(v) => {
                let removed_ms = state.timestamps.get(v).copied().unwrap_or(now_ms);
                (now_ms - removed_ms >= retention.as_millis() as i64, false)
            }
            None => (!state.ever_added().contains_key(&rel_s), true),
        };
        if !remove {
            report.kept_for_retention += 1;
            continue;
        }
        let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
        if !dry_run {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("cannot remove {}", entry.path().display()))?;
        }
        if orphan {
            report.orphans_removed += 1;
        } else {
            report.expired_removed += 1;
        }
        report.bytes_freed += size;
    }
    Ok(report)
}
/// Whether a file or folder was last modified at least `age` ago.
fn older_than(meta: &std::fs::Metadata, age: Duration) -> bool {
    meta.modified()
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|a| a >= age)
}

/// `lakebuild gc`: every asset's table (keeping the versions an alias pins) and its
/// attachments, the run history, the scratch folder, and, once older than the retention,
/// training checkpoints of work that never finished (its inputs changed since) and the
/// op caches of code versions other than `live_caches` (the folder names
/// [`super::Lake::op_cache`] gives the ops this program runs). Takes the lake lock.
pub fn collect_lake(
    lake: &super::Lake,
    assets: &[String],
    live_caches: &[PathBuf],
    retention: Duration,
    dry_run: bool,
) -> Result<Vec<GcReport>> {
    let _lock = super::lock::acquire(&lake.root, "gc", Duration::from_secs(600))?;
    let aliases = super::aliases::load(&lake.root)?;
    let mut reports = Vec::new();
    for a in assets {
        let pinned: Vec<i64> = aliases
            .get(a)
            .map(|m| m.values().copied().collect())
            .unwrap_or_default();
        let mut report = collect_keeping(&lake.table(a), retention, dry_run, &pinned)?;
        let (removed, bytes) = super::attachments::collect(&lake.root, a, &lake.table(a), dry_run)?;
        report.attachments_removed = removed;
        report.bytes_freed += bytes;
        reports.push(report);
    }
    reports.push(collect(&lake.runs_table(), retention, dry_run)?);
    reports.push(collect_op_caches(lake, live_caches, retention, dry_run));
    if dry_run {
        return Ok(reports);
    }
    let tmp = lake.root.join("_lakebuild").join("tmp");
    if tmp.exists() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    let resume = lake.root.join("_lakebuild").join("resume");
    if let Ok(entries) = std::fs::read_dir(&resume) {
        for e in entries.flatten() {
            if e.metadata().is_ok_and(|m| older_than(&m, retention)) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(reports)
}

/// The op cache folders of other code versions (an older binary's, an op no longer
/// registered) untouched for the retention period.
fn collect_op_caches(
    lake: &super::Lake,
    live: &[PathBuf],
    retention: Duration,
    dry_run: bool,
) -> GcReport {
    let root = lake.op_caches();
    let mut report = GcReport {
        table: root.display().to_string(),
        ..GcReport::default()
    };
    let Ok(entries) = std::fs::read_dir(&root) else {
        return report;
    };
    for e in entries.flatten() {
        let path = e.path();
        if live.contains(&path) {
            continue;
        }
        // A folder's mtime moves whenever a file is added or replaced in it.
        if !e.metadata().is_ok_and(|m| older_than(&m, retention)) {
            report.kept_for_retention += 1;
            continue;
        }
        let bytes = super::folder_bytes(&path);
        if dry_run || std::fs::remove_dir_all(&path).is_ok() {
            report.expired_removed += 1;
            report.bytes_freed += bytes;
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_killed_readers_snapshot_leftover_goes_and_the_snapshot_stays() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let t = dir.path().join("t");
        std::fs::create_dir_all(t.join("_delta_log"))?;
        std::fs::write(
            t.join("_delta_log").join(format!("{:020}.json", 0)),
            r#"{"protocol":{"minReaderVersion":1,"minWriterVersion":2}}"#,
        )?;
        let snapshot = super::super::log_snapshot::path(&t);
        std::fs::write(&snapshot, "x")?;
        let (old, live) = (
            t.join("._lakebuild_log_snapshot.1.0.tmp"),
            t.join("._lakebuild_log_snapshot.2.0.tmp"),
        );
        std::fs::write(&old, "x")?;
        std::fs::write(&live, "x")?;
        let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&old)?
            .set_modified(hour_ago)?;
        let report = collect(&t, Duration::ZERO, false)?;
        assert_eq!(report.orphans_removed, 1);
        assert!(!old.exists() && live.exists() && snapshot.exists());
        Ok(())
    }

    #[test]
    fn op_caches_of_other_code_versions_go_after_the_retention() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let lake = super::super::Lake::new(dir.path().to_path_buf());
        let (live, old, recent) = (
            lake.op_cache("market", "v2"),
            lake.op_cache("market", "v1"),
            lake.op_cache("gone", "v1"),
        );
        for d in [&live, &old, &recent] {
            std::fs::create_dir_all(d)?;
            std::fs::write(d.join("checkpoint"), "12345")?;
        }
        let day_ago = std::time::SystemTime::now() - Duration::from_secs(86_400);
        for d in [&live, &old] {
            std::fs::File::open(d)?.set_modified(day_ago)?;
        }
        let hour = Duration::from_secs(3600);
        let keep = std::slice::from_ref(&live);
        let dry = collect_op_caches(&lake, keep, hour, true);
        assert_eq!((dry.expired_removed, dry.bytes_freed), (1, 5));
        assert!(old.exists(), "a dry run removes nothing");
        let r = collect_op_caches(&lake, keep, hour, false);
        assert_eq!((r.expired_removed, r.kept_for_retention), (1, 1));
        assert!(live.exists() && !old.exists() && recent.exists());
        Ok(())
    }
}
