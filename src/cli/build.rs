//! `lakebuild [build]`: build options from the flags, the dry run's printout and the
//! build report.

use super::{BuildArgs, Global, print_json};
use crate::core::error::UsageError;
use crate::engine::project::Project;
use crate::engine::{BuildOptions, BuildReport, build, dry_run};
use anyhow::Result;
use chrono::NaiveDate;

pub(super) fn build_options(a: &BuildArgs, g: &Global, today: NaiveDate) -> Result<BuildOptions> {
    let lock_timeout = crate::core::rule::parse_duration(&a.lock_timeout).ok_or_else(|| {
        UsageError(format!(
            "--lock-timeout '{}' is not a duration: write e.g. 30s or 10m",
            a.lock_timeout
        ))
    })?;
    Ok(BuildOptions {
        targets: a.targets.clone(),
        only: a.only,
        force: a.force,
        dry_run: a.dry_run,
        jobs: a.jobs.max(1),
        from: a.from,
        to: a.to,
        keep_going: a.keep_going,
        trigger: a.trigger.clone(),
        lock_timeout,
        today,
        progress: g.progress(),
        batch_size: a
            .batch_size
            .unwrap_or(BuildOptions::default().batch_size)
            .max(1),
        ..Default::default()
    })
}

/// The options of a command that builds with the defaults (status, why, graph plan with
/// them).
pub(super) fn default_options(project: &Project, g: &Global) -> Result<BuildOptions> {
    build_options(
        &BuildArgs {
            lock_timeout: "10m".into(),
            ..Default::default()
        },
        g,
        project.today()?,
    )
}

pub(super) fn run_build(project: &Project, a: &BuildArgs, g: &Global) -> Result<i32> {
    let opts = build_options(a, g, project.today()?)?;
    if a.dry_run {
        let plans = dry_run(project, &opts)?;
        if a.json {
            print_json(&plans)?;
            return Ok(0);
        }
        let mut any = false;
        for p in &plans {
            if p.is_fresh() {
                continue;
            }
            any = true;
            println!("{}:", p.asset);
            for r in &p.source_reasons {
                println!("  import runs again: {r}");
            }
            if !p.to_restore.is_empty() {
                println!(
                    "  restore {} partition(s) from older versions (no op runs)",
                    p.to_restore.len()
                );
            }
            for id in &p.to_remove {
                println!("  remove {id} (no longer in the domain)");
            }
            for (id, reasons) in p.to_build.iter().take(20) {
                let r: Vec<String> = reasons.iter().map(|r| r.to_string()).collect();
                println!("  build {id}: {}", r.join("; "));
            }
            if p.to_build.len() > 20 {
                println!("  … and {} more partition(s)", p.to_build.len() - 20);
            }
        }
        if !any {
            println!("nothing to do: every asset is fresh");
        }
        return Ok(0);
    }
    let report = build(project, &opts)?;
    super::promotion::after_any_build(project, &report);
    print_report(&report, a.json)?;
    Ok(if report.ok() { 0 } else { 1 })
}

pub(super) fn print_report(report: &BuildReport, json: bool) -> Result<()> {
    if json {
        print_json(report)?;
    } else {
        for s in &report.steps {
            if s.skipped {
                println!("{:<28} skipped (an input failed)", s.asset);
            } else if let Some(e) = &s.failed {
                println!("{:<28} FAILED: {e}", s.asset);
            } else if s.built + s.cut_off + s.restored + s.removed > 0 {
                println!(
                    "{:<28} built {}, cut off {}, restored {}, removed {}, fresh {} ({} ms)",
                    s.asset, s.built, s.cut_off, s.restored, s.removed, s.fresh, s.duration_ms
                );
            }
        }
        if report.ops_run() == 0
            && report.ok()
            && report.steps.iter().all(|s| s.restored + s.removed == 0)
        {
            println!("nothing to do: every asset is fresh");
        }
    }
    Ok(())
}
