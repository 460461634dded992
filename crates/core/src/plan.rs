//! Keys and staleness: pure functions from rules and recorded lake state to "which
//! partitions must be rebuilt, and exactly why". No I/O here.
//!
//! key(asset, partition) = blake3(format tag, asset, partition id, rule digest, and for
//! each input the digest of exactly the (partition id, content hash) pairs its window
//! covers). The rule digest covers the op, its code version, canonical params, source
//! file hashes, input declarations and key columns.

use crate::canonical::{CanonicalHasher, Hash, canonical_json};
use crate::catalog::OpSpec;
use crate::partition::{Coverage, PartitionId, date_range, window_range};
use crate::record::{InputRead, RuleIngredients};
use crate::rule::Rule;
use crate::source::SourceFile;
use crate::table_state::{AssetState, Current};
use chrono::NaiveDate;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The rule-level ingredients of every key of `rule`.
pub fn rule_ingredients(rule: &Rule, op: &dyn OpSpec, sources: &[SourceFile]) -> RuleIngredients {
    let params: Value = serde_json::from_str(&canonical_json(&rule.params)).unwrap_or(Value::Null);
    let inputs: Vec<(String, String)> = rule
        .inputs
        .iter()
        .map(|i| {
            let name = match &i.alias {
                Some(a) => format!("{}@{a}", i.asset),
                None => i.asset.clone(),
            };
            (name, i.coverage.to_string())
        })
        .collect();
    let mut h = CanonicalHasher::new("rule");
    h.str(&rule.op)
        .str(op.code_version())
        .str(&canonical_json(&params));
    h.i64(sources.len() as i64);
    for s in sources {
        h.str(&s.path).str(&s.hash);
    }
    h.i64(inputs.len() as i64);
    for (a, c) in &inputs {
        h.str(a).str(c);
    }
    h.str(if rule.daily { "daily" } else { "whole" });
    h.i64(rule.key_columns.len() as i64);
    for k in &rule.key_columns {
        h.str(k);
    }
    RuleIngredients {
        op: rule.op.clone(),
        code_version: op.code_version().to_string(),
        params,
        sources: sources.to_vec(),
        inputs,
        daily: rule.daily,
        key_columns: rule.key_columns.clone(),
        digest: h.finish().to_hex().to_string(),
    }
}

/// An input asset's current partitions, aligned arrays for fast window arithmetic.
#[derive(Debug, Clone)]
pub struct InputView {
    pub asset: String,
    pub version: i64,
    pub ids: Vec<PartitionId>,
    pub hashes: Vec<String>,
    /// The version at which each partition's current materialization was committed.
    pub versions: Vec<i64>,
    pub files: Vec<String>,
}

impl InputView {
    pub fn of(asset: &str, state: &AssetState) -> InputView {
        let mut v = InputView {
            asset: asset.to_string(),
            version: state.version.unwrap_or(-1),
            ids: Vec::with_capacity(state.current.len()),
            hashes: Vec::with_capacity(state.current.len()),
            versions: Vec::with_capacity(state.current.len()),
            files: Vec::with_capacity(state.current.len()),
        };
        for (id, c) in &state.current {
            v.ids.push(*id);
            v.hashes.push(c.record().content_hash.clone());
            v.versions.push(c.version);
            v.files.push(c.record().file.clone());
        }
        v
    }

    /// The partitions of `state` as they were at `version` (an input `asset@alias`).
    pub fn at(asset: &str, state: &AssetState, version: i64) -> InputView {
        let mut v = InputView {
            asset: asset.to_string(),
            version,
            ids: Vec::new(),
            hashes: Vec::new(),
            versions: Vec::new(),
            files: Vec::new(),
        };
        for (id, past) in state.history() {
            let i = past.partition_point(|p| p.version <= version);
            let Some(p) = i.checked_sub(1).and_then(|i| past.get(i)) else {
                continue;
            };
            let Some(record) = p
                .content_hash
                .as_ref()
                .and_then(|_| state.commits.get(&p.version))
                .and_then(|c| c.partitions.iter().find(|r| r.id == *id))
            else {
                continue;
            };
            v.ids.push(*id);
            v.hashes.push(record.content_hash.clone());
            v.versions.push(p.version);
            v.files.push(record.file.clone());
        }
        v
    }

