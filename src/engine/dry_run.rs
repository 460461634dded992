//! The dry run (`--dry-run`): the same assessment as a build, without execution, with the reason each partition would be built.

use super::options::BuildOptions;
use super::prepare::{may_restore, prepare, restorable_file, selection};
use crate::core::partition::PartitionId;
use crate::core::plan::Reason;
use crate::engine::project::{Project, States};
use anyhow::Result;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};

/// The plan for one asset: what would run and why.
#[derive(Debug, Clone, Serialize)]
pub struct AssetPlan {
    pub asset: String,
    pub partitions_total: usize,
    pub fresh: usize,
    pub to_restore: Vec<PartitionId>,
    /// (partition, reasons) that would run.
    pub to_build: Vec<(PartitionId, Vec<Reason>)>,
    pub to_remove: Vec<PartitionId>,
    /// For a discovered import: why it would run again (empty: fresh).
    pub source_reasons: Vec<Reason>,
    pub discovered: bool,
}

impl AssetPlan {
    pub fn is_fresh(&self) -> bool {
        self.to_restore.is_empty()
            && self.to_build.is_empty()
            && self.to_remove.is_empty()
            && self.source_reasons.is_empty()
    }
}

/// Assesses the selection without running anything. Partitions whose inputs are stale
/// upstream are reported as waiting on them.
pub fn dry_run(project: &Project, opts: &BuildOptions) -> Result<Vec<AssetPlan>> {
    dry_run_with(project, opts, &States::new(&project.lake))
}

/// `plan`, reading the lake through `states` (so that callers can reuse what it read).
pub fn dry_run_with(
    project: &Project,
    opts: &BuildOptions,
    states: &States,
) -> Result<Vec<AssetPlan>> {
    let assets = selection(project, &opts.targets, opts.only)?;
    states.preload(&assets)?;
    let mut stale: HashMap<String, BTreeSet<PartitionId>> = HashMap::new();
    let mut whole_stale: BTreeSet<String> = BTreeSet::new();
    let mut plans = Vec::new();
    for asset in &assets {
        let variants = super::variant::VariantKeys::new(project, asset);
        let prep = prepare(project, states, asset, opts)?;
        let mut plan = AssetPlan {
            asset: asset.clone(),
            partitions_total: if prep.discovered {
                prep.state.current.len()
            } else {
                prep.targets.len()
            },
            fresh: 0,
            to_restore: vec![],
            to_build: vec![],
            to_remove: prep.obsolete(),
            source_reasons: vec![],
            discovered: prep.discovered,
        };
        if prep.discovered {
            plan.source_reasons = prep.source_reasons(opts.force);
            if plan.source_reasons.is_empty() {
                plan.fresh = prep.state.current.len();
            } else {
                whole_stale.insert(asset.clone());
            }
            plans.push(plan);
            continue;
        }
        let mut mine = BTreeSet::new();
        for mut a in prep.assess_all(asset, opts, true) {
            if a.fresh() {
                // Fresh now, but an input partition it covers may be rebuilt first.
                for ((_, view, cov), input) in prep.inputs.iter().zip(&prep.rule.inputs) {
                    let (lo, hi) = view.cover(*cov, a.id);
                    let pending: Vec<PartitionId> = if whole_stale.contains(&input.asset) {
                        view.ids[lo..hi].to_vec()
                    } else if let Some(up) = stale.get(&input.asset) {
                        view.ids[lo..hi]
                            .iter()
                            .filter(|p| up.contains(p))
                            .copied()
                            .collect()
                    } else {
                        vec![]
                    };
                    if !pending.is_empty() {
                        a.reasons.push(Reason::UpstreamPending {
                            asset: input.asset.clone(),
                            partitions: pending,
                        });
                    }
                }
            }
            if a.fresh() {
                plan.fresh += 1;
                continue;
            }
            mine.insert(a.id);
            // As the build does: an older version, or a tuning trial's (variants table).
            let restorable = may_restore(&a, opts.force)
                && (restorable_file(&prep.state, &a.key).is_some()
                    || variants.restorable(&a.key)?.is_some());
            if restorable {
                plan.to_restore.push(a.id);
            } else {
                plan.to_build.push((a.id, a.reasons));
            }
        }
        stale.insert(asset.clone(), mine);
        plans.push(plan);
    }
    Ok(plans)
}
