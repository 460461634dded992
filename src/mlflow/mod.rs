//! MLflow tracking and registry (OPERATIONS.md "MLflow"): every materialization of a
//! tracked asset (a model-producing op, or a rule with `[mlflow]`) becomes an MLflow run
//! and a version of a registered model, and lakebuild's aliases become the registered
//! model's aliases; an op that scores a model (an evaluation, live monitoring) adds its
//! metrics to that model's run. On only when `MLFLOW_TRACKING_URI` is set ([`config`]); without it
//! nothing here reads or writes anything.
//!
//! Nothing is sent from inside a build: after it, the new materializations are queued in
//! the lake's outbox and delivered in order ([`crate::lake::outbox`]); a server that is
//! down or refuses the credentials leaves them queued for the next build, `lakebuild
//! tick` or `lakebuild mlflow sync`, and never fails the build. A build that made nothing
//! new, with nothing queued, makes no call at all.

pub mod alias_sync;
pub mod client;
pub mod config;
pub mod deliver;
pub mod record;

use crate::engine::options::BuildReport;
use crate::engine::project::Project;
use crate::lake::outbox::{Outbox, Round};
use anyhow::Result;
use record::Record;

/// The outbox's name (`_lakebuild/mlflow.json`).
const OUTBOX: &str = "mlflow";

fn outbox(project: &Project) -> Outbox<'_> {
    Outbox::new(&project.lake.root, OUTBOX)
}

/// The tracking server, when tracking is on; a misconfiguration is reported once here
/// and tracking stays off.
fn client() -> Option<client::Client> {
    match config::Config::from_env() {
        Ok(c) => c.map(client::Client::new),
        Err(e) => {
            eprintln!("warning: MLflow tracking is off: {e}");
            None
        }
    }
}

/// Queues what `report`'s build materialized in tracked assets and delivers the queue.
/// Never fails: a problem is a warning (the build's result stands).
pub fn after_build(project: &Project, report: &BuildReport) {
    let Some(client) = client() else { return };
    let new: Vec<Record> = report
        .steps
        .iter()
        .filter(|s| s.built > 0 && record::tracked(project, &s.asset))
        .flat_map(|s| {
            record::runs(project, &s.asset, Some(&report.run_id)).unwrap_or_else(|e| {
                eprintln!("warning: MLflow: cannot read {}'s log: {e:#}", s.asset);
                Vec::new()
            })
        })
        .collect();
    if new.is_empty() && !outbox(project).has_pending() {
        return;
    }
    if let Err(e) = outbox(project).push(new) {
        eprintln!("warning: MLflow: cannot queue the build's runs in the lake: {e:#}");
        return;
    }
    let started = std::time::Instant::now();
    report_round(deliver_with(project, &client), started);
}

/// Delivers what is queued (`lakebuild tick`); nothing when tracking is off or nothing
/// waits.
pub fn after_tick(project: &Project) {
    let Some(client) = client() else { return };
    if outbox(project).has_pending() {
        let started = std::time::Instant::now();
        report_round(deliver_with(project, &client), started);
    }
}

/// Imports the aliases moved in MLflow and pushes back the lake's where both moved
/// (`alias_sync`), for every tracked asset; returns the aliases imported. Called by
/// `lakebuild tick` before its jobs, so that they build on the imported aliases.
pub fn before_tick(project: &Project) -> Vec<String> {
    let Some(client) = client() else {
        return Vec::new();
    };
    match import_aliases(project, &client) {
        Ok(names) => names,
        Err(e) => {
            eprintln!("warning: MLflow: aliases not compared: {e:#}");
            Vec::new()
        }
    }
}

fn import_aliases(project: &Project, client: &client::Client) -> Result<Vec<String>> {
    let mut imported = Vec::new();
    let mut pushed = Vec::new();
    for asset in project
        .rules
        .order
        .iter()
        .filter(|a| record::registers_models(project, a))
    {
        let (_, model) = deliver::homes(project, asset);
        match alias_sync::compare(project, client, asset, &model) {
            Ok(r) => {
                imported.extend(r.imported.into_iter().map(|a| format!("{asset}@{a}")));
                pushed.extend(r.pushed);
            }
            Err(e) => anyhow::bail!("{e}"),
        }
    }
    if !pushed.is_empty() {
        outbox(project).push(pushed)?;
        let started = std::time::Instant::now();
        report_round(deliver_with(project, client), started);
    }
    Ok(imported)
}

