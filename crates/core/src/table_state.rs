//! A table's state as its Delta log records it: the current partitions (with their keys
//! and content hashes), the history of every partition, which answers "what did
//! partition p hold at version v" and "which old file has key k", the active files and
//! every lakebuild commit. Pure data and queries over it: the lake layer replays the log
//! into it (`lakebuild::lake::log::load`), and planning, restore and `why` read it.

use crate::partition::PartitionId;
use crate::record::{CommitRecord, PartitionRecord, RestatementRecord, set_digest};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// A partition's current materialization: its record inside the commit that made it
/// current (shared, not copied: a table holds thousands).
#[derive(Debug, Clone)]
pub struct Current {
    /// The table version that made it current.
    pub version: i64,
    pub commit: Arc<CommitRecord>,
    index: usize,
}

impl Current {
    pub fn record(&self) -> &PartitionRecord {
        &self.commit.partitions[self.index]
    }
}

/// One add or remove of a data file, in log order.
#[derive(Debug, Clone)]
struct FileMove {
    version: i64,
    path: String,
    size: i64,
    added: bool,
}

/// One materialization in a partition's history: `None` content when it was removed.
#[derive(Debug, Clone)]
pub struct Past {
    pub version: i64,
    pub content_hash: Option<String>,
}

/// A file that held a given key at some version.
#[derive(Debug, Clone)]
pub struct KeyedFile {
    pub version: i64,
    pub id: PartitionId,
    pub record: PartitionRecord,
    pub commit: Arc<CommitRecord>,
}

/// The state of one asset's table as recorded by its Delta log.
#[derive(Debug, Clone, Default)]
pub struct AssetState {
    pub table: PathBuf,
    /// Latest version; `None` when the table does not exist yet.
    pub version: Option<i64>,
    pub current: BTreeMap<PartitionId, Current>,
    /// Built on first use from `commits` (a no-op build never needs them).
    history: OnceLock<BTreeMap<PartitionId, Vec<Past>>>,
    by_key: OnceLock<HashMap<String, Vec<KeyedFile>>>,
    /// Active data files (Delta replay), path -> size.
    pub active_files: BTreeMap<String, i64>,
    /// Every add and remove, in order; gc's maps are built from it on first use.
    moves: Vec<FileMove>,
    gc_maps: OnceLock<(BTreeMap<String, i64>, BTreeMap<String, i64>)>,
    /// (version, lakebuild record) of each lakebuild commit.
    pub commits: BTreeMap<i64, Arc<CommitRecord>>,
    /// When each version was committed (ms since epoch), from commitInfo.
    pub timestamps: BTreeMap<i64, i64>,
}

/// One commit of a table's log as the lake layer read it.
#[derive(Debug, Clone, Default)]
pub struct LogEntry {
    /// `commitInfo.timestamp` (ms since epoch), if written.
    pub timestamp: Option<i64>,
    /// lakebuild's record, absent for commits by other writers.
    pub record: Option<CommitRecord>,
    /// Data files added and removed, in log order (the order decides a commit that
    /// removes and adds the same path).
    pub files: Vec<FileAction>,
}

/// One data-file action of a commit.
#[derive(Debug, Clone, PartialEq)]
pub enum FileAction {
    Add { path: String, size: i64 },
    Remove { path: String },
}

impl AssetState {
    /// An empty state for the table at `table` (no version yet).
    pub fn empty(table: PathBuf) -> AssetState {
        AssetState {
            table,
            ..Default::default()
        }
    }

    /// Applies the next commit of the log, in version order.
    pub fn apply(&mut self, version: i64, entry: LogEntry) {
        if let Some(ts) = entry.timestamp {
            self.timestamps.insert(version, ts);
        }
        for action in entry.files {
            match action {
                FileAction::Add { path, size } => {
                    self.active_files.insert(path.clone(), size);
                    self.moves.push(FileMove {
                        version,
                        path,
                        size,
                        added: true,
                    });
                }
                FileAction::Remove { path } => {
                    if self.active_files.remove(&path).is_some() {
                        self.moves.push(FileMove {
                            version,
                            path,
                            size: 0,
                            added: false,
                        });
                    }
                }
            }
        }
        self.version = Some(version);
        let Some(record) = entry.record else { return };
        let record = Arc::new(record);
        for (index, p) in record.partitions.iter().enumerate() {
            self.current.insert(
                p.id,
                Current {
                    version,
                    commit: record.clone(),
                    index,
                },
            );
        }
        for id in &record.removed {
            self.current.remove(id);
        }
        self.commits.insert(version, record);
    }

    /// The log in replayable form: applying these entries in order to an empty state
    /// rebuilds this one exactly (the lake layer's log snapshot stores them). One entry
    /// per version that changed anything, and always one for the latest version.
    pub fn as_log(&self) -> Vec<(i64, LogEntry)> {
        let mut log: BTreeMap<i64, LogEntry> = BTreeMap::new();
        for (v, ts) in &self.timestamps {
            log.entry(*v).or_default().timestamp = Some(*ts);
        }
        for (v, record) in &self.commits {
            log.entry(*v).or_default().record = Some(CommitRecord::clone(record));
        }
        for m in &self.moves {
            log.entry(m.version).or_default().files.push(if m.added {
                FileAction::Add {
                    path: m.path.clone(),
                    size: m.size,
                }
            } else {
                FileAction::Remove {
                    path: m.path.clone(),
                }
            });
        }
        if let Some(v) = self.version {
            log.entry(v).or_default();
        }
        log.into_iter().collect()
    }

