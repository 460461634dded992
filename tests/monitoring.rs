//! Model monitoring through the binary: `prediction_performance` scores predictions as
//! labels arrive, and when a bad model's predictions replace a good one's, the decay check
//! warns (the build still succeeds) and the alert goes out once, as model decay.

mod common;
use common::*;

/// 25 stocks × 70 business days of forward returns.
fn labels_csv() -> String {
    let mut s = String::from("Date,Code,fwd_ret_1d\n");
    for d in 0..70u32 {
        for k in 0..25u32 {
            let v = (((d * 7919 + k * 104729) % 1000) as f64 / 1000.0 - 0.5) / 10.0;
            s.push_str(&format!("{},{}0,{v}\n", day(d), 1000 + k));
        }
    }
    s
}

fn predictions(sign: &str) -> String {
    format!(
        "op = \"sql\"\npartitioned = \"daily\"\nkey_columns = [\"Code\", \"Date\"]\ninputs = [{{ asset = \"labels\", window = [0, 0] }}]\n[params]\nquery = \"SELECT Date, Code, {sign}fwd_ret_1d AS pred_1d, false AS in_sample FROM labels\"\n"
    )
}

#[test]
fn a_bad_model_promoted_over_a_good_one_is_detected_as_decay_and_alerted_once() -> R {
    let p = Proj::new()?;
    p.write("data/labels.csv", &labels_csv())?;
    p.rule("labels", "op = \"files\"\npartitioned = \"daily\"\nkey_columns = [\"Code\", \"Date\"]\n[params]\npath = \"data/labels.csv\"\n")?;
    p.rule("predictions", &predictions(""))?;
    let perf = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/prediction_performance.toml"),
    )?;
    p.rule("prediction_performance", &perf)?;
    p.write(
        "rules/alerts/log.toml",
        "command = [\"sh\", \"-c\", \"cat >> alerts.jsonl\"]\n",
    )?;
    p.ok(&["build"])?;
    let f = p.frame("prediction_performance")?;
    let ric = f.column("rank_ic_20d")?.f64()?.clone();
    // Not vacuous: the rolling RankIC exists on most rows (an all-null column would pass
    // the check below).
    assert!(
        !ric.is_empty() && ric.null_count() * 2 < ric.len(),
        "rank_ic_20d is null on {} of {} rows",
        ric.null_count(),
        ric.len()
    );
    assert!(
        ric.iter().flatten().all(|v| (v - 1.0).abs() < 1e-9),
        "a perfect model's rolling RankIC is 1"
    );
    assert!(!p.path("alerts.jsonl").exists());

    // Promote the bad model (its predictions are the opposite): decay.
    p.rule("predictions", &predictions("-"))?;
    let out = p.ok(&["build"])?;
    assert!(out.contains("prediction_performance"), "{out}");
    let alerts: Vec<serde_json::Value> = std::fs::read_to_string(p.path("alerts.jsonl"))?
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["kind"], "model_decay");
    assert_eq!(alerts[0]["check"], "model_decay");
    assert!(
        alerts[0]["text"]
            .as_str()
            .unwrap_or("")
            .contains("model decay — prediction_performance"),
        "{alerts:?}"
    );
    let stats = p.ok(&["stats"])?;
    assert!(
        stats
            .lines()
            .any(|l| l.starts_with("prediction_performance")),
        "{stats}"
    );
    // Rolling back to the good model: the decay is resolved.
    p.rule("predictions", &predictions(""))?;
    p.ok(&["build"])?;
    let alerts: Vec<serde_json::Value> = std::fs::read_to_string(p.path("alerts.jsonl"))?
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[1]["status"], "resolved");
    Ok(())
}

/// Predictions keyed by string codes against labels imported with numeric codes: the
/// performance op refuses the pair before joining, naming both assets and both types (not
/// polars' "datatypes of join keys don't match" plan dump), and what was built stays.
#[test]
fn predictions_and_labels_with_codes_of_different_types_are_refused_naming_both() -> R {
    let p = Proj::new()?;
    p.write("data/labels.csv", &labels_csv())?;
    p.rule("labels", "op = \"files\"\npartitioned = \"daily\"\nkey_columns = [\"Code\", \"Date\"]\n[params]\npath = \"data/labels.csv\"\n")?;
    p.rule(
        "predictions",
        &predictions("").replace("Code,", "CAST(Code AS VARCHAR) AS Code,"),
    )?;
    let perf = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/prediction_performance.toml"),
    )?;
    p.rule("prediction_performance", &perf)?;
    p.ok(&["build", "labels", "predictions"])?;
    let (labels, preds) = (p.version("labels")?, p.version("predictions")?);
    assert!(labels.is_some() && preds.is_some());
    let out = p.run(&["build"])?;
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(
            "op performance joins its inputs 'predictions' and 'labels' on Code, Date: column 'Code' is str in 'predictions' but i64 in 'labels'"
        ),
        "{text}"
    );
    assert!(!text.contains("Resolved plan"), "{text}");
    assert_eq!(p.version("labels")?, labels);
    assert_eq!(p.version("predictions")?, preds);
    assert_eq!(p.version("prediction_performance")?, None);
    Ok(())
}
