//! `[tune]`: a search space over the rule's own params, for `lakebuild tune`. Each entry of
//! `[tune.space]` names a param the op accepts and how to draw it: `{ low, high }` (with
//! `log = true` or `step`) for numbers, a list for a choice. What a trial builds is the
//! rule with the drawn values overlaid on `[params]`, so a space can never name something
//! the op would ignore. The settings (`objective`, `direction`, `sampler`, `pruner`,
//! `seed`, `trials`) say what the study optimises and how Optuna searches. Not part of the
//! key: editing the space re-keys nothing.
//!
//! ```toml
//! [tune]
//! objective = "cv_rank_ic"      # what the op reports for a finished build
//! direction = "maximize"
//! trials = 20
//! [tune.space]
//! lr = { low = 1e-4, high = 3e-3, log = true }
//! hidden = [32, 64]
//! dropout = { low = 0.0, high = 0.3 }
//! ```

use super::Errors;
use super::toml_to_json;
use crate::catalog::{OpSpec, ParamType};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use toml::Spanned;

/// The search space and the study's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuneSpace {
    /// In file order.
    pub params: Vec<TuneParam>,
    /// The value a trial reports when its build finishes (the op's name for it).
    pub objective: String,
    pub direction: Direction,
    /// Optuna's sampler: `tpe` (default), `random`, `cmaes`, `gp`, `qmc`.
    pub sampler: String,
    /// Optuna's pruner, fed the op's intermediate values: `median` (default),
    /// `percentile`, `successive_halving`, `hyperband`, `none`.
    pub pruner: String,
    /// The sampler's seed (default 0): the same study re-run proposes the same params.
    pub seed: u64,
    /// Trials a study runs to when `lakebuild tune` is given no `--trials` (default 20).
    pub trials: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Maximize,
    Minimize,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Maximize => "maximize",
            Direction::Minimize => "minimize",
        }
    }
}

/// One tuned param: its name in `[params]`, how it is drawn and the rule file's line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuneParam {
    pub name: String,
    pub distribution: Distribution,
    pub line: usize,
}

/// How a param is drawn, as Optuna's distributions are (`FloatDistribution`,
/// `IntDistribution`, `CategoricalDistribution`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Distribution {
    Float {
        low: f64,
        high: f64,
        log: bool,
        step: Option<f64>,
    },
    Int {
        low: i64,
        high: i64,
        log: bool,
        step: i64,
    },
    Categorical {
        choices: Vec<Value>,
    },
}

impl Distribution {
    /// The values that bound the space, each of which a trial may build with: both ends of
    /// a range, every choice of a list.
    pub fn edges(&self) -> Vec<Value> {
        match self {
            Distribution::Float { low, high, .. } => vec![Value::from(*low), Value::from(*high)],
            Distribution::Int { low, high, .. } => vec![Value::from(*low), Value::from(*high)],
            Distribution::Categorical { choices } => choices.clone(),
        }
    }
}

