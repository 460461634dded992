//! Jobs and schedules through the binary, with the clock moved by `LAKEBUILD_NOW`
//! instead of sleeping: a Tokyo schedule runs once per due occurrence, missed ticks are
//! caught up per policy, two ticks at the same moment run a job once, `run` builds exactly
//! a job's selection, and `cron` prints the lines to install.

mod common;
use common::*;
use lakebuild::orchestration::schedule::{TickRecord, read_ticks};

fn job(p: &Proj, name: &str, text: &str) -> R {
    p.write(&format!("rules/jobs/{name}.toml"), text)
}

fn tick(p: &Proj, now: &str) -> R<String> {
    let out = p.cmd(&["tick"]).env("LAKEBUILD_NOW", now).output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        return Err(format!("tick at {now} failed:\n{text}").into());
    }
    Ok(text)
}

fn runs(p: &Proj, job: &str) -> R<Vec<TickRecord>> {
    Ok(read_ticks(&p.path("lake"))?
        .into_iter()
        .filter(|r| r.job == job && r.action == "run")
        .collect())
}

const NIGHTLY: &str = "select = [\"+summary\"]\ncron = \"0 2 * * *\"\ntimezone = \"Asia/Tokyo\"\n";

#[test]
fn a_tokyo_schedule_runs_each_due_occurrence_exactly_once() -> R {
    let p = pipeline(5)?;
    job(&p, "nightly", NIGHTLY)?;
    assert!(tick(&p, "2026-11-27T10:00:00Z")?.contains("schedule starts now"));
    assert!(tick(&p, "2026-11-27T16:59:00Z")?.contains("nothing due"));
    assert!(
        p.version("summary")?.is_none(),
        "nothing ran before 02:00 in Tokyo"
    );
    // 02:00 JST on Nov 28 is 17:00 UTC on Nov 27.
    let out = tick(&p, "2026-11-27T17:01:00Z")?;
    assert!(
        out.contains("nightly: 2026-11-27T17:00:00+00:00 ran as"),
        "{out}"
    );
    assert!(p.version("summary")?.is_some());
    assert!(tick(&p, "2026-11-27T17:02:00Z")?.contains("nothing due"));
    let r = runs(&p, "nightly")?;
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].ok, Some(true));
    // The run is in the history with its schedule as the trigger.
    let hist = p.history()?;
    assert!(
        hist.iter()
            .any(|h| h.trigger == "schedule:nightly@2026-11-27T17:00:00+00:00"),
        "{hist:?}"
    );
    Ok(())
}

#[test]
fn missed_ticks_run_the_latest_occurrence_or_every_one_per_policy() -> R {
    let p = pipeline(5)?;
    job(&p, "latest", NIGHTLY)?;
    job(&p, "every", &format!("{NIGHTLY}catch_up = \"all\"\n"))?;
    tick(&p, "2026-11-20T10:00:00Z")?;
    // A week without ticks: occurrences at 17:00 UTC on Nov 20 … Nov 26.
    tick(&p, "2026-11-27T10:00:00Z")?;
    let latest = runs(&p, "latest")?;
    assert_eq!(latest.len(), 1);
    assert_eq!(
        latest[0].scheduled_for.map(|t| t.to_rfc3339()).as_deref(),
        Some("2026-11-26T17:00:00+00:00")
    );
    let skipped = read_ticks(&p.path("lake"))?
        .into_iter()
        .filter(|r| r.job == "latest" && r.action == "skipped")
        .count();
    assert_eq!(skipped, 6);
    let every = runs(&p, "every")?;
    assert_eq!(every.len(), 7);
    let days: Vec<String> = every
        .iter()
        .filter_map(|r| r.scheduled_for.map(|t| t.date_naive().to_string()))
        .collect();
    assert_eq!(days.first().map(String::as_str), Some("2026-11-20"));
    assert_eq!(days.last().map(String::as_str), Some("2026-11-26"));
    // Nothing is run again.
    tick(&p, "2026-11-27T11:00:00Z")?;
    assert_eq!(runs(&p, "every")?.len(), 7);
    Ok(())
}

