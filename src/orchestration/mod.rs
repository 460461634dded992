//! Orchestration: what runs builds and watches them. Jobs, cron schedules and `tick`,
//! sensors, alerts (of failures, checks, decay and SLA breaches) and the Prometheus
//! metrics export.

pub mod alerts;
pub mod jobs;
pub mod prometheus;
pub mod retry;
pub mod schedule;
pub mod sensors;
pub mod tick;
