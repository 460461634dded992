//! One batch of a step, as the op sees it and as it comes back: the op's inputs (each
//! input's covered partitions and every output partition's window), the resume folder
//! named by exactly that work, and the frames the op produced.

use super::prepare::Prepared;
use crate::core::partition::PartitionId;
use crate::engine::checks::CheckResult;
use crate::engine::project::Project;
use crate::lake::parquet::schema_from_record;
use crate::op::{OpInput, RestatementEvent};
use anyhow::Result;
use polars::prelude::*;

/// One produced partition, ready to publish.
pub(crate) struct Produced {
    pub(crate) id: PartitionId,
    pub(crate) frame: DataFrame,
    pub(crate) content_hash: String,
    /// Restatements this run adds to it (an earlier partition the source restated).
    pub(crate) restated_by: Vec<String>,
}

/// What one successful op run produced: the batch's partitions, then any earlier
/// partitions the source restated, the restatements, and the checks' results.
pub(crate) struct Output {
    pub(crate) produced: Vec<Produced>,
    pub(crate) events: Vec<RestatementEvent>,
    pub(crate) checks: Vec<CheckResult>,
}

/// The inputs an op sees for a batch: the union of the windows, with each one's range.
pub(crate) fn op_inputs(prep: &Prepared, project: &Project, batch: &[PartitionId]) -> Vec<OpInput> {
    prep.rule
        .inputs
        .iter()
        .zip(&prep.inputs)
        .map(|(input, (state, view, cov))| {
            let ranges: Vec<(PartitionId, (usize, usize))> = if batch.is_empty() {
                vec![]
            } else {
                batch.iter().map(|p| (*p, view.cover(*cov, *p))).collect()
            };
            let (lo, hi) = if ranges.is_empty() {
                (0, view.ids.len())
            } else {
                let lo = ranges.iter().map(|(_, r)| r.0).min().unwrap_or(0);
                let hi = ranges.iter().map(|(_, r)| r.1).max().unwrap_or(0);
                (lo, hi.max(lo))
            };
            let table = project.lake.table(&input.asset);
            let partitions = (lo..hi)
                .map(|i| (view.ids[i], table.join(&view.files[i])))
                .collect();
            let windows = ranges
                .into_iter()
                .map(|(p, (a, b))| {
                    (
                        p,
                        (
                            a.saturating_sub(lo),
                            b.saturating_sub(lo).max(a.saturating_sub(lo)),
                        ),
                    )
                })
                .collect();
            let schema = state
                .last_commit()
                .map(|(_, c)| schema_from_record(&c.schema));
            OpInput {
                asset: input.asset.clone(),
                table: table.clone(),
                coverage: *cov,
                daily: project.rules.get(&input.asset).is_some_and(|r| r.daily),
                partitions,
                windows,
                schema,
            }
        })
        .collect()
}

/// The op's resume directory: named by the rule's digest, the batch and every input
/// partition file it reads (a file holds one content for good), so only the same work
/// finds it again.
pub(crate) fn resume_dir(
    project: &Project,
    asset: &str,
    prep: &Prepared,
    batch: &[PartitionId],
    inputs: &[OpInput],
) -> std::path::PathBuf {
    let mut h = blake3::Hasher::new();
    h.update(prep.ingredients.digest.as_bytes());
    for p in batch {
        h.update(p.to_string().as_bytes());
    }
    for i in inputs {
        h.update(i.asset.as_bytes());
        for (id, file) in &i.partitions {
            h.update(id.to_string().as_bytes());
            h.update(file.to_string_lossy().as_bytes());
        }
    }
    project
        .lake
        .root
        .join("_lakebuild")
        .join("resume")
        .join(format!("{asset}-{}", &h.finalize().to_hex()[..16]))
}

pub(crate) fn concat_frames(produced: &[Produced]) -> Result<DataFrame> {
    let mut it = produced.iter();
    let Some(first) = it.next() else {
        return Ok(DataFrame::empty());
    };
    let mut out = first.frame.clone();
    for p in it {
        out.vstack_mut(&p.frame)?;
    }
    Ok(out)
}
