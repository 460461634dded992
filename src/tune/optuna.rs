//! Optuna, driven from lakebuild: a Python process running the bundled
//! `optuna_bridge.py`, one JSON object per line each way. Optuna does the sampling, the
//! pruning and the storage (a journal file by default, or any URL Optuna accepts), so a
//! study lakebuild runs is an ordinary Optuna study: `optuna.load_study` and
//! optuna-dashboard show its trials, params, intermediate values, values and states.
//! Python with optuna is needed for `tune` only; when either is missing the error says
//! what to install.

use crate::core::error::UsageError;
use crate::core::rule::tune::TuneSpace;
use anyhow::{Context, Result, anyhow};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

const BRIDGE: &str = include_str!("optuna_bridge.py");

/// The Optuna release `.ci/run` installs and the error message names.
pub const OPTUNA_PIN: &str = "optuna==4.6.0";

/// A trial as Optuna's storage holds it.
#[derive(Debug, Clone, Deserialize)]
pub struct StoredTrial {
    pub number: u64,
    /// `complete`, `pruned`, `fail`, `running` or `waiting`.
    pub state: String,
    pub params: BTreeMap<String, Value>,
    pub value: Option<f64>,
    /// By step; `None` for a NaN (a diverged step).
    pub intermediate: BTreeMap<String, Option<f64>>,
    pub user_attrs: BTreeMap<String, Value>,
}

/// A trial just asked for: its number and the params Optuna drew.
#[derive(Debug, Clone, Deserialize)]
pub struct Asked {
    pub number: u64,
    pub params: BTreeMap<String, Value>,
}

/// How a trial ended, as told to Optuna.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    Complete(f64),
    Pruned,
    Failed,
}

/// One open study in a running bridge process.
pub struct Study {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pub optuna_version: String,
}

impl Study {
    /// Starts the bridge with `python` (`LAKEBUILD_PYTHON`, else `python3`) and opens (or
    /// creates) study `name` in `storage` for `space`.
    pub fn open(
        python: &str,
        storage: &str,
        name: &str,
        space: &TuneSpace,
        attrs: &BTreeMap<String, Value>,
    ) -> Result<(Study, Vec<StoredTrial>)> {
        let install = format!(
            "lakebuild tune runs Optuna in Python: install it with `{python} -m pip install {OPTUNA_PIN}` (or set LAKEBUILD_PYTHON to a Python that has it)"
        );
        let mut child = Command::new(python)
            .args(["-u", "-c", BRIDGE])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| anyhow!(UsageError(format!("cannot run {python}: {e}. {install}"))))?;
        let stdin = child.stdin.take().context("the bridge's stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("the bridge's stdout")?);
        let mut study = Study {
            child,
            stdin,
            stdout,
            optuna_version: String::new(),
        };
        let hello = study.read()?;
        if hello["ok"] != true {
            return Err(anyhow!(UsageError(format!(
                "{}. {install}",
                hello["error"]
                    .as_str()
                    .unwrap_or("the Optuna bridge did not start")
            ))));
        }
        study.optuna_version = hello["optuna"].as_str().unwrap_or_default().to_string();
        let opened = study.call(json!({
            "cmd": "open",
            "storage": storage,
            "study": name,
            "direction": space.direction.name(),
            "sampler": space.sampler,
            "seed": space.seed,
            "pruner": space.pruner,
            "space": space.params,
            "attrs": attrs,
        }))?;
        let trials = serde_json::from_value(opened["trials"].clone())?;
        Ok((study, trials))
    }

    /// A new trial with params drawn by the sampler; `attrs` are set on it at once.
    pub fn ask(&mut self, attrs: &BTreeMap<String, Value>) -> Result<Asked> {
        Ok(serde_json::from_value(
            self.call(json!({"cmd": "ask", "attrs": attrs}))?,
        )?)
    }

    /// Reports an intermediate value; true when the pruner stops the trial.
    pub fn report(&mut self, number: u64, step: u64, value: f64) -> Result<bool> {
        let r =
            self.call(json!({"cmd": "report", "number": number, "step": step, "value": value}))?;
        Ok(r["prune"] == true)
    }

    /// Sets a user attribute of a trial (e.g. the lakebuild key and version it built).
    pub fn set_attr(&mut self, number: u64, key: &str, value: Value) -> Result<()> {
        self.call(json!({"cmd": "attr", "number": number, "key": key, "value": value}))?;
        Ok(())
    }

    pub fn tell(&mut self, number: u64, outcome: Outcome) -> Result<()> {
        let (state, value) = match outcome {
            Outcome::Complete(v) => ("complete", Some(v)),
            Outcome::Pruned => ("pruned", None),
            Outcome::Failed => ("fail", None),
        };
        self.call(json!({"cmd": "tell", "number": number, "state": state, "value": value}))?;
        Ok(())
    }

    /// Puts `params` first in line for the next `ask` (a killed trial's, to try again).
    pub fn enqueue(
        &mut self,
        params: &BTreeMap<String, Value>,
        attrs: &BTreeMap<String, Value>,
    ) -> Result<()> {
        self.call(json!({"cmd": "enqueue", "params": params, "attrs": attrs}))?;
        Ok(())
    }

    /// Every trial of the study, from its storage (other processes' included).
    pub fn trials(&mut self) -> Result<Vec<StoredTrial>> {
        let r = self.call(json!({"cmd": "trials"}))?;
        Ok(serde_json::from_value(r["trials"].clone())?)
    }

    fn call(&mut self, req: Value) -> Result<Value> {
        writeln!(self.stdin, "{req}")
            .and_then(|_| self.stdin.flush())
            .context("the Optuna bridge stopped")?;
        let r = self.read()?;
        if r["ok"] != true {
            return Err(anyhow!(
                "Optuna: {}",
                r["error"].as_str().unwrap_or("an error without a message")
            ));
        }
        Ok(r)
    }

    fn read(&mut self) -> Result<Value> {
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .context("reading the Optuna bridge")?;
        if n == 0 {
            return Err(anyhow!("the Optuna bridge exited (its errors are above)"));
        }
        serde_json::from_str(&line).with_context(|| format!("the Optuna bridge wrote {line:?}"))
    }
}

impl Drop for Study {
    fn drop(&mut self) {
        // Closing stdin ends the bridge's loop; wait so no zombie is left.
        let _ = self.stdin.flush();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
