//! The feature set of `processed_features` (PIPELINE.md section 2): what each feature
//! is, which family it belongs to and how many rows of history it reads.
//!
//! - [`catalog`] lists the features of the chosen families; it is the single source of
//!   the output's columns and of the [`manifest`] stored with the asset.
//! - [`compute`] builds them with polars' lazy API over all stocks and days of a batch.
//! - [`ema`] turns exponential averages into window-pure weighted sums, which
//!   [`window`] evaluates at the rows to publish only.

pub mod compute;
pub mod ema;
pub mod manifest;
pub mod window;

use std::fmt;

/// A feature family: the unit of selection (`families = [...]`), of validity flags and
/// of null-rate checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    Returns,
    Volatility,
    Technical,
    Volume,
    Market,
    Sector,
}

impl Family {
    pub const ALL: [Family; 6] = [
        Family::Returns,
        Family::Volatility,
        Family::Technical,
        Family::Volume,
        Family::Market,
        Family::Sector,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Family::Returns => "returns",
            Family::Volatility => "volatility",
            Family::Technical => "technical",
            Family::Volume => "volume",
            Family::Market => "market",
            Family::Sector => "sector",
        }
    }

    pub fn parse(s: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.name() == s)
    }

    /// The name of the family's validity flag column.
    pub fn flag(self) -> String {
        format!("valid_{}", self.name())
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which input a feature's history is counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    /// The stock's own trading rows in `raw_stock_data`.
    Stock,
    /// The rows of the market index (`topix`).
    Index,
}

/// One raw feature column.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureDef {
    pub name: String,
    pub family: Family,
    /// Rows of history it reads, today included (its warm-up).
    pub rows: usize,
    pub history: History,
    /// Whether it varies across stocks on a day, so has a cross-sectional z-score.
    pub cs_z: bool,
}

/// Suffix of the cross-sectional z-score columns.
pub const CS_Z: &str = "_cs_z";
/// z-scores are clipped to ±this.
pub const Z_CLIP: f64 = 5.0;
/// Annualisation of daily volatility.
pub const YEAR: f64 = 252.0;

/// Rows of the EMAs the technical family uses.
pub struct EmaRows {
    pub span5: usize,
    pub span12: usize,
    pub span20: usize,
    pub span26: usize,
    pub span9: usize,
    pub wilder2: usize,
    pub wilder14: usize,
}

pub fn ema_rows() -> EmaRows {
    use ema::{rows, span_alpha, wilder_alpha};
    EmaRows {
        span5: rows(span_alpha(5)),
        span12: rows(span_alpha(12)),
        span20: rows(span_alpha(20)),
        span26: rows(span_alpha(26)),
        span9: rows(span_alpha(9)),
        wilder2: rows(wilder_alpha(2)),
        wilder14: rows(wilder_alpha(14)),
    }
}

/// The features of `families`, in output order.
pub fn catalog(families: &[Family]) -> Vec<FeatureDef> {
    let e = ema_rows();
    let mut out = Vec::new();
    let mut add = |name: &str, family: Family, rows: usize, history: History, cs_z: bool| {
        if families.contains(&family) {
            out.push(FeatureDef {
                name: name.to_string(),
                family,
                rows,
                history,
                cs_z,
            });
        }
    };
    use Family::*;
    use History::*;
    for n in [1, 5, 10, 20, 60, 120] {
        add(&format!("ret_{n}d"), Returns, n + 1, Stock, true);
    }
    add("log_ret_1d", Returns, 2, Stock, true);
    add("ret_overnight", Returns, 2, Stock, true);
    add("ret_intraday", Returns, 1, Stock, true);

    for n in [5, 10, 20, 60] {
        add(&format!("vol_{n}d"), Volatility, n + 1, Stock, true);
    }
    add("parkinson_20d", Volatility, 20, Stock, true);
    add("atr_14", Volatility, e.wilder14 + 1, Stock, true);

    for n in [5, 20, 60] {
        add(&format!("sma_gap_{n}"), Technical, n, Stock, true);
    }
    add(
        "ema_gap_5_20",
        Technical,
        e.span5.max(e.span20),
        Stock,
        true,
    );
    add("macd", Technical, e.span12.max(e.span26), Stock, true);
    let signal = e.span12.max(e.span26) + e.span9 - 1;
    add("macd_signal", Technical, signal, Stock, true);
    add("macd_hist", Technical, signal, Stock, true);
    add("rsi_2", Technical, e.wilder2 + 1, Stock, true);
    add("rsi_14", Technical, e.wilder14 + 1, Stock, true);
    add("bb_pctb", Technical, 20, Stock, true);
    add("bb_width", Technical, 20, Stock, true);
    add("stoch_k_14", Technical, 14, Stock, true);

    add("volume_ratio_5", Volume, 5, Stock, true);
    add("volume_ratio_20", Volume, 20, Stock, true);
    add("turnover_z_20", Volume, 20, Stock, true);

    add("mkt_ret_1d", Market, 2, Index, false);
    add("mkt_ret_5d", Market, 6, Index, false);
    add("mkt_ret_20d", Market, 21, Index, false);
    add("mkt_vol_20d", Market, 21, Index, false);
    add("mkt_drawdown_252d", Market, 252, Index, false);
    add("beta_60d", Market, 61, Stock, true);
    add("alpha_1d", Market, 61, Stock, true);
    add("alpha_5d", Market, 61, Stock, true);
    add("idio_vol_ratio_60d", Market, 61, Stock, true);

    add("sector_ret_1d", Sector, 2, Stock, true);
    add("sector_mom_20d", Sector, 21, Stock, true);
    add("rel_sector_ret_5d", Sector, 6, Stock, true);
    out
}

/// Parses a `families` param; `None` gives every family.
pub fn parse_families(names: Option<&[String]>) -> Result<Vec<Family>, String> {
    let Some(names) = names else {
        return Ok(Family::ALL.to_vec());
    };
    let mut out = Vec::new();
    for n in names {
        match Family::parse(n) {
            Some(f) if !out.contains(&f) => out.push(f),
            Some(_) => {}
            None => {
                return Err(format!(
                    "unknown feature family '{n}': use some of {}",
                    Family::ALL.map(|f| f.name()).join(", ")
                ));
            }
        }
    }
    if out.is_empty() {
        return Err("families is empty: list at least one feature family".into());
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_features_and_names_are_unique() {
        let all = catalog(&Family::ALL);
        for f in Family::ALL {
            assert!(all.iter().any(|d| d.family == f), "{f} has no feature");
        }
        let mut names: Vec<&str> = all.iter().map(|d| d.name.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len());
        // The longest history fits the documented window of 260 rows.
        assert!(all.iter().all(|d| d.rows <= 260), "{all:?}");
    }

    #[test]
    fn families_parse_and_reject_unknown_names() {
        assert_eq!(parse_families(None).unwrap().len(), 6);
        let f = parse_families(Some(&["sector".into(), "returns".into()])).unwrap();
        assert_eq!(f, vec![Family::Returns, Family::Sector]);
        let e = parse_families(Some(&["technicals".into()])).unwrap_err();
        assert!(e.contains("'technicals'") && e.contains("technical"), "{e}");
    }
}
