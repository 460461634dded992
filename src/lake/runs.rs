//! The run history: `lake/_lakebuild/runs`, a Delta table with one row per step and
//! attempt (run id, trigger, asset, partition range, key, outcome, timings, sizes,
//! memory, error). Written once per step, read by `history` and `stats`.

use super::{Lake, parquet, table};
use anyhow::{Context, Result};
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunRow {
    pub run_id: String,
    pub trigger: String,
    pub asset: String,
    pub partition_from: Option<String>,
    pub partition_to: Option<String>,
    pub partitions: i64,
    pub key: Option<String>,
    /// built / reused / restored / cut_off / failed / skipped
    pub outcome: String,
    pub attempt: i64,
    /// Milliseconds since the epoch.
    pub started_at: i64,
    pub ended_at: i64,
    pub duration_ms: i64,
    pub rows: i64,
    pub bytes: i64,
    /// Bytes of the input partition files the step's op read (0 when no op ran).
    #[serde(default)]
    pub bytes_read: i64,
    pub peak_memory_bytes: i64,
    pub cpu_ms: i64,
    pub error: Option<String>,
    /// Check results as JSON text (name, severity, passed, detail).
    pub checks: Option<String>,
}

fn rows_to_frame(rows: &[RunRow]) -> Result<DataFrame> {
    macro_rules! col_of {
        ($name:expr, $f:expr) => {
            Column::new($name.into(), rows.iter().map($f).collect::<Vec<_>>())
        };
    }
    let ms = |v: &Vec<i64>| -> Result<Column> {
        Ok(Column::new("x".into(), v).cast(&DataType::Datetime(
            TimeUnit::Milliseconds,
            Some(TimeZone::UTC),
        ))?)
    };
    let started: Vec<i64> = rows.iter().map(|r| r.started_at).collect();
    let ended: Vec<i64> = rows.iter().map(|r| r.ended_at).collect();
    let df = DataFrame::new_infer_height(vec![
        col_of!("run_id", |r: &RunRow| r.run_id.clone()),
        col_of!("trigger", |r: &RunRow| r.trigger.clone()),
        col_of!("asset", |r: &RunRow| r.asset.clone()),
        col_of!("partition_from", |r: &RunRow| r.partition_from.clone()),
        col_of!("partition_to", |r: &RunRow| r.partition_to.clone()),
        col_of!("partitions", |r: &RunRow| r.partitions),
        col_of!("key", |r: &RunRow| r.key.clone()),
        col_of!("outcome", |r: &RunRow| r.outcome.clone()),
        col_of!("attempt", |r: &RunRow| r.attempt),
        ms(&started)?.with_name("started_at".into()),
        ms(&ended)?.with_name("ended_at".into()),
        col_of!("duration_ms", |r: &RunRow| r.duration_ms),
        col_of!("rows", |r: &RunRow| r.rows),
        col_of!("bytes", |r: &RunRow| r.bytes),
        col_of!("bytes_read", |r: &RunRow| r.bytes_read),
        col_of!("peak_memory_bytes", |r: &RunRow| r.peak_memory_bytes),
        col_of!("cpu_ms", |r: &RunRow| r.cpu_ms),
        col_of!("error", |r: &RunRow| r.error.clone()),
        col_of!("checks", |r: &RunRow| r.checks.clone()),
    ])?;
    parquet::normalize_for_delta(df)
}

/// Above this many data files, an append also compacts the history into one file, so
/// that reading it stays fast after years of cron runs.
const COMPACT_ABOVE: usize = 64;

/// The trigger of every variant build (a tuning trial: `tune:<study>#<trial>`). Its rows
/// are in the history but are not the asset's own: status, stats, SLAs and `retry` leave
/// them out.
pub const VARIANT_TRIGGER: &str = "tune:";

impl RunRow {
    /// Whether this step ended without its work done: it failed, or it was skipped
    /// because an input failed. The one definition `history`, `stats`, SLAs and
    /// `retry` use.
    pub fn failed(&self) -> bool {
        self.outcome == "failed" || self.outcome == "skipped"
    }

    /// Whether this row is a variant build's (a tuning trial), not the asset's own.
    pub fn is_variant(&self) -> bool {
        self.trigger.starts_with(VARIANT_TRIGGER)
    }
}

