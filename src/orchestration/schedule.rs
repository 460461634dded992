//! Schedules: `lakebuild tick`, called by cron every few minutes, runs every job whose
//! cron schedule fell due since the last tick, exactly once, in the job's time zone.
//!
//! State lives in the lake: `_lakebuild/schedules.json` holds each schedule's cursor (the
//! last occurrence handled) and `_lakebuild/ticks.jsonl` one line per tick decision. A tick
//! holds `_lakebuild/tick.lock` (an OS lock, released if the process dies) while it
//! evaluates and runs, so overlapping ticks never run an occurrence twice: the second one
//! finds the lock taken and leaves. The cursor moves past an occurrence as soon as its run
//! is recorded, so a missed tick is caught up by the next one (`catch_up = "latest"`: once
//! for the latest occurrence; `"all"`: once per occurrence, oldest first). A schedule seen
//! for the first time starts at that tick: nothing before it is run.

use crate::orchestration::jobs::{CatchUp, Job, Partitions, parse_cron};
use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Runs a job for one occurrence: its run id and whether it succeeded.
pub type RunJob<'a> = dyn FnMut(&Job, DateTime<Utc>) -> Result<(String, bool)> + 'a;

/// At most this many occurrences are kept per tick, the latest ones (a schedule every
/// minute that missed a week of ticks must not run ten thousand times); older ones are
/// counted and reported as dropped.
pub const MAX_DUE: usize = 1000;

/// Occurrences scanned at most per tick (about four years of a once-a-minute schedule).
pub const MAX_SCAN: usize = 2_000_000;

/// Occurrences of `cron` in `tz` after `after` and at or before `until`, oldest first:
/// the latest [`MAX_DUE`] of them, and how many older ones were dropped. When more than
/// [`MAX_SCAN`] are due (a cursor years old), nothing is kept and the count is `MAX_SCAN`:
/// the caller restarts the schedule from `until`.
pub fn due(
    cron: &croner::Cron,
    tz: chrono_tz::Tz,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
) -> (Vec<DateTime<Utc>>, usize) {
    let mut out = std::collections::VecDeque::new();
    let mut dropped = 0;
    let mut t = after.with_timezone(&tz);
    for _ in 0..MAX_SCAN {
        let Ok(next) = cron.find_next_occurrence(&t, false) else {
            break;
        };
        let next_utc = next.with_timezone(&Utc);
        if next_utc > until {
            return (out.into(), dropped);
        }
        out.push_back(next_utc);
        if out.len() > MAX_DUE {
            out.pop_front();
            dropped += 1;
        }
        t = next;
    }
    if dropped > 0 {
        // The scan stopped before `until`: what it kept is not the latest.
        return (Vec::new(), MAX_SCAN);
    }
    (out.into(), dropped)
}

/// The next occurrence after `now`.
pub fn next(cron: &croner::Cron, tz: chrono_tz::Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&now.with_timezone(&tz), false)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The next occurrence of `job`'s schedule after `now`, in its own zone (RFC 3339), if it
/// has one.
pub fn next_run(job: &Job, now: DateTime<Utc>) -> Option<String> {
    let s = job.schedule.as_ref()?;
    let cron = parse_cron(&s.cron).ok()?;
    next(&cron, s.timezone, now).map(|t| {
        t.with_timezone(&s.timezone)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    })
}

/// The persisted cursors.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// Per job: the last occurrence handled (or when the schedule was first seen).
    pub cursors: BTreeMap<String, DateTime<Utc>>,
}

fn state_file(lake: &Path) -> PathBuf {
    lake.join("_lakebuild").join("schedules.json")
}

pub fn ticks_file(lake: &Path) -> PathBuf {
    lake.join("_lakebuild").join("ticks.jsonl")
}

pub fn load_state(lake: &Path) -> Result<State> {
    crate::lake::state_file::read_json(&state_file(lake))
}

fn save_state(lake: &Path, s: &State) -> Result<()> {
    crate::lake::state_file::write_json(&state_file(lake), s)
}

/// One line of `ticks.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TickRecord {
    pub job: String,
    /// When the tick ran.
    pub tick_at: DateTime<Utc>,
    /// The occurrence this line is about (absent for "started" / "skipped" lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_for: Option<DateTime<Utc>>,
    /// started (first sight) | run | skipped (an older occurrence, catch_up = "latest") |
    /// dropped (occurrences beyond the latest [`MAX_DUE`], counted in `error`)
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn append(lake: &Path, r: &TickRecord) -> Result<()> {
    let f = ticks_file(lake);
    if let Some(d) = f.parent() {
        std::fs::create_dir_all(d)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&f)
        .with_context(|| format!("cannot open {}", f.display()))?;
    writeln!(file, "{}", serde_json::to_string(r)?)
        .with_context(|| format!("cannot write {}", f.display()))
}

