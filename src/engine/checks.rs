//! Data-quality checks declared in rules, run on the data about to be published
//! (write, audit, publish). A failing `error` check fails the step and publishes nothing;
//! a `warn` check is recorded only. Failures say which rows.

use crate::core::partition::PartitionId;
use crate::core::rule::{Check, CheckKind, Severity};
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

/// The columns `patterns` name (`*` globs allowed), or every column passing `default`
/// when no pattern is given. A pattern that matches nothing is an error (a typo).
fn resolve(
    df: &DataFrame,
    patterns: &[String],
    default: impl Fn(&DataType) -> bool,
) -> std::result::Result<Vec<String>, String> {
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    if patterns.is_empty() {
        return Ok(df
            .columns()
            .iter()
            .filter(|c| default(c.dtype()))
            .map(|c| c.name().to_string())
            .collect());
    }
    let mut out: Vec<String> = Vec::new();
    for p in patterns {
        let matched: Vec<&String> = if p.contains(['*', '?', '[']) {
            let glob = globset::Glob::new(p)
                .map_err(|e| format!("bad column pattern '{p}': {e}"))?
                .compile_matcher();
            names.iter().filter(|n| glob.is_match(n.as_str())).collect()
        } else {
            names.iter().filter(|n| *n == p).collect()
        };
        if matched.is_empty() {
            return Err(format!(
                "column pattern '{p}' matches no column of the output (it has {})",
                names.join(", ")
            ));
        }
        for m in matched {
            if !out.contains(m) {
                out.push(m.clone());
            }
        }
    }
    Ok(out)
}

