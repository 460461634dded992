//! The lake's small state files (`_lakebuild/*.json`: aliases, schedule cursors, sensor
//! cursors, open alerts, training checkpoints): read with a missing file meaning "nothing
//! yet", written atomically (a temporary file of this process, then a rename), so a kill
//! or a concurrent writer never leaves half a file.

use anyhow::{Context, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::Path;

/// The value in `path`; the type's default when the file does not exist. A file that is
/// not valid JSON is an error naming it (silently resetting would lose state).
pub fn read_json<T: DeserializeOwned + Default>(path: &Path) -> Result<T> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON: fix or delete it", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes `value` to `path` as JSON, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    write_atomically(path, serde_json::to_string_pretty(value)?.as_bytes())
}

/// Writes `bytes` to `path` atomically, creating its folder.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    // Unique per process and call: two threads (the web server's requests) may write the
    // same file at once, and each must rename only what it wrote.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn missing_is_default_corrupt_is_an_error_and_writes_replace() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let f = dir.path().join("sub").join("state.json");
        assert!(read_json::<BTreeMap<String, i64>>(&f)?.is_empty());
        write_json(&f, &BTreeMap::from([("a".to_string(), 1i64)]))?;
        write_json(&f, &BTreeMap::from([("a".to_string(), 2i64)]))?;
        assert_eq!(read_json::<BTreeMap<String, i64>>(&f)?["a"], 2);
        std::fs::write(&f, "{not json")?;
        let e = read_json::<BTreeMap<String, i64>>(&f)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not valid JSON"), "{e}");
        assert_eq!(
            std::fs::read_dir(f.parent().unwrap_or(dir.path()))?.count(),
            1,
            "no temporary file left"
        );
        Ok(())
    }
}
