//! The `jquants` source against a J-Quants-compatible test server on 127.0.0.1 with fault
//! injection: every fault either recovers (retries) or fails with a clear error, never
//! publishes a partial day, never loses a committed day, and never leaks the API key.

mod common;
use common::jquants_server::{CODES, Fault, Server};
use common::*;
use lakebuild::core::partition::PartitionId;
use std::time::Duration;

const KEY: &str = "test-key-SECRET-9f8e7d";

fn project(server: &Server, extra: &str) -> R<Proj> {
    let p = Proj::new()?;
    p.rule(
        "trading_calendar",
        "op = \"synthetic_market\"\npartitioned = \"daily\"\ndates = { from = \"2026-09-01\", to = \"today\", calendar = \"jpx\" }\n[params]\ntable = \"trading_calendar\"\nstart = \"2026-09-01\"\n",
    )?;
    p.rule("raw_stock_data", &raw_rule(server, extra))?;
    Ok(p)
}

/// The `raw_stock_data` rule against `server`, with `extra` params.
fn raw_rule(server: &Server, extra: &str) -> String {
    format!(
        "op = \"jquants\"\npartitioned = \"daily\"\nkey_columns = [\"Code\", \"Date\"]\ninputs = [{{ asset = \"trading_calendar\", window = [0, 0] }}]\n[params]\ntable = \"raw_stock_data\"\nbase_url = \"{}\"\nplan = \"premium\"\ntimeout = \"1s\"\nbackoff = \"20ms\"\nattempts = 4\n{extra}\n[[checks]]\nkind = \"unique\"\ncolumns = [\"Code\", \"Date\"]\n",
        server.url
    )
}

fn build(p: &Proj, now: &str) -> R<std::process::Output> {
    Ok(p.cmd(&["build", "-v"])
        .env("LAKEBUILD_NOW", now)
        .env("JQUANTS_API_KEY", KEY)
        .output()?)
}

/// `build`, which must succeed; its output.
fn build_ok(p: &Proj, now: &str) -> R<String> {
    let out = build(p, now)?;
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    Ok(t)
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The key appears nowhere in the output or in any file of the lake.
fn assert_no_secret(p: &Proj, out: &str) -> R {
    assert!(
        !out.contains(KEY),
        "the API key leaked into the output:\n{out}"
    );
    for entry in walkdir::WalkDir::new(p.path("lake")) {
        let entry = entry?;
        if entry.file_type().is_file() {
            let bytes = std::fs::read(entry.path())?;
            assert!(
                !bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()),
                "key in {}",
                entry.path().display()
            );
        }
    }
    Ok(())
}

fn bar_dates(server: &Server) -> Vec<String> {
    server
        .log()
        .iter()
        .filter(|l| l.starts_with("/equities/bars/daily"))
        .filter_map(|l| l.split("date=").nth(1).map(|d| d[..10].to_string()))
        .collect()
}

#[test]
fn pages_parse_and_incremental_fetches_only_missing_days() -> R {
    let server = Server::start(KEY, 2)?;
    let p = project(&server, "")?;
    build_ok(&p, "2026-09-04")?;
    let h = p.hashes("raw_stock_data")?;
    assert_eq!(h.len(), 4);
    let rows: u64 = p
        .state("raw_stock_data")?
        .current
        .values()
        .map(|c| c.record().rows)
        .sum();
    assert_eq!(
        rows,
        4 * CODES.len() as u64,
        "every page of every day arrived"
    );
    // Three pages per day (5 codes, 2 per page).
    assert_eq!(bar_dates(&server).len(), 12);
    server.clear_log();
    let out = build_ok(&p, "2026-09-08")?;
    let mut days = bar_dates(&server);
    days.dedup();
    assert_eq!(
        days,
        ["2026-09-07", "2026-09-08"],
        "only the days the lake lacks"
    );
    assert_no_secret(&p, &out)
}

