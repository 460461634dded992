//! Restatements: earlier partitions a source publishes again, recorded per upstream event and keyed by the digest of the events covering them.

use super::batch::Produced;
use super::output::split_and_hash;
use super::prepare::Prepared;
use crate::core::partition::PartitionId;
use crate::core::plan::Assessment;
use crate::core::record::RestatementRecord;
use crate::op::{OpContext, RestatementEvent};
use anyhow::{Result, bail};
use polars::prelude::*;
use std::collections::{BTreeSet, HashMap};

/// The partitions a source restated, split and hashed like its batch, each with the
/// restatements that name it. They must be partitions it published before, outside the
/// batch; those whose content did not change are dropped.
pub(crate) fn restated_partitions(
    prep: &Prepared,
    asset: &str,
    ctx: &OpContext,
    rows: DataFrame,
    events: &[RestatementEvent],
) -> Result<Vec<Produced>> {
    let published: BTreeSet<PartitionId> = ctx.published.iter().map(|(id, _)| *id).collect();
    let mut ids: Vec<PartitionId> = events
        .iter()
        .flat_map(|e| e.partitions.iter().copied())
        .collect();
    ids.sort();
    ids.dedup();
    if let Some(bad) = ids
        .iter()
        .find(|id| !published.contains(id) || ctx.partitions.contains(id))
    {
        bail!(
            "op '{}' of '{asset}' restated partition {bad}, which is not one it published before this batch",
            prep.rule.op
        );
    }
    if ids.is_empty() {
        if rows.height() > 0 {
            bail!(
                "op '{}' of '{asset}' returned restated rows without naming their partitions",
                prep.rule.op
            );
        }
        return Ok(vec![]);
    }
    let mut produced = split_and_hash(prep, asset, &ids, rows)?;
    if let Some(empty) = produced.iter().find(|p| p.frame.height() == 0) {
        bail!(
            "op '{}' of '{asset}' restated partition {} without rows for it",
            prep.rule.op,
            empty.id
        );
    }
    produced.retain(|p| {
        prep.state
            .current
            .get(&p.id)
            .is_some_and(|c| c.record().content_hash != p.content_hash)
    });
    for p in &mut produced {
        p.restated_by = events
            .iter()
            .filter(|e| e.partitions.contains(&p.id))
            .map(|e| e.id.clone())
            .collect();
    }
    Ok(produced)
}

/// `members` as inclusive runs of consecutive partitions of `universe` (ascending).
pub(crate) fn contiguous_ranges(
    universe: &BTreeSet<PartitionId>,
    members: &BTreeSet<PartitionId>,
) -> Vec<(PartitionId, PartitionId)> {
    let mut out: Vec<(PartitionId, PartitionId)> = Vec::new();
    let mut open: Option<(PartitionId, PartitionId)> = None;
    for id in universe {
        if members.contains(id) {
            open = Some(match open {
                Some((a, _)) => (a, *id),
                None => (*id, *id),
            });
        } else if let Some(r) = open.take() {
            out.push(r);
        }
    }
    out.extend(open);
    out
}

/// The restatements a publish records: the source's own (each named by a unique id), and a
/// correction for every batch partition that came back different under the key it has
/// (a re-check, `--force`). Marks each produced partition with the ones that cover it.
pub(crate) fn restatements_of(
    prep: &Prepared,
    asset: &str,
    run_id: &str,
    by_id: &HashMap<PartitionId, &Assessment>,
    produced: &mut [Produced],
    events: Vec<RestatementEvent>,
) -> Vec<RestatementRecord> {
    // An id is never reused: one the table already has gets the run's id (and a count).
    let taken = |id: &str| prep.state.restatements().any(|r| r.id == id);
    let unique = |id: String| {
        if !taken(&id) {
            return id;
        }
        (1..)
            .map(|n| match n {
                1 => format!("{id} [run {run_id}]"),
                n => format!("{id} [run {run_id} #{n}]"),
            })
            .find(|c| !taken(c))
            .unwrap_or(id)
    };
    let mut renamed: HashMap<String, String> = HashMap::new();
    let mut restatements: Vec<(String, String, BTreeSet<PartitionId>)> = events
        .into_iter()
        .map(|e| {
            let id = unique(e.id.clone());
            renamed.insert(e.id, id.clone());
            (id, e.reason, BTreeSet::new())
        })
        .collect();
    // Partitions run again under the key they have (a re-check, --force) whose content
    // came back different: corrections upstream, one restatement for the batch. They get
    // keys of their own, so that a key never names two contents.
    let revised: Vec<PartitionId> = produced
        .iter()
        .filter(|p| {
            let current = prep.state.current.get(&p.id).map(|c| c.record());
            matches!((by_id.get(&p.id), current),
                (Some(a), Some(c)) if a.key == c.key && c.content_hash != p.content_hash)
        })
        .map(|p| p.id)
        .collect();
    if let (Some(first), Some(last)) = (revised.first(), revised.last()) {
        let id = unique(if first == last {
            format!("revised {first} on a re-run")
        } else {
            format!("revised {first}..{last} on a re-run")
        });
        let reason = format!(
            "the source returned new content for {} partition(s) run again under the same key",
            revised.len()
        );
        restatements.push((id.clone(), reason, BTreeSet::new()));
        for p in produced.iter_mut().filter(|p| revised.contains(&p.id)) {
            p.restated_by.push(id.clone());
        }
    }
    for p in produced.iter_mut() {
        for r in &mut p.restated_by {
            if let Some(new) = renamed.get(r) {
                *r = new.clone();
            }
        }
        for r in &p.restated_by {
            if let Some(e) = restatements.iter_mut().find(|e| e.0 == *r) {
                e.2.insert(p.id);
            }
        }
    }
    // Runs are taken over every partition the asset has or should have, so that a range
    // never spans one that did not carry the restatement.
    let universe: BTreeSet<PartitionId> = prep
        .state
        .current
        .keys()
        .chain(&prep.domain)
        .chain(produced.iter().map(|p| &p.id))
        .copied()
        .collect();
    let restatements: Vec<RestatementRecord> = restatements
        .into_iter()
        .filter(|(_, _, members)| !members.is_empty())
        .map(|(id, reason, members)| {
            tracing::info!(asset, "restated {} partition(s): {id}", members.len());
            RestatementRecord {
                id,
                reason,
                ranges: contiguous_ranges(&universe, &members),
            }
        })
        .collect();
    restatements
}
#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    #[test]
    fn restated_partitions_are_recorded_as_runs_of_consecutive_partitions() {
        let d = |n: u32| PartitionId::Day(NaiveDate::from_ymd_opt(2024, 3, n).unwrap());
        let universe: BTreeSet<PartitionId> = [1, 4, 5, 6, 7, 8, 11].map(d).into();
        let members: BTreeSet<PartitionId> = [4, 5, 7, 8, 11].map(d).into();
        // 6 is published and unchanged: it splits the run. 9 and 10 are no partitions.
        assert_eq!(
            contiguous_ranges(&universe, &members),
            [(d(4), d(5)), (d(7), d(11))]
        );
        assert!(contiguous_ranges(&universe, &BTreeSet::new()).is_empty());
    }
}
