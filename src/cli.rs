//! The command line: argument parsing and printing only.

use crate::build::{BuildOptions, build, plan};
use crate::error::{UsageError, exit_code};
use crate::lake::{gc, lock, runs};
use crate::partition::PartitionId;
use crate::project::Project;
use crate::{explain, graph, history, status};
use anyhow::Result;
use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "lakebuild",
    version,
    about = "A make-like, content-addressed build system for a Delta Lake lakehouse"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Option<Command>,
    /// With no subcommand: build these targets (all assets when none).
    #[command(flatten)]
    build: BuildArgs,
}

#[derive(Args, Debug, Clone)]
struct Global {
    /// Run as if started in DIR.
    #[arg(short = 'C', long = "directory", global = true, value_name = "DIR")]
    directory: Option<PathBuf>,
    /// The rules folder.
    #[arg(long, global = true, default_value = "rules", env = "LAKEBUILD_RULES")]
    rules: PathBuf,
    /// The lake folder.
    #[arg(long, global = true, default_value = "lake", env = "LAKEBUILD_LAKE")]
    lake: PathBuf,
    /// More logging (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// No progress bars.
    #[arg(short, long, global = true)]
    quiet: bool,
}

#[derive(Args, Debug, Clone, Default)]
struct BuildArgs {
    /// Assets to build (with everything upstream of them).
    targets: Vec<String>,
    /// Print what would run and exactly why; run nothing.
    #[arg(long)]
    dry_run: bool,
    /// Rebuild the targets even when fresh.
    #[arg(long)]
    force: bool,
    /// Steps run at once.
    #[arg(short, long, default_value_t = 1)]
    jobs: usize,
    /// Build only the targets, not their upstream.
    #[arg(long)]
    only: bool,
    /// First partition date to build (YYYY-MM-DD).
    #[arg(long)]
    from: Option<NaiveDate>,
    /// Last partition date to build (YYYY-MM-DD).
    #[arg(long)]
    to: Option<NaiveDate>,
    /// Keep building independent assets after a failure.
    #[arg(long)]
    keep_going: bool,
    /// How long to wait for another lakebuild holding the lake (e.g. 30s, 10m).
    #[arg(long, env = "LAKEBUILD_LOCK_TIMEOUT", default_value = "10m")]
    lock_timeout: String,
    /// Most partitions of a daily asset computed and committed together (default 500):
    /// lower it to cap a step's memory.
    #[arg(long, env = "LAKEBUILD_BATCH_SIZE")]
    batch_size: Option<usize>,
    /// What started this run (recorded in the history).
    #[arg(long, default_value = "manual")]
    trigger: String,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Build targets (all assets when none).
    Build(BuildArgs),
    /// Every asset: fresh / stale (why) / missing / failed.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Lineage of ASSET[@VERSION] and why it is stale.
    Why {
        target: String,
        /// The partition (YYYY-MM-DD); default the latest.
        #[arg(long)]
        partition: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The asset graph with status.
    Graph {
        #[arg(long, default_value = "dot", value_parser = ["dot", "mermaid", "json"])]
        format: String,
    },
    /// The run history.
    History {
        #[arg(long)]
        asset: Option<String>,
        #[arg(long)]
        run: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Run a job (rules/jobs/JOB.toml): build exactly its selection.
    Run {
        job: String,
        #[arg(long)]
        json: bool,
    },
    /// Re-run what failed (or was skipped) in RUN_ID, reusing everything that succeeded.
    Retry {
        run_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Run every scheduled job that fell due since the last tick (call from cron).
    Tick,
    /// Tick in the foreground every INTERVAL (schedules and sensors, near real time).
    Watch {
        #[arg(long, default_value = "60s")]
        interval: String,
        /// Stop after this many ticks.
        #[arg(long)]
        max_ticks: Option<usize>,
    },
    /// Print the crontab line and systemd units that call `lakebuild tick`.
    Cron {
        /// Minutes between ticks.
        #[arg(long, default_value_t = 5)]
        every: u32,
    },
    /// The jobs, their selections and schedules, and each schedule's next run.
    Jobs {
        #[arg(long)]
        json: bool,
    },
    /// Model versions and aliases.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// The run history's figures in the Prometheus text format.
    Metrics {
        /// Write here (atomically) instead of stdout, e.g. for node_exporter's textfile collector.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Success rates and duration percentiles per asset.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// Remove data files no version references, and files out of the current version
    /// for longer than the retention period.
    Gc {
        #[arg(long, default_value = "7d")]
        retention: String,
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum ModelCommand {
    /// Every version of the model: when, its id, training range, CV RankIC, aliases.
    List {
        #[arg(long, default_value = "trained_model")]
        asset: String,
        #[arg(long)]
        json: bool,
    },
    /// Point ALIAS (e.g. production) at VERSION; inputs `trained_model@ALIAS` follow it.
    Alias {
        alias: String,
        version: i64,
        #[arg(long, default_value = "trained_model")]
        asset: String,
    },
}

/// The injectable clock as an instant: `LAKEBUILD_NOW` as RFC 3339 (or a date, taken as
/// its midnight UTC), else the real time.
pub fn now_utc() -> Result<chrono::DateTime<chrono::Utc>> {
    match std::env::var("LAKEBUILD_NOW") {
        Ok(s) if !s.is_empty() => {
            if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&s) {
                return Ok(t.with_timezone(&chrono::Utc));
            }
            Ok(today()?.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
        }
        _ => Ok(chrono::Utc::now()),
    }
}

/// `LAKEBUILD_LOCK_TIMEOUT` for the builds of `run`, `retry` and `tick` (10 minutes).
fn env_lock_timeout() -> Duration {
    std::env::var("LAKEBUILD_LOCK_TIMEOUT")
        .ok()
        .and_then(|v| crate::rule::parse_duration(&v))
        .unwrap_or(Duration::from_secs(600))
}

/// `LAKEBUILD_BATCH_SIZE` for the builds of `run`, `retry` and `tick` (500).
fn env_batch_size() -> usize {
    std::env::var("LAKEBUILD_BATCH_SIZE")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(BuildOptions::default().batch_size)
        .max(1)
}

/// The build options of one run of `job` for `date`.
fn job_options(
    job: &crate::jobs::Job,
    date: NaiveDate,
    trigger: String,
    g: &Global,
) -> BuildOptions {
    let latest = job.partitions == crate::jobs::Partitions::Latest;
    BuildOptions {
        lock_timeout: env_lock_timeout(),
        batch_size: env_batch_size(),
        targets: job.assets.clone(),
        only: true,
        from: latest.then_some(date),
        to: latest.then_some(date),
        trigger,
        today: date,
        progress: !g.quiet && std::env::var_os("NO_COLOR").is_none(),
        ..Default::default()
    }
}

/// The injectable clock: `LAKEBUILD_NOW` (YYYY-MM-DD or RFC 3339) or the real date.
pub fn today() -> Result<NaiveDate> {
    match std::env::var("LAKEBUILD_NOW") {
        Ok(s) if !s.is_empty() => {
            if let Ok(d) = NaiveDate::parse_from_str(&s, "%Y-%m-%d") {
                return Ok(d);
            }
            chrono::DateTime::parse_from_rfc3339(&s)
                .map(|t| t.date_naive())
                .map_err(|_| {
                    UsageError(format!(
                        "LAKEBUILD_NOW='{s}' is neither YYYY-MM-DD nor RFC 3339"
                    ))
                    .into()
                })
        }
        // The machine's local date (set TZ, e.g. TZ=Asia/Tokyo, for a market's calendar).
        _ => Ok(chrono::Local::now().date_naive()),
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "lakebuild=info",
        _ => "lakebuild=debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::env::var_os("NO_COLOR").is_none())
        .try_init();
}

fn build_options(a: &BuildArgs, g: &Global) -> Result<BuildOptions> {
    let lock_timeout = crate::rule::parse_duration(&a.lock_timeout).ok_or_else(|| {
        UsageError(format!(
            "--lock-timeout '{}' is not a duration: write e.g. 30s or 10m",
            a.lock_timeout
        ))
    })?;
    Ok(BuildOptions {
        targets: a.targets.clone(),
        only: a.only,
        force: a.force,
        dry_run: a.dry_run,
        jobs: a.jobs.max(1),
        from: a.from,
        to: a.to,
        keep_going: a.keep_going,
        trigger: a.trigger.clone(),
        lock_timeout,
        today: today()?,
        progress: !g.quiet && std::env::var_os("NO_COLOR").is_none(),
        batch_size: a
            .batch_size
            .unwrap_or(BuildOptions::default().batch_size)
            .max(1),
        ..Default::default()
    })
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn run(cli: Cli) -> Result<i32> {
    let root = match &cli.global.directory {
        Some(d) => d.clone(),
        None => std::env::current_dir()?,
    };
    let g = &cli.global;
    let project = Project::load(&root, &g.rules, &g.lake)?;
    let default_opts = || {
        build_options(
            &BuildArgs {
                lock_timeout: "10m".into(),
                ..Default::default()
            },
            g,
        )
    };
    match cli.command {
        None => run_build(&project, &cli.build, g),
        Some(Command::Build(a)) => run_build(&project, &a, g),
        Some(Command::Status { json }) => {
            let s = status::status(&project, &default_opts()?)?;
            if json {
                print_json(&s)?
            } else {
                print!("{}", status::render(&s))
            }
            Ok(0)
        }
        Some(Command::Why {
            target,
            partition,
            json,
        }) => {
            let p = match partition {
                Some(p) => Some(PartitionId::parse(&p).map_err(UsageError)?),
                None => None,
            };
            let w = explain::why(&project, &target, p, &default_opts()?)?;
            if json {
                print_json(&w)?
            } else {
                print!("{}", explain::render(&w))
            }
            Ok(0)
        }
        Some(Command::Graph { format }) => {
            let s = status::status(&project, &default_opts()?)?;
            print!("{}", graph::render(&project, &s, &format));
            Ok(0)
        }
        Some(Command::History {
            asset,
            run,
            limit,
            json,
        }) => {
            let rows = runs::read_all(&project.lake)?;
            let picked = history::filter(&rows, asset.as_deref(), run.as_deref(), limit);
            if json {
                print_json(&picked)?
            } else {
                print!("{}", history::render(&picked))
            }
            Ok(0)
        }
        Some(Command::Run { job, json }) => {
            let j = crate::jobs::find(&project.rules_dir, &project.rules, &job)?;
            let opts = job_options(&j, today()?, format!("job:{}", j.name), g);
            let report = build(&project, &opts)?;
            crate::alerts::after_build(&project, &report);
            print_report(&report, json)?;
            Ok(if report.ok() { 0 } else { 1 })
        }
        Some(Command::Retry { run_id, json }) => {
            let rows = runs::read_all(&project.lake)?;
            let mine: Vec<&runs::RunRow> = rows.iter().filter(|r| r.run_id == run_id).collect();
            if mine.is_empty() {
                return Err(UsageError(format!(
                    "no run '{run_id}' in the history: see lakebuild history"
                ))
                .into());
            }
            // The last attempt of each asset decides whether it failed.
            let mut last: std::collections::BTreeMap<&str, &runs::RunRow> = Default::default();
            for r in &mine {
                last.insert(r.asset.as_str(), r);
            }
            let failed: Vec<&runs::RunRow> = last
                .values()
                .copied()
                .filter(|r| r.outcome == "failed" || r.outcome == "skipped")
                .collect();
            if failed.is_empty() {
                println!("run {run_id} had no failures: nothing to retry");
                return Ok(0);
            }
            let parse = |s: &Option<String>| {
                s.as_deref()
                    .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            };
            let from = failed.iter().filter_map(|r| parse(&r.partition_from)).min();
            let to = failed.iter().filter_map(|r| parse(&r.partition_to)).max();
            let opts = BuildOptions {
                targets: failed.iter().map(|r| r.asset.clone()).collect(),
                from,
                to: to.or(from),
                trigger: format!("retry:{run_id}"),
                lock_timeout: env_lock_timeout(),
                batch_size: env_batch_size(),
                today: today()?,
                progress: !g.quiet && std::env::var_os("NO_COLOR").is_none(),
                ..Default::default()
            };
            println!("retrying {} from run {run_id}", opts.targets.join(", "));
            let report = build(&project, &opts)?;
            crate::alerts::after_build(&project, &report);
            print_report(&report, json)?;
            Ok(if report.ok() { 0 } else { 1 })
        }
        Some(Command::Tick) => Ok(if tick_once(&project, g)? { 0 } else { 1 }),
        Some(Command::Watch {
            interval,
            max_ticks,
        }) => {
            let every = crate::rule::parse_duration(&interval).ok_or_else(|| {
                UsageError(format!(
                    "--interval '{interval}' is not a duration, e.g. 30s"
                ))
            })?;
            if every < Duration::from_secs(1) {
                return Err(UsageError(format!(
                    "--interval {interval} is too short: use 1s or more"
                ))
                .into());
            }
            let mut n = 0usize;
            let mut ok = true;
            let mut current = None;
            loop {
                // The rules are read again on every tick, so an edit takes effect without a
                // restart; rules that do not load are reported and the last good ones used.
                match Project::load(&project.root, &project.rules_dir, &project.lake.root) {
                    Ok(p) => current = Some(p),
                    Err(e) => eprintln!("rules did not load, using the last good ones: {e:#}"),
                }
                let active = current.as_ref().unwrap_or(&project);
                // A bad tick (a job file being edited, a sensor's error) is reported and the
                // watch goes on.
                match tick_once(active, g) {
                    Ok(b) => ok &= b,
                    Err(e) => {
                        eprintln!("tick failed: {e:#}");
                        ok = false;
                    }
                }
                n += 1;
                if max_ticks.is_some_and(|m| n >= m) {
                    break;
                }
                std::thread::sleep(every);
            }
            Ok(if ok { 0 } else { 1 })
        }
        Some(Command::Cron { every }) => {
            let exe = std::env::current_exe()
                .map_err(|e| anyhow::anyhow!("cannot find the lakebuild binary: {e}"))?;
            let root = std::fs::canonicalize(&project.root).unwrap_or(project.root.clone());
            let lake =
                std::fs::canonicalize(&project.lake.root).unwrap_or(project.lake.root.clone());
            print!(
                "{}",
                crate::schedule::install_text(&exe, &root, &lake, every.clamp(1, 59))
            );
            Ok(0)
        }
        Some(Command::Jobs { json }) => {
            let jobs = crate::jobs::load(&project.rules_dir, &project.rules)?;
            let now = now_utc()?;
            let mut listed = Vec::new();
            for j in &jobs {
                let next = j.schedule.as_ref().and_then(|s| {
                    crate::schedule::parse_cron(&s.cron)
                        .ok()
                        .and_then(|c| crate::schedule::next(&c, s.timezone, now))
                        .map(|t| {
                            t.with_timezone(&s.timezone)
                                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                        })
                });
                listed.push(serde_json::json!({
                    "name": j.name,
                    "description": j.description,
                    "select": j.select,
                    "assets": j.assets,
                    "partitions": j.partitions,
                    "cron": j.schedule.as_ref().map(|s| s.cron.clone()),
                    "timezone": j.schedule.as_ref().map(|s| s.timezone.to_string()),
                    "catch_up": j.schedule.as_ref().map(|s| s.catch_up),
                    "next": next,
                }));
                if json {
                    continue;
                }
                let sched = match &j.schedule {
                    Some(s) => format!(
                        "cron \"{}\" {} (catch_up {:?}), next {}",
                        s.cron,
                        s.timezone,
                        s.catch_up,
                        next.as_deref().unwrap_or("-")
                    ),
                    None => "no schedule".into(),
                };
                println!(
                    "{}: {} [{:?} partitions] — {sched}",
                    j.name,
                    j.assets.join(", "),
                    j.partitions
                );
            }
            if json {
                print_json(&listed)?;
            } else if jobs.is_empty() {
                println!("no jobs: add rules/jobs/<name>.toml");
            }
            Ok(0)
        }
        Some(Command::Model { command }) => match command {
            ModelCommand::List { asset, json } => {
                let v = crate::model_versions::list(&project, &asset)?;
                if json {
                    print_json(&v)?
                } else {
                    print!("{}", crate::model_versions::render(&asset, &v))
                }
                Ok(0)
            }
            ModelCommand::Alias {
                alias,
                version,
                asset,
            } => {
                let _lock =
                    lock::acquire(&project.lake.root, "model alias", Duration::from_secs(600))?;
                let old = crate::model_versions::set_alias(&project, &asset, &alias, version)
                    .map_err(|e| UsageError(format!("{e:#}")))?;
                match old {
                    Some(o) if o != version => println!("{asset}@{alias}: version {o} → {version}"),
                    _ => println!("{asset}@{alias} = version {version}"),
                }
                Ok(0)
            }
        },
        Some(Command::Stats { json }) => {
            let rows = runs::read_all(&project.lake)?;
            let mut st = history::stats(&rows);
            let (breaches, _) = crate::sla::evaluate(&project, &rows, now_utc()?)?;
            // An asset that never ran can still be in breach (a missed deadline).
            for b in &breaches {
                if !st.iter().any(|s| s.asset == b.asset) {
                    st.push(history::AssetStats {
                        asset: b.asset.clone(),
                        ..Default::default()
                    });
                }
            }
            for s in &mut st {
                s.sla_breaches = breaches
                    .iter()
                    .filter(|b| b.asset == s.asset)
                    .map(|b| format!("{}: {}", b.kind, b.detail))
                    .collect();
            }
            if json {
                print_json(&st)?
            } else {
                print!("{}", history::render_stats(&st))
            }
            Ok(0)
        }
        Some(Command::Metrics { output }) => {
            let rows = runs::read_all(&project.lake)?;
            let st = history::stats(&rows);
            let (breaches, evaluated) = crate::sla::evaluate(&project, &rows, now_utc()?)?;
            let text = crate::prometheus::render(&st, &breaches, &evaluated);
            match output {
                Some(p) => crate::lake::state::write_atomically(&p, text.as_bytes())?,
                None => print!("{text}"),
            }
            Ok(0)
        }
        Some(Command::Gc {
            retention,
            dry_run,
            json,
        }) => {
            let retention = crate::rule::parse_duration(&retention).ok_or_else(|| {
                UsageError(format!(
                    "--retention '{retention}' is not a duration, e.g. 7d"
                ))
            })?;
            let _lock = lock::acquire(&project.lake.root, "gc", Duration::from_secs(600))?;
            let mut reports = Vec::new();
            let aliases = crate::lake::aliases::load(&project.lake.root)?;
            for a in &project.rules.order {
                let pinned: Vec<i64> = aliases
                    .get(a)
                    .map(|m| m.values().copied().collect())
                    .unwrap_or_default();
                reports.push(gc::collect_keeping(
                    &project.lake.table(a),
                    retention,
                    dry_run,
                    &pinned,
                )?);
            }
            reports.push(gc::collect(&project.lake.runs_table(), retention, dry_run)?);
            let tmp = project.lake.root.join("_lakebuild").join("tmp");
            if tmp.exists() && !dry_run {
                let _ = std::fs::remove_dir_all(&tmp);
            }
            // Training checkpoints of work that never finished (its inputs changed since):
            // removed once older than the retention.
            let resume = project.lake.root.join("_lakebuild").join("resume");
            if let (Ok(entries), false) = (std::fs::read_dir(&resume), dry_run) {
                for e in entries.flatten() {
                    let old = e
                        .metadata()
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age >= retention);
                    if old {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
            if json {
                print_json(&reports)?
            } else {
                for r in &reports {
                    if r.orphans_removed + r.expired_removed + r.kept_for_retention > 0 {
                        println!(
                            "{}: removed {} unreferenced and {} expired file(s), {} bytes; kept {} for retention",
                            r.table,
                            r.orphans_removed,
                            r.expired_removed,
                            r.bytes_freed,
                            r.kept_for_retention
                        );
                    }
                }
                println!(
                    "gc done{}",
                    if dry_run {
                        " (dry run: nothing removed)"
                    } else {
                        ""
                    }
                );
            }
            Ok(0)
        }
    }
}

fn run_build(project: &Project, a: &BuildArgs, g: &Global) -> Result<i32> {
    let opts = build_options(a, g)?;
    if a.dry_run {
        let plans = plan(project, &opts)?;
        if a.json {
            print_json(&plans)?;
            return Ok(0);
        }
        let mut any = false;
        for p in &plans {
            if p.is_fresh() {
                continue;
            }
            any = true;
            println!("{}:", p.asset);
            for r in &p.source_reasons {
                println!("  import runs again: {r}");
            }
            if !p.to_restore.is_empty() {
                println!(
                    "  restore {} partition(s) from older versions (no op runs)",
                    p.to_restore.len()
                );
            }
            for id in &p.to_remove {
                println!("  remove {id} (no longer in the domain)");
            }
            for (id, reasons) in p.to_build.iter().take(20) {
                let r: Vec<String> = reasons.iter().map(|r| r.to_string()).collect();
                println!("  build {id}: {}", r.join("; "));
            }
            if p.to_build.len() > 20 {
                println!("  … and {} more partition(s)", p.to_build.len() - 20);
            }
        }
        if !any {
            println!("nothing to do: every asset is fresh");
        }
        return Ok(0);
    }
    let report = build(project, &opts)?;
    crate::alerts::after_build(project, &report);
    print_report(&report, a.json)?;
    Ok(if report.ok() { 0 } else { 1 })
}

/// One tick: every schedule due and every sensor that fires runs its job, under the
/// tick lock. Returns whether every run succeeded.
fn tick_once(project: &Project, g: &Global) -> Result<bool> {
    let now = now_utc()?;
    let Some(_tick) = lock::try_acquire_named(&project.lake.root, "tick.lock", "tick")? else {
        println!("another tick is running: it handles what is due; nothing to do");
        return Ok(true);
    };
    let jobs = crate::jobs::load(&project.rules_dir, &project.rules)?;
    let mut ok = true;
    let records = crate::schedule::tick(&project.lake.root, &jobs, now, &mut |job, at| {
        let date = crate::schedule::run_date(job, at);
        let opts = job_options(
            job,
            date,
            format!("schedule:{}@{}", job.name, at.to_rfc3339()),
            g,
        );
        let report = match build(project, &opts) {
            Ok(r) => r,
            Err(e) => {
                // No build ran (e.g. the lake stayed locked): a failure to announce.
                ok = false;
                crate::alerts::could_not_run(project, &job.name, &format!("{e:#}"));
                return Err(e);
            }
        };
        crate::alerts::after_build(project, &report);
        crate::alerts::could_run(project, &job.name);
        ok &= report.ok();
        Ok((report.run_id.clone(), report.ok()))
    })?;
    for r in &records {
        let at = r.scheduled_for.map(|t| t.to_rfc3339()).unwrap_or_default();
        match r.action.as_str() {
            "started" => println!(
                "{}: schedule starts now; runs from the next occurrence",
                r.job
            ),
            "skipped" => println!("{}: {at} skipped (catch_up = latest)", r.job),
            "dropped" => println!("{}: {}", r.job, r.error.as_deref().unwrap_or("")),
            _ => println!(
                "{}: {at} ran as {} ({})",
                r.job,
                r.run_id.as_deref().unwrap_or("-"),
                if r.ok == Some(true) {
                    "ok".to_string()
                } else {
                    format!("FAILED {}", r.error.as_deref().unwrap_or(""))
                }
            ),
        }
    }
    let sensors = crate::sensors::load(&project.rules_dir, project, &jobs)?;
    let today = today()?;
    let fired = crate::sensors::evaluate(project, &sensors, today)?;
    for f in &fired {
        let Some(job) = jobs.iter().find(|j| j.name == f.job) else {
            continue;
        };
        let mut opts = job_options(job, today, format!("sensor:{}", f.sensor), g);
        if f.kind == crate::sensors::SensorKind::NewSourceData && opts.from.is_some() {
            // A job of the latest partitions builds every new day the sensor saw, not only
            // today's (ticks may have been missed).
            let day = |c: &str| NaiveDate::parse_from_str(c, "%Y-%m-%d").ok();
            let first = f
                .previous
                .as_deref()
                .and_then(day)
                .and_then(|d| d.succ_opt());
            opts.from = first.or(opts.from);
            opts.to = day(&f.cursor).max(opts.to);
        }
        let report = build(project, &opts)?;
        crate::alerts::after_build(project, &report);
        ok &= report.ok();
        if report.ok() {
            crate::sensors::commit(project, f)?;
        }
        println!(
            "{}: fired ({} → {}), ran {} as {}",
            f.sensor,
            f.previous.as_deref().unwrap_or("-"),
            f.cursor,
            job.name,
            report.run_id
        );
    }
    if records.is_empty() && fired.is_empty() {
        println!("nothing due");
    }
    crate::alerts::after_tick(project);
    Ok(ok)
}

fn print_report(report: &crate::build::BuildReport, json: bool) -> Result<()> {
    if json {
        print_json(report)?;
    } else {
        for s in &report.steps {
            if s.skipped {
                println!("{:<28} skipped (an input failed)", s.asset);
            } else if let Some(e) = &s.failed {
                println!("{:<28} FAILED: {e}", s.asset);
            } else if s.built + s.cut_off + s.restored + s.removed > 0 {
                println!(
                    "{:<28} built {}, cut off {}, restored {}, removed {}, fresh {} ({} ms)",
                    s.asset, s.built, s.cut_off, s.restored, s.removed, s.fresh, s.duration_ms
                );
            }
        }
        if report.ops_run() == 0
            && report.ok()
            && report.steps.iter().all(|s| s.restored + s.removed == 0)
        {
            println!("nothing to do: every asset is fresh");
        }
    }
    Ok(())
}

pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    init_tracing(cli.global.verbose);
    // Polars sorts and parquet writes recurse deeply on wide batches: give the rayon
    // workers that run them the same roomy stacks as the build steps.
    let _ = rayon::ThreadPoolBuilder::new()
        .stack_size(64 << 20)
        .thread_name(|i| format!("lakebuild-{i}"))
        .build_global();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit_code(&e)
        }
    }
}