#[test]
fn recent_days_are_fetched_again_and_cut_off_when_unchanged() -> R {
    let server = Server::start(KEY, 2)?;
    let p = project(&server, "recheck_days = 2")?;
    p.rule(
        "closes",
        "op = \"sql\"\npartitioned = \"daily\"\ninputs = [{ asset = \"raw_stock_data\", window = [0, 0] }]\n[params]\nquery = \"SELECT Date, Code, C FROM raw_stock_data\"\n",
    )?;
    build_ok(&p, "2026-09-04")?;
    let before = p.hashes("raw_stock_data")?;
    let closes = p.version("closes")?;
    server.clear_log();
    // No new day: the latest two days are asked for again, nothing changes.
    let out = build_ok(&p, "2026-09-04")?;
    let mut days = bar_dates(&server);
    days.dedup();
    assert_eq!(days, ["2026-09-03", "2026-09-04"]);
    assert_eq!(p.hashes("raw_stock_data")?, before);
    assert_eq!(
        p.version("closes")?,
        closes,
        "an unchanged re-check rebuilds nothing downstream"
    );
    // status reports what is stale, not what a build would look at again.
    let status = text(
        &p.cmd(&["status"])
            .env("LAKEBUILD_NOW", "2026-09-04")
            .output()?,
    );
    assert!(!status.contains("stale"), "{status}");
    let dry = p
        .cmd(&["build", "--dry-run"])
        .env("LAKEBUILD_NOW", "2026-09-04")
        .output()?;
    assert!(
        text(&dry).contains("re-check of the latest 2 day(s)"),
        "{}",
        text(&dry)
    );
    assert_no_secret(&p, &out)
}

#[test]
fn transient_faults_recover() -> R {
    let server = Server::start(KEY, 2)?;
    let p = project(&server, "")?;
    server.inject(
        "/equities/bars/daily",
        "2026-09-01",
        Fault::Status(429, Some(1)),
    );
    server.inject(
        "/equities/bars/daily",
        "2026-09-02",
        Fault::Status(500, None),
    );
    server.inject(
        "/equities/bars/daily",
        "2026-09-02",
        Fault::Status(503, None),
    );
    server.inject("/equities/bars/daily", "2026-09-03", Fault::DropMidBody);
    server.inject(
        "/equities/bars/daily",
        "2026-09-03",
        Fault::Slow(Duration::from_millis(2500)),
    );
    server.inject("/equities/bars/daily", "2026-09-04", Fault::MalformedJson);
    let t = std::time::Instant::now();
    let out = build_ok(&p, "2026-09-04")?;
    assert!(
        t.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    assert_eq!(p.hashes("raw_stock_data")?.len(), 4);
    let rows: u64 = p
        .state("raw_stock_data")?
        .current
        .values()
        .map(|c| c.record().rows)
        .sum();
    assert_eq!(rows, 4 * CODES.len() as u64);
    assert_no_secret(&p, &out)
}

#[test]
fn permanent_faults_fail_clearly_and_publish_no_partial_day() -> R {
    let server = Server::start(KEY, 2)?;
    let p = project(&server, "")?;
    build_ok(&p, "2026-09-02")?;
    let committed = p.hashes("raw_stock_data")?;

    // A page missing a field (on the second page of the new day).
    server.inject(
        "/equities/bars/daily",
        "2026-09-03",
        Fault::MissingField("Code"),
    );
    let out = build(&p, "2026-09-03")?;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("has no 'Code' field") && t.contains("date=2026-09-03"),
        "{t}"
    );
    assert_eq!(
        p.hashes("raw_stock_data")?,
        committed,
        "nothing published, nothing lost"
    );

    // A looping server.
    server.inject(
        "/equities/bars/daily",
        "2026-09-03",
        Fault::RepeatPaginationKey,
    );
    let out = build(&p, "2026-09-03")?;
    let t = text(&out);
    assert!(t.contains("pagination_key repeated"), "{t}");
    assert_eq!(p.hashes("raw_stock_data")?, committed);
    Ok(())
}

#[test]
fn forbidden_is_permanent_and_names_the_request() -> R {
    let server = Server::start(KEY, 10)?;
    let p = project(&server, "")?;
    server.inject("/equities/bars/daily", "", Fault::Status(403, None));
    let out = build(&p, "2026-09-01")?;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("(403)")
            && t.contains("/equities/bars/daily?date=2026-09-01")
            && t.contains("outside your plan"),
        "{t}"
    );
    assert_eq!(bar_dates(&server).len(), 1, "a 403 is not retried");
    assert_no_secret(&p, &t)?;
    // A wrong key is a 403 too, and is not printed either.
    let out = p
        .cmd(&["build"])
        .env("LAKEBUILD_NOW", "2026-09-01")
        .env("JQUANTS_API_KEY", "wrong-key-123")
        .output()?;
    assert!(!text(&out).contains("wrong-key-123"));
    // No key at all: a clear message.
    let out = p
        .cmd(&["build"])
        .env("LAKEBUILD_NOW", "2026-09-01")
        .env_remove("JQUANTS_API_KEY")
        .output()?;
    assert!(
        text(&out).contains("JQUANTS_API_KEY is not set"),
        "{}",
        text(&out)
    );
    Ok(())
}

