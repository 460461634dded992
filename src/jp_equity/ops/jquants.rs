//! Op `jquants`: one table from the J-Quants API v2 (`table` = trading_calendar,
//! raw_stock_data, listed_info or topix), in the same schema as the synthetic market.
//! The engine asks only for the trading days the lake lacks, so a daily run fetches one
//! day; a day is published only when all of its pages arrived and parsed.

use crate::core::error::UsageError;
use crate::core::partition::PartitionId;
use crate::jp_equity::market::bars;
use crate::jp_equity::market::jquants::{
    Client, ClientConfig, DEFAULT_BASE_URL, bad, number, plan_rate, require, row_date, text,
};
use crate::jp_equity::market::splits;
use crate::op::{Op, OpContext, OpSpec, ParamSpec, ParamType, Restated};
use anyhow::Result;
use chrono::NaiveDate;
use polars::prelude::*;
use serde_json::Value;

pub struct JquantsOp;

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "table",
        ty: ParamType::Str,
        required: true,
        doc: "trading_calendar, raw_stock_data, listed_info or topix",
    },
    ParamSpec {
        name: "plan",
        ty: ParamType::Str,
        required: false,
        doc: "free, light, standard or premium: sizes the rate limiter (default light)",
    },
    ParamSpec {
        name: "base_url",
        ty: ParamType::Str,
        required: false,
        doc: "API root (default https://api.jquants.com/v2)",
    },
    ParamSpec {
        name: "timeout",
        ty: ParamType::Str,
        required: false,
        doc: "per-request timeout, e.g. \"30s\"",
    },
    ParamSpec {
        name: "attempts",
        ty: ParamType::Int,
        required: false,
        doc: "attempts per request on 429/5xx/timeouts (default 6)",
    },
    ParamSpec {
        name: "backoff",
        ty: ParamType::Str,
        required: false,
        doc: "first retry delay, doubled each time (default \"500ms\")",
    },
    ParamSpec {
        name: "max_pages",
        ty: ParamType::Int,
        required: false,
        doc: "most pages one query may take (default 1000)",
    },
    ParamSpec {
        name: "recheck_days",
        ty: ParamType::Int,
        required: false,
        doc: "fetch the latest N trading days again on every build: late corrections, and adjusted histories revised without a split (default 0)",
    },
];

const MASTER_TEXT: &[&str] = &[
    "CoName", "CoNameEn", "S17", "S17Nm", "S33", "S33Nm", "ScaleCat", "Mkt", "MktNm",
];

fn config(ctx: &OpContext) -> Result<ClientConfig> {
    let file = ctx.rule.file.display();
    let mut cfg = ClientConfig::default();
    let plan = ctx.param_str("plan").unwrap_or("light");
    cfg.per_minute = plan_rate(plan).ok_or_else(|| {
        UsageError(format!(
            "{file}: plan = \"{plan}\" is unknown: use free, light, standard or premium"
        ))
    })?;
    cfg.base_url = ctx
        .param_str("base_url")
        .unwrap_or(DEFAULT_BASE_URL)
        .to_string();
    for (name, slot) in [
        ("timeout", &mut cfg.timeout),
        ("backoff", &mut cfg.initial_backoff),
    ] {
        if let Some(s) = ctx.param_str(name) {
            *slot = crate::core::rule::parse_duration(s)
                .ok_or_else(|| UsageError(format!("{file}: {name} = \"{s}\" is not a duration")))?;
        }
    }
    if let Some(a) = ctx.params.get("attempts").and_then(|v| v.as_i64()) {
        cfg.attempts = a.clamp(1, 100) as u32;
    }
    if let Some(p) = ctx.params.get("max_pages").and_then(|v| v.as_i64()) {
        cfg.max_pages = p.clamp(1, 1_000_000) as usize;
    }
    Ok(cfg)
}

fn dates_of(ctx: &OpContext) -> Vec<NaiveDate> {
    ctx.partitions
        .iter()
        .filter_map(PartitionId::date)
        .collect()
}

impl OpSpec for JquantsOp {
    fn name(&self) -> &'static str {
        "jquants"
    }

    fn code_version(&self) -> &'static str {
        crate::op_code_version!(
            "jp_equity/market/jquants.rs",
            "jp_equity/market/bars.rs",
            "jp_equity/market/splits.rs"
        )
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn recheck_days(&self, params: &Value) -> usize {
        params
            .get("recheck_days")
            .and_then(|v| v.as_u64())
            .unwrap_or(0) as usize
    }
}

