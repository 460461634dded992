//! Builds the features of one batch with polars' lazy API, vectorised over every stock
//! and day of the batch.
//!
//! The batch frame holds each stock's own trading rows (rows with a close), sorted by
//! code then date, with elementwise inputs (returns, true range, squares) computed down
//! the whole column. Everything that reads earlier rows (windowed sums and EMAs, lags,
//! 14-row extremes) is then computed by [`super::window`] at the rows to publish only,
//! each value afresh from its own rows in a fixed order, and kept only when all the rows
//! it reads belong to the stock and lie inside the output date's window (on or after its
//! first date). Hence each value is a pure function of its window, bit for bit, whatever
//! batch computes it (invariant 3), a stock with too little history in the window gets a
//! null, never a number from outside it, and a one-day build pays for one row per stock.
//! After that, only the rows to publish remain: the feature formulas, the sector medians
//! and the cross-sectional z-scores are polars lazy expressions over them. NaN (a null
//! input, 0/0) becomes null in the output.
//!
//! The market index (one row per date) is small: its features use polars' weighted
//! rolling windows (evaluated window by window, hence also batch-independent).

use super::{CS_Z, Family, FeatureDef, History, YEAR, Z_CLIP, catalog, ema, window};
use crate::jp_equity::frames::f64_values;
use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use polars::prelude::*;

/// Everything one batch needs. Frames carry J-Quants v2 column names.
pub struct Batch {
    /// `raw_stock_data` rows of the batch's windows: Code, Date, AdjO, AdjH, AdjL, AdjC,
    /// AdjVo, Va.
    pub stocks: LazyFrame,
    /// For each output date, the first date of its `raw_stock_data` window.
    pub stock_windows: Vec<(NaiveDate, NaiveDate)>,
    /// `topix` rows (Date, C) and each output date's first `topix` window date, when
    /// the market family is built.
    pub index: Option<(LazyFrame, Vec<(NaiveDate, NaiveDate)>)>,
    /// `listed_info` rows (Code, Date, S33, S17) and, for each output date, the date of
    /// the `listed_info` partition it reads (as of), when the sector family is built.
    pub listed: Option<(LazyFrame, Vec<(NaiveDate, NaiveDate)>)>,
    pub families: Vec<Family>,
}

fn date_col(name: &str, dates: impl Iterator<Item = NaiveDate>) -> Result<Column> {
    let epoch = NaiveDate::default();
    let days: Vec<i32> = dates.map(|d| (d - epoch).num_days() as i32).collect();
    Ok(Column::new(name.into(), days).cast(&DataType::Date)?)
}

/// A (Date, `name`) frame from (output date, other date) pairs.
pub(crate) fn date_map(pairs: &[(NaiveDate, NaiveDate)], name: &str) -> Result<LazyFrame> {
    Ok(DataFrame::new_infer_height(vec![
        date_col("Date", pairs.iter().map(|p| p.0))?,
        date_col(name, pairs.iter().map(|p| p.1))?,
    ])?
    .lazy())
}

fn null_f64() -> Expr {
    lit(NULL).cast(DataType::Float64)
}

/// Σ wᵢ·xᵢ over the last `w.len()` rows (null until the window is full).
fn wsum(e: Expr, w: Vec<f64>) -> Expr {
    let n = w.len();
    e.fill_null(lit(f64::NAN))
        .rolling_sum(RollingOptionsFixedWindow {
            window_size: n,
            min_periods: n,
            weights: Some(w),
            center: false,
            fn_params: None,
        })
}

/// Plain sum over the last `n` rows, window by window.
fn sum(e: Expr, n: usize) -> Expr {
    wsum(e, vec![1.0; n])
}

/// Sample variance (ddof 1) over the last `n` rows.
fn var(e: Expr, n: usize) -> Expr {
    let s = sum(e.clone(), n);
    let ss = sum(e.clone() * e, n);
    let nf = n as f64;
    (ss - s.clone() * s / lit(nf)) / lit(nf - 1.0)
}

fn fixed(n: usize) -> RollingOptionsFixedWindow {
    RollingOptionsFixedWindow {
        window_size: n,
        min_periods: n,
        weights: None,
        center: false,
        fn_params: None,
    }
}

/// Keeps an index feature `e` where the `rows` index rows ending at this one lie inside
/// the window (`_ws` = the window's first date).
fn masked(e: Expr, rows: usize) -> Expr {
    let k = rows.saturating_sub(1) as i64;
    let ok = col("Date").shift(lit(k)).gt_eq(col("_ws"));
    when(ok).then(e).otherwise(null_f64())
}

/// NaN and ±inf (0/0, x/0) become null.
fn finite(e: Expr) -> Expr {
    when(e.clone().is_finite()).then(e).otherwise(null_f64())
}

/// The market-index features, one row per index date.
fn index_features(index: LazyFrame, windows: &[(NaiveDate, NaiveDate)]) -> Result<LazyFrame> {
    let c = || col("C");
    let lr = (c() / c().shift(lit(1))).log(lit(std::f64::consts::E));
    let m = |e: Expr, rows: usize| finite(masked(e, rows));
    Ok(index
        .select([col("Date"), col("C").cast(DataType::Float64)])
        .filter(col("C").is_not_null())
        .sort(["Date"], SortMultipleOptions::default())
        .join(
            date_map(windows, "_ws")?,
            [col("Date")],
            [col("Date")],
            JoinArgs::new(JoinType::Left),
        )
        .sort(["Date"], SortMultipleOptions::default())
        .with_columns([
            (c() / c().shift(lit(1)) - lit(1.0)).alias("_rm"),
            lr.alias("_lrm"),
        ])
        .with_columns([
            m(c() / c().shift(lit(1)) - lit(1.0), 2).alias("mkt_ret_1d"),
            m(c() / c().shift(lit(5)) - lit(1.0), 6).alias("mkt_ret_5d"),
            m(c() / c().shift(lit(20)) - lit(1.0), 21).alias("mkt_ret_20d"),
            m(var(col("_lrm"), 20).sqrt() * lit(YEAR.sqrt()), 21).alias("mkt_vol_20d"),
            m(c() / c().rolling_max(fixed(252)) - lit(1.0), 252).alias("mkt_drawdown_252d"),
        ])
        .drop(cols(["C", "_ws", "_lrm"])))
}

