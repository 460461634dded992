//! The promotion log, `_lakebuild/promotions.json`: every decision a promotion policy
//! took about an asset's versions — when, the champion and challenger it looked at, what
//! it did (`promote`, `rollback`, `retire`, `challenger`, `wait`), why, the statistics it
//! decided on, and the state it left (champion, challenger, the challenger's role).
//! Oldest first; written under the lake lock by whoever decides, read by `lakebuild
//! model policy --log` and `status`. It holds versions and figures only, never data.

use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// When (RFC 3339, UTC, the lake's clock).
    pub at: String,
    /// The machine's wall clock (ms since the epoch) at the decision, comparable with the
    /// run history's times (`at` follows the injectable clock).
    #[serde(default)]
    pub at_ms: i64,
    pub asset: String,
    /// `promote`, `rollback`, `retire`, `challenger` (a version put on trial) or `wait`.
    pub action: String,
    /// The champion and challenger versions it looked at.
    pub champion: Option<i64>,
    pub challenger: Option<i64>,
    /// After it: the champion, the challenger and the challenger's role (`trial`: it may
    /// be promoted; `watch`: the previous champion, kept scored for a rollback;
    /// `retired`; `none`).
    pub then_champion: Option<i64>,
    pub then_challenger: Option<i64>,
    pub role: String,
    /// Days compared (0 when no comparison was made).
    pub days: usize,
    pub reason: String,
    /// The statistics (policy-specific figures, e.g. mean difference, HAC SE, the
    /// sequential test's likelihood ratio).
    #[serde(default)]
    pub stats: serde_json::Value,
}

fn file(lake_root: &Path) -> PathBuf {
    lake_root.join("_lakebuild").join("promotions.json")
}

/// Every decision, oldest first (none when no policy ever decided).
pub fn read(lake_root: &Path) -> Result<Vec<Decision>> {
    super::state_file::read_json(&file(lake_root))
}

/// Every decision about `asset`, oldest first.
pub fn of(lake_root: &Path, asset: &str) -> Result<Vec<Decision>> {
    Ok(read(lake_root)?
        .into_iter()
        .filter(|d| d.asset == asset)
        .collect())
}

/// The latest decision about `asset`.
pub fn latest(lake_root: &Path, asset: &str) -> Result<Option<Decision>> {
    Ok(of(lake_root, asset)?.pop())
}

/// Appends `d`; the caller holds the lake lock.
pub fn append(lake_root: &Path, d: Decision) -> Result<()> {
    let mut all = read(lake_root)?;
    all.push(d);
    super::state_file::write_json(&file(lake_root), &all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_append_in_order_and_the_latest_is_per_asset() -> Result<()> {
        let dir = tempfile::tempdir()?;
        assert!(read(dir.path())?.is_empty());
        let d = |asset: &str, action: &str| Decision {
            at: "2026-12-07T00:00:00Z".into(),
            at_ms: 0,
            asset: asset.into(),
            action: action.into(),
            champion: Some(1),
            challenger: Some(2),
            then_champion: Some(2),
            then_challenger: Some(1),
            role: "watch".into(),
            days: 61,
            reason: "r".into(),
            stats: serde_json::json!({"t": 3.1}),
        };
        append(dir.path(), d("m", "wait"))?;
        append(dir.path(), d("m", "promote"))?;
        append(dir.path(), d("n", "wait"))?;
        assert_eq!(read(dir.path())?.len(), 3);
        assert_eq!(
            latest(dir.path(), "m")?.map(|d| d.action),
            Some("promote".into())
        );
        assert_eq!(latest(dir.path(), "x")?, None);
        assert_eq!(of(dir.path(), "m")?.len(), 2);
        Ok(())
    }
}