#[test]
fn alphanumeric_codes_and_sentinels_round_trip() -> R {
    let server = Server::start(KEY, 100)?;
    let p = project(&server, "")?;
    build_ok(&p, "2026-09-01")?;
    let df = p.frame("raw_stock_data")?;
    let codes: Vec<String> = df
        .column("Code")?
        .str()?
        .iter()
        .flatten()
        .map(String::from)
        .collect();
    assert!(codes.contains(&"131A0".to_string()), "{codes:?}");
    // "", "-" and null all became nulls.
    assert_eq!(df.column("H")?.null_count(), 1);
    assert_eq!(df.column("L")?.null_count(), 1);
    Ok(())
}

/// `op = "market"`: the synthetic market without a key, J-Quants with one; switching
/// rebuilds from the new source, and the key is in no key, output or file.
#[test]
fn the_market_op_uses_jquants_only_when_a_key_is_set() -> R {
    let server = Server::start(KEY, 3)?;
    let p = project(&server, "")?;
    p.rule(
        "raw_stock_data",
        &format!(
            "op = \"market\"\npartitioned = \"daily\"\nkey_columns = [\"Code\", \"Date\"]\ninputs = [{{ asset = \"trading_calendar\", window = [0, 0] }}]\n[params]\ntable = \"raw_stock_data\"\n[params.synthetic]\nstocks = 30\nstart = \"2026-09-01\"\n[params.jquants]\nbase_url = \"{}\"\nplan = \"premium\"\ntimeout = \"1s\"\n",
            server.url
        ),
    )?;
    let out = p
        .cmd(&["build"])
        .env("LAKEBUILD_NOW", "2026-09-04")
        .env_remove("JQUANTS_API_KEY")
        .output()?;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        server.log().is_empty(),
        "no key: nothing is asked of J-Quants"
    );
    let synthetic = p.frame("raw_stock_data")?.column("Code")?.n_unique()?;
    assert!(synthetic >= 20, "{synthetic} synthetic stocks");
    let out = build(&p, "2026-09-04")?;
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        !server.log().is_empty(),
        "with a key the rule reads J-Quants"
    );
    let codes = p.frame("raw_stock_data")?.column("Code")?.n_unique()?;
    assert_eq!(codes, CODES.len(), "the data now comes from the server");
    assert_no_secret(&p, &t)?;
    let why = p.ok(&["why", "raw_stock_data"])?;
    assert!(!why.contains(KEY));
    Ok(())
}

/// (key, content hash) of every current partition.
fn keyed(p: &Proj, asset: &str) -> R<std::collections::BTreeMap<String, (String, String)>> {
    Ok(p.state(asset)?
        .current
        .iter()
        .map(|(id, c)| {
            (
                id.to_string(),
                (c.record().key.clone(), c.record().content_hash.clone()),
            )
        })
        .collect())
}

/// The adjusted and raw close of `code` on `day`, as published.
fn closes_of(p: &Proj, code: &str, day: &str) -> R<(f64, f64)> {
    use polars::prelude::*;
    let df = p.frame("raw_stock_data")?;
    let df = df
        .lazy()
        .filter(col("Code").eq(lit(code)))
        .filter(col("Date").cast(DataType::String).eq(lit(day)))
        .collect()?;
    assert_eq!(df.height(), 1, "{code} on {day}");
    let get = |c: &str| -> R<f64> {
        Ok(df
            .column(c)?
            .cast(&DataType::Float64)?
            .f64()?
            .get(0)
            .unwrap_or(f64::NAN))
    };
    Ok((get("AdjC")?, get("C")?))
}

fn closes_rule(p: &Proj) -> R {
    p.rule(
        "closes",
        "op = \"sql\"\npartitioned = \"daily\"\ninputs = [{ asset = \"raw_stock_data\", window = [0, 0] }]\n[params]\nquery = \"SELECT Date, Code, AdjC FROM raw_stock_data\"\n",
    )
}

