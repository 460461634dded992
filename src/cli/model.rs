//! `lakebuild model`: the versions of a model asset and their aliases.

use super::{ModelCommand, print_json};
use crate::engine::alias::{self, MovedBy};
use crate::engine::project::Project;
use crate::jp_equity::{model_compare, model_versions};
use crate::lake::aliases;
use anyhow::Result;

pub(super) fn run(project: &Project, command: ModelCommand) -> Result<i32> {
    match command {
        ModelCommand::List { asset, json } => {
            let v = model_versions::list(project, &asset)?;
            if json {
                print_json(&v)?
            } else {
                print!("{}", model_versions::render(&asset, &v))
            }
            Ok(0)
        }
        ModelCommand::Alias {
            alias,
            version,
            asset,
        } => {
            let old = alias::move_alias(project, &asset, &alias, version, MovedBy::Cli)?;
            match old {
                Some(o) if o != version => println!("{asset}@{alias}: version {o} → {version}"),
                _ => println!("{asset}@{alias} = version {version}"),
            }
            crate::mlflow::alias_moved(project, &asset, &alias, version);
            Ok(0)
        }
        ModelCommand::Compare {
            a,
            b,
            from,
            to,
            horizon,
            labels,
            min_days,
            json,
        } => {
            let opts = model_compare::CompareOptions {
                from,
                to,
                horizon,
                labels,
                min_days,
            };
            let c = model_compare::compare(project, &a, &b, &opts)?;
            if json {
                print_json(&c)?
            } else {
                print!("{}", model_compare::render(&c))
            }
            Ok(0)
        }
        ModelCommand::Policy {
            asset,
            dry_run,
            log,
            json,
        } => policy(project, &asset, dry_run, log, json),
        ModelCommand::History { asset, json } => {
            let moves: Vec<aliases::AliasMove> = aliases::history(&project.lake.root)?
                .into_iter()
                .filter(|m| asset.as_ref().is_none_or(|a| *a == m.asset))
                .collect();
            if json {
                print_json(&moves)?
            } else if moves.is_empty() {
                println!("no alias was moved yet (lakebuild model alias NAME VERSION)");
            } else {
                println!(
                    "{:<20}  {:<24}  {:>7}  {:>7}  by",
                    "when", "alias", "from", "to"
                );
                for m in &moves {
                    println!(
                        "{:<20}  {:<24}  {:>7}  {:>7}  {}",
                        m.at,
                        format!("{}@{}", m.asset, m.alias),
                        m.from.map_or("-".to_string(), |v| v.to_string()),
                        m.to,
                        m.by
                    );
                }
            }
            Ok(0)
        }
    }
}

fn policy(project: &Project, asset: &str, dry_run: bool, log: bool, json: bool) -> Result<i32> {
    use crate::jp_equity::promotion::policy::Applied;
    if log {
        crate::jp_equity::promotion::policy::policy_of(project, asset)?;
        let entries = crate::lake::promotions::of(&project.lake.root, asset)?;
        if json {
            print_json(&entries)?;
        } else if entries.is_empty() {
            println!("{asset}: the promotion policy has decided nothing yet");
        } else {
            for d in &entries {
                let v = |x: Option<i64>| x.map_or("-".to_string(), |v| v.to_string());
                println!(
                    "{}  {:<10}  champion {} challenger {} → champion {} challenger {} ({}), {} days: {}",
                    d.at,
                    d.action,
                    v(d.champion),
                    v(d.challenger),
                    v(d.then_champion),
                    v(d.then_challenger),
                    d.role,
                    d.days,
                    d.reason
                );
            }
        }
        return Ok(0);
    }
    let run_id = format!("policy-{}", crate::clock::now().format("%Y%m%dT%H%M%SZ"));
    let (ev, applied) = super::promotion::run(
        project,
        asset,
        dry_run,
        &run_id,
        std::time::Duration::from_secs(600),
    )?;
    if json {
        print_json(&serde_json::json!({
            "evaluation": ev,
            "applied": applied.as_ref().map(|a| format!("{a:?}").to_lowercase()),
            "dry_run": dry_run,
        }))?;
        return Ok(0);
    }
    let v = |x: Option<i64>| x.map_or("unset".to_string(), |v| format!("version {v}"));
    println!(
        "{asset}@{} = {}; {asset}@{} = {} ({})",
        ev.alias,
        v(ev.champion),
        ev.challenger_alias,
        v(ev.challenger),
        ev.role
    );
    if let Some(t) = &ev.test {
        println!(
            "evidence: {} days{} — mean difference {:+.4}, HAC SE {:.4} ({} lags), t {:.2}, likelihood ratio {:.3}, always-valid p {:.4}",
            t.days,
            match (ev.first_day, ev.last_day) {
                (Some(a), Some(b)) => format!(" ({a} .. {b})"),
                _ => String::new(),
            },
            t.mean,
            t.hac_se,
            t.lags,
            t.t,
            t.likelihood_ratio,
            t.p_value
        );
    }
    if let Some(d) = &ev.decay {
        println!("decay: {d}");
    }
    let verb = match (&applied, dry_run) {
        (_, true) => "would",
        (Some(Applied::Superseded), _) => {
            "not done (another process changed the aliases meanwhile):"
        }
        _ => "decision:",
    };
    println!("{verb} {} — {}", ev.action.name(), ev.reason);
    Ok(0)
}
