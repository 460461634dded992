//! The command line as users see it: why, status, dry runs, graph, history, stats, gc,
//! checks, bad input, and the lake read by other Delta readers.

mod common;
use common::*;
use polars::prelude::*;

#[test]
fn why_names_each_kind_of_reason() -> R {
    let p = pipeline(8)?;
    p.ok(&["build"])?;
    let out = p.ok(&["why", "ma"])?;
    assert!(out.contains("status: fresh"), "{out}");
    assert!(out.contains("<- prices @ version"), "{out}");
    assert!(
        out.contains("source data/prices.csv"),
        "provenance reaches the sources: {out}"
    );

    // A param.
    p.rule("summary", &SUMMARY_RULE.replace("AVG(ma3)", "MIN(ma3)"))?;
    let out = p.ok(&["why", "summary"])?;
    assert!(
        out.contains("status: stale")
            && out.contains("param query changed")
            && out.contains("MIN(ma3)"),
        "{out}"
    );
    p.rule("summary", SUMMARY_RULE)?;

    // A source file, seen from the import; and the input partitions, seen downstream.
    p.write(
        "data/prices.csv",
        &prices_csv(8, &|d, _, x| if d == 4 { x + 3.0 } else { x }),
    )?;
    let out = p.ok(&["why", "prices"])?;
    assert!(
        out.contains("source file changed: data/prices.csv"),
        "{out}"
    );
    p.ok(&["prices"])?;
    let out = p.ok(&["why", "ma", "--partition", &day(5).to_string()])?;
    assert!(
        out.contains(&format!(
            "input prices (read at version 1): changed partitions {}",
            day(4)
        )),
        "{out}"
    );
    let json: serde_json::Value = serde_json::from_str(&p.ok(&[
        "why",
        "ma",
        "--partition",
        &day(5).to_string(),
        "--json",
    ])?)?;
    assert_eq!(json["status"], "stale");
    assert_eq!(json["reasons"][0]["changed"][0], day(4).to_string());
    // A partition whose window does not cover the change is fresh.
    let out = p.ok(&["why", "ma", "--partition", &day(2).to_string()])?;
    assert!(out.contains("status: fresh"), "{out}");
    // An older version.
    let out = p.ok(&["why", "prices@1"])?;
    assert!(out.contains("prices @ version 1"), "{out}");
    Ok(())
}

#[test]
fn dry_run_says_what_would_run_and_why_and_runs_nothing() -> R {
    let p = pipeline(6)?;
    let out = p.ok(&["build", "--dry-run"])?;
    assert!(
        out.contains("prices:") && out.contains("import runs again: never built"),
        "{out}"
    );
    assert!(p.version("prices")?.is_none());
    p.ok(&["build"])?;
    p.write(
        "data/prices.csv",
        &prices_csv(6, &|d, _, x| if d == 2 { x + 1.0 } else { x }),
    )?;
    let out = p.ok(&["build", "--dry-run"])?;
    assert!(
        out.contains("source file changed: data/prices.csv"),
        "{out}"
    );
    assert!(out.contains("waits on prices"), "{out}");
    let out = p.ok(&["status"])?;
    assert!(out.contains("prices") && out.contains("stale"), "{out}");
    let json: serde_json::Value = serde_json::from_str(&p.ok(&["status", "--json"])?)?;
    assert_eq!(json[0]["asset"], "prices");
    Ok(())
}

#[test]
fn graph_history_and_stats() -> R {
    let p = pipeline(4)?;
    p.ok(&["build"])?;
    let dot = p.ok(&["graph"])?;
    assert!(
        dot.contains("\"prices\" -> \"ma\" [label=\"[-2, 0]\"]"),
        "{dot}"
    );
    let mermaid = p.ok(&["graph", "--format", "mermaid"])?;
    assert!(mermaid.contains("ma -->|whole| summary"), "{mermaid}");
    let json: serde_json::Value = serde_json::from_str(&p.ok(&["graph", "--format", "json"])?)?;
    assert_eq!(json["nodes"].as_array().map(|a| a.len()), Some(3));
    let hist = p.ok(&["history", "--asset", "ma"])?;
    assert!(hist.contains("built"), "{hist}");
    let rows = p.history()?;
    let ma = rows.iter().find(|r| r.asset == "ma").ok_or("no ma row")?;
    assert_eq!(
        (ma.partitions, ma.outcome.as_str(), ma.attempt),
        (4, "built", 1)
    );
    assert!(ma.peak_memory_bytes > 0 && ma.rows == 12);
    let stats: serde_json::Value = serde_json::from_str(&p.ok(&["stats", "--json"])?)?;
    assert_eq!(stats[0]["success_rate"], 1.0);
    Ok(())
}

