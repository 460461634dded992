//! `lakebuild tune ASSET`: runs (or, with `--best`, reads) the asset's Optuna study and
//! prints a line per trial and the best one.

use super::build::default_options;
use super::{Global, TuneArgs, print_json};
use crate::core::error::UsageError;
use crate::engine::project::Project;
use crate::tune::study::{self, StudyReport, TuneOptions};
use anyhow::Result;
use std::sync::Arc;

pub(super) fn run(project: &Project, g: &Global, a: TuneArgs) -> Result<i32> {
    let timeout = match &a.timeout {
        None => None,
        Some(t) => Some(crate::core::rule::parse_duration(t).ok_or_else(|| {
            UsageError(format!(
                "--timeout '{t}' is not a duration: write e.g. 30m or 2h"
            ))
        })?),
    };
    if a.trials == Some(0) {
        return Err(UsageError("--trials must be at least 1".into()).into());
    }
    let mut build = default_options(project, g)?;
    build.progress = false;
    let opts = TuneOptions {
        asset: a.asset,
        trials: a.trials,
        timeout,
        study: a.study,
        storage: a.storage,
        jobs: a.jobs.max(1),
        seed: a.seed,
        python: std::env::var("LAKEBUILD_PYTHON").unwrap_or_else(|_| "python3".into()),
        build,
    };
    let report = if a.best {
        study::best(project, &opts)?
    } else {
        study::run(project, &opts, Arc::new(|l: &str| eprintln!("{l}")))?
    };
    if a.json {
        print_json(&report)?;
    } else {
        print_summary(&report, a.best);
    }
    Ok(if report.trials.iter().all(|t| t.state != "fail") {
        0
    } else {
        1
    })
}

fn print_summary(r: &StudyReport, best_only: bool) {
    if !best_only {
        let built = r
            .trials
            .iter()
            .filter(|t| t.origin.as_deref() == Some("built"))
            .count();
        println!(
            "study {} ({}): {} trials run now ({built} trained, {} from the lake), {}/{} finished in all",
            r.study,
            r.storage,
            r.trials.len(),
            r.trials.len() - built,
            r.finished,
            r.size
        );
    }
    match &r.best {
        None => println!("no complete trial yet"),
        Some(b) => {
            println!(
                "best: trial {} {} {:+.4} with {}",
                b.number,
                r.objective,
                b.value,
                serde_json::to_string(&b.params).unwrap_or_default()
            );
            if let (Some(t), Some(v)) = (&b.table, b.version) {
                println!("  its materialization: {t} version {v}");
            }
            println!(
                "  to use it: set these params in the rule of {}: its next build restores this model (no training), and a promotion policy puts it on trial",
                r.asset
            );
        }
    }
}
