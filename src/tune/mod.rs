//! Hyperparameter tuning (`[tune]`, `lakebuild tune`): Optuna samples and prunes through a
//! bundled bridge ([`optuna`]); a trial is a variant build of the rule with the drawn
//! params overlaid ([`study`]). Finance-free: what a trial reports comes from the op.
pub mod optuna;
pub mod study;
