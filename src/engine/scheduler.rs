//! The scheduler: steps in dependency order, `-j N` at once, each on its own thread; early cutoff and failure propagation between steps.

use super::history_recovery;
use super::history_rows::row;
use super::options::{BuildOptions, BuildReport, STEP_STACK_BYTES, StepSummary, new_run_id};
use super::prepare::selection;
use super::step::run_step;
use crate::engine::progress::Progress;
use crate::engine::project::{Project, States};
use crate::lake::runs::RunRow;
use crate::lake::{lock, runs};
use anyhow::{Result, anyhow};
use std::collections::{BTreeSet, HashMap};

/// Runs a build (or, with `dry_run`, only plans it: use `dry_run` for the details).
pub fn build(project: &Project, opts: &BuildOptions) -> Result<BuildReport> {
    let run_id = new_run_id();
    let assets = selection(project, &opts.targets, opts.only)?;
    let _lock = lock::acquire(
        &project.lake.root,
        &format!("run {run_id}"),
        opts.lock_timeout,
    )?;
    if opts.dry_run {
        crate::lake::format::check(&project.lake.root)?;
    } else {
        crate::lake::format::ensure(&project.lake.root)?;
    }
    // Planned after the lock: whatever the previous holder built is now seen as done.
    let states = States::new(&project.lake);
    states.preload(&assets)?;
    if !opts.dry_run {
        history_recovery::recover(project, &states, &run_id)?;
        history_recovery::begin(&project.lake, &run_id, &opts.trigger)?;
    }
    let mut progress = Progress::new(opts.progress);
    let _live = (!opts.dry_run)
        .then(|| progress.publish(project.lake.root.clone(), &run_id, &opts.trigger));
    let deps: HashMap<&str, Vec<&str>> = assets
        .iter()
        .map(|a| {
            let r = &project.rules.rules[a];
            let d = r
                .inputs
                .iter()
                .map(|i| i.asset.as_str())
                .filter(|i| assets.iter().any(|x| x == i))
                .collect();
            (a.as_str(), d)
        })
        .collect();

    let mut done: HashMap<String, StepSummary> = HashMap::new();
    let mut all_rows: Vec<RunRow> = Vec::new();
    let mut started: BTreeSet<String> = BTreeSet::new();
    let mut stop = false;
    let jobs = opts.jobs.max(1);
    std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = std::sync::mpsc::channel::<(String, Result<(StepSummary, Vec<RunRow>)>)>();
        let mut running = 0usize;
        loop {
            if !stop {
                for a in &assets {
                    if running >= jobs {
                        break;
                    }
                    if started.contains(a) {
                        continue;
                    }
                    let d = &deps[a.as_str()];
                    if !d.iter().all(|x| done.contains_key(*x)) {
                        continue;
                    }
                    started.insert(a.clone());
                    if let Some(bad) = d.iter().find(|x| {
                        done.get(**x)
                            .is_some_and(|s| s.failed.is_some() || s.skipped)
                    }) {
                        let now = crate::clock::now_ms();
                        all_rows.push(row(&run_id, opts, a, "skipped", 1, now, now, None, None));
                        let s = StepSummary {
                            asset: a.clone(),
                            skipped: true,
                            failed: None,
                            ..Default::default()
                        };
                        progress.println(&format!("skipped {a}: its input {bad} did not build"));
                        done.insert(a.clone(), s);
                        continue;
                    }
                    running += 1;
                    let tx = tx.clone();
                    let a2 = a.clone();
                    let (states, progress, run_id) = (&states, &progress, &run_id);
                    // Polars plans and deltalake's log replay recurse deeply on large
                    // tables: give each step a roomy stack (virtual memory only).
                    let spawned = std::thread::Builder::new()
                        .name(format!("step-{a2}"))
                        .stack_size(STEP_STACK_BYTES)
                        .spawn_scoped(scope, move || {
                            let r = run_step(project, states, &a2, opts, run_id, progress);
                            let _ = tx.send((a2, r));
                        });
                    if let Err(e) = spawned {
                        return Err(anyhow!("cannot start a build thread: {e}"));
                    }
                }
            }
            if running == 0 {
                // Nothing running and nothing launchable: mark whatever is left, with a
                // history row so that `lakebuild retry` builds it too.
                for a in &assets {
                    if !done.contains_key(a) {
                        let now = crate::clock::now_ms();
                        all_rows.push(row(
                            &run_id,
                            opts,
                            a,
                            "skipped",
                            1,
                            now,
                            now,
                            None,
                            Some("not started: the build stopped at an earlier failure".into()),
                        ));
                        done.insert(
                            a.clone(),
                            StepSummary {
                                asset: a.clone(),
                                skipped: true,
                                ..Default::default()
                            },
                        );
                    }
                }
                break;
            }
            let (asset, result) = rx.recv().map_err(|_| anyhow!("a build worker vanished"))?;
            running -= 1;
            let summary = match result {
                Ok((summary, rows)) => {
                    // A step that committed is in the history as soon as it ends, so a
                    // run killed later keeps it; rows of steps with nothing to do wait
                    // for the end (a build that did nothing writes no history).
                    if summary.did_work() {
                        runs::append(&project.lake, &rows)?;
                    } else {
                        all_rows.extend(rows);
                    }
                    summary
                }
                Err(e) => {
                    // Errors before any attempt (sources, state): a failed step too.
                    let now = crate::clock::now_ms();
                    let msg = format!("{e:#}");
                    all_rows.push(row(
                        &run_id,
                        opts,
                        &asset,
                        "failed",
                        1,
                        now,
                        now,
                        None,
                        Some(msg.clone()),
                    ));
                    StepSummary {
                        asset: asset.clone(),
                        failed: Some(msg),
                        attempts: 1,
                        ..Default::default()
                    }
                }
            };
            if let Some(msg) = &summary.failed {
                progress.println(&format!("FAILED {asset}: {msg}"));
                if !opts.keep_going {
                    stop = true;
                }
            }
            done.insert(asset, summary);
        }
        Ok(())
    })?;

    let steps: Vec<StepSummary> = assets.iter().filter_map(|a| done.remove(a)).collect();
    let report = BuildReport {
        run_id: run_id.clone(),
        steps,
    };
    // A build that did nothing writes nothing, not even history: cron can call it freely.
    let did_something = report.steps.iter().any(StepSummary::did_work);
    if did_something && !all_rows.is_empty() {
        runs::append(&project.lake, &all_rows)?;
    }
    if !opts.dry_run {
        history_recovery::end(&project.lake, &run_id);
    }
    let scratch = project.lake.scratch(&run_id);
    if scratch.exists() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    Ok(report)
}
