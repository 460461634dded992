//! Ops: the code that runs a rule. Every op has the same small interface: given the
//! partitions to produce and, for each input, the partitions its window allows, return
//! one data frame. The engine splits it by partition, hashes, audits and publishes it.

pub mod command;
pub mod evaluate;
pub mod features;
pub mod files;
pub mod jquants;
pub mod labels;
pub mod performance;
pub mod predict;
pub mod sql;
pub mod synthetic_market;
pub mod train;

use crate::partition::{Coverage, PartitionId};
use crate::rule::Rule;
use crate::source::SourceFile;
use anyhow::Result;
use polars::prelude::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The type a param must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    Str,
    Int,
    Float,
    Bool,
    StrList,
    StrOrStrList,
    Table,
    Any,
}

impl ParamType {
    pub fn describe(self) -> &'static str {
        match self {
            ParamType::Str => "a string",
            ParamType::Int => "an integer",
            ParamType::Float => "a number",
            ParamType::Bool => "true or false",
            ParamType::StrList => "a list of strings",
            ParamType::StrOrStrList => "a string or a list of strings",
            ParamType::Table => "a table",
            ParamType::Any => "any value",
        }
    }
}

/// One declared param of an op.
#[derive(Debug, Clone, Copy)]
pub struct ParamSpec {
    pub name: &'static str,
    pub ty: ParamType,
    pub required: bool,
    pub doc: &'static str,
}

/// What every op implements.
pub trait Op: Send + Sync {
    fn name(&self) -> &'static str;
    /// Derived from the op's source text at compile time: editing the op makes its
    /// outputs stale.
    fn code_version(&self) -> &'static str;
    fn params(&self) -> &'static [ParamSpec];
    /// A daily op without inputs that learns its partitions from the data it produces
    /// (an import): it runs whole and the engine publishes what changed.
    fn discovers_partitions(&self) -> bool {
        false
    }
    /// Globs of files (relative to the project root) that this op reads, hashed into
    /// the key like the rule's own `sources`.
    fn source_globs(&self, _params: &Value) -> Vec<String> {
        Vec::new()
    }
    fn run(&self, ctx: &OpContext) -> Result<DataFrame>;
    /// How many of the latest partitions to fetch again on every build (a source whose
    /// recent days may still be corrected). A re-fetch that brings the same content is
    /// cut off: nothing downstream rebuilds.
    fn recheck_days(&self, _params: &Value) -> usize {
        0
    }
    /// Checks of the rule beyond param types (values, required inputs and windows),
    /// made when the rule set loads, so that nothing builds from a rule the op would
    /// reject. Each message (with the rule file's line it is about) says what to change.
    fn validate(&self, _rule: &Rule) -> Vec<(usize, String)> {
        Vec::new()
    }
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

static OPS: &[&dyn Op] = &[
    &files::FilesOp,
    &sql::SqlOp,
    &command::CommandOp,
    &synthetic_market::SyntheticMarketOp,
    &jquants::JquantsOp,
    &features::FeaturesOp,
    &labels::LabelsOp,
    &train::TrainOp,
    &predict::PredictOp,
    &evaluate::EvaluateOp,
    &performance::PerformanceOp,
];

pub fn find(name: &str) -> Option<&'static dyn Op> {
    OPS.iter().copied().find(|o| o.name() == name)
}

pub fn names() -> Vec<&'static str> {
    OPS.iter().map(|o| o.name()).collect()
}

/// One input as an op sees it: the input partitions covered by the batch, with the
/// window of each output partition.
pub struct OpInput {
    pub asset: String,
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

    fn scan_files(&self, files: Vec<PathBuf>) -> Result<LazyFrame> {
        if files.is_empty() {
            let schema = self.schema.clone().unwrap_or_default();
            return Ok(DataFrame::empty_with_schema(&schema).lazy());
        }
        crate::lake::parquet::scan_files(&files)
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
    /// The asset's own partitions as published before this step (id, parquet file),
    /// for a source that compares a re-fetch with what it published (`Op::restate`).
    pub published: Vec<(PartitionId, PathBuf)>,
}

impl OpContext<'_> {
    pub fn param_str(&self, name: &str) -> Option<&str> {
        self.params.get(name).and_then(|v| v.as_str())
    }

    pub fn input(&self, asset: &str) -> Option<&OpInput> {
        self.inputs.iter().find(|i| i.asset == asset)
    }
}
