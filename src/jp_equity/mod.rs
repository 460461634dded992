//! The flagship pipeline: daily Japanese equities. The JPX calendar and the TSE sectors
//! ([`market`]), the market sources (the J-Quants API v2 client and the embedded synthetic
//! market), the feature set ([`features`]), the ATFT-GAT-FAN model ([`model`], mirrored by
//! `kernels/`), its ops ([`ops`]) and model versions ([`model_versions`]). It uses the
//! engine's public API and the op interface only; [`register`] adds it to a registry.

pub mod features;
pub mod frames;
pub mod market;
pub mod model;
pub mod model_compare;
pub mod model_versions;
pub mod ops;
pub mod performance_series;
pub mod promotion;

use crate::op::Registry;

/// Registers the pipeline's ops, the `market` source choice and the JPX calendar (the
/// default calendar of `on_calendar` checks).
pub fn register(registry: &mut Registry) {
    registry
        .add_op(&ops::synthetic_market::SyntheticMarketOp)
        .add_op(&ops::jquants::JquantsOp)
        .add_op(&ops::jquants_files::JquantsFilesOp)
        .add_op(&ops::features::FeaturesOp)
        .add_op(&ops::labels::LabelsOp)
        .add_op(&ops::train::TrainOp)
        .add_op(&ops::predict::PredictOp)
        .add_op(&ops::evaluate::EvaluateOp)
        .add_op(&ops::performance::PerformanceOp)
        .add_choice(&ops::market::MarketChoice)
        .add_calendar(market::calendar::JPX, true);
}
