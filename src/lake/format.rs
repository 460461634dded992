//! The lake's format version, `_lakebuild/format.json` (`{"format": N}`): what a binary
//! must understand to read and write this lake. A lake without the file was written by a
//! release before versions were recorded, which is format 1; a writer records the version
//! the first time it writes. A lake of a newer format than this binary knows is refused
//! before anything is read or written, with a message that says to upgrade.

use crate::core::error::UsageError;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The format this binary reads and writes. Bump it with a migration note in
/// docs/OPERATIONS.md whenever a change to the lake's layout or records would mislead an
/// older binary.
pub const CURRENT: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FormatFile {
    format: u32,
    /// The release that first wrote this format into the lake (for people).
    #[serde(default)]
    written_by: Option<String>,
}

fn file(lake_root: &Path) -> PathBuf {
    lake_root.join("_lakebuild").join("format.json")
}

/// The lake's format version: 1 for a lake with no version file (or no lake yet).
pub fn read(lake_root: &Path) -> Result<u32> {
    let f = file(lake_root);
    match std::fs::read_to_string(&f) {
        Ok(text) => serde_json::from_str::<FormatFile>(&text)
            .map(|v| v.format)
            .map_err(|e| {
                UsageError(format!(
                    "{}: not a lakebuild format file ({e}): restore it from a backup, or write {{\"format\": {CURRENT}}} if this lake was made by this release",
                    f.display()
                ))
                .into()
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(1),
        Err(e) => Err(UsageError(format!("cannot read {}: {e}", f.display())).into()),
    }
}

/// Refuses a lake this binary cannot safely read.
pub fn check(lake_root: &Path) -> Result<()> {
    let found = read(lake_root)?;
    if found > CURRENT {
        return Err(UsageError(format!(
            "the lake {} has format {found}, written by a newer lakebuild; this binary ({}) knows formats up to {CURRENT}: upgrade lakebuild (nothing was read or changed)",
            lake_root.display(),
            env!("CARGO_PKG_VERSION")
        ))
        .into());
    }
    Ok(())
}

/// Checks the lake and records the current format if the lake has no version file yet.
/// Called by writers, under the lake lock.
pub fn ensure(lake_root: &Path) -> Result<()> {
    check(lake_root)?;
    let f = file(lake_root);
    if !f.exists() {
        let v = FormatFile {
            format: CURRENT,
            written_by: Some(format!("lakebuild {}", env!("CARGO_PKG_VERSION"))),
        };
        super::state_file::write_json(&f, &v)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unversioned_lake_is_format_1_and_a_writer_records_it() -> Result<()> {
        let dir = tempfile::tempdir()?;
        assert_eq!(read(dir.path())?, 1);
        check(dir.path())?;
        ensure(dir.path())?;
        assert_eq!(read(dir.path())?, CURRENT);
        assert!(file(dir.path()).exists());
        Ok(())
    }

    #[test]
    fn a_newer_or_garbled_format_is_refused_with_what_to_do() -> Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join("_lakebuild"))?;
        std::fs::write(file(dir.path()), r#"{"format": 999}"#)?;
        let e = check(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("has format 999, written by a newer lakebuild"),
            "{e}"
        );
        assert!(e.contains("upgrade lakebuild"), "{e}");
        assert!(ensure(dir.path()).is_err());
        std::fs::write(file(dir.path()), "{")?;
        let e = check(dir.path()).unwrap_err().to_string();
        assert!(e.contains("not a lakebuild format file"), "{e}");
        Ok(())
    }
}
