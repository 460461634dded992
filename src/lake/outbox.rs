//! An outbox: records for an outside service (an experiment tracker) kept in the lake
//! (`_lakebuild/<name>.json`) until delivered, so that the service being down never
//! breaks a build and never loses a record. Records are delivered in the order they were
//! queued, each removed (and the file rewritten) as soon as it is delivered, so a kill
//! repeats at most the one record in flight — deliveries must therefore be idempotent.
//! The first failure stops the round (later records wait behind it, order holds); a
//! record the service refuses outright is set aside in `rejected` with the reason, so it
//! cannot block the rest forever. A lock (`<name>.lock`) keeps two processes from
//! delivering the same record at once.

use super::lock;
use super::state_file::{read_json, write_json};
use anyhow::Result;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The queue as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound(deserialize = "T: DeserializeOwned"))]
pub struct Queue<T> {
    pub pending: Vec<T>,
    /// Records the service refused, with its reason (never retried by themselves).
    #[serde(default)]
    pub rejected: Vec<(T, String)>,
    /// Why the last round stopped early (`None` after a round that delivered all).
    #[serde(default)]
    pub last_error: Option<String>,
    /// When a round last tried (RFC 3339).
    #[serde(default)]
    pub last_attempt: Option<String>,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Queue {
            pending: Vec::new(),
            rejected: Vec::new(),
            last_error: None,
            last_attempt: None,
        }
    }
}

/// What delivering one record came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    Delivered,
    /// Not now (the service is down, the credentials are refused): stop, keep it.
    Retry(String),
    /// Never (the service refused this record): set it aside, go on with the rest.
    Rejected(String),
}

/// The result of one round.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Round {
    pub delivered: usize,
    pub rejected: usize,
    pub left: usize,
    pub error: Option<String>,
}

/// One named outbox of a lake.
pub struct Outbox<'a> {
    lake: &'a Path,
    name: &'static str,
}

impl<'a> Outbox<'a> {
    pub fn new(lake: &'a Path, name: &'static str) -> Self {
        Outbox { lake, name }
    }

    fn file(&self) -> PathBuf {
        self.lake
            .join("_lakebuild")
            .join(format!("{}.json", self.name))
    }

    fn lock(&self) -> Result<lock::LakeLock> {
        lock::acquire_named(
            self.lake,
            &format!("{}.lock", self.name),
            self.name,
            Duration::from_secs(120),
        )
    }

    /// The queue as it stands (no lock: for `status`); empty when nothing was queued.
    pub fn queue<T: DeserializeOwned>(&self) -> Result<Queue<T>> {
        read_json(&self.file())
    }

    /// Whether anything waits (a file check: a no-op build pays nothing more).
    pub fn has_pending(&self) -> bool {
        std::fs::metadata(self.file()).is_ok()
            && self
                .queue::<serde_json::Value>()
                .is_ok_and(|q| !q.pending.is_empty())
    }

    /// Appends `items` that are not already pending.
    pub fn push<T: Serialize + DeserializeOwned + PartialEq>(&self, items: Vec<T>) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let _lock = self.lock()?;
        let mut q: Queue<T> = self.queue()?;
        for it in items {
            if !q.pending.contains(&it) {
                q.pending.push(it);
            }
        }
        write_json(&self.file(), &q)
    }

    /// Delivers the pending records in order until one fails (module doc); `now` stamps
    /// the attempt.
    pub fn deliver<T: Serialize + DeserializeOwned + Clone>(
        &self,
        now: &str,
        mut send: impl FnMut(&T) -> Delivery,
    ) -> Result<Round> {
        let _lock = self.lock()?;
        let mut q: Queue<T> = self.queue()?;
        let mut round = Round::default();
        if q.pending.is_empty() {
            return Ok(round);
        }
        q.last_attempt = Some(now.to_string());
        q.last_error = None;
        while let Some(first) = q.pending.first().cloned() {
            match send(&first) {
                Delivery::Delivered => {
                    q.pending.remove(0);
                    round.delivered += 1;
                }
                Delivery::Rejected(why) => {
                    q.pending.remove(0);
                    q.rejected.push((first, why));
                    round.rejected += 1;
                }
                Delivery::Retry(why) => {
                    q.last_error = Some(why.clone());
                    round.error = Some(why);
                    break;
                }
            }
            write_json(&self.file(), &q)?;
        }
        write_json(&self.file(), &q)?;
        round.left = q.pending.len();
        Ok(round)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_go_out_once_in_order_and_a_failure_keeps_the_rest() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let ob = Outbox::new(dir.path(), "test_outbox");
        assert!(!ob.has_pending());
        ob.push(vec![1u32, 2, 3])?;
        ob.push(vec![2u32, 4])?; // 2 is already pending
        assert_eq!(ob.queue::<u32>()?.pending, vec![1, 2, 3, 4]);
        // 3 fails: 1 and 2 go out, 3 and 4 wait, the reason is kept.
        let mut seen = Vec::new();
        let r = ob.deliver("t1", |x: &u32| {
            seen.push(*x);
            if *x == 3 {
                Delivery::Retry("down".into())
            } else {
                Delivery::Delivered
            }
        })?;
        assert_eq!(seen, vec![1, 2, 3]);
        assert_eq!((r.delivered, r.left), (2, 2));
        let q = ob.queue::<u32>()?;
        assert_eq!(q.pending, vec![3, 4]);
        assert_eq!(q.last_error.as_deref(), Some("down"));
        // Next round: 3 is refused for good and set aside, 4 goes out.
        let r = ob.deliver("t2", |x: &u32| {
            if *x == 3 {
                Delivery::Rejected("bad".into())
            } else {
                Delivery::Delivered
            }
        })?;
        assert_eq!((r.delivered, r.rejected, r.left), (1, 1, 0));
        let q = ob.queue::<u32>()?;
        assert!(q.pending.is_empty() && q.last_error.is_none());
        assert_eq!(q.rejected, vec![(3, "bad".to_string())]);
        assert!(!ob.has_pending());
        // Nothing pending: nothing is sent.
        let r = ob.deliver("t3", |_: &u32| panic!("nothing to send"))?;
        assert_eq!(r, Round::default());
        Ok(())
    }
}