    /// Index range of the partitions `coverage` covers for output partition `out`.
    pub fn cover(&self, coverage: Coverage, out: PartitionId) -> (usize, usize) {
        match (coverage, out.date()) {
            (Coverage::Window(a, b), Some(d)) => window_range(&self.ids, d, a, b),
            (Coverage::Period { every, lag }, _) => {
                crate::partition::period_range(&self.ids, every, lag)
            }
            _ => (0, self.ids.len()),
        }
    }

    /// Digest of the covered (id, content hash) pairs.
    pub fn digest(&self, range: (usize, usize)) -> Hash {
        let mut h = CanonicalHasher::new("cover");
        h.i64((range.1 - range.0) as i64);
        for i in range.0..range.1 {
            h.str(&self.ids[i].to_string()).str(&self.hashes[i]);
        }
        h.finish()
    }

    pub fn read(&self, range: (usize, usize)) -> InputRead {
        InputRead {
            asset: self.asset.clone(),
            version: self.version,
            first: self.ids.get(range.0).copied().filter(|_| range.1 > range.0),
            last: if range.1 > range.0 {
                self.ids.get(range.1 - 1).copied()
            } else {
                None
            },
            count: range.1 - range.0,
            digest: self.digest(range).to_hex().to_string(),
        }
    }
}

/// The key of one partition.
pub fn partition_key(
    asset: &str,
    id: PartitionId,
    rule_digest: &str,
    inputs: &[InputRead],
    restated: Option<&str>,
) -> String {
    let mut h = CanonicalHasher::new("key");
    h.str(asset).str(&id.to_string()).str(rule_digest);
    h.i64(inputs.len() as i64);
    for i in inputs {
        h.str(&i.asset).str(&i.digest);
    }
    // Absent for partitions never restated, so their keys are as before restatements.
    if let Some(r) = restated {
        h.str("restated").str(r);
    }
    h.finish().to_hex().to_string()
}

/// The partitions a daily asset should have: its generated range, or its first daily
/// input's partitions, less the dates where an input marked `full` has an incomplete
/// window. `daily_inputs` pairs each daily input's view with its declaration.
pub fn domain(
    rule: &Rule,
    daily_inputs: &[(&InputView, &crate::rule::Input)],
    today: NaiveDate,
) -> Option<Vec<PartitionId>> {
    if !rule.daily {
        return Some(vec![PartitionId::Whole]);
    }
    let mut dates = if let Some(d) = &rule.dates {
        date_range(d.from, d.to.unwrap_or(today), d.calendar)
    } else {
        daily_inputs.first().map(|(v, _)| v.ids.clone())?
    };
    for (view, input) in daily_inputs {
        if let Some((a, b)) = input.full {
            dates.retain(|p| {
                p.date()
                    .is_some_and(|d| window_complete(&view.ids, d, a, b))
            });
        }
    }
    Some(dates)
}

/// Whether window `[a, b]` at `date` lies entirely within `ids`.
fn window_complete(ids: &[PartitionId], date: NaiveDate, a: i64, b: i64) -> bool {
    let anchor = ids.partition_point(|p| *p <= PartitionId::Day(date)) as i64 - 1;
    anchor >= 0 && anchor + a >= 0 && anchor + b < ids.len() as i64
}

