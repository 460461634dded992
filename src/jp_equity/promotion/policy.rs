//! Evaluating a model asset's `[promotion]`: who is champion and challenger, what the
//! evidence says, and what to do — put a new version on trial, promote, retire a
//! challenger that never proved itself, roll back, or wait — with the reason and the
//! statistics. [`evaluate`] only reads; [`apply`] acts under the lake lock and logs.
//!
//! States (the challenger's *role*, kept in the promotion log):
//! - `trial`: the challenger may be promoted. Evidence is its daily RankIC against the
//!   champion's on the days out of sample for both (after both training ranges; rows of
//!   each side's own model only). A trial is held until decided:
//!   a newer version waits (the repository retrains monthly, and a month of days is too
//!   few to tell a real edge from noise). Promote when the sequential test
//!   ([`super::sequential`]) rejects at `alpha`, the mean improvement is at least
//!   `min_improvement`, and at least `min_days` days are in; retire after `max_days`.
//! - `watch`: after a promotion the previous champion stays the challenger, scored every
//!   day, so a decaying champion can be rolled back to it: when the champion's decay
//!   check (a check named `*decay*` on an asset reading the champion's scores) fails and
//!   the previous champion scores better on the last `rollback_window` days by the same
//!   test. The rolled-back version stays the challenger, retired: it is never
//!   re-promoted on the evidence it lost on, and newer versions go on trial as usual.
//! - `retired`, `none`: no trial; the next version newer than any the policy has seen
//!   is put on trial.
//!
//! Aliases moved by hand (`lakebuild model alias`) are respected: a challenger a person
//! set is on trial; after a person moves only production (a rollback by hand), the
//! challenger is not on trial, and versions the policy has already seen are not put on
//! trial again.

use super::sequential::{SequentialTest, Verdict, test, verdict};
use crate::core::error::UsageError;
use crate::core::rule::Promotion;
use crate::engine::project::Project;
use crate::jp_equity::model::dataset::{horizon_days_of, horizon_tag};
use crate::jp_equity::model_compare::{CompareOptions, labels_frame, side_scores};
use crate::jp_equity::model_versions::{self, ModelVersion};
use crate::lake::{aliases, promotions};
use anyhow::Result;
use chrono::NaiveDate;
use serde::Serialize;

/// What the policy decides.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "version")]
pub enum Action {
    /// Move the alias to the challenger; the old champion is watched for a rollback.
    Promote,
    /// Move the alias back to the previous champion.
    Rollback,
    /// End the challenger's trial without promoting it.
    Retire,
    /// Put this version on trial.
    Challenger(i64),
    /// Nothing to do yet.
    Wait,
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Promote => "promote",
            Action::Rollback => "rollback",
            Action::Retire => "retire",
            Action::Challenger(_) => "challenger",
            Action::Wait => "wait",
        }
    }
}

/// One evaluation of the policy.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub asset: String,
    pub alias: String,
    pub challenger_alias: String,
    pub champion: Option<i64>,
    pub challenger: Option<i64>,
    /// The challenger's role before the decision (`trial`, `watch`, `retired`, `none`).
    pub role: String,
    pub action: Action,
    pub reason: String,
    /// The test the decision rests on, with the days it covered.
    pub test: Option<SequentialTest>,
    pub first_day: Option<NaiveDate>,
    pub last_day: Option<NaiveDate>,
    /// The champion's decay check, when it is failing.
    pub decay: Option<String>,
    /// Decisions logged when it was evaluated (it is carried out only if still so), and
    /// the latest of them.
    #[serde(skip)]
    pub decisions: usize,
    #[serde(skip)]
    pub last: Option<promotions::Decision>,
}

/// The state the promotion log and the aliases describe.
struct State {
    champion: Option<i64>,
    challenger: Option<i64>,
    role: String,
    /// The newest version the policy's log names (seen: never put on trial again).
    seen: Option<i64>,
    /// When (wall clock, ms) the policy last made the champion champion (0: it did not).
    champion_since_ms: i64,
    /// How many decisions about the asset are logged (a decision is carried out only if
    /// none was logged meanwhile), and the latest.
    decisions: usize,
    last: Option<promotions::Decision>,
}

