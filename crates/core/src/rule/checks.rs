//! A rule's `[[checks]]`: each check's kind and its fields, severity and name.

use super::raw::RawCheck;
use super::{Check, CheckKind, Errors, Severity};
use crate::catalog::{Catalog, quoted_alternatives};
use toml::Spanned;

pub(super) fn parse(
    raw: &[Spanned<RawCheck>],
    catalog: &dyn Catalog,
    errs: &mut Errors,
) -> Vec<Check> {
    let mut checks = Vec::new();
    for (i, c) in raw.iter().enumerate() {
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
                columns: need_cols(errs, "not_null"),
            },
            "unique" => CheckKind::Unique {
                columns: need_cols(errs, "unique"),
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
                    None => catalog.default_calendar(),
                    Some(name) => match catalog.calendar(name) {
                        Some(c) => c,
                        None => {
                            errs.at(
                                at,
                                format!(
                                    "check 'on_calendar': calendar \"{name}\" is unknown: use {}",
                                    quoted_alternatives(&catalog.calendar_names())
                                ),
                            );
                            continue;
                        }
                    },
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

    checks
}
