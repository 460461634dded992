//! The model through the engine, on the repository's own rules over a small synthetic
//! market (30 stocks) with a tiny network: `trained_model` and `predictions` build end to
//! end, the model is retrained only when its month rolls over, training is bit-identical
//! at 1 and 2 threads, and a model refuses features it was not trained on.

mod common;
use common::*;
use lakebuild::jp_equity::model::store::StoredModel;
use polars::prelude::*;

const ASSETS: [&str; 11] = [
    "trading_calendar",
    "raw_stock_data",
    "listed_info",
    "topix",
    "synthetic_truth",
    "processed_features",
    "labels",
    "trained_model",
    "predictions",
    "model_evaluation",
    "prediction_performance",
];

/// The repository's rules: 30 stocks from 2025-01-06, a tiny model and short folds.
fn project() -> R<Proj> {
    repository_rules(&ASSETS, &TINY_MODEL)
}

fn build_at(p: &Proj, today: &str, args: &[&str], threads: Option<&str>) -> R<String> {
    let mut c = p.cmd(args);
    c.env("LAKEBUILD_NOW", today);
    if let Some(t) = threads {
        c.env("RAYON_NUM_THREADS", t);
    }
    let out = c.output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        return Err(format!("lakebuild {args:?} at {today} failed:\n{text}").into());
    }
    Ok(text)
}

fn model(p: &Proj) -> R<StoredModel> {
    Ok(StoredModel::from_frame(&p.frame("trained_model")?)?)
}

