//! Files an op's run leaves beside its output (a team's model artifacts and its tracking
//! file), kept per materialization as `_lakebuild/attachments/<asset>/<content hash>/`:
//! content-addressed like the output they belong to, so a delivery long after the build
//! (an MLflow outage, `lakebuild mlflow sync`) reads what the run left. Written before the
//! commit, by a copy into a temporary folder and a rename: a kill leaves at worst a folder
//! no commit names, which the next run of the same content replaces and `lakebuild gc`
//! removes, as it removes the attachments of content whose data file it collected.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The attachments of `asset`'s materialization with `content_hash`.
pub fn dir(lake_root: &Path, asset: &str, content_hash: &str) -> PathBuf {
    lake_root
        .join("_lakebuild")
        .join("attachments")
        .join(asset)
        .join(content_hash)
}

/// Keeps the files of `from` (when it exists and holds any) as the attachments of each
/// of `content_hashes`.
pub fn keep<'a>(
    lake_root: &Path,
    asset: &str,
    from: &Path,
    content_hashes: impl IntoIterator<Item = &'a str>,
) -> Result<()> {
    let has_files = std::fs::read_dir(from).is_ok_and(|mut d| d.next().is_some());
    if !has_files {
        return Ok(());
    }
    for hash in content_hashes {
        let target = dir(lake_root, asset, hash);
        let parent = target.parent().unwrap_or(lake_root);
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        let tmp = parent.join(format!(".{hash}.{}.tmp", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        copy_tree(from, &tmp)?;
        if target.exists() {
            std::fs::remove_dir_all(&target)
                .with_context(|| format!("cannot replace {}", target.display()))?;
        }
        std::fs::rename(&tmp, &target)
            .with_context(|| format!("cannot move attachments to {}", target.display()))?;
    }
    Ok(())
}

/// `lakebuild gc`, under the lake lock: removes `asset`'s attachments whose
/// materialization can no longer be read (no commit of its table holds that content with
/// its data file present: the file was collected, or the content was never committed),
/// and folders a killed copy left. Returns the folders removed and their bytes.
pub fn collect(lake_root: &Path, asset: &str, table: &Path, dry_run: bool) -> Result<(usize, u64)> {
    let root = lake_root.join("_lakebuild").join("attachments").join(asset);
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
        bytes += walkdir::WalkDir::new(&path)
            .into_iter()
            .flatten()
            .filter_map(|f| f.metadata().ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum::<u64>();
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
    fn attachments_are_kept_per_content_and_replaced_whole() -> Result<()> {
        let lake = tempfile::tempdir()?;
        let run = tempfile::tempdir()?;
        keep(lake.path(), "m", &run.path().join("none"), ["h1"])?;
        assert!(!dir(lake.path(), "m", "h1").exists(), "nothing to keep");
        std::fs::create_dir_all(run.path().join("model"))?;
        std::fs::write(run.path().join("tracking.json"), b"{}")?;
        std::fs::write(run.path().join("model").join("w.bin"), b"\x01\x02")?;
        keep(lake.path(), "m", run.path(), ["h1", "h2"])?;
        for h in ["h1", "h2"] {
            let d = dir(lake.path(), "m", h);
            assert_eq!(std::fs::read(d.join("model").join("w.bin"))?, b"\x01\x02");
            assert_eq!(std::fs::read(d.join("tracking.json"))?, b"{}");
        }
        std::fs::remove_dir_all(run.path().join("model"))?;
        keep(lake.path(), "m", run.path(), ["h1"])?;
        assert!(!dir(lake.path(), "m", "h1").join("model").exists());
        Ok(())
    }
}
