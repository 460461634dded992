//! The pipeline's ops: the market sources (`synthetic_market`, `jquants`, and the `market`
//! choice between them, and `jquants_files` for J-Quants dumps), `features`, `labels`, and the model's `train`, `predict`,
//! `evaluate` and `performance`.

pub mod evaluate;
pub mod features;
pub mod jquants;
pub mod jquants_files;
pub mod labels;
pub mod market;
pub mod performance;
pub mod predict;
pub mod score_tracking;
pub mod synthetic_market;
pub mod train;
pub mod train_tracking;
