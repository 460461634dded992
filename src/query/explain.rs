//! `lakebuild why`: provenance (the tree of inputs a materialization was built from,
//! `crate::core::lineage` over the tables' states) and staleness (whether it is stale now
//! and exactly which ingredient changed, from the same preparation as a build), and their
//! rendering.

use crate::core::error::UsageError;
use crate::core::lineage::provenance;
pub use crate::core::lineage::{InputProvenance, Provenance};
use crate::core::partition::PartitionId;
use crate::core::plan::{Reason, assess};
use crate::engine::project::{Project, States};
use crate::engine::{BuildOptions, prepare};
use anyhow::Result;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Why {
    pub provenance: Provenance,
    /// "fresh", "stale", or "superseded" (an older version was asked for).
    pub status: String,
    pub reasons: Vec<Reason>,
    pub latest_version: i64,
}

/// Parses `ASSET[@VERSION]`.
pub fn parse_target(t: &str) -> Result<(String, Option<i64>)> {
    match t.split_once('@') {
        None => Ok((t.to_string(), None)),
        Some((a, v)) => match v.parse::<i64>() {
            Ok(v) => Ok((a.to_string(), Some(v))),
            Err(_) => Err(UsageError(format!(
                "'{t}': the version after @ must be a number, e.g. {a}@3"
            ))
            .into()),
        },
    }
}

pub fn why(
    project: &Project,
    target: &str,
    partition: Option<PartitionId>,
    opts: &BuildOptions,
) -> Result<Why> {
    let (asset, version) = parse_target(target)?;
    let rule = project.rules.require(&asset)?;
    let states = States::new(&project.lake);
    let state = states.get(&asset)?;
    let Some(latest) = state.version else {
        return Err(UsageError(format!(
            "'{asset}' has never been built: run `lakebuild {asset}`"
        ))
        .into());
    };
    let version = version.unwrap_or(latest);
    if version > latest || version < 0 {
        return Err(UsageError(format!(
            "'{asset}' has versions 0..{latest}; there is no version {version}"
        ))
        .into());
    }
    let id = match partition {
        Some(p) => p,
        None if rule.daily => *state.partition_ids_at(version).last().ok_or_else(|| {
            UsageError(format!("'{asset}' held no partitions at version {version}"))
        })?,
        None => PartitionId::Whole,
    };
    let prov = provenance(&states, &asset, id, version, 6)?.ok_or_else(|| {
        UsageError(format!(
            "'{asset}' has no partition {id} at version {version}: see `lakebuild status`"
        ))
    })?;

    let (status, reasons) = if version < latest
        && state.content_hash_at(id, latest) != Some(prov.content_hash.as_str())
    {
        ("superseded".to_string(), vec![])
    } else {
        let prep = prepare(project, &states, &asset, opts)?;
        if prep.discovered {
            let r = prep.source_reasons(false);
            (if r.is_empty() { "fresh" } else { "stale" }.to_string(), r)
        } else if !prep.targets.contains(&id) {
            ("stale".to_string(), vec![Reason::Missing])
        } else {
            let readings: Vec<_> = prep
                .inputs
                .iter()
                .map(|(s, v, c)| crate::core::plan::Reading {
                    view: v,
                    coverage: *c,
                    state: s,
                })
                .collect();
            let mut a = assess(
                &asset,
                id,
                state.current.get(&id),
                &prep.ingredients,
                &readings,
                prep.restated_digest(id),
                true,
            );
            prep.name_restatements(&mut a);
            (
                if a.fresh() { "fresh" } else { "stale" }.to_string(),
                a.reasons,
            )
        }
    };
    Ok(Why {
        provenance: prov,
        status,
        reasons,
        latest_version: latest,
    })
}

fn render_prov(p: &Provenance, indent: usize, out: &mut String) {
    use std::fmt::Write;
    let pad = " ".repeat(indent);
    let _ = writeln!(
        out,
        "{pad}{} @ version {} partition {} ({})",
        p.asset,
        p.version,
        p.partition,
        serde_json::to_string(&p.outcome)
            .unwrap_or_default()
            .trim_matches('"')
    );
    let _ = writeln!(
        out,
        "{pad}  key {}  content {}  rows {}",
        &p.key[..16],
        &p.content_hash[..16],
        p.rows
    );
    let _ = writeln!(
        out,
        "{pad}  op {} (code {}) params {}",
        p.op, p.code_version, p.params
    );
    for s in &p.sources {
        let _ = writeln!(out, "{pad}  source {} ({})", s.path, &s.hash[..12]);
    }
    let _ = writeln!(out, "{pad}  run {} at {}", p.run_id, p.committed_at);
    for (id, reason) in &p.restated {
        let _ = writeln!(out, "{pad}  restated: {id}: {reason}");
    }
    for i in &p.inputs {
        let range = match (i.first, i.last) {
            (Some(a), Some(b)) if a == b => format!("{a}"),
            (Some(a), Some(b)) => format!("{a}..{b}"),
            _ => "nothing".into(),
        };
        let _ = writeln!(
            out,
            "{pad}  <- {} @ version {}: {} partition(s) {range}, digest {}",
            i.asset,
            i.version,
            i.count,
            &i.digest[..12]
        );
        if let Some(a) = &i.anchor {
            render_prov(a, indent + 6, out);
        }
    }
}

pub fn render(w: &Why) -> String {
    let mut out = String::new();
    render_prov(&w.provenance, 0, &mut out);
    out.push('\n');
    match w.status.as_str() {
        "fresh" => {
            out.push_str("status: fresh (its key matches what its inputs and rule give now)\n")
        }
        "superseded" => out.push_str(&format!(
            "status: superseded (the latest version is {})\n",
            w.latest_version
        )),
        _ => {
            out.push_str("status: stale, because\n");
            for r in &w.reasons {
                out.push_str(&format!("  - {r}\n"));
            }
        }
    }
    out
}