impl Op for JquantsOp {
    /// A split (or a revised adjusted history seen on a re-check) in the batch: the
    /// code's history is fetched again and the earlier days it changed are restated.
    fn restate(&self, ctx: &OpContext, fresh: &DataFrame) -> Result<Option<Restated>> {
        if ctx.param_str("table") != Some("raw_stock_data")
            || fresh.height() == 0
            || ctx.published.is_empty()
        {
            return Ok(None);
        }
        let client = Client::from_env(config(ctx)?)?;
        splits::restate(
            &client,
            &dates_of(ctx),
            &bars::from_frame(fresh)?,
            &ctx.published,
        )
    }

    fn run(&self, ctx: &OpContext) -> Result<DataFrame> {
        let client = Client::from_env(config(ctx)?)?;
        let table = ctx.param_str("table").unwrap_or_default();
        let dates = dates_of(ctx);
        let (Some(first), Some(last)) = (dates.first().copied(), dates.last().copied()) else {
            return Ok(DataFrame::empty());
        };
        match table {
            "trading_calendar" => {
                let what = format!("/markets/calendar {first}..{last}");
                let rows = client.get_all("/markets/calendar", &[("from", first.to_string()), ("to", last.to_string())], "data")?;
                let (mut date, mut div) = (vec![], vec![]);
                for r in &rows {
                    let d = row_date(r, &what)?;
                    let h = text(Some(require(r, "HolDiv", &what)?)).unwrap_or_default();
                    if dates.contains(&d) && (h == "1" || h == "2") {
                        date.push(d);
                        div.push(h);
                    }
                }
                Ok(DataFrame::new_infer_height(vec![Column::new("Date".into(), date), Column::new("HolDiv".into(), div)])?)
            }
            "topix" => {
                let what = format!("/indices/bars/daily/topix {first}..{last}");
                let rows = client.get_all("/indices/bars/daily/topix", &[("from", first.to_string()), ("to", last.to_string())], "data")?;
                let mut date = vec![];
                let mut cols: [Vec<Option<f64>>; 4] = Default::default();
                for r in &rows {
                    let d = row_date(r, &what)?;
                    if !dates.contains(&d) {
                        continue;
                    }
                    date.push(d);
                    for (k, f) in ["O", "H", "L", "C"].iter().enumerate() {
                        cols[k].push(number(r.get(*f)));
                    }
                }
                let [o, h, l, c] = cols;
                Ok(DataFrame::new_infer_height(vec![
                    Column::new("Date".into(), date),
                    Column::new("O".into(), o),
                    Column::new("H".into(), h),
                    Column::new("L".into(), l),
                    Column::new("C".into(), c),
                ])?)
            }
            "raw_stock_data" => {
                let mut all = Vec::new();
                for d in &dates {
                    let what = format!("/equities/bars/daily?date={d}");
                    // All pages of the day, or an error: never a partial day.
                    let rows = client.get_all("/equities/bars/daily", &[("date", d.to_string())], "data")?;
                    for r in &rows {
                        let bar = bars::parse(r, &what)?;
                        if bar.date != *d {
                            return Err(bad(format!("J-Quants {what}: returned a row for {}", bar.date)));
                        }
                        all.push(bar);
                    }
                }
                bars::to_frame(&all)
            }
            "listed_info" => {
                let mut date = vec![];
                let mut code = vec![];
                let mut texts: Vec<Vec<Option<String>>> = vec![vec![]; MASTER_TEXT.len()];
                for d in &dates {
                    let what = format!("/equities/master?date={d}");
                    let rows = client.get_all("/equities/master", &[("date", d.to_string())], "data")?;
                    for r in &rows {
                        date.push(*d);
                        code.push(text(Some(require(r, "Code", &what)?)).unwrap_or_default());
                        for (k, f) in MASTER_TEXT.iter().enumerate() {
                            texts[k].push(text(r.get(*f)));
                        }
                    }
                }
                let mut cols = vec![Column::new("Date".into(), date), Column::new("Code".into(), code)];
                for (k, f) in MASTER_TEXT.iter().enumerate() {
                    cols.push(Column::new((*f).into(), std::mem::take(&mut texts[k])));
                }
                Ok(DataFrame::new_infer_height(cols)?)
            }
            other => Err(UsageError(format!(
                "{}: table = \"{other}\" is unknown: use trading_calendar, raw_stock_data, listed_info or topix",
                ctx.rule.file.display()
            ))
            .into()),
        }
    }
}
