//! The rule set: every rule of a `rules/` folder, validated together (inputs resolved,
//! cycles found) and ordered so that inputs come before the assets that read them.

use crate::catalog::Catalog;
use crate::error::UsageError;
use crate::partition::Coverage;
use crate::rule::{Rule, parse_rule};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

#[derive(Debug, Clone)]
pub struct RuleSet {
    pub rules: BTreeMap<String, Rule>,
    /// Topological order: every asset after all of its inputs.
    pub order: Vec<String>,
}

impl RuleSet {
    /// Validates rules given as (asset, file path, text).
    pub fn from_sources(
        files: &[(String, std::path::PathBuf, String)],
        catalog: &dyn Catalog,
    ) -> anyhow::Result<RuleSet> {
        let names: BTreeSet<&str> = files.iter().map(|(a, _, _)| a.as_str()).collect();
        let known = |n: &str| names.contains(n);
        let mut errors = Vec::new();
        let mut rules = BTreeMap::new();
        for (asset, path, src) in files {
            match parse_rule(path, src, asset, &known, catalog) {
                Ok(r) => {
                    rules.insert(asset.clone(), r);
                }
                Err(e) => errors.extend(e),
            }
        }
        // Resolve each input's coverage now that partitioning is known.
        let daily: BTreeMap<String, bool> =
            rules.iter().map(|(k, r)| (k.clone(), r.daily)).collect();
        for rule in rules.values_mut() {
            for input in &mut rule.inputs {
                match daily.get(&input.asset) {
                    Some(false) if input.window_given => errors.push(format!(
                        "{}:{}: input '{}' is not partitioned, so it has no window: use as_of = true or no option",
                        rule.file.display(),
                        input.line,
                        input.asset
                    )),
                    Some(false) if matches!(input.coverage, Coverage::Period { .. }) => {
                        errors.push(format!(
                            "{}:{}: input '{}' is not partitioned, so it has no periods: remove period and lag",
                            rule.file.display(),
                            input.line,
                            input.asset
                        ))
                    }
                    Some(false) => input.coverage = Coverage::Whole,
                    _ => {}
                }
            }
            let has_daily_input = rule
                .inputs
                .iter()
                .any(|i| daily.get(&i.asset) == Some(&true));
            if let Some(op) = catalog.op(&rule.op) {
                errors.extend(
                    op.validate(rule)
                        .into_iter()
                        .map(|(line, e)| format!("{}:{line}: {e}", rule.file.display())),
                );
                errors.extend(crate::rule::tune::check_edges(rule, op));
            }
            let discovers = catalog
                .op(&rule.op)
                .is_some_and(|o| o.discovers_partitions());
            if rule.daily && rule.dates.is_none() && !has_daily_input && !discovers {
                errors.push(format!(
                    "{}:1: daily asset '{}' has no dates: add a daily input, or dates = {{ from = \"YYYY-MM-DD\", to = \"today\" }}",
                    rule.file.display(),
                    rule.asset
                ));
            }
        }
        if errors.is_empty()
            && let Some(cycle) = find_cycle(&rules)
        {
            let files: Vec<String> = cycle[..cycle.len() - 1]
                .iter()
                .filter_map(|a| rules.get(a).map(|r| r.file.display().to_string()))
                .collect();
            errors.push(format!(
                "dependency cycle: {} (in {}): remove one of these inputs",
                cycle.join(" -> "),
                files.join(", ")
            ));
        }
        if !errors.is_empty() {
            let n = errors.len();
            return Err(UsageError(format!(
                "{}\n{n} error{} in the rule set: nothing was built",
                errors.join("\n"),
                if n == 1 { "" } else { "s" }
            ))
            .into());
        }
        let order = topological_order(&rules);
        Ok(RuleSet { rules, order })
    }

    pub fn get(&self, asset: &str) -> Option<&Rule> {
        self.rules.get(asset)
    }

