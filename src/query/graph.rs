//! `lakebuild graph`: the asset graph as DOT, Mermaid or JSON, with each asset's status.

use crate::engine::project::Project;
use crate::query::status::AssetStatus;
use serde::Serialize;

/// The asset graph: `graph --format json` and the web UI's.
#[derive(Debug, Clone, Serialize)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Node {
    pub asset: String,
    pub op: String,
    pub daily: bool,
    /// fresh / stale / missing / failed (`status`'s state), unknown if it has none.
    pub status: String,
    /// When its current version was committed (RFC 3339).
    pub last_built: Option<String>,
    /// Its latest check results: how many passed, of how many.
    pub checks_passed: usize,
    pub checks: usize,
    /// One line on why it is not fresh, or its last error.
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    /// The input's window, e.g. `[-60, 0]`.
    pub coverage: String,
}

/// The graph of the project's assets, in build order, with each one's status.
pub fn graph(project: &Project, statuses: &[AssetStatus]) -> Graph {
    let rules = &project.rules;
    Graph {
        nodes: rules
            .order
            .iter()
            .map(|a| {
                let s = statuses.iter().find(|s| s.asset == *a);
                Node {
                    asset: a.clone(),
                    op: rules.rules[a].op.clone(),
                    daily: rules.rules[a].daily,
                    status: s.map_or_else(|| "unknown".into(), |s| s.state.clone()),
                    last_built: s.and_then(|s| s.last_built.clone()),
                    checks_passed: s.map_or(0, |s| s.checks.iter().filter(|c| c.passed).count()),
                    checks: s.map_or(0, |s| s.checks.len()),
                    note: s.and_then(|s| s.last_error.clone().or(s.why.clone())),
                }
            })
            .collect(),
        edges: rules
            .order
            .iter()
            .flat_map(|a| {
                rules.rules[a].inputs.iter().map(move |i| Edge {
                    from: i.asset.clone(),
                    to: a.clone(),
                    coverage: i.coverage.to_string(),
                })
            })
            .collect(),
    }
}

pub fn render(project: &Project, statuses: &[AssetStatus], format: &str) -> String {
    let state_of = |a: &str| {
        statuses
            .iter()
            .find(|s| s.asset == a)
            .map(|s| s.state.as_str())
            .unwrap_or("unknown")
    };
    let edges: Vec<(String, String, String)> = project
        .rules
        .order
        .iter()
        .flat_map(|a| {
            project.rules.rules[a]
                .inputs
                .iter()
                .map(move |i| (i.asset.clone(), a.clone(), i.coverage.to_string()))
        })
        .collect();
    match format {
        "mermaid" => {
            let mut s = String::from("graph LR\n");
            for a in &project.rules.order {
                let r = &project.rules.rules[a];
                s.push_str(&format!(
                    "  {a}[\"{a}<br/>{} · {}\"]:::{}\n",
                    r.op,
                    state_of(a),
                    state_of(a)
                ));
            }
            for (from, to, cov) in &edges {
                s.push_str(&format!("  {from} -->|{cov}| {to}\n"));
            }
            s.push_str("  classDef fresh fill:#d4edda\n  classDef stale fill:#fff3cd\n  classDef missing fill:#e2e3e5\n  classDef failed fill:#f8d7da\n");
            s
        }
        "json" => serde_json::to_string_pretty(&graph(project, statuses)).unwrap_or_default(),
        _ => {
            let mut s = String::from(
                "digraph lakebuild {\n  rankdir=LR;\n  node [shape=box, style=filled];\n",
            );
            for a in &project.rules.order {
                let color = match state_of(a) {
                    "fresh" => "palegreen",
                    "stale" => "khaki",
                    "failed" => "salmon",
                    _ => "lightgrey",
                };
                let r = &project.rules.rules[a];
                s.push_str(&format!(
                    "  \"{a}\" [label=\"{a}\\n{} · {}\", fillcolor={color}];\n",
                    r.op,
                    state_of(a)
                ));
            }
            for (from, to, cov) in &edges {
                s.push_str(&format!("  \"{from}\" -> \"{to}\" [label=\"{cov}\"];\n"));
            }
            s.push_str("}\n");
            s
        }
    }
}