/// The windowed sums the stock features read, computed by [`window::dot`] at the rows
/// to publish (`at`; the MACD line also at the rows its signal reads), one value per
/// such row.
/// `marked` is `at` as a mask; `c` is the close.
fn window_columns(
    base: &DataFrame,
    c: &[f64],
    marked: &[bool],
    at: &[usize],
    families: &[Family],
) -> Result<Vec<Column>> {
    let has = |f: Family| families.contains(&f);
    let get = f64_values;
    let ew = |alpha: f64| ema::weights(alpha, ema::rows(alpha));
    let ones = |n: usize| vec![1.0; n];
    let mut cols: Vec<(String, Vec<f64>)> = Vec::new();
    if has(Family::Technical) {
        // The MACD line where its signal reads it, spread back over all rows.
        let line_rows = window::marked(&window::widen(marked, ema::rows(ema::span_alpha(9))));
        let e12 = window::dot(c, &ew(ema::span_alpha(12)), &line_rows);
        let e26 = window::dot(c, &ew(ema::span_alpha(26)), &line_rows);
        let mut line = vec![f64::NAN; c.len()];
        for ((p, a), b) in line_rows.iter().zip(&e12).zip(&e26) {
            line[*p] = a - b;
        }
        cols.push((
            "_sig".into(),
            window::dot(&line, &ew(ema::span_alpha(9)), at),
        ));
        cols.push(("_macd".into(), at.iter().map(|p| line[*p]).collect()));
        cols.push(("_ema5".into(), window::dot(c, &ew(ema::span_alpha(5)), at)));
        cols.push((
            "_ema20".into(),
            window::dot(c, &ew(ema::span_alpha(20)), at),
        ));
        let (gain, loss) = (get(base, "_gain")?, get(base, "_loss")?);
        for p in [2, 14] {
            let w = ew(ema::wilder_alpha(p));
            cols.push((format!("_g{p}"), window::dot(&gain, &w, at)));
            cols.push((format!("_l{p}"), window::dot(&loss, &w, at)));
        }
        for n in [5, 20, 60] {
            cols.push((format!("_c_s{n}"), window::dot(c, &ones(n), at)));
        }
        cols.push((
            "_c2_s20".into(),
            window::dot(&get(base, "_c2")?, &ones(20), at),
        ));
    }
    if has(Family::Volatility) {
        let w = ew(ema::wilder_alpha(14));
        cols.push(("_atr".into(), window::dot(&get(base, "_tr")?, &w, at)));
        let (lr, lr2) = (get(base, "_lr")?, get(base, "_lr2")?);
        for n in [5, 10, 20, 60] {
            cols.push((format!("_lr_s{n}"), window::dot(&lr, &ones(n), at)));
            cols.push((format!("_lr2_s{n}"), window::dot(&lr2, &ones(n), at)));
        }
        cols.push((
            "_hl2_s20".into(),
            window::dot(&get(base, "_hl2")?, &ones(20), at),
        ));
    }
    if has(Family::Volume) {
        let v = get(base, "V")?;
        for n in [5, 20] {
            cols.push((format!("_v_s{n}"), window::dot(&v, &ones(n), at)));
        }
        cols.push((
            "_lt_s20".into(),
            window::dot(&get(base, "_lt")?, &ones(20), at),
        ));
        cols.push((
            "_lt2_s20".into(),
            window::dot(&get(base, "_lt2")?, &ones(20), at),
        ));
    }
    if has(Family::Market) && base.column("_rm").is_ok() {
        for name in ["_r1", "_rm", "_rrm", "_rm2", "_r12"] {
            cols.push((
                format!("{name}_s60"),
                window::dot(&get(base, name)?, &ones(60), at),
            ));
        }
    }
    Ok(cols
        .into_iter()
        .map(|(name, v)| Column::new(name.into(), v))
        .collect())
}

/// Lags of the close the features read.
const LAGS: [usize; 6] = [1, 5, 10, 20, 60, 120];

/// Adds what the features read from earlier rows (lagged closes, the 14-row low and
/// high, whether each feature's rows lie inside its stock and window) at the rows to
/// publish, then keeps only those rows: every expression after this runs on them alone.
fn rows_to_publish(
    base: DataFrame,
    at: &[bool],
    defs: &[FeatureDef],
    families: &[Family],
) -> Result<DataFrame> {
    let idx = window::marked(at);
    let c = f64_values(&base, "C")?;
    let mut cols = window_columns(&base, &c, at, &idx, families)?;
    let f64s = f64_values;
    let days = |df: &DataFrame, name: &str, null: i32| -> Result<Vec<i32>> {
        Ok(df
            .column(name)?
            .date()?
            .physical()
            .iter()
            .map(|v| v.unwrap_or(null))
            .collect())
    };
    for k in LAGS {
        cols.push(Column::new(
            format!("_c_lag{k}").into(),
            window::lag(&c, k, &idx),
        ));
    }
    cols.push(Column::new(
        "_ll14".into(),
        window::extreme(&f64s(&base, "L")?, 14, &idx, false),
    ));
    cols.push(Column::new(
        "_hh14".into(),
        window::extreme(&f64s(&base, "H")?, 14, &idx, true),
    ));
    // The first row of each row's stock (rows are sorted by code).
    let codes = base.column("Code")?.str()?;
    let mut first = Vec::with_capacity(base.height());
    let mut prev: Option<&str> = None;
    let mut start = 0;
    for (p, code) in codes.iter().enumerate() {
        if p == 0 || code != prev {
            start = p;
        }
        prev = code;
        first.push(start);
    }
    let date = days(&base, "Date", i32::MIN)?;
    let window_start = days(&base, "_ws", i32::MAX)?;
    let mut rows: Vec<usize> = defs
        .iter()
        .filter(|d| d.history == History::Stock)
        .map(|d| d.rows)
        .collect();
    rows.sort();
    rows.dedup();
    for r in rows {
        cols.push(Column::new(
            format!("_in{r}").into(),
            window::inside(r, &idx, &first, &date, &window_start),
        ));
    }
    let keep = BooleanChunked::from_slice("keep".into(), at);
    let mut out = base.filter(&keep)?;
    for c in cols {
        out.with_column(c)?;
    }
    Ok(out)
}

