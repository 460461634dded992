//! Preparing a step: the selection of assets, each rule's ingredients and inputs as they are now, the assessment of every partition, and what can be restored instead of recomputed.

use super::options::BuildOptions;
use crate::core::error::UsageError;
use crate::core::partition::{Coverage, PartitionId};
use crate::core::plan::{
    Assessment, InputView, Reading, Reason, assess, diff_rules, domain, rule_ingredients,
};
use crate::core::record::RuleIngredients;
use crate::core::rule::Rule;
use crate::core::source::SourceFile;
use crate::core::table_state::AssetState;
use crate::engine::project::{Project, States};
use crate::engine::sources::hash_sources;
use crate::op::Op;
use anyhow::{Result, anyhow, bail};
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The assets a build touches, in dependency order.
pub fn selection(project: &Project, targets: &[String], only: bool) -> Result<Vec<String>> {
    for t in targets {
        project.rules.require(t)?;
    }
    if targets.is_empty() {
        return Ok(project.rules.order.clone());
    }
    if only {
        return Ok(project
            .rules
            .order
            .iter()
            .filter(|a| targets.contains(a))
            .cloned()
            .collect());
    }
    Ok(project.rules.upstream_closure(targets))
}

/// Everything needed to assess or run one asset.
pub struct Prepared<'a> {
    pub rule: &'a Rule,
    pub op: &'static dyn Op,
    pub sources: Vec<SourceFile>,
    pub ingredients: RuleIngredients,
    pub state: Arc<AssetState>,
    /// (state, view, coverage) per input, in declared order.
    pub inputs: Vec<(Arc<AssetState>, InputView, Coverage)>,
    /// A daily import that learns its partitions from its output.
    pub discovered: bool,
    /// Partitions to build (restricted by --from/--to), when not discovered.
    pub targets: Vec<PartitionId>,
    /// Every partition the asset should have, whatever --from/--to select.
    pub domain: Vec<PartitionId>,
    /// Whether `targets` is the whole domain (so partitions outside it are removed).
    pub full_domain: bool,
    /// The digest of the restatements covering each partition (only those covered).
    pub restated: BTreeMap<PartitionId, String>,
    /// A tuning study's channel, for a trial's build ([`crate::engine::variant`]).
    pub reports: Option<Arc<dyn crate::op::Reports>>,
}

impl Prepared<'_> {
    /// The digest of the restatements that cover partition `id` (part of its key).
    pub fn restated_digest(&self, id: PartitionId) -> Option<&str> {
        self.restated.get(&id).map(String::as_str)
    }

    /// Names the restatements in a `Reason::Restated` of `a`: those published after the
    /// version its current materialization was made at.
    pub fn name_restatements(&self, a: &mut Assessment) {
        let since = self.state.current.get(&a.id).map(|c| c.version);
        for r in &mut a.reasons {
            if let Reason::Restated { restatements } = r {
                *restatements = self
                    .state
                    .restatements_covering(a.id, None)
                    .into_iter()
                    .filter(|(v, _)| since.is_none_or(|s| *v > s))
                    .map(|(_, r)| r.id.clone())
                    .collect();
            }
        }
    }

    fn readings(&self) -> Vec<Reading<'_>> {
        self.inputs
            .iter()
            .map(|(s, v, c)| Reading {
                view: v,
                coverage: *c,
                state: s,
            })
            .collect()
    }

    /// Assesses every target partition.
    pub fn assess_all(&self, asset: &str, opts: &BuildOptions, explain: bool) -> Vec<Assessment> {
        let readings = self.readings();
        let force = opts.force;
        let recheck = if opts.recheck {
            self.op.recheck_days(&self.rule.params)
        } else {
            0
        };
        let recent = self.targets.len().saturating_sub(recheck);
        self.targets
            .par_iter()
            .enumerate()
            .map(|(i, id)| {
                let mut a = assess(
                    asset,
                    *id,
                    self.state.current.get(id),
                    &self.ingredients,
                    &readings,
                    self.restated_digest(*id),
                    explain,
                );
                if explain {
                    self.name_restatements(&mut a);
                }
                if force && a.reasons.is_empty() {
                    a.reasons.push(Reason::Forced);
                }
                if i >= recent && a.reasons.is_empty() {
                    a.reasons.push(Reason::Recheck { days: recheck });
                }
                a
            })
            .collect()
    }

    /// Why a discovered import must run again (empty: it is fresh).
    pub fn source_reasons(&self, force: bool) -> Vec<Reason> {
        let Some((_, last)) = self.state.last_commit() else {
            return vec![Reason::Missing];
        };
        if last.rule.digest != self.ingredients.digest {
            return vec![Reason::Rule {
                changes: diff_rules(&last.rule, &self.ingredients),
            }];
        }
        if force { vec![Reason::Forced] } else { vec![] }
    }

    /// Partitions currently materialized but outside the domain (to remove).
    pub fn obsolete(&self) -> Vec<PartitionId> {
        if self.discovered || !self.full_domain {
            return vec![];
        }
        let keep: BTreeSet<&PartitionId> = self.targets.iter().collect();
        self.state
            .current
            .keys()
            .filter(|k| !keep.contains(k))
            .copied()
            .collect()
    }
}

