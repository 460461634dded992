//! `lakebuild tune ASSET`: a study over the `[tune]` space of an asset's rule. Optuna
//! (through [`super::optuna`]) draws each trial's params and decides pruning; each trial
//! is a variant build of the asset ([`crate::engine::variant`]): keyed like a build with
//! those params, so a configuration built before (in any study, or by the pipeline) is
//! restored instead of trained, and committed to the asset's side table, so no alias and
//! no current version moves.
//!
//! - `--trials N` is the study's size: trials are asked until N have finished (complete,
//!   pruned or failed), counting those of earlier runs and of other processes on the same
//!   storage; a re-run of a finished study does nothing.
//! - `-j N` runs N trials at once (their training overlaps: variants hold no lake lock).
//!   Two trials of one key never train at once: the second waits for the first's result.
//! - A pruned configuration's intermediate values are kept by key
//!   (`_lakebuild/tune/pruned/<asset>/<key>.json`): when a study proposes it again they
//!   are replayed to its pruner, which usually prunes it again with no training.
//! - Crash safety: a `lakebuild tune` process holds a lock for its whole study
//!   (`_lakebuild/tune/running/<study>-<pid>`) and tags each trial it asks for with its pid.
//!   A study opened after a process died finds that process's trials still `RUNNING` in
//!   Optuna's storage with the process's lock free: each is marked `FAIL` (attribute
//!   `lakebuild.killed`) and its params are queued first, so the next trial trains them
//!   again from the training checkpoint the killed one left. Killed trials do not count
//!   towards `--trials`. A live process's trials, and trials of other hosts, are left
//!   alone.

use super::optuna::{Outcome, StoredTrial, Study};
use crate::core::error::UsageError;
use crate::core::rule::tune::{Direction, TuneSpace};
use crate::engine::BuildOptions;
use crate::engine::project::Project;
use crate::engine::variant::{self, Origin, Variant};
use crate::lake::{lock, state_file};
use crate::op::Reports;
use anyhow::{Result, anyhow};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What `lakebuild tune` was asked.
#[derive(Clone)]
pub struct TuneOptions {
    pub asset: String,
    /// The study's size (default: the rule's `tune.trials`).
    pub trials: Option<usize>,
    /// No trial starts after this long (running ones finish).
    pub timeout: Option<Duration>,
    /// Default: the asset's name.
    pub study: Option<String>,
    /// An Optuna storage URL or a journal file; default `lake/_lakebuild/tune/optuna.log`.
    pub storage: Option<String>,
    pub jobs: usize,
    /// Overrides the rule's `tune.seed`.
    pub seed: Option<u64>,
    /// The Python that has optuna (`LAKEBUILD_PYTHON`, else `python3`).
    pub python: String,
    /// Today's date and the run's settings for the trials' builds.
    pub build: BuildOptions,
}

/// One trial this run took part in.
#[derive(Debug, Clone, Serialize)]
pub struct TrialReport {
    pub number: u64,
    /// complete, pruned or fail.
    pub state: String,
    pub params: BTreeMap<String, Value>,
    pub value: Option<f64>,
    /// Where its materialization came from (built, fresh, restored, asset_table), or
    /// `replayed` for a pruned configuration pruned again from its kept values.
    pub origin: Option<String>,
    /// The table and version holding its materialization, and its key.
    pub table: Option<String>,
    pub version: Option<i64>,
    pub key: Option<String>,
    /// How many intermediate values were reported, and their values by step (`None`:
    /// NaN, diverged).
    pub steps: usize,
    pub intermediate: Vec<(u64, Option<f64>)>,
    pub seconds: f64,
    /// When it started and ended (ms since the epoch).
    pub started_ms: i64,
    pub ended_ms: i64,
    pub error: Option<String>,
}