/// Queues a finished tuning trial (`lakebuild tune`) and delivers the queue; nothing when
/// tracking is off. Never fails: a server that is down leaves it queued.
pub fn trial_finished(project: &Project, trial: record::TrialRecord) {
    let Some(client) = client() else { return };
    if let Err(e) = outbox(project).push(vec![Record::Trial(Box::new(trial))]) {
        eprintln!("warning: MLflow: cannot queue the trial in the lake: {e:#}");
        return;
    }
    let started = std::time::Instant::now();
    report_round(deliver_with(project, &client), started);
}

/// Queues an alias set by `lakebuild model alias` and delivers it.
pub fn alias_moved(project: &Project, asset: &str, alias: &str, version: i64) {
    let Some(client) = client() else { return };
    if !record::registers_models(project, asset) {
        return;
    }
    let rec = Record::Alias {
        asset: asset.to_string(),
        alias: alias.to_string(),
        version,
    };
    if let Err(e) = outbox(project).push(vec![rec]) {
        eprintln!("warning: MLflow: cannot queue the alias in the lake: {e:#}");
        return;
    }
    let started = std::time::Instant::now();
    report_round(deliver_with(project, &client), started);
}

/// `lakebuild mlflow sync`: queues every materialization of every tracked asset
/// (delivery is idempotent: what MLflow has already is found, not made again), delivers
/// them, then compares the aliases both ways ([`alias_sync`]). Errors when tracking is
/// off.
pub fn sync(project: &Project) -> Result<Round> {
    let Some(client) = client() else {
        anyhow::bail!(
            "MLflow tracking is off: set MLFLOW_TRACKING_URI to the tracking server, e.g. http://127.0.0.1:5000"
        );
    };
    let mut all = Vec::new();
    let assets: Vec<&str> = project
        .rules
        .order
        .iter()
        .map(String::as_str)
        .filter(|a| record::tracked(project, a))
        .collect();
    for a in &assets {
        all.extend(record::runs(project, a, None)?);
    }
    outbox(project).push(all)?;
    let round = deliver_with(project, &client)?;
    if round.error.is_none() {
        import_aliases(project, &client)?;
    }
    Ok(round)
}

fn deliver_with(project: &Project, client: &client::Client) -> Result<Round> {
    let now = crate::clock::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut model_runs = deliver::ModelRuns::default();
    outbox(project).deliver(&now, |r: &Record| {
        deliver::deliver(project, client, &mut model_runs, r)
    })
}

fn report_round(round: Result<Round>, started: std::time::Instant) {
    match round {
        Ok(r) => {
            if r.delivered > 0 {
                eprintln!(
                    "MLflow: {} record(s) delivered in {:.2} s",
                    r.delivered,
                    started.elapsed().as_secs_f64()
                );
            }
            if r.rejected > 0 {
                eprintln!(
                    "warning: MLflow refused {} record(s), set aside: see `lakebuild mlflow status`",
                    r.rejected
                );
            }
            if let Some(e) = r.error {
                eprintln!(
                    "warning: MLflow: {} record(s) kept in the lake: {e}",
                    r.left
                );
            }
        }
        Err(e) => eprintln!("warning: MLflow: {e:#}"),
    }
}

/// One line for `lakebuild status`: what waits and why (`None` when nothing does).
pub fn status_line(project: &Project) -> Option<String> {
    let q = outbox(project).queue::<Record>().ok()?;
    if q.pending.is_empty() && q.rejected.is_empty() {
        return None;
    }
    let mut s = format!("mlflow: {} record(s) pending", q.pending.len());
    if let Some(at) = &q.last_attempt {
        s.push_str(&format!(", last attempt {at}"));
    }
    if let Some(e) = &q.last_error {
        s.push_str(&format!(": {e}"));
    }
    if !q.rejected.is_empty() {
        s.push_str(&format!(
            "; {} refused (set aside): {}",
            q.rejected.len(),
            q.rejected.last().map(|(_, why)| why.as_str()).unwrap_or("")
        ));
    }
    Some(s)
}