/// `df` in (Code, Date) order, as `sort(["Code", "Date"])` gives it for the batch's unique
/// (Code, Date) pairs, by one sort of integer keys instead of a sort comparing strings
/// (a fifth of a one-day build's profile): a code of at most 7 bytes, none of them 0,
/// packed big-endian into a u64 with zero padding orders exactly as its bytes do, and the
/// day follows as a tie-break. Any other code, a null or a repeated pair falls back to
/// polars' sort.
fn by_code_and_date(df: DataFrame) -> Result<DataFrame> {
    match packed_order(&df) {
        Some(idx) => Ok(df.take(&idx)?),
        None => Ok(df.sort(["Code", "Date"], SortMultipleOptions::default())?),
    }
}

/// The row order of [`by_code_and_date`], when every code packs.
fn packed_order(df: &DataFrame) -> Option<IdxCa> {
    let code = df.column("Code").ok()?.str().ok()?;
    let date = df.column("Date").ok()?.date().ok()?;
    let mut keys: Vec<(u64, i32, IdxSize)> = Vec::with_capacity(df.height());
    for (i, (c, d)) in code.iter().zip(date.physical().iter()).enumerate() {
        let (c, d) = (c?.as_bytes(), d?);
        if c.len() > 7 || c.contains(&0) {
            return None;
        }
        let mut packed = [0u8; 8];
        packed[..c.len()].copy_from_slice(c);
        keys.push((u64::from_be_bytes(packed), d, i as IdxSize));
    }
    {
        use rayon::prelude::*;
        keys.par_sort_unstable();
    }
    if keys
        .windows(2)
        .any(|w| (w[0].0, w[0].1) == (w[1].0, w[1].1))
    {
        return None;
    }
    Some(IdxCa::from_vec(
        "idx".into(),
        keys.into_iter().map(|k| k.2).collect(),
    ))
}

/// Sample variance (ddof 1) from a window's sum and sum of squares over `n` rows.
fn var_of(s: Expr, s2: Expr, n: usize) -> Expr {
    let nf = n as f64;
    (s2 - s.clone() * s / lit(nf)) / lit(nf - 1.0)
}