fn state(project: &Project, asset: &str, p: &Promotion) -> Result<State> {
    let lake = &project.lake.root;
    let champion = aliases::resolve(lake, asset, &p.alias)?;
    let challenger = aliases::resolve(lake, asset, &p.challenger)?;
    let mut log = promotions::of(lake, asset)?;
    let seen = log
        .iter()
        .flat_map(|d| [d.champion, d.challenger, d.then_champion, d.then_challenger])
        .flatten()
        .max();
    let champion_since_ms = log
        .iter()
        .rev()
        .find(|d| d.then_champion == champion && (d.action == "promote" || d.action == "rollback"))
        .map_or(0, |d| d.at_ms);
    let decisions = log.len();
    let last = log.pop();
    let role = match (&last, challenger) {
        // The log's state holds while the aliases are where it left them.
        (Some(d), _) if d.then_champion == champion && d.then_challenger == challenger => {
            d.role.clone()
        }
        // Moved by hand since: a challenger a person set is on trial; one left where the
        // policy put it while production was moved by hand is not.
        (_, None) => "none".into(),
        (_, Some(c)) if Some(c) == champion => "none".into(),
        (Some(d), Some(c)) if d.then_challenger == Some(c) => "retired".into(),
        _ => "trial".into(),
    };
    Ok(State {
        champion,
        challenger,
        role,
        seen,
        champion_since_ms,
        decisions,
        last,
    })
}

/// The `[promotion]` of `asset`, or a usage error naming the rules that have one.
pub fn policy_of<'a>(project: &'a Project, asset: &str) -> Result<&'a Promotion> {
    project
        .rules
        .get(asset)
        .and_then(|r| r.promotion.as_ref())
        .ok_or_else(|| {
            let with: Vec<&str> = project
                .rules
                .rules
                .values()
                .filter(|r| r.promotion.is_some())
                .map(|r| r.asset.as_str())
                .collect();
            UsageError(format!(
                "{asset} has no [promotion] in its rule; assets with one: {}",
                if with.is_empty() {
                    "none".to_string()
                } else {
                    with.join(", ")
                }
            ))
            .into()
        })
}

/// What an evaluation reads from the lake beyond the aliases and the log, each read on
/// first use and at most once: the run history and the model asset's table log.
struct Reads<'a> {
    project: &'a Project,
    asset: &'a str,
    rows: std::cell::OnceCell<Vec<crate::lake::runs::RunRow>>,
    table: std::cell::OnceCell<crate::core::table_state::AssetState>,
}

impl<'a> Reads<'a> {
    fn new(project: &'a Project, asset: &'a str) -> Self {
        Reads {
            project,
            asset,
            rows: Default::default(),
            table: Default::default(),
        }
    }

    fn rows(&self) -> Result<&[crate::lake::runs::RunRow]> {
        if let Some(r) = self.rows.get() {
            return Ok(r);
        }
        let rows = crate::lake::runs::read_all(&self.project.lake)?;
        Ok(self.rows.get_or_init(|| rows))
    }

    fn table(&self) -> Result<&crate::core::table_state::AssetState> {
        if let Some(t) = self.table.get() {
            return Ok(t);
        }
        let t = crate::lake::log::load(&self.project.lake.table(self.asset))?;
        Ok(self.table.get_or_init(|| t))
    }
}

/// A history row's check results (name, severity, passed, detail).
fn checks_of(row: &crate::lake::runs::RunRow) -> Vec<serde_json::Value> {
    row.checks
        .as_deref()
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_default()
}

/// Why `version`'s checks forbid promoting it (a failed check recorded for the run that
/// built it), if they do.
fn failed_checks(lake: &Reads, version: i64) -> Result<Option<String>> {
    let Some(commit) = lake.table()?.commits.get(&version) else {
        return Ok(Some(format!("version {version} holds no output")));
    };
    for r in lake
        .rows()?
        .iter()
        .filter(|r| r.run_id == commit.run_id && r.asset == lake.asset)
    {
        if let Some(c) = checks_of(r).iter().find(|c| c["passed"] == false) {
            return Ok(Some(format!(
                "its check '{}' failed when it was built: {}",
                c["name"].as_str().unwrap_or("?"),
                c["detail"].as_str().unwrap_or("")
            )));
        }
    }
    Ok(None)
}

