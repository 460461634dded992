//! A table's replayed log kept beside it, so that reading a large table does not re-parse
//! every commit's JSON: `<table>/_lakebuild_log_snapshot` holds the log's entries as
//! [`AssetState::as_log`] gives them (bincode), with the version, size and modification
//! time of every commit file it covers and a blake3 digest of the last one. A reader
//! replays the snapshot and then only the commits after it.
//!
//! It is a cache, never a source of truth: a snapshot whose covered commits are not
//! exactly the table's commit files up to its last one with the same sizes and times (a
//! commit edited by hand, a log cleaned up by another writer), whose last commit file has
//! other bytes (the table was deleted and built again), whose body digest does not match
//! (a torn or edited file) or whose format is another is ignored, and the JSON log is
//! replayed as if it did not exist. Writing one is best effort (a read-only lake is still readable). The
//! name starts with `_`, so Delta readers and `VACUUM` ignore it.

use crate::core::partition::PartitionId;
use crate::core::record::{
    CommitRecord, InputRead, PartitionOutcome, PartitionRecord, RestatementRecord, RuleIngredients,
};
use crate::core::source::SourceFile;
use crate::core::table_state::{AssetState, FileAction, LogEntry};
use anyhow::{Context, Result, bail};
use bincode::{Decode, Encode};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The snapshot's file name inside the table's folder.
pub const FILE: &str = "_lakebuild_log_snapshot";

/// Bumped whenever what a snapshot stores changes (a record field, the encoding).
const FORMAT: u32 = 1;

const MAGIC: &[u8; 8] = b"LBLOGSNP";

/// JSON a reader had to replay beyond the snapshot before it writes a new one.
const REWRITE_AFTER_BYTES: u64 = 256 * 1024;
const REWRITE_AFTER_COMMITS: usize = 64;

pub fn path(table: &Path) -> PathBuf {
    table.join(FILE)
}

/// Whether `name` (relative to the table) is a snapshot's temporary file: a reader killed
/// while writing one leaves it (`gc` removes it).
pub fn is_leftover(name: &str) -> bool {
    name.strip_prefix('.')
        .and_then(|n| n.strip_prefix(FILE))
        .is_some_and(|rest| rest.starts_with('.') && rest.ends_with(".tmp"))
}

/// What a snapshot covers, read before its body.
#[derive(Encode, Decode)]
struct Header {
    format: u32,
    /// Every commit it covers, ascending: (version, file size, modification time in ns).
    commits: Vec<(i64, u64, i64)>,
    /// blake3 of the last covered commit file's bytes.
    last_commit: [u8; 32],
    /// JSON bytes of the covered commit files.
    json_bytes: u64,
    /// blake3 of the encoded body that follows.
    body: [u8; 32],
}

/// What a load found: the snapshot's covered versions and JSON bytes.
pub struct Covered {
    pub last: i64,
    pub json_bytes: u64,
}

/// Applies the table's snapshot to the empty `state` when it is valid for `commits`
/// (version -> commit file); `None` (and `state` untouched) when there is none or it does
/// not hold.
pub fn restore(
    table: &Path,
    commits: &BTreeMap<i64, PathBuf>,
    state: &mut AssetState,
) -> Option<Covered> {
    let file = std::fs::File::open(path(table)).ok()?;
    // Mapped, not read: a large table's snapshot is tens of MB, read once.
    // SAFETY: the snapshot is only ever replaced by a rename, never written in place, so
    // the mapped file does not change under us.
    let bytes = unsafe { memmap2::Mmap::map(&file) }.ok()?;
    let (covered, entries) = decode(&bytes, commits).ok()?;
    for (version, entry) in entries {
        state.apply(version, entry);
    }
    Some(covered)
}

/// Whether a reader that replayed `bytes` of JSON in `commits` commit files beyond the
/// snapshot should write a new one.
pub fn worth_writing(bytes: u64, commits: usize) -> bool {
    bytes >= REWRITE_AFTER_BYTES || commits >= REWRITE_AFTER_COMMITS
}

/// Writes the snapshot of `state`, which replayed exactly `commits`, atomically.
pub fn write(
    table: &Path,
    commits: &BTreeMap<i64, PathBuf>,
    state: &AssetState,
    json_bytes: u64,
) -> Result<()> {
    let Some((&last, last_path)) = commits.iter().next_back() else {
        return Ok(());
    };
    let last_commit = digest_of(last_path)?;
    let entries: Vec<Entry> = state.as_log().into_iter().map(Entry::from).collect();
    let config = bincode::config::standard();
    let body = bincode::encode_to_vec(&entries, config)?;
    let header = Header {
        format: FORMAT,
        commits: commits
            .iter()
            .map(|(v, p)| stamp(p).map(|(size, time)| (*v, size, time)))
            .collect::<Result<_>>()?,
        last_commit,
        json_bytes,
        body: *blake3::hash(&body).as_bytes(),
    };
    let mut out = MAGIC.to_vec();
    out.extend(bincode::encode_to_vec(&header, config)?);
    out.extend(body);
    debug_assert_eq!(state.version, Some(last));
    super::state_file::write_atomically(&path(table), &out)
}

