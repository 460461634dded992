//! What an experiment tracker records of a model's scores: no run of their own, but
//! metrics of the run of the model they scored (`Tracked::ModelMetrics`), found by its
//! `lakebuild.model_id` tag, which the scores' `model_id` column names.
//!
//! - `evaluate` (`model_evaluation`): per fold (the step) and horizon the means over the
//!   fold's validation days, `evaluation/{h}/{ic,rank_ic,decile_spread,hit_rate,oracle_ic}`
//!   (`h` the horizon's short name, `1d` for `fwd_ret_1d`),
//!   and per validation day `evaluation/{h}/daily_{ic,rank_ic}`;
//! - `performance` (`prediction_performance`), live monitoring: per day and horizon
//!   `live/{h}/ic` and `live/{h}/rank_ic`, and `live/{h}/{ic,rank_ic}_20d` once the 20-day
//!   window is complete (its value final).
//!
//! A day's step is the trading day as `YYYYMMDD` (20260814) and its timestamp that date
//! at 00:00 UTC, so MLflow's charts show live decay over time, and a partition delivered
//! again (a rebuild as its labels arrive) adds only what is new.

use crate::jp_equity::model::dataset::{dates_of, f64_values, horizon_tag};
use crate::op::tracking::TrackingReport;
use anyhow::{Result, anyhow};
use chrono::{Datelike, NaiveDate};
use polars::prelude::*;
use std::collections::BTreeMap;

const MODEL_TAG: &str = "lakebuild.model_id";

/// A trading day as a metric step (`YYYYMMDD`) and timestamp (00:00 UTC, ms).
pub fn day_step(d: NaiveDate) -> (i64, i64) {
    let step = d.year() as i64 * 10_000 + d.month() as i64 * 100 + d.day() as i64;
    let ms = d
        .and_hms_opt(0, 0, 0)
        .map_or(0, |t| t.and_utc().timestamp_millis());
    (step, ms)
}

/// The one model a frame's `model_id` column names; `None` when it names none.
fn model_of(frame: &DataFrame) -> Result<Option<String>> {
    let Ok(col) = frame.column("model_id") else {
        return Ok(None);
    };
    let mut ids: Vec<&str> = col.str()?.iter().flatten().collect();
    ids.sort_unstable();
    ids.dedup();
    match ids.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.to_string())),
        many => Err(anyhow!(
            "the scores name {} models ({}); one materialization scores one model",
            many.len(),
            many.join(", ")
        )),
    }
}

/// An empty report for the run of the model `frame` scored; `None` when it names none
/// (nothing is recorded).
fn for_model_of(frame: &DataFrame) -> Result<Option<TrackingReport>> {
    Ok(model_of(frame)?.map(|id| TrackingReport {
        model_run: Some((MODEL_TAG.to_string(), id)),
        ..Default::default()
    }))
}

fn strings(frame: &DataFrame, name: &str) -> Result<Vec<Option<String>>> {
    Ok(frame
        .column(name)?
        .str()?
        .iter()
        .map(|s| s.map(str::to_string))
        .collect())
}

/// `model_evaluation`'s rows as metrics of the evaluated model's run (module doc).
pub fn evaluation(frame: &DataFrame) -> Result<TrackingReport> {
    let Some(mut r) = for_model_of(frame)? else {
        return Ok(TrackingReport::default());
    };
    let fold: Vec<Option<i64>> = frame
        .column("fold")?
        .cast(&DataType::Int64)?
        .i64()?
        .iter()
        .collect();
    let horizon = strings(frame, "horizon")?;
    let date = dates_of(frame)?;
    // (horizon, what, fold) → (sum, count) for the fold means.
    let mut sums: BTreeMap<(String, &str, i64), (f64, usize)> = BTreeMap::new();
    for what in ["ic", "rank_ic", "decile_spread", "hit_rate", "oracle_ic"] {
        let v = f64_values(frame, what)?;
        for i in 0..frame.height() {
            let (Some(f), Some(h), x) = (fold[i], &horizon[i], v[i]) else {
                continue;
            };
            if !x.is_finite() {
                continue;
            }
            let h = horizon_tag(h);
            let e = sums.entry((h.to_string(), what, f)).or_default();
            e.0 += x;
            e.1 += 1;
            if matches!(what, "ic" | "rank_ic") {
                let (step, ms) = day_step(date[i]);
                r.metric_at(format!("evaluation/{h}/daily_{what}"), x, step, Some(ms));
            }
        }
    }
    for ((h, what, f), (sum, n)) in sums {
        r.metric(format!("evaluation/{h}/{what}"), sum / n as f64, f);
    }
    Ok(r)
}

