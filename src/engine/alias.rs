//! Moving a version alias: `lakebuild model alias`, and an alias a person moved in
//! MLflow's registry when lakebuild imports it. One function, so both get the same checks
//! (a valid name; a version of the asset that holds output; every file it reads present
//! and readable; the op's own check of a whole-table output, e.g. that a model decodes),
//! the same lock and the same audit record (`lakebuild model history`). Inputs
//! `asset@alias` then re-key on the next build, as for any alias.

use super::project::Project;
use crate::core::error::UsageError;
use crate::core::partition::PartitionId;
use crate::lake::{aliases, lock, parquet};
use anyhow::Result;
use std::time::Duration;

/// Who moves an alias, as the audit record names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MovedBy {
    /// `lakebuild model alias`.
    Cli,
    /// Imported from MLflow's model registry.
    Mlflow,
    /// A promotion policy (`[promotion]`): its first version, a promotion, a rollback, a
    /// new challenger.
    Policy,
}

impl MovedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            MovedBy::Cli => "cli",
            MovedBy::Mlflow => "mlflow",
            MovedBy::Policy => "policy",
        }
    }
}

/// Checks that `alias` may name `version` of `asset` (module doc), without moving it; a
/// refusal is a [`UsageError`] (exit 2), a lake that cannot be read is not.
pub fn check(project: &Project, asset: &str, alias: &str, version: i64) -> Result<()> {
    refusal(project, asset, alias, version)?.map_or(Ok(()), |why| Err(UsageError(why).into()))
}

/// Why `alias` may not name `version` of `asset`, if it may not.
fn refusal(project: &Project, asset: &str, alias: &str, version: i64) -> Result<Option<String>> {
    if !aliases::valid_name(alias) {
        return Ok(Some(format!(
            "alias '{alias}': use lowercase letters, digits, _ and -, e.g. production"
        )));
    }
    let Some(rule) = project.rules.get(asset) else {
        return Ok(Some(format!(
            "unknown asset '{asset}': name an asset of rules/, such as trained_model"
        )));
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
        return Ok(Some(format!(
            "{asset} has no output at version {version}; its versions are: {} (see lakebuild model list)",
            if known.is_empty() {
                "none yet".to_string()
            } else {
                known.join(", ")
            }
        )));
    }
    let view = crate::core::plan::InputView::at(asset, &state, version);
    let files: Vec<_> = view.files.iter().map(|f| table.join(f)).collect();
    let unreadable = |why: String| {
        Some(format!(
            "{asset} version {version} cannot be read ({why}): choose another version (lakebuild model list)"
        ))
    };
    if let Some(gone) = files.iter().find(|f| !f.exists()) {
        return Ok(unreadable(format!(
            "{} is gone; was it garbage-collected?",
            gone.display()
        )));
    }
    let read = if view.ids == [PartitionId::Whole] {
        parquet::scan_files(&files)
            .and_then(|lf| Ok(lf.collect()?))
            .and_then(|frame| match project.registry.find(&rule.op) {
                Some(op) => op.check_output(&frame),
                None => Ok(()),
            })
    } else {
        // Every file's footer, not only the first's.
        files.iter().try_for_each(|f| {
            parquet::scan_files(std::slice::from_ref(f))
                .and_then(|mut lf| Ok(lf.collect_schema().map(|_| ())?))
        })
    };
    Ok(read.err().and_then(|e| unreadable(format!("{e:#}"))))
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
    let _lock = lock(project, asset, alias, LOCK_WAIT)?;
    check(project, asset, alias, version)?;
    let current = aliases::resolve(&project.lake.root, asset, alias)?;
    if current == Some(version) {
        return Ok(current);
    }
    aliases::set_recorded(&project.lake.root, asset, alias, version, by.as_str())
}

/// [`move_alias`] only if `alias` still names `expected` once the lock is held: a caller
/// that decided from an earlier read (the MLflow import: "the lake's side has not moved")
/// never overwrites a move made meanwhile. Returns whether it moved.
pub fn move_alias_from(
    project: &Project,
    asset: &str,
    alias: &str,
    expected: Option<i64>,
    version: i64,
    by: MovedBy,
) -> Result<bool> {
    move_together(
        project,
        asset,
        &[(alias, expected)],
        &[(alias, version)],
        by,
        LOCK_WAIT,
        || Ok(true),
        || Ok(()),
    )
}

/// Several moves decided together from one read (a promotion moves `production` and
/// `challenger`), under one hold of the lake lock (waiting at most `wait`): done only if
/// every alias of `expected` still names what the decision read and `unchanged` (e.g. "no
/// other decision was logged meanwhile") holds, each move checked and audited, then
/// `record` (the decision's log entry) under the same lock. Two processes deciding at
/// once therefore act once. Returns whether it acted.
#[allow(clippy::too_many_arguments)]
pub fn move_together(
    project: &Project,
    asset: &str,
    expected: &[(&str, Option<i64>)],
    moves: &[(&str, i64)],
    by: MovedBy,
    wait: Duration,
    unchanged: impl FnOnce() -> Result<bool>,
    record: impl FnOnce() -> Result<()>,
) -> Result<bool> {
    let names: Vec<&str> = expected.iter().map(|m| m.0).collect();
    let _lock = lock(project, asset, &names.join("+"), wait)?;
    for (alias, version) in expected {
        if aliases::resolve(&project.lake.root, asset, alias)? != *version {
            return Ok(false);
        }
    }
    if !unchanged()? {
        return Ok(false);
    }
    for (alias, version) in moves {
        check(project, asset, alias, *version)?;
    }
    for (alias, version) in moves {
        if aliases::resolve(&project.lake.root, asset, alias)? != Some(*version) {
            aliases::set_recorded(&project.lake.root, asset, alias, *version, by.as_str())?;
        }
    }
    record()?;
    Ok(true)
}

