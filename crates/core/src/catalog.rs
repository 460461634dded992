//! What the core knows of ops and calendars: their names, declared params and checks,
//! through the [`Catalog`] that rule loading is handed. The core never names an op; the
//! registry that implements the catalog (`lakebuild::op::Registry`) is built by whoever
//! composes the program (the CLI, a test, another pipeline).

use crate::calendar::DayCalendar;
use crate::rule::Rule;
use serde_json::Value;
use std::collections::BTreeMap;
use toml::Spanned;

/// The type a param must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    Str,
    Int,
    Float,
    Bool,
    StrList,
    StrOrStrList,
    Table,
    Any,
}

impl ParamType {
    pub fn describe(self) -> &'static str {
        match self {
            ParamType::Str => "a string",
            ParamType::Int => "an integer",
            ParamType::Float => "a number",
            ParamType::Bool => "true or false",
            ParamType::StrList => "a list of strings",
            ParamType::StrOrStrList => "a string or a list of strings",
            ParamType::Table => "a table",
            ParamType::Any => "any value",
        }
    }
}

/// One declared param of an op.
#[derive(Debug, Clone, Copy)]
pub struct ParamSpec {
    pub name: &'static str,
    pub ty: ParamType,
    pub required: bool,
    pub doc: &'static str,
}

/// An op as planning sees it: what enters its keys and what its rules may say. Running it
/// is the op layer's `Op`, which extends this.
pub trait OpSpec: Send + Sync {
    fn name(&self) -> &'static str;
    /// Derived from the op's source text at compile time: editing the op makes its
    /// outputs stale.
    fn code_version(&self) -> &'static str;
    fn params(&self) -> &'static [ParamSpec];
    /// A daily op without inputs that learns its partitions from the data it produces
    /// (an import): it runs whole and the engine publishes what changed.
    fn discovers_partitions(&self) -> bool {
        false
    }
    /// Globs of files (relative to the project root) that this op reads, hashed into
    /// the key like the rule's own `sources`.
    fn source_globs(&self, _params: &Value) -> Vec<String> {
        Vec::new()
    }
    /// How many of the latest partitions to fetch again on every build (a source whose
    /// recent days may still be corrected). A re-fetch that brings the same content is
    /// cut off: nothing downstream rebuilds.
    fn recheck_days(&self, _params: &Value) -> usize {
        0
    }
    /// Checks of the rule beyond param types (values, required inputs and windows),
    /// made when the rule set loads, so that nothing builds from a rule the op would
    /// reject. Each message (with the rule file's line it is about) says what to change.
    fn validate(&self, _rule: &Rule) -> Vec<(usize, String)> {
        Vec::new()
    }
    /// The values a finished build of this op reports that a `[tune]` study may optimise
    /// (e.g. `cv_rank_ic`), as examples for messages; none: the op cannot be tuned.
    fn objectives(&self) -> &'static [&'static str] {
        &[]
    }
    /// Whether `name` is an objective of this op (the default: one of [`objectives`]);
    /// the error says what to write instead.
    ///
    /// [`objectives`]: OpSpec::objectives
    fn check_objective(&self, name: &str) -> Result<(), String> {
        let known = self.objectives();
        if known.contains(&name) {
            Ok(())
        } else if known.is_empty() {
            Err(format!(
                "op '{}' reports no value a study could optimise, so it cannot be tuned",
                self.name()
            ))
        } else {
            Err(format!(
                "op '{}' reports no such value: use one of {}",
                self.name(),
                known.join(", ")
            ))
        }
    }
}

/// The params of a rule as written, with their positions in the file.
pub type RawParams = BTreeMap<String, Spanned<toml::Value>>;

/// An op name that stands for a choice among ops made when the rules load (the pipeline's
/// `op = "market"`: J-Quants with a key, else the synthetic market). The rule becomes a
/// rule of the chosen op, so only the chosen op and its settings enter the key.
pub trait OpChoice: Send + Sync {
    fn name(&self) -> &'static str;
    /// What it chooses between, for error messages ("jquants with a key, else …").
    fn describe(&self) -> &'static str;
    /// The op chosen now, with `params` rewritten for it; an error is a byte offset into
    /// the rule file and a message.
    fn choose(&self, params: &mut RawParams) -> Result<&'static str, (usize, String)>;
}

/// Everything rule loading may ask about ops and calendars.
pub trait Catalog: Send + Sync {
    fn op(&self, name: &str) -> Option<&dyn OpSpec>;
    /// Op names in registration order, for messages.
    fn op_names(&self) -> Vec<&'static str>;
    fn choice(&self, name: &str) -> Option<&dyn OpChoice>;
    fn choices(&self) -> Vec<&dyn OpChoice>;
    fn calendar(&self, name: &str) -> Option<DayCalendar>;
    /// Calendar names in registration order, for messages.
    fn calendar_names(&self) -> Vec<&'static str>;
    /// The calendar of an `on_calendar` check that names none.
    fn default_calendar(&self) -> DayCalendar;
}