#[test]
fn rule_errors_exit_2_and_build_nothing() -> R {
    let p = pipeline(3)?;
    p.rule(
        "broken",
        "op = \"sql\"\ninputs = [{ asset = \"nothere\" }]\n[params]\nquery = \"SELECT 1\"\n",
    )?;
    let out = p.fails(&["build"], 2)?;
    assert!(
        out.contains("rules/broken.toml:2: unknown input asset 'nothere'"),
        "{out}"
    );
    assert!(!p.path("lake/prices").exists());
    let out = p.fails(&["build", "nosuch"], 2)?;
    let _ = out;
    std::fs::remove_file(p.path("rules/broken.toml"))?;
    let out = p.fails(&["build", "nosuch"], 2)?;
    assert!(out.contains("unknown asset 'nosuch'"), "{out}");
    Ok(())
}

#[test]
fn malformed_parquet_input_fails_clearly_and_loses_nothing() -> R {
    let p = Proj::new()?;
    p.write("data/a.parquet", "this is not parquet")?;
    p.rule(
        "raw",
        "op = \"files\"\n[params]\npath = \"data/*.parquet\"\n",
    )?;
    let out = p.fails(&["build"], 1)?;
    assert!(
        out.contains("data/a.parquet is not a readable parquet file"),
        "{out}"
    );
    assert!(p.version("raw")?.is_none());
    let rows = p.history()?;
    assert_eq!(rows.last().map(|r| r.outcome.as_str()), Some("failed"));
    Ok(())
}

#[test]
fn blocking_check_fails_the_step_and_skips_dependents_warn_is_recorded() -> R {
    let p = pipeline(5)?;
    p.ok(&["build"])?;
    let ma_v = p.version("ma")?;
    // A blocking check that fails on new data.
    // (Checks are not part of the key: new data is what they audit.)
    p.rule(
        "ma",
        &format!("{MA_RULE}\n[[checks]]\nkind = \"range\"\ncolumn = \"ma3\"\nmax = 100.5\n"),
    )?;
    p.write(
        "data/prices.csv",
        &prices_csv(5, &|d, _, x| if d == 4 { x + 1.0 } else { x }),
    )?;
    let out = p.fails(&["build"], 1)?;
    assert!(
        out.contains("check 'range#1' failed")
            && out.contains("outside [None, Some(100.5)] in ma3"),
        "{out}"
    );
    assert!(out.contains("summary") && out.contains("skipped"), "{out}");
    assert_eq!(p.version("ma")?, ma_v, "nothing published");
    let st = p.ok(&["status"])?;
    assert!(
        st.lines()
            .any(|l| l.starts_with("ma ") && l.contains("failed")),
        "{st}"
    );
    // As a warning it is recorded and the build goes on.
    p.rule("ma", &format!("{MA_RULE}\n[[checks]]\nkind = \"range\"\ncolumn = \"ma3\"\nmax = 100.5\nseverity = \"warn\"\n"))?;
    p.ok(&["build"])?;
    let rows = p.history()?;
    let last = rows
        .iter()
        .rev()
        .find(|r| r.asset == "ma" && r.checks.is_some())
        .ok_or("no check row")?;
    let checks: serde_json::Value = serde_json::from_str(last.checks.as_deref().unwrap_or("[]"))?;
    assert_eq!(checks[0]["passed"], false);
    assert_eq!(checks[0]["severity"], "warn");
    Ok(())
}

#[test]
fn keep_going_builds_independent_assets() -> R {
    let p = pipeline(3)?;
    p.rule(
        "bad",
        "op = \"command\"\n[params]\nrun = \"echo boom >&2; exit 3\"\n",
    )?;
    let out = p.fails(&["build", "--keep-going"], 1)?;
    assert!(out.contains("boom") && out.contains("status 3"), "{out}");
    assert!(p.version("summary")?.is_some());
    Ok(())
}

