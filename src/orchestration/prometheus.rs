//! `lakebuild metrics`: the run history's figures in the Prometheus text format, for
//! node_exporter's textfile collector (write to `<dir>/lakebuild.prom`; the file is
//! replaced atomically so the collector never reads half of it).

use crate::query::history::AssetStats;
use crate::query::sla::Breach;
use std::fmt::Write;

/// (metric name, help text, the value of one asset).
type Gauge = (&'static str, &'static str, fn(&AssetStats) -> f64);

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The text exposition of `stats` and the current SLA breaches.
pub fn render(stats: &[AssetStats], breaches: &[Breach], sla_assets: &[String]) -> String {
    let mut o = String::new();
    family(
        &mut o,
        "lakebuild_runs_total",
        "counter",
        "Runs of an asset by outcome.",
    );
    for s in stats {
        let _ = writeln!(
            o,
            "lakebuild_runs_total{{asset=\"{}\",outcome=\"success\"}} {}",
            s.asset, s.succeeded
        );
        let _ = writeln!(
            o,
            "lakebuild_runs_total{{asset=\"{}\",outcome=\"failure\"}} {}",
            s.asset, s.failed
        );
    }
    let gauges: [Gauge; 10] = [
        (
            "lakebuild_success_ratio",
            "Share of an asset's runs that succeeded.",
            |s| s.success_rate,
        ),
        (
            "lakebuild_run_duration_p50_seconds",
            "Median duration of an asset's runs.",
            |s| s.p50_ms as f64 / 1e3,
        ),
        (
            "lakebuild_run_duration_p95_seconds",
            "95th percentile duration of an asset's runs.",
            |s| s.p95_ms as f64 / 1e3,
        ),
        (
            "lakebuild_last_run_timestamp_seconds",
            "When an asset's latest run ended (Unix time).",
            |s| s.last_run_at as f64 / 1e3,
        ),
        (
            "lakebuild_last_run_cpu_seconds",
            "CPU time of an asset's latest run.",
            |s| s.last_cpu_ms as f64 / 1e3,
        ),
        (
            "lakebuild_last_run_peak_memory_bytes",
            "Peak resident memory during an asset's latest run.",
            |s| s.last_peak_memory_bytes as f64,
        ),
        (
            "lakebuild_last_run_written_bytes",
            "Bytes an asset's latest run wrote.",
            |s| s.last_bytes_written as f64,
        ),
        (
            "lakebuild_last_run_read_bytes",
            "Bytes of input partition files an asset's latest run read.",
            |s| s.last_bytes_read as f64,
        ),
        (
            "lakebuild_last_run_rows",
            "Rows an asset's latest run wrote.",
            |s| s.last_rows as f64,
        ),
        (
            "lakebuild_check_failures_total",
            "Failed check results of an asset.",
            |s| s.checks_failed as f64,
        ),
    ];
    for (name, help, f) in gauges {
        family(
            &mut o,
            name,
            if name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            },
            help,
        );
        for s in stats {
            let _ = writeln!(o, "{name}{{asset=\"{}\"}} {}", s.asset, f(s));
        }
    }
    family(
        &mut o,
        "lakebuild_sla_breach",
        "gauge",
        "1 while an asset's SLA of this kind is breached.",
    );
    for a in sla_assets {
        for kind in ["duration", "deadline", "success_rate"] {
            let v = breaches.iter().any(|b| &b.asset == a && b.kind == kind) as u8;
            let _ = writeln!(
                o,
                "lakebuild_sla_breach{{asset=\"{a}\",kind=\"{kind}\"}} {v}"
            );
        }
    }
    o
}