/// One difference between the recorded and the current rule ingredients.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RuleChange {
    Param {
        name: String,
        old: Option<Value>,
        new: Option<Value>,
    },
    CodeVersion {
        op: String,
        old: String,
        new: String,
    },
    Op {
        old: String,
        new: String,
    },
    SourceAdded {
        path: String,
    },
    SourceRemoved {
        path: String,
    },
    SourceModified {
        path: String,
        old: String,
        new: String,
    },
    Inputs {
        old: Vec<(String, String)>,
        new: Vec<(String, String)>,
    },
    KeyColumns {
        old: Vec<String>,
        new: Vec<String>,
    },
    Partitioning {
        old: bool,
        new: bool,
    },
}

impl std::fmt::Display for RuleChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<Value>| {
            v.as_ref()
                .map(|v| v.to_string())
                .unwrap_or_else(|| "(unset)".into())
        };
        match self {
            RuleChange::Param { name, old, new } => {
                write!(f, "param {name} changed: {} -> {}", show(old), show(new))
            }
            RuleChange::CodeVersion { op, old, new } => {
                write!(f, "op '{op}' code changed: {old} -> {new}")
            }
            RuleChange::Op { old, new } => write!(f, "op changed: {old} -> {new}"),
            RuleChange::SourceAdded { path } => write!(f, "source file added: {path}"),
            RuleChange::SourceRemoved { path } => write!(f, "source file removed: {path}"),
            RuleChange::SourceModified { path, old, new } => {
                write!(
                    f,
                    "source file changed: {path} ({} -> {})",
                    &old[..12.min(old.len())],
                    &new[..12.min(new.len())]
                )
            }
            RuleChange::Inputs { old, new } => write!(f, "inputs changed: {old:?} -> {new:?}"),
            RuleChange::KeyColumns { old, new } => {
                write!(f, "key columns changed: {old:?} -> {new:?}")
            }
            RuleChange::Partitioning { old, new } => {
                write!(f, "partitioning changed: daily {old} -> {new}")
            }
        }
    }
}

/// What differs between two sets of rule ingredients.
pub fn diff_rules(old: &RuleIngredients, new: &RuleIngredients) -> Vec<RuleChange> {
    let mut out = Vec::new();
    if old.op != new.op {
        out.push(RuleChange::Op {
            old: old.op.clone(),
            new: new.op.clone(),
        });
    } else if old.code_version != new.code_version {
        out.push(RuleChange::CodeVersion {
            op: new.op.clone(),
            old: old.code_version.clone(),
            new: new.code_version.clone(),
        });
    }
    let empty = serde_json::Map::new();
    let po = old.params.as_object().unwrap_or(&empty);
    let pn = new.params.as_object().unwrap_or(&empty);
    let mut names: Vec<&String> = po.keys().chain(pn.keys()).collect();
    names.sort();
    names.dedup();
    for n in names {
        if po.get(n) != pn.get(n) {
            out.push(RuleChange::Param {
                name: n.clone(),
                old: po.get(n).cloned(),
                new: pn.get(n).cloned(),
            });
        }
    }
    let so: BTreeMap<&str, &str> = old
        .sources
        .iter()
        .map(|s| (s.path.as_str(), s.hash.as_str()))
        .collect();
    let sn: BTreeMap<&str, &str> = new
        .sources
        .iter()
        .map(|s| (s.path.as_str(), s.hash.as_str()))
        .collect();
    for (p, h) in &sn {
        match so.get(p) {
            None => out.push(RuleChange::SourceAdded {
                path: p.to_string(),
            }),
            Some(o) if o != h => out.push(RuleChange::SourceModified {
                path: p.to_string(),
                old: o.to_string(),
                new: h.to_string(),
            }),
            _ => {}
        }
    }
    for p in so.keys().filter(|p| !sn.contains_key(*p)) {
        out.push(RuleChange::SourceRemoved {
            path: p.to_string(),
        });
    }
    if old.inputs != new.inputs {
        out.push(RuleChange::Inputs {
            old: old.inputs.clone(),
            new: new.inputs.clone(),
        });
    }
    if old.key_columns != new.key_columns {
        out.push(RuleChange::KeyColumns {
            old: old.key_columns.clone(),
            new: new.key_columns.clone(),
        });
    }
    if old.daily != new.daily {
        out.push(RuleChange::Partitioning {
            old: old.daily,
            new: new.daily,
        });
    }
    out
}

