//! Content hashes: blake3 over a canonical serialization of a partition's rows, so that
//! the same data hashes the same whatever parquet encoding, compression, row-group
//! layout, file name or row order it arrived in.
//!
//! Canonical form: rows sorted by the asset's key columns (ties broken by every column),
//! then column by column: name, dtype, and each value with a validity byte. Values under
//! a null slot are ignored, -0.0 is written as 0.0 and every NaN as one NaN.

use anyhow::{Result, bail};
use polars::prelude::*;

const CONTENT_FORMAT: &[u8] = b"lakebuild-content/1";

/// Sorts `df` into its canonical row order.
pub fn canonical_order(df: &DataFrame, key_columns: &[String]) -> Result<DataFrame> {
    if df.height() <= 1 {
        return Ok(df.clone());
    }
    let all: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut by: Vec<String> = key_columns
        .iter()
        .filter(|k| all.contains(k))
        .cloned()
        .collect();
    if by.is_empty() {
        by = all.clone();
    }
    let sorted = df.sort(
        by.clone(),
        SortMultipleOptions::default().with_maintain_order(true),
    )?;
    if by.len() == all.len() {
        return Ok(sorted);
    }
    // Key columns that are not unique leave ties in input order: break them by all columns.
    if !sorted.select(by.clone())?.is_duplicated()?.any() {
        return Ok(sorted);
    }
    let rest: Vec<String> = all.into_iter().filter(|c| !by.contains(c)).collect();
    by.extend(rest);
    Ok(df.sort(by, SortMultipleOptions::default().with_maintain_order(true))?)
}

fn put_len(buf: &mut Vec<u8>, n: usize) {
    buf.extend_from_slice(&(n as u64).to_le_bytes());
}

fn canonical_f64(v: f64) -> u64 {
    if v.is_nan() {
        f64::NAN.to_bits()
    } else if v == 0.0 {
        0
    } else {
        v.to_bits()
    }
}

fn canonical_f32(v: f32) -> u32 {
    if v.is_nan() {
        f32::NAN.to_bits()
    } else if v == 0.0 {
        0
    } else {
        v.to_bits()
    }
}

macro_rules! hash_numeric {
    ($buf:expr, $ca:expr, $conv:expr) => {
        for v in $ca.iter() {
            match v {
                Some(x) => {
                    $buf.push(1);
                    $buf.extend_from_slice(&($conv)(x).to_le_bytes());
                }
                None => $buf.push(0),
            }
        }
    };
}

/// Hashes a frame that is already in canonical order.
pub fn hash_sorted(df: &DataFrame) -> Result<blake3::Hash> {
    let mut hasher = blake3::Hasher::new();
    hasher.update(CONTENT_FORMAT);
    hasher.update(&(df.height() as u64).to_le_bytes());
    hasher.update(&(df.width() as u64).to_le_bytes());
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
    for col in df.columns() {
        let s = col.as_materialized_series();
        buf.clear();
        let name = s.name().as_str();
        put_len(&mut buf, name.len());
        buf.extend_from_slice(name.as_bytes());
        let dtype = s.dtype().to_string();
        put_len(&mut buf, dtype.len());
        buf.extend_from_slice(dtype.as_bytes());
        match s.dtype() {
            DataType::Boolean => hash_numeric!(buf, s.bool()?, |x: bool| x as u8),
            DataType::Int8 => hash_numeric!(buf, s.i8()?, |x: i8| x),
            DataType::Int16 => hash_numeric!(buf, s.i16()?, |x: i16| x),
            DataType::Int32 => hash_numeric!(buf, s.i32()?, |x: i32| x),
            DataType::Int64 => hash_numeric!(buf, s.i64()?, |x: i64| x),
            DataType::UInt8 => hash_numeric!(buf, s.u8()?, |x: u8| x),
            DataType::UInt16 => hash_numeric!(buf, s.u16()?, |x: u16| x),
            DataType::UInt32 => hash_numeric!(buf, s.u32()?, |x: u32| x),
            DataType::UInt64 => hash_numeric!(buf, s.u64()?, |x: u64| x),
            DataType::Float32 => hash_numeric!(buf, s.f32()?, canonical_f32),
            DataType::Float64 => hash_numeric!(buf, s.f64()?, canonical_f64),
            DataType::Date | DataType::Datetime(..) | DataType::Duration(_) => {
                let phys = s.to_physical_repr();
                match phys.dtype() {
                    DataType::Int32 => hash_numeric!(buf, phys.i32()?, |x: i32| x),
                    _ => hash_numeric!(buf, phys.i64()?, |x: i64| x),
                }
            }
            DataType::String => {
                for v in s.str()?.iter() {
                    match v {
                        Some(x) => {
                            buf.push(1);
                            put_len(&mut buf, x.len());
                            buf.extend_from_slice(x.as_bytes());
                        }
                        None => buf.push(0),
                    }
                }
            }
            DataType::Binary => {
                for v in s.binary()?.iter() {
                    match v {
                        Some(x) => {
                            buf.push(1);
                            put_len(&mut buf, x.len());
                            buf.extend_from_slice(x);
                        }
                        None => buf.push(0),
                    }
                }
            }
            DataType::Null => buf.extend(std::iter::repeat_n(0u8, s.len())),
            other => bail!(
                "column '{name}' has type {other}, which lakebuild cannot hash: cast it to a number, string, date or binary"
            ),
        }
        hasher.update(&buf);
    }
    Ok(hasher.finalize())
}

