//! Version aliases (`production`, `staging`, …): names for versions of an asset's table,
//! kept in the lake as `_lakebuild/aliases.json` (`{asset: {alias: version}}`). An input
//! `asset@alias` reads the partitions of that version instead of the current ones, so a
//! downstream asset is keyed on the version the alias points to; moving the alias makes
//! it stale, and moving it back restores it.

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub type Aliases = BTreeMap<String, BTreeMap<String, i64>>;

fn file(lake_root: &Path) -> PathBuf {
    lake_root.join("_lakebuild").join("aliases.json")
}

/// Every alias of the lake (empty when none was ever set).
pub fn load(lake_root: &Path) -> Result<Aliases> {
    let path = file(lake_root);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON: fix or delete it", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Aliases::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
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
    let path = file(lake_root);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&all)?)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(old)
}

/// A valid alias name: lowercase letters, digits, `_` and `-`, starting with a letter.
pub fn valid_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
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
            valid_name("production")
                && valid_name("ab-1")
                && !valid_name("Prod")
                && !valid_name("1a")
        );
        Ok(())
    }
}
