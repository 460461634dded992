//! A rule's policies: `[retry]`, `dates = {...}` (a generated daily domain), `[sla]` and
//! `[mlflow]` (where an experiment tracker files it) and `[promotion]` (how its versions
//! are promoted).

use super::raw::{RawDates, RawPromotion, RawRetry, RawSla, RawTracking};
use super::{
    Backoff, DateSpec, Errors, Promotion, RetryPolicy, Sla, Tracking, parse_deadline,
    parse_duration, valid_alias_name,
};
use crate::calendar::DayCalendar;
use crate::catalog::{Catalog, quoted_alternatives};
use chrono::NaiveDate;
use toml::Spanned;

pub(super) fn retry(raw: Option<&Spanned<RawRetry>>, errs: &mut Errors) -> RetryPolicy {
    let mut retry = RetryPolicy::default();
    if let Some(r) = raw {
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

    retry
}

pub(super) fn dates(
    raw: Option<&Spanned<RawDates>>,
    daily: bool,
    catalog: &dyn Catalog,
    errs: &mut Errors,
) -> Option<DateSpec> {
    match raw {
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
                (None, None | Some(true)) => DayCalendar::WEEKDAYS,
                (None, Some(false)) => DayCalendar::ALL,
                (Some(name), _) => catalog.calendar(name).unwrap_or_else(|| {
                    errs.at(
                        at,
                        format!(
                            "dates.calendar \"{name}\" is unknown: use {}",
                            quoted_alternatives(&catalog.calendar_names())
                        ),
                    );
                    DayCalendar::WEEKDAYS
                }),
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
    }
}

pub(super) fn tracking(raw: Option<&Spanned<RawTracking>>, errs: &mut Errors) -> Option<Tracking> {
    raw.map(|spanned| {
        let r = spanned.get_ref();
        let at = spanned.span().start;
        for (key, v) in [
            ("experiment", &r.experiment),
            ("registered_model", &r.registered_model),
        ] {
            if let Some(v) = v
                && (v.trim().is_empty() || v.len() > 250 || v.chars().any(|c| c.is_control()))
            {
                errs.at(
                    at,
                    format!("mlflow.{key} = {v:?}: write a name of 1 to 250 printable characters"),
                );
            }
        }
        Tracking {
            experiment: r.experiment.clone(),
            registered_model: r.registered_model.clone(),
        }
    })
}

pub(super) fn sla(raw: Option<&Spanned<RawSla>>, daily: bool, errs: &mut Errors) -> Option<Sla> {
    raw.map(|spanned| {
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
    })
}

pub(super) fn promotion(
    raw: Option<&Spanned<RawPromotion>>,
    known_assets: &dyn Fn(&str) -> bool,
    errs: &mut Errors,
) -> Option<Promotion> {
    let spanned = raw?;
    let r = spanned.get_ref();
    let at = spanned.span().start;
    let p = Promotion {
        alias: r.alias.clone().unwrap_or_else(|| "production".into()),
        challenger: r.challenger.clone().unwrap_or_else(|| "challenger".into()),
        auto_challenger: r.auto_challenger.unwrap_or(true),
        champion_scores: r.champion_scores.clone(),
        challenger_scores: r.challenger_scores.clone(),
        labels: r.labels.clone().unwrap_or_else(|| "labels".into()),
        horizon: r.horizon.clone(),
        min_days: r.min_days.unwrap_or(60),
        max_days: r.max_days.unwrap_or(250),
        alpha: r.alpha.unwrap_or(0.05),
        effect: r.effect.unwrap_or(0.01),
        min_improvement: r.min_improvement.unwrap_or(0.0),
        rollback: r.rollback.unwrap_or(true),
        rollback_window: r.rollback_window.unwrap_or(60),
    };
    for (key, name) in [("alias", &p.alias), ("challenger", &p.challenger)] {
        if !valid_alias_name(name) {
            errs.at(
                at,
                format!("promotion.{key} = {name:?}: an alias is lowercase letters, digits, _ and -, e.g. \"production\""),
            );
        }
    }
    if p.alias == p.challenger {
        errs.at(
            at,
            "promotion.alias and promotion.challenger must differ (e.g. \"production\" and \"challenger\")",
        );
    }
    for (key, asset) in [
        ("champion_scores", &p.champion_scores),
        ("challenger_scores", &p.challenger_scores),
        ("labels", &p.labels),
    ] {
        if !known_assets(asset) {
            errs.at(
                at,
                format!("promotion.{key} = {asset:?} is not an asset of rules/: name an asset of rules/ (the predictions that read this one at the alias, or the labels they are scored against)"),
            );
        }
    }
    let days = p
        .horizon
        .strip_suffix('d')
        .and_then(|d| d.parse::<usize>().ok());
    if days.is_none_or(|d| d == 0) {
        errs.at(
            at,
            format!(
                "promotion.horizon = {:?}: write a label horizon in days, e.g. \"5d\"",
                p.horizon
            ),
        );
    }
    if p.min_days < 10 || p.max_days < p.min_days {
        errs.at(
            at,
            format!(
                "promotion.min_days = {} / max_days = {}: need 10 <= min_days <= max_days",
                p.min_days, p.max_days
            ),
        );
    }
    if !(p.alpha > 0.0 && p.alpha < 0.5) {
        errs.at(
            at,
            format!(
                "promotion.alpha = {}: write a level in (0, 0.5), e.g. 0.05",
                p.alpha
            ),
        );
    }
    if !(p.effect > 0.0 && p.effect < 1.0 && p.min_improvement >= 0.0 && p.min_improvement < 1.0) {
        errs.at(
            at,
            "promotion.effect must be in (0, 1) and promotion.min_improvement in [0, 1): they are rank-correlation differences, e.g. 0.01",
        );
    }
    if p.rollback_window < 10 {
        errs.at(at, "promotion.rollback_window must be at least 10 days");
    }
    Some(p)
}