#[test]
fn only_and_date_range_limit_the_build() -> R {
    let p = pipeline(8)?;
    p.ok(&["prices"])?;
    p.ok(&[
        "build",
        "ma",
        "--only",
        "--from",
        &day(2).to_string(),
        "--to",
        &day(4).to_string(),
    ])?;
    assert_eq!(
        p.hashes("ma")?.keys().copied().collect::<Vec<_>>(),
        vec![pid(2), pid(3), pid(4)]
    );
    assert!(p.version("summary")?.is_none());
    Ok(())
}

#[test]
fn gc_removes_unreferenced_files_only() -> R {
    let p = pipeline(3)?;
    p.ok(&["build"])?;
    p.write("lake/ma/part-orphan.parquet", "junk")?;
    p.ok(&["gc"])?;
    assert!(!p.path("lake/ma/part-orphan.parquet").exists());
    let out = p.ok(&["build"])?;
    assert!(out.contains("nothing to do"), "{out}");
    // A file replaced by a rebuild is kept for the retention period, then removed.
    let old_file = p
        .state("summary")?
        .active_files
        .keys()
        .next()
        .cloned()
        .ok_or("no file")?;
    p.rule("summary", &SUMMARY_RULE.replace("AVG(ma3)", "MAX(ma3)"))?;
    p.ok(&["build"])?;
    p.ok(&["gc"])?;
    assert!(
        p.path("lake/summary").join(&old_file).exists(),
        "kept for 7 days"
    );
    let report: serde_json::Value =
        serde_json::from_str(&p.ok(&["gc", "--retention", "0s", "--json"])?)?;
    let summary = report
        .as_array()
        .ok_or("report")?
        .iter()
        .find(|r| r["table"].as_str().is_some_and(|t| t.ends_with("summary")))
        .ok_or("summary")?;
    assert_eq!(summary["expired_removed"], 1);
    assert!(!p.path("lake/summary").join(&old_file).exists());
    let out = p.ok(&["build"])?;
    assert!(out.contains("nothing to do"), "{out}");
    Ok(())
}

#[test]
fn tables_are_readable_by_python_deltalake() -> R {
    if !python_has("deltalake") {
        return Ok(());
    }
    let p = pipeline(4)?;
    p.ok(&["build"])?;
    let script = r#"
import sys, deltalake
for name in ["prices", "ma", "summary", "_lakebuild/runs"]:
    t = deltalake.DeltaTable("lake/" + name)
    n = t.to_pyarrow_table().num_rows
    print(name, t.version(), n)
    uris = t.file_uris() if hasattr(t, "file_uris") else t.files()
    print("files", name, ",".join(sorted(u.rsplit("/", 1)[-1] for u in uris)))
# deltalake's runtime threads can abort the interpreter at exit ("terminate called
# without an active exception"): leave without running teardown.
sys.stdout.flush()
import os
os._exit(0)
"#;
    let out = std::process::Command::new("python3")
        .current_dir(p.root())
        .args(["-c", script])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("prices 1 12") && text.contains("summary 1 3"),
        "{text}"
    );
    Ok(())
}

#[test]
fn global_options_before_subcommands_and_bare_targets() -> R {
    let p = pipeline(3)?;
    let dir = p.root().display().to_string();
    let out = std::process::Command::new(bin())
        .args(["-C", &dir, "build", "-q", "ma"])
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(p.version("ma")?.is_some() && p.version("summary")?.is_none());
    p.ok(&["summary"])?;
    assert!(p.version("summary")?.is_some());
    let out = std::process::Command::new(bin())
        .args(["-C", &dir, "status", "--json"])
        .output()?;
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"state\": \"fresh\""));
    Ok(())
}

