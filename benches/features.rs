//! Features benchmarks (issue 4). Run with:
//!
//!     cargo bench --bench features
//!
//! Builds the repository's market and `processed_features` rules on a synthetic market
//! of 4,000 stocks × 10 years (`LAKEBUILD_BENCH_STOCKS`, `LAKEBUILD_BENCH_YEARS` shrink
//! it; `LAKEBUILD_BENCH_DIR` keeps the lake), then prints:
//! - the full build of `processed_features`: wall time, rows/s, peak memory, lake size;
//! - a one-new-day incremental build: wall time and its ratio to the full build;
//! - the same feature set computed with pandas (`benches/features_pandas.py`, the way
//!   the replaced Python system did it) on the same data, and lakebuild's speed-up.

mod common;
use chrono::{Datelike, NaiveDate};
use common::{bench_root, env_or};
use lakebuild::jp_equity::market::calendar::trading_days;
use lakebuild::lake::Lake;
use lakebuild::lake::runs::{self, RunRow};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Runs lakebuild; returns its wall time and the milliseconds the features op itself
/// spent computing (from its debug log), summed over batches.
fn lakebuild(root: &Path, today: NaiveDate, args: &[&str]) -> anyhow::Result<(f64, f64)> {
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_lakebuild"))
        .current_dir(root)
        .args(args)
        .env("LAKEBUILD_NOW", today.to_string())
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "lakebuild::jp_equity::ops::features=debug")
        .output()?;
    if !out.status.success() {
        anyhow::bail!(
            "lakebuild {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let op_ms: f64 = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains("features: ") && l.contains(" days in "))
        .filter_map(|l| {
            l.rsplit(" days in ")
                .next()?
                .trim_end_matches(" ms")
                .parse::<f64>()
                .ok()
        })
        .sum();
    Ok((t.elapsed().as_secs_f64(), op_ms))
}

fn du(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// The history rows of the last run that touched `asset`.
fn last_run(root: &Path, asset: &str) -> anyhow::Result<Vec<RunRow>> {
    let rows = runs::read_all(&Lake::new(root.join("lake")))?;
    let run = rows
        .iter()
        .rev()
        .find(|r| r.asset == asset)
        .map(|r| r.run_id.clone())
        .unwrap_or_default();
    Ok(rows
        .into_iter()
        .filter(|r| r.run_id == run && r.asset == asset)
        .collect())
}

fn mib(b: u64) -> f64 {
    b as f64 / (1u64 << 20) as f64
}

fn main() -> anyhow::Result<()> {
    let stocks = env_or("LAKEBUILD_BENCH_STOCKS", 4000);
    let years = env_or("LAKEBUILD_BENCH_YEARS", 10) as i32;
    let start = NaiveDate::from_ymd_opt(2015, 1, 5).unwrap_or_default();
    let end = NaiveDate::from_ymd_opt(start.year() + years, 1, 5).unwrap_or_default();
    let days = trading_days(start, end);
    let (prev, last) = (days[days.len() - 2], days[days.len() - 1]);

    let (_tmp, root) = bench_root()?;
    std::fs::create_dir_all(root.join("rules"))?;
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    for asset in [
        "trading_calendar",
        "raw_stock_data",
        "listed_info",
        "topix",
        "processed_features",
    ] {
        let text = std::fs::read_to_string(rules.join(format!("{asset}.toml")))?
            .replace("stocks = 300", &format!("stocks = {stocks}"))
            .replace("2023-01-04", &start.to_string());
        std::fs::write(root.join(format!("rules/{asset}.toml")), text)?;
    }
    println!(
        "features benchmark: {stocks} stocks x {years} years ({} trading days), lake in {}",
        days.len(),
        root.display()
    );

    let (up, _) = lakebuild(
        &root,
        prev,
        &["build", "-q", "raw_stock_data", "topix", "listed_info"],
    )?;
    let sizes: Vec<String> = ["trading_calendar", "raw_stock_data", "listed_info", "topix"]
        .iter()
        .map(|a| format!("{a} {:.0} MiB", mib(du(&root.join("lake").join(a)))))
        .collect();
    println!(
        "  market inputs (raw_stock_data, topix, listed_info): {up:.1} s; lake: {}",
        sizes.join(", ")
    );

    // Full build.
    let (full, full_op_ms) = lakebuild(&root, prev, &["build", "-q", "processed_features"])?;
    let rows = last_run(&root, "processed_features")?;
    let n_rows: i64 = rows.iter().map(|r| r.rows).sum();
    let parts: i64 = rows.iter().map(|r| r.partitions).sum();
    let peak = rows.iter().map(|r| r.peak_memory_bytes).max().unwrap_or(0);
    let size = du(&root.join("lake/processed_features"));
    println!(
        "  full build of processed_features: {parts} days, {n_rows} rows in {full:.1} s = {:.0} rows/s (of which the op's computation {:.1} s, the rest reading, checking, hashing and writing); peak RSS {:.0} MiB; table {:.0} MiB ({:.1} bytes/row)",
        n_rows as f64 / full,
        full_op_ms / 1000.0,
        mib(peak as u64),
        mib(size),
        size as f64 / n_rows.max(1) as f64
    );

    // One new day (the market inputs gain the day too).
    let (inc, _) = lakebuild(&root, last, &["build", "-q", "processed_features"])?;
    let step_of_last_run = || -> anyhow::Result<f64> {
        Ok(last_run(&root, "processed_features")?
            .iter()
            .map(|r| r.duration_ms as f64 / 1000.0)
            .sum())
    };
    // The day's step, then the same day rebuilt twice more (--force --only): the median.
    let mut steps = vec![step_of_last_run()?];
    let day = last.to_string();
    for _ in 0..2 {
        lakebuild(
            &root,
            last,
            &[
                "build",
                "-q",
                "--force",
                "--only",
                "--from",
                &day,
                "processed_features",
            ],
        )?;
        steps.push(step_of_last_run()?);
    }
    let first_step = steps[0];
    steps.sort_by(f64::total_cmp);
    let step = steps[1];
    println!(
        "  one new day: {inc:.2} s for the whole run (market inputs included: 1/{:.0} of the full build), of which the processed_features step {first_step:.2} s; that step rebuilt 3 times: {} s, median {step:.2} s = 1/{:.0} of the full build (goal < 1/100)",
        full / inc,
        steps
            .iter()
            .map(|s| format!("{s:.2}"))
            .collect::<Vec<_>>()
            .join(", "),
        full / step
    );

    // pandas on the same data.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/features_pandas.py");
    let t = Instant::now();
    let out = Command::new("python3")
        .arg(&script)
        .arg(root.join("lake"))
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let secs: f64 = text
                .split_whitespace()
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(f64::NAN);
            println!(
                "  pandas (per-stock groupby, whole-history rolling/ewm): {secs:.1} s of computation ({:.1} s with reading the lake; output {}) -> speed-up of lakebuild: {:.2}x computation against computation, {:.2}x for lakebuild's whole build (reading, computing, checking, hashing, writing the lake) against pandas' computation alone",
                t.elapsed().as_secs_f64(),
                text.trim(),
                secs / (full_op_ms / 1000.0),
                secs / full
            );
        }
        Ok(o) => println!(
            "  pandas baseline failed (needs python3 with pandas, numpy, deltalake): {}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ),
        Err(e) => println!("  pandas baseline skipped: {e}"),
    }
    Ok(())
}
