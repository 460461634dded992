//! `lakebuild model compare A B`: two sets of predictions scored on the same days.
//!
//! A and B are predictions assets of the same schema (`Code`, `Date`, `pred_{h}` per
//! horizon, optionally `in_sample`), each at its current version or at a version or alias
//! (`predictions@production`, `predictions@12`), so a team can compare its incumbent
//! model's imported predictions with lakebuild's; or versions of the model (`production`,
//! `challenger`, `3`, `trained_model@3`): the rows of that version in the predictions
//! asset that reads it (`predictions` for production, `challenger_predictions`). Each is joined with the labels; the days
//! compared are those out of sample for both (`in_sample` false where the column exists)
//! whose labels are known and which both score (at least `MIN_STOCKS` stocks), within
//! `--from`/`--to`. Per horizon: each side's mean daily IC and RankIC, ICIR, decile spread
//! and its annualised Sharpe, hit rate; the paired daily RankIC difference B − A with its
//! Newey–West (HAC, Bartlett) standard error at lag ≥ the horizon (overlapping h-day
//! labels are autocorrelated to lag h − 1), its t-statistic, the one-sided p-value of "B
//! is better" (normal), and a moving-block bootstrap 95% interval of the mean difference
//! (blocks of max(h, ⌈n^⅓⌉) days, 2,000 draws, seeded: the same inputs give the same
//! interval). A horizon with fewer shared days than `--min-days` is left out and said
//! so; with none left, or a side with no out-of-sample day, the command refuses.

use crate::core::error::UsageError;
use crate::engine::project::Project;
use crate::jp_equity::model::dataset::{
    dates_of, f64_values, horizon_days_of, horizon_tag, join_stock_days,
};
use crate::jp_equity::model::metrics::{
    DayMetrics, Summary, daily_pairs, day_metrics, newey_west_lags, newey_west_se, summarize,
};
use crate::lake::{aliases, parquet};
use anyhow::Result;
use chrono::NaiveDate;
use polars::prelude::*;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::BTreeMap;

/// Bootstrap draws and the seed that makes the interval reproducible.
const DRAWS: usize = 2000;
const SEED: u64 = 20_260_814;

#[derive(Debug, Clone)]
pub struct CompareOptions {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    /// Only this horizon (`5d` or `fwd_ret_5d`).
    pub horizon: Option<String>,
    /// The labels asset.
    pub labels: String,
    /// Fewest days both sides score for a comparison to be made.
    pub min_days: usize,
}