#[test]
fn row_count_change_compares_with_the_previous_day() -> R {
    let p = pipeline(5)?;
    p.rule(
        "prices",
        &format!("{PRICES_RULE}\n[[checks]]\nkind = \"row_count_change\"\nmax = 0.2\n"),
    )?;
    p.ok(&["prices"])?;
    // Day 5 loses two of its three stocks.
    let mut csv = prices_csv(6, &|_, _, x| x);
    let day5 = day(5).to_string();
    csv = csv
        .lines()
        .filter(|l| !l.starts_with(&day5) || l.contains(",1301,"))
        .map(|l| format!("{l}\n"))
        .collect();
    p.write("data/prices.csv", &csv)?;
    let out = p.fails(&["prices"], 1)?;
    assert!(
        out.contains(&format!("{day5} has 1 rows, {} had 3", day(4))),
        "{out}"
    );
    assert_eq!(p.hashes("prices")?.len(), 5, "nothing published");
    Ok(())
}

#[test]
fn delta_file_tags_carry_run_partition_key_and_content_hash() -> R {
    let p = pipeline(3)?;
    p.ok(&["build"])?;
    let state = p.state("ma")?;
    let url = url::Url::from_directory_path(std::fs::canonicalize(p.path("lake/ma"))?)
        .map_err(|_| "url")?;
    let table = lakebuild::lake::table::runtime().block_on(deltalake::open_table(url))?;
    let mut seen = 0;
    for f in table.snapshot()?.log_data().iter() {
        #[allow(deprecated)]
        let tags = f.add_action().tags.unwrap_or_default();
        let get = |k: &str| tags.get(k).cloned().flatten().unwrap_or_default();
        let id = lakebuild::core::partition::PartitionId::parse(&get("lakebuild.partition"))?;
        let cur = state
            .current
            .get(&id)
            .ok_or("a tagged partition lakebuild does not know")?;
        assert_eq!(get("lakebuild.key"), cur.record().key);
        assert_eq!(get("lakebuild.content_hash"), cur.record().content_hash);
        assert_eq!(get("lakebuild.run_id"), cur.commit.run_id);
        seen += 1;
    }
    assert_eq!(seen, 3);
    Ok(())
}

