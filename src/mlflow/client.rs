//! MLflow's REST API (`/api/2.0/mlflow/…`, artifacts through the server's proxied
//! `/api/2.0/mlflow-artifacts/…`), the calls lakebuild makes and nothing more. Every
//! call has a timeout and retries what may pass (a broken connection, a 5xx, a 429);
//! errors are classified so that an outage waits and a refused record does not block the
//! queue, and carry no credential.

use super::config::Config;
use serde_json::{Value, json};
use std::time::Duration;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// Unreachable, overloaded or failing: try again later.
    Down(String),
    /// The credentials are missing or refused (401 / 403): try again once they are fixed.
    Credentials(String),
    /// The server refused this request (any other 4xx): retrying the same will not help.
    Refused { code: String, message: String },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Down(m) | Failure::Credentials(m) => f.write_str(m),
            Failure::Refused { code, message } => write!(f, "{code}: {message}"),
        }
    }
}

pub type Res<T> = Result<T, Failure>;

pub struct Client {
    cfg: Config,
    agent: ureq::Agent,
}

/// `[{"key": k, "value": v}, …]`, MLflow's shape for tags and params.
pub fn pairs<'a>(items: impl IntoIterator<Item = (&'a String, &'a String)>) -> Vec<Value> {
    items
        .into_iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect()
}

impl Client {
    pub fn new(cfg: Config) -> Client {
        let agent = ureq::AgentBuilder::new().timeout(cfg.timeout).build();
        Client { cfg, agent }
    }

    pub fn base(&self) -> &str {
        &self.cfg.base
    }

