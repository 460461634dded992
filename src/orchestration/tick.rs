//! One tick (`lakebuild tick`, and each turn of `lakebuild watch`): under the tick lock,
//! every schedule that fell due and every sensor that fires runs its job, each build is
//! alerted on, and the caller is told what ran. `watch` ticks in a loop, reading the rules
//! again each time.

use super::{alerts, jobs, schedule, sensors};
use crate::engine::build;
use crate::engine::project::Project;
use crate::lake::lock;
use anyhow::Result;
use chrono::NaiveDate;
use std::time::Duration;

/// A sensor that fired and the run it started.
#[derive(Debug, Clone)]
pub struct SensorRun {
    pub firing: sensors::Firing,
    pub run_id: String,
}

/// What one tick did.
#[derive(Debug, Default)]
pub struct TickReport {
    /// Another tick held the tick lock: it handles what is due, this one did nothing.
    pub busy: bool,
    /// The schedules' lines of this tick (`ticks.jsonl`).
    pub schedules: Vec<schedule::TickRecord>,
    pub sensors: Vec<SensorRun>,
    /// Whether every run succeeded.
    pub ok: bool,
}

/// What runs after each of a tick's builds besides alerts and MLflow (the CLI's
/// promotion policies).
pub type AfterBuild<'a> = &'a dyn Fn(&Project, &crate::engine::BuildReport);

/// Runs one tick. `progress`: progress bars for the builds; `after_build`: run after
/// each build, after alerts and MLflow.
pub fn tick(project: &Project, progress: bool, after_build: AfterBuild) -> Result<TickReport> {
    let now = crate::clock::now_utc()?;
    let Some(_tick) = lock::try_acquire_named(&project.lake.root, "tick.lock", "tick")? else {
        return Ok(TickReport {
            busy: true,
            ok: true,
            ..Default::default()
        });
    };
    let jobs = jobs::load(&project.rules_dir, &project.rules)?;
    // Aliases moved in MLflow's registry first, so that this tick's jobs build on them.
    crate::mlflow::before_tick(project);
    let mut ok = true;
    let schedules = schedule::tick(&project.lake.root, &jobs, now, &mut |job, at| {
        let date = schedule::run_date(job, at);
        let opts = jobs::run_options(
            job,
            date,
            format!("schedule:{}@{}", job.name, at.to_rfc3339()),
            progress,
        );
        let report = match build(project, &opts) {
            Ok(r) => r,
            Err(e) => {
                // No build ran (e.g. the lake stayed locked): a failure to announce.
                ok = false;
                alerts::could_not_run(project, &job.name, &format!("{e:#}"));
                return Err(e);
            }
        };
        crate::orchestration::after_build(project, &report);
        after_build(project, &report);
        alerts::could_run(project, &job.name);
        ok &= report.ok();
        Ok((report.run_id.clone(), report.ok()))
    })?;
    let sensor_defs = sensors::load(&project.rules_dir, project, &jobs)?;
    let today = project.today()?;
    let mut sensor_runs = Vec::new();
    for f in sensors::evaluate(project, &sensor_defs, today)? {
        let Some(job) = jobs.iter().find(|j| j.name == f.job) else {
            continue;
        };
        let mut opts = jobs::run_options(job, today, format!("sensor:{}", f.sensor), progress);
        if f.kind == sensors::SensorKind::NewSourceData && opts.from.is_some() {
            // A job of the latest partitions builds every new day the sensor saw, not only
            // today's (ticks may have been missed).
            let day = |c: &str| NaiveDate::parse_from_str(c, "%Y-%m-%d").ok();
            let first = f
                .previous
                .as_deref()
                .and_then(day)
                .and_then(|d| d.succ_opt());
            opts.from = first.or(opts.from);
            opts.to = day(&f.cursor).max(opts.to);
        }
        let report = build(project, &opts)?;
        crate::orchestration::after_build(project, &report);
        after_build(project, &report);
        ok &= report.ok();
        if report.ok() {
            sensors::commit(project, &f)?;
        }
        sensor_runs.push(SensorRun {
            firing: f,
            run_id: report.run_id,
        });
    }
    alerts::after_tick(project);
    crate::mlflow::after_tick(project);
    Ok(TickReport {
        busy: false,
        schedules,
        sensors: sensor_runs,
        ok,
    })
}

/// Ticks every `every` (`max_ticks` times, or forever), reading the rules again before
/// each tick so an edit takes effect without a restart; rules that do not load are
/// reported and the last good ones used. Each tick's result goes to `on_tick`; a failed
/// tick (a job file being edited, a sensor's error) is reported and the watch goes on.
/// Returns whether every tick succeeded.
pub fn watch(
    project: &Project,
    every: Duration,
    max_ticks: Option<usize>,
    progress: bool,
    after_build: AfterBuild,
    on_tick: &mut dyn FnMut(Result<&TickReport, &anyhow::Error>),
) -> bool {
    let mut n = 0usize;
    let mut ok = true;
    let mut current = None;
    loop {
        match Project::load(
            project.registry.clone(),
            &project.root,
            &project.rules_dir,
            &project.lake.root,
        ) {
            Ok(mut p) => {
                p.timezone = project.timezone;
                current = Some(p)
            }
            Err(e) => eprintln!("rules did not load, using the last good ones: {e:#}"),
        }
        let active = current.as_ref().unwrap_or(project);
        match tick(active, progress, after_build) {
            Ok(r) => {
                ok &= r.ok;
                on_tick(Ok(&r));
            }
            Err(e) => {
                ok = false;
                on_tick(Err(&e));
            }
        }
        n += 1;
        if max_ticks.is_some_and(|m| n >= m) {
            break;
        }
        std::thread::sleep(every);
    }
    ok
}
