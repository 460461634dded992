//! Op `sql`: a polars SQL query over the input assets, each registered under its asset
//! name. A daily asset runs the query once per partition over exactly that partition's
//! windows, so the result is a pure function of the window (incremental = full).
//! In a daily query, `{{date}}` is replaced by the partition's date (`DATE('YYYY-MM-DD')`).

use crate::core::partition::PartitionId;
use crate::op::{Op, OpContext, OpSpec, ParamSpec, ParamType};
use anyhow::{Context, Result};
use polars::prelude::*;
use polars::sql::SQLContext;
use rayon::prelude::*;

pub struct SqlOp;

const PARAMS: &[ParamSpec] = &[ParamSpec {
    name: "query",
    ty: ParamType::Str,
    required: true,
    doc: "a SELECT over the input assets, by name",
}];

fn run_query(ctx: &OpContext, query: &str, part: PartitionId) -> Result<DataFrame> {
    let sql = SQLContext::new();
    for input in &ctx.inputs {
        let lf = if part == PartitionId::Whole {
            input.scan()?
        } else {
            input.scan_window(part)?
        };
        // Read the input into memory first, in partition order: a query over a lazy scan
        // of many files aggregates its rows in whatever order the files' chunks arrive,
        // and float sums (AVG, SUM) then differ in the last bit from run to run, breaking
        // "same inputs, same content hash".
        let mut rows = lf
            .collect()
            .map_err(anyhow::Error::from)
            .with_context(|| format!("cannot read input '{}'", input.asset))?;
        rows.rechunk_mut();
        sql.register(&input.asset, rows.lazy());
    }
    let mut sql = sql;
    // `{{date}}` stands for the partition's date in a daily query.
    let query = match part.date() {
        Some(d) => query.replace("{{date}}", &format!("DATE('{d}')")),
        None => query.to_string(),
    };
    let mut df = sql
        .execute(&query)
        .and_then(|lf| lf.collect())
        .map_err(anyhow::Error::from)
        .with_context(|| {
            format!(
                "query of {} failed for partition {part}",
                ctx.rule.file.display()
            )
        })?;
    if let Some(d) = part.date() {
        let dc = ctx.rule.date_column.as_str();
        if df.column(dc).is_err() {
            let days = (d - chrono::NaiveDate::default()).num_days() as i32;
            let c = Column::new(dc.into(), vec![days; df.height()]).cast(&DataType::Date)?;
            df.with_column(c)?;
        }
    }
    Ok(df)
}

impl OpSpec for SqlOp {
    fn name(&self) -> &'static str {
        "sql"
    }

    fn code_version(&self) -> &'static str {
        crate::op_code_version!()
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }
}

impl Op for SqlOp {
    fn run(&self, ctx: &OpContext) -> Result<DataFrame> {
        let query = ctx.param_str("query").unwrap_or_default();
        if !ctx.rule.daily {
            return run_query(ctx, query, PartitionId::Whole);
        }
        let parts: Vec<DataFrame> = ctx
            .partitions
            .par_iter()
            .map(|p| run_query(ctx, query, *p))
            .collect::<Result<_>>()?;
        let mut iter = parts.into_iter();
        let Some(mut out) = iter.next() else {
            return Ok(DataFrame::empty());
        };
        for p in iter {
            out.vstack_mut_owned(p)
                .map_err(anyhow::Error::from)
                .context("the query returned different columns for different days")?;
        }
        out.rechunk_mut();
        Ok(out)
    }
}