pub fn read_ticks(lake: &Path) -> Result<Vec<TickRecord>> {
    let f = ticks_file(lake);
    match std::fs::read_to_string(&f) {
        Ok(t) => Ok(t
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", f.display())),
    }
}

/// What a tick decided for one job: the occurrences to run now.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub job: String,
    pub run: Vec<DateTime<Utc>>,
    pub skipped: Vec<DateTime<Utc>>,
    /// Occurrences older than the latest [`MAX_DUE`] due ones: neither run nor listed
    /// ([`MAX_SCAN`]: too many to scan; the schedule restarts from now).
    pub dropped: usize,
    pub first_sight: bool,
}

/// Decides, from the cursors, what each scheduled job runs at `now` (pure).
pub fn decide(jobs: &[Job], state: &State, now: DateTime<Utc>) -> Vec<Decision> {
    let mut out = Vec::new();
    for j in jobs {
        let Some(s) = &j.schedule else { continue };
        let Ok(cron) = parse_cron(&s.cron) else {
            continue;
        };
        let Some(cursor) = state.cursors.get(&j.name) else {
            out.push(Decision {
                job: j.name.clone(),
                run: vec![],
                skipped: vec![],
                dropped: 0,
                first_sight: true,
            });
            continue;
        };
        let (due, dropped) = due(&cron, s.timezone, *cursor, now);
        let (run, skipped) = match s.catch_up {
            CatchUp::All => (due, vec![]),
            CatchUp::Latest => {
                let mut d = due;
                let last = d.pop();
                (last.into_iter().collect(), d)
            }
        };
        out.push(Decision {
            job: j.name.clone(),
            run,
            skipped,
            dropped,
            first_sight: false,
        });
    }
    out
}

/// The date a run of `job` at occurrence `at` builds for: the occurrence's local date.
pub fn run_date(job: &Job, at: DateTime<Utc>) -> NaiveDate {
    match &job.schedule {
        Some(s) => at.with_timezone(&s.timezone).date_naive(),
        None => at.date_naive(),
    }
}

/// Runs a tick: `run` is called once per occurrence to run (oldest first) and returns the
/// run id and whether it succeeded. Returns the records written.
pub fn tick(
    lake: &Path,
    jobs: &[Job],
    now: DateTime<Utc>,
    run: &mut RunJob,
) -> Result<Vec<TickRecord>> {
    let mut state = load_state(lake)?;
    let mut written = Vec::new();
    for d in decide(jobs, &state, now) {
        let Some(job) = jobs.iter().find(|j| j.name == d.job) else {
            continue;
        };
        let record = |action: &str, at: Option<DateTime<Utc>>| TickRecord {
            job: d.job.clone(),
            tick_at: now,
            scheduled_for: at,
            action: action.to_string(),
            run_id: None,
            ok: None,
            error: None,
        };
        if d.first_sight {
            state.cursors.insert(d.job.clone(), now);
            save_state(lake, &state)?;
            let r = record("started", None);
            append(lake, &r)?;
            written.push(r);
            continue;
        }
        if d.dropped >= MAX_SCAN {
            state.cursors.insert(d.job.clone(), now);
            save_state(lake, &state)?;
        }
        if d.dropped > 0 {
            let mut r = record("dropped", None);
            r.error = Some(format!(
                "{} older occurrences were neither run nor listed: more than {MAX_DUE} were due",
                d.dropped
            ));
            append(lake, &r)?;
            written.push(r);
        }
        for at in &d.skipped {
            let r = record("skipped", Some(*at));
            append(lake, &r)?;
            written.push(r);
        }
        if d.run.is_empty() {
            if let Some(last) = d.skipped.last() {
                state.cursors.insert(d.job.clone(), *last);
                save_state(lake, &state)?;
            }
            continue;
        }
        for at in d.run {
            let mut r = record("run", Some(at));
            match run(job, at) {
                Ok((id, ok)) => {
                    r.run_id = Some(id);
                    r.ok = Some(ok);
                }
                Err(e) => {
                    r.ok = Some(false);
                    r.error = Some(format!("{e:#}"));
                }
            }
            // The occurrence is handled, whatever its outcome: a failed run is the
            // build's to retry (rule `retry`), and an alert's to report.
            state.cursors.insert(d.job.clone(), at);
            save_state(lake, &state)?;
            append(lake, &r)?;
            written.push(r);
        }
    }
    Ok(written)
}

