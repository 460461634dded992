//! A variant build: one asset built with other params (a tuning trial's), keyed exactly
//! as a build of the asset with those params in its rule would be, and committed to a
//! side table instead of the asset's own, so the asset's current version and its aliases
//! never move. It holds no lake lock while the op runs: variants of one asset run side by
//! side, in threads or processes. Instead:
//!
//! - a claim on the key (an OS file lock, `_lakebuild/variants/<asset>/claims/<key>`)
//!   makes a second builder of the same key wait for the first and then find its result,
//!   so one key is never built twice at once, and a killed builder frees its claim;
//! - the side table's commits take its own short lock (`…/<asset>/table.lock`).
//!
//! Before running the op a variant looks for its key in the side table's history and then
//! in the asset's own table's (a variant with the rule's own params, or params the rule
//! had once): then no op runs and nothing is committed. The run
//! history records every variant step like a build's (the trigger says which study).

use super::history_rows::row;
use super::options::{BuildOptions, StepSummary};
use super::prepare::{Prepared, may_restore, prepare_to_run, restorable_file};
use super::project::{Project, States};
use super::publish::publish;
use super::retry::run_with_retry;
use crate::core::error::UsageError;
use crate::core::partition::PartitionId;
use crate::core::table_state::{AssetState, KeyedFile};
use crate::lake::{lock, parquet, runs};
use crate::op::Reports;
use anyhow::{Context, Result, anyhow, bail};
use polars::prelude::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What to build.
pub struct Variant {
    pub asset: String,
    /// Params overlaid on the rule's `[params]`.
    pub overlay: BTreeMap<String, Value>,
    /// The side table its materializations are committed to.
    pub table: PathBuf,
    /// Where the op's intermediate values go (a tuning study), if anywhere.
    pub reports: Option<Arc<dyn Reports>>,
}

/// Where a variant's materialization came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The op ran.
    Built,
    /// A version of the variants table held the key: no op ran, nothing was committed.
    Restored,
    /// A version of the asset's own table held it (built by the pipeline with these
    /// params): no op ran, nothing was committed.
    AssetTable,
}

impl Origin {
    /// Its name in reports and in a study's trial attributes.
    pub fn name(self) -> &'static str {
        match self {
            Origin::Built => "built",
            Origin::Restored => "restored",
            Origin::AssetTable => "asset_table",
        }
    }
}

/// A finished variant: its key and the table and version that hold its materialization.
#[derive(Debug, Clone)]
pub struct Built {
    pub key: String,
    pub origin: Origin,
    pub table: PathBuf,
    pub version: i64,
    /// The materialization's file, relative to `table`.
    pub file: String,
}

impl Built {
    /// The materialization as stored.
    pub fn frame(&self) -> Result<DataFrame> {
        Ok(parquet::scan_files(&[self.table.join(&self.file)])?.collect()?)
    }
}

/// The side table of `asset`'s variants in `lake`.
pub fn side_table(project: &Project, asset: &str) -> PathBuf {
    variants_dir(&project.lake.root, asset).join("table")
}

/// The variants table of one asset, read on first use: where a build, and its plan, look
/// for a key no version of the asset's own table holds (a tuning trial built it).
pub(crate) struct VariantKeys<'p> {
    project: &'p Project,
    asset: &'p str,
    state: std::cell::OnceCell<Option<AssetState>>,
}

impl<'p> VariantKeys<'p> {
    pub(crate) fn new(project: &'p Project, asset: &'p str) -> Self {
        VariantKeys {
            project,
            asset,
            state: std::cell::OnceCell::new(),
        }
    }

    /// The variants table's state and its latest file that holds `key`, if any.
    pub(crate) fn restorable(&self, key: &str) -> Result<Option<(&AssetState, &KeyedFile)>> {
        if self.state.get().is_none() {
            let table = side_table(self.project, self.asset);
            let state = if table.join("_delta_log").is_dir() {
                Some(crate::lake::log::load(&table)?)
            } else {
                None
            };
            let _ = self.state.set(state);
        }
        Ok(self
            .state
            .get()
            .and_then(Option::as_ref)
            .and_then(|s| restorable_file(s, key).map(|k| (s, k))))
    }
}

