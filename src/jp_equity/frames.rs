//! Column helpers shared by the pipeline's features, model and monitoring: a named column
//! or an error naming it, and a numeric column as `f64` values. One definition, listed in
//! the code version of every op whose output goes through it.

use anyhow::{Result, anyhow};
use polars::prelude::*;

/// A column of `df`, or an error naming it.
pub fn column<'a>(df: &'a DataFrame, name: &str) -> Result<&'a Column> {
    df.column(name)
        .map_err(|_| anyhow!("column {name} is missing"))
}

/// A numeric column as f64, nulls as NaN.
pub fn f64_values(df: &DataFrame, name: &str) -> Result<Vec<f64>> {
    let s = column(df, name)?
        .cast(&DataType::Float64)
        .map_err(|_| anyhow!("column {name} is not numeric"))?;
    Ok(s.f64()?.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
}
