//! Orchestration: what runs builds and watches them. Jobs, cron schedules and `tick`,
//! sensors, alerts (of failures, checks, decay and SLA breaches, promotions) and the
//! Prometheus metrics export.

pub mod alerts;
pub mod jobs;
pub mod prometheus;
pub mod retry;
pub mod schedule;
pub mod sensors;
pub mod tick;

/// What follows every build that ran (`build`, `run`, `retry`, scheduled and sensor
/// runs): alerts, MLflow delivery. Never fails. (The CLI adds the promotion policies,
/// which need the pipeline: `cli/promotion.rs`, handed to `tick` as its hook.)
pub fn after_build(project: &crate::engine::project::Project, report: &crate::engine::BuildReport) {
    alerts::after_build(project, report);
    crate::mlflow::after_build(project, report);
}
