//! The build: resolve targets, assess every partition, restore what an older version
//! already holds, run the stale rest in dependency order (`-j N` steps at once), audit,
//! publish, and record each step in the run history. Also the dry-run plan, which is the
//! same assessment without execution, with reasons.

use crate::canonical::short;
use crate::checks::{CheckResult, run_checks};
use crate::error::{Transience, UsageError, transience};
use crate::lake::content_hash::{canonical_order, hash_sorted};
use crate::lake::log::AssetState;
use crate::lake::parquet::{normalize_for_delta, schema_from_record, schema_record};
use crate::lake::record::{
    CommitRecord, PartitionOutcome, PartitionRecord, RECORD_FORMAT, RestatementRecord,
    RuleIngredients, restatement_digest,
};
use crate::lake::runs::{RunRow, unique_suffix};
use crate::lake::{lock, parquet, runs, table};
use crate::ops::{self, Op, OpContext, OpInput, RestatementEvent};
use crate::partition::{Coverage, PartitionId};
use crate::plan::{
    Assessment, InputView, Reading, Reason, assess, diff_rules, domain, partition_key,
    rule_ingredients,
};
use crate::progress::Progress;
use crate::project::{Project, States};
use crate::resources;
use crate::rule::{Backoff, Rule};
use crate::source::{SourceFile, hash_sources};
use anyhow::{Context, Result, anyhow, bail};
use chrono::NaiveDate;
use polars::prelude::*;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub targets: Vec<String>,
    /// Build only the targets, not their upstream.
    pub only: bool,
    pub force: bool,
    pub dry_run: bool,
    pub jobs: usize,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub keep_going: bool,
    pub trigger: String,
    pub lock_timeout: Duration,
    /// The injectable clock's date, for `to = "today"`.
    pub today: NaiveDate,
    pub progress: bool,
    /// Most partitions of one daily asset computed (and committed) together.
    pub batch_size: usize,
    /// Fetch the latest days of sources that ask for it again (`recheck_days`); off for
    /// `status`, which reports what is stale, not what a build would look at again.
    pub recheck: bool,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            targets: vec![],
            only: false,
            force: false,
            dry_run: false,
            jobs: 1,
            from: None,
            to: None,
            keep_going: false,
            trigger: "manual".into(),
            recheck: true,
            lock_timeout: Duration::from_secs(600),
            today: chrono::Utc::now().date_naive(),
            progress: false,
            batch_size: 500,
        }
    }
}

/// What one step did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StepSummary {
    pub asset: String,
    pub built: usize,
    pub cut_off: usize,
    pub restored: usize,
    pub fresh: usize,
    pub removed: usize,
    pub ops_run: usize,
    pub failed: Option<String>,
    pub skipped: bool,
    pub attempts: usize,
    pub duration_ms: i64,
    pub checks: Vec<CheckResult>,
    /// Input bytes the op read in the latest batch (for the history rows).
    #[serde(skip)]
    pub bytes_read: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    pub run_id: String,
    pub steps: Vec<StepSummary>,
}

impl BuildReport {
    pub fn ok(&self) -> bool {
        self.steps.iter().all(|s| s.failed.is_none() && !s.skipped)
    }
    pub fn ops_run(&self) -> usize {
        self.steps.iter().map(|s| s.ops_run).sum()
    }
}

/// Stack size of a build step's thread.
const STEP_STACK_BYTES: usize = 256 << 20;

/// A new run id: UTC time plus a random suffix.
pub fn new_run_id() -> String {
    format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        &unique_suffix()[..6]
    )
}

/// The assets a build touches, in dependency order.
pub fn selection(project: &Project, targets: &[String], only: bool) -> Result<Vec<String>> {
    for t in targets {
        project.rules.require(t)?;
    }
    if targets.is_empty() {
        return Ok(project.rules.order.clone());
    }
    if only {
        return Ok(project
            .rules
            .order
            .iter()
            .filter(|a| targets.contains(a))
            .cloned()
            .collect());
    }
    Ok(project.rules.upstream_closure(targets))
}

/// Everything needed to assess or run one asset.
pub struct Prepared<'a> {
    pub rule: &'a Rule,
    pub op: &'static dyn Op,
    pub sources: Vec<SourceFile>,
    pub ingredients: RuleIngredients,
    pub state: Arc<AssetState>,
    /// (state, view, coverage) per input, in declared order.
    pub inputs: Vec<(Arc<AssetState>, InputView, Coverage)>,
    /// A daily import that learns its partitions from its output.
    pub discovered: bool,
    /// Partitions to build (restricted by --from/--to), when not discovered.
    pub targets: Vec<PartitionId>,
    /// Every partition the asset should have, whatever --from/--to select.
    pub domain: Vec<PartitionId>,
    /// Whether `targets` is the whole domain (so partitions outside it are removed).
    pub full_domain: bool,
    /// The digest of the restatements covering each partition (only those covered).
    pub restated: BTreeMap<PartitionId, String>,
}

impl Prepared<'_> {
    /// The digest of the restatements that cover partition `id` (part of its key).
    pub fn restated_digest(&self, id: PartitionId) -> Option<&str> {
        self.restated.get(&id).map(String::as_str)
    }

    /// Names the restatements in a `Reason::Restated` of `a`: those published after the
    /// version its current materialization was made at.
    pub fn name_restatements(&self, a: &mut Assessment) {
        let since = self.state.current.get(&a.id).map(|c| c.version);
        for r in &mut a.reasons {
            if let Reason::Restated { restatements } = r {
                *restatements = self
                    .state
                    .restatements_covering(a.id, None)
                    .into_iter()
                    .filter(|(v, _)| since.is_none_or(|s| *v > s))
                    .map(|(_, r)| r.id.clone())
                    .collect();
            }
        }
    }

    fn readings(&self) -> Vec<Reading<'_>> {
        self.inputs
            .iter()
            .map(|(s, v, c)| Reading {
                view: v,
                coverage: *c,
                state: s,
            })
            .collect()
    }

    /// Assesses every target partition.
    pub fn assess_all(&self, asset: &str, opts: &BuildOptions, explain: bool) -> Vec<Assessment> {
        let readings = self.readings();
        let force = opts.force;
        let recheck = if opts.recheck {
            self.op.recheck_days(&self.rule.params)
        } else {
            0
        };
        let recent = self.targets.len().saturating_sub(recheck);
        self.targets
            .par_iter()
            .enumerate()
            .map(|(i, id)| {
                let mut a = assess(
                    asset,
                    *id,
                    self.state.current.get(id),
                    &self.ingredients,
                    &readings,
                    self.restated_digest(*id),
                    explain,
                );
                if explain {
                    self.name_restatements(&mut a);
                }
                if force && a.reasons.is_empty() {
                    a.reasons.push(Reason::Forced);
                }
                if i >= recent && a.reasons.is_empty() {
                    a.reasons.push(Reason::Recheck { days: recheck });
                }
                a
            })
            .collect()
    }

    /// Why a discovered import must run again (empty: it is fresh).
    pub fn source_reasons(&self, force: bool) -> Vec<Reason> {
        let Some((_, last)) = self.state.last_commit() else {
            return vec![Reason::Missing];
        };
        if last.rule.digest != self.ingredients.digest {
            return vec![Reason::Rule {
                changes: diff_rules(&last.rule, &self.ingredients),
            }];
        }
        if force { vec![Reason::Forced] } else { vec![] }
    }

    /// Partitions currently materialized but outside the domain (to remove).
    pub fn obsolete(&self) -> Vec<PartitionId> {
        if self.discovered || !self.full_domain {
            return vec![];
        }
        let keep: BTreeSet<&PartitionId> = self.targets.iter().collect();
        self.state
            .current
            .keys()
            .filter(|k| !keep.contains(k))
            .copied()
            .collect()
    }
}

