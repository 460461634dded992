//! The JSON API under `/api/`: each answer is the structure the CLI prints with
//! `--json`, from the same query function (`status`, `graph --format json`, `why`,
//! `history`, `stats`, `jobs`, `model list`, `model history`, `model policy --log`), plus
//! what only the pages need (one asset as a whole, the run list, live progress, the
//! monitoring series). Queries run on the blocking pool: they read Delta logs and parquet.

use super::{Shared, refuse};
use crate::core::error::UsageError;
use crate::core::partition::PartitionId;
use crate::engine::BuildOptions;
use crate::engine::project::Project;
use crate::lake::runs;
use crate::query::{asset, explain, graph, history, sla, status};
use anyhow::Result;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

pub(super) fn routes() -> Router<Shared> {
    use axum::routing::get;
    Router::new()
        .route("/api/session", get(session))
        .route("/api/status", get(status_of_assets))
        .route("/api/graph", get(asset_graph))
        .route("/api/assets/{asset}", get(one_asset))
        .route("/api/why/{target}", get(why))
        .route("/api/history", get(run_history))
        .route("/api/runs", get(run_list))
        .route("/api/runs/{run}", get(one_run))
        .route("/api/stats", get(stats))
        .route("/api/jobs", get(jobs))
        .route("/api/ticks", get(ticks))
        .route("/api/sensors", get(sensors))
        .route("/api/slas", get(slas))
        .route("/api/alerts", get(alerts))
        .route("/api/live", get(live))
        .route("/api/models", get(models))
        .route("/api/models/history", get(alias_history))
        .route("/api/promotions", get(promotions))
        .route("/api/performance", get(performance))
        .route("/api/tuning", get(tuning))
        .route("/api/compare", get(compare))
}

/// Runs `f` on the blocking pool and answers its value as JSON, or its error: 400 for a
/// usage error (an unknown asset, a bad partition), 500 otherwise.
async fn answer<T, F>(app: Shared, f: F) -> Response
where
    T: Serialize + Send + 'static,
    F: FnOnce(&Project) -> Result<T> + Send + 'static,
{
    let done = tokio::task::spawn_blocking(move || app.project().and_then(|p| f(&p))).await;
    match done {
        Ok(Ok(v)) => axum::Json(v).into_response(),
        Ok(Err(e)) => {
            let code = if e.chain().any(|c| c.is::<UsageError>()) {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            refuse(code, true, &format!("{e:#}"))
        }
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, true, &e.to_string()),
    }
}

/// The options `status`, `why` and `graph` plan with (the CLI's defaults).
fn options(p: &Project) -> Result<BuildOptions> {
    Ok(BuildOptions {
        today: p.today()?,
        ..BuildOptions::default()
    })
}

#[derive(Serialize)]
struct Session {
    /// Whether actions can be taken (a token is configured).
    actions: bool,
    authenticated: bool,
    reads_need_token: bool,
}

async fn session(State(app): State<Shared>, headers: axum::http::HeaderMap) -> Response {
    axum::Json(Session {
        actions: app.access.actions_enabled(),
        authenticated: app.access.authenticated(&headers),
        reads_need_token: app.access.reads_need_token(),
    })
    .into_response()
}

async fn status_of_assets(State(app): State<Shared>) -> Response {
    answer(app, |p| status::status(p, &options(p)?)).await
}

#[derive(Deserialize)]
struct Select {
    /// A selection (`+predictions`, `raw_stock_data+`, several separated by spaces or
    /// commas), as in a job's `select`.
    select: Option<String>,
}

async fn asset_graph(State(app): State<Shared>, Query(q): Query<Select>) -> Response {
    answer(app, move |p| {
        let statuses = status::status(p, &options(p)?)?;
        let mut g = graph::graph(p, &statuses);
        if let Some(sel) = q.select.filter(|s| !s.trim().is_empty()) {
            let parts: Vec<String> = sel
                .split([',', ' '])
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            let keep = crate::orchestration::jobs::resolve_selection(&p.rules, &parts)
                .map_err(UsageError)?;
            g.nodes.retain(|n| keep.contains(&n.asset));
            g.edges
                .retain(|e| keep.contains(&e.from) && keep.contains(&e.to));
        }
        Ok(g)
    })
    .await
}

