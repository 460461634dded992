//! SLAs and monitoring through the binary: a daily deadline breached and then met (with
//! its alert and recovery), a run over its maximum duration, and the figures `stats` and
//! `metrics` (Prometheus text) report.

mod common;
use common::*;

const CALENDAR: &str = "op = \"synthetic_market\"\npartitioned = \"daily\"\ndates = { from = \"2026-11-16\", to = \"today\", calendar = \"jpx\" }\n[params]\ntable = \"trading_calendar\"\nstart = \"2026-11-16\"\n[sla]\ndeadline = \"07:30 Asia/Tokyo\"\nmin_success_rate = 0.5\n";

fn at(p: &Proj, now: &str, args: &[&str]) -> R<String> {
    let out = p.cmd(args).env("LAKEBUILD_NOW", now).output()?;
    Ok(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

fn alerts(p: &Proj) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p.path("alerts.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn a_missed_deadline_is_reported_alerted_and_recovered() -> R {
    let p = Proj::new()?;
    p.rule("trading_calendar", CALENDAR)?;
    p.write(
        "rules/alerts/log.toml",
        "command = [\"sh\", \"-c\", \"cat >> alerts.jsonl\"]\n",
    )?;
    // 07:00 in Tokyo on Friday Nov 27: before the deadline.
    at(&p, "2026-11-26T22:00:00Z", &["tick"])?;
    assert!(alerts(&p).is_empty());
    assert!(
        at(&p, "2026-11-26T22:00:00Z", &["metrics"])?
            .contains("lakebuild_sla_breach{asset=\"trading_calendar\",kind=\"deadline\"} 0")
    );
    // 08:00: today's partition is missing.
    at(&p, "2026-11-26T23:00:00Z", &["tick"])?;
    let a = alerts(&p);
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0]["kind"], "sla_breach");
    assert!(
        a[0]["text"]
            .as_str()
            .unwrap_or("")
            .contains("2026-11-27 is not built and the deadline 07:30 Asia/Tokyo has passed"),
        "{a:?}"
    );
    let stats = at(&p, "2026-11-26T23:00:00Z", &["stats"])?;
    assert!(stats.contains("BREACHED: deadline"), "{stats}");
    let metrics = at(&p, "2026-11-26T23:00:00Z", &["metrics"])?;
    assert!(
        metrics.contains("lakebuild_sla_breach{asset=\"trading_calendar\",kind=\"deadline\"} 1"),
        "{metrics}"
    );
    // Another tick: no second alert. Then the build: recovered.
    at(&p, "2026-11-26T23:05:00Z", &["tick"])?;
    assert_eq!(alerts(&p).len(), 1);
    // The build, at 08:10 in Tokyo (its date is the Tokyo date: the offset says so).
    at(&p, "2026-11-27T08:10:00+09:00", &["build"])?;
    let a = alerts(&p);
    assert_eq!(a.len(), 2, "{a:?}");
    assert_eq!(a[1]["status"], "resolved");
    // Saturday: no partition is due, so no breach.
    at(&p, "2026-11-27T23:10:00Z", &["tick"])?;
    assert_eq!(alerts(&p).len(), 2);
    Ok(())
}

#[test]
fn a_slow_run_breaches_its_maximum_duration_and_metrics_report_resources() -> R {
    let p = pipeline(3)?;
    p.rule("slow", "op = \"command\"\ninputs = [{ asset = \"ma\" }]\n[params]\nrun = \"sleep 0.4; printf 'x\\n1\\n' > \\\"$LAKEBUILD_OUTPUT_DIR/out.csv\\\"\"\n[sla]\nmax_duration = \"100ms\"\n")?;
    p.ok(&["build"])?;
    let stats = p.ok(&["stats"])?;
    assert!(
        stats
            .lines()
            .any(|l| l.starts_with("slow") && l.contains("BREACHED: duration")),
        "{stats}"
    );
    let out = p.path("lakebuild.prom");
    p.ok(&["metrics", "--output", &out.to_string_lossy()])?;
    let m = std::fs::read_to_string(out)?;
    let read: f64 = m
        .lines()
        .find(|l| l.starts_with("lakebuild_last_run_read_bytes{asset=\"ma\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0);
    assert!(read > 0.0, "ma read its input files:\n{m}");
    let hist = p.history()?;
    assert!(
        hist.iter()
            .any(|r| r.asset == "ma" && r.outcome == "built" && r.bytes_read > 0 && r.bytes > 0)
    );
    for needle in [
        "# TYPE lakebuild_runs_total counter",
        "lakebuild_runs_total{asset=\"ma\",outcome=\"success\"} 1",
        "lakebuild_sla_breach{asset=\"slow\",kind=\"duration\"} 1",
        "lakebuild_last_run_rows{asset=\"ma\"}",
        "lakebuild_last_run_cpu_seconds{asset=\"slow\"}",
        "lakebuild_last_run_peak_memory_bytes{asset=\"ma\"}",
    ] {
        assert!(m.contains(needle), "{needle} missing:\n{m}");
    }
    let bad = Proj::new()?;
    bad.rule(
        "x",
        "op = \"command\"\n[params]\nrun = \"true\"\n[sla]\ndeadline = \"7.30 Tokyo\"\n",
    )?;
    let err = bad.fails(&["build"], 2)?;
    assert!(
        err.contains("rules/x.toml") && err.contains("sla.deadline"),
        "{err}"
    );
    bad.rule(
        "x",
        "op = \"command\"\n[params]\nrun = \"true\"\n[sla]\ndeadline = \"07:30 Asia/Tokyo\"\n",
    )?;
    let err = bad.fails(&["build"], 2)?;
    assert!(err.contains("sla.deadline needs a daily asset"), "{err}");
    Ok(())
}
