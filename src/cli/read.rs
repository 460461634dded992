//! Read commands: `status`, `why`, `graph`, `history`, `stats`, `metrics`.

use super::build::default_options;
use super::{Global, print_json};
use crate::core::error::UsageError;
use crate::core::partition::PartitionId;
use crate::engine::project::Project;
use crate::lake::runs;
use crate::query::{explain, graph as asset_graph, history as run_history, status as asset_status};
use anyhow::Result;
use std::path::Path;

pub(super) fn status(project: &Project, g: &Global, json: bool) -> Result<i32> {
    let s = asset_status::status(project, &default_options(project, g)?)?;
    let mut lines = super::promotion::status_lines(project);
    lines.extend(crate::mlflow::status_line(project));
    if json {
        print_json(&s)?;
        // The JSON stays the assets' array; the policies and what waits for MLflow go
        // to stderr.
        for l in &lines {
            eprintln!("{l}");
        }
    } else {
        print!("{}", asset_status::render(&s));
        for l in &lines {
            println!("{l}");
        }
    }
    Ok(0)
}

pub(super) fn why(
    project: &Project,
    g: &Global,
    target: &str,
    partition: Option<&str>,
    json: bool,
) -> Result<i32> {
    let p = match partition {
        Some(p) => Some(PartitionId::parse(p).map_err(UsageError)?),
        None => None,
    };
    let w = explain::why(project, target, p, &default_options(project, g)?)?;
    if json {
        print_json(&w)?
    } else {
        print!("{}", explain::render(&w))
    }
    Ok(0)
}

pub(super) fn graph(project: &Project, g: &Global, format: &str) -> Result<i32> {
    let s = asset_status::status(project, &default_options(project, g)?)?;
    print!("{}", asset_graph::render(project, &s, format));
    Ok(0)
}

pub(super) fn history(
    project: &Project,
    asset: Option<&str>,
    run: Option<&str>,
    limit: usize,
    json: bool,
) -> Result<i32> {
    let rows = runs::read_all(&project.lake)?;
    let picked = run_history::filter(&rows, asset, run, limit);
    if json {
        print_json(&picked)?
    } else {
        print!("{}", run_history::render(&picked))
    }
    Ok(0)
}

pub(super) fn stats(project: &Project, json: bool) -> Result<i32> {
    let rows = runs::read_all(&project.lake)?;
    let st = run_history::stats_with_slas(project, &rows, crate::clock::now_utc()?)?;
    if json {
        print_json(&st)?
    } else {
        print!("{}", run_history::render_stats(&st))
    }
    Ok(0)
}

pub(super) fn metrics(project: &Project, output: Option<&Path>) -> Result<i32> {
    let rows = runs::read_all(&project.lake)?;
    let st = run_history::stats(&rows);
    let (breaches, evaluated) =
        crate::query::sla::evaluate(project, &rows, crate::clock::now_utc()?)?;
    let text = crate::orchestration::prometheus::render(&st, &breaches, &evaluated);
    match output {
        Some(p) => crate::lake::state_file::write_atomically(p, text.as_bytes())?,
        None => print!("{text}"),
    }
    Ok(0)
}
