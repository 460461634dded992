//! A project: the folder lakebuild runs in, with its rules and its lake, and the cache
//! of asset states read from the lake during one invocation.

use crate::lake::Lake;
use crate::lake::log::AssetState;
use crate::rule_set::RuleSet;
use anyhow::Result;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub struct Project {
    pub root: PathBuf,
    /// The rules folder (its `jobs/` subfolder holds the jobs).
    pub rules_dir: PathBuf,
    pub rules: RuleSet,
    pub lake: Lake,
}

impl Project {
    /// Loads the rules of `rules_dir` (relative to `root` unless absolute) and points at
    /// the lake `lake_dir`.
    pub fn load(root: &Path, rules_dir: &Path, lake_dir: &Path) -> Result<Project> {
        let rules_dir = root.join(rules_dir);
        let rules = RuleSet::load(&rules_dir)?;
        Ok(Project {
            root: root.to_path_buf(),
            rules_dir,
            rules,
            lake: Lake::new(root.join(lake_dir)),
        })
    }
}

/// Asset states read from the lake, loaded on first use and refreshed after each commit.
pub struct States {
    lake: Lake,
    map: Mutex<HashMap<String, Arc<AssetState>>>,
}

impl States {
    pub fn new(lake: &Lake) -> States {
        States {
            lake: lake.clone(),
            map: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, asset: &str) -> Result<Arc<AssetState>> {
        if let Some(s) = self
            .map
            .lock()
            .map_err(|_| anyhow::anyhow!("state cache poisoned"))?
            .get(asset)
        {
            return Ok(s.clone());
        }
        self.reload(asset)
    }

    /// Loads the states of `assets` in parallel (log replay is most of a no-op build).
    pub fn preload(&self, assets: &[String]) -> Result<()> {
        use rayon::prelude::*;
        assets.par_iter().try_for_each(|a| self.get(a).map(|_| ()))
    }

    pub fn reload(&self, asset: &str) -> Result<Arc<AssetState>> {
        let s = Arc::new(AssetState::load(&self.lake.table(asset))?);
        self.map
            .lock()
            .map_err(|_| anyhow::anyhow!("state cache poisoned"))?
            .insert(asset.to_string(), s.clone());
        Ok(s)
    }
}
