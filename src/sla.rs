//! SLA checks (a rule's `[sla]`): the duration of the asset's latest run, a daily
//! deadline by which today's partition must exist, and a minimum success rate over the
//! last runs. Evaluated from the run history and the lake; breaches are shown by
//! `lakebuild stats`, exported by `lakebuild metrics` and alerted.
//!
//! ```toml
//! [sla]
//! max_duration = "20m"
//! deadline = "07:30 Asia/Tokyo"   # today's partition exists by then (days in its domain)
//! min_success_rate = 0.9
//! window = 20                      # runs, for the success rate
//! ```

use crate::build::{BuildOptions, plan};
use crate::lake::runs::RunRow;
use crate::partition::PartitionId;
use crate::project::Project;
use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breach {
    pub asset: String,
    /// duration | deadline | success_rate
    pub kind: String,
    pub detail: String,
}

/// Outcome and span of each run of `asset`, oldest first: (run id, ok, ms).
pub fn runs_of<'a>(rows: &'a [RunRow], asset: &str) -> Vec<(&'a str, bool, i64)> {
    let mut per: BTreeMap<&str, (i64, i64, bool, i64)> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.asset == asset) {
        let e = per
            .entry(&r.run_id)
            .or_insert((r.started_at, r.ended_at, true, r.started_at));
        e.0 = e.0.min(r.started_at);
        e.1 = e.1.max(r.ended_at);
        // The run's outcome is its last row's.
        if r.started_at >= e.3 {
            e.3 = r.started_at;
            e.2 = r.outcome != "failed" && r.outcome != "skipped";
        }
    }
    let mut v: Vec<(&str, bool, i64, i64)> = per
        .into_iter()
        .map(|(id, (s, e, ok, _))| (id, ok, e - s, s))
        .collect();
    v.sort_by_key(|x| x.3);
    v.into_iter().map(|(id, ok, ms, _)| (id, ok, ms)).collect()
}

/// Every SLA breach at `now`, and the assets whose SLAs were evaluated.
pub fn evaluate(
    project: &Project,
    rows: &[RunRow],
    now: DateTime<Utc>,
) -> Result<(Vec<Breach>, Vec<String>)> {
    let mut out = Vec::new();
    let mut evaluated = Vec::new();
    for (asset, rule) in &project.rules.rules {
        let Some(sla) = &rule.sla else { continue };
        evaluated.push(asset.clone());
        let runs = runs_of(rows, asset);
        if let (Some(max), Some((id, _, ms))) = (sla.max_duration, runs.last())
            && *ms > max.as_millis() as i64
        {
            out.push(Breach {
                asset: asset.clone(),
                kind: "duration".into(),
                detail: format!(
                    "run {id} took {:.1} s, over the {:.0?} allowed",
                    *ms as f64 / 1000.0,
                    max
                ),
            });
        }
        if let Some(min) = sla.min_success_rate {
            let last: Vec<_> = runs.iter().rev().take(sla.window).collect();
            if !last.is_empty() {
                let rate = last.iter().filter(|r| r.1).count() as f64 / last.len() as f64;
                if rate < min {
                    out.push(Breach {
                        asset: asset.clone(),
                        kind: "success_rate".into(),
                        detail: format!(
                            "{:.0} % of the last {} runs succeeded, under {:.0} %",
                            rate * 100.0,
                            last.len(),
                            min * 100.0
                        ),
                    });
                }
            }
        }
        if let Some((time, tz)) = sla.deadline {
            let local = now.with_timezone(&tz);
            let today = local.date_naive();
            if rule.daily && local.time() >= time {
                let have = crate::lake::log::AssetState::load(&project.lake.table(asset))?
                    .current
                    .contains_key(&PartitionId::Day(today));
                if !have {
                    // Only a day in the asset's domain is due (not a holiday).
                    let opts = BuildOptions {
                        targets: vec![asset.clone()],
                        only: true,
                        dry_run: true,
                        today,
                        ..Default::default()
                    };
                    let due = plan(project, &opts)?.iter().any(|p| {
                        p.to_build
                            .iter()
                            .any(|(id, _)| *id == PartitionId::Day(today))
                    });
                    if due {
                        out.push(Breach {
                            asset: asset.clone(),
                            kind: "deadline".into(),
                            detail: format!(
                                "{today} is not built and the deadline {} {tz} has passed",
                                time.format("%H:%M")
                            ),
                        });
                    }
                }
            }
        }
    }
    Ok((out, evaluated))
}
