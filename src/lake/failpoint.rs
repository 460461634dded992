//! Failpoints for crash tests: with `LAKEBUILD_FAILPOINT=<name>` (or `<name>@<n>`) the
//! process kills itself with SIGKILL the first (or n-th) time it reaches the point `name`,
//! exactly as an outside `kill -9` would at that instant: no destructor, no flush, no
//! unlock. Unset, a point costs one check of a value read once per process. The points:
//!
//! | name | where |
//! | --- | --- |
//! | `publish.file_written` | a partition's parquet file is written, nothing committed |
//! | `publish.before_commit` | every file of a batch is written and audited, before the Delta commit |
//! | `publish.after_commit` | the batch is committed, before its history row |
//! | `restore.before_commit` | a restore's commit is about to be made |
//! | `history.file_written` | the history rows' file is written, before its commit |

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

fn armed() -> Option<&'static (String, usize)> {
    static ARMED: OnceLock<Option<(String, usize)>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let v = std::env::var("LAKEBUILD_FAILPOINT").ok()?;
            let (name, nth) = match v.split_once('@') {
                Some((n, k)) => (n.to_string(), k.trim().parse().ok()?),
                None => (v, 1),
            };
            (!name.is_empty()).then_some((name, nth))
        })
        .as_ref()
}

/// Kills the process here if the failpoint `name` is armed and this is its n-th hit.
pub fn hit(name: &str) {
    static HITS: AtomicUsize = AtomicUsize::new(0);
    let Some((armed, nth)) = armed() else {
        return;
    };
    if armed == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *nth {
        eprintln!("failpoint {name}: killing the process (SIGKILL)");
        // SAFETY: kill(2) on our own pid with a valid signal has no memory effects.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
