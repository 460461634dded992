//! Op `features`: the `processed_features` asset (PIPELINE.md section 2), daily, from
//! past-only windows of the price, index and listing inputs. See `crate::jp_equity::features`.

use crate::core::error::UsageError;
use crate::core::partition::{Coverage, PartitionId};
use crate::core::rule::Rule;
use crate::jp_equity::features::compute::{Batch, compute};
use crate::jp_equity::features::manifest::{Manifest, PROPERTY};
use crate::jp_equity::features::{Family, History, catalog, parse_families};
use crate::op::{ColumnKind, Op, OpContext, OpInput, OpSpec, ParamSpec, ParamType};
use anyhow::Result;
use chrono::NaiveDate;
use polars::prelude::*;
use serde_json::Value;

pub struct FeaturesOp;

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "families",
        ty: ParamType::StrList,
        required: false,
        doc: "feature families to build (default all): returns, volatility, technical, volume, market, sector",
    },
    ParamSpec {
        name: "prices",
        ty: ParamType::Str,
        required: false,
        doc: "the daily bars input (default raw_stock_data)",
    },
    ParamSpec {
        name: "index",
        ty: ParamType::Str,
        required: false,
        doc: "the market index input (default topix), needed by the market family",
    },
    ParamSpec {
        name: "listed",
        ty: ParamType::Str,
        required: false,
        doc: "the listings input with sectors (default listed_info), needed by the sector family",
    },
];

/// The names of the three inputs, from the params.
struct Names<'a> {
    prices: &'a str,
    index: &'a str,
    listed: &'a str,
}

fn names(params: &Value) -> Names<'_> {
    let s = |k: &str, d: &'static str| params.get(k).and_then(|v| v.as_str()).unwrap_or(d);
    Names {
        prices: s("prices", "raw_stock_data"),
        index: s("index", "topix"),
        listed: s("listed", "listed_info"),
    }
}

fn families(params: &Value) -> Result<Vec<Family>, String> {
    let list: Option<Vec<String>> = params.get("families").and_then(|v| {
        v.as_array().map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
    });
    parse_families(list.as_deref())
}

/// Rows of history the longest feature of `families` reads from `history`.
fn need(families: &[Family], history: History) -> (usize, String) {
    catalog(families)
        .into_iter()
        .filter(|d| d.history == history)
        .map(|d| (d.rows, d.name))
        .max()
        .unwrap_or((1, String::new()))
}

impl OpSpec for FeaturesOp {
    fn name(&self) -> &'static str {
        "features"
    }

    fn code_version(&self) -> &'static str {
        crate::op_code_version!(
            "jp_equity/features/mod.rs",
            "jp_equity/features/compute.rs",
            "jp_equity/features/ema.rs",
            "jp_equity/features/window.rs",
            "jp_equity/frames.rs"
        )
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn validate(&self, rule: &Rule) -> Vec<(usize, String)> {
        let mut errs = Vec::new();
        let fams = match families(&rule.params) {
            Ok(f) => f,
            Err(e) => return vec![(1, format!("params.families: {e}"))],
        };
        if !rule.daily {
            errs.push((
                1,
                "op features builds daily partitions: add partitioned = \"daily\"".into(),
            ));
        }
        let n = names(&rule.params);
        let input = |a: &str| rule.inputs.iter().find(|i| i.asset == a);
        let mut check_window = |asset: &str, history: History, why: &str| {
            match input(asset) {
            None => errs.push((
                1,
                format!("op features needs the input '{asset}' ({why}): add {{ asset = \"{asset}\", window = [-259, 0] }} to inputs"),
            )),
            Some(i) => {
                let (rows, feature) = need(&fams, history);
                match i.coverage {
                    Coverage::Window(a, b) if b > 0 => errs.push((
                        i.line,
                        format!("input '{asset}': window [{a}, {b}] reads the future; features must be past-only: end the window at 0"),
                    )),
                    Coverage::Window(a, _) if ((1 - a) as usize) < rows => errs.push((
                        i.line,
                        format!("input '{asset}': window [{a}, 0] holds {} rows but {feature} needs {rows}: use window = [-{}, 0] or longer", 1 - a, rows - 1),
                    )),
                    Coverage::Window(..) => {}
                    Coverage::Whole | Coverage::Period { .. } => errs.push((
                        i.line,
                        format!("input '{asset}' must be daily with a window, e.g. window = [-259, 0]"),
                    )),
                }
            }
        }
        };
        check_window(n.prices, History::Stock, "daily bars");
        if fams.contains(&Family::Market) {
            check_window(n.index, History::Index, "the market family reads the index");
        }
        if fams.contains(&Family::Sector) && input(n.listed).is_none() {
            errs.push((
                1,
                format!("op features needs the input '{}' for the sector family: add {{ asset = \"{}\", as_of = true }} to inputs", n.listed, n.listed),
            ));
        }
        errs
    }
}

