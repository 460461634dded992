//! lakebuild: a make-like, content-addressed build system for a Delta Lake lakehouse.
//!
//! Where things live (the nouns of ARCHITECTURE.md):
//! - rules and their validation: [`rule`], [`rule_set`]; partitions and windows: [`partition`]
//! - keys, staleness and their reasons (pure): [`canonical`], [`plan`]
//! - the lake (Delta tables, content hashes, run history, lock, gc): [`lake`]
//! - ops (`files`, `sql`, `command`, `synthetic_market`, `jquants`, `features`, `labels`): [`ops`];
//!   market data: [`market`]; the feature set and its manifest: [`features`]; source files:
//!   [`source`]; checks: [`checks`]
//! - the build (execution, restore, early cutoff, dry run): [`build`]
//! - lineage (`why`): [`explain`]; `status`, `graph`, `history`/`stats`: [`status`], [`graph`], [`history`]
//! - the command line: [`cli`]

pub mod alerts;
pub mod build;
pub mod canonical;
pub mod checks;
pub mod cli;
pub mod error;
pub mod explain;
pub mod features;
pub mod graph;
pub mod history;
pub mod jobs;
pub mod lake;
pub mod market;
pub mod model;
pub mod model_versions;
pub mod ops;
pub mod partition;
pub mod plan;
pub mod progress;
pub mod project;
pub mod prometheus;
pub mod resources;
pub mod rule;
pub mod rule_set;
pub mod schedule;
pub mod sensors;
pub mod sla;
pub mod source;
pub mod status;