#[test]
fn two_ticks_at_the_same_moment_run_a_job_once() -> R {
    let p = pipeline(5)?;
    job(&p, "nightly", NIGHTLY)?;
    tick(&p, "2026-11-27T10:00:00Z")?;
    let spawn = || {
        p.cmd(&["tick"])
            .env("LAKEBUILD_NOW", "2026-11-27T17:05:00Z")
            .output()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(spawn);
        let b = s.spawn(spawn);
        (a.join(), b.join())
    });
    let (a, b) = (a.map_err(|_| "thread")??, b.map_err(|_| "thread")??);
    assert!(a.status.success() && b.status.success());
    assert_eq!(
        runs(&p, "nightly")?.len(),
        1,
        "{}\n{}",
        String::from_utf8_lossy(&a.stdout),
        String::from_utf8_lossy(&b.stdout)
    );
    Ok(())
}

#[test]
fn run_builds_exactly_the_selection_and_cron_prints_what_to_install() -> R {
    let p = pipeline(5)?;
    job(&p, "ma_only", "select = [\"prices\", \"ma\"]\n")?;
    let out = p.ok(&["run", "ma_only"])?;
    assert!(out.contains("ma"), "{out}");
    assert!(p.version("ma")?.is_some());
    assert!(
        p.version("summary")?.is_none(),
        "summary is not in the selection"
    );
    assert!(p.history()?.iter().any(|h| h.trigger == "job:ma_only"));
    let err = p.fails(&["run", "ghost"], 2)?;
    assert!(
        err.contains("no job 'ghost'") && err.contains("ma_only"),
        "{err}"
    );
    job(&p, "bad", "select = [\"+nothing\"]\n")?;
    let err = p.fails(&["jobs"], 2)?;
    assert!(
        err.contains("rules/jobs/bad.toml") && err.contains("no asset 'nothing'"),
        "{err}"
    );
    std::fs::remove_file(p.path("rules/jobs/bad.toml"))?;
    job(&p, "nightly", NIGHTLY)?;
    let jobs = p.ok(&["jobs"])?;
    assert!(
        jobs.contains("nightly: prices, ma, summary") && jobs.contains("Asia/Tokyo"),
        "{jobs}"
    );
    let listed: serde_json::Value = serde_json::from_str(&p.ok(&["jobs", "--json"])?)?;
    let nightly = listed
        .as_array()
        .and_then(|a| a.iter().find(|j| j["name"] == "nightly"))
        .ok_or("nightly")?;
    assert_eq!(nightly["timezone"], "Asia/Tokyo");
    assert_eq!(
        nightly["assets"],
        serde_json::json!(["prices", "ma", "summary"])
    );
    assert!(
        nightly["next"]
            .as_str()
            .is_some_and(|n| n.ends_with("+09:00")),
        "{nightly}"
    );
    let cron = p.ok(&["cron", "--every", "10"])?;
    assert!(
        cron.contains("*/10 * * * * cd ") && cron.contains(" tick >> "),
        "{cron}"
    );
    assert!(cron.contains("OnCalendar=*:0/10"), "{cron}");
    Ok(())
}

fn fired(out: &str, sensor: &str) -> usize {
    out.lines()
        .filter(|l| l.starts_with(&format!("{sensor}: fired")))
        .count()
}

#[test]
fn a_new_source_data_sensor_fires_once_per_new_trading_day_across_restarts() -> R {
    let p = Proj::new()?;
    p.rule(
        "trading_calendar",
        "op = \"synthetic_market\"\npartitioned = \"daily\"\ndates = { from = \"2026-11-16\", to = \"today\", calendar = \"jpx\" }\n[params]\ntable = \"trading_calendar\"\nstart = \"2026-11-16\"\n",
    )?;
    job(&p, "calendar", "select = [\"trading_calendar\"]\n")?;
    p.write(
        "rules/sensors/new_day.toml",
        "job = \"calendar\"\nkind = \"new_source_data\"\nasset = \"trading_calendar\"\n",
    )?;
    // First sight: a baseline, nothing runs.
    assert_eq!(fired(&tick(&p, "2026-11-24T09:00:00Z")?, "new_day"), 0);
    assert!(p.version("trading_calendar")?.is_none());
    // A new trading day: the job runs once, and not again that day (each tick is a new
    // process: the cursor is in the lake).
    assert_eq!(fired(&tick(&p, "2026-11-25T09:00:00Z")?, "new_day"), 1);
    // Nov 16–25 less the weekend and Labor Thanksgiving Day (Mon Nov 23): 7 days.
    assert_eq!(p.hashes("trading_calendar")?.len(), 7);
    assert_eq!(fired(&tick(&p, "2026-11-25T10:00:00Z")?, "new_day"), 0);
    assert_eq!(fired(&tick(&p, "2026-11-26T09:00:00Z")?, "new_day"), 1);
    assert_eq!(fired(&tick(&p, "2026-11-26T09:30:00Z")?, "new_day"), 0);
    assert!(p.history()?.iter().any(|h| h.trigger == "sensor:new_day"));
    Ok(())
}

