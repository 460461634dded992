//! The build engine: resolve targets, assess every partition, restore what an older
//! version already holds, run the stale rest in dependency order (`-j N` steps at once),
//! audit, publish, and record each step in the run history. One concept per module:
//! [`options`] (what was asked, what was done), [`prepare`] (selection, each rule's
//! ingredients and inputs, the assessment), [`dry_run`], [`scheduler`] (steps in
//! dependency order), [`step`] (one asset's stale partitions in batches), [`batch`] (a
//! batch's inputs, resume folder and outputs), [`retry`], [`output`] (splitting and hashing
//! an op's frame), [`restatement`], [`publish`], [`restore`], [`history_rows`] and
//! [`history_recovery`]; and around the build, the [`project`] (rules, lake, settings),
//! [`settings`] (`lakebuild.toml`), [`checks`], [`sources`] (hashing source files),
//! [`progress`] and [`resources`]; moving a version [`alias`], checked and audited; and a
//! [`variant`] build (an asset with other params into a side table: a tuning trial).

pub mod alias;
pub mod batch;
pub mod checks;
pub mod dry_run;
pub mod history_recovery;
pub mod history_rows;
pub mod options;
pub mod output;
pub mod prepare;
pub mod progress;
pub mod project;
pub mod publish;
pub mod resources;
pub mod restatement;
pub mod restore;
pub mod retry;
pub mod scheduler;
pub mod settings;
pub mod sources;
pub mod step;
pub mod variant;

pub use dry_run::{AssetPlan, dry_run, dry_run_with};
pub use options::{BuildOptions, BuildReport, StepSummary, new_run_id};
pub use prepare::{Prepared, prepare, selection};
pub use scheduler::build;
