//! Op `synthetic_market`: one table of the embedded synthetic market (`table` =
//! trading_calendar, listed_info, raw_stock_data, topix or synthetic_truth), with the
//! J-Quants v2 schema. The market is simulated once per process and parameter set, and
//! extended as later dates are asked for; any partition is a pure function of the params
//! and its date.

use crate::core::error::UsageError;
use crate::core::partition::PartitionId;
use crate::jp_equity::market::checkpoints;
use crate::jp_equity::market::sectors::{SECTORS_33, sector17_name};
use crate::jp_equity::market::synthetic::{Market, MarketParams, market_name};
use crate::op::{Op, OpContext, OpSpec, ParamSpec, ParamType};
use anyhow::{Result, anyhow};
use chrono::NaiveDate;
use polars::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

pub struct SyntheticMarketOp;

pub const TABLES: &[&str] = &[
    "trading_calendar",
    "listed_info",
    "raw_stock_data",
    "topix",
    "synthetic_truth",
];
pub const DEFAULT_START: &str = "2023-01-04";

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "table",
        ty: ParamType::Str,
        required: true,
        doc: "trading_calendar, listed_info, raw_stock_data, topix or synthetic_truth",
    },
    ParamSpec {
        name: "seed",
        ty: ParamType::Int,
        required: false,
        doc: "random seed (default 42)",
    },
    ParamSpec {
        name: "stocks",
        ty: ParamType::Int,
        required: false,
        doc: "number of stocks (default 300; full scale ~4000)",
    },
    ParamSpec {
        name: "start",
        ty: ParamType::Str,
        required: false,
        doc: "first simulated day, YYYY-MM-DD (default 2023-01-04)",
    },
];

type Cache = Mutex<HashMap<MarketParams, Arc<Mutex<Market>>>>;

fn cache() -> &'static Cache {
    static C: OnceLock<Cache> = OnceLock::new();
    C.get_or_init(|| Mutex::new(HashMap::new()))
}

pub fn market_params(params: &serde_json::Value, rule_file: &str) -> Result<MarketParams> {
    let seed = params.get("seed").and_then(|v| v.as_i64()).unwrap_or(42);
    let stocks = params.get("stocks").and_then(|v| v.as_i64()).unwrap_or(300);
    if !(1..=20_000).contains(&stocks) {
        return Err(UsageError(format!(
            "{rule_file}: stocks = {stocks} must be between 1 and 20000"
        ))
        .into());
    }
    let start_s = params
        .get("start")
        .and_then(|v| v.as_str())
        .unwrap_or(DEFAULT_START);
    let start = NaiveDate::parse_from_str(start_s, "%Y-%m-%d").map_err(|_| {
        UsageError(format!(
            "{rule_file}: start = \"{start_s}\" is not a date (YYYY-MM-DD)"
        ))
    })?;
    Ok(MarketParams {
        seed: seed as u64,
        stocks: stocks as usize,
        start,
    })
}

/// The (cached) market for these params.
pub fn market(p: &MarketParams) -> Result<Arc<Mutex<Market>>> {
    let mut c = cache()
        .lock()
        .map_err(|_| anyhow!("market cache poisoned"))?;
    Ok(c.entry(p.clone())
        .or_insert_with(|| Arc::new(Mutex::new(Market::new(p.clone()))))
        .clone())
}

fn days_col(dates: &[NaiveDate]) -> Column {
    Column::new("Date".into(), dates)
}

impl OpSpec for SyntheticMarketOp {
    fn name(&self) -> &'static str {
        "synthetic_market"
    }

    fn code_version(&self) -> &'static str {
        // The generator's code is part of what determines the data.
        crate::op_code_version!(
            "jp_equity/market/synthetic.rs",
            "jp_equity/market/calendar.rs",
            "jp_equity/market/sectors.rs"
        )
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }
}

