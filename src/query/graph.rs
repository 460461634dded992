//! `lakebuild graph`: the asset graph as DOT, Mermaid or JSON, with each asset's status.

use crate::engine::project::Project;
use crate::query::status::AssetStatus;
use serde_json::json;

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
        "json" => {
            let nodes: Vec<_> = project
                .rules
                .order
                .iter()
                .map(|a| {
                    let r = &project.rules.rules[a];
                    json!({"asset": a, "op": r.op, "daily": r.daily, "status": state_of(a)})
                })
                .collect();
            let e: Vec<_> = edges
                .iter()
                .map(|(f, t, c)| json!({"from": f, "to": t, "coverage": c}))
                .collect();
            serde_json::to_string_pretty(&json!({"nodes": nodes, "edges": e})).unwrap_or_default()
        }
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
