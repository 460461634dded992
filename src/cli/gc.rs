//! `lakebuild gc`.

use super::print_json;
use crate::core::error::UsageError;
use crate::engine::project::Project;
use anyhow::Result;

pub(super) fn run(project: &Project, retention: &str, dry_run: bool, json: bool) -> Result<i32> {
    let retention = crate::core::rule::parse_duration(retention).ok_or_else(|| {
        UsageError(format!(
            "--retention '{retention}' is not a duration, e.g. 7d"
        ))
    })?;
    // The caches the ops of this program use; any other version's is collectable.
    let live: Vec<_> = crate::registry()
        .ops()
        .map(|op| project.lake.op_cache(op.name(), op.code_version()))
        .collect();
    let reports = crate::lake::gc::collect_lake(
        &project.lake,
        &project.rules.order,
        &live,
        retention,
        dry_run,
    )?;
    if json {
        print_json(&reports)?
    } else {
        for r in &reports {
            if r.orphans_removed + r.expired_removed + r.kept_for_retention + r.attachments_removed
                > 0
            {
                println!(
                    "{}: removed {} unreferenced and {} expired file(s) and {} attachment folder(s), {} bytes; kept {} for retention",
                    r.table,
                    r.orphans_removed,
                    r.expired_removed,
                    r.attachments_removed,
                    r.bytes_freed,
                    r.kept_for_retention
                );
            }
        }
        println!(
            "gc done{}",
            if dry_run {
                " (dry run: nothing removed)"
            } else {
                ""
            }
        );
    }
    Ok(0)
}