/// A commit file's size and modification time (ns since the epoch).
fn stamp(commit: &Path) -> Result<(u64, i64)> {
    let m =
        std::fs::metadata(commit).with_context(|| format!("cannot read {}", commit.display()))?;
    let time = m
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    Ok((m.len(), time))
}

fn digest_of(commit: &Path) -> Result<[u8; 32]> {
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_mmap(commit)
        .with_context(|| format!("cannot read {}", commit.display()))?;
    Ok(*hasher.finalize().as_bytes())
}

fn decode(
    bytes: &[u8],
    commits: &BTreeMap<i64, PathBuf>,
) -> Result<(Covered, Vec<(i64, LogEntry)>)> {
    let config = bincode::config::standard();
    let Some(rest) = bytes.strip_prefix(MAGIC.as_slice()) else {
        bail!("not a log snapshot");
    };
    let (header, used): (Header, usize) = bincode::decode_from_slice(rest, config)?;
    if header.format != FORMAT {
        bail!(
            "snapshot format {} (this build reads {FORMAT})",
            header.format
        );
    }
    let Some(&(last, _, _)) = header.commits.last() else {
        bail!("empty snapshot");
    };
    let covered = commits.range(..=last);
    if covered.clone().count() != header.commits.len() {
        bail!("the snapshot covers other commits than the log's");
    }
    for ((v, path), (version, size, time)) in covered.zip(&header.commits) {
        if v != version || stamp(path)? != (*size, *time) {
            bail!("commit {v} is not the one the snapshot covers");
        }
    }
    let last_path = commits.get(&last).context("last covered commit missing")?;
    if digest_of(last_path)? != header.last_commit {
        bail!("the last covered commit has other bytes (the table was rebuilt)");
    }
    let body = &rest[used..];
    if *blake3::hash(body).as_bytes() != header.body {
        bail!("torn or edited snapshot");
    }
    let (entries, _): (Vec<Entry>, usize) = bincode::decode_from_slice(body, config)?;
    let entries = entries
        .into_iter()
        .map(Entry::into_log)
        .collect::<Result<Vec<_>>>()?;
    let covered = Covered {
        last,
        json_bytes: header.json_bytes,
    };
    Ok((covered, entries))
}

// The encoded forms. Each conversion names every field of the record it mirrors, so a
// field added to a record does not compile until the snapshot stores it (and FORMAT is
// bumped).

#[derive(Encode, Decode)]
struct Entry {
    version: i64,
    timestamp: Option<i64>,
    record: Option<Commit>,
    files: Vec<File>,
}

#[derive(Encode, Decode)]
enum File {
    Add(String, i64),
    Remove(String),
}

#[derive(Encode, Decode)]
struct Commit {
    format: u32,
    run_id: String,
    asset: String,
    rule: Rule,
    schema: Vec<(String, String)>,
    partitions: Vec<Partition>,
    removed: Vec<i32>,
    committed_at: String,
    restatements: Vec<Restatement>,
}

/// A restatement: (id, reason, inclusive ranges of partitions).
type Restatement = (String, String, Vec<(i32, i32)>);

#[derive(Encode, Decode)]
struct Rule {
    op: String,
    code_version: String,
    /// Canonical JSON text.
    params: String,
    sources: Vec<(String, String)>,
    inputs: Vec<(String, String)>,
    daily: bool,
    key_columns: Vec<String>,
    digest: String,
}

#[derive(Encode, Decode)]
struct Partition {
    id: i32,
    key: String,
    content_hash: String,
    file: String,
    rows: u64,
    bytes: u64,
    outcome: u8,
    inputs: Vec<Input>,
    restated: Option<String>,
}

#[derive(Encode, Decode)]
struct Input {
    asset: String,
    version: i64,
    first: Option<i32>,
    last: Option<i32>,
    count: u64,
    digest: String,
}

/// `Whole` as a number no day takes.
const WHOLE: i32 = i32::MIN;

fn id_code(id: PartitionId) -> i32 {
    use chrono::Datelike;
    match id {
        PartitionId::Whole => WHOLE,
        PartitionId::Day(d) => d.num_days_from_ce(),
    }
}

fn id_of(code: i32) -> Result<PartitionId> {
    if code == WHOLE {
        return Ok(PartitionId::Whole);
    }
    chrono::NaiveDate::from_num_days_from_ce_opt(code)
        .map(PartitionId::Day)
        .context("a partition day out of range")
}

impl From<(i64, LogEntry)> for Entry {
    fn from((version, entry): (i64, LogEntry)) -> Entry {
        let LogEntry {
            timestamp,
            record,
            files,
        } = entry;
        Entry {
            version,
            timestamp,
            record: record.map(Commit::from),
            files: files
                .into_iter()
                .map(|f| match f {
                    FileAction::Add { path, size } => File::Add(path, size),
                    FileAction::Remove { path } => File::Remove(path),
                })
                .collect(),
        }
    }
}

