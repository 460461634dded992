//! The embedded synthetic market through the engine: the repository's own rules (shrunk),
//! deterministic across runs and thread counts, incremental = full, one new day builds
//! one partition per table, and codes stay strings.

mod common;
use common::*;
use std::collections::BTreeMap;

/// The repository's market rules, with a small market over a short history.
fn market_project() -> R<Proj> {
    repository_rules(
        &[
            "trading_calendar",
            "raw_stock_data",
            "listed_info",
            "topix",
            "synthetic_truth",
        ],
        &[
            ("stocks = 300", "stocks = 45"),
            ("2023-01-04", "2026-08-03"),
        ],
    )
}

fn all_hashes(
    p: &Proj,
) -> R<BTreeMap<String, BTreeMap<lakebuild::core::partition::PartitionId, String>>> {
    let mut out = BTreeMap::new();
    for a in [
        "trading_calendar",
        "raw_stock_data",
        "listed_info",
        "topix",
        "synthetic_truth",
    ] {
        out.insert(a.to_string(), p.hashes(a)?);
    }
    Ok(out)
}

#[test]
fn synthetic_market_is_deterministic_across_runs_and_threads() -> R {
    let a = market_project()?;
    a.cmd(&["build", "-j", "1"])
        .env("LAKEBUILD_NOW", "2026-09-30")
        .env("RAYON_NUM_THREADS", "1")
        .output()?;
    let b = market_project()?;
    let out = b
        .cmd(&["build", "-j", "2"])
        .env("LAKEBUILD_NOW", "2026-09-30")
        .env("RAYON_NUM_THREADS", "2")
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (ha, hb) = (all_hashes(&a)?, all_hashes(&b)?);
    assert_eq!(ha, hb);
    // August 2026 has 20 trading days from the 3rd (Mountain Day on the 11th); September
    // 19 (Respect for the Aged Day, a citizens' holiday and the equinox on the 21st-23rd).
    assert_eq!(ha["trading_calendar"].len(), 39);
    Ok(())
}

#[test]
fn a_new_day_builds_one_partition_per_table_and_equals_a_full_build() -> R {
    let inc = market_project()?;
    let run = |p: &Proj, now: &str| -> R {
        let out = p.cmd(&["build"]).env("LAKEBUILD_NOW", now).output()?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).to_string().into());
        }
        Ok(())
    };
    run(&inc, "2026-09-29")?;
    let before = inc.history()?.len();
    // A new process: the market resumes from the state the first build stored, instead of
    // regenerating the history, and the day it makes is the full build's (below).
    let out = inc
        .cmd(&["build", "-v"])
        .env("LAKEBUILD_NOW", "2026-09-30")
        .output()?;
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("synthetic market resumed at day"),
        "the market was regenerated: {text}"
    );
    let rows: Vec<_> = inc
        .history()?
        .into_iter()
        .skip(before)
        .filter(|r| r.outcome == "built")
        .collect();
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| r.partitions == 1 && r.partition_from.as_deref() == Some("2026-09-30"))
    );

    let full = market_project()?;
    run(&full, "2026-09-30")?;
    assert_eq!(all_hashes(&inc)?, all_hashes(&full)?);
    Ok(())
}