async fn one_asset(State(app): State<Shared>, Path(name): Path<String>) -> Response {
    answer(app, move |p| asset::view(p, &name, &options(p)?)).await
}

#[derive(Deserialize)]
struct WhyQuery {
    partition: Option<String>,
}

async fn why(
    State(app): State<Shared>,
    Path(target): Path<String>,
    Query(q): Query<WhyQuery>,
) -> Response {
    answer(app, move |p| {
        let part = match q.partition.as_deref() {
            Some(s) => Some(PartitionId::parse(s).map_err(UsageError)?),
            None => None,
        };
        explain::why(p, &target, part, &options(p)?)
    })
    .await
}

#[derive(Deserialize)]
struct HistoryQuery {
    asset: Option<String>,
    run: Option<String>,
    limit: Option<usize>,
}

async fn run_history(State(app): State<Shared>, Query(q): Query<HistoryQuery>) -> Response {
    answer(app, move |p| {
        let rows = runs::read_all(&p.lake)?;
        Ok(history::filter(
            &rows,
            q.asset.as_deref(),
            q.run.as_deref(),
            q.limit.unwrap_or(50),
        )
        .into_iter()
        .cloned()
        .collect::<Vec<_>>())
    })
    .await
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<usize>,
}

async fn run_list(State(app): State<Shared>, Query(q): Query<Limit>) -> Response {
    answer(app, move |p| {
        Ok(history::runs(
            &runs::read_all(&p.lake)?,
            &live_runs(p),
            q.limit.unwrap_or(100),
        ))
    })
    .await
}

#[derive(Serialize)]
struct OneRun {
    run: history::RunSummary,
    /// Its rows, as `history --run ID --json` prints them.
    steps: Vec<runs::RunRow>,
}

async fn one_run(State(app): State<Shared>, Path(run): Path<String>) -> Response {
    answer(app, move |p| {
        let rows: Vec<runs::RunRow> = runs::read_all(&p.lake)?
            .into_iter()
            .filter(|r| r.run_id == run)
            .collect();
        let live: Vec<_> = live_runs(p)
            .into_iter()
            .filter(|l| l.run_id == run)
            .collect();
        let summary = history::runs(&rows, &live, 1)
            .pop()
            .ok_or_else(|| UsageError(format!("no run '{run}' in the history")))?;
        Ok(OneRun {
            run: summary,
            steps: rows,
        })
    })
    .await
}

async fn stats(State(app): State<Shared>) -> Response {
    answer(app, |p| {
        history::stats_with_slas(p, &runs::read_all(&p.lake)?, crate::clock::now_utc()?)
    })
    .await
}

async fn jobs(State(app): State<Shared>) -> Response {
    answer(app, |p| {
        let jobs = crate::orchestration::jobs::load(&p.rules_dir, &p.rules)?;
        Ok(crate::orchestration::schedule::listing(
            &jobs,
            crate::clock::now_utc()?,
        ))
    })
    .await
}

async fn ticks(State(app): State<Shared>, Query(q): Query<Limit>) -> Response {
    answer(app, move |p| {
        let mut t = crate::orchestration::schedule::read_ticks(&p.lake.root)?;
        let skip = t.len().saturating_sub(q.limit.unwrap_or(50));
        t.drain(..skip);
        t.reverse();
        Ok(t)
    })
    .await
}

async fn sensors(State(app): State<Shared>) -> Response {
    answer(app, |p| {
        crate::orchestration::sensors::load_cursors(&p.lake.root)
    })
    .await
}

