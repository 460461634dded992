//! From the lake's frames to the model's day batches (MODEL.md "Sample and batch").
//!
//! A [`Panel`] holds the features and labels of every (date, stock) densely, dates in
//! order. A day's [`Sample`] takes the stocks present on all of the last `t` dates, their
//! `*_cs_z` features (nulls → 0) and family masks, the day's stock graph from the window's
//! own return series (and, for its lead-lag partners, the same returns over a longer
//! lookback ending on the same day: a day a stock is absent counts as 0, the
//! cross-sectional mean), and the labels z-scored across the day's stocks and clipped to
//! ±5.
//! Every transform is fitted on the day itself: nothing is fitted across days, so no
//! statistic of a validation day can reach a training day.

use super::graph::{GraphConfig, GraphInputs, build};
use super::metrics::MIN_STOCKS;
use super::network::DayInput;
use crate::jp_equity::frames::column;
pub(crate) use crate::jp_equity::frames::f64_values;
use anyhow::{Context, Result, anyhow};
use chrono::NaiveDate;
use polars::prelude::*;
use std::collections::HashMap;

/// Target z-scores are clipped to this (MODEL.md).
pub const Y_CLIP: f32 = 5.0;
/// The feature whose window gives the graph's return series.
pub const GRAPH_RETURN: &str = "ret_1d_cs_z";

/// Every (date, stock) of the features (and labels), dense.
pub struct Panel {
    pub dates: Vec<NaiveDate>,
    pub codes: Vec<String>,
    pub features: Vec<String>,
    pub masks: Vec<String>,
    pub horizons: Vec<String>,
    present: Vec<bool>,
    x: Vec<f32>,
    m: Vec<f32>,
    sector: Vec<u32>,
    y: Vec<f32>,
    ret: usize,
    /// Evaluation only: each stock's planted leader (panel indices), when known.
    true_leaders: Option<Vec<Option<usize>>>,
    /// Evaluation only: build graphs with the planted leaders as the lead-lag partners.
    pub graph_on_true_links: bool,
}

/// One day's batch and its targets.
pub struct Sample {
    pub date: usize,
    /// Panel stock indices of the batch's rows.
    pub stocks: Vec<usize>,
    pub input: DayInput<f32>,
    /// Targets `[n × horizons]`, z-scored per day and clipped; 0 where invalid.
    pub y: Vec<f32>,
    pub valid: Vec<bool>,
    /// The raw labels `[n × horizons]` (NaN where missing), for metrics.
    pub raw_y: Vec<f64>,
    /// Evaluation only: each row's planted leader (batch indices), when the panel knows
    /// them and the leader is in the batch.
    pub true_leaders: Option<Vec<Option<usize>>>,
}

fn f32_column(df: &DataFrame, name: &str) -> Result<Vec<Option<f32>>> {
    let s = column(df, name)?
        .cast(&DataType::Float32)
        .map_err(|_| anyhow!("column {name} is not numeric"))?;
    Ok(s.f32()?.iter().collect())
}

/// A label's short name: `fwd_ret_5d` → `5d` (prediction columns, metric names).
pub fn horizon_tag(label: &str) -> &str {
    label.strip_prefix("fwd_ret_").unwrap_or(label)
}

/// Trading days of a horizon from its label column or tag (`fwd_ret_5d`, `5d` → 5; 1 for
/// a name of another form).
pub fn horizon_days_of(label: &str) -> usize {
    horizon_tag(label)
        .strip_suffix('d')
        .and_then(|d| d.parse().ok())
        .unwrap_or(1)
}

/// The rows of `a` and `b` on the same (Code, Date), by day then code, as the daily
/// metrics read them; `what` names the two in the error.
pub(crate) fn join_stock_days(a: LazyFrame, b: LazyFrame, what: &str) -> Result<DataFrame> {
    a.join(
        b,
        [col("Code"), col("Date")],
        [col("Code"), col("Date")],
        JoinArgs::new(JoinType::Inner),
    )
    .sort(["Date", "Code"], SortMultipleOptions::default())
    .collect()
    .map_err(anyhow::Error::from)
    .with_context(|| format!("cannot join {what}"))
}

