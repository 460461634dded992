//! Daily bars in the `raw_stock_data` schema, as the J-Quants source handles them: parsed
//! from API rows, turned into a frame, and read back from a published frame so that a
//! re-fetch can be compared with what was published, bar by bar.

use crate::jp_equity::market::jquants::{number, require, row_date, text};
use anyhow::{Result, anyhow};
use chrono::NaiveDate;
use polars::prelude::*;
use serde_json::Value;

/// The numeric fields of a bar, in column order.
pub const NUMBERS: &[&str] = &[
    "O",
    "H",
    "L",
    "C",
    "Vo",
    "Va",
    "AdjFactor",
    "AdjO",
    "AdjH",
    "AdjL",
    "AdjC",
    "AdjVo",
];

const ADJ_FACTOR: usize = 6;

/// One code's bar on one day.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub date: NaiveDate,
    pub code: String,
    /// `NUMBERS`, in order; `None` for nulls and sentinels ("", "-").
    pub numbers: [Option<f64>; 12],
    /// Upper / lower price limit hit.
    pub ul: bool,
    pub ll: bool,
}

impl Bar {
    /// The adjustment factor of the day, when it is not 1: a split (or a similar event)
    /// takes effect that day and the code's earlier adjusted prices change.
    pub fn adjustment(&self) -> Option<f64> {
        self.numbers[ADJ_FACTOR].filter(|f| *f != 1.0)
    }
}

/// One row of `/equities/bars/daily`; `what` names the query in errors.
pub fn parse(row: &Value, what: &str) -> Result<Bar> {
    let date = row_date(row, what)?;
    let code = text(Some(require(row, "Code", what)?)).unwrap_or_default();
    let mut numbers = [None; 12];
    for (slot, field) in numbers.iter_mut().zip(NUMBERS) {
        *slot = number(row.get(*field));
    }
    let flag = |f: &str| text(row.get(f)).is_some_and(|s| s == "1");
    Ok(Bar {
        date,
        code,
        numbers,
        ul: flag("UL"),
        ll: flag("LL"),
    })
}

/// Bars as a `raw_stock_data` frame: Date, Code, O, H, L, C, UL, LL, Vo, Va, AdjFactor,
/// AdjO, AdjH, AdjL, AdjC, AdjVo.
pub fn to_frame(bars: &[Bar]) -> Result<DataFrame> {
    let flag = |b: bool| if b { "1" } else { "0" };
    let mut cols = vec![
        Column::new(
            "Date".into(),
            bars.iter().map(|b| b.date).collect::<Vec<_>>(),
        ),
        Column::new(
            "Code".into(),
            bars.iter().map(|b| b.code.as_str()).collect::<Vec<_>>(),
        ),
    ];
    for (k, f) in NUMBERS.iter().enumerate() {
        let v: Vec<Option<f64>> = bars.iter().map(|b| b.numbers[k]).collect();
        cols.push(Column::new((*f).into(), v));
    }
    let ul: Vec<&str> = bars.iter().map(|b| flag(b.ul)).collect();
    let ll: Vec<&str> = bars.iter().map(|b| flag(b.ll)).collect();
    cols.insert(6, Column::new("UL".into(), ul));
    cols.insert(7, Column::new("LL".into(), ll));
    Ok(DataFrame::new_infer_height(cols)?)
}

/// Bars back from a `raw_stock_data` frame (as published).
pub fn from_frame(df: &DataFrame) -> Result<Vec<Bar>> {
    let dates: Vec<Option<NaiveDate>> = df
        .column("Date")?
        .cast(&DataType::Date)?
        .date()?
        .as_date_iter()
        .collect();
    let codes = df.column("Code")?.cast(&DataType::String)?;
    let codes = codes.str()?;
    let mut numbers = Vec::with_capacity(NUMBERS.len());
    for f in NUMBERS {
        let c = df.column(f)?.cast(&DataType::Float64)?;
        numbers.push(c.f64()?.clone());
    }
    let flags = |name: &str| -> Result<Vec<bool>> {
        let c = df.column(name)?.cast(&DataType::String)?;
        Ok(c.str()?.iter().map(|s| s == Some("1")).collect())
    };
    let (ul, ll) = (flags("UL")?, flags("LL")?);
    (0..df.height())
        .map(|i| {
            let mut n = [None; 12];
            for (slot, col) in n.iter_mut().zip(&numbers) {
                *slot = col.get(i);
            }
            Ok(Bar {
                date: dates[i].ok_or_else(|| anyhow!("a published bar has no Date"))?,
                code: codes.get(i).unwrap_or_default().to_string(),
                numbers: n,
                ul: ul[i],
                ll: ll[i],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bars_round_trip_through_a_frame_with_sentinels_and_codes() {
        let rows = [
            json!({"Date": "2024-03-01", "Code": "131A0", "O": "-", "H": "", "L": null, "C": 10.5,
                "UL": "1", "LL": "0", "Vo": "1200", "AdjFactor": 0.5, "AdjC": 5.25}),
            json!({"Date": "2024-03-01", "Code": "72030", "C": 2500, "AdjFactor": 1}),
        ];
        let bars: Vec<Bar> = rows.iter().map(|r| parse(r, "test").unwrap()).collect();
        assert_eq!(bars[0].code, "131A0");
        assert_eq!(bars[0].numbers[0], None);
        assert_eq!(bars[0].adjustment(), Some(0.5));
        assert_eq!(bars[1].adjustment(), None);
        assert!(bars[0].ul && !bars[0].ll);
        let df = to_frame(&bars).unwrap();
        assert_eq!(
            df.get_column_names()[..8],
            ["Date", "Code", "O", "H", "L", "C", "UL", "LL"]
        );
        assert_eq!(from_frame(&df).unwrap(), bars);
    }

    #[test]
    fn a_row_without_a_code_is_an_error_naming_the_query() {
        let e = parse(
            &json!({"Date": "2024-03-01"}),
            "/equities/bars/daily?date=2024-03-01",
        )
        .unwrap_err();
        assert!(format!("{e}").contains("no 'Code' field"), "{e}");
    }
}
