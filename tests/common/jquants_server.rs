//! A J-Quants-compatible test server on 127.0.0.1: v2 JSON shapes with paging, an API key
//! check, a request log, and fault injection (429 with Retry-After, 5xx, a connection
//! dropped mid-body, a slow response, malformed JSON, a row missing a field, a repeated
//! pagination_key, 403). Its market can change like the real one: a code listed later than
//! the others, a split (AdjFactor on the day, every earlier adjusted price re-adjusted), a
//! silent revision of a code's adjusted history. Bars can be asked for by `date` or by
//! `code` with `from`/`to`.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub enum Fault {
    Status(u16, Option<u32>),
    DropMidBody,
    Slow(Duration),
    MalformedJson,
    MissingField(&'static str),
    RepeatPaginationKey,
}

#[derive(Default)]
struct State {
    /// (path prefix, date or code queried or "" for any, fault), applied once each, in order.
    faults: VecDeque<(String, String, Fault)>,
    log: Vec<String>,
    market: Market,
}

/// How the served market differs from the plain one.
#[derive(Default, Clone)]
struct Market {
    /// Codes listed later than the others: code -> first date (YYYY-MM-DD).
    listed_from: HashMap<String, String>,
    /// Splits: (code, date it takes effect, AdjFactor).
    splits: Vec<(String, String, f64)>,
    /// Codes whose whole adjusted history is multiplied by a factor (no AdjFactor).
    revised: HashMap<String, f64>,
}

pub struct Server {
    pub url: String,
    pub key: String,
    state: Arc<Mutex<State>>,
}

pub const CODES: &[&str] = &["13010", "72030", "131A0", "86970", "99840"];

impl Server {
    /// Starts a server that pages `page_size` rows at a time.
    pub fn start(key: &str, page_size: usize) -> std::io::Result<Server> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}/v2", listener.local_addr()?);
        let state = Arc::new(Mutex::new(State::default()));
        let (s2, k2) = (state.clone(), key.to_string());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (s3, k3) = (s2.clone(), k2.clone());
                std::thread::spawn(move || {
                    let _ = handle(conn, &s3, &k3, page_size);
                });
            }
        });
        Ok(Server {
            url,
            key: key.to_string(),
            state,
        })
    }

    pub fn inject(&self, path: &str, date: &str, fault: Fault) {
        if let Ok(mut s) = self.state.lock() {
            s.faults
                .push_back((path.to_string(), date.to_string(), fault));
        }
    }

    /// Requests served so far, as "path?query".
    pub fn log(&self) -> Vec<String> {
        self.state.lock().map(|s| s.log.clone()).unwrap_or_default()
    }

    /// `code` trades only from `date` on.
    pub fn list_from(&self, code: &str, date: &str) {
        if let Ok(mut s) = self.state.lock() {
            s.market.listed_from.insert(code.into(), date.into());
        }
    }

    /// A split of `code` taking effect on `date`: its raw prices from then on are
    /// multiplied by `factor`, and its adjusted prices before then too.
    pub fn split(&self, code: &str, date: &str, factor: f64) {
        if let Ok(mut s) = self.state.lock() {
            s.market.splits.push((code.into(), date.into(), factor));
        }
    }

    /// J-Quants revises `code`'s adjusted history (every adjusted price times `factor`)
    /// without an AdjFactor.
    pub fn revise(&self, code: &str, factor: f64) {
        if let Ok(mut s) = self.state.lock() {
            s.market.revised.insert(code.into(), factor);
        }
    }

    pub fn clear_log(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.log.clear();
        }
    }
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
}

/// A deterministic day of bars: prices vary by code and day; one code has sentinels.
fn bars(date: &str, market: &Market) -> Vec<serde_json::Value> {
    let day: u32 = date.replace('-', "").parse::<u32>().unwrap_or(0) % 97;
    CODES
        .iter()
        .enumerate()
        .filter(|(_, code)| {
            market
                .listed_from
                .get(**code)
                .is_none_or(|from| from.as_str() <= date)
        })
        .map(|(i, code)| {
            let c = 1000.0 + (i as f64) * 250.0 + day as f64;
            if *code == "86970" {
                // A no-trade day: nulls and sentinel strings.
                return serde_json::json!({"Date": date, "Code": code, "O": null, "H": "", "L": "-", "C": null,
                    "UL": "0", "LL": "0", "Vo": 0, "Va": 0, "AdjFactor": 1, "AdjO": null, "AdjH": null,
                    "AdjL": null, "AdjC": null, "AdjVo": 0});
            }
            // Splits up to today scale the raw bar; later ones only the adjusted one.
            let (mut raw, mut later, mut factor) = (1.0, 1.0, 1.0);
            for (_, d, f) in market.splits.iter().filter(|(s, _, _)| s == code) {
                if d.as_str() <= date {
                    raw *= f;
                } else {
                    later *= f;
                }
                if d == date {
                    factor = *f;
                }
            }
            let adj = later * market.revised.get(*code).copied().unwrap_or(1.0);
            let p = |x: f64| x * raw;
            let vo = (1000 + i) as f64 / raw;
            serde_json::json!({"Date": date, "Code": code, "O": p(c - 5.0), "H": p(c + 10.0), "L": p(c - 10.0), "C": p(c),
                "UL": "0", "LL": "0", "Vo": vo, "Va": vo * p(c), "AdjFactor": factor,
                "AdjO": p(c - 5.0) * adj, "AdjH": p(c + 10.0) * adj, "AdjL": p(c - 10.0) * adj, "AdjC": p(c) * adj,
                "AdjVo": vo / later})
        })
        .collect()
}

