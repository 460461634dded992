//! Writing Delta tables through the `deltalake` crate: create a table from a polars
//! schema, and commit lakebuild's own Add/Remove actions with its record in commitInfo.
//! Every commit is atomic (a conditional put of the next log file): a crash before it
//! leaves the table at its previous version, with at most some unreferenced files.

use crate::core::record::CommitRecord;
use anyhow::{Context, Result, anyhow, bail};
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties, TransactionError};
use deltalake::kernel::{
    Action, Add, DataType as DeltaType, MetadataExt, Remove, StructField, StructType,
};
use deltalake::operations::create::CreateBuilder;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::{DeltaTable, DeltaTableError};
use polars::prelude::{DataType, Schema, TimeUnit};
use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

/// The tokio runtime the deltalake calls run on.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_stack_size(64 << 20)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot start the tokio runtime: {e}"))
    })
}

/// A data file to add.
#[derive(Debug, Clone)]
pub struct NewFile {
    /// Relative to the table root.
    pub path: String,
    pub size: i64,
    pub rows: u64,
    pub tags: Vec<(String, String)>,
    /// False when an existing file is re-added only to change its tags (same data).
    pub data_change: bool,
}

/// A file to remove from the current version.
#[derive(Debug, Clone)]
pub struct OldFile {
    pub path: String,
    pub size: i64,
}

/// The Delta type of a (normalised) polars dtype.
pub fn delta_type(dtype: &DataType) -> Result<DeltaType> {
    Ok(match dtype {
        DataType::Boolean => DeltaType::BOOLEAN,
        DataType::Int8 => DeltaType::BYTE,
        DataType::Int16 => DeltaType::SHORT,
        DataType::Int32 => DeltaType::INTEGER,
        DataType::Int64 => DeltaType::LONG,
        DataType::Float32 => DeltaType::FLOAT,
        DataType::Float64 => DeltaType::DOUBLE,
        DataType::String => DeltaType::STRING,
        DataType::Binary => DeltaType::BINARY,
        DataType::Date => DeltaType::DATE,
        DataType::Datetime(TimeUnit::Microseconds, Some(_)) => DeltaType::TIMESTAMP,
        other => bail!(
            "column type {other} cannot be stored in a Delta table: cast it to a supported type"
        ),
    })
}

fn delta_schema(schema: &Schema) -> Result<StructType> {
    let fields = schema
        .iter()
        .map(|(name, dt)| Ok(StructField::new(name.to_string(), delta_type(dt)?, true)))
        .collect::<Result<Vec<_>>>()?;
    StructType::try_new(fields).map_err(|e| anyhow!("invalid Delta schema: {e}"))
}

fn table_url(dir: &Path) -> Result<url::Url> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let abs =
        std::fs::canonicalize(dir).with_context(|| format!("cannot resolve {}", dir.display()))?;
    url::Url::from_directory_path(&abs)
        .map_err(|_| anyhow!("cannot make a URL of {}", abs.display()))
}

async fn open_or_create(dir: &Path, schema: &Schema) -> Result<DeltaTable> {
    let url = table_url(dir)?;
    if dir.join("_delta_log").is_dir() {
        return deltalake::open_table(url)
            .await
            .with_context(|| format!("cannot open Delta table {}", dir.display()));
    }
    let created = CreateBuilder::new()
        .with_location(url.to_string())
        .with_table_name(dir.file_name().and_then(|n| n.to_str()).unwrap_or("asset"))
        .with_columns(delta_schema(schema)?.fields().cloned())
        .with_configuration([
            // History, lineage and time travel live in the log: never expire it.
            ("delta.enableExpiredLogCleanup", Some("false")),
            ("delta.checkpointInterval", Some("50")),
        ])
        .with_save_mode(SaveMode::ErrorIfExists)
        .await;
    match created {
        Ok(t) => Ok(t),
        // Lost a race with another creator: use theirs.
        Err(_) if dir.join("_delta_log").is_dir() => deltalake::open_table(table_url(dir)?)
            .await
            .context("cannot open Delta table"),
        Err(e) => Err(e).with_context(|| format!("cannot create Delta table {}", dir.display())),
    }
}

