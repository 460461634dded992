//! Alerts: after every build (plain, `run JOB` or a scheduled tick), the problems it shows
//! (a failed step, a step that failed after retries, a failed check, model decay) are
//! announced once to the destinations in `rules/alerts/*.toml`, and announced again as
//! resolved when a later build shows the problem gone.
//!
//! ```toml
//! # rules/alerts/ops_channel.toml
//! webhook = "https://hooks.slack.com/services/…"  # JSON POST with a Slack `text` field
//! command = ["sh", "-c", "cat >> alerts.jsonl"]     # or/and: the alert as JSON on stdin
//! timeout = "5s"                                     # per attempt (default 5s)
//! attempts = 3                                       # webhook tries (default 3)
//! events = ["run_failed", "retry_exhausted", "check_failed", "model_decay"]  # default all
//! ```
//!
//! Open problems are kept in the lake (`_lakebuild/alerts.json`), so a problem seen by
//! ten cron runs is announced once. Delivery never fails or blocks a build: every attempt
//! is bounded by its timeout, and a destination that cannot be reached is reported on
//! stderr and in the log.

use crate::core::error::UsageError;
use crate::engine::BuildReport;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    RunFailed,
    RetryExhausted,
    CheckFailed,
    SlaBreach,
    ModelDecay,
    /// A promotion policy moved the production alias to a challenger.
    ModelPromoted,
    /// A promotion policy rolled the production alias back.
    ModelRolledBack,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::RunFailed => "build failed",
            Kind::RetryExhausted => "build failed after every retry",
            Kind::CheckFailed => "check failed",
            Kind::SlaBreach => "SLA breached",
            Kind::ModelDecay => "model decay",
            Kind::ModelPromoted => "model promoted",
            Kind::ModelRolledBack => "model rolled back",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDestination {
    #[serde(default)]
    webhook: Option<String>,
    #[serde(default)]
    command: Option<Vec<String>>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    attempts: Option<u32>,
    #[serde(default)]
    events: Option<Vec<Kind>>,
}

/// Where alerts go.
#[derive(Debug, Clone)]
pub struct Destination {
    pub name: String,
    pub webhook: Option<String>,
    pub command: Option<Vec<String>>,
    pub timeout: Duration,
    pub attempts: u32,
    pub events: Option<Vec<Kind>>,
}

/// A problem that is open (announced, not yet resolved).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    pub kind: Kind,
    pub asset: String,
    /// The check's name, for check problems.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    pub detail: String,
    pub since: chrono::DateTime<chrono::Utc>,
    pub run_id: String,
}

impl Problem {
    fn key(&self) -> String {
        match &self.check {
            Some(c) => format!("check:{}:{c}", self.asset),
            None => format!("failed:{}", self.asset),
        }
    }

    /// The asset, with the check's name for a check problem: `raw_stock_data 'unique'`.
    fn subject(&self) -> String {
        match &self.check {
            Some(c) => format!("{} '{c}'", self.asset),
            None => self.asset.clone(),
        }
    }
}

/// The JSON an alert is sent as (webhook body and command stdin).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Alert {
    /// Slack-compatible one-line summary.
    pub text: String,
    /// "firing" or "resolved" for a problem, "event" for a promotion or rollback.
    pub status: String,
    pub kind: Kind,
    pub asset: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    pub detail: String,
    pub run_id: String,
    pub at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    open: BTreeMap<String, Problem>,
    /// Alerts a destination could not take yet, by destination name: sent again (oldest
    /// first) before anything new, at most [`MAX_PENDING`] kept per destination.
    #[serde(default)]
    pending: BTreeMap<String, Vec<Alert>>,
}

/// Undelivered alerts kept per destination.
pub const MAX_PENDING: usize = 100;

fn state_file(lake: &Path) -> PathBuf {
    lake.join("_lakebuild").join("alerts.json")
}

/// The open problems; unreadable state starts afresh (alerting must never stop a build).
fn load_state(lake: &Path) -> State {
    crate::lake::state_file::read_json(&state_file(lake)).unwrap_or_default()
}

/// The problems open now, oldest first (`lakebuild serve`'s alerts).
pub fn open_problems(lake: &Path) -> Vec<Problem> {
    let mut open: Vec<Problem> = load_state(lake).open.into_values().collect();
    open.sort_by_key(|a| a.since);
    open
}

fn save_state(lake: &Path, s: &State) -> Result<()> {
    crate::lake::state_file::write_json(&state_file(lake), s)
}

