//! The options of a build and its report: what was asked, and per step what was done.

use crate::engine::checks::CheckResult;
use crate::lake::runs::unique_suffix;
use chrono::NaiveDate;
use serde::Serialize;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub targets: Vec<String>,
    /// Build only the targets, not their upstream.
    pub only: bool,
    pub force: bool,
    pub dry_run: bool,
    pub jobs: usize,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub keep_going: bool,
    pub trigger: String,
    pub lock_timeout: Duration,
    /// The injectable clock's date, for `to = "today"`.
    pub today: NaiveDate,
    pub progress: bool,
    /// Most partitions of one daily asset computed (and committed) together.
    pub batch_size: usize,
    /// Fetch the latest days of sources that ask for it again (`recheck_days`); off for
    /// `status`, which reports what is stale, not what a build would look at again.
    pub recheck: bool,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            targets: vec![],
            only: false,
            force: false,
            dry_run: false,
            jobs: 1,
            from: None,
            to: None,
            keep_going: false,
            trigger: "manual".into(),
            recheck: true,
            lock_timeout: Duration::from_secs(600),
            today: chrono::Utc::now().date_naive(),
            progress: false,
            batch_size: 500,
        }
    }
}

/// What one step did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StepSummary {
    pub asset: String,
    pub built: usize,
    pub cut_off: usize,
    pub restored: usize,
    pub fresh: usize,
    pub removed: usize,
    pub ops_run: usize,
    pub failed: Option<String>,
    pub skipped: bool,
    pub attempts: usize,
    pub duration_ms: i64,
    pub checks: Vec<CheckResult>,
    /// Input bytes the op read in the latest batch (for the history rows).
    #[serde(skip)]
    pub bytes_read: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    pub run_id: String,
    pub steps: Vec<StepSummary>,
}

impl StepSummary {
    /// Whether the step changed the lake or failed: what makes a run worth a history row.
    pub fn did_work(&self) -> bool {
        self.built + self.cut_off + self.restored + self.removed > 0
            || self.failed.is_some()
            || self.skipped
    }
}

impl BuildReport {
    pub fn ok(&self) -> bool {
        self.steps.iter().all(|s| s.failed.is_none() && !s.skipped)
    }
    pub fn ops_run(&self) -> usize {
        self.steps.iter().map(|s| s.ops_run).sum()
    }
}

/// Stack size of a build step's thread.
pub(crate) const STEP_STACK_BYTES: usize = 256 << 20;

/// A new run id: UTC time plus a random suffix.
pub fn new_run_id() -> String {
    format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        &unique_suffix()[..6]
    )
}
