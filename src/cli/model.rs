//! `lakebuild model`: the versions of a model asset and their aliases.

use super::{ModelCommand, print_json};
use crate::core::error::UsageError;
use crate::engine::project::Project;
use crate::jp_equity::model_versions;
use crate::lake::lock;
use anyhow::Result;
use std::time::Duration;

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
            let old = {
                let _lock =
                    lock::acquire(&project.lake.root, "model alias", Duration::from_secs(600))?;
                model_versions::set_alias(project, &asset, &alias, version)
                    .map_err(|e| UsageError(format!("{e:#}")))?
            };
            match old {
                Some(o) if o != version => println!("{asset}@{alias}: version {o} → {version}"),
                _ => println!("{asset}@{alias} = version {version}"),
            }
            crate::mlflow::alias_moved(project, &asset, &alias, version);
            Ok(0)
        }
    }
}
