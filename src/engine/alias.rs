//! Moving a version alias: `lakebuild model alias`, and an alias a person moved in
//! MLflow's registry when lakebuild imports it. One function, so both get the same checks
//! (a valid name; a version of the asset that holds output; every file it reads present
//! and readable; the op's own check of a whole-table output, e.g. that a model decodes),
//! the same lock and the same audit record (`lakebuild model history`). Inputs
//! `asset@alias` then re-key on the next build, as for any alias.

use super::project::Project;
use crate::core::partition::PartitionId;
use crate::lake::{aliases, lock, parquet};
use anyhow::{Result, bail};
use std::time::Duration;

/// Who moves an alias, as the audit record names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MovedBy {
    /// `lakebuild model alias`.
    Cli,
    /// Imported from MLflow's model registry.
    Mlflow,
}

impl MovedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            MovedBy::Cli => "cli",
            MovedBy::Mlflow => "mlflow",
        }
    }
}

/// Checks that `alias` may name `version` of `asset` (module doc), without moving it.
pub fn check(project: &Project, asset: &str, alias: &str, version: i64) -> Result<()> {
    if !aliases::valid_name(alias) {
        bail!("alias '{alias}': use lowercase letters, digits, _ and -, e.g. production");
    }
    let Some(rule) = project.rules.get(asset) else {
        bail!("unknown asset '{asset}': name an asset of rules/, such as trained_model");
    };
    let table = project.lake.table(asset);
    let state = crate::lake::log::load(&table)?;
    let holds_output = state
        .commits
        .get(&version)
        .is_some_and(|c| !c.partitions.is_empty());
    if !holds_output {
        let known: Vec<String> = state
            .commits
            .iter()
            .filter(|(_, c)| !c.partitions.is_empty())
            .map(|(v, _)| v.to_string())
            .collect();
        bail!(
            "{asset} has no output at version {version}; its versions are: {} (see lakebuild model list)",
            if known.is_empty() {
                "none yet".to_string()
            } else {
                known.join(", ")
            }
        );
    }
    let view = crate::core::plan::InputView::at(asset, &state, version);
    let files: Vec<_> = view.files.iter().map(|f| table.join(f)).collect();
    let unreadable = |why: String| -> anyhow::Error {
        anyhow::anyhow!(
            "{asset} version {version} cannot be read ({why}): choose another version (lakebuild model list)"
        )
    };
    if let Some(gone) = files.iter().find(|f| !f.exists()) {
        return Err(unreadable(format!(
            "{} is gone; was it garbage-collected?",
            gone.display()
        )));
    }
    if view.ids == [PartitionId::Whole] {
        let frame = parquet::scan_files(&files)
            .and_then(|lf| Ok(lf.collect()?))
            .map_err(|e| unreadable(format!("{e:#}")))?;
        if let Some(op) = project.registry.find(&rule.op) {
            op.check_output(&frame)
                .map_err(|e| unreadable(format!("{e:#}")))?;
        }
    } else {
        parquet::scan_files(&files)
            .and_then(|mut lf| Ok(lf.collect_schema()?))
            .map_err(|e| unreadable(format!("{e:#}")))?;
    }
    Ok(())
}

/// Points `alias` of `asset` at `version` after [`check`], under the lake lock, and
/// appends the move to the audit record; returns the version it named before.
pub fn move_alias(
    project: &Project,
    asset: &str,
    alias: &str,
    version: i64,
    by: MovedBy,
) -> Result<Option<i64>> {
    let _lock = lock::acquire(
        &project.lake.root,
        &format!("alias {asset}@{alias}"),
        Duration::from_secs(600),
    )?;
    check(project, asset, alias, version)?;
    if aliases::resolve(&project.lake.root, asset, alias)? == Some(version) {
        return Ok(Some(version));
    }
    aliases::set_recorded(&project.lake.root, asset, alias, version, by.as_str())
}