/// The best finished trial of the study (any run, any process).
#[derive(Debug, Clone, Serialize)]
pub struct BestTrial {
    pub number: u64,
    pub value: f64,
    pub params: BTreeMap<String, Value>,
    pub table: Option<String>,
    pub version: Option<i64>,
    pub key: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StudyReport {
    pub study: String,
    pub storage: String,
    pub asset: String,
    pub objective: String,
    pub direction: String,
    pub optuna: String,
    /// Trials run by this invocation, in the order they finished.
    pub trials: Vec<TrialReport>,
    /// Trials of the study that count towards its size, and that size.
    pub finished: usize,
    pub size: usize,
    /// Trials found killed (their process died) and queued again.
    pub recovered: Vec<u64>,
    pub best: Option<BestTrial>,
}

/// The rule's `[tune]`, or an error saying how to add one.
pub fn space_of(project: &Project, asset: &str, seed: Option<u64>) -> Result<TuneSpace> {
    let rule = project.rules.get(asset).ok_or_else(|| {
        anyhow!(UsageError(format!(
            "no rule for '{asset}' in {}",
            project.rules_dir.display()
        )))
    })?;
    let mut space = rule.tune.clone().ok_or_else(|| {
        anyhow!(UsageError(format!(
            "{} has no [tune]: add one, e.g.\n[tune]\nobjective = \"cv_rank_ic\"\ntrials = 20\n[tune.space]\nlr = {{ low = 1e-4, high = 3e-3, log = true }}",
            rule.file.display()
        )))
    })?;
    if let Some(seed) = seed {
        space.seed = seed;
    }
    Ok(space)
}

/// The storage a study uses: `--storage`, else the journal file in the lake.
pub fn storage_of(project: &Project, given: Option<&str>) -> Result<String> {
    if let Some(s) = given {
        return Ok(s.to_string());
    }
    let dir = project.lake.root.join("_lakebuild").join("tune");
    std::fs::create_dir_all(&dir).map_err(|e| anyhow!("cannot create {}: {e}", dir.display()))?;
    Ok(dir.join("optuna.log").to_string_lossy().to_string())
}

fn study_attrs(asset: &str, space: &TuneSpace) -> BTreeMap<String, Value> {
    BTreeMap::from([
        ("lakebuild.asset".to_string(), Value::from(asset)),
        (
            "lakebuild.objective".to_string(),
            Value::from(space.objective.clone()),
        ),
    ])
}

/// What a study opened for `opts` is: its space, storage, name and Optuna's version.
struct Opened {
    space: TuneSpace,
    storage: String,
    name: String,
    optuna: String,
}

/// Opens the study of `opts`: what it is, the bridge, and its trials as they are now.
fn open(project: &Project, opts: &TuneOptions) -> Result<(Opened, Study, Vec<StoredTrial>)> {
    let space = space_of(project, &opts.asset, opts.seed)?;
    let storage = storage_of(project, opts.storage.as_deref())?;
    let name = opts.study.clone().unwrap_or_else(|| opts.asset.clone());
    let (study, trials) = Study::open(
        &opts.python,
        &storage,
        &name,
        &space,
        &study_attrs(&opts.asset, &space),
    )?;
    let optuna = study.optuna_version.clone();
    Ok((
        Opened {
            space,
            storage,
            name,
            optuna,
        },
        study,
        trials,
    ))
}

impl Opened {
    /// The report of a run that ran `trials` and recovered `recovered`, with the study's
    /// trials `all` as they are now.
    fn report(
        &self,
        opts: &TuneOptions,
        trials: Vec<TrialReport>,
        all: &[StoredTrial],
        recovered: Vec<u64>,
    ) -> StudyReport {
        StudyReport {
            study: self.name.clone(),
            storage: self.storage.clone(),
            asset: opts.asset.clone(),
            objective: self.space.objective.clone(),
            direction: self.space.direction.name().into(),
            optuna: self.optuna.clone(),
            trials,
            finished: all.iter().filter(|t| counts(t)).count(),
            size: opts.trials.unwrap_or(self.space.trials),
            recovered,
            best: best_of(all, self.space.direction),
        }
    }
}

/// Opens the study and reports its best trial, running nothing (`--best`).
pub fn best(project: &Project, opts: &TuneOptions) -> Result<StudyReport> {
    let (opened, _study, all) = open(project, opts)?;
    Ok(opened.report(opts, Vec::new(), &all, Vec::new()))
}

/// Runs the study (see the module doc). `say` gets the progress lines.
pub fn run(
    project: &Project,
    opts: &TuneOptions,
    say: Arc<dyn Fn(&str) + Send + Sync>,
) -> Result<StudyReport> {
    let asset = opts.asset.as_str();
    let rule = project
        .rules
        .get(asset)
        .ok_or_else(|| anyhow!("no rule for '{asset}'"))?;
    let op = project
        .registry
        .find(&rule.op)
        .ok_or_else(|| anyhow!("op '{}' is not registered", rule.op))?;
    let (opened, mut study, trials) = open(project, opts)?;
    let Opened {
        space,
        storage,
        name,
        ..
    } = &opened;
    let size = opts.trials.unwrap_or(space.trials);
    // This process holds its lock for the whole study; a trial it runs carries its pid
    // (attribute `lakebuild.pid`, set as the trial is asked for). A RUNNING trial of this
    // host whose process lock is free belongs to a process that died.
    let running_dir = project
        .lake
        .root
        .join("_lakebuild")
        .join("tune")
        .join("running");
    std::fs::create_dir_all(&running_dir)?;
    let tag = blake3::hash(format!("{storage}\n{name}").as_bytes()).to_hex()[..12].to_string();
    let process_lock = |pid: u64| format!("tune/running/{tag}-{pid}");
    let me = u64::from(std::process::id());
    let _alive = lock::try_acquire_named(&project.lake.root, &process_lock(me), "lakebuild tune")?
        .ok_or_else(|| anyhow!("another process holds this process's study lock"))?;
    let host = hostname();

    // Trials left RUNNING by a process that died: failed, their params queued again.
    let mut recovered = Vec::new();
    for t in trials.iter().filter(|t| t.state == "running") {
        let owner = t.user_attrs.get("lakebuild.pid").and_then(Value::as_u64);
        let here =
            t.user_attrs.get("lakebuild.host").and_then(Value::as_str) == Some(host.as_str());
        let Some(pid) = owner.filter(|p| *p != me && here) else {
            continue;
        };
        let Some(_dead) =
            lock::try_acquire_named(&project.lake.root, &process_lock(pid), "recovery")?
        else {
            continue;
        };
        // Still running now (another process may have recovered it meanwhile)?
        let now = study.trials()?;
        if now
            .iter()
            .find(|x| x.number == t.number)
            .is_none_or(|x| x.state != "running")
        {
            continue;
        }
        study.set_attr(t.number, "lakebuild.killed", Value::from(true))?;
        study.tell(t.number, Outcome::Failed)?;
        let attrs = BTreeMap::from([("lakebuild.retry_of".to_string(), Value::from(t.number))]);
        study.enqueue(&t.params, &attrs)?;
        say(&format!(
            "trial {} was left running by a process that stopped: marked failed, its params queued again (training resumes from its checkpoint)",
            t.number
        ));
        recovered.push(t.number);
    }

    let study = Arc::new(Mutex::new(study));
    let done: Arc<Mutex<Vec<TrialReport>>> = Arc::default();
    let best_value: Arc<Mutex<Option<f64>>> = Arc::new(Mutex::new(
        best_of(&trials, space.direction).map(|b| b.value),
    ));
    let deadline = opts.timeout.map(|t| Instant::now() + t);
    let trials = Trials {
        project,
        asset,
        op,
        space,
        study_name: name,
        study: study.clone(),
        say: say.clone(),
        best: best_value.clone(),
        build: &opts.build,
    };
    let jobs = opts.jobs.max(1);
    // The cores split between the trials running at once (each trial's compute runs in
    // its own pool of that many threads).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_trial = (cores / jobs).max(1);
    let worker = || -> Result<()> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(per_trial)
            .stack_size(64 << 20)
            .build()
            .map_err(|e| anyhow!("cannot start a trial's threads: {e}"))?;
        loop {
            // Ask under the study's lock, so this process's workers count each other.
            let asked = {
                let mut s = study
                    .lock()
                    .map_err(|_| anyhow!("the study's lock is poisoned"))?;
                let all = s.trials()?;
                let busy = all
                    .iter()
                    .filter(|t| counts(t) || t.state == "running")
                    .count();
                if busy >= size || deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok(());
                }
                let attrs = BTreeMap::from([
                    ("lakebuild.pid".to_string(), Value::from(std::process::id())),
                    ("lakebuild.host".to_string(), Value::from(host.as_str())),
                ]);
                s.ask(&attrs)?
            };
            // An error here is Optuna's (the study could not be told): this worker stops.
            let report = pool.install(|| trial(&trials, &asked.params, asked.number))?;
            if let (Some(v), "complete") = (report.value, report.state.as_str())
                && let Ok(mut b) = best_value.lock()
                && b.is_none_or(|b| better(v, b, space.direction))
            {
                *b = Some(v);
            }
            say(&line(
                &report,
                *best_value.lock().map_err(|_| anyhow!("poisoned"))?,
            ));
            done.lock().map_err(|_| anyhow!("poisoned"))?.push(report);
        }
    };
    let results: Vec<Result<()>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..jobs)
            .map(|i| {
                std::thread::Builder::new()
                    .name(format!("trial-{i}"))
                    .stack_size(256 << 20)
                    .spawn_scoped(scope, worker)
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h
                    .join()
                    .unwrap_or_else(|_| Err(anyhow!("a trial worker panicked"))),
                Err(e) => Err(anyhow!("cannot start a trial worker: {e}")),
            })
            .collect()
    });
    for r in results {
        r?;
    }
    let all = study.lock().map_err(|_| anyhow!("poisoned"))?.trials()?;
    let ran = std::mem::take(&mut *done.lock().map_err(|_| anyhow!("poisoned"))?);
    Ok(opened.report(opts, ran, &all, recovered))
}

