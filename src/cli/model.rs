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
