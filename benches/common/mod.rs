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
