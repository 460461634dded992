//! Rule files: one `rules/<asset>.toml` per asset, parsed with line numbers and validated
//! against the op registry. Every error names the file and line and says what to change.

use crate::ops::{self, ParamType};
use crate::partition::Coverage;
use crate::partition::Period;
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

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
    /// `full = true`: the output has a partition only where this input's window is
    /// complete (no partition before the input's first one is needed), e.g. features
    /// that need a full year of history.
    pub full: bool,
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

/// Which days of a generated range are partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayCalendar {
    All,
    Weekdays,
    /// Tokyo Stock Exchange trading days.
    Jpx,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    op: Spanned<String>,
    #[serde(default)]
    partitioned: Option<Spanned<String>>,
    #[serde(default)]
    inputs: Vec<Spanned<RawInput>>,
    #[serde(default)]
    params: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    sources: Vec<Spanned<String>>,
    #[serde(default)]
    checks: Vec<Spanned<RawCheck>>,
    #[serde(default)]
    retry: Option<Spanned<RawRetry>>,
    #[serde(default)]
    sla: Option<Spanned<RawSla>>,
    #[serde(default)]
    dates: Option<Spanned<RawDates>>,
    #[serde(default)]
    key_columns: Vec<String>,
    #[serde(default)]
    date_column: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    asset: Spanned<String>,
    #[serde(default)]
    window: Option<Spanned<Vec<i64>>>,
    #[serde(default)]
    as_of: Option<bool>,
    #[serde(default)]
    full: Option<bool>,
    #[serde(default)]
    period: Option<Spanned<String>>,
    #[serde(default)]
    lag: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    kind: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    columns: Option<Vec<String>>,
    #[serde(default)]
    column: Option<String>,
    #[serde(default)]
    min: Option<f64>,
    #[serde(default)]
    max: Option<f64>,
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    calendar: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSla {
    #[serde(default)]
    max_duration: Option<String>,
    #[serde(default)]
    deadline: Option<String>,
    #[serde(default)]
    min_success_rate: Option<f64>,
    #[serde(default)]
    window: Option<usize>,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    #[serde(default)]
    attempts: Option<u32>,
    #[serde(default)]
    backoff: Option<String>,
    #[serde(default)]
    initial: Option<String>,
    #[serde(default)]
    max: Option<String>,
    #[serde(default)]
    jitter: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDates {
    from: String,
    to: String,
    #[serde(default)]
    weekdays: Option<bool>,
    #[serde(default)]
    calendar: Option<String>,
}

/// Whether `name` is a valid asset name: `[a-z][a-z0-9_]*`.
/// `op = "market"`: the J-Quants source when `JQUANTS_API_KEY` is set, else the embedded
/// synthetic market. The rule's `[params]` hold what both share (`table`), and the
/// sub-tables `[params.jquants]` and `[params.synthetic]` each source's own settings; the
/// rule becomes a rule of the chosen op, so the op (and only the chosen settings) is in the
/// key, and switching sources rebuilds from the new one. The key itself never is.
pub const MARKET: &str = "market";

fn resolve_market(
    params: &mut BTreeMap<String, toml::Spanned<toml::Value>>,
    errs: &mut Errors,
) -> &'static str {
    let jquants = std::env::var("JQUANTS_API_KEY").is_ok_and(|k| !k.trim().is_empty());
    let (chosen, other) = if jquants {
        ("jquants", "synthetic")
    } else {
        ("synthetic", "jquants")
    };
    params.remove(other);
    if let Some(sub) = params.remove(chosen) {
        let span = sub.span();
        match sub.into_inner() {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    params.insert(k, toml::Spanned::new(span.clone(), v));
                }
            }
            _ => errs.at(
                span.start,
                format!("params.{chosen} must be a table: [params.{chosen}]"),
            ),
        }
    }
    if jquants {
        "jquants"
    } else {
        "synthetic_market"
    }
}

pub fn valid_asset_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