#[test]
fn a_split_restates_only_the_days_it_changed_and_only_their_dependents_rebuild() -> R {
    let server = Server::start(KEY, 2)?;
    // Listed from 2026-09-03: the two days before hold nothing of it.
    server.list_from("131A0", "2026-09-03");
    let p = project(&server, "")?;
    closes_rule(&p)?;
    build_ok(&p, "2026-09-07")?;
    let before = keyed(&p, "raw_stock_data")?;
    let closes_before = p.state("closes")?;
    let (adj, close) = closes_of(&p, "131A0", "2026-09-04")?;
    assert_eq!(adj, close);
    let other = closes_of(&p, "72030", "2026-09-04")?;

    // A 1:2 split of 131A0 takes effect on 2026-09-08, the next day fetched.
    server.split("131A0", "2026-09-08", 0.5);
    // The re-fetch of its history is refused first: the new day is not published without it,
    // and nothing published is touched.
    server.inject("/equities/bars/daily", "131A0", Fault::Status(403, None));
    let out = build(&p, "2026-09-08")?;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("code=131A0"), "{}", text(&out));
    assert_eq!(keyed(&p, "raw_stock_data")?, before);
    server.clear_log();
    build_ok(&p, "2026-09-08")?;
    let log = server.log();
    let history: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("code=") && !l.contains("pagination_key"))
        .collect();
    assert_eq!(
        history,
        ["/equities/bars/daily?code=131A0&from=2026-09-03&to=2026-09-07"],
        "the code's published history is fetched again, once (all its pages): {log:?}"
    );
    let after = keyed(&p, "raw_stock_data")?;
    for day in ["2026-09-01", "2026-09-02"] {
        assert_eq!(after[day], before[day], "{day} held nothing of 131A0");
    }
    for day in ["2026-09-03", "2026-09-04", "2026-09-07"] {
        assert_ne!(after[day].0, before[day].0, "{day} is re-keyed");
        assert_ne!(after[day].1, before[day].1, "{day} has new content");
    }
    assert!(after.contains_key("2026-09-08"));
    // Its earlier adjusted prices are halved; raw prices are as they were.
    assert_eq!(closes_of(&p, "131A0", "2026-09-04")?, (close * 0.5, close));
    // The other codes' bars on a restated day are untouched.
    assert_eq!(closes_of(&p, "72030", "2026-09-04")?, other);

    // Downstream, exactly the restated days (and the new one) rebuild.
    let closes_after = p.state("closes")?;
    for (id, c) in &closes_before.current {
        let now = &closes_after.current[id];
        let restated =
            ["2026-09-03", "2026-09-04", "2026-09-07"].contains(&id.to_string().as_str());
        assert_eq!(
            now.version != c.version,
            restated,
            "closes {id}: rebuilt only when its raw day was restated"
        );
    }

    // `why` names the split; nothing is stale and nothing is asked for again.
    let why = p.ok(&["why", "raw_stock_data", "--partition", "2026-09-04"])?;
    assert!(
        why.contains("restated: split of 131A0 effective 2026-09-08 (AdjFactor 0.5)"),
        "{why}"
    );
    server.clear_log();
    build_ok(&p, "2026-09-08")?;
    assert!(server.log().is_empty(), "{:?}", server.log());
    assert_eq!(keyed(&p, "raw_stock_data")?, after);

    // Incremental = full: a lake fetched in one go now holds the same content.
    let full = project(&server, "")?;
    let out = build_ok(&full, "2026-09-08")?;
    assert_eq!(full.hashes("raw_stock_data")?, p.hashes("raw_stock_data")?);
    assert_no_secret(&p, &out)
}