/// Content hash of a partition's rows.
pub fn content_hash(df: &DataFrame, key_columns: &[String]) -> Result<blake3::Hash> {
    hash_sorted(&canonical_order(df, key_columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(codes: &[&str], x: &[Option<f64>]) -> DataFrame {
        DataFrame::new_infer_height(vec![
            Column::new("Code".into(), codes),
            Column::new("x".into(), x),
        ])
        .unwrap_or_default()
    }

    #[test]
    fn independent_of_row_order() -> Result<()> {
        let a = frame(&["a", "b"], &[Some(1.0), Some(2.0)]);
        let b = frame(&["b", "a"], &[Some(2.0), Some(1.0)]);
        assert_eq!(
            content_hash(&a, &["Code".into()])?,
            content_hash(&b, &["Code".into()])?
        );
        assert_eq!(content_hash(&a, &[])?, content_hash(&b, &[])?);
        Ok(())
    }

    #[test]
    fn negative_zero_and_nan_payloads_are_normalised() -> Result<()> {
        let a = frame(&["a", "b"], &[Some(0.0), Some(f64::NAN)]);
        let b = frame(
            &["a", "b"],
            &[Some(-0.0), Some(f64::from_bits(f64::NAN.to_bits() | 1))],
        );
        assert_eq!(content_hash(&a, &[])?, content_hash(&b, &[])?);
        Ok(())
    }

    #[test]
    fn nulls_differ_from_values_and_values_matter() -> Result<()> {
        let a = frame(&["a"], &[None]);
        let b = frame(&["a"], &[Some(0.0)]);
        let c = frame(&["a"], &[Some(1.0)]);
        assert_ne!(content_hash(&a, &[])?, content_hash(&b, &[])?);
        assert_ne!(content_hash(&b, &[])?, content_hash(&c, &[])?);
        Ok(())
    }

    #[test]
    fn duplicate_keys_are_ordered_by_all_columns() -> Result<()> {
        let a = frame(&["a", "a"], &[Some(1.0), Some(2.0)]);
        let b = frame(&["a", "a"], &[Some(2.0), Some(1.0)]);
        assert_eq!(
            content_hash(&a, &["Code".into()])?,
            content_hash(&b, &["Code".into()])?
        );
        Ok(())
    }
}

#[cfg(test)]
mod encoding_tests {
    use super::*;

    #[test]
    fn independent_of_parquet_encoding_and_file_names() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let n = 5000;
        let codes: Vec<String> = (0..n).map(|i| format!("{}", 1000 + i % 37)).collect();
        let vals: Vec<Option<f64>> = (0..n)
            .map(|i| (i % 11 != 0).then_some(i as f64 * 0.5))
            .collect();
        let ids: Vec<i64> = (0..n as i64).collect();
        let df = DataFrame::new_infer_height(vec![
            Column::new("id".into(), ids),
            Column::new("Code".into(), codes),
            Column::new("x".into(), vals),
        ])?;
        let expected = content_hash(&df, &["id".into()])?;
        let variants: Vec<(ParquetCompression, Option<usize>)> = vec![
            (ParquetCompression::Zstd(None), None),
            (ParquetCompression::Snappy, Some(1000)),
            (ParquetCompression::Uncompressed, Some(333)),
        ];
        for (i, (compression, rg)) in variants.into_iter().enumerate() {
            // Shuffle the row order too: a different writer may emit rows in any order.
            let mut shuffled = df.sort(
                ["Code"],
                SortMultipleOptions::default().with_maintain_order(true),
            )?;
            let path = dir.path().join(format!("other-name-{i}.parquet"));
            let mut f = std::fs::File::create(&path)?;
            ParquetWriter::new(&mut f)
                .with_compression(compression)
                .with_row_group_size(rg)
                .finish(&mut shuffled)?;
            let back = crate::lake::parquet::read(&path)?;
            assert_eq!(
                content_hash(&back, &["id".into()])?,
                expected,
                "variant {i}"
            );
        }
        Ok(())
    }
}