pub fn prepare<'a>(
    project: &'a Project,
    states: &States,
    asset: &str,
    opts: &BuildOptions,
) -> Result<Prepared<'a>> {
    let rule = project.rules.require(asset)?;
    let op = ops::find(&rule.op).ok_or_else(|| anyhow!("unknown op {}", rule.op))?;
    let mut globs = rule.sources.clone();
    globs.extend(op.source_globs(&rule.params));
    let sources = hash_sources(&project.root, &globs, &rule.file.display().to_string())?;
    let ingredients = rule_ingredients(rule, op, &sources);
    let state = states.get(asset)?;
    let mut inputs = Vec::new();
    for i in &rule.inputs {
        let s = states.get(&i.asset)?;
        let v = match &i.alias {
            None => InputView::of(&i.asset, &s),
            Some(alias) => {
                let version = crate::lake::aliases::resolve(&project.lake.root, &i.asset, alias)?
                    .ok_or_else(|| {
                        UsageError(format!(
                            "{}: input {}@{alias}: the alias is not set; list versions with `lakebuild model list` and set it with `lakebuild model alias {alias} VERSION`",
                            rule.file.display(),
                            i.asset
                        ))
                    })?;
                let v = InputView::at(&i.asset, &s, version);
                if v.ids.is_empty() {
                    return Err(UsageError(format!(
                        "{}: input {}@{alias} points to version {version}, which holds no partitions: move the alias (`lakebuild model list`)",
                        rule.file.display(),
                        i.asset
                    ))
                    .into());
                }
                v
            }
        };
        inputs.push((s, v, i.coverage));
    }
    let daily_inputs: Vec<(&InputView, &crate::rule::Input)> = rule
        .inputs
        .iter()
        .zip(&inputs)
        .filter(|(i, _)| project.rules.get(&i.asset).is_some_and(|r| r.daily))
        .map(|(i, (_, v, _))| (v, i))
        .collect();
    let dom = if rule.daily && rule.dates.is_none() && daily_inputs.is_empty() {
        None
    } else {
        domain(rule, &daily_inputs, opts.today)
    };
    let discovered = dom.is_none();
    let domain_ids = dom.unwrap_or_default();
    let mut targets = domain_ids.clone();
    let full_domain = opts.from.is_none() && opts.to.is_none();
    if rule.daily {
        targets.retain(|p| {
            let d = p.date();
            opts.from.is_none_or(|f| d.is_some_and(|d| d >= f))
                && opts.to.is_none_or(|t| d.is_some_and(|d| d <= t))
        });
    }
    let known: Vec<PartitionId> = domain_ids
        .iter()
        .chain(state.current.keys())
        .copied()
        .collect();
    let restated = state.restated(&known);
    Ok(Prepared {
        rule,
        op,
        sources,
        ingredients,
        state,
        inputs,
        discovered,
        targets,
        domain: domain_ids,
        full_domain,
        restated,
    })
}

// ---------------------------------------------------------------------------------
// Dry run / status plan

/// The plan for one asset: what would run and why.
#[derive(Debug, Clone, Serialize)]
pub struct AssetPlan {
    pub asset: String,
    pub partitions_total: usize,
    pub fresh: usize,
    pub to_restore: Vec<PartitionId>,
    /// (partition, reasons) that would run.
    pub to_build: Vec<(PartitionId, Vec<Reason>)>,
    pub to_remove: Vec<PartitionId>,
    /// For a discovered import: why it would run again (empty: fresh).
    pub source_reasons: Vec<Reason>,
    pub discovered: bool,
}

impl AssetPlan {
    pub fn is_fresh(&self) -> bool {
        self.to_restore.is_empty()
            && self.to_build.is_empty()
            && self.to_remove.is_empty()
            && self.source_reasons.is_empty()
    }
}

/// Assesses the selection without running anything. Partitions whose inputs are stale
/// upstream are reported as waiting on them.
pub fn plan(project: &Project, opts: &BuildOptions) -> Result<Vec<AssetPlan>> {
    plan_with(project, opts, &States::new(&project.lake))
}

/// `plan`, reading the lake through `states` (so that callers can reuse what it read).
pub fn plan_with(
    project: &Project,
    opts: &BuildOptions,
    states: &States,
) -> Result<Vec<AssetPlan>> {
    let assets = selection(project, &opts.targets, opts.only)?;
    states.preload(&assets)?;
    let mut stale: HashMap<String, BTreeSet<PartitionId>> = HashMap::new();
    let mut whole_stale: BTreeSet<String> = BTreeSet::new();
    let mut plans = Vec::new();
    for asset in &assets {
        let prep = prepare(project, states, asset, opts)?;
        let mut plan = AssetPlan {
            asset: asset.clone(),
            partitions_total: if prep.discovered {
                prep.state.current.len()
            } else {
                prep.targets.len()
            },
            fresh: 0,
            to_restore: vec![],
            to_build: vec![],
            to_remove: prep.obsolete(),
            source_reasons: vec![],
            discovered: prep.discovered,
        };
        if prep.discovered {
            plan.source_reasons = prep.source_reasons(opts.force);
            if plan.source_reasons.is_empty() {
                plan.fresh = prep.state.current.len();
            } else {
                whole_stale.insert(asset.clone());
            }
            plans.push(plan);
            continue;
        }
        let mut mine = BTreeSet::new();
        for mut a in prep.assess_all(asset, opts, true) {
            if a.fresh() {
                // Fresh now, but an input partition it covers may be rebuilt first.
                for ((_, view, cov), input) in prep.inputs.iter().zip(&prep.rule.inputs) {
                    let (lo, hi) = view.cover(*cov, a.id);
                    let pending: Vec<PartitionId> = if whole_stale.contains(&input.asset) {
                        view.ids[lo..hi].to_vec()
                    } else if let Some(up) = stale.get(&input.asset) {
                        view.ids[lo..hi]
                            .iter()
                            .filter(|p| up.contains(p))
                            .copied()
                            .collect()
                    } else {
                        vec![]
                    };
                    if !pending.is_empty() {
                        a.reasons.push(Reason::UpstreamPending {
                            asset: input.asset.clone(),
                            partitions: pending,
                        });
                    }
                }
            }
            if a.fresh() {
                plan.fresh += 1;
                continue;
            }
            mine.insert(a.id);
            let restorable =
                may_restore(&a, opts.force) && restorable_file(&prep.state, &a.key).is_some();
            if restorable {
                plan.to_restore.push(a.id);
            } else {
                plan.to_build.push((a.id, a.reasons));
            }
        }
        stale.insert(asset.clone(), mine);
        plans.push(plan);
    }
    Ok(plans)
}