/// Commits `adds` and `removes` with `record` in commitInfo, creating the table if needed
/// and updating its schema when `schema` differs, and its table properties (the Delta
/// `configuration`) when one of `properties` differs. Returns the new version.
pub fn commit(
    dir: &Path,
    schema: &Schema,
    adds: &[NewFile],
    removes: &[OldFile],
    record: &CommitRecord,
    properties: &[(String, String)],
) -> Result<i64> {
    let app = HashMap::from([("lakebuild".to_string(), serde_json::to_value(record)?)]);
    runtime().block_on(commit_async(dir, schema, adds, removes, app, properties))
}

/// A table property of the Delta table in `dir` (its `configuration`), if set.
pub fn property(dir: &Path, name: &str) -> Result<Option<String>> {
    runtime().block_on(async {
        let table = deltalake::open_table(table_url(dir)?)
            .await
            .with_context(|| format!("cannot open Delta table {}", dir.display()))?;
        Ok(table
            .snapshot()?
            .metadata()
            .configuration()
            .get(name)
            .cloned())
    })
}

/// Like `commit`, with arbitrary app metadata (for lakebuild's own tables).
pub fn commit_with(
    dir: &Path,
    schema: &Schema,
    adds: &[NewFile],
    removes: &[OldFile],
    app: HashMap<String, serde_json::Value>,
) -> Result<i64> {
    runtime().block_on(commit_async(dir, schema, adds, removes, app, &[]))
}

