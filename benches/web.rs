//! Web UI response times (issue 19). Run with:
//!
//!     cargo bench --bench web               # 10 assets x 2,500 daily partitions
//!     LAKEBUILD_BENCH_DAYS=250 cargo bench --bench web   # a quicker, smaller lake
//!
//! Builds the engine benchmarks' lake, starts `lakebuild serve --bind 127.0.0.1:0` on it,
//! and times each answer the pages ask for (one warm-up, then the median of 7, over a
//! fresh connection each), beside the floor measured in the same run: a no-op build, which
//! reads every table's log once as the graph and status answers must.

mod common;
use common::{bin, env_or, write_engine_rules, write_source};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One GET, timed from connect to the last byte; fails unless 200.
fn get(addr: &str, path: &str) -> anyhow::Result<(Duration, usize)> {
    let t = Instant::now();
    let mut s = TcpStream::connect(addr)?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let took = t.elapsed();
    let head = String::from_utf8_lossy(&raw[..raw.len().min(64)]).to_string();
    anyhow::ensure!(head.contains(" 200 "), "GET {path}: {head}");
    Ok((took, raw.len()))
}

fn main() -> anyhow::Result<()> {
    let n = env_or("LAKEBUILD_BENCH_DAYS", 2500);
    let (_tmp, root) = common::bench_root()?;
    std::fs::create_dir_all(root.join("rules"))?;
    write_source(&root.join("data/src.parquet"), n)?;
    write_engine_rules(&root)?;
    let run = |args: &[&str]| -> anyhow::Result<Duration> {
        let t = Instant::now();
        let out = Command::new(bin()).current_dir(&root).args(args).output()?;
        anyhow::ensure!(out.status.success(), "lakebuild {args:?} failed");
        Ok(t.elapsed())
    };
    println!("lake: 10 assets x {n} daily partitions (cargo bench --bench web)");
    let full = run(&["build", "-q", "-j", "2"])?;
    println!("full build:                 {:>9.1} ms", ms(full));
    let noop = median(
        (0..7)
            .map(|_| run(&["build", "-q"]))
            .collect::<anyhow::Result<_>>()?,
    );
    println!("no-op build (the floor):    {:>9.1} ms", ms(noop));

    let mut server = Command::new(bin())
        .current_dir(&root)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env_remove("LAKEBUILD_UI_TOKEN")
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    if let Some(out) = server.stdout.take() {
        BufReader::new(out).read_line(&mut line)?;
    }
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_default()
        .to_string();
    let result = (|| -> anyhow::Result<()> {
        let mut page_totals: Vec<(&str, f64)> = vec![];
        for (page, paths) in [
            ("asset graph", vec!["/api/graph", "/api/live"]),
            ("status (the CLI's status --json)", vec!["/api/status"]),
            ("asset page (a5)", vec!["/api/assets/a5", "/api/why/a5"]),
            ("runs", vec!["/api/runs"]),
            ("static page", vec!["/", "/app.js"]),
        ] {
            let mut total = 0.0;
            for path in paths {
                get(&addr, path)?;
                let mut times = vec![];
                let mut size = 0;
                for _ in 0..7 {
                    let (t, s) = get(&addr, path)?;
                    times.push(t);
                    size = s;
                }
                let m = ms(median(times));
                total += m;
                println!("  {path:<28} {m:>9.1} ms   {:>8} bytes", size);
            }
            page_totals.push((page, total));
        }
        for (page, total) in page_totals {
            println!("{page:<28} {total:>9.1} ms   (its answers one after another; goal < 200 ms)");
        }
        Ok(())
    })();
    let _ = server.kill();
    let _ = server.wait();
    result
}