pub const SAMPLERS: [&str; 5] = ["tpe", "random", "cmaes", "gp", "qmc"];
pub const PRUNERS: [&str; 5] = [
    "median",
    "percentile",
    "successive_halving",
    "hyperband",
    "none",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTune {
    #[serde(default)]
    objective: Option<Spanned<String>>,
    #[serde(default)]
    direction: Option<Spanned<String>>,
    #[serde(default)]
    sampler: Option<Spanned<String>>,
    #[serde(default)]
    pruner: Option<Spanned<String>>,
    #[serde(default)]
    seed: Option<Spanned<i64>>,
    #[serde(default)]
    trials: Option<Spanned<i64>>,
    #[serde(default)]
    space: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
}

/// `[tune]` checked against the op's params and objectives.
pub(super) fn parse(
    raw: Option<&Spanned<RawTune>>,
    op: Option<&dyn OpSpec>,
    op_name: &str,
    errs: &mut Errors,
) -> Option<TuneSpace> {
    let spanned = raw?;
    let r = spanned.get_ref();
    let at = spanned.span().start;
    let objective = match &r.objective {
        Some(o) => {
            if let Some(op) = op
                && let Err(e) = op.check_objective(o.get_ref())
            {
                errs.at(
                    o.span().start,
                    format!("tune.objective = {:?}: {e}", o.get_ref()),
                );
            }
            o.get_ref().clone()
        }
        None => {
            let hint = op
                .and_then(|op| op.objectives().first().copied())
                .map_or(String::new(), |o| format!(", e.g. objective = \"{o}\""));
            errs.at(
                at,
                format!("[tune] needs an objective: the value each trial is judged by{hint}"),
            );
            String::new()
        }
    };
    let direction = match r
        .direction
        .as_ref()
        .map(|d| (d.get_ref().as_str(), d.span().start))
    {
        None | Some(("maximize", _)) => Direction::Maximize,
        Some(("minimize", _)) => Direction::Minimize,
        Some((other, at)) => {
            errs.at(
                at,
                format!("tune.direction = {other:?}: write \"maximize\" or \"minimize\""),
            );
            Direction::Maximize
        }
    };
    let mut name_of =
        |field: &str, v: &Option<Spanned<String>>, allowed: &[&str], default: &str| match v {
            None => default.to_string(),
            Some(s) if allowed.contains(&s.get_ref().as_str()) => s.get_ref().clone(),
            Some(s) => {
                errs.at(
                    s.span().start,
                    format!(
                        "tune.{field} = {:?}: write one of {}",
                        s.get_ref(),
                        allowed.join(", ")
                    ),
                );
                default.to_string()
            }
        };
    let sampler = name_of("sampler", &r.sampler, &SAMPLERS, "tpe");
    let pruner = name_of("pruner", &r.pruner, &PRUNERS, "median");
    let seed = match &r.seed {
        None => 0,
        Some(s) if *s.get_ref() >= 0 => *s.get_ref() as u64,
        Some(s) => {
            errs.at(s.span().start, "tune.seed must be 0 or more");
            0
        }
    };
    let trials = match &r.trials {
        None => 20,
        Some(t) if *t.get_ref() >= 1 => *t.get_ref() as usize,
        Some(t) => {
            errs.at(t.span().start, "tune.trials must be at least 1");
            20
        }
    };
    let mut params = Vec::new();
    if r.space.is_empty() {
        errs.at(
            at,
            "[tune] has no [tune.space]: name the params to search, e.g. lr = { low = 1e-4, high = 3e-3, log = true }",
        );
    }
    for (name, value) in &r.space {
        let at = name.span().start;
        let line = super::line_of(errs.src, at);
        let spec = op.map(|op| (op.params().iter().find(|s| s.name == name.get_ref()), op));
        let ty = match spec {
            Some((None, op)) => {
                errs.at(
                    at,
                    format!(
                        "tune.space.{}: op '{op_name}' has no param '{}', so a search over it would change nothing: known params are {}",
                        name.get_ref(),
                        name.get_ref(),
                        op.params().iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
                    ),
                );
                continue;
            }
            Some((Some(s), _)) => Some(s.ty),
            None => None,
        };
        match distribution(name.get_ref(), value.get_ref(), ty) {
            Ok(distribution) => params.push(TuneParam {
                name: name.get_ref().clone(),
                distribution,
                line,
            }),
            Err(e) => errs.at(
                value.span().start,
                format!("tune.space.{}: {e}", name.get_ref()),
            ),
        }
    }
    Some(TuneSpace {
        params,
        objective,
        direction,
        sampler,
        pruner,
        seed,
        trials,
    })
}

/// One `[tune.space]` entry as a distribution over a param of type `ty` (unknown when the
/// op is).
fn distribution(
    name: &str,
    v: &toml::Value,
    ty: Option<ParamType>,
) -> Result<Distribution, String> {
    let number = matches!(
        ty,
        None | Some(ParamType::Int | ParamType::Float | ParamType::Any)
    );
    match v {
        toml::Value::Array(choices) => {
            if choices.is_empty() {
                return Err("an empty list: give the values to choose from, e.g. [32, 64]".into());
            }
            for c in choices {
                let fits = match ty {
                    None | Some(ParamType::Any) => !c.is_table() && !c.is_array(),
                    Some(ParamType::Int) => c.is_integer(),
                    Some(ParamType::Float) => c.is_integer() || c.is_float(),
                    Some(ParamType::Str) => c.is_str(),
                    Some(ParamType::Bool) => c.is_bool(),
                    Some(_) => false,
                };
                if !fits {
                    return Err(format!(
                        "the choice {c} is not {} (the param's type)",
                        ty.map_or("a plain value", |t| t.describe())
                    ));
                }
            }
            Ok(Distribution::Categorical {
                choices: choices.iter().map(toml_to_json).collect(),
            })
        }
        toml::Value::Table(t) => {
            if !number {
                return Err(format!(
                    "a range is for numbers, and '{name}' is {}: list its values instead, e.g. [\"a\", \"b\"]",
                    ty.map_or("not one", |t| t.describe())
                ));
            }
            for k in t.keys() {
                if !["low", "high", "log", "step"].contains(&k.as_str()) {
                    return Err(format!(
                        "unknown key '{k}' in a range: use low, high, log, step"
                    ));
                }
            }
            let log = match t.get("log") {
                None => false,
                Some(toml::Value::Boolean(b)) => *b,
                Some(_) => return Err("log must be true or false".into()),
            };
            let (Some(low), Some(high)) = (t.get("low"), t.get("high")) else {
                return Err("a range needs low and high, e.g. { low = 1e-4, high = 3e-3 }".into());
            };
            let int = ty == Some(ParamType::Int);
            if int {
                let (Some(lo), Some(hi)) = (low.as_integer(), high.as_integer()) else {
                    return Err(format!(
                        "'{name}' is an integer param: write integer bounds, e.g. {{ low = 1, high = 8 }}"
                    ));
                };
                let step = match t.get("step") {
                    None => 1,
                    Some(toml::Value::Integer(s)) if *s >= 1 => *s,
                    Some(_) => return Err("step must be an integer of at least 1".into()),
                };
                check_range(lo as f64, hi as f64, log)?;
                if log && step != 1 {
                    return Err("log and step cannot be combined (as in Optuna)".into());
                }
                return Ok(Distribution::Int {
                    low: lo,
                    high: hi,
                    log,
                    step,
                });
            }
            let as_f = |v: &toml::Value| v.as_float().or_else(|| v.as_integer().map(|i| i as f64));
            let (Some(lo), Some(hi)) = (as_f(low), as_f(high)) else {
                return Err("low and high must be numbers".into());
            };
            check_range(lo, hi, log)?;
            let step = match t.get("step") {
                None => None,
                Some(s) => match as_f(s) {
                    Some(s) if s > 0.0 && !log => Some(s),
                    Some(_) if log => {
                        return Err("log and step cannot be combined (as in Optuna)".into());
                    }
                    _ => return Err("step must be a number above 0".into()),
                },
            };
            Ok(Distribution::Float {
                low: lo,
                high: hi,
                log,
                step,
            })
        }
        other => Err(format!(
            "write a range {{ low = .., high = .. }} or a list of values, not {}",
            other.type_str()
        )),
    }
}

fn check_range(low: f64, high: f64, log: bool) -> Result<(), String> {
    if !(low.is_finite() && high.is_finite()) || low >= high {
        return Err(format!("low ({low}) must be below high ({high})"));
    }
    if log && low <= 0.0 {
        return Err(format!("a log range needs low above 0 (got {low})"));
    }
    Ok(())
}

/// The op's own checks of the rule with each edge of each tuned param overlaid (the
/// other params as written), so that no trial can draw a value the op refuses: one
/// message per refused value, at the space entry's line.
pub fn check_edges(rule: &super::Rule, op: &dyn OpSpec) -> Vec<String> {
    let Some(space) = &rule.tune else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for p in &space.params {
        for v in p.distribution.edges() {
            let mut trial = rule.clone();
            trial.params = overlay(&rule.params, &BTreeMap::from([(p.name.clone(), v.clone())]));
            for (_, e) in op.validate(&trial) {
                out.push(format!(
                    "{}:{}: tune.space.{} = {v}: a trial with it would fail: {e}",
                    rule.file.display(),
                    p.line,
                    p.name
                ));
            }
        }
    }
    out
}

/// The params with `values` overlaid (what a trial builds).
pub fn overlay(params: &Value, values: &BTreeMap<String, Value>) -> Value {
    let mut p = params.clone();
    if let Value::Object(m) = &mut p {
        for (k, v) in values {
            m.insert(k.clone(), v.clone());
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::fixture::catalog;
    use crate::rule_set::RuleSet;

    const HEAD: &str = "op = \"fit\"\n[params]\nhidden = 8\nheads = 2\n";

    fn load(tune: &str) -> Result<RuleSet, String> {
        let src = format!("{HEAD}{tune}");
        RuleSet::from_sources(&[("m".into(), "rules/m.toml".into(), src)], catalog())
            .map_err(|e| e.to_string())
    }

    #[track_caller]
    fn error_at(tune: &str, line: usize, want: &str) {
        let e = load(tune)
            .err()
            .unwrap_or_else(|| panic!("no error for\n{tune}"));
        let at = format!("rules/m.toml:{line}: ");
        assert!(
            e.lines().any(|l| l.starts_with(&at) && l.contains(want)),
            "no error at line {line} containing {want:?} in:\n{e}"
        );
    }

    #[test]
    fn a_space_parses_into_optuna_distributions_and_settings() {
        let set = load(
            "[tune]\nobjective = \"score\"\ndirection = \"minimize\"\nsampler = \"random\"\npruner = \"none\"\nseed = 7\ntrials = 5\n[tune.space]\nlr = { low = 1e-4, high = 3e-3, log = true }\nhidden = [8, 16]\nheads = { low = 1, high = 4, step = 1 }\nkind = [\"a\", \"b\"]\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let t = set.get("m").and_then(|r| r.tune.clone()).expect("a space");
        assert_eq!(t.objective, "score");
        assert_eq!(t.direction, Direction::Minimize);
        assert_eq!(
            (t.sampler.as_str(), t.pruner.as_str(), t.seed, t.trials),
            ("random", "none", 7, 5)
        );
        let by = |n: &str| t.params.iter().find(|p| p.name == n).expect(n).clone();
        assert_eq!(
            by("lr").distribution,
            Distribution::Float {
                low: 1e-4,
                high: 3e-3,
                log: true,
                step: None
            }
        );
        assert_eq!(by("lr").line, 13);
        assert_eq!(
            by("heads").distribution,
            Distribution::Int {
                low: 1,
                high: 4,
                log: false,
                step: 1
            }
        );
        assert_eq!(
            by("hidden").distribution,
            Distribution::Categorical {
                choices: vec![8.into(), 16.into()]
            }
        );
        // Defaults.
        let t = load("[tune]\nobjective = \"score\"\n[tune.space]\nlr = { low = 0.1, high = 1 }\n")
            .unwrap_or_else(|e| panic!("{e}"))
            .get("m")
            .and_then(|r| r.tune.clone())
            .expect("a space");
        assert_eq!(t.direction, Direction::Maximize);
        assert_eq!(
            (t.sampler.as_str(), t.pruner.as_str(), t.seed, t.trials),
            ("tpe", "median", 0, 20)
        );
    }

    #[test]
    fn the_space_is_not_part_of_the_key() {
        let a = load("[tune]\nobjective = \"score\"\n[tune.space]\nlr = { low = 0.1, high = 1 }\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let b = load("").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.get("m").map(|r| &r.params), b.get("m").map(|r| &r.params));
        let (ra, rb) = (a.get("m").expect("m"), b.get("m").expect("m"));
        let spec = catalog().op("fit").expect("fit");
        assert_eq!(
            crate::plan::rule_ingredients(ra, spec, &[]).digest,
            crate::plan::rule_ingredients(rb, spec, &[]).digest
        );
    }

    #[test]
    fn every_bad_space_is_refused_with_its_file_line_and_what_to_write() {
        let t = "[tune]\nobjective = \"score\"\n[tune.space]\n";
        // A param the op does not have: a search over it would change nothing.
        error_at(
            &format!("{t}lrr = {{ low = 0.1, high = 1 }}\n"),
            8,
            "op 'fit' has no param 'lrr'",
        );
        // Bounds of the wrong type for the param.
        error_at(
            &format!("{t}hidden = {{ low = 1.5, high = 8 }}\n"),
            8,
            "integer param",
        );
        error_at(&format!("{t}hidden = [8, \"x\"]\n"), 8, "not an integer");
        error_at(
            &format!("{t}kind = {{ low = 1, high = 2 }}\n"),
            8,
            "a range is for numbers",
        );
        error_at(&format!("{t}names = [\"a\"]\n"), 8, "not a list of strings");
        error_at(
            &format!("{t}lr = {{ low = 1, high = 0.1 }}\n"),
            8,
            "must be below high",
        );
        error_at(
            &format!("{t}lr = {{ low = 0, high = 1, log = true }}\n"),
            8,
            "log range needs low above 0",
        );
        error_at(
            &format!("{t}lr = {{ low = 0.1, high = 1, lg = true }}\n"),
            8,
            "unknown key 'lg'",
        );
        error_at(&format!("{t}lr = []\n"), 8, "an empty list");
        error_at(&format!("{t}lr = 0.1\n"), 8, "write a range");
        // A value the op itself refuses (hidden 8 with 3 heads), at the space's line.
        error_at(
            &format!("{t}heads = [2, 3]\n"),
            8,
            "tune.space.heads = 3: a trial with it would fail: hidden (8) must be a multiple of heads (3)",
        );
        // The settings.
        error_at(
            "[tune]\nobjective = \"scor\"\n[tune.space]\nlr = [0.1]\n",
            6,
            "use one of score",
        );
        error_at(
            "[tune]\n[tune.space]\nlr = [0.1]\n",
            5,
            "needs an objective",
        );
        error_at(
            "[tune]\nobjective = \"score\"\ndirection = \"up\"\n[tune.space]\nlr = [0.1]\n",
            7,
            "\"maximize\" or \"minimize\"",
        );
        error_at(
            "[tune]\nobjective = \"score\"\nsampler = \"grid\"\n[tune.space]\nlr = [0.1]\n",
            7,
            "one of tpe, random",
        );
        error_at(
            "[tune]\nobjective = \"score\"\npruner = \"fast\"\n[tune.space]\nlr = [0.1]\n",
            7,
            "one of median",
        );
        error_at(
            "[tune]\nobjective = \"score\"\ntrials = 0\n[tune.space]\nlr = [0.1]\n",
            7,
            "at least 1",
        );
        error_at("[tune]\nobjective = \"score\"\n", 5, "has no [tune.space]");
        error_at(
            "[tune]\nobjective = \"score\"\nspaces = 1\n",
            7,
            "unknown field `spaces`",
        );
        // An op that reports nothing cannot be tuned.
        let e = RuleSet::from_sources(
            &[(
                "s".into(),
                "rules/s.toml".into(),
                "op = \"sql\"\n[params]\nquery = \"SELECT 1\"\n[tune]\nobjective = \"x\"\n[tune.space]\nquery = [\"SELECT 1\"]\n".into(),
            )],
            catalog(),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("rules/s.toml:5: tune.objective = \"x\": op 'sql' reports no value a study could optimise"), "{e}");
    }

    #[test]
    fn overlay_replaces_only_the_drawn_params() {
        let p = serde_json::json!({"hidden": 8, "heads": 2});
        let o = overlay(
            &p,
            &BTreeMap::from([("hidden".to_string(), Value::from(16))]),
        );
        assert_eq!(o, serde_json::json!({"hidden": 16, "heads": 2}));
    }
}