#[test]
fn predictions_build_end_to_end_and_the_model_retrains_only_when_its_month_rolls_over() -> R {
    let p = project()?;
    build_at(
        &p,
        "2026-08-14",
        &["predictions", "model_evaluation", "prediction_performance"],
        None,
    )?;

    // The stored model: tensors, config, feature list, labels and CV metrics.
    let m = model(&p)?;
    assert_eq!(m.model.hidden, 8);
    assert_eq!(
        m.labels,
        ["fwd_ret_1d", "fwd_ret_5d", "fwd_ret_10d", "fwd_ret_20d"]
    );
    assert_eq!(m.metrics.folds.len(), 2);
    // Trained through complete months only, less 20 days for the labels: before July.
    assert!(
        m.metrics.train_last < date("2026-07-10"),
        "{}",
        m.metrics.train_last
    );
    for f in &m.metrics.folds {
        assert!(f.valid_first > f.train_last);
        assert_eq!(f.horizons.len(), 4);
        assert!(
            f.horizons
                .iter()
                .all(|h| h.rank_ic.is_finite() && h.days > 0)
        );
    }
    assert!(m.features.model_inputs().len() >= 30);

    // The evaluation: one row per fold, horizon and validation day, with the oracle IC.
    let ev = p.frame("model_evaluation")?;
    let days: usize = m.metrics.folds.iter().map(|f| f.days.len()).sum();
    assert_eq!(ev.height(), days);
    assert!(days >= 2 * 4 * 10, "{days} evaluated days");
    let oracle = ev.column("oracle_ic")?.f64()?.clone();
    assert!(
        oracle.null_count() < ev.height() / 4,
        "the oracle IC exists where labels do"
    );
    let one_day = ev
        .clone()
        .lazy()
        .filter(col("horizon").eq(lit("fwd_ret_1d")))
        .select([col("oracle_ic").mean()])
        .collect()?;
    let mean = one_day.column("oracle_ic")?.f64()?.get(0).unwrap_or(0.0);
    assert!(
        mean > 0.05,
        "the planted component predicts the next day: oracle IC {mean}"
    );

    // Predictions: every quantile and the point prediction per horizon, the model id.
    let preds = p.frame("predictions")?;
    for tag in ["1d", "5d", "10d", "20d"] {
        for q in ["q05", "q25", "q50", "q75", "q95"] {
            assert!(
                preds.column(&format!("pred_{tag}_{q}")).is_ok(),
                "pred_{tag}_{q} missing"
            );
        }
        let point = preds.column(&format!("pred_{tag}"))?.f32()?.clone();
        let median = preds.column(&format!("pred_{tag}_q50"))?.f32()?.clone();
        assert!(
            point.iter().zip(median.iter()).all(|(a, b)| a == b),
            "the point prediction is the median"
        );
        assert_eq!(point.null_count(), 0);
    }
    let ids = preds.column("model_id")?.str()?.clone();
    assert!(ids.iter().all(|i| i == Some(m.id().as_str())));
    let per_day = preds
        .clone()
        .lazy()
        .group_by([col("Date")])
        .agg([len().alias("n")])
        .collect()?;
    assert!(
        per_day
            .column("n")?
            .u32()?
            .iter()
            .all(|n| n.is_some_and(|n| n >= 20))
    );
    let in_sample = preds.column("in_sample")?.bool()?.clone();
    assert!(
        in_sample.iter().any(|v| v == Some(false)),
        "days after the training range are out of sample"
    );

    // Monitoring: a row per day and horizon; out-of-sample days with arrived labels are
    // scored, in-sample days are not.
    let perf = p.frame("prediction_performance")?;
    let pred_days = per_day.height();
    assert_eq!(perf.height(), 4 * pred_days);
    let scored = perf
        .clone()
        .lazy()
        .filter(
            col("horizon")
                .eq(lit("1d"))
                .and(col("rank_ic").is_not_null()),
        )
        .select([
            col("Date").min().alias("first"),
            col("Date").count().alias("n"),
            col("days_20d").max().alias("d20"),
        ])
        .collect()?;
    let first = scored
        .column("first")?
        .cast(&DataType::String)?
        .str()?
        .get(0)
        .unwrap_or("")
        .to_string();
    assert!(
        first.as_str() > m.metrics.train_last.to_string().as_str(),
        "only out-of-sample days are scored: {first}"
    );
    assert!(
        scored.column("n")?.u32()?.get(0).unwrap_or(0) >= 20,
        "{scored}"
    );
    assert_eq!(scored.column("d20")?.i32()?.get(0), Some(20));

    // The next trading day: one new predictions partition, the model untouched.
    let model_version = p.version("trained_model")?;
    let before = p.hashes("predictions")?;
    build_at(&p, "2026-08-17", &["predictions"], None)?;
    assert_eq!(
        p.version("trained_model")?,
        model_version,
        "no retraining within the month"
    );
    let after = p.hashes("predictions")?;
    assert_eq!(after.len(), before.len() + 1);
    for (id, h) in &before {
        assert_eq!(
            after.get(id),
            Some(h),
            "prediction {id} changed within the month"
        );
    }

    // A new month: the model retrains on one more month.
    build_at(&p, "2026-09-01", &["predictions"], None)?;
    assert_ne!(
        p.version("trained_model")?,
        model_version,
        "the model retrains when its month rolls over"
    );
    let m2 = model(&p)?;
    assert!(m2.metrics.train_last > m.metrics.train_last);

    // Versions and aliases: both models are listed; predictions follow an alias.
    let list: serde_json::Value = serde_json::from_str(&p.ok(&["model", "list", "--json"])?)?;
    let versions: Vec<(i64, String)> = list
        .as_array()
        .ok_or("a list")?
        .iter()
        .map(|v| {
            (
                v["version"].as_i64().unwrap_or(-1),
                v["model_id"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(versions.len(), 2, "{list}");
    assert_eq!(versions[0].1, m.id());
    assert_eq!(versions[1].1, m2.id());
    // Production stays on the first model (the promotion policy set it on the first
    // build); the new version is the challenger, on trial.
    assert_eq!(
        model_ids(&p, "predictions")?,
        [m.id()],
        "a new version does not reach predictions until promoted"
    );
    let first = versions[0].0.to_string();
    let second = versions[1].0.to_string();
    p.ok(&["model", "alias", "production", &second])?;
    build_at(&p, "2026-09-01", &["predictions"], None)?;
    assert_eq!(model_ids(&p, "predictions")?, [m2.id()]);
    // Rolling back restores the earlier predictions instead of recomputing them.
    p.ok(&["model", "alias", "production", &first])?;
    let out = build_at(&p, "2026-09-01", &["predictions"], None)?;
    assert_eq!(model_ids(&p, "predictions")?, [m.id()]);
    assert!(
        out.lines()
            .any(|l| l.starts_with("predictions") && l.contains("built 0")),
        "{out}"
    );
    // gc keeps the files of an aliased version, however short the retention.
    p.ok(&["gc", "--retention", "0s"])?;
    let list: serde_json::Value = serde_json::from_str(&p.ok(&["model", "list", "--json"])?)?;
    assert_eq!(
        list[0]["model_id"].as_str(),
        Some(m.id().as_str()),
        "{list}"
    );
    build_at(
        &p,
        "2026-09-01",
        &["predictions", "--force", "--only"],
        None,
    )?;
    assert_eq!(model_ids(&p, "predictions")?, [m.id()]);
    let err = p.fails(&["model", "alias", "production", "999"], 2)?;
    assert!(
        err.contains("has no output at version 999; its versions are: 1, 2"),
        "{err}"
    );
    // Every move is in the audit record, oldest first: the policy's first production
    // and challenger, then `lakebuild model alias`.
    let history: serde_json::Value = serde_json::from_str(&p.ok(&["model", "history", "--json"])?)?;
    let moves: Vec<(&str, Option<i64>, i64, &str)> = history
        .as_array()
        .ok_or("a list")?
        .iter()
        .map(|m| {
            (
                m["alias"].as_str().unwrap_or(""),
                m["from"].as_i64(),
                m["to"].as_i64().unwrap_or(-1),
                m["by"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let (a, b) = (versions[0].0, versions[1].0);
    assert_eq!(
        moves,
        vec![
            ("production", None, a, "policy"),
            ("challenger", None, b, "policy"),
            ("production", Some(a), b, "cli"),
            ("production", Some(b), a, "cli")
        ],
        "{history}"
    );
    // Versions of the model compare by name: each side is that version's rows in the
    // predictions asset that reads it (production: predictions; the challenger, on trial:
    // challenger_predictions), the same as comparing the two assets.
    build_at(&p, "2026-09-01", &["challenger_predictions"], None)?;
    assert_eq!(model_ids(&p, "challenger_predictions")?, [m2.id()]);
    let compare = |x: &str, y: &str| -> R<serde_json::Value> {
        let out = p.ok(&["model", "compare", x, y, "--min-days", "5", "--json"])?;
        Ok(serde_json::from_str::<serde_json::Value>(&out)?["horizons"].clone())
    };
    let by_alias = compare("production", "challenger")?;
    assert!(by_alias[0]["days"].as_u64().unwrap_or(0) >= 5, "{by_alias}");
    assert_eq!(by_alias, compare(&first, &second)?);
    assert_eq!(
        by_alias,
        compare("trained_model@production", "trained_model@challenger")?
    );
    assert_eq!(by_alias, compare("predictions", "challenger_predictions")?);
    // The web UI's comparison is the same query.
    let ui = common::web_client::serve(&p, "127.0.0.1:0", &[("LAKEBUILD_NOW", "2026-09-01")], &[])?;
    let api = common::web_client::get(
        &ui.addr,
        "/api/compare?a=production&b=challenger&min_days=5",
    )?;
    assert_eq!(api["horizons"], by_alias);
    drop(ui);
    let err = p.fails(&["model", "compare", "production", "999"], 2)?;
    assert!(
        err.contains("has no readable model at version 999"),
        "{err}"
    );
    Ok(())
}

#[test]
fn the_same_seed_gives_bit_identical_weights_at_1_and_2_threads() -> R {
    let one = project()?;
    build_at(&one, "2026-08-14", &["trained_model"], Some("1"))?;
    let two = project()?;
    build_at(&two, "2026-08-14", &["trained_model"], Some("2"))?;
    let (a, b) = (model(&one)?, model(&two)?);
    assert_eq!(a.params.len(), b.params.len());
    assert!(
        a.params
            .iter()
            .zip(&b.params)
            .all(|(x, y)| x.to_bits() == y.to_bits()),
        "weights differ between 1 and 2 threads"
    );
    assert_eq!(one.hashes("trained_model")?, two.hashes("trained_model")?);
    Ok(())
}

#[test]
fn a_model_refuses_features_it_was_not_trained_on() -> R {
    let p = project()?;
    build_at(&p, "2026-08-14", &["predictions"], None)?;
    // A window whose required part is shorter than the model's input window (10 days).
    let preds = std::fs::read_to_string(p.path("rules/predictions.toml"))?;
    p.rule(
        "predictions",
        &preds.replace("full = true", "full = [-5, 0]"),
    )?;
    let out = p
        .cmd(&["build", "predictions", "--only", "--force"])
        .env("LAKEBUILD_NOW", "2026-08-14")
        .output()?;
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("the model's input window is 10 days: give 'processed_features' full = true or full = [-9, 0]"),
        "{text}"
    );
    p.rule("predictions", &preds)?;
    // A feature set without the volume family: rebuild the features only, then predict
    // with the model trained on the full set.
    let rule = std::fs::read_to_string(p.path("rules/processed_features.toml"))?
        .replace("\"volume\", ", "");
    let rule = rule
        .split("[[checks]]")
        .filter(|c| !c.contains("null_rate_volume"))
        .collect::<Vec<_>>()
        .join("[[checks]]");
    p.rule("processed_features", &rule)?;
    build_at(&p, "2026-08-14", &["processed_features"], None)?;
    let out = p
        .cmd(&["build", "predictions", "--only"])
        .env("LAKEBUILD_NOW", "2026-08-14")
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "predictions must refuse the changed features:\n{text}"
    );
    assert!(text.contains("missing column volume_ratio_"), "{text}");
    assert!(text.contains("retrain"), "{text}");
    Ok(())
}

/// The rules with a longer training, so that a kill lands in the middle of it.
fn longer(p: &Proj) -> R {
    let rule = std::fs::read_to_string(p.path("rules/trained_model.toml"))?
        .replace("epochs = 2", "epochs = 3")
        .replace("patience = 1", "patience = 3");
    p.rule("trained_model", &rule)
}

fn checkpoints(p: &Proj) -> Vec<std::path::PathBuf> {
    let dir = p.path("lake/_lakebuild/resume");
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path().join("checkpoint.json"))
                .filter(|f| f.exists())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_training_killed_with_sigkill_resumes_from_its_checkpoint_to_the_same_model() -> R {
    let reference = project()?;
    longer(&reference)?;
    build_at(&reference, "2026-08-14", &["trained_model"], None)?;

    let p = project()?;
    longer(&p)?;
    build_at(&p, "2026-08-14", &["processed_features", "labels"], None)?;
    let mut child = p
        .cmd(&["build", "trained_model"])
        .env("LAKEBUILD_NOW", "2026-08-14")
        .spawn()?;
    let t0 = std::time::Instant::now();
    // Wait for a checkpoint that has finished at least one fold.
    loop {
        let done = checkpoints(&p).iter().any(|f| {
            std::fs::read(f)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .is_some_and(|c| c["folds"].as_array().is_some_and(|a| !a.is_empty()))
        });
        if done {
            break;
        }
        if child.try_wait()?.is_some() || t0.elapsed().as_secs() > 300 {
            return Err(
                "the training ended before a checkpoint with a finished fold appeared".into(),
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill()?; // SIGKILL
    child.wait()?;
    assert!(
        p.version("trained_model")?.is_none(),
        "nothing is published by a killed training"
    );

    let out = build_at(&p, "2026-08-14", &["trained_model", "-v"], None)?;
    assert!(
        out.contains("resumed training from its checkpoint: 1 folds done")
            || out.contains("resumed training from its checkpoint: 2 folds done"),
        "{out}"
    );
    let (a, b) = (model(&reference)?, model(&p)?);
    assert_eq!(a.params.len(), b.params.len(), "the same parameter count");
    assert!(
        a.params
            .iter()
            .zip(&b.params)
            .all(|(x, y)| x.to_bits() == y.to_bits()),
        "a resumed training must give the same weights"
    );
    assert_eq!(a.metrics, b.metrics);
    // The whole stored model, not only the weights: every f64 of the validation metrics
    // round-trips the checkpoint exactly, so the content hash (and every key downstream)
    // is the uninterrupted build's.
    assert_eq!(
        p.hashes("trained_model")?,
        reference.hashes("trained_model")?,
        "a resumed training stores exactly what an uninterrupted one stores"
    );
    assert!(
        checkpoints(&p).is_empty(),
        "the checkpoint is removed once the model is published"
    );
    Ok(())
}

/// A worse copy of the model's predictions: every prediction negated.
const FLIPPED: &str = r#"
op = "sql"
key_columns = ["Code", "Date"]
inputs = [{ asset = "predictions" }]
[params]
query = "SELECT Code, Date, in_sample, -pred_1d AS pred_1d, -pred_5d AS pred_5d, -pred_10d AS pred_10d, -pred_20d AS pred_20d FROM predictions"
"#;

/// statsmodels' Newey–West standard error and t of the mean of the series on stdin.
const STATSMODELS_HAC: &str = r#"
import json, sys
import numpy as np
import statsmodels.api as sm
d = json.load(sys.stdin)
x = np.array(d["x"])
fit = sm.OLS(x, np.ones(len(x))).fit(cov_type="HAC", cov_kwds={"maxlags": d["lags"], "use_correction": False})
print(json.dumps({"se": float(fit.bse[0]), "t": float(fit.tvalues[0])}))
"#;

#[test]
fn model_compare_scores_two_prediction_sets_on_shared_out_of_sample_days_with_statsmodels_hac() -> R
{
    if !python_has("statsmodels") {
        return Ok(());
    }
    let p = project()?;
    p.rule("flipped", FLIPPED)?;
    build_at(
        &p,
        "2026-08-14",
        &["predictions", "flipped", "labels"],
        None,
    )?;
    let run = |args: &[&str]| p.cmd(args).env("LAKEBUILD_NOW", "2026-08-14").output();
    let compare = |extra: &[&str]| {
        let mut args = vec!["model", "compare", "predictions", "flipped"];
        args.extend_from_slice(extra);
        run(&args)
    };
    let out = compare(&["--min-days", "5", "--json"])?;
    assert!(out.status.success(), "{}", output_text(&out));
    let c: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let h = c["horizons"]
        .as_array()
        .and_then(|a| a.iter().find(|h| h["horizon"] == "1d"))
        .ok_or("the 1d horizon")?;
    let days = h["days"].as_u64().unwrap_or(0);
    assert!(days >= 5, "{h}");
    // Negated predictions rank every day the other way round.
    let (a, b) = (
        h["a"]["rank_ic"].as_f64().unwrap_or(f64::NAN),
        h["b"]["rank_ic"].as_f64().unwrap_or(f64::NAN),
    );
    assert!((a + b).abs() < 1e-12 && a != 0.0, "{h}");
    let diff = h["diff"].as_f64().unwrap_or(f64::NAN);
    assert!((diff - (b - a)).abs() < 1e-12, "{h}");
    let t = h["t"].as_f64().unwrap_or(f64::NAN);
    let p_b = h["p_b_better"].as_f64().unwrap_or(f64::NAN);
    assert_eq!(t > 0.0, p_b < 0.5, "{h}");
    let ci = h["ci95"].as_array().ok_or("ci95")?;
    let (lo, hi) = (
        ci[0].as_f64().unwrap_or(f64::NAN),
        ci[1].as_f64().unwrap_or(f64::NAN),
    );
    assert!(lo <= diff && diff <= hi, "{h}");
    // The HAC figures are statsmodels' Newey–West (Bartlett kernel, no small-sample
    // correction) on the same daily differences.
    let x: Vec<f64> = h["daily_diff"]
        .as_array()
        .ok_or("daily_diff")?
        .iter()
        .map(|d| d[1].as_f64().unwrap_or(f64::NAN))
        .collect();
    assert_eq!(x.len() as u64, days);
    let mut py = std::process::Command::new("python3")
        .args(["-c", STATSMODELS_HAC])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    {
        use std::io::Write;
        let mut stdin = py.stdin.take().ok_or("stdin")?;
        stdin.write_all(
            serde_json::json!({"x": x, "lags": h["lags"]})
                .to_string()
                .as_bytes(),
        )?;
    }
    let sm = py.wait_with_output()?;
    assert!(sm.status.success(), "{}", output_text(&sm));
    let sm: serde_json::Value = serde_json::from_slice(&sm.stdout)?;
    let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * y.abs().max(1e-12);
    assert!(
        close(
            h["hac_se"].as_f64().unwrap_or(f64::NAN),
            sm["se"].as_f64().unwrap_or(0.0)
        ),
        "{h} vs {sm}"
    );
    assert!(close(t, sm["t"].as_f64().unwrap_or(0.0)), "{h} vs {sm}");
    // The table names both sides and the test.
    let out = compare(&["--min-days", "5", "--horizon", "1d"])?;
    let text = output_text(&out);
    assert!(
        out.status.success() && text.contains("B − A RankIC") && text.contains("Newey–West"),
        "{text}"
    );
    // Refusals: too few days, an alias that does not exist.
    let out = compare(&["--min-days", "100000"])?;
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("fewer than the minimum of 100000"),
        "{}",
        output_text(&out)
    );
    let out = run(&["model", "compare", "predictions@nope", "flipped"])?;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        output_text(&out).contains("predictions has no alias 'nope'"),
        "{}",
        output_text(&out)
    );
    Ok(())
}
