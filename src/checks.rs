//! Data-quality checks declared in rules, run on the data about to be published
//! (write, audit, publish). A failing `error` check fails the step and publishes nothing;
//! a `warn` check is recorded only. Failures say which rows.

use crate::rule::{Check, CheckKind, Severity};
use anyhow::Result;
use polars::prelude::*;
use polars::sql::SQLContext;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CheckResult {
    pub name: String,
    pub severity: String,
    pub passed: bool,
    pub detail: String,
}

impl CheckResult {
    pub fn blocking_failure(&self) -> bool {
        !self.passed && self.severity == "error"
    }
}

fn examples(df: &DataFrame, mask: &BooleanChunked) -> String {
    match df.filter(mask) {
        Ok(bad) => format!("{} row(s), e.g.\n{}", bad.height(), bad.head(Some(5))),
        Err(e) => format!("(cannot show rows: {e})"),
    }
}

fn missing_columns(df: &DataFrame, cols: &[String]) -> Option<String> {
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let missing: Vec<&String> = cols.iter().filter(|c| !names.contains(c)).collect();
    (!missing.is_empty()).then(|| {
        format!(
            "column(s) {missing:?} not in the output (it has {})",
            names.join(", ")
        )
    })
}

fn run_one(check: &Check, df: &DataFrame, asset: &str) -> Result<(bool, String)> {
    Ok(match &check.kind {
        CheckKind::NotNull { columns } => {
            if let Some(m) = missing_columns(df, columns) {
                return Ok((false, m));
            }
            let mut mask = BooleanChunked::full("m".into(), false, df.height());
            let mut bad_cols = Vec::new();
            for c in columns {
                let nulls = df.column(c)?.is_null();
                if nulls.any() {
                    bad_cols.push(format!("{c} ({} nulls)", nulls.sum().unwrap_or(0)));
                    mask = &mask | &nulls;
                }
            }
            if bad_cols.is_empty() {
                (true, String::new())
            } else {
                (
                    false,
                    format!("nulls in {}: {}", bad_cols.join(", "), examples(df, &mask)),
                )
            }
        }
        CheckKind::Unique { columns } => {
            if let Some(m) = missing_columns(df, columns) {
                return Ok((false, m));
            }
            let dup = df
                .select(columns.iter().map(|s| s.as_str()))?
                .is_duplicated()?;
            if dup.any() {
                (
                    false,
                    format!("duplicate {columns:?}: {}", examples(df, &dup)),
                )
            } else {
                (true, String::new())
            }
        }
        CheckKind::Range { column, min, max } => {
            if let Some(m) = missing_columns(df, std::slice::from_ref(column)) {
                return Ok((false, m));
            }
            let s = df.column(column)?.cast(&DataType::Float64)?;
            let v = s.f64()?;
            let mask: BooleanChunked = v
                .iter()
                .map(|x| {
                    Some(x.is_some_and(|x| {
                        x.is_nan() || min.is_some_and(|m| x < m) || max.is_some_and(|m| x > m)
                    }))
                })
                .collect();
            if mask.any() {
                (
                    false,
                    format!(
                        "{column} outside [{min:?}, {max:?}]: {}",
                        examples(df, &mask)
                    ),
                )
            } else {
                (true, String::new())
            }
        }
        CheckKind::RowCount { min, max } => {
            let n = df.height() as f64;
            if min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m) {
                (
                    false,
                    format!("{n} rows, expected within [{min:?}, {max:?}]"),
                )
            } else {
                (true, String::new())
            }
        }
        CheckKind::Sql { query } => {
            let ctx = SQLContext::new();
            ctx.register("this", df.clone().lazy());
            ctx.register(asset, df.clone().lazy());
            let mut ctx = ctx;
            let bad = ctx.execute(query)?.collect()?;
            if bad.height() > 0 {
                (
                    false,
                    format!(
                        "query returned {} row(s), e.g.\n{}",
                        bad.height(),
                        bad.head(Some(5))
                    ),
                )
            } else {
                (true, String::new())
            }
        }
    })
}

/// Runs every check on `df`. `per_partition` splits row-count checks by partition.
pub fn run_checks(
    checks: &[Check],
    df: &DataFrame,
    asset: &str,
    parts: &[DataFrame],
) -> Vec<CheckResult> {
    checks
        .iter()
        .map(|check| {
            let outcome = if matches!(check.kind, CheckKind::RowCount { .. }) && parts.len() > 1 {
                parts
                    .iter()
                    .find_map(|p| match run_one(check, p, asset) {
                        Ok((true, _)) => None,
                        Ok((false, d)) => Some(Ok((false, d))),
                        Err(e) => Some(Err(e)),
                    })
                    .unwrap_or(Ok((true, String::new())))
            } else {
                run_one(check, df, asset)
            };
            let (passed, detail) = match outcome {
                Ok(r) => r,
                Err(e) => (false, format!("the check could not run: {e:#}")),
            };
            CheckResult {
                name: check.name.clone(),
                severity: match check.severity {
                    Severity::Error => "error".into(),
                    Severity::Warn => "warn".into(),
                },
                passed,
                detail,
            }
        })
        .collect()
}
