//! Live model monitoring as time series: the rolling IC and RankIC per horizon of a
//! `performance` asset (e.g. `prediction_performance`), one point per day and horizon,
//! for the web UI's charts.

use crate::engine::project::Project;
use crate::lake::parquet;
use anyhow::{Result, bail};
use polars::prelude::*;
use serde::Serialize;

/// One day and horizon of a performance asset.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PerformancePoint {
    pub date: chrono::NaiveDate,
    pub horizon: String,
    pub ic: Option<f64>,
    pub rank_ic: Option<f64>,
    pub ic_20d: Option<f64>,
    pub rank_ic_20d: Option<f64>,
    pub ic_60d: Option<f64>,
    pub rank_ic_60d: Option<f64>,
}

/// Every day of `asset`'s current version, oldest first; empty when it is not built.
pub fn series(project: &Project, asset: &str) -> Result<Vec<PerformancePoint>> {
    let Some(rule) = project.rules.get(asset) else {
        bail!("unknown asset '{asset}'");
    };
    if rule.op != "performance" {
        bail!(
            "{asset} is not a performance asset (its op is '{}'): name one such as prediction_performance",
            rule.op
        );
    }
    let table = project.lake.table(asset);
    let state = crate::lake::log::load(&table)?;
    let files: Vec<_> = state
        .current
        .values()
        .map(|c| table.join(&c.record().file))
        .collect();
    if files.is_empty() {
        return Ok(vec![]);
    }
    let float = |name: &str| col(name).cast(DataType::Float64);
    let df = parquet::scan_files(&files)?
        .select([
            col("Date"),
            col("horizon"),
            float("ic"),
            float("rank_ic"),
            float("ic_20d"),
            float("rank_ic_20d"),
            float("ic_60d"),
            float("rank_ic_60d"),
        ])
        .sort(["Date", "horizon"], SortMultipleOptions::default())
        .collect()?;
    let dates = df.column("Date")?.date()?.physical().clone();
    let horizons = df.column("horizon")?.str()?.clone();
    let f = |name: &str| -> Result<Float64Chunked> { Ok(df.column(name)?.f64()?.clone()) };
    let (ic, ric, ic20, ric20, ic60, ric60) = (
        f("ic")?,
        f("rank_ic")?,
        f("ic_20d")?,
        f("rank_ic_20d")?,
        f("ic_60d")?,
        f("rank_ic_60d")?,
    );
    let finite = |v: Option<f64>| v.filter(|x| x.is_finite());
    Ok((0..df.height())
        .filter_map(|i| {
            Some(PerformancePoint {
                date: dates.get(i).and_then(date_of_days)?,
                horizon: horizons.get(i)?.to_string(),
                ic: finite(ic.get(i)),
                rank_ic: finite(ric.get(i)),
                ic_20d: finite(ic20.get(i)),
                rank_ic_20d: finite(ric20.get(i)),
                ic_60d: finite(ic60.get(i)),
                rank_ic_60d: finite(ric60.get(i)),
            })
        })
        .collect())
}

fn date_of_days(days: i32) -> Option<chrono::NaiveDate> {
    chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?
        .checked_add_signed(chrono::Duration::days(days as i64))
}