    /// One request, retried while it may pass.
    fn call(&self, method: &str, path: &str, query: &[(&str, &str)], body: Body) -> Res<Value> {
        let url = format!("{}{path}", self.cfg.base);
        let mut attempt = 0;
        loop {
            let mut req = self.agent.request(method, &url);
            for (k, v) in query {
                req = req.query(k, v);
            }
            if let Some(a) = self.cfg.authorization() {
                req = req.set("Authorization", &a);
            }
            let sent = match &body {
                Body::None => req.call(),
                Body::Json(v) => req.send_json(v.clone()),
                Body::Bytes(b) => req
                    .set("Content-Type", "application/octet-stream")
                    .send_bytes(b),
            };
            let failure = match sent {
                Ok(resp) => {
                    let text = resp.into_string().unwrap_or_default();
                    return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
                }
                Err(ureq::Error::Status(status, resp)) => {
                    let text = resp.into_string().unwrap_or_default();
                    let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    let code = parsed["error_code"].as_str().unwrap_or("").to_string();
                    let message = parsed["message"]
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| text.chars().take(200).collect());
                    let message = self.cfg.scrub(&message);
                    match status {
                        401 | 403 => {
                            return Err(Failure::Credentials(format!(
                                "the MLflow server at {} refused the credentials (HTTP {status}): set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) to an account that may write",
                                self.cfg.base
                            )));
                        }
                        429 | 500..=599 => Failure::Down(format!(
                            "the MLflow server at {} answered HTTP {status} to {method} {path}: {message}",
                            self.cfg.base
                        )),
                        _ => {
                            return Err(Failure::Refused {
                                code: if code.is_empty() {
                                    format!("HTTP {status}")
                                } else {
                                    code
                                },
                                message: format!("{method} {path}: {message}"),
                            });
                        }
                    }
                }
                Err(ureq::Error::Transport(t)) => Failure::Down(format!(
                    "the MLflow server at {} is unreachable ({}): it is queued in the lake and delivered by the next build, `lakebuild tick` or `lakebuild mlflow sync`",
                    self.cfg.base,
                    self.cfg.scrub(&t.kind().to_string())
                )),
            };
            if attempt >= self.cfg.retries {
                return Err(failure);
            }
            attempt += 1;
            std::thread::sleep(Duration::from_millis(250 << (2 * attempt.min(3))));
        }
    }

    fn get(&self, path: &str, query: &[(&str, &str)]) -> Res<Value> {
        self.call("GET", &format!("/api/2.0/mlflow/{path}"), query, Body::None)
    }

    fn post(&self, path: &str, body: Value) -> Res<Value> {
        self.call(
            "POST",
            &format!("/api/2.0/mlflow/{path}"),
            &[],
            Body::Json(body),
        )
    }

    /// The id of experiment `name`, created when missing.
    pub fn experiment(&self, name: &str) -> Res<String> {
        if let Some(id) = self.find_experiment(name)? {
            return Ok(id);
        }
        match self.post("experiments/create", json!({ "name": name })) {
            Ok(v) => Ok(text(&v["experiment_id"])),
            // Created meanwhile by another process.
            Err(Failure::Refused { code, .. }) if code == "RESOURCE_ALREADY_EXISTS" => self
                .find_experiment(name)?
                .ok_or_else(|| Failure::Down(format!("experiment {name} vanished while created"))),
            Err(e) => Err(e),
        }
    }

    /// The id of experiment `name`, `None` when it does not exist.
    pub fn find_experiment(&self, name: &str) -> Res<Option<String>> {
        match self.get("experiments/get-by-name", &[("experiment_name", name)]) {
            Ok(v) => Ok(Some(text(&v["experiment"]["experiment_id"]))),
            Err(Failure::Refused { code, .. }) if code == "RESOURCE_DOES_NOT_EXIST" => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The runs of `experiments` whose tag `key` is `value` (`info` objects), oldest
    /// first.
    pub fn runs_tagged(&self, experiments: &[String], key: &str, value: &str) -> Res<Vec<Value>> {
        let v = self.post(
            "runs/search",
            json!({
                "experiment_ids": experiments,
                "filter": format!("tags.`{key}` = '{}'", value.replace('\'', "")),
                "max_results": 10,
                "run_view_type": "ALL",
                "order_by": ["attributes.start_time ASC"],
            }),
        )?;
        Ok(v["runs"]
            .as_array()
            .map(|r| r.iter().map(|r| r["info"].clone()).collect())
            .unwrap_or_default())
    }

    /// Creates a run; returns its `info`.
    pub fn create_run(
        &self,
        experiment: &str,
        name: &str,
        start_ms: i64,
        tags: Vec<Value>,
    ) -> Res<Value> {
        let v = self.post(
            "runs/create",
            json!({"experiment_id": experiment, "run_name": name, "start_time": start_ms, "tags": tags}),
        )?;
        Ok(v["run"]["info"].clone())
    }

    /// Logs params, tags and metrics in batches within MLflow's limits (100 params, 100
    /// tags, 1,000 metrics per call).
    pub fn log_batch(
        &self,
        run: &str,
        params: Vec<Value>,
        tags: Vec<Value>,
        metrics: Vec<Value>,
    ) -> Res<()> {
        for chunk in params.chunks(100) {
            self.post("runs/log-batch", json!({"run_id": run, "params": chunk}))?;
        }
        for chunk in tags.chunks(100) {
            self.post("runs/log-batch", json!({"run_id": run, "tags": chunk}))?;
        }
        for chunk in metrics.chunks(1000) {
            self.post("runs/log-batch", json!({"run_id": run, "metrics": chunk}))?;
        }
        Ok(())
    }

    /// Uploads one artifact of a run through the server's artifact proxy.
    pub fn upload(&self, artifact_uri: &str, path: &str, bytes: Vec<u8>) -> Res<()> {
        let Some(rest) = artifact_uri.strip_prefix("mlflow-artifacts:") else {
            return Err(Failure::Refused {
                code: "ARTIFACTS_NOT_PROXIED".into(),
                message: format!(
                    "the run's artifacts live at {artifact_uri}, which lakebuild cannot write: start the server with artifact serving (the default; no --no-serve-artifacts, no --default-artifact-root)"
                ),
            });
        };
        // `mlflow-artifacts:/1/<run>/artifacts` or `mlflow-artifacts://host/1/…`.
        let rest = match rest.strip_prefix("//") {
            Some(r) => r.find('/').map_or("", |i| &r[i..]),
            None => rest,
        };
        let url = format!(
            "/api/2.0/mlflow-artifacts/artifacts/{}/{path}",
            rest.trim_matches('/')
        );
        self.call("PUT", &url, &[], Body::Bytes(bytes)).map(|_| ())
    }

    pub fn finish_run(&self, run: &str, end_ms: i64) -> Res<()> {
        self.end_run(run, "FINISHED", end_ms)
    }

    /// Ends a run with `status` (FINISHED, FAILED, KILLED) at `end_ms`.
    pub fn end_run(&self, run: &str, status: &str, end_ms: i64) -> Res<()> {
        self.post(
            "runs/update",
            json!({"run_id": run, "status": status, "end_time": end_ms}),
        )
        .map(|_| ())
    }

    /// Creates registered model `name` unless it exists.
    pub fn registered_model(&self, name: &str) -> Res<()> {
        match self.post("registered-models/create", json!({ "name": name })) {
            Ok(_) => Ok(()),
            Err(Failure::Refused { code, .. }) if code == "RESOURCE_ALREADY_EXISTS" => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Every version of registered model `name`.
    pub fn versions(&self, name: &str) -> Res<Vec<Value>> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let filter = format!("name = '{}'", name.replace('\'', ""));
            let mut q = vec![("filter", filter.as_str()), ("max_results", "200")];
            if !token.is_empty() {
                q.push(("page_token", token.as_str()));
            }
            let v = self.get("model-versions/search", &q)?;
            out.extend(v["model_versions"].as_array().cloned().unwrap_or_default());
            match v["next_page_token"].as_str() {
                Some(t) if !t.is_empty() => token = t.to_string(),
                _ => return Ok(out),
            }
        }
    }

    pub fn create_version(
        &self,
        name: &str,
        source: &str,
        run: &str,
        tags: Vec<Value>,
    ) -> Res<Value> {
        let v = self.post(
            "model-versions/create",
            json!({"name": name, "source": source, "run_id": run, "tags": tags}),
        )?;
        Ok(v["model_version"].clone())
    }

    /// The aliases of registered model `name`: alias → registered version.
    pub fn registered_aliases(
        &self,
        name: &str,
    ) -> Res<std::collections::BTreeMap<String, String>> {
        let v = self.get("registered-models/get", &[("name", name)])?;
        Ok(v["registered_model"]["aliases"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| (text(&x["alias"]), text(&x["version"])))
                    .collect()
            })
            .unwrap_or_default())
    }

    pub fn set_alias(&self, name: &str, alias: &str, version: &str) -> Res<()> {
        self.post(
            "registered-models/alias",
            json!({"name": name, "alias": alias, "version": version}),
        )
        .map(|_| ())
    }
}

enum Body {
    None,
    Json(Value),
    Bytes(Vec<u8>),
}

/// A JSON string or number as text (MLflow ids are strings, versions numbers or strings).
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The value of tag `key` in an MLflow object's `tags` list.
pub fn tag<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj["tags"]
        .as_array()?
        .iter()
        .find(|t| t["key"] == key)
        .and_then(|t| t["value"].as_str())
}
