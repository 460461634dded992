//! The promotion policy through the binary, on the repository's rules over a small
//! synthetic market: the first model becomes production by itself, a new version goes on
//! trial, a challenger that scores worse is never promoted, one that scores better (a
//! perfect forecaster reading the realised returns, standing in for a model) is promoted
//! once the minimum days are in and not before; promotion re-keys predictions, moving back
//! restores them without running the op; a rollback by hand is respected; two policy
//! evaluations at once promote once; a decaying champion is rolled back to the previous
//! one, and the version rolled back is retired, not re-promoted. Decisions are logged, announced and audited.
//! Two versions that differ only in their seed are not promoted in 19 of 20 pairs under
//! daily looks (real tiny models, replayed day by day through the policy's test). Power
//! at a realistic edge is measured on simulated cross-sections in
//! `src/jp_equity/promotion/sequential.rs`.

mod common;
use common::*;

const ASSETS: [&str; 10] = [
    "trading_calendar",
    "raw_stock_data",
    "listed_info",
    "topix",
    "synthetic_truth",
    "processed_features",
    "labels",
    "trained_model",
    "predictions",
    "prediction_performance",
];

/// The challenger's predictions replaced by the realised next-day return (`SIGN` 1: a
/// perfect forecaster, whose daily 1-day RankIC is 1; -1: its opposite, worse than any
/// model). It reads the labels, which no model may: a stand-in whose edge over the
/// champion is beyond doubt on a few days whatever the champion is, so that these tests
/// check the policy's decisions, not how good the tiny champion happens to be. A day's
/// row is rebuilt when its label arrives (the labels re-key it); until then it is 0.
fn oracle(sign: i32) -> String {
    let p = format!("{sign} * COALESCE(fwd_ret_1d, 0)");
    format!(
        r#"
op = "sql"
partitioned = "daily"
key_columns = ["Code", "Date"]
inputs = [{{ asset = "labels", window = [0, 0] }}]
[params]
query = "SELECT Code, Date, {p} AS pred_1d, {p} AS pred_5d, {p} AS pred_10d, {p} AS pred_20d FROM labels"
"#
    )
}

fn at(p: &Proj, today: &str, args: &[&str]) -> R<String> {
    let out = p.cmd(args).env("LAKEBUILD_NOW", today).output()?;
    let text = output_text(&out);
    if !out.status.success() {
        return Err(format!("lakebuild {args:?} at {today} failed:\n{text}").into());
    }
    Ok(text)
}

fn json(p: &Proj, today: &str, args: &[&str]) -> R<serde_json::Value> {
    let out = p.cmd(args).env("LAKEBUILD_NOW", today).output()?;
    if !out.status.success() {
        return Err(output_text(&out).into());
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn aliases(p: &Proj) -> R<(Option<i64>, Option<i64>)> {
    let a: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        p.path("lake/_lakebuild/aliases.json"),
    )?)?;
    let m = &a["trained_model"];
    Ok((m["production"].as_i64(), m["challenger"].as_i64()))
}

/// `lakebuild model policy --dry-run --json` at `today`.
fn policy_dry_run(p: &Proj, today: &str) -> R<serde_json::Value> {
    json(p, today, &["model", "policy", "--dry-run", "--json"])
}

/// How many promotions the log holds.
fn promotions(p: &Proj, today: &str) -> R<usize> {
    Ok(log_actions(p, today)?
        .iter()
        .filter(|a| *a == "promote")
        .count())
}

fn log_actions(p: &Proj, today: &str) -> R<Vec<String>> {
    let log = json(p, today, &["model", "policy", "--log", "--json"])?;
    Ok(log
        .as_array()
        .ok_or("a log")?
        .iter()
        .map(|d| d["action"].as_str().unwrap_or("").to_string())
        .collect())
}

/// Sets `key = value` in the model's `[promotion]`.
fn set_policy(p: &Proj, key: &str, value: &str) -> R {
    let rule = std::fs::read_to_string(p.path("rules/trained_model.toml"))?;
    let start = rule.find(&format!("\n{key} = ")).ok_or(key.to_string())? + 1;
    let end = start + rule[start..].find('\n').ok_or("line")?;
    p.rule(
        "trained_model",
        &format!("{}{key} = {value}{}", &rule[..start], &rule[end..]),
    )
}