#[test]
fn a_revised_history_seen_on_a_recheck_restates_the_code_and_a_correction_gets_a_new_key() -> R {
    let server = Server::start(KEY, 5)?;
    let p = project(&server, "recheck_days = 1")?;
    build_ok(&p, "2026-09-04")?;
    let before = keyed(&p, "raw_stock_data")?;
    let (_, close) = closes_of(&p, "72030", "2026-09-02")?;

    // J-Quants revises 72030's adjusted history without an AdjFactor.
    server.revise("72030", 0.8);
    server.clear_log();
    build_ok(&p, "2026-09-04")?;
    assert!(
        server
            .log()
            .iter()
            .any(|l| l.contains("code=72030&from=2026-09-01&to=2026-09-03")),
        "{:?}",
        server.log()
    );
    let after = keyed(&p, "raw_stock_data")?;
    for day in ["2026-09-01", "2026-09-02", "2026-09-03", "2026-09-04"] {
        assert_ne!(after[day].0, before[day].0, "{day} is re-keyed");
        assert_ne!(after[day].1, before[day].1, "{day} has new content");
    }
    assert_eq!(closes_of(&p, "72030", "2026-09-02")?, (close * 0.8, close));
    let why = p.ok(&["why", "raw_stock_data", "--partition", "2026-09-02"])?;
    assert!(
        why.contains("restated: adjusted history of 72030 revised, seen re-checking 2026-09-04"),
        "{why}"
    );
    // The re-checked day itself came back different under its key: a correction, with a
    // key of its own, so that no key ever names two contents.
    let why = p.ok(&["why", "raw_stock_data", "--partition", "2026-09-04"])?;
    assert!(why.contains("restated: revised 2026-09-04"), "{why}");
    let state = p.state("raw_stock_data")?;
    for (k, files) in state.by_key() {
        let contents: std::collections::BTreeSet<&str> = files
            .iter()
            .map(|f| f.record.content_hash.as_str())
            .collect();
        assert_eq!(contents.len(), 1, "key {k} names {contents:?}");
    }
    // A re-check that finds nothing new changes nothing.
    let out = build_ok(&p, "2026-09-04")?;
    assert_eq!(keyed(&p, "raw_stock_data")?, after);
    assert_no_secret(&p, &out)
}

#[test]
fn splits_found_in_successive_batches_of_one_build_both_restate_the_same_days() -> R {
    let server = Server::start(KEY, 5)?;
    let p = project(&server, "")?;
    build_ok(&p, "2026-09-04")?;
    let before: Vec<(f64, f64)> = ["72030", "131A0"]
        .iter()
        .map(|c| closes_of(&p, c, "2026-09-02"))
        .collect::<R<_>>()?;
    server.split("72030", "2026-09-07", 0.5);
    server.split("131A0", "2026-09-08", 0.25);
    // One day per batch: the second batch restates days the first one already restated.
    let out = p
        .cmd(&["build", "-v", "--batch-size", "1"])
        .env("LAKEBUILD_NOW", "2026-09-08")
        .env("JQUANTS_API_KEY", KEY)
        .output()?;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        closes_of(&p, "72030", "2026-09-02")?,
        (before[0].0 * 0.5, before[0].1)
    );
    assert_eq!(
        closes_of(&p, "131A0", "2026-09-02")?,
        (before[1].0 * 0.25, before[1].1)
    );
    let state = p.state("raw_stock_data")?;
    assert_eq!(
        state.active_files.len(),
        state.current.len(),
        "one active file per partition"
    );
    // Both splits cover the day, and its key is made with both.
    let day = PartitionId::Day(date("2026-09-02"));
    let covering: Vec<&str> = state
        .restatements_covering(day, None)
        .into_iter()
        .map(|(_, r)| r.id.as_str())
        .collect();
    assert_eq!(covering.len(), 2, "{covering:?}");
    assert_eq!(
        state.current[&day].record().restated,
        Some(lakebuild::core::record::restatement_digest(covering))
    );
    server.clear_log();
    build_ok(&p, "2026-09-08")?;
    assert!(server.log().is_empty(), "{:?}", server.log());
    Ok(())
}

