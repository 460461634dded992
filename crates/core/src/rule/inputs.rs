//! A rule's `inputs = [...]`: each input's asset (and `@alias`), its window, `as_of`,
//! `full`, and `period` / `lag` coverage, validated against the known assets.

use super::raw::RawInput;
use super::{Errors, Input, line_of, valid_alias_name};
use crate::partition::{Coverage, Period};
use toml::Spanned;

/// The inputs of the rule of `asset` (daily when `daily`).
pub(super) fn parse(
    raw: &[Spanned<RawInput>],
    asset: &str,
    daily: bool,
    known_assets: &dyn Fn(&str) -> bool,
    src: &str,
    errs: &mut Errors,
) -> Vec<Input> {
    let mut inputs = Vec::new();
    let mut seen = Vec::new();
    for inp in raw {
        let at = inp.span().start;
        let line = line_of(src, at);
        let r = inp.get_ref();
        let (name, alias) = match r.asset.get_ref().split_once('@') {
            Some((a, alias)) => (a.to_string(), Some(alias.to_string())),
            None => (r.asset.get_ref().clone(), None),
        };
        if let Some(alias) = &alias
            && !valid_alias_name(alias)
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
        let full = r
            .full
            .as_ref()
            .and_then(|f| full_part(f, &name, coverage, errs));
        inputs.push(Input {
            asset: name,
            coverage,
            window_given: r.window.is_some(),
            full,
            alias,
            line,
        });
    }

    inputs
}

/// The part of input `name`'s window that `full = …` requires: the whole window for
/// `true`, `[a, b]` when it lies within the window, nothing for `false` or without a
/// window (a whole or periodic input is complete by definition).
fn full_part(
    f: &Spanned<toml::Value>,
    name: &str,
    coverage: Coverage,
    errs: &mut Errors,
) -> Option<(i64, i64)> {
    let Coverage::Window(a, b) = coverage else {
        return None;
    };
    match f.get_ref() {
        toml::Value::Boolean(true) => Some((a, b)),
        toml::Value::Boolean(false) => None,
        toml::Value::Array(v) => {
            let part: Vec<i64> = v.iter().filter_map(toml::Value::as_integer).collect();
            match part[..] {
                [x, y] if v.len() == 2 && a <= x && x <= y && y <= b => Some((x, y)),
                _ => {
                    errs.at(
                        f.span().start,
                        format!(
                            "input '{name}': full = {} must be [start, end] within its window [{a}, {b}], e.g. full = [{}, {b}]",
                            f.get_ref(),
                            (a / 2).min(b)
                        ),
                    );
                    None
                }
            }
        }
        other => {
            errs.at(
                f.span().start,
                format!(
                    "input '{name}': full = {other} must be true, false or the part of the window that must be complete, e.g. full = [{}, {b}]",
                    (a / 2).min(b)
                ),
            );
            None
        }
    }
}