/// Copies a data file of one table into another under the same name (a hard link where
/// the file system allows): files are immutable, named by their key.
pub fn copy_file(from: &Path, to: &Path, file: &str) -> Result<()> {
    let (src, dst) = (from.join(file), to.join(file));
    if dst.is_file() {
        return Ok(());
    }
    if let Some(d) = dst.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let tmp = dst.with_extension("copying");
    if std::fs::hard_link(&src, &tmp).is_err() {
        std::fs::copy(&src, &tmp)
            .with_context(|| format!("cannot copy {} to {}", src.display(), tmp.display()))?;
    }
    std::fs::rename(&tmp, &dst)
        .with_context(|| format!("cannot move {} into place", dst.display()))?;
    Ok(())
}

fn variants_dir(lake: &Path, asset: &str) -> PathBuf {
    lake.join("_lakebuild").join("variants").join(asset)
}

/// The rule's params with `overlay` drawn over them, checked by the op as a rule of its
/// own would be (a value the op refuses is an error, before any work).
pub fn variant_project(project: &Project, v: &Variant) -> Result<Project> {
    let rule = project
        .rules
        .get(&v.asset)
        .ok_or_else(|| anyhow!(UsageError(format!("no rule for '{}'", v.asset))))?;
    if rule.daily {
        bail!(UsageError(format!(
            "'{}' is partitioned by day: variants (tuning trials) build assets that write one table, such as a trained model",
            v.asset
        )));
    }
    let op = project
        .registry
        .find(&rule.op)
        .ok_or_else(|| anyhow!("op '{}' is not registered", rule.op))?;
    let mut r = rule.clone();
    r.params = crate::core::rule::tune::overlay(&rule.params, &v.overlay);
    // A variant is not the asset: no policy moves its versions, no tracker files them as
    // the asset's, and a failure is final (the study decides what to try next).
    r.promotion = None;
    r.tracking = None;
    r.tune = None;
    r.retry.attempts = 1;
    let refused: Vec<String> = op.validate(&r).into_iter().map(|(_, e)| e).collect();
    if !refused.is_empty() {
        bail!(UsageError(format!(
            "{}: the params {} are refused: {}",
            rule.file.display(),
            serde_json::to_string(&v.overlay).unwrap_or_default(),
            refused.join("; ")
        )));
    }
    let mut rules = project.rules.clone();
    rules.rules.insert(v.asset.clone(), r);
    Ok(Project {
        root: project.root.clone(),
        rules_dir: project.rules_dir.clone(),
        rules,
        lake: project.lake.clone().with_table(&v.asset, v.table.clone()),
        registry: project.registry.clone(),
        timezone: project.timezone,
    })
}

/// The key `v` would be built under now (its inputs as they are).
pub fn key(project: &Project, v: &Variant, opts: &BuildOptions) -> Result<String> {
    let trial = variant_project(project, v)?;
    Ok(assess(&trial, &v.asset, opts)?.0)
}