/// The champion's decay check, when its latest result is a failure: a check whose name
/// contains `decay` on an asset that reads the champion's scores, run since `since_ms`,
/// when the policy made the champion champion (an earlier result judged the model before).
fn decay(lake: &Reads, p: &Promotion, since_ms: i64) -> Result<Option<String>> {
    let project = lake.project;
    let watchers: Vec<&str> = project
        .rules
        .rules
        .values()
        .filter(|r| r.inputs.iter().any(|i| i.asset == p.champion_scores))
        .filter(|r| r.checks.iter().any(|c| c.name.contains("decay")))
        .map(|r| r.asset.as_str())
        .collect();
    if watchers.is_empty() {
        return Ok(None);
    }
    let rows = lake.rows()?;
    for watcher in watchers {
        let latest = rows
            .iter()
            .filter(|r| r.asset == watcher && r.checks.is_some() && r.ended_at >= since_ms)
            .max_by_key(|r| r.ended_at);
        let Some(row) = latest else { continue };
        if let Some(c) = checks_of(row).iter().find(|c| {
            c["passed"] == false && c["name"].as_str().is_some_and(|n| n.contains("decay"))
        }) {
            return Ok(Some(format!(
                "{watcher} '{}': {}",
                c["name"].as_str().unwrap_or("decay"),
                c["detail"]
                    .as_str()
                    .unwrap_or("")
                    .lines()
                    .next()
                    .unwrap_or("")
            )));
        }
    }
    Ok(None)
}

/// Paired daily RankIC differences `b − a` at the policy's horizon on the days both
/// score out of sample, after both training ranges.
fn paired(
    project: &Project,
    p: &Promotion,
    a: (&str, &ModelVersion),
    b: (&str, &ModelVersion),
) -> Result<Vec<(NaiveDate, f64)>> {
    let opts = CompareOptions {
        from: a
            .1
            .train_last
            .max(b.1.train_last)
            .and_then(|d| d.succ_opt()),
        to: None,
        horizon: Some(p.horizon.clone()),
        labels: p.labels.clone(),
        min_days: 0,
    };
    let labels = labels_frame(project, &p.labels)?;
    let tag = horizon_tag(&p.horizon).to_string();
    let sa = side_scores(project, a.0, a.1.model_id.as_deref(), &labels, &opts)?;
    let sb = side_scores(project, b.0, b.1.model_id.as_deref(), &labels, &opts)?;
    let (Some(da), Some(db)) = (sa.get(&tag), sb.get(&tag)) else {
        return Ok(Vec::new());
    };
    Ok(da
        .iter()
        .filter_map(|(d, ma)| db.get(d).map(|mb| (*d, mb.rank_ic - ma.rank_ic)))
        .collect())
}