/// The comparison at one horizon.
#[derive(Debug, Clone, Serialize)]
pub struct HorizonComparison {
    pub horizon: String,
    pub days: usize,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    /// Each side's figures over the compared days.
    pub a: Summary,
    pub b: Summary,
    /// Mean of the daily RankIC difference B − A.
    pub diff: f64,
    /// Its Newey–West standard error, with `lags` lags.
    pub hac_se: f64,
    pub lags: usize,
    pub t: f64,
    /// One-sided p-value of "B's RankIC is higher" (normal approximation).
    pub p_b_better: f64,
    /// Moving-block bootstrap 95% interval of `diff`.
    pub ci95: (f64, f64),
    /// The daily differences in day order (what the statistics are computed from).
    pub daily_diff: Vec<(NaiveDate, f64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub a: String,
    pub b: String,
    pub horizons: Vec<HorizonComparison>,
    /// Horizons left out, and why (too few shared days).
    pub skipped: Vec<String>,
}

/// A side named as a version of a model (`3`, `production`, `trained_model@3`,
/// `trained_model@challenger`): the predictions asset that reads that version (through an
/// alias that names it, or the latest) and the version's model id, so its rows are the
/// ones that version wrote. `None` when `side` does not name a model.
fn model_side(project: &Project, side: &str) -> Result<Option<(String, String)>> {
    let models: Vec<&str> = project
        .rules
        .rules
        .values()
        .filter(|r| r.op == "train")
        .map(|r| r.asset.as_str())
        .collect();
    let (model, at) = match side.split_once('@') {
        Some((a, v)) if models.contains(&a) => (a, v),
        None if project.rules.get(side).is_none() && models.len() == 1 => (models[0], side),
        _ => return Ok(None),
    };
    let lake = &project.lake.root;
    let version = match at.parse::<i64>() {
        Ok(v) => v,
        Err(_) => aliases::resolve(lake, model, at)?.ok_or_else(|| {
            UsageError(format!(
                "'{side}' is neither an asset nor a version or alias of {model}: name a predictions asset, a version (lakebuild model list) or an alias such as production"
            ))
        })?,
    };
    let versions = crate::jp_equity::model_versions::list(project, model)?;
    let Some(id) = versions
        .iter()
        .find(|m| m.version == version)
        .and_then(|m| m.model_id.clone())
    else {
        return Err(UsageError(format!(
            "{model} has no readable model at version {version} (lakebuild model list)"
        ))
        .into());
    };
    let latest = versions.last().map(|m| m.version);
    let reader = project.rules.rules.values().find(|r| {
        r.op == "predict"
            && r.inputs.iter().any(|i| {
                i.asset == model
                    && match &i.alias {
                        Some(a) => aliases::resolve(lake, model, a).ok().flatten() == Some(version),
                        None => latest == Some(version),
                    }
            })
    });
    match reader {
        Some(r) => Ok(Some((r.asset.clone(), id))),
        None => Err(UsageError(format!(
            "{model} version {version} has no predictions: no rule reads it; point an alias at it (lakebuild model alias candidate {version}) and add a predictions rule reading {{ asset = \"{model}@candidate\" }}, then build it"
        ))
        .into()),
    }
}

/// `asset` or `asset@alias` / `asset@version`: the files of that version of its table; a
/// version of a model (`production`, `3`): the rows its predictions asset holds from it.
fn side_frame(project: &Project, side: &str) -> Result<(String, DataFrame)> {
    if let Some((asset, id)) = model_side(project, side)? {
        let (_, frame) = table_frame(project, &asset)?;
        let frame = frame.lazy().filter(col("model_id").eq(lit(id))).collect()?;
        return Ok((asset, frame));
    }
    table_frame(project, side)
}

/// `asset` or `asset@alias` / `asset@version`: the files of that version of its table.
fn table_frame(project: &Project, side: &str) -> Result<(String, DataFrame)> {
    let (asset, at) = match side.split_once('@') {
        Some((a, v)) => (a, Some(v)),
        None => (side, None),
    };
    if project.rules.get(asset).is_none() {
        return Err(UsageError(format!(
            "unknown asset '{asset}': name a predictions asset, e.g. predictions or predictions@production"
        ))
        .into());
    }
    let table = project.lake.table(asset);
    let state = crate::lake::log::load(&table)?;
    let version = match at {
        None => state.version,
        Some(v) => match v.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => Some(aliases::resolve(&project.lake.root, asset, v)?.ok_or_else(|| {
                UsageError(format!(
                    "{asset} has no alias '{v}': set it with lakebuild model alias {v} VERSION --asset {asset}"
                ))
            })?),
        },
    };
    let Some(version) = version else {
        return Err(UsageError(format!(
            "{asset} has not been built yet: lakebuild build {asset}"
        ))
        .into());
    };
    let view = crate::core::plan::InputView::at(asset, &state, version);
    if view.files.is_empty() {
        return Err(UsageError(format!("{side}: no partitions at version {version}")).into());
    }
    let files: Vec<_> = view.files.iter().map(|f| table.join(f)).collect();
    let frame = parquet::scan_files(&files)?.collect()?;
    Ok((asset.to_string(), frame))
}

/// Daily metrics per horizon tag and day.
pub type DailyScores = BTreeMap<String, BTreeMap<NaiveDate, DayMetrics>>;

/// Daily metrics of `side` (an asset, or `asset@alias|version`) against `labels` on its
/// out-of-sample days, only its rows made by `model_id` when given (a predictions asset
/// with a `model_id` column holds, between a model change and the rebuild it causes,
/// rows of the model before; an asset without the column is taken whole).
pub fn side_scores(
    project: &Project,
    side: &str,
    model_id: Option<&str>,
    labels: &DataFrame,
    opts: &CompareOptions,
) -> Result<DailyScores> {
    let (_, mut frame) = table_frame(project, side)?;
    // An imported asset without the column (a team's own model) is taken whole.
    if let Some(id) = model_id.filter(|_| frame.column("model_id").is_ok()) {
        frame = frame
            .lazy()
            .filter(col("model_id").eq(lit(id.to_string())))
            .collect()?;
    }
    daily(side, frame, labels, opts)
}

/// The labels asset's frame (`asset` or `asset@alias|version`).
pub fn labels_frame(project: &Project, labels: &str) -> Result<DataFrame> {
    Ok(table_frame(project, labels)?.1)
}