/// Which input partitions differ between what a materialization read and what its
/// window covers now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputChange {
    pub asset: String,
    pub read_version: i64,
    pub changed: Vec<PartitionId>,
    pub added: Vec<PartitionId>,
    pub removed: Vec<PartitionId>,
}

impl std::fmt::Display for InputChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[PartitionId]| {
            let mut s: Vec<String> = v.iter().take(5).map(|p| p.to_string()).collect();
            if v.len() > 5 {
                s.push(format!("… {} in all", v.len()));
            }
            s.join(", ")
        };
        write!(
            f,
            "input {} (read at version {}):",
            self.asset, self.read_version
        )?;
        if !self.changed.is_empty() {
            write!(f, " changed partitions {}", list(&self.changed))?;
        }
        if !self.added.is_empty() {
            write!(f, " new partitions in window {}", list(&self.added))?;
        }
        if !self.removed.is_empty() {
            write!(f, " partitions gone from window {}", list(&self.removed))?;
        }
        Ok(())
    }
}

/// Why a partition is not fresh.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    Missing,
    Forced,
    Rule {
        changes: Vec<RuleChange>,
    },
    Input(InputChange),
    /// One of the latest partitions of a source that re-checks recent days.
    Recheck {
        days: usize,
    },
    /// The source restated it (its upstream changed data it had published): the
    /// restatements published since it was built.
    Restated {
        restatements: Vec<String>,
    },
    /// A covered input partition is itself about to be rebuilt.
    UpstreamPending {
        asset: String,
        partitions: Vec<PartitionId>,
    },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Missing => f.write_str("never built"),
            Reason::Forced => f.write_str("--force"),
            Reason::Rule { changes } => {
                let s: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
                f.write_str(&s.join("; "))
            }
            Reason::Input(c) => write!(f, "{c}"),
            Reason::Recheck { days } => {
                write!(f, "re-check of the latest {days} day(s) (recheck_days)")
            }
            Reason::Restated { restatements } => {
                write!(f, "restated upstream: {}", restatements.join("; "))
            }
            Reason::UpstreamPending { asset, partitions } => write!(
                f,
                "waits on {asset}: {} covered partition(s) stale upstream (may be cut off)",
                partitions.len()
            ),
        }
    }
}

/// The assessment of one partition.
#[derive(Debug, Clone)]
pub struct Assessment {
    pub id: PartitionId,
    /// The key it should have now.
    pub key: String,
    pub reads: Vec<InputRead>,
    /// Empty = fresh.
    pub reasons: Vec<Reason>,
}

impl Assessment {
    pub fn fresh(&self) -> bool {
        self.reasons.is_empty()
    }
}

/// How each input of a rule is read.
pub struct Reading<'a> {
    pub view: &'a InputView,
    pub coverage: Coverage,
    /// States, for turning a recorded read into per-partition differences.
    pub state: &'a AssetState,
}

/// Compares a recorded read with the current cover and lists the partitions that differ.
pub fn input_change(reading: &Reading, recorded: &InputRead, range: (usize, usize)) -> InputChange {
    let v = reading.view;
    let mut old: BTreeMap<PartitionId, String> = BTreeMap::new();
    if let (Some(first), Some(last)) = (recorded.first, recorded.last) {
        for id in reading.state.partition_ids_at(recorded.version) {
            if id >= first
                && id <= last
                && let Some(h) = reading.state.content_hash_at(id, recorded.version)
            {
                old.insert(id, h.to_string());
            }
        }
    }
    let mut change = InputChange {
        asset: v.asset.clone(),
        read_version: recorded.version,
        changed: vec![],
        added: vec![],
        removed: vec![],
    };
    let mut now: BTreeMap<PartitionId, &str> = BTreeMap::new();
    for i in range.0..range.1 {
        now.insert(v.ids[i], &v.hashes[i]);
    }
    for (id, h) in &now {
        match old.get(id) {
            None => change.added.push(*id),
            Some(o) if o != h => change.changed.push(*id),
            _ => {}
        }
    }
    for id in old.keys().filter(|id| !now.contains_key(*id)) {
        change.removed.push(*id);
    }
    change
}

