//! Op `labels`: forward returns `fwd_ret_{h}d = AdjC[t+h] / AdjC[t] − 1` over each
//! stock's own trading rows (PIPELINE.md section 3), daily, from the window `[0, +H]` of
//! the prices. A label is null until its `h` future rows exist inside the window, so a
//! new day re-keys exactly the last `H` partitions and changes nothing older.

use super::features::window_lasts;
use crate::core::error::UsageError;
use crate::core::partition::Coverage;
use crate::core::rule::Rule;
use crate::jp_equity::features::compute::date_map;
use crate::op::{ColumnKind, Op, OpContext, OpSpec, ParamSpec, ParamType};
use anyhow::{Context, Result};
use polars::prelude::*;
use serde_json::Value;

pub struct LabelsOp;

pub const DEFAULT_HORIZONS: [i64; 4] = [1, 5, 10, 20];

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "horizons",
        ty: ParamType::Any,
        required: false,
        doc: "forward horizons in trading rows (default [1, 5, 10, 20])",
    },
    ParamSpec {
        name: "prices",
        ty: ParamType::Str,
        required: false,
        doc: "the daily bars input (default raw_stock_data)",
    },
];

fn horizons(params: &Value) -> Result<Vec<i64>, String> {
    let Some(v) = params.get("horizons") else {
        return Ok(DEFAULT_HORIZONS.to_vec());
    };
    let list: Option<Vec<i64>> = v
        .as_array()
        .and_then(|a| a.iter().map(|x| x.as_i64().filter(|h| *h > 0)).collect());
    match list {
        Some(mut l) if !l.is_empty() => {
            l.sort();
            l.dedup();
            Ok(l)
        }
        _ => Err("horizons must be a list of positive integers, e.g. [1, 5, 10, 20]".into()),
    }
}

fn prices(params: &Value) -> &str {
    params
        .get("prices")
        .and_then(|v| v.as_str())
        .unwrap_or("raw_stock_data")
}

impl OpSpec for LabelsOp {
    fn name(&self) -> &'static str {
        "labels"
    }

    fn code_version(&self) -> &'static str {
        crate::op_code_version!()
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn validate(&self, rule: &Rule) -> Vec<(usize, String)> {
        let hs = match horizons(&rule.params) {
            Ok(h) => h,
            Err(e) => return vec![(1, format!("params.horizons: {e}"))],
        };
        let h_max = hs.last().copied().unwrap_or(1);
        let asset = prices(&rule.params);
        match rule.inputs.iter().find(|i| i.asset == asset) {
            None => vec![(
                1,
                format!(
                    "op labels needs the input '{asset}': add {{ asset = \"{asset}\", window = [0, {h_max}] }}"
                ),
            )],
            Some(i) => match i.coverage {
                Coverage::Window(0, b) if b >= h_max => Vec::new(),
                c => vec![(
                    i.line,
                    format!(
                        "input '{asset}': labels read window [0, {h_max}] (horizons up to {h_max}), not {c}: use window = [0, {h_max}]"
                    ),
                )],
            },
        }
    }
}

impl Op for LabelsOp {
    fn run(&self, ctx: &OpContext) -> Result<DataFrame> {
        let file = ctx.rule.file.display().to_string();
        let hs = horizons(&ctx.params).map_err(|e| UsageError(format!("{file}: {e}")))?;
        let asset = prices(&ctx.params);
        let input = ctx
            .input(asset)
            .ok_or_else(|| UsageError(format!("{file}: op labels needs the input '{asset}'")))?;
        input.expect_columns(
            "labels",
            &[
                ("Code", ColumnKind::Str),
                ("Date", ColumnKind::Date),
                ("AdjC", ColumnKind::Numeric),
            ],
        )?;
        let ends = window_lasts(input, &ctx.partitions);
        let window_end = date_map(&ends, "_we")?;
        let traded = input
            .scan()?
            .select([
                col("Code"),
                col("Date"),
                col("AdjC").cast(DataType::Float64).alias("C"),
            ])
            .filter(col("C").is_not_null())
            .sort(["Code", "Date"], SortMultipleOptions::default())
            .collect()
            .map_err(anyhow::Error::from)
            .context("cannot read the prices for labels")?;
        let mut exprs = Vec::new();
        for h in &hs {
            let ok = col("Code")
                .shift(lit(-h))
                .eq(col("Code"))
                .and(col("Date").shift(lit(-h)).lt_eq(col("_we")));
            let v = col("C").shift(lit(-h)) / col("C") - lit(1.0);
            exprs.push(
                when(ok.and(v.clone().is_finite()))
                    .then(v)
                    .otherwise(lit(NULL).cast(DataType::Float64))
                    .alias(format!("fwd_ret_{h}d")),
            );
        }
        let labelled = traded
            .lazy()
            .join(
                window_end.clone(),
                [col("Date")],
                [col("Date")],
                JoinArgs::new(JoinType::Left),
            )
            // A join does not keep the order: the shifts need it.
            .sort(["Code", "Date"], SortMultipleOptions::default())
            .with_columns(exprs)
            .drop(cols(["C", "_we"]));
        // Every stock present on the date, traded or not.
        let mut select = vec![col("Code"), col("Date")];
        select.extend(hs.iter().map(|h| col(format!("fwd_ret_{h}d"))));
        input
            .scan()?
            .select([col("Code"), col("Date")])
            .join(
                window_end,
                [col("Date")],
                [col("Date")],
                JoinArgs::new(JoinType::Semi),
            )
            .join(
                labelled,
                [col("Code"), col("Date")],
                [col("Code"), col("Date")],
                JoinArgs::new(JoinType::Left),
            )
            .select(select)
            .sort(["Date", "Code"], SortMultipleOptions::default())
            .collect()
            .map_err(anyhow::Error::from)
            .context("cannot compute the labels")
    }
}
