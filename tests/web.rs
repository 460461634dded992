//! `lakebuild serve`: the JSON API answers what the CLI's `--json` prints; access rules
//! (Host, Origin, token for actions, token for reads beyond loopback) checked over raw
//! HTTP; a running build's progress read live; and the pages driven in a real headless
//! Chromium (Debian's, through playwright-core in `tests/ui/`), with a screenshot of
//! each page saved under `target/ui-screenshots/`.

mod common;
use common::web_client::{Answer, get, http, serve};
use common::*;
use serde_json::Value;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// POST the launch of the job `averages` with these headers.
fn launch(addr: &str, headers: &[(&str, &str)]) -> R<Answer> {
    http(addr, "POST", "/api/jobs/averages/launch", headers, "")
}

/// POST the login form (`token=…`) with these headers besides its content type.
fn login(addr: &str, headers: &[(&str, &str)], body: &str) -> R<Answer> {
    let mut h = vec![("Content-Type", "application/x-www-form-urlencoded")];
    h.extend_from_slice(headers);
    http(addr, "POST", "/login", &h, body)
}

fn cli_json(p: &Proj, args: &[&str]) -> R<Value> {
    Ok(serde_json::from_str(&p.ok(args)?)?)
}

const JOB: &str = "description = \"the moving averages\"\nselect = [\"+summary\"]\n";

const SLOW_RULE: &str = r#"
op = "command"
[params]
run = "sleep 4; printf 'x\n1\n' > \"$LAKEBUILD_OUTPUT_DIR/out.csv\""
"#;

#[test]
fn the_api_answers_what_the_clis_json_prints() -> R {
    let p = pipeline(30)?;
    p.write("rules/jobs/averages.toml", JOB)?;
    p.ok(&["build"])?;
    let s = serve(&p, "127.0.0.1:0", &[], &[])?;
    let a = &s.addr;
    assert_eq!(get(a, "/api/status")?, cli_json(&p, &["status", "--json"])?);
    assert_eq!(
        get(a, "/api/graph")?,
        cli_json(&p, &["graph", "--format", "json"])?
    );
    assert_eq!(
        get(a, "/api/why/summary")?,
        cli_json(&p, &["why", "summary", "--json"])?
    );
    let day = p
        .hashes("ma")?
        .keys()
        .nth(5)
        .ok_or("a partition")?
        .to_string();
    assert_eq!(
        get(a, &format!("/api/why/ma?partition={day}"))?,
        cli_json(&p, &["why", "ma", "--partition", &day, "--json"])?
    );
    assert_eq!(
        get(a, "/api/history")?,
        cli_json(&p, &["history", "--json"])?
    );
    assert_eq!(
        get(a, "/api/history?asset=ma&limit=3")?,
        cli_json(&p, &["history", "--asset", "ma", "--limit", "3", "--json"])?
    );
    assert_eq!(get(a, "/api/stats")?, cli_json(&p, &["stats", "--json"])?);
    assert_eq!(get(a, "/api/jobs")?, cli_json(&p, &["jobs", "--json"])?);

    // The run list and one run: its rows are `history --run`'s.
    let runs = get(a, "/api/runs")?;
    let runs = runs.as_array().ok_or("runs")?;
    assert_eq!(runs.len(), 1);
    let id = runs[0]["run_id"].as_str().ok_or("run id")?;
    assert_eq!(runs[0]["status"], "ok");
    assert_eq!(runs[0]["built"], 3);
    let one = get(a, &format!("/api/runs/{id}"))?;
    assert_eq!(
        one["steps"],
        cli_json(&p, &["history", "--run", id, "--json"])?
    );

    // One asset: every partition built, with its key and content hash as the log has
    // them; the schema and a sample of rows.
    let ma = get(a, "/api/assets/ma")?;
    let hashes = p.hashes("ma")?;
    let cells = ma["partitions"].as_array().ok_or("partitions")?;
    assert_eq!(cells.len(), hashes.len());
    for c in cells {
        assert_eq!(c["state"], "built");
        let id: lakebuild::core::partition::PartitionId =
            lakebuild::core::partition::PartitionId::parse(c["partition"].as_str().ok_or("id")?)?;
        assert_eq!(c["content_hash"].as_str(), Some(hashes[&id].as_str()));
    }
    assert!(ma["schema"].as_array().is_some_and(|s| !s.is_empty()));
    assert!(ma["sample"].as_array().is_some_and(|s| !s.is_empty()));
    assert_eq!(ma["inputs"][0]["asset"], "prices");

    // A change upstream: the asset page says which partitions are stale and why, as the
    // dry run does.
    p.write(
        "data/prices.csv",
        &prices_csv(30, &|d, _, c| if d == 10 { c + 1.0 } else { c }),
    )?;
    let ma = get(a, "/api/assets/ma")?;
    let stale: Vec<&Value> = ma["partitions"]
        .as_array()
        .ok_or("partitions")?
        .iter()
        .filter(|c| c["state"] == "stale")
        .collect();
    let plans = cli_json(&p, &["build", "ma", "--dry-run", "--json"])?;
    let plan = plans
        .as_array()
        .and_then(|a| a.iter().find(|x| x["asset"] == "ma"))
        .ok_or("ma's plan")?;
    let to_build = plan["to_build"].as_array().ok_or("to_build")?;
    assert!(!stale.is_empty());
    assert_eq!(
        stale.len(),
        to_build.len(),
        "the page says what the dry run says"
    );
    assert!(
        stale
            .iter()
            .all(|c| c["reason"].as_str().is_some_and(|r| r.contains("prices")))
    );
    assert_eq!(get(a, "/api/status")?, cli_json(&p, &["status", "--json"])?);

    // An unknown asset is a clear 400, not a crash.
    let bad = http(a, "GET", "/api/assets/nope", &[], "")?;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("unknown asset 'nope'"), "{}", bad.body);
    Ok(())
}