/// Daily metrics of one side per horizon tag, on its out-of-sample days.
fn daily(
    side: &str,
    preds: DataFrame,
    labels: &DataFrame,
    opts: &CompareOptions,
) -> Result<DailyScores> {
    let mut lf = preds.lazy();
    if lf
        .collect_schema()?
        .get("in_sample")
        .is_some_and(|t| t == &DataType::Boolean)
    {
        lf = lf.filter(col("in_sample").not());
    }
    let joined = join_stock_days(
        lf,
        labels.clone().lazy(),
        &format!("{side} with the labels"),
    )?;
    let days = dates_of(&joined)?;
    let mut out = BTreeMap::new();
    for label in joined
        .get_column_names()
        .iter()
        .map(|c| c.to_string())
        .filter(|c| c.starts_with("fwd_ret_"))
    {
        let tag = horizon_tag(&label).to_string();
        if opts
            .horizon
            .as_deref()
            .is_some_and(|h| horizon_tag(h) != tag)
        {
            continue;
        }
        let Ok(pred) = f64_values(&joined, &format!("pred_{tag}")) else {
            continue;
        };
        let y = f64_values(&joined, &label)?;
        let per_day: BTreeMap<NaiveDate, DayMetrics> = daily_pairs(&days, &pred, &y)
            .into_iter()
            .filter(|(d, _, _)| {
                opts.from.is_none_or(|f| *d >= f) && opts.to.is_none_or(|t| *d <= t)
            })
            .filter_map(|(d, a, b)| Some((d, day_metrics(&a, &b)?)))
            .collect();
        out.insert(tag, per_day);
    }
    Ok(out)
}

/// Compares A and B (module doc). Refuses, naming what to do, when a side has no
/// out-of-sample day or fewer than `min_days` days are shared.
pub fn compare(project: &Project, a: &str, b: &str, opts: &CompareOptions) -> Result<Comparison> {
    let (_, labels) = table_frame(project, &opts.labels)?;
    let (_, fa) = side_frame(project, a)?;
    let (_, fb) = side_frame(project, b)?;
    let da = daily(a, fa, &labels, opts)?;
    let db = daily(b, fb, &labels, opts)?;
    for (side, d) in [(a, &da), (b, &db)] {
        if d.values().all(|m| m.is_empty()) {
            return Err(UsageError(format!(
                "{side} has no out-of-sample day with known labels in the range: nothing to compare (predictions of days its model trained on do not count)"
            ))
            .into());
        }
    }
    let mut horizons = Vec::new();
    let mut skipped = Vec::new();
    for (tag, ma) in &da {
        let Some(mb) = db.get(tag) else { continue };
        let shared: Vec<NaiveDate> = ma.keys().filter(|d| mb.contains_key(d)).copied().collect();
        if shared.len() < opts.min_days {
            skipped.push(format!(
                "{tag}: {} shared scored out-of-sample day(s), fewer than the minimum of {}",
                shared.len(),
                opts.min_days
            ));
            continue;
        }
        let h = horizon_days_of(tag);
        let sa: Vec<DayMetrics> = shared.iter().map(|d| ma[d]).collect();
        let sb: Vec<DayMetrics> = shared.iter().map(|d| mb[d]).collect();
        let diffs: Vec<f64> = sa
            .iter()
            .zip(&sb)
            .map(|(x, y)| y.rank_ic - x.rank_ic)
            .collect();
        let n = diffs.len();
        let diff = diffs.iter().sum::<f64>() / n as f64;
        let lags = newey_west_lags(n, h);
        let hac_se = newey_west_se(&diffs, lags);
        let t = if hac_se > 0.0 { diff / hac_se } else { 0.0 };
        horizons.push(HorizonComparison {
            horizon: tag.clone(),
            days: n,
            first_day: shared[0],
            last_day: shared[n - 1],
            a: summarize(&sa),
            b: summarize(&sb),
            diff,
            hac_se,
            lags,
            t,
            p_b_better: 0.5 * erfc(t / std::f64::consts::SQRT_2),
            ci95: block_bootstrap_ci(&diffs, h.max((n as f64).cbrt().ceil() as usize)),
            daily_diff: shared.iter().copied().zip(diffs).collect(),
        });
    }
    if horizons.is_empty() && !skipped.is_empty() {
        return Err(UsageError(format!(
            "{a} and {b}: no horizon has enough days to compare ({}): wait for more days or lower --min-days",
            skipped.join("; ")
        ))
        .into());
    }
    if horizons.is_empty() {
        return Err(UsageError(format!(
            "{a} and {b} have no horizon in common with predictions (pred_<h>) and labels (fwd_ret_<h>){}",
            opts.horizon
                .as_ref()
                .map(|h| format!(" at --horizon {h}"))
                .unwrap_or_default()
        ))
        .into());
    }
    horizons.sort_by_key(|h| {
        h.horizon
            .trim_end_matches('d')
            .parse::<usize>()
            .unwrap_or(0)
    });
    Ok(Comparison {
        a: a.to_string(),
        b: b.to_string(),
        horizons,
        skipped,
    })
}