/// The destinations in `rules_dir/alerts/*.toml` (none when the folder is absent).
pub fn load(rules_dir: &Path) -> Result<Vec<Destination>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (name, f, text) in crate::engine::project::config_files(&rules_dir.join("alerts"))? {
        let raw: RawDestination = match toml::from_str(&text) {
            Ok(r) => r,
            Err(e) => {
                errors.push(crate::core::rule_set::toml_error(&f, &text, &e));
                continue;
            }
        };
        if raw.webhook.is_none() && raw.command.as_ref().is_none_or(|c| c.is_empty()) {
            errors.push(format!(
                "{}: give webhook = \"https://…\" and/or command = [\"program\", …]",
                f.display()
            ));
            continue;
        }
        if let Some(w) = &raw.webhook
            && url::Url::parse(w).is_err()
        {
            errors.push(format!("{}: webhook = \"{w}\" is not a URL", f.display()));
            continue;
        }
        let timeout = match &raw.timeout {
            None => Duration::from_secs(5),
            Some(t) => match crate::core::rule::parse_duration(t) {
                Some(d) => d,
                None => {
                    errors.push(format!(
                        "{}: timeout = \"{t}\" is not a duration, e.g. 5s",
                        f.display()
                    ));
                    continue;
                }
            },
        };
        out.push(Destination {
            name,
            webhook: raw.webhook,
            command: raw.command,
            timeout,
            attempts: raw.attempts.unwrap_or(3).max(1),
            events: raw.events,
        });
    }
    if !errors.is_empty() {
        return Err(UsageError(format!(
            "invalid alert destinations:\n{}",
            errors.join("\n")
        ))
        .into());
    }
    Ok(out)
}

/// The problems a build shows, and the (asset, check) pairs it saw healthy.
fn problems(report: &BuildReport, decay_assets: &[String]) -> (Vec<Problem>, Vec<String>) {
    let now = crate::clock::now();
    let mut found = Vec::new();
    let mut healthy = Vec::new();
    for s in &report.steps {
        if s.skipped {
            continue;
        }
        match &s.failed {
            Some(e) => found.push(Problem {
                kind: if s.attempts > 1 {
                    Kind::RetryExhausted
                } else {
                    Kind::RunFailed
                },
                asset: s.asset.clone(),
                check: None,
                detail: e.clone(),
                since: now,
                run_id: report.run_id.clone(),
            }),
            None => healthy.push(format!("failed:{}", s.asset)),
        }
        for c in &s.checks {
            let key = format!("check:{}:{}", s.asset, c.name);
            if c.passed {
                healthy.push(key);
            } else {
                let decay = decay_assets.contains(&s.asset) && c.name.contains("decay");
                found.push(Problem {
                    kind: if decay {
                        Kind::ModelDecay
                    } else {
                        Kind::CheckFailed
                    },
                    asset: s.asset.clone(),
                    check: Some(c.name.clone()),
                    detail: c.detail.chars().take(2000).collect(),
                    since: now,
                    run_id: report.run_id.clone(),
                });
            }
        }
    }
    (found, healthy)
}

/// Opens new problems and resolves healed ones; returns the alerts to send (pure apart
/// from the clock).
fn transitions(
    state: &mut State,
    found: Vec<Problem>,
    healthy: &[String],
    run_id: &str,
) -> Vec<Alert> {
    let now = crate::clock::now();
    let mut alerts = Vec::new();
    for p in found {
        let key = p.key();
        if state.open.contains_key(&key) {
            continue;
        }
        alerts.push(Alert {
            text: format!(
                "lakebuild: {} — {}: {}",
                p.kind.describe(),
                p.subject(),
                first_line(&p.detail)
            ),
            status: "firing".into(),
            kind: p.kind,
            asset: p.asset.clone(),
            check: p.check.clone(),
            detail: p.detail.clone(),
            run_id: p.run_id.clone(),
            at: now,
        });
        state.open.insert(key, p);
    }
    for key in healthy {
        if let Some(p) = state.open.remove(key) {
            alerts.push(Alert {
                text: format!(
                    "lakebuild: resolved — {} ({} since {})",
                    p.subject(),
                    p.kind.describe(),
                    p.since.format("%Y-%m-%d %H:%M UTC")
                ),
                status: "resolved".into(),
                kind: p.kind,
                asset: p.asset,
                check: p.check,
                detail: String::new(),
                run_id: run_id.to_string(),
                at: now,
            });
        }
    }
    alerts
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(300).collect()
}