#[test]
fn actions_need_the_token_and_the_host_and_origin_must_be_the_servers() -> R {
    let p = pipeline(10)?;
    p.write("rules/jobs/averages.toml", JOB)?;
    let token = "tok-7f3a91c2e5";
    let secret_key = "jq-secret-4411";

    // Read-only (no token): reads work, actions are off.
    {
        let s = serve(&p, "127.0.0.1:0", &[("JQUANTS_API_KEY", secret_key)], &[])?;
        let a = &s.addr;
        assert_eq!(http(a, "GET", "/api/status", &[], "")?.status, 200);
        let off = launch(a, &[("X-Lakebuild-Token", token)])?;
        assert_eq!(off.status, 403);
        assert!(off.body.contains("LAKEBUILD_UI_TOKEN"), "{}", off.body);
        // DNS rebinding: a hostile name pointing at 127.0.0.1 is refused.
        let rebound = http(a, "GET", "/api/status", &[("Host", "evil.example")], "")?;
        assert_eq!(rebound.status, 421);
        let page = http(a, "GET", "/", &[], "")?;
        assert_eq!(page.status, 200);
        assert!(
            page.head
                .to_ascii_lowercase()
                .contains("content-security-policy")
        );
    }

    let s = serve(
        &p,
        "127.0.0.1:0",
        &[
            ("LAKEBUILD_UI_TOKEN", token),
            ("JQUANTS_API_KEY", secret_key),
        ],
        &[],
    )?;
    let a = &s.addr;
    let origin = format!("http://{a}");
    // No token, a wrong one, or the right one from another origin: refused.
    let none = launch(a, &[("Origin", &origin)])?;
    assert_eq!(none.status, 401);
    let wrong = launch(a, &[("X-Lakebuild-Token", "nope")])?;
    assert_eq!(wrong.status, 401);
    let cross = launch(
        a,
        &[
            ("X-Lakebuild-Token", token),
            ("Origin", "http://evil.example"),
        ],
    )?;
    assert_eq!(cross.status, 403);
    // A wrong login sets no cookie; the right one sets an HttpOnly, SameSite cookie that
    // is not the token, and that cookie alone then authorises an action.
    let bad_login = login(a, &[], "token=nope")?;
    assert_eq!(bad_login.status, 401);
    assert!(!bad_login.head.to_ascii_lowercase().contains("set-cookie"));
    let logged_in = login(a, &[("Origin", &origin)], &format!("token={token}"))?;
    assert_eq!(logged_in.status, 303, "{}", logged_in.head);
    let cookie_line = logged_in
        .head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .ok_or("no cookie")?;
    assert!(cookie_line.contains("HttpOnly") && cookie_line.contains("SameSite=Strict"));
    assert!(!cookie_line.contains(token));
    let cookie = cookie_line["set-cookie:".len()..]
        .trim()
        .split(';')
        .next()
        .ok_or("cookie")?
        .to_string();
    let launched = launch(a, &[("Cookie", &cookie), ("Origin", &origin)])?;
    assert_eq!(launched.status, 202, "{}", launched.body);
    // The job's run appears in the history, "ok" once its build has ended.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let runs = get(a, "/api/runs")?;
        if runs.as_array().is_some_and(|r| {
            r.iter()
                .any(|r| r["trigger"] == "job:averages" && r["status"] == "ok")
        }) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the launched job never ran: {runs}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(p.version("summary")?.is_some(), "the job built summary");
    // A script's header works too; an unknown job is a 404.
    let unknown = http(
        a,
        "POST",
        "/api/jobs/nope/launch",
        &[("X-Lakebuild-Token", token)],
        "",
    )?;
    assert_eq!(unknown.status, 404);

    // No answer carries a secret: the token or the J-Quants key of the server's
    // environment.
    for path in [
        "/",
        "/app.js",
        "/login",
        "/api/session",
        "/api/status",
        "/api/graph",
        "/api/runs",
        "/api/history",
        "/api/jobs",
        "/api/assets/ma",
        "/api/why/summary",
        "/api/stats",
        "/api/ticks",
        "/api/alerts",
        "/api/slas",
        "/api/live",
    ] {
        let r = http(a, "GET", path, &[("Cookie", &cookie)], "")?;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert!(
            !r.body.contains(token) && !r.body.contains(secret_key),
            "{path} leaks a secret"
        );
    }
    let log = std::fs::read_dir(p.path("lake/_lakebuild/web"))?
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<String>();
    assert!(
        !log.contains(token),
        "the launched build's log has the token"
    );
    drop(s);

    // Beyond loopback every read needs the token; without one the server will not start.
    let refused = p.fails(&["serve", "--bind", "0.0.0.0:0"], 2)?;
    assert!(refused.contains("LAKEBUILD_UI_TOKEN"), "{refused}");
    let wide = serve(&p, "0.0.0.0:0", &[("LAKEBUILD_UI_TOKEN", token)], &[])?;
    let port = wide.addr.rsplit(':').next().ok_or("port")?;
    let local = format!("127.0.0.1:{port}");
    assert_eq!(http(&local, "GET", "/api/status", &[], "")?.status, 401);
    let page = http(&local, "GET", "/", &[], "")?;
    assert_eq!(page.status, 303, "the page sends a browser to log in");
    assert_eq!(
        http(
            &local,
            "GET",
            "/api/status",
            &[("Authorization", &format!("Bearer {token}"))],
            ""
        )?
        .status,
        200
    );
    Ok(())
}

