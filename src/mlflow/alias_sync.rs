//! Aliases both ways. lakebuild's aliases are pushed to MLflow when they are set (an
//! outbox record); an alias a person moved or created in MLflow's registry is imported by
//! `lakebuild tick` (before its jobs, so they re-key at once) and `lakebuild mlflow sync`.
//! The lake stays the source of truth: with `S` the last value both sides agreed on
//! (`_lakebuild/mlflow_aliases.json`), an alias whose lakebuild side still equals `S`
//! while MLflow's moved is imported; one that moved in lakebuild, or on both sides, keeps
//! the lake's value and is pushed back. Sides are compared by content (the registered
//! version's `lakebuild.content_hash` tag), since one registered version stands for
//! every lake version holding its content. An import goes through the same function as
//! `lakebuild model alias` ([`crate::engine::alias`]: its checks, the lake lock, the
//! audit record with `by = mlflow`), only while the lake's side is still what was
//! compared (a `model alias` landing meanwhile wins), and is printed.

use super::client::{Client, Failure, tag, text};
use super::record::Record;
use crate::core::partition::PartitionId;
use crate::engine::alias::{self, MovedBy};
use crate::engine::project::Project;
use crate::lake::{aliases, state_file};
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::PathBuf;

type Synced = BTreeMap<String, BTreeMap<String, i64>>;

fn synced_file(project: &Project) -> PathBuf {
    project
        .lake
        .root
        .join("_lakebuild")
        .join("mlflow_aliases.json")
}

/// Records that both sides agree `asset@alias` is `version`.
pub fn agreed(project: &Project, asset: &str, alias: &str, version: i64) -> Result<()> {
    let mut s: Synced = state_file::read_json(&synced_file(project))?;
    s.entry(asset.to_string())
        .or_default()
        .insert(alias.to_string(), version);
    state_file::write_json(&synced_file(project), &s)
}

/// The content hash of `asset`'s model at lake `version`, if it holds one whose file is
/// present.
fn content(
    project: &Project,
    asset: &str,
    state: &crate::core::table_state::AssetState,
    version: i64,
) -> Option<String> {
    let rec = state
        .commits
        .get(&version)?
        .partitions
        .iter()
        .find(|p| p.id == PartitionId::Whole)?;
    project
        .lake
        .table(asset)
        .join(&rec.file)
        .exists()
        .then(|| rec.content_hash.clone())
}

/// What one round of the comparison did.
#[derive(Debug, Default)]
pub struct AliasRound {
    pub imported: Vec<String>,
    pub pushed: Vec<Record>,
}

/// Compares every alias of tracked `asset` on both sides (module doc): imports what moved
/// in MLflow only, and returns the lake's values to push back where they differ.
pub fn compare(
    project: &Project,
    client: &Client,
    asset: &str,
    model: &str,
) -> Result<AliasRound, Failure> {
    let mut round = AliasRound::default();
    let lake_err = |e: anyhow::Error| Failure::Refused {
        code: "LAKE".into(),
        message: format!("{e:#}"),
    };
    let remote = match client.registered_aliases(model) {
        Ok(a) => a,
        Err(Failure::Refused { code, .. }) if code == "RESOURCE_DOES_NOT_EXIST" => {
            return Ok(round);
        }
        Err(e) => return Err(e),
    };
    let versions = client.versions(model)?;
    let state = crate::lake::log::load(&project.lake.table(asset)).map_err(lake_err)?;
    let local = aliases::load(&project.lake.root).map_err(lake_err)?;
    let local = local.get(asset).cloned().unwrap_or_default();
    let synced: Synced = state_file::read_json(&synced_file(project)).map_err(lake_err)?;
    let synced = synced.get(asset).cloned().unwrap_or_default();
    let mut names: Vec<&String> = remote.keys().chain(local.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let l = local.get(name).copied();
        let l_content = l.and_then(|v| content(project, asset, &state, v));
        // MLflow's side: the registered version's content and the lake version it names.
        let m = remote.get(name).and_then(|mv| {
            let v = versions.iter().find(|v| text(&v["version"]) == *mv)?;
            Some((
                tag(v, "lakebuild.content_hash")?.to_string(),
                tag(v, "lakebuild.version")?.parse::<i64>().ok()?,
            ))
        });
        let s_content = synced
            .get(name)
            .and_then(|v| content(project, asset, &state, *v));
        match (&l_content, &m) {
            (Some(lc), Some((mc, _))) if lc == mc => {
                if let Some(l) = l {
                    agreed(project, asset, name, l).map_err(lake_err)?;
                }
            }
            // MLflow moved (or created) it while the lake's stayed where both agreed.
            (_, Some((mc, mv))) if l_content == s_content && Some(mc) != l_content.as_ref() => {
                if !aliases::valid_name(name) {
                    eprintln!(
                        "warning: MLflow alias '{name}' of {model} is not a lakebuild alias name (lowercase letters, digits, _ and -, starting with a letter): not imported"
                    );
                    continue;
                }
                // The latest lake version holding that content.
                let target = state
                    .commits
                    .keys()
                    .rev()
                    .find(|v| content(project, asset, &state, **v).as_deref() == Some(mc.as_str()))
                    .copied();
                let Some(target) = target else {
                    eprintln!(
                        "warning: MLflow alias '{name}' of {model} names version {mv}, which {asset} no longer holds readable: not imported"
                    );
                    continue;
                };
                // Exactly as `lakebuild model alias` would: the same checks, lock and
                // audit record; and only if the lake's side is still where it was read.
                match alias::move_alias_from(project, asset, name, l, target, MovedBy::Mlflow) {
                    Ok(true) => {}
                    // Moved in the lake meanwhile: the lake wins, compared next round.
                    Ok(false) => continue,
                    Err(e) => {
                        eprintln!(
                            "warning: MLflow alias '{name}' of {model} (version {mv}) not imported: {e:#}"
                        );
                        continue;
                    }
                }
                agreed(project, asset, name, target).map_err(lake_err)?;
                let from = l.map_or("unset".to_string(), |v| format!("version {v}"));
                println!("{asset}@{name}: {from} → version {target} (moved in MLflow)");
                round.imported.push(name.clone());
            }
            // The lake moved, or both did: the lake's value wins.
            (Some(_), _) => {
                if let Some(l) = l {
                    round.pushed.push(Record::Alias {
                        asset: asset.to_string(),
                        alias: name.clone(),
                        version: l,
                    });
                }
            }
            _ => {}
        }
    }
    Ok(round)
}
