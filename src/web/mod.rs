//! `lakebuild serve`: the web UI and its JSON API over the lake and the rules. Read-only
//! by default: a request reads the lake as any reader does and holds no lock, so the
//! server stays correct while builds and ticks run beside it (their progress is read from
//! the lake's live files, `lake::live`). Every answer under `/api/` is the structure the
//! CLI prints with `--json`, from the same query function. The pages are one small
//! script (`ui/`) shipped inside the binary: no Node.js to build or run.
//!
//! Layer: a front end like the CLI, so it may use every layer below the CLI (the pipeline
//! included, for the models page); nothing below uses it.

mod access;
mod actions;
mod api;

use crate::engine::settings::Given;
use crate::op::Registry;
use access::Access;
use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// What `lakebuild serve` was asked for.
pub struct ServeOptions {
    pub bind: SocketAddr,
    /// Host names (besides the bind address's own) the server answers to.
    pub allow_hosts: Vec<String>,
    /// `LAKEBUILD_UI_TOKEN`: actions need it; reads too on a non-loopback bind.
    pub token: Option<String>,
}

/// The server's shared state: how to open the project (anew for each request, so a
/// changed rule shows at once), who may do what, and the binary that actions run.
pub(crate) struct App {
    registry: Arc<Registry>,
    root: PathBuf,
    given: Given,
    access: Access,
    exe: PathBuf,
}

type Shared = Arc<App>;

impl App {
    fn project(&self) -> Result<crate::engine::project::Project> {
        crate::engine::project::Project::open(self.registry.clone(), &self.root, self.given.clone())
    }
}

/// Serves until interrupted (Ctrl-C or SIGTERM). Prints the address on stdout once it
/// listens (with `--bind 127.0.0.1:0`, the port the system chose).
pub fn serve(
    registry: Arc<Registry>,
    root: PathBuf,
    given: Given,
    opts: ServeOptions,
) -> Result<()> {
    if !opts.bind.ip().is_loopback() && opts.token.as_deref().is_none_or(str::is_empty) {
        return Err(crate::core::error::UsageError(format!(
            "--bind {}: beyond loopback every read needs a token (the pages show predictions and market data): set LAKEBUILD_UI_TOKEN, or bind 127.0.0.1",
            opts.bind
        ))
        .into());
    }
    // Fail on a project that does not load before listening.
    crate::engine::project::Project::open(registry.clone(), &root, given.clone())?;
    let exe = std::env::current_exe().context("cannot find the lakebuild binary")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the server's runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(opts.bind)
            .await
            .with_context(|| format!("cannot listen on {}", opts.bind))?;
        let bound = listener.local_addr()?;
        let app = Arc::new(App {
            registry,
            root,
            given,
            access: Access::new(bound, opts.token.as_deref(), opts.allow_hosts),
            exe,
        });
        let mode = if app.access.actions_enabled() {
            "actions need LAKEBUILD_UI_TOKEN"
        } else {
            "read-only: set LAKEBUILD_UI_TOKEN to allow actions"
        };
        let reads = if app.access.reads_need_token() {
            "; reads need the token (not a loopback address)"
        } else {
            ""
        };
        println!("lakebuild serve: http://{bound}/ ({mode}{reads})");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        axum::serve(listener, router(app))
            .with_graceful_shutdown(shutdown())
            .await
            .context("the server stopped")
    })
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

fn router(app: Shared) -> Router {
    use axum::routing::{get, post};
    Router::new()
        .route("/", get(page))
        .route("/app.js", get(script))
        .route("/app.css", get(style))
        .route("/login", get(login_page).post(actions::login))
        .route("/logout", post(actions::logout))
        .merge(api::routes())
        .route("/api/jobs/{job}/launch", post(actions::launch_job))
        .route("/api/build", post(actions::launch_selection))
        .route("/api/runs/{run}/retry", post(actions::retry_run))
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

const INDEX: &str = include_str!("ui/index.html");
const SCRIPT: &str = include_str!("ui/app.js");
const STYLE: &str = include_str!("ui/app.css");
const LOGIN: &str = include_str!("ui/login.html");

fn asset(body: &'static str, kind: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

async fn page() -> Response {
    asset(INDEX, "text/html; charset=utf-8")
}

async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}

async fn login_page() -> Response {
    asset(LOGIN, "text/html; charset=utf-8")
}

/// An error answer: JSON under `/api/`, text elsewhere.
pub(crate) fn refuse(status: StatusCode, api: bool, message: &str) -> Response {
    if api {
        (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
    } else {
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            message.to_string(),
        )
            .into_response()
    }
}

/// The access rules of `access` for every request, and the headers every answer gets.
async fn guard(State(app): State<Shared>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let api = path.starts_with("/api/");
    let headers = req.headers();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if !app.access.host_ok(host) {
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            api,
            "this server does not answer to that Host (start it with --allow-host NAME to add one)",
        );
    }
    let host = host.unwrap_or_default().to_string();
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok())
        && !app.access.origin_ok(origin, &host)
    {
        return refuse(
            StatusCode::FORBIDDEN,
            api,
            "cross-origin requests are refused",
        );
    }
    let authed = app.access.authenticated(headers);
    let reading = req.method() == Method::GET || req.method() == Method::HEAD;
    let open = path == "/login" || path == "/app.css";
    if !reading && !open {
        if !app.access.actions_enabled() {
            return refuse(
                StatusCode::FORBIDDEN,
                api,
                "actions are off: start lakebuild serve with LAKEBUILD_UI_TOKEN set",
            );
        }
        if !authed {
            return refuse(
                StatusCode::UNAUTHORIZED,
                api,
                "actions need the token: log in at /login, or send it as X-Lakebuild-Token",
            );
        }
    }
    if reading && !open && app.access.reads_need_token() && !authed {
        if !api && app.access.actions_enabled() {
            return Redirect::to("/login").into_response();
        }
        return refuse(
            StatusCode::UNAUTHORIZED,
            api,
            "this server is not on a loopback address: reads need the token (log in at /login, or send X-Lakebuild-Token)",
        );
    }
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    for (k, v) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // Not no-referrer: with it, a browser sends `Origin: null` on its own form posts.
        (header::REFERRER_POLICY, "same-origin"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        ),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    res
}