#[derive(Serialize)]
struct Slas {
    breaches: Vec<sla::Breach>,
    /// The assets that have an SLA.
    evaluated: Vec<String>,
}

async fn slas(State(app): State<Shared>) -> Response {
    answer(app, |p| {
        let rows = runs::read_all(&p.lake)?;
        let (breaches, evaluated) = sla::evaluate(p, &rows, crate::clock::now_utc()?)?;
        Ok(Slas {
            breaches,
            evaluated,
        })
    })
    .await
}

async fn alerts(State(app): State<Shared>) -> Response {
    answer(app, |p| {
        Ok(crate::orchestration::alerts::open_problems(&p.lake.root))
    })
    .await
}

/// The builds running now on `p`'s lake.
fn live_runs(p: &Project) -> Vec<crate::lake::live::LiveRun> {
    crate::lake::live::running(&p.lake.root, crate::clock::now_ms())
}

async fn live(State(app): State<Shared>) -> Response {
    answer(app, |p| Ok(live_runs(p))).await
}

#[derive(Deserialize)]
struct AssetQuery {
    asset: Option<String>,
}

async fn models(State(app): State<Shared>, Query(q): Query<AssetQuery>) -> Response {
    answer(app, move |p| {
        crate::jp_equity::model_versions::list(p, q.asset.as_deref().unwrap_or("trained_model"))
    })
    .await
}

async fn alias_history(State(app): State<Shared>, Query(q): Query<AssetQuery>) -> Response {
    answer(app, move |p| {
        Ok(crate::lake::aliases::history(&p.lake.root)?
            .into_iter()
            .filter(|m| q.asset.as_ref().is_none_or(|a| *a == m.asset))
            .collect::<Vec<_>>())
    })
    .await
}

async fn promotions(State(app): State<Shared>, Query(q): Query<AssetQuery>) -> Response {
    answer(app, move |p| {
        let asset = q.asset.as_deref().unwrap_or("trained_model");
        crate::lake::promotions::of(&p.lake.root, asset)
    })
    .await
}

async fn performance(State(app): State<Shared>, Query(q): Query<AssetQuery>) -> Response {
    answer(app, move |p| {
        crate::jp_equity::performance_series::series(
            p,
            q.asset.as_deref().unwrap_or("prediction_performance"),
        )
    })
    .await
}

#[derive(Serialize)]
struct Tuning {
    /// The history rows of the asset's tuning trials (trigger `tune:<study>#<trial>`),
    /// newest first.
    trials: Vec<runs::RunRow>,
    /// The models the trials trained (`run_id` joins them to their rows).
    models: Vec<crate::jp_equity::model_versions::ModelVersion>,
}

async fn tuning(State(app): State<Shared>, Query(q): Query<AssetQuery>) -> Response {
    answer(app, move |p| {
        let asset = q.asset.as_deref().unwrap_or("trained_model");
        let mut trials: Vec<runs::RunRow> = runs::read_all(&p.lake)?
            .into_iter()
            .filter(|r| r.asset == asset && r.is_variant())
            .collect();
        trials.reverse();
        Ok(Tuning {
            trials,
            models: crate::jp_equity::model_versions::trials(p, asset)?,
        })
    })
    .await
}

#[derive(Deserialize)]
struct CompareQuery {
    a: String,
    b: String,
    labels: Option<String>,
    min_days: Option<usize>,
}

/// `lakebuild model compare A B [--labels L] [--min-days N] --json`.
async fn compare(State(app): State<Shared>, Query(q): Query<CompareQuery>) -> Response {
    answer(app, move |p| {
        let opts = crate::jp_equity::model_compare::CompareOptions {
            from: None,
            to: None,
            horizon: None,
            labels: q.labels.unwrap_or_else(|| "labels".into()),
            min_days: q.min_days.unwrap_or(20),
        };
        crate::jp_equity::model_compare::compare(p, &q.a, &q.b, &opts)
    })
    .await
}