/// How long a move by hand or an import waits for the lake lock.
const LOCK_WAIT: Duration = Duration::from_secs(600);

fn lock(project: &Project, asset: &str, alias: &str, wait: Duration) -> Result<lock::LakeLock> {
    lock::acquire(&project.lake.root, &format!("alias {asset}@{alias}"), wait)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::error::UsageError;
    use crate::engine::{BuildOptions, build};
    use std::sync::Arc;

    /// A project whose asset `t` is a one-row table holding `value`.
    fn project(dir: &std::path::Path, value: u32) -> Result<Project> {
        std::fs::create_dir_all(dir.join("rules"))?;
        std::fs::write(
            dir.join("rules").join("t.toml"),
            format!(
                "op = \"command\"\n[params]\nrun = [\"sh\", \"-c\", \"printf 'x\\\\n{value}\\\\n' > \\\"$LAKEBUILD_OUTPUT_DIR/o.csv\\\"\"]\n"
            ),
        )?;
        let mut registry = crate::op::Registry::default();
        crate::ops::register(&mut registry);
        Project::load(
            Arc::new(registry),
            dir,
            std::path::Path::new("rules"),
            std::path::Path::new("lake"),
        )
    }

    fn usage(r: Result<impl std::fmt::Debug>) -> String {
        match r {
            Err(e) if e.downcast_ref::<UsageError>().is_some() => format!("{e:#}"),
            other => format!("not a usage error: {other:?}"),
        }
    }

    #[test]
    fn moves_are_checked_audited_and_an_import_never_overwrites_a_move_made_meanwhile() -> Result<()>
    {
        let dir = tempfile::tempdir()?;
        build(&project(dir.path(), 1)?, &BuildOptions::default())?;
        let p = project(dir.path(), 2)?;
        build(&p, &BuildOptions::default())?;
        let state = crate::lake::log::load(&p.lake.table("t"))?;
        let versions: Vec<i64> = state.commits.keys().copied().collect();
        let [v1, v2] = versions[..] else {
            panic!("two versions expected: {versions:?}");
        };

        assert_eq!(move_alias(&p, "t", "production", v1, MovedBy::Cli)?, None);
        // An import that read "unset" finds `production` moved meanwhile: nothing done.
        assert!(!move_alias_from(
            &p,
            "t",
            "production",
            None,
            v2,
            MovedBy::Mlflow
        )?);
        assert_eq!(aliases::resolve(&p.lake.root, "t", "production")?, Some(v1));
        // One that read the lake's current value moves it, audited as MLflow's.
        assert!(move_alias_from(
            &p,
            "t",
            "production",
            Some(v1),
            v2,
            MovedBy::Mlflow
        )?);
        assert_eq!(aliases::resolve(&p.lake.root, "t", "production")?, Some(v2));
        let log: Vec<(Option<i64>, i64, String)> = aliases::history(&p.lake.root)?
            .into_iter()
            .map(|m| (m.from, m.to, m.by))
            .collect();
        assert_eq!(
            log,
            vec![
                (None, v1, "cli".to_string()),
                (Some(v1), v2, "mlflow".to_string())
            ]
        );

        // Refusals are usage errors naming what to do, and move nothing.
        let e = usage(move_alias(&p, "t", "Prod", v1, MovedBy::Cli));
        assert!(e.contains("alias 'Prod': use lowercase"), "{e}");
        let e = usage(move_alias(&p, "t", "production", 99, MovedBy::Cli));
        assert!(
            e.contains(&format!(
                "t has no output at version 99; its versions are: {v1}, {v2}"
            )),
            "{e}"
        );
        let e = usage(move_alias(&p, "nope", "production", v1, MovedBy::Cli));
        assert!(e.contains("unknown asset 'nope'"), "{e}");
        let file = &state.commits[&v1].partitions[0].file;
        std::fs::remove_file(p.lake.table("t").join(file))?;
        let e = usage(move_alias_from(
            &p,
            "t",
            "production",
            Some(v2),
            v1,
            MovedBy::Mlflow,
        ));
        assert!(
            e.contains(&format!("t version {v1} cannot be read"))
                && e.contains("garbage-collected"),
            "{e}"
        );
        assert_eq!(aliases::resolve(&p.lake.root, "t", "production")?, Some(v2));
        assert_eq!(aliases::history(&p.lake.root)?.len(), 2);
        Ok(())
    }
}
