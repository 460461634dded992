//! What the benchmarks share: numbers from the environment, the folder a benchmark's lake
//! lives in, and the synthetic market generated at a given size.
#![allow(dead_code)]

use chrono::NaiveDate;
use lakebuild::jp_equity::market::synthetic::{Market, MarketParams};
use std::path::PathBuf;
use std::time::Instant;

/// A number from the environment, else `default`.
pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The benchmark's project folder: `LAKEBUILD_BENCH_DIR` (kept afterwards) or a temporary
/// folder, which lives as long as the returned guard.
pub fn bench_root() -> anyhow::Result<(tempfile::TempDir, PathBuf)> {
    let tmp = tempfile::tempdir()?;
    let root = match std::env::var("LAKEBUILD_BENCH_DIR") {
        Ok(dir) => PathBuf::from(dir),
        Err(_) => tmp.path().to_path_buf(),
    };
    Ok((tmp, root))
}

/// The synthetic market (seed 42) of `stocks` stocks over `years` years from 2016-01-04,
/// advanced to its last day, and the seconds that took.
pub fn generate(stocks: usize, years: i32) -> (Market, f64) {
    let start = NaiveDate::from_ymd_opt(2016, 1, 4).unwrap_or_default();
    let end = NaiveDate::from_ymd_opt(2016 + years, 1, 4).unwrap_or_default();
    let mut m = Market::new(MarketParams {
        seed: 42,
        stocks,
        start,
    });
    let last = m.days.partition_point(|d| *d < end).saturating_sub(1);
    let t = Instant::now();
    m.advance_to(last);
    (m, t.elapsed().as_secs_f64())
}

/// Codes per day in the engine benchmarks' lake.
pub const CODES: usize = 20;

/// The lakebuild binary the benchmarks run.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_lakebuild")
}

/// The first `n` weekdays from 2015-01-01.
pub fn days(n: usize) -> Vec<chrono::NaiveDate> {
    let mut d = chrono::NaiveDate::from_ymd_opt(2015, 1, 1).unwrap_or_default();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        use chrono::Datelike;
        if d.weekday().num_days_from_monday() < 5 {
            out.push(d);
        }
        d = d.succ_opt().unwrap_or(d);
    }
    out
}

/// The engine benchmarks' source: `n` days × [`CODES`] rows of (Date, Code, x).
pub fn write_source(path: &std::path::Path, n: usize) -> anyhow::Result<()> {
    let ds = days(n);
    let mut date = Vec::with_capacity(n * CODES);
    let mut code = Vec::with_capacity(n * CODES);
    let mut x = Vec::with_capacity(n * CODES);
    for (i, d) in ds.iter().enumerate() {
        for c in 0..CODES {
            date.push(*d);
            code.push(format!("{}", 1300 + c));
            x.push(((i * 31 + c * 17) % 97) as f64 / 7.0);
        }
    }
    use polars::prelude::{Column, DataFrame};
    let mut df = DataFrame::new_infer_height(vec![
        Column::new("Date".into(), date),
        Column::new("Code".into(), code),
        Column::new("x".into(), x),
    ])?;
    lakebuild::lake::parquet::write(&mut df, path)?;
    Ok(())
}

/// The engine benchmarks' rules: one `files` import of `data/src.parquet` and a chain of 9
/// `sql` assets (windows `[0, 0]` and `[-4, 0]`).
pub fn write_engine_rules(root: &std::path::Path) -> anyhow::Result<()> {
    std::fs::write(
        root.join("rules/a0.toml"),
        "op = \"files\"\npartitioned = \"daily\"\nkey_columns = [\"Code\", \"Date\"]\n[params]\npath = \"data/src.parquet\"\n",
    )?;
    for i in 1..10 {
        let window = if i % 3 == 0 { "[-4, 0]" } else { "[0, 0]" };
        std::fs::write(
            root.join(format!("rules/a{i}.toml")),
            format!(
                "op = \"sql\"\npartitioned = \"daily\"\nkey_columns = [\"Code\", \"Date\"]\ninputs = [{{ asset = \"a{}\", window = {window} }}]\n[params]\nquery = \"SELECT {{{{date}}}} AS Date, Code, AVG(x) * {i} AS x FROM a{} GROUP BY Code\"\n",
                i - 1,
                i - 1
            ),
        )?;
    }
    Ok(())
}
