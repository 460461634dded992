//! What a logged-in user can do from the UI: log in and out, launch a job or a selection,
//! retry a failed run. An action starts the lakebuild binary itself as a separate process
//! (`lakebuild run JOB`, `lakebuild build --only …`, `lakebuild retry RUN`), exactly what
//! the command line would run: it takes the lake lock, records its run in the history
//! and publishes its progress, and the server stays a reader. Its output goes to
//! `lake/_lakebuild/web/<when>-<what>.log`. The guard (`super::guard`) has already checked
//! the token, `Host` and `Origin` of every POST here.

use super::{Shared, refuse};
use crate::core::error::UsageError;
use axum::extract::{Form, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::process::{Command, Stdio};

pub(super) async fn login(
    State(app): State<Shared>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let given = form.get("token").map(String::as_str).unwrap_or_default();
    match app.access.session_cookie() {
        Some(cookie) if app.access.token_matches(given) => {
            ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
        }
        Some(_) => refuse(
            StatusCode::UNAUTHORIZED,
            false,
            "wrong token: go back and try again",
        ),
        None => refuse(
            StatusCode::FORBIDDEN,
            false,
            "this server has no token: start lakebuild serve with LAKEBUILD_UI_TOKEN set",
        ),
    }
}

pub(super) async fn logout() -> Response {
    let expired = format!(
        "{}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0",
        super::access::COOKIE
    );
    ([(header::SET_COOKIE, expired)], Redirect::to("/")).into_response()
}

/// What an action started.
#[derive(Serialize)]
struct Launched {
    /// The command line's arguments after `lakebuild`.
    args: Vec<String>,
    pid: u32,
    /// Where its output goes.
    log: String,
}

/// Starts `lakebuild ARGS` against the server's project; a thread waits for it, so it
/// leaves no zombie.
fn launch(app: &Shared, what: &str, args: Vec<String>) -> Response {
    let result = (|| -> anyhow::Result<Launched> {
        let project = app.project()?;
        let dir = project.lake.root.join("_lakebuild").join("web");
        std::fs::create_dir_all(&dir)?;
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        let safe: String = what
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let log = dir.join(format!("{stamp}-{safe}.log"));
        let out = std::fs::File::create(&log)?;
        let mut cmd = Command::new(&app.exe);
        cmd.arg("-C").arg(&app.root).arg("--quiet");
        if let Some(l) = &app.given.lake {
            cmd.arg("--lake").arg(l);
        }
        if let Some(r) = &app.given.rules {
            cmd.arg("--rules").arg(r);
        }
        if let Some(z) = &app.given.timezone {
            cmd.arg("--timezone").arg(z);
        }
        cmd.args(&args)
            .env_remove("LAKEBUILD_UI_TOKEN")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let mut child = cmd.spawn()?;
        let pid = child.id();
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        Ok(Launched {
            args,
            pid,
            log: log.display().to_string(),
        })
    })();
    match result {
        Ok(l) => (StatusCode::ACCEPTED, axum::Json(l)).into_response(),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, true, &format!("{e:#}")),
    }
}

pub(super) async fn launch_job(State(app): State<Shared>, Path(job): Path<String>) -> Response {
    let check = app
        .project()
        .and_then(|p| crate::orchestration::jobs::find(&p.rules_dir, &p.rules, &job).map(|_| ()));
    if let Err(e) = check {
        return refuse(StatusCode::NOT_FOUND, true, &format!("{e:#}"));
    }
    launch(&app, &job, vec!["run".into(), job.clone()])
}

#[derive(Deserialize)]
pub(super) struct Selection {
    /// As a job's `select`: `x`, `+x` (and upstream), `x+` (and downstream).
    select: Vec<String>,
}

pub(super) async fn launch_selection(
    State(app): State<Shared>,
    axum::Json(sel): axum::Json<Selection>,
) -> Response {
    let assets = app.project().and_then(|p| {
        crate::orchestration::jobs::resolve_selection(&p.rules, &sel.select)
            .map_err(|e| UsageError(e).into())
    });
    match assets {
        Ok(a) if !a.is_empty() => {
            let mut args = vec![
                "build".to_string(),
                "--only".into(),
                "--trigger".into(),
                "ui".into(),
            ];
            args.extend(a);
            launch(&app, &sel.select.join("_"), args)
        }
        Ok(_) => refuse(
            StatusCode::BAD_REQUEST,
            true,
            "the selection names no asset",
        ),
        Err(e) => refuse(StatusCode::BAD_REQUEST, true, &format!("{e:#}")),
    }
}

pub(super) async fn retry_run(State(app): State<Shared>, Path(run): Path<String>) -> Response {
    let known = app
        .project()
        .and_then(|p| crate::lake::runs::read_all(&p.lake))
        .map(|rows| rows.iter().any(|r| r.run_id == run));
    match known {
        Ok(true) => launch(
            &app,
            &format!("retry-{run}"),
            vec!["retry".into(), run.clone()],
        ),
        Ok(false) => refuse(
            StatusCode::NOT_FOUND,
            true,
            &format!("no run '{run}' in the history"),
        ),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, true, &format!("{e:#}")),
    }
}
