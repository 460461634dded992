//! The rule file as written: the TOML shape serde reads, with positions kept (`Spanned`)
//! so that every error can name its line. `deny_unknown_fields` makes a misspelt key an
//! error, never a silently ignored setting.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    pub(super) op: Spanned<String>,
    #[serde(default)]
    pub(super) partitioned: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) inputs: Vec<Spanned<RawInput>>,
    #[serde(default)]
    pub(super) params: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    pub(super) sources: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) checks: Vec<Spanned<RawCheck>>,
    #[serde(default)]
    pub(super) retry: Option<Spanned<RawRetry>>,
    #[serde(default)]
    pub(super) sla: Option<Spanned<RawSla>>,
    #[serde(default)]
    pub(super) dates: Option<Spanned<RawDates>>,
    #[serde(default)]
    pub(super) mlflow: Option<Spanned<RawTracking>>,
    #[serde(default)]
    pub(super) promotion: Option<Spanned<RawPromotion>>,
    #[serde(default)]
    pub(super) tune: Option<Spanned<super::tune::RawTune>>,
    #[serde(default)]
    pub(super) key_columns: Vec<String>,
    #[serde(default)]
    pub(super) date_column: Option<String>,
    #[serde(default)]
    pub(super) description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInput {
    pub(super) asset: Spanned<String>,
    #[serde(default)]
    pub(super) window: Option<Spanned<Vec<i64>>>,
    #[serde(default)]
    pub(super) as_of: Option<bool>,
    /// `true`, `false` or `[a, b]` (read by [`super::inputs`], which names what is wrong).
    #[serde(default)]
    pub(super) full: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub(super) period: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) lag: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCheck {
    pub(super) kind: String,
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) columns: Option<Vec<String>>,
    #[serde(default)]
    pub(super) column: Option<String>,
    #[serde(default)]
    pub(super) min: Option<f64>,
    #[serde(default)]
    pub(super) max: Option<f64>,
    #[serde(default)]
    pub(super) query: Option<String>,
    #[serde(default)]
    pub(super) severity: Option<String>,
    #[serde(default)]
    pub(super) calendar: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSla {
    #[serde(default)]
    pub(super) max_duration: Option<String>,
    #[serde(default)]
    pub(super) deadline: Option<String>,
    #[serde(default)]
    pub(super) min_success_rate: Option<f64>,
    #[serde(default)]
    pub(super) window: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTracking {
    #[serde(default)]
    pub(super) experiment: Option<String>,
    #[serde(default)]
    pub(super) registered_model: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetry {
    #[serde(default)]
    pub(super) attempts: Option<u32>,
    #[serde(default)]
    pub(super) backoff: Option<String>,
    #[serde(default)]
    pub(super) initial: Option<String>,
    #[serde(default)]
    pub(super) max: Option<String>,
    #[serde(default)]
    pub(super) jitter: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDates {
    pub(super) from: String,
    pub(super) to: String,
    #[serde(default)]
    pub(super) weekdays: Option<bool>,
    #[serde(default)]
    pub(super) calendar: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPromotion {
    #[serde(default)]
    pub(super) alias: Option<String>,
    #[serde(default)]
    pub(super) challenger: Option<String>,
    #[serde(default)]
    pub(super) auto_challenger: Option<bool>,
    pub(super) champion_scores: String,
    pub(super) challenger_scores: String,
    #[serde(default)]
    pub(super) labels: Option<String>,
    pub(super) horizon: String,
    #[serde(default)]
    pub(super) min_days: Option<usize>,
    #[serde(default)]
    pub(super) max_days: Option<usize>,
    #[serde(default)]
    pub(super) alpha: Option<f64>,
    #[serde(default)]
    pub(super) effect: Option<f64>,
    #[serde(default)]
    pub(super) min_improvement: Option<f64>,
    #[serde(default)]
    pub(super) rollback: Option<bool>,
    #[serde(default)]
    pub(super) rollback_window: Option<usize>,
}
