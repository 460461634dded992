//! One asset as a whole, for the web UI's asset page: its rule, every partition's state
//! (built / stale / missing / failed, with key and content hash), its recent
//! materializations, its check results per run and per partition, its schema and a
//! sample of its rows.
//! The partition states are the dry run's (the plan a build would act on), so the page
//! and `build --dry-run` never disagree.

use crate::core::partition::{Coverage, PartitionId};
use crate::engine::checks::CheckResult;
use crate::engine::project::{Project, States};
use crate::engine::{BuildOptions, dry_run_with};
use crate::lake::parquet;
use crate::lake::runs::{self, RunRow};
use anyhow::Result;
use polars::prelude::{AnyValue, DataFrame};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Rows of the sample shown.
const SAMPLE_ROWS: usize = 20;
/// Materializations and check runs shown.
const RECENT: usize = 30;

#[derive(Debug, Clone, Serialize)]
pub struct AssetView {
    pub asset: String,
    pub description: Option<String>,
    pub op: String,
    pub daily: bool,
    pub params: Value,
    pub inputs: Vec<InputView>,
    pub checks: Vec<String>,
    pub sla: Option<String>,
    pub version: Option<i64>,
    /// Every partition the asset has or should have, oldest first.
    pub partitions: Vec<PartitionCell>,
    pub materializations: Vec<Materialization>,
    pub check_runs: Vec<CheckRun>,
    /// (column, type) of the latest commit's files.
    pub schema: Vec<(String, String)>,
    /// The latest partition's columns, in order, and its first rows (one value per
    /// column).
    pub sample_columns: Vec<String>,
    pub sample: Vec<Vec<Value>>,
    pub sample_partition: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InputView {
    pub asset: String,
    /// The window, e.g. `[-60, 0]`.
    pub window: String,
    pub alias: Option<String>,
    /// The part of the window that must be complete (`full`), e.g. `[-250, 0]`.
    pub full: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PartitionCell {
    pub partition: String,
    /// built / stale / missing / failed
    pub state: String,
    pub key: Option<String>,
    pub content_hash: Option<String>,
    pub rows: Option<u64>,
    pub version: Option<i64>,
    /// Why it would be built (stale or missing), or the error (failed).
    pub reason: Option<String>,
    /// The checks of the latest run that checked this partition: `passed`, `warned`
    /// (a failed check of severity warn) or `failed`; `None` if no run checked it.
    pub checks: Option<String>,
    /// That run.
    pub checked_in: Option<String>,
}

impl PartitionCell {
    /// A partition in `state` with nothing known of it yet.
    fn new(id: PartitionId, state: &str) -> PartitionCell {
        PartitionCell {
            partition: id.to_string(),
            state: state.into(),
            key: None,
            content_hash: None,
            rows: None,
            version: None,
            reason: None,
            checks: None,
            checked_in: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Materialization {
    pub version: i64,
    pub run_id: String,
    pub committed_at: String,
    pub partitions: usize,
    pub rows: u64,
    pub first: Option<String>,
    pub last: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckRun {
    pub run_id: String,
    pub partition_from: Option<String>,
    pub partition_to: Option<String>,
    pub started_at: i64,
    pub checks: Vec<CheckResult>,
}

/// Each partition's check results: those of the latest run whose checked range covers
/// it (`rows` oldest first; a run's checks cover its step's partitions).
fn mark_checks(cells: &mut BTreeMap<PartitionId, PartitionCell>, rows: &[&RunRow]) {
    for r in rows {
        let Some(checks) = r.checks.as_deref() else {
            continue;
        };
        let Ok(checks) = serde_json::from_str::<Vec<CheckResult>>(checks) else {
            continue;
        };
        if checks.is_empty() {
            continue;
        }
        let verdict = if checks.iter().any(|c| c.blocking_failure()) {
            "failed"
        } else if checks.iter().any(|c| !c.passed) {
            "warned"
        } else {
            "passed"
        };
        let bound = |p: Option<&str>| p.and_then(|p| PartitionId::parse(p).ok());
        let covered: Vec<&mut PartitionCell> = match (
            bound(r.partition_from.as_deref()),
            bound(r.partition_to.as_deref()),
        ) {
            (Some(a), Some(b)) if a <= b => cells.range_mut(a..=b).map(|(_, c)| c).collect(),
            (Some(_), Some(_)) => Vec::new(),
            _ => cells.values_mut().collect(),
        };
        for cell in covered {
            cell.checks = Some(verdict.to_string());
            cell.checked_in = Some(r.run_id.clone());
        }
    }
}

pub fn view(project: &Project, asset: &str, opts: &BuildOptions) -> Result<AssetView> {
    let rule = project.rules.require(asset)?;
    let states = States::new(&project.lake);
    let plans = dry_run_with(
        project,
        &BuildOptions {
            targets: vec![asset.to_string()],
            only: false,
            recheck: false,
            ..opts.clone()
        },
        &states,
    )?;
    let state = states.get(asset)?;
    let history = runs::read_all(&project.lake)?;
    let own: Vec<&RunRow> = history
        .iter()
        .filter(|r| r.asset == asset && !r.is_variant())
        .collect();

    let mut cells: BTreeMap<PartitionId, PartitionCell> = BTreeMap::new();
    for (id, cur) in &state.current {
        let r = cur.record();
        cells.insert(
            *id,
            PartitionCell {
                key: Some(r.key.clone()),
                content_hash: Some(r.content_hash.clone()),
                rows: Some(r.rows),
                version: Some(cur.version),
                ..PartitionCell::new(*id, "built")
            },
        );
    }
    if let Some(plan) = plans.iter().find(|p| p.asset == asset) {
        let mut mark = |id: PartitionId, reason: String| {
            let cell = cells
                .entry(id)
                .or_insert_with(|| PartitionCell::new(id, "missing"));
            if cell.state == "built" {
                cell.state = "stale".into();
            }
            cell.reason = Some(reason);
        };
        for (id, reasons) in &plan.to_build {
            let why: Vec<String> = reasons.iter().map(|r| r.to_string()).collect();
            mark(*id, why.join("; "));
        }
        for id in &plan.to_restore {
            mark(
                *id,
                "an older materialization with this key will be restored".into(),
            );
        }
        for id in &plan.to_remove {
            mark(*id, "no longer exists upstream: will be removed".into());
        }
    }
    // The partitions of the asset's last step, if it failed and they are not built.
    if let Some(last) = own.iter().rev().find(|r| r.outcome != "reused")
        && last.failed()
    {
        let (from, to) = (last.partition_from.as_deref(), last.partition_to.as_deref());
        for cell in cells.values_mut().filter(|c| c.state != "built") {
            let p = cell.partition.as_str();
            let inside = match (from, to) {
                (Some(a), Some(b)) => a <= p && p <= b,
                _ => true,
            };
            if inside {
                cell.state = "failed".into();
                cell.reason = last.error.clone().or(cell.reason.take());
            }
        }
    }

    mark_checks(&mut cells, &own);

    let materializations: Vec<Materialization> = state
        .commits
        .iter()
        .rev()
        .take(RECENT)
        .map(|(v, c)| Materialization {
            version: *v,
            run_id: c.run_id.clone(),
            committed_at: c.committed_at.clone(),
            partitions: c.partitions.len(),
            rows: c.partitions.iter().map(|p| p.rows).sum(),
            first: c
                .partitions
                .iter()
                .map(|p| p.id)
                .min()
                .map(|p| p.to_string()),
            last: c
                .partitions
                .iter()
                .map(|p| p.id)
                .max()
                .map(|p| p.to_string()),
        })
        .collect();
    let check_runs: Vec<CheckRun> = own
        .iter()
        .rev()
        .filter_map(|r| {
            let checks: Vec<CheckResult> = serde_json::from_str(r.checks.as_deref()?).ok()?;
            Some(CheckRun {
                run_id: r.run_id.clone(),
                partition_from: r.partition_from.clone(),
                partition_to: r.partition_to.clone(),
                started_at: r.started_at,
                checks,
            })
        })
        .take(RECENT)
        .collect();
    let schema = state
        .last_commit()
        .map(|(_, c)| c.schema.clone())
        .unwrap_or_default();
    let latest = state.current.iter().next_back();
    let (sample_columns, sample) = match latest {
        Some((_, cur)) => {
            let df = parquet::read(&state.table.join(&cur.record().file))?;
            let names = df.columns().iter().map(|c| c.name().to_string()).collect();
            (names, rows_as_json(&df.head(Some(SAMPLE_ROWS))))
        }
        None => (vec![], vec![]),
    };
    Ok(AssetView {
        asset: asset.to_string(),
        description: rule.description.clone(),
        op: rule.op.clone(),
        daily: rule.daily,
        params: rule.params.clone(),
        inputs: rule
            .inputs
            .iter()
            .map(|i| InputView {
                asset: i.asset.clone(),
                window: i.coverage.to_string(),
                alias: i.alias.clone(),
                full: i.full.map(|(a, b)| Coverage::Window(a, b).to_string()),
            })
            .collect(),
        checks: rule.checks.iter().map(|c| c.name.clone()).collect(),
        sla: rule.sla.as_ref().map(|s| format!("{s:?}")),
        version: state.version,
        partitions: cells.into_values().collect(),
        materializations,
        check_runs,
        schema,
        sample_columns,
        sample,
        sample_partition: latest.map(|(id, _)| id.to_string()),
    })
}

/// A frame's rows as JSON arrays (one value per column, in the frame's order): numbers,
/// strings, booleans and nulls as themselves,
/// anything else (dates, lists) as its text; a non-finite float as its text (JSON has
/// none); a text longer than [`MAX_TEXT`] characters cut there.
pub fn rows_as_json(df: &DataFrame) -> Vec<Vec<Value>> {
    (0..df.height())
        .map(|i| {
            df.columns()
                .iter()
                .map(|c| c.get(i).map(|v| value(&v)).unwrap_or(Value::Null))
                .collect()
        })
        .collect()
}

/// Longest text shown for one value (a model's weights are one list value).
const MAX_TEXT: usize = 120;

fn text(s: &str) -> Value {
    match s.char_indices().nth(MAX_TEXT) {
        Some((i, _)) => json!(format!("{}…", &s[..i])),
        None => json!(s),
    }
}

fn value(v: &AnyValue) -> Value {
    match v {
        AnyValue::Null => Value::Null,
        AnyValue::Boolean(b) => json!(b),
        AnyValue::String(s) => text(s),
        AnyValue::StringOwned(s) => text(s.as_str()),
        AnyValue::Int8(x) => json!(x),
        AnyValue::Int16(x) => json!(x),
        AnyValue::Int32(x) => json!(x),
        AnyValue::Int64(x) => json!(x),
        AnyValue::UInt8(x) => json!(x),
        AnyValue::UInt16(x) => json!(x),
        AnyValue::UInt32(x) => json!(x),
        AnyValue::UInt64(x) => json!(x),
        AnyValue::Float32(x) if x.is_finite() => json!(x),
        AnyValue::Float64(x) if x.is_finite() => json!(x),
        other => text(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(day: &str) -> (PartitionId, PartitionCell) {
        let id = PartitionId::parse(day).unwrap_or(PartitionId::Whole);
        (id, PartitionCell::new(id, "built"))
    }

    fn run(id: &str, from: &str, to: &str, checks: &str) -> RunRow {
        RunRow {
            run_id: id.into(),
            trigger: "manual".into(),
            asset: "a".into(),
            partition_from: Some(from.into()),
            partition_to: Some(to.into()),
            partitions: 1,
            key: None,
            outcome: "built".into(),
            attempt: 1,
            started_at: 0,
            ended_at: 0,
            duration_ms: 0,
            rows: 0,
            bytes: 0,
            bytes_read: 0,
            peak_memory_bytes: 0,
            cpu_ms: 0,
            error: None,
            checks: Some(checks.into()),
        }
    }

    #[test]
    fn each_day_shows_the_latest_run_that_checked_it() {
        let mut cells: BTreeMap<PartitionId, PartitionCell> =
            ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]
                .into_iter()
                .map(cell)
                .collect();
        let ok = r#"[{"name":"rows","severity":"error","passed":true,"detail":""}]"#;
        let warn = r#"[{"name":"nulls","severity":"warn","passed":false,"detail":"3 nulls"}]"#;
        let bad = r#"[{"name":"rows","severity":"error","passed":false,"detail":"0 rows"}]"#;
        let rows = [
            run("full", "2024-01-01", "2024-01-03", ok),
            run("day2", "2024-01-02", "2024-01-02", warn),
            run("day3", "2024-01-03", "2024-01-03", bad),
        ];
        let refs: Vec<&RunRow> = rows.iter().collect();
        mark_checks(&mut cells, &refs);
        let got: Vec<(Option<&str>, Option<&str>)> = cells
            .values()
            .map(|c| (c.checks.as_deref(), c.checked_in.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (Some("passed"), Some("full")),
                (Some("warned"), Some("day2")),
                (Some("failed"), Some("day3")),
                (None, None),
            ]
        );
    }
}