/// Outcome and span of each run of `asset`, oldest first: (run id, ok, ms).
pub fn runs_of<'a>(rows: &'a [RunRow], asset: &str) -> Vec<(&'a str, bool, i64)> {
    let mut per: BTreeMap<&str, (i64, i64, bool, i64)> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.asset == asset && !r.is_variant()) {
        let e = per
            .entry(&r.run_id)
            .or_insert((r.started_at, r.ended_at, true, r.started_at));
        e.0 = e.0.min(r.started_at);
        e.1 = e.1.max(r.ended_at);
        // The run's outcome is its last row's.
        if r.started_at >= e.3 {
            e.3 = r.started_at;
            e.2 = !r.failed();
        }
    }
    let mut v: Vec<(&str, bool, i64, i64)> = per
        .into_iter()
        .map(|(id, (s, e, ok, _))| (id, ok, e - s, s))
        .collect();
    v.sort_by_key(|x| x.3);
    v.into_iter().map(|(id, ok, ms, _)| (id, ok, ms)).collect()
}

/// Appends rows to the run history (one commit).
pub fn append(lake: &Lake, rows: &[RunRow]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let dir = lake.runs_table();
    let state = crate::lake::log::load(&dir)?;
    let mut removes = Vec::new();
    let mut df = rows_to_frame(rows)?;
    if state.active_files.len() >= COMPACT_ABOVE {
        let files: Vec<_> = state.active_files.keys().map(|p| dir.join(p)).collect();
        let old = read_files(&files)?;
        let mut merged = old.vstack(&df)?;
        merged.rechunk_mut();
        df = merged;
        removes = state
            .active_files
            .iter()
            .map(|(p, s)| table::OldFile {
                path: p.clone(),
                size: *s,
            })
            .collect();
    }
    let name = format!("part-{}-{}.parquet", rows[0].run_id, unique_suffix());
    let bytes = parquet::write(&mut df, &dir.join(&name))?;
    super::failpoint::hit("history.file_written");
    let add = table::NewFile {
        path: name,
        size: bytes as i64,
        rows: df.height() as u64,
        tags: vec![("lakebuild.run_id".into(), rows[0].run_id.clone())],
        data_change: true,
    };
    let app = HashMap::from([(
        "lakebuild_runs".to_string(),
        serde_json::json!({"run_id": rows[0].run_id}),
    )]);
    table::commit_with(&dir, df.schema(), &[add], &removes, app)
        .context("cannot record the run history")?;
    Ok(())
}

/// A short unique suffix for file names.
pub fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let h = blake3::hash(format!("{t}-{}-{n}", std::process::id()).as_bytes());
    h.to_hex()[..12].to_string()
}

/// The history files as one frame in the current schema: files written before a column
/// existed (e.g. `bytes_read`) get it as zeros (numbers) or nulls, so an upgrade never
/// makes committed history unreadable.
fn read_files(files: &[std::path::PathBuf]) -> Result<DataFrame> {
    let target = rows_to_frame(&[])?;
    let mut out = target.clone();
    for f in files {
        let mut df = parquet::read(f)?;
        for c in target.columns() {
            if df.column(c.name()).is_err() {
                let mut filler = Column::full_null(c.name().clone(), df.height(), c.dtype());
                if c.dtype().is_integer() {
                    filler = filler.fill_null(FillNullStrategy::Zero)?;
                }
                df.with_column(filler)?;
            }
        }
        let df = df.select(target.get_column_names().into_iter().cloned())?;
        out.vstack_mut(&df)?;
    }
    out.rechunk_mut();
    Ok(out)
}

