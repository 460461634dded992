//! lakebuild's core: pure, no I/O, no finance. Rules and the rule set ([`rule`],
//! [`rule_set`]), partitions and windows ([`partition`]), calendars ([`calendar`]), the
//! catalog of ops that rule loading is handed ([`catalog`]), keys, staleness and their
//! reasons ([`plan`]), a table's state as its log records it ([`table_state`]) and lineage
//! over it ([`lineage`]), the build record's data model ([`record`]), source files as data
//! ([`source`]), canonical encodings ([`canonical`]) and the error kinds that decide the
//! exit code ([`error`]).
//!
//! Its own crate, so the compiler enforces the dependency rule: it cannot name the lake,
//! the ops, the engine or any pipeline. The `lakebuild` crate re-exports it as
//! `lakebuild::core`.

pub mod calendar;
pub mod canonical;
pub mod catalog;
pub mod error;
pub mod lineage;
pub mod partition;
pub mod plan;
pub mod record;
pub mod rule;
pub mod rule_set;
pub mod source;
pub mod table_state;
