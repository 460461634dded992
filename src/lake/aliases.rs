//! Version aliases (`production`, `staging`, …): names for versions of an asset's table,
//! kept in the lake as `_lakebuild/aliases.json` (`{asset: {alias: version}}`). An input
//! `asset@alias` reads the partitions of that version instead of the current ones, so a
//! downstream asset is keyed on the version the alias points to; moving the alias makes
//! it stale, and moving it back restores it.

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