/// Whether a stale partition may be restored from an older file with its key rather
/// than run: not when forced, not for a re-check (it must ask the source again), and not
/// while it waits on upstream (its key is not final). Planning and building agree on it.
fn may_restore(a: &Assessment, force: bool) -> bool {
    !force
        && !matches!(
            a.reasons.first(),
            Some(Reason::UpstreamPending { .. } | Reason::Recheck { .. })
        )
}

/// The most recent file that held `key` and still exists.
fn restorable_file<'a>(
    state: &'a AssetState,
    key: &str,
) -> Option<&'a crate::lake::log::KeyedFile> {
    state
        .by_key()
        .get(key)?
        .iter()
        .rev()
        .find(|k| state.table.join(&k.record.file).is_file())
}

// ---------------------------------------------------------------------------------
// Execution

/// Runs a build (or, with `dry_run`, only plans it: use `plan` for the details).
pub fn build(project: &Project, opts: &BuildOptions) -> Result<BuildReport> {
    let run_id = new_run_id();
    let assets = selection(project, &opts.targets, opts.only)?;
    let _lock = lock::acquire(
        &project.lake.root,
        &format!("run {run_id}"),
        opts.lock_timeout,
    )?;
    // Planned after the lock: whatever the previous holder built is now seen as done.
    let states = States::new(&project.lake);
    states.preload(&assets)?;
    let progress = Progress::new(opts.progress);
    let deps: HashMap<&str, Vec<&str>> = assets
        .iter()
        .map(|a| {
            let r = &project.rules.rules[a];
            let d = r
                .inputs
                .iter()
                .map(|i| i.asset.as_str())
                .filter(|i| assets.iter().any(|x| x == i))
                .collect();
            (a.as_str(), d)
        })
        .collect();

    let mut done: HashMap<String, StepSummary> = HashMap::new();
    let mut all_rows: Vec<RunRow> = Vec::new();
    let mut started: BTreeSet<String> = BTreeSet::new();
    let mut stop = false;
    let jobs = opts.jobs.max(1);
    std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = std::sync::mpsc::channel::<(String, Result<(StepSummary, Vec<RunRow>)>)>();
        let mut running = 0usize;
        loop {
            if !stop {
                for a in &assets {
                    if running >= jobs {
                        break;
                    }
                    if started.contains(a) {
                        continue;
                    }
                    let d = &deps[a.as_str()];
                    if !d.iter().all(|x| done.contains_key(*x)) {
                        continue;
                    }
                    started.insert(a.clone());
                    if let Some(bad) = d.iter().find(|x| {
                        done.get(**x)
                            .is_some_and(|s| s.failed.is_some() || s.skipped)
                    }) {
                        let now = resources::now_ms();
                        all_rows.push(row(&run_id, opts, a, "skipped", 1, now, now, None, None));
                        let s = StepSummary {
                            asset: a.clone(),
                            skipped: true,
                            failed: None,
                            ..Default::default()
                        };
                        progress.println(&format!("skipped {a}: its input {bad} did not build"));
                        done.insert(a.clone(), s);
                        continue;
                    }
                    running += 1;
                    let tx = tx.clone();
                    let a2 = a.clone();
                    let (states, progress, run_id) = (&states, &progress, &run_id);
                    // Polars plans and deltalake's log replay recurse deeply on large
                    // tables: give each step a roomy stack (virtual memory only).
                    let spawned = std::thread::Builder::new()
                        .name(format!("step-{a2}"))
                        .stack_size(STEP_STACK_BYTES)
                        .spawn_scoped(scope, move || {
                            let r = run_step(project, states, &a2, opts, run_id, progress);
                            let _ = tx.send((a2, r));
                        });
                    if let Err(e) = spawned {
                        return Err(anyhow!("cannot start a build thread: {e}"));
                    }
                }
            }
            if running == 0 {
                // Nothing running and nothing launchable: mark whatever is left, with a
                // history row so that `lakebuild retry` builds it too.
                for a in &assets {
                    if !done.contains_key(a) {
                        let now = resources::now_ms();
                        all_rows.push(row(
                            &run_id,
                            opts,
                            a,
                            "skipped",
                            1,
                            now,
                            now,
                            None,
                            Some("not started: the build stopped at an earlier failure".into()),
                        ));
                        done.insert(
                            a.clone(),
                            StepSummary {
                                asset: a.clone(),
                                skipped: true,
                                ..Default::default()
                            },
                        );
                    }
                }
                break;
            }
            let (asset, result) = rx.recv().map_err(|_| anyhow!("a build worker vanished"))?;
            running -= 1;
            let summary = match result {
                Ok((summary, rows)) => {
                    all_rows.extend(rows);
                    summary
                }
                Err(e) => {
                    // Errors before any attempt (sources, state): a failed step too.
                    let now = resources::now_ms();
                    let msg = format!("{e:#}");
                    all_rows.push(row(
                        &run_id,
                        opts,
                        &asset,
                        "failed",
                        1,
                        now,
                        now,
                        None,
                        Some(msg.clone()),
                    ));
                    StepSummary {
                        asset: asset.clone(),
                        failed: Some(msg),
                        attempts: 1,
                        ..Default::default()
                    }
                }
            };
            if let Some(msg) = &summary.failed {
                progress.println(&format!("FAILED {asset}: {msg}"));
                if !opts.keep_going {
                    stop = true;
                }
            }
            done.insert(asset, summary);
        }
        Ok(())
    })?;

    let steps: Vec<StepSummary> = assets.iter().filter_map(|a| done.remove(a)).collect();
    let report = BuildReport {
        run_id: run_id.clone(),
        steps,
    };
    // A build that did nothing writes nothing, not even history: cron can call it freely.
    let did_something = report.steps.iter().any(|s| {
        s.built + s.cut_off + s.restored + s.removed > 0 || s.failed.is_some() || s.skipped
    });
    if did_something {
        runs::append(&project.lake, &all_rows)?;
    }
    let scratch = project.lake.scratch(&run_id);
    if scratch.exists() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
fn row(
    run_id: &str,
    opts: &BuildOptions,
    asset: &str,
    outcome: &str,
    attempt: usize,
    started: i64,
    ended: i64,
    parts: Option<(&[PartitionId], Option<&str>, u64, u64)>,
    error: Option<String>,
) -> RunRow {
    let (from, to, n, key, rows, bytes) = match parts {
        Some((ids, key, rows, bytes)) => (
            ids.first().map(|p| p.to_string()),
            ids.last().map(|p| p.to_string()),
            ids.len() as i64,
            key.map(String::from),
            rows as i64,
            bytes as i64,
        ),
        None => (None, None, 0, None, 0, 0),
    };
    RunRow {
        run_id: run_id.to_string(),
        trigger: opts.trigger.clone(),
        asset: asset.to_string(),
        partition_from: from,
        partition_to: to,
        partitions: n,
        key,
        outcome: outcome.to_string(),
        attempt: attempt as i64,
        started_at: started,
        ended_at: ended,
        duration_ms: ended - started,
        rows,
        bytes,
        bytes_read: 0,
        peak_memory_bytes: resources::peak_memory_bytes(),
        cpu_ms: resources::cpu_ms(),
        error,
        checks: None,
    }
}

/// The history row of a failed attempt on `batch`.
fn failed_row(
    run_id: &str,
    opts: &BuildOptions,
    asset: &str,
    attempt: usize,
    started: i64,
    batch: &[PartitionId],
    msg: &str,
) -> RunRow {
    let parts = Some((batch, None, 0, 0));
    row(
        run_id,
        opts,
        asset,
        "failed",
        attempt,
        started,
        resources::now_ms(),
        parts,
        Some(msg.to_string()),
    )
}