/// The per-stock raw features of `defs` for the output rows of the batch; sector
/// features hold the stock's own input to the median.
fn raw_features(b: &Batch, defs: &[FeatureDef]) -> Result<LazyFrame> {
    let has = |f: Family| b.families.contains(&f);
    let mut lf = b
        .stocks
        .clone()
        .select([
            col("Code"),
            col("Date"),
            col("AdjO").cast(DataType::Float64).alias("O"),
            col("AdjH").cast(DataType::Float64).alias("H"),
            col("AdjL").cast(DataType::Float64).alias("L"),
            col("AdjC").cast(DataType::Float64).alias("C"),
            col("AdjVo").cast(DataType::Float64).alias("V"),
            col("Va").cast(DataType::Float64).alias("Va"),
        ])
        // The stock's own trading rows.
        .filter(col("C").is_not_null())
        .join(
            date_map(&b.stock_windows, "_ws")?,
            [col("Date")],
            [col("Date")],
            JoinArgs::new(JoinType::Left),
        );
    let has_market = has(Family::Market) && b.index.is_some();
    if let Some((index, windows)) = &b.index {
        let idx = index_features(index.clone(), windows)?;
        lf = lf.join(
            idx,
            [col("Date")],
            [col("Date")],
            JoinArgs::new(JoinType::Left),
        );
    }
    let (c, o, h, l, v) = (
        || col("C"),
        || col("O"),
        || col("H"),
        || col("L"),
        || col("V"),
    );
    let prev = || c().shift(lit(1));
    let ln = |e: Expr| e.log(lit(std::f64::consts::E));
    let mut squares = vec![
        (c() * c()).alias("_c2"),
        (col("_lr") * col("_lr")).alias("_lr2"),
        (col("_lt") * col("_lt")).alias("_lt2"),
        when(col("_d").gt(lit(0.0)))
            .then(col("_d"))
            .otherwise(lit(0.0))
            .alias("_gain"),
        when(col("_d").lt(lit(0.0)))
            .then(-col("_d"))
            .otherwise(lit(0.0))
            .alias("_loss"),
    ];
    if has_market {
        squares.extend([
            (col("_r1") * col("_rm")).alias("_rrm"),
            (col("_rm") * col("_rm")).alias("_rm2"),
            (col("_r1") * col("_r1")).alias("_r12"),
        ]);
    }
    // Sort and materialise with the elementwise inputs of the windows: every shift and
    // window below reads this order.
    let started = std::time::Instant::now();
    let base = by_code_and_date(
        lf.collect()
            .map_err(anyhow::Error::from)
            .context("cannot assemble the features batch")?,
    )?
    .lazy()
    .with_columns([
        (c() / prev() - lit(1.0)).alias("_r1"),
        ln(c() / prev()).alias("_lr"),
        (c() - prev()).alias("_d"),
        polars::lazy::dsl::max_horizontal([h() - l(), (h() - prev()).abs(), (l() - prev()).abs()])?
            .alias("_tr"),
        ln(h() / l()).pow(2).alias("_hl2"),
        ln(col("Va").fill_null(lit(0.0)) + lit(1.0)).alias("_lt"),
    ])
    .with_columns(squares)
    .collect()
    .map_err(anyhow::Error::from)
    .context("cannot assemble the features batch")?;
    // The rows to publish: those on an output date.
    let epoch = NaiveDate::default();
    let wanted: std::collections::HashSet<i32> = b
        .stock_windows
        .iter()
        .map(|w| (w.0 - epoch).num_days() as i32)
        .collect();
    let at: Vec<bool> = base
        .column("Date")?
        .date()?
        .physical()
        .iter()
        .map(|d| d.is_some_and(|d| wanted.contains(&d)))
        .collect();
    let base = rows_to_publish(base, &at, defs, &b.families)?;
    tracing::debug!(
        "features: read and assembled {} rows ({} to publish) in {} ms",
        base.height(),
        at.iter().filter(|a| **a).count(),
        started.elapsed().as_millis()
    );

    let m = |e: Expr, rows: usize| {
        finite(
            when(col(format!("_in{rows}")))
                .then(e)
                .otherwise(null_f64()),
        )
    };
    let s = |name: &str| col(name);
    let lag = |k: usize| col(format!("_c_lag{k}"));
    let mut exprs: Vec<Expr> = Vec::new();
    for d in defs.iter().filter(|d| d.history == History::Stock) {
        let n = d.rows;
        let x = match d.name.as_str() {
            "log_ret_1d" => col("_lr"),
            "ret_overnight" => o() / lag(1) - lit(1.0),
            "ret_intraday" => c() / o() - lit(1.0),
            "parkinson_20d" => (s("_hl2_s20") / lit(4.0 * 2f64.ln() * 20.0) * lit(YEAR)).sqrt(),
            "atr_14" => s("_atr") / c(),
            "ema_gap_5_20" => s("_ema5") / s("_ema20") - lit(1.0),
            "macd" => s("_macd") / c(),
            "macd_signal" => s("_sig") / c(),
            "macd_hist" => (s("_macd") - s("_sig")) / c(),
            "rsi_2" => lit(100.0) * s("_g2") / (s("_g2") + s("_l2")),
            "rsi_14" => lit(100.0) * s("_g14") / (s("_g14") + s("_l14")),
            "bb_pctb" | "bb_width" => {
                let mid = s("_c_s20") / lit(20.0);
                let pop_var = s("_c2_s20") / lit(20.0) - mid.clone() * mid.clone();
                let sd = when(pop_var.clone().gt(lit(0.0)))
                    .then(pop_var.sqrt())
                    .otherwise(lit(0.0));
                let lower = mid.clone() - lit(2.0) * sd.clone();
                let width = lit(4.0) * sd;
                if d.name == "bb_pctb" {
                    (c() - lower) / width
                } else {
                    width / mid
                }
            }
            "stoch_k_14" => lit(100.0) * (c() - s("_ll14")) / (s("_hh14") - s("_ll14")),
            "volume_ratio_5" => v() / (s("_v_s5") / lit(5.0)),
            "volume_ratio_20" => v() / (s("_v_s20") / lit(20.0)),
            "turnover_z_20" => {
                (col("_lt") - s("_lt_s20") / lit(20.0))
                    / var_of(s("_lt_s20"), s("_lt2_s20"), 20).sqrt()
            }
            "beta_60d" | "alpha_1d" | "alpha_5d" | "idio_vol_ratio_60d" if has_market => {
                let nf = 60.0;
                let cov = (s("_rrm_s60") - s("_r1_s60") * s("_rm_s60") / lit(nf)) / lit(nf - 1.0);
                let vm = var_of(s("_rm_s60"), s("_rm2_s60"), 60);
                let vr = var_of(s("_r1_s60"), s("_r12_s60"), 60);
                let beta = cov.clone() / vm.clone();
                match d.name.as_str() {
                    "beta_60d" => beta,
                    "alpha_1d" => col("_r1") - beta * col("mkt_ret_1d"),
                    "alpha_5d" => (c() / lag(5) - lit(1.0)) - beta * col("mkt_ret_5d"),
                    _ => {
                        let rho2 = cov.clone() * cov / (vm * vr);
                        when(rho2.clone().lt(lit(1.0)))
                            .then((lit(1.0) - rho2).sqrt())
                            .otherwise(lit(0.0))
                    }
                }
            }
            "beta_60d" | "alpha_1d" | "alpha_5d" | "idio_vol_ratio_60d" => null_f64(),
            // Per-stock inputs of the sector medians: the stock's own returns.
            "sector_ret_1d" => col("_r1"),
            "sector_mom_20d" => c() / lag(20) - lit(1.0),
            "rel_sector_ret_5d" => c() / lag(5) - lit(1.0),
            name => {
                let num = |p: &str| {
                    name.strip_prefix(p)
                        .map(|s| s.trim_end_matches('d'))
                        .and_then(|s| s.parse::<usize>().ok())
                };
                if let Some(k) = num("ret_") {
                    c() / lag(k) - lit(1.0)
                } else if let Some(k) = num("vol_") {
                    var_of(s(&format!("_lr_s{k}")), s(&format!("_lr2_s{k}")), k).sqrt()
                        * lit(YEAR.sqrt())
                } else if let Some(k) = num("sma_gap_") {
                    c() / (s(&format!("_c_s{k}")) / lit(k as f64)) - lit(1.0)
                } else {
                    bail!("feature {name} has no definition (a bug in the catalog)")
                }
            }
        };
        exprs.push(m(x, n).alias(d.name.as_str()));
    }
    Ok(base.lazy().with_columns(exprs))
}

/// The output columns in order: keys, sector labels, raw features, z-scores, flags.
pub fn output_columns(defs: &[FeatureDef], families: &[Family]) -> Vec<String> {
    let mut out: Vec<String> = ["Code", "Date", "S33", "S17"].map(String::from).to_vec();
    out.extend(defs.iter().map(|d| d.name.clone()));
    out.extend(
        defs.iter()
            .filter(|d| d.cs_z)
            .map(|d| format!("{}{CS_Z}", d.name)),
    );
    out.extend(families.iter().map(|f| f.flag()));
    out
}

