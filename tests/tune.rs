//! Optuna through lakebuild's bridge: a study lakebuild drives (ask, report, prune, tell)
//! is an ordinary Optuna study that `optuna.load_study` reads back with every trial's
//! params, intermediate values, value and state; a seeded sampler proposes the same
//! params again; a Python without optuna is refused with what to install.

mod common;
use common::*;
use lakebuild::core::rule::tune::{Direction, Distribution, TuneParam, TuneSpace};
use lakebuild::tune::optuna::{Outcome, Study};
use serde_json::Value;
use std::collections::BTreeMap;

fn space(seed: u64) -> TuneSpace {
    TuneSpace {
        params: vec![
            TuneParam {
                name: "lr".into(),
                distribution: Distribution::Float {
                    low: 1e-4,
                    high: 3e-3,
                    log: true,
                    step: None,
                },
                line: 1,
            },
            TuneParam {
                name: "hidden".into(),
                distribution: Distribution::Categorical {
                    choices: vec![32.into(), 64.into()],
                },
                line: 2,
            },
            TuneParam {
                name: "layers".into(),
                distribution: Distribution::Int {
                    low: 1,
                    high: 4,
                    log: false,
                    step: 1,
                },
                line: 3,
            },
        ],
        objective: "score".into(),
        direction: Direction::Maximize,
        sampler: "tpe".into(),
        pruner: "median".into(),
        seed,
        trials: 8,
    }
}

/// Drives `n` trials: trial k reports 3 intermediate values and completes with
/// `-(lr·1000 - 1)²`, except that a trial the pruner stops is told pruned, and trial 2
/// fails.
/// A driven trial: its number, params and final state (Optuna's name).
type Driven = (u64, BTreeMap<String, Value>, String);

fn drive(study: &mut Study, n: usize) -> R<Vec<Driven>> {
    let mut done = Vec::new();
    for _ in 0..n {
        let attrs = BTreeMap::from([("lakebuild.host".to_string(), Value::from("test"))]);
        let t = study.ask(&attrs)?;
        let lr = t.params["lr"].as_f64().ok_or("lr")?;
        let value = -(lr * 1000.0 - 1.0).powi(2);
        let mut outcome = Outcome::Complete(value);
        for step in 0..3u64 {
            if study.report(t.number, step, value - 0.1 * (2 - step) as f64)? {
                outcome = Outcome::Pruned;
                break;
            }
        }
        if t.number == 2 {
            outcome = Outcome::Failed;
        }
        study.set_attr(
            t.number,
            "lakebuild.key",
            Value::from(format!("k{}", t.number)),
        )?;
        study.tell(t.number, outcome)?;
        let state = match outcome {
            Outcome::Complete(_) => "COMPLETE",
            Outcome::Pruned => "PRUNED",
            Outcome::Failed => "FAIL",
        };
        done.push((t.number, t.params, state.to_string()));
    }
    Ok(done)
}