/// One day of `prediction_performance` as metrics of the run of the model whose
/// predictions it scored (module doc).
pub fn live(frame: &DataFrame) -> Result<TrackingReport> {
    let Some(mut r) = for_model_of(frame)? else {
        return Ok(TrackingReport::default());
    };
    let horizon = strings(frame, "horizon")?;
    let date = dates_of(frame)?;
    let window = f64_values(frame, "days_20d")?;
    // Nulls come as NaN, which `metric_at` leaves out.
    for what in ["ic", "rank_ic"] {
        let daily = f64_values(frame, what)?;
        let rolling = f64_values(frame, &format!("{what}_20d"))?;
        for i in 0..frame.height() {
            let Some(h) = &horizon[i] else { continue };
            let h = horizon_tag(h);
            let (step, ms) = day_step(date[i]);
            r.metric_at(format!("live/{h}/{what}"), daily[i], step, Some(ms));
            if window[i] >= 20.0 {
                r.metric_at(format!("live/{h}/{what}_20d"), rolling[i], step, Some(ms));
            }
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_default()
    }

    #[test]
    fn a_day_is_its_date_as_step_and_midnight_utc_as_timestamp() {
        assert_eq!(day_step(day("2026-08-14")), (20260814, 1_786_665_600_000));
    }

    #[test]
    fn live_scores_go_to_the_model_of_the_day_and_only_final_rolling_values() -> Result<()> {
        let d = day("2026-08-14");
        let frame = df!(
            "Date" => [d, d],
            "horizon" => ["1d", "20d"],
            "ic" => [Some(0.1), None],
            "rank_ic" => [Some(0.2), None],
            "ic_20d" => [Some(0.05), Some(0.01)],
            "rank_ic_20d" => [Some(0.06), Some(0.02)],
            "days_20d" => [20, 3],
            "model_id" => ["abc", "abc"],
        )?;
        let r = live(&frame)?;
        assert_eq!(
            r.model_run,
            Some(("lakebuild.model_id".to_string(), "abc".to_string()))
        );
        let got: Vec<(&str, f64, i64)> = r
            .metrics
            .iter()
            .map(|m| (m.key.as_str(), m.value, m.step))
            .collect();
        assert_eq!(
            got,
            vec![
                ("live/1d/ic", 0.1, 20260814),
                ("live/1d/ic_20d", 0.05, 20260814),
                ("live/1d/rank_ic", 0.2, 20260814),
                ("live/1d/rank_ic_20d", 0.06, 20260814),
            ]
        );
        assert!(
            r.metrics
                .iter()
                .all(|m| m.timestamp_ms == Some(1_786_665_600_000))
        );
        Ok(())
    }

    #[test]
    fn scores_naming_no_model_record_nothing_and_two_models_are_an_error() -> Result<()> {
        let d = day("2026-08-14");
        let none = df!(
            "Date" => [d], "horizon" => ["1d"], "ic" => [0.1], "rank_ic" => [0.1],
            "ic_20d" => [0.1], "rank_ic_20d" => [0.1], "days_20d" => [20],
            "model_id" => [None::<&str>],
        )?;
        let r = live(&none)?;
        assert!(r.model_run.is_none() && r.metrics.is_empty());
        let two = df!("model_id" => ["a", "b"])?;
        assert!(model_of(&two).is_err());
        Ok(())
    }

    #[test]
    fn evaluation_means_per_fold_and_horizon_and_daily_values() -> Result<()> {
        let (a, b) = (day("2026-01-05"), day("2026-01-06"));
        let frame = df!(
            "fold" => [1, 1, 2],
            "horizon" => ["fwd_ret_1d", "fwd_ret_1d", "fwd_ret_1d"],
            "Date" => [a, b, b],
            "ic" => [0.1, 0.3, 0.5],
            "rank_ic" => [0.2, 0.4, 0.6],
            "decile_spread" => [0.01, 0.03, 0.05],
            "hit_rate" => [0.5, 0.7, 0.9],
            "oracle_ic" => [Some(0.4), None, Some(0.8)],
            "model_id" => ["m", "m", "m"],
        )?;
        let r = evaluation(&frame)?;
        let find = |k: &str, step: i64| {
            r.metrics
                .iter()
                .find(|m| m.key == k && m.step == step)
                .map(|m| m.value)
        };
        let close = |x: Option<f64>, want: f64| x.is_some_and(|x| (x - want).abs() < 1e-12);
        assert!(close(find("evaluation/1d/ic", 1), 0.2));
        assert!(close(find("evaluation/1d/rank_ic", 2), 0.6));
        assert!(close(find("evaluation/1d/oracle_ic", 1), 0.4));
        assert!(close(find("evaluation/1d/daily_rank_ic", 20260106), 0.4));
        assert_eq!(
            r.metrics
                .iter()
                .filter(|m| m.key == "evaluation/1d/daily_ic")
                .count(),
            3
        );
        Ok(())
    }
}