    /// The rule of `asset`, or a usage error listing the known assets.
    pub fn require(&self, asset: &str) -> anyhow::Result<&Rule> {
        self.rules.get(asset).ok_or_else(|| {
            UsageError(format!(
                "unknown asset '{asset}': known assets are {}",
                self.rules.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
            .into()
        })
    }

    /// `targets` and everything upstream of them, in topological order.
    pub fn upstream_closure(&self, targets: &[String]) -> Vec<String> {
        let mut keep = BTreeSet::new();
        let mut stack: Vec<&str> = targets.iter().map(|s| s.as_str()).collect();
        while let Some(a) = stack.pop() {
            if keep.insert(a.to_string())
                && let Some(r) = self.rules.get(a)
            {
                stack.extend(r.inputs.iter().map(|i| i.asset.as_str()));
            }
        }
        self.order
            .iter()
            .filter(|a| keep.contains(*a))
            .cloned()
            .collect()
    }
}

fn find_cycle(rules: &BTreeMap<String, Rule>) -> Option<Vec<String>> {
    // 0 = unvisited, 1 = on stack, 2 = done
    let mut state: BTreeMap<&str, u8> = BTreeMap::new();
    let mut path: Vec<&str> = Vec::new();
    fn visit<'a>(
        a: &'a str,
        rules: &'a BTreeMap<String, Rule>,
        state: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match state.get(a) {
            Some(2) => return None,
            Some(1) => {
                let start = path.iter().position(|p| *p == a).unwrap_or(0);
                let mut cycle: Vec<String> = path[start..].iter().map(|s| s.to_string()).collect();
                cycle.push(a.to_string());
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(a, 1);
        path.push(a);
        if let Some(r) = rules.get(a) {
            for i in &r.inputs {
                if let Some(c) = visit(&i.asset, rules, state, path) {
                    return Some(c);
                }
            }
        }
        path.pop();
        state.insert(a, 2);
        None
    }
    for a in rules.keys() {
        if let Some(c) = visit(a, rules, &mut state, &mut path) {
            return Some(c);
        }
    }
    None
}

fn topological_order(rules: &BTreeMap<String, Rule>) -> Vec<String> {
    let mut done = BTreeSet::new();
    let mut order = Vec::new();
    fn visit(
        a: &str,
        rules: &BTreeMap<String, Rule>,
        done: &mut BTreeSet<String>,
        order: &mut Vec<String>,
    ) {
        if done.contains(a) {
            return;
        }
        done.insert(a.to_string());
        if let Some(r) = rules.get(a) {
            for i in &r.inputs {
                visit(&i.asset, rules, done, order);
            }
        }
        order.push(a.to_string());
    }
    for a in rules.keys() {
        visit(a, rules, &mut done, &mut order);
    }
    order
}

/// `file:line: message` of a TOML syntax or shape error in `text`.
pub fn toml_error(file: &Path, text: &str, e: &toml::de::Error) -> String {
    let line = e
        .span()
        .map(|s| crate::rule::line_of(text, s.start))
        .unwrap_or(1);
    format!("{}:{line}: {}", file.display(), e.message().trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn load(files: &[(&str, &str)]) -> Result<RuleSet, String> {
        let v: Vec<(String, PathBuf, String)> = files
            .iter()
            .map(|(a, s)| {
                (
                    a.to_string(),
                    PathBuf::from(format!("rules/{a}.toml")),
                    s.to_string(),
                )
            })
            .collect();
        RuleSet::from_sources(&v, crate::catalog::fixture::catalog()).map_err(|e| e.to_string())
    }

    fn err(files: &[(&str, &str)]) -> String {
        match load(files) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e,
        }
    }

    const SRC: &str = "op = \"files\"\npartitioned = \"daily\"\n[params]\npath = \"data/*.csv\"\n";

    #[test]
    fn a_valid_set_orders_inputs_first() -> Result<(), String> {
        let rs = load(&[
            (
                "b",
                "op = \"sql\"\npartitioned = \"daily\"\ninputs = [{ asset = \"a\", window = [-2, 0] }]\n[params]\nquery = \"SELECT * FROM a\"\n",
            ),
            ("a", SRC),
        ])?;
        assert_eq!(rs.order, ["a", "b"]);
        assert_eq!(rs.rules["b"].inputs[0].coverage, Coverage::Window(-2, 0));
        Ok(())
    }

    #[test]
    fn period_inputs_and_aliases_parse_and_bad_ones_are_refused_with_their_line()
    -> Result<(), String> {
        let model = |inputs: &str| {
            format!("op = \"sql\"\ninputs = [\n  {inputs},\n]\n[params]\nquery = \"SELECT 1\"\n")
        };
        let rs = load(&[
            ("a", SRC),
            (
                "m",
                &model("{ asset = \"a\", period = \"monthly\", lag = 20 }"),
            ),
            ("p", &model("{ asset = \"m@production\" }")),
        ])?;
        assert_eq!(
            rs.rules["m"].inputs[0].coverage,
            Coverage::Period {
                every: crate::partition::Period::Monthly,
                lag: 20
            }
        );
        assert_eq!(rs.rules["p"].inputs[0].asset, "m");
        assert_eq!(rs.rules["p"].inputs[0].alias.as_deref(), Some("production"));
        let e = err(&[
            ("a", SRC),
            ("m", &model("{ asset = \"a\", period = \"hourly\" }")),
        ]);
        assert!(
            e.contains("rules/m.toml:3: input 'a': period = \"hourly\" is not one of weekly"),
            "{e}"
        );
        let e = err(&[("a", SRC), ("m", &model("{ asset = \"a\", lag = 3 }"))]);
        assert!(
            e.contains("rules/m.toml:3: input 'a': lag needs a period"),
            "{e}"
        );
        let daily = "op = \"sql\"\npartitioned = \"daily\"\ninputs = [{ asset = \"a\", period = \"monthly\" }]\n[params]\nquery = \"SELECT 1\"\n";
        let e = err(&[("a", SRC), ("d", daily)]);
        assert!(e.contains("period is for an unpartitioned output"), "{e}");
        let e = err(&[("a", SRC), ("p", &model("{ asset = \"a@Prod\" }"))]);
        assert!(e.contains("an alias is lowercase"), "{e}");
        Ok(())
    }

    #[test]
    fn unknown_op_names_file_line_and_choices() {
        let e = err(&[("a", "\n\nop = \"nope\"\n")]);
        assert!(e.contains("rules/a.toml:3: unknown op 'nope'"), "{e}");
        assert!(e.contains("files, sql, command"), "{e}");
        assert!(e.contains("nothing was built"), "{e}");
    }

    #[test]
    fn unknown_input_is_reported_with_its_line() {
        let e = err(&[(
            "a",
            "op = \"sql\"\ninputs = [\n  { asset = \"ghost\" },\n]\n[params]\nquery = \"SELECT 1\"\n",
        )]);
        assert!(
            e.contains("rules/a.toml:3: unknown input asset 'ghost'"),
            "{e}"
        );
    }

    #[test]
    fn cycles_are_printed() {
        let q = "[params]\nquery = \"SELECT 1\"\n";
        let e = err(&[
            (
                "a",
                &format!("op = \"sql\"\ninputs = [{{ asset = \"b\" }}]\n{q}"),
            ),
            (
                "b",
                &format!("op = \"sql\"\ninputs = [{{ asset = \"c\" }}]\n{q}"),
            ),
            (
                "c",
                &format!("op = \"sql\"\ninputs = [{{ asset = \"a\" }}]\n{q}"),
            ),
        ]);
        assert!(e.contains("dependency cycle: a -> b -> c -> a"), "{e}");
    }

    #[test]
    fn bad_window_and_window_on_unpartitioned() {
        let e = err(&[
            ("a", SRC),
            (
                "b",
                "op = \"sql\"\npartitioned = \"daily\"\ninputs = [{ asset = \"a\", window = [3, -1] }]\n[params]\nquery = \"SELECT 1\"\n",
            ),
        ]);
        assert!(
            e.contains("rules/b.toml:3:") && e.contains("start <= end"),
            "{e}"
        );
        let e = err(&[
            ("a", "op = \"sql\"\n[params]\nquery = \"SELECT 1\"\n"),
            (
                "b",
                "op = \"sql\"\npartitioned = \"daily\"\ndates = { from = \"2024-01-01\", to = \"2024-01-31\" }\ninputs = [{ asset = \"a\", window = [-1, 0] }]\n[params]\nquery = \"SELECT 1\"\n",
            ),
        ]);
        assert!(
            e.contains("rules/b.toml:4: input 'a' is not partitioned"),
            "{e}"
        );
    }

    #[test]
    fn bad_asset_name() {
        let e = err(&[("Bad-Name", SRC)]);
        assert!(
            e.contains("'Bad-Name' is not a valid asset name") && e.contains("bad_name.toml"),
            "{e}"
        );
    }

    #[test]
    fn params_are_typed_and_unknown_ones_rejected() {
        let e = err(&[("a", "op = \"sql\"\n[params]\nquery = 3\n")]);
        assert!(
            e.contains("rules/a.toml:3: param 'query' must be a string (got integer)"),
            "{e}"
        );
        let e = err(&[(
            "a",
            "op = \"sql\"\n[params]\nquery = \"SELECT 1\"\nqeury = \"x\"\n",
        )]);
        assert!(
            e.contains("rules/a.toml:4: op 'sql' has no param 'qeury'"),
            "{e}"
        );
        let e = err(&[("a", "op = \"sql\"\n")]);
        assert!(e.contains("needs param 'query'"), "{e}");
    }

    #[test]
    fn unknown_keys_and_syntax_errors_have_lines() {
        let e = err(&[("a", "op = \"sql\"\nwindw = 3\n")]);
        assert!(
            e.contains("rules/a.toml:2:") && e.contains("unknown field"),
            "{e}"
        );
        let e = err(&[("a", "op = \"sql\"\nparams = {\n")]);
        assert!(e.contains("rules/a.toml:2:"), "{e}");
    }

    #[test]
    fn sources_outside_the_project_are_refused_with_file_and_line() {
        let e = err(&[(
            "a",
            "op = \"sql\"\nsources = [\"/etc/*\"]\n[params]\nquery = \"SELECT 1\"\n",
        )]);
        assert!(
            e.contains("rules/a.toml:2: source '/etc/*' is outside the project"),
            "{e}"
        );
        let e = err(&[(
            "a",
            "op = \"sql\"\nsources = [\"scripts/../../x\"]\n[params]\nquery = \"SELECT 1\"\n",
        )]);
        assert!(
            e.contains("rules/a.toml:2: source 'scripts/../../x' is outside the project"),
            "{e}"
        );
        // The files an op reads (the files op's `path`) too, at the param's line.
        let e = err(&[(
            "a",
            "op = \"files\"\npartitioned = \"daily\"\n[params]\npath = \"../data/*.csv\"\n",
        )]);
        assert!(
            e.contains("rules/a.toml:4: '../data/*.csv' is outside the project"),
            "{e}"
        );
        assert!(load(&[("a", SRC)]).is_ok());
    }

    #[test]
    fn checks_retry_and_dates_are_validated() {
        let e = err(&[("a", &format!("{SRC}[[checks]]\nkind = \"unique\"\n"))]);
        assert!(e.contains("check 'unique' needs columns"), "{e}");
        let e = err(&[(
            "a",
            &format!("{SRC}[[checks]]\nkind = \"sorted\"\ncolumns = [\"x\"]\n"),
        )]);
        assert!(e.contains("unknown check kind 'sorted'"), "{e}");
        let e = err(&[(
            "a",
            &format!("{SRC}[retry]\nattempts = 3\ninitial = \"soon\"\n"),
        )]);
        assert!(e.contains("retry.initial 'soon' is not a duration"), "{e}");
        let e = err(&[(
            "a",
            "op = \"sql\"\npartitioned = \"daily\"\n[params]\nquery = \"SELECT 1\"\n",
        )]);
        assert!(e.contains("daily asset 'a' has no dates"), "{e}");
        let e = err(&[(
            "a",
            "op = \"sql\"\npartitioned = \"hourly\"\n[params]\nquery = \"SELECT 1\"\n",
        )]);
        assert!(
            e.contains("rules/a.toml:2: partitioned = \"hourly\" is not supported"),
            "{e}"
        );
    }

    #[test]
    fn all_errors_are_reported_at_once() {
        let e = err(&[
            ("a", "op = \"nope\"\n"),
            ("b", "op = \"sql\"\n[params]\nquery = 1\n"),
        ]);
        assert!(e.contains("2 errors in the rule set"), "{e}");
    }
}