/// Builds the features of the batch's output dates: one row per stock present in
/// `raw_stock_data` on the date (traded or not), sorted by date then code.
pub fn compute(b: &Batch) -> Result<DataFrame> {
    let defs = catalog(&b.families);
    let has = |f: Family| b.families.contains(&f);
    let out_dates =
        DataFrame::new_infer_height(vec![date_col("Date", b.stock_windows.iter().map(|w| w.0))?])?
            .lazy();
    let semi = JoinArgs::new(JoinType::Semi);
    let left = || JoinArgs::new(JoinType::Left);
    let raw = raw_features(b, &defs)?.join(
        out_dates.clone(),
        [col("Date")],
        [col("Date")],
        semi.clone(),
    );
    let present = b
        .stocks
        .clone()
        .select([col("Code"), col("Date")])
        .join(out_dates, [col("Date")], [col("Date")], semi)
        .unique(None, UniqueKeepStrategy::First);
    let mut lf = present.join(
        raw,
        [col("Code"), col("Date")],
        [col("Code"), col("Date")],
        left(),
    );
    // Sector labels as of the date.
    if let Some((listed, asof)) = &b.listed {
        let listed = listed
            .clone()
            .select([
                col("Code"),
                col("Date").alias("_ld"),
                col("S33").cast(DataType::String),
                col("S17").cast(DataType::String),
            ])
            .unique(None, UniqueKeepStrategy::First);
        lf = lf
            .join(date_map(asof, "_ld")?, [col("Date")], [col("Date")], left())
            .join(
                listed,
                [col("Code"), col("_ld")],
                [col("Code"), col("_ld")],
                left(),
            );
    } else {
        lf = lf.with_columns([
            lit(NULL).cast(DataType::String).alias("S33"),
            lit(NULL).cast(DataType::String).alias("S17"),
        ]);
    }
    // Sector medians over the stocks of each 33-sector on each day.
    if has(Family::Sector) {
        let med = |name: &str| -> Result<Expr> {
            Ok(when(col("S33").is_not_null())
                .then(col(name).median().over([col("Date"), col("S33")])?)
                .otherwise(null_f64()))
        };
        lf = lf.with_columns([
            med("sector_ret_1d")?.alias("sector_ret_1d"),
            med("sector_mom_20d")?.alias("sector_mom_20d"),
            (col("rel_sector_ret_5d") - med("rel_sector_ret_5d")?).alias("rel_sector_ret_5d"),
        ]);
    }
    // Cross-sectional z-scores per date, clipped: the day's mean and standard deviation
    // of every feature in one group-by, joined back.
    let zdefs: Vec<&FeatureDef> = defs.iter().filter(|d| d.cs_z).collect();
    let mut stats = Vec::with_capacity(2 * zdefs.len());
    for d in &zdefs {
        stats.push(col(d.name.as_str()).mean().alias(format!("_mu_{}", d.name)));
        stats.push(col(d.name.as_str()).std(1).alias(format!("_sd_{}", d.name)));
    }
    let z: Vec<Expr> = zdefs
        .iter()
        .map(|d| {
            let x = col(d.name.as_str());
            let mu = col(format!("_mu_{}", d.name));
            let sd = col(format!("_sd_{}", d.name));
            when(sd.clone().gt(lit(0.0)))
                .then(((x - mu) / sd).clip(lit(-Z_CLIP), lit(Z_CLIP)))
                .otherwise(null_f64())
                .alias(format!("{}{CS_Z}", d.name))
        })
        .collect();
    let flags: Vec<Expr> = b
        .families
        .iter()
        .map(|f| {
            defs.iter()
                .filter(|d| d.family == *f)
                .map(|d| col(d.name.as_str()).is_not_null())
                .reduce(|a, b| a.and(b))
                .unwrap_or(lit(false))
                .alias(f.flag())
        })
        .collect();
    let select: Vec<Expr> = output_columns(&defs, &b.families)
        .into_iter()
        .map(|name| match name.as_str() {
            "Code" | "Date" | "S33" | "S17" => col(name.as_str()),
            n if n.starts_with("valid_") => col(n),
            n => col(n).cast(DataType::Float32),
        })
        .collect();
    // Joins do not keep row order; the per-date means below sum in row order, so fix it
    // for bit-identical results.
    let lf = lf.sort(["Date", "Code"], SortMultipleOptions::default());
    let day_stats = lf.clone().group_by_stable([col("Date")]).agg(stats);
    lf.join(
        day_stats,
        [col("Date")],
        [col("Date")],
        JoinArgs::new(JoinType::Left),
    )
    .with_columns(z)
    .with_columns(flags)
    .select(select)
    .sort(["Date", "Code"], SortMultipleOptions::default())
    .collect()
    .map_err(anyhow::Error::from)
    .context("cannot compute the features")
}

#[cfg(test)]
mod tests {
    //! Indicators against independent computations written from TA-Lib's definitions
    //! (SMA-seeded EMAs, Wilder smoothing for RSI and ATR, population σ for Bollinger,
    //! fast %K), and the masks that keep every value inside its window.
    use super::*;

    #[test]
    fn the_integer_sort_orders_rows_exactly_as_polars_sort_by_code_and_date() -> Result<()> {
        // Codes of several lengths (a prefix of another among them), letters, and one
        // too long to pack (the fallback), in an arbitrary row order.
        let sets: [&[&str]; 2] = [
            &["13010", "131A0", "1301", "72030", "13010A", "9", "131A"],
            &["13010", "12345678", "131A0"],
        ];
        for codes in sets {
            let mut code = Vec::new();
            let mut date = Vec::new();
            let mut x = Vec::new();
            for k in 0..40usize {
                let c = codes[(k * 7 + 3) % codes.len()];
                let d =
                    NaiveDate::from_ymd_opt(2024, 1, 1 + (k * 13 % 28) as u32).unwrap_or_default();
                if code.iter().zip(&date).any(|(a, b)| *a == c && *b == d) {
                    continue;
                }
                code.push(c);
                date.push(d);
                x.push(k as f64);
            }
            let df = DataFrame::new_infer_height(vec![
                Column::new("Code".into(), code),
                Column::new("Date".into(), date),
                Column::new("x".into(), x),
            ])?;
            let want = df.sort(["Code", "Date"], SortMultipleOptions::default())?;
            assert!(by_code_and_date(df)?.equals(&want));
        }
        Ok(())
    }
    use crate::jp_equity::market::calendar::trading_days;

    /// A deterministic, trending, oscillating price path with OHLCV.
    pub(crate) struct Path {
        pub o: Vec<f64>,
        pub h: Vec<f64>,
        pub l: Vec<f64>,
        pub c: Vec<f64>,
        pub v: Vec<f64>,
    }

    pub(crate) fn path(n: usize) -> Path {
        let t = |i: usize| i as f64;
        let c: Vec<f64> = (0..n)
            .map(|i| {
                100.0
                    * (0.25 * (t(i) / 23.0).sin()
                        + 0.1 * (t(i) / 7.1).sin()
                        + 0.05 * (t(i) / 2.3).sin()
                        + 0.001 * t(i))
                    .exp()
            })
            .collect();
        let o: Vec<f64> = (0..n)
            .map(|i| {
                if i == 0 {
                    c[0]
                } else {
                    c[i - 1] * (1.0 + 0.003 * (t(i) / 3.7).sin())
                }
            })
            .collect();
        let h = (0..n)
            .map(|i| o[i].max(c[i]) * (1.01 + 0.005 * (t(i) / 5.0).sin()))
            .collect();
        let l = (0..n)
            .map(|i| o[i].min(c[i]) * (0.99 - 0.004 * (t(i) / 4.3).cos()))
            .collect();
        let v = (0..n).map(|i| 1e6 * (1.5 + (t(i) / 11.0).sin())).collect();
        Path { o, h, l, c, v }
    }