const DAILY: [&str; 4] = ["build", "predictions", "challenger_predictions", "labels"];

#[test]
fn the_policy_promotes_a_better_challenger_once_after_the_minimum_days_and_rolls_back_on_decay() -> R
{
    let p = repository_rules(&ASSETS, &TINY_MODEL)?;
    p.rule("challenger_predictions", &oracle(-1))?;
    p.write(
        "rules/alerts/log.toml",
        "command = [\"sh\", \"-c\", \"cat >> alerts.jsonl\"]\n",
    )?;
    // The champion's decay check, made to fail whenever it runs (used at the end).
    let perf = std::fs::read_to_string(p.path("rules/prediction_performance.toml"))?;
    assert!(perf.contains("rank_ic_20d < -0.02"));

    // Before any model: planning works and writes no alias (read-only commands never do).
    let status = at(&p, "2026-08-14", &["status"])?;
    assert!(status.contains("predictions"), "{status}");
    at(&p, "2026-08-14", &["build", "predictions", "--dry-run"])?;
    assert!(!p.path("lake/_lakebuild/aliases.json").exists());

    // August: the first model is production by itself (nothing to compare it with).
    at(&p, "2026-08-14", &DAILY)?;
    let first = p.version("trained_model")?.ok_or("a model")?;
    assert_eq!(aliases(&p)?.0, Some(first));
    let ev = policy_dry_run(&p, "2026-08-14")?;
    assert_eq!(ev["evaluation"]["action"]["kind"], "wait", "{ev}");
    let m1 = model_ids(&p, "predictions")?;

    // September: a new month retrains; production stays, the new version goes on trial.
    let out = at(&p, "2026-09-01", &DAILY)?;
    let second = p.version("trained_model")?.ok_or("a model")?;
    assert_ne!(first, second);
    assert_eq!(
        model_ids(&p, "predictions")?,
        m1,
        "production still reads the first model"
    );
    assert!(out.contains("promotion trained_model: challenger"), "{out}");
    assert_eq!(aliases(&p)?, (Some(first), Some(second)));

    // A challenger worse than the champion: on trial, never promoted.
    set_policy(&p, "min_days", "10")?;
    // 30 stocks: the forecaster's edge is large and its days noisy; tune the test to it.
    set_policy(&p, "effect", "0.1")?;
    let ev = policy_dry_run(&p, "2026-09-01")?;
    let e = &ev["evaluation"];
    let n0 = e["test"]["days"].as_u64().ok_or(format!("days: {ev}"))?;
    assert!(n0 >= 10, "{ev}");
    assert_eq!(e["role"], "trial", "{ev}");
    assert_eq!(e["action"]["kind"], "wait", "{ev}");
    assert!(e["test"]["mean"].as_f64().unwrap_or(0.0) < 0.0, "{ev}");
    assert_eq!(e["test"]["p_value"].as_f64(), Some(1.0), "{ev}");
    // Its days are out of sample for both models: after the challenger's training range.
    let models = json(&p, "2026-09-01", &["model", "list", "--json"])?;
    let train_last = models
        .as_array()
        .and_then(|a| a.iter().find(|m| m["version"] == second))
        .and_then(|m| m["train_last"].as_str())
        .ok_or(format!("{models}"))?
        .to_string();
    let first_day = e["first_day"].as_str().ok_or("first_day")?;
    assert!(
        first_day > train_last.as_str(),
        "{first_day} vs {train_last}"
    );

    // A clearly better one (the oracle) is not promoted before min_days...
    set_policy(&p, "min_days", &(n0 + 2).to_string())?;
    p.rule("challenger_predictions", &oracle(1))?;
    at(&p, "2026-09-01", &DAILY)?;
    at(&p, "2026-09-02", &DAILY)?;
    assert!(!log_actions(&p, "2026-09-02")?.contains(&"promote".to_string()));
    let ev = policy_dry_run(&p, "2026-09-02")?;
    assert_eq!(
        ev["evaluation"]["test"]["days"].as_u64(),
        Some(n0 + 1),
        "{ev}"
    );
    assert_eq!(aliases(&p)?, (Some(first), Some(second)));
    // ...and is promoted on the day they are in, once.
    let out = at(&p, "2026-09-03", &DAILY)?;
    assert!(
        out.contains("promotion trained_model: promote"),
        "{out}\n{}",
        at(&p, "2026-09-03", &["model", "policy", "--dry-run"])?
    );
    assert_eq!(
        aliases(&p)?,
        (Some(second), Some(first)),
        "the old champion is watched"
    );
    let log = json(&p, "2026-09-03", &["model", "policy", "--log", "--json"])?;
    let promote = log
        .as_array()
        .and_then(|a| a.iter().find(|d| d["action"] == "promote"))
        .ok_or(format!("{log}"))?;
    assert_eq!(promote["days"].as_u64(), Some(n0 + 2), "{promote}");
    assert!(promote["stats"]["test"]["p_value"].as_f64().unwrap_or(1.0) <= 0.05);
    let alerts = std::fs::read_to_string(p.path("alerts.jsonl"))?;
    assert!(
        alerts.contains("\"kind\":\"model_promoted\"") && alerts.contains("\"status\":\"event\""),
        "{alerts}"
    );
    let status = at(&p, "2026-09-03", &["status"])?;
    assert!(
        status.contains(&format!(
            "promotion trained_model: production = version {second}, challenger = version {first}; last decision"
        )) && status.contains(" promote (watch, "),
        "{status}"
    );
    let history = at(&p, "2026-09-03", &["model", "history"])?;
    assert!(
        history
            .lines()
            .any(|l| l.contains("trained_model@production") && l.ends_with("policy")),
        "{history}"
    );
    at(&p, "2026-09-03", &DAILY)?;
    assert_eq!(promotions(&p, "2026-09-03")?, 1);

    // The promotion re-keyed predictions onto the second model...
    let m2 = model_ids(&p, "predictions")?;
    assert_ne!(m2, m1);
    // ...and moving back by hand restores the first model's without running the op.
    p.ok(&["model", "alias", "production", &first.to_string()])?;
    let out = at(&p, "2026-09-03", &["build", "predictions"])?;
    assert!(
        out.lines()
            .any(|l| l.starts_with("predictions") && l.contains("built 0")),
        "{out}"
    );
    assert_eq!(model_ids(&p, "predictions")?, m1);
    let hist = at(
        &p,
        "2026-09-03",
        &["history", "--asset", "predictions", "--limit", "1"],
    )?;
    assert!(hist.contains("restored"), "{hist}");

    // A rollback by hand is respected: the version moved away from is not put on trial
    // again by itself.
    assert_eq!(aliases(&p)?, (Some(first), Some(first)));
    let ev = policy_dry_run(&p, "2026-09-03")?;
    assert_eq!(ev["evaluation"]["action"]["kind"], "wait", "{ev}");
    // A person puts it on trial again; two evaluations at once, with its promotion due,
    // promote once.
    p.ok(&["model", "alias", "challenger", &second.to_string()])?;
    let before = promotions(&p, "2026-09-03")?;
    let spawn = || {
        p.cmd(&["model", "policy"])
            .env("LAKEBUILD_NOW", "2026-09-03")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
    };
    let (a, b) = (spawn()?, spawn()?);
    let (a, b) = (a.wait_with_output()?, b.wait_with_output()?);
    assert!(
        a.status.success() && b.status.success(),
        "{}\n{}",
        output_text(&a),
        output_text(&b)
    );
    let after = promotions(&p, "2026-09-03")?;
    assert_eq!(
        after,
        before + 1,
        "{}\n{}",
        output_text(&a),
        output_text(&b)
    );
    assert_eq!(aliases(&p)?, (Some(second), Some(first)));

    // Decay: the champion's decay check fails, the previous champion scores better on
    // the recent days: rolled back, announced; not re-promoted on the old evidence.
    p.rule(
        "prediction_performance",
        &perf.replace("rank_ic_20d < -0.02", "rank_ic_20d < 2"),
    )?;
    let out = at(&p, "2026-09-03", &["build", "prediction_performance"])?;
    assert!(out.contains("promotion trained_model: rollback"), "{out}");
    assert_eq!(aliases(&p)?, (Some(first), Some(second)));
    let alerts = std::fs::read_to_string(p.path("alerts.jsonl"))?;
    assert!(
        alerts.contains("\"kind\":\"model_rolled_back\""),
        "{alerts}"
    );
    // The version rolled back is retired: not re-promoted on the evidence it lost on.
    let ev = json(&p, "2026-09-03", &["model", "policy", "--json"])?;
    let e = &ev["evaluation"];
    assert_eq!(e["action"]["kind"], "wait", "{ev}");
    assert_eq!(e["role"], "retired", "{ev}");
    assert!(e["test"].is_null(), "{ev}");
    at(&p, "2026-09-04", &DAILY)?;
    assert_eq!(aliases(&p)?, (Some(first), Some(second)));
    assert_eq!(promotions(&p, "2026-09-04")?, after);
    Ok(())
}

