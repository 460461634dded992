//! A project: the folder lakebuild runs in, with its rules and its lake, and the cache
//! of asset states read from the lake during one invocation.

use crate::core::catalog::Catalog;
use crate::core::error::UsageError;
use crate::core::rule_set::RuleSet;
use crate::core::table_state::AssetState;
use crate::lake::Lake;
use crate::op::Registry;
use anyhow::Result;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub struct Project {
    pub root: PathBuf,
    /// The rules folder (its `jobs/` subfolder holds the jobs).
    pub rules_dir: PathBuf,
    pub rules: RuleSet,
    pub lake: Lake,
    /// The ops and calendars the rules were validated against.
    pub registry: Arc<Registry>,
    /// The zone whose date is "today" (`lakebuild.toml`'s `timezone`); `None`: the
    /// machine's.
    pub timezone: Option<chrono_tz::Tz>,
}

impl Project {
    /// Loads the rules of `rules_dir` (relative to `root` unless absolute) and points at
    /// the lake `lake_dir`.
    pub fn load(
        registry: Arc<Registry>,
        root: &Path,
        rules_dir: &Path,
        lake_dir: &Path,
    ) -> Result<Project> {
        let rules_dir = root.join(rules_dir);
        let rules = load_rules(&rules_dir, registry.as_ref())?;
        let lake = Lake::new(root.join(lake_dir));
        crate::lake::format::check(&lake.root)?;
        Ok(Project {
            root: root.to_path_buf(),
            rules_dir,
            rules,
            lake,
            registry,
            timezone: None,
        })
    }

    /// Loads the project at `root` with its settings (`lakebuild.toml`, flags, environment).
    pub fn open(
        registry: Arc<Registry>,
        root: &Path,
        given: crate::engine::settings::Given,
    ) -> Result<Project> {
        let settings = crate::engine::settings::load(root, given)?;
        let mut project = Project::load(registry, root, &settings.rules, &settings.lake)?;
        project.timezone = settings.timezone;
        Ok(project)
    }

    /// Today's date in the project's time zone (or `LAKEBUILD_NOW`).
    pub fn today(&self) -> Result<chrono::NaiveDate> {
        crate::clock::today_in(self.timezone)
    }
}

/// Loads and validates every `*.toml` directly in `dir`. All errors are reported at once.
pub fn load_rules(dir: &Path, catalog: &dyn Catalog) -> anyhow::Result<RuleSet> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        UsageError(format!(
            "cannot read the rules folder {}: {e}. Run lakebuild from the project root or pass --rules DIR",
            dir.display()
        ))
    })?;
    let mut files = BTreeMap::new();
    for entry in entries {
        let path = entry
            .map_err(|e| UsageError(format!("{}: {e}", dir.display())))?
            .path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") || !path.is_file() {
            continue;
        }
        let asset = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let src = std::fs::read_to_string(&path)
            .map_err(|e| UsageError(format!("{}: cannot read: {e}", path.display())))?;
        files.insert(asset, (path, src));
    }
    let sources: Vec<_> = files.into_iter().map(|(a, (p, s))| (a, p, s)).collect();
    RuleSet::from_sources(&sources, catalog)
}

/// The `*.toml` files of a sub-folder of the rules (`jobs/`, `sensors/`, `alerts/`) as
/// (name, path, text), sorted by path; none when the folder does not exist.
pub fn config_files(dir: &Path) -> anyhow::Result<Vec<(String, std::path::PathBuf, String)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(UsageError(format!("cannot list {}: {e}", dir.display())).into()),
    };
    let mut files: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let name = f
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            let text = std::fs::read_to_string(&f)
                .map_err(|e| UsageError(format!("{}: cannot read: {e}", f.display())))?;
            Ok((name, f, text))
        })
        .collect()
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
        let s = Arc::new(crate::lake::log::load(&self.lake.table(asset))?);
        self.map
            .lock()
            .map_err(|_| anyhow::anyhow!("state cache poisoned"))?
            .insert(asset.to_string(), s.clone());
        Ok(s)
    }
}

impl crate::core::lineage::TableStates for States {
    fn state(&self, asset: &str) -> Result<Arc<AssetState>> {
        self.get(asset)
    }
}
