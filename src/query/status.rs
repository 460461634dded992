//! `lakebuild status`: every asset fresh / stale (why) / missing / failed, when it was
//! last built, and its latest check results.

use crate::engine::checks::CheckResult;
use crate::engine::project::Project;
use crate::engine::project::States;
use crate::engine::{AssetPlan, BuildOptions, dry_run_with};
use crate::lake::runs::{self, RunRow};
use anyhow::Result;
use serde::Serialize;
use std::collections::HashMap;

#[derive(Debug, Clone, Serialize)]
pub struct AssetStatus {
    pub asset: String,
    /// fresh / stale / missing / failed
    pub state: String,
    pub partitions: usize,
    pub stale_partitions: usize,
    pub version: Option<i64>,
    pub last_built: Option<String>,
    pub last_run: Option<String>,
    pub last_error: Option<String>,
    pub checks: Vec<CheckResult>,
    /// One line on why it is not fresh.
    pub why: Option<String>,
}

fn summarize(p: &AssetPlan) -> Option<String> {
    if let Some(r) = p.source_reasons.first() {
        return Some(r.to_string());
    }
    let n = p.to_build.len() + p.to_restore.len() + p.to_remove.len();
    if n == 0 {
        return None;
    }
    let first = p
        .to_build
        .first()
        .map(|(id, r)| {
            format!(
                "{id}: {}",
                r.iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        })
        .unwrap_or_else(|| {
            format!(
                "{} restorable, {} to remove",
                p.to_restore.len(),
                p.to_remove.len()
            )
        });
    Some(format!("{n} partition(s) to build; first {first}"))
}

/// The latest history row of each asset, and its latest rows with check results (the
/// asset's own: not its tuning trials').
fn latest_rows(rows: &[RunRow]) -> (HashMap<&str, &RunRow>, HashMap<&str, &RunRow>) {
    let mut last: HashMap<&str, &RunRow> = HashMap::new();
    let mut checks: HashMap<&str, &RunRow> = HashMap::new();
    for r in rows.iter().filter(|r| !r.is_variant()) {
        if r.outcome != "reused" {
            last.insert(&r.asset, r);
        }
        if r.checks.is_some() {
            checks.insert(&r.asset, r);
        }
    }
    (last, checks)
}

pub fn status(project: &Project, opts: &BuildOptions) -> Result<Vec<AssetStatus>> {
    let opts = BuildOptions {
        targets: vec![],
        only: false,
        recheck: false,
        ..opts.clone()
    };
    let states = States::new(&project.lake);
    let plans = dry_run_with(project, &opts, &states)?;
    let history = runs::read_all(&project.lake)?;
    let (last, with_checks) = latest_rows(&history);
    let mut out = Vec::new();
    for p in &plans {
        let state = states.get(&p.asset)?;
        let last_row = last.get(p.asset.as_str());
        let failed = last_row.is_some_and(|r| r.failed());
        let st = if failed {
            "failed"
        } else if state.version.is_none() {
            "missing"
        } else if p.is_fresh() {
            "fresh"
        } else {
            "stale"
        };
        let checks: Vec<CheckResult> = with_checks
            .get(p.asset.as_str())
            .and_then(|r| r.checks.as_deref())
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or_default();
        out.push(AssetStatus {
            asset: p.asset.clone(),
            state: st.to_string(),
            partitions: state.current.len(),
            stale_partitions: p.to_build.len() + p.to_restore.len(),
            version: state.version,
            last_built: state.last_commit().map(|(_, c)| c.committed_at.clone()),
            last_run: last_row.map(|r| r.run_id.clone()),
            last_error: last_row.filter(|_| failed).and_then(|r| r.error.clone()),
            checks,
            why: summarize(p),
        });
    }
    Ok(out)
}

pub fn render(rows: &[AssetStatus]) -> String {
    let mut out = format!(
        "{:<28} {:<8} {:>10} {:>8}  {:<25} {}\n",
        "ASSET", "STATE", "PARTITIONS", "VERSION", "LAST BUILT", "NOTE"
    );
    for r in rows {
        let checks = if r.checks.is_empty() {
            String::new()
        } else {
            let failed = r.checks.iter().filter(|c| !c.passed).count();
            format!("checks {}/{} ok", r.checks.len() - failed, r.checks.len())
        };
        let note = match (&r.last_error, &r.why) {
            (Some(e), _) => e.lines().next().unwrap_or_default().to_string(),
            (None, Some(w)) => w.clone(),
            _ => checks,
        };
        out.push_str(&format!(
            "{:<28} {:<8} {:>10} {:>8}  {:<25} {}\n",
            r.asset,
            r.state,
            r.partitions,
            r.version
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into()),
            r.last_built
                .as_deref()
                .map(|s| &s[..s.len().min(19)])
                .unwrap_or("-"),
            note
        ));
    }
    out
}
