//! Sensors: conditions evaluated on every `lakebuild tick` (and by `lakebuild watch`)
//! that run a job when they fire. Each one is `rules/sensors/<name>.toml`:
//!
//! ```toml
//! job = "daily_inference"
//! kind = "new_source_data"      # the asset's domain has a day the lake lacks (a new trading day)
//! asset = "raw_stock_data"
//! # kind = "asset_materialized" # the asset's table got a new version (e.g. a new model)
//! # kind = "files"             # files matching `path` appeared or changed
//! # path = "inbox/*.csv"
//! ```
//!
//! A sensor's cursor (the newest day, table version or file set it has handled) is kept in
//! the lake, `_lakebuild/sensors.json`, and moves only after the job it fired has succeeded (a failed run is tried again by the next tick): an
//! event is never handled twice, and one that arrives while lakebuild is down is seen by
//! the next tick. The first evaluation of a sensor records the present state as its
//! baseline and fires nothing.

use crate::core::error::UsageError;
use crate::core::plan::Reason;
use crate::engine::project::Project;
use crate::engine::{BuildOptions, dry_run};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensorKind {
    NewSourceData,
    AssetMaterialized,
    Files,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSensor {
    job: String,
    kind: SensorKind,
    #[serde(default)]
    asset: Option<String>,
    #[serde(default)]
    path: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Sensor {
    pub name: String,
    pub job: String,
    pub kind: SensorKind,
    pub asset: Option<String>,
    pub path: Option<String>,
}

/// The sensors of `rules_dir/sensors/*.toml`, checked against the rules and jobs.
pub fn load(
    rules_dir: &Path,
    project: &Project,
    jobs: &[crate::orchestration::jobs::Job],
) -> Result<Vec<Sensor>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (name, f, text) in crate::engine::project::config_files(&rules_dir.join("sensors"))? {
        let raw: RawSensor = match toml::from_str(&text) {
            Ok(r) => r,
            Err(e) => {
                errors.push(crate::core::rule_set::toml_error(&f, &text, &e));
                continue;
            }
        };
        let at = f.display();
        if !jobs.iter().any(|j| j.name == raw.job) {
            errors.push(format!(
                "{at}: job '{}' does not exist: add rules/jobs/{}.toml",
                raw.job, raw.job
            ));
        }
        match (raw.kind, &raw.asset, &raw.path) {
            (SensorKind::Files, _, None) => errors.push(format!(
                "{at}: kind = \"files\" needs path = \"inbox/*.csv\""
            )),
            (SensorKind::NewSourceData | SensorKind::AssetMaterialized, None, _) => {
                errors.push(format!("{at}: this kind needs asset = \"<asset>\""))
            }
            (_, Some(a), _) if project.rules.get(a).is_none() => {
                errors.push(format!("{at}: no asset '{a}'"))
            }
            (SensorKind::Files, _, Some(p)) if globset::Glob::new(p).is_err() => {
                errors.push(format!("{at}: path = \"{p}\" is not a valid glob"))
            }
            _ => {}
        }
        out.push(Sensor {
            name,
            job: raw.job,
            kind: raw.kind,
            asset: raw.asset,
            path: raw.path,
        });
    }
    if !errors.is_empty() {
        return Err(UsageError(format!("invalid sensors:\n{}", errors.join("\n"))).into());
    }
    Ok(out)
}

fn cursors_file(lake: &Path) -> PathBuf {
    lake.join("_lakebuild").join("sensors.json")
}

/// The cursors; a missing file is no cursor yet, a corrupt one an error (silently
/// resetting would re-baseline every sensor and lose the events in between).
pub fn load_cursors(lake: &Path) -> Result<BTreeMap<String, String>> {
    crate::lake::state_file::read_json(&cursors_file(lake))
}

fn save_cursors(lake: &Path, c: &BTreeMap<String, String>) -> Result<()> {
    crate::lake::state_file::write_json(&cursors_file(lake), c)
}

/// The sensor's present state, as a cursor string that grows (compares greater) when
/// something new happens.
fn observe(project: &Project, s: &Sensor, today: chrono::NaiveDate) -> Result<String> {
    match s.kind {
        SensorKind::AssetMaterialized => {
            let asset = s.asset.as_deref().unwrap_or_default();
            let v = crate::lake::log::load(&project.lake.table(asset))?
                .version
                .unwrap_or(-1);
            Ok(format!("{v:020}"))
        }
        SensorKind::NewSourceData => {
            let asset = s.asset.as_deref().unwrap_or_default();
            let opts = BuildOptions {
                targets: vec![asset.to_string()],
                only: true,
                dry_run: true,
                today,
                ..Default::default()
            };
            let newest_missing = dry_run(project, &opts)?
                .into_iter()
                .flat_map(|p| p.to_build.into_iter())
                .filter(|(_, r)| r.iter().any(|x| matches!(x, Reason::Missing)))
                .filter_map(|(id, _)| id.date())
                .max();
            let have = crate::lake::log::load(&project.lake.table(asset))?
                .current
                .keys()
                .filter_map(|p| p.date())
                .max();
            // The newest day the source offers: a missing one, else the newest present.
            Ok(newest_missing
                .or(have)
                .map(|d| d.to_string())
                .unwrap_or_default())
        }
        SensorKind::Files => {
            let pattern = project.root.join(s.path.as_deref().unwrap_or_default());
            let glob = globset::Glob::new(&pattern.to_string_lossy())
                .context("bad path glob")?
                .compile_matcher();
            let base = pattern
                .ancestors()
                .find(|a| !a.to_string_lossy().contains(['*', '?', '[']))
                .map(Path::to_path_buf)
                .unwrap_or(project.root.clone());
            let mut seen: Vec<String> = walkdir::WalkDir::new(&base)
                .into_iter()
                .flatten()
                .filter(|e| e.file_type().is_file() && glob.is_match(e.path()))
                .filter_map(|e| {
                    let m = e.metadata().ok()?;
                    let mtime = m
                        .modified()
                        .ok()?
                        .duration_since(std::time::UNIX_EPOCH)
                        .ok()?
                        .as_nanos();
                    Some(format!("{}:{}:{mtime}", e.path().display(), m.len()))
                })
                .collect();
            seen.sort();
            // A count prefix keeps the cursor growing as files arrive; the digest notices
            // a changed file.
            let digest = blake3::hash(seen.join("\n").as_bytes()).to_hex();
            Ok(format!("{:010}:{}", seen.len(), &digest[..16]))
        }
    }
}

/// One sensor that fired.
#[derive(Debug, Clone)]
pub struct Firing {
    pub sensor: String,
    pub kind: SensorKind,
    pub job: String,
    pub cursor: String,
    pub previous: Option<String>,
}

/// Evaluates every sensor; first sights are recorded as baselines at once, firings are
/// returned for the caller to run (then [`commit`] their cursors).
pub fn evaluate(
    project: &Project,
    sensors: &[Sensor],
    today: chrono::NaiveDate,
) -> Result<Vec<Firing>> {
    let lake = &project.lake.root;
    let mut cursors = load_cursors(lake)?;
    let mut fired = Vec::new();
    let mut baseline = false;
    for s in sensors {
        let now = observe(project, s, today)?;
        match cursors.get(&s.name) {
            None => {
                cursors.insert(s.name.clone(), now);
                baseline = true;
            }
            Some(old) if *old != now && (s.kind == SensorKind::Files || now > *old) => {
                fired.push(Firing {
                    sensor: s.name.clone(),
                    kind: s.kind,
                    job: s.job.clone(),
                    cursor: now,
                    previous: Some(old.clone()),
                })
            }
            _ => {}
        }
    }
    if baseline {
        save_cursors(lake, &cursors)?;
    }
    Ok(fired)
}

/// Moves a sensor's cursor once the job it fired has run.
pub fn commit(project: &Project, f: &Firing) -> Result<()> {
    let lake = &project.lake.root;
    let mut c = load_cursors(lake)?;
    c.insert(f.sensor.clone(), f.cursor.clone());
    save_cursors(lake, &c)
}