/// Every row of the run history, oldest first.
pub fn read_all(lake: &Lake) -> Result<Vec<RunRow>> {
    let dir = lake.runs_table();
    let state = crate::lake::log::load(&dir)?;
    if state.active_files.is_empty() {
        return Ok(Vec::new());
    }
    let files: Vec<_> = state.active_files.keys().map(|p| dir.join(p)).collect();
    let df = read_files(&files)?
        .lazy()
        .with_columns([
            col("started_at").dt().timestamp(TimeUnit::Milliseconds),
            col("ended_at").dt().timestamp(TimeUnit::Milliseconds),
        ])
        .collect()?;
    let df = df.sort(
        ["started_at"],
        SortMultipleOptions::default().with_maintain_order(true),
    )?;
    let s = |n: &str| -> Result<Vec<Option<String>>> {
        Ok(df
            .column(n)?
            .str()?
            .iter()
            .map(|v| v.map(|x| x.to_string()))
            .collect())
    };
    let i = |n: &str| -> Result<Vec<i64>> {
        let c = df.column(n)?.cast(&DataType::Int64)?;
        Ok(c.i64()?.iter().map(|v| v.unwrap_or(0)).collect())
    };
    let (run_id, trigger, asset, pf, pt, key, outcome, error, checks) = (
        s("run_id")?,
        s("trigger")?,
        s("asset")?,
        s("partition_from")?,
        s("partition_to")?,
        s("key")?,
        s("outcome")?,
        s("error")?,
        s("checks")?,
    );
    let (parts, attempt, st, en, dur, rows, bytes, mem, cpu) = (
        i("partitions")?,
        i("attempt")?,
        i("started_at")?,
        i("ended_at")?,
        i("duration_ms")?,
        i("rows")?,
        i("bytes")?,
        i("peak_memory_bytes")?,
        i("cpu_ms")?,
    );
    // Older history has no bytes_read column.
    let read = if df.column("bytes_read").is_ok() {
        i("bytes_read")?
    } else {
        vec![0; df.height()]
    };
    let mut out = Vec::with_capacity(df.height());
    for k in 0..df.height() {
        out.push(RunRow {
            run_id: run_id[k].clone().unwrap_or_default(),
            trigger: trigger[k].clone().unwrap_or_default(),
            asset: asset[k].clone().unwrap_or_default(),
            partition_from: pf[k].clone(),
            partition_to: pt[k].clone(),
            partitions: parts[k],
            key: key[k].clone(),
            outcome: outcome[k].clone().unwrap_or_default(),
            attempt: attempt[k],
            started_at: st[k],
            ended_at: en[k],
            duration_ms: dur[k],
            rows: rows[k],
            bytes: bytes[k],
            bytes_read: read[k],
            peak_memory_bytes: mem[k],
            cpu_ms: cpu[k],
            error: error[k].clone(),
            checks: checks[k].clone(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: i64) -> RunRow {
        RunRow {
            run_id: format!("run-{i:03}"),
            trigger: "test".into(),
            asset: "a".into(),
            partition_from: Some("2024-01-02".into()),
            partition_to: None,
            partitions: 1,
            key: None,
            outcome: "built".into(),
            attempt: 1,
            started_at: 1_700_000_000_000 + i,
            ended_at: 1_700_000_000_010 + i,
            duration_ms: 10,
            rows: i,
            bytes: 0,
            bytes_read: 0,
            peak_memory_bytes: 0,
            cpu_ms: 0,
            error: (i % 2 == 0).then(|| "boom".to_string()),
            checks: None,
        }
    }

    #[test]
    fn appends_round_trip_and_compact() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let lake = Lake::new(dir.path());
        let n = COMPACT_ABOVE as i64 + 6;
        for i in 0..n {
            append(&lake, &[row(i)])?;
        }
        let back = read_all(&lake)?;
        assert_eq!(back, (0..n).map(row).collect::<Vec<_>>());
        let files = crate::lake::log::load(&lake.runs_table())?
            .active_files
            .len();
        assert!(files < 10, "{files} files: the history was not compacted");
        Ok(())
    }

    /// History written before `bytes_read` existed stays readable, and compacts with
    /// new rows (its rows read 0).
    #[test]
    fn history_without_bytes_read_reads_and_compacts() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let lake = Lake::new(dir.path());
        let table = lake.runs_table();
        let mut old = rows_to_frame(&[row(0)])?.drop("bytes_read")?;
        let name = "part-old.parquet";
        let bytes = parquet::write(&mut old, &table.join(name))?;
        let add = table::NewFile {
            path: name.into(),
            size: bytes as i64,
            rows: 1,
            tags: vec![],
            data_change: true,
        };
        table::commit_with(&table, old.schema(), &[add], &[], HashMap::new())?;
        assert_eq!(read_all(&lake)?, vec![row(0)]);
        let n = COMPACT_ABOVE as i64 + 2;
        for i in 1..n {
            let mut r = row(i);
            r.bytes_read = 7;
            append(&lake, &[r])?;
        }
        let back = read_all(&lake)?;
        assert_eq!(back.len(), n as usize);
        assert_eq!(back[0].bytes_read, 0);
        assert!(back[1..].iter().all(|r| r.bytes_read == 7));
        Ok(())
    }
}
