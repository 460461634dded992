//! The `jquants` source against a J-Quants-compatible test server on 127.0.0.1 with fault
//! injection: every fault either recovers (retries) or fails with a clear error, never
//! publishes a partial day, never loses a committed day, and never leaks the API key.

mod common;
use common::jquants_server::{CODES, Fault, Server};
use common::*;
use std::time::Duration;

const KEY: &str = "test-key-SECRET-9f8e7d";

fn project(server: &Server, extra: &str) -> R<Proj> {
    let p = Proj::new()?;
    p.rule(
        "trading_calendar",
        "op = \"synthetic_market\"\npartitioned = \"daily\"\ndates = { from = \"2026-09-01\", to = \"today\", calendar = \"jpx\" }\n[params]\ntable = \"trading_calendar\"\nstart = \"2026-09-01\"\n",
    )?;
    p.rule(
        "raw_stock_data",
        &format!(
            "op = \"jquants\"\npartitioned = \"daily\"\nkey_columns = [\"Code\", \"Date\"]\ninputs = [{{ asset = \"trading_calendar\", window = [0, 0] }}]\n[params]\ntable = \"raw_stock_data\"\nbase_url = \"{}\"\nplan = \"premium\"\ntimeout = \"1s\"\nbackoff = \"20ms\"\nattempts = 4\n{extra}\n[[checks]]\nkind = \"unique\"\ncolumns = [\"Code\", \"Date\"]\n",
            server.url
        ),
    )?;
    Ok(p)
}

fn build(p: &Proj, now: &str) -> R<std::process::Output> {
    Ok(p.cmd(&["build", "-v"])
        .env("LAKEBUILD_NOW", now)
        .env("JQUANTS_API_KEY", KEY)
        .output()?)
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
    let out = build(&p, "2026-09-04")?;
    assert!(out.status.success(), "{}", text(&out));
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
    let out = build(&p, "2026-09-08")?;
    assert!(out.status.success(), "{}", text(&out));
    let mut days = bar_dates(&server);
    days.dedup();
    assert_eq!(
        days,
        ["2026-09-07", "2026-09-08"],
        "only the days the lake lacks"
    );
    assert_no_secret(&p, &text(&out))
}

#[test]
fn recent_days_are_fetched_again_and_cut_off_when_unchanged() -> R {
    let server = Server::start(KEY, 2)?;
    let p = project(&server, "recheck_days = 2")?;
    p.rule(
        "closes",
        "op = \"sql\"\npartitioned = \"daily\"\ninputs = [{ asset = \"raw_stock_data\", window = [0, 0] }]\n[params]\nquery = \"SELECT Date, Code, C FROM raw_stock_data\"\n",
    )?;
    let out = build(&p, "2026-09-04")?;
    assert!(out.status.success(), "{}", text(&out));
    let before = p.hashes("raw_stock_data")?;
    let closes = p.version("closes")?;
    server.clear_log();
    // No new day: the latest two days are asked for again, nothing changes.
    let out = build(&p, "2026-09-04")?;
    assert!(out.status.success(), "{}", text(&out));
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
    assert_no_secret(&p, &text(&out))
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
    let out = build(&p, "2026-09-04")?;
    assert!(out.status.success(), "{}", text(&out));
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
    assert_no_secret(&p, &text(&out))
}

#[test]
fn permanent_faults_fail_clearly_and_publish_no_partial_day() -> R {
    let server = Server::start(KEY, 2)?;
    let p = project(&server, "")?;
    let out = build(&p, "2026-09-02")?;
    assert!(out.status.success(), "{}", text(&out));
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
    let out = build(&p, "2026-09-01")?;
    assert!(out.status.success(), "{}", text(&out));
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
