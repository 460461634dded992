//! What lakebuild writes into each Delta commit's `commitInfo` (under the key
//! `lakebuild`): the run, the rule's ingredients, and for every partition written its
//! key, content hash and the input versions it read. This is the build database.

use crate::partition::PartitionId;
use crate::source::SourceFile;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const RECORD_FORMAT: u32 = 1;

/// The rule-level ingredients of a key: everything but the input partitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleIngredients {
    pub op: String,
    pub code_version: String,
    /// Canonical params (sorted keys).
    pub params: Value,
    pub sources: Vec<SourceFile>,
    /// (input asset, coverage as text), in declared order.
    pub inputs: Vec<(String, String)>,
    pub daily: bool,
    pub key_columns: Vec<String>,
    /// blake3 over all of the above.
    pub digest: String,
}

/// What one partition read from one input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputRead {
    pub asset: String,
    /// The input table's version at the time.
    pub version: i64,
    pub first: Option<PartitionId>,
    pub last: Option<PartitionId>,
    pub count: usize,
    /// blake3 over the covered (partition id, content hash) pairs.
    pub digest: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionOutcome {
    /// The op ran and produced new content.
    Built,
    /// The op ran and produced the content that was already current (early cutoff).
    CutOff,
    /// An older materialization with the same key was made current again.
    Restored,
}

impl PartitionOutcome {
    /// Every outcome, in the order a step's history rows list them.
    pub const ALL: [PartitionOutcome; 3] = [
        PartitionOutcome::Built,
        PartitionOutcome::CutOff,
        PartitionOutcome::Restored,
    ];

    /// The outcome as the run history writes it (its serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            PartitionOutcome::Built => "built",
            PartitionOutcome::CutOff => "cut_off",
            PartitionOutcome::Restored => "restored",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionRecord {
    pub id: PartitionId,
    pub key: String,
    pub content_hash: String,
    /// Data file path, relative to the table root.
    pub file: String,
    pub rows: u64,
    pub bytes: u64,
    pub outcome: PartitionOutcome,
    pub inputs: Vec<InputRead>,
    /// Digest of the set of restatements that cover it (`restatement_digest`); part of
    /// its key. Absent when none does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restated: Option<String>,
}

/// A source publishing new content for partitions it had already published: J-Quants
/// re-adjusting a code's history after a split, or a late correction of a day. Every
/// partition it covers carries its id in its key, so that a key never names two contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestatementRecord {
    /// Stable and unique, e.g. "split of 72030 effective 2024-03-28 (AdjFactor 0.5)".
    pub id: String,
    /// What happened upstream, for `lakebuild why`.
    pub reason: String,
    /// The partitions it restated, as inclusive runs of consecutive partitions.
    pub ranges: Vec<(PartitionId, PartitionId)>,
}

impl RestatementRecord {
    pub fn covers(&self, id: PartitionId) -> bool {
        self.ranges.iter().any(|(a, b)| *a <= id && id <= *b)
    }
}

/// The digest of a set of restatement ids: order-free, so that a partition's key depends
/// on which restatements cover it, not on how they were found. A partition records this
/// rather than the ids, which a long history of splits would make large.
pub fn restatement_digest<'a>(ids: impl IntoIterator<Item = &'a str>) -> String {
    set_digest(
        ids.into_iter()
            .map(|id| *blake3::hash(id.as_bytes()).as_bytes()),
    )
}

/// `restatement_digest` from the ids' own blake3 hashes.
pub fn set_digest(hashes: impl IntoIterator<Item = [u8; 32]>) -> String {
    let mut hashes: Vec<[u8; 32]> = hashes.into_iter().collect();
    hashes.sort_unstable();
    hashes.dedup();
    let mut h = blake3::Hasher::new();
    h.update(b"lakebuild restatements 1");
    for x in &hashes {
        h.update(x);
    }
    h.finalize().to_hex().to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitRecord {
    pub format: u32,
    pub run_id: String,
    pub asset: String,
    pub rule: RuleIngredients,
    /// (column, dtype) of the data files written.
    pub schema: Vec<(String, String)>,
    pub partitions: Vec<PartitionRecord>,
    /// Partitions that stopped existing (an import that lost a day).
    #[serde(default)]
    pub removed: Vec<PartitionId>,
    /// When the commit was made (RFC 3339).
    pub committed_at: String,
    /// Restatements this commit published.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restatements: Vec<RestatementRecord>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_names_are_their_serde_names() {
        for o in PartitionOutcome::ALL {
            assert_eq!(
                serde_json::to_value(o).ok(),
                Some(serde_json::json!(o.as_str()))
            );
        }
    }

    #[test]
    fn the_restatement_digest_is_a_function_of_the_set() {
        let a = restatement_digest(["split of A", "revised B"]);
        assert_eq!(
            a,
            restatement_digest(["revised B", "split of A", "split of A"])
        );
        assert_ne!(a, restatement_digest(["split of A"]));
        assert_ne!(a, restatement_digest(["split of A", "revised C"]));
    }
}
