//! `lakebuild history` and `lakebuild stats`: the run history, and per-asset success
//! rates and duration percentiles computed from it.

use crate::lake::runs::RunRow;
use serde::Serialize;
use std::collections::BTreeMap;

pub fn filter<'a>(
    rows: &'a [RunRow],
    asset: Option<&str>,
    run: Option<&str>,
    limit: usize,
) -> Vec<&'a RunRow> {
    let picked: Vec<&RunRow> = rows
        .iter()
        .filter(|r| asset.is_none_or(|a| r.asset == a))
        .filter(|r| run.is_none_or(|x| r.run_id == x))
        .collect();
    let skip = picked.len().saturating_sub(limit);
    picked[skip..].to_vec()
}

fn ts(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

pub fn render(rows: &[&RunRow]) -> String {
    let mut out = format!(
        "{:<24} {:<10} {:<24} {:<8} {:>3} {:<23} {:>9} {:>9}  {}\n",
        "RUN", "TRIGGER", "ASSET", "OUTCOME", "TRY", "PARTITIONS", "ROWS", "MS", "ERROR"
    );
    for r in rows {
        let parts = match (&r.partition_from, &r.partition_to) {
            (Some(a), Some(b)) if a == b => a.clone(),
            (Some(a), Some(b)) => format!("{a}..{b}"),
            _ => "-".into(),
        };
        out.push_str(&format!(
            "{:<24} {:<10} {:<24} {:<8} {:>3} {:<23} {:>9} {:>9}  {}\n",
            r.run_id,
            r.trigger,
            r.asset,
            r.outcome,
            r.attempt,
            parts,
            r.rows,
            r.duration_ms,
            r.error
                .as_deref()
                .and_then(|e| e.lines().next())
                .unwrap_or("")
        ));
    }
    let _ = ts;
    out
}

#[derive(Debug, Clone, Serialize)]
pub struct AssetStats {
    pub asset: String,
    pub runs: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub success_rate: f64,
    pub p50_ms: i64,
    pub p95_ms: i64,
    pub last_failure: Option<String>,
}

fn percentile(sorted: &[i64], q: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Per asset: steps that did work (built, cut off, restored) vs failed final attempts.
pub fn stats(rows: &[RunRow]) -> Vec<AssetStats> {
    let mut by: BTreeMap<&str, Vec<&RunRow>> = BTreeMap::new();
    for r in rows {
        by.entry(&r.asset).or_default().push(r);
    }
    by.into_iter()
        .map(|(asset, rs)| {
            // One outcome per (run, asset): failed if its last row failed.
            let mut per_run: BTreeMap<&str, Vec<&RunRow>> = BTreeMap::new();
            for r in &rs {
                per_run.entry(&r.run_id).or_default().push(r);
            }
            let mut durations = Vec::new();
            let (mut ok, mut bad) = (0, 0);
            let mut last_failure = None;
            for (run, rows) in &per_run {
                let failed = rows
                    .last()
                    .is_some_and(|r| r.outcome == "failed" || r.outcome == "skipped");
                if failed {
                    bad += 1;
                    last_failure = Some(run.to_string());
                } else {
                    ok += 1;
                }
                let start = rows.iter().map(|r| r.started_at).min().unwrap_or(0);
                let end = rows.iter().map(|r| r.ended_at).max().unwrap_or(0);
                durations.push(end - start);
            }
            durations.sort();
            let n = ok + bad;
            AssetStats {
                asset: asset.to_string(),
                runs: n,
                succeeded: ok,
                failed: bad,
                success_rate: if n == 0 { 0.0 } else { ok as f64 / n as f64 },
                p50_ms: percentile(&durations, 0.5),
                p95_ms: percentile(&durations, 0.95),
                last_failure,
            }
        })
        .collect()
}

pub fn render_stats(stats: &[AssetStats]) -> String {
    let mut out = format!(
        "{:<28} {:>5} {:>8} {:>9} {:>9}  {}\n",
        "ASSET", "RUNS", "SUCCESS", "P50 MS", "P95 MS", "LAST FAILURE"
    );
    for s in stats {
        out.push_str(&format!(
            "{:<28} {:>5} {:>7.0}% {:>9} {:>9}  {}\n",
            s.asset,
            s.runs,
            s.success_rate * 100.0,
            s.p50_ms,
            s.p95_ms,
            s.last_failure.as_deref().unwrap_or("-")
        ));
    }
    out
}
