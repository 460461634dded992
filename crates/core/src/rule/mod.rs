//! Rule files: one `rules/<asset>.toml` per asset, parsed with line numbers and validated
//! against the catalog of ops and calendars it is handed. Every error names the file and line and says what to change.

use crate::calendar::DayCalendar;
use crate::partition::Coverage;
use chrono::NaiveDate;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod checks;
mod inputs;
mod params;
mod parse;
mod policies;
mod raw;
pub mod tune;

pub use parse::parse_rule;

/// A validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub asset: String,
    pub file: PathBuf,
    pub op: String,
    pub daily: bool,
    pub inputs: Vec<Input>,
    /// Canonicalisable params, as a JSON object.
    pub params: Value,
    /// Globs (relative to the project root) of files hashed into the key.
    pub sources: Vec<String>,
    pub checks: Vec<Check>,
    pub retry: RetryPolicy,
    pub sla: Option<Sla>,
    /// The experiment tracker's names for this asset (`[mlflow]`); not part of the key.
    pub tracking: Option<Tracking>,
    /// How versions of this asset are promoted (`[promotion]`); not part of the key.
    pub promotion: Option<Promotion>,
    /// The search space `lakebuild tune` draws params from (`[tune]`); not part of the key.
    pub tune: Option<tune::TuneSpace>,
    pub dates: Option<DateSpec>,
    /// Columns the content hash sorts rows by; empty = all columns.
    pub key_columns: Vec<String>,
    /// The date column of a daily asset.
    pub date_column: String,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    pub asset: String,
    pub coverage: Coverage,
    /// Whether the rule wrote `window = [...]` (an error on an unpartitioned input).
    pub window_given: bool,
    /// The part of the window that must be complete for the output to have a partition
    /// (no partition of it before the input's first one is needed): `full = true`, the
    /// whole window, e.g. features that need a full year of history; `full = [a, b]`,
    /// only that part, the rest being read where it exists (a long history that is
    /// shorter at the data's start, as a model saw it in training). `None` (`full =
    /// false`, or no window): no requirement.
    pub full: Option<(i64, i64)>,
    /// `asset@alias`: read the version the alias points to, not the current one.
    pub alias: Option<String>,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    NotNull {
        columns: Vec<String>,
    },
    Unique {
        columns: Vec<String>,
    },
    /// Values of every listed column (globs allowed) within [min, max]; NaN fails.
    Range {
        columns: Vec<String>,
        min: Option<f64>,
        max: Option<f64>,
    },
    /// No NaN or ±infinity in the listed float columns (all float columns when empty).
    Finite {
        columns: Vec<String>,
    },
    /// On every day with rows, no listed column (all when empty) is entirely null.
    NotAllNull {
        columns: Vec<String>,
    },
    /// Every row's date (`column`, default the date column) is a day of `calendar`.
    OnCalendar {
        column: String,
        calendar: DayCalendar,
    },
    /// On every day, the share of null values over the listed columns is at most `max`.
    NullRate {
        columns: Vec<String>,
        max: f64,
    },
    /// Each day's row count within ±`max_change` (relative) of the previous day's.
    RowCountChange {
        max_change: f64,
    },
    RowCount {
        min: Option<f64>,
        max: Option<f64>,
    },
    Sql {
        query: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Fails the step; nothing is published.
    Error,
    /// Recorded only.
    Warn,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub name: String,
    pub kind: CheckKind,
    pub severity: Severity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    Exponential,
    Linear,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub backoff: Backoff,
    pub initial: Duration,
    pub max: Duration,
    pub jitter: bool,
}

impl RetryPolicy {
    /// The wait before retry `attempt` (1 = the first retry): `initial` × 2^(attempt−1)
    /// (exponential) or × attempt (linear), at most `max`; with jitter, scaled by
    /// 0.5 + 0.5·`jitter`, a fraction in [0, 1) the caller draws (`crate::clock::jitter`).
    /// The one backoff of lakebuild: step retries and the J-Quants client use it.
    pub fn delay(&self, attempt: usize, jitter: f64) -> Duration {
        let base = match self.backoff {
            Backoff::Exponential => self
                .initial
                .saturating_mul(1u32 << (attempt.saturating_sub(1)).min(20)),
            Backoff::Linear => self.initial.saturating_mul(attempt as u32),
        };
        let d = base.min(self.max);
        if self.jitter {
            d.mul_f64(0.5 + jitter.clamp(0.0, 1.0) * 0.5)
        } else {
            d
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 1,
            backoff: Backoff::Exponential,
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            jitter: true,
        }
    }
}