    fn gc_maps(&self) -> &(BTreeMap<String, i64>, BTreeMap<String, i64>) {
        self.gc_maps.get_or_init(|| {
            let (mut ever, mut removed) = (BTreeMap::new(), BTreeMap::new());
            for m in &self.moves {
                if m.added {
                    removed.remove(&m.path);
                    ever.insert(m.path.clone(), m.size);
                } else {
                    removed.insert(m.path.clone(), m.version);
                }
            }
            (ever, removed)
        })
    }

    /// Every file ever added (path -> size), for gc.
    pub fn ever_added(&self) -> &BTreeMap<String, i64> {
        &self.gc_maps().0
    }

    /// When each inactive file stopped being active (version), for gc retention.
    pub fn removed_at(&self) -> &BTreeMap<String, i64> {
        &self.gc_maps().1
    }

    /// Every partition's materializations and removals, by version.
    pub fn history(&self) -> &BTreeMap<PartitionId, Vec<Past>> {
        self.history.get_or_init(|| {
            let mut h: BTreeMap<PartitionId, Vec<Past>> = BTreeMap::new();
            for (v, c) in &self.commits {
                for p in &c.partitions {
                    h.entry(p.id).or_default().push(Past {
                        version: *v,
                        content_hash: Some(p.content_hash.clone()),
                    });
                }
                for id in &c.removed {
                    h.entry(*id).or_default().push(Past {
                        version: *v,
                        content_hash: None,
                    });
                }
            }
            h
        })
    }

    /// Every file that ever held a key, oldest first.
    pub fn by_key(&self) -> &HashMap<String, Vec<KeyedFile>> {
        self.by_key.get_or_init(|| {
            let mut m: HashMap<String, Vec<KeyedFile>> = HashMap::new();
            for (v, c) in &self.commits {
                for p in &c.partitions {
                    m.entry(p.key.clone()).or_default().push(KeyedFile {
                        version: *v,
                        id: p.id,
                        record: p.clone(),
                        commit: c.clone(),
                    });
                }
            }
            m
        })
    }

    /// The content hash partition `id` held at `version`.
    pub fn content_hash_at(&self, id: PartitionId, version: i64) -> Option<&str> {
        let past = self.history().get(&id)?;
        let i = past.partition_point(|p| p.version <= version);
        past.get(i.checked_sub(1)?)?.content_hash.as_deref()
    }

    /// Partition ids that existed at `version`, ascending.
    pub fn partition_ids_at(&self, version: i64) -> Vec<PartitionId> {
        self.history()
            .iter()
            .filter(|(id, _)| self.content_hash_at(**id, version).is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    /// Every restatement ever published to the table, oldest first.
    pub fn restatements(&self) -> impl Iterator<Item = &RestatementRecord> {
        self.commits.values().flat_map(|c| c.restatements.iter())
    }

    /// The restatements that cover partition `id`, published at or before `version`
    /// (all when `None`), with the version that published each, oldest first.
    pub fn restatements_covering(
        &self,
        id: PartitionId,
        version: Option<i64>,
    ) -> Vec<(i64, &RestatementRecord)> {
        self.commits
            .range(..=version.unwrap_or(i64::MAX))
            .flat_map(|(v, c)| c.restatements.iter().map(move |r| (*v, r)))
            .filter(|(_, r)| r.covers(id))
            .collect()
    }

    /// For each of `ids`, the digest of the restatements that cover it
    /// (`restatement_digest`); partitions no restatement covers are left out.
    pub fn restated(&self, ids: &[PartitionId]) -> BTreeMap<PartitionId, String> {
        let all: Vec<&RestatementRecord> = self.restatements().collect();
        if all.is_empty() {
            return BTreeMap::new();
        }
        let hashes: Vec<[u8; 32]> = all
            .iter()
            .map(|r| *blake3::hash(r.id.as_bytes()).as_bytes())
            .collect();
        let sorted: std::collections::BTreeSet<PartitionId> = ids.iter().copied().collect();
        let mut cover: BTreeMap<PartitionId, Vec<usize>> = BTreeMap::new();
        for (i, r) in all.iter().enumerate() {
            // A reversed range (a log edited by hand) covers nothing.
            for (a, b) in r.ranges.iter().filter(|(a, b)| a <= b) {
                for id in sorted.range(*a..=*b) {
                    cover.entry(*id).or_default().push(i);
                }
            }
        }
        cover
            .into_iter()
            .map(|(id, idx)| (id, set_digest(idx.into_iter().map(|i| hashes[i]))))
            .collect()
    }

    /// The most recent commit record, if any.
    pub fn last_commit(&self) -> Option<(i64, &Arc<CommitRecord>)> {
        self.commits.iter().next_back().map(|(v, r)| (*v, r))
    }
}