impl Entry {
    fn into_log(self) -> Result<(i64, LogEntry)> {
        let entry = LogEntry {
            timestamp: self.timestamp,
            record: self.record.map(Commit::into_record).transpose()?,
            files: self
                .files
                .into_iter()
                .map(|f| match f {
                    File::Add(path, size) => FileAction::Add { path, size },
                    File::Remove(path) => FileAction::Remove { path },
                })
                .collect(),
        };
        Ok((self.version, entry))
    }
}

impl From<CommitRecord> for Commit {
    fn from(r: CommitRecord) -> Commit {
        let CommitRecord {
            format,
            run_id,
            asset,
            rule,
            schema,
            partitions,
            removed,
            committed_at,
            restatements,
        } = r;
        let RuleIngredients {
            op,
            code_version,
            params,
            sources,
            inputs,
            daily,
            key_columns,
            digest,
        } = rule;
        Commit {
            format,
            run_id,
            asset,
            rule: Rule {
                op,
                code_version,
                params: params.to_string(),
                sources: sources.into_iter().map(|s| (s.path, s.hash)).collect(),
                inputs,
                daily,
                key_columns,
                digest,
            },
            schema,
            partitions: partitions.into_iter().map(Partition::from).collect(),
            removed: removed.into_iter().map(id_code).collect(),
            committed_at,
            restatements: restatements
                .into_iter()
                .map(|r| {
                    let RestatementRecord { id, reason, ranges } = r;
                    let ranges = ranges
                        .into_iter()
                        .map(|(a, b)| (id_code(a), id_code(b)))
                        .collect();
                    (id, reason, ranges)
                })
                .collect(),
        }
    }
}

impl Commit {
    fn into_record(self) -> Result<CommitRecord> {
        let r = self.rule;
        Ok(CommitRecord {
            format: self.format,
            run_id: self.run_id,
            asset: self.asset,
            rule: RuleIngredients {
                op: r.op,
                code_version: r.code_version,
                params: serde_json::from_str(&r.params)?,
                sources: r
                    .sources
                    .into_iter()
                    .map(|(path, hash)| SourceFile { path, hash })
                    .collect(),
                inputs: r.inputs,
                daily: r.daily,
                key_columns: r.key_columns,
                digest: r.digest,
            },
            schema: self.schema,
            partitions: self
                .partitions
                .into_iter()
                .map(Partition::into_record)
                .collect::<Result<_>>()?,
            removed: self.removed.into_iter().map(id_of).collect::<Result<_>>()?,
            committed_at: self.committed_at,
            restatements: self
                .restatements
                .into_iter()
                .map(|(id, reason, ranges)| {
                    let ranges = ranges
                        .into_iter()
                        .map(|(a, b)| Ok((id_of(a)?, id_of(b)?)))
                        .collect::<Result<_>>()?;
                    Ok(RestatementRecord { id, reason, ranges })
                })
                .collect::<Result<_>>()?,
        })
    }
}

impl From<PartitionRecord> for Partition {
    fn from(p: PartitionRecord) -> Partition {
        let PartitionRecord {
            id,
            key,
            content_hash,
            file,
            rows,
            bytes,
            outcome,
            inputs,
            restated,
        } = p;
        Partition {
            id: id_code(id),
            key,
            content_hash,
            file,
            rows,
            bytes,
            outcome: match outcome {
                PartitionOutcome::Built => 0,
                PartitionOutcome::CutOff => 1,
                PartitionOutcome::Restored => 2,
            },
            inputs: inputs
                .into_iter()
                .map(|i| {
                    let InputRead {
                        asset,
                        version,
                        first,
                        last,
                        count,
                        digest,
                    } = i;
                    Input {
                        asset,
                        version,
                        first: first.map(id_code),
                        last: last.map(id_code),
                        count: count as u64,
                        digest,
                    }
                })
                .collect(),
            restated,
        }
    }
}

impl Partition {
    fn into_record(self) -> Result<PartitionRecord> {
        Ok(PartitionRecord {
            id: id_of(self.id)?,
            key: self.key,
            content_hash: self.content_hash,
            file: self.file,
            rows: self.rows,
            bytes: self.bytes,
            outcome: match self.outcome {
                0 => PartitionOutcome::Built,
                1 => PartitionOutcome::CutOff,
                2 => PartitionOutcome::Restored,
                _ => bail!("an unknown partition outcome"),
            },
            inputs: self
                .inputs
                .into_iter()
                .map(|i| {
                    Ok(InputRead {
                        asset: i.asset,
                        version: i.version,
                        first: i.first.map(id_of).transpose()?,
                        last: i.last.map(id_of).transpose()?,
                        count: usize::try_from(i.count)?,
                        digest: i.digest,
                    })
                })
                .collect::<Result<_>>()?,
            restated: self.restated,
        })
    }
}
