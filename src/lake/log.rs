//! Reading a table's Delta log: the JSON commits replayed in order into the table's
//! [`AssetState`] (the core's data model of what the log records).
//!
//! lakebuild keeps every commit JSON (`delta.enableExpiredLogCleanup=false`), so the
//! replay reads JSON only; checkpoints exist for other readers' speed.

use crate::core::record::CommitRecord;
pub use crate::core::table_state::{AssetState, Current, KeyedFile, Past};
use crate::core::table_state::{FileAction, LogEntry};
use anyhow::{Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
struct Line {
    #[serde(rename = "commitInfo")]
    commit_info: Option<CommitInfo>,
    add: Option<RawFileAction>,
    remove: Option<RawFileAction>,
}

/// The parts of a commitInfo lakebuild reads (parsed straight into its record).
#[derive(Deserialize)]
struct CommitInfo {
    #[serde(default)]
    timestamp: Option<i64>,
    #[serde(default)]
    lakebuild: Option<CommitRecord>,
}

#[derive(Deserialize)]
struct RawFileAction {
    path: String,
    #[serde(default)]
    size: Option<i64>,
}

/// Paths of the JSON commit files of a table, by version.
pub fn commit_files(table: &Path) -> Result<BTreeMap<i64, PathBuf>> {
    let log = table.join("_delta_log");
    let mut out = BTreeMap::new();
    let entries = match std::fs::read_dir(&log) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", log.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", log.display()))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".json")
            && stem.len() == 20
            && stem.bytes().all(|b| b.is_ascii_digit())
            && let Ok(v) = stem.parse::<i64>()
        {
            out.insert(v, entry.path());
        }
    }
    Ok(out)
}

/// Replays the table's log. A missing table gives an empty state. The commits its log
/// snapshot covers come from the snapshot; a reader that replayed much JSON beyond it
/// writes a new one (`log_snapshot`).
pub fn load(table: &Path) -> Result<AssetState> {
    let commits = commit_files(table)?;
    let mut state = AssetState::empty(table.to_path_buf());
    let covered = super::log_snapshot::restore(table, &commits, &mut state);
    let after = covered
        .as_ref()
        .map_or(i64::MIN, |c| c.last.saturating_add(1));
    let (mut replayed, mut bytes) = (0, 0u64);
    for (&version, path) in commits.range(after..) {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read Delta commit {}", path.display()))?;
        let entry = parse_commit(&text).with_context(|| {
            format!(
                "Delta commit {} is not valid: the table may have been edited by hand",
                path.display()
            )
        })?;
        state.apply(version, entry);
        replayed += 1;
        bytes += text.len() as u64;
    }
    if super::log_snapshot::worth_writing(bytes, replayed) {
        let total = covered.map_or(0, |c| c.json_bytes) + bytes;
        // Best effort: a lake this process cannot write is still read correctly.
        let _ = super::log_snapshot::write(table, &commits, &state, total);
    }
    Ok(state)
}