/// The non-null values of `cols` for which `bad` holds: `None` when there are none,
/// else the columns with their counts ("a (2), b (1)") and a mask of the rows.
fn flag_values(
    df: &DataFrame,
    cols: &[String],
    bad: impl Fn(f64) -> bool,
) -> Result<Option<(String, BooleanChunked)>> {
    let mut named = Vec::new();
    let mut mask = BooleanChunked::full("m".into(), false, df.height());
    for c in cols {
        let s = df.column(c)?.cast(&DataType::Float64)?;
        let out: BooleanChunked = s.f64()?.iter().map(|x| Some(x.is_some_and(&bad))).collect();
        if out.any() {
            named.push(format!("{c} ({})", out.sum().unwrap_or(0)));
            mask = &mask | &out;
        }
    }
    Ok((!named.is_empty()).then(|| (named.join(", "), mask)))
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
        CheckKind::Range { columns, min, max } => {
            let cols = match resolve(df, columns, |_| true) {
                Ok(c) => c,
                Err(m) => return Ok((false, m)),
            };
            let bad = flag_values(df, &cols, |x| {
                x.is_nan() || min.is_some_and(|m| x < m) || max.is_some_and(|m| x > m)
            })?;
            match bad {
                None => (true, String::new()),
                Some((cols, mask)) => (
                    false,
                    format!(
                        "values outside [{min:?}, {max:?}] in {cols}: {}",
                        examples(df, &mask)
                    ),
                ),
            }
        }
        CheckKind::Finite { columns } => {
            let cols = match resolve(df, columns, |d| d.is_float()) {
                Ok(c) => c,
                Err(m) => return Ok((false, m)),
            };
            match flag_values(df, &cols, |x| !x.is_finite())? {
                None => (true, String::new()),
                Some((cols, mask)) => (
                    false,
                    format!("NaN or infinite values in {cols}: {}", examples(df, &mask)),
                ),
            }
        }
        CheckKind::NotAllNull { columns } => {
            let cols = match resolve(df, columns, |_| true) {
                Ok(c) => c,
                Err(m) => return Ok((false, m)),
            };
            if df.height() == 0 {
                return Ok((true, String::new()));
            }
            let empty: Vec<&String> = cols
                .iter()
                .filter(|c| df.column(c).is_ok_and(|s| s.null_count() == df.height()))
                .collect();
            if empty.is_empty() {
                (true, String::new())
            } else {
                (
                    false,
                    format!(
                        "column(s) entirely null over {} rows: {}",
                        df.height(),
                        empty
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            }
        }
        CheckKind::OnCalendar { column, calendar } => {
            if let Some(m) = missing_columns(df, std::slice::from_ref(column)) {
                return Ok((false, m));
            }
            let dates = df.column(column)?.cast(&DataType::Date)?;
            let epoch = chrono::NaiveDate::default();
            let mask: BooleanChunked = dates
                .date()?
                .physical()
                .iter()
                .map(|d| {
                    let off = d
                        .and_then(|d| epoch.checked_add_signed(chrono::Duration::days(d as i64)))
                        .is_none_or(|d| !calendar.contains(d));
                    Some(off)
                })
                .collect();
            if mask.any() {
                (
                    false,
                    format!(
                        "dates off the {calendar:?} calendar: {}",
                        examples(df, &mask)
                    ),
                )
            } else {
                (true, String::new())
            }
        }
        CheckKind::NullRate { columns, max } => {
            let cols = match resolve(df, columns, |_| true) {
                Ok(c) => c,
                Err(m) => return Ok((false, m)),
            };
            let cells = df.height() * cols.len();
            if cells == 0 {
                return Ok((true, String::new()));
            }
            let mut per_col: Vec<(usize, &String)> = cols
                .iter()
                .map(|c| (df.column(c).map(|s| s.null_count()).unwrap_or(0), c))
                .collect();
            let nulls: usize = per_col.iter().map(|(n, _)| n).sum();
            let rate = nulls as f64 / cells as f64;
            if rate <= *max {
                (true, String::new())
            } else {
                per_col.sort_by_key(|c| std::cmp::Reverse(c.0));
                let worst: Vec<String> = per_col
                    .iter()
                    .take(3)
                    .map(|(n, c)| format!("{c} {:.0}%", 100.0 * *n as f64 / df.height() as f64))
                    .collect();
                (
                    false,
                    format!(
                        "{:.1}% of the values of {columns:?} are null, more than {:.1}% (most: {})",
                        100.0 * rate,
                        100.0 * max,
                        worst.join(", ")
                    ),
                )
            }
        }
        // Needs the neighbouring partitions: handled in `run_checks`.
        CheckKind::RowCountChange { .. } => (true, String::new()),
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

/// Compares each partition's row count with the previous one's (in the batch, or the
/// lake's partition before the batch via `previous`).
fn row_count_change(
    parts: &[(PartitionId, DataFrame)],
    previous: &dyn Fn(PartitionId) -> Option<(PartitionId, u64)>,
    max_change: f64,
) -> (bool, String) {
    let mut prev = parts.first().and_then(|(id, _)| previous(*id));
    for (id, df) in parts {
        let n = df.height() as u64;
        if let Some((pid, p)) = prev {
            let change = (n as f64 - p as f64).abs() / (p as f64).max(1.0);
            if p > 0 && change > max_change {
                return (
                    false,
                    format!(
                        "{id} has {n} rows, {pid} had {p} (a change of {:.0}%, more than {:.0}%)",
                        change * 100.0,
                        max_change * 100.0
                    ),
                );
            }
        }
        prev = Some((*id, n));
    }
    (true, String::new())
}

/// Runs every check on `df` (the whole batch); row-count checks run per partition.
pub fn run_checks(
    checks: &[Check],
    df: &DataFrame,
    asset: &str,
    parts: &[(PartitionId, DataFrame)],
    previous: &dyn Fn(PartitionId) -> Option<(PartitionId, u64)>,
) -> Vec<CheckResult> {
    checks
        .iter()
        .map(|check| {
            let outcome = if let CheckKind::RowCountChange { max_change } = check.kind {
                Ok(row_count_change(parts, previous, max_change))
            } else if matches!(
                check.kind,
                CheckKind::RowCount { .. }
                    | CheckKind::NotAllNull { .. }
                    | CheckKind::NullRate { .. }
            ) && parts.len() > 1
            {
                parts
                    .iter()
                    .find_map(|(id, p)| match run_one(check, p, asset) {
                        Ok((true, _)) => None,
                        Ok((false, d)) => Some(Ok((false, format!("{id}: {d}")))),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn check(kind: CheckKind) -> Check {
        Check {
            name: "c".into(),
            kind,
            severity: Severity::Error,
        }
    }

    fn frame() -> DataFrame {
        df!(
            "Date" => ["d1", "d1", "d2"],
            "ret_1d" => [Some(0.1), None, Some(f64::INFINITY)],
            "ret_5d" => [Some(0.2), Some(0.3), None],
            "rsi_14_cs_z" => [1.0, -6.0, 0.0],
            "empty" => [None::<f64>, None, None],
        )
        .unwrap()
    }

    fn run(kind: CheckKind, df: &DataFrame) -> CheckResult {
        let parts = [(PartitionId::Whole, df.clone())];
        run_checks(&[check(kind)], df, "a", &parts, &|_| None).remove(0)
    }

    #[test]
    fn finite_flags_infinities_and_nan_by_column() {
        let r = run(CheckKind::Finite { columns: vec![] }, &frame());
        assert!(!r.passed);
        assert!(
            r.detail
                .starts_with("NaN or infinite values in ret_1d (1):"),
            "{}",
            r.detail
        );
    }

    #[test]
    fn range_takes_globs_and_a_glob_matching_nothing_fails() {
        let r = run(
            CheckKind::Range {
                columns: vec!["*_cs_z".into()],
                min: Some(-5.0),
                max: Some(5.0),
            },
            &frame(),
        );
        assert!(
            !r.passed && r.detail.contains("rsi_14_cs_z (1)"),
            "{}",
            r.detail
        );
        let r = run(
            CheckKind::Range {
                columns: vec!["*_z_score".into()],
                min: Some(-5.0),
                max: None,
            },
            &frame(),
        );
        assert!(
            !r.passed && r.detail.contains("matches no column"),
            "{}",
            r.detail
        );
    }

    #[test]
    fn not_all_null_names_the_empty_column() {
        let r = run(CheckKind::NotAllNull { columns: vec![] }, &frame());
        assert!(!r.passed, "{}", r.detail);
        assert!(r.detail.ends_with("over 3 rows: empty"), "{}", r.detail);
        let ok = run(
            CheckKind::NotAllNull {
                columns: vec!["ret_*".into()],
            },
            &frame(),
        );
        assert!(ok.passed, "{}", ok.detail);
    }

    #[test]
    fn on_calendar_names_rows_on_holidays_and_weekends() {
        let days = |v: &[&str]| {
            Column::new(
                "Date".into(),
                v.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )
            .cast(&DataType::Date)
            .unwrap()
        };
        let ok = DataFrame::new_infer_height(vec![days(&["2024-01-04", "2024-01-05"])]).unwrap();
        // Weekdays less a New Year's holiday (the JPX calendar is the pipeline's).
        struct Exchange;
        impl crate::core::calendar::Days for Exchange {
            fn name(&self) -> &'static str {
                "exchange"
            }
            fn contains(&self, d: chrono::NaiveDate) -> bool {
                crate::core::calendar::DayCalendar::WEEKDAYS.contains(d)
                    && d != chrono::NaiveDate::from_ymd_opt(2024, 1, 2).unwrap_or_default()
            }
        }
        let kind = || CheckKind::OnCalendar {
            column: "Date".into(),
            calendar: crate::core::calendar::DayCalendar(&Exchange),
        };
        assert!(run(kind(), &ok).passed);
        // New Year's holiday and a Saturday.
        let bad =
            DataFrame::new_infer_height(vec![days(&["2024-01-02", "2024-01-05", "2024-01-06"])])
                .unwrap();
        let r = run(kind(), &bad);
        assert!(!r.passed && r.detail.contains("2 row(s)"), "{}", r.detail);
    }

    #[test]
    fn null_rate_pools_the_listed_columns_per_day() {
        // ret_*: 2 nulls out of 6 values.
        let cols = vec!["ret_*".to_string()];
        let within = run(
            CheckKind::NullRate {
                columns: cols.clone(),
                max: 0.34,
            },
            &frame(),
        );
        assert!(within.passed, "{}", within.detail);
        let over = run(
            CheckKind::NullRate {
                columns: cols,
                max: 0.3,
            },
            &frame(),
        );
        assert!(
            !over.passed && over.detail.contains("33.3%"),
            "{}",
            over.detail
        );
    }
}