/// `lakebuild build` of the project in the background, its output discarded.
fn quiet_build(p: &Proj) -> R<std::process::Child> {
    Ok(p.cmd(&["build"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?)
}

#[test]
fn a_running_builds_progress_is_live_and_goes_when_it_ends() -> R {
    let p = Proj::new()?;
    p.rule("slow", SLOW_RULE)?;
    let s = serve(&p, "127.0.0.1:0", &[], &[])?;
    let mut build = quiet_build(&p)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let seen = loop {
        let live = get(&s.addr, "/api/live")?;
        if let Some(run) = live.as_array().and_then(|l| l.first())
            && run["steps"]
                .as_array()
                .is_some_and(|st| st.iter().any(|x| x["asset"] == "slow"))
        {
            break run.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the build's progress never showed"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(seen["trigger"], "manual");
    // The run is listed while it builds, as running: not "ok" on the steps ended so far.
    let runs = get(&s.addr, "/api/runs")?;
    assert_eq!(runs[0]["run_id"], seen["run_id"], "{runs}");
    assert_eq!(runs[0]["status"], "running", "{runs}");
    let one = get(
        &s.addr,
        &format!("/api/runs/{}", seen["run_id"].as_str().unwrap_or("")),
    )?;
    assert_eq!(one["run"]["status"], "running", "{one}");
    assert!(build.wait()?.success());
    assert_eq!(get(&s.addr, "/api/live")?, serde_json::json!([]));
    let runs = get(&s.addr, "/api/runs")?;
    assert_eq!(runs[0]["run_id"], seen["run_id"]);
    assert_eq!(runs[0]["status"], "ok", "{runs}");

    // A build killed with SIGKILL leaves its file, which stops counting as live once its
    // heartbeat is stale (15 s).
    p.write("rules/slow.toml", &SLOW_RULE.replace("sleep 4", "sleep 30"))?;
    let mut build = quiet_build(&p)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while get(&s.addr, "/api/live")?
        .as_array()
        .is_none_or(|l| l.is_empty())
    {
        assert!(
            Instant::now() < deadline,
            "the second build's progress never showed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    build.kill()?;
    build.wait()?;
    let deadline = Instant::now() + Duration::from_secs(40);
    while get(&s.addr, "/api/live")?
        .as_array()
        .is_some_and(|l| !l.is_empty())
    {
        assert!(Instant::now() < deadline, "a killed build stayed live");
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(())
}

/// Node.js with playwright-core (`npm ci` in tests/ui) and Debian's chromium: present,
/// or the test skips (outside CI) / fails (in CI, which installs them).
fn browser_available() -> bool {
    let ui = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    let ok = ui.join("node_modules/playwright-core").exists()
        && std::path::Path::new("/usr/bin/chromium").exists()
        && std::process::Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    present_or_skip(
        ok,
        "node with tests/ui/node_modules, or /usr/bin/chromium",
        "npm ci --prefix tests/ui; apt install chromium",
    )
}

const ASSETS: [&str; 9] = [
    "trading_calendar",
    "raw_stock_data",
    "listed_info",
    "topix",
    "synthetic_truth",
    "processed_features",
    "labels",
    "trained_model",
    "prediction_performance",
];

const BROKEN_RULE: &str = r#"
description = "a rule whose query names a column that does not exist"
op = "sql"
key_columns = ["Code"]
inputs = [{ asset = "listed_info" }]
[params]
query = "SELECT Code, no_such_column FROM listed_info"
"#;

#[test]
fn a_browser_clicks_through_the_pipeline_and_a_logged_in_user_launches_a_job() -> R {
    if !browser_available() {
        return Ok(());
    }
    let p = repository_rules(&ASSETS, &TINY_MODEL)?;
    p.rule("broken", BROKEN_RULE)?;
    p.write(
        "rules/jobs/daily_inference.toml",
        "select = [\"+predictions\"]\npartitions = \"latest\"\n",
    )?;
    let built = p
        .cmd(&["build", "predictions", "prediction_performance"])
        .env("LAKEBUILD_NOW", "2026-08-14")
        .output()?;
    assert!(built.status.success(), "{}", output_text(&built));
    let broken = p
        .cmd(&["build", "broken"])
        .env("LAKEBUILD_NOW", "2026-08-14")
        .output()?;
    assert_eq!(broken.status.code(), Some(1), "{}", output_text(&broken));
    let failed_run = p
        .history()?
        .into_iter()
        .find(|r| r.asset == "broken" && r.outcome == "failed")
        .ok_or("no failed row")?;

    let predictions = p.hashes("predictions")?.len();
    assert!(predictions > 20);
    // The server's today is the next trading day: the job has a new day to build.
    let token = "ui-token-58c1";
    let s = serve(
        &p,
        "127.0.0.1:0",
        &[
            ("LAKEBUILD_UI_TOKEN", token),
            ("LAKEBUILD_NOW", "2026-08-17"),
        ],
        &[],
    )?;
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&shots)?;
    let out = std::process::Command::new("node")
        .arg("browse.mjs")
        .current_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui"))
        .env("LAKEBUILD_URL", format!("http://{}", s.addr))
        .env("LAKEBUILD_UI_TOKEN", token)
        .env("SHOTS", &shots)
        .env("FAILED_RUN", &failed_run.run_id)
        .env("FAILED_ERROR", "no_such_column")
        .env("JOB", "daily_inference")
        .output()?;
    let text = output_text(&out);
    eprintln!("{text}\nscreenshots: {}", shots.display());
    assert!(out.status.success(), "the browser run failed:\n{text}");
    let line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or("no report")?
        .to_string();
    let seen: Value = serde_json::from_str(&line)?;
    let seen = &seen["seen"];
    let graph = cli_json(&p, &["graph", "--format", "json"])?;
    assert_eq!(
        seen["graph_nodes"].as_u64(),
        graph["nodes"].as_array().map(|n| n.len() as u64)
    );
    assert_eq!(seen["partition_cells"].as_u64(), Some(predictions as u64));
    assert_eq!(seen["built_cells"], seen["partition_cells"]);
    // predictions has checks: every day shows the results of the run that checked it.
    assert_eq!(seen["checked_cells"], seen["partition_cells"]);
    assert_eq!(seen["passed_cells"], seen["partition_cells"]);
    assert!(
        seen["lineage"]
            .as_str()
            .is_some_and(|l| l.contains("trained_model"))
    );
    assert!(seen["sample_rows"].as_u64() > Some(0));
    assert!(seen["filtered_nodes"].as_u64() < seen["graph_nodes"].as_u64());
    assert!(seen["latest_run_steps"].as_u64() > Some(0));
    assert_eq!(seen["gantt_bars"], seen["latest_run_steps"]);
    assert_eq!(seen["launch_disabled_before_login"], true);
    assert_eq!(seen["post_without_login"], 401);
    assert!(seen["launched_run"].is_string());
    assert!(seen["model_versions"].as_u64() >= Some(1));
    assert_eq!(seen["fold_rows"], 2);
    assert!(seen["performance_charts"].as_u64() >= Some(1));
    for page in [
        "graph",
        "asset-predictions",
        "runs",
        "run-latest",
        "run-failed",
        "login",
        "schedules",
        "runs-after-launch",
        "models",
    ] {
        assert!(
            shots.join(format!("{page}.png")).exists(),
            "no screenshot of {page}"
        );
    }
    Ok(())
}
