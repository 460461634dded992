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

use crate::core::partition::PartitionId;
use crate::engine::project::Project;
use crate::engine::{BuildOptions, dry_run};
use crate::lake::runs::{RunRow, runs_of};
use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breach {
    pub asset: String,
    /// duration | deadline | success_rate
    pub kind: String,
    pub detail: String,
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
                let have = crate::lake::log::load(&project.lake.table(asset))?
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
                    let due = dry_run(project, &opts)?.iter().any(|p| {
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