/// Sends one alert to one destination; errors are returned, never raised.
fn deliver(d: &Destination, alert: &Alert) -> Result<(), String> {
    let body = serde_json::to_string(alert).map_err(|e| e.to_string())?;
    let mut errors = Vec::new();
    if let Some(url) = &d.webhook {
        let agent = ureq::AgentBuilder::new().timeout(d.timeout).build();
        for attempt in 0..d.attempts {
            match agent
                .post(url)
                .set("Content-Type", "application/json")
                .send_string(&body)
            {
                Ok(_) => break,
                Err(ureq::Error::Status(code, _)) if code < 500 && code != 429 => {
                    errors.push(format!("webhook answered {code}"));
                    break;
                }
                Err(e) => {
                    if attempt + 1 == d.attempts {
                        errors.push(format!("webhook: {}", e.kind()));
                    } else {
                        std::thread::sleep(Duration::from_millis(200 << attempt));
                    }
                }
            }
        }
    }
    if let Some(cmd) = &d.command
        && let Some((prog, args)) = cmd.split_first()
    {
        match run_command(prog, args, &body, d.timeout) {
            Ok(()) => {}
            Err(e) => errors.push(format!("command: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

fn run_command(prog: &str, args: &[String], stdin: &str, timeout: Duration) -> Result<(), String> {
    let mut child = std::process::Command::new(prog)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {prog}: {e}"))?;
    if let Some(mut i) = child.stdin.take() {
        // One JSON document per line, so a command may simply append stdin to a file.
        let _ = i
            .write_all(stdin.as_bytes())
            .and_then(|_| i.write_all(b"\n"));
    }
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(s)) if s.success() => return Ok(()),
            Ok(Some(s)) => return Err(format!("{prog} exited with {s}")),
            Ok(None) if start.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{prog} did not finish within {timeout:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// SLA breaches as problems, and the SLA keys found healthy.
fn sla_problems(
    project: &crate::engine::project::Project,
    run_id: &str,
) -> (Vec<Problem>, Vec<String>) {
    if project.rules.rules.values().all(|r| r.sla.is_none()) {
        // No SLA anywhere: no need to read the run history after every build.
        return (Vec::new(), Vec::new());
    }
    let now = crate::clock::now();
    let rows = match crate::lake::runs::read_all(&project.lake) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("alerts: cannot read the run history for SLAs: {e:#}");
            return (Vec::new(), Vec::new());
        }
    };
    let (breaches, evaluated) = match crate::query::sla::evaluate(project, &rows, now) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("alerts: cannot evaluate SLAs: {e:#}");
            return (Vec::new(), Vec::new());
        }
    };
    let found: Vec<Problem> = breaches
        .iter()
        .map(|b| Problem {
            kind: Kind::SlaBreach,
            asset: b.asset.clone(),
            check: Some(format!("sla:{}", b.kind)),
            detail: b.detail.clone(),
            since: crate::clock::now(),
            run_id: run_id.to_string(),
        })
        .collect();
    let mut healthy = Vec::new();
    for a in &evaluated {
        for kind in ["duration", "deadline", "success_rate"] {
            if !breaches.iter().any(|b| &b.asset == a && b.kind == kind) {
                healthy.push(format!("check:{a}:sla:{kind}"));
            }
        }
    }
    (found, healthy)
}

/// A scheduled job that could not run at all (no build happened, e.g. the lake stayed
/// locked): announced as a failure of the job, until it runs again.
pub fn could_not_run(project: &crate::engine::project::Project, job: &str, error: &str) {
    let p = Problem {
        kind: Kind::RunFailed,
        asset: format!("job {job}"),
        check: None,
        detail: format!("the scheduled run could not start: {error}"),
        since: crate::clock::now(),
        run_id: "tick".into(),
    };
    announce(project, vec![p], Vec::new(), Vec::new(), "tick");
}

/// A scheduled job ran: resolves an open "could not run" problem of it.
pub fn could_run(project: &crate::engine::project::Project, job: &str) {
    announce(
        project,
        Vec::new(),
        vec![format!("failed:job {job}")],
        Vec::new(),
        "tick",
    );
}

/// After a tick: SLA breaches (a deadline passes without any build). Never fails.
pub fn after_tick(project: &crate::engine::project::Project) {
    let (found, healthy) = sla_problems(project, "tick");
    announce(project, found, healthy, Vec::new(), "tick");
}

/// After a build: update the open problems and announce what changed. Never fails.
pub fn after_build(project: &crate::engine::project::Project, report: &BuildReport) {
    let decay_assets: Vec<String> = project
        .rules
        .rules
        .values()
        .filter(|r| r.op == "performance")
        .map(|r| r.asset.clone())
        .collect();
    let (mut found, mut healthy) = problems(report, &decay_assets);
    let (f, h) = sla_problems(project, &report.run_id);
    found.extend(f);
    healthy.extend(h);
    announce(project, found, healthy, Vec::new(), &report.run_id);
}

/// Announces an event that is not a problem (a promotion, a rollback): sent once to
/// every destination that takes its kind (status `event`), queued like any alert when a
/// destination is down. Never fails.
pub fn announce_event(
    project: &crate::engine::project::Project,
    kind: Kind,
    asset: &str,
    detail: &str,
    run_id: &str,
) {
    let alert = Alert {
        text: format!(
            "lakebuild: {} — {asset}: {}",
            kind.describe(),
            first_line(detail)
        ),
        status: "event".into(),
        kind,
        asset: asset.to_string(),
        check: None,
        detail: detail.to_string(),
        run_id: run_id.to_string(),
        at: crate::clock::now(),
    };
    announce(project, Vec::new(), Vec::new(), vec![alert], run_id);
}

fn announce(
    project: &crate::engine::project::Project,
    found: Vec<Problem>,
    healthy: Vec<String>,
    events: Vec<Alert>,
    run_id: &str,
) {
    let destinations = match load(&project.rules_dir) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("alerts: {e:#}");
            return;
        }
    };
    let lake = &project.lake.root;
    // The common case, a healthy build with nothing open or undelivered, touches nothing
    // (no lock, no write): cron may run no-op builds every few minutes.
    let seen = load_state(lake);
    if found.is_empty()
        && events.is_empty()
        && seen.pending.values().all(Vec::is_empty)
        && !healthy.iter().any(|k| seen.open.contains_key(k))
    {
        return;
    }
    // One process at a time reads, changes and writes the open problems (a tick and a
    // manual build may finish together).
    let _lock = match crate::lake::lock::acquire_named(
        lake,
        "alerts.lock",
        "alerts",
        Duration::from_secs(60),
    ) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("alerts: {e:#}; alerts of this run were not processed");
            return;
        }
    };
    let mut state = load_state(lake);
    let mut alerts = transitions(&mut state, found, &healthy, run_id);
    alerts.extend(events);
    for d in &destinations {
        let mut queue = state.pending.remove(&d.name).unwrap_or_default();
        queue.extend(
            alerts
                .iter()
                .filter(|a| d.events.as_ref().is_none_or(|ev| ev.contains(&a.kind)))
                .cloned(),
        );
        let mut left = Vec::new();
        for a in queue {
            // Once a delivery fails, the rest wait too (order is kept, time is bounded).
            if !left.is_empty() {
                left.push(a);
                continue;
            }
            if let Err(e) = deliver(d, &a) {
                tracing::warn!("alert to {} failed: {e}", d.name);
                eprintln!(
                    "alerts: could not notify '{}' ({e}); kept to send again on the next build or tick; the build's result is unaffected",
                    d.name
                );
                left.push(a);
            }
        }
        let drop = left.len().saturating_sub(MAX_PENDING);
        if drop > 0 {
            eprintln!(
                "alerts: '{}' has been unreachable for {} alerts; dropping the {drop} oldest",
                d.name,
                left.len()
            );
            left.drain(..drop);
        }
        if !left.is_empty() {
            state.pending.insert(d.name.clone(), left);
        }
    }
    if let Err(e) = save_state(lake, &state) {
        eprintln!("alerts: cannot record open problems: {e:#}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(asset: &str, check: Option<&str>) -> Problem {
        Problem {
            kind: Kind::RunFailed,
            asset: asset.into(),
            check: check.map(String::from),
            detail: "boom\nmore".into(),
            since: crate::clock::now(),
            run_id: "r1".into(),
        }
    }

    #[test]
    fn a_problem_is_announced_once_and_its_recovery_once() {
        let mut s = State::default();
        let a = transitions(&mut s, vec![p("x", None)], &[], "r1");
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].status, "firing");
        assert!(
            a[0].text.contains("build failed — x: boom"),
            "{}",
            a[0].text
        );
        assert!(
            transitions(&mut s, vec![p("x", None)], &[], "r2").is_empty(),
            "no repeat while open"
        );
        let r = transitions(&mut s, vec![], &["failed:x".to_string()], "r3");
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].status, "resolved");
        assert!(transitions(&mut s, vec![], &["failed:x".to_string()], "r4").is_empty());
    }
}