    fn dates(n: usize) -> Vec<NaiveDate> {
        let from = NaiveDate::from_ymd_opt(2020, 1, 6).unwrap_or_default();
        let to = NaiveDate::from_ymd_opt(2030, 1, 1).unwrap_or_default();
        trading_days(from, to).into_iter().take(n).collect()
    }

    /// One stock's rows as a `raw_stock_data` frame.
    fn frame(code: &str, ds: &[NaiveDate], p: &Path, keep: impl Fn(usize) -> bool) -> DataFrame {
        let idx: Vec<usize> = (0..ds.len()).filter(|i| keep(*i)).collect();
        let pick = |x: &Vec<f64>| idx.iter().map(|&i| x[i]).collect::<Vec<f64>>();
        let va: Vec<f64> = idx.iter().map(|&i| p.v[i] * p.c[i]).collect();
        DataFrame::new_infer_height(vec![
            Column::new("Code".into(), vec![code; idx.len()]),
            date_col("Date", idx.iter().map(|&i| ds[i])).unwrap(),
            Column::new("AdjO".into(), pick(&p.o)),
            Column::new("AdjH".into(), pick(&p.h)),
            Column::new("AdjL".into(), pick(&p.l)),
            Column::new("AdjC".into(), pick(&p.c)),
            Column::new("AdjVo".into(), pick(&p.v)),
            Column::new("Va".into(), va),
        ])
        .unwrap()
    }

    fn batch(stocks: DataFrame, ds: &[NaiveDate], window: usize, families: &[Family]) -> Batch {
        Batch {
            stocks: stocks.lazy(),
            stock_windows: (0..ds.len())
                .map(|i| (ds[i], ds[i.saturating_sub(window - 1)]))
                .collect(),
            index: None,
            listed: None,
            families: families.to_vec(),
        }
    }

    fn values(df: &DataFrame, code: &str, name: &str) -> Vec<Option<f64>> {
        let f = df
            .clone()
            .lazy()
            .filter(col("Code").eq(lit(code)))
            .select([col(name).cast(DataType::Float64)])
            .collect()
            .unwrap();
        f.column(name).unwrap().f64().unwrap().iter().collect()
    }

    // --- TA-Lib's definitions, written independently --------------------------------

    /// TA-Lib EMA: seeded with the SMA of the first `p` values at index p−1.
    fn ta_ema(x: &[f64], p: usize) -> Vec<Option<f64>> {
        let k = 2.0 / (p as f64 + 1.0);
        let mut out = vec![None; x.len()];
        let mut e = x[..p].iter().sum::<f64>() / p as f64;
        out[p - 1] = Some(e);
        for i in p..x.len() {
            e = k * x[i] + (1.0 - k) * e;
            out[i] = Some(e);
        }
        out
    }

    /// Wilder smoothing of `x[1..]` seeded with the mean of its first `p` values.
    fn ta_wilder(x: &[f64], p: usize) -> Vec<Option<f64>> {
        let mut out = vec![None; x.len()];
        let mut a = x[1..=p].iter().sum::<f64>() / p as f64;
        out[p] = Some(a);
        for i in p + 1..x.len() {
            a = (a * (p as f64 - 1.0) + x[i]) / p as f64;
            out[i] = Some(a);
        }
        out
    }

    fn ta_rsi(c: &[f64], p: usize) -> Vec<Option<f64>> {
        let g: Vec<f64> = (0..c.len())
            .map(|i| {
                if i == 0 {
                    0.0
                } else {
                    (c[i] - c[i - 1]).max(0.0)
                }
            })
            .collect();
        let l: Vec<f64> = (0..c.len())
            .map(|i| {
                if i == 0 {
                    0.0
                } else {
                    (c[i - 1] - c[i]).max(0.0)
                }
            })
            .collect();
        let (ag, al) = (ta_wilder(&g, p), ta_wilder(&l, p));
        (0..c.len())
            .map(|i| Some(100.0 * ag[i]? / (ag[i]? + al[i]?)))
            .collect()
    }

    fn sma(x: &[f64], p: usize, i: usize) -> Option<f64> {
        (i + 1 >= p).then(|| x[i + 1 - p..=i].iter().sum::<f64>() / p as f64)
    }

    /// Max relative difference over rows `from..`, relative to |reference| floored at
    /// `floor` (for series that cross zero, where a relative error means nothing).
    fn max_rel(ours: &[Option<f64>], reference: &[Option<f64>], from: usize, floor: f64) -> f64 {
        let mut worst = 0.0f64;
        for i in from..reference.len() {
            let r = reference[i].expect("reference warmed up");
            let o = ours[i].unwrap_or_else(|| panic!("feature null at row {i}"));
            worst = worst.max((o - r).abs() / r.abs().max(floor));
        }
        worst
    }

