//! Running promotion policies (`[promotion]`, [`crate::jp_equity::promotion`]) after
//! every build and tick that brings new scores, and on `lakebuild model policy`: the
//! decision is carried out under the lake lock and logged, a promotion or rollback is
//! announced through the alert destinations and mirrored to MLflow's alias when MLflow
//! is configured. A policy that cannot be evaluated never fails the build: it is
//! reported and evaluated again next time. It lives at the composition root because it
//! joins the pipeline (the evidence) with orchestration (alerts) and MLflow; `tick` gets
//! it as its after-build hook.

use crate::engine::BuildReport;
use crate::engine::project::Project;
use crate::jp_equity::promotion::policy::{self, Action, Applied, Evaluation};
use anyhow::Result;

/// Evaluates `asset`'s policy and, unless `dry_run`, acts on it; returns the evaluation
/// and what was done (`None` for a dry run).
/// `wait`: how long to wait for the lake lock (after a build: briefly, and evaluate
/// again after the next build rather than hold up this one's report).
pub fn run(
    project: &Project,
    asset: &str,
    dry_run: bool,
    run_id: &str,
    wait: std::time::Duration,
) -> Result<(Evaluation, Option<Applied>)> {
    let ev = policy::evaluate(project, asset)?;
    if dry_run {
        return Ok((ev, None));
    }
    let applied = policy::apply(project, &ev, wait)?;
    if applied == Applied::Done {
        use crate::orchestration::alerts::{Kind, announce_event};
        let p = policy::policy_of(project, asset)?;
        match (&ev.action, ev.champion, ev.challenger) {
            (Action::Promote | Action::Rollback, Some(champion), Some(challenger)) => {
                let kind = if ev.action == Action::Promote {
                    Kind::ModelPromoted
                } else {
                    Kind::ModelRolledBack
                };
                announce_event(project, kind, asset, &ev.reason, run_id);
                crate::mlflow::alias_moved(project, asset, &p.alias, challenger);
                crate::mlflow::alias_moved(project, asset, &p.challenger, champion);
            }
            (Action::Challenger(v), _, _) => {
                crate::mlflow::alias_moved(project, asset, &p.challenger, *v)
            }
            _ => {}
        }
    }
    Ok((ev, Some(applied)))
}

/// The assets whose policy a build of `built` may change: the model asset, the scores
/// on either side, the labels, and whatever reads the champion's scores (its decay
/// check).
fn concerned(project: &Project, asset: &str, built: &[&str]) -> bool {
    let Some(p) = project.rules.get(asset).and_then(|r| r.promotion.as_ref()) else {
        return false;
    };
    built.iter().any(|b| {
        *b == asset
            || *b == p.champion_scores
            || *b == p.challenger_scores
            || *b == p.labels
            || project
                .rules
                .get(b)
                .is_some_and(|r| r.inputs.iter().any(|i| i.asset == p.champion_scores))
    })
}

/// After every build (`build`, `run`, `retry`, and as `tick`'s hook): alerts and MLflow
/// (`orchestration::after_build`), then the promotion policies.
pub(crate) fn after_any_build(project: &Project, report: &BuildReport) {
    crate::orchestration::after_build(project, report);
    after_build(project, report);
}

/// After a build: every policy whose assets the build changed is evaluated and acted on;
/// the decision is printed when it is not a plain wait. Never fails.
pub fn after_build(project: &Project, report: &BuildReport) {
    let built: Vec<&str> = report
        .steps
        .iter()
        .filter(|s| s.did_work())
        .map(|s| s.asset.as_str())
        .collect();
    if built.is_empty() {
        return;
    }
    let assets: Vec<String> = project
        .rules
        .rules
        .values()
        .filter(|r| r.promotion.is_some())
        .map(|r| r.asset.clone())
        .filter(|a| concerned(project, a, &built))
        .collect();
    for asset in assets {
        match run(
            project,
            &asset,
            false,
            &report.run_id,
            std::time::Duration::from_secs(5),
        ) {
            Ok((ev, Some(Applied::Done))) if ev.action != Action::Wait => {
                eprintln!("promotion {asset}: {} — {}", ev.action.name(), ev.reason);
            }
            Ok((ev, Some(Applied::Superseded))) => {
                eprintln!(
                    "promotion {asset}: another process changed the aliases meanwhile; {} not done",
                    ev.action.name()
                );
            }
            Ok(_) => {}
            Err(e) => eprintln!(
                "warning: promotion policy of {asset} not evaluated: {e:#}; it is evaluated again after the next build (lakebuild model policy --asset {asset})"
            ),
        }
    }
}

/// One line per promotion policy for `lakebuild status`: the aliases and the latest
/// decision with its reason (read from the lake; nothing is evaluated).
pub(crate) fn status_lines(project: &Project) -> Vec<String> {
    let lake = &project.lake.root;
    project
        .rules
        .rules
        .values()
        .filter_map(|r| r.promotion.as_ref().map(|p| (r.asset.as_str(), p)))
        .map(|(asset, p)| {
            let at = |alias: &str| match crate::lake::aliases::resolve(lake, asset, alias) {
                Ok(Some(v)) => format!("version {v}"),
                Ok(None) => "unset".to_string(),
                Err(e) => format!("unreadable ({e:#})"),
            };
            let last = match crate::lake::promotions::latest(lake, asset) {
                Ok(Some(d)) => format!(
                    "; last decision {} {} ({}, {} days): {}",
                    d.at, d.action, d.role, d.days, d.reason
                ),
                Ok(None) => "; no decision yet".to_string(),
                Err(e) => format!("; promotion log unreadable: {e:#}"),
            };
            format!(
                "promotion {asset}: {} = {}, {} = {}{last} (lakebuild model policy)",
                p.alias,
                at(&p.alias),
                p.challenger,
                at(&p.challenger)
            )
        })
        .collect()
}