/// The `Date` column (a null date is an error).
pub(crate) fn dates_of(df: &DataFrame) -> Result<Vec<NaiveDate>> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).ok_or_else(|| anyhow!("epoch"))?;
    let s = column(df, "Date")?.cast(&DataType::Int32)?;
    s.i32()?
        .iter()
        .map(|d| {
            let d = d.ok_or_else(|| anyhow!("a null Date"))?;
            epoch
                .checked_add_signed(chrono::Duration::days(d as i64))
                .ok_or_else(|| anyhow!("Date {d} out of range"))
        })
        .collect()
}

fn codes_of(df: &DataFrame) -> Result<Vec<String>> {
    let s = column(df, "Code")?.cast(&DataType::String)?;
    s.str()?
        .iter()
        .map(|c| c.map(str::to_string).ok_or_else(|| anyhow!("a null Code")))
        .collect()
}

impl Panel {
    /// `features` has Code, Date, S33 and the given feature and mask columns; `labels`
    /// (Code, Date and the horizon columns) is joined on (Code, Date) when given.
    pub fn from_frames(
        features: &DataFrame,
        labels: Option<&DataFrame>,
        feature_cols: &[String],
        mask_cols: &[String],
        horizon_cols: &[String],
    ) -> Result<Panel> {
        let f_dates = dates_of(features)?;
        let f_codes = codes_of(features)?;
        let mut dates: Vec<NaiveDate> = f_dates.clone();
        dates.sort();
        dates.dedup();
        let mut codes: Vec<String> = f_codes.clone();
        codes.sort();
        codes.dedup();
        let di: HashMap<NaiveDate, usize> =
            dates.iter().enumerate().map(|(i, d)| (*d, i)).collect();
        let si: HashMap<&str, usize> = codes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i))
            .collect();
        let (nd, ns, nf, nm, nh) = (
            dates.len(),
            codes.len(),
            feature_cols.len(),
            mask_cols.len(),
            horizon_cols.len(),
        );
        let cells = nd
            .checked_mul(ns)
            .filter(|c| c.saturating_mul(nf + nm + nh) < 1 << 34)
            .ok_or_else(|| anyhow!("{nd} dates × {ns} stocks is too large for one panel"))?;
        let mut present = vec![false; cells];
        let mut x = vec![0f32; cells * nf];
        let mut m = vec![0f32; cells * nm];
        let mut sector = vec![u32::MAX; cells];
        let mut y = vec![f32::NAN; cells * nh];
        let rows: Vec<usize> = f_dates
            .iter()
            .zip(&f_codes)
            .map(|(d, c)| di[d] * ns + si[c.as_str()])
            .collect();
        for &r in &rows {
            present[r] = true;
        }
        for (j, name) in feature_cols.iter().enumerate() {
            for (r, v) in rows.iter().zip(f32_column(features, name)?) {
                x[r * nf + j] = v.filter(|v| v.is_finite()).unwrap_or(0.0);
            }
        }
        for (j, name) in mask_cols.iter().enumerate() {
            let s = column(features, name)?.cast(&DataType::Boolean)?;
            for (r, v) in rows.iter().zip(s.bool()?.iter()) {
                m[r * nm + j] = if v == Some(true) { 1.0 } else { 0.0 };
            }
        }
        if let Ok(s) = features.column("S33") {
            let s = s.cast(&DataType::String)?;
            let mut ids: HashMap<String, u32> = HashMap::new();
            for (r, v) in rows.iter().zip(s.str()?.iter()) {
                if let Some(v) = v {
                    let next = ids.len() as u32;
                    sector[*r] = *ids.entry(v.to_string()).or_insert(next);
                }
            }
        }
        if let Some(labels) = labels {
            let l_dates = dates_of(labels)?;
            let l_codes = codes_of(labels)?;
            let cols: Vec<Vec<Option<f32>>> = horizon_cols
                .iter()
                .map(|h| f32_column(labels, h))
                .collect::<Result<_>>()?;
            for (i, (d, c)) in l_dates.iter().zip(&l_codes).enumerate() {
                let (Some(d), Some(s)) = (di.get(d), si.get(c.as_str())) else {
                    continue;
                };
                let r = d * ns + s;
                for (j, col) in cols.iter().enumerate() {
                    y[r * nh + j] = col[i].filter(|v| v.is_finite()).unwrap_or(f32::NAN);
                }
            }
        }
        let ret = feature_cols
            .iter()
            .position(|f| f == GRAPH_RETURN)
            .unwrap_or(0);
        Ok(Panel {
            dates,
            codes,
            features: feature_cols.to_vec(),
            masks: mask_cols.to_vec(),
            horizons: horizon_cols.to_vec(),
            present,
            x,
            m,
            sector,
            y,
            ret,
            true_leaders: None,
            graph_on_true_links: false,
        })
    }

    /// Evaluation only (the synthetic market's planted links, never an op's input):
    /// `leaders` maps a follower's code to its leader's code. Samples then report each
    /// row's leader, and graphs may use them (`graph_on_true_links`).
    pub fn with_true_leaders(mut self, leaders: &HashMap<String, String>) -> Self {
        let index: HashMap<&str, usize> = self
            .codes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i))
            .collect();
        let links = self
            .codes
            .iter()
            .map(|c| leaders.get(c).and_then(|l| index.get(l.as_str()).copied()))
            .collect();
        self.true_leaders = Some(links);
        self
    }

    /// Trading days of each horizon, from its label column's name (`fwd_ret_5d` → 5; 1
    /// for a name of another form): overlapping h-day labels are autocorrelated up to
    /// lag h − 1, which standard errors must respect.
    pub fn horizon_days(&self) -> Vec<usize> {
        self.horizons.iter().map(|h| horizon_days_of(h)).collect()
    }

    /// Whether any stock has a label on date `d` (training days need one).
    pub fn labelled(&self, d: usize) -> bool {
        let (ns, nh) = (self.codes.len(), self.horizons.len());
        self.y[d * ns * nh..(d + 1) * ns * nh]
            .iter()
            .any(|v| v.is_finite())
    }

    /// The batch of date index `d`, or `None` when fewer than [`MIN_STOCKS`] stocks have
    /// a full window of `t` dates.
    pub fn sample(&self, d: usize, t: usize, graph: &GraphConfig) -> Option<Sample> {
        if d + 1 < t || d >= self.dates.len() {
            return None;
        }
        let (ns, nf, nm, nh) = (
            self.codes.len(),
            self.features.len(),
            self.masks.len(),
            self.horizons.len(),
        );
        let first = d + 1 - t;
        let stocks: Vec<usize> = (0..ns)
            .filter(|&s| (first..=d).all(|e| self.present[e * ns + s]))
            .collect();
        let n = stocks.len();
        if n < MIN_STOCKS {
            return None;
        }
        let mut x = Vec::with_capacity(n * t * nf);
        let mut mask = Vec::with_capacity(n * t * nm);
        let mut ret = Vec::with_capacity(n * t);
        for &s in &stocks {
            for e in first..=d {
                let r = e * ns + s;
                x.extend_from_slice(&self.x[r * nf..(r + 1) * nf]);
                mask.extend_from_slice(&self.m[r * nm..(r + 1) * nm]);
                ret.push(self.x[r * nf + self.ret] as f64);
            }
        }
        let sector: Vec<u32> = stocks.iter().map(|&s| self.sector[d * ns + s]).collect();
        // The lead-lag history: the last `l` days up to d (fewer at the data's start).
        let l = graph.history_days().min(d + 1);
        let mut history = Vec::with_capacity(n * l);
        for &s in &stocks {
            for e in d + 1 - l..=d {
                let r = e * ns + s;
                history.push(if self.present[r] {
                    self.x[r * nf + self.ret] as f64
                } else {
                    0.0
                });
            }
        }
        let true_leaders: Option<Vec<Option<usize>>> = self.true_leaders.as_ref().map(|links| {
            let pos: HashMap<usize, usize> =
                stocks.iter().enumerate().map(|(i, &s)| (s, i)).collect();
            stocks
                .iter()
                .map(|&s| links[s].and_then(|j| pos.get(&j).copied()))
                .collect()
        });
        let graph = build(
            &GraphInputs {
                window: &ret,
                history: &history,
                sector: &sector,
                true_leaders: true_leaders.as_deref().filter(|_| self.graph_on_true_links),
            },
            graph,
        );
        let mut raw_y = vec![f64::NAN; n * nh];
        let mut yv = vec![0f32; n * nh];
        let mut valid = vec![false; n * nh];
        for h in 0..nh {
            let vals: Vec<(usize, f32)> = stocks
                .iter()
                .enumerate()
                .map(|(i, &s)| (i, self.y[(d * ns + s) * nh + h]))
                .filter(|(_, v)| v.is_finite())
                .collect();
            for &(i, v) in &vals {
                raw_y[i * nh + h] = v as f64;
            }
            if vals.len() < 2 {
                continue;
            }
            let mean = vals.iter().map(|(_, v)| *v as f64).sum::<f64>() / vals.len() as f64;
            let var = vals
                .iter()
                .map(|(_, v)| (*v as f64 - mean).powi(2))
                .sum::<f64>()
                / vals.len() as f64;
            if var <= 0.0 {
                continue;
            }
            let sd = var.sqrt();
            for &(i, v) in &vals {
                yv[i * nh + h] = (((v as f64 - mean) / sd) as f32).clamp(-Y_CLIP, Y_CLIP);
                valid[i * nh + h] = true;
            }
        }
        Some(Sample {
            date: d,
            stocks,
            input: DayInput { n, x, mask, graph },
            y: yv,
            valid,
            raw_y,
            true_leaders,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(days: usize, stocks: usize) -> (DataFrame, DataFrame) {
        let mut code = Vec::new();
        let mut date = Vec::new();
        let mut f = Vec::new();
        let mut v = Vec::new();
        let mut y = Vec::new();
        for d in 0..days {
            for s in 0..stocks {
                // Stock 0 misses day 3.
                if s == 0 && d == 3 {
                    continue;
                }
                code.push(format!("{:04}0", 1000 + s));
                date.push(
                    NaiveDate::from_ymd_opt(2024, 1, 1).expect("date")
                        + chrono::Duration::days(d as i64),
                );
                f.push(if s == 1 {
                    None
                } else {
                    Some((d * 100 + s) as f64)
                });
                v.push(s != 2);
                y.push(Some((s as f64) * 0.01 + d as f64));
            }
        }
        let fe = df!("Code" => &code, "Date" => &date, "S33" => vec!["3050"; code.len()], "ret_1d_cs_z" => &f, "valid_returns" => &v)
            .expect("frame");
        let la = df!("Code" => &code, "Date" => &date, "fwd_ret_1d" => &y).expect("frame");
        (fe, la)
    }

    #[test]
    fn samples_take_full_windows_nulls_as_zero_and_day_z_scored_targets() {
        let (fe, la) = frames(8, 25);
        let p = Panel::from_frames(
            &fe,
            Some(&la),
            &["ret_1d_cs_z".into()],
            &["valid_returns".into()],
            &["fwd_ret_1d".into()],
        )
        .expect("panel");
        let g = GraphConfig::default();
        // Day 4 with t = 3 covers days 2..=4: stock 0 (missing day 3) is left out.
        let s = p.sample(4, 3, &g).expect("sample");
        assert_eq!(s.stocks.len(), 24);
        assert!(!s.stocks.contains(&0));
        // Stock 1's feature is null → 0; stock 2's mask is 0.
        let i1 = s.stocks.iter().position(|&x| x == 1).expect("stock 1");
        assert!(s.input.x[i1 * 3..i1 * 3 + 3].iter().all(|v| *v == 0.0));
        let i2 = s.stocks.iter().position(|&x| x == 2).expect("stock 2");
        assert!(s.input.mask[i2 * 3..i2 * 3 + 3].iter().all(|v| *v == 0.0));
        let mean: f32 = s.y.iter().sum::<f32>() / s.y.len() as f32;
        assert!(mean.abs() < 1e-5);
        assert!(s.valid.iter().all(|v| *v));
        // Too few stocks with a full window.
        assert!(p.sample(1, 3, &g).is_none());
        let (fe, la) = frames(8, 19);
        let p = Panel::from_frames(
            &fe,
            Some(&la),
            &["ret_1d_cs_z".into()],
            &["valid_returns".into()],
            &["fwd_ret_1d".into()],
        )
        .expect("panel");
        assert!(
            p.sample(6, 3, &g).is_none(),
            "fewer than 20 stocks is skipped"
        );
    }

    /// A panel of `stocks` stocks over `days` days whose `ret_1d_cs_z` is `value(d, s)`.
    fn ret_panel(days: usize, stocks: usize, value: impl Fn(usize, usize) -> f64) -> Panel {
        let mut code = Vec::new();
        let mut date = Vec::new();
        let mut f = Vec::new();
        for d in 0..days {
            for s in 0..stocks {
                code.push(format!("{:04}0", 1000 + s));
                date.push(
                    NaiveDate::from_ymd_opt(2024, 1, 1).expect("date")
                        + chrono::Duration::days(d as i64),
                );
                f.push(value(d, s));
            }
        }
        let sector: Vec<String> = code.iter().map(|c| c[..3].to_string()).collect();
        let fe = df!("Code" => &code, "Date" => &date, "S33" => &sector, "ret_1d_cs_z" => &f)
            .expect("frame");
        Panel::from_frames(&fe, None, &["ret_1d_cs_z".into()], &[], &[]).expect("panel")
    }

    #[test]
    fn the_graph_of_a_day_reads_its_lookback_and_nothing_after_it() {
        let (days, stocks, d) = (80, 24, 60);
        // Uniform noise in [−0.5, 0.5) per (day, stock), either index below `days`.
        let table = super::super::gradcheck::rand_vec(days * days, 7, 0.5);
        let noise = |a: usize, b: usize| table[a * days + b];
        // Stock s follows stock s − 1 (mod n) with a one-day lag.
        let lead = |day: usize, s: usize| {
            noise(day, s)
                + if day > 0 {
                    0.8 * noise(day - 1, (s + stocks - 1) % stocks)
                } else {
                    0.0
                }
        };
        let cfg = GraphConfig {
            lag_k: 2,
            lag_lookback: 50,
            ..GraphConfig::default()
        };
        let base = ret_panel(days, stocks, lead);
        let g = base.sample(d, 5, &cfg).expect("sample").input.graph;
        // Anything after day d changes nothing.
        let later = ret_panel(days, stocks, |e, s| {
            if e > d { 9.0 * noise(s, e) } else { lead(e, s) }
        });
        assert_eq!(later.sample(d, 5, &cfg).expect("sample").input.graph, g);
        // A day inside the lookback (before the window) changes the lead-lag features.
        let inside = ret_panel(days, stocks, |e, s| {
            if e == d - 30 {
                5.0 * noise(s, 3)
            } else {
                lead(e, s)
            }
        });
        assert_ne!(inside.sample(d, 5, &cfg).expect("sample").input.graph, g);
        // A day before the lookback changes nothing either.
        let before = ret_panel(days, stocks, |e, s| {
            if e < d - 50 { -noise(s, e) } else { lead(e, s) }
        });
        assert_eq!(before.sample(d, 5, &cfg).expect("sample").input.graph, g);
        // The lagged links are found: stock s − 1 → s for every s.
        let leaders: HashMap<String, String> = (0..stocks)
            .map(|s| {
                (
                    format!("{:04}0", 1000 + s),
                    format!("{:04}0", 1000 + (s + stocks - 1) % stocks),
                )
            })
            .collect();
        let known = ret_panel(days, stocks, lead).with_true_leaders(&leaders);
        let s = known.sample(d, 5, &cfg).expect("sample");
        let truth = s.true_leaders.clone().expect("leaders");
        let rec = super::super::graph::link_recovery(&s.input.graph, &truth);
        assert_eq!((rec.links, rec.found), (stocks, stocks));
        // On the true links, each node's partner is exactly its leader.
        let mut on_truth = known;
        on_truth.graph_on_true_links = true;
        let t = on_truth.sample(d, 5, &cfg).expect("sample").input.graph;
        for (i, leader) in truth.iter().enumerate().take(stocks) {
            let partners: Vec<usize> = (t.offsets[i]..t.offsets[i + 1])
                .filter(|&e| t.edge_feat[4 * e + 3] == 1.0)
                .map(|e| t.src[e])
                .collect();
            assert_eq!(partners, vec![leader.expect("leader")], "node {i}");
        }
    }
}