/// A param that is a string or a list of strings (`path = "a/*.csv"` or `["a", "b"]`),
/// as a list; empty when absent.
pub fn string_list(params: &Value, name: &str) -> Vec<String> {
    match params.get(name) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

/// "\"a\", \"b\" or \"c\"".
pub fn quoted_alternatives(names: &[&str]) -> String {
    let q: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    match q.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// A catalog for the core's own tests: spec-only ops `files`, `sql` and `command` (the
/// params of the generic ops), a choice `source` between `files` and `sql`, and an
/// `exchange` calendar (weekdays less New Year's Day) as the default, so rules, keys and
/// lineage are tested without the op layer or any pipeline.
#[cfg(test)]
pub(crate) mod fixture {
    use super::*;
    use crate::calendar::Days;
    use chrono::{Datelike, NaiveDate};

    struct Spec {
        name: &'static str,
        params: &'static [ParamSpec],
        discovers: bool,
    }

    /// A fixture op that can be tuned: it reports `score`, and refuses a `hidden` that
    /// `heads` does not divide.
    struct Fit;

    impl OpSpec for Fit {
        fn name(&self) -> &'static str {
            "fit"
        }
        fn code_version(&self) -> &'static str {
            "fixture"
        }
        fn params(&self) -> &'static [ParamSpec] {
            const FIT: [ParamSpec; 5] = [
                param("lr", ParamType::Float, false),
                param("hidden", ParamType::Int, false),
                param("heads", ParamType::Int, false),
                param("kind", ParamType::Str, false),
                param("names", ParamType::StrList, false),
            ];
            &FIT
        }
        fn validate(&self, rule: &Rule) -> Vec<(usize, String)> {
            let int = |k: &str, d: i64| rule.params.get(k).and_then(Value::as_i64).unwrap_or(d);
            let (hidden, heads) = (int("hidden", 8), int("heads", 2));
            if heads < 1 || hidden % heads != 0 {
                vec![(
                    1,
                    format!("hidden ({hidden}) must be a multiple of heads ({heads})"),
                )]
            } else {
                Vec::new()
            }
        }
        fn objectives(&self) -> &'static [&'static str] {
            &["score"]
        }
    }

    impl OpSpec for Spec {
        fn name(&self) -> &'static str {
            self.name
        }
        fn code_version(&self) -> &'static str {
            "fixture"
        }
        fn params(&self) -> &'static [ParamSpec] {
            self.params
        }
        fn discovers_partitions(&self) -> bool {
            self.discovers
        }
        fn source_globs(&self, params: &Value) -> Vec<String> {
            string_list(params, "path")
        }
    }

    const fn param(name: &'static str, ty: ParamType, required: bool) -> ParamSpec {
        ParamSpec {
            name,
            ty,
            required,
            doc: "a fixture param",
        }
    }

    static OPS: [Spec; 3] = [
        Spec {
            name: "files",
            params: &[
                param("path", ParamType::StrOrStrList, true),
                param("format", ParamType::Str, false),
            ],
            discovers: true,
        },
        Spec {
            name: "sql",
            params: &[param("query", ParamType::Str, true)],
            discovers: false,
        },
        Spec {
            name: "command",
            params: &[param("run", ParamType::StrOrStrList, true)],
            discovers: true,
        },
    ];

    struct Source;

    impl OpChoice for Source {
        fn name(&self) -> &'static str {
            "source"
        }
        fn describe(&self) -> &'static str {
            "files with a key, else sql"
        }
        fn choose(&self, _params: &mut RawParams) -> Result<&'static str, (usize, String)> {
            Ok("sql")
        }
    }

    struct Exchange;

    impl Days for Exchange {
        fn name(&self) -> &'static str {
            "exchange"
        }
        fn contains(&self, d: NaiveDate) -> bool {
            DayCalendar::WEEKDAYS.contains(d) && !(d.month() == 1 && d.day() == 1)
        }
    }

    struct Fixture;

    impl Catalog for Fixture {
        fn op(&self, name: &str) -> Option<&dyn OpSpec> {
            if name == "fit" {
                return Some(&Fit);
            }
            OPS.iter()
                .find(|o| o.name == name)
                .map(|o| o as &dyn OpSpec)
        }
        fn op_names(&self) -> Vec<&'static str> {
            OPS.iter().map(|o| o.name).chain(["fit"]).collect()
        }
        fn choice(&self, name: &str) -> Option<&dyn OpChoice> {
            (name == "source").then_some(&Source as &dyn OpChoice)
        }
        fn choices(&self) -> Vec<&dyn OpChoice> {
            vec![&Source]
        }
        fn calendar(&self, name: &str) -> Option<DayCalendar> {
            [
                DayCalendar::WEEKDAYS,
                DayCalendar::ALL,
                DayCalendar(&Exchange),
            ]
            .into_iter()
            .find(|c| c.name() == name)
        }
        fn calendar_names(&self) -> Vec<&'static str> {
            vec!["weekdays", "all", "exchange"]
        }
        fn default_calendar(&self) -> DayCalendar {
            DayCalendar(&Exchange)
        }
    }

    pub(crate) fn catalog() -> &'static dyn Catalog {
        &Fixture
    }
}