#[test]
fn codes_are_strings_and_bars_are_sane() -> R {
    let p = market_project()?;
    let out = p
        .cmd(&["build"])
        .env("LAKEBUILD_NOW", "2026-08-31")
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let df = p.frame("raw_stock_data")?;
    assert!(
        df.column("Code")?
            .str()?
            .iter()
            .flatten()
            .any(|c| c == "13010")
    );
    assert!(
        df.column("Code")?
            .str()?
            .iter()
            .flatten()
            .any(|c| c.chars().any(|x| x.is_ascii_alphabetic())),
        "an alphanumeric code"
    );
    assert_eq!(
        df.column("AdjC")?.dtype(),
        &polars::prelude::DataType::Float64
    );
    // Every bar is a sane bar: on a traded day L <= O, C <= H, all positive, volume > 0;
    // a no-trade day has null prices and zero volume. The adjusted prices scale the raw
    // ones by one factor per bar.
    let col = |n: &str| -> R<Vec<Option<f64>>> {
        Ok(df
            .column(n)?
            .cast(&polars::prelude::DataType::Float64)?
            .f64()?
            .iter()
            .collect())
    };
    let (o, h, l, c, v) = (col("O")?, col("H")?, col("L")?, col("C")?, col("Vo")?);
    let (ao, ah, al, ac) = (col("AdjO")?, col("AdjH")?, col("AdjL")?, col("AdjC")?);
    assert!(df.height() >= 500, "{} bars", df.height());
    let (mut traded, mut idle) = (0, 0);
    for i in 0..df.height() {
        match (o[i], h[i], l[i], c[i]) {
            (Some(o), Some(h), Some(l), Some(c)) => {
                traded += 1;
                assert!(
                    l > 0.0 && l <= o.min(c) && h >= o.max(c),
                    "bar {i}: O {o} H {h} L {l} C {c}"
                );
                assert!(
                    v[i].is_some_and(|v| v > 0.0),
                    "bar {i}: traded with volume {:?}",
                    v[i]
                );
                // Adjusted prices are rounded to 1e-4: one factor per bar up to that.
                let f = ac[i].ok_or("AdjC")? / c;
                for (adj, raw) in [(ao[i], o), (ah[i], h), (al[i], l)] {
                    let adj = adj.ok_or("adjusted price")?;
                    assert!(
                        (adj - raw * f).abs() <= 1e-4 * (1.0 + raw / c) + 1e-9,
                        "bar {i}: adjusted {adj} vs raw {raw} × {f}"
                    );
                }
            }
            (None, None, None, None) => {
                idle += 1;
                assert_eq!(v[i], Some(0.0), "bar {i}: a no-trade day has zero volume");
            }
            other => return Err(format!("bar {i}: partly null prices {other:?}").into()),
        }
    }
    assert!(traded > 0 && idle > 0, "traded {traded}, no-trade {idle}");
    Ok(())
}

#[test]
fn files_source_imports_v1_and_v2_dumps_into_one_schema() -> R {
    let p = Proj::new()?;
    // A v1 CSV (codes that look numeric, and an alphanumeric one) and a v2 CSV.
    p.write(
        "dumps/v1.csv",
        "Date,Code,Open,High,Low,Close,UpperLimit,LowerLimit,Volume,TurnoverValue,AdjustmentFactor,AdjustmentOpen,AdjustmentHigh,AdjustmentLow,AdjustmentClose,AdjustmentVolume\n\
         2024-01-04,13010,100,110,95,105,0,0,1000,105000,1.0,100,110,95,105,1000\n\
         2024-01-04,131A0,50,55,45,52,0,0,10,520,1.0,50,55,45,52,10\n",
    )?;
    p.write(
        "dumps/v2.csv",
        "Date,Code,O,H,L,C,UL,LL,Vo,Va,AdjFactor,AdjO,AdjH,AdjL,AdjC,AdjVo\n\
         2024-01-05,13010,105,112,101,111,0,0,900,99900,1.0,105,112,101,111,900\n",
    )?;
    p.rule(
        "raw_stock_data",
        "op = \"jquants_files\"\npartitioned = \"daily\"\nkey_columns = [\"Code\", \"Date\"]\n[params]\npath = \"dumps/*.csv\"\n",
    )?;
    p.ok(&["build"])?;
    assert_eq!(p.state("raw_stock_data")?.current.len(), 2);
    let df = p.frame("raw_stock_data")?;
    let codes: Vec<&str> = df.column("Code")?.str()?.iter().flatten().collect();
    assert!(
        codes.contains(&"13010") && codes.contains(&"131A0"),
        "{codes:?}"
    );
    assert_eq!(df.column("AdjC")?.null_count(), 0);
    assert_eq!(
        df.column("AdjC")?.dtype(),
        &polars::prelude::DataType::Float64
    );
    assert!(df.column("Open").is_err(), "v1 names were mapped to v2");
    Ok(())
}