/// The crontab line and systemd units that call `lakebuild tick` every `minutes`.
pub fn install_text(binary: &Path, project: &Path, lake: &Path, minutes: u32) -> String {
    let (b, p) = (binary.display(), project.display());
    let log = lake.join("_lakebuild").join("tick.log");
    format!(
        "# crontab (crontab -e): evaluate lakebuild's schedules every {minutes} minutes\n\
         */{minutes} * * * * cd {p} && {b} tick >> {log} 2>&1\n\
         \n\
         # or systemd (user units): ~/.config/systemd/user/lakebuild-tick.service\n\
         [Unit]\nDescription=lakebuild tick ({p})\n\n[Service]\nType=oneshot\nWorkingDirectory={p}\nExecStart={b} tick\n\
         \n\
         # ~/.config/systemd/user/lakebuild-tick.timer, then: systemctl --user enable --now lakebuild-tick.timer\n\
         [Unit]\nDescription=lakebuild tick every {minutes} minutes\n\n[Timer]\nOnCalendar=*:0/{minutes}\nPersistent=true\n\n[Install]\nWantedBy=timers.target\n",
        log = log.display()
    )
}

/// A job as `lakebuild jobs --json` and the web UI list it: its selection, schedule and
/// the schedule's next occurrence.
#[derive(Debug, Clone, Serialize)]
pub struct JobListing {
    pub name: String,
    pub description: Option<String>,
    pub select: Vec<String>,
    pub assets: Vec<String>,
    pub partitions: Partitions,
    pub cron: Option<String>,
    pub timezone: Option<String>,
    pub catch_up: Option<CatchUp>,
    pub next: Option<String>,
}

/// Every job of the project, with each schedule's next occurrence after `now`.
pub fn listing(jobs: &[Job], now: DateTime<Utc>) -> Vec<JobListing> {
    jobs.iter()
        .map(|j| JobListing {
            name: j.name.clone(),
            description: j.description.clone(),
            select: j.select.clone(),
            assets: j.assets.clone(),
            partitions: j.partitions,
            cron: j.schedule.as_ref().map(|s| s.cron.clone()),
            timezone: j.schedule.as_ref().map(|s| s.timezone.to_string()),
            catch_up: j.schedule.as_ref().map(|s| s.catch_up),
            next: next_run(j, now),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn tokyo_two_am_is_five_pm_utc_the_day_before() {
        let cron = parse_cron("0 2 * * *").unwrap_or_else(|e| panic!("{e}"));
        let (d, _) = due(
            &cron,
            chrono_tz::Asia::Tokyo,
            utc("2026-11-26T12:00:00Z"),
            utc("2026-11-28T12:00:00Z"),
        );
        assert_eq!(
            d,
            vec![utc("2026-11-26T17:00:00Z"), utc("2026-11-27T17:00:00Z")]
        );
    }

    #[test]
    fn a_daily_schedule_runs_once_per_day_across_dst_changes() {
        let ny = chrono_tz::America::New_York;
        // 02:30 does not exist on 2026-03-08 (spring forward) and 01:30 happens twice on
        // 2026-11-01 (fall back): each day still runs exactly once.
        for (expr, from, to) in [
            ("30 2 * * *", "2026-03-06T12:00:00Z", "2026-03-10T12:00:00Z"),
            ("30 1 * * *", "2026-10-30T12:00:00Z", "2026-11-03T12:00:00Z"),
        ] {
            let cron = parse_cron(expr).unwrap_or_else(|e| panic!("{e}"));
            let (d, _) = due(&cron, ny, utc(from), utc(to));
            let days: Vec<NaiveDate> = d
                .iter()
                .map(|t| t.with_timezone(&ny).date_naive())
                .collect();
            let mut unique = days.clone();
            unique.dedup();
            assert_eq!(days, unique, "{expr}: a day ran twice: {d:?}");
            assert_eq!(days.len(), 4, "{expr}: {d:?}");
        }
        // Before and after the spring change the UTC hour moves with the offset.
        let cron = parse_cron("0 9 * * *").unwrap_or_else(|e| panic!("{e}"));
        let (d, _) = due(
            &cron,
            ny,
            utc("2026-03-06T00:00:00Z"),
            utc("2026-03-09T23:00:00Z"),
        );
        assert_eq!(d.first(), Some(&utc("2026-03-06T14:00:00Z")));
        assert_eq!(d.last(), Some(&utc("2026-03-09T13:00:00Z")));
    }

    #[test]
    fn bad_cron_expressions_say_what_to_write() {
        assert!(parse_cron("0 2 * *").unwrap_err().contains("5 fields"));
        assert!(parse_cron("0 25 * * *").is_err());
        assert!(parse_cron("*/5 * * * 1-5").is_ok());
    }

    #[test]
    fn due_is_capped() {
        let cron = parse_cron("* * * * *").unwrap_or_else(|e| panic!("{e}"));
        let a = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or_default();
        let (d, dropped) = due(&cron, chrono_tz::UTC, a, a + chrono::Duration::days(30));
        assert_eq!(d.len(), MAX_DUE);
        assert_eq!(dropped, 30 * 24 * 60 - MAX_DUE);
        // The kept ones are the latest: the last is the end of the span.
        assert_eq!(d.last(), Some(&(a + chrono::Duration::days(30))));
    }
}