/// Assesses one partition against its current materialization.
pub fn assess(
    asset: &str,
    id: PartitionId,
    current: Option<&Current>,
    rule: &RuleIngredients,
    readings: &[Reading],
    restated: Option<&str>,
    explain: bool,
) -> Assessment {
    let ranges: Vec<(usize, usize)> = readings
        .iter()
        .map(|r| r.view.cover(r.coverage, id))
        .collect();
    let Some(cur) = current else {
        let reads: Vec<InputRead> = readings
            .iter()
            .zip(&ranges)
            .map(|(r, g)| r.view.read(*g))
            .collect();
        let key = partition_key(asset, id, &rule.digest, &reads, restated);
        return Assessment {
            id,
            key,
            reads,
            reasons: vec![Reason::Missing],
        };
    };
    // Fast path: same rule, same covered ids, and nothing covered changed since it was read.
    let same_rule = cur.commit.rule.digest == rule.digest;
    let same_restatements = cur.record().restated.as_deref() == restated;
    if same_rule && same_restatements && cur.record().inputs.len() == readings.len() {
        let untouched =
            readings
                .iter()
                .zip(&ranges)
                .zip(&cur.record().inputs)
                .all(|((r, g), rec)| {
                    let v = r.view;
                    let n = g.1 - g.0;
                    // An aliased view can move back to an older version.
                    rec.asset == v.asset
                        && v.version >= rec.version
                        && rec.count == n
                        && (n == 0
                            || (rec.first == Some(v.ids[g.0]) && rec.last == Some(v.ids[g.1 - 1])))
                        && v.versions[g.0..g.1].iter().all(|ver| *ver <= rec.version)
                });
        if untouched {
            return Assessment {
                id,
                key: cur.record().key.clone(),
                reads: cur.record().inputs.clone(),
                reasons: vec![],
            };
        }
    }
    let reads: Vec<InputRead> = readings
        .iter()
        .zip(&ranges)
        .map(|(r, g)| r.view.read(*g))
        .collect();
    let key = partition_key(asset, id, &rule.digest, &reads, restated);
    if key == cur.record().key {
        return Assessment {
            id,
            key,
            reads,
            reasons: vec![],
        };
    }
    let mut reasons = Vec::new();
    if explain {
        if !same_rule {
            let changes = diff_rules(&cur.commit.rule, rule);
            reasons.push(Reason::Rule { changes });
        }
        for ((r, g), read) in readings.iter().zip(&ranges).zip(&reads) {
            let recorded = cur.record().inputs.iter().find(|x| x.asset == r.view.asset);
            match recorded {
                Some(rec) if rec.digest == read.digest => {}
                Some(rec) => reasons.push(Reason::Input(input_change(r, rec, *g))),
                None => {}
            }
        }
        if !same_restatements {
            // The caller, which knows the asset's restatements, names them.
            reasons.push(Reason::Restated {
                restatements: vec![],
            });
        }
    }
    if reasons.is_empty() {
        // Without explanation (or when the difference is only in the input list itself).
        reasons.push(Reason::Rule {
            changes: diff_rules(&cur.commit.rule, rule),
        });
    }
    Assessment {
        id,
        key,
        reads,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceFile;
    use serde_json::json;

    #[test]
    fn a_full_input_drops_the_dates_whose_window_is_incomplete() {
        use crate::rule::Input;
        let ids: Vec<PartitionId> = (1..=10)
            .map(|d| PartitionId::Day(NaiveDate::from_ymd_opt(2024, 1, d).unwrap()))
            .collect();
        let view = InputView {
            asset: "prices".into(),
            version: 0,
            ids: ids.clone(),
            hashes: vec![String::new(); 10],
            versions: vec![0; 10],
            files: vec![String::new(); 10],
        };
        let mut input = Input {
            asset: "prices".into(),
            coverage: Coverage::Window(-3, 0),
            window_given: true,
            full: Some((-3, 0)),
            alias: None,
            line: 1,
        };
        let src = "op = \"sql\"\npartitioned = \"daily\"\ninputs = [{ asset = \"prices\", window = [-3, 0], full = true }]\n[params]\nquery = \"SELECT 1\"\n";
        let rule = crate::rule::parse_rule(
            std::path::Path::new("r.toml"),
            src,
            "r",
            &|_| true,
            crate::catalog::fixture::catalog(),
        )
        .unwrap();
        assert_eq!(rule.inputs[0].full, Some((-3, 0)));
        let today = NaiveDate::from_ymd_opt(2024, 2, 1).unwrap();
        let dom = domain(&rule, &[(&view, &input)], today).unwrap();
        assert_eq!(dom, ids[3..].to_vec());
        // Future windows: the last dates lack their future.
        input.coverage = Coverage::Window(0, 2);
        input.full = Some((0, 2));
        let dom = domain(&rule, &[(&view, &input)], today).unwrap();
        assert_eq!(dom, ids[..8].to_vec());
        // A part of the window: [-3, 0] read where it exists, [-1, 0] required.
        input.coverage = Coverage::Window(-3, 0);
        input.full = Some((-1, 0));
        let dom = domain(&rule, &[(&view, &input)], today).unwrap();
        assert_eq!(dom, ids[1..].to_vec());
        input.full = None;
        let dom = domain(&rule, &[(&view, &input)], today).unwrap();
        assert_eq!(dom, ids);
    }

    fn ingredients(code: &str, params: Value, sources: Vec<SourceFile>) -> RuleIngredients {
        RuleIngredients {
            op: "sql".into(),
            code_version: code.into(),
            params,
            sources,
            inputs: vec![("a".into(), "[-1, 0]".into())],
            daily: true,
            key_columns: vec![],
            digest: String::new(),
        }
    }

    #[test]
    fn rule_diff_names_code_params_and_sources() {
        let s = |p: &str, h: &str| SourceFile {
            path: p.into(),
            hash: h.into(),
        };
        let old = ingredients(
            "aaa",
            json!({"n": 1, "q": "x"}),
            vec![s("a.py", "1"), s("b.py", "2")],
        );
        let new = ingredients(
            "bbb",
            json!({"n": 2, "q": "x", "z": true}),
            vec![s("a.py", "9"), s("c.py", "3")],
        );
        let text: Vec<String> = diff_rules(&old, &new)
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(
            text,
            [
                "op 'sql' code changed: aaa -> bbb",
                "param n changed: 1 -> 2",
                "param z changed: (unset) -> true",
                "source file changed: a.py (1 -> 9)",
                "source file added: c.py",
                "source file removed: b.py",
            ]
        );
    }

    #[test]
    fn keys_depend_on_every_ingredient() {
        let read = |d: &str| InputRead {
            asset: "a".into(),
            version: 1,
            first: None,
            last: None,
            count: 0,
            digest: d.into(),
        };
        let d = PartitionId::Day(chrono::NaiveDate::from_ymd_opt(2024, 1, 2).unwrap_or_default());
        let base = partition_key("x", d, "rule", &[read("i")], None);
        assert_ne!(base, partition_key("y", d, "rule", &[read("i")], None));
        assert_ne!(
            base,
            partition_key("x", PartitionId::Whole, "rule", &[read("i")], None)
        );
        assert_ne!(base, partition_key("x", d, "rule2", &[read("i")], None));
        assert_ne!(base, partition_key("x", d, "rule", &[read("j")], None));
        assert_eq!(base, partition_key("x", d, "rule", &[read("i")], None));
        let split = partition_key("x", d, "rule", &[read("i")], Some("split"));
        assert_ne!(base, split, "a restatement re-keys the partition");
        assert_ne!(
            split,
            partition_key("x", d, "rule", &[read("i")], Some("split+fix"))
        );
    }

    /// Staleness over in-memory table states (no lake): the lake layer replays a log into
    /// exactly these values.
    mod in_memory {
        use super::*;
        use crate::record::{CommitRecord, PartitionOutcome, PartitionRecord};
        use crate::table_state::LogEntry;

        fn day(d: u32) -> PartitionId {
            PartitionId::Day(NaiveDate::from_ymd_opt(2024, 1, d).unwrap_or_default())
        }

        fn part(
            id: PartitionId,
            key: &str,
            content: &str,
            inputs: Vec<InputRead>,
        ) -> PartitionRecord {
            PartitionRecord {
                id,
                key: key.into(),
                content_hash: content.into(),
                file: format!("part-{id}.parquet"),
                rows: 1,
                bytes: 1,
                outcome: PartitionOutcome::Built,
                inputs,
                restated: None,
            }
        }

        fn commit(asset: &str, rule: RuleIngredients, parts: Vec<PartitionRecord>) -> LogEntry {
            LogEntry {
                timestamp: Some(0),
                files: parts
                    .iter()
                    .map(|p| crate::table_state::FileAction::Add {
                        path: p.file.clone(),
                        size: 1,
                    })
                    .collect(),
                record: Some(CommitRecord {
                    format: crate::record::RECORD_FORMAT,
                    run_id: "r".into(),
                    asset: asset.into(),
                    rule,
                    schema: Vec::new(),
                    partitions: parts,
                    removed: Vec::new(),
                    committed_at: "2024-01-05T00:00:00Z".into(),
                    restatements: Vec::new(),
                }),
            }
        }

        fn rule(code: &str) -> RuleIngredients {
            let mut r = ingredients(code, json!({}), Vec::new());
            r.digest = format!("digest-{code}");
            r
        }

        #[test]
        fn fresh_then_stale_by_exactly_the_input_partition_that_changed() {
            let mut prices = AssetState::empty("lake/prices".into());
            prices.apply(
                0,
                commit(
                    "prices",
                    rule("p"),
                    (1..=3)
                        .map(|d| part(day(d), "k", &format!("h{d}"), vec![]))
                        .collect(),
                ),
            );
            let window = Coverage::Window(-1, 0);
            let view = InputView::of("prices", &prices);
            let reading = [Reading {
                view: &view,
                coverage: window,
                state: &prices,
            }];
            let ma = rule("ma");
            // Never built: missing, with the key it will get.
            let first = assess("ma", day(3), None, &ma, &reading, None, true);
            assert_eq!(first.reasons, vec![Reason::Missing]);
            // Built with that key: fresh.
            let mut out = AssetState::empty("lake/ma".into());
            out.apply(
                0,
                commit(
                    "ma",
                    ma.clone(),
                    vec![part(day(3), &first.key, "m3", first.reads.clone())],
                ),
            );
            let a = assess(
                "ma",
                day(3),
                out.current.get(&day(3)),
                &ma,
                &reading,
                None,
                true,
            );
            assert!(a.fresh(), "{:?}", a.reasons);
            assert_eq!(a.key, first.key);
            // Day 2 of the input changes (a new version): day 3's window covers it.
            prices.apply(
                1,
                commit(
                    "prices",
                    rule("p"),
                    vec![part(day(2), "k2", "h2-new", vec![])],
                ),
            );
            let view = InputView::of("prices", &prices);
            let reading = [Reading {
                view: &view,
                coverage: window,
                state: &prices,
            }];
            let a = assess(
                "ma",
                day(3),
                out.current.get(&day(3)),
                &ma,
                &reading,
                None,
                true,
            );
            assert_ne!(a.key, first.key);
            match a.reasons.as_slice() {
                [Reason::Input(c)] => {
                    assert_eq!((c.asset.as_str(), c.read_version), ("prices", 0));
                    assert_eq!(c.changed, vec![day(2)]);
                    assert!(c.added.is_empty() && c.removed.is_empty());
                }
                other => panic!("expected one input change, got {other:?}"),
            }
            // The op's code changed: a rule reason naming it.
            let a = assess(
                "ma",
                day(3),
                out.current.get(&day(3)),
                &rule("ma2"),
                &reading,
                None,
                true,
            );
            assert!(
                a.reasons.iter().any(|r| matches!(r, Reason::Rule { changes } if changes.iter().any(|c| c.to_string().contains("code changed: ma -> ma2")))),
                "{:?}",
                a.reasons
            );
            // A restatement covering it re-keys it.
            let restated = assess(
                "ma",
                day(3),
                out.current.get(&day(3)),
                &ma,
                &reading,
                Some("split"),
                true,
            );
            assert!(
                restated
                    .reasons
                    .iter()
                    .any(|r| matches!(r, Reason::Restated { .. })),
                "{:?}",
                restated.reasons
            );
        }

        #[test]
        fn the_state_answers_what_a_partition_held_at_each_version() {
            let mut s = AssetState::empty("lake/t".into());
            s.apply(
                0,
                commit(
                    "t",
                    rule("t"),
                    vec![
                        part(day(1), "a", "h1", vec![]),
                        part(day(2), "b", "h2", vec![]),
                    ],
                ),
            );
            s.apply(
                1,
                commit("t", rule("t"), vec![part(day(2), "c", "h2b", vec![])]),
            );
            let mut gone = commit("t", rule("t"), vec![]);
            if let Some(r) = gone.record.as_mut() {
                r.removed = vec![day(1)];
            }
            gone.files = vec![crate::table_state::FileAction::Remove {
                path: format!("part-{}.parquet", day(1)),
            }];
            s.apply(2, gone);
            assert_eq!(s.version, Some(2));
            assert_eq!(s.content_hash_at(day(2), 0), Some("h2"));
            assert_eq!(s.content_hash_at(day(2), 1), Some("h2b"));
            assert_eq!(s.content_hash_at(day(1), 1), Some("h1"));
            assert_eq!(s.content_hash_at(day(1), 2), None);
            assert_eq!(s.partition_ids_at(0), vec![day(1), day(2)]);
            assert_eq!(s.partition_ids_at(2), vec![day(2)]);
            assert_eq!(s.current.keys().copied().collect::<Vec<_>>(), vec![day(2)]);
            assert_eq!(s.by_key()["b"][0].version, 0);
            // As of version 0 (an alias), day 2 is what it held then.
            let v = InputView::at("t", &s, 0);
            assert_eq!(v.hashes, vec!["h1", "h2"]);
            // A commit of another writer (no lakebuild record) moves the version only.
            s.apply(3, LogEntry::default());
            assert_eq!((s.version, s.commits.len()), (Some(3), 3));
            // Its log in replayable form rebuilds it exactly (the lake's log snapshot).
            let mut again = AssetState::empty("lake/t".into());
            for (v, entry) in s.as_log() {
                again.apply(v, entry);
            }
            assert_eq!(format!("{:?}", again.as_log()), format!("{:?}", s.as_log()));
            assert_eq!(format!("{:?}", again.current), format!("{:?}", s.current));
            assert_eq!(
                format!("{:?}", again.history()),
                format!("{:?}", s.history())
            );
            assert_eq!(again.version, s.version);
            assert_eq!(again.active_files, s.active_files);
            assert_eq!(again.timestamps, s.timestamps);
            assert_eq!(again.removed_at(), s.removed_at());
            assert_eq!(again.ever_added(), s.ever_added());
            assert_eq!(again.content_hash_at(day(2), 0), Some("h2"));
        }
    }
}
