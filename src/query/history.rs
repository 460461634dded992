//! `lakebuild history` and `lakebuild stats`: the run history, and per-asset success
//! rates and duration percentiles computed from it.

use crate::lake::live::LiveRun;
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

#[derive(Debug, Clone, Default, Serialize)]
pub struct AssetStats {
    pub asset: String,
    pub runs: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub success_rate: f64,
    pub p50_ms: i64,
    pub p95_ms: i64,
    pub last_failure: Option<String>,
    /// Median duration of the last 10 runs against the 10 before, in percent.
    pub trend_pct: Option<f64>,
    /// Failed check results over all runs.
    pub checks_failed: usize,
    /// The latest run's resources (summed over its steps' rows).
    pub last_run_at: i64,
    pub last_cpu_ms: i64,
    pub last_peak_memory_bytes: i64,
    pub last_bytes_written: i64,
    pub last_bytes_read: i64,
    pub last_rows: i64,
    /// Current SLA breaches (`kind: detail`), filled in by the caller.
    pub sla_breaches: Vec<String>,
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
            let per_run = crate::lake::runs::runs_of(rows, asset);
            let mut durations = Vec::new();
            let (mut ok, mut bad) = (0, 0);
            let mut last_failure = None;
            for (run, succeeded, ms) in &per_run {
                if *succeeded {
                    ok += 1;
                } else {
                    bad += 1;
                    last_failure = Some(run.to_string());
                }
                durations.push(*ms);
            }
            // Oldest first, for the trend.
            let chrono_ms = durations.clone();
            durations.sort();
            let n = ok + bad;
            let median = |v: &[i64]| {
                let mut v = v.to_vec();
                v.sort();
                percentile(&v, 0.5)
            };
            let trend_pct = (chrono_ms.len() >= 4).then(|| {
                let k = (chrono_ms.len() / 2).min(10);
                let recent = median(&chrono_ms[chrono_ms.len() - k..]);
                let before = median(&chrono_ms[chrono_ms.len() - 2 * k..chrono_ms.len() - k]);
                if before > 0 {
                    (recent - before) as f64 * 100.0 / before as f64
                } else {
                    0.0
                }
            });
            let checks_failed = rs
                .iter()
                .filter_map(|r| r.checks.as_deref())
                .filter_map(|c| serde_json::from_str::<Vec<serde_json::Value>>(c).ok())
                .map(|v| {
                    v.iter()
                        .filter(|c| c["passed"] == serde_json::Value::Bool(false))
                        .count()
                })
                .sum();
            let last_run = rs
                .iter()
                .max_by_key(|r| r.started_at)
                .map(|r| r.run_id.as_str())
                .unwrap_or("");
            let last: Vec<&&RunRow> = rs.iter().filter(|r| r.run_id == last_run).collect();
            AssetStats {
                asset: asset.to_string(),
                runs: n,
                succeeded: ok,
                failed: bad,
                success_rate: if n == 0 { 0.0 } else { ok as f64 / n as f64 },
                p50_ms: percentile(&durations, 0.5),
                p95_ms: percentile(&durations, 0.95),
                last_failure,
                trend_pct,
                checks_failed,
                last_run_at: last.iter().map(|r| r.ended_at).max().unwrap_or(0),
                last_cpu_ms: last.iter().map(|r| r.cpu_ms).sum(),
                last_peak_memory_bytes: last.iter().map(|r| r.peak_memory_bytes).max().unwrap_or(0),
                last_bytes_written: last.iter().map(|r| r.bytes).sum(),
                last_bytes_read: last.iter().map(|r| r.bytes_read).sum(),
                last_rows: last.iter().map(|r| r.rows).sum(),
                sla_breaches: Vec::new(),
            }
        })
        .collect()
}

pub fn render_stats(stats: &[AssetStats]) -> String {
    let mut out = format!(
        "{:<28} {:>5} {:>8} {:>9} {:>9} {:>7} {:>7}  {:<24}  {}\n",
        "ASSET", "RUNS", "SUCCESS", "P50 MS", "P95 MS", "TREND", "CHECKS✗", "LAST FAILURE", "SLA"
    );
    for s in stats {
        out.push_str(&format!(
            "{:<28} {:>5} {:>7.0}% {:>9} {:>9} {:>7} {:>7}  {:<24}  {}\n",
            s.asset,
            s.runs,
            s.success_rate * 100.0,
            s.p50_ms,
            s.p95_ms,
            s.trend_pct.map_or("-".to_string(), |t| format!("{t:+.0}%")),
            s.checks_failed,
            s.last_failure.as_deref().unwrap_or("-"),
            if s.sla_breaches.is_empty() {
                "ok".to_string()
            } else {
                format!("BREACHED: {}", s.sla_breaches.join("; "))
            }
        ));
    }
    out
}

