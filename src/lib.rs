//! lakebuild: a make-like, content-addressed build system for a Delta Lake lakehouse.
//!
//! The layers, each depending only on those above it in this list (`tests/layers.rs`
//! keeps it so; `docs/ARCHITECTURE.md` maps every noun to its file):
//! - [`clock`]: the injectable clock, read by every layer.
//! - [`core`] (the crate `lakebuild-core`, so the compiler keeps it below everything): pure,
//!   no I/O, no finance: rules and the rule set, partitions, windows and calendars, the
//!   catalog rule loading is handed, keys and staleness (`plan`), a table's state and
//!   lineage, the build record's data model, canonical encodings, error kinds.
//! - [`lake`]: Delta tables, log replay, content hashes, parquet, the lock, gc, the run
//!   history, aliases, state files.
//! - [`op`]: the op interface (`Op`, its context) and the [`op::Registry`].
//! - [`ops`]: the generic ops (`files`, `sql`, `command`).
//! - [`engine`]: the build (plan, restore, execute, audit, publish, early cutoff, dry run),
//!   the project, checks, source hashing.
//! - [`jp_equity`]: the flagship pipeline (JPX calendar, market sources, features, the
//!   ATFT-GAT-FAN model and its ops), on the engine's public API.
//! - [`mlflow`]: MLflow tracking and registry of tracked materializations, through an
//!   outbox in the lake (finance-free: what a run records comes from the op).
//! - [`orchestration`]: jobs, schedules, sensors, SLAs, alerts, metrics export.
//! - [`query`]: `status`, `graph`, `history` / `stats`, lineage (`why`).
//! - [`web`]: `lakebuild serve`, the web UI and its JSON API (a front end like the CLI).
//! - [`cli`]: argument parsing, dispatch and printing.

pub mod cli;
pub mod clock;
/// The pure core, its own crate (`crates/core`): it cannot name anything of this one.
pub use lakebuild_core as core;
pub mod engine;
pub mod jp_equity;
pub mod lake;
pub mod mlflow;
pub mod op;
pub mod ops;
pub mod orchestration;
pub mod query;
pub mod tune;
pub mod web;

use std::sync::{Arc, OnceLock};

/// The registry of this program: the generic ops and the flagship pipeline.
pub fn registry() -> Arc<op::Registry> {
    static REGISTRY: OnceLock<Arc<op::Registry>> = OnceLock::new();
    REGISTRY
        .get_or_init(|| {
            let mut r = op::Registry::new();
            ops::register(&mut r);
            jp_equity::register(&mut r);
            Arc::new(r)
        })
        .clone()
}
