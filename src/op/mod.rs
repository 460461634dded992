//! The op interface: the code that runs a rule. Every op has the same small interface:
//! given the partitions to produce and, for each input, the partitions its window allows,
//! return one data frame. The engine splits it by partition, hashes, audits and publishes
//! it. Ops are found through a [`Registry`] built by whoever composes the program.

pub mod param;
pub mod registry;
pub mod safetensors;
pub mod tracking;

pub use crate::core::catalog::{OpSpec, ParamSpec, ParamType};
pub use registry::Registry;

use crate::core::partition::{Coverage, PartitionId};
use crate::core::rule::Rule;
use crate::core::source::SourceFile;
use anyhow::Result;
use polars::prelude::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What every op implements: its planning side ([`OpSpec`]: name, code version, params,
/// validation) and running it.
pub trait Op: OpSpec {
    fn run(&self, ctx: &OpContext) -> Result<DataFrame>;
    /// Properties stored with the asset's Delta table (its `configuration`), e.g. the
    /// feature manifest a model validates against. A pure function of the params, so
    /// already covered by the key.
    fn table_properties(&self, _params: &Value) -> Vec<(String, String)> {
        Vec::new()
    }
    /// A source that can notice its upstream changing data it published before (a
    /// split re-adjusting a code's history), after `run` produced `fresh` for
    /// `ctx.partitions`: the earlier partitions to publish again, read from
    /// `ctx.published` and corrected. Never partitions of the batch itself.
    fn restate(&self, _ctx: &OpContext, _fresh: &DataFrame) -> Result<Option<Restated>> {
        Ok(None)
    }
    /// How a materialization of this op reaches an experiment tracker: as a run of its
    /// own (a trained model), or as metrics of the model run it scored (an evaluation,
    /// live monitoring); then [`Op::tracking`] says what to record.
    fn tracked(&self) -> tracking::Tracked {
        tracking::Tracked::No
    }
    /// Checks that a whole-table output of this op, as stored, can be used (e.g. that a
    /// model decodes) before an alias names it.
    fn check_output(&self, _frame: &DataFrame) -> Result<()> {
        Ok(())
    }
    /// What an experiment tracker records of one published materialization: its params
    /// (`params`, as keyed), its output `frame` as stored in the lake and the files its
    /// run left beside it (`attachments`, see [`OpContext::attachments`]; the folder may
    /// not exist). Read again at every delivery, so it must depend on nothing else.
    fn tracking(
        &self,
        _params: &Value,
        _frame: &DataFrame,
        _attachments: &Path,
    ) -> Result<tracking::TrackingReport> {
        Ok(tracking::TrackingReport::default())
    }
    /// The value `objective` (one the op's [`OpSpec::check_objective`] accepts) of a
    /// materialization as stored, for a tuning study (`lakebuild tune`).
    fn objective(&self, _frame: &DataFrame, objective: &str) -> Result<f64> {
        anyhow::bail!(
            "op '{}' reports no value '{objective}' a study could optimise",
            self.name()
        )
    }
    /// The intermediate values of `objective` the op reported (`Reports::report`, at
    /// the same steps) while it built this materialization, as far as it stored them: a
    /// restored trial, or one resumed from a checkpoint, hands its pruner the same
    /// history as one trained in one go. None by default.
    fn intermediate(&self, _frame: &DataFrame, _objective: &str) -> Result<Vec<(u64, f64)>> {
        Ok(vec![])
    }
}

/// A tuning study's view of one running build (`lakebuild tune`): an op that learns in
/// steps reports the study's objective as it goes (e.g. each fold's validation score per
/// epoch) and stops when the study prunes it.
pub trait Reports: Send + Sync {
    /// The value the study optimises (an objective of the op).
    fn objective(&self) -> &str;
    /// Reports the objective's intermediate value at `step` (increasing within one
    /// build; `at` says where that is for people, e.g. "fold 2 epoch 3"); true: the
    /// study prunes this trial, and the op should stop with an error.
    fn report(&self, step: u64, value: f64, at: &str) -> bool;
    /// Whether the study has pruned this build (its failure is then a pruning).
    fn pruned(&self) -> bool {
        false
    }
}

/// Earlier partitions a source publishes again (see `Op::restate`).
pub struct Restated {
    /// The complete new rows of every restated partition.
    pub rows: DataFrame,
    /// One entry per upstream event, with the partitions it changed.
    pub events: Vec<RestatementEvent>,
}

pub struct RestatementEvent {
    /// Stable and unique: it enters the key of every partition it restates.
    pub id: String,
    /// What happened upstream, in a sentence.
    pub reason: String,
    pub partitions: Vec<PartitionId>,
}

/// Hex blake3 of an op's source text, and of any other source files (paths relative
/// to `src/`) whose code determines its output, computed once per process.
#[macro_export]
macro_rules! op_code_version {
    ($($extra:literal),* $(,)?) => {{
        static V: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        V.get_or_init(|| {
            let mut h = blake3::Hasher::new();
            h.update(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/", file!())).as_bytes());
            $(h.update(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/", $extra)).as_bytes());)*
            h.finalize().to_hex()[..16].to_string()
        })
        .as_str()
    }};
}

/// One input as an op sees it: the input partitions covered by the batch, with the
/// window of each output partition.
pub struct OpInput {
    pub asset: String,
    /// The input's Delta table (for its table properties, e.g. a feature manifest).
    pub table: PathBuf,
    pub coverage: Coverage,
    pub daily: bool,
    /// Covered partitions of the input, ascending, with their parquet files.
    pub partitions: Vec<(PartitionId, PathBuf)>,
    /// For each output partition, the index range into `partitions` its window covers.
    pub windows: BTreeMap<PartitionId, (usize, usize)>,
    /// The input's schema, to give an empty frame the right columns.
    pub schema: Option<Schema>,
}

impl OpInput {
    /// All covered partitions of the batch, as one lazy frame.
    pub fn scan(&self) -> Result<LazyFrame> {
        self.scan_files(self.partitions.iter().map(|(_, p)| p.clone()).collect())
    }

    /// Exactly the partitions that `output`'s window covers.
    pub fn scan_window(&self, output: PartitionId) -> Result<LazyFrame> {
        let (lo, hi) = self
            .windows
            .get(&output)
            .copied()
            .unwrap_or((0, self.partitions.len()));
        self.scan_files(
            self.partitions[lo..hi]
                .iter()
                .map(|(_, p)| p.clone())
                .collect(),
        )
    }

    /// Checks, before anything is computed, that this input has each of `columns` with the
    /// expected kind, so that data the op cannot read (a `Code` imported as a number, a
    /// missing column) fails naming the asset, the column, the type found and the type
    /// expected, not deep inside a query plan. An input without partitions has nothing to
    /// check.
    pub fn expect_columns(&self, op: &str, columns: &[(&str, ColumnKind)]) -> Result<()> {
        let Some(schema) = &self.schema else {
            return Ok(());
        };
        let mut problems = Vec::new();
        for (name, kind) in columns {
            match schema.get(name) {
                None => problems.push(format!(
                    "column '{name}' is missing (expected {})",
                    kind.describe()
                )),
                Some(dtype) if !kind.matches(dtype) => problems.push(format!(
                    "column '{name}' is {dtype}, expected {}",
                    kind.describe()
                )),
                Some(_) => {}
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        Err(crate::core::error::UsageError(format!(
            "op {op} cannot read its input '{}': {}. Fix the rule that makes '{}' (e.g. cast the column when importing it)",
            self.asset,
            problems.join("; "),
            self.asset
        ))
        .into())
    }

    /// Checks, before an op joins this input with `other` on `keys`, that both have every
    /// key column and with the same type: either side may be imported (a `Code` read as a
    /// number from a CSV), and a join of a string with an integer key would fail deep in
    /// the query plan. Inputs without partitions have nothing to check.
    pub fn expect_same_keys(&self, op: &str, other: &OpInput, keys: &[&str]) -> Result<()> {
        let (Some(a), Some(b)) = (&self.schema, &other.schema) else {
            return Ok(());
        };
        let mut problems = Vec::new();
        for key in keys {
            match (a.get(key), b.get(key)) {
                (Some(x), Some(y)) if x == y => {}
                (Some(x), Some(y)) => problems.push(format!(
                    "column '{key}' is {x} in '{}' but {y} in '{}'",
                    self.asset, other.asset
                )),
                (x, _) => {
                    let missing = if x.is_none() { self } else { other };
                    problems.push(format!("'{}' has no column '{key}'", missing.asset));
                }
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        Err(crate::core::error::UsageError(format!(
            "op {op} joins its inputs '{}' and '{}' on {}: {}. Make the key columns the same type in both rules (e.g. cast Code to a string in the one that imports it)",
            self.asset,
            other.asset,
            keys.join(", "),
            problems.join("; ")
        ))
        .into())
    }

    fn scan_files(&self, files: Vec<PathBuf>) -> Result<LazyFrame> {
        if files.is_empty() {
            let schema = self.schema.clone().unwrap_or_default();
            return Ok(DataFrame::empty_with_schema(&schema).lazy());
        }
        crate::lake::parquet::scan_files(&files)
    }
}

/// The kind of column an op reads from an input, as [`OpInput::expect_columns`] checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// A string (codes, sectors: "1301" and "131A0" alike, never a number).
    Str,
    Date,
    /// Any integer or float type.
    Numeric,
    Bool,
}

impl ColumnKind {
    fn matches(self, dtype: &DataType) -> bool {
        match self {
            ColumnKind::Str => matches!(dtype, DataType::String),
            ColumnKind::Date => matches!(dtype, DataType::Date),
            ColumnKind::Numeric => dtype.is_primitive_numeric(),
            ColumnKind::Bool => matches!(dtype, DataType::Boolean),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            ColumnKind::Str => "a string (str)",
            ColumnKind::Date => "a date",
            ColumnKind::Numeric => "a number",
            ColumnKind::Bool => "a boolean",
        }
    }
}

/// Everything an op may use. Nothing else: ops are pure functions of this.
pub struct OpContext<'a> {
    pub rule: &'a Rule,
    /// The rule's params (as hashed into the key).
    pub params: Value,
    /// Output partitions to produce (empty for an op that discovers its partitions).
    pub partitions: Vec<PartitionId>,
    pub inputs: Vec<OpInput>,
    pub project_root: &'a Path,
    /// A private, empty directory for the op's temporary files.
    pub scratch: PathBuf,
    /// A directory (not created) for state that should survive a killed build of the same
    /// work, such as training checkpoints: it is named by the rule and the exact input
    /// files, so a rerun of the same work finds it, and removed once the op succeeds.
    pub resume: PathBuf,
    pub sources: &'a [SourceFile],
    /// A folder (not created) for files the op's run leaves beside its output, e.g. a
    /// team's model artifacts and tracking file: once the run succeeds they are kept in
    /// the lake with each partition it produced (`_lakebuild/attachments/<asset>/<content
    /// hash>/`, [`crate::lake::attachments`]) and handed to [`Op::tracking`].
    pub attachments: PathBuf,
    /// A folder (not created) that every run of this op shares across builds, for state
    /// that only the op's params and code determine and that saves recomputing (e.g. a
    /// generator's state per day): named by the op and its code version, never part of
    /// a key, so an op must produce the same bytes with or without it.
    pub cache: PathBuf,
    /// The asset's own partitions as published before this step (id, parquet file),
    /// for a source that compares a re-fetch with what it published (`Op::restate`).
    pub published: Vec<(PartitionId, PathBuf)>,
    /// Set when the build is a trial of a tuning study: where intermediate values go.
    pub reports: Option<&'a dyn Reports>,
}

impl OpContext<'_> {
    pub fn param_str(&self, name: &str) -> Option<&str> {
        param::str(&self.params, name)
    }

    pub fn input(&self, asset: &str) -> Option<&OpInput> {
        self.inputs.iter().find(|i| i.asset == asset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(schema: Option<Schema>) -> OpInput {
        OpInput {
            asset: "listed_info".into(),
            table: PathBuf::from("lake/listed_info"),
            coverage: Coverage::Whole,
            daily: true,
            partitions: Vec::new(),
            windows: BTreeMap::new(),
            schema,
        }
    }

    #[test]
    fn an_input_of_the_wrong_schema_names_asset_column_and_both_types() {
        let schema = Schema::from_iter([
            Field::new("Code".into(), DataType::Int64),
            Field::new("Date".into(), DataType::Date),
            Field::new("S33".into(), DataType::String),
        ]);
        let err = input(Some(schema))
            .expect_columns(
                "features",
                &[
                    ("Code", ColumnKind::Str),
                    ("Date", ColumnKind::Date),
                    ("S17", ColumnKind::Str),
                    ("S33", ColumnKind::Str),
                ],
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("op features cannot read its input 'listed_info': "),
            "{err}"
        );
        assert!(
            err.contains("column 'Code' is i64, expected a string (str)"),
            "{err}"
        );
        assert!(
            err.contains("column 'S17' is missing (expected a string (str))"),
            "{err}"
        );
        assert!(!err.contains("'S33'") && !err.contains("'Date'"), "{err}");
    }

    #[test]
    fn inputs_joined_on_keys_of_different_types_name_both_assets_and_types() {
        let preds = OpInput {
            asset: "predictions".into(),
            ..input(Some(Schema::from_iter([
                Field::new("Code".into(), DataType::String),
                Field::new("Date".into(), DataType::Date),
            ])))
        };
        let labels = OpInput {
            asset: "labels".into(),
            ..input(Some(Schema::from_iter([
                Field::new("Code".into(), DataType::Int64),
                Field::new("Date".into(), DataType::Date),
            ])))
        };
        let err = preds
            .expect_same_keys("performance", &labels, &["Code", "Date", "Segment"])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "op performance joins its inputs 'predictions' and 'labels' on Code, Date, Segment: "
            ),
            "{err}"
        );
        assert!(
            err.contains("column 'Code' is str in 'predictions' but i64 in 'labels'"),
            "{err}"
        );
        assert!(
            err.contains("'predictions' has no column 'Segment'"),
            "{err}"
        );
        assert!(!err.contains("'Date' is"), "{err}");
        // Same types on both sides, or a side without partitions: nothing to say.
        assert!(
            labels
                .expect_same_keys("x", &labels, &["Code", "Date"])
                .is_ok()
        );
        assert!(preds.expect_same_keys("x", &input(None), &["Code"]).is_ok());
    }

    #[test]
    fn matching_or_empty_inputs_pass() {
        let schema = Schema::from_iter([
            Field::new("Code".into(), DataType::String),
            Field::new("v".into(), DataType::Float32),
            Field::new("ok".into(), DataType::Boolean),
        ]);
        let cols = [
            ("Code", ColumnKind::Str),
            ("v", ColumnKind::Numeric),
            ("ok", ColumnKind::Bool),
        ];
        assert!(input(Some(schema)).expect_columns("x", &cols).is_ok());
        assert!(input(None).expect_columns("x", &cols).is_ok());
    }
}
