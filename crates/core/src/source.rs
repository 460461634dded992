//! Source files as keys see them: files a rule declares (`sources = ["scripts/*.py"]`) or
//! an op reads (the `files` op's imports), by path and content hash. Finding and hashing
//! them is the engine's (`lakebuild::engine::sources`).

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
