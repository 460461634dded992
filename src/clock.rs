//! The clock, in one place below everything that reads the time. `LAKEBUILD_NOW`
//! (YYYY-MM-DD, taken as that day's midnight UTC, or RFC 3339) injects "now" for tests,
//! back-fills and reproducible runs; without it the real time is used.

use crate::core::error::UsageError;
use anyhow::Result;
use chrono::{DateTime, FixedOffset, NaiveDate, Utc};

/// What `LAKEBUILD_NOW` says, if it is set.
enum Injected {
    Day(NaiveDate),
    Instant(DateTime<FixedOffset>),
}

fn injected() -> Result<Option<Injected>> {
    match std::env::var("LAKEBUILD_NOW") {
        Ok(s) if !s.is_empty() => {
            if let Ok(d) = NaiveDate::parse_from_str(&s, "%Y-%m-%d") {
                return Ok(Some(Injected::Day(d)));
            }
            DateTime::parse_from_rfc3339(&s)
                .map(|t| Some(Injected::Instant(t)))
                .map_err(|_| {
                    UsageError(format!(
                        "LAKEBUILD_NOW='{s}' is neither YYYY-MM-DD nor RFC 3339"
                    ))
                    .into()
                })
        }
        _ => Ok(None),
    }
}

/// The injectable clock as an instant.
pub fn now_utc() -> Result<DateTime<Utc>> {
    Ok(match injected()? {
        Some(Injected::Instant(t)) => t.with_timezone(&Utc),
        Some(Injected::Day(d)) => d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc(),
        None => Utc::now(),
    })
}

/// [`now_utc`] where an invalid `LAKEBUILD_NOW` was already reported (the CLI checks it
/// before any work): falls back to the real time.
pub fn now() -> DateTime<Utc> {
    now_utc().unwrap_or_else(|_| Utc::now())
}

/// The injectable clock as a date in `zone` (the project's `timezone`; `None`: the
/// machine's local zone): the day of `LAKEBUILD_NOW` as written when it is a date, the
/// date of its instant in `zone` (or in its own offset, without a zone), else today's.
pub fn today_in(zone: Option<chrono_tz::Tz>) -> Result<NaiveDate> {
    Ok(match (injected()?, zone) {
        (Some(Injected::Day(d)), _) => d,
        (Some(Injected::Instant(t)), Some(z)) => t.with_timezone(&z).date_naive(),
        (Some(Injected::Instant(t)), None) => t.date_naive(),
        (None, Some(z)) => Utc::now().with_timezone(&z).date_naive(),
        (None, None) => chrono::Local::now().date_naive(),
    })
}

/// Milliseconds since the Unix epoch (real time: durations and file ages).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A fraction in [0, 1) that varies from call to call, to spread retries (not random
/// enough for anything else).
pub fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (nanos % 1000) as f64 / 1000.0
}
