//! Op `files`: imports CSV or parquet files as an asset. The files are sources (their
//! content hashes enter the key); a daily asset learns its partitions from the date
//! column, and only the days whose content changed get new content hashes.

use crate::core::error::UsageError;
use crate::op::{Op, OpContext, OpSpec, ParamSpec, ParamType};
use anyhow::{Context, Result};
use globset::{Glob, GlobSetBuilder};
use polars::prelude::*;
use serde_json::Value;

pub struct FilesOp;

/// The params of `files`, and of every op that imports files through [`import`].
pub const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "path",
        ty: ParamType::StrOrStrList,
        required: true,
        doc: "glob(s) of the files, relative to the project root",
    },
    ParamSpec {
        name: "format",
        ty: ParamType::Str,
        required: false,
        doc: "\"csv\", \"parquet\" or \"auto\" (by extension)",
    },
];

/// The `path` glob(s) of the params.
pub fn globs(params: &Value) -> Vec<String> {
    crate::op::param::strings(params, "path")
}

/// A date column from text (YYYY-MM-DD) or any castable type; unparsable values become null.
pub fn parse_dates(c: &Column) -> Result<Column> {
    Ok(match c.dtype() {
        DataType::String => c.str()?.as_date(Some("%Y-%m-%d"), false)?.into_column(),
        _ => c.cast(&DataType::Date)?,
    })
}

/// Reads one CSV or parquet file, with errors that name it.
pub fn read_file(path: &std::path::Path, format: &str) -> Result<DataFrame> {
    read_file_with(path, format, &[])
}

/// Reads one file; in a CSV, `text_columns` (when present) are read as strings, never
/// inferred as numbers (codes such as "13010" must stay strings).
pub fn read_file_with(
    path: &std::path::Path,
    format: &str,
    text_columns: &[&str],
) -> Result<DataFrame> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let fmt = if format == "auto" {
        ext.as_str()
    } else {
        format
    };
    match fmt {
        "parquet" | "pq" => crate::lake::parquet::read(path),
        "csv" | "txt" => CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(10_000))
            .with_schema_overwrite(text_overrides(path, text_columns))
            .map_parse_options(|p| p.with_try_parse_dates(true))
            .try_into_reader_with_file_path(Some(path.to_path_buf()))
            .and_then(|r| r.finish())
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{} is not a readable CSV file", path.display())),
        other => Err(UsageError(format!(
            "{}: unknown file format '{other}': set format = \"csv\" or \"parquet\"",
            path.display()
        ))
        .into()),
    }
}

/// A schema override making the `text_columns` present in a CSV's header strings.
fn text_overrides(path: &std::path::Path, text_columns: &[&str]) -> Option<SchemaRef> {
    if text_columns.is_empty() {
        return None;
    }
    let header = std::fs::read_to_string(path)
        .ok()?
        .lines()
        .next()?
        .to_string();
    let present: Vec<&str> = header
        .split(',')
        .map(|h| h.trim().trim_matches('"'))
        .collect();
    let fields: Vec<Field> = text_columns
        .iter()
        .filter(|c| present.contains(c))
        .map(|c| Field::new((*c).into(), DataType::String))
        .collect();
    (!fields.is_empty()).then(|| std::sync::Arc::new(Schema::from_iter(fields)))
}

impl OpSpec for FilesOp {
    fn name(&self) -> &'static str {
        "files"
    }

    fn code_version(&self) -> &'static str {
        crate::op_code_version!()
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn discovers_partitions(&self) -> bool {
        true
    }

    fn source_globs(&self, params: &Value) -> Vec<String> {
        globs(params)
    }
}

impl Op for FilesOp {
    fn run(&self, ctx: &OpContext) -> Result<DataFrame> {
        let format = ctx.param_str("format").unwrap_or("auto");
        import(ctx, &|path| read_file(path, format))
    }
}

/// The import of `files` with `read` turning each matched file into a frame: the files of
/// the `path` globs (the rule's sources), each with its date column parsed for a daily
/// asset, stacked into one frame. An op with its own file dialect (the pipeline's J-Quants
/// dumps) calls this with its reader.
pub fn import(
    ctx: &OpContext,
    read: &dyn Fn(&std::path::Path) -> Result<DataFrame>,
) -> Result<DataFrame> {
    let mut set = GlobSetBuilder::new();
    for g in globs(&ctx.params) {
        set.add(Glob::new(&g)?);
    }
    let set = set.build()?;
    let mut frames = Vec::new();
    for src in ctx.sources.iter().filter(|s| set.is_match(&s.path)) {
        let path = src.absolute(ctx.project_root);
        let mut df = read(&path)?;
        if ctx.rule.daily {
            let dc = ctx.rule.date_column.as_str();
            let Ok(c) = df.column(dc) else {
                return Err(UsageError(format!(
                    "{}: no '{dc}' column for daily asset '{}': add it or set date_column in {}",
                    path.display(),
                    ctx.rule.asset,
                    ctx.rule.file.display()
                ))
                .into());
            };
            if c.dtype() != &DataType::Date {
                let parsed = parse_dates(c)?;
                if parsed.null_count() > c.null_count() {
                    return Err(UsageError(format!(
                        "{}: column '{dc}' has values that are not dates (YYYY-MM-DD)",
                        path.display()
                    ))
                    .into());
                }
                df.with_column(parsed)?;
            }
        }
        frames.push(df);
    }
    let Some(first) = frames.first().cloned() else {
        return Ok(DataFrame::empty());
    };
    let mut out = first;
    for f in &frames[1..] {
        out.vstack_mut(f)
            .map_err(anyhow::Error::from)
            .context("the imported files have different columns or types")?;
    }
    out.rechunk_mut();
    Ok(out)
}