/// `lakebuild stats`: [`stats`] with each asset's SLA breaches at `now`, including assets
/// that never ran but are in breach (a missed deadline).
pub fn stats_with_slas(
    project: &crate::engine::project::Project,
    rows: &[RunRow],
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<Vec<AssetStats>> {
    let mut st = stats(rows);
    let (breaches, _) = crate::query::sla::evaluate(project, rows, now)?;
    for b in &breaches {
        if !st.iter().any(|s| s.asset == b.asset) {
            st.push(AssetStats {
                asset: b.asset.clone(),
                ..Default::default()
            });
        }
    }
    for s in &mut st {
        s.sla_breaches = breaches
            .iter()
            .filter(|b| b.asset == s.asset)
            .map(|b| format!("{}: {}", b.kind, b.detail))
            .collect();
    }
    Ok(st)
}

/// One run of the history: its steps' rows summed up (`lakebuild serve`'s run list).
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub trigger: String,
    /// running (its build is alive: the steps so far are those that ended) / ok / failed
    /// (a step failed or was skipped)
    pub status: String,
    pub started_at: i64,
    pub ended_at: i64,
    pub duration_ms: i64,
    /// Step attempts recorded, and how many of them built, failed, were reused.
    pub steps: usize,
    pub built: usize,
    pub failed: usize,
    pub reused: usize,
    pub rows: i64,
    pub assets: Vec<String>,
}

/// The runs of `rows` and the builds running now (`live`), newest first, at most `limit`;
/// a tuning trial's rows are runs too (their trigger says so). A run still going is
/// "running" whatever its ended steps say, and is listed before its first step ends.
pub fn runs(rows: &[RunRow], live: &[LiveRun], limit: usize) -> Vec<RunSummary> {
    let mut by_run: BTreeMap<&str, Vec<&RunRow>> = BTreeMap::new();
    for r in rows {
        by_run.entry(&r.run_id).or_default().push(r);
    }
    let mut out: Vec<RunSummary> = live
        .iter()
        .filter(|l| !by_run.contains_key(l.run_id.as_str()))
        .map(|l| RunSummary {
            run_id: l.run_id.clone(),
            trigger: l.trigger.clone(),
            status: "running".into(),
            started_at: l.started_at,
            ended_at: l.updated_at,
            duration_ms: l.updated_at - l.started_at,
            steps: 0,
            built: 0,
            failed: 0,
            reused: 0,
            rows: 0,
            assets: vec![],
        })
        .collect();
    out.extend(by_run.into_iter().map(|(id, rs)| {
        let started_at = rs.iter().map(|r| r.started_at).min().unwrap_or(0);
        let ended_at = rs.iter().map(|r| r.ended_at).max().unwrap_or(0);
        let failed = rs.iter().filter(|r| r.failed()).count();
        let mut assets: Vec<String> = vec![];
        for r in &rs {
            if !assets.contains(&r.asset) {
                assets.push(r.asset.clone());
            }
        }
        RunSummary {
            run_id: id.to_string(),
            trigger: rs[0].trigger.clone(),
            status: if live.iter().any(|l| l.run_id == id) {
                "running"
            } else if failed > 0 {
                "failed"
            } else {
                "ok"
            }
            .into(),
            started_at,
            ended_at,
            duration_ms: ended_at - started_at,
            steps: rs.len(),
            built: rs.iter().filter(|r| r.outcome == "built").count(),
            failed,
            reused: rs.iter().filter(|r| r.outcome == "reused").count(),
            rows: rs.iter().map(|r| r.rows).sum(),
            assets,
        }
    }));
    out.sort_by(|a, b| (b.started_at, &b.run_id).cmp(&(a.started_at, &a.run_id)));
    out.truncate(limit);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(run: &str, asset: &str, outcome: &str, at: i64) -> RunRow {
        RunRow {
            run_id: run.into(),
            trigger: "job:daily".into(),
            asset: asset.into(),
            partition_from: None,
            partition_to: None,
            partitions: 1,
            key: None,
            outcome: outcome.into(),
            attempt: 1,
            started_at: at,
            ended_at: at + 10,
            duration_ms: 10,
            rows: 5,
            bytes: 0,
            bytes_read: 0,
            peak_memory_bytes: 0,
            cpu_ms: 0,
            error: None,
            checks: None,
        }
    }

    fn live(run: &str, started_at: i64) -> LiveRun {
        LiveRun {
            run_id: run.into(),
            trigger: "job:daily".into(),
            started_at,
            updated_at: started_at + 50,
            ..LiveRun::default()
        }
    }

    #[test]
    fn a_run_whose_build_is_alive_is_running_until_it_ends() {
        // r1 ended (one step failed); r2's first step ended and its build goes on; r3
        // has ended no step yet.
        let rows = [
            row("r1", "a", "built", 100),
            row("r1", "b", "failed", 120),
            row("r2", "a", "built", 200),
        ];
        let now = [live("r2", 190), live("r3", 300)];
        let got: Vec<(String, String, usize)> = runs(&rows, &now, 10)
            .into_iter()
            .map(|r| (r.run_id, r.status, r.steps))
            .collect();
        let want = [
            ("r3", "running", 0),
            ("r2", "running", 1),
            ("r1", "failed", 2),
        ];
        let want: Vec<(String, String, usize)> = want
            .iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), *c))
            .collect();
        assert_eq!(got, want);
        // Once its build ends, r2's steps decide.
        let ended = runs(&rows, &[], 10);
        assert_eq!(ended.len(), 2);
        assert_eq!(
            (ended[0].run_id.as_str(), ended[0].status.as_str()),
            ("r2", "ok")
        );
    }
}