#[test]
fn a_build_killed_while_re_fetching_a_split_codes_history_publishes_nothing_and_the_next_completes()
-> R {
    let server = Server::start(KEY, 5)?;
    let p = project(&server, "")?;
    build_ok(&p, "2026-09-04")?;
    let before = keyed(&p, "raw_stock_data")?;
    server.split("72030", "2026-09-07", 0.5);
    // The history query is slow: the build is killed while it waits.
    server.inject(
        "/equities/bars/daily",
        "72030",
        Fault::Slow(Duration::from_secs(20)),
    );
    server.clear_log();
    let mut child = p
        .cmd(&["build"])
        .env("LAKEBUILD_NOW", "2026-09-07")
        .env("JQUANTS_API_KEY", KEY)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let t0 = std::time::Instant::now();
    while !server.log().iter().any(|l| l.contains("code=72030")) {
        assert!(t0.elapsed() < Duration::from_secs(60), "no history query");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill()?; // SIGKILL
    child.wait()?;
    // Neither the new day nor any restated one was published.
    assert_eq!(keyed(&p, "raw_stock_data")?, before);
    build_ok(&p, "2026-09-07")?;
    let after = keyed(&p, "raw_stock_data")?;
    assert_eq!(after.len(), 5);
    for (day, k) in &before {
        assert_ne!(after[day].0, k.0, "{day} restated by the completed build");
    }
    Ok(())
}

#[test]
fn days_restored_by_a_build_are_restated_by_a_split_it_finds() -> R {
    let server = Server::start(KEY, 5)?;
    let p = project(&server, "")?;
    build_ok(&p, "2026-09-04")?;
    let (adj, close) = closes_of(&p, "72030", "2026-09-02")?;
    // A param changed and changed back: the next build restores the first days by key...
    p.rule("raw_stock_data", &raw_rule(&server, "max_pages = 999"))?;
    build_ok(&p, "2026-09-04")?;
    p.rule("raw_stock_data", &raw_rule(&server, ""))?;
    // ...and fetches a new day that carries a split: the restored days are restated too.
    server.split("72030", "2026-09-07", 0.5);
    let out = build_ok(&p, "2026-09-07")?;
    assert!(out.contains("restored 4"), "{out}");
    assert_eq!(closes_of(&p, "72030", "2026-09-02")?, (adj * 0.5, close));
    let state = p.state("raw_stock_data")?;
    assert_eq!(state.active_files.len(), state.current.len());
    Ok(())
}

/// Crash safety through a restatement: two splits found in successive batches of one
/// build (each batch restates published days and publishes a new one), killed with SIGKILL
/// at every commit of that build (before it, after it) and at data files written in
/// between. After each kill every table opens at a committed version; the next build
/// completes the restatement to exactly the content of a lake fetched in one go, and the
/// one after it asks the server for nothing.
#[test]
fn a_build_killed_at_any_commit_of_a_restatement_completes_it_on_the_next_build() -> R {
    use std::os::unix::process::ExitStatusExt;
    let tables = [
        "trading_calendar",
        "raw_stock_data",
        "closes",
        "_lakebuild/runs",
    ];
    let splits = |server: &Server| {
        server.split("72030", "2026-09-07", 0.5);
        server.split("131A0", "2026-09-08", 0.25);
    };
    let restating_build = |p: &Proj, failpoint: &str| {
        p.cmd(&["build", "--batch-size", "1"])
            .env("LAKEBUILD_NOW", "2026-09-08")
            .env("JQUANTS_API_KEY", KEY)
            .env("LAKEBUILD_FAILPOINT", failpoint)
            .output()
    };
    // The content an uninterrupted fetch reaches.
    let server = Server::start(KEY, 5)?;
    splits(&server);
    let full = project(&server, "")?;
    closes_rule(&full)?;
    build_ok(&full, "2026-09-08")?;
    let want = (full.hashes("raw_stock_data")?, full.hashes("closes")?);

    let mut kills = 0;
    for (point, every) in [
        ("publish.before_commit", 1),
        ("publish.after_commit", 1),
        ("publish.file_written", 2),
    ] {
        for n in (1..).step_by(every) {
            let at = format!("{point}@{n}");
            let server = Server::start(KEY, 5)?;
            let p = project(&server, "")?;
            closes_rule(&p)?;
            build_ok(&p, "2026-09-04")?;
            splits(&server);
            let out = restating_build(&p, &at)?;
            if out.status.success() {
                break; // the build has fewer than n such points: all were covered
            }
            assert_eq!(out.status.signal(), Some(9), "{at}: {}", text(&out));
            kills += 1;
            p.assert_tables_committed(&tables, &at)?;
            let out = restating_build(&p, "")?;
            assert!(out.status.success(), "{at}: {}", text(&out));
            assert_eq!(
                (p.hashes("raw_stock_data")?, p.hashes("closes")?),
                want,
                "{at}: the completed build differs from an uninterrupted fetch"
            );
            server.clear_log();
            build_ok(&p, "2026-09-08")?;
            assert!(server.log().is_empty(), "{at}: {:?}", server.log());
        }
    }
    eprintln!("{kills} kills, each completed");
    assert!(
        kills >= 6,
        "only {kills} kills: the failpoints were not reached"
    );
    Ok(())
}