/// What every trial of one `run` shares.
struct Trials<'a> {
    project: &'a Project,
    asset: &'a str,
    op: &'static dyn crate::op::Op,
    space: &'a TuneSpace,
    study_name: &'a str,
    study: Arc<Mutex<Study>>,
    say: Arc<dyn Fn(&str) + Send + Sync>,
    best: Arc<Mutex<Option<f64>>>,
    build: &'a BuildOptions,
}

/// One trial, then its MLflow record (when tracking is on).
fn trial(t: &Trials, params: &BTreeMap<String, Value>, number: u64) -> Result<TrialReport> {
    let Trials {
        project,
        asset,
        space,
        study_name,
        ..
    } = *t;
    let mut r = run_trial(t, params, number)?;
    r.ended_ms = crate::clock::now_ms();
    r.seconds = (r.ended_ms - r.started_ms) as f64 / 1000.0;
    r.steps = r.intermediate.len();
    crate::mlflow::trial_finished(
        project,
        crate::mlflow::record::TrialRecord {
            asset: asset.to_string(),
            study: study_name.to_string(),
            number,
            state: r.state.clone(),
            params: params
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), String::from),
                    )
                })
                .collect(),
            objective: space.objective.clone(),
            value: r.value,
            intermediate: r.intermediate.clone(),
            key: r.key.clone(),
            origin: r.origin.clone(),
            version: r.version,
            error: r.error.clone(),
            started_ms: r.started_ms,
            ended_ms: r.ended_ms,
        },
    );
    Ok(r)
}