impl Op for SyntheticMarketOp {
    fn run(&self, ctx: &OpContext) -> Result<DataFrame> {
        let file = ctx.rule.file.display().to_string();
        let table = ctx.param_str("table").unwrap_or_default();
        if !TABLES.contains(&table) {
            return Err(UsageError(format!(
                "{file}: table = \"{table}\" is unknown: use one of {}",
                TABLES.join(", ")
            ))
            .into());
        }
        let p = market_params(&ctx.params, &file)?;
        let m = market(&p)?;
        let mut m = m.lock().map_err(|_| anyhow!("market poisoned"))?;
        let mut idx = Vec::new();
        for part in &ctx.partitions {
            let PartitionId::Day(d) = part else {
                return Err(UsageError(format!(
                    "{file}: synthetic_market tables are daily: add partitioned = \"daily\""
                ))
                .into());
            };
            match m.day_index(*d) {
                Some(i) => idx.push((*d, i)),
                None => {
                    return Err(UsageError(format!(
                        "{file}: {d} is not a trading day of the synthetic market (it starts {}): take the dates from trading_calendar",
                        p.start
                    ))
                    .into());
                }
            }
        }
        if let (Some(min), Some(max)) = (
            idx.iter().map(|(_, i)| *i).min(),
            idx.iter().map(|(_, i)| *i).max(),
        ) {
            let saved = ctx.cache.join(checkpoints::folder(&p));
            if min < m.first() {
                // Days before where this process's market was resumed: from the start.
                *m = Market::new(p.clone());
            }
            if m.simulated() < min
                && let Some(c) = checkpoints::latest(&saved, m.simulated(), min)
                && let Some(resumed) = Market::resume(p.clone(), &c)
            {
                tracing::info!(
                    "synthetic market resumed at day {} from its stored state",
                    resumed.first()
                );
                *m = resumed;
            }
            let before = m.simulated();
            m.advance_to(max);
            if m.simulated() > before {
                // Best effort: without it the next process regenerates the history.
                if let Err(e) = checkpoints::save(&saved, &m.checkpoint()) {
                    tracing::debug!("cannot keep the market's state: {e:#}");
                }
            }
        }
        frame(&m, table, &idx)
    }
}

