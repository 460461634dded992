//! Lineage: the tree of inputs a materialization was built from, read from the build
//! records of the tables' states (each partition's record names the input versions and
//! partitions it read). Pure: the states come through [`TableStates`], which the engine
//! implements over the lake and a test over a map.

use crate::partition::PartitionId;
use crate::record::{CommitRecord, PartitionRecord};
use crate::table_state::AssetState;
use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Where lineage reads tables' states from.
pub trait TableStates {
    fn state(&self, asset: &str) -> Result<Arc<AssetState>>;
}

/// In memory: a missing asset is an empty (never built) table.
impl TableStates for BTreeMap<String, Arc<AssetState>> {
    fn state(&self, asset: &str) -> Result<Arc<AssetState>> {
        Ok(self
            .get(asset)
            .cloned()
            .unwrap_or_else(|| Arc::new(AssetState::empty(asset.into()))))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Provenance {
    pub asset: String,
    pub version: i64,
    pub partition: PartitionId,
    pub key: String,
    pub content_hash: String,
    pub rows: u64,
    pub op: String,
    pub code_version: String,
    pub params: serde_json::Value,
    pub sources: Vec<crate::source::SourceFile>,
    pub run_id: String,
    pub committed_at: String,
    pub outcome: crate::record::PartitionOutcome,
    /// Restatements of its source that cover it: (id, what happened upstream).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restated: Vec<(String, String)>,
    pub inputs: Vec<InputProvenance>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InputProvenance {
    pub asset: String,
    pub version: i64,
    pub first: Option<PartitionId>,
    pub last: Option<PartitionId>,
    pub count: usize,
    pub digest: String,
    /// The input partition this one is anchored on, recursively (None past the depth limit
    /// or when the window was empty).
    pub anchor: Option<Box<Provenance>>,
}

/// The record of partition `id` as of `version`.
pub fn record_at(
    state: &AssetState,
    id: PartitionId,
    version: i64,
) -> Option<(i64, Arc<CommitRecord>, PartitionRecord)> {
    // Removed at or before `version` after its last write: gone.
    let past = state.history().get(&id)?;
    let i = past.partition_point(|p| p.version <= version);
    let last = past.get(i.checked_sub(1)?)?;
    last.content_hash.as_ref()?;
    let c = state.commits.get(&last.version)?;
    let r = c.partitions.iter().find(|p| p.id == id)?;
    Some((last.version, c.clone(), r.clone()))
}

pub fn provenance(
    states: &dyn TableStates,
    asset: &str,
    id: PartitionId,
    version: i64,
    depth: usize,
) -> Result<Option<Provenance>> {
    let state = states.state(asset)?;
    let Some((_v, commit, rec)) = record_at(&state, id, version) else {
        return Ok(None);
    };
    let mut inputs = Vec::new();
    for read in &rec.inputs {
        let anchor = if depth == 0 || read.count == 0 {
            None
        } else {
            let istate = states.state(&read.asset)?;
            // Anchor on the same date when the input has it, else the last partition read.
            let candidate = match id {
                PartitionId::Day(_) if istate.content_hash_at(id, read.version).is_some() => {
                    Some(id)
                }
                _ => read.last,
            };
            match candidate {
                Some(p) => {
                    provenance(states, &read.asset, p, read.version, depth - 1)?.map(Box::new)
                }
                None => None,
            }
        };
        inputs.push(InputProvenance {
            asset: read.asset.clone(),
            version: read.version,
            first: read.first,
            last: read.last,
            count: read.count,
            digest: read.digest.clone(),
            anchor,
        });
    }
    Ok(Some(Provenance {
        asset: asset.to_string(),
        version,
        partition: id,
        key: rec.key.clone(),
        content_hash: rec.content_hash.clone(),
        rows: rec.rows,
        op: commit.rule.op.clone(),
        code_version: commit.rule.code_version.clone(),
        params: commit.rule.params.clone(),
        sources: commit.rule.sources.clone(),
        run_id: commit.run_id.clone(),
        committed_at: commit.committed_at.clone(),
        outcome: rec.outcome,
        restated: state
            .restatements_covering(id, Some(version))
            .into_iter()
            .map(|(_, r)| (r.id.clone(), r.reason.clone()))
            .collect(),
        inputs,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{InputRead, PartitionOutcome, RuleIngredients};
    use crate::table_state::LogEntry;
    use chrono::NaiveDate;

    fn day(d: u32) -> PartitionId {
        PartitionId::Day(NaiveDate::from_ymd_opt(2024, 1, d).unwrap_or_default())
    }

    fn rule(op: &str) -> RuleIngredients {
        RuleIngredients {
            op: op.into(),
            code_version: format!("{op}-v1"),
            params: serde_json::json!({"n": 3}),
            sources: vec![],
            inputs: vec![],
            daily: true,
            key_columns: vec![],
            digest: format!("{op}-digest"),
        }
    }

    fn read(asset: &str, version: i64, first: u32, last: u32) -> InputRead {
        InputRead {
            asset: asset.into(),
            version,
            first: Some(day(first)),
            last: Some(day(last)),
            count: (last - first + 1) as usize,
            digest: format!("{asset}-{first}-{last}"),
        }
    }

    fn part(id: PartitionId, content: &str, inputs: Vec<InputRead>) -> PartitionRecord {
        PartitionRecord {
            id,
            key: format!("key-{content}"),
            content_hash: content.into(),
            file: format!("{content}.parquet"),
            rows: 2,
            bytes: 10,
            outcome: PartitionOutcome::Built,
            inputs,
            restated: None,
        }
    }

    fn state(
        asset: &str,
        commits: Vec<(RuleIngredients, Vec<PartitionRecord>)>,
    ) -> Arc<AssetState> {
        let mut s = AssetState::empty(asset.into());
        for (v, (rule, parts)) in commits.into_iter().enumerate() {
            s.apply(
                v as i64,
                LogEntry {
                    timestamp: None,
                    files: vec![],
                    record: Some(CommitRecord {
                        format: 1,
                        run_id: format!("run{v}"),
                        asset: asset.into(),
                        rule,
                        schema: vec![],
                        partitions: parts,
                        removed: vec![],
                        committed_at: "2024-01-05T00:00:00Z".into(),
                        restatements: vec![],
                    }),
                },
            );
        }
        Arc::new(s)
    }

    /// prices (two versions) -> ma (day 3 read prices v0 days 1..3) -> summary (whole).
    fn lake() -> BTreeMap<String, Arc<AssetState>> {
        let prices = state(
            "prices",
            vec![
                (
                    rule("files"),
                    (1..=3)
                        .map(|d| part(day(d), &format!("p{d}"), vec![]))
                        .collect(),
                ),
                (rule("files"), vec![part(day(3), "p3-new", vec![])]),
            ],
        );
        let ma = state(
            "ma",
            vec![(
                rule("sql"),
                vec![part(day(3), "m3", vec![read("prices", 0, 1, 3)])],
            )],
        );
        let summary = state(
            "summary",
            vec![(
                rule("sql"),
                vec![part(PartitionId::Whole, "s", vec![read("ma", 0, 3, 3)])],
            )],
        );
        BTreeMap::from([
            ("prices".to_string(), prices),
            ("ma".to_string(), ma),
            ("summary".to_string(), summary),
        ])
    }

    #[test]
    fn provenance_follows_the_recorded_reads_down_to_the_sources() -> Result<()> {
        let states = lake();
        let p = provenance(&states, "summary", PartitionId::Whole, 0, 6)?.expect("summary");
        assert_eq!(
            (p.op.as_str(), p.content_hash.as_str(), p.run_id.as_str()),
            ("sql", "s", "run0")
        );
        let ma = p.inputs[0].anchor.as_deref().expect("ma anchor");
        assert_eq!(
            (ma.asset.as_str(), ma.partition, ma.content_hash.as_str()),
            ("ma", day(3), "m3")
        );
        // ma read prices at version 0: the day-3 anchor is what prices held then, not now.
        let prices = ma.inputs[0].anchor.as_deref().expect("prices anchor");
        assert_eq!((prices.version, prices.content_hash.as_str()), (0, "p3"));
        assert_eq!(ma.inputs[0].count, 3);
        assert!(prices.inputs.is_empty());
        // Depth 0 stops at the first level.
        let shallow = provenance(&states, "summary", PartitionId::Whole, 0, 0)?.expect("summary");
        assert!(shallow.inputs[0].anchor.is_none());
        // A partition that did not exist at that version has no provenance.
        assert!(provenance(&states, "ma", day(2), 0, 6)?.is_none());
        assert!(provenance(&states, "ghost", day(1), 0, 6)?.is_none());
        Ok(())
    }

    #[test]
    fn record_at_answers_for_each_version() {
        let states = lake();
        let prices = &states["prices"];
        let (v, _, r) = record_at(prices, day(3), 1).expect("v1");
        assert_eq!((v, r.content_hash.as_str()), (1, "p3-new"));
        let (v, _, r) = record_at(prices, day(3), 0).expect("v0");
        assert_eq!((v, r.content_hash.as_str()), (0, "p3"));
        assert!(record_at(prices, day(4), 1).is_none());
    }
}
