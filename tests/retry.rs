//! Retries through the binary: a transient failure (exit 75) retried until it succeeds,
//! with every attempt in the run history; a permanent failure tried once; and `lakebuild
//! retry RUN_ID` re-running only what failed in a run.

mod common;
use common::*;

/// A command asset that fails `fails` times with `code`, counting its attempts in a file.
fn flaky(fails: u32, code: i32) -> String {
    format!(
        r#"
op = "command"
inputs = [{{ asset = "ma" }}]
[params]
run = "n=$(cat tries 2>/dev/null || echo 0); n=$((n+1)); echo $n > tries; if [ $n -le {fails} ] && [ ! -f fixed ]; then echo 'feed not ready' >&2; exit {code}; fi; printf 'x\n1\n' > \"$LAKEBUILD_OUTPUT_DIR/out.csv\""
[retry]
attempts = 4
backoff = "linear"
initial = "10ms"
max = "50ms"
"#
    )
}

fn attempts(p: &Proj, asset: &str) -> R<Vec<(i64, String)>> {
    let mut a: Vec<(i64, String)> = p
        .history()?
        .into_iter()
        .filter(|r| r.asset == asset)
        .map(|r| (r.attempt, r.outcome))
        .collect();
    a.sort();
    Ok(a)
}

/// A build that stops at its first failure leaves the steps it never started in the
/// history, so `retry` builds them too.
#[test]
fn retry_also_builds_what_a_stopped_build_never_started() -> R {
    let p = pipeline(3)?;
    p.rule("report", &flaky(100, 3))?;
    p.rule("after", "op = \"sql\"\ninputs = [{ asset = \"report\" }]\n[params]\nquery = \"SELECT * FROM report\"\n")?;
    p.fails(&["build"], 1)?;
    let run = p
        .history()?
        .into_iter()
        .find(|r| r.asset == "report")
        .map(|r| r.run_id)
        .ok_or("no run")?;
    assert!(
        p.history()?
            .iter()
            .any(|r| r.run_id == run && r.asset == "after" && r.outcome == "skipped")
    );
    p.write("fixed", "")?;
    p.ok(&["retry", &run])?;
    assert!(
        p.version("after")?.is_some(),
        "the step the failure held back is built by the retry"
    );
    Ok(())
}

#[test]
fn a_transient_failure_is_retried_and_every_attempt_recorded() -> R {
    let p = pipeline(3)?;
    p.rule("report", &flaky(2, 75))?;
    p.ok(&["build"])?;
    let a = attempts(&p, "report")?;
    assert_eq!(a.len(), 3, "{a:?}");
    assert_eq!(
        a.iter().map(|x| x.0).collect::<Vec<_>>(),
        [1, 2, 3],
        "{a:?}"
    );
    assert_eq!(a[2].1, "built");
    assert!(a[..2].iter().all(|x| x.1 == "failed"));
    Ok(())
}

#[test]
fn a_permanent_failure_is_tried_once_and_retry_reruns_only_what_failed() -> R {
    let p = pipeline(3)?;
    p.rule("report", &flaky(100, 3))?;
    p.fails(&["build"], 1)?;
    let a = attempts(&p, "report")?;
    assert_eq!(a.len(), 1, "a permanent failure is not retried: {a:?}");
    let run = p
        .history()?
        .into_iter()
        .find(|r| r.asset == "report")
        .map(|r| r.run_id)
        .ok_or("no run")?;
    p.write("fixed", "")?;
    let out = p.ok(&["retry", &run])?;
    assert!(out.contains("retrying report"), "{out}");
    let hist = p.history()?;
    let retry: Vec<_> = hist
        .iter()
        .filter(|r| r.trigger == format!("retry:{run}"))
        .collect();
    let built: Vec<&str> = retry
        .iter()
        .filter(|r| r.outcome == "built")
        .map(|r| r.asset.as_str())
        .collect();
    // The failed asset and the one the stopped build never started (summary) run; what
    // succeeded is reused.
    assert_eq!(built, ["report", "summary"], "{retry:?}");
    assert!(
        retry
            .iter()
            .any(|r| r.asset == "ma" && r.outcome == "reused"),
        "{retry:?}"
    );
    assert!(
        p.ok(&["retry", &run])?.contains("report"),
        "a second retry is a no-op build"
    );
    let err = p.fails(&["retry", "no-such-run"], 2)?;
    assert!(err.contains("no run 'no-such-run'"), "{err}");
    Ok(())
}