#[test]
fn a_study_driven_through_the_bridge_is_an_optuna_study() -> R {
    if !python_has("optuna") {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let journal = dir.path().join("study.log");
    let storage = journal.to_string_lossy().to_string();
    let attrs = BTreeMap::from([("asset".to_string(), Value::from("trained_model"))]);
    let (mut study, before) = Study::open("python3", &storage, "s1", &space(7), &attrs)?;
    assert!(before.is_empty());
    let done = drive(&mut study, 8)?;
    let ours = study.trials()?;
    drop(study);
    assert_eq!(ours.len(), 8);

    // Optuna's own client reads the journal.
    let script = format!(
        r#"
import json, optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
s = optuna.load_study(study_name="s1", storage=JournalStorage(JournalFileBackend({storage:?})))
print(json.dumps({{"direction": s.direction.name, "attrs": s.user_attrs, "trials": [
  {{"number": t.number, "state": t.state.name, "params": t.params, "value": t.value,
    "steps": sorted(t.intermediate_values), "attrs": t.user_attrs,
    "dists": {{k: type(d).__name__ for k, d in t.distributions.items()}}}}
  for t in s.trials]}}))
"#
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()?;
    assert!(out.status.success(), "{}", output_text(&out));
    let seen: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(seen["direction"], "MAXIMIZE");
    assert_eq!(seen["attrs"]["asset"], "trained_model");
    let trials = seen["trials"].as_array().ok_or("trials")?;
    assert_eq!(trials.len(), 8);
    let mut pruned = 0;
    for (t, (number, params, state)) in trials.iter().zip(&done) {
        assert_eq!(t["number"].as_u64(), Some(*number));
        assert_eq!(t["state"], state.as_str(), "{t}");
        for (k, v) in params {
            assert_eq!(&t["params"][k], v, "{t}");
        }
        assert_eq!(t["dists"]["lr"], "FloatDistribution");
        assert_eq!(t["dists"]["hidden"], "CategoricalDistribution");
        assert_eq!(t["dists"]["layers"], "IntDistribution");
        assert_eq!(t["attrs"]["lakebuild.key"], format!("k{number}"));
        assert_eq!(t["attrs"]["lakebuild.host"], "test");
        match state.as_str() {
            "COMPLETE" => {
                assert!(t["value"].is_number(), "{t}");
                assert_eq!(t["steps"], serde_json::json!([0, 1, 2]));
            }
            "PRUNED" => {
                pruned += 1;
                assert!(t["steps"].as_array().is_some_and(|s| s.len() < 3), "{t}");
            }
            _ => assert!(t["value"].is_null()),
        }
    }
    // The median pruner starts after 5 trials: the worse ones after that are stopped.
    eprintln!("{pruned} of 8 pruned");

    // Reopened: the trials are there; the same seed in a new study proposes the same params.
    let (mut again, seen) = Study::open("python3", &storage, "s1", &space(7), &attrs)?;
    assert_eq!(seen.len(), 8);
    assert_eq!(seen[3].params, ours[3].params);
    drop(again.trials()?);
    let (mut twin, _) = Study::open("python3", &storage, "s2", &space(7), &attrs)?;
    let first = twin.ask(&BTreeMap::new())?;
    assert_eq!(first.params, done[0].1);
    Ok(())
}

#[test]
fn a_python_without_optuna_is_refused_with_what_to_install() -> R {
    let dir = tempfile::tempdir()?;
    // python3 without its site-packages: optuna cannot be imported.
    let bare = dir.path().join("bare-python");
    std::fs::write(&bare, "#!/bin/sh\nexec python3 -S \"$@\"\n")?;
    let mut perms = std::fs::metadata(&bare)?.permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&bare, perms)?;
    let storage = dir.path().join("s.log").to_string_lossy().to_string();
    let refused = |python: &str| {
        Study::open(python, &storage, "s", &space(0), &BTreeMap::new())
            .err()
            .map(|e| e.to_string())
            .ok_or(format!("{python} was accepted"))
    };
    let e = refused(&bare.to_string_lossy())?;
    assert!(
        e.contains("import optuna failed") && e.contains("-m pip install optuna=="),
        "{e}"
    );
    let e = refused("/nonexistent/python3")?;
    assert!(
        e.contains("cannot run /nonexistent/python3") && e.contains("LAKEBUILD_PYTHON"),
        "{e}"
    );
    Ok(())
}

const ASSETS: [&str; 7] = [
    "trading_calendar",
    "raw_stock_data",
    "listed_info",
    "topix",
    "processed_features",
    "labels",
    "trained_model",
];
const TODAY: &str = "2026-08-14";

/// The repository's rules on the tiny market, with `tune` as the model's `[tune]`.
fn tuned(tune: &str) -> R<Proj> {
    let p = repository_rules(&ASSETS, &TINY_MODEL)?;
    let rule = std::fs::read_to_string(p.path("rules/trained_model.toml"))?;
    let start = rule.find("\n[tune]").ok_or("[tune]")?;
    let end = start + rule[start..].find("\n# Where MLflow").ok_or("[mlflow]")?;
    p.rule(
        "trained_model",
        &format!("{}\n{tune}\n{}", &rule[..start], &rule[end..]),
    )?;
    Ok(p)
}

fn at(p: &Proj, args: &[&str]) -> R<std::process::Output> {
    Ok(p.cmd(args).env("LAKEBUILD_NOW", TODAY).output()?)
}

fn tune_json(p: &Proj, args: &[&str]) -> R<Value> {
    let out = at(p, args)?;
    if !out.status.success() {
        return Err(format!("lakebuild {args:?}:\n{}", output_text(&out)).into());
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Rows of the run history written by tuning trials: (trigger, outcome, start, end).
fn trial_rows(p: &Proj) -> R<Vec<(String, String, i64, i64)>> {
    Ok(p.history()?
        .into_iter()
        .filter(|r| r.trigger.starts_with("tune:"))
        .map(|r| (r.trigger, r.outcome, r.started_at, r.ended_at))
        .collect())
}

/// How many times each key was trained by tuning trials (the history's `built` rows).
fn built_keys(p: &Proj) -> R<std::collections::BTreeMap<String, usize>> {
    let mut keys = std::collections::BTreeMap::new();
    for r in p
        .history()?
        .iter()
        .filter(|r| r.is_variant() && r.outcome == "built")
    {
        *keys.entry(r.key.clone().unwrap_or_default()).or_default() += 1;
    }
    Ok(keys)
}

/// Optuna's own view of a study in the lake's default journal.
fn load_study(p: &Proj, study: &str) -> R<Value> {
    let journal = p.path("lake/_lakebuild/tune/optuna.log");
    let script = format!(
        r#"
import json, optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
s = optuna.load_study(study_name={study:?}, storage=JournalStorage(JournalFileBackend({:?})))
print(json.dumps([{{"number": t.number, "state": t.state.name, "params": t.params, "value": t.value,
  "steps": len(t.intermediate_values), "intermediate": [(k, v if v == v else None) for k, v in sorted(t.intermediate_values.items())],
  "attrs": t.user_attrs}} for t in s.trials]))
"#,
        journal.to_string_lossy()
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()?;
    if !out.status.success() {
        return Err(output_text(&out).into());
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

#[test]
fn tune_runs_trials_as_cached_builds_that_optuna_sees_and_the_pipeline_restores() -> R {
    if !python_has("optuna") {
        return Ok(());
    }
    let p = tuned(
        "[tune]\nobjective = \"cv_rank_ic\"\ntrials = 4\nseed = 3\n[tune.space]\nlr = { low = 1e-4, high = 3e-3, log = true }\nhidden = [8, 16]\n",
    )?;
    let out = at(&p, &["build", "processed_features", "labels"])?;
    assert!(out.status.success(), "{}", output_text(&out));

    let first = tune_json(&p, &["tune", "trained_model", "--json"])?;
    let trials = first["trials"].as_array().ok_or("trials")?;
    assert_eq!(trials.len(), 4, "{first}");
    assert_eq!(first["finished"], 4);
    // Optuna's own client sees every trial with its params, value, state and the
    // intermediate values each fold and epoch reported.
    let seen = load_study(&p, "trained_model")?;
    let seen = seen.as_array().ok_or("trials")?;
    assert_eq!(seen.len(), 4);
    for t in trials {
        let n = t["number"].as_u64().ok_or("number")?;
        let s = seen.iter().find(|s| s["number"] == n).ok_or("trial")?;
        assert_eq!(s["params"], t["params"], "{s} vs {t}");
        assert_eq!(s["state"], "COMPLETE", "{s}");
        assert_eq!(s["value"], t["value"], "{s} vs {t}");
        assert!(
            s["steps"].as_u64().unwrap_or(0) >= 2,
            "a report per fold and epoch: {s}"
        );
        assert_eq!(s["attrs"]["lakebuild.version"], t["version"], "{s}");
        assert_eq!(s["attrs"]["lakebuild.key"], t["key"], "{s}");
    }
    let built = trial_rows(&p)?.iter().filter(|r| r.1 == "built").count();
    let distinct: std::collections::BTreeSet<String> = trials
        .iter()
        .filter_map(|t| t["key"].as_str().map(String::from))
        .collect();
    assert_eq!(
        built,
        distinct.len(),
        "one training per distinct configuration"
    );
    // No trial touched the model's own table or its aliases.
    assert!(!p.path("lake/trained_model").exists());
    assert!(!p.path("lake/_lakebuild/aliases.json").exists());

    // The same study again: finished, nothing runs. A new study with the same seed
    // proposes the same params, and every trial comes from the lake.
    let again = tune_json(&p, &["tune", "trained_model", "--json"])?;
    assert_eq!(again["trials"].as_array().map(Vec::len), Some(0), "{again}");
    let twin = tune_json(&p, &["tune", "trained_model", "--study", "twin", "--json"])?;
    let twin_trials = twin["trials"].as_array().ok_or("trials")?;
    assert_eq!(twin_trials.len(), 4);
    for (a, b) in trials.iter().zip(twin_trials) {
        assert_eq!(a["params"], b["params"]);
        assert_eq!(a["value"], b["value"]);
        assert_ne!(b["origin"], "built", "{b}");
    }
    // A restored trial hands Optuna the intermediate values its model's training
    // reported, from what the model stored: the twin's pruner sees the same history.
    let twin_seen = load_study(&p, "twin")?;
    for (a, b) in seen.iter().zip(twin_seen.as_array().ok_or("twin trials")?) {
        assert_eq!(a["params"], b["params"]);
        assert!(a["steps"].as_u64() >= Some(2), "{a}");
        assert_eq!(a["intermediate"], b["intermediate"], "{a} vs {b}");
    }
    assert_eq!(
        trial_rows(&p)?.iter().filter(|r| r.1 == "built").count(),
        built,
        "the re-run trained nothing"
    );
    // The web UI lists every trial and the model each one trained, with its CV score.
    let ui = common::web_client::serve(&p, "127.0.0.1:0", &[("LAKEBUILD_NOW", TODAY)], &[])?;
    let tuning = common::web_client::get(&ui.addr, "/api/tuning")?;
    let rows = tuning["trials"].as_array().ok_or("trials")?;
    assert_eq!(rows.len(), trial_rows(&p)?.len());
    let models = tuning["models"].as_array().ok_or("models")?;
    assert_eq!(models.len(), built, "{tuning}");
    for m in models {
        assert!(
            rows.iter()
                .any(|r| r["run_id"] == m["run_id"] && r["outcome"] == "built"),
            "{m}"
        );
        assert!(trials.iter().any(|t| t["value"] == m["cv_rank_ic"]), "{m}");
        assert_eq!(m["aliases"], serde_json::json!([]));
    }
    drop(ui);

    // The best trial's params in the rule: the pipeline's build restores its model.
    let best = &first["best"];
    let rule = std::fs::read_to_string(p.path("rules/trained_model.toml"))?;
    let mut params = String::new();
    for (k, v) in best["params"].as_object().ok_or("params")? {
        params.push_str(&format!("{k} = {v}\n"));
    }
    let (head, tail) = rule.split_at(rule.find("\n[tune]").ok_or("[tune]")?);
    let head = head
        .lines()
        .filter(|l| !l.starts_with("hidden =") && !l.starts_with("lr ="))
        .collect::<Vec<_>>()
        .join("\n")
        .replacen("[params]\n", &format!("[params]\n{params}"), 1);
    p.rule("trained_model", &format!("{head}\n{tail}"))?;
    let plan = tune_json(&p, &["build", "trained_model", "--dry-run", "--json"])?;
    let model = plan
        .as_array()
        .and_then(|a| a.iter().find(|s| s["asset"] == "trained_model"))
        .ok_or("trained_model's plan")?;
    assert_eq!(
        model["to_restore"].as_array().map(Vec::len),
        Some(1),
        "{model}"
    );
    let out = at(&p, &["build", "trained_model"])?;
    assert!(out.status.success(), "{}", output_text(&out));
    let last = p
        .history()?
        .into_iter()
        .rev()
        .find(|r| r.asset == "trained_model")
        .ok_or("row")?;
    assert_eq!(last.outcome, "restored", "{last:?}");
    let out = at(&p, &["model", "list", "--json"])?;
    let models: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(models[0]["cv_rank_ic"], best["value"], "{models}");
    Ok(())
}

/// Runs Python `script` (with optuna), returning its stdout.
fn python(script: &str) -> R<String> {
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .output()?;
    if !out.status.success() {
        return Err(output_text(&out).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

fn journal(p: &Proj) -> String {
    p.path("lake/_lakebuild/tune/optuna.log")
        .to_string_lossy()
        .to_string()
}

#[test]
fn a_bad_region_is_pruned_early_and_pruned_again_without_training() -> R {
    if !python_has("optuna") {
        return Ok(());
    }
    let p = tuned(
        "[tune]\nobjective = \"cv_rank_ic\"\ntrials = 7\n[tune.space]\nlr = { low = 1e-3, high = 1e7, log = true }\ndropout = { low = 0.0, high = 0.3 }\n",
    )?;
    let out = at(&p, &["build", "processed_features", "labels"])?;
    assert!(out.status.success(), "{}", output_text(&out));
    // The order of the first trials, queued the way an Optuna user does: five sound
    // learning rates (the median pruner's startup trials), then two so large that
    // training diverges in its first epoch (reported as NaN, which Optuna's pruners prune).
    std::fs::create_dir_all(p.path("lake/_lakebuild/tune"))?;
    let enqueue = |study: &str| {
        python(&format!(
            r#"
import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
s = optuna.create_study(study_name={study:?}, direction="maximize",
    storage=JournalStorage(JournalFileBackend({:?})))
for d in [0.0, 0.05, 0.1, 0.15, 0.2]:
    s.enqueue_trial({{"lr": 3e-3, "dropout": d}})
for d in [0.0, 0.1]:
    s.enqueue_trial({{"lr": 1e6, "dropout": d}})
"#,
            journal(&p)
        ))
    };
    enqueue("trained_model")?;
    let r = tune_json(&p, &["tune", "trained_model", "--json"])?;
    let trials = r["trials"].as_array().ok_or("trials")?;
    assert_eq!(trials.len(), 7, "{r}");
    let steps = |t: &Value| t["steps"].as_u64().unwrap_or(0);
    let full = trials.iter().take(5).map(steps).max().unwrap_or(0);
    for t in &trials[..5] {
        assert_eq!(t["state"], "complete", "{t}");
    }
    for t in &trials[5..] {
        assert_eq!(t["state"], "pruned", "the wrecked trials are pruned: {t}");
        assert!(
            steps(t) < full,
            "pruned before the last fold: {t} (complete ones report {full})"
        );
        assert_eq!(t["origin"], "built");
    }
    let seen = load_study(&p, "trained_model")?;
    let pruned: Vec<&Value> = seen
        .as_array()
        .ok_or("trials")?
        .iter()
        .filter(|t| t["state"] == "PRUNED")
        .collect();
    assert_eq!(pruned.len(), 2, "{seen}");
    let rows = trial_rows(&p)?;
    assert_eq!(
        rows.iter().filter(|r| r.1 == "pruned").count(),
        2,
        "{rows:?}"
    );
    let built = rows.iter().filter(|r| r.1 == "built").count();
    // Trials are not the asset's own builds: a pruned (failed) one leaves the model's
    // status alone, and `retry` refuses a trial's run.
    let status = tune_json(&p, &["status", "--json"])?;
    let model = status
        .as_array()
        .and_then(|a| a.iter().find(|s| s["asset"] == "trained_model"))
        .ok_or("trained_model's status")?;
    assert_eq!(model["state"], "missing", "{model}");
    let trial_run = p
        .history()?
        .into_iter()
        .find(|r| r.outcome == "pruned")
        .ok_or("a pruned row")?
        .run_id;
    let out = at(&p, &["retry", &trial_run])?;
    assert!(!out.status.success());
    assert!(
        output_text(&out).contains("is a tuning trial"),
        "{}",
        output_text(&out)
    );

    // The same configurations in another study: the pruned ones are pruned again from
    // their kept values, the complete ones restored: nothing trains.
    enqueue("again")?;
    let r = tune_json(&p, &["tune", "trained_model", "--study", "again", "--json"])?;
    let trials = r["trials"].as_array().ok_or("trials")?;
    assert_eq!(trials.len(), 7, "{r}");
    for t in &trials[5..] {
        assert_eq!(t["state"], "pruned", "{t}");
        assert_eq!(t["origin"], "replayed", "{t}");
    }
    assert_eq!(
        trial_rows(&p)?.iter().filter(|r| r.1 == "built").count(),
        built
    );
    Ok(())
}

/// Whether two of `rows` (start, end) overlap in time.
fn any_overlap(rows: &[(i64, i64)]) -> bool {
    rows.iter()
        .enumerate()
        .any(|(i, a)| rows.iter().skip(i + 1).any(|b| a.0 < b.1 && b.0 < a.1))
}

#[test]
fn parallel_trials_overlap_and_never_build_one_key_twice() -> R {
    if !python_has("optuna") {
        return Ok(());
    }
    // Six configurations for eight trials: the processes must meet on some keys.
    let p = tuned(
        "[tune]\nobjective = \"cv_rank_ic\"\nsampler = \"random\"\npruner = \"none\"\ntrials = 8\n[tune.space]\nlr = [1e-3, 3e-3, 1e-2]\ndropout = [0.0, 0.1]\n",
    )?;
    let out = at(&p, &["build", "processed_features", "labels"])?;
    assert!(out.status.success(), "{}", output_text(&out));
    // Two processes on one study, two trials at once each.
    let spawn = |seed: &str| {
        p.cmd(&["tune", "trained_model", "-j", "2", "--seed", seed, "--json"])
            .env("LAKEBUILD_NOW", TODAY)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
    };
    let (a, b) = (spawn("1")?, spawn("2")?);
    let (a, b) = (a.wait_with_output()?, b.wait_with_output()?);
    assert!(a.status.success(), "{}", output_text(&a));
    assert!(b.status.success(), "{}", output_text(&b));
    let seen = load_study(&p, "trained_model")?;
    let seen = seen.as_array().ok_or("trials")?;
    assert!((8..=9).contains(&seen.len()), "{seen:?}");
    assert!(seen.iter().all(|t| t["state"] == "COMPLETE"), "{seen:?}");
    // Every key trained once, however many trials drew it.
    let history = p.history()?;
    let keys = built_keys(&p)?;
    let intervals: Vec<(i64, i64)> = history
        .iter()
        .filter(|r| r.is_variant() && r.outcome == "built")
        .map(|r| (r.started_at, r.ended_at))
        .collect();
    assert!(
        keys.values().all(|n| *n == 1),
        "a key built twice: {keys:?}"
    );
    assert!(keys.len() <= 6);
    let restored = history
        .iter()
        .filter(|r| r.trigger.starts_with("tune:") && r.outcome == "restored")
        .count();
    assert!(
        restored >= 2,
        "eight trials over six configurations: some restored"
    );
    // Trainings ran at the same time (variants hold no lake lock).
    assert!(any_overlap(&intervals), "{intervals:?}");
    Ok(())
}

#[test]
fn a_killed_study_resumes_without_a_duplicate_trial() -> R {
    if !python_has("optuna") {
        return Ok(());
    }
    let p = tuned(
        "[tune]\nobjective = \"cv_rank_ic\"\ntrials = 3\nseed = 5\n[tune.space]\nlr = { low = 1e-3, high = 1e-2, log = true }\n",
    )?;
    let out = at(&p, &["build", "processed_features", "labels"])?;
    assert!(out.status.success(), "{}", output_text(&out));
    let mut child = p
        .cmd(&["tune", "trained_model"])
        .env("LAKEBUILD_NOW", TODAY)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    // Killed while its second trial trains: after the first is in the history and the
    // second has reported an epoch.
    let started = std::time::Instant::now();
    loop {
        let trials = load_study(&p, "trained_model").unwrap_or(Value::Null);
        let second_running = trials.as_array().is_some_and(|t| {
            t.iter().any(|t| {
                t["number"] == 1 && t["state"] == "RUNNING" && t["steps"].as_u64() >= Some(1)
            })
        });
        if second_running {
            break;
        }
        assert!(
            started.elapsed().as_secs() < 300,
            "the study did not reach its second trial"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    child.wait()?;

    let r = tune_json(&p, &["tune", "trained_model", "--json"])?;
    assert_eq!(r["recovered"], serde_json::json!([1]), "{r}");
    let seen = load_study(&p, "trained_model")?;
    let seen = seen.as_array().ok_or("trials")?;
    let state = |n: u64| {
        seen.iter()
            .find(|t| t["number"] == n)
            .map(|t| t["state"].clone())
    };
    assert_eq!(state(1), Some(Value::from("FAIL")), "{seen:?}");
    assert_eq!(seen[1]["attrs"]["lakebuild.killed"], true);
    let complete: Vec<&Value> = seen.iter().filter(|t| t["state"] == "COMPLETE").collect();
    assert_eq!(complete.len(), 3, "the study completes: {seen:?}");
    // The killed trial's params were tried again once, and no key was built twice.
    let retried: Vec<&&Value> = complete
        .iter()
        .filter(|t| t["params"] == seen[1]["params"])
        .collect();
    assert_eq!(retried.len(), 1, "{seen:?}");
    // Resumed from the killed trial's checkpoint, it still hands Optuna the values of
    // the epochs trained before the kill (from the model it stored).
    let before = seen[1]["intermediate"].as_array().ok_or("intermediate")?;
    let after = retried[0]["intermediate"]
        .as_array()
        .ok_or("intermediate")?;
    assert!(!before.is_empty());
    assert!(
        before.iter().all(|v| after.contains(v)),
        "{before:?} ⊄ {after:?}"
    );
    let keys = built_keys(&p)?;
    assert!(keys.values().all(|n| *n == 1), "{keys:?}");
    assert_eq!(keys.len(), 3, "{keys:?} {seen:?}");
    Ok(())
}

#[test]
fn a_space_naming_an_unknown_param_fails_at_load_with_its_line() -> R {
    let p = tuned(
        "[tune]\nobjective = \"cv_rank_ic\"\n[tune.space]\nlearning_rate = { low = 1e-4, high = 1e-2 }\n",
    )?;
    let out = at(&p, &["status"])?;
    assert!(!out.status.success());
    let text = output_text(&out);
    let rule = std::fs::read_to_string(p.path("rules/trained_model.toml"))?;
    let line = rule
        .lines()
        .position(|l| l.starts_with("learning_rate"))
        .ok_or("line")?
        + 1;
    assert!(
        text.contains(&format!("trained_model.toml:{line}: tune.space.learning_rate: op 'train' has no param 'learning_rate'")),
        "{text}"
    );
    // A rule without [tune] cannot be tuned, and says how to add one.
    let p = repository_rules(&ASSETS[..6], &TINY_MODEL)?;
    let out = at(&p, &["tune", "labels"])?;
    assert!(!out.status.success());
    assert!(
        output_text(&out).contains("has no [tune]: add one"),
        "{}",
        output_text(&out)
    );
    Ok(())
}