#[test]
fn a_policy_with_bad_settings_is_refused_naming_the_file_and_field() -> R {
    let p = repository_rules(&ASSETS, &TINY_MODEL)?;
    let rule = std::fs::read_to_string(p.path("rules/trained_model.toml"))?;
    p.rule(
        "trained_model",
        &rule.replace("alpha = 0.05", "alpha = 0.7").replace(
            "challenger_scores = \"challenger_predictions\"",
            "challenger_scores = \"nope\"",
        ),
    )?;
    let err = p.fails(&["status"], 2)?;
    assert!(
        err.contains("trained_model.toml") && err.contains("promotion.alpha = 0.7"),
        "{err}"
    );
    assert!(
        err.contains("promotion.challenger_scores = \"nope\""),
        "{err}"
    );
    Ok(())
}

#[test]
fn a_version_whose_checks_failed_is_never_put_on_trial() -> R {
    let p = repository_rules(&ASSETS, &TINY_MODEL)?;
    p.rule("challenger_predictions", &oracle(1))?;
    at(&p, "2026-08-14", &DAILY)?;
    let first = p.version("trained_model")?.ok_or("a model")?;
    // September's model is built with a warning check that fails: published, recorded.
    let rule = std::fs::read_to_string(p.path("rules/trained_model.toml"))?;
    p.rule(
        "trained_model",
        &format!(
            "{rule}\n[[checks]]\nname = \"suspicious\"\nkind = \"sql\"\nseverity = \"warn\"\nquery = \"SELECT * FROM this\"\n"
        ),
    )?;
    let out = at(&p, "2026-09-01", &DAILY)?;
    let second = p.version("trained_model")?.ok_or("a model")?;
    assert_ne!(first, second, "{out}");
    assert!(
        !out.contains("promotion trained_model: challenger"),
        "{out}"
    );
    assert_eq!(aliases(&p)?.0, Some(first));
    assert_ne!(aliases(&p)?.1, Some(second));
    let ev = policy_dry_run(&p, "2026-09-01")?;
    let reason = ev["evaluation"]["reason"].as_str().unwrap_or("");
    assert_eq!(ev["evaluation"]["action"]["kind"], "wait", "{ev}");
    assert!(
        reason.contains(&format!("version {second}: its check 'suspicious' failed")),
        "{ev}"
    );
    // Put on trial by hand, it is still never promoted, however good its scores.
    p.ok(&["model", "alias", "challenger", &second.to_string()])?;
    set_policy(&p, "min_days", "10")?;
    set_policy(&p, "effect", "0.1")?;
    at(&p, "2026-09-02", &DAILY)?;
    at(&p, "2026-09-03", &DAILY)?;
    let log = json(&p, "2026-09-03", &["model", "policy", "--log", "--json"])?;
    let entries = log.as_array().ok_or("a log")?;
    assert!(!entries.iter().any(|d| d["action"] == "promote"), "{log}");
    let retire = entries
        .iter()
        .find(|d| d["action"] == "retire")
        .ok_or(format!("no retire: {log}"))?;
    assert!(
        retire["stats"]["test"]["p_value"].as_f64().unwrap_or(1.0) <= 0.05,
        "it did score better: {retire}"
    );
    assert!(
        retire["reason"]
            .as_str()
            .is_some_and(|r| r.contains("may not be promoted: its check 'suspicious' failed")),
        "{retire}"
    );
    assert_eq!(aliases(&p)?, (Some(first), Some(second)));
    Ok(())
}

