//! MLflow tracking against a real MLflow server on 127.0.0.1 (sqlite backend, local
//! artifact root, started per test), checked through MLflow's own Python client: the run
//! of a trained model with its params, metric histories, tags and artifacts (the
//! safetensors weights equal to the lake's tensors byte for byte, loaded by the
//! `safetensors` package), its registered version, aliases kept in step, no duplicate on
//! a rebuild or a sync, a server that is down during the build (the build succeeds, the
//! records arrive once when it is back), and a server with authentication refusing wrong
//! credentials (the build unaffected, the reason in `status`, the credentials nowhere).

mod common;
use common::*;
use std::io::Read;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ASSETS: [&str; 6] = [
    "trading_calendar",
    "raw_stock_data",
    "listed_info",
    "topix",
    "processed_features",
    "labels",
];

/// The repository's rules up to `trained_model`: 30 stocks, a tiny model, short folds.
fn project() -> R<Proj> {
    let mut assets = ASSETS.to_vec();
    assets.push("trained_model");
    repository_rules(&assets, &TINY_MODEL)
}

/// A real MLflow server on a free port; `None` (the test skipped) where python3 lacks
/// mlflow outside CI.
fn tracking_server(auth: bool) -> R<Option<Server>> {
    if !python_has("mlflow, safetensors") {
        return Ok(None);
    }
    Ok(Some(Server::start(free_port()?, auth)?))
}

/// A port free now and not handed to another test of this process: the tests run in
/// parallel, and a port one test picked stays free until its server binds it ~20 s later.
fn free_port() -> R<u16> {
    static TAKEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut taken = TAKEN.lock().map_err(|_| "port list poisoned")?;
        if !taken.contains(&port) {
            taken.push(port);
            return Ok(port);
        }
    }
}