async fn commit_async(
    dir: &Path,
    schema: &Schema,
    adds: &[NewFile],
    removes: &[OldFile],
    app: HashMap<String, serde_json::Value>,
    properties: &[(String, String)],
) -> Result<i64> {
    let wanted = delta_schema(schema)?;
    let mut last_err = None;
    for _attempt in 0..10 {
        let mut table = open_or_create(dir, schema).await?;
        let snapshot = table.snapshot()?;
        let mut actions: Vec<Action> = Vec::new();
        let config = snapshot.metadata().configuration();
        let stale: Vec<&(String, String)> = properties
            .iter()
            .filter(|(k, v)| config.get(k) != Some(v))
            .collect();
        if snapshot.schema().as_ref() != &wanted || !stale.is_empty() {
            let mut md = snapshot.metadata().clone().with_schema(&wanted)?;
            for (k, v) in stale {
                md = md.add_config_key(k.clone(), v.clone())?;
            }
            actions.push(Action::Metadata(md));
        }
        let ts = crate::clock::now_ms();
        for r in removes {
            actions.push(Action::Remove(Remove {
                path: r.path.clone(),
                data_change: true,
                deletion_timestamp: Some(ts),
                extended_file_metadata: Some(true),
                size: Some(r.size),
                ..Default::default()
            }));
        }
        for a in adds {
            let tags: HashMap<String, Option<String>> = a
                .tags
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect();
            actions.push(Action::Add(Add {
                path: a.path.clone(),
                size: a.size,
                modification_time: ts,
                data_change: a.data_change,
                stats: Some(format!("{{\"numRecords\":{}}}", a.rows)),
                tags: Some(tags),
                ..Default::default()
            }));
        }
        let op = DeltaOperation::Write {
            mode: if removes.is_empty() {
                SaveMode::Append
            } else {
                SaveMode::Overwrite
            },
            partition_by: None,
            predicate: None,
        };
        let res = CommitBuilder::from(CommitProperties::default())
            .with_actions(actions)
            .with_app_metadata(app.clone())
            .build(Some(snapshot), table.log_store(), op)
            .await;
        match res {
            Ok(fin) => {
                let v = fin.version() as i64;
                table.state = Some(fin.snapshot);
                return Ok(v);
            }
            // Someone committed in between: reload and rebuild the actions (the data files
            // are already written), then try again.
            Err(DeltaTableError::Transaction {
                source: TransactionError::CommitConflict(c),
            }) => {
                last_err = Some(anyhow!("commit conflict: {c}"));
            }
            Err(DeltaTableError::VersionAlreadyExists(v)) => {
                last_err = Some(anyhow!("version {v} already exists"));
            }
            Err(e) => return Err(e).with_context(|| format!("cannot commit to {}", dir.display())),
        }
    }
    Err(last_err.unwrap_or_else(|| anyhow!("commit failed"))).context(format!(
        "gave up committing to {} after 10 conflicting attempts",
        dir.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::{Column, DataFrame, Field};

    fn frame(n: i64) -> DataFrame {
        DataFrame::new_infer_height(vec![Column::new("v".into(), (0..n).collect::<Vec<i64>>())])
            .expect("frame")
    }

    fn add(dir: &Path, name: &str, n: i64) -> NewFile {
        let mut df = frame(n);
        let size = super::super::parquet::write(&mut df, &dir.join(name)).expect("write") as i64;
        NewFile {
            path: name.into(),
            size,
            rows: n as u64,
            tags: vec![("lakebuild.partition".into(), name.into())],
            data_change: true,
        }
    }

    fn app(run: &str) -> HashMap<String, serde_json::Value> {
        HashMap::from([(
            "lakebuild_runs".to_string(),
            serde_json::json!({ "run_id": run }),
        )])
    }

    #[test]
    fn the_first_commit_creates_the_table_and_later_ones_replace_files() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let t = dir.path().join("t");
        let schema = frame(1).schema().as_ref().clone();
        let a = add(&t, "a.parquet", 3);
        assert_eq!(
            commit_with(&t, &schema, &[a], &[], app("r1"))?,
            1,
            "version 0 creates the table"
        );
        let b = add(&t, "b.parquet", 2);
        let old = OldFile {
            path: "a.parquet".into(),
            size: 0,
        };
        assert_eq!(commit_with(&t, &schema, &[b], &[old], app("r2"))?, 2);
        let s = super::super::log::load(&t)?;
        assert_eq!(s.version, Some(2));
        assert_eq!(
            s.active_files.keys().cloned().collect::<Vec<_>>(),
            ["b.parquet"]
        );
        // The log is never expired, and the table is created with that setting.
        assert_eq!(
            property(&t, "delta.enableExpiredLogCleanup")?.as_deref(),
            Some("false")
        );
        Ok(())
    }

    #[test]
    fn a_schema_or_property_change_is_committed_with_the_files() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let t = dir.path().join("t");
        let schema = frame(1).schema().as_ref().clone();
        commit_with(&t, &schema, &[add(&t, "a.parquet", 1)], &[], app("r1"))?;
        let wider = Schema::from_iter([
            Field::new("v".into(), DataType::Int64),
            Field::new("w".into(), DataType::Float64),
        ]);
        let rec = CommitRecord {
            format: 1,
            run_id: "r2".into(),
            asset: "t".into(),
            rule: crate::core::record::RuleIngredients {
                op: "sql".into(),
                code_version: "c".into(),
                params: serde_json::json!({}),
                sources: vec![],
                inputs: vec![],
                daily: false,
                key_columns: vec![],
                digest: "d".into(),
            },
            schema: vec![],
            partitions: vec![],
            removed: vec![],
            committed_at: "2024-01-01T00:00:00Z".into(),
            restatements: vec![],
        };
        commit(
            &t,
            &wider,
            &[],
            &[],
            &rec,
            &[("lakebuild.x".into(), "1".into())],
        )?;
        assert_eq!(property(&t, "lakebuild.x")?.as_deref(), Some("1"));
        let s = super::super::log::load(&t)?;
        assert_eq!(s.commits.get(&2).map(|c| c.run_id.as_str()), Some("r2"));
        Ok(())
    }

    #[test]
    fn concurrent_writers_both_commit_on_distinct_versions() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let t = dir.path().join("t");
        let schema = frame(1).schema().as_ref().clone();
        commit_with(&t, &schema, &[add(&t, "seed.parquet", 1)], &[], app("r0"))?;
        let files: Vec<NewFile> = (0..4)
            .map(|i| add(&t, &format!("f{i}.parquet"), 1))
            .collect();
        let versions: Vec<i64> = std::thread::scope(|s| {
            let handles: Vec<_> = files
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let (t, schema) = (&t, &schema);
                    s.spawn(move || {
                        commit_with(
                            t,
                            schema,
                            std::slice::from_ref(f),
                            &[],
                            app(&format!("r{}", i + 1)),
                        )
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect::<Result<Vec<_>>>()
        })?;
        let mut sorted = versions.clone();
        sorted.sort();
        assert_eq!(sorted, vec![2, 3, 4, 5], "{versions:?}");
        assert_eq!(super::super::log::load(&t)?.active_files.len(), 5);
        Ok(())
    }
}