/// One trial without its MLflow record: replay a pruned configuration, else build the
/// variant; tell Optuna.
fn run_trial(t: &Trials, params: &BTreeMap<String, Value>, number: u64) -> Result<TrialReport> {
    let Trials {
        project,
        asset,
        op,
        space,
        study_name,
        build,
        ..
    } = *t;
    let (study, say, best) = (&t.study, &t.say, &t.best);
    let channel = Arc::new(Channel {
        study: study.clone(),
        number,
        objective: space.objective.clone(),
        label: label(params),
        say: say.clone(),
        best: best.clone(),
        reported: Mutex::new(Vec::new()),
        pruned: Mutex::new(false),
    });
    let v = Variant {
        asset: asset.to_string(),
        overlay: params.clone(),
        table: variant::side_table(project, asset),
        reports: Some(channel.clone()),
    };
    let mut opts = build.clone();
    opts.trigger = format!(
        "{}{study_name}#{number}",
        crate::lake::runs::VARIANT_TRIGGER
    );
    let tell = |outcome: Outcome, attrs: Vec<(&str, Value)>| -> Result<()> {
        let mut s = study.lock().map_err(|_| anyhow!("poisoned"))?;
        for (k, val) in attrs {
            s.set_attr(number, k, val)?;
        }
        s.tell(number, outcome)
    };
    let mut report = TrialReport {
        number,
        state: "fail".into(),
        params: params.clone(),
        value: None,
        origin: None,
        table: None,
        version: None,
        key: None,
        steps: 0,
        intermediate: Vec::new(),
        seconds: 0.0,
        started_ms: crate::clock::now_ms(),
        ended_ms: 0,
        error: None,
    };
    let key = match variant::key(project, &v, &opts) {
        Ok(k) => k,
        Err(e) => {
            let msg = format!("{e:#}");
            tell(
                Outcome::Failed,
                vec![("lakebuild.error", Value::from(msg.clone()))],
            )?;
            report.error = Some(msg);
            return Ok(report);
        }
    };
    report.key = Some(key.clone());
    // A configuration pruned before: its values, replayed to the pruner.
    let kept = pruned_file(project, asset, &key);
    let before: Vec<(u64, Option<f64>)> = state_file::read_json(&kept).unwrap_or_default();
    if !before.is_empty() {
        for (step, value) in &before {
            if channel.report(
                *step,
                value.unwrap_or(f64::NAN),
                &format!("step {step} (kept)"),
            ) {
                tell(
                    Outcome::Pruned,
                    vec![
                        ("lakebuild.key", Value::from(key.clone())),
                        ("lakebuild.origin", Value::from("replayed")),
                    ],
                )?;
                report.state = "pruned".into();
                report.origin = Some("replayed".into());
                report.intermediate = channel.kept()?;
                return Ok(report);
            }
        }
    }
    let result = variant::build_variant(project, &v, &opts, &crate::engine::new_run_id());
    report.intermediate = channel.kept()?;
    match result {
        Ok(built) => {
            let frame = built.frame();
            // What the build did not report itself (all of it when restored, the epochs
            // before a resume), from what the materialization stored: every study's
            // pruner sees the same history of a configuration, however it was built.
            if let Ok(f) = &frame {
                let seen: std::collections::BTreeSet<u64> =
                    report.intermediate.iter().map(|(s, _)| *s).collect();
                let stored = op.intermediate(f, &space.objective).unwrap_or_default();
                let missing: Vec<(u64, f64)> = stored
                    .into_iter()
                    .filter(|(s, _)| !seen.contains(s))
                    .collect();
                if !missing.is_empty() {
                    let mut s = study.lock().map_err(|_| anyhow!("poisoned"))?;
                    for (step, v) in &missing {
                        s.report(number, *step, *v)?;
                        report.intermediate.push((*step, Some(*v)));
                    }
                    report.intermediate.sort_by_key(|(s, _)| *s);
                }
            }
            let value = frame
                .and_then(|f| op.objective(&f, &space.objective))
                .and_then(|v| match v.is_finite() {
                    true => Ok(v),
                    false => Err(anyhow!("the objective {} is {v}", space.objective)),
                });
            let mut attrs = vec![
                ("lakebuild.key", Value::from(built.key.clone())),
                ("lakebuild.origin", Value::from(built.origin.name())),
                (
                    "lakebuild.table",
                    Value::from(built.table.to_string_lossy().to_string()),
                ),
                ("lakebuild.version", Value::from(built.version)),
            ];
            report.origin = Some(built.origin.name().into());
            report.table = Some(built.table.to_string_lossy().to_string());
            report.version = Some(built.version);
            match value {
                Ok(v) => {
                    tell(Outcome::Complete(v), attrs)?;
                    report.state = "complete".into();
                    report.value = Some(v);
                }
                Err(e) => {
                    let msg = format!("{e:#}");
                    attrs.push(("lakebuild.error", Value::from(msg.clone())));
                    tell(Outcome::Failed, attrs)?;
                    report.error = Some(msg);
                }
            }
            if built.origin == Origin::Built {
                let _ = std::fs::remove_file(&kept);
            }
        }
        Err(_) if channel.pruned() => {
            if let Some(dir) = kept.parent() {
                std::fs::create_dir_all(dir)?;
            }
            state_file::write_json(&kept, &report.intermediate)?;
            tell(
                Outcome::Pruned,
                vec![
                    ("lakebuild.key", Value::from(key.clone())),
                    ("lakebuild.origin", Value::from("built")),
                ],
            )?;
            report.state = "pruned".into();
            report.origin = Some("built".into());
        }
        Err(e) => {
            let msg = format!("{e:#}");
            tell(
                Outcome::Failed,
                vec![
                    ("lakebuild.key", Value::from(key.clone())),
                    ("lakebuild.error", Value::from(msg.clone())),
                ],
            )?;
            report.error = Some(msg);
        }
    }
    Ok(report)
}

