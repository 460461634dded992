//! Orchestration commands: `run JOB`, `retry RUN`, `tick`, `watch`, `cron`, `jobs`.

use super::build::print_report;
use super::{Global, print_json};
use crate::core::error::UsageError;
use crate::engine::build;
use crate::engine::project::Project;
use crate::lake::runs;
use crate::orchestration::tick::TickReport;
use crate::orchestration::{jobs as job_files, retry as retries, tick as ticks};
use anyhow::Result;
use std::time::Duration;

pub(super) fn run_job(project: &Project, g: &Global, job: &str, json: bool) -> Result<i32> {
    let j = job_files::find(&project.rules_dir, &project.rules, job)?;
    let opts = job_files::run_options(
        &j,
        project.today()?,
        format!("job:{}", j.name),
        g.progress(),
    );
    let report = build(project, &opts)?;
    super::promotion::after_any_build(project, &report);
    print_report(&report, json)?;
    Ok(if report.ok() { 0 } else { 1 })
}

pub(super) fn retry(project: &Project, g: &Global, run_id: &str, json: bool) -> Result<i32> {
    let rows = runs::read_all(&project.lake)?;
    let Some(opts) = retries::retry_options(&rows, run_id, project.today()?, g.progress())? else {
        println!("run {run_id} had no failures: nothing to retry");
        return Ok(0);
    };
    println!("retrying {} from run {run_id}", opts.targets.join(", "));
    let report = build(project, &opts)?;
    super::promotion::after_any_build(project, &report);
    print_report(&report, json)?;
    Ok(if report.ok() { 0 } else { 1 })
}

pub(super) fn tick(project: &Project, g: &Global) -> Result<i32> {
    let r = ticks::tick(project, g.progress(), &super::promotion::after_build)?;
    print_tick(&r);
    Ok(if r.ok { 0 } else { 1 })
}

pub(super) fn watch(
    project: &Project,
    g: &Global,
    interval: &str,
    max_ticks: Option<usize>,
) -> Result<i32> {
    let every = crate::core::rule::parse_duration(interval).ok_or_else(|| {
        UsageError(format!(
            "--interval '{interval}' is not a duration, e.g. 30s"
        ))
    })?;
    if every < Duration::from_secs(1) {
        return Err(UsageError(format!(
            "--interval {interval} is too short: use 1s or more"
        ))
        .into());
    }
    let ok = ticks::watch(
        project,
        every,
        max_ticks,
        g.progress(),
        &super::promotion::after_build,
        &mut |r| match r {
            Ok(r) => print_tick(r),
            Err(e) => eprintln!("tick failed: {e:#}"),
        },
    );
    Ok(if ok { 0 } else { 1 })
}

fn print_tick(r: &TickReport) {
    if r.busy {
        println!("another tick is running: it handles what is due; nothing to do");
        return;
    }
    for r in &r.schedules {
        let at = r.scheduled_for.map(|t| t.to_rfc3339()).unwrap_or_default();
        match r.action.as_str() {
            "started" => println!(
                "{}: schedule starts now; runs from the next occurrence",
                r.job
            ),
            "skipped" => println!("{}: {at} skipped (catch_up = latest)", r.job),
            "dropped" => println!("{}: {}", r.job, r.error.as_deref().unwrap_or("")),
            _ => println!(
                "{}: {at} ran as {} ({})",
                r.job,
                r.run_id.as_deref().unwrap_or("-"),
                if r.ok == Some(true) {
                    "ok".to_string()
                } else {
                    format!("FAILED {}", r.error.as_deref().unwrap_or(""))
                }
            ),
        }
    }
    for s in &r.sensors {
        let f = &s.firing;
        println!(
            "{}: fired ({} → {}), ran {} as {}",
            f.sensor,
            f.previous.as_deref().unwrap_or("-"),
            f.cursor,
            f.job,
            s.run_id
        );
    }
    if r.schedules.is_empty() && r.sensors.is_empty() {
        println!("nothing due");
    }
}

pub(super) fn cron(project: &Project, every: u32) -> Result<i32> {
    let exe = std::env::current_exe()
        .map_err(|e| anyhow::anyhow!("cannot find the lakebuild binary: {e}"))?;
    let root = std::fs::canonicalize(&project.root).unwrap_or(project.root.clone());
    let lake = std::fs::canonicalize(&project.lake.root).unwrap_or(project.lake.root.clone());
    print!(
        "{}",
        crate::orchestration::schedule::install_text(&exe, &root, &lake, every.clamp(1, 59))
    );
    Ok(0)
}

pub(super) fn jobs(project: &Project, json: bool) -> Result<i32> {
    let jobs = job_files::load(&project.rules_dir, &project.rules)?;
    let listed = crate::orchestration::schedule::listing(&jobs, crate::clock::now_utc()?);
    if json {
        print_json(&listed)?;
        return Ok(0);
    }
    for (j, l) in jobs.iter().zip(&listed) {
        let sched = match &j.schedule {
            Some(s) => format!(
                "cron \"{}\" {} (catch_up {:?}), next {}",
                s.cron,
                s.timezone,
                s.catch_up,
                l.next.as_deref().unwrap_or("-")
            ),
            None => "no schedule".into(),
        };
        println!(
            "{}: {} [{:?} partitions] — {sched}",
            j.name,
            j.assets.join(", "),
            j.partitions
        );
    }
    if jobs.is_empty() {
        println!("no jobs: add rules/jobs/<name>.toml");
    }
    Ok(0)
}
