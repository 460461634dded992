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
        inputs.push(Input {
            asset: name,
            coverage,
            window_given: r.window.is_some(),
            full: r.full.unwrap_or(false),
            alias,
            line,
        });
    }

    inputs
}
