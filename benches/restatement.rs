//! A split on a full-scale J-Quants lake (issue 3). Run with:
//!
//!     cargo bench --bench restatement
//!     LAKEBUILD_BENCH_STOCKS=300 LAKEBUILD_BENCH_YEARS=3 cargo bench --bench restatement
//!
//! Writes one `raw_stock_data` partition per day of the synthetic market (default 4,000
//! stocks x 10 years) to a temporary folder, serves the API on 127.0.0.1, and then times
//! what a split of one code costs the J-Quants source: finding the code's published
//! history, re-fetching it, patching every day it changed (`market::splits::restate`), and
//! the engine's canonical hashing and writing of those days. The baseline, measured in the
//! same run, is an ordinary daily fetch: one day's bars fetched, parsed, hashed, written.

mod common;
use chrono::NaiveDate;
use common::{env_or, generate};
use lakebuild::core::partition::PartitionId;
use lakebuild::jp_equity::market::bars::{self, Bar, NUMBERS};
use lakebuild::jp_equity::market::jquants::{Client, ClientConfig};
use lakebuild::lake::content_hash::{canonical_order, hash_sorted};
use lakebuild::lake::parquet;
use polars::prelude::*;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

type R<T = ()> = Result<T, Box<dyn std::error::Error>>;

fn json(b: &Bar) -> serde_json::Value {
    let mut o = serde_json::Map::new();
    o.insert("Date".into(), b.date.to_string().into());
    o.insert("Code".into(), b.code.clone().into());
    for (k, f) in NUMBERS.iter().enumerate() {
        o.insert((*f).into(), b.numbers[k].into());
    }
    o.insert("UL".into(), if b.ul { "1" } else { "0" }.into());
    o.insert("LL".into(), if b.ll { "1" } else { "0" }.into());
    o.into()
}

/// Serves prepared bodies by the value of the `code` or `date` query parameter.
fn serve(bodies: HashMap<String, String>) -> R<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/v2", listener.local_addr()?);
    let bodies = Arc::new(bodies);
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let bodies = bodies.clone();
            std::thread::spawn(move || -> std::io::Result<()> {
                let mut reader = BufReader::new(conn.try_clone()?);
                let mut request = String::new();
                reader.read_line(&mut request)?;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line)? == 0 || line == "\r\n" {
                        break;
                    }
                }
                let target = request.split_whitespace().nth(1).unwrap_or("");
                let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
                let wanted = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("code=").or(kv.strip_prefix("date=")))
                    .unwrap_or("");
                let body = bodies
                    .get(wanted)
                    .cloned()
                    .unwrap_or_else(|| r#"{"data": []}"#.into());
                write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )?;
                conn.flush()
            });
        }
    });
    Ok(url)
}

/// Canonical hash and parquet write of each day of `df`, as the engine publishes them.
fn publish(df: &DataFrame, dir: &std::path::Path) -> R<(usize, u64)> {
    let keys = vec!["Code".to_string(), "Date".to_string()];
    let mut bytes = 0;
    let parts = df.partition_by_stable(["Date"], true)?;
    for (i, part) in parts.iter().enumerate() {
        let mut sorted = canonical_order(part, &keys)?;
        hash_sorted(&sorted)?;
        bytes += parquet::write(&mut sorted, &dir.join(format!("out-{i}.parquet")))?;
    }
    Ok((parts.len(), bytes))
}