#[test]
fn the_repository_loop_runs_inference_from_its_sensor_and_the_policy_after_it() -> R {
    let mut assets = ASSETS.to_vec();
    assets.push("challenger_performance");
    let p = repository_rules(&assets, &TINY_MODEL)?;
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    for file in [
        "jobs/daily_inference.toml",
        "sensors/realtime_sensor.toml",
        "alerts/log_file.toml",
    ] {
        p.write(
            &format!("rules/{file}"),
            &std::fs::read_to_string(repo.join(file))?,
        )?;
    }
    at(&p, "2026-08-14", &["build", "trained_model"])?;
    let model = p.version("trained_model")?.ok_or("a model")?;
    // Friday evening in Tokyo: the sensor's first sight is a baseline; nothing runs.
    let out = at(&p, "2026-08-14T10:00:00Z", &["tick"])?;
    assert!(!out.contains("realtime_sensor: fired"), "{out}");
    assert!(p.version("predictions")?.is_none());
    // Monday: a new trading day in the market source runs daily_inference at once —
    // both models' predictions and scores — and the policy after it.
    let out = at(&p, "2026-08-17T10:00:00Z", &["tick"])?;
    assert!(
        out.contains("realtime_sensor: fired") && out.contains("daily_inference"),
        "{out}\nsensors: {:?}",
        std::fs::read_to_string(p.path("lake/_lakebuild/sensors.json"))
    );
    for asset in [
        "predictions",
        "challenger_predictions",
        "prediction_performance",
        "challenger_performance",
    ] {
        let days = p.hashes(asset)?;
        assert!(
            days.keys().any(|d| d.to_string().contains("2026-08-17")),
            "{asset} has no 2026-08-17: {:?}",
            days.keys().last()
        );
    }
    assert_eq!(aliases(&p)?, (Some(model), Some(model)));
    let log = json(&p, "2026-08-17", &["model", "policy", "--log", "--json"])?;
    let last = log
        .as_array()
        .and_then(|a| a.last())
        .ok_or(format!("{log}"))?;
    assert_eq!(last["action"], "wait", "{log}");
    assert!(
        last["reason"]
            .as_str()
            .is_some_and(|r| r.contains("no challenger")),
        "{log}"
    );
    Ok(())
}

