//! The J-Quants API v2 client: `x-api-key` authentication (the key comes from
//! `JQUANTS_API_KEY` and never appears in logs, errors, the lake or the history), paging
//! on `pagination_key` (a repeated key or a runaway page count is an error), a client-side
//! rate limiter sized by plan, and retries on 429 (honouring `Retry-After`), 5xx, timeouts
//! and dropped connections, with exponential backoff and jitter. A 403 is a clear,
//! permanent error naming the endpoint and query.

use crate::core::error::{OpError, Transience};
use crate::core::rule::{Backoff, RetryPolicy};
use anyhow::Result;
use chrono::NaiveDate;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub const DEFAULT_BASE_URL: &str = "https://api.jquants.com/v2";
pub const KEY_ENV: &str = "JQUANTS_API_KEY";

/// Requests per minute allowed by each plan.
pub fn plan_rate(plan: &str) -> Option<u32> {
    Some(match plan {
        "free" => 5,
        "light" => 60,
        "standard" => 120,
        "premium" => 500,
        _ => return None,
    })
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub base_url: String,
    pub per_minute: u32,
    pub timeout: Duration,
    pub attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub max_pages: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            base_url: DEFAULT_BASE_URL.into(),
            per_minute: 60,
            timeout: Duration::from_secs(30),
            attempts: 6,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            max_pages: 1000,
        }
    }
}

pub struct Client {
    cfg: ClientConfig,
    key: String,
    agent: ureq::Agent,
}

/// The next free request slot per API root, shared by every client of the process, so
/// that parallel steps (and a source's fetch and its history re-fetch) together keep to
/// the plan's rate.
fn next_slots() -> &'static Mutex<HashMap<String, Instant>> {
    static SLOTS: OnceLock<Mutex<HashMap<String, Instant>>> = OnceLock::new();
    SLOTS.get_or_init(|| Mutex::new(HashMap::new()))
}

fn transient(msg: String) -> anyhow::Error {
    OpError {
        transience: Transience::Transient,
        message: msg,
    }
    .into()
}

fn permanent(msg: String) -> anyhow::Error {
    OpError {
        transience: Transience::Permanent,
        message: msg,
    }
    .into()
}

/// Outcome of one HTTP attempt.
enum Attempt {
    Done(Value),
    Retry {
        why: String,
        after: Option<Duration>,
    },
}

impl Client {
    /// A client with the key from the environment.
    pub fn from_env(cfg: ClientConfig) -> Result<Client> {
        let key = std::env::var(KEY_ENV).unwrap_or_default();
        if key.trim().is_empty() {
            return Err(permanent(format!(
                "{KEY_ENV} is not set: export your J-Quants API key, or use op = \"synthetic_market\""
            )));
        }
        Ok(Client::new(cfg, key))
    }

    pub fn new(cfg: ClientConfig, key: String) -> Client {
        let agent = ureq::AgentBuilder::new().timeout(cfg.timeout).build();
        Client { cfg, key, agent }
    }

    /// Waits for the next request slot of the plan's rate.
    fn throttle(&self) {
        let gap = Duration::from_secs_f64(60.0 / self.cfg.per_minute.max(1) as f64);
        let wait = {
            let Ok(mut slots) = next_slots().lock() else {
                return;
            };
            let now = Instant::now();
            let next = slots.entry(self.cfg.base_url.clone()).or_insert(now);
            let at = (*next).max(now);
            *next = at + gap;
            at.saturating_duration_since(now)
        };
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }

    fn describe(endpoint: &str, query: &[(String, String)]) -> String {
        let q: Vec<String> = query
            .iter()
            .filter(|(k, _)| k != "pagination_key")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("{endpoint}?{}", q.join("&"))
    }