    #[test]
    fn indicators_agree_with_ta_lib_definitions_after_warm_up() {
        let n = 600;
        let ds = dates(n);
        let p = path(n);
        let fams = [
            Family::Returns,
            Family::Volatility,
            Family::Technical,
            Family::Volume,
        ];
        let out = compute(&batch(frame("1301", &ds, &p, |_| true), &ds, 260, &fams)).unwrap();
        assert_eq!(out.height(), n);
        let c = &p.c;
        let from = 300;
        let feat = |name: &str| values(&out, "1301", name);
        let e5 = ta_ema(c, 5);
        let e12 = ta_ema(c, 12);
        let e20 = ta_ema(c, 20);
        let e26 = ta_ema(c, 26);
        let line: Vec<f64> = (0..n)
            .map(|i| e12[i].unwrap_or(0.0) - e26[i].unwrap_or(0.0))
            .collect();
        // TA-Lib's signal is the EMA of the MACD line from where the line exists.
        let sig_tail = ta_ema(&line[25..], 9);
        let signal: Vec<Option<f64>> = (0..n)
            .map(|i| if i < 25 { None } else { sig_tail[i - 25] })
            .collect();
        let per_price = |x: &[Option<f64>]| -> Vec<Option<f64>> {
            x.iter().zip(c).map(|(v, c)| v.map(|v| v / c)).collect()
        };
        let tr: Vec<f64> = (0..n)
            .map(|i| {
                if i == 0 {
                    p.h[0] - p.l[0]
                } else {
                    (p.h[i] - p.l[i])
                        .max((p.h[i] - c[i - 1]).abs())
                        .max((p.l[i] - c[i - 1]).abs())
                }
            })
            .collect();
        let atr = ta_wilder(&tr, 14);
        // Bollinger (20, 2σ): the SMA and the population standard deviation.
        let bands = |i: usize| -> Option<(f64, f64)> {
            let m = sma(c, 20, i)?;
            let var = c[i + 1 - 20..=i]
                .iter()
                .map(|x| (x - m).powi(2))
                .sum::<f64>()
                / 20.0;
            Some((m, var.sqrt()))
        };
        let checks: Vec<(&str, Vec<Option<f64>>, f64)> = vec![
            ("rsi_14", ta_rsi(c, 14), 1.0),
            ("rsi_2", ta_rsi(c, 2), 1.0),
            (
                "ema_gap_5_20",
                (0..n).map(|i| Some(e5[i]? / e20[i]? - 1.0)).collect(),
                1e-3,
            ),
            (
                "macd",
                per_price(&line.iter().map(|v| Some(*v)).collect::<Vec<_>>()),
                1e-3,
            ),
            ("macd_signal", per_price(&signal), 1e-3),
            (
                "macd_hist",
                per_price(
                    &(0..n)
                        .map(|i| Some(line[i] - signal[i]?))
                        .collect::<Vec<_>>(),
                ),
                1e-3,
            ),
            ("atr_14", per_price(&atr), 1e-3),
            (
                "bb_pctb",
                (0..n)
                    .map(|i| {
                        let (m, sd) = bands(i)?;
                        Some((c[i] - (m - 2.0 * sd)) / (4.0 * sd))
                    })
                    .collect(),
                1e-2,
            ),
            (
                "bb_width",
                (0..n)
                    .map(|i| {
                        let (m, sd) = bands(i)?;
                        Some(4.0 * sd / m)
                    })
                    .collect(),
                1e-3,
            ),
            (
                "stoch_k_14",
                (0..n)
                    .map(|i| {
                        if i < 13 {
                            return None;
                        }
                        let ll = p.l[i - 13..=i]
                            .iter()
                            .cloned()
                            .fold(f64::INFINITY, f64::min);
                        let hh = p.h[i - 13..=i]
                            .iter()
                            .cloned()
                            .fold(f64::NEG_INFINITY, f64::max);
                        Some(100.0 * (c[i] - ll) / (hh - ll))
                    })
                    .collect(),
                1.0,
            ),
            (
                "sma_gap_20",
                (0..n).map(|i| Some(c[i] / sma(c, 20, i)? - 1.0)).collect(),
                1e-3,
            ),
            (
                "ret_20d",
                (0..n)
                    .map(|i| (i >= 20).then(|| c[i] / c[i - 20] - 1.0))
                    .collect(),
                1e-3,
            ),
            (
                "vol_20d",
                (0..n)
                    .map(|i| {
                        if i < 20 {
                            return None;
                        }
                        let r: Vec<f64> = (i - 19..=i).map(|j| (c[j] / c[j - 1]).ln()).collect();
                        let m = r.iter().sum::<f64>() / 20.0;
                        let v = r.iter().map(|x| (x - m).powi(2)).sum::<f64>() / 19.0;
                        Some((v * 252.0).sqrt())
                    })
                    .collect(),
                1e-3,
            ),
        ];
        for (name, reference, floor) in checks {
            let err = max_rel(&feat(name), &reference, from, floor);
            assert!(
                err < 1e-3,
                "{name}: max relative error {err:e} after warm-up"
            );
        }
    }

    #[test]
    fn a_split_changes_raw_prices_but_no_feature() {
        // A 2:1 split on day 200: the raw prices halve (AdjFactor 0.5 that day), the
        // adjusted ones stay continuous: every feature equals the unsplit twin's.
        let n = 400;
        let ds = dates(n);
        let p = path(n);
        let with_raw = |code: &str, split: bool| {
            let day = col("Date").rank(Default::default(), None);
            let factor = if split {
                when(day.clone().gt_eq(lit(201)))
                    .then(lit(0.5))
                    .otherwise(lit(1.0))
            } else {
                lit(1.0)
            };
            frame(code, &ds, &p, |_| true)
                .lazy()
                .with_columns([
                    (col("AdjC") * factor.clone()).alias("C"),
                    (col("AdjO") * factor).alias("O"),
                    when(day.eq(lit(201)).and(lit(split)))
                        .then(lit(0.5))
                        .otherwise(lit(1.0))
                        .alias("AdjFactor"),
                ])
                .collect()
                .unwrap()
        };
        let mut all = with_raw("1001", false);
        all.vstack_mut(&with_raw("1004", true)).unwrap();
        let fams = [
            Family::Returns,
            Family::Volatility,
            Family::Technical,
            Family::Volume,
        ];
        let out = compute(&batch(all, &ds, 260, &fams)).unwrap();
        for f in [
            "ret_1d",
            "ret_overnight",
            "rsi_14",
            "macd_signal",
            "vol_20d",
            "atr_14",
        ] {
            assert_eq!(
                values(&out, "1004", f),
                values(&out, "1001", f),
                "{f} across a split"
            );
        }
    }

    #[test]
    fn values_never_read_outside_their_window() {
        // A 100-row window: ret_120d (121 rows) can never be complete, although the
        // batch frame holds 400 rows of history; 60-row features can.
        let n = 400;
        let ds = dates(n);
        let p = path(n);
        let out = compute(&batch(
            frame("1301", &ds, &p, |_| true),
            &ds,
            100,
            &[Family::Returns, Family::Volatility],
        ))
        .unwrap();
        assert!(values(&out, "1301", "ret_120d").iter().all(|v| v.is_none()));
        let r60 = values(&out, "1301", "ret_60d");
        assert!(r60[..60].iter().all(|v| v.is_none()));
        assert!(r60[60..].iter().all(|v| v.is_some()));
        // The family's validity flag follows its longest feature.
        let valid = out.column("valid_returns").unwrap().bool().unwrap();
        assert_eq!(valid.sum(), Some(0));
        let full = compute(&batch(
            frame("1301", &ds, &p, |_| true),
            &ds,
            260,
            &[Family::Returns],
        ))
        .unwrap();
        let valid = full.column("valid_returns").unwrap().bool().unwrap();
        assert_eq!(valid.sum(), Some((n - 120) as u32));
    }