/// Evaluates `asset`'s policy (module doc); reads only.
pub fn evaluate(project: &Project, asset: &str) -> Result<Evaluation> {
    let p = policy_of(project, asset)?;
    let st = state(project, asset, p)?;
    let mut ev = Evaluation {
        asset: asset.to_string(),
        alias: p.alias.clone(),
        challenger_alias: p.challenger.clone(),
        champion: st.champion,
        challenger: st.challenger,
        role: st.role.clone(),
        action: Action::Wait,
        reason: String::new(),
        test: None,
        first_day: None,
        last_day: None,
        decay: None,
        decisions: st.decisions,
        last: st.last.clone(),
    };
    let Some(champion) = st.champion else {
        ev.reason = format!(
            "{asset}@{} is not set yet: the first build that reads it sets it to the current version",
            p.alias
        );
        return Ok(ev);
    };
    let versions = model_versions::list(project, asset)?;
    let find = |v: i64| versions.iter().find(|m| m.version == v);
    let Some(champ) = find(champion) else {
        ev.reason = format!(
            "{asset}@{} names version {champion}, which holds no model",
            p.alias
        );
        return Ok(ev);
    };
    let lake = Reads::new(project, asset);
    ev.decay = decay(&lake, p, st.champion_since_ms)?;

    // A newer version than champion and challenger is put on trial unless one is on trial.
    let on_trial = st.role == "trial" && st.challenger.is_some_and(|c| c != champion);
    if !on_trial && p.auto_challenger {
        let seen = champion
            .max(st.challenger.unwrap_or(champion))
            .max(st.seen.unwrap_or(champion));
        let mut refused = Vec::new();
        for v in versions.iter().rev().filter(|v| v.version > seen) {
            if let Some(why) = &v.unreadable {
                refused.push(format!("version {} cannot be read ({why})", v.version));
                continue;
            }
            if let Some(why) = failed_checks(&lake, v.version)? {
                refused.push(format!("version {}: {why}", v.version));
                continue;
            }
            ev.action = Action::Challenger(v.version);
            ev.reason = format!(
                "version {} is newer than the champion (version {champion}): on trial from its first day out of sample for both",
                v.version
            );
            return Ok(ev);
        }
        if !refused.is_empty() && st.role != "watch" {
            ev.reason = format!("no version to put on trial: {}", refused.join("; "));
            return Ok(ev);
        }
    }

    let Some(challenger) = st.challenger.filter(|c| *c != champion) else {
        ev.reason = format!(
            "no challenger: the champion, version {champion}, is the newest version{}",
            if p.auto_challenger {
                ""
            } else {
                " (auto_challenger = false: put one on trial with lakebuild model alias)"
            }
        );
        return Ok(ev);
    };
    let Some(chal) = find(challenger) else {
        ev.reason = format!(
            "{asset}@{} names version {challenger}, which holds no model",
            p.challenger
        );
        return Ok(ev);
    };
    let h = horizon_days_of(&p.horizon);
    let evidence = || {
        paired(
            project,
            p,
            (&p.champion_scores, champ),
            (&p.challenger_scores, chal),
        )
    };
    match st.role.as_str() {
        "watch" => {
            if !p.rollback {
                ev.reason = format!(
                    "the previous champion, version {challenger}, is kept scored; rollback = false"
                );
                return Ok(ev);
            }
            let Some(decay) = ev.decay.clone() else {
                ev.reason = format!(
                    "the champion is healthy (no decay check failing); the previous champion, version {challenger}, is kept scored for a rollback"
                );
                return Ok(ev);
            };
            let diffs = evidence()?;
            let recent = &diffs[diffs.len().saturating_sub(p.rollback_window)..];
            fill(&mut ev, recent, h, p);
            let t = ev.test.unwrap_or_else(|| test(&[], h, p.effect));
            if recent.len() < 10 {
                ev.reason = format!(
                    "decay ({decay}), but only {} day(s) scored for both: a rollback needs 10",
                    recent.len()
                );
            } else if t.p_value <= p.alpha {
                ev.action = Action::Rollback;
                ev.reason = format!(
                    "decay ({decay}) and the previous champion, version {challenger}, scores better on the last {} days (p = {:.4} <= alpha {})",
                    recent.len(),
                    t.p_value,
                    p.alpha
                );
            } else {
                ev.reason = format!(
                    "decay ({decay}), but the previous champion, version {challenger}, is not significantly better on the last {} days (p = {:.4} > alpha {}): no rollback; retrain or roll back by hand",
                    recent.len(),
                    t.p_value,
                    p.alpha
                );
            }
            Ok(ev)
        }
        "trial" => {
            let diffs = evidence()?;
            fill(&mut ev, &diffs, h, p);
            let n = diffs.len();
            let t = ev.test.unwrap_or_else(|| test(&[], h, p.effect));
            let v = verdict(&t, p);
            if v == Verdict::TooFew {
                ev.reason = format!(
                    "version {challenger} on trial: {n} of the {} days needed scored out of sample for both{}",
                    p.min_days,
                    if n == 0 {
                        format!(
                            " (is {} built with {asset}@{}?)",
                            p.challenger_scores, p.challenger
                        )
                    } else {
                        String::new()
                    }
                );
            } else if v == Verdict::Promote {
                if let Some(why) = failed_checks(&lake, challenger)? {
                    ev.action = Action::Retire;
                    ev.reason = format!(
                        "version {challenger} scores better but may not be promoted: {why}"
                    );
                } else {
                    ev.action = Action::Promote;
                    ev.reason = format!(
                        "version {challenger} beats version {champion} over {n} days: mean {h}d RankIC difference {:+.4} (HAC SE {:.4}, t {:.2}), always-valid p {:.4} <= alpha {}",
                        t.mean, t.hac_se, t.t, t.p_value, p.alpha
                    );
                }
            } else if v == Verdict::Retire {
                ev.action = Action::Retire;
                ev.reason = format!(
                    "version {challenger} did not prove better in {n} days (mean difference {:+.4}, p {:.4}): retired, the champion stays",
                    t.mean, t.p_value
                );
            } else {
                ev.reason = format!(
                    "version {challenger} on trial, {n} days: mean {h}d RankIC difference {:+.4} (t {:.2}), always-valid p {:.4} > alpha {}{}; keep waiting (retired at {} days)",
                    t.mean,
                    t.t,
                    t.p_value,
                    p.alpha,
                    if t.p_value <= p.alpha {
                        format!(", below min_improvement {}", p.min_improvement)
                    } else {
                        String::new()
                    },
                    p.max_days
                );
            }
            Ok(ev)
        }
        _ => {
            ev.reason =
                format!("version {challenger} was retired; the next newer version goes on trial");
            Ok(ev)
        }
    }
}

