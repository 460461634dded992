//! Finding and hashing source files: the globs a rule declares or an op reads, walked with
//! walkdir under the project root and hashed with blake3 in parallel.

use crate::core::error::UsageError;
use crate::core::rule::outside_project;
use crate::core::source::SourceFile;
use anyhow::{Context, Result};
use globset::{Glob, GlobSetBuilder};
use rayon::prelude::*;
use std::path::Path;

/// The directory part of a glob before its first wildcard, to bound the walk.
fn literal_prefix(glob: &str) -> &str {
    let cut = glob.find(['*', '?', '[', '{']).unwrap_or(glob.len());
    match glob[..cut].rfind('/') {
        Some(i) => &glob[..i],
        None if cut == glob.len() => glob, // a plain path
        None => "",
    }
}

/// A walk error that names the file: a broken symbolic link says where it points.
fn walk_error(owner: &str, base: &Path, e: walkdir::Error) -> anyhow::Error {
    let Some(path) = e.path().map(Path::to_path_buf) else {
        return anyhow::anyhow!("{owner}: cannot walk {}: {e}", base.display());
    };
    match std::fs::read_link(&path) {
        Ok(target) if !path.exists() => UsageError(format!(
            "{owner}: source {} is a symbolic link to {}, which does not exist: remove the link or restore its target",
            path.display(),
            target.display()
        ))
        .into(),
        _ => anyhow::anyhow!("{owner}: cannot read source {}: {e}", path.display()),
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
        if outside_project(pattern) {
            return Err(UsageError(format!(
                "{owner}: source pattern '{pattern}' is outside the project: use a glob relative to the project root"
            ))
            .into());
        }
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
                let entry = entry.map_err(|e| walk_error(owner, &base, e))?;
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

    #[test]
    fn a_broken_link_names_itself_and_where_it_points() -> Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join("s"))?;
        std::fs::write(dir.path().join("s/a.py"), "a")?;
        std::os::unix::fs::symlink("gone.py", dir.path().join("s/link.py"))?;
        let err = hash_sources(dir.path(), &["s/*.py".into()], "rules/r.toml").unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.starts_with("rules/r.toml: source "), "{msg}");
        assert!(
            msg.contains("s/link.py is a symbolic link to gone.py, which does not exist"),
            "{msg}"
        );
        Ok(())
    }

    #[test]
    fn patterns_outside_the_project_are_refused() -> Result<()> {
        let dir = tempfile::tempdir()?;
        for p in ["/etc/*", "../../x", "a/../../b", "~/x"] {
            let err = hash_sources(dir.path(), &[p.into()], "rules/r.toml").unwrap_err();
            assert!(
                err.to_string().contains("is outside the project"),
                "{p}: {err}"
            );
        }
        Ok(())
    }
}