/// What an input `asset@alias` reads.
enum AliasTarget {
    Version(i64),
    /// An alias the asset's `[promotion]` manages, and the asset has no version yet: the
    /// input is as if not built (planning shows it waiting; a build builds it first).
    NotYet,
    Unset,
}

/// The version `alias` of `asset` names. An alias the asset's `[promotion]` manages that
/// was never set starts at the champion's version (the current version for the champion
/// itself), recorded as the policy's move when `record` (a build, which holds the lake
/// lock); planning (`status`, `why`, a dry run) only reads it so. Production thus reads
/// the first model until the policy promotes another, and the challenger starts as the
/// champion: the policy, not this, puts a version on trial.
fn managed_alias(
    project: &Project,
    asset: &str,
    alias: &str,
    current: Option<i64>,
    record: bool,
) -> Result<AliasTarget> {
    let lake = &project.lake.root;
    if let Some(v) = crate::lake::aliases::resolve(lake, asset, alias)? {
        return Ok(AliasTarget::Version(v));
    }
    let Some(policy) = project
        .rules
        .get(asset)
        .and_then(|r| r.promotion.as_ref())
        .filter(|p| p.alias == alias || p.challenger == alias)
    else {
        return Ok(AliasTarget::Unset);
    };
    let champion = crate::lake::aliases::resolve(lake, asset, &policy.alias)?;
    let Some(version) = champion.or(current) else {
        return Ok(AliasTarget::NotYet);
    };
    if !record {
        return Ok(AliasTarget::Version(version));
    }
    // Steps prepare in parallel threads: one sets it, the others read it.
    static FIRST: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = FIRST.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(v) = crate::lake::aliases::resolve(lake, asset, alias)? {
        return Ok(AliasTarget::Version(v));
    }
    crate::lake::aliases::set_recorded(lake, asset, alias, version, "policy")?;
    tracing::info!(
        asset,
        alias,
        version,
        "managed alias starts at the champion's version"
    );
    Ok(AliasTarget::Version(version))
}

/// Prepares `asset` for planning: reads only (see [`prepare_to_run`]).
pub fn prepare<'a>(
    project: &'a Project,
    states: &States,
    asset: &str,
    opts: &BuildOptions,
) -> Result<Prepared<'a>> {
    prepare_with(project, states, asset, opts, false)
}

/// Prepares `asset` for a build step, which holds the lake lock: an unset alias a
/// `[promotion]` manages is recorded where it starts.
pub(crate) fn prepare_to_run<'a>(
    project: &'a Project,
    states: &States,
    asset: &str,
    opts: &BuildOptions,
) -> Result<Prepared<'a>> {
    prepare_with(project, states, asset, opts, !opts.dry_run)
}