impl Op for FeaturesOp {
    fn table_properties(&self, params: &Value) -> Vec<(String, String)> {
        match families(params) {
            Ok(f) => vec![(PROPERTY.to_string(), Manifest::of(&f).to_json())],
            Err(_) => Vec::new(),
        }
    }

    fn run(&self, ctx: &OpContext) -> Result<DataFrame> {
        let file = ctx.rule.file.display().to_string();
        let fams = families(&ctx.params).map_err(|e| UsageError(format!("{file}: {e}")))?;
        let n = names(&ctx.params);
        let input = |a: &str| {
            ctx.input(a)
                .ok_or_else(|| UsageError(format!("{file}: op features needs the input '{a}'")))
        };
        let prices = input(n.prices)?;
        prices.expect_columns("features", PRICE_COLUMNS)?;
        let index = if fams.contains(&Family::Market) {
            let i = input(n.index)?;
            i.expect_columns(
                "features",
                &[("Date", ColumnKind::Date), ("C", ColumnKind::Numeric)],
            )?;
            Some((i.scan()?, window_firsts(i, &ctx.partitions)))
        } else {
            None
        };
        let listed = if fams.contains(&Family::Sector) {
            let i = input(n.listed)?;
            i.expect_columns(
                "features",
                &[
                    ("Code", ColumnKind::Str),
                    ("Date", ColumnKind::Date),
                    ("S33", ColumnKind::Str),
                    ("S17", ColumnKind::Str),
                ],
            )?;
            Some((i.scan()?, window_lasts(i, &ctx.partitions)))
        } else {
            None
        };
        let started = std::time::Instant::now();
        let out = compute(&Batch {
            stocks: prices.scan()?,
            stock_windows: window_firsts(prices, &ctx.partitions),
            index,
            listed,
            families: fams,
        })?;
        tracing::debug!(
            "features: {} rows x {} columns for {} days in {} ms",
            out.height(),
            out.width(),
            ctx.partitions.len(),
            started.elapsed().as_millis()
        );
        Ok(out)
    }
}

/// The columns of the prices input the features read.
const PRICE_COLUMNS: &[(&str, ColumnKind)] = &[
    ("Code", ColumnKind::Str),
    ("Date", ColumnKind::Date),
    ("AdjO", ColumnKind::Numeric),
    ("AdjH", ColumnKind::Numeric),
    ("AdjL", ColumnKind::Numeric),
    ("AdjC", ColumnKind::Numeric),
    ("AdjVo", ColumnKind::Numeric),
    ("Va", ColumnKind::Numeric),
];

/// For each output date, the first date of its window on `input`.
fn window_firsts(input: &OpInput, outputs: &[PartitionId]) -> Vec<(NaiveDate, NaiveDate)> {
    window_dates(input, outputs, |lo, _| lo)
}

/// For each output date, the last date of its window on `input` (the as-of partition).
pub(super) fn window_lasts(
    input: &OpInput,
    outputs: &[PartitionId],
) -> Vec<(NaiveDate, NaiveDate)> {
    window_dates(input, outputs, |_, hi| hi - 1)
}

fn window_dates(
    input: &OpInput,
    outputs: &[PartitionId],
    pick: impl Fn(usize, usize) -> usize,
) -> Vec<(NaiveDate, NaiveDate)> {
    outputs
        .iter()
        .filter_map(|p| {
            let d = p.date()?;
            let &(lo, hi) = input.windows.get(p)?;
            if lo >= hi {
                return None;
            }
            Some((d, input.partitions.get(pick(lo, hi))?.0.date()?))
        })
        .collect()
}