/// 95% percentile interval of the mean of `x` under a moving-block bootstrap with blocks
/// of `block` consecutive days (seeded).
pub fn block_bootstrap_ci(x: &[f64], block: usize) -> (f64, f64) {
    let n = x.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let block = block.clamp(1, n);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(SEED);
    let mut means: Vec<f64> = (0..DRAWS)
        .map(|_| {
            let mut sum = 0.0;
            let mut taken = 0;
            while taken < n {
                let start = rng.random_range(0..=n - block);
                for v in &x[start..start + block.min(n - taken)] {
                    sum += v;
                }
                taken += block.min(n - taken);
            }
            sum / n as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| means[((q * (DRAWS - 1) as f64).round() as usize).min(DRAWS - 1)];
    (at(0.025), at(0.975))
}

/// The complementary error function (Numerical Recipes' `erfcc`, relative error below
/// 1.2e-7): enough for a p-value.
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// The comparison as a table.
pub fn render(c: &Comparison) -> String {
    let mut s = format!("A = {}\nB = {}\n", c.a, c.b);
    for h in &c.horizons {
        s.push_str(&format!(
            "\n{}: {} days out of sample for both, {} … {}\n",
            h.horizon, h.days, h.first_day, h.last_day
        ));
        s.push_str(&format!(
            "  {:<3} {:>9} {:>9} {:>8} {:>10} {:>9} {:>9} {:>9}\n",
            "", "IC", "RankIC", "ICIR", "RankICIR", "spread", "Sharpe", "hit rate"
        ));
        for (name, f) in [("A", &h.a), ("B", &h.b)] {
            s.push_str(&format!(
                "  {:<3} {:>+9.4} {:>+9.4} {:>+8.3} {:>+10.3} {:>+9.5} {:>+9.2} {:>9.3}\n",
                name, f.ic, f.rank_ic, f.icir, f.rank_icir, f.spread, f.spread_sharpe, f.hit_rate
            ));
        }
        s.push_str(&format!(
            "  B − A RankIC {:+.4} ± {:.4} (Newey–West, {} lags): t {:+.2}, one-sided p(B better) {:.4}; block-bootstrap 95% [{:+.4}, {:+.4}]\n",
            h.diff, h.hac_se, h.lags, h.t, h.p_b_better, h.ci95.0, h.ci95.1
        ));
    }
    for why in &c.skipped {
        s.push_str(&format!("\nnot compared: {why}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfc_matches_known_values() {
        for (x, want) in [
            (0.0, 1.0),
            (0.5, 0.479_500_122_186_953_5),
            (1.0, 0.157_299_207_050_285_1),
            (2.0, 0.004_677_734_981_047_266),
            (-1.0, 1.842_700_792_949_715),
        ] {
            assert!((erfc(x) - want).abs() < 2e-7, "erfc({x}) = {}", erfc(x));
        }
    }

    #[test]
    fn the_bootstrap_interval_covers_the_mean_is_reproducible_and_widens_with_noise() {
        let quiet: Vec<f64> = (0..200)
            .map(|i| 0.01 + 0.001 * ((i % 7) as f64 - 3.0))
            .collect();
        let loud: Vec<f64> = (0..200)
            .map(|i| 0.01 + 0.05 * ((i % 7) as f64 - 3.0))
            .collect();
        let (lo, hi) = block_bootstrap_ci(&quiet, 5);
        assert!(lo < 0.01 && 0.01 < hi && lo > 0.0, "({lo}, {hi})");
        assert_eq!(block_bootstrap_ci(&quiet, 5), (lo, hi));
        let (llo, lhi) = block_bootstrap_ci(&loud, 5);
        assert!(lhi - llo > 10.0 * (hi - lo), "({llo}, {lhi})");
    }
}