#[test]
fn asset_and_file_sensors_fire_once_per_event_and_watch_ticks() -> R {
    let p = pipeline(3)?;
    job(&p, "downstream", "select = [\"ma+\"]\n")?;
    job(&p, "import", "select = [\"prices\"]\n")?;
    p.write(
        "rules/sensors/prices_changed.toml",
        "job = \"downstream\"\nkind = \"asset_materialized\"\nasset = \"prices\"\n",
    )?;
    p.write(
        "rules/sensors/inbox.toml",
        "job = \"import\"\nkind = \"files\"\npath = \"inbox/*.csv\"\n",
    )?;
    p.ok(&["build", "prices"])?;
    let now = "2026-11-25T09:00:00Z";
    tick(&p, now)?; // baselines
    assert!(p.version("summary")?.is_none());
    // A new version of prices: downstream runs once.
    p.write("data/prices.csv", &prices_csv(4, &|_, _, c| c))?;
    p.ok(&["build", "prices"])?;
    let out = tick(&p, now)?;
    assert_eq!(fired(&out, "prices_changed"), 1, "{out}");
    assert!(p.version("summary")?.is_some());
    assert_eq!(fired(&tick(&p, now)?, "prices_changed"), 0);
    // A file arrives in the inbox: the import job runs once; watch ticks twice.
    p.write("inbox/2026-11-25.csv", "x\n1\n")?;
    let out = p
        .cmd(&["watch", "--interval", "1s", "--max-ticks", "2"])
        .env("LAKEBUILD_NOW", now)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    assert_eq!(fired(&text, "inbox"), 1, "{text}");
    // Bad sensors are refused with their file.
    p.write(
        "rules/sensors/bad.toml",
        "job = \"nope\"\nkind = \"files\"\n",
    )?;
    let err = p.fails(&["tick"], 2)?;
    assert!(
        err.contains("rules/sensors/bad.toml")
            && err.contains("job 'nope' does not exist")
            && err.contains("needs path"),
        "{err}"
    );
    p.write(
        "rules/sensors/bad.toml",
        "job = \"import\"\nkind = \"files\"\npath = \"inbox/[a.csv\"\n",
    )?;
    let err = p.fails(&["tick"], 2)?;
    assert!(err.contains("is not a valid glob"), "{err}");
    std::fs::remove_file(p.path("rules/sensors/bad.toml"))?;
    let err = p.fails(&["watch", "--interval", "10ms"], 2)?;
    assert!(err.contains("too short"), "{err}");
    // A tick that fails (a job file mid-edit) is reported and the watch goes on.
    job(&p, "broken", "select = [\"+nothing\"]\n")?;
    let out = p
        .cmd(&["watch", "--interval", "1s", "--max-ticks", "2"])
        .env("LAKEBUILD_NOW", now)
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.matches("tick failed").count(), 2, "{err}");
    Ok(())
}

/// A scheduled run that cannot even start (the lake stays locked by a long build) makes
/// the tick fail and is alerted as a failure of the job.
#[test]
fn a_scheduled_run_that_cannot_start_fails_the_tick_and_is_alerted() -> R {
    let p = pipeline(3)?;
    p.rule("slow", "op = \"command\"\n[params]\nrun = \"sleep 3; printf 'x\\n1\\n' > \\\"$LAKEBUILD_OUTPUT_DIR/out.csv\\\"\"\n")?;
    job(&p, "nightly", NIGHTLY)?;
    p.write(
        "rules/alerts/log.toml",
        "command = [\"sh\", \"-c\", \"cat >> alerts.jsonl\"]\n",
    )?;
    tick(&p, "2026-11-27T10:00:00Z")?;
    let mut holder = p.cmd(&["build", "slow"]).spawn()?;
    std::thread::sleep(std::time::Duration::from_millis(700));
    let out = p
        .cmd(&["tick"])
        .env("LAKEBUILD_NOW", "2026-11-27T17:01:00Z")
        .env("LAKEBUILD_LOCK_TIMEOUT", "200ms")
        .output()?;
    holder.wait()?;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let alerts = std::fs::read_to_string(p.path("alerts.jsonl"))?;
    assert!(
        alerts.contains("job nightly") && alerts.contains("could not start"),
        "{alerts}"
    );
    Ok(())
}
