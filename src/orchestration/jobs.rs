//! Jobs: named selections of assets in `rules/jobs/<name>.toml`, run by `lakebuild run
//! JOB`, optionally on a cron schedule (`lakebuild tick`, see [`crate::orchestration::schedule`]).
//!
//! ```toml
//! # rules/jobs/daily_inference.toml
//! description = "today's predictions"
//! select = ["+predictions"]   # `x`: x; `+x`: x and its upstream; `x+`: x and its downstream
//! partitions = "latest"       # "latest": only the run date's partitions; "all" (default)
//! cron = "0 2 * * 1-5"        # optional schedule, evaluated by `lakebuild tick`
//! timezone = "Asia/Tokyo"     # any IANA zone (default UTC); DST handled
//! catch_up = "latest"         # after missed ticks: "latest" runs once, "all" runs each
//! ```

use crate::core::error::UsageError;
use crate::core::rule_set::RuleSet;
use crate::engine::BuildOptions;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;
use std::str::FromStr;

/// Which partitions of the selected daily assets a run builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Partitions {
    #[default]
    All,
    /// Only the run date's partition (the schedule's date, or today).
    Latest,
}

/// After missed ticks, run the latest due occurrence only or every one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    #[default]
    Latest,
    All,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    #[serde(default)]
    description: Option<String>,
    select: Vec<String>,
    #[serde(default)]
    partitions: Partitions,
    #[serde(default)]
    cron: Option<String>,
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    catch_up: CatchUp,
}

/// A job's schedule.
#[derive(Debug, Clone)]
pub struct JobSchedule {
    pub cron: String,
    pub timezone: chrono_tz::Tz,
    pub catch_up: CatchUp,
}

/// One job, its selection resolved against the rule set.
#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    pub description: Option<String>,
    pub select: Vec<String>,
    /// The assets the selection names, in build order.
    pub assets: Vec<String>,
    pub partitions: Partitions,
    pub schedule: Option<JobSchedule>,
}

/// The assets a selection names: `x`, `+x` (and upstream), `x+` (and downstream).
pub fn resolve_selection(rules: &RuleSet, select: &[String]) -> Result<Vec<String>, String> {
    let mut keep = BTreeSet::new();
    for item in select {
        let up = item.starts_with('+');
        let down = item.ends_with('+') && item.len() > 1;
        let name = item.trim_start_matches('+').trim_end_matches('+');
        if !rules.rules.contains_key(name) {
            return Err(format!(
                "selection '{item}': no asset '{name}' (rules/{name}.toml)"
            ));
        }
        keep.insert(name.to_string());
        if up {
            keep.extend(rules.upstream_closure(&[name.to_string()]));
        }
        if down {
            keep.extend(downstream(rules, name));
        }
    }
    Ok(rules
        .order
        .iter()
        .filter(|a| keep.contains(*a))
        .cloned()
        .collect())
}

/// Every asset that reads `asset`, directly or not.
pub fn downstream(rules: &RuleSet, asset: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![asset.to_string()];
    while let Some(a) = stack.pop() {
        for (name, r) in &rules.rules {
            if r.inputs.iter().any(|i| i.asset == a) && out.insert(name.clone()) {
                stack.push(name.clone());
            }
        }
    }
    out
}

fn parse(name: &str, file: &Path, text: &str, rules: &RuleSet) -> Result<Job, String> {
    let at = file.display();
    let raw: RawJob =
        toml::from_str(text).map_err(|e| crate::core::rule_set::toml_error(file, text, &e))?;
    if raw.select.is_empty() {
        return Err(format!(
            "{at}: select is empty: name the assets, e.g. select = [\"+predictions\"]"
        ));
    }
    let assets = resolve_selection(rules, &raw.select).map_err(|e| format!("{at}: {e}"))?;
    let schedule = match (raw.cron, raw.timezone) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(format!(
                "{at}: timezone without cron: add cron = \"0 2 * * *\""
            ));
        }
        (Some(cron), tz) => {
            parse_cron(&cron).map_err(|e| format!("{at}: cron = \"{cron}\": {e}"))?;
            let timezone = match tz {
                None => chrono_tz::UTC,
                Some(t) => t.parse::<chrono_tz::Tz>().map_err(|_| {
                    format!("{at}: timezone = \"{t}\" is not an IANA time zone (e.g. \"Asia/Tokyo\", \"UTC\")")
                })?,
            };
            Some(JobSchedule {
                cron,
                timezone,
                catch_up: raw.catch_up,
            })
        }
    };
    Ok(Job {
        name: name.to_string(),
        description: raw.description,
        select: raw.select,
        assets,
        partitions: raw.partitions,
        schedule,
    })
}