/// 1-based line of a byte offset.
pub(crate) fn line_of(src: &str, offset: usize) -> usize {
    src[..offset.min(src.len())].matches('\n').count() + 1
}

/// Collects located errors for one file.
struct Errors<'a> {
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

fn type_matches(ty: ParamType, v: &toml::Value) -> bool {
    match ty {
        ParamType::Str => v.is_str(),
        ParamType::Int => v.is_integer(),
        ParamType::Float => v.is_float() || v.is_integer(),
        ParamType::Bool => v.is_bool(),
        ParamType::StrList => v.as_array().is_some_and(|a| a.iter().all(|x| x.is_str())),
        ParamType::StrOrStrList => {
            v.is_str() || v.as_array().is_some_and(|a| a.iter().all(|x| x.is_str()))
        }
        ParamType::Table => v.is_table(),
        ParamType::Any => true,
    }
}

/// Parses and validates one rule file's text. `known_assets` lets inputs be checked;
/// `asset` comes from the file name.
pub fn parse_rule(
    file: &Path,
    src: &str,
    asset: &str,
    known_assets: &dyn Fn(&str) -> bool,
) -> Result<Rule, Vec<String>> {
    let mut errs = Errors {
        file,
        src,
        list: Vec::new(),
    };
    if !valid_asset_name(asset) {
        errs.list.push(format!(
            "{}: '{asset}' is not a valid asset name: rename the file to match [a-z][a-z0-9_]* (e.g. '{}.toml')",
            file.display(),
            asset.to_lowercase().replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        ));
    }
    let mut raw: RawRule = match toml::from_str(src) {
        Ok(r) => r,
        Err(e) => {
            let line = e.span().map(|s| line_of(src, s.start)).unwrap_or(1);
            let msg = e.message().trim().to_string();
            let hint = if msg.contains("unknown field") {
                " (allowed keys: op, partitioned, inputs, params, sources, checks, retry, sla, dates, key_columns, date_column, description)"
            } else {
                ""
            };
            errs.list
                .push(format!("{}:{}: {}{}", file.display(), line, msg, hint));
            return Err(errs.list);
        }
    };

    let mut op_name = raw.op.get_ref().clone();
    if op_name == MARKET {
        op_name = resolve_market(&mut raw.params, &mut errs).to_string();
    }
    let op = ops::find(&op_name);
    if op.is_none() {
        errs.at(
            raw.op.span().start,
            format!(
                "unknown op '{op_name}': use one of {}, or market (jquants with a key, else synthetic_market)",
                ops::names().join(", ")
            ),
        );
    }

    let daily = match &raw.partitioned {
        None => false,
        Some(p) if p.get_ref() == "daily" => true,
        Some(p) => {
            errs.at(
                p.span().start,
                format!(
                    "partitioned = \"{}\" is not supported: use \"daily\" or remove the key",
                    p.get_ref()
                ),
            );
            false
        }
    };

    // Inputs.
    let mut inputs = Vec::new();
    let mut seen = Vec::new();
    for inp in &raw.inputs {
        let at = inp.span().start;
        let line = line_of(src, at);
        let r = inp.get_ref();
        let (name, alias) = match r.asset.get_ref().split_once('@') {
            Some((a, alias)) => (a.to_string(), Some(alias.to_string())),
            None => (r.asset.get_ref().clone(), None),
        };
        if let Some(alias) = &alias
            && !crate::lake::aliases::valid_name(alias)
        {
            errs.at(
                r.asset.span().start,
                format!("input '{name}@{alias}': an alias is lowercase letters, digits, _ and -, e.g. {name}@production"),
            );
        }
        if name == asset {
            errs.at(
                r.asset.span().start,
                format!("asset '{asset}' lists itself as an input: remove it"),
            );
            continue;
        }
        if !known_assets(&name) {
            errs.at(
                r.asset.span().start,
                format!("unknown input asset '{name}': add rules/{name}.toml or fix the name"),
            );
        }
        if seen.contains(&name) {
            errs.at(
                at,
                format!("input '{name}' is listed twice: keep one entry"),
            );
        }
        seen.push(name.clone());
        let coverage = match (&r.window, r.as_of) {
            (Some(_), Some(true)) => {
                errs.at(
                    at,
                    format!("input '{name}': give either window or as_of, not both"),
                );
                Coverage::Whole
            }
            (Some(w), _) => {
                let v = w.get_ref();
                if v.len() != 2 || v[0] > v[1] {
                    errs.at(
                        w.span().start,
                        format!("input '{name}': window must be [start, end] with start <= end, e.g. [-259, 0]"),
                    );
                    Coverage::Whole
                } else if !daily {
                    errs.at(
                        w.span().start,
                        format!("input '{name}': a window needs a daily output; add partitioned = \"daily\" or remove the window"),
                    );
                    Coverage::Whole
                } else {
                    Coverage::Window(v[0], v[1])
                }
            }
            (None, Some(true)) if daily => Coverage::Window(0, 0),
            (None, _) if daily => Coverage::Window(0, 0),
            (None, _) => Coverage::Whole,
        };
        let coverage = match (&r.period, &r.lag) {
            (None, None) => coverage,
            (None, Some(l)) => {
                errs.at(
                    l.span().start,
                    format!(
                        "input '{name}': lag needs a period, e.g. period = \"monthly\", lag = 20"
                    ),
                );
                coverage
            }
            (Some(p), lag) => {
                let every = Period::parse(p.get_ref());
                let lag_v = lag.as_ref().map_or(0, |l| *l.get_ref());
                if every.is_none() {
                    errs.at(
                        p.span().start,
                        format!(
                            "input '{name}': period = \"{}\" is not one of weekly, monthly, quarterly, yearly",
                            p.get_ref()
                        ),
                    );
                } else if daily || r.window.is_some() || r.as_of.is_some() {
                    errs.at(
                        p.span().start,
                        format!(
                            "input '{name}': period is for an unpartitioned output reading a daily input; remove window/as_of/partitioned or the period"
                        ),
                    );
                } else if lag_v < 0 {
                    errs.at(
                        p.span().start,
                        format!("input '{name}': lag must be 0 or more"),
                    );
                }
                match every {
                    Some(every) => Coverage::Period {
                        every,
                        lag: lag_v.max(0) as usize,
                    },
                    None => coverage,
                }
            }
        };
        inputs.push(Input {
            asset: name,
            coverage,
            window_given: r.window.is_some(),
            full: r.full.unwrap_or(false),
            alias,
            line,
        });
    }

    // Params, typed by the op's schema; unknown params are errors, never ignored.
    let mut params = serde_json::Map::new();
    if let Some(op) = op {
        let specs = op.params();
        for (k, v) in &raw.params {
            match specs.iter().find(|s| s.name == k) {
                None => errs.at(
                    v.span().start,
                    format!(
                        "op '{op_name}' has no param '{k}': known params are {}",
                        specs.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
                    ),
                ),
                Some(spec) if !type_matches(spec.ty, v.get_ref()) => errs.at(
                    v.span().start,
                    format!(
                        "param '{k}' must be {} (got {})",
                        spec.ty.describe(),
                        v.get_ref().type_str()
                    ),
                ),
                Some(_) => {}
            }
        }
        for spec in specs.iter().filter(|s| s.required) {
            if !raw.params.contains_key(spec.name) {
                errs.at(
                    raw.op.span().start,
                    format!(
                        "op '{op_name}' needs param '{}' ({}): add it under [params]",
                        spec.name, spec.doc
                    ),
                );
            }
        }
    }
    for (k, v) in &raw.params {
        params.insert(k.clone(), toml_to_json(v.get_ref()));
    }

    // Checks.
    let mut checks = Vec::new();
    for (i, c) in raw.checks.iter().enumerate() {
        let at = c.span().start;
        let r = c.get_ref();
        let severity = match r.severity.as_deref() {
            None | Some("error") => Severity::Error,
            Some("warn") => Severity::Warn,
            Some(s) => {
                errs.at(
                    at,
                    format!("check severity '{s}' is unknown: use \"error\" or \"warn\""),
                );
                Severity::Error
            }
        };
        let need_cols = |errs: &mut Errors, kind: &str| match &r.columns {
            Some(c) if !c.is_empty() => c.clone(),
            _ => {
                errs.at(at, format!("check '{kind}' needs columns = [\"...\"]"));
                Vec::new()
            }
        };
        let kind = match r.kind.as_str() {
            "not_null" => CheckKind::NotNull {
                columns: need_cols(&mut errs, "not_null"),
            },
            "unique" => CheckKind::Unique {
                columns: need_cols(&mut errs, "unique"),
            },
            "range" => {
                let columns = match (&r.column, &r.columns) {
                    (Some(c), None) => vec![c.clone()],
                    (None, Some(c)) if !c.is_empty() => c.clone(),
                    _ => Vec::new(),
                };
                if columns.is_empty() || (r.min.is_none() && r.max.is_none()) {
                    errs.at(
                        at,
                        "check 'range' needs column = \"...\" (or columns = [\"...\"]) and min and/or max",
                    );
                    continue;
                }
                CheckKind::Range {
                    columns,
                    min: r.min,
                    max: r.max,
                }
            }
            "finite" => CheckKind::Finite {
                columns: r.columns.clone().unwrap_or_default(),
            },
            "not_all_null" => CheckKind::NotAllNull {
                columns: r.columns.clone().unwrap_or_default(),
            },
            "on_calendar" => {
                let calendar = match r.calendar.as_deref() {
                    None | Some("jpx") => DayCalendar::Jpx,
                    Some("weekdays") => DayCalendar::Weekdays,
                    Some(other) => {
                        errs.at(
                            at,
                            format!("check 'on_calendar': calendar \"{other}\" is unknown: use \"jpx\" or \"weekdays\""),
                        );
                        continue;
                    }
                };
                CheckKind::OnCalendar {
                    column: r.column.clone().unwrap_or_else(|| "Date".into()),
                    calendar,
                }
            }
            "null_rate" => match (r.max, &r.columns) {
                (Some(m), Some(c)) if (0.0..=1.0).contains(&m) && !c.is_empty() => {
                    CheckKind::NullRate {
                        columns: c.clone(),
                        max: m,
                    }
                }
                _ => {
                    errs.at(
                        at,
                        "check 'null_rate' needs columns = [\"...\"] and max = <share of nulls allowed, 0..1>",
                    );
                    continue;
                }
            },
            "row_count_change" => match r.max {
                Some(m) if m > 0.0 => CheckKind::RowCountChange { max_change: m },
                _ => {
                    errs.at(
                        at,
                        "check 'row_count_change' needs max = <allowed relative change>, e.g. 0.2",
                    );
                    continue;
                }
            },
            "row_count" => {
                if r.min.is_none() && r.max.is_none() {
                    errs.at(at, "check 'row_count' needs min and/or max");
                }
                CheckKind::RowCount {
                    min: r.min,
                    max: r.max,
                }
            }
            "sql" => match &r.query {
                Some(q) => CheckKind::Sql { query: q.clone() },
                None => {
                    errs.at(
                        at,
                        "check 'sql' needs query = \"SELECT ... FROM this WHERE <bad rows>\"",
                    );
                    continue;
                }
            },
            other => {
                errs.at(
                    at,
                    format!("unknown check kind '{other}': use not_null, unique, range, finite, not_all_null, null_rate, on_calendar, row_count, row_count_change or sql"),
                );
                continue;
            }
        };
        let name = r
            .name
            .clone()
            .unwrap_or_else(|| format!("{}#{}", r.kind, i + 1));
        checks.push(Check {
            name,
            kind,
            severity,
        });
    }

    // Retry.
    let mut retry = RetryPolicy::default();
    if let Some(r) = &raw.retry {
        let at = r.span().start;
        let r = r.get_ref();
        if let Some(a) = r.attempts {
            if a == 0 {
                errs.at(at, "retry.attempts must be at least 1");
            }
            retry.attempts = a.max(1);
        }
        match r.backoff.as_deref() {
            None | Some("exponential") => {}
            Some("linear") => retry.backoff = Backoff::Linear,
            Some(b) => errs.at(
                at,
                format!("retry.backoff '{b}' is unknown: use \"exponential\" or \"linear\""),
            ),
        }
        for (field, val, slot) in [
            ("initial", &r.initial, &mut retry.initial),
            ("max", &r.max, &mut retry.max),
        ] {
            if let Some(s) = val {
                match parse_duration(s) {
                    Some(d) => *slot = d,
                    None => errs.at(at, format!("retry.{field} '{s}' is not a duration: write e.g. \"500ms\", \"5s\", \"2m\"")),
                }
            }
        }
        if let Some(j) = r.jitter {
            retry.jitter = j;
        }
    }

    // Dates.
    let dates = match &raw.dates {
        None => None,
        Some(d) => {
            let at = d.span().start;
            let r = d.get_ref();
            if !daily {
                errs.at(at, "dates = {...} needs partitioned = \"daily\"");
            }
            let parse = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
            let from = parse(&r.from);
            let to = if r.to == "today" {
                Some(None)
            } else {
                parse(&r.to).map(Some)
            };
            let calendar = match (r.calendar.as_deref(), r.weekdays) {
                (Some("jpx"), _) => DayCalendar::Jpx,
                (Some("weekdays"), _) | (None, None | Some(true)) => DayCalendar::Weekdays,
                (Some("all"), _) | (None, Some(false)) => DayCalendar::All,
                (Some(other), _) => {
                    errs.at(at, format!("dates.calendar \"{other}\" is unknown: use \"jpx\", \"weekdays\" or \"all\""));
                    DayCalendar::Weekdays
                }
            };
            match (from, to) {
                (Some(from), Some(to)) => Some(DateSpec { from, to, calendar }),
                _ => {
                    errs.at(
                        at,
                        "dates.from and dates.to must be YYYY-MM-DD (to may be \"today\")",
                    );
                    None
                }
            }
        }
    };

    let sla = raw.sla.as_ref().map(|spanned| {
        let r = spanned.get_ref();
        let at = spanned.span().start;
        let max_duration = r.max_duration.as_ref().and_then(|d| {
            let v = parse_duration(d);
            if v.is_none() {
                errs.at(at, format!("sla.max_duration = \"{d}\" is not a duration, e.g. \"30m\""));
            }
            v
        });
        if r.deadline.is_some() && !daily {
            errs.at(at, "sla.deadline needs a daily asset (today's partition must exist by then): add partitioned = \"daily\" or use max_duration");
        }
        let deadline = r.deadline.as_ref().and_then(|d| {
            let v = parse_deadline(d);
            if v.is_none() {
                errs.at(at, format!("sla.deadline = \"{d}\": write a local time and an IANA zone, e.g. \"07:30 Asia/Tokyo\""));
            }
            v
        });
        if let Some(x) = r.min_success_rate
            && !(0.0..=1.0).contains(&x)
        {
            errs.at(at, format!("sla.min_success_rate = {x} must be between 0 and 1"));
        }
        Sla { max_duration, deadline, min_success_rate: r.min_success_rate, window: r.window.unwrap_or(20).max(1) }
    });
    if !errs.list.is_empty() {
        return Err(errs.list);
    }
    Ok(Rule {
        asset: asset.to_string(),
        file: file.to_path_buf(),
        op: op_name,
        daily,
        inputs,
        params: Value::Object(params),
        sources: raw.sources.iter().map(|s| s.get_ref().clone()).collect(),
        checks,
        retry,
        sla,
        dates,
        key_columns: raw.key_columns,
        date_column: raw.date_column.unwrap_or_else(|| "Date".to_string()),
        description: raw.description,
    })
}