/// The history row of a step that found everything fresh.
fn reused_row(run_id: &str, opts: &BuildOptions, asset: &str, started: i64) -> RunRow {
    row(
        run_id,
        opts,
        asset,
        "reused",
        1,
        started,
        resources::now_ms(),
        None,
        None,
    )
}

/// Commits to the asset's table with the op's table properties.
fn commit_to_table(
    prep: &Prepared,
    table_dir: &std::path::Path,
    schema: &Schema,
    adds: &[table::NewFile],
    removes: &[table::OldFile],
    record: &CommitRecord,
) -> Result<i64> {
    let properties = prep.op.table_properties(&prep.rule.params);
    table::commit(table_dir, schema, adds, removes, record, &properties)
}

/// The lakebuild record of a commit of `partitions` (and of `removed` ones).
fn commit_record(
    prep: &Prepared,
    asset: &str,
    run_id: &str,
    schema: &Schema,
    partitions: Vec<PartitionRecord>,
    removed: &[PartitionId],
    restatements: Vec<RestatementRecord>,
) -> CommitRecord {
    CommitRecord {
        format: RECORD_FORMAT,
        run_id: run_id.to_string(),
        asset: asset.to_string(),
        rule: prep.ingredients.clone(),
        schema: schema_record(schema),
        partitions,
        removed: removed.to_vec(),
        committed_at: chrono::Utc::now().to_rfc3339(),
        restatements,
    }
}

/// One produced partition, ready to publish.
struct Produced {
    id: PartitionId,
    frame: DataFrame,
    content_hash: String,
    /// Restatements this run adds to it (an earlier partition the source restated).
    restated_by: Vec<String>,
}

/// What one successful op run produced: the batch's partitions, then any earlier
/// partitions the source restated, the restatements, and the checks' results.
struct Output {
    produced: Vec<Produced>,
    events: Vec<RestatementEvent>,
    checks: Vec<CheckResult>,
}

fn backoff_delay(rule: &Rule, attempt: usize) -> Duration {
    let r = &rule.retry;
    let base = match r.backoff {
        Backoff::Exponential => r
            .initial
            .saturating_mul(1u32 << (attempt.saturating_sub(1)).min(20)),
        Backoff::Linear => r.initial.saturating_mul(attempt as u32),
    };
    let d = base.min(r.max);
    if r.jitter {
        // Deterministic enough for logs, varied enough to spread retries.
        let frac = (resources::now_ms() % 1000) as f64 / 1000.0;
        d.mul_f64(0.5 + frac * 0.5)
    } else {
        d
    }
}

fn run_step(
    project: &Project,
    states: &States,
    asset: &str,
    opts: &BuildOptions,
    run_id: &str,
    progress: &Progress,
) -> Result<(StepSummary, Vec<RunRow>)> {
    let t0 = Instant::now();
    let started = resources::now_ms();
    let mut prep = prepare(project, states, asset, opts)?;
    let mut summary = StepSummary {
        asset: asset.to_string(),
        ..Default::default()
    };
    let mut rows = Vec::new();
    let table_dir = project.lake.table(asset);

    if prep.discovered {
        let reasons = prep.source_reasons(opts.force);
        if reasons.is_empty() {
            summary.fresh = prep.state.current.len();
            rows.push(reused_row(run_id, opts, asset, started));
        } else {
            tracing::info!(
                asset,
                "import runs: {}",
                reasons
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            let bar = progress.step(asset, 1);
            let result = run_with_retry(
                &prep,
                asset,
                vec![],
                &BTreeSet::new(),
                project,
                run_id,
                &mut summary,
                &mut rows,
                opts,
            );
            bar.finish_and_clear();
            match result {
                Ok(out) => {
                    let produced = out.produced;
                    let gone: Vec<PartitionId> = prep
                        .state
                        .current
                        .keys()
                        .filter(|k| !produced.iter().any(|p| p.id == **k))
                        .copied()
                        .collect();
                    publish(
                        &prep,
                        asset,
                        &table_dir,
                        run_id,
                        Output {
                            produced,
                            events: out.events,
                            checks: out.checks,
                        },
                        &gone,
                        &[],
                        &mut summary,
                        &mut rows,
                        opts,
                        started,
                    )?;
                }
                Err(e) => summary.failed = Some(format!("{e:#}")),
            }
        }
        states.reload(asset)?;
        summary.duration_ms = t0.elapsed().as_millis() as i64;
        return Ok((summary, rows));
    }

    let assessments = prep.assess_all(asset, opts, false);
    let (fresh, stale): (Vec<_>, Vec<_>) = assessments.into_iter().partition(|a| a.fresh());
    summary.fresh = fresh.len();
    let obsolete = prep.obsolete();
    if stale.is_empty() && obsolete.is_empty() {
        rows.push(reused_row(run_id, opts, asset, started));
        summary.duration_ms = t0.elapsed().as_millis() as i64;
        return Ok((summary, rows));
    }

    // Reuse before recompute: an older version holding the same key.
    let mut restores = Vec::new();
    let mut compute: Vec<Assessment> = Vec::new();
    for a in stale {
        match may_restore(&a, opts.force)
            .then(|| restorable_file(&prep.state, &a.key))
            .flatten()
        {
            Some(k) => restores.push((a, k.clone())),
            None => compute.push(a),
        }
    }
    if !restores.is_empty() || !obsolete.is_empty() {
        restore(
            &prep,
            asset,
            &table_dir,
            run_id,
            &restores,
            &obsolete,
            &mut summary,
            &mut rows,
            opts,
            started,
        )?;
        if !compute.is_empty() {
            // The batches see the table as restored: a source may restate what was
            // restored, and keys against it.
            prep = reprepare(project, states, asset, opts, &prep.ingredients.digest)?;
        }
    }
    if compute.is_empty() {
        states.reload(asset)?;
        summary.duration_ms = t0.elapsed().as_millis() as i64;
        return Ok((summary, rows));
    }

    // Contiguous runs of stale partitions, in batches.
    let index: HashMap<PartitionId, usize> = prep
        .targets
        .iter()
        .enumerate()
        .map(|(i, p)| (*p, i))
        .collect();
    let mut batches: Vec<Vec<Assessment>> = Vec::new();
    for a in compute {
        let i = index.get(&a.id).copied().unwrap_or(0);
        let extend = batches.last().is_some_and(|b: &Vec<Assessment>| {
            b.len() < opts.batch_size.max(1)
                && b.last()
                    .is_some_and(|l| index.get(&l.id).copied().unwrap_or(0) + 1 == i)
        });
        if extend {
            if let Some(b) = batches.last_mut() {
                b.push(a);
            }
        } else {
            batches.push(vec![a]);
        }
    }
    let total: usize = batches.iter().map(|b| b.len()).sum();
    let bar = progress.step(asset, total as u64);
    // What a source may not restate: the partitions this step recomputes (other batches
    // fetch them now).
    let settled: BTreeSet<PartitionId> = batches.iter().flatten().map(|a| a.id).collect();
    for batch in batches {
        let ids: Vec<PartitionId> = batch.iter().map(|a| a.id).collect();
        bar.set_message(format!("{}..{}", ids[0], ids[ids.len() - 1]));
        match run_with_retry(
            &prep,
            asset,
            ids.clone(),
            &settled,
            project,
            run_id,
            &mut summary,
            &mut rows,
            opts,
        ) {
            Ok(out) => {
                let restated = !out.events.is_empty();
                publish(
                    &prep,
                    asset,
                    &table_dir,
                    run_id,
                    out,
                    &[],
                    &batch,
                    &mut summary,
                    &mut rows,
                    opts,
                    started,
                )?;
                if restated {
                    // Later batches restate from, and key against, what this one published.
                    prep = reprepare(project, states, asset, opts, &prep.ingredients.digest)?;
                }
                bar.inc(ids.len() as u64);
            }
            Err(e) => {
                summary.failed = Some(format!("{e:#}"));
                break;
            }
        }
    }
    bar.finish_and_clear();
    states.reload(asset)?;
    summary.duration_ms = t0.elapsed().as_millis() as i64;
    Ok((summary, rows))
}

/// `prepare` again after a commit of the step, which must not find the rule changed (the
/// remaining batches were assessed under it).
fn reprepare<'a>(
    project: &'a Project,
    states: &States,
    asset: &str,
    opts: &BuildOptions,
    digest: &str,
) -> Result<Prepared<'a>> {
    states.reload(asset)?;
    let prep = prepare(project, states, asset, opts)?;
    if prep.ingredients.digest != digest {
        bail!(
            "the rule of '{asset}' or one of its source files changed during the build: build again"
        );
    }
    Ok(prep)
}

