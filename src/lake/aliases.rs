//! Version aliases (`production`, `staging`, …): names for versions of an asset's table,
//! kept in the lake as `_lakebuild/aliases.json` (`{asset: {alias: version}}`). An input
//! `asset@alias` reads the partitions of that version instead of the current ones, so a
//! downstream asset is keyed on the version the alias points to; moving the alias makes
//! it stale, and moving it back restores it. Every move is also appended to
//! `_lakebuild/alias_history.json`, the audit record `lakebuild model history` prints:
//! when, which alias, from which version to which, and who moved it (`cli`, `mlflow`).

use anyhow::Result;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub type Aliases = BTreeMap<String, BTreeMap<String, i64>>;

fn file(lake_root: &Path) -> PathBuf {
    lake_root.join("_lakebuild").join("aliases.json")
}

/// Every alias of the lake (empty when none was ever set).
pub fn load(lake_root: &Path) -> Result<Aliases> {
    super::state_file::read_json(&file(lake_root))
}

/// The version `alias` of `asset` points to.
pub fn resolve(lake_root: &Path, asset: &str, alias: &str) -> Result<Option<i64>> {
    Ok(load(lake_root)?
        .get(asset)
        .and_then(|a| a.get(alias))
        .copied())
}

/// Points `alias` of `asset` at `version` (written atomically); returns the previous one.
pub fn set(lake_root: &Path, asset: &str, alias: &str, version: i64) -> Result<Option<i64>> {
    let mut all = load(lake_root)?;
    let old = all
        .entry(asset.to_string())
        .or_default()
        .insert(alias.to_string(), version);
    super::state_file::write_json(&file(lake_root), &all)?;
    Ok(old)
}

pub use crate::core::rule::valid_alias_name as valid_name;

/// One move of an alias, as the audit record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AliasMove {
    /// When (RFC 3339, UTC, from the lake's clock).
    pub at: String,
    pub asset: String,
    pub alias: String,
    /// The version it named before (`None`: it was new).
    pub from: Option<i64>,
    pub to: i64,
    /// Who moved it: `cli` (`lakebuild model alias`) or `mlflow` (imported from MLflow's
    /// registry).
    pub by: String,
}

fn history_file(lake_root: &Path) -> PathBuf {
    lake_root.join("_lakebuild").join("alias_history.json")
}

/// Every recorded move, oldest first.
pub fn history(lake_root: &Path) -> Result<Vec<AliasMove>> {
    super::state_file::read_json(&history_file(lake_root))
}

/// Points `alias` of `asset` at `version` and appends the move to the audit record; the
/// caller holds the lake lock (the two files are read, changed and replaced). Returns
/// the previous version.
pub fn set_recorded(
    lake_root: &Path,
    asset: &str,
    alias: &str,
    version: i64,
    by: &str,
) -> Result<Option<i64>> {
    let mut log = history(lake_root)?;
    let old = set(lake_root, asset, alias, version)?;
    log.push(AliasMove {
        at: crate::clock::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        asset: asset.to_string(),
        alias: alias.to_string(),
        from: old,
        to: version,
        by: by.to_string(),
    });
    super::state_file::write_json(&history_file(lake_root), &log)?;
    Ok(old)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_round_trip_and_move() -> Result<()> {
        let dir = tempfile::tempdir()?;
        assert_eq!(resolve(dir.path(), "m", "production")?, None);
        assert_eq!(set(dir.path(), "m", "production", 3)?, None);
        assert_eq!(set(dir.path(), "m", "production", 5)?, Some(3));
        set(dir.path(), "m", "staging", 6)?;
        assert_eq!(resolve(dir.path(), "m", "production")?, Some(5));
        assert_eq!(load(dir.path())?["m"].len(), 2);
        assert!(
            history(dir.path())?.is_empty(),
            "plain sets are not audited"
        );
        assert_eq!(
            set_recorded(dir.path(), "m", "production", 6, "mlflow")?,
            Some(5)
        );
        set_recorded(dir.path(), "m", "canary", 2, "cli")?;
        let h = history(dir.path())?;
        assert_eq!(
            h.iter()
                .map(|m| (m.alias.as_str(), m.from, m.to, m.by.as_str()))
                .collect::<Vec<_>>(),
            vec![
                ("production", Some(5), 6, "mlflow"),
                ("canary", None, 2, "cli")
            ]
        );
        assert_eq!(resolve(dir.path(), "m", "production")?, Some(6));
        assert!(
            valid_name("production")
                && valid_name("ab-1")
                && !valid_name("Prod")
                && !valid_name("1a")
        );
        Ok(())
    }
}