    #[test]
    fn listings_delistings_splits_and_halts_give_nulls_and_flags_not_wrong_numbers() {
        let n = 400;
        let ds = dates(n);
        let p = path(n);
        let mut all = frame("1001", &ds, &p, |_| true); // control
        all.vstack_mut(&frame("1002", &ds, &p, |i| i >= 350))
            .unwrap(); // lists late
        all.vstack_mut(&frame("1003", &ds, &p, |i| i < 300))
            .unwrap(); // delists
        // Trading halt: rows exist with null prices on days 250..256.
        let halted = frame("1005", &ds, &p, |_| true)
            .lazy()
            .with_columns(["AdjO", "AdjH", "AdjL", "AdjC"].map(|c| {
                let i = col("Date").rank(Default::default(), None);
                when(i.clone().gt_eq(lit(251)).and(i.lt_eq(lit(256))))
                    .then(lit(NULL).cast(DataType::Float64))
                    .otherwise(col(c))
                    .alias(c)
            }))
            .collect()
            .unwrap();
        all.vstack_mut(&halted).unwrap();

        let fams = [
            Family::Returns,
            Family::Volatility,
            Family::Technical,
            Family::Volume,
        ];
        let out = compute(&batch(all, &ds, 260, &fams)).unwrap();

        // No NaN or infinity anywhere.
        for c in out.columns() {
            if let Ok(f) = c.f32() {
                assert!(f.iter().flatten().all(|x| x.is_finite()), "{}", c.name());
            }
        }
        // Late listing: short features from its second row, long ones null, flag false.
        let r1 = values(&out, "1002", "ret_1d");
        assert_eq!(r1.len(), 50);
        assert!(r1[0].is_none() && r1[1..].iter().all(|v| v.is_some()));
        assert!(values(&out, "1002", "ret_60d").iter().all(|v| v.is_none()));
        assert!(
            values(&out, "1002", "macd_signal")
                .iter()
                .all(|v| v.is_none())
        );
        // Its values equal the control stock's on the same rows where both exist.
        let ctl = values(&out, "1001", "ret_5d");
        let late = values(&out, "1002", "ret_5d");
        for (k, v) in late.iter().enumerate().skip(5) {
            assert_eq!(*v, ctl[350 + k]);
        }
        // Delisting: no rows after the last day, values before it are the control's.
        assert_eq!(values(&out, "1003", "ret_1d").len(), 300);
        assert_eq!(
            values(&out, "1003", "rsi_14")[299],
            values(&out, "1001", "rsi_14")[299]
        );
        // Halt: null features on the halted days, rows kept, flags false.
        let h = out
            .clone()
            .lazy()
            .filter(col("Code").eq(lit("1005")))
            .collect()
            .unwrap();
        assert_eq!(h.height(), n);
        let r = values(&out, "1005", "ret_1d");
        assert!(r[250..256].iter().all(|v| v.is_none()));
        // After the halt, returns span the halt over the stock's own trading rows.
        let expect = p.c[256] / p.c[249] - 1.0;
        assert!(
            (r[256].unwrap() - expect).abs() < 1e-6,
            "{:?} vs {expect}",
            r[256]
        );
        let flags = h.column("valid_technical").unwrap().bool().unwrap();
        assert!(flags.iter().skip(250).take(6).all(|f| f == Some(false)));
    }

    /// Cross-check against the Python `ta-lib` package itself when it is installed.
    #[test]
    fn indicators_agree_with_python_ta_lib_when_installed() {
        let script = r#"
import sys, json
try:
    import numpy as np, talib
except ImportError:
    print("SKIP"); sys.exit(0)
p = json.load(sys.stdin)
o, h, l, c = (np.array(p[k], dtype=float) for k in "ohlc")
m, s, hist = talib.MACD(c, 12, 26, 9)
up, mid, lo = talib.BBANDS(c, 20, 2, 2, 0)
out = {
  "rsi_14": talib.RSI(c, 14), "rsi_2": talib.RSI(c, 2),
  "ema_gap_5_20": talib.EMA(c, 5) / talib.EMA(c, 20) - 1,
  "macd": m / c, "macd_signal": s / c, "macd_hist": hist / c,
  "atr_14": talib.ATR(h, l, c, 14) / c,
  "bb_width": (up - lo) / mid, "bb_pctb": (c - lo) / (up - lo),
  "stoch_k_14": talib.STOCHF(h, l, c, 14, 3, 0)[0],
}
print(json.dumps({k: [None if np.isnan(x) else float(x) for x in v] for k, v in out.items()}))
"#;
        use std::io::Write;
        use std::process::{Command, Stdio};
        let n = 600;
        let ds = dates(n);
        let p = path(n);
        let input = serde_json::json!({"o": p.o, "h": p.h, "l": p.l, "c": p.c}).to_string();
        let child = Command::new("python3")
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        // In CI (`CI=true`) a missing optional tool is a failure: .ci/run installs it.
        let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        let Ok(mut child) = child else {
            assert!(
                !in_ci,
                "CI: python3 is not installed, so TA-Lib was not compared"
            );
            eprintln!("SKIP: python3 is not installed; the TA-Lib definitions test still ran");
            return;
        };
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        if text.trim() == "SKIP" || !out.status.success() {
            assert!(
                !in_ci,
                "CI: the Python ta-lib package is missing (.ci/run installs TA-Lib numpy): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            eprintln!(
                "SKIP: the Python ta-lib package is not installed (pip install TA-Lib numpy); the TA-Lib definitions test still ran. {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return;
        }
        let talib: std::collections::BTreeMap<String, Vec<Option<f64>>> =
            serde_json::from_str(text.trim()).unwrap();
        let fams = [Family::Technical, Family::Volatility];
        let ours = compute(&batch(frame("1301", &ds, &p, |_| true), &ds, 260, &fams)).unwrap();
        for (name, reference) in &talib {
            let floor = if name.starts_with("rsi") || name.starts_with("stoch") {
                1.0
            } else {
                1e-3
            };
            let err = max_rel(&values(&ours, "1301", name), reference, 300, floor);
            assert!(
                err < 1e-3,
                "{name}: max relative error {err:e} against ta-lib"
            );
        }
    }
}
