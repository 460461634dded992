//! Data files: frames normalised to types every Delta reader understands, written as
//! parquet by polars, and scanned back lazily.

use anyhow::{Context, Result};
use polars::prelude::*;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Casts columns to types a Delta table can hold: unsigned ints widen to signed,
/// timestamps become UTC microseconds, all-null and categorical columns become strings.
pub fn normalize_for_delta(df: DataFrame) -> Result<DataFrame> {
    let mut needs = Vec::new();
    for (name, dt) in df.schema().iter() {
        let target = match dt {
            DataType::UInt8 => Some(DataType::Int16),
            DataType::UInt16 => Some(DataType::Int32),
            DataType::UInt32 | DataType::UInt64 => Some(DataType::Int64),
            DataType::Datetime(TimeUnit::Microseconds, Some(tz)) if tz.as_str() == "UTC" => None,
            DataType::Datetime(..) => Some(DataType::Datetime(
                TimeUnit::Microseconds,
                Some(TimeZone::UTC),
            )),
            DataType::Null => Some(DataType::String),
            DataType::Categorical(..) | DataType::Enum(..) => Some(DataType::String),
            _ => None,
        };
        if let Some(t) = target {
            needs.push((name.clone(), t));
        }
    }
    if needs.is_empty() {
        return Ok(df);
    }
    let exprs: Vec<Expr> = needs
        .into_iter()
        .map(|(n, t)| col(n).strict_cast(t))
        .collect();
    Ok(df.lazy().with_columns(exprs).collect()?)
}

/// Writes `df` to `path` (zstd, full statistics). Returns the file size in bytes.
pub fn write(df: &mut DataFrame, path: &Path) -> Result<u64> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let f =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    // The parquet writer issues many small writes: buffer them. Statistics are min, max
    // and null count (distinct counts cost a HyperLogLog pass per column and page).
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    let bytes = ParquetWriter::new(&mut w)
        .with_compression(ParquetCompression::Zstd(None))
        .with_statistics(StatisticsOptions::default())
        .finish(df)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot write {}", path.display()))?;
    w.flush()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(bytes)
}

/// Reads one parquet file eagerly, with an error that names it.
pub fn read(path: &Path) -> Result<DataFrame> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    ParquetReader::new(file)
        .finish()
        .map_err(anyhow::Error::from)
        .with_context(|| format!("{} is not a readable parquet file", path.display()))
}

/// A lazy scan over parquet files (hive partitioning off, paths taken literally).
pub fn scan_files(paths: &[PathBuf]) -> Result<LazyFrame> {
    let paths: Vec<PlRefPath> = paths
        .iter()
        .map(|p| PlRefPath::try_from_path(p))
        .collect::<PolarsResult<_>>()?;
    let args = ScanArgsParquet {
        hive_options: HiveOptions::new_disabled(),
        glob: false,
        allow_missing_columns: true,
        ..Default::default()
    };
    Ok(LazyFrame::scan_parquet_files(paths.into(), args)?)
}

/// A polars dtype from the text lakebuild records for a schema.
pub fn dtype_from_name(name: &str) -> Option<DataType> {
    Some(match name {
        "bool" => DataType::Boolean,
        "i8" => DataType::Int8,
        "i16" => DataType::Int16,
        "i32" => DataType::Int32,
        "i64" => DataType::Int64,
        "f32" => DataType::Float32,
        "f64" => DataType::Float64,
        "str" => DataType::String,
        "binary" => DataType::Binary,
        "date" => DataType::Date,
        s if s.starts_with("datetime[μs") => {
            DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
        }
        _ => return None,
    })
}

/// A schema as (column, dtype text) pairs, for commit records.
pub fn schema_record(schema: &Schema) -> Vec<(String, String)> {
    schema
        .iter()
        .map(|(n, d)| (n.to_string(), d.to_string()))
        .collect()
}

/// The polars schema of recorded (column, dtype text) pairs (unknown types become strings).
pub fn schema_from_record(rec: &[(String, String)]) -> Schema {
    Schema::from_iter(rec.iter().map(|(n, d)| {
        Field::new(
            n.as_str().into(),
            dtype_from_name(d).unwrap_or(DataType::String),
        )
    }))
}