fn main() -> R {
    let stocks = env_or("LAKEBUILD_BENCH_STOCKS", 4000);
    let years = env_or("LAKEBUILD_BENCH_YEARS", 10) as i32;
    let (m, _) = generate(stocks, years);
    let last = m.simulated() - 1;
    let days: Vec<(NaiveDate, usize)> = m.days[..=last]
        .iter()
        .enumerate()
        .map(|(t, d)| (*d, t))
        .collect();
    let tmp = tempfile::tempdir()?;
    let lake = tmp.path().join("raw_stock_data");
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out)?;

    // The published lake: one file per day. The split code: the first listed on day one.
    let t = Instant::now();
    let mut published: Vec<(PartitionId, PathBuf)> = Vec::new();
    let mut code = String::new();
    let mut history: Vec<Bar> = Vec::new();
    let mut last_day: Vec<Bar> = Vec::new();
    let mut lake_bytes = 0u64;
    for (i, (d, t)) in days.iter().enumerate() {
        let mut df =
            lakebuild::jp_equity::ops::synthetic_market::frame(&m, "raw_stock_data", &[(*d, *t)])?;
        if code.is_empty() {
            code = df
                .column("Code")?
                .str()?
                .get(0)
                .unwrap_or_default()
                .to_string();
        }
        let mine = df
            .clone()
            .lazy()
            .filter(col("Code").eq(lit(code.as_str())))
            .collect()?;
        history.extend(bars::from_frame(&mine)?);
        if i + 1 == days.len() {
            last_day = bars::from_frame(&df)?;
        }
        let path = lake.join(format!("part-{d}.parquet"));
        lake_bytes += parquet::write(&mut df, &path)?;
        published.push((PartitionId::Day(*d), path));
    }
    println!(
        "lake: {stocks} stocks x {} days, {:.0} MiB, written in {:.1} s; split code {code} has {} published days",
        days.len(),
        lake_bytes as f64 / (1 << 20) as f64,
        t.elapsed().as_secs_f64(),
        history.len()
    );

    // J-Quants after a 1:2 split effective the day after the lake's last day.
    let split_day = *m
        .days
        .get(last + 1)
        .ok_or("the calendar ends with the lake")?;
    let mut bodies = HashMap::new();
    let halved: Vec<serde_json::Value> = history
        .iter()
        .map(|b| {
            let mut b = b.clone();
            for k in 7..11 {
                b.numbers[k] = b.numbers[k].map(|x| x * 0.5);
            }
            b.numbers[11] = b.numbers[11].map(|x| x * 2.0);
            json(&b)
        })
        .collect();
    bodies.insert(
        code.clone(),
        serde_json::json!({ "data": halved }).to_string(),
    );
    let last_date = days[days.len() - 1].0.to_string();
    let day_rows: Vec<serde_json::Value> = last_day.iter().map(json).collect();
    bodies.insert(
        last_date.clone(),
        serde_json::json!({ "data": day_rows }).to_string(),
    );
    let url = serve(bodies)?;
    let cfg = ClientConfig {
        base_url: url,
        per_minute: 100_000,
        ..Default::default()
    };
    let client = Client::new(cfg, "bench-key".into());

    // Baseline: one ordinary day, fetched, parsed, hashed and written.
    let t = Instant::now();
    let rows = client.get_all(
        "/equities/bars/daily",
        &[("date", last_date.clone())],
        "data",
    )?;
    let parsed: Vec<Bar> = rows
        .iter()
        .map(|r| bars::parse(r, "bench"))
        .collect::<anyhow::Result<_>>()?;
    let (n, _) = publish(&bars::to_frame(&parsed)?, &out)?;
    let baseline = t.elapsed().as_secs_f64();
    println!(
        "baseline, one new day ({} rows, {n} partition): {:.3} s",
        parsed.len(),
        baseline
    );

    // The split: the new day carries AdjFactor 0.5 for the code.
    let mut fresh = history[history.len() - 1].clone();
    fresh.date = split_day;
    fresh.numbers[6] = Some(0.5);
    let t = Instant::now();
    let restated =
        lakebuild::jp_equity::market::splits::restate(&client, &[split_day], &[fresh], &published)?
            .ok_or("the split restated nothing")?;
    let detect = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let (n, bytes) = publish(&restated.rows, &out)?;
    let write = t.elapsed().as_secs_f64();
    println!(
        "split of {code}: restate (find its history in {} files, re-fetch {} days, patch) {:.2} s; \
         hash + write of the {n} restated partitions ({} rows, {:.0} MiB) {:.2} s; \
         total {:.2} s = {:.0}x the one-day baseline; peak RSS {:.0} MiB",
        published.len(),
        history.len(),
        detect,
        restated.rows.height(),
        bytes as f64 / (1 << 20) as f64,
        write,
        detect + write,
        (detect + write) / baseline,
        lakebuild::engine::resources::peak_memory_bytes() as f64 / (1 << 20) as f64
    );
    Ok(())
}
