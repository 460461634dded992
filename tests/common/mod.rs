//! Test projects on disk: rules, data files and a lake in a temp dir, driven through the
//! real `lakebuild` binary and inspected through the library.
#![allow(dead_code)]

use lakebuild::core::partition::PartitionId;
use lakebuild::core::record::CommitRecord;
use lakebuild::core::table_state::AssetState;
use lakebuild::lake::Lake;
use lakebuild::lake::runs::{self, RunRow};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod jquants_server;
pub mod web_client;

pub type R<T = ()> = Result<T, Box<dyn std::error::Error>>;

pub struct Proj {
    pub dir: tempfile::TempDir,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_lakebuild")
}

impl Proj {
    pub fn new() -> R<Proj> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join("rules"))?;
        std::fs::create_dir_all(dir.path().join("data"))?;
        Ok(Proj { dir })
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) -> R {
        let p = self.path(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(p, text)?;
        Ok(())
    }

    pub fn rule(&self, asset: &str, text: &str) -> R {
        self.write(&format!("rules/{asset}.toml"), text)
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.current_dir(self.root())
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            // The repository's market rules read J-Quants when a key is set: tests pick
            // their source explicitly.
            .env_remove("JQUANTS_API_KEY")
            // Tests that track in MLflow set it on the command.
            .env_remove("MLFLOW_TRACKING_URI")
            .env_remove("MLFLOW_TRACKING_USERNAME")
            .env_remove("MLFLOW_TRACKING_PASSWORD")
            .env_remove("MLFLOW_TRACKING_TOKEN");
        c
    }

    pub fn run(&self, args: &[&str]) -> R<Output> {
        Ok(self.cmd(args).output()?)
    }

    /// Runs lakebuild and fails the test (with its output) unless it exits 0.
    pub fn ok(&self, args: &[&str]) -> R<String> {
        let out = self.run(args)?;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        if !out.status.success() {
            return Err(format!(
                "lakebuild {args:?} exited {:?}\nstdout:\n{stdout}\nstderr:\n{}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        Ok(stdout)
    }

    /// Runs lakebuild, expecting exit code `code`; returns stdout + stderr.
    pub fn fails(&self, args: &[&str], code: i32) -> R<String> {
        let out = self.run(args)?;
        let all = output_text(&out);
        if out.status.code() != Some(code) {
            return Err(
                format!("expected exit {code}, got {:?}:\n{all}", out.status.code()).into(),
            );
        }
        Ok(all)
    }

    pub fn lake(&self) -> Lake {
        Lake::new(self.path("lake"))
    }

    pub fn state(&self, asset: &str) -> R<AssetState> {
        Ok(lakebuild::lake::log::load(&self.lake().table(asset))?)
    }

    pub fn version(&self, asset: &str) -> R<Option<i64>> {
        Ok(self.state(asset)?.version)
    }

    pub fn hashes(&self, asset: &str) -> R<BTreeMap<PartitionId, String>> {
        Ok(self
            .state(asset)?
            .current
            .iter()
            .map(|(k, c)| (*k, c.record().content_hash.clone()))
            .collect())
    }

    pub fn last_commit(&self, asset: &str) -> R<CommitRecord> {
        let s = self.state(asset)?;
        let (_, c) = s.last_commit().ok_or("no commit")?;
        Ok((**c).clone())
    }

    /// Every current row of an asset, read back from its parquet files.
    pub fn frame(&self, asset: &str) -> R<polars::prelude::DataFrame> {
        let dir = self.lake().table(asset);
        let files: Vec<_> = self
            .state(asset)?
            .active_files
            .keys()
            .map(|f| dir.join(f))
            .collect();
        Ok(lakebuild::lake::parquet::scan_files(&files)?.collect()?)
    }

    pub fn history(&self) -> R<Vec<RunRow>> {
        Ok(runs::read_all(&self.lake())?)
    }

    /// Every table of `assets` opens at a committed version (its log replays and every
    /// file it lists is on disk); `why` names the situation in a failure.
    pub fn assert_tables_committed(&self, assets: &[&str], why: &str) -> R {
        for a in assets {
            let state = self
                .state(a)
                .map_err(|e| format!("{why}: {a} does not open: {e}"))?;
            for f in state.active_files.keys() {
                assert!(
                    self.path(&format!("lake/{a}/{f}")).exists(),
                    "{why}: {a} lists {f}, which is missing"
                );
            }
        }
        Ok(())
    }
}

/// A project holding the repository's own rules for `assets`, each with `edits`
/// (text replacements, applied in order: e.g. a smaller market or model). The model's
/// promotion policy names both sides' predictions, so they come with the model.
pub fn repository_rules(assets: &[&str], edits: &[(&str, &str)]) -> R<Proj> {
    let p = Proj::new()?;
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let mut assets = assets.to_vec();
    for scores in ["predictions", "challenger_predictions"] {
        if assets.contains(&"trained_model") && !assets.contains(&scores) {
            assets.push(scores);
        }
    }
    for asset in &assets {
        let mut text = std::fs::read_to_string(rules.join(format!("{asset}.toml")))?;
        for (from, to) in edits {
            text = text.replace(from, to);
        }
        p.rule(asset, &text)?;
    }
    Ok(p)
}

/// Edits of the repository's rules for the model tests: 30 stocks from 2025-01-06, a
/// tiny network, short folds and a 60-day lead-lag lookback.
pub const TINY_MODEL: [(&str, &str); 10] = [
    ("stocks = 300", "stocks = 30"),
    ("2023-01-04", "2025-01-06"),
    ("hidden = 32", "hidden = 8\nheads = 2\ngraph_k = 4"),
    ("window = 20", "window = 10"),
    ("epochs = 4", "epochs = 2"),
    ("days_per_epoch = 96", "days_per_epoch = 6"),
    ("folds = 5", "folds = 2"),
    ("min_train_days = 252", "min_train_days = 30"),
    ("graph_lag_lookback = 500", "graph_lag_lookback = 60"),
    (
        "window = [-500, 0], full = [-250, 0]",
        "window = [-60, 0], full = true",
    ),
];

/// The distinct model ids an asset's rows were made with (its `model_id` column).
pub fn model_ids(p: &Proj, asset: &str) -> R<Vec<String>> {
    let f = p.frame(asset)?;
    let mut v: Vec<String> = f
        .column("model_id")?
        .str()?
        .iter()
        .flatten()
        .map(str::to_string)
        .collect();
    v.sort();
    v.dedup();
    Ok(v)
}

/// Whether python3 can `import {modules}` (e.g. "mlflow, safetensors"). Outside CI a
/// missing module skips the test that asks (said on stderr); in CI (`CI=true`) it is a
/// failure, since `.ci/run` installs every module the tests use.
pub fn python_has(modules: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success());
    present_or_skip(
        ok,
        &format!("python3 with {modules}"),
        &format!("pip install {modules}"),
    )
}

/// `present`, after failing the test in CI (`CI=true`, where `.ci/run` installs every
/// tool the tests use) when it is false, or saying on stderr that the test skips (outside
/// CI): `what` is missing, `how` installs it.
pub fn present_or_skip(present: bool, what: &str, how: &str) -> bool {
    if !present {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true" || v == "1"),
            "CI: {what} is missing (.ci/run installs it)"
        );
        eprintln!("SKIPPED: {what} is not available ({how})");
    }
    present
}

/// A finished command's stdout followed by its stderr, as one text for assertions.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A `YYYY-MM-DD` date (tests only: a bad literal is a test bug).
pub fn date(s: &str) -> chrono::NaiveDate {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_default()
}

pub fn day(i: u32) -> chrono::NaiveDate {
    // Business days from 2024-01-01 (a Monday).
    let mut d = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap_or_default();
    let mut n = 0;
    loop {
        use chrono::Datelike;
        if d.weekday().num_days_from_monday() < 5 {
            if n == i {
                return d;
            }
            n += 1;
        }
        d = d.succ_opt().unwrap_or(d);
    }
}

pub fn pid(i: u32) -> PartitionId {
    PartitionId::Day(day(i))
}

/// A CSV of daily prices for `days` business days and three codes (one alphanumeric).
/// `tweak(day, code, close) -> close` lets a test change values.
pub fn prices_csv(days: u32, tweak: &dyn Fn(u32, &str, f64) -> f64) -> String {
    let mut s = String::from("Date,Code,Close,Volume\n");
    for i in 0..days {
        for (k, code) in ["1301", "7203", "131A0"].iter().enumerate() {
            let close = 100.0 + (i as f64) * (k as f64 + 1.0) + ((i * 7 + k as u32 * 3) % 5) as f64;
            let close = tweak(i, code, close);
            s.push_str(&format!(
                "{},{code},{close},{}\n",
                day(i),
                1000 + i * 10 + k as u32
            ));
        }
    }
    s
}

pub const PRICES_RULE: &str = r#"
op = "files"
partitioned = "daily"
key_columns = ["Code", "Date"]
[params]
path = "data/prices.csv"
[[checks]]
kind = "unique"
columns = ["Code", "Date"]
"#;

/// A 3-day moving average: a genuinely windowed op.
pub const MA_RULE: &str = r#"
op = "sql"
partitioned = "daily"
key_columns = ["Code", "Date"]
inputs = [{ asset = "prices", window = [-2, 0] }]
[params]
query = "SELECT {{date}} AS Date, Code, AVG(Close) AS ma3, COUNT(*) AS n FROM prices GROUP BY Code"
"#;

pub const SUMMARY_RULE: &str = r#"
op = "sql"
key_columns = ["Code"]
inputs = [{ asset = "ma" }]
[params]
query = "SELECT Code, COUNT(*) AS days, AVG(ma3) AS avg_ma FROM ma GROUP BY Code"
"#;

/// prices -> ma -> summary over `days` days.
pub fn pipeline(days: u32) -> R<Proj> {
    let p = Proj::new()?;
    p.write("data/prices.csv", &prices_csv(days, &|_, _, c| c))?;
    p.rule("prices", PRICES_RULE)?;
    p.rule("ma", MA_RULE)?;
    p.rule("summary", SUMMARY_RULE)?;
    Ok(p)
}