/// A generated daily domain: `dates = { from = "2024-01-01", to = "today", calendar = "jpx" }`.
#[derive(Debug, Clone, PartialEq)]
pub struct DateSpec {
    pub from: NaiveDate,
    /// `None` means "today" (the injectable clock).
    pub to: Option<NaiveDate>,
    pub calendar: DayCalendar,
}

/// A rule's service-level agreement (`[sla]`), checked by `lakebuild stats`, after builds
/// and on every tick; a breach is alerted.
#[derive(Debug, Clone, PartialEq)]
pub struct Sla {
    /// A run of the asset must not take longer.
    pub max_duration: Option<Duration>,
    /// Today's partition must exist by this local time (e.g. "07:30 Asia/Tokyo").
    pub deadline: Option<(chrono::NaiveTime, chrono_tz::Tz)>,
    /// Over the last `window` runs.
    pub min_success_rate: Option<f64>,
    pub window: usize,
}

/// Where an experiment tracker files a rule's materializations (`[mlflow]`): the
/// experiment its runs go to and the registered model its versions join. Either may be
/// left out (the tracker then uses the asset's name).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tracking {
    pub experiment: Option<String>,
    pub registered_model: Option<String>,
}

/// A champion/challenger promotion policy (`[promotion]` on a rule whose versions are
/// models): which alias it manages, which alias a new version gets, the assets that
/// score each side, and the sequential test that decides. Not part of the key.
#[derive(Debug, Clone, PartialEq)]
pub struct Promotion {
    /// The alias production reads (default `production`).
    pub alias: String,
    /// The alias a new version is put on trial under (default `challenger`).
    pub challenger: String,
    /// Whether a new version becomes the challenger by itself (default true).
    pub auto_challenger: bool,
    /// The assets holding the champion's and the challenger's scored outputs.
    pub champion_scores: String,
    pub challenger_scores: String,
    /// What they are scored against (default `labels`).
    pub labels: String,
    /// The horizon whose daily rank correlation decides, e.g. `5d`.
    pub horizon: String,
    /// Fewest shared out-of-sample days before any decision (default 60).
    pub min_days: usize,
    /// A challenger not promoted after this many shared days is retired (default 250).
    pub max_days: usize,
    /// The false-promotion rate the policy allows over all its looks (default 0.05).
    pub alpha: f64,
    /// The improvement the sequential test is tuned to find (mixture scale, default 0.01).
    pub effect: f64,
    /// The mean improvement a promotion needs besides significance (default 0).
    pub min_improvement: f64,
    /// Roll back to the previous champion when decay fires and it scores better.
    pub rollback: bool,
    /// The recent days a rollback compares on (default 60).
    pub rollback_window: usize,
}

/// Parses "07:30 Asia/Tokyo" (the zone defaults to UTC).
pub fn parse_deadline(s: &str) -> Option<(chrono::NaiveTime, chrono_tz::Tz)> {
    let mut it = s.split_whitespace();
    let time = chrono::NaiveTime::parse_from_str(it.next()?, "%H:%M").ok()?;
    let tz = match it.next() {
        Some(z) => z.parse().ok()?,
        None => chrono_tz::UTC,
    };
    it.next().is_none().then_some((time, tz))
}

/// A valid alias name: lowercase letters, digits, `_` and `-`, starting with a letter.
pub fn valid_alias_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Whether `name` is a valid asset name: `[a-z][a-z0-9_]*`.
pub fn valid_asset_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

/// Whether a source glob reaches outside the project root: an absolute path, a drive
/// or home prefix, or a `..` component.
pub fn outside_project(glob: &str) -> bool {
    let g = glob.replace('\\', "/");
    g.starts_with('/')
        || g.starts_with('~')
        || g.chars().nth(1) == Some(':')
        || g.split('/').any(|c| c == "..")
}

/// 1-based line of a byte offset.
pub fn line_of(src: &str, offset: usize) -> usize {
    src[..offset.min(src.len())].matches('\n').count() + 1
}

/// Collects located errors for one file.
pub(crate) struct Errors<'a> {
    file: &'a Path,
    src: &'a str,
    list: Vec<String>,
}

impl Errors<'_> {
    fn at(&mut self, offset: usize, msg: impl AsRef<str>) {
        let line = line_of(self.src, offset);
        self.list.push(format!(
            "{}:{}: {}",
            self.file.display(),
            line,
            msg.as_ref()
        ));
    }
}

/// Parses `duration` strings such as "500ms", "5s", "2m", "1h", "7d".
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => return None,
    };
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

fn toml_to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests;