/// The inputs an op sees for a batch: the union of the windows, with each one's range.
fn op_inputs(prep: &Prepared, project: &Project, batch: &[PartitionId]) -> Vec<OpInput> {
    prep.rule
        .inputs
        .iter()
        .zip(&prep.inputs)
        .map(|(input, (state, view, cov))| {
            let ranges: Vec<(PartitionId, (usize, usize))> = if batch.is_empty() {
                vec![]
            } else {
                batch.iter().map(|p| (*p, view.cover(*cov, *p))).collect()
            };
            let (lo, hi) = if ranges.is_empty() {
                (0, view.ids.len())
            } else {
                let lo = ranges.iter().map(|(_, r)| r.0).min().unwrap_or(0);
                let hi = ranges.iter().map(|(_, r)| r.1).max().unwrap_or(0);
                (lo, hi.max(lo))
            };
            let table = project.lake.table(&input.asset);
            let partitions = (lo..hi)
                .map(|i| (view.ids[i], table.join(&view.files[i])))
                .collect();
            let windows = ranges
                .into_iter()
                .map(|(p, (a, b))| {
                    (
                        p,
                        (
                            a.saturating_sub(lo),
                            b.saturating_sub(lo).max(a.saturating_sub(lo)),
                        ),
                    )
                })
                .collect();
            let schema = state
                .last_commit()
                .map(|(_, c)| schema_from_record(&c.schema));
            OpInput {
                asset: input.asset.clone(),
                coverage: *cov,
                daily: project.rules.get(&input.asset).is_some_and(|r| r.daily),
                partitions,
                windows,
                schema,
            }
        })
        .collect()
}

/// The op's resume directory: named by the rule's digest, the batch and every input
/// partition file it reads (a file holds one content for good), so only the same work
/// finds it again.
fn resume_dir(
    project: &Project,
    asset: &str,
    prep: &Prepared,
    batch: &[PartitionId],
    inputs: &[OpInput],
) -> std::path::PathBuf {
    let mut h = blake3::Hasher::new();
    h.update(prep.ingredients.digest.as_bytes());
    for p in batch {
        h.update(p.to_string().as_bytes());
    }
    for i in inputs {
        h.update(i.asset.as_bytes());
        for (id, file) in &i.partitions {
            h.update(id.to_string().as_bytes());
            h.update(file.to_string_lossy().as_bytes());
        }
    }
    project
        .lake
        .root
        .join("_lakebuild")
        .join("resume")
        .join(format!("{asset}-{}", &h.finalize().to_hex()[..16]))
}

#[allow(clippy::too_many_arguments)]
fn run_with_retry(
    prep: &Prepared,
    asset: &str,
    batch: Vec<PartitionId>,
    settled: &BTreeSet<PartitionId>,
    project: &Project,
    run_id: &str,
    summary: &mut StepSummary,
    rows: &mut Vec<RunRow>,
    opts: &BuildOptions,
) -> Result<Output> {
    let attempts = prep.rule.retry.attempts.max(1) as usize;
    let mut attempt = 0;
    loop {
        attempt += 1;
        summary.attempts += 1;
        let started = resources::now_ms();
        let scratch = project
            .lake
            .scratch(run_id)
            .join(format!("{asset}-{}", unique_suffix()));
        std::fs::create_dir_all(&scratch)
            .with_context(|| format!("cannot create {}", scratch.display()))?;
        let inputs = op_inputs(prep, project, &batch);
        let bytes_read: i64 = inputs
            .iter()
            .flat_map(|i| i.partitions.iter())
            .filter_map(|(_, f)| std::fs::metadata(f).ok())
            .map(|m| m.len() as i64)
            .sum();
        summary.bytes_read = bytes_read;
        let resume = resume_dir(project, asset, prep, &batch, &inputs);
        let ctx = OpContext {
            rule: prep.rule,
            params: prep.rule.params.clone(),
            partitions: batch.clone(),
            inputs,
            project_root: &project.root,
            scratch: scratch.clone(),
            resume: resume.clone(),
            sources: &prep.sources,
            // Under the current rule only: a restated partition is recorded under it.
            published: prep
                .state
                .current
                .iter()
                .filter(|(id, c)| {
                    (batch.contains(id) || !settled.contains(id))
                        && c.commit.rule.digest == prep.ingredients.digest
                })
                .map(|(id, c)| (*id, prep.state.table.join(&c.record().file)))
                .collect(),
        };
        summary.ops_run += 1;
        let result = prep.op.run(&ctx).and_then(|df| {
            let restated = prep.op.restate(&ctx, &df)?;
            let mut produced = split_and_hash(prep, asset, &batch, df)?;
            let mut events = vec![];
            if let Some(r) = restated {
                if batch.is_empty() {
                    bail!(
                        "op '{}' of '{asset}' restated partitions on a run without a batch",
                        prep.rule.op
                    );
                }
                produced.extend(restated_partitions(prep, asset, &ctx, r.rows, &r.events)?);
                events = r.events;
            }
            Ok((produced, events))
        });
        let _ = std::fs::remove_dir_all(&scratch);
        if result.is_ok() {
            let _ = std::fs::remove_dir_all(&resume);
        }
        match result {
            Ok((produced, events)) => {
                let whole = concat_frames(&produced)?;
                let parts: Vec<(PartitionId, DataFrame)> =
                    produced.iter().map(|p| (p.id, p.frame.clone())).collect();
                let previous = |id: PartitionId| {
                    let (pid, c) = prep.state.current.range(..id).next_back()?;
                    Some((*pid, c.record().rows))
                };
                let checks = run_checks(&prep.rule.checks, &whole, asset, &parts, &previous);
                let failed: Vec<&CheckResult> =
                    checks.iter().filter(|c| c.blocking_failure()).collect();
                if !failed.is_empty() {
                    let msg = failed
                        .iter()
                        .map(|c| format!("check '{}' failed: {}", c.name, c.detail))
                        .collect::<Vec<_>>()
                        .join("\n");
                    summary.checks = checks.clone();
                    let mut r = failed_row(run_id, opts, asset, attempt, started, &batch, &msg);
                    r.checks = serde_json::to_string(&checks).ok();
                    r.bytes_read = bytes_read;
                    rows.push(r);
                    bail!("{msg}\nnothing was published for {asset}");
                }
                summary.checks = checks.clone();
                return Ok(Output {
                    produced,
                    events,
                    checks,
                });
            }
            Err(e) => {
                let msg = format!("{e:#}");
                let transient = transience(&e) == Transience::Transient;
                let mut r = failed_row(run_id, opts, asset, attempt, started, &batch, &msg);
                r.bytes_read = bytes_read;
                rows.push(r);
                if transient && attempt < attempts {
                    let delay = backoff_delay(prep.rule, attempt);
                    tracing::warn!(
                        asset,
                        attempt,
                        "transient failure, retrying in {delay:?}: {msg}"
                    );
                    std::thread::sleep(delay);
                    continue;
                }
                if e.chain().any(|c| c.is::<UsageError>()) {
                    return Err(e);
                }
                return Err(e.context(format!(
                    "{asset} failed after {attempt} attempt(s){}",
                    if transient {
                        ""
                    } else {
                        " (not retried: the error is permanent)"
                    }
                )));
            }
        }
    }
}