/// A real MLflow server, killed (SIGKILL) when dropped.
struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(port: u16, auth: bool) -> R<Server> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        let mut c = Command::new("python3");
        c.args(["-m", "mlflow", "server", "--host", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .arg("--backend-store-uri")
            .arg(format!("sqlite:///{}/mlflow.db", d.display()))
            .arg("--artifacts-destination")
            .arg(d.join("artifacts"))
            .args(["--workers", "1"])
            .current_dir(d)
            .env("MLFLOW_FLASK_SERVER_SECRET_KEY", "lakebuild-test-secret")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if auth {
            std::fs::write(
                d.join("auth.ini"),
                format!(
                    "[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///{}/auth.db\nadmin_username = admin\nadmin_password = lakebuild-admin-pw-4821\nauthorization_function = mlflow.server.auth:authenticate_request_basic_auth\n",
                    d.display()
                ),
            )?;
            c.env("MLFLOW_AUTH_CONFIG_PATH", d.join("auth.ini"))
                .args(["--app-name", "basic-auth"]);
        }
        // Its own process group: the server forks uvicorn workers, which must die with it.
        std::os::unix::process::CommandExt::process_group(&mut c, 0);
        let mut child = c.spawn()?;
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                return Err(format!("mlflow server exited ({status}):\n{err}").into());
            }
            let up = ureq::get(&format!("http://127.0.0.1:{port}/health"))
                .timeout(Duration::from_secs(2))
                .call()
                .is_ok();
            if up {
                break;
            }
            if start.elapsed() > Duration::from_secs(120) {
                // SAFETY: as in `Server::kill`.
                unsafe {
                    libc::kill(-(child.id() as i32), libc::SIGKILL);
                }
                let _ = child.wait();
                return Err("the mlflow server did not answer /health within 120 s".into());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        // Keep its stderr from filling the pipe.
        if let Some(mut e) = child.stderr.take() {
            std::thread::spawn(move || std::io::copy(&mut e, &mut std::io::sink()));
        }
        Ok(Server {
            child,
            port,
            _dir: dir,
        })
    }

    fn uri(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Server {
    /// SIGKILL to the server's whole process group (the server and its workers).
    fn kill(&mut self) {
        let group = self.child.id() as i32;
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is touched.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn lb(p: &Proj, uri: &str, args: &[&str]) -> R<String> {
    lb_at(p, uri, "2026-08-14", args)
}

/// Runs `script` with MLflow's Python client against `uri`; its stdout.
fn python(uri: &str, script: &str, env: &[(&str, &str)]) -> R<String> {
    let mut c = Command::new("python3");
    c.args(["-c", script]).env("MLFLOW_TRACKING_URI", uri);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output()?;
    if !out.status.success() {
        return Err(format!("python failed:\n{}", output_text(&out)).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// The stored model's tensor rows as `name=hex` lines, for the Python side to compare.
fn tensor_rows(p: &Proj) -> R<String> {
    let df = p.frame("trained_model")?;
    let names = df.column("name")?.str()?.clone();
    let kinds = df.column("kind")?.str()?.clone();
    let bytes = df.column("bytes")?.binary()?.clone();
    let mut out = String::new();
    for ((n, k), b) in names.iter().zip(kinds.iter()).zip(bytes.iter()) {
        if k == Some("tensor") {
            let hex: String = b
                .unwrap_or_default()
                .iter()
                .map(|x| format!("{x:02x}"))
                .collect();
            out.push_str(&format!("{}={hex}\n", n.unwrap_or_default()));
        }
    }
    Ok(out)
}

const CHECK_RUN: &str = r#"
import json, os, sys, mlflow, numpy, safetensors.numpy
from mlflow import MlflowClient
c = MlflowClient()
exp = c.get_experiment_by_name("atft-gat-fan")
runs = c.search_runs([exp.experiment_id], "tags.`lakebuild.asset` = 'trained_model'")
versions = c.search_model_versions("name = 'jp_equity_atft'")
out = {"runs": len(runs), "versions": len(versions)}
r = runs[0]
out["params"] = r.data.params
out["tags"] = r.data.tags
out["status"] = r.info.status
out["run_id"] = r.info.run_id
out["fold1_loss"] = [(m.step, m.value) for m in c.get_metric_history(r.info.run_id, "fold1/train_loss")]
out["cv_rank_ic"] = [m.value for m in c.get_metric_history(r.info.run_id, "cv/1d/rank_ic")]
out["artifacts"] = sorted(a.path for a in c.list_artifacts(r.info.run_id, "model"))
path = mlflow.artifacts.download_artifacts(run_id=r.info.run_id, artifact_path="model/model.safetensors")
tensors = safetensors.numpy.load_file(path)
want = dict(l.split("=") for l in open(os.environ["TENSORS"]).read().split())
out["tensors_equal"] = sorted(want) == sorted(tensors) and all(
    tensors[k].dtype == numpy.float32 and tensors[k].tobytes().hex() == want[k] for k in want)
out["version_run"] = [v.run_id for v in versions]
out["version_tags"] = [v.tags for v in versions]
out["aliases"] = {k: int(v) for k, v in c.get_registered_model("jp_equity_atft").aliases.items()}
print(json.dumps(out))
"#;

fn check(uri: &str, p: &Proj) -> R<serde_json::Value> {
    std::fs::write(p.path("tensors.txt"), tensor_rows(p)?)?;
    let tensors = p.path("tensors.txt");
    let tensors = tensors.to_string_lossy();
    Ok(serde_json::from_str(&python(
        uri,
        CHECK_RUN,
        &[("TENSORS", &tensors)],
    )?)?)
}

#[test]
fn a_trained_model_is_an_mlflow_run_and_a_registered_version_with_aliases_in_step() -> R {
    let Some(server) = tracking_server(false)? else {
        return Ok(());
    };
    let uri = server.uri();
    let p = project()?;
    lb(&p, &uri, &["build", "trained_model", "-q"])?;

    let c = check(&uri, &p)?;
    assert_eq!(c["runs"], 1, "{c}");
    assert_eq!(c["versions"], 1, "{c}");
    assert_eq!(c["status"], "FINISHED");
    // Params: every training param as stored, and where it ran.
    assert_eq!(c["params"]["hidden"], "8");
    assert_eq!(c["params"]["epochs"], "2");
    assert_eq!(c["params"]["lr"], "0.0005");
    assert_eq!(c["params"]["device"], "cpu");
    assert_eq!(c["params"]["precision"], "fp32");
    // Tags tie it to the lake: the commit's key and content hash.
    let commit = p.last_commit("trained_model")?;
    let rec = &commit.partitions[0];
    assert_eq!(c["tags"]["lakebuild.key"], rec.key.as_str());
    assert_eq!(
        c["tags"]["lakebuild.content_hash"],
        rec.content_hash.as_str()
    );
    assert_eq!(c["tags"]["lakebuild.run_id"], commit.run_id.as_str());
    assert_eq!(
        c["tags"]["lakebuild.code_version"],
        commit.rule.code_version.as_str()
    );
    let version = p.version("trained_model")?.ok_or("a version")?;
    assert_eq!(c["tags"]["lakebuild.version"], version.to_string().as_str());
    for i in &rec.inputs {
        assert_eq!(
            c["tags"][format!("lakebuild.input.{}.content_hash", i.asset)],
            i.digest.as_str()
        );
    }
    // Metric histories: per epoch of fold 1, per fold for the CV figures.
    let m =
        lakebuild::jp_equity::model::store::StoredModel::from_frame(&p.frame("trained_model")?)?;
    let epochs = m.metrics.folds[0].epochs.len();
    assert_eq!(
        c["fold1_loss"].as_array().map(|a| a.len()),
        Some(epochs),
        "{c}"
    );
    assert_eq!(
        c["cv_rank_ic"].as_array().map(|a| a.len()),
        Some(m.metrics.folds.len())
    );
    assert_eq!(
        c["cv_rank_ic"][0].as_f64(),
        Some(m.metrics.folds[0].horizons[0].rank_ic)
    );
    // Artifacts, and the weights byte for byte through the safetensors package.
    for a in [
        "config.json",
        "features.json",
        "metrics.json",
        "model.safetensors",
    ] {
        assert!(
            c["artifacts"]
                .as_array()
                .is_some_and(|v| v.iter().any(|x| x == &format!("model/{a}"))),
            "{a} missing: {c}"
        );
    }
    assert_eq!(c["tensors_equal"], true, "{c}");
    // The registered version has the run as its source and the model id predictions record.
    assert_eq!(c["version_run"][0], c["run_id"], "{c}");
    assert_eq!(c["version_tags"][0]["lakebuild.model_id"], m.id().as_str());

    // A rebuild (nothing to do) and a sync make no new run or version.
    lb(&p, &uri, &["build", "trained_model", "-q"])?;
    let out = lb(&p, &uri, &["mlflow", "sync"])?;
    assert!(out.contains("0 refused, 0 pending"), "{out}");
    let c = check(&uri, &p)?;
    assert_eq!(
        (c["runs"].clone(), c["versions"].clone()),
        (1.into(), 1.into()),
        "{c}"
    );

    // `lakebuild model alias` sets the MLflow alias to the registered version.
    lb(
        &p,
        &uri,
        &["model", "alias", "production", &version.to_string()],
    )?;
    let c = check(&uri, &p)?;
    assert_eq!(c["aliases"]["production"], 1, "{c}");

    // An alias a person sets in MLflow's registry is imported by the next tick, checked
    // like `lakebuild model alias`; a name lakebuild cannot use is reported, not imported.
    python(
        &uri,
        "from mlflow import MlflowClient; c = MlflowClient(); c.set_registered_model_alias('jp_equity_atft', 'staging', '1'); c.set_registered_model_alias('jp_equity_atft', 'Champion', '1')",
        &[],
    )?;
    let out = lb(&p, &uri, &["tick"])?;
    assert!(
        out.contains(&format!(
            "trained_model@staging: unset → version {version} (moved in MLflow)"
        )),
        "{out}"
    );
    assert!(
        out.contains("MLflow alias 'Champion'") && out.contains("not imported"),
        "{out}"
    );
    let list: serde_json::Value =
        serde_json::from_str(&lb(&p, &uri, &["model", "list", "--json"])?)?;
    let row = list
        .as_array()
        .and_then(|v| v.iter().find(|r| r["version"] == version))
        .ok_or("the version")?;
    assert_eq!(
        row["aliases"],
        serde_json::json!(["production", "staging"]),
        "{list}"
    );
    // Once both sides agree, a tick imports nothing more.
    let out = lb(&p, &uri, &["tick"])?;
    assert!(!out.contains("moved in MLflow"), "{out}");
    Ok(())
}

#[test]
fn a_server_that_is_down_never_breaks_a_build_and_gets_every_record_once_later() -> R {
    if !python_has("mlflow, safetensors") {
        return Ok(());
    }
    let port = free_port()?;
    let uri = format!("http://127.0.0.1:{port}");
    let p = project()?;
    // Nothing listens: the build succeeds and the run waits in the lake.
    let out = lb(&p, &uri, &["build", "trained_model", "-q"])?;
    assert!(out.contains("kept in the lake"), "{out}");
    let status = lb(&p, &uri, &["status"])?;
    assert!(status.contains("mlflow: 1 record(s) pending"), "{status}");
    let version = p.version("trained_model")?.ok_or("a version")?;
    // An alias set meanwhile queues behind it.
    lb(
        &p,
        &uri,
        &["model", "alias", "production", &version.to_string()],
    )?;
    let status = lb(&p, &uri, &["mlflow", "status"])?;
    assert!(status.contains("2 record(s) pending"), "{status}");

    // The server comes up: the next tick delivers both, in order, once.
    let server = Server::start(port, false)?;
    let out = lb(&p, &server.uri(), &["tick"])?;
    assert!(out.contains("2 record(s) delivered in"), "{out}");
    let status = lb(&p, &uri, &["status"])?;
    assert!(!status.contains("mlflow:"), "{status}");
    let c = check(&uri, &p)?;
    assert_eq!(c["runs"], 1, "{c}");
    assert_eq!(c["versions"], 1, "{c}");
    assert_eq!(c["aliases"]["production"], 1, "{c}");
    assert_eq!(c["tensors_equal"], true, "{c}");
    // A sync afterwards finds everything there.
    lb(&p, &uri, &["mlflow", "sync"])?;
    let c = check(&uri, &p)?;
    assert_eq!(
        (c["runs"].clone(), c["versions"].clone()),
        (1.into(), 1.into()),
        "{c}"
    );
    // With nothing new and nothing queued a build makes no call: with the server gone it
    // has nothing to report.
    drop(server);
    let out = lb(&p, &uri, &["build", "trained_model"])?;
    assert!(
        out.contains("nothing to do") && !out.contains("MLflow"),
        "{out}"
    );
    Ok(())
}

#[test]
fn wrong_credentials_are_reported_in_status_and_appear_nowhere() -> R {
    let Some(server) = tracking_server(true)? else {
        return Ok(());
    };
    let uri = server.uri();
    let p = project()?;
    let secret = "not-the-password-9731";
    let run = |args: &[&str], user: &str, password: &str| -> R<String> {
        let out = p
            .cmd(args)
            .env("LAKEBUILD_NOW", "2026-08-14")
            .env("MLFLOW_TRACKING_URI", &uri)
            .env("MLFLOW_TRACKING_USERNAME", user)
            .env("MLFLOW_TRACKING_PASSWORD", password)
            .output()?;
        let text = output_text(&out);
        assert!(
            out.status.success() || args[0] == "mlflow",
            "{args:?}: {text}"
        );
        Ok(text)
    };
    let mut seen = run(&["build", "trained_model", "-q"], "admin", secret)?;
    assert!(
        seen.contains("refused the credentials (HTTP 401)"),
        "{seen}"
    );
    let status = run(&["status"], "admin", secret)?;
    assert!(
        status.contains("1 record(s) pending") && status.contains("HTTP 401"),
        "{status}"
    );
    seen.push_str(&status);
    assert!(!seen.contains(secret), "the password was printed: {seen}");
    for entry in walkdir::WalkDir::new(p.path("lake")).into_iter().flatten() {
        if entry.file_type().is_file() {
            let bytes = std::fs::read(entry.path())?;
            assert!(
                !String::from_utf8_lossy(&bytes).contains(secret),
                "the password is in {}",
                entry.path().display()
            );
        }
    }
    // The right credentials deliver it.
    let out = run(&["mlflow", "sync"], "admin", "lakebuild-admin-pw-4821")?;
    assert!(out.contains("0 pending"), "{out}");
    let c: serde_json::Value = serde_json::from_str(&python(
        &uri,
        "import json; from mlflow import MlflowClient; c = MlflowClient(); e = c.get_experiment_by_name('atft-gat-fan'); print(json.dumps({'runs': len(c.search_runs([e.experiment_id]))}))",
        &[
            ("MLFLOW_TRACKING_USERNAME", "admin"),
            ("MLFLOW_TRACKING_PASSWORD", "lakebuild-admin-pw-4821"),
        ],
    )?)?;
    assert_eq!(c["runs"], 1, "{c}");
    Ok(())
}

#[test]
fn without_a_tracking_uri_nothing_is_attempted() -> R {
    let p = project()?;
    let out = p
        .cmd(&["build", "trained_model", "-q"])
        .env("LAKEBUILD_NOW", "2026-08-14")
        .output()?;
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(!p.path("lake/_lakebuild/mlflow.json").exists());
    let text = p.ok(&["mlflow", "status"])?;
    assert!(text.contains("nothing pending"), "{text}");
    let out = p.run(&["mlflow", "sync"])?;
    assert!(!out.status.success());
    assert!(output_text(&out).contains("set MLFLOW_TRACKING_URI"));
    Ok(())
}

fn lb_at(p: &Proj, uri: &str, today: &str, args: &[&str]) -> R<String> {
    let out = p
        .cmd(args)
        .env("LAKEBUILD_NOW", today)
        .env("MLFLOW_TRACKING_URI", uri)
        .output()?;
    let text = output_text(&out);
    if !out.status.success() {
        return Err(format!("lakebuild {args:?} at {today} failed:\n{text}").into());
    }
    Ok(text)
}

/// A person moves `ALIAS` in MLflow's registry to the registered version of lake version
/// `LAKE_VERSION`; prints that registered version.
const MOVE_ALIAS: &str = r#"
import os
from mlflow import MlflowClient
c = MlflowClient()
v = [m for m in c.search_model_versions("name = 'jp_equity_atft'")
     if m.tags.get("lakebuild.version") == os.environ["LAKE_VERSION"]][0]
c.set_registered_model_alias("jp_equity_atft", os.environ["ALIAS"], v.version)
print(v.version)
"#;

const ALIASES: &str = r#"
import json
from mlflow import MlflowClient
print(json.dumps({k: int(v) for k, v in MlflowClient().get_registered_model("jp_equity_atft").aliases.items()}))
"#;

#[test]
fn an_alias_moved_in_mlflow_is_imported_audited_and_re_keys_predictions_and_the_lake_wins_when_both_moved()
-> R {
    let Some(server) = tracking_server(false)? else {
        return Ok(());
    };
    let uri = server.uri();
    let mut assets = ASSETS.to_vec();
    assets.extend(["trained_model", "predictions"]);
    let p = repository_rules(&assets, &TINY_MODEL)?;
    let rule = std::fs::read_to_string(p.path("rules/predictions.toml"))?.replace(
        "{ asset = \"trained_model\" }",
        "{ asset = \"trained_model@production\" }",
    );
    p.rule("predictions", &rule)?;
    // Two model versions: August's, then September's (the month rolled over).
    lb_at(&p, &uri, "2026-08-14", &["build", "trained_model", "-q"])?;
    let first = p.version("trained_model")?.ok_or("a version")?;
    lb_at(&p, &uri, "2026-09-01", &["build", "trained_model", "-q"])?;
    let second = p.version("trained_model")?.ok_or("a version")?;
    assert_ne!(first, second);
    let list: serde_json::Value = serde_json::from_str(&lb_at(
        &p,
        &uri,
        "2026-09-01",
        &["model", "list", "--json"],
    )?)?;
    let id_of = |v: i64| -> String {
        list.as_array()
            .and_then(|a| a.iter().find(|r| r["version"] == v))
            .and_then(|r| r["model_id"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    assert_ne!(id_of(first), id_of(second), "{list}");

    lb_at(
        &p,
        &uri,
        "2026-09-01",
        &["model", "alias", "production", &first.to_string()],
    )?;
    lb_at(&p, &uri, "2026-09-01", &["build", "predictions", "-q"])?;
    assert_eq!(model_ids(&p, "predictions")?, [id_of(first)]);

    // A person moves `production` to September's model in MLflow's UI: the next tick
    // imports it as `lakebuild model alias` would, and the next build re-keys on it.
    python(
        &uri,
        MOVE_ALIAS,
        &[
            ("ALIAS", "production"),
            ("LAKE_VERSION", &second.to_string()),
        ],
    )?;
    let out = lb_at(&p, &uri, "2026-09-01", &["tick"])?;
    assert!(
        out.contains(&format!(
            "trained_model@production: version {first} → version {second} (moved in MLflow)"
        )),
        "{out}"
    );
    let history: serde_json::Value = serde_json::from_str(&lb_at(
        &p,
        &uri,
        "2026-09-01",
        &["model", "history", "--json"],
    )?)?;
    let moves: Vec<(String, Option<i64>, i64, String)> = history
        .as_array()
        .ok_or("a list")?
        .iter()
        .map(|m| {
            (
                m["alias"].as_str().unwrap_or_default().to_string(),
                m["from"].as_i64(),
                m["to"].as_i64().unwrap_or(-1),
                m["by"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        moves,
        vec![
            ("production".into(), None, first, "cli".into()),
            // The build of predictions ran the promotion policy: September's model, newer
            // than production, went on trial.
            ("challenger".into(), None, second, "policy".into()),
            ("production".into(), Some(first), second, "mlflow".into()),
        ],
        "{history}"
    );
    // The policy's move is mirrored to MLflow's registry like any alias move.
    let registered = |lake_version: i64| {
        python(
            &uri,
            "import os; from mlflow import MlflowClient; print([m.version for m in MlflowClient().search_model_versions(\"name = 'jp_equity_atft'\") if m.tags.get('lakebuild.version') == os.environ['LAKE_VERSION']][0])",
            &[("LAKE_VERSION", &lake_version.to_string())],
        )
    };
    let remote: serde_json::Value = serde_json::from_str(&python(&uri, ALIASES, &[])?)?;
    assert_eq!(
        remote["challenger"].to_string(),
        registered(second)?.trim(),
        "{remote}"
    );
    let out = lb_at(&p, &uri, "2026-09-01", &["build", "predictions"])?;
    assert_eq!(model_ids(&p, "predictions")?, [id_of(second)], "{out}");

    // Both sides move `staging`: lakebuild's while MLflow is not told (tracking off),
    // MLflow's by a person. The lake wins, and MLflow is set back to it.
    let out = p
        .cmd(&["model", "alias", "staging", &first.to_string()])
        .env("LAKEBUILD_NOW", "2026-09-01")
        .output()?;
    assert!(out.status.success(), "{}", output_text(&out));
    python(
        &uri,
        MOVE_ALIAS,
        &[("ALIAS", "staging"), ("LAKE_VERSION", &second.to_string())],
    )?;
    let out = lb_at(&p, &uri, "2026-09-01", &["tick"])?;
    assert!(!out.contains("staging: version"), "{out}");
    let registered_first = registered(first)?;
    let remote: serde_json::Value = serde_json::from_str(&python(&uri, ALIASES, &[])?)?;
    assert_eq!(
        remote["staging"].to_string(),
        registered_first.trim(),
        "{remote}"
    );
    let list: serde_json::Value = serde_json::from_str(&lb_at(
        &p,
        &uri,
        "2026-09-01",
        &["model", "list", "--json"],
    )?)?;
    let staging = list
        .as_array()
        .and_then(|a| {
            a.iter().find(|r| {
                r["aliases"]
                    .as_array()
                    .is_some_and(|x| x.iter().any(|n| n == "staging"))
            })
        })
        .map(|r| r["version"].clone());
    assert_eq!(staging, Some(first.into()), "{list}");
    Ok(())
}

const SCORES: &str = r#"
import json
from mlflow import MlflowClient
c = MlflowClient()
runs = c.search_runs([e.experiment_id for e in c.search_experiments()])
model = [r for r in runs if r.data.tags.get("lakebuild.asset") == "trained_model"]
r = model[0]
h = lambda k: [(m.step, m.value) for m in c.get_metric_history(r.info.run_id, k)]
print(json.dumps({
    "runs": len(runs),
    "model_runs": len(model),
    "eval_rank_ic": h("evaluation/1d/rank_ic"),
    "eval_oracle_ic": h("evaluation/1d/oracle_ic"),
    "eval_daily": h("evaluation/1d/daily_rank_ic"),
    "live": h("live/1d/rank_ic"),
    "valid_by_horizon": h("fold1/valid_rank_ic/1d"),
}))
"#;

#[test]
fn evaluation_and_live_scores_are_logged_once_to_the_run_of_the_model_they_scored() -> R {
    let Some(server) = tracking_server(false)? else {
        return Ok(());
    };
    let uri = server.uri();
    let mut assets = ASSETS.to_vec();
    assets.extend([
        "synthetic_truth",
        "trained_model",
        "predictions",
        "model_evaluation",
        "prediction_performance",
    ]);
    let p = repository_rules(&assets, &TINY_MODEL)?;
    lb(
        &p,
        &uri,
        &["build", "model_evaluation", "prediction_performance", "-q"],
    )?;
    let scores =
        || -> R<serde_json::Value> { Ok(serde_json::from_str(&python(&uri, SCORES, &[])?)?) };
    let s = scores()?;
    // The scores are no runs of their own: one run, the model's.
    assert_eq!(
        (s["runs"].clone(), s["model_runs"].clone()),
        (1.into(), 1.into()),
        "{s}"
    );
    let m =
        lakebuild::jp_equity::model::store::StoredModel::from_frame(&p.frame("trained_model")?)?;
    assert_eq!(
        s["valid_by_horizon"].as_array().map(|a| a.len()),
        Some(m.metrics.folds[0].epochs.len()),
        "{s}"
    );
    // The evaluation: a mean per fold (the step), and every validation day.
    let eval = p.frame("model_evaluation")?;
    let folds = eval.column("fold")?.i32()?.clone();
    let horizons = eval.column("horizon")?.str()?.clone();
    let rank_ic = eval.column("rank_ic")?.f64()?.clone();
    let mut fold1 = Vec::new();
    let mut days = 0;
    for i in 0..eval.height() {
        if horizons.get(i) == Some("fwd_ret_1d")
            && let Some(x) = rank_ic.get(i).filter(|x| x.is_finite())
        {
            days += 1;
            if folds.get(i) == Some(1) {
                fold1.push(x);
            }
        }
    }
    let mean = fold1.iter().sum::<f64>() / fold1.len() as f64;
    assert_eq!(
        s["eval_rank_ic"].as_array().map(|a| a.len()),
        Some(m.metrics.folds.len()),
        "{s}"
    );
    assert_eq!(s["eval_rank_ic"][0][0], 1);
    assert!(
        (s["eval_rank_ic"][0][1].as_f64().unwrap_or(f64::NAN) - mean).abs() < 1e-12,
        "{s}"
    );
    assert_eq!(
        s["eval_daily"].as_array().map(|a| a.len()),
        Some(days),
        "{s}"
    );
    assert!(
        s["eval_oracle_ic"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "{s}"
    );
    // Live monitoring: each scored day's RankIC, stepped by the trading day, equal to
    // the lake's.
    let perf = p.frame("prediction_performance")?;
    let dates = perf
        .column("Date")?
        .cast(&polars::prelude::DataType::Int32)?;
    let dates = dates.i32()?;
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).ok_or("epoch")?;
    let hz = perf.column("horizon")?.str()?.clone();
    let ric = perf.column("rank_ic")?.f64()?.clone();
    let mut want: Vec<(i64, f64)> = Vec::new();
    for i in 0..perf.height() {
        if let (Some("1d"), Some(d), Some(x)) = (hz.get(i), dates.get(i), ric.get(i)) {
            let d = epoch + chrono::Duration::days(d as i64);
            let step = chrono::Datelike::year(&d) as i64 * 10_000
                + chrono::Datelike::month(&d) as i64 * 100
                + chrono::Datelike::day(&d) as i64;
            want.push((step, x));
        }
    }
    want.sort_by_key(|w| w.0);
    assert!(!want.is_empty(), "no scored day");
    let mut got: Vec<(i64, f64)> = s["live"]
        .as_array()
        .ok_or("live")?
        .iter()
        .map(|x| {
            (
                x[0].as_i64().unwrap_or(0),
                x[1].as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect();
    got.sort_by_key(|g| g.0);
    assert_eq!(got, want, "{s}");

    // Delivered again (a sync re-queues every materialization): nothing is duplicated.
    lb(&p, &uri, &["mlflow", "sync"])?;
    let again = scores()?;
    for k in ["runs", "eval_rank_ic", "eval_daily", "live"] {
        assert_eq!(again[k], s[k], "{k}: {again}");
    }
    Ok(())
}

/// A team's own model trained by a `command` op: the params, metrics, tags and artifact
/// its program reports in `tracking.json` arrive in MLflow as a run and a registered
/// version, the artifact byte for byte.
#[test]
fn a_command_ops_tracking_file_becomes_a_run_with_its_artifacts() -> R {
    let Some(server) = tracking_server(false)? else {
        return Ok(());
    };
    let uri = server.uri();
    let p = Proj::new()?;
    p.write(
        "train.py",
        r#"
import json, os
out = os.environ["LAKEBUILD_OUTPUT_DIR"]
os.makedirs(os.path.join(out, "model"), exist_ok=True)
with open(os.path.join(out, "model", "weights.bin"), "wb") as f:
    f.write(bytes(range(256)) * 4)
with open(os.path.join(out, "summary.csv"), "w") as f:
    f.write("name,value\nval_loss,0.25\n")
json.dump({
    "params": {"lr": 0.001, "optimizer": "adamw", "layers": [64, 32]},
    "metrics": [{"key": "val_loss", "value": 0.5 / (e + 1), "step": e} for e in range(3)],
    "tags": {"framework": "pytorch"},
    "artifacts": ["model/weights.bin"],
}, open(os.path.join(out, "tracking.json"), "w"))
"#,
    )?;
    p.rule(
        "team_model",
        "op = \"command\"\nsources = [\"train.py\"]\n\n[params]\nrun = [\"python3\", \"train.py\"]\n\n[mlflow]\nexperiment = \"team-models\"\nregistered_model = \"team_model\"\n",
    )?;
    lb(&p, &uri, &["build", "team_model", "-q"])?;
    let got: serde_json::Value = serde_json::from_str(&python(
        &uri,
        r#"
import json, mlflow
from mlflow import MlflowClient
c = MlflowClient()
e = c.get_experiment_by_name("team-models")
r = c.search_runs([e.experiment_id])[0]
path = mlflow.artifacts.download_artifacts(run_id=r.info.run_id, artifact_path="model/model/weights.bin")
print(json.dumps({
    "params": r.data.params,
    "framework": r.data.tags.get("framework"),
    "asset": r.data.tags.get("lakebuild.asset"),
    "loss": [(m.step, m.value) for m in c.get_metric_history(r.info.run_id, "val_loss")],
    "weights": open(path, "rb").read().hex(),
    "versions": len(c.search_model_versions("name = 'team_model'")),
}))
"#,
        &[],
    )?)?;
    assert_eq!(got["params"]["lr"], "0.001", "{got}");
    assert_eq!(got["params"]["optimizer"], "adamw");
    assert_eq!(got["params"]["layers"], "[64,32]");
    assert_eq!(got["framework"], "pytorch");
    assert_eq!(got["asset"], "team_model");
    assert_eq!(
        got["loss"],
        serde_json::json!([[0, 0.5], [1, 0.25], [2, 0.5 / 3.0]])
    );
    let want: String = (0..4)
        .flat_map(|_| 0..=255u8)
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(got["weights"], want.as_str());
    assert_eq!(got["versions"], 1);
    // The output itself is the program's table, untouched by the tracking file.
    assert_eq!(p.frame("team_model")?.height(), 1);
    Ok(())
}

/// Each trial of `lakebuild tune` is an MLflow run nested under the study's run, with
/// the trial's params, its objective (equal to Optuna's value) and its intermediate
/// values; a trial restored from the lake is a run too (it is a trial of the study).
#[test]
fn each_tuning_trial_is_a_run_nested_under_the_studys_run() -> R {
    let Some(server) = tracking_server(false)? else {
        return Ok(());
    };
    if !python_has("optuna") {
        return Ok(());
    }
    let uri = server.uri();
    let p = project()?;
    let rule = std::fs::read_to_string(p.path("rules/trained_model.toml"))?;
    let start = rule.find("\n[tune]").ok_or("[tune]")?;
    let end = start + rule[start..].find("\n# Where MLflow").ok_or("[mlflow]")?;
    p.rule(
        "trained_model",
        &format!(
            "{}\n[tune]\nobjective = \"cv_rank_ic\"\ntrials = 3\n[tune.space]\nlr = [1e-3, 3e-3]\n{}",
            &rule[..start],
            &rule[end..]
        ),
    )?;
    lb(&p, &uri, &["build", "processed_features", "labels"])?;
    let out = p
        .cmd(&["tune", "trained_model", "--json"])
        .env("LAKEBUILD_NOW", "2026-08-14")
        .env("MLFLOW_TRACKING_URI", &uri)
        .output()?;
    assert!(out.status.success(), "{}", output_text(&out));
    let study: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let seen = python(
        &uri,
        r#"
import json
from mlflow import MlflowClient
c = MlflowClient()
e = c.get_experiment_by_name("atft-gat-fan")
runs = c.search_runs([e.experiment_id])
parent = [r for r in runs if r.data.tags.get("lakebuild.study_run") == "trained_model"]
kids = [r for r in runs if r.data.tags.get("lakebuild.study") == "trained_model"]
print(json.dumps({
  "parents": len(parent),
  "parent": parent[0].info.run_id if parent else None,
  "trials": sorted([{"number": int(r.data.tags["optuna.trial_number"]),
     "parent": r.data.tags.get("mlflow.parentRunId"), "status": r.info.status,
     "params": r.data.params, "value": r.data.metrics.get("cv_rank_ic"),
     "steps": len(c.get_metric_history(r.info.run_id, "intermediate/cv_rank_ic")),
     "origin": r.data.tags.get("lakebuild.origin")} for r in kids], key=lambda t: t["number"])}))
"#,
        &[],
    )?;
    let seen: serde_json::Value = serde_json::from_str(&seen)?;
    assert_eq!(seen["parents"], 1, "{seen}");
    let trials = seen["trials"].as_array().ok_or("trials")?;
    let ours = study["trials"].as_array().ok_or("trials")?;
    assert_eq!(trials.len(), 3, "{seen}");
    for (t, o) in trials.iter().zip(ours) {
        assert_eq!(t["number"], o["number"]);
        assert_eq!(
            t["parent"], seen["parent"],
            "nested under the study's run: {t}"
        );
        assert_eq!(t["status"], "FINISHED");
        assert_eq!(t["value"], o["value"], "{t} vs {o}");
        assert_eq!(
            t["params"]["lr"]
                .as_str()
                .and_then(|s| s.parse::<f64>().ok()),
            o["params"]["lr"].as_f64()
        );
        assert_eq!(t["origin"], o["origin"]);
        if o["origin"] == "built" {
            assert!(t["steps"].as_u64() >= Some(2), "{t}");
        }
    }
    Ok(())
}
