//! The command line: argument parsing, dispatch and printing only. One file per command
//! group: [`build`] (building and the dry run), [`read`] (status, why, graph, history,
//! stats, metrics), [`orchestrate`] (run, retry, tick, watch, cron, jobs), [`model`]
//! (model versions and aliases), [`gc`]. What the commands do lives in the layers below.

mod build;
mod gc;
mod mlflow;
mod model;
mod orchestrate;
mod promotion;
mod read;
mod tune;

use crate::core::error::exit_code;
use crate::engine::project::Project;
use anyhow::Result;
use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "lakebuild",
    version,
    about = "A make-like, content-addressed build system for a Delta Lake lakehouse"
)]
pub(crate) struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Option<Command>,
    /// With no subcommand: build these targets (all assets when none).
    #[command(flatten)]
    build: BuildArgs,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct Global {
    /// Run as if started in DIR.
    #[arg(short = 'C', long = "directory", global = true, value_name = "DIR")]
    pub(crate) directory: Option<PathBuf>,
    /// The rules folder [default: rules, or lakebuild.toml's `rules`].
    #[arg(long, global = true, env = "LAKEBUILD_RULES")]
    pub(crate) rules: Option<PathBuf>,
    /// The lake folder [default: lake, or lakebuild.toml's `lake`].
    #[arg(long, global = true, env = "LAKEBUILD_LAKE")]
    pub(crate) lake: Option<PathBuf>,
    /// The time zone whose date is "today", e.g. Asia/Tokyo [default: lakebuild.toml's
    /// `timezone`, else the machine's].
    #[arg(long, global = true, env = "LAKEBUILD_TIMEZONE", value_name = "ZONE")]
    pub(crate) timezone: Option<String>,
    /// More logging (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// No progress bars.
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub(crate) struct BuildArgs {
    /// Assets to build (with everything upstream of them).
    pub(crate) targets: Vec<String>,
    /// Print what would run and exactly why; run nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Rebuild the targets even when fresh.
    #[arg(long)]
    pub(crate) force: bool,
    /// Steps run at once.
    #[arg(short, long, default_value_t = 1)]
    pub(crate) jobs: usize,
    /// Build only the targets, not their upstream.
    #[arg(long)]
    pub(crate) only: bool,
    /// First partition date to build (YYYY-MM-DD).
    #[arg(long)]
    pub(crate) from: Option<NaiveDate>,
    /// Last partition date to build (YYYY-MM-DD).
    #[arg(long)]
    pub(crate) to: Option<NaiveDate>,
    /// Keep building independent assets after a failure.
    #[arg(long)]
    pub(crate) keep_going: bool,
    /// How long to wait for another lakebuild holding the lake (e.g. 30s, 10m).
    #[arg(long, env = "LAKEBUILD_LOCK_TIMEOUT", default_value = "10m")]
    pub(crate) lock_timeout: String,
    /// Most partitions of a daily asset computed and committed together (default 500):
    /// lower it to cap a step's memory.
    #[arg(long, env = "LAKEBUILD_BATCH_SIZE")]
    pub(crate) batch_size: Option<usize>,
    /// What started this run (recorded in the history).
    #[arg(long, default_value = "manual")]
    pub(crate) trigger: String,
    /// Print the result as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `lakebuild tune`'s arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct TuneArgs {
    pub(crate) asset: String,
    /// The study's size: trials are run until this many have finished (default: the
    /// rule's tune.trials).
    #[arg(long)]
    pub(crate) trials: Option<usize>,
    /// Start no trial after this long (e.g. 2h).
    #[arg(long)]
    pub(crate) timeout: Option<String>,
    /// The study's name (default: the asset's).
    #[arg(long)]
    pub(crate) study: Option<String>,
    /// An Optuna storage URL (sqlite:///…, postgresql://…) or a journal file (default
    /// lake/_lakebuild/tune/optuna.log).
    #[arg(long)]
    pub(crate) storage: Option<String>,
    /// Trials at once.
    #[arg(short, long, default_value_t = 1)]
    pub(crate) jobs: usize,
    /// The sampler's seed (default: the rule's tune.seed); give each process of a
    /// shared study its own.
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Show the study's best trial; run nothing.
    #[arg(long)]
    pub(crate) best: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
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
    /// Tune ASSET's params with Optuna over its rule's [tune] space: every trial a build
    /// of the asset with the drawn params (cached by key, in the asset's side table; no
    /// alias or current version moves). Needs Python with optuna.
    Tune(TuneArgs),
    /// Model versions and aliases.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// MLflow tracking (on when MLFLOW_TRACKING_URI is set).
    Mlflow {
        #[command(subcommand)]
        command: MlflowCommand,
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
    /// The web UI and its JSON API (/api/…): the asset graph, assets, runs, schedules,
    /// SLAs, alerts and models. Read-only unless LAKEBUILD_UI_TOKEN is set; actions
    /// (launch a job, retry a run) then need the token.
    Serve {
        /// Address to listen on (port 0: any free port, printed at start).
        #[arg(long, default_value = "127.0.0.1:3000")]
        bind: std::net::SocketAddr,
        /// Another host name the server answers to (e.g. behind a proxy); repeatable.
        #[arg(long = "allow-host", value_name = "NAME")]
        allow_host: Vec<String>,
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
pub(crate) enum MlflowCommand {
    /// Register every materialization and alias of every tracked asset in MLflow (what
    /// it has already is found, not made again) and deliver what is queued.
    Sync,
    /// What waits in the lake for MLflow, and why.
    Status,
}

#[derive(Subcommand, Debug)]
pub(crate) enum ModelCommand {
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
    /// Compare two sets of predictions on the days out of sample for both: per horizon
    /// each side's IC, RankIC, ICIR, decile spread and Sharpe, hit rate, and the paired
    /// daily RankIC difference B − A with its Newey–West standard error, t, one-sided
    /// p-value and a block-bootstrap interval. A and B: predictions assets, at a version or
    /// alias (`predictions@production`, `team_predictions`), or versions of the model
    /// (`production challenger`, `3 5`: that version's rows in the predictions that read it).
    Compare {
        a: String,
        b: String,
        /// First day compared (YYYY-MM-DD).
        #[arg(long)]
        from: Option<chrono::NaiveDate>,
        /// Last day compared (YYYY-MM-DD).
        #[arg(long)]
        to: Option<chrono::NaiveDate>,
        /// Only this horizon, e.g. 5d.
        #[arg(long)]
        horizon: Option<String>,
        /// The labels asset the predictions are scored against.
        #[arg(long, default_value = "labels")]
        labels: String,
        /// Fewest shared days for a comparison.
        #[arg(long, default_value_t = 20)]
        min_days: usize,
        #[arg(long)]
        json: bool,
    },
    /// The promotion policy (`[promotion]`): champion, challenger, the evidence, and
    /// what it decides and why; acts on it (promote, roll back, retire, put a new
    /// version on trial) unless --dry-run. Builds and ticks run it by themselves.
    Policy {
        #[arg(long, default_value = "trained_model")]
        asset: String,
        /// Show the decision without acting.
        #[arg(long)]
        dry_run: bool,
        /// Print the promotion log (every decision, with its statistics) instead.
        #[arg(long)]
        log: bool,
        #[arg(long)]
        json: bool,
    },
    /// Every alias move, oldest first: when, from which version to which, and who moved
    /// it (`cli`: lakebuild model alias; `mlflow`: imported from MLflow's registry;
    /// `policy`: the promotion policy).
    History {
        /// Only this asset's aliases.
        #[arg(long)]
        asset: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

impl Global {
    /// Progress bars: on unless `--quiet` or `NO_COLOR`.
    fn progress(&self) -> bool {
        !self.quiet && std::env::var_os("NO_COLOR").is_none()
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

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    use std::io::Write;
    let text = serde_json::to_string_pretty(v)?;
    // A reader that stops early (`| head`) is not an error.
    match writeln!(std::io::stdout(), "{text}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

fn given_of(g: &Global) -> crate::engine::settings::Given {
    crate::engine::settings::Given {
        lake: g.lake.clone(),
        rules: g.rules.clone(),
        timezone: g.timezone.clone(),
    }
}

fn run(cli: Cli) -> Result<i32> {
    let root = match &cli.global.directory {
        Some(d) => d.clone(),
        None => std::env::current_dir()?,
    };
    let g = &cli.global;
    let project = Project::open(crate::registry(), &root, given_of(g))?;
    match cli.command {
        None => build::run_build(&project, &cli.build, g),
        Some(Command::Build(a)) => build::run_build(&project, &a, g),
        Some(Command::Status { json }) => read::status(&project, g, json),
        Some(Command::Why {
            target,
            partition,
            json,
        }) => read::why(&project, g, &target, partition.as_deref(), json),
        Some(Command::Graph { format }) => read::graph(&project, g, &format),
        Some(Command::History {
            asset,
            run,
            limit,
            json,
        }) => read::history(&project, asset.as_deref(), run.as_deref(), limit, json),
        Some(Command::Stats { json }) => read::stats(&project, json),
        Some(Command::Metrics { output }) => read::metrics(&project, output.as_deref()),
        Some(Command::Run { job, json }) => orchestrate::run_job(&project, g, &job, json),
        Some(Command::Retry { run_id, json }) => orchestrate::retry(&project, g, &run_id, json),
        Some(Command::Tick) => orchestrate::tick(&project, g),
        Some(Command::Watch {
            interval,
            max_ticks,
        }) => orchestrate::watch(&project, g, &interval, max_ticks),
        Some(Command::Cron { every }) => orchestrate::cron(&project, every),
        Some(Command::Jobs { json }) => orchestrate::jobs(&project, json),
        Some(Command::Model { command }) => model::run(&project, command),
        Some(Command::Tune(a)) => tune::run(&project, g, a),
        Some(Command::Mlflow { command }) => mlflow::run(&project, command),
        Some(Command::Serve { bind, allow_host }) => {
            let opts = crate::web::ServeOptions {
                bind,
                allow_hosts: allow_host,
                token: std::env::var("LAKEBUILD_UI_TOKEN").ok(),
            };
            crate::web::serve(crate::registry(), root.clone(), given_of(g), opts)?;
            Ok(0)
        }
        Some(Command::Gc {
            retention,
            dry_run,
            json,
        }) => gc::run(&project, &retention, dry_run, json),
    }
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