fn concat_frames(produced: &[Produced]) -> Result<DataFrame> {
    let mut it = produced.iter();
    let Some(first) = it.next() else {
        return Ok(DataFrame::empty());
    };
    let mut out = first.frame.clone();
    for p in it {
        out.vstack_mut(&p.frame)?;
    }
    Ok(out)
}

/// Splits an op's output by partition, in canonical order, with content hashes.
fn split_and_hash(
    prep: &Prepared,
    asset: &str,
    batch: &[PartitionId],
    df: DataFrame,
) -> Result<Vec<Produced>> {
    let df = normalize_for_delta(df)?;
    let keys = &prep.rule.key_columns;
    let mut parts: Vec<(PartitionId, DataFrame)> = Vec::new();
    if !prep.rule.daily {
        parts.push((PartitionId::Whole, df));
    } else {
        let dc = prep.rule.date_column.as_str();
        let c = df.column(dc).map_err(|_| {
            anyhow!(
                "the output of daily asset '{asset}' has no '{dc}' column (it has {}): add it, or set date_column in {}",
                df.get_column_names().iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                prep.rule.file.display()
            )
        })?;
        if c.dtype() != &DataType::Date {
            bail!("column '{dc}' of '{asset}' is {}, not a date", c.dtype());
        }
        if c.null_count() > 0 {
            bail!(
                "column '{dc}' of '{asset}' has {} null dates",
                c.null_count()
            );
        }
        let mut by_day: BTreeMap<PartitionId, DataFrame> = BTreeMap::new();
        if df.height() > 0 {
            for part in df.partition_by_stable([dc], true)? {
                let day = part
                    .column(dc)?
                    .date()?
                    .as_date_iter()
                    .next()
                    .flatten()
                    .ok_or_else(|| anyhow!("empty partition"))?;
                by_day.insert(PartitionId::Day(day), part);
            }
        }
        if !batch.is_empty() {
            let wanted: BTreeSet<&PartitionId> = batch.iter().collect();
            let extra: Vec<String> = by_day
                .keys()
                .filter(|k| !wanted.contains(k))
                .map(|k| k.to_string())
                .collect();
            if !extra.is_empty() {
                bail!(
                    "op '{}' of '{asset}' returned rows for partitions it was not asked for: {} (asked for {}..{})",
                    prep.rule.op,
                    extra.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
                    batch[0],
                    batch[batch.len() - 1]
                );
            }
            for p in batch {
                by_day.entry(*p).or_insert_with(|| df.clear());
            }
        }
        parts.extend(by_day);
    }
    parts
        .into_par_iter()
        .map(|(id, frame)| {
            let frame = canonical_order(&frame, keys)?;
            let content_hash = hash_sorted(&frame)?.to_hex().to_string();
            Ok(Produced {
                id,
                frame,
                content_hash,
                restated_by: vec![],
            })
        })
        .collect()
}

/// The partitions a source restated, split and hashed like its batch, each with the
/// restatements that name it. They must be partitions it published before, outside the
/// batch; those whose content did not change are dropped.
fn restated_partitions(
    prep: &Prepared,
    asset: &str,
    ctx: &OpContext,
    rows: DataFrame,
    events: &[RestatementEvent],
) -> Result<Vec<Produced>> {
    let published: BTreeSet<PartitionId> = ctx.published.iter().map(|(id, _)| *id).collect();
    let mut ids: Vec<PartitionId> = events
        .iter()
        .flat_map(|e| e.partitions.iter().copied())
        .collect();
    ids.sort();
    ids.dedup();
    if let Some(bad) = ids
        .iter()
        .find(|id| !published.contains(id) || ctx.partitions.contains(id))
    {
        bail!(
            "op '{}' of '{asset}' restated partition {bad}, which is not one it published before this batch",
            prep.rule.op
        );
    }
    if ids.is_empty() {
        if rows.height() > 0 {
            bail!(
                "op '{}' of '{asset}' returned restated rows without naming their partitions",
                prep.rule.op
            );
        }
        return Ok(vec![]);
    }
    let mut produced = split_and_hash(prep, asset, &ids, rows)?;
    if let Some(empty) = produced.iter().find(|p| p.frame.height() == 0) {
        bail!(
            "op '{}' of '{asset}' restated partition {} without rows for it",
            prep.rule.op,
            empty.id
        );
    }
    produced.retain(|p| {
        prep.state
            .current
            .get(&p.id)
            .is_some_and(|c| c.record().content_hash != p.content_hash)
    });
    for p in &mut produced {
        p.restated_by = events
            .iter()
            .filter(|e| e.partitions.contains(&p.id))
            .map(|e| e.id.clone())
            .collect();
    }
    Ok(produced)
}

/// `members` as inclusive runs of consecutive partitions of `universe` (ascending).
fn runs(
    universe: &BTreeSet<PartitionId>,
    members: &BTreeSet<PartitionId>,
) -> Vec<(PartitionId, PartitionId)> {
    let mut out: Vec<(PartitionId, PartitionId)> = Vec::new();
    let mut open: Option<(PartitionId, PartitionId)> = None;
    for id in universe {
        if members.contains(id) {
            open = Some(match open {
                Some((a, _)) => (a, *id),
                None => (*id, *id),
            });
        } else if let Some(r) = open.take() {
            out.push(r);
        }
    }
    out.extend(open);
    out
}

fn file_name(id: PartitionId, key: &str) -> String {
    format!("part-{id}-{}-{}.parquet", short(key), &unique_suffix()[..8])
}

fn tags(id: PartitionId, key: &str, content_hash: &str, run_id: &str) -> Vec<(String, String)> {
    vec![
        ("lakebuild.run_id".into(), run_id.to_string()),
        ("lakebuild.partition".into(), id.to_string()),
        ("lakebuild.key".into(), key.to_string()),
        ("lakebuild.content_hash".into(), content_hash.to_string()),
    ]
}

