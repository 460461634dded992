//! Op `command`: runs an external program. Its inputs are handed over as parquet file
//! lists in a JSON manifest (`$LAKEBUILD_MANIFEST`); it writes parquet or CSV files into
//! `$LAKEBUILD_OUTPUT_DIR`, which are read back as the output. The rule's `sources`
//! (the program's scripts) are hashed into the key. A non-zero exit fails the step with
//! the tail of its stderr; exit code 75 (EX_TEMPFAIL) marks the failure as transient.
//! A training program may also write a tracking file (`tracking.json`: params, metrics,
//! tags, artifacts; [`super::command_tracking`]), kept with the output and forwarded to
//! MLflow when the rule has `[mlflow]`.

use crate::core::error::{OpError, Transience};
use crate::op::{Op, OpContext, OpSpec, ParamSpec, ParamType};
use anyhow::{Context, Result, bail};
use polars::prelude::*;
use serde_json::{Value, json};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct CommandOp;

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "run",
        ty: ParamType::StrOrStrList,
        required: true,
        doc: "a shell command line, or [program, args...]",
    },
    ParamSpec {
        name: "timeout",
        ty: ParamType::Str,
        required: false,
        doc: "kill the program after this long, e.g. \"10m\"",
    },
    ParamSpec {
        name: "env",
        ty: ParamType::Table,
        required: false,
        doc: "extra environment variables",
    },
];

fn tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl OpSpec for CommandOp {
    fn name(&self) -> &'static str {
        "command"
    }

    fn code_version(&self) -> &'static str {
        crate::op_code_version!()
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn discovers_partitions(&self) -> bool {
        true
    }
}

impl Op for CommandOp {
    fn tracking(
        &self,
        _params: &Value,
        _frame: &DataFrame,
        attachments: &std::path::Path,
    ) -> Result<crate::op::tracking::TrackingReport> {
        super::command_tracking::report(attachments)
    }

    fn run(&self, ctx: &OpContext) -> Result<DataFrame> {
        let out_dir = ctx.scratch.join("out");
        std::fs::create_dir_all(&out_dir)
            .with_context(|| format!("cannot create {}", out_dir.display()))?;
        let mut inputs = serde_json::Map::new();
        for i in &ctx.inputs {
            let parts: Vec<Value> = i
                .partitions
                .iter()
                .map(|(id, p)| json!({"id": id.to_string(), "path": p.display().to_string()}))
                .collect();
            let windows: serde_json::Map<String, Value> = i
                .windows
                .iter()
                .map(|(id, (lo, hi))| (id.to_string(), json!([lo, hi])))
                .collect();
            inputs.insert(
                i.asset.clone(),
                json!({"coverage": i.coverage.to_string(), "partitions": parts, "windows": windows}),
            );
        }
        let partitions: Vec<String> = ctx.partitions.iter().map(|p| p.to_string()).collect();
        let manifest = json!({
            "asset": ctx.rule.asset,
            "partitions": partitions,
            "date_column": ctx.rule.date_column,
            "params": ctx.params,
            "inputs": inputs,
            "output_dir": out_dir.display().to_string(),
        });
        let manifest_path = ctx.scratch.join("manifest.json");
        std::fs::write(&manifest_path, serde_json::to_vec_pretty(&manifest)?)
            .with_context(|| format!("cannot write {}", manifest_path.display()))?;

        let (program, shown) = match ctx.params.get("run") {
            Some(Value::String(s)) => {
                let mut c = Command::new("sh");
                c.arg("-c").arg(s);
                (c, s.clone())
            }
            Some(Value::Array(a)) => {
                let argv: Vec<String> = a
                    .iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect();
                let Some((p, args)) = argv.split_first() else {
                    bail!(
                        "{}: run = [] is empty: name a program",
                        ctx.rule.file.display()
                    );
                };
                let mut c = Command::new(p);
                c.args(args);
                (c, argv.join(" "))
            }
            _ => bail!("{}: param run is missing", ctx.rule.file.display()),
        };
        let mut cmd = program;
        let stderr_path = ctx.scratch.join("stderr.log");
        let stdout_path = ctx.scratch.join("stdout.log");
        cmd.current_dir(ctx.project_root)
            .env("LAKEBUILD_MANIFEST", &manifest_path)
            .env("LAKEBUILD_OUTPUT_DIR", &out_dir)
            .env("LAKEBUILD_ASSET", &ctx.rule.asset)
            .env("LAKEBUILD_PARTITIONS", partitions.join(","))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout_path)?)
            .stderr(std::fs::File::create(&stderr_path)?);
        if let Some(Value::Object(env)) = ctx.params.get("env") {
            for (k, v) in env {
                cmd.env(
                    k,
                    v.as_str()
                        .map(String::from)
                        .unwrap_or_else(|| v.to_string()),
                );
            }
        }
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // The program dies with lakebuild: a killed build leaves no writer behind.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        let timeout = ctx
            .param_str("timeout")
            .and_then(crate::core::rule::parse_duration)
            .unwrap_or(Duration::from_secs(24 * 3600));
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start `{shown}`"))?;
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break s;
            }
            if start.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                return Err(OpError {
                    transience: Transience::Transient,
                    message: format!(
                        "`{shown}` ran past its timeout of {timeout:?} and was killed"
                    ),
                }
                .into());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if !status.success() {
            let code = status.code();
            return Err(OpError {
                transience: if code == Some(75) {
                    Transience::Transient
                } else {
                    Transience::Permanent
                },
                message: format!(
                    "`{shown}` exited with {}; last lines of its stderr:\n{}",
                    code.map(|c| format!("status {c}"))
                        .unwrap_or_else(|| "a signal".into()),
                    tail(&stderr_path, 20)
                ),
            }
            .into());
        }
        super::command_tracking::collect(&out_dir, &ctx.attachments)?;
        let mut files: Vec<_> = std::fs::read_dir(&out_dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("parquet" | "csv")
                )
            })
            .collect();
        files.sort();
        if files.is_empty() {
            bail!(
                "`{shown}` succeeded but wrote no .parquet or .csv file into $LAKEBUILD_OUTPUT_DIR"
            );
        }
        let mut out: Option<DataFrame> = None;
        for f in &files {
            let mut df = super::files::read_file(f, "auto")?;
            if ctx.rule.daily {
                let dc = ctx.rule.date_column.as_str();
                if let Ok(c) = df.column(dc)
                    && c.dtype() != &DataType::Date
                {
                    let parsed = super::files::parse_dates(c)?;
                    df.with_column(parsed)?;
                }
            }
            match &mut out {
                None => out = Some(df),
                Some(o) => {
                    o.vstack_mut_owned(df)
                        .map_err(anyhow::Error::from)
                        .with_context(|| {
                            format!(
                                "{} has other columns than the first output file",
                                f.display()
                            )
                        })?;
                }
            }
        }
        Ok(out.unwrap_or_default())
    }
}