fn fill(ev: &mut Evaluation, diffs: &[(NaiveDate, f64)], h: usize, p: &Promotion) {
    let x: Vec<f64> = diffs.iter().map(|d| d.1).collect();
    if !x.is_empty() {
        ev.test = Some(test(&x, h, p.effect));
        ev.first_day = diffs.first().map(|d| d.0);
        ev.last_day = diffs.last().map(|d| d.0);
    }
}

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// The decision was carried out (and logged).
    Done,
    /// Nothing to log (a wait with no new evidence since the last entry).
    Unchanged,
    /// Another process changed the aliases since the evaluation: nothing was done.
    Superseded,
}

/// Carries out `ev` under the lake lock (module doc) and logs it; a wait is logged only
/// when it brings new evidence or a new reason.
/// Waits at most `wait` for the lake lock.
pub fn apply(project: &Project, ev: &Evaluation, wait: std::time::Duration) -> Result<Applied> {
    let lake = &project.lake.root;
    let p = policy_of(project, &ev.asset)?;
    let (champion, challenger) = (ev.champion, ev.challenger);
    let mut then_champion = champion;
    let mut then_challenger = challenger;
    let mut role = ev.role.clone();
    let mut moves: Vec<(&str, i64)> = Vec::new();
    match (&ev.action, champion, challenger) {
        (Action::Promote, Some(c), Some(n)) | (Action::Rollback, Some(c), Some(n)) => {
            moves.push((&p.alias, n));
            moves.push((&p.challenger, c));
            then_champion = Some(n);
            then_challenger = Some(c);
            // After a rollback the version rolled back is retired: never re-promoted on
            // the evidence it lost on, and no bar to newer versions.
            role = if ev.action == Action::Promote {
                "watch"
            } else {
                "retired"
            }
            .into();
        }
        (Action::Challenger(v), _, _) => {
            moves.push((&p.challenger, *v));
            then_challenger = Some(*v);
            role = "trial".into();
        }
        (Action::Retire, _, _) => role = "retired".into(),
        (Action::Wait, _, _) => {
            let days = ev.test.map_or(0, |t| t.days);
            if ev.last.as_ref().is_some_and(|d| {
                d.then_champion == champion
                    && d.then_challenger == challenger
                    && d.days == days
                    && d.action == "wait"
                    && d.reason == ev.reason
            }) {
                return Ok(Applied::Unchanged);
            }
            if champion.is_none() {
                return Ok(Applied::Unchanged);
            }
        }
        _ => return Ok(Applied::Unchanged),
    }
    let decision = promotions::Decision {
        at: crate::clock::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        at_ms: crate::clock::now_ms(),
        asset: ev.asset.clone(),
        action: ev.action.name().to_string(),
        champion,
        challenger,
        then_champion,
        then_challenger,
        role,
        days: ev.test.map_or(0, |t| t.days),
        reason: ev.reason.clone(),
        stats: serde_json::json!({
            "horizon": p.horizon,
            "test": ev.test,
            "first_day": ev.first_day,
            "last_day": ev.last_day,
            "alpha": p.alpha,
            "effect": p.effect,
            "min_days": p.min_days,
            "max_days": p.max_days,
            "decay": ev.decay,
        }),
    };
    // Every decision goes through the lake lock and re-reads the aliases it decided on.
    let expected: Vec<(&str, Option<i64>)> =
        vec![(&p.alias, champion), (&p.challenger, challenger)];
    let done = crate::engine::alias::move_together(
        project,
        &ev.asset,
        &expected,
        &moves,
        crate::engine::alias::MovedBy::Policy,
        wait,
        || Ok(promotions::of(lake, &ev.asset)?.len() == ev.decisions),
        || promotions::append(lake, decision),
    )?;
    Ok(if done {
        Applied::Done
    } else {
        Applied::Superseded
    })
}
