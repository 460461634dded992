//! Files an op's run leaves beside its output (a team's model artifacts and its tracking
//! file), kept per materialization as `_lakebuild/attachments/<asset>/<content hash>/`:
//! content-addressed like the output they belong to, so a delivery long after the build
//! (an MLflow outage, `lakebuild mlflow sync`) reads what the run left. Written once, after
//! the run's checks and before its commit, by a copy into a temporary folder and a rename:
//! a kill leaves at worst a folder no commit names, which the next run of the same content
//! replaces and `lakebuild gc` removes, as it removes the attachments of content whose
//! data file it collected.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// Every attachment folder of `asset`.
fn asset_dir(lake_root: &Path, asset: &str) -> PathBuf {
    lake_root.join("_lakebuild").join("attachments").join(asset)
}

/// The attachments of `asset`'s materialization with `content_hash`.
pub fn dir(lake_root: &Path, asset: &str, content_hash: &str) -> PathBuf {
    asset_dir(lake_root, asset).join(content_hash)
}

/// The materialization (content hash) the files a run left in `from` belong to: `None`
/// when it left none; an error when the run produced more than one partition, since
/// attachments describe one materialization.
pub fn owner<'a>(from: &Path, asset: &str, produced: &[&'a str]) -> Result<Option<&'a str>> {
    let has_files = std::fs::read_dir(from).is_ok_and(|mut d| d.next().is_some());
    match produced {
        _ if !has_files => Ok(None),
        [one] => Ok(Some(one)),
        _ => bail!(
            "the run of {asset} left files to keep beside its output (e.g. a tracking.json) but produced {} partitions: they describe one materialization, so produce one partition per run (a whole-table output)",
            produced.len()
        ),
    }
}

/// Keeps the files of `from` as the attachments of the materialization with content
/// `hash` ([`owner`]), once the run's checks passed. Written once: the attachments of content a commit already holds
/// (`committed`) are never replaced, since its tracker run was made from them (a rerun
/// that produced the same content is a cut-off and makes no run); a folder a killed run
/// left for content no commit holds is replaced, set aside before the new one moves in,
/// so a kill never leaves a half-written or half-removed folder under the name.
pub fn keep(
    lake_root: &Path,
    asset: &str,
    from: &Path,
    hash: &str,
    committed: impl Fn(&str) -> bool,
) -> Result<()> {
    let target = dir(lake_root, asset, hash);
    if committed(hash) {
        return Ok(());
    }
    let parent = target.parent().unwrap_or(lake_root);
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let tmp = parent.join(format!(".{hash}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    copy_tree(from, &tmp)?;
    let aside = parent.join(format!(".{hash}.{}.old", std::process::id()));
    let replaced = target.exists();
    if replaced {
        std::fs::rename(&target, &aside)
            .with_context(|| format!("cannot set {} aside", target.display()))?;
    }
    std::fs::rename(&tmp, &target)
        .with_context(|| format!("cannot move attachments to {}", target.display()))?;
    if replaced {
        let _ = std::fs::remove_dir_all(&aside);
    }
    Ok(())
}

/// `lakebuild gc`, under the lake lock: removes `asset`'s attachments whose
/// materialization can no longer be read (no commit of its table holds that content with
/// its data file present: the file was collected, or the content was never committed),
/// and folders a killed copy left. Returns the folders removed and their bytes.
pub fn collect(lake_root: &Path, asset: &str, table: &Path, dry_run: bool) -> Result<(usize, u64)> {
    let root = asset_dir(lake_root, asset);
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Ok((0, 0));
    };
    let state = super::log::load(table)?;
    let readable: std::collections::BTreeSet<&str> = state
        .commits
        .values()
        .flat_map(|c| c.partitions.iter())
        .filter(|p| table.join(&p.file).exists())
        .map(|p| p.content_hash.as_str())
        .collect();
    let (mut removed, mut bytes) = (0, 0);
    for e in entries {
        let e = e.with_context(|| format!("cannot read {}", root.display()))?;
        let name = e.file_name().to_string_lossy().to_string();
        if readable.contains(name.as_str()) {
            continue;
        }
        let path = e.path();
        bytes += super::folder_bytes(&path);
        removed += 1;
        if !dry_run {
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    Ok((removed, bytes))
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?
    {
        let entry = entry.with_context(|| format!("cannot read {}", from.display()))?;
        let path = entry.path();
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&path, &dest)?;
        } else {
            std::fs::copy(&path, &dest)
                .with_context(|| format!("cannot copy {} to {}", path.display(), dest.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachments_are_kept_once_per_content_and_only_uncommitted_ones_are_replaced() -> Result<()>
    {
        let lake = tempfile::tempdir()?;
        let run = tempfile::tempdir()?;
        let none = |_: &str| false;
        assert_eq!(owner(&run.path().join("none"), "m", &["h1", "h2"])?, None);
        std::fs::create_dir_all(run.path().join("model"))?;
        std::fs::write(run.path().join("tracking.json"), b"{}")?;
        std::fs::write(run.path().join("model").join("w.bin"), b"\x01\x02")?;
        assert_eq!(owner(run.path(), "m", &["h1"])?, Some("h1"));
        keep(lake.path(), "m", run.path(), "h1", none)?;
        let d = dir(lake.path(), "m", "h1");
        assert_eq!(std::fs::read(d.join("model").join("w.bin"))?, b"\x01\x02");
        assert_eq!(std::fs::read(d.join("tracking.json"))?, b"{}");
        // Another run of the same content: committed, so the first run's files stay.
        std::fs::write(run.path().join("tracking.json"), b"{\"tags\": {}}")?;
        keep(lake.path(), "m", run.path(), "h1", |h| h == "h1")?;
        assert_eq!(std::fs::read(d.join("tracking.json"))?, b"{}");
        // Not committed (a killed run left it): replaced whole, nothing set aside remains.
        std::fs::remove_dir_all(run.path().join("model"))?;
        keep(lake.path(), "m", run.path(), "h1", none)?;
        assert!(!d.join("model").exists());
        assert_eq!(std::fs::read(d.join("tracking.json"))?, b"{\"tags\": {}}");
        let names: Vec<String> = std::fs::read_dir(d.parent().unwrap_or(lake.path()))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(names, ["h1"]);
        // Attachments describe one materialization.
        let err = owner(run.path(), "m", &["h2", "h3"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("produced 2 partitions"), "{err}");
        Ok(())
    }
}