/// A `command` op's tracking file and artifacts are kept in the lake with the output they
/// belong to and collected with it; a bad tracking file fails the step, naming the file
/// and what is wrong, and loses nothing committed.
#[test]
fn a_command_ops_tracking_file_is_kept_with_its_output_and_collected_with_it() -> R {
    let p = Proj::new()?;
    p.write(
        "train.sh",
        r#"set -e
NAME=n
mkdir -p "$LAKEBUILD_OUTPUT_DIR/model"
printf "w$1" > "$LAKEBUILD_OUTPUT_DIR/model/w.bin"
printf "x\n$1\n" > "$LAKEBUILD_OUTPUT_DIR/out.csv"
if [ "$1" = 9 ]; then
  echo '{"artifacts": ["../x"]}' > "$LAKEBUILD_OUTPUT_DIR/tracking.json"
else
  echo "{\"params\": {\"$NAME\": \"$1\"}, \"artifacts\": [\"model/w.bin\"]}" > "$LAKEBUILD_OUTPUT_DIR/tracking.json"
fi
"#,
    )?;
    let rule = |arg: &str| {
        format!(
            "op = \"command\"\nsources = [\"train.sh\"]\n\n[params]\nrun = [\"sh\", \"train.sh\", \"{arg}\"]\n"
        )
    };
    let kept = |hash: &str| p.path(&format!("lake/_lakebuild/attachments/team_model/{hash}"));
    p.rule("team_model", &rule("1"))?;
    p.ok(&["build"])?;
    let first = p.last_commit("team_model")?.partitions[0]
        .content_hash
        .clone();
    assert_eq!(
        std::fs::read(kept(&first).join("artifacts/model/w.bin"))?,
        b"w1"
    );
    let tracking = std::fs::read_to_string(kept(&first).join("tracking.json"))?;
    assert!(tracking.contains(r#""n": "1""#), "{tracking}");
    // The script changes (a new key) but not its output: a cut-off, which keeps the
    // first run's attachments, as its MLflow run was made from them.
    let script = std::fs::read_to_string(p.path("train.sh"))?;
    p.write("train.sh", &script.replace("NAME=n", "NAME=m"))?;
    let out = p.ok(&["build"])?;
    assert!(out.contains("cut off 1"), "{out}");
    assert_eq!(
        std::fs::read_to_string(kept(&first).join("tracking.json"))?,
        tracking
    );
    p.rule("team_model", &rule("2"))?;
    p.ok(&["build"])?;
    let second = p.last_commit("team_model")?.partitions[0]
        .content_hash
        .clone();
    assert_ne!(first, second);
    assert!(kept(&first).exists(), "kept while its output is");
    let report: serde_json::Value =
        serde_json::from_str(&p.ok(&["gc", "--retention", "0s", "--json"])?)?;
    let team = report
        .as_array()
        .and_then(|a| {
            a.iter().find(|r| {
                r["table"]
                    .as_str()
                    .is_some_and(|t| t.ends_with("team_model"))
            })
        })
        .ok_or("team_model's report")?;
    assert_eq!(team["attachments_removed"], 1, "{report}");
    assert!(!kept(&first).exists(), "collected with its output");
    assert_eq!(
        std::fs::read(kept(&second).join("artifacts/model/w.bin"))?,
        b"w2"
    );

    p.rule("team_model", &rule("9"))?;
    let out = p.fails(&["build"], 1)?;
    assert!(
        out.contains("tracking.json: artifact '../x'") && out.contains("without .."),
        "{out}"
    );
    assert_eq!(
        p.last_commit("team_model")?.partitions[0].content_hash,
        second,
        "nothing committed is lost"
    );
    Ok(())
}

#[test]
fn a_lake_url_is_refused_not_taken_for_a_folder_name() -> R {
    let p = pipeline(5)?;
    let out = p.fails(&["--lake", "s3://bucket/demo", "build"], 2)?;
    assert!(
        out.contains("--lake / LAKEBUILD_LAKE is 's3://bucket/demo'")
            && out.contains("'s3://' URLs are not supported"),
        "{out}"
    );
    let out = p
        .cmd(&["build"])
        .env("LAKEBUILD_LAKE", "gs://bucket/demo")
        .output()?;
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(
        !p.path("s3:").exists() && !p.path("gs:").exists(),
        "no folder named after a URL"
    );
    assert!(!p.path("lake").exists(), "nothing was built anywhere");
    Ok(())
}

/// Each date of `ma` and how many days of prices its window read (the same for every code).
fn days_read(p: &Proj) -> R<Vec<(String, i64)>> {
    let f = p
        .frame("ma")?
        .lazy()
        .group_by([col("Date")])
        .agg([col("n").cast(DataType::Int64).max()])
        .sort(["Date"], Default::default())
        .collect()?;
    let dates = f.column("Date")?.cast(&DataType::String)?;
    let n = f.column("n")?.i64()?.clone();
    Ok(dates
        .str()?
        .iter()
        .zip(n.iter())
        .map(|(d, n)| (d.unwrap_or("").to_string(), n.unwrap_or(-1)))
        .collect())
}

#[test]
fn full_requires_the_whole_window_or_a_part_of_it_and_the_rest_is_read_where_it_exists() -> R {
    let p = pipeline(6)?;
    let rule = |full: &str| {
        MA_RULE.replace(
            "window = [-2, 0] }",
            &format!("window = [-3, 0], full = {full} }}"),
        )
    };
    p.rule("ma", &rule("true"))?;
    p.ok(&["build", "ma"])?;
    let whole = days_read(&p)?;
    assert_eq!(
        whole.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
        [4, 4, 4],
        "dates only where all 4 days exist: {whole:?}"
    );
    p.rule("ma", &rule("[-1, 0]"))?;
    p.ok(&["build", "ma"])?;
    let part = days_read(&p)?;
    assert_eq!(
        part.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
        [2, 3, 4, 4, 4],
        "dates where the last 2 days exist, each reading what there is of 4: {part:?}"
    );
    assert_eq!(
        part[2..],
        whole[..],
        "the dates with a whole window are unchanged"
    );
    // Asked for more than the window: refused, naming the file, the input and the window.
    p.rule("ma", &rule("[-5, 0]"))?;
    let err = p.fails(&["build", "ma"], 2)?;
    assert!(
        err.contains("ma.toml")
            && err.contains("full = [-5, 0] must be [start, end] within its window [-3, 0]"),
        "{err}"
    );
    Ok(())
}
