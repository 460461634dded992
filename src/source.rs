//! Source files: files a rule declares (`sources = ["scripts/*.py"]`) or an op reads
//! (the `files` op's imports), found with walkdir and hashed with blake3 in parallel.

use crate::error::UsageError;
use anyhow::{Context, Result};
use globset::{Glob, GlobSetBuilder};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A source file: its path relative to the project root and its content hash.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SourceFile {
    pub path: String,
    pub hash: String,
}

impl SourceFile {
    pub fn absolute(&self, root: &Path) -> PathBuf {
        root.join(&self.path)
    }
}

/// The directory part of a glob before its first wildcard, to bound the walk.
fn literal_prefix(glob: &str) -> &str {
    let cut = glob.find(['*', '?', '[', '{']).unwrap_or(glob.len());
    match glob[..cut].rfind('/') {
        Some(i) => &glob[..i],
        None if cut == glob.len() => glob, // a plain path
        None => "",
    }
}

/// Hashes one file (memory-mapped and multi-threaded when large).
pub fn hash_file(path: &Path) -> Result<blake3::Hash> {
    let mut h = blake3::Hasher::new();
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if len > 1 << 20 {
        h.update_mmap_rayon(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
    } else {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        h.update(&bytes);
    }
    Ok(h.finalize())
}

/// Finds the files matching `globs` under `root` and hashes them. Sorted by path.
/// A glob that matches nothing is an error naming `owner` (the rule file).
pub fn hash_sources(root: &Path, globs: &[String], owner: &str) -> Result<Vec<SourceFile>> {
    if globs.is_empty() {
        return Ok(Vec::new());
    }
    let mut found: Vec<String> = Vec::new();
    for pattern in globs {
        let glob = Glob::new(pattern).map_err(|e| {
            UsageError(format!(
                "{owner}: source pattern '{pattern}' is not a valid glob: {e}"
            ))
        })?;
        let set = GlobSetBuilder::new().add(glob).build()?;
        let base = root.join(literal_prefix(pattern));
        let mut matched = 0;
        if base.exists() {
            for entry in walkdir::WalkDir::new(&base)
                .follow_links(true)
                .sort_by_file_name()
            {
                let entry = entry.with_context(|| format!("walking {}", base.display()))?;
                if !entry.file_type().is_file() {
                    continue;
                }
                let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
                let rel = rel.to_string_lossy().replace('\\', "/");
                if set.is_match(&rel) {
                    matched += 1;
                    found.push(rel);
                }
            }
        }
        if matched == 0 {
            return Err(UsageError(format!(
                "{owner}: source pattern '{pattern}' matches no file under {}: fix the pattern or add the files",
                root.display()
            ))
            .into());
        }
    }
    found.sort();
    found.dedup();
    found
        .into_par_iter()
        .map(|rel| {
            let h = hash_file(&root.join(&rel))?;
            Ok(SourceFile {
                path: rel,
                hash: h.to_hex().to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_prefix_bounds_the_walk() {
        assert_eq!(literal_prefix("scripts/*.py"), "scripts");
        assert_eq!(literal_prefix("a/b/**/x.csv"), "a/b");
        assert_eq!(literal_prefix("*.csv"), "");
        assert_eq!(literal_prefix("data/x.csv"), "data");
    }

    #[test]
    fn hashes_matching_files_sorted() -> Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join("s"))?;
        std::fs::write(dir.path().join("s/b.py"), "b")?;
        std::fs::write(dir.path().join("s/a.py"), "a")?;
        std::fs::write(dir.path().join("s/c.txt"), "c")?;
        let files = hash_sources(dir.path(), &["s/*.py".into()], "r.toml")?;
        assert_eq!(
            files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
            ["s/a.py", "s/b.py"]
        );
        assert_eq!(files[0].hash, blake3::hash(b"a").to_hex().to_string());
        let err = hash_sources(dir.path(), &["none/*.py".into()], "r.toml").unwrap_err();
        assert!(err.to_string().contains("matches no file"));
        Ok(())
    }
}
