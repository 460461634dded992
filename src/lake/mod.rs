//! The lake: one Delta table per asset under `lake/<asset>/`, plus lakebuild's own
//! tables and files under `lake/_lakebuild/` (run history, lock).

pub mod aliases;
pub mod attachments;
pub mod content_hash;
pub mod failpoint;
pub mod format;
pub mod gc;
pub mod live;
pub mod lock;
pub mod log;
pub mod log_snapshot;
pub mod outbox;
pub mod parquet;
pub mod promotions;
pub mod runs;
pub mod state_file;
pub mod table;

use std::path::PathBuf;

/// Paths inside a lake directory.
#[derive(Debug, Clone)]
pub struct Lake {
    pub root: PathBuf,
    /// Assets whose table is elsewhere than `root/<asset>` (a tuning trial's side table).
    moved: std::collections::BTreeMap<String, PathBuf>,
}

impl Lake {
    pub fn new(root: impl Into<PathBuf>) -> Lake {
        Lake {
            root: root.into(),
            moved: Default::default(),
        }
    }

    /// The same lake with `asset`'s table at `table` (reads of every other table, the run
    /// history and the lake's state files unchanged).
    pub fn with_table(mut self, asset: &str, table: PathBuf) -> Lake {
        self.moved.insert(asset.to_string(), table);
        self
    }

    pub fn table(&self, asset: &str) -> PathBuf {
        match self.moved.get(asset) {
            Some(t) => t.clone(),
            None => self.root.join(asset),
        }
    }

    pub fn runs_table(&self) -> PathBuf {
        self.root.join("_lakebuild").join("runs")
    }

    /// A scratch directory for one run's temporary files.
    pub fn scratch(&self, run_id: &str) -> PathBuf {
        self.root.join("_lakebuild").join("tmp").join(run_id)
    }

    /// An op's cache across builds (`OpContext::cache`), by op name and code version.
    pub fn op_cache(&self, op: &str, code_version: &str) -> PathBuf {
        self.op_caches().join(format!("{op}-{code_version}"))
    }

    /// The folder of every [`Lake::op_cache`].
    pub fn op_caches(&self) -> PathBuf {
        self.root.join("_lakebuild").join("cache")
    }
}

/// The bytes of the files under `path` (what removing it frees).
pub(crate) fn folder_bytes(path: &std::path::Path) -> u64 {
    walkdir::WalkDir::new(path)
        .into_iter()
        .flatten()
        .filter_map(|f| f.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}