fn pruned_file(project: &Project, asset: &str, key: &str) -> PathBuf {
    project
        .lake
        .root
        .join("_lakebuild")
        .join("tune")
        .join("pruned")
        .join(asset)
        .join(format!("{key}.json"))
}

/// A running trial's channel: the op's intermediate values go to Optuna's pruner.
struct Channel {
    study: Arc<Mutex<Study>>,
    number: u64,
    objective: String,
    label: String,
    say: Arc<dyn Fn(&str) + Send + Sync>,
    best: Arc<Mutex<Option<f64>>>,
    reported: Mutex<Vec<(u64, f64)>>,
    pruned: Mutex<bool>,
}

impl Channel {
    /// The values reported so far, NaN (a diverged step) as `None`.
    fn kept(&self) -> Result<Vec<(u64, Option<f64>)>> {
        Ok(self
            .reported
            .lock()
            .map_err(|_| anyhow!("poisoned"))?
            .iter()
            .map(|&(s, v)| (s, v.is_finite().then_some(v)))
            .collect())
    }
}

impl Reports for Channel {
    fn objective(&self) -> &str {
        &self.objective
    }

    fn report(&self, step: u64, value: f64, at: &str) -> bool {
        let prune = match self.study.lock() {
            Ok(mut s) => s.report(self.number, step, value).unwrap_or_else(|e| {
                (self.say)(&format!(
                    "trial {}: cannot report to Optuna: {e:#}",
                    self.number
                ));
                false
            }),
            Err(_) => false,
        };
        if let Ok(mut r) = self.reported.lock() {
            r.push((step, value));
        }
        if prune && let Ok(mut p) = self.pruned.lock() {
            *p = true;
        }
        let best = self
            .best
            .lock()
            .ok()
            .and_then(|b| *b)
            .map_or(String::new(), |b| format!(" (best {b:+.4})"));
        (self.say)(&format!(
            "trial {} [{}] {at}: {} {value:+.4}{best}{}",
            self.number,
            self.label,
            self.objective,
            if prune { ": pruned" } else { "" }
        ));
        prune
    }