    fn attempt(&self, endpoint: &str, query: &[(String, String)]) -> Result<Attempt> {
        self.throttle();
        let url = format!("{}{}", self.cfg.base_url.trim_end_matches('/'), endpoint);
        let mut req = self.agent.get(&url).set("x-api-key", &self.key);
        for (k, v) in query {
            req = req.query(k, v);
        }
        let what = Self::describe(endpoint, query);
        match req.call() {
            Ok(resp) => match resp.into_string() {
                Ok(body) => match serde_json::from_str::<Value>(&body) {
                    Ok(v) if v.is_object() => Ok(Attempt::Done(v)),
                    Ok(_) | Err(_) => Ok(Attempt::Retry {
                        why: format!("{what}: the response is not a JSON object"),
                        after: None,
                    }),
                },
                // The connection dropped mid-body, or the body timed out.
                Err(e) => Ok(Attempt::Retry {
                    why: format!("{what}: the response broke off ({e})"),
                    after: None,
                }),
            },
            Err(ureq::Error::Status(code, resp)) => {
                let retry_after = resp
                    .header("Retry-After")
                    .and_then(|s| s.trim().parse::<f64>().ok())
                    .map(|s| Duration::from_secs_f64(s.clamp(0.0, 3600.0)));
                match code {
                    429 => Ok(Attempt::Retry {
                        why: format!("{what}: rate limited (429)"),
                        after: retry_after,
                    }),
                    500..=599 => Ok(Attempt::Retry {
                        why: format!("{what}: server error {code}"),
                        after: retry_after,
                    }),
                    403 => Err(permanent(format!(
                        "J-Quants refused {what} (403): the API key is wrong, or the data is outside your plan (check the plan's date range)"
                    ))),
                    400 => Err(permanent(format!(
                        "J-Quants rejected {what} as a bad request (400)"
                    ))),
                    _ => Err(permanent(format!("J-Quants answered {code} to {what}"))),
                }
            }
            Err(ureq::Error::Transport(t)) => {
                // Never print the transport error's URL query with secrets: the key is in a
                // header, and the message is ureq's own; still, scrub it.
                let msg = t.to_string().replace(&self.key, "<redacted>");
                Ok(Attempt::Retry {
                    why: format!("{what}: {msg}"),
                    after: None,
                })
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        RetryPolicy {
            attempts: self.cfg.attempts,
            backoff: Backoff::Exponential,
            initial: self.cfg.initial_backoff,
            max: self.cfg.max_backoff,
            jitter: true,
        }
        .delay(attempt as usize + 1, crate::clock::jitter())
    }

    /// One page, with retries.
    fn get_page(&self, endpoint: &str, query: &[(String, String)]) -> Result<Value> {
        let mut last = String::new();
        for attempt in 0..self.cfg.attempts.max(1) {
            match self.attempt(endpoint, query)? {
                Attempt::Done(v) => return Ok(v),
                Attempt::Retry { why, after } => {
                    tracing::warn!("J-Quants: {why}; retrying");
                    last = why;
                    if attempt + 1 < self.cfg.attempts {
                        std::thread::sleep(after.unwrap_or_else(|| self.backoff(attempt)));
                    }
                }
            }
        }
        Err(transient(format!(
            "J-Quants: gave up after {} attempts: {last}",
            self.cfg.attempts
        )))
    }

    /// Every row of a paged query (the rows under `data`, or under `field`).
    pub fn get_all(
        &self,
        endpoint: &str,
        query: &[(&str, String)],
        field: &str,
    ) -> Result<Vec<Value>> {
        let mut q: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let mut rows = Vec::new();
        let mut seen_keys = std::collections::HashSet::new();
        for page in 0.. {
            if page >= self.cfg.max_pages {
                return Err(permanent(format!(
                    "J-Quants {}: more than {} pages: refusing to page on",
                    Self::describe(endpoint, &q),
                    self.cfg.max_pages
                )));
            }
            let v = self.get_page(endpoint, &q)?;
            let Some(data) = v.get(field).and_then(|d| d.as_array()) else {
                return Err(transient(format!(
                    "J-Quants {}: the response has no '{field}' list",
                    Self::describe(endpoint, &q)
                )));
            };
            rows.extend(data.iter().cloned());
            match v.get("pagination_key").and_then(|k| k.as_str()) {
                Some(k) if !k.is_empty() => {
                    if !seen_keys.insert(k.to_string()) {
                        return Err(permanent(format!(
                            "J-Quants {}: pagination_key repeated: the server is looping",
                            Self::describe(endpoint, &q)
                        )));
                    }
                    q.retain(|(name, _)| name != "pagination_key");
                    q.push(("pagination_key".into(), k.to_string()));
                }
                _ => break,
            }
        }
        Ok(rows)
    }
}

/// A number from a J-Quants field: numbers, numeric strings; "", "-" and null are None.
pub fn number(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => {
            let s = s.trim();
            if s.is_empty() || s == "-" {
                None
            } else {
                s.parse().ok()
            }
        }
        _ => None,
    }
}

/// A string field (codes stay strings: "131A0" must round-trip).
pub fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "1".into() } else { "0".into() }),
        _ => None,
    }
}

/// A permanent error about the data a query returned.
pub fn bad(msg: String) -> anyhow::Error {
    permanent(msg)
}

/// A field that must be present and not null.
pub fn require<'a>(row: &'a Value, field: &str, what: &str) -> Result<&'a Value> {
    row.get(field).filter(|v| !v.is_null()).ok_or_else(|| {
        bad(format!(
            "J-Quants {what}: a row has no '{field}' field; nothing was published for it"
        ))
    })
}

/// The row's `Date` ("YYYY-MM-DD").
pub fn row_date(row: &Value, what: &str) -> Result<NaiveDate> {
    let s = text(Some(require(row, "Date", what)?)).unwrap_or_default();
    NaiveDate::parse_from_str(&s, "%Y-%m-%d")
        .map_err(|_| bad(format!("J-Quants {what}: Date '{s}' is not YYYY-MM-DD")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sentinels_and_numbers() {
        assert_eq!(number(Some(&json!("-"))), None);
        assert_eq!(number(Some(&json!(""))), None);
        assert_eq!(number(Some(&json!(null))), None);
        assert_eq!(number(Some(&json!("12.5"))), Some(12.5));
        assert_eq!(number(Some(&json!(3))), Some(3.0));
        assert_eq!(text(Some(&json!("131A0"))).as_deref(), Some("131A0"));
    }

    #[test]
    fn clients_of_one_api_root_share_the_plans_rate() {
        // 600 a minute: one request slot every 100 ms, whichever client asks.
        let cfg = ClientConfig {
            base_url: "http://127.0.0.1:9/shared-rate-test".into(),
            per_minute: 600,
            ..Default::default()
        };
        let (a, b) = (
            Client::new(cfg.clone(), "k".into()),
            Client::new(cfg, "k".into()),
        );
        let t0 = Instant::now();
        for c in [&a, &b, &a, &b] {
            c.throttle();
        }
        // Four slots: the last one starts at least 300 ms after the first.
        assert!(
            t0.elapsed() >= Duration::from_millis(300),
            "{:?}",
            t0.elapsed()
        );
    }

    #[test]
    fn plans() {
        assert_eq!(plan_rate("light"), Some(60));
        assert_eq!(plan_rate("gold"), None);
    }
}