/// Every job in `rules_dir/jobs/*.toml` (none when the folder does not exist). All
/// errors are reported at once, each with its file.
pub fn load(rules_dir: &Path, rules: &RuleSet) -> Result<Vec<Job>> {
    let mut jobs = Vec::new();
    let mut errors = Vec::new();
    for (name, f, text) in crate::engine::project::config_files(&rules_dir.join("jobs"))? {
        if !crate::core::rule::valid_asset_name(&name) {
            errors.push(format!(
                "{}: '{name}' is not a valid job name: use [a-z][a-z0-9_]*",
                f.display()
            ));
            continue;
        }
        match parse(&name, &f, &text, rules) {
            Ok(j) => jobs.push(j),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(UsageError(format!("invalid jobs:\n{}", errors.join("\n"))).into());
    }
    Ok(jobs)
}

/// The job named `name`.
pub fn find(rules_dir: &Path, rules: &RuleSet, name: &str) -> Result<Job> {
    let jobs = load(rules_dir, rules)?;
    let names: Vec<String> = jobs.iter().map(|j| j.name.clone()).collect();
    jobs.into_iter().find(|j| j.name == name).ok_or_else(|| {
        UsageError(format!(
            "no job '{name}': add rules/jobs/{name}.toml (jobs: {})",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        ))
        .into()
    })
}

/// `LAKEBUILD_LOCK_TIMEOUT` for the builds of `run`, `retry` and `tick` (10 minutes).
pub fn env_lock_timeout() -> std::time::Duration {
    std::env::var("LAKEBUILD_LOCK_TIMEOUT")
        .ok()
        .and_then(|v| crate::core::rule::parse_duration(&v))
        .unwrap_or(std::time::Duration::from_secs(600))
}

/// `LAKEBUILD_BATCH_SIZE` for the builds of `run`, `retry` and `tick` (500).
pub fn env_batch_size() -> usize {
    std::env::var("LAKEBUILD_BATCH_SIZE")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(BuildOptions::default().batch_size)
        .max(1)
}

/// The build options of one run of `job` for `date`.
pub fn run_options(
    job: &Job,
    date: chrono::NaiveDate,
    trigger: String,
    progress: bool,
) -> BuildOptions {
    let latest = job.partitions == Partitions::Latest;
    BuildOptions {
        lock_timeout: env_lock_timeout(),
        batch_size: env_batch_size(),
        targets: job.assets.clone(),
        only: true,
        from: latest.then_some(date),
        to: latest.then_some(date),
        trigger,
        today: date,
        progress,
        ..Default::default()
    }
}

/// A parsed 5-field cron expression (a job's `[schedule] cron`).
pub fn parse_cron(expr: &str) -> Result<croner::Cron, String> {
    if expr.split_whitespace().count() != 5 {
        return Err(
            "use 5 fields: minute hour day-of-month month day-of-week, e.g. \"0 2 * * 1-5\"".into(),
        );
    }
    croner::Cron::from_str(expr).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn rules() -> RuleSet {
        let daily = |inputs: &str| {
            format!(
                "op = \"sql\"\npartitioned = \"daily\"\ninputs = [{inputs}]\n[params]\nquery = \"SELECT 1\"\n"
            )
        };
        let v: Vec<(String, PathBuf, String)> = [
            (
                "a",
                "op = \"files\"\npartitioned = \"daily\"\n[params]\npath = \"x/*.csv\"\n"
                    .to_string(),
            ),
            ("b", daily("{ asset = \"a\" }")),
            ("c", daily("{ asset = \"b\" }")),
            ("d", daily("{ asset = \"a\" }")),
        ]
        .into_iter()
        .map(|(a, s)| (a.to_string(), PathBuf::from(format!("rules/{a}.toml")), s))
        .collect();
        RuleSet::from_sources(&v, &*crate::registry()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn selections_reach_upstream_and_downstream() {
        let r = rules();
        let s = |x: &[&str]| {
            resolve_selection(&r, &x.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        };
        assert_eq!(s(&["c"]), Ok(vec!["c".to_string()]));
        assert_eq!(s(&["+c"]), Ok(vec!["a".into(), "b".into(), "c".into()]));
        assert_eq!(s(&["b+"]), Ok(vec!["b".into(), "c".into()]));
        assert_eq!(
            s(&["a+"]),
            Ok(vec!["a".into(), "b".into(), "c".into(), "d".into()])
        );
        assert_eq!(s(&["+b+"]), Ok(vec!["a".into(), "b".into(), "c".into()]));
        assert!(s(&["ghost"]).unwrap_err().contains("no asset 'ghost'"));
    }

    #[test]
    fn bad_jobs_name_file_and_field() {
        let r = rules();
        let f = Path::new("rules/jobs/j.toml");
        let e = parse("j", f, "select = [\"c\"]\ncron = \"0 99 * * *\"\n", &r).unwrap_err();
        assert!(
            e.contains("rules/jobs/j.toml: cron = \"0 99 * * *\""),
            "{e}"
        );
        let e = parse(
            "j",
            f,
            "select = [\"c\"]\ncron = \"0 2 * * *\"\ntimezone = \"Mars/Olympus\"\n",
            &r,
        )
        .unwrap_err();
        assert!(e.contains("not an IANA time zone"), "{e}");
        let e = parse("j", f, "select = [\"c\"]\ncolour = 1\n", &r).unwrap_err();
        assert!(
            e.contains("rules/jobs/j.toml:2:") && e.contains("colour"),
            "{e}"
        );
        let j = parse("j", f, "select = [\"+c\"]\ncron = \"0 2 * * *\"\ntimezone = \"Asia/Tokyo\"\ncatch_up = \"all\"\npartitions = \"latest\"\n", &r)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(j.assets, ["a", "b", "c"]);
        assert_eq!(j.partitions, Partitions::Latest);
        assert_eq!(
            j.schedule.map(|s| (s.timezone, s.catch_up)),
            Some((chrono_tz::Asia::Tokyo, CatchUp::All))
        );
    }
}