fn prepare_with<'a>(
    project: &'a Project,
    states: &States,
    asset: &str,
    opts: &BuildOptions,
    record_aliases: bool,
) -> Result<Prepared<'a>> {
    let rule = project.rules.require(asset)?;
    let op = project
        .registry
        .find(&rule.op)
        .ok_or_else(|| anyhow!("unknown op {}", rule.op))?;
    let mut globs = rule.sources.clone();
    globs.extend(op.source_globs(&rule.params));
    let sources = hash_sources(&project.root, &globs, &rule.file.display().to_string())?;
    let ingredients = rule_ingredients(rule, op, &sources);
    let state = states.get(asset)?;
    let mut inputs = Vec::new();
    for i in &rule.inputs {
        let s = states.get(&i.asset)?;
        let v = match &i.alias {
            None => InputView::of(&i.asset, &s),
            Some(alias) => {
                let version = match managed_alias(
                    project,
                    &i.asset,
                    alias,
                    s.version,
                    record_aliases,
                )? {
                    AliasTarget::Version(v) => v,
                    AliasTarget::NotYet => {
                        inputs.push((s.clone(), InputView::of(&i.asset, &s), i.coverage));
                        continue;
                    }
                    AliasTarget::Unset => {
                        return Err(UsageError(format!(
                            "{}: input {}@{alias}: the alias is not set; set it to a version of {} with `lakebuild model alias {alias} VERSION --asset {}`",
                            rule.file.display(),
                            i.asset,
                            i.asset,
                            i.asset
                        ))
                        .into());
                    }
                };
                let v = InputView::at(&i.asset, &s, version);
                if v.ids.is_empty() {
                    return Err(UsageError(format!(
                        "{}: input {}@{alias} points to version {version}, which holds no partitions: move the alias to a version that has them (`lakebuild history --asset {}`)",
                        rule.file.display(),
                        i.asset,
                        i.asset
                    ))
                    .into());
                }
                v
            }
        };
        inputs.push((s, v, i.coverage));
    }
    let daily_inputs: Vec<(&InputView, &crate::core::rule::Input)> = rule
        .inputs
        .iter()
        .zip(&inputs)
        .filter(|(i, _)| project.rules.get(&i.asset).is_some_and(|r| r.daily))
        .map(|(i, (_, v, _))| (v, i))
        .collect();
    let dom = if rule.daily && rule.dates.is_none() && daily_inputs.is_empty() {
        None
    } else {
        domain(rule, &daily_inputs, opts.today)
    };
    let discovered = dom.is_none();
    let domain_ids = dom.unwrap_or_default();
    let mut targets = domain_ids.clone();
    let full_domain = opts.from.is_none() && opts.to.is_none();
    if rule.daily {
        targets.retain(|p| {
            let d = p.date();
            opts.from.is_none_or(|f| d.is_some_and(|d| d >= f))
                && opts.to.is_none_or(|t| d.is_some_and(|d| d <= t))
        });
    }
    let known: Vec<PartitionId> = domain_ids
        .iter()
        .chain(state.current.keys())
        .copied()
        .collect();
    let restated = state.restated(&known);
    Ok(Prepared {
        rule,
        op,
        sources,
        ingredients,
        state,
        inputs,
        discovered,
        targets,
        domain: domain_ids,
        full_domain,
        restated,
        reports: None,
    })
}

// ---------------------------------------------------------------------------------
// Dry run / status plan

/// Whether a stale partition may be restored from an older file with its key rather
/// than run: not when forced, not for a re-check (it must ask the source again), and not
/// while it waits on upstream (its key is not final). Planning and building agree on it.
pub(crate) fn may_restore(a: &Assessment, force: bool) -> bool {
    !force
        && !matches!(
            a.reasons.first(),
            Some(Reason::UpstreamPending { .. } | Reason::Recheck { .. })
        )
}

/// The most recent file that held `key` and still exists.
pub(crate) fn restorable_file<'a>(
    state: &'a AssetState,
    key: &str,
) -> Option<&'a crate::core::table_state::KeyedFile> {
    state
        .by_key()
        .get(key)?
        .iter()
        .rev()
        .find(|k| state.table.join(&k.record.file).is_file())
}

// ---------------------------------------------------------------------------------
// Execution

/// `prepare` again after a commit of the step, which must not find the rule changed (the
/// remaining batches were assessed under it).
pub(crate) fn reprepare<'a>(
    project: &'a Project,
    states: &States,
    asset: &str,
    opts: &BuildOptions,
    digest: &str,
) -> Result<Prepared<'a>> {
    states.reload(asset)?;
    let prep = prepare_to_run(project, states, asset, opts)?;
    if prep.ingredients.digest != digest {
        bail!(
            "the rule of '{asset}' or one of its source files changed during the build: build again"
        );
    }
    Ok(prep)
}