    fn pruned(&self) -> bool {
        self.pruned.lock().is_ok_and(|p| *p)
    }
}

/// Whether a stored trial counts towards the study's size.
fn counts(t: &StoredTrial) -> bool {
    matches!(t.state.as_str(), "complete" | "pruned")
        || (t.state == "fail" && t.user_attrs.get("lakebuild.killed") != Some(&Value::from(true)))
}

fn better(a: f64, b: f64, d: Direction) -> bool {
    match d {
        Direction::Maximize => a > b,
        Direction::Minimize => a < b,
    }
}

fn best_of(trials: &[StoredTrial], d: Direction) -> Option<BestTrial> {
    trials
        .iter()
        .filter(|t| t.state == "complete")
        .filter_map(|t| t.value.map(|v| (t, v)))
        .fold(None::<(&StoredTrial, f64)>, |acc, (t, v)| match acc {
            Some((_, b)) if !better(v, b, d) => acc,
            _ => Some((t, v)),
        })
        .map(|(t, v)| BestTrial {
            number: t.number,
            value: v,
            params: t.params.clone(),
            table: t
                .user_attrs
                .get("lakebuild.table")
                .and_then(|x| x.as_str())
                .map(String::from),
            version: t
                .user_attrs
                .get("lakebuild.version")
                .and_then(Value::as_i64),
            key: t
                .user_attrs
                .get("lakebuild.key")
                .and_then(|x| x.as_str())
                .map(String::from),
        })
}

fn label(params: &BTreeMap<String, Value>) -> String {
    params
        .iter()
        .map(|(k, v)| match v.as_f64() {
            Some(f) if !v.is_i64() && (f == 0.0 || (1e-2..1e4).contains(&f.abs())) => {
                let fixed = format!("{f:.4}");
                format!("{k}={}", fixed.trim_end_matches('0').trim_end_matches('.'))
            }
            Some(f) if !v.is_i64() => format!("{k}={f:.3e}"),
            _ => format!("{k}={v}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The line a finished trial prints.
pub fn line(r: &TrialReport, best: Option<f64>) -> String {
    let what = match (r.state.as_str(), r.value) {
        ("complete", Some(v)) => format!("complete {v:+.4}"),
        (s, _) => s.to_string(),
    };
    let origin = r
        .origin
        .as_deref()
        .map_or(String::new(), |o| format!(", {o}"));
    let version = r
        .version
        .map_or(String::new(), |v| format!(", version {v}"));
    let error = r
        .error
        .as_deref()
        .map_or(String::new(), |e| format!(": {e}"));
    let best = best.map_or(String::new(), |b| format!(" (best {b:+.4})"));
    format!(
        "trial {} [{}] {what}{origin}{version} in {:.0} s{best}{error}",
        r.number,
        label(&r.params),
        r.seconds
    )
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}