fn group_rows(
    run_id: &str,
    opts: &BuildOptions,
    asset: &str,
    started: i64,
    records: &[PartitionRecord],
    rows: &mut Vec<RunRow>,
    checks: &[CheckResult],
) {
    // The attempt that succeeded: one more than the failed attempts just recorded.
    let attempt = 1 + rows
        .iter()
        .rev()
        .take_while(|r| r.asset == asset && r.outcome == "failed")
        .count();
    for (outcome, name) in [
        (PartitionOutcome::Built, "built"),
        (PartitionOutcome::CutOff, "cut_off"),
        (PartitionOutcome::Restored, "restored"),
    ] {
        let group: Vec<&PartitionRecord> =
            records.iter().filter(|r| r.outcome == outcome).collect();
        if group.is_empty() {
            continue;
        }
        let ids: Vec<PartitionId> = group.iter().map(|r| r.id).collect();
        let key = (group.len() == 1).then(|| group[0].key.as_str());
        let nrows: u64 = group.iter().map(|r| r.rows).sum();
        let bytes: u64 = group.iter().map(|r| r.bytes).sum();
        let mut r = row(
            run_id,
            opts,
            asset,
            name,
            attempt,
            started,
            resources::now_ms(),
            Some((&ids, key, nrows, bytes)),
            None,
        );
        if !checks.is_empty() {
            r.checks = serde_json::to_string(checks).ok();
        }
        rows.push(r);
    }
}

/// The restatements a publish records: the source's own (each named by a unique id), and a
/// correction for every batch partition that came back different under the key it has
/// (a re-check, `--force`). Marks each produced partition with the ones that cover it.
fn restatements_of(
    prep: &Prepared,
    asset: &str,
    run_id: &str,
    by_id: &HashMap<PartitionId, &Assessment>,
    produced: &mut [Produced],
    events: Vec<RestatementEvent>,
) -> Vec<RestatementRecord> {
    // An id is never reused: one the table already has gets the run's id (and a count).
    let taken = |id: &str| prep.state.restatements().any(|r| r.id == id);
    let unique = |id: String| {
        if !taken(&id) {
            return id;
        }
        (1..)
            .map(|n| match n {
                1 => format!("{id} [run {run_id}]"),
                n => format!("{id} [run {run_id} #{n}]"),
            })
            .find(|c| !taken(c))
            .unwrap_or(id)
    };
    let mut renamed: HashMap<String, String> = HashMap::new();
    let mut restatements: Vec<(String, String, BTreeSet<PartitionId>)> = events
        .into_iter()
        .map(|e| {
            let id = unique(e.id.clone());
            renamed.insert(e.id, id.clone());
            (id, e.reason, BTreeSet::new())
        })
        .collect();
    // Partitions run again under the key they have (a re-check, --force) whose content
    // came back different: corrections upstream, one restatement for the batch. They get
    // keys of their own, so that a key never names two contents.
    let revised: Vec<PartitionId> = produced
        .iter()
        .filter(|p| {
            let current = prep.state.current.get(&p.id).map(|c| c.record());
            matches!((by_id.get(&p.id), current),
                (Some(a), Some(c)) if a.key == c.key && c.content_hash != p.content_hash)
        })
        .map(|p| p.id)
        .collect();
    if let (Some(first), Some(last)) = (revised.first(), revised.last()) {
        let id = unique(if first == last {
            format!("revised {first} on a re-run")
        } else {
            format!("revised {first}..{last} on a re-run")
        });
        let reason = format!(
            "the source returned new content for {} partition(s) run again under the same key",
            revised.len()
        );
        restatements.push((id.clone(), reason, BTreeSet::new()));
        for p in produced.iter_mut().filter(|p| revised.contains(&p.id)) {
            p.restated_by.push(id.clone());
        }
    }
    for p in produced.iter_mut() {
        for r in &mut p.restated_by {
            if let Some(new) = renamed.get(r) {
                *r = new.clone();
            }
        }
        for r in &p.restated_by {
            if let Some(e) = restatements.iter_mut().find(|e| e.0 == *r) {
                e.2.insert(p.id);
            }
        }
    }
    // Runs are taken over every partition the asset has or should have, so that a range
    // never spans one that did not carry the restatement.
    let universe: BTreeSet<PartitionId> = prep
        .state
        .current
        .keys()
        .chain(&prep.domain)
        .chain(produced.iter().map(|p| &p.id))
        .copied()
        .collect();
    let restatements: Vec<RestatementRecord> = restatements
        .into_iter()
        .filter(|(_, _, members)| !members.is_empty())
        .map(|(id, reason, members)| {
            tracing::info!(asset, "restated {} partition(s): {id}", members.len());
            RestatementRecord {
                id,
                reason,
                ranges: runs(&universe, &members),
            }
        })
        .collect();
    restatements
}

