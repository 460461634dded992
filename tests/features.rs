//! Features and labels through the engine, on the repository's own rules over a small
//! synthetic market: incremental = full, no lookahead, what a new day rebuilds, the
//! manifest stored with the asset, and rule errors the features op catches.

mod common;
use chrono::NaiveDate;
use common::*;
use lakebuild::core::partition::PartitionId;
use lakebuild::jp_equity::features::manifest::Manifest;
use lakebuild::jp_equity::features::{Family, catalog};
use lakebuild::jp_equity::market::calendar::trading_days;
use polars::prelude::{DataType, IntoLazy, col, lit};
use std::collections::BTreeMap;

const ASSETS: [&str; 7] = [
    "trading_calendar",
    "raw_stock_data",
    "listed_info",
    "topix",
    "synthetic_truth",
    "processed_features",
    "labels",
];

/// The repository's rules with a market of 30 stocks starting 2025-01-06.
fn project() -> R<Proj> {
    repository_rules(
        &ASSETS,
        &[
            ("stocks = 300", "stocks = 30"),
            ("2023-01-04", "2025-01-06"),
        ],
    )
}

/// `lakebuild build` as if today were `today`.
fn build_at(p: &Proj, today: NaiveDate, extra: &[&str]) -> R<String> {
    let mut args = vec!["build"];
    args.extend_from_slice(extra);
    let out = p
        .cmd(&args)
        .env("LAKEBUILD_NOW", today.to_string())
        .output()?;
    let text = output_text(&out);
    if !out.status.success() {
        return Err(format!("build at {today} failed:\n{text}").into());
    }
    Ok(text)
}

fn hashes(p: &Proj, assets: &[&str]) -> R<BTreeMap<String, BTreeMap<PartitionId, String>>> {
    let mut out = BTreeMap::new();
    for a in assets {
        out.insert(a.to_string(), p.hashes(a)?);
    }
    Ok(out)
}

const END: &str = "2026-04-30";

#[test]
fn day_by_day_over_60_days_equals_one_full_build() -> R {
    let end = date(END);
    let days = trading_days(date("2025-01-06"), end);
    let full = project()?;
    build_at(&full, end, &[])?;
    let features = full.hashes("processed_features")?;
    assert!(features.len() >= 60, "{} feature days", features.len());

    let inc = project()?;
    let steps = &days[days.len() - 61..];
    for d in steps {
        build_at(&inc, *d, &[])?;
    }
    let (a, b) = (
        hashes(&full, &["processed_features", "labels"])?,
        hashes(&inc, &["processed_features", "labels"])?,
    );
    for asset in ["processed_features", "labels"] {
        assert_eq!(a[asset].len(), b[asset].len(), "{asset}");
        for (id, h) in &a[asset] {
            assert_eq!(Some(h), b[asset].get(id), "{asset} {id} differs");
        }
    }
    Ok(())
}

#[test]
fn a_new_day_rebuilds_one_feature_partition_and_the_last_20_label_partitions() -> R {
    let end = date(END);
    let days = trading_days(date("2025-01-06"), end);
    let (prev, last) = (days[days.len() - 2], days[days.len() - 1]);
    let p = project()?;
    build_at(&p, prev, &[])?;
    let before = p.history()?.len();
    build_at(&p, last, &[])?;
    let rows = p.history()?;
    let new = &rows[before..];
    let ran = |asset: &str| -> i64 {
        new.iter()
            .filter(|r| r.asset == asset && matches!(r.outcome.as_str(), "built" | "cut_off"))
            .map(|r| r.partitions)
            .sum()
    };
    assert_eq!(ran("processed_features"), 1, "{new:#?}");
    // The new day, and the 20 before it whose [0, +20] windows gained it.
    assert_eq!(ran("labels"), 21, "{new:#?}");
    for upstream in ["trading_calendar", "raw_stock_data", "listed_info", "topix"] {
        assert_eq!(ran(upstream), 1, "{upstream}: {new:#?}");
    }
    // Labels older than 20 days were not touched; the 20 before the new day now have
    // their next-day label.
    let labels = p.frame("labels")?;
    let on = |d: NaiveDate| -> R<usize> {
        let f = labels
            .clone()
            .lazy()
            .filter(col("Date").eq(lit(d.to_string()).cast(DataType::Date)))
            .collect()?;
        Ok(f.column("fwd_ret_1d")?.null_count())
    };
    let stocks = p
        .frame("raw_stock_data")?
        .lazy()
        .filter(col("Date").eq(lit(prev.to_string()).cast(DataType::Date)))
        .collect()?
        .height();
    assert!(on(prev)? < stocks, "yesterday's next-day labels exist now");
    assert_eq!(on(last)?, stocks, "today's labels are all null");
    Ok(())
}

