//! Op `jquants_files`: imports J-Quants daily-quote dumps (CSV or parquet, of the API's v1
//! or v2 vintage) through the generic `files` import, into the schema the J-Quants and
//! synthetic sources produce: v1 column names become v2, `Code` stays a string (codes such
//! as "13010" and "131A0" are never numbers), limit flags stay text, prices and volumes
//! are `Float64` whatever a CSV's inference made of them.

use crate::op::{Op, OpContext, OpSpec, ParamSpec};
use crate::ops::files::{self, read_file_with};
use anyhow::Result;
use polars::prelude::*;
use serde_json::Value;

pub struct JquantsFilesOp;

/// J-Quants v1 column names and their v2 equivalents.
pub const JQUANTS_V1_TO_V2: &[(&str, &str)] = &[
    ("Open", "O"),
    ("High", "H"),
    ("Low", "L"),
    ("Close", "C"),
    ("UpperLimit", "UL"),
    ("LowerLimit", "LL"),
    ("Volume", "Vo"),
    ("TurnoverValue", "Va"),
    ("AdjustmentFactor", "AdjFactor"),
    ("AdjustmentOpen", "AdjO"),
    ("AdjustmentHigh", "AdjH"),
    ("AdjustmentLow", "AdjL"),
    ("AdjustmentClose", "AdjC"),
    ("AdjustmentVolume", "AdjVo"),
];

/// Columns read as text from a CSV, never inferred as numbers.
const TEXT_COLUMNS: &[&str] = &["Code", "UpperLimit", "LowerLimit", "UL", "LL"];

/// Renames J-Quants v1 columns to v2 and makes `Code` a string.
fn to_jquants_v2(mut df: DataFrame) -> Result<DataFrame> {
    for (v1, v2) in JQUANTS_V1_TO_V2 {
        if df.column(v1).is_ok() && df.column(v2).is_err() {
            df.rename(v1, (*v2).into())?;
        }
    }
    if let Ok(c) = df.column("Code")
        && c.dtype() != &DataType::String
    {
        let s = c.cast(&DataType::String)?;
        df.with_column(s)?;
    }
    // Prices and volumes are Float64 whatever a CSV's inference made of them, so that
    // dumps of any vintage stack into the schema the API sources produce.
    for (_, v2) in JQUANTS_V1_TO_V2
        .iter()
        .filter(|(_, v2)| !matches!(*v2, "UL" | "LL"))
    {
        if let Ok(c) = df.column(v2)
            && c.dtype() != &DataType::Float64
        {
            let s = c.cast(&DataType::Float64)?;
            df.with_column(s)?;
        }
    }
    Ok(df)
}

impl OpSpec for JquantsFilesOp {
    fn name(&self) -> &'static str {
        "jquants_files"
    }

    fn code_version(&self) -> &'static str {
        crate::op_code_version!("ops/files.rs")
    }

    fn params(&self) -> &'static [ParamSpec] {
        files::PARAMS
    }

    fn discovers_partitions(&self) -> bool {
        true
    }

    fn source_globs(&self, params: &Value) -> Vec<String> {
        files::globs(params)
    }
}

impl Op for JquantsFilesOp {
    fn run(&self, ctx: &OpContext) -> Result<DataFrame> {
        let format = ctx.param_str("format").unwrap_or("auto");
        files::import(ctx, &|path| {
            to_jquants_v2(read_file_with(path, format, TEXT_COLUMNS)?)
        })
    }
}