/// Write, (audit already done), publish: data files, then one atomic commit.
#[allow(clippy::too_many_arguments)]
fn publish(
    prep: &Prepared,
    asset: &str,
    table_dir: &std::path::Path,
    run_id: &str,
    output: Output,
    gone: &[PartitionId],
    batch: &[Assessment],
    summary: &mut StepSummary,
    rows: &mut Vec<RunRow>,
    opts: &BuildOptions,
    started: i64,
) -> Result<()> {
    let Output {
        mut produced,
        events,
        checks,
    } = output;
    let by_id: HashMap<PartitionId, &Assessment> = batch.iter().map(|a| (a.id, a)).collect();
    let restatements = restatements_of(prep, asset, run_id, &by_id, &mut produced, events);
    let schema = produced
        .first()
        .map(|p| (**p.frame.schema()).clone())
        .unwrap_or_default();
    let written: Vec<Result<(PartitionRecord, table::NewFile, Option<table::OldFile>)>> = produced
        .into_par_iter()
        .map(|mut p| {
            let current = prep.state.current.get(&p.id);
            // Restated now: the restatements covering it so far, and the new ones.
            let restated = if p.restated_by.is_empty() {
                prep.restated_digest(p.id).map(String::from)
            } else {
                let before = prep.state.restatements_covering(p.id, None);
                Some(restatement_digest(
                    before
                        .iter()
                        .map(|(_, r)| r.id.as_str())
                        .chain(p.restated_by.iter().map(String::as_str)),
                ))
            };
            let restated_ref = restated.as_deref();
            let (key, reads) = match by_id.get(&p.id) {
                Some(a) if p.restated_by.is_empty() => (a.key.clone(), a.reads.clone()),
                Some(a) => (
                    partition_key(
                        asset,
                        p.id,
                        &prep.ingredients.digest,
                        &a.reads,
                        restated_ref,
                    ),
                    a.reads.clone(),
                ),
                // Restated by its source: what it read before, under its restatements.
                None if !p.restated_by.is_empty() => {
                    let reads = current
                        .map(|c| c.record().inputs.clone())
                        .unwrap_or_default();
                    (
                        partition_key(asset, p.id, &prep.ingredients.digest, &reads, restated_ref),
                        reads,
                    )
                }
                // A discovered import: no inputs, the rule digest and the id make the key.
                None => (
                    partition_key(asset, p.id, &prep.ingredients.digest, &[], restated_ref),
                    vec![],
                ),
            };
            let unchanged = current.filter(|c| c.record().content_hash == p.content_hash);
            let (file, bytes, outcome, old) = match unchanged {
                // Early cutoff: same content, so keep the file; only its key changes.
                Some(c) => (
                    c.record().file.clone(),
                    c.record().bytes,
                    PartitionOutcome::CutOff,
                    None,
                ),
                None => {
                    let name = file_name(p.id, &key);
                    let bytes = parquet::write(&mut p.frame, &table_dir.join(&name))?;
                    let old = current.map(|c| table::OldFile {
                        path: c.record().file.clone(),
                        size: c.record().bytes as i64,
                    });
                    (name, bytes, PartitionOutcome::Built, old)
                }
            };
            let rec = PartitionRecord {
                id: p.id,
                key: key.clone(),
                content_hash: p.content_hash.clone(),
                file: file.clone(),
                rows: p.frame.height() as u64,
                bytes,
                outcome,
                inputs: reads,
                restated,
            };
            let add = table::NewFile {
                path: file,
                size: bytes as i64,
                rows: p.frame.height() as u64,
                tags: tags(p.id, &key, &p.content_hash, run_id),
                data_change: outcome == PartitionOutcome::Built,
            };
            Ok((rec, add, old))
        })
        .collect();
    let mut records = Vec::new();
    let mut adds = Vec::new();
    let mut removes = Vec::new();
    for w in written {
        let (rec, add, old) = w?;
        records.push(rec);
        adds.push(add);
        removes.extend(old);
    }
    for id in gone {
        if let Some(c) = prep.state.current.get(id) {
            removes.push(table::OldFile {
                path: c.record().file.clone(),
                size: c.record().bytes as i64,
            });
        }
    }
    // A source whose output did not change at all and whose key did not change either:
    // nothing to commit.
    let all_same = records.iter().all(|r| {
        prep.state
            .current
            .get(&r.id)
            .is_some_and(|c| c.record().key == r.key && c.record().content_hash == r.content_hash)
    });
    if all_same && gone.is_empty() && !records.is_empty() {
        // The op ran (forced, or a re-check) and changed nothing: no commit, but the
        // history records the work, as cut off.
        summary.cut_off += records.len();
        let mut cut: Vec<PartitionRecord> = records;
        for r in &mut cut {
            r.outcome = PartitionOutcome::CutOff;
        }
        group_rows(run_id, opts, asset, started, &cut, rows, &checks);
        return Ok(());
    }
    let record = commit_record(
        prep,
        asset,
        run_id,
        &schema,
        records.clone(),
        gone,
        restatements,
    );
    commit_to_table(prep, table_dir, &schema, &adds, &removes, &record)?;
    summary.built += records
        .iter()
        .filter(|r| r.outcome == PartitionOutcome::Built)
        .count();
    summary.cut_off += records
        .iter()
        .filter(|r| r.outcome == PartitionOutcome::CutOff)
        .count();
    summary.removed += gone.len();
    let before = rows.len();
    group_rows(run_id, opts, asset, started, &records, rows, &checks);
    for r in &mut rows[before..] {
        r.bytes_read = summary.bytes_read;
    }
    Ok(())
}

/// Makes older materializations with the current keys current again, and drops
/// partitions that left the domain. One commit; no op runs.
#[allow(clippy::too_many_arguments)]
fn restore(
    prep: &Prepared,
    asset: &str,
    table_dir: &std::path::Path,
    run_id: &str,
    restores: &[(Assessment, crate::lake::log::KeyedFile)],
    obsolete: &[PartitionId],
    summary: &mut StepSummary,
    rows: &mut Vec<RunRow>,
    opts: &BuildOptions,
    started: i64,
) -> Result<()> {
    let mut adds = Vec::new();
    let mut removes = Vec::new();
    let mut records = Vec::new();
    let mut schema = None;
    for (a, k) in restores {
        let mut rec = k.record.clone();
        rec.outcome = PartitionOutcome::Restored;
        rec.inputs = a.reads.clone();
        if schema.is_none() {
            schema = Some(schema_from_record(&k.commit.schema));
        }
        adds.push(table::NewFile {
            path: rec.file.clone(),
            size: rec.bytes as i64,
            rows: rec.rows,
            tags: tags(rec.id, &rec.key, &rec.content_hash, run_id),
            data_change: true,
        });
        if let Some(c) = prep.state.current.get(&a.id)
            && c.record().file != rec.file
        {
            removes.push(table::OldFile {
                path: c.record().file.clone(),
                size: c.record().bytes as i64,
            });
        }
        records.push(rec);
    }
    for id in obsolete {
        if let Some(c) = prep.state.current.get(id) {
            removes.push(table::OldFile {
                path: c.record().file.clone(),
                size: c.record().bytes as i64,
            });
        }
    }
    let schema = match schema {
        Some(s) => s,
        None => prep
            .state
            .last_commit()
            .map(|(_, c)| schema_from_record(&c.schema))
            .unwrap_or_default(),
    };
    let record = commit_record(
        prep,
        asset,
        run_id,
        &schema,
        records.clone(),
        obsolete,
        vec![],
    );
    commit_to_table(prep, table_dir, &schema, &adds, &removes, &record)?;
    summary.restored += records.len();
    summary.removed += obsolete.len();
    let checks = recheck_restored(prep, asset, table_dir, &records);
    if !checks.is_empty() {
        summary.checks = checks.clone();
    }
    group_rows(run_id, opts, asset, started, &records, rows, &checks);
    Ok(())
}

/// The rule's checks on restored partitions, read back from their files. The data was
/// checked when it was first published and is the same, so this only reports (for the
/// history and alerts: a rollback resolves what the bad version raised); it never blocks.
fn recheck_restored(
    prep: &Prepared,
    asset: &str,
    table_dir: &std::path::Path,
    records: &[PartitionRecord],
) -> Vec<CheckResult> {
    if prep.rule.checks.is_empty() || records.is_empty() {
        return Vec::new();
    }
    let mut parts = Vec::new();
    for r in records {
        match parquet::scan_files(&[table_dir.join(&r.file)]).and_then(|lf| Ok(lf.collect()?)) {
            Ok(df) => parts.push((r.id, df)),
            Err(e) => {
                tracing::warn!("cannot read back restored {asset} {}: {e:#}", r.id);
                return Vec::new();
            }
        }
    }
    let mut whole = parts[0].1.clone();
    for (_, df) in &parts[1..] {
        if whole.vstack_mut(df).is_err() {
            return Vec::new();
        }
    }
    let previous = |id: PartitionId| {
        let (pid, c) = prep.state.current.range(..id).next_back()?;
        Some((*pid, c.record().rows))
    };
    run_checks(&prep.rule.checks, &whole, asset, &parts, &previous)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restated_partitions_are_recorded_as_runs_of_consecutive_partitions() {
        let d = |n: u32| PartitionId::Day(NaiveDate::from_ymd_opt(2024, 3, n).unwrap());
        let universe: BTreeSet<PartitionId> = [1, 4, 5, 6, 7, 8, 11].map(d).into();
        let members: BTreeSet<PartitionId> = [4, 5, 7, 8, 11].map(d).into();
        // 6 is published and unchanged: it splits the run. 9 and 10 are no partitions.
        assert_eq!(runs(&universe, &members), [(d(4), d(5)), (d(7), d(11))]);
        assert!(runs(&universe, &BTreeSet::new()).is_empty());
    }
}