/// Two versions of one configuration that differ only in their seed are equally strong:
/// the repository's policy, looking every day as it does in production, must promote
/// neither in at least 19 of 20 such pairs. Forty tiny models are trained on the same
/// days with seeds 1000..1039, each read through its own `production` alias by its own
/// predictions asset; pair `i` is seed `1000 + 2i` as the champion against `1001 + 2i`
/// as the challenger. Each pair's daily 1-day RankIC differences (what `model compare`
/// and the policy both compute, on the days out of sample for both) are replayed one day
/// at a time through the policy's own test and verdict with the repository's settings,
/// so day `n`'s decision is the one production would have taken on day `n`. A naive
/// policy (promote the first day after `min_days` that the fixed-sample t > 1.645) on the
/// same differences is reported beside it: that is what repeated looks do to a test that
/// ignores them.
#[test]
fn versions_that_differ_only_in_their_seed_are_not_promoted_in_19_of_20_pairs() -> R {
    use lakebuild::jp_equity::model::dataset::horizon_days_of;
    use lakebuild::jp_equity::promotion::sequential::{Verdict, test, verdict};
    const PAIRS: usize = 20;
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let rules = lakebuild::engine::project::load_rules(&repo, &*lakebuild::registry())?;
    let policy = rules
        .get("trained_model")
        .and_then(|r| r.promotion.clone())
        .ok_or("the repository's model has a [promotion]")?;
    let h = horizon_days_of(&policy.horizon);

    // The tiny market, a year longer: features from January 2025, models trained on the
    // days to June 2025 and scored on those after.
    let edits: Vec<(&str, &str)> = TINY_MODEL
        .iter()
        .map(|&(from, to)| (from, if to == "2025-01-06" { "2024-01-04" } else { to }))
        .collect();
    let p = repository_rules(&ASSETS[..7], &edits)?;
    let mut model = std::fs::read_to_string(repo.join("trained_model.toml"))?;
    for &(from, to) in &edits {
        model = model.replace(from, to);
    }
    let model = model.split("\n[mlflow]").next().ok_or("rule")?.to_string();
    assert!(model.contains("seed = 42"), "{model}");
    let mut predict = std::fs::read_to_string(repo.join("predictions.toml"))?;
    for &(from, to) in &edits {
        predict = predict.replace(from, to);
    }
    let names = |i: usize| (format!("m{i:02}"), format!("p{i:02}"));
    for i in 0..2 * PAIRS {
        let (m, pr) = names(i);
        p.rule(
            &m,
            &model.replace("seed = 42", &format!("seed = {}", 1000 + i)),
        )?;
        p.rule(
            &pr,
            &format!(
                "{}\n[params]\nmodel = \"{m}\"\n",
                predict.replace("trained_model@production", &format!("{m}@production"))
            ),
        )?;
    }
    // Every model trained on the same days (those up to June 2025)...
    let started = std::time::Instant::now();
    let mut args = vec!["build".to_string(), "-j".into(), "2".into()];
    args.extend((0..2 * PAIRS).map(|i| names(i).0));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    at(&p, "2025-08-01", &args)?;
    let mut versions = Vec::new();
    for i in 0..2 * PAIRS {
        let m = names(i).0;
        let v = p.version(&m)?.ok_or("a model")?;
        at(
            &p,
            "2025-08-01",
            &[
                "model",
                "alias",
                "production",
                &v.to_string(),
                "--asset",
                &m,
            ],
        )?;
        versions.push(v);
    }
    let trained = started.elapsed();
    // ...and each scores every day through the end of August 2026 (the models are not
    // retrained: only the predictions are built).
    at(
        &p,
        "2026-09-01",
        &["build", "-j", "2", "processed_features", "labels"],
    )?;
    let mut args = vec![
        "build".to_string(),
        "--only".into(),
        "-j".into(),
        "2".into(),
    ];
    args.extend((0..2 * PAIRS).map(|i| names(i).1));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    at(&p, "2026-09-01", &args)?;
    for (i, v) in versions.iter().enumerate() {
        assert_eq!(
            p.version(&names(i).0)?,
            Some(*v),
            "model {i} was not retrained"
        );
    }
    let scored = started.elapsed() - trained;

    let (mut sequential, mut naive) = (Vec::new(), Vec::new());
    for pair in 0..PAIRS {
        let (champion, challenger) = (names(2 * pair).1, names(2 * pair + 1).1);
        let c = json(
            &p,
            "2026-09-01",
            &[
                "model",
                "compare",
                &champion,
                &challenger,
                "--horizon",
                &policy.horizon,
                "--json",
            ],
        )?;
        let hz = &c["horizons"][0];
        let diffs: Vec<f64> = hz["daily_diff"]
            .as_array()
            .ok_or(format!("daily_diff: {c}"))?
            .iter()
            .filter_map(|d| d[1].as_f64())
            .collect();
        assert!(
            diffs.len() >= policy.max_days,
            "pair {pair}: {} shared days ({} to {}), fewer than max_days {}",
            diffs.len(),
            hz["first_day"],
            hz["last_day"],
            policy.max_days
        );
        for n in 1..=diffs.len() {
            match verdict(&test(&diffs[..n], h, policy.effect), &policy) {
                Verdict::Promote => {
                    // With the t over every shared day: was it luck, or is that seed better?
                    let all = test(&diffs, h, policy.effect).t;
                    sequential.push((
                        pair,
                        n,
                        format!("t over all {} days {all:+.2}", diffs.len()),
                    ));
                    break;
                }
                Verdict::Retire => break,
                Verdict::TooFew | Verdict::Wait => {}
            }
        }
        if let Some(n) = (policy.min_days..=diffs.len().min(policy.max_days))
            .find(|&n| test(&diffs[..n], h, policy.effect).t > 1.645)
        {
            naive.push((pair, n));
        }
    }
    eprintln!(
        "{PAIRS} seed pairs (trained in {:.0?}, scored in {:.0?}): the policy promoted {} {:?}; \
         a naive daily t > 1.645 would have promoted {} {:?}",
        trained,
        scored,
        sequential.len(),
        sequential,
        naive.len(),
        naive
    );
    assert!(
        sequential.len() <= 1,
        "equal-strength challengers promoted in {} of {PAIRS} pairs: {sequential:?}",
        sequential.len()
    );
    Ok(())
}