#[test]
fn perturbing_data_after_d_changes_no_feature_up_to_d_but_changes_labels() -> R {
    // raw_stock_data is a view of the synthetic bars; in the second project every close
    // after d is 5% higher. Each project builds in one batch, so the features op sees
    // the perturbed future rows: it must not use them.
    let end = date(END);
    let d = date("2026-03-02");
    let make = |perturb: bool| -> R<Proj> {
        let p = project()?;
        let raw = std::fs::read_to_string(p.path("rules/raw_stock_data.toml"))?;
        p.rule("raw_src", &raw)?;
        let close = if perturb {
            format!("CASE WHEN Date > DATE '{d}' THEN AdjC * 1.05 ELSE AdjC END")
        } else {
            "AdjC".to_string()
        };
        p.rule(
            "raw_stock_data",
            &format!(
                r#"op = "sql"
partitioned = "daily"
key_columns = ["Code", "Date"]
inputs = [{{ asset = "raw_src", window = [0, 0] }}]
[params]
query = "SELECT Date, Code, AdjO, AdjH, AdjL, {close} AS AdjC, AdjVo, Va FROM raw_src"
"#
            ),
        )?;
        build_at(&p, end, &[])?;
        Ok(p)
    };
    let (a, b) = (make(false)?, make(true)?);
    let (fa, fb) = (
        a.hashes("processed_features")?,
        b.hashes("processed_features")?,
    );
    let mut after = 0;
    for (id, h) in &fa {
        let day = id.date().ok_or("daily")?;
        if day <= d {
            assert_eq!(Some(h), fb.get(id), "feature partition {id} saw the future");
        } else if Some(h) != fb.get(id) {
            after += 1;
        }
    }
    assert!(after > 0, "perturbed days must change features after d");
    let (la, lb) = (a.hashes("labels")?, b.hashes("labels")?);
    let at = PartitionId::Day(d);
    assert_ne!(la.get(&at), lb.get(&at), "labels at d read the future");
    Ok(())
}

#[test]
fn the_feature_manifest_is_stored_with_the_table() -> R {
    let p = project()?;
    build_at(&p, date("2026-01-30"), &["processed_features"])?;
    let m = Manifest::read(&p.lake().table("processed_features"))?;
    assert_eq!(m, Manifest::of(&Family::ALL));
    // The data's columns are exactly the manifest's, in order and type.
    let df = p.frame("processed_features")?;
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let listed: Vec<String> = m.columns.iter().map(|c| c.name.clone()).collect();
    assert_eq!(names, listed);
    assert_eq!(
        m.model_inputs().len(),
        catalog(&Family::ALL).iter().filter(|d| d.cs_z).count()
    );
    // A model trained on fewer families refuses this data, naming the difference.
    let e = Manifest::of(&[Family::Returns]).check_same(&m).unwrap_err();
    assert!(e.contains("unexpected column rsi_14"), "{e}");
    Ok(())
}

#[test]
fn feature_rules_with_bad_families_or_windows_are_refused() -> R {
    let p = project()?;
    let good = std::fs::read_to_string(p.path("rules/processed_features.toml"))?;
    p.rule(
        "processed_features",
        &good
            .replace("window = [-259, 0], full", "window = [-99, 0], full")
            .replace("\"sector\"]", "\"sectors\"]"),
    )?;
    let out = p.fails(&["build", "--dry-run"], 2)?;
    assert!(out.contains("processed_features.toml:"), "{out}");
    assert!(out.contains("unknown feature family 'sectors'"), "{out}");

    p.rule(
        "processed_features",
        &good.replace("window = [-259, 0], full", "window = [-99, 0], full"),
    )?;
    let out = p.fails(&["build", "--dry-run"], 2)?;
    assert!(
        out.contains(
            "processed_features.toml:9: input 'raw_stock_data': window [-99, 0] holds 100 rows but"
        ),
        "{out}"
    );
    p.rule(
        "processed_features",
        &good.replace("window = [-259, 0], full", "window = [-259, 1], full"),
    )?;
    let out = p.fails(&["build", "--dry-run"], 2)?;
    assert!(out.contains("reads the future"), "{out}");
    let labels = std::fs::read_to_string(p.path("rules/labels.toml"))?;
    p.rule("processed_features", &good)?;
    p.rule(
        "labels",
        &labels.replace("window = [0, 20]", "window = [0, 10]"),
    )?;
    let out = p.fails(&["build", "--dry-run"], 2)?;
    assert!(out.contains("labels read window [0, 20]"), "{out}");
    Ok(())
}

/// A `listed_info` imported from a CSV, whose codes a reader takes for numbers: the
/// features op refuses it before computing, naming the asset, the column, the type found
/// and the type expected (not polars' "datatypes of join keys don't match" plan dump), and
/// everything already committed stays as it was.
#[test]
fn a_listed_info_imported_with_numeric_codes_is_refused_naming_the_column() -> R {
    use polars::prelude::{CsvWriter, SerWriter};
    let p = project()?;
    let today = date("2026-01-30");
    build_at(&p, today, &["raw_stock_data", "topix", "listed_info"])?;
    // Keep the numeric codes (the synthetic market also lists alphanumeric ones such as
    // "131A0"), so that a CSV reader takes the column for integers.
    let listed = p.frame("listed_info")?;
    let numeric: Vec<bool> = listed
        .column("Code")?
        .str()?
        .iter()
        .map(|c| c.is_some_and(|c| c.parse::<i64>().is_ok()))
        .collect();
    let mut listed = listed.filter(&numeric.iter().copied().collect())?;
    assert!(listed.height() > 0, "no numeric code listed");
    let mut csv = Vec::new();
    CsvWriter::new(&mut csv).finish(&mut listed)?;
    p.write("data/listed_info.csv", &String::from_utf8(csv)?)?;
    p.rule(
        "listed_info",
        "op = \"files\"\npartitioned = \"daily\"\nkey_columns = [\"Code\", \"Date\"]\n[params]\npath = \"data/listed_info.csv\"\n",
    )?;
    let raw = p.version("raw_stock_data")?;
    let out = p
        .cmd(&["build", "processed_features"])
        .env("LAKEBUILD_NOW", today.to_string())
        .output()?;
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("op features cannot read its input 'listed_info': column 'Code' is i64, expected a string (str)"),
        "{text}"
    );
    assert!(!text.contains("Resolved plan"), "{text}");
    // The import itself was built (it is valid data); nothing downstream was committed.
    assert!(p.version("listed_info")?.is_some());
    assert_eq!(p.version("raw_stock_data")?, raw);
    assert_eq!(p.version("processed_features")?, None);
    Ok(())
}