/// The rows of `table` on the given (date, day index) pairs of a market advanced past them.
pub fn frame(m: &Market, table: &str, idx: &[(NaiveDate, usize)]) -> Result<DataFrame> {
    Ok(match table {
        "trading_calendar" => {
            let dates: Vec<NaiveDate> = idx.iter().map(|(d, _)| *d).collect();
            DataFrame::new_infer_height(vec![
                days_col(&dates),
                Column::new("HolDiv".into(), vec!["1"; dates.len()]),
            ])?
        }
        "topix" => {
            let dates: Vec<NaiveDate> = idx.iter().map(|(d, _)| *d).collect();
            let pick = |k: usize| -> Vec<f64> {
                idx.iter()
                    .map(|(_, t)| (m.topix_on(*t)[k] * 100.0).round() / 100.0)
                    .collect()
            };
            DataFrame::new_infer_height(vec![
                days_col(&dates),
                Column::new("O".into(), pick(0)),
                Column::new("H".into(), pick(1)),
                Column::new("L".into(), pick(2)),
                Column::new("C".into(), pick(3)),
            ])?
        }
        "listed_info" => {
            let (
                mut date,
                mut code,
                mut name,
                mut s17,
                mut s17n,
                mut s33,
                mut s33n,
                mut mkt,
                mut mktn,
                mut scale,
            ) = (
                vec![],
                vec![],
                vec![],
                vec![],
                vec![],
                vec![],
                vec![],
                vec![],
                vec![],
                vec![],
            );
            for (d, t) in idx {
                for sk in m.stocks.iter().filter(|s| s.listed(*t)) {
                    let (c33, n33, c17) = SECTORS_33[sk.sector33];
                    let (mc, mn) = market_name(sk.market);
                    date.push(*d);
                    code.push(sk.code.clone());
                    name.push(sk.name.clone());
                    s17.push(c17);
                    s17n.push(sector17_name(c17));
                    s33.push(c33);
                    s33n.push(n33);
                    mkt.push(mc);
                    mktn.push(mn);
                    scale.push(match sk.market {
                        0 => "TOPIX Mid400",
                        1 => "TOPIX Small 1",
                        _ => "-",
                    });
                }
            }
            DataFrame::new_infer_height(vec![
                days_col(&date),
                Column::new("Code".into(), code),
                Column::new("CoName".into(), name.clone()),
                Column::new("CoNameEn".into(), name),
                Column::new("S17".into(), s17),
                Column::new("S17Nm".into(), s17n),
                Column::new("S33".into(), s33),
                Column::new("S33Nm".into(), s33n),
                Column::new("ScaleCat".into(), scale),
                Column::new("Mkt".into(), mkt),
                Column::new("MktNm".into(), mktn),
            ])?
        }
        "raw_stock_data" => {
            let n: usize = idx
                .iter()
                .map(|(_, t)| m.stocks.iter().filter(|s| s.listed(*t)).count())
                .sum();
            let mut date = Vec::with_capacity(n);
            let mut code = Vec::with_capacity(n);
            let mut cols: [Vec<Option<f64>>; 4] = Default::default();
            let mut adj: [Vec<Option<f64>>; 4] = Default::default();
            let (mut ul, mut ll, mut vo, mut va, mut af, mut adjvo) =
                (vec![], vec![], vec![], vec![], vec![], vec![]);
            for (d, t) in idx {
                for (i, sk) in m.stocks.iter().enumerate() {
                    if !sk.listed(*t) {
                        continue;
                    }
                    let b = &m.day(*t)[i];
                    date.push(*d);
                    code.push(sk.code.as_str());
                    for (k, v) in [b.o, b.h, b.l, b.c].into_iter().enumerate() {
                        cols[k].push(b.traded.then_some(v));
                        adj[k].push(b.traded.then_some((v * b.cum_ratio * 1e4).round() / 1e4));
                    }
                    ul.push(if b.limit_up && b.traded { "1" } else { "0" });
                    ll.push(if b.limit_down && b.traded { "1" } else { "0" });
                    vo.push(b.volume);
                    va.push((b.volume * b.c).round());
                    af.push(b.adj_factor);
                    adjvo.push((b.volume / b.cum_ratio).round());
                }
            }
            let [o, h, l, c] = cols;
            let [ao, ah, al, ac] = adj;
            DataFrame::new_infer_height(vec![
                days_col(&date),
                Column::new("Code".into(), code),
                Column::new("O".into(), o),
                Column::new("H".into(), h),
                Column::new("L".into(), l),
                Column::new("C".into(), c),
                Column::new("UL".into(), ul),
                Column::new("LL".into(), ll),
                Column::new("Vo".into(), vo),
                Column::new("Va".into(), va),
                Column::new("AdjFactor".into(), af),
                Column::new("AdjO".into(), ao),
                Column::new("AdjH".into(), ah),
                Column::new("AdjL".into(), al),
                Column::new("AdjC".into(), ac),
                Column::new("AdjVo".into(), adjvo),
            ])?
        }
        _ => {
            // synthetic_truth
            let (mut date, mut code, mut alpha, mut next) = (vec![], vec![], vec![], vec![]);
            let mut leader: Vec<Option<&str>> = vec![];
            for (d, t) in idx {
                for (i, sk) in m.stocks.iter().enumerate() {
                    if sk.listed(*t) {
                        date.push(*d);
                        code.push(sk.code.as_str());
                        alpha.push(m.day(*t)[i].alpha as f64);
                        next.push(m.day(*t)[i].alpha_next as f64);
                        leader.push(sk.leader.map(|j| m.stocks[j].code.as_str()));
                    }
                }
            }
            DataFrame::new_infer_height(vec![
                days_col(&date),
                Column::new("Code".into(), code),
                Column::new("planted".into(), alpha),
                Column::new("planted_next".into(), next),
                // The planted lead-lag link: the stock whose return today moves this
                // one's tomorrow (null for a stock without a leader).
                Column::new("leader".into(), leader),
            ])?
        }
    })
}