/// A code's bars on every weekday from `from` to `to`.
fn history(code: &str, from: &str, to: &str, market: &Market) -> Vec<serde_json::Value> {
    let parse = |d: &str| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok();
    let (Some(mut d), Some(to)) = (parse(from), parse(to)) else {
        return vec![];
    };
    let mut out = Vec::new();
    while d <= to {
        use chrono::Datelike;
        if d.weekday().number_from_monday() <= 5 {
            let day = d.format("%Y-%m-%d").to_string();
            out.extend(bars(&day, market).into_iter().filter(|r| r["Code"] == code));
        }
        match d.succ_opt() {
            Some(next) => d = next,
            None => break,
        }
    }
    out
}

fn respond(conn: &mut TcpStream, status: &str, extra: &str, body: &str) -> std::io::Result<()> {
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
        body.len()
    )?;
    conn.flush()
}

fn handle(
    mut conn: TcpStream,
    state: &Arc<Mutex<State>>,
    key: &str,
    page_size: usize,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let mut api_key = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.trim().eq_ignore_ascii_case("x-api-key")
        {
            api_key = v.trim().to_string();
        }
    }
    let target = request.split_whitespace().nth(1).unwrap_or("/").to_string();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let path = path.strip_prefix("/v2").unwrap_or(path).to_string();
    let query = query.to_string();
    let date = query_param(&query, "date").unwrap_or("").to_string();
    let (fault, market) = {
        let mut s = state
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?;
        s.log.push(format!("{path}?{query}"));
        let pos = s.faults.iter().position(|(p, d, _)| {
            path.starts_with(p.as_str())
                && (d.is_empty() || *d == date || Some(d.as_str()) == query_param(&query, "code"))
        });
        let taken = pos.and_then(|i| s.faults.remove(i));
        // A looping server keeps looping.
        if let Some((p, d, Fault::RepeatPaginationKey)) = &taken {
            s.faults
                .push_front((p.clone(), d.clone(), Fault::RepeatPaginationKey));
        }
        (taken.map(|(_, _, f)| f), s.market.clone())
    };
    if api_key != key {
        return respond(
            &mut conn,
            "403 Forbidden",
            "",
            r#"{"message":"Invalid API key"}"#,
        );
    }
    let page: usize = query_param(&query, "pagination_key")
        .and_then(|k| k.strip_prefix('p'))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let mut rows: Vec<serde_json::Value> = match path.as_str() {
        "/equities/bars/daily" => match query_param(&query, "code") {
            Some(code) => history(
                code,
                query_param(&query, "from").unwrap_or(""),
                query_param(&query, "to").unwrap_or(""),
                &market,
            ),
            None => bars(&date, &market),
        },
        "/equities/master" => CODES
            .iter()
            .filter(|c| market.listed_from.get(**c).is_none_or(|from| from.as_str() <= date.as_str()))
            .map(|c| serde_json::json!({"Date": date, "Code": c, "CoName": format!("Co {c}"), "CoNameEn": format!("Co {c}"),
                "S17": "9", "S17Nm": "Electric Appliances & Precision Instruments", "S33": "3650", "S33Nm": "Electric Appliances",
                "ScaleCat": "TOPIX Mid400", "Mkt": "0111", "MktNm": "Prime"}))
            .collect(),
        _ => return respond(&mut conn, "404 Not Found", "", r#"{"message":"not found"}"#),
    };
    let mut next = if (page + 1) * page_size < rows.len() {
        Some(format!("p{}", page + 1))
    } else {
        None
    };
    let chunk: Vec<_> = rows
        .drain(..)
        .skip(page * page_size)
        .take(page_size)
        .collect();
    let mut chunk = chunk;
    match fault {
        Some(Fault::Status(code, retry_after)) => {
            let extra = retry_after
                .map(|s| format!("Retry-After: {s}\r\n"))
                .unwrap_or_default();
            let status = match code {
                429 => "429 Too Many Requests",
                403 => "403 Forbidden",
                503 => "503 Service Unavailable",
                _ => "500 Internal Server Error",
            };
            return respond(&mut conn, status, &extra, r#"{"message":"injected"}"#);
        }
        Some(Fault::DropMidBody) => {
            let body = serde_json::json!({"data": chunk, "pagination_key": next}).to_string();
            write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )?;
            conn.write_all(&body.as_bytes()[..body.len() / 2])?;
            conn.flush()?;
            return conn.shutdown(std::net::Shutdown::Both);
        }
        Some(Fault::Slow(d)) => std::thread::sleep(d),
        Some(Fault::MalformedJson) => {
            return respond(&mut conn, "200 OK", "", r#"{"data": [{"Date": "#);
        }
        Some(Fault::MissingField(f)) => {
            if let Some(obj) = chunk.first_mut().and_then(|r| r.as_object_mut()) {
                obj.remove(f);
            }
        }
        Some(Fault::RepeatPaginationKey) => next = Some("p1".to_string()),
        None => {}
    }
    let body = serde_json::json!({"data": chunk, "pagination_key": next}).to_string();
    respond(&mut conn, "200 OK", "", &body)
}
