//! The lake lock: one writer at a time per lake. A second invocation (cron overlap)
//! waits, bounded and configurable, then re-plans and finds the work done. The lock is an
//! OS file lock (flock), so a killed holder releases it at once.

use anyhow::{Context, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct LakeLock {
    _file: File,
    info: PathBuf,
}

impl Drop for LakeLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.info);
    }
}

/// Acquires the lock of the lake at `lake`, waiting up to `timeout`.
/// `holder` (e.g. run id) is written beside it so that waiters can say who holds it.
pub fn acquire(lake: &Path, holder: &str, timeout: Duration) -> Result<LakeLock> {
    acquire_named(lake, "lock", holder, timeout)
}

/// Takes the lock `name` if it is free: `Ok(None)` when another process holds it; an
/// error only for a real failure (the folder or lock file cannot be made or locked).
pub fn try_acquire_named(lake: &Path, name: &str, holder: &str) -> Result<Option<LakeLock>> {
    let dir = lake.join("_lakebuild");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(name);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open the lock {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(None),
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    let info = dir.join(format!("{name}.holder"));
    let mut f = File::create(&info).with_context(|| format!("cannot write {}", info.display()))?;
    let _ = writeln!(f, "pid {} ({holder})", std::process::id());
    Ok(Some(LakeLock { _file: file, info }))
}

/// Another lock of the lake, by file name (e.g. `tick.lock`, held by `lakebuild tick`
/// while it evaluates schedules, so that two overlapping ticks never run a job twice).
pub fn acquire_named(lake: &Path, name: &str, holder: &str, timeout: Duration) -> Result<LakeLock> {
    let dir = lake.join("_lakebuild");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(name);
    let info = dir.join(format!("{name}.holder"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open the lake lock {}", path.display()))?;
    let start = Instant::now();
    let mut announced = false;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {
                let who =
                    std::fs::read_to_string(&info).unwrap_or_else(|_| "another lakebuild".into());
                if start.elapsed() >= timeout {
                    anyhow::bail!(
                        "the lake {} is locked by {} and stayed locked for {:.0?}: wait for it to finish, or raise --lock-timeout (LAKEBUILD_LOCK_TIMEOUT)",
                        lake.display(),
                        who.trim(),
                        timeout
                    );
                }
                if !announced {
                    tracing::warn!("waiting for the lake lock held by {}", who.trim());
                    eprintln!(
                        "waiting for the lake lock held by {} (up to {:.0?})",
                        who.trim(),
                        timeout
                    );
                    announced = true;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
    }
    let mut f = File::create(&info).with_context(|| format!("cannot write {}", info.display()))?;
    let _ = writeln!(f, "pid {} ({holder})", std::process::id());
    Ok(LakeLock { _file: file, info })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_times_out_with_a_clear_message() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let _held = acquire(dir.path(), "run A", Duration::from_secs(1))?;
        let err = match acquire(dir.path(), "run B", Duration::from_millis(200)) {
            Ok(_) => anyhow::bail!("second lock acquired"),
            Err(e) => e,
        };
        assert!(err.to_string().contains("run A"), "{err}");
        Ok(())
    }

    #[test]
    fn released_on_drop() -> Result<()> {
        let dir = tempfile::tempdir()?;
        drop(acquire(dir.path(), "a", Duration::from_secs(1))?);
        acquire(dir.path(), "b", Duration::from_millis(100))?;
        Ok(())
    }
}