/// One commit file's actions: its commitInfo (with lakebuild's record), adds and removes.
fn parse_commit(text: &str) -> Result<LogEntry> {
    let mut entry = LogEntry::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let line: Line = serde_json::from_str(line)?;
        if let Some(info) = line.commit_info {
            if info.timestamp.is_some() {
                entry.timestamp = info.timestamp;
            }
            if info.lakebuild.is_some() {
                entry.record = info.lakebuild;
            }
        }
        if let Some(add) = line.add {
            entry.files.push(FileAction::Add {
                path: add.path,
                size: add.size.unwrap_or(0),
            });
        }
        if let Some(rm) = line.remove {
            entry.files.push(FileAction::Remove { path: rm.path });
        }
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROTOCOL: &str = r#"{"protocol":{"minReaderVersion":1,"minWriterVersion":2}}"#;

    fn write_commit(table: &Path, version: i64, lines: &[&str]) {
        let log = table.join("_delta_log");
        std::fs::create_dir_all(&log).expect("log dir");
        std::fs::write(log.join(format!("{version:020}.json")), lines.join("\n")).expect("commit");
    }

    fn record(run: &str, parts: &[(&str, &str)]) -> String {
        let parts: Vec<String> = parts
            .iter()
            .map(|(day, hash)| {
                format!(
                    r#"{{"id":"{day}","key":"k-{day}","content_hash":"{hash}","file":"part-{day}.parquet","rows":1,"bytes":10,"outcome":"built","inputs":[]}}"#
                )
            })
            .collect();
        format!(
            r#"{{"commitInfo":{{"timestamp":1700000000000,"lakebuild":{{"format":1,"run_id":"{run}","asset":"t","rule":{{"op":"sql","code_version":"c","params":{{}},"sources":[],"inputs":[],"daily":true,"key_columns":[],"digest":"d"}},"schema":[],"partitions":[{}],"committed_at":"2024-01-01T00:00:00Z"}}}}}}"#,
            parts.join(",")
        )
    }

    #[test]
    fn a_missing_table_is_an_empty_state() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let s = load(&dir.path().join("nothing"))?;
        assert_eq!(s.version, None);
        assert!(s.current.is_empty() && s.active_files.is_empty() && s.commits.is_empty());
        Ok(())
    }

    #[test]
    fn replay_follows_adds_removes_and_lakebuild_records_in_version_order() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let t = dir.path().join("t");
        let add = |f: &str| {
            format!(
                r#"{{"add":{{"path":"{f}","size":10,"partitionValues":{{}},"modificationTime":0,"dataChange":true}}}}"#
            )
        };
        let rm = |f: &str| {
            format!(r#"{{"remove":{{"path":"{f}","deletionTimestamp":0,"dataChange":true}}}}"#)
        };
        let r0 = record("run0", &[("2024-01-01", "h1"), ("2024-01-02", "h2")]);
        write_commit(
            &t,
            0,
            &[
                PROTOCOL,
                &add("part-2024-01-01.parquet"),
                &add("part-2024-01-02.parquet"),
                &r0,
                "",
            ],
        );
        // Another writer's commit: a file, no lakebuild record.
        write_commit(
            &t,
            1,
            &[
                r#"{"commitInfo":{"timestamp":1700000001000,"operation":"WRITE"}}"#,
                &add("foreign.parquet"),
            ],
        );
        let r2 = record("run2", &[("2024-01-02", "h2b")]);
        write_commit(
            &t,
            2,
            &[
                &rm("part-2024-01-02.parquet"),
                &rm("never-added.parquet"),
                &add("part-2024-01-02.parquet"),
                &r2,
            ],
        );
        // Files that are not commits are ignored.
        std::fs::write(t.join("_delta_log").join("_last_checkpoint"), "{}")?;
        std::fs::write(
            t.join("_delta_log")
                .join("00000000000000000002.checkpoint.parquet"),
            "x",
        )?;
        std::fs::write(t.join("_delta_log").join("not-a-commit.json"), "garbage")?;
        let s = load(&t)?;
        assert_eq!(s.version, Some(2));
        assert_eq!(s.commits.keys().copied().collect::<Vec<_>>(), vec![0, 2]);
        assert_eq!(s.timestamps.get(&1), Some(&1_700_000_001_000));
        assert_eq!(
            s.active_files.keys().cloned().collect::<Vec<_>>(),
            [
                "foreign.parquet",
                "part-2024-01-01.parquet",
                "part-2024-01-02.parquet"
            ]
        );
        let cur: Vec<(String, i64, String)> = s
            .current
            .iter()
            .map(|(id, c)| (id.to_string(), c.version, c.record().content_hash.clone()))
            .collect();
        assert_eq!(
            cur,
            [
                ("2024-01-01".to_string(), 0, "h1".to_string()),
                ("2024-01-02".to_string(), 2, "h2b".to_string())
            ]
        );
        // A removed file that was never active leaves no trace in gc's maps.
        assert!(!s.removed_at().contains_key("never-added.parquet"));
        Ok(())
    }

    #[test]
    fn a_garbled_commit_is_an_error_naming_the_file() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let t = dir.path().join("t");
        write_commit(&t, 0, &[PROTOCOL]);
        write_commit(&t, 1, &["{not json"]);
        let e = format!("{:#}", load(&t).unwrap_err());
        assert!(e.contains("00000000000000000001.json is not valid"), "{e}");
        assert!(e.contains("edited by hand"), "{e}");
        Ok(())
    }

    /// Everything a state holds, for comparing two loads.
    fn fingerprint(s: &AssetState) -> String {
        format!(
            "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
            s.version,
            s.as_log(),
            s.current,
            s.active_files,
            s.timestamps,
            s.history()
        )
    }

    /// A table of `commits` lakebuild commits of `per` partitions each (days from 2020).
    fn table_of(t: &Path, commits: i64, per: usize, run: &str) {
        write_commit(t, 0, &[PROTOCOL]);
        let day0 = chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap_or_default();
        for v in 1..=commits {
            let days: Vec<(String, String)> = (0..per)
                .map(|i| {
                    let d = day0 + chrono::Days::new((v as u64 - 1) * per as u64 + i as u64);
                    (d.to_string(), format!("h{run}{v}-{i}"))
                })
                .collect();
            let parts: Vec<(&str, &str)> =
                days.iter().map(|(d, h)| (d.as_str(), h.as_str())).collect();
            let adds: Vec<String> = days
                .iter()
                .map(|(d, _)| {
                    format!(r#"{{"add":{{"path":"part-{d}.parquet","size":10,"partitionValues":{{}},"modificationTime":0,"dataChange":true}}}}"#)
                })
                .collect();
            let mut lines: Vec<&str> = adds.iter().map(String::as_str).collect();
            let r = record(run, &parts);
            lines.push(&r);
            write_commit(t, v, &lines);
        }
    }

    fn day(s: &str) -> crate::core::partition::PartitionId {
        crate::core::partition::PartitionId::parse(s)
            .unwrap_or(crate::core::partition::PartitionId::Whole)
    }

    fn json_only(t: &Path) -> Result<AssetState> {
        let _ = std::fs::remove_file(super::super::log_snapshot::path(t));
        let s = load(t)?;
        let _ = std::fs::remove_file(super::super::log_snapshot::path(t));
        Ok(s)
    }

    #[test]
    fn a_large_log_leaves_a_snapshot_that_later_loads_replay_with_the_newer_commits() -> Result<()>
    {
        let dir = tempfile::tempdir()?;
        let t = dir.path().join("t");
        // ~1,000 partitions: more JSON than a reader replays without writing a snapshot.
        table_of(&t, 4, 250, "a");
        let snapshot = super::super::log_snapshot::path(&t);
        let first = load(&t)?;
        assert!(snapshot.exists(), "a large log's reader writes a snapshot");
        let from_snapshot = load(&t)?;
        assert_eq!(fingerprint(&from_snapshot), fingerprint(&first));
        // A commit after the snapshot: the snapshot plus that commit's JSON.
        write_commit(
            &t,
            5,
            &[
                r#"{"remove":{"path":"part-2020-01-01.parquet","deletionTimestamp":0,"dataChange":true}}"#,
                &record("b", &[("2020-01-02", "new")]),
            ],
        );
        let before = std::fs::read(&snapshot)?;
        let both = load(&t)?;
        assert_eq!(
            std::fs::read(&snapshot)?,
            before,
            "a small tail is not worth a rewrite"
        );
        assert_eq!(fingerprint(&both), fingerprint(&json_only(&t)?));
        assert_eq!(
            both.current[&day("2020-01-02")].record().content_hash,
            "new"
        );
        Ok(())
    }

    #[test]
    fn a_snapshot_that_no_longer_matches_the_log_is_ignored() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let t = dir.path().join("t");
        let snapshot = super::super::log_snapshot::path(&t);
        table_of(&t, 4, 250, "a");
        load(&t)?;
        let kept = std::fs::read(&snapshot)?;
        // The table deleted and built again with other content at the same versions.
        std::fs::remove_dir_all(&t)?;
        table_of(&t, 4, 250, "b");
        std::fs::write(&snapshot, &kept)?;
        let rebuilt = load(&t)?;
        assert_eq!(fingerprint(&rebuilt), fingerprint(&json_only(&t)?));
        assert!(rebuilt.commits.values().all(|c| c.run_id == "b"));
        // A torn snapshot, garbage, and one of another table: each ignored.
        load(&t)?;
        let good = std::fs::read(&snapshot)?;
        for bad in [good[..good.len() / 2].to_vec(), b"garbage".to_vec(), kept] {
            std::fs::write(&snapshot, &bad)?;
            assert_eq!(fingerprint(&load(&t)?), fingerprint(&json_only(&t)?));
        }
        // A covered commit edited by hand after the snapshot: the edit is seen (here, as
        // the error it is), not hidden by the snapshot.
        std::fs::write(&snapshot, &good)?;
        write_commit(&t, 2, &["{not json"]);
        let e = format!("{:#}", load(&t).unwrap_err());
        assert!(e.contains("00000000000000000002.json is not valid"), "{e}");
        // A log cleaned up by another writer (an older commit gone): ignored as well.
        table_of(&t, 4, 250, "b");
        load(&t)?;
        std::fs::remove_file(t.join("_delta_log").join(format!("{:020}.json", 1)))?;
        assert_eq!(fingerprint(&load(&t)?), fingerprint(&json_only(&t)?));
        Ok(())
    }
}