/// Builds `v` (see the module doc). `opts.trigger` names it in the run history; an
/// `Err` is a failure of the variant (the op's, a check's, or the lake's).
pub fn build_variant(
    project: &Project,
    v: &Variant,
    opts: &BuildOptions,
    run_id: &str,
) -> Result<Built> {
    let trial = variant_project(project, v)?;
    let asset = v.asset.as_str();
    let dir = variants_dir(&project.lake.root, asset);
    std::fs::create_dir_all(dir.join("claims"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let lake_root = &project.lake.root;
    let rel = |name: &str| format!("variants/{asset}/{name}");
    let started = crate::clock::now_ms();
    let mut rows = Vec::new();

    // The key under the inputs as they are now; claimed, then assessed again (whoever
    // held the claim may have built it, or the inputs moved meanwhile).
    let mut key = assess(&trial, asset, opts)?.0;
    let (_claim, prep, states) = loop {
        let claim = lock::acquire_named(
            lake_root,
            &rel(&format!("claims/{key}")),
            run_id,
            CLAIM_WAIT,
        )?;
        let (now, prep, states) = assess(&trial, asset, opts)?;
        if now == key {
            break (claim, prep, states);
        }
        key = now;
    };
    let a = prep
        .assess_all(asset, opts, false)
        .into_iter()
        .find(|a| a.id == PartitionId::Whole)
        .ok_or_else(|| anyhow!("'{asset}' has nothing to build (no inputs yet?)"))?;
    let mut summary = StepSummary {
        asset: asset.to_string(),
        ..Default::default()
    };
    let result = (|| -> Result<Built> {
        // A version of the variants table, or of the asset's own table (built with these
        // params by the pipeline), that holds the key: nothing runs, nothing is committed.
        let own = crate::lake::log::load(&project.lake.table(asset))?;
        let found = [(&*prep.state, Origin::Restored), (&own, Origin::AssetTable)]
            .into_iter()
            .find_map(|(state, origin)| {
                restorable_file(state, &key).map(|k| (state.table.clone(), k.clone(), origin))
            })
            .filter(|_| may_restore(&a, opts.force));
        if let Some((table, k, origin)) = found {
            let now = crate::clock::now_ms();
            let mut r = row(run_id, opts, asset, "restored", 1, started, now, None, None);
            r.key = Some(key.clone());
            rows.push(r);
            return Ok(Built {
                key: key.clone(),
                origin,
                table,
                version: k.version,
                file: k.record.file.clone(),
            });
        }
        let mut prep = prep;
        prep.reports = v.reports.clone();
        let out = run_with_retry(
            &prep,
            asset,
            vec![PartitionId::Whole],
            &BTreeSet::new(),
            &trial,
            run_id,
            &mut summary,
            &mut rows,
            opts,
        )?;
        // Committed against the side table as it is now (other variants commit too),
        // with the key and reads the op ran under.
        let _table = lock::acquire_named(lake_root, &rel("table.lock"), run_id, TABLE_WAIT)?;
        states.reload(asset)?;
        let now = prepare_to_run(&trial, &states, asset, opts)?;
        publish(
            &now,
            asset,
            &v.table,
            run_id,
            out,
            &[],
            std::slice::from_ref(&a),
            &mut summary,
            &mut rows,
            opts,
            started,
        )?;
        committed(&trial, asset, &key)
    })();
    // A build the study pruned did not fail: its rows say so.
    if result.is_err() && v.reports.as_ref().is_some_and(|r| r.pruned()) {
        for r in rows.iter_mut().filter(|r| r.outcome == "failed") {
            r.outcome = "pruned".into();
        }
    }
    if result.is_err()
        && !rows
            .iter()
            .any(|r| r.outcome == "failed" || r.outcome == "pruned")
    {
        let now = crate::clock::now_ms();
        let msg = result.as_ref().err().map(|e| format!("{e:#}"));
        let mut r = row(run_id, opts, asset, "failed", 1, started, now, None, msg);
        r.key = Some(key.clone());
        rows.push(r);
    }
    runs::append(&project.lake, &rows)?;
    result
}

/// How long a variant waits for another builder of the same key (it is training).
const CLAIM_WAIT: Duration = Duration::from_secs(24 * 3600);
/// How long a commit to the side table waits for another one.
const TABLE_WAIT: Duration = Duration::from_secs(600);

/// The key of the variant's (whole-table) materialization now, with the preparation.
fn assess<'a>(
    trial: &'a Project,
    asset: &str,
    opts: &BuildOptions,
) -> Result<(String, Prepared<'a>, States)> {
    let states = States::new(&trial.lake);
    let prep = prepare_to_run(trial, &states, asset, opts)?;
    let key = prep
        .assess_all(asset, opts, false)
        .into_iter()
        .find(|a| a.id == PartitionId::Whole)
        .map(|a| a.key)
        .ok_or_else(|| anyhow!("'{asset}' has nothing to build (no inputs yet?)"))?;
    Ok((key, prep, states))
}

/// The side table's current materialization, which must hold `key`.
fn committed(trial: &Project, asset: &str, key: &str) -> Result<Built> {
    let state = crate::lake::log::load(&trial.lake.table(asset))?;
    let c = state
        .current
        .get(&PartitionId::Whole)
        .filter(|c| c.record().key == key)
        .ok_or_else(|| anyhow!("the variant of '{asset}' was not published (its checks?)"))?;
    Ok(Built {
        key: key.to_string(),
        origin: Origin::Built,
        table: trial.lake.table(asset),
        version: c.version,
        file: c.record().file.clone(),
    })
}
